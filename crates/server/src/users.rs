//! Logging in to the dashboard (`/auth/*`: session cookie plus CSRF token) and the project's
//! members (`/platform/v1/users`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chasqui_app::AppError;
use chasqui_app::users::{self, NewMember, Role};
use chasqui_core::Timestamp;
use chasqui_store::users::{Member, User};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::auth::{Auth, CSRF_HEADER, SESSION_COOKIE, cookie};
use crate::error::ApiError;
use crate::extract::{Params, rooted};
use crate::platform::{offset, offset_body};

type ApiResult<T> = Result<T, ApiError>;

/// `/auth/login`, `/auth/logout`, `/auth/session` (at the root).
pub(crate) fn auth_routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/session", get(current_session))
}

/// `/users` (under `/platform/v1`).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(get_one).patch(update).delete(remove))
}

/// A member in Kapso's shape: `id` is the membership, `user_id` the person.
fn member_json(m: &Member) -> Value {
    json!({
        "id": m.id,
        "user_id": m.user_id,
        "email": m.email,
        "name": m.name,
        "role": m.role,
        "created_at": Timestamp(m.created_at).to_rfc3339(),
    })
}

fn session_json(user: &User, csrf_token: &str, expires_at: i64, projects: &[Member]) -> Value {
    json!({ "data": {
        "user": { "id": user.id, "email": user.email, "name": user.name },
        "csrf_token": csrf_token,
        "expires_at": Timestamp(expires_at).to_rfc3339(),
        "projects": projects.iter().map(|m| json!({"project_id": m.project_id, "role": m.role, "membership_id": m.id})).collect::<Vec<_>>(),
    }})
}

fn set_cookie(state: &AppState, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.app.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginInput {
    email: String,
    password: String,
}

/// `POST /auth/login` with `{email, password}` (JSON only, so a cross-site form cannot log a
/// browser in): sets the session cookie and returns the user, the CSRF token and projects.
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return Err(ApiError::bad_request(
            "Content-Type must be application/json",
        ));
    }
    let input: LoginInput = rooted(&body, "user")?;
    let done = users::login(&state.app, &input.email, &input.password).await?;
    let projects = chasqui_store::users::memberships_of(state.app.db(), &done.user.id).await?;
    let body = session_json(
        &done.user,
        &done.session.csrf_token,
        done.session.expires_at,
        &projects,
    );
    let cookie = set_cookie(&state, &done.token, users::SESSION_TTL_MILLIS / 1000);
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// `GET /auth/session`: the logged-in user, the CSRF token and projects (401 without one).
async fn current_session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let found = match cookie(&headers, SESSION_COOKIE) {
        Some(token) => users::session(&state.app, token).await?,
        None => None,
    };
    let (session, user) =
        found.ok_or_else(|| ApiError(AppError::Unauthorized("not logged in".into())))?;
    let projects = chasqui_store::users::memberships_of(state.app.db(), &user.id).await?;
    Ok(Json(session_json(
        &user,
        &session.csrf_token,
        session.expires_at,
        &projects,
    )))
}

/// `POST /auth/logout` (with the session's `X-CSRF-Token`): ends the session and clears
/// the cookie. Without a live session it only clears the cookie.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Some((session, _)) = users::session(&state.app, token).await?
    {
        let presented = headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(presented.ct_eq(session.csrf_token.as_bytes())) {
            return Err(ApiError(AppError::Forbidden(
                "missing or wrong X-CSRF-Token header".into(),
            )));
        }
        users::logout(&state.app, token).await?;
    }
    let cookie = set_cookie(&state, "", 0);
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

async fn list(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (page, per_page) = offset(&params)?;
    let (rows, total) =
        chasqui_store::users::members(state.app.db(), &project_id, per_page, (page - 1) * per_page)
            .await?;
    Ok(offset_body(
        rows.iter().map(member_json).collect(),
        page,
        per_page,
        total,
    ))
}

async fn get_one(
    State(state): State<AppState>,
    Auth { project_id, .. }: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let m = chasqui_store::users::membership(state.app.db(), &project_id, &id)
        .await?
        .ok_or(ApiError(AppError::NotFound("User")))?;
    Ok(Json(json!({ "data": member_json(&m) })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberInput {
    email: String,
    name: Option<String>,
    role: Option<String>,
    password: Option<String>,
}

fn may_manage(auth: &Auth, role: Role) -> ApiResult<()> {
    match auth.actor.role() {
        Some(actor) if !actor.may_manage(role) => Err(ApiError(AppError::Forbidden(format!(
            "a {} cannot manage a {}",
            actor.as_str(),
            role.as_str()
        )))),
        _ => Ok(()),
    }
}

/// `POST /users`: adds a member (creating the user when the email is new; a generated
/// password is returned once as `password`). Owners and admins (and API keys) only.
async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: MemberInput = rooted(&body, "user")?;
    let role = Role::parse(input.role.as_deref().unwrap_or("member"))?;
    may_manage(&auth, role)?;
    let added = users::add_member(
        &state.app,
        &auth.project_id,
        NewMember {
            email: input.email,
            name: input.name,
            role,
            password: input.password,
        },
    )
    .await?;
    let mut data = member_json(&added.member);
    if let Some(p) = added.generated_password {
        data["password"] = Value::String(p);
    }
    Ok((StatusCode::CREATED, Json(json!({ "data": data }))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleInput {
    role: String,
}

/// `PATCH /users/{id}` with `{role}`.
async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: RoleInput = rooted(&body, "user")?;
    let role = Role::parse(&input.role)?;
    let m = users::set_role(&state.app, &auth.project_id, &id, role, auth.actor.role()).await?;
    Ok(Json(json!({ "data": member_json(&m) })))
}

/// `DELETE /users/{id}`: removes the member from the project (the user account stays).
async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    users::remove_member(&state.app, &auth.project_id, &id, auth.actor.role()).await?;
    Ok(StatusCode::NO_CONTENT)
}
