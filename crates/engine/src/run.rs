//! The interpreter: a pure state machine. Given an execution's state it walks the graph
//! through the nodes that need nothing from the world (start, set_variable, decide) and
//! stops at the first node that does, returning an [`Action`] (send, HTTP request, call,
//! wait, handoff, end, fail). The caller persists the state and the action's intent before
//! performing it and feeds the outcome back, so a crash replays from the last saved state.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Definition;
use crate::nodes::{self, HttpRequest, Render};

/// Deepest nesting of sub-workflow calls (the root execution counts as level 1).
pub const MAX_CALL_DEPTH: usize = 10;
/// Nodes one run may pass without stopping (a loop of pure nodes fails instead of spinning).
pub const MAX_STEPS_PER_RUN: usize = 1_000;

/// One level of the call stack: a workflow version and the node it is at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Workflow.
    pub workflow_id: String,
    /// Definition version the frame runs.
    pub version: i64,
    /// The current node.
    pub node: String,
    /// For a sub-workflow: the caller's variable that receives its error instead of failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_error_to: Option<String>,
}

/// Everything an execution knows: its call stack and its four namespaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Call stack; the last frame is the one running.
    pub frames: Vec<Frame>,
    /// User variables (read/write).
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// Read-only system values (trigger, tracking id, number, customer, last_resume).
    #[serde(default)]
    pub system: Map<String, Value>,
    /// Read-only context set at start (channel, phone_number, conversation_id, contact).
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Request metadata of API starts.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// The last input of the customer (text, or the structured reply).
    #[serde(default)]
    pub last_user_input: Value,
}

impl State {
    /// A fresh state at the start node of `workflow_id` version `version`.
    pub fn new(workflow_id: &str, version: i64) -> Self {
        Self {
            frames: vec![Frame {
                workflow_id: workflow_id.to_owned(),
                version,
                node: "start".into(),
                save_error_to: None,
            }],
            ..Self::default()
        }
    }

    /// The running frame.
    pub fn current(&self) -> Option<&Frame> {
        self.frames.last()
    }

    /// The scope expressions and placeholders read.
    pub fn scope(&self) -> Value {
        json!({
            "vars": self.vars,
            "system": self.system,
            "context": self.context,
            "metadata": self.metadata,
            "last_user_input": self.last_user_input,
        })
    }
}

/// Where the interpreter finds definitions by (workflow, version).
pub trait Definitions {
    /// The definition, if loaded.
    fn get(&self, workflow_id: &str, version: i64) -> Option<&Definition>;
}

impl Definitions for HashMap<(String, i64), Definition> {
    fn get(&self, workflow_id: &str, version: i64) -> Option<&Definition> {
        HashMap::get(self, &(workflow_id.to_owned(), version))
    }
}

impl Definitions for HashMap<(String, i64), std::sync::Arc<Definition>> {
    fn get(&self, workflow_id: &str, version: i64) -> Option<&Definition> {
        HashMap::get(self, &(workflow_id.to_owned(), version)).map(|d| &**d)
    }
}

/// One entry of the step log.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// `step_entered`, `step_completed`, `decision_evaluated`, ...
    pub event_type: &'static str,
    /// The node, when the event belongs to one.
    pub node: Option<String>,
    /// The edge taken.
    pub edge_label: Option<String>,
    /// `inbound` (user input) or `outbound` (a message sent).
    pub direction: Option<&'static str>,
    /// Details.
    pub payload: Value,
}

/// What the interpreter needs the world to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this WhatsApp message (Meta's body without the recipient).
    Send {
        /// The node.
        node: String,
        /// Meta's send body (`type` and its object).
        message: Value,
    },
    /// Perform this HTTP request (`webhook` node).
    Http {
        /// The node.
        node: String,
        /// The request.
        request: HttpRequest,
        /// Variable that receives `{status, body, headers}`.
        save_response_to: Option<String>,
    },
    /// Load the current definition of `workflow_id` and [`Machine::enter_call`] it.
    Call {
        /// The node.
        node: String,
        /// The workflow to run.
        workflow_id: String,
    },
    /// Park until the customer answers, the API resumes, or the timeout passes.
    Wait {
        /// The node.
        node: String,
        /// Seconds until the timeout, if any.
        timeout_seconds: Option<i64>,
    },
    /// Hand the conversation to a human.
    Handoff {
        /// The node.
        node: String,
        /// Why.
        reason: Option<String>,
        /// Extra data for the human.
        context_data: Value,
    },
    /// The execution is complete.
    End,
    /// The execution failed.
    Fail {
        /// The node where it failed.
        node: Option<String>,
        /// What went wrong.
        error: String,
    },
}

/// How a wait ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// The customer answered: the text form and the value saved (text or structured).
    UserInput {
        /// Text form (`{{last_user_input}}`).
        text: String,
        /// What `save_response_to` receives.
        value: Value,
    },
    /// The timeout passed.
    Timeout,
    /// The API resumed it with `message.data` and `variables`.
    Api {
        /// Saved like a reply (skipped when null).
        data: Value,
        /// Merged into vars.
        variables: Map<String, Value>,
    },
}

/// What the interpreter reads from outside: definitions and the project's environment.
#[derive(Clone, Copy)]
pub struct World<'a> {
    /// Loaded definitions.
    pub defs: &'a dyn Definitions,
    /// Project environment variables (`${ENV:KEY}`).
    pub env: &'a HashMap<String, String>,
}

/// An interpreter over one execution's state.
#[derive(Debug)]
pub struct Machine {
    /// The state; the caller persists it.
    pub state: State,
    /// Step log entries since the caller last drained it.
    pub log: Vec<Logged>,
    /// Whose JavaScript engine evaluates the conditions (the project): tenants never share one.
    tenant: String,
    limits: chasqui_js::Limits,
    steps: usize,
    failed: Option<(Option<String>, String)>,
}

fn cfg_str<'v>(config: &'v Value, key: &str) -> Option<&'v str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

impl Machine {
    /// An interpreter over `state`, evaluating conditions in `tenant`'s engine.
    pub fn new(state: State, tenant: &str) -> Self {
        Self {
            state,
            log: Vec::new(),
            tenant: tenant.to_owned(),
            limits: chasqui_js::Limits::default(),
            steps: 0,
            failed: None,
        }
    }

    fn log(&mut self, event_type: &'static str, node: Option<&str>, payload: Value) {
        self.log.push(Logged {
            event_type,
            node: node.map(str::to_owned),
            edge_label: None,
            direction: None,
            payload,
        });
    }

    /// The current node id.
    pub fn node(&self) -> Option<&str> {
        self.state.current().map(|f| f.node.as_str())
    }

    fn definition<'w>(&self, w: &World<'w>) -> Result<&'w Definition, String> {
        let frame = self
            .state
            .current()
            .ok_or("the execution has no current step")?;
        w.defs
            .get(&frame.workflow_id, frame.version)
            .ok_or_else(|| {
                format!(
                    "workflow {} version {} is not available",
                    frame.workflow_id, frame.version
                )
            })
    }

    /// Runs until the next action.
    pub fn run(&mut self, w: &World<'_>) -> Action {
        loop {
            if let Some((node, error)) = self.failed.take() {
                return Action::Fail { node, error };
            }
            let Some(frame) = self.state.current().cloned() else {
                return Action::End;
            };
            self.steps += 1;
            if self.steps > MAX_STEPS_PER_RUN {
                self.fail_step(
                    w,
                    format!(
                        "more than {MAX_STEPS_PER_RUN} steps ran without waiting; the workflow loops"
                    ),
                );
                continue;
            }
            let def = match self.definition(w) {
                Ok(d) => d,
                Err(e) => {
                    self.fail_step(w, e);
                    continue;
                }
            };
            let node = frame.node.clone();
            let Some(node_type) = def.node_type(&node) else {
                self.fail_step(w, format!("node {node:?} does not exist in the definition"));
                continue;
            };
            let config = def.configs.get(&node).cloned().unwrap_or(Value::Null);
            self.log(
                "step_entered",
                Some(&node),
                json!({ "node_type": node_type, "workflow_id": frame.workflow_id }),
            );
            // Nodes that read nothing of the state go before the scope is built.
            match node_type {
                "start" => {
                    self.follow(w, "next");
                    continue;
                }
                "wait_for_response" => {
                    let timeout = config
                        .get("timeout_seconds")
                        .and_then(Value::as_i64)
                        .filter(|_| {
                            config
                                .get("has_timeout")
                                .and_then(Value::as_bool)
                                .unwrap_or(true)
                        });
                    return Action::Wait {
                        node,
                        timeout_seconds: timeout,
                    };
                }
                _ => {}
            }
            let scope = self.state.scope();
            let render = Render {
                scope: &scope,
                env: w.env,
            };
            let built = match node_type {
                "set_variable" => {
                    let name = cfg_str(&config, "variable_name")
                        .unwrap_or_default()
                        .to_owned();
                    match nodes::variable_value(&config, render) {
                        Ok(value) => {
                            self.state.vars.insert(name.clone(), value.clone());
                            self.log("variables_set", Some(&node), json!({ name: value }));
                            self.follow(w, "next");
                        }
                        Err(e) => self.fail_step(w, format!("set_variable {name:?}: {e}")),
                    }
                    continue;
                }
                "decide" => {
                    match self.decide(&config, &scope) {
                        Ok(label) => {
                            self.log.push(Logged {
                                event_type: "decision_evaluated",
                                node: Some(node.clone()),
                                edge_label: Some(label.clone()),
                                direction: None,
                                payload: json!({ "edge_label": label }),
                            });
                            self.follow(w, &label);
                        }
                        Err(e) => self.fail_step(w, e),
                    }
                    continue;
                }
                "send_text" => nodes::send_text(&config, render),
                "send_template" => nodes::send_template(&config, render),
                "send_interactive" => nodes::send_interactive(&config, render),
                "call" => {
                    if self.state.frames.len() >= MAX_CALL_DEPTH {
                        self.fail_step(
                            w,
                            format!(
                                "call depth limit reached: sub-workflows nest at most {MAX_CALL_DEPTH} levels deep"
                            ),
                        );
                        continue;
                    }
                    let workflow_id = cfg_str(&config, "workflow_id").unwrap_or_default();
                    return Action::Call {
                        node,
                        workflow_id: render.text(workflow_id),
                    };
                }
                "webhook" => match nodes::http_request(&config, render) {
                    Ok(request) => {
                        return Action::Http {
                            node,
                            request,
                            save_response_to: cfg_str(&config, "save_response_to")
                                .map(str::to_owned),
                        };
                    }
                    Err(e) => {
                        self.fail_step(w, e);
                        continue;
                    }
                },
                "handoff" => {
                    return Action::Handoff {
                        node,
                        reason: cfg_str(&config, "reason").map(|r| render.text(r)),
                        context_data: config
                            .get("context_data")
                            .map(|v| render.value(v))
                            .unwrap_or(Value::Null),
                    };
                }
                other => Err(format!("node type {other:?} cannot run")),
            };
            match built {
                Ok(message) => return Action::Send { node, message },
                Err(e) => self.fail_step(w, e),
            }
        }
    }

    fn decide(&self, config: &Value, scope: &Value) -> Result<String, String> {
        fn condition_label(c: &Value) -> &str {
            c.get("label").and_then(Value::as_str).unwrap_or_default()
        }
        let kind = cfg_str(config, "decision_type").unwrap_or("expression");
        if kind != "expression" {
            return Err(format!(
                "decision_type {kind:?} is not available yet; use \"expression\""
            ));
        }
        let conditions = config
            .get("conditions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let expressions = conditions.iter().map(|c| {
            c.get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default()
        });
        match chasqui_js::first_true(&self.tenant, expressions, scope, self.limits) {
            Ok(Some(i)) => return Ok(condition_label(&conditions[i]).to_owned()),
            Ok(None) => {}
            Err((i, e)) => {
                let at = conditions.get(i).map(condition_label).unwrap_or_default();
                return Err(format!("condition {at:?} could not be evaluated: {e}"));
            }
        }
        Err(format!(
            "no condition matched (checked {}); add a last condition `true` as a default",
            conditions.len()
        ))
    }

    /// Completes the current node and moves along its edge `label`; a node without that
    /// edge finishes its frame (a sub-workflow returns to its caller).
    fn follow(&mut self, w: &World<'_>, label: &str) {
        let Some(frame) = self.state.current().cloned() else {
            return;
        };
        self.log.push(Logged {
            event_type: "step_completed",
            node: Some(frame.node.clone()),
            edge_label: Some(label.to_owned()),
            direction: None,
            payload: Value::Null,
        });
        let target = self
            .definition(w)
            .ok()
            .and_then(|d| d.target(&frame.node, label).map(str::to_owned));
        match target {
            Some(t) => {
                if let Some(f) = self.state.frames.last_mut() {
                    f.node = t;
                }
            }
            None => {
                self.state.frames.pop();
                if !self.state.frames.is_empty() {
                    // The caller's call node completes; its vars already hold the child's.
                    self.follow(w, "next");
                }
            }
        }
    }

    /// Fails the current step: a sub-workflow whose call saves errors returns the error to
    /// its caller, which continues; otherwise the execution fails.
    fn fail_step(&mut self, w: &World<'_>, error: String) {
        let node = self.node().map(str::to_owned);
        self.log("step_failed", node.as_deref(), json!({ "error": error }));
        while let Some(frame) = self.state.frames.pop() {
            if let Some(var) = frame
                .save_error_to
                .clone()
                .filter(|_| !self.state.frames.is_empty())
            {
                self.state.vars.insert(
                    var.clone(),
                    json!({ "error": error, "workflow_id": frame.workflow_id, "node": frame.node }),
                );
                let call = self.node().map(str::to_owned);
                self.log("variables_set", call.as_deref(), json!({ var: error }));
                self.follow(w, "next");
                return;
            }
            if self.state.frames.is_empty() {
                // Keep the failing frame so the execution shows where it stopped.
                self.state.frames.push(frame);
                break;
            }
        }
        self.failed = Some((node, error));
    }

    /// The current send or HTTP node's action finished: `Ok(output)` logs it (and saves an
    /// HTTP response when asked) and moves on; `Err` fails the step.
    pub fn effect_done(
        &mut self,
        w: &World<'_>,
        result: Result<Value, String>,
        save_to: Option<&str>,
    ) {
        let node = self.node().map(str::to_owned);
        match result {
            Ok(output) => {
                let outbound = output.get("wamid").is_some();
                self.log.push(Logged {
                    event_type: "action_performed",
                    node: node.clone(),
                    edge_label: None,
                    direction: outbound.then_some("outbound"),
                    payload: output.clone(),
                });
                if let Some(var) = save_to {
                    self.state.vars.insert(var.to_owned(), output.clone());
                    self.log("variables_set", node.as_deref(), json!({ var: output }));
                }
                self.follow(w, "next");
            }
            Err(e) => self.fail_step(w, e),
        }
    }

    /// Enters `workflow_id` at `version` for the current call node (or fails the step when
    /// the workflow could not be loaded).
    pub fn enter_call(&mut self, w: &World<'_>, loaded: Result<(String, i64), String>) {
        let save_error_to = self
            .definition(w)
            .ok()
            .zip(self.node())
            .and_then(|(d, n)| d.configs.get(n))
            .and_then(|c| cfg_str(c, "save_error_to"))
            .map(str::to_owned);
        match loaded {
            Ok((workflow_id, version)) => {
                self.log(
                    "action_performed",
                    self.node().map(str::to_owned).as_deref(),
                    json!({ "called_workflow_id": workflow_id, "version": version }),
                );
                self.state.frames.push(Frame {
                    workflow_id,
                    version,
                    node: "start".into(),
                    save_error_to,
                });
            }
            Err(e) => self.fail_step(w, e),
        }
    }

    /// Ends the wait at the current node (a wait, or a handoff handed back) and moves on.
    pub fn resume(&mut self, w: &World<'_>, how: Resume) {
        let node = self.node().map(str::to_owned);
        let def = self.definition(w).ok();
        let save_to = def
            .zip(node.as_deref())
            .and_then(|(d, n)| d.configs.get(n))
            .and_then(|c| cfg_str(c, "save_response_to"))
            .map(str::to_owned);
        let reason = match how {
            Resume::UserInput { text, value } => {
                self.log.push(Logged {
                    event_type: "user_input_received",
                    node: node.clone(),
                    edge_label: None,
                    direction: Some("inbound"),
                    payload: json!({ "text": text, "value": value }),
                });
                self.save_reply(
                    node.as_deref(),
                    save_to.as_deref(),
                    Value::String(text),
                    value,
                );
                "user_input"
            }
            Resume::Timeout => {
                self.log("wait_timeout", node.as_deref(), Value::Null);
                "timeout"
            }
            Resume::Api { data, variables } => {
                if !variables.is_empty() {
                    self.log(
                        "variables_set",
                        node.as_deref(),
                        Value::Object(variables.clone()),
                    );
                    self.state.vars.extend(variables);
                }
                if !data.is_null() {
                    self.log.push(Logged {
                        event_type: "user_input_received",
                        node: node.clone(),
                        edge_label: None,
                        direction: Some("inbound"),
                        payload: json!({ "value": data, "source": "api" }),
                    });
                    self.save_reply(node.as_deref(), save_to.as_deref(), data.clone(), data);
                }
                "api"
            }
        };
        self.state
            .system
            .insert("last_resume".into(), json!({ "reason": reason }));
        self.follow(w, "next");
    }

    fn save_reply(&mut self, node: Option<&str>, save_to: Option<&str>, last: Value, value: Value) {
        self.state.last_user_input = last;
        if let Some(var) = save_to {
            self.state.vars.insert(var.to_owned(), value.clone());
            self.log("variables_set", node, json!({ var: value }));
        }
    }

    /// Moves the running frame to `node` (a jump by a person or the API).
    pub fn jump(&mut self, w: &World<'_>, node: &str, actor: &str) -> Result<(), String> {
        let def = self.definition(w)?;
        if def.node_type(node).is_none() {
            return Err(format!("node {node:?} does not exist in the workflow"));
        }
        let from = self.node().map(str::to_owned);
        if let Some(f) = self.state.frames.last_mut() {
            f.node = node.to_owned();
        }
        self.log(
            "jump",
            Some(node),
            json!({ "from": from, "to": node, "actor": actor }),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate;

    fn node(id: &str, t: &str, config: Value) -> Value {
        json!({"id": id, "data": {"node_type": t, "config": config}})
    }

    fn edge(s: &str, t: &str, label: &str) -> Value {
        json!({"source": s, "target": t, "label": label})
    }

    fn defs(list: Vec<(&str, Value)>) -> HashMap<(String, i64), Definition> {
        list.into_iter()
            .map(|(id, raw)| ((id.to_owned(), 1), validate(&raw).expect("valid")))
            .collect()
    }

    #[test]
    fn walks_pure_nodes_and_stops_at_the_world() {
        let d = defs(vec![(
            "w",
            json!({
                "nodes": [
                    node("start", "start", json!({})),
                    node("set", "set_variable", json!({"variable_name": "n", "variable_value": "3", "value_type": "number"})),
                    node("route", "decide", json!({"conditions": [
                        {"label": "big", "expression": "vars.n > 5"},
                        {"label": "small", "expression": "vars.n <= 5"}]})),
                    node("say", "send_text", json!({"message": "n is {{vars.n}}"})),
                    node("wait", "wait_for_response", json!({"timeout_seconds": 60, "save_response_to": "answer"})),
                    node("big", "handoff", json!({})),
                ],
                "edges": [edge("start", "set", "next"), edge("set", "route", "next"),
                          edge("route", "say", "small"), edge("route", "big", "big"), edge("say", "wait", "next")],
            }),
        )]);
        let env = HashMap::new();
        let w = World {
            defs: &d,
            env: &env,
        };
        let mut m = Machine::new(State::new("w", 1), "p");
        let Action::Send { node, message } = m.run(&w) else {
            panic!("send expected")
        };
        assert_eq!(node, "say");
        assert_eq!(message["text"]["body"], "n is 3");
        m.effect_done(&w, Ok(json!({"wamid": "wamid.1"})), None);
        assert_eq!(
            m.run(&w),
            Action::Wait {
                node: "wait".into(),
                timeout_seconds: Some(60)
            }
        );
        m.resume(
            &w,
            Resume::UserInput {
                text: "hola".into(),
                value: json!("hola"),
            },
        );
        assert_eq!(m.run(&w), Action::End);
        assert_eq!(m.state.vars["answer"], "hola");
        assert_eq!(m.state.system["last_resume"]["reason"], "user_input");
        let kinds: Vec<&str> = m.log.iter().map(|l| l.event_type).collect();
        assert!(kinds.contains(&"decision_evaluated"));
        assert!(kinds.contains(&"user_input_received"));
    }

    fn chain(n: usize) -> HashMap<(String, i64), Definition> {
        (1..=n)
            .map(|i| {
                let raw = if i < n {
                    json!({"nodes": [node("start", "start", json!({})), node("c", "call", json!({"workflow_id": format!("w{}", i + 1)}))],
                           "edges": [edge("start", "c", "next")]})
                } else {
                    json!({"nodes": [node("start", "start", json!({})), node("s", "set_variable", json!({"variable_name": "deep", "variable_value": "yes"}))],
                           "edges": [edge("start", "s", "next")]})
                };
                ((format!("w{i}"), 1), validate(&raw).expect("valid"))
            })
            .collect()
    }

    fn drive(d: &HashMap<(String, i64), Definition>) -> (Action, State) {
        let env = HashMap::new();
        let w = World { defs: d, env: &env };
        let mut m = Machine::new(State::new("w1", 1), "p");
        loop {
            match m.run(&w) {
                Action::Call { workflow_id, .. } => m.enter_call(&w, Ok((workflow_id, 1))),
                other => return (other, m.state),
            }
        }
    }

    #[test]
    fn sub_workflows_share_vars_and_stop_at_depth_ten() {
        let (end, state) = drive(&chain(10));
        assert_eq!(end, Action::End);
        assert_eq!(state.vars["deep"], "yes");
        let (fail, _) = drive(&chain(11));
        let Action::Fail { error, .. } = fail else {
            panic!("depth 11 must fail: {fail:?}")
        };
        assert!(error.contains("at most 10 levels"), "{error}");
    }

    #[test]
    fn a_failing_child_is_saved_when_asked_and_loops_are_stopped() {
        let d = defs(vec![
            (
                "w1",
                json!({"nodes": [node("start", "start", json!({})), node("c", "call", json!({"workflow_id": "w2", "save_error_to": "oops"})),
                                 node("after", "set_variable", json!({"variable_name": "went_on", "variable_value": "1"}))],
                       "edges": [edge("start", "c", "next"), edge("c", "after", "next")]}),
            ),
            (
                "w2",
                json!({"nodes": [node("start", "start", json!({})), node("d", "decide", json!({"conditions": [{"label": "never", "expression": "false"}]})),
                                 node("x", "handoff", json!({}))],
                       "edges": [edge("start", "d", "next"), edge("d", "x", "never")]}),
            ),
        ]);
        let (end, state) = drive(&d);
        assert_eq!(end, Action::End);
        assert_eq!(state.vars["went_on"], "1");
        assert!(
            state.vars["oops"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("no condition matched"))
        );

        let looping = defs(vec![(
            "w1",
            json!({"nodes": [node("start", "start", json!({})), node("a", "set_variable", json!({"variable_name": "x", "variable_value": "1"})),
                             node("b", "decide", json!({"conditions": [{"label": "again", "expression": "true"}]}))],
                   "edges": [edge("start", "a", "next"), edge("a", "b", "next"), edge("b", "a", "again")]}),
        )]);
        let (fail, state) = drive(&looping);
        assert!(matches!(fail, Action::Fail { ref error, .. } if error.contains("loops")));
        assert_eq!(state.frames.len(), 1, "the failing frame stays visible");
    }
}
