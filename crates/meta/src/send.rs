//! Validation of Meta's send requests (`POST /{phone_number_id}/messages`) against the
//! Cloud API's documented limits, so a bad request is refused before a Graph call. Errors are
//! the human `details` of Meta's error 100.

use serde_json::{Map, Value};

/// Message types the Cloud API sends.
pub const TYPES: [&str; 11] = [
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
];

type Check = Result<(), String>;

fn text<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(Value::as_str)
}

fn required(v: &Value, path: &str, field: &str, max: usize) -> Check {
    match text(v, path) {
        Some(s) if !s.trim().is_empty() => at_most(s, field, max),
        Some(_) => Err(format!("The parameter {field} must not be empty.")),
        None => Err(format!("The parameter {field} is required.")),
    }
}

fn optional(v: &Value, path: &str, field: &str, max: usize) -> Check {
    match v.pointer(path) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => at_most(s, field, max),
        Some(_) => Err(format!("The parameter {field} must be a string.")),
    }
}

fn at_most(s: &str, field: &str, max: usize) -> Check {
    if s.chars().count() > max {
        Err(format!(
            "The parameter {field} is longer than {max} characters."
        ))
    } else {
        Ok(())
    }
}

fn http_url(v: &Value, path: &str, field: &str) -> Check {
    match text(v, path) {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => at_most(u, field, 2000),
        Some(_) => Err(format!("The parameter {field} must be an http(s) URL.")),
        None => Err(format!("The parameter {field} is required.")),
    }
}

/// Checks a send request; returns its message type.
pub fn validate(request: &Map<String, Value>) -> Result<String, String> {
    if request.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err("The parameter messaging_product is required and must be \"whatsapp\".".into());
    }
    let kind = request
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("text");
    if !TYPES.contains(&kind) {
        return Err(format!("Unsupported message type {kind:?}."));
    }
    let payload = match request.get(kind) {
        Some(p @ Value::Object(_)) => p,
        Some(Value::Array(_)) if kind == "contacts" => &request[kind],
        Some(_) => return Err(format!("The parameter {kind} has the wrong shape.")),
        None => return Err(format!("The parameter {kind} is required.")),
    };
    if let Some(context) = request.get("context") {
        required(context, "/message_id", "context.message_id", 256)?;
    }
    match kind {
        "text" => {
            required(payload, "/body", "text.body", 4096)?;
            if payload.get("preview_url").is_some_and(|p| !p.is_boolean()) {
                return Err("The parameter text.preview_url must be a boolean.".into());
            }
            Ok(())
        }
        "image" | "audio" | "video" | "document" | "sticker" => media(kind, payload),
        "location" => location(payload),
        "contacts" => contacts(payload),
        "interactive" => interactive(payload),
        "template" => template(payload),
        "reaction" => {
            required(payload, "/message_id", "reaction.message_id", 256)?;
            match payload.get("emoji") {
                Some(Value::String(e)) if e.chars().count() <= 8 => Ok(()),
                _ => Err("The parameter reaction.emoji must be an emoji, or empty to remove the reaction.".into()),
            }
        }
        _ => Ok(()),
    }?;
    Ok(kind.to_owned())
}

fn media(kind: &str, m: &Value) -> Check {
    match (m.get("id"), m.get("link")) {
        (Some(Value::String(id)), None) if !id.is_empty() => {}
        (None, Some(_)) => http_url(m, "/link", &format!("{kind}.link"))?,
        (Some(_), Some(_)) => {
            return Err(format!("Use either {kind}.id or {kind}.link, not both."));
        }
        _ => {
            return Err(format!(
                "The parameter {kind}.id or {kind}.link is required."
            ));
        }
    }
    if matches!(kind, "audio" | "sticker") && m.get("caption").is_some() {
        return Err(format!("{kind} messages cannot have a caption."));
    }
    optional(m, "/caption", &format!("{kind}.caption"), 1024)?;
    if kind == "document" {
        optional(m, "/filename", "document.filename", 240)?;
    }
    Ok(())
}

fn location(l: &Value) -> Check {
    let coordinate = |key: &str, limit: f64| match l.get(key).and_then(Value::as_f64) {
        Some(x) if x.abs() <= limit => Ok(()),
        _ => Err(format!(
            "The parameter location.{key} must be a number from -{limit} to {limit}."
        )),
    };
    coordinate("latitude", 90.0)?;
    coordinate("longitude", 180.0)?;
    optional(l, "/name", "location.name", 1000)?;
    optional(l, "/address", "location.address", 1000)
}

fn contacts(c: &Value) -> Check {
    let cards = c
        .as_array()
        .ok_or("The parameter contacts must be a list.")?;
    if cards.is_empty() || cards.len() > 257 {
        return Err("The parameter contacts must hold 1 to 257 contacts.".into());
    }
    for (i, card) in cards.iter().enumerate() {
        required(
            card,
            "/name/formatted_name",
            &format!("contacts[{i}].name.formatted_name"),
            1000,
        )?;
    }
    Ok(())
}

fn interactive(i: &Value) -> Check {
    let kind = text(i, "/type").ok_or("The parameter interactive.type is required.")?;
    const KINDS: [&str; 7] = [
        "button",
        "list",
        "cta_url",
        "flow",
        "location_request_message",
        "product",
        "product_list",
    ];
    if !KINDS.contains(&kind) {
        return Err(format!("Unsupported interactive type {kind:?}."));
    }
    if kind != "product" {
        required(i, "/body/text", "interactive.body.text", 1024)?;
    }
    optional(i, "/footer/text", "interactive.footer.text", 60)?;
    if text(i, "/header/type") == Some("text") {
        required(i, "/header/text", "interactive.header.text", 60)?;
    }
    match kind {
        "button" => {
            let buttons = i
                .pointer("/action/buttons")
                .and_then(Value::as_array)
                .ok_or("The parameter interactive.action.buttons is required.")?;
            if buttons.is_empty() || buttons.len() > 3 {
                return Err("interactive.action.buttons must hold 1 to 3 buttons.".into());
            }
            let mut titles = Vec::new();
            for (n, b) in buttons.iter().enumerate() {
                required(
                    b,
                    "/reply/id",
                    &format!("interactive.action.buttons[{n}].reply.id"),
                    256,
                )?;
                required(
                    b,
                    "/reply/title",
                    &format!("interactive.action.buttons[{n}].reply.title"),
                    20,
                )?;
                let title = text(b, "/reply/title").unwrap_or_default();
                if titles.contains(&title) {
                    return Err("Button titles must be unique.".into());
                }
                titles.push(title);
            }
            Ok(())
        }
        "list" => {
            required(i, "/action/button", "interactive.action.button", 20)?;
            let sections = i
                .pointer("/action/sections")
                .and_then(Value::as_array)
                .ok_or("The parameter interactive.action.sections is required.")?;
            if sections.is_empty() || sections.len() > 10 {
                return Err("interactive.action.sections must hold 1 to 10 sections.".into());
            }
            let mut rows = 0;
            for (s, section) in sections.iter().enumerate() {
                if sections.len() > 1 {
                    required(
                        section,
                        "/title",
                        &format!("interactive.action.sections[{s}].title"),
                        24,
                    )?;
                }
                let list = section
                    .get("rows")
                    .and_then(Value::as_array)
                    .ok_or("Every section needs rows.")?;
                for (r, row) in list.iter().enumerate() {
                    rows += 1;
                    required(row, "/id", &format!("sections[{s}].rows[{r}].id"), 200)?;
                    required(row, "/title", &format!("sections[{s}].rows[{r}].title"), 24)?;
                    optional(
                        row,
                        "/description",
                        &format!("sections[{s}].rows[{r}].description"),
                        72,
                    )?;
                }
            }
            if rows == 0 || rows > 10 {
                return Err("A list holds 1 to 10 rows in all.".into());
            }
            Ok(())
        }
        "cta_url" => {
            if text(i, "/action/name") != Some("cta_url") {
                return Err("interactive.action.name must be \"cta_url\".".into());
            }
            required(
                i,
                "/action/parameters/display_text",
                "interactive.action.parameters.display_text",
                20,
            )?;
            http_url(
                i,
                "/action/parameters/url",
                "interactive.action.parameters.url",
            )
        }
        "flow" => {
            if text(i, "/action/name") != Some("flow") {
                return Err("interactive.action.name must be \"flow\".".into());
            }
            required(
                i,
                "/action/parameters/flow_cta",
                "interactive.action.parameters.flow_cta",
                30,
            )?;
            if i.pointer("/action/parameters/flow_id").is_none()
                && i.pointer("/action/parameters/flow_name").is_none()
            {
                return Err(
                    "interactive.action.parameters.flow_id or flow_name is required.".into(),
                );
            }
            Ok(())
        }
        "location_request_message" => {
            if text(i, "/action/name") != Some("send_location") {
                return Err("interactive.action.name must be \"send_location\".".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn template(t: &Value) -> Check {
    required(t, "/name", "template.name", 512)?;
    required(t, "/language/code", "template.language.code", 15)?;
    let Some(components) = t.get("components") else {
        return Ok(());
    };
    let components = components
        .as_array()
        .ok_or("The parameter template.components must be a list.")?;
    // A template's parameters are either all named or all positional.
    let (mut named, mut positional) = (0, 0);
    for (c, component) in components.iter().enumerate() {
        let kind = text(component, "/type")
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| format!("The parameter template.components[{c}].type is required."))?;
        if !matches!(kind.as_str(), "header" | "body" | "button" | "footer") {
            return Err(format!("Unknown template component type {kind:?}."));
        }
        if kind == "button" {
            let sub_type = text(component, "/sub_type").map(str::to_ascii_lowercase);
            if !matches!(
                sub_type.as_deref(),
                Some(
                    "quick_reply" | "url" | "copy_code" | "flow" | "catalog" | "mpm" | "voice_call"
                )
            ) {
                return Err(format!(
                    "template.components[{c}].sub_type must name the button type."
                ));
            }
            let index = match component.get("index") {
                Some(Value::String(s)) => s.parse::<u64>().ok(),
                Some(Value::Number(n)) => n.as_u64(),
                _ => None,
            };
            if index.is_none_or(|i| i >= 10) {
                return Err(format!(
                    "template.components[{c}].index must be the button position, 0 to 9."
                ));
            }
        }
        let Some(parameters) = component.get("parameters") else {
            continue;
        };
        let parameters = parameters
            .as_array()
            .ok_or_else(|| format!("template.components[{c}].parameters must be a list."))?;
        for (n, p) in parameters.iter().enumerate() {
            let at = format!("template.components[{c}].parameters[{n}]");
            let ptype = text(p, "/type")
                .map(str::to_ascii_lowercase)
                .ok_or_else(|| format!("{at}.type is required."))?;
            match ptype.as_str() {
                "text" => required(p, "/text", &format!("{at}.text"), 32_768)?,
                "currency" => {
                    required(
                        p,
                        "/currency/fallback_value",
                        &format!("{at}.currency.fallback_value"),
                        256,
                    )?;
                    required(p, "/currency/code", &format!("{at}.currency.code"), 3)?;
                    if p.pointer("/currency/amount_1000")
                        .and_then(Value::as_i64)
                        .is_none()
                    {
                        return Err(format!("{at}.currency.amount_1000 must be an integer."));
                    }
                }
                "date_time" => required(
                    p,
                    "/date_time/fallback_value",
                    &format!("{at}.date_time.fallback_value"),
                    256,
                )?,
                "image" | "video" | "document" => media(
                    &ptype,
                    p.get(&ptype)
                        .ok_or_else(|| format!("{at}.{ptype} is required."))?,
                )?,
                "location" => location(
                    p.get("location")
                        .ok_or_else(|| format!("{at}.location is required."))?,
                )?,
                "payload" => required(p, "/payload", &format!("{at}.payload"), 256)?,
                "coupon_code" => required(p, "/coupon_code", &format!("{at}.coupon_code"), 15)?,
                "action" | "product" => {}
                other => {
                    return Err(format!(
                        "{at}.type {other:?} is not a template parameter type."
                    ));
                }
            }
            if kind == "body" {
                if p.get("parameter_name").is_some() {
                    let name = text(p, "/parameter_name").unwrap_or_default();
                    let valid = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
                    if !valid {
                        return Err(format!(
                            "{at}.parameter_name must be lowercase letters, digits and underscores, starting with a letter."
                        ));
                    }
                    named += 1;
                } else {
                    positional += 1;
                }
            }
        }
    }
    if named > 0 && positional > 0 {
        return Err(
            "Template body parameters must be all named (parameter_name) or all positional.".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> Result<String, String> {
        match v {
            Value::Object(m) => validate(&m),
            _ => Err("not an object".into()),
        }
    }

    #[test]
    fn every_request_fixture_is_valid() {
        let dir = crate::fixtures("send");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if !name.starts_with("request-") || name.starts_with("request-mark-read") {
                continue;
            }
            let v: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            check(v).unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
        }
        assert!(seen >= 15, "{seen}");
    }

    #[test]
    fn limits_are_enforced() {
        let base = |kind: &str, payload: Value| json!({"messaging_product": "whatsapp", "to": "1", "type": kind, kind: payload});
        let bad = [
            base("text", json!({"body": "x".repeat(4097)})),
            base("image", json!({})),
            base("image", json!({"id": "1", "link": "https://x"})),
            base("image", json!({"link": "ftp://x"})),
            base("audio", json!({"id": "1", "caption": "no"})),
            base("location", json!({"latitude": 91, "longitude": 0})),
            base("reaction", json!({"emoji": "👍"})),
            base(
                "interactive",
                json!({"type": "button", "body": {"text": "b"}, "action": {"buttons": []}}),
            ),
            base(
                "interactive",
                json!({"type": "button", "body": {"text": "b"}, "action": {"buttons": [
                {"type": "reply", "reply": {"id": "1", "title": "Same"}}, {"type": "reply", "reply": {"id": "2", "title": "Same"}}]}}),
            ),
            base(
                "interactive",
                json!({"type": "button", "body": {"text": "b"}, "action": {"buttons": [
                {"type": "reply", "reply": {"id": "1", "title": "A title far longer than twenty"}}]}}),
            ),
            base(
                "interactive",
                json!({"type": "cta_url", "body": {"text": "b"}, "action": {"name": "cta_url", "parameters": {"display_text": "Go", "url": "javascript:x"}}}),
            ),
            base("template", json!({"name": "t"})),
            base(
                "template",
                json!({"name": "t", "language": {"code": "en"}, "components": [{"type": "body", "parameters": [
                {"type": "text", "parameter_name": "first_name", "text": "Ana"}, {"type": "text", "text": "positional"}]}]}),
            ),
            base(
                "template",
                json!({"name": "t", "language": {"code": "en"}, "components": [{"type": "body", "parameters": [
                {"type": "text", "parameter_name": "First Name", "text": "Ana"}]}]}),
            ),
            base(
                "template",
                json!({"name": "t", "language": {"code": "en"}, "components": [{"type": "button", "sub_type": "url", "index": 12}]}),
            ),
            base(
                "template",
                json!({"name": "t", "language": {"code": "en"}, "components": [{"type": "header", "parameters": [{"type": "image", "image": {}}]}]}),
            ),
            base(
                "template",
                json!({"name": "t", "language": {"code": "en"}, "components": [{"type": "sidebar"}]}),
            ),
        ];
        for v in bad {
            assert!(check(v.clone()).is_err(), "{v}");
        }
        assert_eq!(
            check(base(
                "reaction",
                json!({"message_id": "wamid.X", "emoji": ""})
            )),
            Ok("reaction".into())
        );
    }
}
