//! The Meta proxy (`/meta/whatsapp/vN.0/...`): sends, Kapso's read extensions (stored
//! messages, conversations and contacts in Meta's shapes with the `kapso` block), and the
//! Graph objects a business manages (media, templates, profile, numbers; see [`objects`]).

mod objects;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chasqui_app::messaging::{self, SendError};
use chasqui_store::{contacts, conversations, messages};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth;
use crate::error::GraphError;
use crate::extract::Params;
use crate::platform::{conversation_filter, cursor_body, message_filter};
use crate::render::{self, KapsoFields};

type GraphResult<T> = Result<T, GraphError>;

pub(crate) fn routes() -> Router<AppState> {
    // One parameter name per position: the router requires it across routes.
    Router::new()
        .route(
            "/meta/whatsapp/{version}/{id}/messages",
            get(list_messages).post(send_message),
        )
        .route(
            "/meta/whatsapp/{version}/{id}/messages/{item}",
            get(get_message),
        )
        .route(
            "/meta/whatsapp/{version}/{id}/conversations",
            get(list_conversations),
        )
        .route("/meta/whatsapp/{version}/{id}/contacts", get(list_contacts))
        .route(
            "/meta/whatsapp/{version}/{id}/conversations/{item}",
            get(get_number_conversation),
        )
        .route(
            "/meta/whatsapp/{version}/conversations/{item}",
            get(get_conversation).patch(update_conversation),
        )
        .merge(objects::routes())
}

/// The proxy's routes, with the CSRF check of session-authenticated requests.
pub(crate) fn guarded(state: AppState) -> Router<AppState> {
    routes().route_layer(axum::middleware::from_fn_with_state(
        state,
        crate::auth::session_guard,
    ))
}

/// Accepts any `v<N>.0` version segment.
pub(crate) fn check_version(version: &str) -> GraphResult<()> {
    let ok = version
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(GraphError::param(format!(
            "Unknown API version {version:?}; use v<N>.0"
        )))
    }
}

fn param_error(e: crate::error::ApiError) -> GraphError {
    e.0.into()
}

async fn list_messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, pnid)): Path<(String, String)>,
    uri: OriginalUri,
    params: Params,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let number = auth::number(&state, &headers, &pnid).await?;
    let mut filter = message_filter(&params).map_err(param_error)?;
    filter.phone_number_id = Some(number.phone_number_id.clone());
    let limit = params.int("limit", 20, 1, 100).map_err(GraphError::param)?;
    let cursor = params.cursor().map_err(GraphError::param)?;
    let fields = KapsoFields::messages(params.get("fields")).map_err(GraphError::param)?;
    let page = messages::list(state.app.db(), &number.project_id, &filter, limit, &cursor).await?;
    let statuses = render::statuses_for(&state.app, &page.items).await?;
    let data = page
        .items
        .iter()
        .map(|m| render::message(&state.app, m, &statuses, &fields))
        .collect();
    Ok(Json(cursor_body(&state, &uri, &params, &page, data)))
}

async fn get_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, pnid, wamid)): Path<(String, String, String)>,
    params: Params,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let number = auth::number(&state, &headers, &pnid).await?;
    let fields = KapsoFields::messages(params.get("fields")).map_err(GraphError::param)?;
    let m = messages::get(state.app.db(), &number.project_id, &pnid, &wamid)
        .await?
        .ok_or_else(|| GraphError::not_found(&wamid))?;
    let statuses = render::statuses_for(&state.app, std::slice::from_ref(&m)).await?;
    Ok(Json(render::message(&state.app, &m, &statuses, &fields)))
}

async fn list_conversations(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, pnid)): Path<(String, String)>,
    uri: OriginalUri,
    params: Params,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let number = auth::number(&state, &headers, &pnid).await?;
    let mut filter = conversation_filter(&params).map_err(param_error)?;
    filter.phone_number_id = Some(number.phone_number_id.clone());
    let limit = params.int("limit", 20, 1, 100).map_err(GraphError::param)?;
    let cursor = params.cursor().map_err(GraphError::param)?;
    let fields = KapsoFields::conversations(params.get("fields")).map_err(GraphError::param)?;
    let page =
        conversations::list(state.app.db(), &number.project_id, &filter, limit, &cursor).await?;
    let data = page
        .items
        .iter()
        .map(|c| render::conversation(c, &fields, state.app.now()))
        .collect();
    Ok(Json(cursor_body(&state, &uri, &params, &page, data)))
}

/// `GET /conversations/{conversation_id}` (Kapso's extension; needs `X-API-Key`).
async fn get_conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    params: Params,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let project_id = auth::project(&state, &headers).await.map_err(param_error)?;
    let fields = KapsoFields::conversations(params.get("fields")).map_err(GraphError::param)?;
    let c = conversations::get(state.app.db(), &project_id, &id)
        .await?
        .ok_or_else(|| GraphError::not_found(&id))?;
    Ok(Json(render::conversation(&c, &fields, state.app.now())))
}

/// `GET /{phone_number_id}/conversations/{conversation_id}`.
async fn get_number_conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, pnid, id)): Path<(String, String, String)>,
    params: Params,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let number = auth::number(&state, &headers, &pnid).await?;
    let fields = KapsoFields::conversations(params.get("fields")).map_err(GraphError::param)?;
    let c = conversations::get(state.app.db(), &number.project_id, &id)
        .await?
        .filter(|c| c.phone_number_id == number.phone_number_id)
        .ok_or_else(|| GraphError::not_found(&id))?;
    Ok(Json(render::conversation(&c, &fields, state.app.now())))
}

/// `PATCH /conversations/{conversation_id}` with `{"status": "ended"|"active"}`.
async fn update_conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let project_id = auth::project(&state, &headers).await.map_err(param_error)?;
    let status = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => match m.get("status") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(GraphError::param("status must be a string.")),
        },
        _ => return Err(GraphError::param("The request body must be a JSON object.")),
    };
    let c = crate::platform::set_conversation_status(&state, &project_id, &id, status.as_deref())
        .await
        .map_err(param_error)?;
    let fields = KapsoFields::conversations(None).map_err(GraphError::param)?;
    Ok(Json(render::conversation(&c, &fields, state.app.now())))
}

async fn list_contacts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, pnid)): Path<(String, String)>,
    uri: OriginalUri,
    params: Params,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let number = auth::number(&state, &headers, &pnid).await?;
    let limit = params.int("limit", 20, 1, 100).map_err(GraphError::param)?;
    let cursor = params.cursor().map_err(GraphError::param)?;
    let page = contacts::list_for_number(
        state.app.db(),
        &number.project_id,
        &pnid,
        params.get("wa_id"),
        limit,
        &cursor,
    )
    .await?;
    let data = page
        .items
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "wa_id": c.wa_id,
                "business_scoped_user_id": c.user_id,
                "profile_name": c.profile_name,
                "phone_number_id": pnid,
                "created_at": chasqui_core::Timestamp(c.created_at).to_rfc3339(),
                "updated_at": chasqui_core::Timestamp(c.updated_at).to_rfc3339(),
            })
        })
        .collect();
    Ok(Json(cursor_body(&state, &uri, &params, &page, data)))
}

/// `POST /{phone_number_id}/messages`: Meta's send, recorded and tracked; Meta's answer is
/// returned unchanged.
async fn send_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, pnid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(e) = check_version(&version) {
        return e.into_response();
    }
    let number = match auth::number(&state, &headers, &pnid).await {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match send_with(&state, &number, &body, key).await {
        Ok(r) | Err(r) => r,
    }
}

/// Sends Meta's body from a number and answers as the proxy does: Meta's response, or a
/// Graph-shaped error (409 with `Retry-After` for a send in flight, 131047 outside the
/// window).
pub(crate) async fn send_with(
    state: &AppState,
    number: &chasqui_store::numbers::PhoneNumber,
    body: &[u8],
    key: Option<&str>,
) -> Result<Response, Response> {
    match messaging::send(&state.app, number, body, key).await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            Ok((
                status,
                [(header::CONTENT_TYPE, "application/json")],
                answer.body,
            )
                .into_response())
        }
        Err(SendError::Invalid(details)) => Err(GraphError::param(details).into_response()),
        Err(e @ (SendError::InFlight | SendError::KeyInProgress)) => {
            let mut response =
                GraphError::new(StatusCode::CONFLICT, 131056, e.to_string()).into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            Err(response)
        }
        Err(e @ SendError::WindowClosed) => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            131047,
            "(#131047) Re-engagement message",
        )
        .with_details(e.to_string())
        .into_response()),
        Err(e @ SendError::KeyReused) => {
            Err(
                GraphError::new(StatusCode::UNPROCESSABLE_ENTITY, 100, e.to_string())
                    .into_response(),
            )
        }
        Err(e @ SendError::Upstream(_)) => {
            tracing::warn!(error = %e, "send failed upstream");
            Err(GraphError::new(StatusCode::BAD_GATEWAY, 1, e.to_string()).into_response())
        }
        Err(SendError::Store(e)) => Err(GraphError::from(e).into_response()),
    }
}
