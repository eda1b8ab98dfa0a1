//! Conversation assignments in the Platform API
//! (`/platform/v1/whatsapp/conversations/{conversation_id}/assignments`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chasqui_app::AppError;
use chasqui_app::assignments::{self, AssignmentChange};
use chasqui_core::Timestamp;
use chasqui_store::assignments::Assignment;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Params, rooted};
use crate::platform::{bad, offset, offset_body};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/whatsapp/conversations/{conversation_id}/assignments",
            get(list).post(create),
        )
        .route(
            "/whatsapp/conversations/{conversation_id}/assignments/{id}",
            get(get_one).patch(update),
        )
}

fn to_json(a: &Assignment) -> Value {
    json!({
        "id": a.id,
        "conversation_id": a.conversation_id,
        "user_id": a.user_id,
        "created_by_user_id": a.created_by_user_id,
        "notes": a.notes,
        "active": a.active,
        "created_at": Timestamp(a.created_at).to_rfc3339(),
        "updated_at": Timestamp(a.updated_at).to_rfc3339(),
    })
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError(AppError::invalid(message))
}

/// The fields of a body, each checked for its type; unknown fields are refused.
fn change(body: &Map<String, Value>) -> ApiResult<AssignmentChange> {
    let mut c = AssignmentChange::default();
    for (k, v) in body {
        match (k.as_str(), v) {
            ("user_id", Value::String(s)) if !s.trim().is_empty() => {
                c.user_id = Some(s.trim().to_owned())
            }
            ("user_id", _) => return Err(invalid("user_id must be a non-empty string")),
            ("notes", Value::String(s)) => c.notes = Some(Some(s.clone())),
            ("notes", Value::Null) => c.notes = Some(None),
            ("notes", _) => return Err(invalid("notes must be a string or null")),
            ("active", Value::Bool(b)) => c.active = Some(*b),
            ("active", _) => return Err(invalid("active must be true or false")),
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "unknown field {other:?} in conversation_assignment"
                )));
            }
        }
    }
    Ok(c)
}

async fn list(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(conversation_id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (page, per_page) = offset(&params)?;
    let active = match params.get("active") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => return Err(bad(format!("active must be true or false, not {other:?}"))),
    };
    chasqui_store::conversations::get(state.app.db(), &project_id, &conversation_id)
        .await?
        .ok_or(ApiError(AppError::NotFound("Conversation")))?;
    let (rows, total) = chasqui_store::assignments::list(
        state.app.db(),
        &project_id,
        &conversation_id,
        active,
        per_page,
        (page - 1) * per_page,
    )
    .await?;
    Ok(offset_body(
        rows.iter().map(to_json).collect(),
        page,
        per_page,
        total,
    ))
}

/// `POST`: assigns the conversation to `user_id` (a project member); the previous active
/// assignment becomes inactive.
async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Path(conversation_id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body: Map<String, Value> = rooted(&body, "conversation_assignment")?;
    let c = change(&body)?;
    let user_id = c.user_id.ok_or_else(|| invalid("user_id is required"))?;
    if c.active == Some(false) {
        return Err(invalid(
            "a new assignment is active; unassign with PATCH active: false",
        ));
    }
    let a = assignments::create(
        &state.app,
        &auth.project_id,
        &conversation_id,
        &user_id,
        c.notes.flatten(),
        auth.actor.user_id(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "data": to_json(&a) }))))
}

async fn get_one(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path((conversation_id, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let a = chasqui_store::assignments::get(state.app.db(), &project_id, &conversation_id, &id)
        .await?
        .ok_or(ApiError(AppError::NotFound("Assignment")))?;
    Ok(Json(json!({ "data": to_json(&a) })))
}

/// `PATCH`: reassign (`user_id`), edit `notes`, unassign (`active: false`) or reactivate.
async fn update(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path((conversation_id, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Map<String, Value> = rooted(&body, "conversation_assignment")?;
    let a = assignments::update(
        &state.app,
        &project_id,
        &conversation_id,
        &id,
        change(&body)?,
    )
    .await?;
    Ok(Json(json!({ "data": to_json(&a) })))
}
