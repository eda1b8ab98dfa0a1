//! Outbound webhooks in the Platform API: project webhooks (`/whatsapp/webhooks`), number
//! webhooks (`/whatsapp/phone_numbers/{id}/webhooks`), and the delivery log
//! (`/webhook_deliveries`) with each attempt.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chasqui_app::AppError;
use chasqui_app::webhooks::{self, WebhookInput};
use chasqui_core::Timestamp;
use chasqui_store::{numbers, webhooks as store};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Params, rooted};
use crate::platform::cursor_body;

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/whatsapp/webhooks", get(list_project).post(create_project))
        .route(
            "/whatsapp/webhooks/{id}",
            get(get_project)
                .patch(update_project)
                .delete(delete_project),
        )
        .route(
            "/whatsapp/phone_numbers/{id}/webhooks",
            get(list_number).post(create_number),
        )
        .route(
            "/whatsapp/phone_numbers/{id}/webhooks/{item}",
            get(get_number).patch(update_number).delete(delete_number),
        )
        .route("/whatsapp/webhooks/{id}/test", post(test_project))
        .route(
            "/whatsapp/phone_numbers/{id}/webhooks/{item}/test",
            post(test_number),
        )
        .route("/webhook_deliveries", get(list_deliveries))
        .route("/webhook_deliveries/recover", post(recover))
        .route("/webhook_deliveries/{id}/retry", post(retry_one))
        .route("/notifications", get(list_notifications))
}

fn one(state: &AppState, w: &store::Webhook) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "data": webhooks::to_json(&state.app, w)? })))
}

fn many(state: &AppState, list: &[store::Webhook]) -> ApiResult<Json<Value>> {
    let data = list
        .iter()
        .map(|w| webhooks::to_json(&state.app, w))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "data": data })))
}

async fn number_of(state: &AppState, project_id: &str, pnid: &str) -> ApiResult<()> {
    numbers::find(state.app.db(), project_id, pnid)
        .await?
        .map(|_| ())
        .ok_or(ApiError(AppError::NotFound("Phone number")))
}

async fn list_project(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
) -> ApiResult<Json<Value>> {
    many(
        &state,
        &store::list(state.app.db(), &project_id, None).await?,
    )
}

async fn create_project(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: WebhookInput = rooted(&body, "whatsapp_webhook")?;
    let w = webhooks::create(&state.app, &project_id, None, input).await?;
    Ok((StatusCode::CREATED, one(&state, &w)?))
}

async fn get_project(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    one(
        &state,
        &webhooks::find(&state.app, &project_id, None, &id).await?,
    )
}

async fn update_project(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: WebhookInput = rooted(&body, "whatsapp_webhook")?;
    one(
        &state,
        &webhooks::update(&state.app, &project_id, None, &id, input).await?,
    )
}

async fn delete_project(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if store::delete(state.app.db(), &project_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound("Webhook").into())
    }
}

async fn list_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(pnid): Path<String>,
) -> ApiResult<Json<Value>> {
    number_of(&state, &project_id, &pnid).await?;
    many(
        &state,
        &store::list(state.app.db(), &project_id, Some(&pnid)).await?,
    )
}

async fn create_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(pnid): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    number_of(&state, &project_id, &pnid).await?;
    let input: WebhookInput = rooted(&body, "whatsapp_webhook")?;
    let w = webhooks::create(&state.app, &project_id, Some(&pnid), input).await?;
    Ok((StatusCode::CREATED, one(&state, &w)?))
}

async fn get_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path((pnid, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    one(
        &state,
        &webhooks::find(&state.app, &project_id, Some(&pnid), &id).await?,
    )
}

async fn update_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path((pnid, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: WebhookInput = rooted(&body, "whatsapp_webhook")?;
    one(
        &state,
        &webhooks::update(&state.app, &project_id, Some(&pnid), &id, input).await?,
    )
}

async fn delete_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path((pnid, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    webhooks::find(&state.app, &project_id, Some(&pnid), &id).await?;
    store::delete(state.app.db(), &project_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /webhook_deliveries`: filters `webhook_id`, `event`, `status`, `since`, `until`;
/// cursor paging; each delivery with its attempts.
async fn list_deliveries(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Json<Value>> {
    let bad = |e: String| ApiError::bad_request(e);
    let status = params.string("status");
    if let Some(s) = &status
        && !["pending", "delivered", "failed", "buffered", "batched"].contains(&s.as_str())
    {
        return Err(bad(format!(
            "status must be pending, delivered, failed, buffered or batched, not {s:?}"
        )));
    }
    let filter = store::DeliveryFilter {
        webhook_id: params.string("webhook_id"),
        event_type: params.string("event"),
        status,
        since: params.time("since").map_err(bad)?,
        until: params.time("until").map_err(bad)?,
    };
    let limit = params.int("limit", 20, 1, 100).map_err(bad)?;
    let cursor = params.cursor().map_err(bad)?;
    let page = store::list_deliveries(state.app.db(), &project_id, &filter, limit, &cursor).await?;
    let ids: Vec<String> = page.items.iter().map(|d| d.id.clone()).collect();
    let attempts = store::attempts(state.app.db(), &ids).await?;
    let iso = |ms: i64| Timestamp(ms).to_rfc3339();
    let data = page
        .items
        .iter()
        .map(|d| {
            let tries: Vec<Value> = attempts
                .iter()
                .filter(|a| a.delivery_id == d.id)
                .map(|a| {
                    json!({
                        "attempt": a.attempt,
                        "response_status": a.status_code,
                        "latency_ms": a.latency_ms,
                        "response_body": a.response_body,
                        "error": a.error,
                        "attempted_at": iso(a.attempted_at),
                    })
                })
                .collect();
            json!({
                "id": d.id,
                "webhook_id": d.webhook_id,
                "webhook_url": d.webhook_url,
                "event": d.event_type,
                "event_id": d.event_id,
                "phone_number_id": d.phone_number_id,
                "status": d.status,
                "attempt_count": d.attempts,
                "response_status": d.last_status_code,
                "error": d.last_error,
                "next_attempt_at": d.next_attempt_at.filter(|_| d.status == "pending").map(iso),
                "delivered_at": d.delivered_at.map(iso),
                "created_at": iso(d.created_at),
                "updated_at": iso(d.updated_at),
                "attempts": tries,
            })
        })
        .collect();
    Ok(Json(cursor_body(&state, &uri, &params, &page, data)))
}

async fn run_test(state: &AppState, w: &store::Webhook, params: &Params) -> ApiResult<Json<Value>> {
    let event = params
        .get("event_type")
        .unwrap_or("whatsapp.message.received");
    let client = webhooks::delivery_client(state.app.settings().webhook_allow_private);
    let outcome = webhooks::send_test(&state.app, &client, w, event).await?;
    Ok(Json(json!({ "data": {
        "success": outcome.ok(),
        "event": event,
        "response_status": outcome.status_code,
        "response_body": outcome.response_body,
        "latency_ms": outcome.latency_ms,
        "error": outcome.error,
    }})))
}

/// `POST /whatsapp/webhooks/{id}/test?event_type=`: a signed test event, sent now.
async fn test_project(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let w = webhooks::find(&state.app, &project_id, None, &id).await?;
    run_test(&state, &w, &params).await
}

async fn test_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path((pnid, id)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let w = webhooks::find(&state.app, &project_id, Some(&pnid), &id).await?;
    run_test(&state, &w, &params).await
}

/// `POST /webhook_deliveries/{id}/retry`: one failed delivery, attempted again now.
async fn retry_one(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let n = store::requeue_failed(
        state.app.db(),
        &project_id,
        Some(&id),
        None,
        0,
        state.app.now(),
    )
    .await?;
    if n == 0 {
        return Err(AppError::NotFound("Failed delivery").into());
    }
    state.app.wake();
    Ok(Json(json!({ "data": { "requeued": n } })))
}

/// `POST /webhook_deliveries/recover` `{"since", "webhook_id"?}`: every failed delivery
/// created since then, attempted again now.
async fn recover(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let since = match request.get("since") {
        Some(Value::String(s)) => chasqui_core::Timestamp::parse(s)
            .map(|t| t.0)
            .ok_or_else(|| ApiError::bad_request("since must be an ISO-8601 time"))?,
        Some(Value::Number(n)) => n
            .as_i64()
            .map(|s| s * 1000)
            .ok_or_else(|| ApiError::bad_request("since must be epoch seconds"))?,
        _ => {
            return Err(ApiError::bad_request(
                "since is required (ISO-8601 or epoch seconds)",
            ));
        }
    };
    let webhook_id = match request.get("webhook_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => {
            webhooks::find(&state.app, &project_id, None, id).await?;
            Some(id.clone())
        }
        Some(_) => return Err(ApiError::bad_request("webhook_id must be a string")),
    };
    let n = store::requeue_failed(
        state.app.db(),
        &project_id,
        None,
        webhook_id.as_deref(),
        since,
        state.app.now(),
    )
    .await?;
    state.app.wake();
    Ok(Json(json!({ "data": { "requeued": n } })))
}

/// `GET /notifications`: the project's notices (e.g. webhooks paused), newest first.
async fn list_notifications(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    params: Params,
) -> ApiResult<Json<Value>> {
    let limit = params
        .int("limit", 50, 1, 200)
        .map_err(ApiError::bad_request)?;
    let list = chasqui_store::notifications::list(state.app.db(), &project_id, limit).await?;
    let data: Vec<Value> = list
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "kind": n.kind,
                "subject": n.subject,
                "details": serde_json::from_str::<Value>(&n.details).unwrap_or(Value::Null),
                "created_at": Timestamp(n.created_at).to_rfc3339(),
                "emailed_at": n.emailed_at.map(|t| Timestamp(t).to_rfc3339()),
                "email_attempts": n.email_attempts,
                "email_error": n.email_error,
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}
