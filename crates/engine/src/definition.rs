//! A workflow definition: Kapso's graph JSON (`{"nodes": [...], "edges": [...]}`, node
//! `data.node_type` and `data.config`, edges with `label`), checked before it is stored so
//! that every stored definition can run.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// The node types a definition may use.
pub const NODE_TYPES: [&str; 10] = [
    "start",
    "send_text",
    "send_template",
    "send_interactive",
    "wait_for_response",
    "set_variable",
    "decide",
    "call",
    "webhook",
    "handoff",
];

/// Decision kinds of a `decide` node (`ai` and `function` are accepted now and run later).
pub const DECISION_TYPES: [&str; 3] = ["expression", "ai", "function"];

/// Shortest and longest wait of `wait_for_response`, in seconds.
pub const WAIT_SECONDS: (i64, i64) = (10, 7 * 24 * 3600);

/// A checked definition: the graph as given, with its nodes and edges indexed.
#[derive(Debug, Clone)]
pub struct Definition {
    /// The definition as submitted (positions and editor fields kept).
    pub raw: Value,
    /// Node id → node type.
    pub node_types: HashMap<String, String>,
    /// Node id → outgoing edges (label, target), in order.
    pub edges: HashMap<String, Vec<(String, String)>>,
    /// Node id → `data.config` (an object; `{}` when absent).
    pub configs: HashMap<String, Value>,
}

impl Definition {
    /// Whether any node's configuration names a project environment variable
    /// (`${ENV:KEY}`): runs of a definition that does not never need them decrypted.
    pub fn uses_env(&self) -> bool {
        fn names_env(v: &Value) -> bool {
            match v {
                Value::String(s) => s.contains("${ENV:"),
                Value::Array(items) => items.iter().any(names_env),
                Value::Object(map) => map.values().any(names_env),
                _ => false,
            }
        }
        self.configs.values().any(names_env)
    }

    /// The workflows this definition calls (`call` nodes' `workflow_id`), sorted, unique.
    pub fn calls(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .node_types
            .iter()
            .filter(|(_, t)| t.as_str() == "call")
            .filter_map(|(id, _)| text(&self.configs[id], "workflow_id").map(str::to_owned))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The node `id`'s type.
    pub fn node_type(&self, id: &str) -> Option<&str> {
        self.node_types.get(id).map(String::as_str)
    }

    /// The target of `id`'s edge labelled `label`.
    pub fn target(&self, id: &str, label: &str) -> Option<&str> {
        self.edges
            .get(id)?
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, t)| t.as_str())
    }
}

fn id_ok(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && id.len() <= 128
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Checks a definition; every problem is reported, each naming the node or edge at fault.
pub fn validate(raw: &Value) -> Result<Definition, Vec<String>> {
    let mut errors = Vec::new();
    let (Some(nodes), Some(edges)) = (
        raw.get("nodes").and_then(Value::as_array),
        raw.get("edges").and_then(Value::as_array),
    ) else {
        return Err(vec![
            "definition must be an object with arrays nodes and edges".into(),
        ]);
    };
    let mut node_types: HashMap<String, String> = HashMap::new();
    let mut configs: HashMap<String, Value> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let Some(id) = text(node, "id") else {
            errors.push(format!("nodes[{i}]: id is required"));
            continue;
        };
        if !id_ok(id) {
            errors.push(format!(
                "node {id:?}: id must start with a letter and use letters, digits, _ and - (at most 128)"
            ));
        }
        let node_type = node.pointer("/data/node_type").and_then(Value::as_str);
        match node_type {
            None => errors.push(format!("node {id:?}: data.node_type is required")),
            Some(t) if !NODE_TYPES.contains(&t) => errors.push(format!(
                "node {id:?}: unknown node_type {t:?} (known: {})",
                NODE_TYPES.join(", ")
            )),
            Some(_) => {}
        }
        if node_types
            .insert(id.to_owned(), node_type.unwrap_or_default().to_owned())
            .is_some()
        {
            errors.push(format!("node {id:?}: duplicate id"));
        }
        let config = match node.pointer("/data/config") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(c) => c.clone(),
        };
        if !config.is_object() {
            errors.push(format!("node {id:?}: data.config must be an object"));
        }
        configs.insert(id.to_owned(), config);
    }
    let starts: Vec<&String> = node_types
        .iter()
        .filter(|(_, t)| t.as_str() == "start")
        .map(|(id, _)| id)
        .collect();
    match starts.as_slice() {
        [only] if only.as_str() == "start" => {}
        [only] => errors.push(format!(
            "the start node must have id \"start\", not {only:?}"
        )),
        [] => errors.push("the definition needs exactly one start node; it has none".into()),
        many => errors.push(format!(
            "the definition needs exactly one start node; it has {}",
            many.len()
        )),
    }

    let mut outgoing: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (i, edge) in edges.iter().enumerate() {
        let (source, target, label) = (
            text(edge, "source"),
            text(edge, "target"),
            text(edge, "label"),
        );
        let Some(source) = source else {
            errors.push(format!("edges[{i}]: source is required"));
            continue;
        };
        let Some(target) = target else {
            errors.push(format!("edges[{i}]: target is required"));
            continue;
        };
        for (end, id) in [("source", source), ("target", target)] {
            if !node_types.contains_key(id) {
                errors.push(format!("edges[{i}]: {end} {id:?} is not a node"));
            }
        }
        if target == "start" {
            errors.push(format!("edges[{i}]: nothing may lead back to start"));
        }
        let label = label.unwrap_or("next");
        outgoing
            .entry(source.to_owned())
            .or_default()
            .push((label.to_owned(), target.to_owned()));
    }

    let mut ids: Vec<&String> = node_types.keys().collect();
    ids.sort();
    for id in ids {
        let node_type = node_types[id].as_str();
        let out = outgoing.get(id).map(Vec::as_slice).unwrap_or_default();
        let config = &configs[id];
        match node_type {
            "decide" => check_decide(id, config, out, &mut errors),
            "handoff" if !out.is_empty() => errors.push(format!(
                "node {id:?}: a handoff ends the execution; remove its outgoing edges"
            )),
            _ => {
                if out.len() > 1 {
                    errors.push(format!(
                        "node {id:?}: a {node_type} node has at most one outgoing edge (it has {})",
                        out.len()
                    ));
                }
                if let Some((label, _)) = out.iter().find(|(l, _)| l != "next") {
                    errors.push(format!(
                        "node {id:?}: the edge of a {node_type} node is labelled \"next\", not {label:?}"
                    ));
                }
                if id == "start" && out.len() != 1 {
                    errors.push("the start node needs exactly one next edge".into());
                }
            }
        }
        check_config(id, node_type, config, &mut errors);
    }
    if errors.is_empty() {
        Ok(Definition {
            raw: raw.clone(),
            node_types,
            edges: outgoing,
            configs,
        })
    } else {
        Err(errors)
    }
}

fn check_decide(id: &str, config: &Value, out: &[(String, String)], errors: &mut Vec<String>) {
    let kind = config
        .get("decision_type")
        .and_then(Value::as_str)
        .unwrap_or("expression");
    if !DECISION_TYPES.contains(&kind) {
        errors.push(format!(
            "node {id:?}: decision_type must be one of {}",
            DECISION_TYPES.join(", ")
        ));
    }
    let labels: Vec<&str> = config
        .get("conditions")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|c| c.get("label").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if labels.is_empty() {
        errors.push(format!(
            "node {id:?}: a decide node needs conditions, each with a label"
        ));
        return;
    }
    let unique: HashSet<&str> = labels.iter().copied().collect();
    if unique.len() != labels.len() {
        errors.push(format!("node {id:?}: condition labels must be unique"));
    }
    if kind == "expression" {
        for c in config
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let label = c.get("label").and_then(Value::as_str).unwrap_or_default();
            match c.get("expression").and_then(Value::as_str) {
                None | Some("") => errors.push(format!(
                    "node {id:?}: condition {label:?} needs an expression"
                )),
                Some(expression) => {
                    if let Err(e) = chasqui_js::check_syntax(expression) {
                        errors.push(format!(
                            "node {id:?}: condition {label:?} is not a valid expression: {e}"
                        ));
                    }
                }
            }
        }
    }
    let edge_labels: Vec<&str> = out.iter().map(|(l, _)| l.as_str()).collect();
    let edge_set: HashSet<&str> = edge_labels.iter().copied().collect();
    if edge_set.len() != edge_labels.len() {
        errors.push(format!(
            "node {id:?}: one outgoing edge per condition label"
        ));
    }
    if edge_set != unique {
        let mut missing: Vec<&&str> = unique.difference(&edge_set).collect();
        let mut extra: Vec<&&str> = edge_set.difference(&unique).collect();
        missing.sort();
        extra.sort();
        errors.push(format!(
            "node {id:?}: edge labels must equal the condition labels (missing edges for {missing:?}, edges without a condition {extra:?})"
        ));
    }
}

fn check_config(id: &str, node_type: &str, config: &Value, errors: &mut Vec<String>) {
    let required = |key: &str, errors: &mut Vec<String>| {
        if text(config, key).is_none_or(|v| v.trim().is_empty()) {
            errors.push(format!("node {id:?}: config.{key} is required"));
        }
    };
    match node_type {
        "send_text" => {
            required("message", errors);
            if text(config, "message").is_some_and(|m| m.chars().count() > 4096) {
                errors.push(format!(
                    "node {id:?}: config.message is longer than 4096 characters"
                ));
            }
        }
        "send_template" => required("template_id", errors),
        "set_variable" => required("variable_name", errors),
        "call" => required("workflow_id", errors),
        "webhook" => required("url", errors),
        "wait_for_response" => {
            if let Some(t) = config.get("timeout_seconds") {
                let ok = t
                    .as_i64()
                    .is_some_and(|t| (WAIT_SECONDS.0..=WAIT_SECONDS.1).contains(&t));
                if !ok {
                    errors.push(format!(
                        "node {id:?}: config.timeout_seconds must be {} to {} seconds",
                        WAIT_SECONDS.0, WAIT_SECONDS.1
                    ));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(id: &str, t: &str, config: Value) -> Value {
        json!({"id": id, "position": {"x": 0, "y": 0}, "data": {"node_type": t, "config": config}})
    }

    fn edge(s: &str, t: &str, label: &str) -> Value {
        json!({"source": s, "target": t, "label": label})
    }

    fn sample() -> Value {
        json!({
            "nodes": [
                node("start", "start", json!({})),
                node("ask", "send_text", json!({"message": "Hi {{context.contact.profile_name}}"})),
                node("wait", "wait_for_response", json!({"timeout_seconds": 3600, "save_response_to": "answer"})),
                node("route", "decide", json!({"decision_type": "expression", "conditions": [
                    {"label": "late", "expression": "system.last_resume.reason === \"timeout\""},
                    {"label": "answered", "expression": "true"}]})),
                node("human", "handoff", json!({})),
                node("thanks", "send_text", json!({"message": "Thanks!"})),
            ],
            "edges": [
                edge("start", "ask", "next"), edge("ask", "wait", "next"), edge("wait", "route", "next"),
                edge("route", "human", "late"), edge("route", "thanks", "answered"),
            ],
        })
    }

    fn errors_of(v: Value) -> String {
        validate(&v).expect_err("invalid").join("\n")
    }

    #[test]
    fn a_valid_definition_is_indexed() {
        let d = validate(&sample()).expect("valid");
        assert_eq!(d.node_types["route"], "decide");
        assert_eq!(d.edges["route"].len(), 2);
        assert!(!d.uses_env());
    }

    #[test]
    fn environment_references_are_found_in_nested_config() {
        let mut v = sample();
        v["nodes"][5]["data"]["config"] =
            json!({"message": "ok", "headers": [{"value": "Bearer ${ENV:CRM_TOKEN}"}]});
        assert!(validate(&v).expect("valid").uses_env());
        v["nodes"][5]["data"]["config"] = json!({"message": "costs $5 {ENV:NOT}"});
        assert!(!validate(&v).expect("valid").uses_env());
    }

    #[test]
    fn every_rule_names_its_culprit() {
        let mut v = sample();
        v["nodes"][1]["data"]["node_type"] = json!("teleport");
        assert!(errors_of(v).contains("unknown node_type \"teleport\""));

        let mut v = sample();
        v["nodes"][1]["id"] = json!("start");
        let e = errors_of(v);
        assert!(e.contains("duplicate id"), "{e}");

        let mut v = sample();
        v["edges"]
            .as_array_mut()
            .expect("edges")
            .push(edge("ask", "thanks", "next"));
        assert!(errors_of(v).contains("at most one outgoing edge"));

        let mut v = sample();
        v["edges"][1]["label"] = json!("then");
        assert!(errors_of(v).contains("labelled \"next\""));

        let mut v = sample();
        v["edges"][4]["label"] = json!("maybe");
        let e = errors_of(v);
        assert!(
            e.contains("missing edges for [\"answered\"]") && e.contains("[\"maybe\"]"),
            "{e}"
        );

        let mut v = sample();
        v["edges"][0]["target"] = json!("nowhere");
        assert!(errors_of(v).contains("target \"nowhere\" is not a node"));

        let mut v = sample();
        v["nodes"]
            .as_array_mut()
            .expect("nodes")
            .push(node("start2", "start", json!({})));
        assert!(errors_of(v).contains("exactly one start node"));

        let mut v = sample();
        v["nodes"][2]["data"]["config"]["timeout_seconds"] = json!(5);
        assert!(errors_of(v).contains("timeout_seconds must be 10 to 604800"));

        let mut v = sample();
        v["edges"]
            .as_array_mut()
            .expect("edges")
            .push(edge("human", "thanks", "next"));
        assert!(errors_of(v).contains("handoff ends the execution"));

        let mut v = sample();
        v["nodes"][3]["data"]["config"]["conditions"][1]["expression"] = json!("vars.x ===");
        let e = errors_of(v);
        assert!(
            e.contains("condition \"answered\" is not a valid expression"),
            "{e}"
        );

        let mut v = sample();
        v["nodes"][0]["data"] = json!({});
        assert!(errors_of(v).contains("data.node_type is required"));

        assert!(validate(&json!({"nodes": []})).is_err());
    }
}
