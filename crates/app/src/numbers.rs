//! Phone numbers: validation, secret encryption, sandbox numbers.

use chasqui_core::NumberKind;
use chasqui_core::ids::{new_id, random_digits, random_token};
use chasqui_store::numbers::{self, PhoneNumber};
use chasqui_store::projects;

use crate::{App, AppError};

/// Fields a create or update request may carry (absent = unchanged on update).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberInput {
    /// `cloud` (alias `production`) or `sandbox`.
    pub kind: Option<String>,
    /// Label.
    pub name: Option<String>,
    /// Meta's phone number id (cloud).
    pub phone_number_id: Option<String>,
    /// Meta's WABA id (cloud).
    pub business_account_id: Option<String>,
    /// Displayed number.
    pub display_phone_number: Option<String>,
    /// Meta access token (cloud; write-only).
    pub access_token: Option<String>,
    /// Meta app secret (cloud; write-only).
    pub app_secret: Option<String>,
    /// Token Meta presents in the verification handshake (write-only).
    pub webhook_verify_token: Option<String>,
    /// Customer the number belongs to; empty string detaches it.
    pub customer_id: Option<String>,
}

/// Purpose tag of verify-token digests.
pub const VERIFY_TOKEN_PURPOSE: &str = "webhook-verify-token";

fn is_meta_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit())
}

fn check_len(errors: &mut Vec<String>, field: &str, value: &Option<String>, max: usize) {
    if let Some(v) = value
        && (v.trim().is_empty() || v.len() > max)
    {
        errors.push(format!("{field} must be 1 to {max} characters"));
    }
}

async fn check_customer(
    app: &App,
    project_id: &str,
    customer_id: &Option<String>,
) -> Result<Option<String>, AppError> {
    match customer_id.as_deref() {
        None | Some("") => Ok(None),
        Some(id) => match projects::find_customer(app.db(), project_id, id).await? {
            Some(c) => Ok(Some(c.id)),
            None => Err(AppError::invalid(
                "customer_id does not name a customer of this project",
            )),
        },
    }
}

/// Creates a number for a project.
pub async fn create(
    app: &App,
    project_id: &str,
    input: NumberInput,
) -> Result<PhoneNumber, AppError> {
    let kind: NumberKind = input
        .kind
        .as_deref()
        .unwrap_or("cloud")
        .parse()
        .map_err(|e| AppError::invalid(format!("kind must be cloud or sandbox: {e}")))?;
    let mut errors = Vec::new();
    check_len(&mut errors, "name", &input.name, 200);
    check_len(
        &mut errors,
        "display_phone_number",
        &input.display_phone_number,
        32,
    );
    check_len(&mut errors, "access_token", &input.access_token, 4096);
    check_len(&mut errors, "app_secret", &input.app_secret, 512);
    check_len(
        &mut errors,
        "webhook_verify_token",
        &input.webhook_verify_token,
        512,
    );
    let (pnid, waba, display, token, secret) = if kind == NumberKind::Cloud {
        for (field, value) in [
            ("phone_number_id", &input.phone_number_id),
            ("business_account_id", &input.business_account_id),
        ] {
            match value {
                Some(v) if is_meta_id(v) => {}
                Some(_) => errors.push(format!("{field} must be Meta's numeric id")),
                None => errors.push(format!("{field} is required for cloud numbers")),
            }
        }
        for (field, value) in [
            ("access_token", &input.access_token),
            ("app_secret", &input.app_secret),
        ] {
            if value.is_none() {
                errors.push(format!("{field} is required for cloud numbers"));
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        (
            input.phone_number_id.clone().unwrap_or_default(),
            input.business_account_id.clone().unwrap_or_default(),
            input.display_phone_number.clone(),
            input.access_token.clone().unwrap_or_default(),
            input.app_secret.clone().unwrap_or_default(),
        )
    } else {
        for (field, value) in [
            ("phone_number_id", &input.phone_number_id),
            ("business_account_id", &input.business_account_id),
            ("access_token", &input.access_token),
            ("app_secret", &input.app_secret),
        ] {
            if value.is_some() {
                errors.push(format!("{field} is generated for sandbox numbers"));
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        (
            format!("9{}", random_digits(14)),
            format!("8{}", random_digits(14)),
            Some(
                input
                    .display_phone_number
                    .clone()
                    .unwrap_or_else(|| format!("1555{}", random_digits(7))),
            ),
            random_token("sbx_token_"),
            random_token("sbx_secret_"),
        )
    };
    let customer_id = check_customer(app, project_id, &input.customer_id).await?;
    let now = app.now();
    let key = app.key();
    let number = PhoneNumber {
        id: new_id(),
        project_id: project_id.to_owned(),
        customer_id,
        phone_number_id: pnid,
        business_account_id: waba,
        kind,
        name: input.name.map(|n| n.trim().to_owned()),
        display_phone_number: display,
        access_token_enc: key.encrypt(&token),
        app_secret_enc: key.encrypt(&secret),
        verify_token_digest: input
            .webhook_verify_token
            .map(|t| key.digest(VERIFY_TOKEN_PURPOSE, t.as_bytes())),
        created_at: now,
        updated_at: now,
    };
    // The number and its `whatsapp.phone_number.created` event are stored together.
    let mut tx = app.db().writer().begin().await.map_err(store_error)?;
    match numbers::insert(&mut tx, &number).await {
        Ok(()) => {}
        Err(e) if projects::is_unique_violation(&e) => {
            return Err(AppError::Conflict(
                "a phone number with this phone_number_id already exists".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    publish(app, &mut tx, &number, "whatsapp.phone_number.created").await?;
    tx.commit().await.map_err(store_error)?;
    app.directory().invalidate().await;
    app.wake();
    Ok(number)
}

fn store_error(e: chasqui_store::StoreError) -> AppError {
    AppError::Store(e)
}

/// Publishes a `whatsapp.phone_number.*` project event in the caller's transaction.
async fn publish(
    app: &App,
    conn: &mut chasqui_store::Conn,
    number: &PhoneNumber,
    event: &str,
) -> Result<(), AppError> {
    let payload = serde_json::json!({
        "phone_number_id": number.phone_number_id,
        "business_account_id": number.business_account_id,
        "display_phone_number": number.display_phone_number,
        "kind": number.kind.as_str(),
        "project": { "id": number.project_id },
        "customer": number.customer_id.as_ref().map(|id| serde_json::json!({ "id": id })),
    });
    crate::webhooks::publish_project(
        conn,
        &number.project_id,
        event,
        &number.id,
        &payload,
        app.now(),
    )
    .await?;
    Ok(())
}

/// Updates a number's mutable fields.
pub async fn update(
    app: &App,
    project_id: &str,
    phone_number_id: &str,
    input: NumberInput,
) -> Result<PhoneNumber, AppError> {
    let mut number = numbers::find(app.db(), project_id, phone_number_id)
        .await?
        .ok_or(AppError::NotFound("Phone number"))?;
    let mut errors = Vec::new();
    if input
        .kind
        .as_deref()
        .is_some_and(|k| k.parse::<NumberKind>().ok() != Some(number.kind))
    {
        errors.push("kind cannot change".to_owned());
    }
    if input
        .phone_number_id
        .as_deref()
        .is_some_and(|p| p != number.phone_number_id)
    {
        errors.push("phone_number_id cannot change".to_owned());
    }
    check_len(&mut errors, "name", &input.name, 200);
    check_len(
        &mut errors,
        "display_phone_number",
        &input.display_phone_number,
        32,
    );
    check_len(&mut errors, "access_token", &input.access_token, 4096);
    check_len(&mut errors, "app_secret", &input.app_secret, 512);
    check_len(
        &mut errors,
        "webhook_verify_token",
        &input.webhook_verify_token,
        512,
    );
    if number.kind == NumberKind::Sandbox
        && (input.access_token.is_some()
            || input.app_secret.is_some()
            || input.business_account_id.is_some())
    {
        errors.push("credentials of sandbox numbers are generated".to_owned());
    }
    if let Some(w) = &input.business_account_id
        && !is_meta_id(w)
    {
        errors.push("business_account_id must be Meta's numeric id".to_owned());
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    if input.customer_id.is_some() {
        number.customer_id = check_customer(app, project_id, &input.customer_id).await?;
    }
    let key = app.key();
    if let Some(v) = input.name {
        number.name = Some(v.trim().to_owned());
    }
    if let Some(v) = input.display_phone_number {
        number.display_phone_number = Some(v);
    }
    if let Some(v) = input.business_account_id {
        number.business_account_id = v;
    }
    if let Some(v) = input.access_token {
        number.access_token_enc = key.encrypt(&v);
    }
    if let Some(v) = input.app_secret {
        number.app_secret_enc = key.encrypt(&v);
    }
    if let Some(v) = input.webhook_verify_token {
        number.verify_token_digest = Some(key.digest(VERIFY_TOKEN_PURPOSE, v.as_bytes()));
    }
    number.updated_at = app.now();
    if !numbers::update(app.db(), &number).await? {
        return Err(AppError::NotFound("Phone number"));
    }
    app.directory().invalidate().await;
    Ok(number)
}

/// Deletes a number; its stored messages stay in the database.
pub async fn delete(app: &App, project_id: &str, phone_number_id: &str) -> Result<(), AppError> {
    let number = numbers::find(app.db(), project_id, phone_number_id)
        .await?
        .ok_or(AppError::NotFound("Phone number"))?;
    // `whatsapp.phone_number.deleted` is published as teardown starts, with it.
    let mut tx = app.db().writer().begin().await.map_err(store_error)?;
    publish(app, &mut tx, &number, "whatsapp.phone_number.deleted").await?;
    // The number's own webhooks go with it (project webhooks stay).
    chasqui_store::webhooks::delete_for_number(&mut tx, project_id, phone_number_id).await?;
    if !numbers::delete(&mut tx, project_id, phone_number_id).await? {
        return Err(AppError::NotFound("Phone number"));
    }
    tx.commit().await.map_err(store_error)?;
    app.directory().invalidate().await;
    app.wake();
    Ok(())
}

/// Whether `token` is the verify token of some number (the GET handshake).
pub async fn verify_token_matches(app: &App, token: &str) -> Result<bool, AppError> {
    let digest = app.key().digest(VERIFY_TOKEN_PURPOSE, token.as_bytes());
    Ok(numbers::verify_token_exists(app.db(), &digest).await?)
}

/// Decrypted credentials of a number (for Graph calls and the embedded sandbox).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Meta access token.
    pub access_token: chasqui_core::Secret<String>,
    /// Meta app secret.
    pub app_secret: chasqui_core::Secret<String>,
}

/// Decrypts a number's credentials.
pub fn credentials(app: &App, number: &PhoneNumber) -> Result<Credentials, AppError> {
    let key = app.key();
    let decrypt = |v: &str| {
        key.decrypt(v)
            .map_err(|e| AppError::Internal(format!("cannot decrypt a secret: {e}")))
    };
    Ok(Credentials {
        access_token: chasqui_core::Secret::new(decrypt(&number.access_token_enc)?),
        app_secret: chasqui_core::Secret::new(decrypt(&number.app_secret_enc)?),
    })
}
