//! Error bodies: Platform errors `{"error": "...", "errors": [...]}` and Graph-shaped errors
//! for the Meta proxy.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chasqui_app::AppError;
use serde_json::json;

/// A Platform API error.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl From<chasqui_store::StoreError> for ApiError {
    fn from(e: chasqui_store::StoreError) -> Self {
        ApiError(AppError::Store(e))
    }
}

/// Shorthand constructors.
impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError(AppError::BadRequest(message.into()))
    }
}

fn status_of(e: &AppError) -> StatusCode {
    match e {
        AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
        AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::RateLimited(..) => StatusCode::TOO_MANY_REQUESTS,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Conflict(_) => StatusCode::CONFLICT,
        AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::Upstream(_) => StatusCode::BAD_GATEWAY,
        AppError::Store(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn public_message(e: &AppError) -> String {
    match e {
        AppError::Store(_) | AppError::Internal(_) => {
            tracing::error!(error = %e, "request failed");
            "Internal server error".to_owned()
        }
        other => other.to_string(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let message = public_message(&self.0);
        let body = match &self.0 {
            AppError::Invalid(errors) => json!({ "error": message, "errors": errors }),
            _ => json!({ "error": message }),
        };
        let mut response = (status, Json(body)).into_response();
        if let AppError::RateLimited(_, secs) = &self.0 {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from(*secs));
        }
        response
    }
}

/// A Meta-proxy error in Graph's shape.
#[derive(Debug)]
pub struct GraphError {
    status: StatusCode,
    code: i64,
    message: String,
    details: Option<String>,
}

impl GraphError {
    pub(crate) fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds Meta's `error_data.details`.
    pub(crate) fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// Meta's error 100 with the reason in `error_data.details`.
    pub(crate) fn param(details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter").with_details(details)
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            100,
            format!(
                "Unsupported get request. Object with ID '{what}' does not exist, cannot be loaded due to missing permissions, or does not support this operation"
            ),
        )
    }
}

impl From<AppError> for GraphError {
    fn from(e: AppError) -> Self {
        let status = status_of(&e);
        let code = match status {
            StatusCode::UNAUTHORIZED => 190,
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY => {
                100
            }
            _ => 1,
        };
        let message = match &e {
            AppError::Invalid(errors) => errors.join("; "),
            other => public_message(other),
        };
        Self {
            status,
            code,
            message,
            details: None,
        }
    }
}

impl From<chasqui_store::StoreError> for GraphError {
    fn from(e: chasqui_store::StoreError) -> Self {
        AppError::Store(e).into()
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let trace = hex::encode(chasqui_core::ids::random_bytes::<8>());
        let mut error = json!({
            "message": self.message,
            "type": if self.code == 190 || self.code >= 1000 { "OAuthException" } else { "GraphMethodException" },
            "code": self.code,
            "fbtrace_id": format!("CHQ{trace}"),
        });
        if let Some(details) = self.details {
            error["error_data"] = json!({ "messaging_product": "whatsapp", "details": details });
        }
        let body = json!({ "error": error });
        (self.status, Json(body)).into_response()
    }
}
