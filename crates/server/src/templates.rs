//! The Platform API's view of the template cache (`/platform/v1/whatsapp/templates`) and its
//! sync with Meta. Templates themselves are managed through the Meta proxy.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chasqui_app::AppError;
use chasqui_app::graph::ProxyError;
use chasqui_core::Timestamp;
use chasqui_store::numbers::{self, PhoneNumber};
use chasqui_store::templates;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Params;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/whatsapp/templates", get(list))
        .route("/whatsapp/templates/sync", post(sync))
}

/// `GET /whatsapp/templates?business_account_id=&status=&name=`: cached templates.
async fn list(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let status = params.get("status").map(str::to_ascii_uppercase);
    if let Some(s) = &status
        && !chasqui_meta::template::STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "status {s:?} is not a template status"
        )));
    }
    let found = templates::list(
        state.app.db(),
        &project_id,
        params.get("business_account_id"),
        status.as_deref(),
    )
    .await?;
    let name = params.get("name");
    let data: Vec<Value> = found
        .iter()
        .filter(|t| name.is_none_or(|n| t.name.as_deref().is_some_and(|tn| tn.contains(n))))
        .map(template_json)
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `POST /whatsapp/templates/sync` `{"phone_number_id"?}`: copies every template of the
/// project's WABAs (or that number's) from Meta, following its paging. Each WABA reports
/// `synced` and `deleted`, or the `error` that stopped it.
async fn sync(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let wanted = match request.get("phone_number_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::bad_request("phone_number_id must be a string")),
    };
    let chosen: Vec<PhoneNumber> = match &wanted {
        Some(pnid) => vec![
            numbers::find(state.app.db(), &project_id, pnid)
                .await?
                .ok_or(AppError::NotFound("Phone number"))?,
        ],
        None => numbers::one_per_waba(state.app.db(), &project_id).await?,
    };
    // One WABA failing (Meta unreachable, token revoked) does not hide the others' results.
    let mut reports = Vec::new();
    for number in &chosen {
        let report = match chasqui_app::templates::sync(&state.app, number).await {
            Ok(r) => json!(r),
            Err(ProxyError::App(e)) => return Err(ApiError(e)),
            Err(e) => json!({
                "business_account_id": number.business_account_id,
                "error": e.to_string(),
            }),
        };
        reports.push(report);
    }
    Ok(Json(json!({ "data": reports })))
}

/// A cached template in the Platform API's shape.
pub(crate) fn template_json(t: &chasqui_store::templates::Template) -> Value {
    let meta = t.to_meta();
    json!({
        "id": t.id,
        "meta_template_id": t.meta_template_id,
        "business_account_id": t.business_account_id,
        "name": t.name,
        "language_code": t.language,
        "category": t.category,
        "status": t.status,
        "parameter_format": t.parameter_format.as_deref().unwrap_or("POSITIONAL"),
        "components": meta.get("components").cloned().unwrap_or(Value::Null),
        "rejected_reason": t.reason,
        "updated_at": Timestamp(t.updated_at).to_rfc3339(),
    })
}
