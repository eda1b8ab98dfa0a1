//! The embedded sandbox's control API under `/sandbox/v1`, authenticated with the owning
//! project's `X-API-Key` and limited to that project's `sandbox` numbers.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chasqui_app::{App, AppError};
use chasqui_core::NumberKind;
use chasqui_sandbox::{Faults, InboundRequest, NumberConfig, Sandbox, Settings, StatusRequest};
use chasqui_store::numbers::{self, PhoneNumber};
use serde_json::json;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/phone_numbers/{id}/inbound", post(inbound))
        .route("/phone_numbers/{id}/statuses", post(statuses))
        .route("/phone_numbers/{id}/outbox", get(outbox))
        .route("/phone_numbers/{id}/reads", get(reads))
        .route(
            "/phone_numbers/{id}/faults",
            get(get_faults).put(put_faults),
        )
        .route("/settings", get(get_settings).put(put_settings))
}

/// Makes a `sandbox` number known to the embedded sandbox (no-op for `cloud` numbers).
pub fn register_sandbox_number(
    app: &App,
    sandbox: &Sandbox,
    number: &PhoneNumber,
) -> Result<(), AppError> {
    if number.kind != NumberKind::Sandbox {
        return Ok(());
    }
    let creds = chasqui_app::numbers::credentials(app, number)?;
    sandbox.upsert_number(NumberConfig {
        phone_number_id: number.phone_number_id.clone(),
        business_account_id: number.business_account_id.clone(),
        display_phone_number: number.display_phone_number.clone().unwrap_or_default(),
        app_secret: creds.app_secret.expose().clone(),
        access_token: Some(creds.access_token.expose().clone()),
        webhook_url: format!("{}/webhooks/meta", app.local_url()),
    });
    Ok(())
}

pub(crate) fn unregister_sandbox_number(sandbox: &Sandbox, phone_number_id: &str) {
    sandbox.remove_number(phone_number_id);
}

/// Authorizes the caller on one of its sandbox numbers and (re)registers it.
async fn sandbox_number(
    state: &AppState,
    project_id: &str,
    id: &str,
) -> Result<PhoneNumber, ApiError> {
    let number = numbers::find(state.app.db(), project_id, id)
        .await?
        .ok_or(ApiError(AppError::NotFound("Phone number")))?;
    if number.kind != NumberKind::Sandbox {
        return Err(AppError::invalid("the sandbox only serves numbers of kind sandbox").into());
    }
    register_sandbox_number(&state.app, &state.sandbox, &number)?;
    Ok(number)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

async fn inbound(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let request: InboundRequest = match sandbox_number(&state, &auth.project_id, &id)
        .await
        .and_then(|_| parse(&body))
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match state.sandbox.inbound(&id, request).await {
        Ok(wamid) => Json(json!({ "wamid": wamid })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn statuses(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let request: StatusRequest = match sandbox_number(&state, &auth.project_id, &id)
        .await
        .and_then(|_| parse(&body))
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match state.sandbox.statuses(&id, request).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn outbox(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    if let Err(e) = sandbox_number(&state, &auth.project_id, &id).await {
        return e.into_response();
    }
    match state.sandbox.outbox(&id) {
        Ok(messages) => Json(json!({ "data": messages })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn reads(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    if let Err(e) = sandbox_number(&state, &auth.project_id, &id).await {
        return e.into_response();
    }
    match state.sandbox.reads(&id) {
        Ok(receipts) => Json(json!({ "data": receipts })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn get_faults(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    if let Err(e) = sandbox_number(&state, &auth.project_id, &id).await {
        return e.into_response();
    }
    Json(json!({ "data": state.sandbox.faults(&id) })).into_response()
}

async fn put_faults(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let faults: Faults = match sandbox_number(&state, &auth.project_id, &id)
        .await
        .and_then(|_| parse(&body))
    {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match state.sandbox.set_faults(&id, faults.clone()) {
        Ok(()) => Json(json!({ "data": faults })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The embedded sandbox's behaviour (status delays, template review) is instance-wide; any
/// project may read it and change it, as it only affects sandbox numbers.
async fn get_settings(State(state): State<AppState>, _auth: Auth) -> Response {
    Json(json!({ "data": state.sandbox.settings() })).into_response()
}

async fn put_settings(State(state): State<AppState>, _auth: Auth, body: Bytes) -> Response {
    let settings: Settings = match parse(&body) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    match state.sandbox.set_settings(settings.clone()) {
        Ok(()) => Json(json!({ "data": settings })).into_response(),
        Err(e) => e.into_response(),
    }
}
