//! The Platform API (`/platform/v1`): customers, phone numbers, conversations and their
//! messages, in Kapso's shapes.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chasqui_app::AppError;
use chasqui_app::numbers::NumberInput;
use chasqui_core::ids::new_id;
use chasqui_store::conversations::{self, AssignedTo, ConversationFilter};
use chasqui_store::messages::{self, MessageFilter};
use chasqui_store::projects::{self, Customer};
use chasqui_store::{Page, numbers};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Params, rooted};
use crate::render::{self, KapsoFields};
use crate::sandbox::{register_sandbox_number, unregister_sandbox_number};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list_customers).post(create_customer))
        .route(
            "/customers/{id}",
            get(get_customer)
                .patch(update_customer)
                .delete(delete_customer),
        )
        .route(
            "/customers/{id}/whatsapp/phone_numbers",
            axum::routing::post(create_customer_number),
        )
        .route(
            "/whatsapp/phone_numbers",
            get(list_numbers).post(create_number),
        )
        .route(
            "/whatsapp/phone_numbers/{id}",
            get(get_number).patch(update_number).delete(delete_number),
        )
        .route("/whatsapp/conversations", get(list_conversations))
        .route(
            "/whatsapp/conversations/{id}",
            get(get_conversation).patch(update_conversation),
        )
        .route(
            "/whatsapp/conversations/{id}/read",
            axum::routing::post(mark_read),
        )
        .route(
            "/whatsapp/conversations/{id}/messages",
            get(conversation_messages),
        )
}

pub(crate) fn bad(e: String) -> ApiError {
    ApiError::bad_request(e)
}

/// `page`/`per_page` offset paging.
pub(crate) fn offset(params: &Params) -> ApiResult<(i64, i64)> {
    let page = params.int("page", 1, 1, 1_000_000).map_err(bad)?;
    let per_page = params.int("per_page", 20, 1, 100).map_err(bad)?;
    Ok((page, per_page))
}

pub(crate) fn offset_body(data: Vec<Value>, page: i64, per_page: i64, total: i64) -> Json<Value> {
    let total_pages = (total + per_page - 1) / per_page;
    Json(
        json!({ "data": data, "meta": { "page": page, "per_page": per_page, "total_pages": total_pages, "total_count": total } }),
    )
}

/// Cursor paging body with absolute links.
pub(crate) fn cursor_body<T>(
    state: &AppState,
    uri: &OriginalUri,
    params: &Params,
    page: &Page<T>,
    data: Vec<Value>,
) -> Value {
    let base = format!("{}{}", state.app.public_url(), uri.path());
    let link = |key: &str, cursor: &Option<String>| {
        cursor
            .as_ref()
            .map(|c| format!("{base}?{}", params.with_cursor(key, c)))
    };
    let previous = if page.has_previous {
        link("before", &page.before)
    } else {
        None
    };
    json!({
        "data": data,
        "paging": {
            "cursors": { "before": page.before, "after": page.after },
            "next": link("after", &page.after),
            "previous": previous,
        }
    })
}

// ---- customers ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerInput {
    name: Option<String>,
    external_customer_id: Option<String>,
}

fn check_customer_input(input: &CustomerInput, creating: bool) -> ApiResult<()> {
    let mut errors = Vec::new();
    match &input.name {
        Some(n) if n.trim().is_empty() || n.len() > 200 => {
            errors.push("Name must be 1 to 200 characters".to_owned())
        }
        None if creating => errors.push("Name can't be blank".to_owned()),
        _ => {}
    }
    if input
        .external_customer_id
        .as_ref()
        .is_some_and(|e| e.len() > 200)
    {
        errors.push("External customer id is too long (200 characters at most)".to_owned());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Invalid(errors).into())
    }
}

fn customer_conflict(e: chasqui_store::StoreError) -> ApiError {
    if projects::is_unique_violation(&e) {
        AppError::Conflict("a customer with this external_customer_id already exists".into()).into()
    } else {
        e.into()
    }
}

async fn list_customers(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (page, per_page) = offset(&params)?;
    let name = params
        .get("name_contains")
        .or_else(|| params.get("q[name_cont]"));
    let ext = params
        .get("external_customer_id")
        .or_else(|| params.get("q[external_customer_id_eq]"));
    let (rows, total) = projects::list_customers(
        state.app.db(),
        &project_id,
        name,
        ext,
        per_page,
        (page - 1) * per_page,
    )
    .await?;
    Ok(offset_body(
        rows.iter().map(render::customer).collect(),
        page,
        per_page,
        total,
    ))
}

async fn create_customer(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: CustomerInput = rooted(&body, "customer")?;
    check_customer_input(&input, true)?;
    let now = state.app.now();
    let customer = Customer {
        id: new_id(),
        project_id,
        name: input.name.unwrap_or_default().trim().to_owned(),
        external_customer_id: input.external_customer_id,
        created_at: now,
        updated_at: now,
    };
    projects::insert_customer(state.app.db(), &customer)
        .await
        .map_err(customer_conflict)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": render::customer(&customer) })),
    ))
}

async fn find_customer(state: &AppState, project_id: &str, id: &str) -> ApiResult<Customer> {
    projects::find_customer(state.app.db(), project_id, id)
        .await?
        .ok_or(ApiError(AppError::NotFound("Customer")))
}

async fn get_customer(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let customer = find_customer(&state, &project_id, &id).await?;
    Ok(Json(json!({ "data": render::customer(&customer) })))
}

async fn update_customer(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: CustomerInput = rooted(&body, "customer")?;
    check_customer_input(&input, false)?;
    let mut customer = find_customer(&state, &project_id, &id).await?;
    if let Some(name) = input.name {
        customer.name = name.trim().to_owned();
    }
    if input.external_customer_id.is_some() {
        customer.external_customer_id = input.external_customer_id.filter(|e| !e.is_empty());
    }
    customer.updated_at = state.app.now();
    projects::update_customer(state.app.db(), &customer)
        .await
        .map_err(customer_conflict)?;
    Ok(Json(json!({ "data": render::customer(&customer) })))
}

async fn delete_customer(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if projects::delete_customer(state.app.db(), &project_id, &id, state.app.now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound("Customer").into())
    }
}

// ---- phone numbers ----

async fn list_numbers(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (page, per_page) = offset(&params)?;
    let (rows, total) = numbers::list(
        state.app.db(),
        &project_id,
        params.get("customer_id"),
        per_page,
        (page - 1) * per_page,
    )
    .await?;
    Ok(offset_body(
        rows.iter().map(render::number).collect(),
        page,
        per_page,
        total,
    ))
}

async fn create_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: NumberInput = rooted(&body, "whatsapp_phone_number")?;
    let number = chasqui_app::numbers::create(&state.app, &project_id, input).await?;
    register_sandbox_number(&state.app, &state.sandbox, &number)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": render::number(&number) })),
    ))
}

async fn create_customer_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(customer_id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    find_customer(&state, &project_id, &customer_id).await?;
    let mut input: NumberInput = rooted(&body, "whatsapp_phone_number")?;
    input.customer_id = Some(customer_id);
    let number = chasqui_app::numbers::create(&state.app, &project_id, input).await?;
    register_sandbox_number(&state.app, &state.sandbox, &number)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": render::number(&number) })),
    ))
}

async fn get_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let number = numbers::find(state.app.db(), &project_id, &id)
        .await?
        .ok_or(ApiError(AppError::NotFound("Phone number")))?;
    Ok(Json(json!({ "data": render::number(&number) })))
}

async fn update_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: NumberInput = rooted(&body, "whatsapp_phone_number")?;
    let number = chasqui_app::numbers::update(&state.app, &project_id, &id, input).await?;
    register_sandbox_number(&state.app, &state.sandbox, &number)?;
    Ok(Json(json!({ "data": render::number(&number) })))
}

async fn delete_number(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    chasqui_app::numbers::delete(&state.app, &project_id, &id).await?;
    unregister_sandbox_number(&state.sandbox, &id);
    Ok(StatusCode::NO_CONTENT)
}

// ---- conversations ----

pub(crate) fn conversation_filter(params: &Params) -> ApiResult<ConversationFilter> {
    let status = params.string("status");
    if let Some(s) = &status
        && s != "active"
        && s != "ended"
    {
        return Err(bad(format!("status must be active or ended, not {s:?}")));
    }
    let phone_number = params
        .get("phone_number")
        .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>());
    let assignment = match (params.string("assigned_user_id"), params.get("unassigned")) {
        (Some(_), Some(_)) => {
            return Err(ApiError(AppError::invalid(
                "assigned_user_id and unassigned cannot be used together",
            )));
        }
        (Some(user_id), None) => AssignedTo::User(user_id),
        (None, Some("true")) => AssignedTo::Nobody,
        (None, Some("false")) | (None, None) => AssignedTo::Anyone,
        (None, Some(other)) => {
            return Err(bad(format!(
                "unassigned must be true or false, not {other:?}"
            )));
        }
    };
    let handoff = match params.get("handoff") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(bad(format!("handoff must be true or false, not {other:?}"))),
    };
    let search = params
        .get("search")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned);
    if search.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(bad("search must be at most 100 characters".into()));
    }
    Ok(ConversationFilter {
        search,
        reader: None,
        handoff,
        phone_number_ids: None,
        assignment,
        phone_number_id: params.string("phone_number_id"),
        status,
        phone_number: phone_number.filter(|p| !p.is_empty()),
        last_active_since: params
            .time("last_active_since")
            .map_err(bad)?
            .or(params.time("last_active_after").map_err(bad)?),
        last_active_until: params
            .time("last_active_until")
            .map_err(bad)?
            .or(params.time("last_active_before").map_err(bad)?),
    })
}

async fn list_conversations(
    State(state): State<AppState>,
    Auth { project_id, actor }: Auth,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Json<Value>> {
    let mut filter = conversation_filter(&params)?;
    // A logged-in user sees their own unread counts.
    filter.reader = actor.user_id().map(str::to_owned);
    let limit = params.int("limit", 20, 1, 100).map_err(bad)?;
    let cursor = params.cursor().map_err(bad)?;
    let fields = KapsoFields::conversations(params.get("fields")).map_err(bad)?;
    let page = conversations::list(state.app.db(), &project_id, &filter, limit, &cursor).await?;
    let data = page
        .items
        .iter()
        .map(|c| render::conversation(c, &fields, state.app.now()))
        .collect();
    Ok(Json(cursor_body(&state, &uri, &params, &page, data)))
}

/// `POST /whatsapp/conversations/{id}/read`: the session's user has read the conversation
/// up to now (its unread count drops to 0). Only a user has read state (422 for a key).
async fn mark_read(
    State(state): State<AppState>,
    Auth { project_id, actor }: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let Some(user_id) = actor.user_id() else {
        return Err(ApiError(AppError::invalid(
            "read state belongs to a logged-in user, not an API key",
        )));
    };
    conversations::get(state.app.db(), &project_id, &id)
        .await?
        .ok_or(ApiError(AppError::NotFound("Conversation")))?;
    conversations::mark_read(state.app.db(), user_id, &id, state.app.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_conversation(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let fields = KapsoFields::conversations(params.get("fields")).map_err(bad)?;
    let c = conversations::get(state.app.db(), &project_id, &id)
        .await?
        .ok_or(ApiError(AppError::NotFound("Conversation")))?;
    Ok(Json(
        json!({ "data": render::conversation(&c, &fields, state.app.now()) }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversationInput {
    status: Option<String>,
}

async fn update_conversation(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: ConversationInput = rooted(&body, "whatsapp_conversation")?;
    let c = set_conversation_status(&state, &project_id, &id, input.status.as_deref()).await?;
    let fields = KapsoFields::conversations(None).map_err(bad)?;
    Ok(Json(
        json!({ "data": render::conversation(&c, &fields, state.app.now()) }),
    ))
}

/// Ends or reopens a conversation of the project; returns it as stored afterwards.
pub(crate) async fn set_conversation_status(
    state: &AppState,
    project_id: &str,
    id: &str,
    status: Option<&str>,
) -> ApiResult<conversations::Conversation> {
    Ok(chasqui_app::conversations::set_status(&state.app, project_id, id, status).await?)
}

pub(crate) fn message_filter(params: &Params) -> ApiResult<MessageFilter> {
    let direction = params.string("direction");
    if let Some(d) = &direction
        && d != "inbound"
        && d != "outbound"
    {
        return Err(bad(format!(
            "direction must be inbound or outbound, not {d:?}"
        )));
    }
    let status = params.string("status");
    if let Some(s) = &status
        && s.parse::<chasqui_core::MessageStatus>().is_err()
    {
        return Err(bad(format!("unknown status {s:?}")));
    }
    Ok(MessageFilter {
        phone_number_id: None,
        conversation_id: params.string("conversation_id"),
        direction,
        status,
        since: params.time("since").map_err(bad)?,
        until: params.time("until").map_err(bad)?,
    })
}

async fn conversation_messages(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Json<Value>> {
    conversations::get(state.app.db(), &project_id, &id)
        .await?
        .ok_or(ApiError(AppError::NotFound("Conversation")))?;
    messages_of(&state, &project_id, id, &uri, &params).await
}

/// A page of a conversation's messages (the caller checked the conversation is visible).
pub(crate) async fn messages_of(
    state: &AppState,
    project_id: &str,
    conversation_id: String,
    uri: &OriginalUri,
    params: &Params,
) -> ApiResult<Json<Value>> {
    let mut filter = message_filter(params)?;
    filter.conversation_id = Some(conversation_id);
    let limit = params.int("limit", 20, 1, 100).map_err(bad)?;
    let cursor = params.cursor().map_err(bad)?;
    let fields = KapsoFields::messages(params.get("fields")).map_err(bad)?;
    let page = messages::list(state.app.db(), project_id, &filter, limit, &cursor).await?;
    let statuses = render::statuses_for(&state.app, &page.items).await?;
    let data = page
        .items
        .iter()
        .map(|m| render::message(&state.app, m, &statuses, &fields))
        .collect();
    Ok(Json(cursor_body(state, uri, params, &page, data)))
}
