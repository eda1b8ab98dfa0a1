//! What each node asks of the world, built from its `data.config`: WhatsApp send requests
//! (Meta's body without the recipient), HTTP requests, and variable values. Every string is
//! interpolated (`{{vars.*}}`, `{{system.*}}`, `{{context.*}}`, `{{last_user_input}}`,
//! `${ENV:KEY}`), including nested ones (CTA texts and URLs, flow tokens and payloads).

use std::collections::HashMap;

use chasqui_core::interpolate;
use serde_json::{Map, Value, json};

/// An HTTP request of a `webhook` node.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// Absolute http(s) URL (checked against SSRF rules when performed).
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body text (JSON), if any.
    pub body: Option<String>,
}

/// Interpolation inputs: the execution's scope and the project's environment.
#[derive(Debug, Clone, Copy)]
pub struct Render<'a> {
    /// `{"vars", "system", "context", "metadata", "last_user_input"}`.
    pub scope: &'a Value,
    /// Project environment variables.
    pub env: &'a HashMap<String, String>,
}

impl Render<'_> {
    /// Renders one string.
    pub fn text(&self, text: &str) -> String {
        interpolate::render(text, self.scope, self.env)
    }

    /// Renders every string inside `value`.
    pub fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn str_of<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `send_text`: `message`, optional `preview_url`.
pub fn send_text(config: &Value, r: Render<'_>) -> Result<Value, String> {
    let message = str_of(config, "message").ok_or("config.message is required")?;
    let body = r.text(message);
    if body.trim().is_empty() {
        return Err("the message is empty after interpolation".into());
    }
    let mut text = json!({ "body": body });
    if let Some(preview) = config.get("preview_url").and_then(Value::as_bool) {
        text["preview_url"] = json!(preview);
    }
    Ok(json!({ "type": "text", "text": text }))
}

/// `send_template`: `template_id` (a name, or the id of a stored template the caller
/// resolves), `language_code`, and either Meta's `components` or `parameters` (an array of
/// positional values — the legacy form — or an object of named values), plus optional
/// `header_type` with `header_media_url`.
pub fn send_template(config: &Value, r: Render<'_>) -> Result<Value, String> {
    let name = str_of(config, "template_id")
        .or_else(|| str_of(config, "template_name"))
        .ok_or("config.template_id is required")?;
    let language = str_of(config, "language_code")
        .or_else(|| str_of(config, "language"))
        .unwrap_or("en_US");
    let mut components: Vec<Value> = Vec::new();
    if let Some(given) = config.get("components") {
        let Value::Array(items) = r.value(given) else {
            return Err("config.components must be an array (Meta's components format)".into());
        };
        components = items;
    } else {
        match config.get("parameters") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if !items.is_empty() => {
                let parameters: Vec<Value> = items
                    .iter()
                    .map(|p| match p {
                        Value::Object(_) => r.value(p),
                        Value::String(s) => json!({"type": "text", "text": r.text(s)}),
                        other => json!({"type": "text", "text": other.to_string()}),
                    })
                    .collect();
                components.push(json!({"type": "body", "parameters": parameters}));
            }
            Some(Value::Array(_)) => {}
            Some(Value::Object(named)) if !named.is_empty() => {
                let parameters: Vec<Value> = named
                    .iter()
                    .map(|(k, v)| {
                        let text = match v {
                            Value::String(s) => r.text(s),
                            other => other.to_string(),
                        };
                        json!({"type": "text", "parameter_name": k, "text": text})
                    })
                    .collect();
                components.push(json!({"type": "body", "parameters": parameters}));
            }
            Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(
                    "config.parameters must be an array (positional) or an object (named)".into(),
                );
            }
        }
        if let (Some(kind), Some(url)) = (
            str_of(config, "header_type"),
            str_of(config, "header_media_url"),
        ) && ["image", "video", "document"].contains(&kind)
        {
            components.insert(
                0,
                json!({"type": "header", "parameters": [{"type": kind, kind: {"link": r.text(url)}}]}),
            );
        }
    }
    let mut template = json!({ "name": r.text(name), "language": { "code": r.text(language) } });
    if !components.is_empty() {
        template["components"] = Value::Array(components);
    }
    Ok(json!({ "type": "template", "template": template }))
}

/// `send_interactive`: button, list, cta_url, flow or location_request_message with Kapso's
/// flat keys (`body_text`, `header_type`, `header_text`, `header_media_url`, `footer_text`,
/// `buttons`, `list_button_text`, `list_sections`, `cta_display_text`, `cta_url`, `flow_*`).
pub fn send_interactive(config: &Value, r: Render<'_>) -> Result<Value, String> {
    let kind = str_of(config, "interactive_type").ok_or("config.interactive_type is required")?;
    let body = str_of(config, "body_text").ok_or("config.body_text is required")?;
    let mut interactive = Map::new();
    interactive.insert("type".into(), json!(kind));
    match str_of(config, "header_type") {
        None | Some("none") => {}
        Some("text") => {
            let text = str_of(config, "header_text").ok_or("config.header_text is required")?;
            interactive.insert("header".into(), json!({"type": "text", "text": text}));
        }
        Some(media @ ("image" | "video" | "document")) => {
            let url =
                str_of(config, "header_media_url").ok_or("config.header_media_url is required")?;
            interactive.insert(
                "header".into(),
                json!({"type": media, media: {"link": url}}),
            );
        }
        Some(other) => return Err(format!("unknown header_type {other:?}")),
    }
    interactive.insert("body".into(), json!({ "text": body }));
    if let Some(footer) = str_of(config, "footer_text") {
        interactive.insert("footer".into(), json!({ "text": footer }));
    }
    let action = match kind {
        "button" => {
            let buttons = config
                .get("buttons")
                .and_then(Value::as_array)
                .ok_or("config.buttons is required")?;
            let replies: Vec<Value> = buttons
                .iter()
                .map(|b| json!({"type": "reply", "reply": {"id": b.get("id").cloned().unwrap_or(Value::Null), "title": b.get("title").cloned().unwrap_or(Value::Null)}}))
                .collect();
            json!({ "buttons": replies })
        }
        "list" => {
            let button =
                str_of(config, "list_button_text").ok_or("config.list_button_text is required")?;
            let sections = config
                .get("list_sections")
                .cloned()
                .ok_or("config.list_sections is required")?;
            json!({ "button": button, "sections": sections })
        }
        "cta_url" => {
            let text =
                str_of(config, "cta_display_text").ok_or("config.cta_display_text is required")?;
            let url = str_of(config, "cta_url").ok_or("config.cta_url is required")?;
            json!({"name": "cta_url", "parameters": {"display_text": text, "url": url}})
        }
        "flow" => {
            let mut parameters = Map::new();
            parameters.insert(
                "flow_message_version".into(),
                json!(str_of(config, "flow_message_version").unwrap_or("3")),
            );
            for key in ["flow_id", "flow_cta", "flow_token"] {
                if let Some(v) = str_of(config, key) {
                    parameters.insert(key.into(), json!(v));
                }
            }
            if let Some(action) = str_of(config, "flow_action") {
                parameters.insert("flow_action".into(), json!(action));
            }
            if let Some(payload) = config.get("flow_action_payload").filter(|p| !p.is_null()) {
                parameters.insert("flow_action_payload".into(), payload.clone());
            }
            json!({"name": "flow", "parameters": parameters})
        }
        "location_request_message" => json!({"name": "send_location"}),
        other => {
            return Err(format!(
                "unknown interactive_type {other:?} (button, list, cta_url, flow, location_request_message)"
            ));
        }
    };
    interactive.insert("action".into(), action);
    Ok(json!({ "type": "interactive", "interactive": r.value(&Value::Object(interactive)) }))
}

/// `webhook`: `url`, `method` (POST by default), `headers`, and `body_template` (a string)
/// or `body` (JSON).
pub fn http_request(config: &Value, r: Render<'_>) -> Result<HttpRequest, String> {
    let url = r.text(str_of(config, "url").ok_or("config.url is required")?);
    let method = str_of(config, "method")
        .or_else(|| str_of(config, "http_method"))
        .unwrap_or("POST")
        .to_ascii_uppercase();
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
        return Err(format!(
            "method {method:?} is not one of GET, POST, PUT, PATCH, DELETE"
        ));
    }
    let mut headers = Vec::new();
    if let Some(h) = config.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            let value = match v {
                Value::String(s) => r.text(s),
                other => other.to_string(),
            };
            headers.push((k.clone(), value));
        }
    }
    let body = if let Some(t) = str_of(config, "body_template") {
        Some(r.text(t))
    } else {
        config
            .get("body")
            .filter(|b| !b.is_null())
            .map(|b| match b {
                Value::String(s) => r.text(s),
                other => r.value(other).to_string(),
            })
    };
    let body = body.filter(|_| method != "GET");
    Ok(HttpRequest {
        method,
        url,
        headers,
        body,
    })
}

/// `set_variable`: the value of `variable_value` rendered and converted to `value_type`
/// (`string` by default, `number`, `boolean` or `json`).
pub fn variable_value(config: &Value, r: Render<'_>) -> Result<Value, String> {
    let raw = config.get("variable_value").cloned().unwrap_or(Value::Null);
    let kind = str_of(config, "value_type").unwrap_or("string");
    let text = match &raw {
        Value::String(s) => r.text(s),
        Value::Null => String::new(),
        other => r.value(other).to_string(),
    };
    match kind {
        "string" => Ok(Value::String(text)),
        "number" => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Some(json!(n as i64))
                } else {
                    serde_json::Number::from_f64(n).map(Value::Number)
                }
            })
            .ok_or_else(|| format!("{text:?} is not a number")),
        "boolean" => match text.trim() {
            "true" | "1" | "yes" => Ok(json!(true)),
            "false" | "0" | "no" | "" => Ok(json!(false)),
            other => Err(format!("{other:?} is not a boolean")),
        },
        "json" => match &raw {
            Value::String(_) => {
                serde_json::from_str(&text).map_err(|e| format!("the value is not JSON: {e}"))
            }
            other => Ok(r.value(other)),
        },
        other => Err(format!(
            "value_type {other:?} is not one of string, number, boolean, json"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render<T>(f: impl FnOnce(Render<'_>) -> T) -> T {
        let scope =
            json!({"vars": {"name": "Ana", "n": "7", "token": "tk-1"}, "last_user_input": "yes"});
        let env = HashMap::from([("SHOP".to_owned(), "https://shop.example".to_owned())]);
        f(Render {
            scope: &scope,
            env: &env,
        })
    }

    #[test]
    fn texts_and_templates() {
        let m = render(|r| send_text(&json!({"message": "Hi {{vars.name}}"}), r)).expect("text");
        assert_eq!(m["text"]["body"], "Hi Ana");
        let named = render(|r| {
            send_template(
                &json!({"template_id": "order_ready", "language_code": "es", "parameters": {"first_name": "{{vars.name}}"}}),
                r,
            )
        })
        .expect("template");
        assert_eq!(
            named["template"]["components"][0]["parameters"][0],
            json!({"type": "text", "parameter_name": "first_name", "text": "Ana"})
        );
        let legacy = render(|r| {
            send_template(
                &json!({"template_id": "t", "parameters": ["{{vars.n}}"], "header_type": "image", "header_media_url": "${ENV:SHOP}/a.png"}),
                r,
            )
        })
        .expect("legacy");
        assert_eq!(legacy["template"]["components"][0]["type"], "header");
        assert_eq!(
            legacy["template"]["components"][0]["parameters"][0]["image"]["link"],
            "https://shop.example/a.png"
        );
        assert_eq!(
            legacy["template"]["components"][1]["parameters"][0]["text"],
            "7"
        );
    }

    #[test]
    fn interactive_strings_are_all_rendered() {
        let cta = render(|r| {
            send_interactive(
                &json!({"interactive_type": "cta_url", "body_text": "Hola {{vars.name}}", "cta_display_text": "Shop {{vars.n}}", "cta_url": "${ENV:SHOP}/{{vars.name}}"}),
                r,
            )
        })
        .expect("cta");
        assert_eq!(
            cta["interactive"]["action"]["parameters"]["url"],
            "https://shop.example/Ana"
        );
        assert_eq!(
            cta["interactive"]["action"]["parameters"]["display_text"],
            "Shop 7"
        );
        let flow = render(|r| {
            send_interactive(
                &json!({"interactive_type": "flow", "body_text": "b", "flow_id": "1", "flow_cta": "Go", "flow_token": "{{vars.token}}", "flow_action": "navigate", "flow_action_payload": {"screen": "S", "data": {"who": "{{vars.name}}"}}}),
                r,
            )
        })
        .expect("flow");
        let p = &flow["interactive"]["action"]["parameters"];
        assert_eq!(p["flow_token"], "tk-1");
        assert_eq!(p["flow_action_payload"]["data"]["who"], "Ana");
        let err = render(|r| {
            send_interactive(
                &json!({"interactive_type": "carousel", "body_text": "b"}),
                r,
            )
        })
        .expect_err("unknown");
        assert!(err.contains("carousel"));
    }

    #[test]
    fn variables_convert_or_explain() {
        let n = render(|r| {
            variable_value(
                &json!({"variable_value": "{{vars.n}}", "value_type": "number"}),
                r,
            )
        });
        assert_eq!(n, Ok(json!(7)));
        let bad = render(|r| {
            variable_value(
                &json!({"variable_value": "{{vars.name}}", "value_type": "number"}),
                r,
            )
        });
        assert_eq!(bad, Err("\"Ana\" is not a number".to_owned()));
        let j = render(|r| {
            variable_value(
                &json!({"variable_value": "{\"a\": \"{{vars.name}}\"}", "value_type": "json"}),
                r,
            )
        });
        assert_eq!(j, Ok(json!({"a": "Ana"})));
    }
}
