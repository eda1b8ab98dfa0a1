//! Inbox embeds: their management in the Platform API (`/platform/v1/inbox_embeds`), the
//! embed page (`/embed/{token}`, framed only by the allowed origins) and the small API the
//! embedded inbox uses (`/embed-api/*`, token in `X-Embed-Token`, or `?token=` for the
//! WebSocket). That API only ever reads and writes conversations of the embed's numbers.

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chasqui_app::AppError;
use chasqui_app::embeds::{self, EmbedInput, Scope};
use chasqui_app::users::Role;
use chasqui_core::Timestamp;
use chasqui_store::conversations::{self, ConversationFilter};
use chasqui_store::inbox_embeds::InboxEmbed;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Params, rooted};
use crate::platform::{bad, cursor_body, offset, offset_body};
use crate::render::KapsoFields;

type ApiResult<T> = Result<T, ApiError>;

/// `/inbox_embeds` under `/platform/v1`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/inbox_embeds", get(list).post(create))
        .route(
            "/inbox_embeds/{id}",
            get(get_one).patch(update).delete(revoke),
        )
}

/// The embed page and its API (at the root).
pub(crate) fn embed_routes() -> Router<AppState> {
    Router::new()
        .route("/embed/{token}", get(page))
        .route("/embed-api/session", get(session))
        .route("/embed-api/conversations", get(conversations_list))
        .route("/embed-api/conversations/{id}", get(conversation))
        .route(
            "/embed-api/conversations/{id}/messages",
            get(messages).post(send),
        )
        .route("/embed-api/templates", get(templates))
        .route("/embed-api/realtime", get(realtime))
}

fn origins(e: &InboxEmbed) -> Vec<String> {
    serde_json::from_str(&e.allowed_origins).unwrap_or_default()
}

fn to_json(state: &AppState, e: &InboxEmbed) -> Value {
    json!({
        "id": e.id,
        "name": e.name,
        "scope_type": e.scope_type,
        "scope_id": e.scope_id,
        "allowed_origins": origins(e),
        "default_mode": e.default_mode,
        "status": embeds::status(e, state.app.now()),
        "token_prefix": e.token_prefix,
        "expires_at": e.expires_at.map(|t| Timestamp(t).to_rfc3339()),
        "revoked_at": e.revoked_at.map(|t| Timestamp(t).to_rfc3339()),
        "last_used_at": e.last_used_at.map(|t| Timestamp(t).to_rfc3339()),
        "created_at": Timestamp(e.created_at).to_rfc3339(),
        "updated_at": Timestamp(e.updated_at).to_rfc3339(),
    })
}

/// Owners, admins and API keys manage embeds; members only read them.
fn may_manage(auth: &Auth) -> ApiResult<()> {
    if auth.actor.role() == Some(Role::Member) {
        return Err(ApiError(AppError::Forbidden(
            "only owners and admins manage inbox embeds".into(),
        )));
    }
    Ok(())
}

async fn list(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (page, per_page) = offset(&params)?;
    let (rows, total) = chasqui_store::inbox_embeds::list(
        state.app.db(),
        &project_id,
        per_page,
        (page - 1) * per_page,
    )
    .await?;
    Ok(offset_body(
        rows.iter().map(|e| to_json(&state, e)).collect(),
        page,
        per_page,
        total,
    ))
}

/// `POST`: creates an embed; the answer carries `token` and `embed_url` once.
async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    may_manage(&auth)?;
    let input: EmbedInput = rooted(&body, "inbox_embed")?;
    let created = embeds::create(&state.app, &auth.project_id, input).await?;
    let mut data = to_json(&state, &created.embed);
    data["token"] = json!(created.token);
    data["embed_url"] = json!(format!(
        "{}/embed/{}",
        state.app.public_url().trim_end_matches('/'),
        created.token
    ));
    Ok((StatusCode::CREATED, Json(json!({ "data": data }))))
}

async fn get_one(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let e = chasqui_store::inbox_embeds::get(state.app.db(), &project_id, &id)
        .await?
        .ok_or(ApiError(AppError::NotFound("Inbox embed")))?;
    Ok(Json(json!({ "data": to_json(&state, &e) })))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    may_manage(&auth)?;
    let input: EmbedInput = rooted(&body, "inbox_embed")?;
    let e = embeds::update(&state.app, &auth.project_id, &id, input).await?;
    Ok(Json(json!({ "data": to_json(&state, &e) })))
}

/// `DELETE`: revokes the embed (kept, listed as `revoked`).
async fn revoke(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    may_manage(&auth)?;
    let e = embeds::revoke(&state.app, &auth.project_id, &id).await?;
    Ok(Json(json!({ "data": to_json(&state, &e) })))
}

/// `GET /embed/{token}`: the inbox app, framed only by the embed's allowed origins; a
/// revoked, expired or unknown token gets a 401 page.
async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match embeds::authenticate(&state.app, &token).await {
        Ok(scope) => {
            let allowed = origins(&scope.embed);
            let ancestors = if allowed.is_empty() {
                "*".to_owned()
            } else {
                allowed.join(" ")
            };
            crate::dashboard::embed_page(&ancestors)
        }
        Err(e) => {
            let message = match &e {
                AppError::Unauthorized(m) => m.clone(),
                _ => "this inbox is unavailable".into(),
            };
            let html = format!(
                "<!doctype html><meta charset=\"utf-8\"><title>Chasqui</title><p>{}</p>",
                message.replace('<', "&lt;")
            );
            (StatusCode::UNAUTHORIZED, Html(html)).into_response()
        }
    }
}

/// The embed of the request's `X-Embed-Token` header.
async fn scope(state: &AppState, headers: &HeaderMap) -> ApiResult<Scope> {
    let token = headers
        .get("x-embed-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError(AppError::Unauthorized(
                "missing X-Embed-Token header".into(),
            ))
        })?;
    Ok(embeds::authenticate(&state.app, token.trim()).await?)
}

/// A conversation of the embed's numbers (404 for any other).
async fn visible(
    state: &AppState,
    scope: &Scope,
    id: &str,
) -> ApiResult<conversations::Conversation> {
    conversations::get(state.app.db(), &scope.embed.project_id, id)
        .await?
        .filter(|c| scope.allows(&c.phone_number_id))
        .ok_or(ApiError(AppError::NotFound("Conversation")))
}

async fn session(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let scope = scope(&state, &headers).await?;
    let mut numbers = Vec::new();
    for pnid in &scope.phone_number_ids {
        if let Some(n) =
            chasqui_store::numbers::find(state.app.db(), &scope.embed.project_id, pnid).await?
        {
            numbers.push(json!({
                "id": n.phone_number_id, "phone_number_id": n.phone_number_id,
                "business_account_id": n.business_account_id, "name": n.name,
                "display_phone_number": n.display_phone_number,
            }));
        }
    }
    Ok(Json(json!({ "data": {
        "name": scope.embed.name,
        "default_mode": scope.embed.default_mode,
        "scope_type": scope.embed.scope_type,
        "phone_numbers": numbers,
    }})))
}

async fn conversations_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Json<Value>> {
    let scope = scope(&state, &headers).await?;
    let mut filter: ConversationFilter = crate::platform::conversation_filter(&params)?;
    if let Some(p) = &filter.phone_number_id
        && !scope.allows(p)
    {
        return Err(ApiError(AppError::NotFound("Phone number")));
    }
    filter.phone_number_ids = Some(scope.phone_number_ids.clone());
    let limit = params.int("limit", 20, 1, 100).map_err(bad)?;
    let cursor = params.cursor().map_err(bad)?;
    let fields = KapsoFields::conversations(params.get("fields")).map_err(bad)?;
    let page = conversations::list(
        state.app.db(),
        &scope.embed.project_id,
        &filter,
        limit,
        &cursor,
    )
    .await?;
    let data = page
        .items
        .iter()
        .map(|c| crate::render::conversation(c, &fields, state.app.now()))
        .collect();
    Ok(Json(cursor_body(&state, &uri, &params, &page, data)))
}

async fn conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let scope = scope(&state, &headers).await?;
    let c = visible(&state, &scope, &id).await?;
    let fields = KapsoFields::conversations(None).map_err(bad)?;
    Ok(Json(
        json!({ "data": crate::render::conversation(&c, &fields, state.app.now()) }),
    ))
}

async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Json<Value>> {
    let scope = scope(&state, &headers).await?;
    visible(&state, &scope, &id).await?;
    crate::platform::messages_of(&state, &scope.embed.project_id, id, &uri, &params).await
}

/// `POST /embed-api/conversations/{id}/messages`: Meta's send body, always to the
/// conversation's customer from its number; answers Meta's response (or its error).
async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, crate::error::GraphError> {
    let scope = scope(&state, &headers).await.map_err(|e| e.0)?;
    let c = visible(&state, &scope, &id).await.map_err(|e| e.0)?;
    let number =
        chasqui_store::numbers::find(state.app.db(), &scope.embed.project_id, &c.phone_number_id)
            .await?
            .ok_or(AppError::NotFound("Phone number"))?;
    let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(&body) else {
        return Err(crate::error::GraphError::param(
            "the body must be a JSON object",
        ));
    };
    let Some(to) = c.wa_id.clone() else {
        return Err(crate::error::GraphError::param(
            "this conversation's customer has no phone number to write to",
        ));
    };
    request.remove("recipient");
    request.insert("to".into(), Value::String(to));
    request.insert("messaging_product".into(), json!("whatsapp"));
    let bytes = serde_json::to_vec(&request).unwrap_or_default();
    Ok(crate::proxy::send_with(&state, &number, &bytes, None)
        .await
        .unwrap_or_else(|r| r))
}

async fn templates(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let scope = scope(&state, &headers).await?;
    let mut wabas = Vec::new();
    for pnid in &scope.phone_number_ids {
        if let Some(n) =
            chasqui_store::numbers::find(state.app.db(), &scope.embed.project_id, pnid).await?
            && !wabas.contains(&n.business_account_id)
        {
            wabas.push(n.business_account_id);
        }
    }
    let mut data = Vec::new();
    for waba in &wabas {
        let found = chasqui_store::templates::list(
            state.app.db(),
            &scope.embed.project_id,
            Some(waba),
            Some("APPROVED"),
        )
        .await?;
        data.extend(found.iter().map(crate::templates::template_json));
    }
    Ok(Json(json!({ "data": data })))
}

/// The embed's realtime feed: the project's changes on the embed's numbers only.
async fn realtime(
    State(state): State<AppState>,
    params: Params,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let token = params
        .get("token")
        .ok_or_else(|| ApiError(AppError::Unauthorized("missing token".into())))?;
    let scope = embeds::authenticate(&state.app, token).await?;
    let rx = state.app.notifier().subscribe();
    Ok(ws.on_upgrade(move |socket| {
        crate::realtime::feed(socket, rx, move |c| {
            c.project_id == "*"
                || (c.project_id == scope.embed.project_id
                    && c.phone_number_id
                        .as_deref()
                        .is_some_and(|p| scope.allows(p)))
        })
    }))
}
