//! Authentication: `X-API-Key` for the Platform API and the proxy, the dashboard's session
//! cookie (with its CSRF token on unsafe requests) for both, or the number's own Meta access
//! token as `Authorization: Bearer` on the proxy.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use chasqui_app::users::{self, Role};
use chasqui_app::{AppError, numbers as number_cases, projects};
use chasqui_store::numbers::{self, PhoneNumber};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::{ApiError, GraphError};

fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The project of the request's API key, else of its dashboard session.
pub(crate) async fn project(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(key) = api_key(headers) {
        return Ok(projects::authenticate(&state.app, key).await?);
    }
    session_project(state, headers).await?.ok_or_else(|| {
        ApiError(AppError::Unauthorized(
            "missing X-API-Key header or session".into(),
        ))
    })
}

/// The project a dashboard session acts for (see [`PROJECT_HEADER`]), if the request has a
/// live session cookie. The CSRF token of unsafe requests is checked by [`session_guard`].
async fn session_project(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<String>, AppError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some((_, user)) = users::session(&state.app, token).await? else {
        return Ok(None);
    };
    let wanted = headers.get(PROJECT_HEADER).and_then(|v| v.to_str().ok());
    let membership = users::acting_membership(&state.app, &user.id, wanted).await?;
    Ok(Some(membership.project_id))
}

/// Whether a session's unsafe request carries the session's CSRF token.
fn csrf_ok(method: &Method, headers: &HeaderMap, session_csrf: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let presented = headers
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    bool::from(presented.ct_eq(session_csrf.as_bytes()))
}

/// Middleware of the proxy: a request authenticated only by a session cookie must carry the
/// session's CSRF token when it is unsafe (a send, an upload). Requests with a key or a
/// bearer token are not affected.
pub(crate) async fn session_guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers = request.headers();
    let by_session = api_key(headers).is_none() && headers.get("authorization").is_none();
    if by_session && let Some(token) = cookie(headers, SESSION_COOKIE) {
        match users::session(&state.app, token).await {
            Ok(Some((session, _))) if !csrf_ok(request.method(), headers, &session.csrf_token) => {
                return GraphError::new(
                    StatusCode::FORBIDDEN,
                    10,
                    "missing or wrong X-CSRF-Token header",
                )
                .into_response();
            }
            Err(e) => return GraphError::from(e).into_response(),
            _ => {}
        }
    }
    next.run(request).await
}

/// The dashboard's session cookie.
pub(crate) const SESSION_COOKIE: &str = "chasqui_session";
/// The header a session's unsafe requests must carry with the session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// The header that picks the project a session acts for (default: the user's first).
pub(crate) const PROJECT_HEADER: &str = "x-chasqui-project";

/// The value of a cookie in the request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Who acts in a Platform API request.
#[derive(Debug, Clone)]
pub(crate) enum Actor {
    /// A project API key: a project's full rights.
    ApiKey,
    /// A logged-in member of the project.
    User {
        /// The user.
        user_id: String,
        /// The user's role in the project.
        role: Role,
    },
}

impl Actor {
    /// The acting user, if a user acts.
    pub(crate) fn user_id(&self) -> Option<&str> {
        match self {
            Actor::ApiKey => None,
            Actor::User { user_id, .. } => Some(user_id),
        }
    }

    /// The acting role (an API key counts as `None`, an owner's rights).
    pub(crate) fn role(&self) -> Option<Role> {
        match self {
            Actor::ApiKey => None,
            Actor::User { role, .. } => Some(*role),
        }
    }
}

/// An authenticated Platform API request: its project and who acts. Authenticated by
/// `X-API-Key`, else by the dashboard's session cookie, whose unsafe requests (anything but
/// GET, HEAD and OPTIONS) must echo the session's CSRF token in `X-CSRF-Token`.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    /// The project every query is scoped to.
    pub(crate) project_id: String,
    /// Who acts.
    pub(crate) actor: Actor,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(key) = api_key(&parts.headers) {
            return Ok(Auth {
                project_id: projects::authenticate(&state.app, key).await?,
                actor: Actor::ApiKey,
            });
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ApiError(AppError::Unauthorized(
                "missing X-API-Key header or session".into(),
            )));
        };
        let (session, user) = users::session(&state.app, token).await?.ok_or_else(|| {
            ApiError(AppError::Unauthorized(
                "the session has expired or ended; log in again".into(),
            ))
        })?;
        if !csrf_ok(&parts.method, &parts.headers, &session.csrf_token) {
            return Err(ApiError(AppError::Forbidden(
                "missing or wrong X-CSRF-Token header".into(),
            )));
        }
        let wanted = parts
            .headers
            .get(PROJECT_HEADER)
            .and_then(|v| v.to_str().ok());
        let membership = users::acting_membership(&state.app, &user.id, wanted).await?;
        Ok(Auth {
            project_id: membership.project_id,
            actor: Actor::User {
                user_id: user.id,
                role: Role::parse(&membership.role)?,
            },
        })
    }
}

/// Who calls the proxy: a project (by `X-API-Key`) or the holder of a number's Meta token.
pub(crate) enum Caller {
    /// Authenticated by API key.
    Project(String),
    /// Presented this bearer token.
    Token(String),
}

fn invalid_token() -> GraphError {
    GraphError::new(
        StatusCode::UNAUTHORIZED,
        190,
        "Invalid OAuth access token - Cannot parse access token",
    )
}

/// The proxy caller of a request.
pub(crate) async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, GraphError> {
    if let Some(key) = api_key(headers) {
        return Ok(Caller::Project(
            projects::authenticate(&state.app, key).await?,
        ));
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if bearer.is_none()
        && let Some(project_id) = session_project(state, headers).await?
    {
        return Ok(Caller::Project(project_id));
    }
    match bearer {
        Some(token) if !token.is_empty() => Ok(Caller::Token(token.to_owned())),
        _ => Err(GraphError::new(
            StatusCode::UNAUTHORIZED,
            190,
            "An access token or X-API-Key is required",
        )),
    }
}

/// Whether the caller may act for a number (its project, or its Meta token in constant time).
pub(crate) fn may_use(
    state: &AppState,
    caller: &Caller,
    number: &PhoneNumber,
) -> Result<bool, GraphError> {
    match caller {
        Caller::Project(project_id) => Ok(&number.project_id == project_id),
        Caller::Token(token) => {
            let creds = number_cases::credentials(&state.app, number)?;
            Ok(bool::from(
                creds
                    .access_token
                    .expose()
                    .as_bytes()
                    .ct_eq(token.as_bytes()),
            ))
        }
    }
}

/// The error for an object the caller may not see: 404 for a project, 401 for a token.
pub(crate) fn refused(caller: &Caller, id: &str) -> GraphError {
    match caller {
        Caller::Project(_) => GraphError::not_found(id),
        Caller::Token(_) => invalid_token(),
    }
}

/// The first of `numbers` the caller may act for.
pub(crate) fn first_usable(
    state: &AppState,
    caller: &Caller,
    numbers: Vec<PhoneNumber>,
) -> Result<Option<PhoneNumber>, GraphError> {
    for number in numbers {
        if may_use(state, caller, &number)? {
            return Ok(Some(number));
        }
    }
    Ok(None)
}

/// Authorizes a proxy call on one phone number; returns the number.
pub(crate) async fn number(
    state: &AppState,
    headers: &HeaderMap,
    phone_number_id: &str,
) -> Result<PhoneNumber, GraphError> {
    let caller = caller(state, headers).await?;
    let found = match &caller {
        Caller::Project(project_id) => {
            numbers::find(state.app.db(), project_id, phone_number_id).await?
        }
        Caller::Token(_) => numbers::find_any(state.app.db(), phone_number_id).await?,
    };
    match found {
        Some(n) if may_use(state, &caller, &n)? => Ok(n),
        _ => Err(refused(&caller, phone_number_id)),
    }
}

/// Authorizes a proxy call on a WhatsApp Business Account; returns one of its numbers the
/// caller may use (its token carries the WABA's permissions).
pub(crate) async fn waba(
    state: &AppState,
    headers: &HeaderMap,
    business_account_id: &str,
) -> Result<PhoneNumber, GraphError> {
    let caller = caller(state, headers).await?;
    let numbers = numbers::by_waba(state.app.db(), business_account_id).await?;
    first_usable(state, &caller, numbers)?.ok_or_else(|| refused(&caller, business_account_id))
}
