//! Workflow text interpolation: `{{vars.x}}`, `{{system.*}}`, `{{context.*}}`,
//! `{{metadata.*}}` and `{{last_user_input}}` from a scope, and `${ENV:KEY}` from the
//! project's environment. Anything else in braces (WhatsApp's own `{{1}}`, user text) is
//! left exactly as written.

use std::collections::HashMap;

use serde_json::Value;

/// The namespaces a placeholder may read.
pub const NAMESPACES: [&str; 4] = ["vars", "system", "context", "metadata"];

fn lookup<'a>(scope: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(scope, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Renders `text`: environment references first (so a variable can never smuggle one in),
/// then placeholders. A placeholder of a known namespace whose value is missing renders as
/// empty; an unknown `${ENV:KEY}` is left as written.
pub fn render(text: &str, scope: &Value, env: &HashMap<String, String>) -> String {
    let with_env = render_env(text, env);
    let mut out = String::with_capacity(with_env.len());
    let mut rest = with_env.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let path = after[..end].trim();
        let namespace = path.split('.').next().unwrap_or_default();
        if path == "last_user_input" {
            out.push_str(
                &lookup(scope, "last_user_input")
                    .map(as_text)
                    .unwrap_or_default(),
            );
        } else if NAMESPACES.contains(&namespace) && path.contains('.') {
            out.push_str(&lookup(scope, path).map(as_text).unwrap_or_default());
        } else {
            out.push_str(&rest[start..start + 2 + end + 2]);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn render_env(text: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${ENV:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        match after.find('}') {
            Some(end) if env.contains_key(&after[..end]) => {
                out.push_str(&env[&after[..end]]);
                rest = &after[end + 1..];
            }
            Some(end) => {
                out.push_str(&rest[start..start + 6 + end + 1]);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                return out;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Value {
        json!({
            "vars": {"name": "Ana", "total": 12.5, "items": ["bread", "jam"], "order": {"id": "A-1"}},
            "system": {"customer": {"name": "Bakery"}, "last_resume": {"reason": "user_input"}},
            "context": {"phone_number": "+15550001111"},
            "last_user_input": "yes please",
        })
    }

    #[test]
    fn placeholders_and_environment() {
        let env = HashMap::from([("CRM_URL".to_owned(), "https://crm.example".to_owned())]);
        let out = render(
            "Hi {{vars.name}} ({{ context.phone_number }}), order {{vars.order.id}}: {{vars.total}} for {{vars.items.1}}; you said {{last_user_input}} to {{system.customer.name}} -> ${ENV:CRM_URL}/x",
            &scope(),
            &env,
        );
        assert_eq!(
            out,
            "Hi Ana (+15550001111), order A-1: 12.5 for jam; you said yes please to Bakery -> https://crm.example/x"
        );
    }

    #[test]
    fn what_is_not_ours_stays() {
        let env = HashMap::new();
        assert_eq!(
            render("Template {{1}} and {{name}}", &scope(), &env),
            "Template {{1}} and {{name}}"
        );
        assert_eq!(
            render("Missing {{vars.nope}}!", &scope(), &env),
            "Missing !"
        );
        assert_eq!(
            render("${ENV:UNSET} stays", &scope(), &env),
            "${ENV:UNSET} stays"
        );
        assert_eq!(
            render("open {{vars.name", &scope(), &env),
            "open {{vars.name"
        );
        assert_eq!(
            render("{{vars.items}}", &scope(), &env),
            "[\"bread\",\"jam\"]"
        );
    }

    #[test]
    fn variables_cannot_inject_environment_references() {
        let env = HashMap::from([("SECRET".to_owned(), "s3cr3t".to_owned())]);
        let scope = json!({"vars": {"evil": "${ENV:SECRET}"}});
        assert_eq!(render("{{vars.evil}}", &scope, &env), "${ENV:SECRET}");
    }
}
