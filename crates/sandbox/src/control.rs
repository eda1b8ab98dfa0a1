//! The control API of the standalone sandbox (simulated customers, statuses, outbox, faults,
//! settings), under `/v1`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::{Faults, InboundRequest, Sandbox, SandboxError, Settings, StatusRequest};

/// The control API of the standalone sandbox, under `/v1`.
pub(crate) fn control_router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/v1/phone_numbers/{id}/inbound", post(inbound))
        .route("/v1/phone_numbers/{id}/statuses", post(statuses))
        .route("/v1/phone_numbers/{id}/outbox", get(outbox))
        .route("/v1/phone_numbers/{id}/reads", get(reads))
        .route(
            "/v1/phone_numbers/{id}/faults",
            get(get_faults).put(put_faults),
        )
        .route("/v1/settings", get(get_settings).put(put_settings))
        .with_state(sandbox)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SandboxError> {
    serde_json::from_slice(body).map_err(|e| SandboxError::Invalid(format!("invalid body: {e}")))
}

async fn inbound(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, SandboxError> {
    let request: InboundRequest = parse(&body)?;
    let wamid = sandbox.inbound(&id, request).await?;
    Ok(Json(json!({ "wamid": wamid })))
}

async fn statuses(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, SandboxError> {
    let request: StatusRequest = parse(&body)?;
    sandbox.statuses(&id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn outbox(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
) -> Result<Json<Value>, SandboxError> {
    Ok(Json(json!({ "data": sandbox.outbox(&id)? })))
}

async fn reads(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
) -> Result<Json<Value>, SandboxError> {
    Ok(Json(json!({ "data": sandbox.reads(&id)? })))
}

async fn get_faults(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
) -> Result<Json<Faults>, SandboxError> {
    sandbox.number(&id)?;
    Ok(Json(sandbox.faults(&id)))
}

async fn put_faults(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Faults>, SandboxError> {
    let faults: Faults = parse(&body)?;
    sandbox.set_faults(&id, faults.clone())?;
    Ok(Json(faults))
}

async fn get_settings(State(sandbox): State<Sandbox>) -> Json<Settings> {
    Json(sandbox.settings())
}

async fn put_settings(
    State(sandbox): State<Sandbox>,
    body: Bytes,
) -> Result<Json<Settings>, SandboxError> {
    let settings: Settings = parse(&body)?;
    sandbox.set_settings(settings.clone())?;
    Ok(Json(settings))
}
