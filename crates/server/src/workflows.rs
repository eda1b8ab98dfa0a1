//! Workflows in the Platform API (`/platform/v1/workflows`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chasqui_app::workflows::{self, WorkflowInput};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Auth;
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
        .route("/workflows/{id}/variables", get(variables))
        .route("/workflows/{id}/duplicate", post(duplicate))
        .route(
            "/workflows/{id}/triggers",
            get(list_triggers).post(create_trigger),
        )
        .route(
            "/triggers/{id}",
            axum::routing::patch(update_trigger).delete(delete_trigger),
        )
        .route("/env_vars", get(list_env))
        .route(
            "/env_vars/{name}",
            axum::routing::put(put_env).delete(delete_env),
        )
}

async fn list(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    params: Params,
) -> ApiResult<Json<Value>> {
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
    Auth { project_id, .. }: Auth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: WorkflowInput = rooted(&body, "workflow")?;
    let w = workflows::create(&state.app, &project_id, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": workflows::to_json(&w) })),
    ))
}

async fn get_one(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let w = workflows::find(&state.app, &project_id, &id).await?;
    Ok(Json(json!({ "data": workflows::to_json(&w) })))
}

async fn update(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: WorkflowInput = rooted(&body, "workflow")?;
    let w = workflows::update(&state.app, &project_id, &id, input).await?;
    Ok(Json(json!({ "data": workflows::to_json(&w) })))
}

/// `DELETE /workflows/{id}`: archives it (executions keep their definition version).
async fn archive(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let input = WorkflowInput {
        status: Some("archived".into()),
        ..WorkflowInput::default()
    };
    let w = workflows::update(&state.app, &project_id, &id, input).await?;
    Ok(Json(json!({ "data": workflows::to_json(&w) })))
}

/// `GET /workflows/{id}/variables`: fixed and discovered variables, for editors.
async fn variables(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let data = chasqui_app::executions::variables(&state.app, &project_id, &id).await?;
    Ok(Json(json!({ "data": data })))
}

async fn definition(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let w = workflows::find(&state.app, &project_id, &id).await?;
    let definition = workflows::definition(&state.app, &w).await?;
    Ok(Json(
        json!({ "data": { "definition": definition, "lock_version": w.lock_version } }),
    ))
}

async fn duplicate(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let w = workflows::duplicate(&state.app, &project_id, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": workflows::to_json(&w) })),
    ))
}

async fn list_triggers(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    workflows::find(&state.app, &project_id, &id).await?;
    let list = chasqui_store::triggers::for_workflow(state.app.db(), &project_id, &id).await?;
    let data: Vec<Value> = list.iter().map(workflows::trigger_json).collect();
    Ok(Json(json!({ "data": data })))
}

async fn create_trigger(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: workflows::TriggerInput = rooted(&body, "trigger")?;
    let t = workflows::create_trigger(&state.app, &project_id, &id, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": workflows::trigger_json(&t) })),
    ))
}

async fn update_trigger(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: workflows::TriggerInput = rooted(&body, "trigger")?;
    let t = workflows::update_trigger(&state.app, &project_id, &id, input).await?;
    Ok(Json(json!({ "data": workflows::trigger_json(&t) })))
}

async fn delete_trigger(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if chasqui_store::triggers::delete(state.app.db(), &project_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(chasqui_app::AppError::NotFound("Trigger").into())
    }
}

/// `GET /env_vars`: names and dates; values are write-only.
async fn list_env(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
) -> ApiResult<Json<Value>> {
    let list = chasqui_store::env_vars::list(state.app.db(), &project_id).await?;
    let iso = |ms: i64| chasqui_core::Timestamp(ms).to_rfc3339();
    let data: Vec<Value> = list
        .iter()
        .map(|v| json!({ "name": v.name, "created_at": iso(v.created_at), "updated_at": iso(v.updated_at) }))
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `PUT /env_vars/{name}` `{"value": "..."}`: sets it (201 when new).
async fn put_env(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let Some(value) = request.get("value").and_then(Value::as_str) else {
        return Err(ApiError::bad_request("value (a string) is required"));
    };
    let created = chasqui_app::env_vars::put(&state.app, &project_id, &name, value).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "data": { "name": name } }))))
}

async fn delete_env(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if chasqui_store::env_vars::delete(state.app.db(), &project_id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(chasqui_app::AppError::NotFound("Environment variable").into())
    }
}
