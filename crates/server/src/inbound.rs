//! `GET/POST /webhooks/meta`: Meta's verification handshake and signed deliveries.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chasqui_app::ingest::{self, IngestError};
use serde_json::json;

use crate::AppState;
use crate::extract::Params;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/meta", get(handshake).post(receive))
}

async fn handshake(State(state): State<AppState>, params: Params) -> Response {
    let (Some(mode), Some(token), Some(challenge)) = (
        params.get("hub.mode"),
        params.get("hub.verify_token"),
        params.get("hub.challenge"),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            "hub.mode, hub.verify_token and hub.challenge are required",
        )
            .into_response();
    };
    match chasqui_app::numbers::verify_token_matches(&state.app, token).await {
        Ok(true) if mode == "subscribe" => (StatusCode::OK, challenge.to_owned()).into_response(),
        Ok(_) => (StatusCode::FORBIDDEN, "verify token mismatch").into_response(),
        Err(e) => crate::error::ApiError(e).into_response(),
    }
}

async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(queue) = &state.ingest else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "this node does not accept webhooks" })),
        )
            .into_response();
    };
    let signature = headers
        .get(chasqui_meta::signature::HEADER)
        .and_then(|v| v.to_str().ok());
    match ingest::accept(&state.app, queue, signature, &body).await {
        Ok(_) => (StatusCode::OK, "EVENT_RECEIVED").into_response(),
        Err(e) => {
            let status = match &e {
                IngestError::Malformed(_) => StatusCode::BAD_REQUEST,
                IngestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            if status.is_server_error() {
                tracing::error!(error = %e, "inbound webhook not stored");
            } else {
                tracing::debug!(error = %e, "inbound webhook refused");
            }
            (status, Json(json!({ "error": e.to_string() }))).into_response()
        }
    }
}
