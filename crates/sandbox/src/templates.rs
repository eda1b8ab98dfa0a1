//! Message templates as Meta manages them: create (PENDING, then APPROVED or REJECTED after a
//! configurable review with a `message_template_status_update` webhook), list with filters,
//! cursor paging and `summary`, get, edit (back to review) and delete by name or id. Sends of
//! templates are checked against them (132001 unknown, 132000 parameter count).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chasqui_meta::graph::encode_query;
use chasqui_meta::template::{self, TemplateError};
use serde_json::{Map, Value, json};

use crate::graph::{
    QueryMap, Refusal, graph_error_with, invalid_token, no_object, param_error, select_fields,
    success,
};
use crate::state::{NumberConfig, Sandbox, StoredTemplate, new_object_id, random_hex};

const TEMPLATE_LIMIT: usize = 250;

fn template_error(e: &TemplateError) -> Response {
    let body = e.to_graph_error(&format!("SBX{}", random_hex(8)));
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Meta writes the text of authentication templates itself.
fn authentication_texts(body: &mut Map<String, Value>) {
    let Some(Value::Array(components)) = body.get_mut("components") else {
        return;
    };
    for c in components.iter_mut() {
        let Value::Object(c) = c else { continue };
        match c.get("type").and_then(Value::as_str) {
            Some("BODY") => {
                let mut text = "*{{1}}* is your verification code.".to_owned();
                if c.get("add_security_recommendation") == Some(&Value::Bool(true)) {
                    text.push_str(" For your security, do not share this code.");
                }
                c.insert("text".into(), json!(text));
            }
            Some("FOOTER") => {
                if let Some(m) = c.get("code_expiration_minutes").and_then(Value::as_i64) {
                    c.insert(
                        "text".into(),
                        json!(format!("This code expires in {m} minutes.")),
                    );
                }
            }
            _ => {}
        }
    }
}

impl Sandbox {
    pub(crate) fn template(&self, id: &str) -> Option<StoredTemplate> {
        self.world().templates.iter().find(|t| t.id == id).cloned()
    }

    /// Every WABA starts with Meta's sample `hello_world` template, approved.
    fn ensure_seeded(&self, waba: &str) {
        let mut w = self.world();
        if !w.seeded_wabas.insert(waba.to_owned()) {
            return;
        }
        let id = new_object_id();
        let body = json!({
            "name": "hello_world", "parameter_format": "POSITIONAL",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
                {"type": "BODY", "text": "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the time to test with us."},
                {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"}
            ],
            "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": id,
        });
        let Value::Object(body) = body else { return };
        w.templates.push(StoredTemplate {
            id,
            waba: waba.to_owned(),
            body,
        });
    }

    /// Authorizes a WABA call; `Err` is the response to send.
    fn waba_call(&self, waba: &str, headers: &HeaderMap, method: &Method) -> Result<(), Refusal> {
        match self.waba_token_ok(waba, headers) {
            None => Err(Box::new(no_object(method, waba))),
            Some(false) => Err(Box::new(invalid_token())),
            Some(true) => {
                self.ensure_seeded(waba);
                Ok(())
            }
        }
    }

    /// `POST /{waba_id}/message_templates`.
    pub(crate) fn create_template(&self, waba: &str, headers: &HeaderMap, body: &[u8]) -> Response {
        if let Err(r) = self.waba_call(waba, headers, &Method::POST) {
            return *r;
        }
        let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
            return param_error("The request body must be a JSON object.");
        };
        let mut stored = match template::validate_create(&request) {
            Ok(t) => t,
            Err(e) => return template_error(&e),
        };
        if stored.get("category").and_then(Value::as_str) == Some("AUTHENTICATION") {
            authentication_texts(&mut stored);
        }
        let id = new_object_id();
        let category = stored.get("category").cloned().unwrap_or(Value::Null);
        {
            let mut w = self.world();
            let (name, language) = (stored["name"].clone(), stored["language"].clone());
            let of_waba = w.templates.iter().filter(|t| t.waba == waba).count();
            if w.templates.iter().any(|t| {
                t.waba == waba
                    && t.body.get("name") == Some(&name)
                    && t.body.get("language") == Some(&language)
            }) {
                return template_error(&TemplateError {
                    subcode: 2388024,
                    title: "Content in This Language Already Exists",
                    message: format!(
                        "There is already {} content for the template {}.",
                        language.as_str().unwrap_or_default(),
                        name.as_str().unwrap_or_default()
                    ),
                });
            }
            if of_waba >= TEMPLATE_LIMIT {
                return template_error(&TemplateError {
                    subcode: 2388019,
                    title: "Message template limit exceeded",
                    message: format!(
                        "A WhatsApp Business Account may have {TEMPLATE_LIMIT} templates."
                    ),
                });
            }
            stored.insert("status".into(), json!("PENDING"));
            stored.insert("id".into(), json!(id));
            w.templates.push(StoredTemplate {
                id: id.clone(),
                waba: waba.to_owned(),
                body: stored.clone(),
            });
        }
        self.schedule_review(id.clone(), Value::Object(stored));
        Json(json!({ "id": id, "status": "PENDING", "category": category })).into_response()
    }

    /// After the configured review time, moves a still-pending template to the configured
    /// outcome and tells the WABA's webhook.
    fn schedule_review(&self, id: String, submitted: Value) {
        let sandbox = self.clone();
        tokio::spawn(async move {
            let settings = sandbox.settings();
            tokio::time::sleep(Duration::from_millis(settings.template_review_ms)).await;
            let outcome = settings.template_review_outcome;
            let reviewed = {
                let mut w = sandbox.world();
                let Some(t) = w.templates.iter_mut().find(|t| t.id == id) else {
                    return;
                };
                // An edit since submission starts its own review.
                let unchanged = t.body.get("components") == submitted.get("components");
                if t.field("status") != "PENDING" || !unchanged {
                    return;
                }
                t.body.insert("status".into(), json!(outcome));
                if outcome == "REJECTED" {
                    t.body
                        .insert("rejected_reason".into(), json!("INVALID_FORMAT"));
                }
                t.clone()
            };
            sandbox.announce_template_status(&reviewed).await;
        });
    }

    /// Delivers a `message_template_status_update` webhook to each receiver of the WABA.
    async fn announce_template_status(&self, t: &StoredTemplate) {
        let event = t.field("status");
        let reason = if event == "REJECTED" {
            "INVALID_FORMAT"
        } else {
            "NONE"
        };
        let template_id: Value =
            t.id.parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| json!(t.id));
        let value = json!({
            "event": event,
            "message_template_id": template_id,
            "message_template_name": t.field("name"),
            "message_template_language": t.field("language"),
            "reason": reason,
            "message_template_category": t.field("category"),
        });
        let mut receivers: Vec<NumberConfig> = Vec::new();
        for n in self.numbers_of(&t.waba) {
            if !receivers
                .iter()
                .any(|r| r.webhook_url == n.webhook_url && r.app_secret == n.app_secret)
            {
                receivers.push(n);
            }
        }
        if receivers.is_empty()
            && let Some((url, secret)) = &self.inner.auto
        {
            receivers.push(NumberConfig {
                phone_number_id: String::new(),
                business_account_id: t.waba.clone(),
                display_phone_number: String::new(),
                app_secret: secret.clone(),
                access_token: None,
                webhook_url: url.clone(),
            });
        }
        for receiver in receivers {
            if let Err(e) = self
                .deliver_account(&receiver, "message_template_status_update", value.clone())
                .await
            {
                tracing::warn!(error = %e, "sandbox template webhook failed");
            }
        }
    }

    /// `GET /{waba_id}/message_templates`.
    pub(crate) fn list_templates(
        &self,
        version: &str,
        waba: &str,
        query: &QueryMap,
        headers: &HeaderMap,
    ) -> Response {
        if let Err(r) = self.waba_call(waba, headers, &Method::GET) {
            return *r;
        }
        let list = |key: &str| -> Vec<String> {
            query
                .get(key)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_ascii_uppercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let (statuses, categories) = (list("status"), list("category"));
        let languages: Vec<String> = query
            .get("language")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        let name = query.get("name").map(|n| n.to_ascii_lowercase());
        let all: Vec<StoredTemplate> = self
            .world()
            .templates
            .iter()
            .filter(|t| t.waba == waba)
            .cloned()
            .collect();
        let matching: Vec<&StoredTemplate> = all
            .iter()
            .filter(|t| {
                name.as_ref()
                    .is_none_or(|n| t.field("name").contains(n.as_str()))
                    && (statuses.is_empty() || statuses.iter().any(|s| s == t.field("status")))
                    && (categories.is_empty()
                        || categories.iter().any(|c| c == t.field("category")))
                    && (languages.is_empty() || languages.iter().any(|l| l == t.field("language")))
            })
            .collect();
        let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
            None => 25,
            Some(Ok(l)) if (1..=1000).contains(&l) => l,
            Some(_) => return param_error("limit must be an integer from 1 to 1000."),
        };
        let decode = |c: &String| B64.decode(c).ok().and_then(|b| String::from_utf8(b).ok());
        let start = match (query.get("after"), query.get("before")) {
            (Some(after), _) => match decode(after) {
                Some(id) => matching
                    .iter()
                    .position(|t| t.id == id)
                    .map_or(matching.len(), |p| p + 1),
                None => return param_error("after is not a valid cursor."),
            },
            (None, Some(before)) => match decode(before) {
                Some(id) => matching
                    .iter()
                    .position(|t| t.id == id)
                    .unwrap_or(0)
                    .saturating_sub(limit),
                None => return param_error("before is not a valid cursor."),
            },
            (None, None) => 0,
        };
        let page: Vec<&&StoredTemplate> = matching.iter().skip(start).take(limit).collect();
        let data: Vec<Value> = page
            .iter()
            .map(|t| select_fields(t.body.clone(), query))
            .collect();
        let mut body = json!({ "data": data });
        if let (Some(first), Some(last)) = (page.first(), page.last()) {
            let mut paging = json!({ "cursors": {
                "before": B64.encode(&first.id), "after": B64.encode(&last.id),
            }});
            if start + page.len() < matching.len() {
                let mut params: Vec<String> = query
                    .iter()
                    .filter(|(k, _)| k.as_str() != "after" && k.as_str() != "before")
                    .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
                    .collect();
                params.sort();
                params.push(format!("after={}", B64.encode(&last.id)));
                paging["next"] = json!(format!(
                    "{}/{version}/{waba}/message_templates?{}",
                    self.base_url(),
                    params.join("&")
                ));
            }
            body["paging"] = paging;
        }
        if query.contains_key("summary") {
            body["summary"] = json!({
                "total_count": matching.len(),
                "message_template_count": all.len(),
                "message_template_limit": TEMPLATE_LIMIT,
                "are_translations_complete": true,
            });
        }
        Json(body).into_response()
    }

    /// `GET /{template_id}` and `GET /{waba_id}/message_templates/{template_id}`.
    pub(crate) fn get_template(
        &self,
        id: &str,
        waba: Option<&str>,
        query: &QueryMap,
        headers: &HeaderMap,
    ) -> Response {
        if let Some(waba) = waba {
            self.ensure_seeded(waba);
        }
        let Some(t) = self
            .template(id)
            .filter(|t| waba.is_none_or(|w| t.waba == w))
        else {
            return no_object(&Method::GET, id);
        };
        if let Err(r) = self.waba_call(&t.waba, headers, &Method::GET) {
            return *r;
        }
        Json(select_fields(t.body, query)).into_response()
    }

    /// `POST /{template_id}` (and `POST /{waba_id}/message_templates?hsm_id=`): an edit that
    /// sends the template back to review.
    pub(crate) fn edit_template(&self, id: &str, headers: &HeaderMap, body: &[u8]) -> Response {
        let Some(current) = self.template(id) else {
            return no_object(&Method::POST, id);
        };
        if let Err(r) = self.waba_call(&current.waba, headers, &Method::POST) {
            return *r;
        }
        let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
            return param_error("The request body must be a JSON object.");
        };
        if !["APPROVED", "REJECTED", "PAUSED"].contains(&current.field("status")) {
            return param_error(&format!(
                "Templates with status {} cannot be edited.",
                current.field("status")
            ));
        }
        let mut changes = match template::validate_edit(&current.body, &request) {
            Ok(c) => c,
            Err(e) => return template_error(&e),
        };
        let submitted = {
            let mut w = self.world();
            let Some(t) = w.templates.iter_mut().find(|t| t.id == id) else {
                return no_object(&Method::POST, id);
            };
            if t.field("category") == "AUTHENTICATION" {
                authentication_texts(&mut changes);
            }
            t.body.extend(changes);
            t.body.insert("status".into(), json!("PENDING"));
            t.body.remove("rejected_reason");
            Value::Object(t.body.clone())
        };
        self.schedule_review(id.to_owned(), submitted);
        success()
    }

    /// `DELETE /{waba_id}/message_templates?name=[&hsm_id=][&language=]`.
    pub(crate) fn delete_templates(
        &self,
        waba: &str,
        query: &QueryMap,
        headers: &HeaderMap,
    ) -> Response {
        if let Err(r) = self.waba_call(waba, headers, &Method::DELETE) {
            return *r;
        }
        let (name, hsm_id, language) = (
            query.get("name"),
            query.get("hsm_id"),
            query.get("language"),
        );
        if name.is_none() && hsm_id.is_none() {
            return param_error("The parameter name is required.");
        }
        let mut w = self.world();
        let before = w.templates.len();
        w.templates.retain(|t| {
            let hit = t.waba == waba
                && name.is_none_or(|n| t.field("name") == n)
                && hsm_id.is_none_or(|h| &t.id == h)
                && language.is_none_or(|l| t.field("language") == l);
            !hit
        });
        if w.templates.len() == before {
            return graph_error_with(
                StatusCode::BAD_REQUEST,
                100,
                "Invalid parameter",
                Some(&format!(
                    "No template matches name {:?}{}.",
                    name.map(String::as_str).unwrap_or_default(),
                    hsm_id
                        .map(|h| format!(" and hsm_id {h}"))
                        .unwrap_or_default()
                )),
            );
        }
        success()
    }

    /// Checks a template send against the WABA's templates, as Meta does synchronously.
    pub(crate) fn check_template_send(
        &self,
        number: &NumberConfig,
        request: &Map<String, Value>,
    ) -> Result<(), Refusal> {
        self.ensure_seeded(&number.business_account_id);
        let t = request.get("template").cloned().unwrap_or(Value::Null);
        let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
        let language = t
            .pointer("/language/code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let found = self
            .world()
            .templates
            .iter()
            .find(|s| {
                s.waba == number.business_account_id
                    && s.field("name") == name
                    && s.field("language") == language
            })
            .cloned();
        let missing = || {
            graph_error_with(
                StatusCode::NOT_FOUND,
                132001,
                "(#132001) Template name does not exist in the translation",
                Some(&format!(
                    "template name ({name}) does not exist in {language}"
                )),
            )
        };
        let Some(stored) = found else {
            return Err(Box::new(missing()));
        };
        match stored.field("status") {
            "APPROVED" => {}
            "PAUSED" => {
                return Err(Box::new(graph_error_with(
                    StatusCode::BAD_REQUEST,
                    132015,
                    "(#132015) Template is Paused",
                    Some(
                        "Template is paused due to low quality so it cannot be sent in a template message.",
                    ),
                )));
            }
            "DISABLED" => {
                return Err(Box::new(graph_error_with(
                    StatusCode::BAD_REQUEST,
                    132016,
                    "(#132016) Template is disabled",
                    Some(
                        "Template has been paused too many times due to low quality and is now permanently disabled.",
                    ),
                )));
            }
            _ => return Err(Box::new(missing())),
        }
        let components: Vec<Value> = stored
            .body
            .get("components")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (header, body) = template::expected_parameters(&components);
        let named = stored.field("parameter_format") == "NAMED";
        for (part, expected) in [("header", header), ("body", body)] {
            let given: Vec<Value> = t
                .get("components")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter().find(|c| {
                        c.get("type")
                            .and_then(Value::as_str)
                            .is_some_and(|k| k.eq_ignore_ascii_case(part))
                    })
                })
                .and_then(|c| c.get("parameters"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // A media header's parameter is its file, not a text variable.
            if part == "header" && expected.is_empty() {
                continue;
            }
            if given.len() != expected.len() {
                return Err(Box::new(graph_error_with(
                    StatusCode::BAD_REQUEST,
                    132000,
                    "(#132000) Number of parameters does not match the expected number of params",
                    Some(&format!(
                        "{part}: number of localizable_params ({}) does not match the expected number of params ({})",
                        given.len(),
                        expected.len()
                    )),
                )));
            }
            if named {
                for p in &given {
                    let n = p
                        .get("parameter_name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !expected.iter().any(|e| e == n) {
                        return Err(Box::new(graph_error_with(
                            StatusCode::BAD_REQUEST,
                            100,
                            "(#100) Invalid parameter",
                            Some(&format!(
                                "{part}: parameter_name {n:?} is not one of the template's parameters {expected:?}"
                            )),
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
