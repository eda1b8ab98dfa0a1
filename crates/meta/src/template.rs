//! Message templates: validation of create and edit requests against Meta's documented rules,
//! normalised to the shape Meta returns (upper-case `type`, `format`, `category` and
//! `parameter_format`), and the placeholders a template's text declares.

use serde_json::{Map, Value, json};

/// Why a template request is refused: Meta's template-management error (code 100 with a
/// subcode and a user-facing title).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{title}: {message}")]
pub struct TemplateError {
    /// Meta's `error_subcode`.
    pub subcode: u32,
    /// Meta's `error_user_title`.
    pub title: &'static str,
    /// Meta's `error_user_msg`: what is wrong, precisely.
    pub message: String,
}

impl TemplateError {
    fn new(subcode: u32, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            subcode,
            title,
            message: message.into(),
        }
    }

    /// Meta's error body for this refusal.
    pub fn to_graph_error(&self, fbtrace_id: &str) -> Value {
        json!({ "error": {
            "message": "Invalid parameter",
            "type": "OAuthException",
            "code": 100,
            "error_subcode": self.subcode,
            "is_transient": false,
            "error_user_title": self.title,
            "error_user_msg": self.message,
            "fbtrace_id": fbtrace_id,
        }})
    }
}

type Check<T = ()> = Result<T, TemplateError>;

const INVALID: u32 = 2388040;
const NAME_FORMAT: u32 = 2388046;
const HEADER_FORMAT: u32 = 2388047;
const BODY_FORMAT: u32 = 2388072;
const FOOTER_FORMAT: u32 = 2388073;
const VARIABLES: u32 = 2388299;

fn invalid(message: impl Into<String>) -> TemplateError {
    TemplateError::new(INVALID, "Invalid parameter", message)
}

/// Template categories.
pub const CATEGORIES: [&str; 3] = ["MARKETING", "UTILITY", "AUTHENTICATION"];

/// Template statuses Meta reports.
pub const STATUSES: [&str; 13] = [
    "APPROVED",
    "PENDING",
    "REJECTED",
    "PAUSED",
    "DISABLED",
    "IN_APPEAL",
    "PENDING_DELETION",
    "DELETED",
    "LIMIT_EXCEEDED",
    "ARCHIVED",
    "LOCKED",
    "FLAGGED",
    "REINSTATED",
];

/// How a template's variables are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterFormat {
    /// `{{1}}`, `{{2}}`, ...
    Positional,
    /// `{{first_name}}`, ...
    Named,
}

impl ParameterFormat {
    /// Meta's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterFormat::Positional => "POSITIONAL",
            ParameterFormat::Named => "NAMED",
        }
    }

    fn parse(v: Option<&Value>) -> Check<Self> {
        match v {
            None | Some(Value::Null) => Ok(ParameterFormat::Positional),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("positional") => {
                Ok(ParameterFormat::Positional)
            }
            Some(Value::String(s)) if s.eq_ignore_ascii_case("named") => Ok(ParameterFormat::Named),
            Some(other) => Err(invalid(format!(
                "parameter_format must be POSITIONAL or NAMED, not {other}"
            ))),
        }
    }
}

/// The `{{...}}` placeholders of a text, in order of appearance.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        found.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    found
}

/// The variables of a text, checked against the template's parameter format: positional
/// variables are `1..=n` in order of first appearance, named ones are lower-case and unique.
fn variables(text: &str, format: ParameterFormat, field: &str) -> Check<Vec<String>> {
    let found = placeholders(text);
    let mut distinct: Vec<String> = Vec::new();
    for name in &found {
        if !distinct.contains(name) {
            distinct.push(name.clone());
        }
    }
    match format {
        ParameterFormat::Positional => {
            for (i, name) in distinct.iter().enumerate() {
                if name.parse::<usize>().ok() != Some(i + 1) {
                    return Err(TemplateError::new(
                        VARIABLES,
                        "Invalid variable parameters",
                        format!(
                            "{field}: positional variables must be {{{{1}}}}, {{{{2}}}}, ... in order; found {{{{{name}}}}}"
                        ),
                    ));
                }
            }
        }
        ParameterFormat::Named => {
            for name in &distinct {
                let ok = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !name.bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    return Err(TemplateError::new(
                        VARIABLES,
                        "Invalid variable parameters",
                        format!(
                            "{field}: named variables use lower-case letters, digits and underscores; found {{{{{name}}}}}"
                        ),
                    ));
                }
            }
        }
    }
    let trimmed = text.trim();
    if !distinct.is_empty() && (trimmed.starts_with("{{") || trimmed.ends_with("}}")) {
        return Err(TemplateError::new(
            VARIABLES,
            "Variables can't be at the start or end of the template",
            format!("{field} must not start or end with a variable"),
        ));
    }
    if text.contains("}}{{") {
        return Err(TemplateError::new(
            VARIABLES,
            "Invalid variable parameters",
            format!("{field}: variables must be separated by text"),
        ));
    }
    Ok(distinct)
}

fn upper(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_ascii_uppercase)
}

fn text_of<'a>(c: &'a Map<String, Value>, field: &str) -> Check<Option<&'a str>> {
    match c.get("text") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{field} text must be a string"))),
    }
}

fn check_len(s: &str, max: usize, subcode: u32, title: &'static str, field: &str) -> Check {
    if s.trim().is_empty() {
        return Err(TemplateError::new(
            subcode,
            title,
            format!("{field} must not be empty"),
        ));
    }
    let n = s.chars().count();
    if n > max {
        return Err(TemplateError::new(
            subcode,
            title,
            format!("{field} is {n} characters; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// Checks that the examples cover the variables.
fn examples(
    c: &Map<String, Value>,
    vars: &[String],
    format: ParameterFormat,
    part: &str,
    subcode: u32,
    title: &'static str,
) -> Check {
    if vars.is_empty() {
        return Ok(());
    }
    let example = c.get("example");
    let missing = |what: &str| {
        TemplateError::new(
            subcode,
            title,
            format!("{part} has variables; {what} must give an example for each"),
        )
    };
    match format {
        ParameterFormat::Positional => {
            let key = format!("{part}_text");
            let values = example.and_then(|e| e.get(&key));
            let row = match (part, values) {
                ("body", Some(Value::Array(rows))) => match rows.first() {
                    Some(Value::Array(row)) => row.len(),
                    _ => 0,
                },
                (_, Some(Value::Array(row))) => row.len(),
                _ => 0,
            };
            if row != vars.len() {
                return Err(missing(&format!("example.{key}")));
            }
        }
        ParameterFormat::Named => {
            let key = format!("{part}_text_named_params");
            let given: Vec<&str> = example
                .and_then(|e| e.get(&key))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.get("param_name").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(name) = vars.iter().find(|v| !given.contains(&v.as_str())) {
                return Err(missing(&format!("example.{key} (missing {name})")));
            }
        }
    }
    Ok(())
}

/// Checks a template's components for its category and parameter format, returning them
/// normalised (upper-case `type` and `format`).
pub fn components(
    raw: Option<&Value>,
    category: &str,
    format: ParameterFormat,
) -> Check<Vec<Value>> {
    let list = match raw {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(invalid("components must list at least a BODY"));
        }
        Some(_) => return Err(invalid("components must be an array")),
    };
    let auth = category == "AUTHENTICATION";
    let mut out = Vec::with_capacity(list.len());
    let mut seen: Vec<String> = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let Value::Object(c) = c else {
            return Err(invalid(format!("components[{i}] must be an object")));
        };
        let Some(kind) = upper(c.get("type")) else {
            return Err(invalid(format!("components[{i}].type is required")));
        };
        if seen.contains(&kind) {
            return Err(invalid(format!("components has more than one {kind}")));
        }
        let mut c = c.clone();
        c.insert("type".into(), json!(kind));
        match kind.as_str() {
            "HEADER" if auth => {
                return Err(invalid("AUTHENTICATION templates have no HEADER"));
            }
            "HEADER" => header(&mut c, format)?,
            "BODY" if auth => {
                if c.get("text").is_some() {
                    return Err(TemplateError::new(
                        BODY_FORMAT,
                        "Body format incorrect",
                        "AUTHENTICATION templates have no body text: Meta writes it; use add_security_recommendation",
                    ));
                }
                if let Some(v) = c.get("add_security_recommendation")
                    && !v.is_boolean()
                {
                    return Err(invalid("add_security_recommendation must be a boolean"));
                }
            }
            "BODY" => {
                let text = text_of(&c, "BODY")?.ok_or_else(|| invalid("BODY text is required"))?;
                check_len(
                    text,
                    1024,
                    BODY_FORMAT,
                    "Body format incorrect",
                    "BODY text",
                )?;
                let vars = variables(text, format, "BODY text")?;
                examples(
                    &c,
                    &vars,
                    format,
                    "body",
                    BODY_FORMAT,
                    "Body format incorrect",
                )?;
            }
            "FOOTER" if auth => {
                if c.get("text").is_some() {
                    return Err(TemplateError::new(
                        FOOTER_FORMAT,
                        "Footer format incorrect",
                        "AUTHENTICATION footers have no text; use code_expiration_minutes",
                    ));
                }
                if let Some(m) = c.get("code_expiration_minutes") {
                    match m.as_i64() {
                        Some(1..=90) => {}
                        _ => return Err(invalid("code_expiration_minutes must be 1 to 90")),
                    }
                }
            }
            "FOOTER" => {
                let text =
                    text_of(&c, "FOOTER")?.ok_or_else(|| invalid("FOOTER text is required"))?;
                check_len(
                    text,
                    60,
                    FOOTER_FORMAT,
                    "Footer format incorrect",
                    "FOOTER text",
                )?;
                if !placeholders(text).is_empty() {
                    return Err(TemplateError::new(
                        FOOTER_FORMAT,
                        "Footer format incorrect",
                        "FOOTER text cannot contain variables",
                    ));
                }
            }
            "BUTTONS" => buttons(&mut c, auth)?,
            "CAROUSEL" | "LIMITED_TIME_OFFER" if !auth => {}
            other => {
                return Err(invalid(format!(
                    "components[{i}].type {other:?} is not one of HEADER, BODY, FOOTER, BUTTONS, CAROUSEL, LIMITED_TIME_OFFER"
                )));
            }
        }
        seen.push(kind);
        out.push(Value::Object(c));
    }
    if !seen.iter().any(|k| k == "BODY") {
        return Err(invalid("components must include a BODY"));
    }
    if auth && !seen.iter().any(|k| k == "BUTTONS") {
        return Err(invalid(
            "AUTHENTICATION templates need a BUTTONS component with one OTP button",
        ));
    }
    Ok(out)
}

fn header(c: &mut Map<String, Value>, format: ParameterFormat) -> Check {
    let Some(kind) = upper(c.get("format")) else {
        return Err(TemplateError::new(
            HEADER_FORMAT,
            "Header format incorrect",
            "HEADER format is required (TEXT, IMAGE, VIDEO, DOCUMENT, GIF or LOCATION)",
        ));
    };
    c.insert("format".into(), json!(kind));
    match kind.as_str() {
        "TEXT" => {
            let text = text_of(c, "HEADER")?.ok_or_else(|| {
                TemplateError::new(
                    HEADER_FORMAT,
                    "Header format incorrect",
                    "HEADER text is required",
                )
            })?;
            check_len(
                text,
                60,
                HEADER_FORMAT,
                "Header format incorrect",
                "HEADER text",
            )?;
            if text.contains('\n') {
                return Err(TemplateError::new(
                    HEADER_FORMAT,
                    "Header format incorrect",
                    "HEADER text cannot contain new lines",
                ));
            }
            let vars = variables(text, format, "HEADER text").or_else(|e| {
                // A header may be only its variable; Meta allows that one case.
                if placeholders(text).len() == 1 && e.subcode == VARIABLES {
                    Ok(placeholders(text))
                } else {
                    Err(e)
                }
            })?;
            if vars.len() > 1 {
                return Err(TemplateError::new(
                    HEADER_FORMAT,
                    "Header format incorrect",
                    "HEADER text can have at most one variable",
                ));
            }
            examples(
                c,
                &vars,
                format,
                "header",
                HEADER_FORMAT,
                "Header format incorrect",
            )
        }
        "IMAGE" | "VIDEO" | "DOCUMENT" | "GIF" => {
            let handle = c
                .get("example")
                .and_then(|e| e.get("header_handle"))
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(Value::is_string));
            if handle {
                Ok(())
            } else {
                Err(TemplateError::new(
                    HEADER_FORMAT,
                    "Header format incorrect",
                    format!("a {kind} HEADER needs example.header_handle"),
                ))
            }
        }
        "LOCATION" => Ok(()),
        other => Err(TemplateError::new(
            HEADER_FORMAT,
            "Header format incorrect",
            format!(
                "HEADER format {other:?} is not one of TEXT, IMAGE, VIDEO, DOCUMENT, GIF, LOCATION"
            ),
        )),
    }
}

fn label(b: &Map<String, Value>, i: usize, required: bool) -> Check {
    match b.get("text") {
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if s.trim().is_empty() || n > 25 {
                return Err(invalid(format!(
                    "buttons[{i}].text must be 1 to 25 characters"
                )));
            }
            Ok(())
        }
        None if !required => Ok(()),
        _ => Err(invalid(format!("buttons[{i}].text is required"))),
    }
}

fn buttons(c: &mut Map<String, Value>, auth: bool) -> Check {
    let list = match c.get("buttons") {
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= 10 => list.clone(),
        _ => return Err(invalid("BUTTONS must list 1 to 10 buttons")),
    };
    let mut normalised = Vec::with_capacity(list.len());
    let (mut urls, mut phones, mut copy_codes, mut otps) = (0, 0, 0, 0);
    let mut quick_reply_runs = 0;
    let mut previous_quick_reply = false;
    for (i, b) in list.iter().enumerate() {
        let Value::Object(b) = b else {
            return Err(invalid(format!("buttons[{i}] must be an object")));
        };
        let Some(kind) = upper(b.get("type")) else {
            return Err(invalid(format!("buttons[{i}].type is required")));
        };
        let mut b = b.clone();
        b.insert("type".into(), json!(kind));
        if auth && kind != "OTP" {
            return Err(invalid(
                "AUTHENTICATION templates take exactly one button, of type OTP",
            ));
        }
        let quick_reply = kind == "QUICK_REPLY";
        if quick_reply && !previous_quick_reply {
            quick_reply_runs += 1;
        }
        previous_quick_reply = quick_reply;
        match kind.as_str() {
            "QUICK_REPLY" => label(&b, i, true)?,
            "URL" => {
                urls += 1;
                label(&b, i, true)?;
                let url = b.get("url").and_then(Value::as_str).unwrap_or_default();
                if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000
                {
                    return Err(invalid(format!(
                        "buttons[{i}].url must be an http(s) URL of at most 2000 characters"
                    )));
                }
                let vars = placeholders(url);
                if vars.len() > 1 || (vars.len() == 1 && !url.trim_end().ends_with("}}")) {
                    return Err(invalid(format!(
                        "buttons[{i}].url may have one variable, at its end"
                    )));
                }
                if vars.len() == 1 && !b.get("example").is_some_and(Value::is_array) {
                    return Err(invalid(format!(
                        "buttons[{i}].url has a variable; example must give its value"
                    )));
                }
            }
            "PHONE_NUMBER" => {
                phones += 1;
                label(&b, i, true)?;
                let number = b
                    .get("phone_number")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let digits = number.chars().filter(char::is_ascii_digit).count();
                if !(5..=20).contains(&digits) {
                    return Err(invalid(format!(
                        "buttons[{i}].phone_number must be a phone number"
                    )));
                }
            }
            "COPY_CODE" => {
                copy_codes += 1;
                let example = b.get("example").and_then(Value::as_str).unwrap_or_default();
                if example.is_empty() || example.chars().count() > 15 {
                    return Err(invalid(format!(
                        "buttons[{i}].example must be 1 to 15 characters"
                    )));
                }
            }
            "OTP" => {
                otps += 1;
                otp(&b, i)?;
            }
            "FLOW" => {
                label(&b, i, true)?;
                if !["flow_id", "flow_name", "flow_json"]
                    .iter()
                    .any(|k| b.contains_key(*k))
                {
                    return Err(invalid(format!(
                        "buttons[{i}] needs flow_id, flow_name or flow_json"
                    )));
                }
            }
            "MPM" | "SPM" | "CATALOG" | "VOICE_CALL" => {}
            other => {
                return Err(invalid(format!(
                    "buttons[{i}].type {other:?} is not a template button type"
                )));
            }
        }
        normalised.push(Value::Object(b));
    }
    if urls > 2 || phones > 1 || copy_codes > 1 {
        return Err(invalid(
            "BUTTONS allow at most 2 URL, 1 PHONE_NUMBER and 1 COPY_CODE buttons",
        ));
    }
    if quick_reply_runs > 1 {
        return Err(invalid("QUICK_REPLY buttons must be next to each other"));
    }
    if auth && (otps != 1 || normalised.len() != 1) {
        return Err(invalid(
            "AUTHENTICATION templates take exactly one button, of type OTP",
        ));
    }
    c.insert("buttons".into(), Value::Array(normalised));
    Ok(())
}

fn otp(b: &Map<String, Value>, i: usize) -> Check {
    let kind = upper(b.get("otp_type")).unwrap_or_default();
    label(b, i, false)?;
    if let Some(Value::String(s)) = b.get("autofill_text")
        && (s.is_empty() || s.chars().count() > 25)
    {
        return Err(invalid(format!(
            "buttons[{i}].autofill_text must be 1 to 25 characters"
        )));
    }
    match kind.as_str() {
        "COPY_CODE" => Ok(()),
        "ONE_TAP" | "ZERO_TAP" => {
            let apps = match b.get("supported_apps") {
                Some(Value::Array(apps)) if (1..=5).contains(&apps.len()) => apps,
                _ => {
                    return Err(invalid(format!(
                        "buttons[{i}]: {kind} needs supported_apps (1 to 5 apps)"
                    )));
                }
            };
            for (j, app) in apps.iter().enumerate() {
                let package = app.get("package_name").and_then(Value::as_str);
                let hash = app.get("signature_hash").and_then(Value::as_str);
                let hash_ok = hash.is_some_and(|h| {
                    h.len() == 11
                        && h.bytes()
                            .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
                });
                if package.is_none_or(|p| p.is_empty() || p.len() > 224) || !hash_ok {
                    return Err(invalid(format!(
                        "buttons[{i}].supported_apps[{j}] needs package_name and an 11-character signature_hash"
                    )));
                }
            }
            if kind == "ZERO_TAP" && b.get("zero_tap_terms_accepted") != Some(&Value::Bool(true)) {
                return Err(invalid(format!(
                    "buttons[{i}]: ZERO_TAP requires zero_tap_terms_accepted: true"
                )));
            }
            Ok(())
        }
        _ => Err(invalid(format!(
            "buttons[{i}].otp_type must be COPY_CODE, ONE_TAP or ZERO_TAP"
        ))),
    }
}

/// Checks a create request (`POST /{waba_id}/message_templates`) and returns the template as
/// Meta would store it: `name`, `language`, `category`, `parameter_format`, normalised
/// `components`, and `message_send_ttl_seconds` when given.
pub fn validate_create(request: &Map<String, Value>) -> Check<Map<String, Value>> {
    let name = request.get("name").and_then(Value::as_str).unwrap_or("");
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Err(TemplateError::new(
            NAME_FORMAT,
            "Template name format incorrect",
            format!(
                "name must be 1 to 512 lower-case letters, digits and underscores; got {name:?}"
            ),
        ));
    }
    let language = request
        .get("language")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !language_ok(language) {
        return Err(invalid(format!(
            "language must be a language code such as en or en_US; got {language:?}"
        )));
    }
    let category = upper(request.get("category")).unwrap_or_default();
    if !CATEGORIES.contains(&category.as_str()) {
        return Err(invalid(
            "category must be MARKETING, UTILITY or AUTHENTICATION",
        ));
    }
    let format = ParameterFormat::parse(request.get("parameter_format"))?;
    let components = components(request.get("components"), &category, format)?;
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    out.insert("language".into(), json!(language));
    out.insert("category".into(), json!(category));
    out.insert("parameter_format".into(), json!(format.as_str()));
    out.insert("components".into(), Value::Array(components));
    if let Some(ttl) = ttl(request, &category)? {
        out.insert("message_send_ttl_seconds".into(), json!(ttl));
    }
    Ok(out)
}

/// Checks an edit request (`POST /{template_id}`) against the template as stored; returns
/// the fields to replace.
pub fn validate_edit(
    current: &Map<String, Value>,
    request: &Map<String, Value>,
) -> Check<Map<String, Value>> {
    let current_category = upper(current.get("category")).unwrap_or_default();
    let category = match upper(request.get("category")) {
        Some(c) if !CATEGORIES.contains(&c.as_str()) => {
            return Err(invalid(
                "category must be MARKETING, UTILITY or AUTHENTICATION",
            ));
        }
        Some(c) => c,
        None => current_category.clone(),
    };
    if category != current_category
        && current.get("status").and_then(Value::as_str) == Some("APPROVED")
    {
        return Err(invalid(
            "the category of an approved template cannot change",
        ));
    }
    let format = match request.get("parameter_format") {
        Some(v) => ParameterFormat::parse(Some(v))?,
        None => ParameterFormat::parse(current.get("parameter_format"))?,
    };
    let mut out = Map::new();
    if request.contains_key("components") {
        let components = components(request.get("components"), &category, format)?;
        out.insert("components".into(), Value::Array(components));
    }
    if request.contains_key("category") {
        out.insert("category".into(), json!(category));
    }
    if request.contains_key("parameter_format") {
        out.insert("parameter_format".into(), json!(format.as_str()));
    }
    if let Some(ttl) = ttl(request, &category)? {
        out.insert("message_send_ttl_seconds".into(), json!(ttl));
    }
    if out.is_empty() {
        return Err(invalid(
            "an edit needs components, category, parameter_format or message_send_ttl_seconds",
        ));
    }
    Ok(out)
}

fn ttl(request: &Map<String, Value>, category: &str) -> Check<Option<i64>> {
    let Some(v) = request.get("message_send_ttl_seconds") else {
        return Ok(None);
    };
    let Some(ttl) = v.as_i64() else {
        return Err(invalid("message_send_ttl_seconds must be an integer"));
    };
    let ok = match category {
        "AUTHENTICATION" => ttl == -1 || (30..=900).contains(&ttl),
        "UTILITY" => ttl == -1 || (30..=43_200).contains(&ttl),
        _ => ttl == -1 || (43_200..=2_592_000).contains(&ttl),
    };
    if ok {
        Ok(Some(ttl))
    } else {
        Err(invalid(format!(
            "message_send_ttl_seconds {ttl} is outside what {category} templates allow"
        )))
    }
}

/// Whether `code` looks like a template language code (`en`, `en_US`, `zh_Hant_HK`).
pub fn language_ok(code: &str) -> bool {
    let mut parts = code.split('_');
    let first = parts.next().unwrap_or_default();
    (2..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && parts.all(|p| (2..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The variables a stored template's BODY (and TEXT HEADER) expect when sending, in order.
pub fn expected_parameters(components: &[Value]) -> (Vec<String>, Vec<String>) {
    let mut header = Vec::new();
    let mut body = Vec::new();
    for c in components {
        let kind = c.get("type").and_then(Value::as_str).unwrap_or_default();
        let Some(text) = c.get("text").and_then(Value::as_str) else {
            continue;
        };
        let mut distinct = Vec::new();
        for p in placeholders(text) {
            if !distinct.contains(&p) {
                distinct.push(p);
            }
        }
        if kind.eq_ignore_ascii_case("HEADER") {
            header = distinct;
        } else if kind.eq_ignore_ascii_case("BODY") {
            body = distinct;
        }
    }
    (header, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(v: Value) -> Check<Map<String, Value>> {
        validate_create(v.as_object().expect("object"))
    }

    fn named() -> Value {
        json!({
            "name": "order_confirmation", "language": "en_US", "category": "utility",
            "parameter_format": "named",
            "components": [
                {"type": "header", "format": "text", "text": "Order {{order_id}}",
                 "example": {"header_text_named_params": [{"param_name": "order_id", "example": "A-17"}]}},
                {"type": "BODY", "text": "Thanks {{first_name}}! We ship on {{date}}.",
                 "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Pablo"}, {"param_name": "date", "example": "May 2"}]}},
                {"type": "Footer", "text": "Lucky Shrub"},
                {"type": "buttons", "buttons": [
                    {"type": "quick_reply", "text": "Stop"},
                    {"type": "URL", "text": "Track", "url": "https://shop.example/t/{{1}}", "example": ["A-17"]},
                    {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+15550051310"}
                ]}
            ]
        })
    }

    #[test]
    fn named_template_is_normalised_to_upper_case() {
        let t = create(named()).expect("valid");
        assert_eq!(t["category"], "UTILITY");
        assert_eq!(t["parameter_format"], "NAMED");
        assert_eq!(t["components"][0]["type"], "HEADER");
        assert_eq!(t["components"][0]["format"], "TEXT");
        assert_eq!(t["components"][2]["type"], "FOOTER");
        assert_eq!(t["components"][3]["buttons"][0]["type"], "QUICK_REPLY");
        let (header, body) = expected_parameters(t["components"].as_array().expect("array"));
        assert_eq!(header, ["order_id"]);
        assert_eq!(body, ["first_name", "date"]);
    }

    #[test]
    fn positional_rules() {
        let ok = json!({"name": "p", "language": "en", "category": "MARKETING", "components": [
            {"type": "BODY", "text": "Hi {{1}}, your code is {{2}}.", "example": {"body_text": [["Ana", "42"]]}}]});
        assert!(create(ok).is_ok());
        let gap = json!({"name": "p", "language": "en", "category": "MARKETING", "components": [
            {"type": "BODY", "text": "Hi {{1}}, code {{3}}.", "example": {"body_text": [["Ana", "42"]]}}]});
        assert_eq!(create(gap).unwrap_err().subcode, VARIABLES);
        let no_example = json!({"name": "p", "language": "en", "category": "MARKETING", "components": [
            {"type": "BODY", "text": "Hi {{1}}."}]});
        assert_eq!(create(no_example).unwrap_err().subcode, BODY_FORMAT);
        let named_in_positional = json!({"name": "p", "language": "en", "category": "MARKETING", "components": [
            {"type": "BODY", "text": "Hi {{name}}.", "example": {"body_text": [["Ana"]]}}]});
        assert_eq!(create(named_in_positional).unwrap_err().subcode, VARIABLES);
        let leading = json!({"name": "p", "language": "en", "category": "MARKETING", "components": [
            {"type": "BODY", "text": "{{1}} is here", "example": {"body_text": [["Ana"]]}}]});
        assert_eq!(create(leading).unwrap_err().subcode, VARIABLES);
    }

    #[test]
    fn names_languages_and_limits() {
        let mut bad = named();
        bad["name"] = json!("Order Confirmation");
        assert_eq!(create(bad).unwrap_err().subcode, NAME_FORMAT);
        let mut bad = named();
        bad["language"] = json!("english");
        assert!(create(bad).is_err());
        let mut bad = named();
        bad["components"][2]["text"] = json!("x".repeat(61));
        assert_eq!(create(bad).unwrap_err().subcode, FOOTER_FORMAT);
        let mut bad = named();
        bad["components"][3]["buttons"] = json!([
            {"type": "QUICK_REPLY", "text": "a"},
            {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550051310"},
            {"type": "QUICK_REPLY", "text": "b"}]);
        assert!(
            create(bad)
                .unwrap_err()
                .message
                .contains("next to each other")
        );
        let mut bad = named();
        bad["components"][3]["buttons"][0]["text"] = json!("x".repeat(26));
        assert!(create(bad).is_err());
    }

    fn auth(button: Value) -> Value {
        json!({"name": "login_code", "language": "en_US", "category": "AUTHENTICATION",
            "message_send_ttl_seconds": 300,
            "components": [
                {"type": "BODY", "add_security_recommendation": true},
                {"type": "FOOTER", "code_expiration_minutes": 10},
                {"type": "BUTTONS", "buttons": [button]}]})
    }

    #[test]
    fn authentication_templates() {
        assert!(
            create(auth(
                json!({"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"})
            ))
            .is_ok()
        );
        let app = json!([{"package_name": "com.example.app", "signature_hash": "K8a/AINcGX7"}]);
        assert!(
            create(auth(
                json!({"type": "OTP", "otp_type": "ONE_TAP", "supported_apps": app})
            ))
            .is_ok()
        );
        let err = create(auth(json!({"type": "OTP", "otp_type": "ONE_TAP"}))).unwrap_err();
        assert!(err.message.contains("supported_apps"), "{err}");
        let err = create(auth(
            json!({"type": "OTP", "otp_type": "ZERO_TAP", "supported_apps": app}),
        ))
        .unwrap_err();
        assert!(err.message.contains("zero_tap_terms_accepted"), "{err}");
        assert!(create(auth(json!({"type": "OTP", "otp_type": "ZERO_TAP", "supported_apps": app, "zero_tap_terms_accepted": true}))).is_ok());
        assert!(create(auth(json!({"type": "QUICK_REPLY", "text": "x"}))).is_err());
        let mut with_text = auth(json!({"type": "OTP", "otp_type": "COPY_CODE"}));
        with_text["components"][0]["text"] = json!("Your code is {{1}}");
        assert_eq!(create(with_text).unwrap_err().subcode, BODY_FORMAT);
        let mut ttl = auth(json!({"type": "OTP", "otp_type": "COPY_CODE"}));
        ttl["message_send_ttl_seconds"] = json!(3600);
        assert!(create(ttl).is_err());
    }

    #[test]
    fn edits_keep_the_category_of_approved_templates() {
        let current = create(named()).expect("valid");
        let mut approved = current.clone();
        approved.insert("status".into(), json!("APPROVED"));
        let change = json!({"category": "MARKETING"});
        assert!(validate_edit(&approved, change.as_object().expect("object")).is_err());
        let body = json!({"components": [{"type": "body", "text": "Hello {{first_name}}!", "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]}}]});
        let out = validate_edit(&approved, body.as_object().expect("object")).expect("valid edit");
        assert_eq!(out["components"][0]["type"], "BODY");
    }
}
