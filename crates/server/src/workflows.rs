//! Workflows in the Platform API (`/platform/v1/workflows`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chasqui_app::workflows::{self, WorkflowInput};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::project;
use crate::error::ApiError;
use crate::extract::{Params, rooted};
use crate::platform::{offset, offset_body};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workflows", get(list).post(create))
        .route(
            "/workflows/{id}",
            get(get_one).patch(update).delete(archive),
        )
        .route("/workflows/{id}/definition", get(definition))
        .route("/workflows/{id}/duplicate", post(duplicate))
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<Value>> {
    let project_id = project(&state, &headers).await?;
    let (page, per_page) = offset(&params)?;
    let status = params.get("status");
    if let Some(s) = status
        && !workflows::STATUSES.contains(&s)
    {
        return Err(ApiError::bad_request(format!(
            "status must be one of {}",
            workflows::STATUSES.join(", ")
        )));
    }
    let (rows, total) = chasqui_store::workflows::list(
        state.app.db(),
        &project_id,
        status,
        params.get("name_contains"),
        per_page,
        (page - 1) * per_page,
    )
    .await?;
    Ok(offset_body(
        rows.iter().map(workflows::to_json).collect(),
        page,
        per_page,
        total,
    ))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let project_id = project(&state, &headers).await?;
    let input: WorkflowInput = rooted(&body, "workflow")?;
    let w = workflows::create(&state.app, &project_id, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": workflows::to_json(&w) })),
    ))
}

async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let project_id = project(&state, &headers).await?;
    let w = workflows::find(&state.app, &project_id, &id).await?;
    Ok(Json(json!({ "data": workflows::to_json(&w) })))
}

async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let project_id = project(&state, &headers).await?;
    let input: WorkflowInput = rooted(&body, "workflow")?;
    let w = workflows::update(&state.app, &project_id, &id, input).await?;
    Ok(Json(json!({ "data": workflows::to_json(&w) })))
}

/// `DELETE /workflows/{id}`: archives it (executions keep their definition version).
async fn archive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let project_id = project(&state, &headers).await?;
    let input = WorkflowInput {
        status: Some("archived".into()),
        ..WorkflowInput::default()
    };
    let w = workflows::update(&state.app, &project_id, &id, input).await?;
    Ok(Json(json!({ "data": workflows::to_json(&w) })))
}

async fn definition(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let project_id = project(&state, &headers).await?;
    let w = workflows::find(&state.app, &project_id, &id).await?;
    let definition = workflows::definition(&state.app, &w).await?;
    Ok(Json(
        json!({ "data": { "definition": definition, "lock_version": w.lock_version } }),
    ))
}

async fn duplicate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let project_id = project(&state, &headers).await?;
    let w = workflows::duplicate(&state.app, &project_id, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": workflows::to_json(&w) })),
    ))
}
