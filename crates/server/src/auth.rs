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

/// Authorizes a proxy call on one phone number; returns the number.
pub(crate) async fn number(
    state: &AppState,
    headers: &HeaderMap,
    phone_number_id: &str,
) -> Result<PhoneNumber, GraphError> {
    if let Some(key) = api_key(headers) {
        let project_id = projects::authenticate(&state.app, key).await?;
        return numbers::find(state.app.db(), &project_id, phone_number_id)
            .await?
            .ok_or_else(|| GraphError::not_found(phone_number_id));
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = bearer else {
        return Err(GraphError::new(
            StatusCode::UNAUTHORIZED,
            190,
            "An access token or X-API-Key is required",
        ));
    };
    let invalid = || {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
        )
    };
    let number = numbers::find_any(state.app.db(), phone_number_id)
        .await?
        .ok_or_else(invalid)?;
    let creds = number_cases::credentials(&state.app, &number)?;
    if bool::from(
        creds
            .access_token
            .expose()
            .as_bytes()
            .ct_eq(token.as_bytes()),
    ) {
        Ok(number)
    } else {
        Err(invalid())
    }
}
