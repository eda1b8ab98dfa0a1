//! The sandbox's Graph API: the router and its object dispatch, the helpers every endpoint
//! shares (errors, tokens, faults), and sends (`POST /{phone_number_id}/messages`).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::multipart::Multipart;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

use crate::state::{NumberConfig, Sandbox, SandboxError, new_wamid, now_secs, random_hex};

/// A refusal: the response to send instead (boxed: responses are large).
pub(crate) type Refusal = Box<Response>;

/// Query parameters of a Graph call.
pub(crate) type QueryMap = HashMap<String, String>;

/// Meta's error body.
pub(crate) fn graph_error(status: StatusCode, code: i64, message: &str) -> Response {
    graph_error_with(status, code, message, None)
}

/// Meta's error body with `error_data.details`.
pub(crate) fn graph_error_with(
    status: StatusCode,
    code: i64,
    message: &str,
    details: Option<&str>,
) -> Response {
    let mut error = json!({
        "message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": format!("SBX{}", random_hex(8)),
    });
    if let Some(details) = details {
        error["error_data"] = json!({ "messaging_product": "whatsapp", "details": details });
    }
    (status, Json(json!({ "error": error }))).into_response()
}

/// Meta's answer for an id that names nothing the caller may see.
pub(crate) fn no_object(method: &Method, id: &str) -> Response {
    let verb = method.as_str().to_ascii_lowercase();
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        &format!(
            "Unsupported {verb} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        ),
    )
}

/// Meta's error 100 with details.
pub(crate) fn param_error(details: &str) -> Response {
    graph_error_with(
        StatusCode::BAD_REQUEST,
        100,
        "(#100) Invalid parameter",
        Some(details),
    )
}

pub(crate) fn invalid_token() -> Response {
    graph_error(
        StatusCode::UNAUTHORIZED,
        190,
        "Invalid OAuth access token - Cannot parse access token",
    )
}

pub(crate) fn success() -> Response {
    Json(json!({ "success": true })).into_response()
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

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .unwrap_or_default()
}

impl Sandbox {
    /// Consumes one armed 5xx fault, if any.
    pub(crate) fn take_graph_fault(&self, phone_number_id: &str) -> bool {
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

    /// The 500 Meta answers when a 5xx fault is armed.
    pub(crate) fn fault_response() -> Response {
        graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            1,
            "An unknown error has occurred.",
        )
    }

    /// Whether the request carries the number's access token (any token in standalone mode).
    pub(crate) fn token_ok(number: &NumberConfig, headers: &HeaderMap) -> bool {
        let Some(expected) = &number.access_token else {
            return true;
        };
        bearer(headers).as_bytes() == expected.as_bytes()
    }

    /// Whether the request carries the token of one of the WABA's numbers; in standalone mode
    /// any WABA exists and any token is accepted.
    pub(crate) fn waba_token_ok(&self, waba: &str, headers: &HeaderMap) -> Option<bool> {
        let numbers = self.numbers_of(waba);
        if numbers.is_empty() {
            return self.is_standalone().then_some(true);
        }
        Some(numbers.iter().any(|n| Self::token_ok(n, headers)))
    }

    /// Whether numbers appear on first use (the standalone sandbox).
    pub(crate) fn is_standalone(&self) -> bool {
        self.inner.auto.is_some()
    }

    /// Handles a Graph send: records it in the outbox, answers like Meta, then emits statuses.
    pub async fn graph_send(
        &self,
        phone_number_id: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        if self.take_graph_fault(phone_number_id) {
            return Self::fault_response();
        }
        let Ok(number) = self.number(phone_number_id) else {
            return no_object(&Method::POST, phone_number_id);
        };
        if !Self::token_ok(&number, headers) {
            return invalid_token();
        }
        let delay = self.faults(phone_number_id).send_delay_ms;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(body) else {
            return param_error("The request body must be a JSON object.");
        };
        if request.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                "(#100) The parameter messaging_product is required.",
            );
        }
        if request.get("status").and_then(Value::as_str) == Some("read") {
            let Some(message_id) = request.get("message_id").and_then(Value::as_str) else {
                return param_error("The parameter message_id is required.");
            };
            let receipt = json!({
                "message_id": message_id,
                "typing_indicator": request.get("typing_indicator").cloned().unwrap_or(Value::Null),
            });
            self.world()
                .reads
                .entry(phone_number_id.to_owned())
                .or_default()
                .push(receipt);
            return Json(json!({ "success": true })).into_response();
        }
        let Some(to) = request
            .get("to")
            .or_else(|| request.get("recipient"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
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
        if kind == "template"
            && let Err(response) = self.check_template_send(&number, &request)
        {
            return *response;
        }
        let injected = {
            let mut w = self.world();
            w.faults
                .get_mut(phone_number_id)
                .filter(|f| !f.send_errors.is_empty())
                .map(|f| f.send_errors.remove(0))
        };
        match injected {
            Some(130429) => {
                return graph_error_with(
                    StatusCode::BAD_REQUEST,
                    130429,
                    "(#130429) Rate limit hit",
                    Some("Cloud API message throughput has been reached."),
                );
            }
            Some(131056) => {
                return graph_error_with(
                    StatusCode::BAD_REQUEST,
                    131056,
                    "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                    Some(
                        "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
                    ),
                );
            }
            _ => {}
        }
        let recipient: String = to.chars().filter(char::is_ascii_digit).collect();
        let wamid = new_wamid();
        // Meta echoes biz_opaque_callback_data in the send's status webhooks.
        let callback = request
            .get("biz_opaque_callback_data")
            .and_then(Value::as_str)
            .map(str::to_owned);
        request.insert("id".into(), json!(wamid));
        request.insert("timestamp".into(), json!(now_secs().to_string()));
        request.insert("type".into(), json!(kind));
        // As Meta: a free-form message outside the customer's 24-hour window is accepted,
        // then fails asynchronously with 131047 (and never reaches the phone's outbox).
        let window_open = kind == "template" || {
            let w = self.world();
            w.last_inbound
                .get(&(phone_number_id.to_owned(), recipient.clone()))
                .is_some_and(|t| now_secs() - t < 24 * 3600)
        };
        let failure = if injected == Some(131026) {
            Some(json!([{
                "code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
                "error_data": { "details": "Message Undeliverable." },
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }]))
        } else if !window_open {
            Some(json!([{
                "code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
                "error_data": { "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number." },
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }]))
        } else {
            None
        };
        if failure.is_none() {
            self.world()
                .outbox
                .entry(phone_number_id.to_owned())
                .or_default()
                .push(Value::Object(request));
        }
        let sandbox = self.clone();
        let (w, r) = (wamid.clone(), recipient.clone());
        tokio::spawn(async move {
            sandbox
                .status_choreography(number, w, r, kind, failure, callback)
                .await
        });
        let answer_delay = self.faults(phone_number_id).answer_delay_ms;
        if answer_delay > 0 {
            tokio::time::sleep(Duration::from_millis(answer_delay)).await;
        }
        let mut answer = json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": to, "wa_id": recipient }],
            "messages": [{ "id": wamid }],
        });
        if answer["contacts"][0]["wa_id"] == "" {
            answer["contacts"][0]["user_id"] = json!(to);
        }
        Json(answer).into_response()
    }

    /// Emits a send's status webhooks: `failed` with the given errors, or sent → delivered →
    /// read (reactions: only sent), each after the configured delay.
    async fn status_choreography(
        &self,
        number: NumberConfig,
        wamid: String,
        recipient: String,
        kind: String,
        failure: Option<Value>,
        callback: Option<String>,
    ) {
        let delay = Duration::from_millis(self.settings().status_delay_ms);
        if let Some(errors) = failure {
            tokio::time::sleep(delay).await;
            if let Err(e) = self
                .deliver_status(
                    &number,
                    &wamid,
                    &recipient,
                    "failed",
                    Some(errors),
                    callback.as_deref(),
                )
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
        if self.faults(&number.phone_number_id).reorder_statuses {
            statuses.reverse();
        }
        for status in statuses {
            tokio::time::sleep(delay).await;
            if let Err(e) = self
                .deliver_status(
                    &number,
                    &wamid,
                    &recipient,
                    status,
                    None,
                    callback.as_deref(),
                )
                .await
            {
                tracing::warn!(error = %e, "sandbox status delivery failed");
            }
        }
    }
}

/// The Graph API: sends, media, templates, business profile and phone numbers, under
/// `/{version}/...`, plus media downloads under `/download/{media_id}`.
pub fn graph_router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/download/{media_id}", get(download))
        .route(
            "/{version}/{id}",
            get(object_get).post(object_post).delete(object_delete),
        )
        .route("/{version}/{id}/messages", post(send))
        .route("/{version}/{id}/media", post(upload_media))
        .route(
            "/{version}/{id}/whatsapp_business_profile",
            get(get_profile).post(update_profile),
        )
        .route(
            "/{version}/{id}/message_templates",
            get(list_templates)
                .post(create_or_edit_template)
                .put(create_or_edit_template)
                .delete(delete_templates),
        )
        .route(
            "/{version}/{id}/message_templates/{template_id}",
            get(get_waba_template),
        )
        .route("/{version}/{id}/phone_numbers", get(list_phone_numbers))
        .route("/{version}/{id}/uploads", post(start_upload))
        .route(
            "/{version}/{id}/{edge}",
            get(number_edge).post(number_edge).delete(number_edge),
        )
        .layer(DefaultBodyLimit::max(
            chasqui_meta::upload::MAX_UPLOAD_BYTES + 1024 * 1024,
        ))
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

async fn object_get(
    State(sandbox): State<Sandbox>,
    Path((_v, id)): Path<(String, String)>,
    Query(query): Query<QueryMap>,
    headers: HeaderMap,
) -> Response {
    if sandbox.world().media.contains_key(&id) {
        return sandbox.graph_media(&id, &query, &headers);
    }
    if sandbox.template(&id).is_some() {
        return sandbox.get_template(&id, None, &query, &headers);
    }
    if let Some(session) = id.strip_prefix("upload:") {
        return sandbox.upload_status(session);
    }
    sandbox.get_phone_number(&id, &query, &headers)
}

async fn object_post(
    State(sandbox): State<Sandbox>,
    Path((_v, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(session) = id.strip_prefix("upload:") {
        return sandbox.finish_upload(session, &headers, body);
    }
    if sandbox.template(&id).is_some() {
        return sandbox.edit_template(&id, &headers, &body);
    }
    no_object(&Method::POST, &id)
}

async fn object_delete(
    State(sandbox): State<Sandbox>,
    Path((_v, id)): Path<(String, String)>,
    Query(query): Query<QueryMap>,
    headers: HeaderMap,
) -> Response {
    sandbox.delete_media(&id, &query, &headers)
}

async fn upload_media(
    State(sandbox): State<Sandbox>,
    Path((_v, pnid)): Path<(String, String)>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    sandbox.upload_media(&pnid, &headers, multipart).await
}

async fn download(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    sandbox.graph_download(&id, &headers)
}

async fn get_profile(
    State(sandbox): State<Sandbox>,
    Path((_v, pnid)): Path<(String, String)>,
    Query(query): Query<QueryMap>,
    headers: HeaderMap,
) -> Response {
    sandbox.get_business_profile(&pnid, &query, &headers)
}

async fn update_profile(
    State(sandbox): State<Sandbox>,
    Path((_v, pnid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sandbox.update_business_profile(&pnid, &headers, &body)
}

async fn list_templates(
    State(sandbox): State<Sandbox>,
    Path((version, waba)): Path<(String, String)>,
    Query(query): Query<QueryMap>,
    headers: HeaderMap,
) -> Response {
    sandbox.list_templates(&version, &waba, &query, &headers)
}

async fn create_or_edit_template(
    State(sandbox): State<Sandbox>,
    Path((_v, waba)): Path<(String, String)>,
    Query(query): Query<QueryMap>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match query.get("hsm_id") {
        Some(id) => match sandbox.template(id) {
            Some(t) if t.waba == waba => sandbox.edit_template(id, &headers, &body),
            _ => no_object(&Method::POST, id),
        },
        None => sandbox.create_template(&waba, &headers, &body),
    }
}

async fn delete_templates(
    State(sandbox): State<Sandbox>,
    Path((_v, waba)): Path<(String, String)>,
    Query(query): Query<QueryMap>,
    headers: HeaderMap,
) -> Response {
    sandbox.delete_templates(&waba, &query, &headers)
}

async fn get_waba_template(
    State(sandbox): State<Sandbox>,
    Path((_v, waba, template_id)): Path<(String, String, String)>,
    Query(query): Query<QueryMap>,
    headers: HeaderMap,
) -> Response {
    sandbox.get_template(&template_id, Some(&waba), &query, &headers)
}

async fn list_phone_numbers(
    State(sandbox): State<Sandbox>,
    Path((_v, waba)): Path<(String, String)>,
    Query(query): Query<QueryMap>,
    headers: HeaderMap,
) -> Response {
    sandbox.list_phone_numbers(&waba, &query, &headers)
}

/// Registration and similar number edges: accepted (`{"success": true}`) for a number the
/// caller's token serves; anything else is Meta's "unsupported request".
async fn number_edge(
    State(sandbox): State<Sandbox>,
    method: Method,
    Path((_v, id, edge)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    const ACCEPTED: [&str; 5] = [
        "register",
        "deregister",
        "request_code",
        "verify_code",
        "block_users",
    ];
    let Ok(number) = sandbox.number(&id) else {
        return no_object(&method, &id);
    };
    if !Sandbox::token_ok(&number, &headers) {
        return invalid_token();
    }
    if ACCEPTED.contains(&edge.as_str()) && method != Method::GET {
        return success();
    }
    if edge == "settings" && method == Method::GET {
        return Json(json!({ "calling": { "status": "DISABLED" }, "storage_configuration": { "status": "DEFAULT" } }))
            .into_response();
    }
    no_object(&method, &format!("{id}/{edge}"))
}

async fn start_upload(
    State(sandbox): State<Sandbox>,
    Path((_v, _app)): Path<(String, String)>,
    Query(query): Query<QueryMap>,
) -> Response {
    sandbox.start_upload(&query)
}

/// Keeps only the `fields` a caller asked for (and `id`), as Graph does.
pub(crate) fn select_fields(object: Map<String, Value>, query: &QueryMap) -> Value {
    let Some(fields) = query.get("fields").filter(|f| !f.trim().is_empty()) else {
        return Value::Object(object);
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    Value::Object(
        object
            .into_iter()
            .filter(|(k, _)| k == "id" || wanted.contains(&k.as_str()))
            .collect(),
    )
}
