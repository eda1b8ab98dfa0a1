//! Message templates through the proxy: requests are checked against Meta's template rules
//! before the Graph call, Meta's answers pass through unchanged, and every template Meta
//! returns is cached (kept current afterwards by status webhooks and by [`sync`]).

use chasqui_core::ids::new_id;
use chasqui_meta::graph::{GraphBody, GraphReply, encode_query};
use chasqui_meta::template;
use chasqui_store::numbers::PhoneNumber;
use chasqui_store::templates;
use reqwest::Method;
use serde_json::{Map, Value};

use crate::App;
use crate::graph::{ProxyError, forward};

/// Fields a sync asks for.
const SYNC_FIELDS: &str = "id,name,language,category,status,components,parameter_format,message_send_ttl_seconds,rejected_reason,quality_score,sub_category";
/// Page size of a sync (Meta's maximum).
const SYNC_PAGE: usize = 100;
/// A sync stops after this many pages (25,000 templates; Meta allows 6,000 per WABA).
const SYNC_MAX_PAGES: usize = 250;

async fn cache(app: &App, number: &PhoneNumber, object: &Value) -> Result<(), ProxyError> {
    templates::upsert(
        app.db(),
        &new_id(),
        &number.project_id,
        &number.business_account_id,
        object,
        app.now(),
    )
    .await?;
    Ok(())
}

fn json_body(request: &Map<String, Value>) -> GraphBody {
    GraphBody::Json(serde_json::to_vec(request).unwrap_or_default())
}

/// `POST /{waba_id}/message_templates`.
pub async fn create(
    app: &App,
    number: &PhoneNumber,
    request: Map<String, Value>,
) -> Result<GraphReply, ProxyError> {
    let mut stored = template::validate_create(&request)?;
    let path = format!("{}/message_templates", number.business_account_id);
    let reply = forward(app, number, Method::POST, &path, None, json_body(&request)).await?;
    if let Some(answer) = reply.json().filter(|_| reply.is_success()) {
        for key in ["id", "status", "category"] {
            if let Some(v) = answer.get(key) {
                stored.insert(key.into(), v.clone());
            }
        }
        cache(app, number, &Value::Object(stored)).await?;
    }
    Ok(reply)
}

/// `POST /{template_id}` (and `PUT|POST /{waba_id}/message_templates?hsm_id=`): an edit.
pub async fn edit(
    app: &App,
    number: &PhoneNumber,
    template_id: &str,
    request: Map<String, Value>,
) -> Result<GraphReply, ProxyError> {
    let cached = templates::find(app.db(), &number.project_id, template_id).await?;
    let current = match cached.as_ref().map(templates::Template::to_meta) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let changes = template::validate_edit(&current, &request)?;
    let reply = forward(
        app,
        number,
        Method::POST,
        template_id,
        None,
        json_body(&request),
    )
    .await?;
    if reply.is_success() && cached.is_some() {
        let mut object = current;
        object.extend(changes);
        // An edit goes back to review.
        object.insert("status".into(), Value::from("PENDING"));
        cache(app, number, &Value::Object(object)).await?;
    }
    Ok(reply)
}

/// `DELETE /{waba_id}/message_templates?name=[&hsm_id=][&language=]`. Meta deletes by name
/// (every language) or by `hsm_id` with the name; a `language` (as some SDKs send) is turned
/// into the `hsm_id` of that translation from the cache.
pub async fn delete(
    app: &App,
    number: &PhoneNumber,
    name: Option<&str>,
    hsm_id: Option<&str>,
    language: Option<&str>,
) -> Result<GraphReply, ProxyError> {
    let waba = &number.business_account_id;
    let mut hsm_id = hsm_id.map(str::to_owned);
    let mut name = name.map(str::to_owned);
    if hsm_id.is_some() && name.is_none() {
        let cached = templates::find(
            app.db(),
            &number.project_id,
            hsm_id.as_deref().unwrap_or_default(),
        )
        .await?;
        name = cached.and_then(|t| t.name);
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err(ProxyError::Invalid(
            "The parameter name is required (with hsm_id to delete one translation).".into(),
        ));
    };
    if let (Some(language), None) = (language, &hsm_id) {
        let found = templates::by_name(app.db(), waba, &name)
            .await?
            .into_iter()
            .find(|t| t.language.as_deref() == Some(language));
        match found {
            Some(t) => hsm_id = Some(t.meta_template_id),
            None => {
                return Err(ProxyError::Invalid(format!(
                    "No template {name:?} in language {language:?} is known; sync templates or delete by name."
                )));
            }
        }
    }
    let mut query = format!("name={}", encode_query(&name));
    if let Some(id) = &hsm_id {
        query.push_str(&format!("&hsm_id={}", encode_query(id)));
    }
    let path = format!("{waba}/message_templates");
    let reply = forward(
        app,
        number,
        Method::DELETE,
        &path,
        Some(&query),
        GraphBody::Empty,
    )
    .await?;
    if reply.is_success() {
        let gone: Vec<String> = match hsm_id {
            Some(id) => vec![id],
            None => templates::by_name(app.db(), waba, &name)
                .await?
                .into_iter()
                .map(|t| t.meta_template_id)
                .collect(),
        };
        for id in gone {
            templates::set_status(app.db(), waba, &id, "DELETED", app.now()).await?;
        }
    }
    Ok(reply)
}

/// `GET /{waba_id}/message_templates`: Meta's list, cached as it passes.
pub async fn list(
    app: &App,
    number: &PhoneNumber,
    query: Option<&str>,
) -> Result<GraphReply, ProxyError> {
    let path = format!("{}/message_templates", number.business_account_id);
    let reply = forward(app, number, Method::GET, &path, query, GraphBody::Empty).await?;
    if let Some(answer) = reply.json().filter(|_| reply.is_success())
        && let Some(items) = answer.get("data").and_then(Value::as_array)
    {
        for item in items {
            cache(app, number, item).await?;
        }
    }
    Ok(reply)
}

/// `GET /{template_id}`: Meta's template, cached as it passes.
pub async fn get(
    app: &App,
    number: &PhoneNumber,
    template_id: &str,
    query: Option<&str>,
) -> Result<GraphReply, ProxyError> {
    let reply = forward(
        app,
        number,
        Method::GET,
        template_id,
        query,
        GraphBody::Empty,
    )
    .await?;
    if let Some(answer) = reply.json().filter(|_| reply.is_success()) {
        cache(app, number, &answer).await?;
    }
    Ok(reply)
}

/// What a sync did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncReport {
    /// WABA id.
    pub business_account_id: String,
    /// Templates Meta listed.
    pub synced: usize,
    /// Cached templates Meta no longer has.
    pub deleted: u64,
}

/// Copies every template of the number's WABA into the cache, following Meta's paging, and
/// marks cached templates Meta no longer lists as deleted.
pub async fn sync(app: &App, number: &PhoneNumber) -> Result<SyncReport, ProxyError> {
    let path = format!("{}/message_templates", number.business_account_id);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..SYNC_MAX_PAGES {
        let mut query = format!("limit={SYNC_PAGE}&fields={SYNC_FIELDS}");
        if let Some(cursor) = &after {
            query.push_str(&format!("&after={}", encode_query(cursor)));
        }
        let reply = forward(
            app,
            number,
            Method::GET,
            &path,
            Some(&query),
            GraphBody::Empty,
        )
        .await?;
        let answer = reply.json().filter(|_| reply.is_success()).ok_or_else(|| {
            ProxyError::Upstream(format!(
                "listing templates answered {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))
        })?;
        let items = answer
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for item in &items {
            cache(app, number, item).await?;
            if let Some(id) = item.get("id").and_then(Value::as_str) {
                seen.push(id.to_owned());
            }
        }
        let next = answer.pointer("/paging/next").is_some();
        after = answer
            .pointer("/paging/cursors/after")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if !next || after.is_none() || items.is_empty() {
            let deleted = templates::mark_unseen_deleted(
                app.db(),
                &number.business_account_id,
                &seen,
                app.now(),
            )
            .await?;
            return Ok(SyncReport {
                business_account_id: number.business_account_id.clone(),
                synced: seen.len(),
                deleted,
            });
        }
    }
    Err(ProxyError::Upstream(format!(
        "template sync stopped after {SYNC_MAX_PAGES} pages"
    )))
}
