//! Workflow executions in the Platform API: start (`POST /workflows/{id}/executions`),
//! lists per workflow and per conversation, detail with the step log, resume, status
//! changes and jumps.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chasqui_app::executions::{self, ResumeInput, StartInput};
use chasqui_store::executions::Filter;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Params, rooted};
use crate::platform::{bad, cursor_body, offset, offset_body};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/workflows/{id}/executions",
            get(list_for_workflow).post(start),
        )
        .route(
            "/whatsapp/conversations/{id}/flow_executions",
            get(list_for_conversation),
        )
        .route("/workflow_executions/{id}", get(get_one).patch(update))
        .route("/workflow_executions/{id}/events", get(events))
        .route("/workflow_executions/{id}/resume", post(resume))
        .route("/workflow_executions/{id}/jump", post(jump))
}

/// `POST /workflows/{id}/executions` → 202 with `id` and `tracking_id`.
async fn start(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: StartInput = if body.is_empty() {
        StartInput::default()
    } else {
        rooted(&body, "workflow_execution")?
    };
    let mut request = Map::new();
    for (key, name) in [("user_agent", "user-agent"), ("ip", "x-forwarded-for")] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            request.insert(key.into(), json!(v));
        }
    }
    request.insert(
        "timestamp".into(),
        json!(chasqui_core::clock::Timestamp(state.app.now()).to_rfc3339()),
    );
    let mut metadata = Map::new();
    metadata.insert("request".into(), Value::Object(request));
    let e = executions::start(&state.app, &project_id, &id, input, metadata).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "data": {
            "message": "Workflow execution started",
            "id": e.id,
            "workflow_id": e.workflow_id,
            "tracking_id": e.tracking_id,
            "status": e.status,
        } })),
    ))
}

fn filter(params: &Params) -> ApiResult<Filter<'_>> {
    let status = params.get("status");
    if let Some(s) = status
        && !executions::STATUSES.contains(&s)
    {
        return Err(ApiError::bad_request(format!(
            "status must be one of {}",
            executions::STATUSES.join(", ")
        )));
    }
    Ok(Filter {
        status,
        waiting_reason: params.get("waiting_reason"),
        conversation_id: params.get("whatsapp_conversation_id"),
        created_after: params.time("created_after").map_err(bad)?,
        created_before: params.time("created_before").map_err(bad)?,
        workflow_id: None,
    })
}

/// A list in Kapso's cursor style (`limit`, `after`, `before`) when asked, else with
/// `page`/`per_page` and totals.
async fn list_page(
    state: &AppState,
    uri: &OriginalUri,
    project_id: &str,
    f: Filter<'_>,
    params: &Params,
) -> ApiResult<Json<Value>> {
    if ["limit", "after", "before"]
        .iter()
        .any(|k| params.get(k).is_some())
    {
        let limit = params.int("limit", 20, 1, 100).map_err(bad)?;
        let cursor = params.cursor().map_err(bad)?;
        let page =
            chasqui_store::executions::list_page(state.app.db(), project_id, &f, limit, &cursor)
                .await?;
        let data = page
            .items
            .iter()
            .map(|e| executions::to_json(e, None, None))
            .collect();
        return Ok(Json(cursor_body(state, uri, params, &page, data)));
    }
    let (page, per_page) = offset(params)?;
    let (rows, total) = chasqui_store::executions::list(
        state.app.db(),
        project_id,
        &f,
        per_page,
        (page - 1) * per_page,
    )
    .await?;
    Ok(offset_body(
        rows.iter()
            .map(|e| executions::to_json(e, None, None))
            .collect(),
        page,
        per_page,
        total,
    ))
}

/// `GET /workflows/{id}/executions`: filters `status`, `waiting_reason`,
/// `whatsapp_conversation_id`, `created_after`, `created_before`; page/per_page.
async fn list_for_workflow(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Json<Value>> {
    let w = chasqui_app::workflows::find(&state.app, &project_id, &id).await?;
    let mut f = filter(&params)?;
    f.workflow_id = Some(&w.id);
    list_page(&state, &uri, &project_id, f, &params).await
}

/// `GET /whatsapp/conversations/{id}/flow_executions`.
async fn list_for_conversation(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Json<Value>> {
    chasqui_store::conversations::get(state.app.db(), &project_id, &id)
        .await?
        .ok_or(ApiError(chasqui_app::AppError::NotFound("conversation")))?;
    let mut f = filter(&params)?;
    f.conversation_id = Some(&id);
    list_page(&state, &uri, &project_id, f, &params).await
}

/// `GET /workflow_executions/{id}`: the execution, its context and its log (first 500
/// entries; the rest through `/events`).
async fn get_one(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let e = executions::find(&state.app, &project_id, &id).await?;
    let w = chasqui_store::workflows::get(state.app.db(), &project_id, &e.workflow_id).await?;
    let events = chasqui_store::executions::events(state.app.db(), &e.id, 0, 500).await?;
    Ok(Json(
        json!({ "data": executions::to_json(&e, w.as_ref(), Some(&events)) }),
    ))
}

/// `GET /workflow_executions/{id}/events?after=<seq>&per_page=`: the log in order.
async fn events(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let e = executions::find(&state.app, &project_id, &id).await?;
    let after = params.int("after", 0, 0, i64::MAX).map_err(bad)?;
    let limit = params.int("per_page", 100, 1, 1000).map_err(bad)?;
    let rows = chasqui_store::executions::events(state.app.db(), &e.id, after, limit).await?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.seq));
    Ok(Json(json!({
        "data": rows.iter().map(executions::event_json).collect::<Vec<_>>(),
        "meta": { "after": after, "next_after": next.flatten() },
    })))
}

/// `POST /workflow_executions/{id}/resume` `{message: {kind, data}, variables}`.
async fn resume(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: ResumeInput = if body.is_empty() {
        ResumeInput::default()
    } else {
        rooted(&body, "workflow_execution")?
    };
    let e = executions::resume(&state.app, &project_id, &id, input).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "data": { "id": e.id, "status": e.status } })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusInput {
    status: String,
}

/// `PATCH /workflow_executions/{id}` `{workflow_execution: {status}}`.
async fn update(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: StatusInput = rooted(&body, "workflow_execution")?;
    let e = executions::set_status(&state.app, &project_id, &id, &input.status, "api").await?;
    Ok(Json(json!({ "data": executions::to_json(&e, None, None) })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JumpInput {
    node_id: String,
}

/// `POST /workflow_executions/{id}/jump` `{node_id}`.
async fn jump(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: JumpInput = rooted(&body, "workflow_execution")?;
    let e = executions::jump(&state.app, &project_id, &id, &input.node_id, "api").await?;
    Ok(Json(json!({ "data": executions::to_json(&e, None, None) })))
}
