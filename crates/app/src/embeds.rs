//! Inbox embeds: a token that opens the inbox inside another site (framed only by its
//! allowed origins), confined to the project, one phone number, or one customer's numbers.
//! The token is shown once and stored as its SHA-256.

use chasqui_core::ids::{new_id, random_bytes};
use chasqui_store::inbox_embeds::{self, InboxEmbed};
use chasqui_store::{numbers, projects};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{App, AppError};

/// The prefix of every embed token.
pub const TOKEN_PREFIX: &str = "che_";

/// What may be set on create (every field) or update (all but the scope).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedInput {
    /// Label.
    pub name: Option<String>,
    /// `project`, `phone_number` (alias `whatsapp_config`) or `customer`; fixed at create.
    pub scope_type: Option<String>,
    /// The number's `phone_number_id` or the customer's id.
    pub scope_id: Option<String>,
    /// Exact origins or wildcard subdomains (`https://*.example.com`); empty = any.
    pub allowed_origins: Option<Vec<String>>,
    /// `system`, `light` or `dark`.
    pub default_mode: Option<String>,
    /// ISO-8601 expiry (null: never).
    #[serde(default, with = "double_option")]
    pub expires_at: Option<Option<String>>,
}

/// `null` versus absent for `expires_at`.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::deserialize(d)?))
    }
}

/// A created embed with its token (shown only here).
#[derive(Debug, Clone)]
pub struct CreatedEmbed {
    /// The embed.
    pub embed: InboxEmbed,
    /// The token.
    pub token: String,
}

/// Whether an embed works now.
pub fn status(e: &InboxEmbed, now: i64) -> &'static str {
    if e.revoked_at.is_some() {
        "revoked"
    } else if e.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

/// The hash a token is found by.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks an origin: `http(s)://host[:port]`, the host optionally `*.`-prefixed.
fn check_origin(origin: &str) -> Result<String, String> {
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or_else(|| format!("allowed origin {origin:?} must start with https:// or http://"))?;
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    if !name_ok || !port_ok {
        return Err(format!(
            "allowed origin {origin:?} must be scheme://host[:port] (a leading *. for subdomains), without a path"
        ));
    }
    Ok(o)
}

fn check_mode(mode: &str) -> Result<(), String> {
    if ["system", "light", "dark"].contains(&mode) {
        Ok(())
    } else {
        Err(format!(
            "default_mode must be system, light or dark, not {mode:?}"
        ))
    }
}

/// Applies the editable fields of `input` to `e`, collecting every problem.
fn apply(e: &mut InboxEmbed, input: &EmbedInput, now: i64, errors: &mut Vec<String>) {
    if let Some(name) = &input.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push("name must be 1 to 200 characters".into());
        }
        e.name = name.to_owned();
    }
    if let Some(origins) = &input.allowed_origins {
        if origins.len() > 50 {
            errors.push("at most 50 allowed origins".into());
        }
        let mut checked = Vec::new();
        for o in origins {
            match check_origin(o) {
                Ok(o) => checked.push(o),
                Err(m) => errors.push(m),
            }
        }
        e.allowed_origins = serde_json::to_string(&checked).unwrap_or_else(|_| "[]".into());
    }
    if let Some(mode) = &input.default_mode {
        if let Err(m) = check_mode(mode) {
            errors.push(m);
        }
        e.default_mode = mode.clone();
    }
    if let Some(expiry) = &input.expires_at {
        e.expires_at = match expiry {
            None => None,
            Some(text) => match chasqui_core::clock::Timestamp::parse(text) {
                Some(t) if t.millis() > now => Some(t.millis()),
                Some(_) => {
                    errors.push("expires_at must be in the future".into());
                    None
                }
                None => {
                    errors.push(format!("expires_at {text:?} is not an ISO-8601 time"));
                    None
                }
            },
        };
    }
}

/// Creates an embed; the token is returned once.
pub async fn create(
    app: &App,
    project_id: &str,
    input: EmbedInput,
) -> Result<CreatedEmbed, AppError> {
    let now = app.now();
    let mut errors = Vec::new();
    let scope_type = match input.scope_type.as_deref().unwrap_or("project") {
        "project" => "project",
        "phone_number" | "whatsapp_config" => "phone_number",
        "customer" => "customer",
        other => {
            errors.push(format!(
                "scope_type must be project, phone_number or customer, not {other:?}"
            ));
            "project"
        }
    };
    let scope_id = input.scope_id.clone().filter(|s| !s.trim().is_empty());
    match (scope_type, &scope_id) {
        ("project", Some(_)) => errors.push("a project scope takes no scope_id".into()),
        ("phone_number" | "customer", None) => {
            errors.push(format!("scope_id is required for scope_type {scope_type}"))
        }
        ("phone_number", Some(id)) if numbers::find(app.db(), project_id, id).await?.is_none() => {
            errors.push(format!(
                "scope_id {id} is not a phone number of this project"
            ));
        }
        ("customer", Some(id))
            if projects::find_customer(app.db(), project_id, id)
                .await?
                .is_none() =>
        {
            errors.push(format!("scope_id {id} is not a customer of this project"));
        }
        _ => {}
    }
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(random_bytes::<32>()));
    let mut e = InboxEmbed {
        id: new_id(),
        project_id: project_id.to_owned(),
        name: String::new(),
        scope_type: scope_type.to_owned(),
        scope_id,
        allowed_origins: "[]".into(),
        default_mode: "system".into(),
        token_prefix: token[..TOKEN_PREFIX.len() + 6].to_owned(),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
        created_at: now,
        updated_at: now,
    };
    if input.name.is_none() {
        errors.push("name is required".into());
    }
    apply(&mut e, &input, now, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    inbox_embeds::insert(app.db(), &e, &token_hash(&token)).await?;
    Ok(CreatedEmbed { embed: e, token })
}

/// Changes an embed's name, origins, mode or expiry (its scope is fixed).
pub async fn update(
    app: &App,
    project_id: &str,
    id: &str,
    input: EmbedInput,
) -> Result<InboxEmbed, AppError> {
    let mut e = inbox_embeds::get(app.db(), project_id, id)
        .await?
        .ok_or(AppError::NotFound("Inbox embed"))?;
    let mut errors = Vec::new();
    if input.scope_type.is_some() || input.scope_id.is_some() {
        errors.push("scope_type and scope_id cannot change; create another embed".into());
    }
    let now = app.now();
    apply(&mut e, &input, now, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    e.updated_at = now;
    inbox_embeds::update(app.db(), &e).await?;
    Ok(e)
}

/// Revokes an embed: its token stops working at once.
pub async fn revoke(app: &App, project_id: &str, id: &str) -> Result<InboxEmbed, AppError> {
    let mut e = inbox_embeds::get(app.db(), project_id, id)
        .await?
        .ok_or(AppError::NotFound("Inbox embed"))?;
    if e.revoked_at.is_none() {
        e.revoked_at = Some(app.now());
        e.updated_at = app.now();
        inbox_embeds::update(app.db(), &e).await?;
    }
    Ok(e)
}

/// An authenticated embed and the numbers it may see.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The embed.
    pub embed: InboxEmbed,
    /// The `phone_number_id`s in scope.
    pub phone_number_ids: Vec<String>,
}

impl Scope {
    /// Whether a number is in scope.
    pub fn allows(&self, phone_number_id: &str) -> bool {
        self.phone_number_ids.iter().any(|p| p == phone_number_id)
    }
}

/// The embed of a token, if it is active (401 otherwise), with its numbers.
pub async fn authenticate(app: &App, token: &str) -> Result<Scope, AppError> {
    let refused = |why: &str| AppError::Unauthorized(format!("this inbox link {why}"));
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
        return Err(refused("is not valid"));
    }
    let e = inbox_embeds::by_token_hash(app.db(), &token_hash(token))
        .await?
        .ok_or_else(|| refused("is not valid"))?;
    match status(&e, app.now()) {
        "revoked" => return Err(refused("was revoked")),
        "expired" => return Err(refused("has expired")),
        _ => {}
    }
    let (all, _) = numbers::list(app.db(), &e.project_id, None, 10_000, 0).await?;
    let phone_number_ids = all
        .into_iter()
        .filter(|n| match e.scope_type.as_str() {
            "phone_number" => e.scope_id.as_deref() == Some(n.phone_number_id.as_str()),
            "customer" => e.scope_id.is_some() && n.customer_id == e.scope_id,
            _ => true,
        })
        .map(|n| n.phone_number_id)
        .collect();
    // A write at most once a minute, not one per request.
    let now = app.now();
    if e.last_used_at.is_none_or(|t| t < now - 60_000) {
        inbox_embeds::touch(app.db(), &e.id, now).await?;
    }
    Ok(Scope {
        embed: e,
        phone_number_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_port_with_optional_wildcard() {
        assert_eq!(
            check_origin("https://App.Example.com/").as_deref(),
            Ok("https://app.example.com")
        );
        assert!(check_origin("https://*.example.com").is_ok());
        assert!(check_origin("http://localhost:5173").is_ok());
        for bad in [
            "example.com",
            "https://",
            "https://a.com/path",
            "https://a.*.com",
            "ftp://a.com",
            "https://a.com:99999",
            "https://a b.com",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }
}
