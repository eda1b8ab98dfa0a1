//! `GET /media/{id}?expires=..&sig=..`: signed, short-lived downloads of stored media.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Params;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/media/{id}", get(download))
}

async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    let expires = params.get("expires").and_then(|v| v.parse::<i64>().ok());
    let (Some(expires), Some(sig)) = (expires, params.get("sig")) else {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "a signed URL is required" })),
        )
            .into_response();
    };
    if !chasqui_app::media::verify_signed(&state.app, &id, expires, sig) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "invalid or expired media URL" })),
        )
            .into_response();
    }
    let file = match chasqui_app::media::stored_file(&state.app, &id).await {
        Ok(f) => f,
        Err(e) => return ApiError(e).into_response(),
    };
    match tokio::fs::read(&file.path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, file.mime_type),
                (header::CACHE_CONTROL, "private, max-age=60".into()),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(path = %file.path.display(), error = %e, "stored media file unreadable");
            (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": "Media not found" })),
            )
                .into_response()
        }
    }
}
