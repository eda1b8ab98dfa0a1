//! HTTP surface of the sandbox: the Graph API subset (send, media) and the control API
//! (simulated customers, statuses, outbox, faults) used standalone.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::{
    Faults, InboundRequest, NumberConfig, Sandbox, SandboxError, StatusRequest, new_wamid,
    random_hex,
};

fn graph_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({ "error": {
        "message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": format!("SBX{}", random_hex(8)),
    }});
    (status, Json(body)).into_response()
}

fn invalid_token() -> Response {
    graph_error(
        StatusCode::UNAUTHORIZED,
        190,
        "Invalid OAuth access token - Cannot parse access token",
    )
}

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        let status = match &self {
            SandboxError::Invalid(_) => StatusCode::BAD_REQUEST,
            SandboxError::NotFound(_) => StatusCode::NOT_FOUND,
            SandboxError::Delivery(_) => StatusCode::BAD_GATEWAY,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

impl Sandbox {
    /// Consumes one armed 5xx fault, if any.
    fn take_graph_fault(&self, phone_number_id: &str) -> bool {
        let mut w = self.world();
        let Some(faults) = w.faults.get_mut(phone_number_id) else {
            return false;
        };
        if faults.graph_errors > 0 {
            faults.graph_errors -= 1;
            true
        } else {
            false
        }
    }

    /// Whether the request carries the number's access token (any token in standalone mode).
    fn token_ok(number: &NumberConfig, headers: &HeaderMap) -> bool {
        let Some(expected) = &number.access_token else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        given.as_bytes() == expected.as_bytes()
    }

    /// Handles a Graph send: records it in the outbox, answers like Meta, then emits statuses.
    pub async fn graph_send(
        &self,
        phone_number_id: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        if self.take_graph_fault(phone_number_id) {
            return graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                1,
                "An unknown error has occurred.",
            );
        }
        let number = match self.number(phone_number_id) {
            Ok(n) => n,
            Err(_) => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    "Unsupported post request. Object does not exist",
                );
            }
        };
        if !Self::token_ok(&number, headers) {
            return invalid_token();
        }
        let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(body) else {
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                "(#100) The parameter messaging_product is required.",
            );
        };
        if request.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                "(#100) The parameter messaging_product is required.",
            );
        }
        if request.get("status").and_then(Value::as_str) == Some("read") {
            return Json(json!({ "success": true })).into_response();
        }
        let to = request
            .get("to")
            .or_else(|| request.get("recipient"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(to) = to else {
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                "(#100) The parameter to is required.",
            );
        };
        let kind = request
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("text")
            .to_owned();
        let wamid = new_wamid();
        request.insert("id".into(), json!(wamid));
        request.insert(
            "timestamp".into(),
            json!(crate::state::now_secs().to_string()),
        );
        request.insert("type".into(), json!(kind));
        let sandbox = self.clone();
        let (w, recipient) = (
            wamid.clone(),
            to.chars().filter(char::is_ascii_digit).collect::<String>(),
        );
        // As Meta: a free-form message outside the customer's 24-hour window is accepted,
        // then fails asynchronously with 131047 (and never reaches the phone's outbox).
        let window_open = kind == "template" || {
            let w = self.world();
            w.last_inbound
                .get(&(phone_number_id.to_owned(), recipient.clone()))
                .is_some_and(|t| crate::state::now_secs() - t < 24 * 3600)
        };
        if window_open {
            self.world()
                .outbox
                .entry(phone_number_id.to_owned())
                .or_default()
                .push(Value::Object(request));
        }
        tokio::spawn(async move {
            if !window_open {
                let errors = json!([{
                    "code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
                    "error_data": { "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number." },
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }]);
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Err(e) = sandbox
                    .deliver_status(&number, &w, &recipient, "failed", Some(errors))
                    .await
                {
                    tracing::warn!(error = %e, "sandbox status delivery failed");
                }
                return;
            }
            let mut statuses = if kind == "reaction" {
                vec!["sent"]
            } else {
                vec!["sent", "delivered", "read"]
            };
            if sandbox.faults(&number.phone_number_id).reorder_statuses {
                statuses.reverse();
            }
            for status in statuses {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Err(e) = sandbox
                    .deliver_status(&number, &w, &recipient, status, None)
                    .await
                {
                    tracing::warn!(error = %e, "sandbox status delivery failed");
                }
            }
        });
        Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": to, "wa_id": to.chars().filter(char::is_ascii_digit).collect::<String>() }],
            "messages": [{ "id": wamid }],
        }))
        .into_response()
    }

    /// `GET /{media_id}`: metadata with a download URL.
    pub fn graph_media(&self, media_id: &str, headers: &HeaderMap) -> Response {
        let Some(media) = self.world().media.get(media_id).cloned() else {
            return graph_error(
                StatusCode::NOT_FOUND,
                100,
                "Unsupported get request. Object does not exist",
            );
        };
        if self.take_graph_fault(&media.phone_number_id) {
            return graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                1,
                "An unknown error has occurred.",
            );
        }
        if let Ok(number) = self.number(&media.phone_number_id)
            && !Self::token_ok(&number, headers)
        {
            return invalid_token();
        }
        Json(json!({
            "messaging_product": "whatsapp",
            "url": format!("{}/download/{media_id}", self.base_url()),
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": media.bytes.len(),
            "id": media_id,
        }))
        .into_response()
    }

    /// The bytes of a media file.
    pub fn graph_download(&self, media_id: &str, headers: &HeaderMap) -> Response {
        let Some(media) = self.world().media.get(media_id).cloned() else {
            return graph_error(
                StatusCode::NOT_FOUND,
                100,
                "Unsupported get request. Object does not exist",
            );
        };
        if let Ok(number) = self.number(&media.phone_number_id)
            && !Self::token_ok(&number, headers)
        {
            return invalid_token();
        }
        (
            [(header::CONTENT_TYPE, media.mime_type.clone())],
            media.bytes.as_ref().clone(),
        )
            .into_response()
    }
}

/// The Graph API subset: `POST /{version}/{phone_number_id}/messages`,
/// `GET /{version}/{media_id}`, and media downloads.
pub fn graph_router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/download/{media_id}", get(download))
        .route("/{version}/{media_id}", get(media_info))
        .route("/{version}/{phone_number_id}/messages", post(send))
        .with_state(sandbox)
}

async fn send(
    State(sandbox): State<Sandbox>,
    Path((_version, pnid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sandbox.graph_send(&pnid, &headers, &body).await
}

async fn media_info(
    State(sandbox): State<Sandbox>,
    Path((_v, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    sandbox.graph_media(&id, &headers)
}

async fn download(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    sandbox.graph_download(&id, &headers)
}

/// The control API of the standalone sandbox, under `/v1`.
pub(crate) fn control_router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/v1/phone_numbers/{id}/inbound", post(inbound))
        .route("/v1/phone_numbers/{id}/statuses", post(statuses))
        .route("/v1/phone_numbers/{id}/outbox", get(outbox))
        .route(
            "/v1/phone_numbers/{id}/faults",
            get(get_faults).put(put_faults),
        )
        .with_state(sandbox)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SandboxError> {
    serde_json::from_slice(body).map_err(|e| SandboxError::Invalid(format!("invalid body: {e}")))
}

async fn inbound(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, SandboxError> {
    let request: InboundRequest = parse(&body)?;
    let wamid = sandbox.inbound(&id, request).await?;
    Ok(Json(json!({ "wamid": wamid })))
}

async fn statuses(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, SandboxError> {
    let request: StatusRequest = parse(&body)?;
    sandbox.statuses(&id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn outbox(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
) -> Result<Json<Value>, SandboxError> {
    Ok(Json(json!({ "data": sandbox.outbox(&id)? })))
}

async fn get_faults(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
) -> Result<Json<Faults>, SandboxError> {
    sandbox.number(&id)?;
    Ok(Json(sandbox.faults(&id)))
}

async fn put_faults(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Faults>, SandboxError> {
    let faults: Faults = parse(&body)?;
    sandbox.set_faults(&id, faults.clone())?;
    Ok(Json(faults))
}
