//! Authentication: `X-API-Key` for the Platform API and the proxy, or the number's own Meta
//! access token as `Authorization: Bearer` on the proxy.

use axum::http::{HeaderMap, StatusCode};
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

/// The project of the request's API key.
pub(crate) async fn project(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let key = api_key(headers)
        .ok_or_else(|| ApiError(AppError::Unauthorized("missing X-API-Key header".into())))?;
    Ok(projects::authenticate(&state.app, key).await?)
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
