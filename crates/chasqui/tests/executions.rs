//! End-to-end: workflow executions through the sandbox — inbound routing, every node type,
//! waits and timeouts on the manual clock, debounce, sub-workflows, the executions API — on
//! SQLite and PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chasqui::config::ConfigArgs;
use chasqui_core::{Clock, ManualClock, SystemClock};
use common::{Backend, Harness, wait_until};
use serde_json::{Value, json};

fn node(id: &str, t: &str, config: Value) -> Value {
    json!({"id": id, "position": {"x": 0, "y": 0}, "data": {"node_type": t, "config": config}})
}

fn edge(s: &str, t: &str, label: &str) -> Value {
    json!({"source": s, "target": t, "label": label})
}

/// Creates an active workflow; returns its id.
async fn active_workflow(h: &Harness, name: &str, definition: Value, debounce: i64) -> String {
    let (status, body) = h
        .post(
            "/platform/v1/workflows",
            json!({"workflow": {"name": name, "status": "active", "definition": definition, "message_debounce_seconds": debounce}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().expect("id").to_owned()
}

async fn trigger(h: &Harness, workflow_id: &str, trigger: Value) {
    let (status, body) = h
        .post(
            &format!("/platform/v1/workflows/{workflow_id}/triggers"),
            json!({ "trigger": trigger }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn executions_of(h: &Harness, workflow_id: &str) -> Vec<Value> {
    let (status, body) = h
        .get(&format!("/platform/v1/workflows/{workflow_id}/executions"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

async fn execution(h: &Harness, id: &str) -> Value {
    let (status, body) = h
        .get(&format!("/platform/v1/workflow_executions/{id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn wait_status(h: &Harness, id: &str, status: &str) -> Value {
    wait_until(&format!("execution {status}"), || async {
        execution(h, id).await["status"] == status
    })
    .await;
    execution(h, id).await
}

/// Texts (and interactive bodies) the sandbox phone received, in order.
async fn outbox(h: &Harness) -> Vec<String> {
    let (status, body) = h
        .get(&format!(
            "/sandbox/v1/phone_numbers/{}/outbox",
            h.sandbox_pnid
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            m.pointer("/text/body")
                .or_else(|| m.pointer("/interactive/body/text"))
                .or_else(|| m.pointer("/template/name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn event_types(e: &Value) -> Vec<String> {
    e["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|ev| ev["event_type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn greeter() -> Value {
    json!({
        "nodes": [
            node("start", "start", json!({})),
            node("ask", "send_interactive", json!({"interactive_type": "button", "body_text": "Hi {{context.contact.profile_name}}, you said {{last_user_input}}. Coffee?",
                "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]})),
            node("wait", "wait_for_response", json!({"timeout_seconds": 600, "save_response_to": "answer"})),
            node("route", "decide", json!({"conditions": [
                {"label": "late", "expression": "system.last_resume.reason === 'timeout'"},
                {"label": "yes", "expression": "vars.answer.id === 'yes'"},
                {"label": "other", "expression": "true"}]})),
            node("great", "send_text", json!({"message": "Great, {{vars.answer.title}} it is"})),
            node("mark", "set_variable", json!({"variable_name": "served", "variable_value": "1", "value_type": "number"})),
            node("sorry", "send_text", json!({"message": "Maybe later"})),
            node("human", "handoff", json!({"reason": "no answer"})),
        ],
        "edges": [
            edge("start", "ask", "next"), edge("ask", "wait", "next"), edge("wait", "route", "next"),
            edge("route", "human", "late"), edge("route", "great", "yes"), edge("route", "sorry", "other"),
            edge("great", "mark", "next"),
        ],
    })
}

async fn inbound_messages_drive_a_conversation(backend: Backend) {
    let h = Harness::start(backend).await;
    let wid = active_workflow(&h, "Coffee", greeter(), 0).await;
    // No trigger yet: a customer message starts nothing.
    h.customer_says(
        "5215550001111",
        "Ana",
        json!({"type": "text", "text": {"body": "anyone?"}}),
    )
    .await;
    h.settle().await;
    trigger(
        &h,
        &wid,
        json!({"trigger_type": "inbound_message", "phone_number_id": h.sandbox_pnid, "active": true}),
    )
    .await;
    // A trigger on a workflow that is not active starts nothing either.
    let (status, body) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/workflows/{wid}"),
            json!({"workflow": {"status": "draft"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    h.customer_says(
        "5215550001111",
        "Ana",
        json!({"type": "text", "text": {"body": "still there?"}}),
    )
    .await;
    h.settle().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(executions_of(&h, &wid).await.is_empty());
    assert!(outbox(&h).await.is_empty());
    let (status, body) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/workflows/{wid}"),
            json!({"workflow": {"status": "active"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    h.customer_says(
        "5215550001111",
        "Ana",
        json!({"type": "text", "text": {"body": "hola"}}),
    )
    .await;
    wait_until("an execution", || async {
        !executions_of(&h, &wid).await.is_empty()
    })
    .await;
    let id = executions_of(&h, &wid).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let e = wait_status(&h, &id, "waiting").await;
    assert_eq!(e["current_step"]["identifier"], "wait");
    assert_eq!(e["trigger_type"], "inbound_message");
    assert!(
        e["tracking_id"]
            .as_str()
            .is_some_and(|t| t.starts_with("trk_"))
    );
    assert_eq!(outbox(&h).await, vec!["Hi Ana, you said hola. Coffee?"]);

    // The button reply resumes it; the decide reads the structured reply.
    h.customer_says(
        "5215550001111",
        "Ana",
        json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}}),
    )
    .await;
    let e = wait_status(&h, &id, "ended").await;
    let vars = &e["execution_context"]["vars"];
    assert_eq!(vars["answer"]["id"], "yes");
    assert_eq!(vars["served"], 1);
    assert_eq!(e["execution_context"]["last_user_input"], "Yes");
    assert_eq!(
        e["execution_context"]["system"]["last_resume"]["reason"],
        "user_input"
    );
    assert_eq!(
        outbox(&h).await,
        vec!["Hi Ana, you said hola. Coffee?", "Great, Yes it is"]
    );
    let types = event_types(&e);
    for t in [
        "execution_started",
        "step_entered",
        "action_performed",
        "user_input_received",
        "decision_evaluated",
        "variables_set",
        "execution_ended",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
    let decision = e["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|ev| ev["event_type"] == "decision_evaluated")
        .expect("decision");
    assert_eq!(decision["edge_label"], "yes");

    // The workflow's messages are stored like any other, with Meta's wamids.
    let conversation = e["whatsapp_conversation_id"]
        .as_str()
        .expect("conversation");
    let (_, msgs) = h
        .get(&format!(
            "/platform/v1/whatsapp/conversations/{conversation}/messages"
        ))
        .await;
    let outbound: Vec<&Value> = msgs["data"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["kapso"]["direction"] == "outbound")
        .collect();
    assert_eq!(outbound.len(), 2, "{msgs}");
    assert!(
        outbound
            .iter()
            .all(|m| { m["id"].as_str().is_some_and(|w| w.starts_with("wamid.")) })
    );
    let (_, listed) = h
        .get(&format!(
            "/platform/v1/whatsapp/conversations/{conversation}/flow_executions"
        ))
        .await;
    assert_eq!(listed["data"][0]["id"], id.as_str());
    // Variables for editors: written by the definition, seen in executions.
    let (status, v) = h
        .get(&format!("/platform/v1/workflows/{wid}/variables"))
        .await;
    assert_eq!(status, 200, "{v}");
    let vars = v["data"]["discovered"]["vars"].as_array().expect("vars");
    let answer = vars.iter().find(|x| x["name"] == "answer").expect("answer");
    assert_eq!(answer["type"], "object");
    assert_eq!(answer["usage_count"], 1);
    assert_eq!(answer["reference"], "{{vars.answer}}");
    assert_eq!(answer["sample_values"][0]["id"], "yes");
    assert!(
        vars.iter()
            .any(|x| x["name"] == "served" && x["type"] == "number")
    );
    assert_eq!(v["data"]["fixed"]["system"]["tracking_id"], "string");

    // A new message after the end starts a new execution.
    h.customer_says(
        "5215550001111",
        "Ana",
        json!({"type": "text", "text": {"body": "again"}}),
    )
    .await;
    wait_until("a second execution", || async {
        executions_of(&h, &wid).await.len() == 2
    })
    .await;
    // Kapso's cursor style: newest first, one per page, following `next`.
    let (status, first) = h
        .get(&format!("/platform/v1/workflows/{wid}/executions?limit=1"))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"].as_array().map(Vec::len), Some(1));
    assert_ne!(
        first["data"][0]["id"],
        id.as_str(),
        "the newest comes first"
    );
    let next = first["paging"]["next"].as_str().expect("next page");
    let r = h
        .http
        .get(next)
        .header("x-api-key", &h.key)
        .send()
        .await
        .expect("next");
    let second: Value = r.json().await.expect("json");
    assert_eq!(second["data"][0]["id"], id.as_str(), "{second}");
    assert!(second["paging"]["next"].is_null(), "{second}");
    let (status, err) = h
        .get(&format!(
            "/platform/v1/workflows/{wid}/executions?after=garbage"
        ))
        .await;
    assert_eq!(status, 400, "{err}");
}
both_backends!(inbound_messages_drive_a_conversation);

/// A local HTTP receiver: records every request (path, headers, JSON body); paths under
/// `/fail` answer 500.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<std::sync::Mutex<Vec<(String, axum::http::HeaderMap, Value)>>>,
}

impl Receiver {
    async fn start() -> (Self, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .fallback(
                |axum::extract::State(r): axum::extract::State<Receiver>,
                 uri: axum::http::Uri,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let path = uri.path().to_owned();
                    r.seen
                        .lock()
                        .expect("lock")
                        .push((path.clone(), headers, v));
                    if path.starts_with("/slower") {
                        tokio::time::sleep(Duration::from_millis(6000)).await;
                    } else if path.starts_with("/slow") {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                    }
                    if path.starts_with("/fail") {
                        (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            "{\"error\":\"down\"}",
                        )
                    } else {
                        (axum::http::StatusCode::OK, "{\"ok\":true,\"points\":42}")
                    }
                },
            )
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn bodies(&self, path: &str) -> Vec<Value> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, _, v)| v.clone())
            .collect()
    }

    fn events(&self, event_type: &str) -> Vec<Value> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, h, _)| {
                p == "/hooks"
                    && h.get("x-webhook-event").and_then(|v| v.to_str().ok()) == Some(event_type)
            })
            .map(|(_, _, v)| v.clone())
            .collect()
    }
}

async fn start_api(h: &Harness, wid: &str, body: Value) -> String {
    let (status, started) = h
        .post(&format!("/platform/v1/workflows/{wid}/executions"), body)
        .await;
    assert_eq!(status, 202, "{started}");
    assert!(started["data"]["tracking_id"].is_string());
    started["data"]["id"].as_str().expect("id").to_owned()
}

async fn waits_resume_on_the_manual_clock(backend: Backend) {
    let clock = ManualClock::new(SystemClock.now());
    let h =
        Harness::start_with_clock(backend, ConfigArgs::default(), Arc::new(clock.clone())).await;
    let def = json!({
        "nodes": [
            node("start", "start", json!({})),
            node("wait", "wait_for_response", json!({"timeout_seconds": 604800, "save_response_to": "reply"})),
            node("route", "decide", json!({"conditions": [
                {"label": "late", "expression": "system.last_resume.reason === \"timeout\""},
                {"label": "answered", "expression": "true"}]})),
            node("late", "set_variable", json!({"variable_name": "outcome", "variable_value": "timeout after {{vars.order}}"})),
            node("answered", "set_variable", json!({"variable_name": "outcome", "variable_value": "{{vars.reply}}"})),
        ],
        "edges": [edge("start", "wait", "next"), edge("wait", "route", "next"),
                  edge("route", "late", "late"), edge("route", "answered", "answered")],
    });
    let wid = active_workflow(&h, "Week", def, 0).await;
    trigger(&h, &wid, json!({"trigger_type": "api_call"})).await;

    // Starting needs an api_call trigger on an active workflow, and a valid recipient.
    let (status, err) = h
        .post(
            &format!("/platform/v1/workflows/{wid}/executions"),
            json!({"workflow_execution": {"phone_number": "not a phone", "phone_number_id": h.sandbox_pnid}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");

    let id = start_api(
        &h,
        &wid,
        json!({"workflow_execution": {"phone_number": "+52 1 555 000 2222", "phone_number_id": h.sandbox_pnid, "variables": {"order": "A1"}}}),
    )
    .await;
    let e = wait_status(&h, &id, "waiting").await;
    assert_eq!(e["waiting_reason"], "user_input");
    assert_eq!(e["execution_context"]["vars"]["order"], "A1");
    assert_eq!(e["trigger_type"], "api_call");

    // One second before seven days: still waiting.
    clock.advance_millis(7 * 24 * 3600 * 1000 - 1000);
    h.app().wake();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(execution(&h, &id).await["status"], "waiting");
    // At seven days: the timeout resumes it.
    clock.advance_millis(1000);
    h.app().wake();
    let e = wait_status(&h, &id, "ended").await;
    let ctx = &e["execution_context"];
    assert_eq!(ctx["vars"]["outcome"], "timeout after A1");
    assert_eq!(ctx["system"]["last_resume"]["reason"], "timeout");
    assert!(ctx["vars"].get("reply").is_none());
    assert!(event_types(&e).iter().any(|t| t == "wait_timeout"));
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("chasqui_workflow_executions{status=\"ended\"} 1"),
        "{metrics}"
    );
}
both_backends!(waits_resume_on_the_manual_clock);

fn collector() -> Value {
    json!({
        "nodes": [
            node("start", "start", json!({})),
            node("wait", "wait_for_response", json!({"save_response_to": "m"})),
            node("log", "set_variable", json!({"variable_name": "log", "variable_value": "{{vars.log}}|{{vars.m}}"})),
        ],
        "edges": [edge("start", "wait", "next"), edge("wait", "log", "next"), edge("log", "wait", "next")],
    })
}

fn count(e: &Value, event_type: &str) -> usize {
    event_types(e).iter().filter(|t| *t == event_type).count()
}

async fn debounce_collects_a_burst(backend: Backend) {
    let clock = ManualClock::new(SystemClock.now());
    let h =
        Harness::start_with_clock(backend, ConfigArgs::default(), Arc::new(clock.clone())).await;
    let quick = active_workflow(&h, "Each message", collector(), 0).await;
    let burst = active_workflow(&h, "Bursts", collector(), 5).await;
    for w in [&quick, &burst] {
        trigger(&h, w, json!({"trigger_type": "api_call"})).await;
    }
    let one = start_api(
        &h,
        &quick,
        json!({"workflow_execution": {"phone_number": "+5215550003333", "phone_number_id": h.sandbox_pnid}}),
    )
    .await;
    let many = start_api(
        &h,
        &burst,
        json!({"workflow_execution": {"phone_number": "+5215550004444", "phone_number_id": h.sandbox_pnid}}),
    )
    .await;
    wait_status(&h, &one, "waiting").await;
    wait_status(&h, &many, "waiting").await;
    for text in ["a", "b", "c"] {
        h.customer_says(
            "5215550003333",
            "Q",
            json!({"type": "text", "text": {"body": text}}),
        )
        .await;
        h.customer_says(
            "5215550004444",
            "B",
            json!({"type": "text", "text": {"body": text}}),
        )
        .await;
    }
    // Without debounce: three resumes, in order.
    wait_until("three inputs", || async {
        execution(&h, &one).await["execution_context"]["vars"]["log"] == "|a|b|c"
    })
    .await;
    assert_eq!(count(&execution(&h, &one).await, "user_input_received"), 3);

    // With a 5 s window: nothing until the window after the last message has passed.
    h.settle().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let e = execution(&h, &many).await;
    assert_eq!(e["status"], "waiting");
    assert!(e["execution_context"]["vars"].get("log").is_none(), "{e}");
    clock.advance_millis(5_000);
    h.app().wake();
    wait_until("one resume", || async {
        execution(&h, &many).await["execution_context"]["vars"]["log"] == "|a\nb\nc"
    })
    .await;
    assert_eq!(count(&execution(&h, &many).await, "user_input_received"), 1);
}
both_backends!(debounce_collects_a_burst);

async fn the_api_resumes_hands_off_jumps_and_ends(backend: Backend) {
    let h = Harness::start(backend).await;
    let (hooks, base) = Receiver::start().await;
    let (status, body) = h
        .post(
            "/platform/v1/whatsapp/webhooks",
            json!({"whatsapp_webhook": {"url": format!("{base}/hooks"), "events": ["workflow.execution.handoff", "workflow.execution.failed"]}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let def = json!({
        "nodes": [
            node("start", "start", json!({})),
            node("hello", "send_text", json!({"message": "Hello {{context.contact.profile_name}}"})),
            node("wait", "wait_for_response", json!({"save_response_to": "a"})),
            node("human", "handoff", json!({"reason": "approval needed"})),
            node("again", "send_text", json!({"message": "Back: approved={{vars.a.approved}} by {{vars.approver}}"})),
            node("wait2", "wait_for_response", json!({"save_response_to": "b"})),
        ],
        "edges": [edge("start", "hello", "next"), edge("hello", "wait", "next"), edge("wait", "human", "next"),
                  edge("again", "wait2", "next")],
    });
    let wid = active_workflow(&h, "Approvals", def, 0).await;
    trigger(
        &h,
        &wid,
        json!({"trigger_type": "inbound_message", "phone_number_id": h.sandbox_pnid, "active": true}),
    )
    .await;
    h.customer_says(
        "5215550005555",
        "Eva",
        json!({"type": "text", "text": {"body": "hi"}}),
    )
    .await;
    wait_until("an execution", || async {
        !executions_of(&h, &wid).await.is_empty()
    })
    .await;
    let id = executions_of(&h, &wid).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_status(&h, &id, "waiting").await;
    let path = format!("/platform/v1/workflow_executions/{id}");

    // The transition table is enforced.
    let (status, err) = h
        .send(
            reqwest::Method::PATCH,
            &path,
            json!({"workflow_execution": {"status": "running"}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    let (status, err) = h
        .send(
            reqwest::Method::PATCH,
            &path,
            json!({"workflow_execution": {"status": "waiting"}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");

    // An API resume: data is the reply, variables merge into vars; then the handoff.
    let (status, body) = h
        .post(
            &format!("{path}/resume"),
            json!({"message": {"kind": "payload", "data": {"approved": true}}, "variables": {"approver": "ops"}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let e = wait_status(&h, &id, "handoff").await;
    let ctx = &e["execution_context"];
    assert_eq!(ctx["vars"]["a"]["approved"], true);
    assert_eq!(ctx["vars"]["approver"], "ops");
    assert_eq!(ctx["system"]["last_resume"]["reason"], "api");
    wait_until("the handoff event", || async {
        !hooks.events("workflow.execution.handoff").is_empty()
    })
    .await;
    let handoff = &hooks.events("workflow.execution.handoff")[0];
    assert_eq!(handoff["workflow_execution_id"], id.as_str(), "{handoff}");
    assert_eq!(handoff["event"], "workflow.execution.handoff");
    assert_eq!(handoff["handoff"]["reason"], "approval needed");
    assert_eq!(handoff["handoff"]["source"], "action_step");

    // The conversation shows the workflow's status, and the handoff filter finds it.
    let conversation_id = e["whatsapp_conversation_id"]
        .as_str()
        .expect("conversation")
        .to_owned();
    let (_, c) = h
        .get(&format!(
            "/platform/v1/whatsapp/conversations/{conversation_id}"
        ))
        .await;
    assert_eq!(c["data"]["workflow_status"], "handoff", "{c}");
    let (_, handed) = h
        .get("/platform/v1/whatsapp/conversations?handoff=true")
        .await;
    let ids: Vec<&str> = handed["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![conversation_id.as_str()]);
    let (status, _) = h
        .get("/platform/v1/whatsapp/conversations?handoff=maybe")
        .await;
    assert_eq!(status, 400);

    // In handoff, the customer's messages neither resume it nor start another.
    h.customer_says(
        "5215550005555",
        "Eva",
        json!({"type": "text", "text": {"body": "anyone?"}}),
    )
    .await;
    h.settle().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(executions_of(&h, &wid).await.len(), 1);
    let e = execution(&h, &id).await;
    assert_eq!(e["status"], "handoff");
    assert_eq!(count(&e, "user_input_received"), 1);
    let (status, err) = h.post(&format!("{path}/resume"), json!({})).await;
    assert_eq!(status, 422, "{err}");

    // A jump keeps the status (a person still owns it) and logs the actor.
    let (status, err) = h
        .post(&format!("{path}/jump"), json!({"node_id": "nowhere"}))
        .await;
    assert_eq!(status, 422, "{err}");
    let (status, body) = h
        .post(&format!("{path}/jump"), json!({"node_id": "again"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "handoff");
    assert_eq!(body["data"]["current_step"]["identifier"], "again");

    // Handed back, it runs from the node it was moved to.
    let (status, body) = h
        .send(
            reqwest::Method::PATCH,
            &path,
            json!({"workflow_execution": {"status": "waiting"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_until("the node after the jump", || async {
        let e = execution(&h, &id).await;
        e["status"] == "waiting" && e["current_step"]["identifier"] == "wait2"
    })
    .await;
    assert!(
        outbox(&h)
            .await
            .contains(&"Back: approved=true by ops".to_owned())
    );
    let e = execution(&h, &id).await;
    let jump = e["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|ev| ev["event_type"] == "jump")
        .cloned()
        .expect("jump logged");
    assert_eq!(jump["payload"]["actor"], "api");
    assert_eq!(jump["payload"]["from"], "human");

    let (status, body) = h
        .send(
            reqwest::Method::PATCH,
            &path,
            json!({"workflow_execution": {"status": "ended"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "ended");
    let (status, err) = h
        .send(
            reqwest::Method::PATCH,
            &path,
            json!({"workflow_execution": {"status": "waiting"}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    let (status, _) = h
        .get("/platform/v1/workflow_executions/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(status, 404);
}
both_backends!(the_api_resumes_hands_off_jumps_and_ends);

/// Workflows w1..wn where each calls the next and the last sets `deep`.
async fn chain(h: &Harness, n: usize) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for i in (1..=n).rev() {
        let def = match ids.last() {
            None => json!({"nodes": [node("start", "start", json!({})),
                                     node("s", "set_variable", json!({"variable_name": "deep", "variable_value": "level {{vars.level}}"}))],
                           "edges": [edge("start", "s", "next")]}),
            Some(next) => json!({"nodes": [node("start", "start", json!({})),
                                           node("lvl", "set_variable", json!({"variable_name": "level", "variable_value": i.to_string()})),
                                           node("c", "call", json!({"workflow_id": next}))],
                                 "edges": [edge("start", "lvl", "next"), edge("lvl", "c", "next")]}),
        };
        ids.push(active_workflow(h, &format!("Chain {n} level {i}"), def, 0).await);
    }
    ids.reverse();
    ids
}

async fn sub_workflows_nest_ten_deep_and_never_cycle(backend: Backend) {
    let h = Harness::start(backend).await;
    let (hooks, base) = Receiver::start().await;
    let (status, body) = h
        .post(
            "/platform/v1/whatsapp/webhooks",
            json!({"whatsapp_webhook": {"url": format!("{base}/hooks"), "events": ["workflow.execution.failed"]}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let ten = chain(&h, 10).await;
    trigger(&h, &ten[0], json!({"trigger_type": "api_call"})).await;
    let id = start_api(&h, &ten[0], json!({})).await;
    let e = wait_status(&h, &id, "ended").await;
    // The child's variables come back to the caller.
    assert_eq!(e["execution_context"]["vars"]["deep"], "level 9");

    let eleven = chain(&h, 11).await;
    trigger(&h, &eleven[0], json!({"trigger_type": "api_call"})).await;
    let id = start_api(&h, &eleven[0], json!({})).await;
    let e = wait_status(&h, &id, "failed").await;
    let message = e["error_details"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("at most 10 levels"), "{e}");
    wait_until("the failure event", || async {
        !hooks.events("workflow.execution.failed").is_empty()
    })
    .await;
    let failed = &hooks.events("workflow.execution.failed")[0];
    assert_eq!(failed["workflow_execution_id"], id.as_str(), "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 10 levels"))
    );

    // A call back to an ancestor is refused when saved.
    let (_, current) = h
        .get(&format!("/platform/v1/workflows/{}/definition", ten[9]))
        .await;
    let cyclic = json!({"nodes": [node("start", "start", json!({})), node("back", "call", json!({"workflow_id": ten[0]}))],
                        "edges": [edge("start", "back", "next")]});
    let (status, err) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/workflows/{}", ten[9]),
            json!({"workflow": {"definition": cyclic, "lock_version": current["data"]["lock_version"]}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert!(err.to_string().contains("makes a cycle"), "{err}");
    let (status, err) = h
        .post(
            "/platform/v1/workflows",
            json!({"workflow": {"name": "Dangling", "definition": {"nodes": [node("start", "start", json!({})), node("c", "call", json!({"workflow_id": "no-such-flow"}))],
                                                                  "edges": [edge("start", "c", "next")]}}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}
both_backends!(sub_workflows_nest_ten_deep_and_never_cycle);

async fn webhook_nodes_call_out_and_fail_clearly(backend: Backend) {
    let h = Harness::start(backend).await;
    let (receiver, base) = Receiver::start().await;
    let (status, body) = h
        .send(
            reqwest::Method::PUT,
            "/platform/v1/env_vars/CRM_TOKEN",
            json!({"value": "s3cret"}),
        )
        .await;
    assert!(status == 201 || status == 200, "{body}");
    let def = json!({
        "nodes": [
            node("start", "start", json!({})),
            node("crm", "webhook", json!({"url": format!("{base}/crm/{{{{vars.customer}}}}"), "method": "POST",
                "headers": {"Authorization": "Bearer ${ENV:CRM_TOKEN}"},
                "body_template": "{\"customer\": \"{{vars.customer}}\", \"source\": \"{{system.trigger_type}}\"}",
                "save_response_to": "crm"})),
            node("check", "decide", json!({"conditions": [
                {"label": "rich", "expression": "vars.crm.status === 200 && vars.crm.body.points > 40"},
                {"label": "poor", "expression": "true"}]})),
            node("rich", "set_variable", json!({"variable_name": "tier", "variable_value": "gold"})),
            node("poor", "set_variable", json!({"variable_name": "tier", "variable_value": "basic"})),
            node("broken", "webhook", json!({"url": format!("{base}/fail"), "method": "GET"})),
        ],
        "edges": [edge("start", "crm", "next"), edge("crm", "check", "next"), edge("check", "rich", "rich"),
                  edge("check", "poor", "poor"), edge("rich", "broken", "next")],
    });
    let wid = active_workflow(&h, "CRM", def, 0).await;
    trigger(&h, &wid, json!({"trigger_type": "api_call"})).await;
    let id = start_api(
        &h,
        &wid,
        json!({"workflow_execution": {"variables": {"customer": "c-42"}}}),
    )
    .await;
    let e = wait_status(&h, &id, "failed").await;
    let vars = &e["execution_context"]["vars"];
    assert_eq!(vars["crm"]["body"]["points"], 42);
    assert_eq!(vars["tier"], "gold");
    let sent = receiver.bodies("/crm/c-42");
    assert_eq!(
        sent,
        vec![json!({"customer": "c-42", "source": "api_call"})]
    );
    let auth = receiver
        .seen
        .lock()
        .expect("lock")
        .iter()
        .find(|(p, _, _)| p == "/crm/c-42")
        .and_then(|(_, h, _)| h.get("authorization").cloned());
    assert_eq!(
        auth.expect("auth").to_str().expect("ascii"),
        "Bearer s3cret"
    );
    assert!(
        e["error_details"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("answered HTTP 500")),
        "{e}"
    );
    assert_eq!(e["error_details"]["node"], "broken");
    // Without a recipient, a send fails the step with a clear message; `ai` decisions are
    // accepted by the schema and fail at run time as not available yet.
    let def = json!({
        "nodes": [node("start", "start", json!({})), node("say", "send_text", json!({"message": "hi"}))],
        "edges": [edge("start", "say", "next")],
    });
    let wid = active_workflow(&h, "Nobody", def, 0).await;
    trigger(&h, &wid, json!({"trigger_type": "api_call"})).await;
    let id = start_api(&h, &wid, json!({})).await;
    let e = wait_status(&h, &id, "failed").await;
    assert!(
        e["error_details"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no WhatsApp recipient")),
        "{e}"
    );
    let def = json!({
        "nodes": [node("start", "start", json!({})),
                  node("pick", "decide", json!({"decision_type": "ai", "conditions": [{"label": "a", "description": "x"}]})),
                  node("a", "handoff", json!({}))],
        "edges": [edge("start", "pick", "next"), edge("pick", "a", "a")],
    });
    let wid = active_workflow(&h, "Smart", def, 0).await;
    trigger(&h, &wid, json!({"trigger_type": "api_call"})).await;
    let id = start_api(&h, &wid, json!({})).await;
    let e = wait_status(&h, &id, "failed").await;
    assert!(
        e["error_details"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not available yet")),
        "{e}"
    );
}
both_backends!(webhook_nodes_call_out_and_fail_clearly);

/// The first start's demo workflow: greets with buttons, branches on the answer or on the
/// five-minute timeout.
async fn the_demo_workflow_greets_and_branches(backend: Backend) {
    let clock = ManualClock::new(SystemClock.now());
    let h =
        Harness::start_with_clock(backend, ConfigArgs::default(), Arc::new(clock.clone())).await;
    let (_, list) = h.get("/platform/v1/workflows?name_contains=Welcome").await;
    let wid = list["data"][0]["id"]
        .as_str()
        .expect("demo workflow")
        .to_owned();
    // The harness parks the demo; a first start leaves it active.
    let (status, body) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/workflows/{wid}"),
            json!({"workflow": {"status": "active"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, triggers) = h
        .get(&format!("/platform/v1/workflows/{wid}/triggers"))
        .await;
    let tid = triggers["data"][0]["id"]
        .as_str()
        .expect("trigger")
        .to_owned();
    let (status, body) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/triggers/{tid}"),
            json!({"trigger": {"active": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    h.customer_says(
        "5215550007777",
        "Ana",
        json!({"type": "text", "text": {"body": "hola"}}),
    )
    .await;
    h.customer_says(
        "5215550008888",
        "Leo",
        json!({"type": "text", "text": {"body": "hi"}}),
    )
    .await;
    wait_until("both greeted", || async { outbox(&h).await.len() == 2 }).await;
    assert!(outbox(&h).await.iter().any(|t| t.starts_with("Hi Ana!")));
    h.customer_says(
        "5215550007777",
        "Ana",
        json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Show me"}}}),
    )
    .await;
    wait_until("the tour", || async {
        outbox(&h)
            .await
            .iter()
            .any(|t| t.starts_with("This flow just sent you buttons"))
    })
    .await;
    // Leo does not answer: five minutes later the timeout branch nudges him. (Time moves
    // only once nothing runs: a jump past the step lease would hand a running step over.)
    wait_until("Ana done, Leo waiting", || async {
        let runs = executions_of(&h, &wid).await;
        let mut statuses: Vec<&str> = runs.iter().filter_map(|e| e["status"].as_str()).collect();
        statuses.sort_unstable();
        statuses == ["ended", "waiting"]
    })
    .await;
    clock.advance_millis(300_000);
    h.app().wake();
    wait_until("the nudge", || async {
        outbox(&h)
            .await
            .iter()
            .any(|t| t.starts_with("Still there?"))
    })
    .await;
    wait_until("both executions ended", || async {
        let runs = executions_of(&h, &wid).await;
        runs.len() == 2 && runs.iter().all(|e| e["status"] == "ended")
    })
    .await;
}
both_backends!(the_demo_workflow_greets_and_branches);

async fn sends_of_every_kind_reach_the_phone(backend: Backend) {
    let h = Harness::start(backend).await;
    // Outside the 24-hour window a template goes, free-form text fails the step (131047).
    let def = json!({
        "nodes": [node("start", "start", json!({})),
                  node("tpl", "send_template", json!({"template_id": "hello_world", "language_code": "en_US"})),
                  node("txt", "send_text", json!({"message": "free-form"}))],
        "edges": [edge("start", "tpl", "next"), edge("tpl", "txt", "next")],
    });
    let wid = active_workflow(&h, "Reengage", def, 0).await;
    trigger(&h, &wid, json!({"trigger_type": "api_call"})).await;
    let id = start_api(
        &h,
        &wid,
        json!({"workflow_execution": {"phone_number": "+5215550006666", "phone_number_id": h.sandbox_pnid}}),
    )
    .await;
    let e = wait_status(&h, &id, "failed").await;
    assert!(
        e["error_details"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("131047")),
        "{e}"
    );
    assert_eq!(outbox(&h).await, vec!["hello_world"]);

    // Inside the window: every interactive kind, built from Kapso's flat keys, is accepted.
    h.customer_says(
        "5215550006666",
        "Ivo",
        json!({"type": "text", "text": {"body": "hello"}}),
    )
    .await;
    let def = json!({
        "nodes": [
            node("start", "start", json!({})),
            node("b", "send_interactive", json!({"interactive_type": "button", "body_text": "b1", "header_type": "image",
                "header_media_url": "https://example.com/a.png", "buttons": [{"id": "x", "title": "X"}]})),
            node("l", "send_interactive", json!({"interactive_type": "list", "body_text": "b2", "list_button_text": "Pick",
                "list_sections": [{"title": "S", "rows": [{"id": "r1", "title": "Row {{vars.n}}", "description": "d"}]}]})),
            node("c", "send_interactive", json!({"interactive_type": "cta_url", "body_text": "b3", "cta_display_text": "Open",
                "cta_url": "https://shop.example/{{vars.n}}"})),
            node("f", "send_interactive", json!({"interactive_type": "flow", "body_text": "b4", "flow_id": "123", "flow_cta": "Book",
                "flow_token": "tok-{{vars.n}}", "flow_action": "navigate", "flow_action_payload": {"screen": "START", "data": {"n": "{{vars.n}}"}}})),
            node("loc", "send_interactive", json!({"interactive_type": "location_request_message", "body_text": "b5"})),
        ],
        "edges": [edge("start", "b", "next"), edge("b", "l", "next"), edge("l", "c", "next"), edge("c", "f", "next"), edge("f", "loc", "next")],
    });
    let wid = active_workflow(&h, "Interactive", def, 0).await;
    trigger(&h, &wid, json!({"trigger_type": "api_call"})).await;
    let id = start_api(
        &h,
        &wid,
        json!({"workflow_execution": {"phone_number": "+5215550006666", "phone_number_id": h.sandbox_pnid, "variables": {"n": "7"}}}),
    )
    .await;
    let e = wait_status(&h, &id, "ended").await;
    assert_eq!(count(&e, "action_performed"), 5, "{e}");
    assert_eq!(
        outbox(&h).await,
        vec!["hello_world", "b1", "b2", "b3", "b4", "b5"]
    );
    let (_, raw) = h
        .get(&format!(
            "/sandbox/v1/phone_numbers/{}/outbox",
            h.sandbox_pnid
        ))
        .await;
    let flow = &raw["data"][4]["interactive"]["action"]["parameters"];
    assert_eq!(flow["flow_token"], "tok-7");
    assert_eq!(flow["flow_action_payload"]["data"]["n"], "7");
    assert_eq!(
        raw["data"][3]["interactive"]["action"]["parameters"]["url"],
        "https://shop.example/7"
    );
}
both_backends!(sends_of_every_kind_reach_the_phone);

/// Messages that arrive while a step runs wait for the execution, in order.
async fn messages_during_a_step_are_queued_in_order(backend: Backend) {
    let h = Harness::start(backend).await;
    let (receiver, base) = Receiver::start().await;
    let def = json!({
        "nodes": [
            node("start", "start", json!({})),
            node("slow", "webhook", json!({"url": format!("{base}/slow"), "method": "POST", "body": {"hi": 1}})),
            node("w1", "wait_for_response", json!({"save_response_to": "m1"})),
            node("w2", "wait_for_response", json!({"save_response_to": "m2"})),
            node("w3", "wait_for_response", json!({"save_response_to": "m3"})),
        ],
        "edges": [edge("start", "slow", "next"), edge("slow", "w1", "next"), edge("w1", "w2", "next"), edge("w2", "w3", "next")],
    });
    let wid = active_workflow(&h, "Slow", def, 0).await;
    trigger(&h, &wid, json!({"trigger_type": "api_call"})).await;
    let id = start_api(
        &h,
        &wid,
        json!({"workflow_execution": {"phone_number": "+5215550001212", "phone_number_id": h.sandbox_pnid}}),
    )
    .await;
    wait_until("the slow step running", || async {
        !receiver.bodies("/slow").is_empty()
    })
    .await;
    for text in ["first", "second", "third"] {
        h.customer_says(
            "5215550001212",
            "Q",
            json!({"type": "text", "text": {"body": text}}),
        )
        .await;
    }
    let e = wait_status(&h, &id, "ended").await;
    let vars = &e["execution_context"]["vars"];
    assert_eq!(
        (vars["m1"].clone(), vars["m2"].clone(), vars["m3"].clone()),
        (json!("first"), json!("second"), json!("third")),
        "{e}"
    );
    assert_eq!(receiver.bodies("/slow").len(), 1, "the step ran once");
}
both_backends!(messages_during_a_step_are_queued_in_order);

async fn reads(h: &Harness) -> Vec<Value> {
    let (status, body) = h
        .get(&format!(
            "/sandbox/v1/phone_numbers/{}/reads",
            h.sandbox_pnid
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

/// `inbound_message_read_mode`: messages routed to a workflow are marked read (and show a
/// typing indicator) as the workflow asks.
async fn read_receipts_follow_the_read_mode(backend: Backend) {
    let h = Harness::start(backend).await;
    let def = json!({
        "nodes": [node("start", "start", json!({})), node("wait", "wait_for_response", json!({"save_response_to": "a"}))],
        "edges": [edge("start", "wait", "next")],
    });
    let (status, body) = h
        .post(
            "/platform/v1/workflows",
            json!({"workflow": {"name": "Reader", "status": "active", "definition": def, "inbound_message_read_mode": "read_only"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let wid = body["data"]["id"].as_str().expect("id").to_owned();
    trigger(
        &h,
        &wid,
        json!({"trigger_type": "inbound_message", "phone_number_id": h.sandbox_pnid, "active": true}),
    )
    .await;
    let set_mode = |mode: &'static str| {
        let h = &h;
        let wid = wid.clone();
        async move {
            let (status, body) = h
                .send(
                    reqwest::Method::PATCH,
                    &format!("/platform/v1/workflows/{wid}"),
                    json!({"workflow": {"inbound_message_read_mode": mode}}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    let one = h
        .customer_says(
            "5215550003434",
            "R",
            json!({"type": "text", "text": {"body": "one"}}),
        )
        .await;
    wait_until("a read receipt", || async { reads(&h).await.len() == 1 }).await;
    assert_eq!(
        reads(&h).await[0],
        json!({"message_id": one, "typing_indicator": null})
    );
    set_mode("read_with_typing").await;
    let two = h
        .customer_says(
            "5215550003434",
            "R",
            json!({"type": "text", "text": {"body": "two"}}),
        )
        .await;
    wait_until("a second receipt", || async { reads(&h).await.len() == 2 }).await;
    assert_eq!(
        reads(&h).await[1],
        json!({"message_id": two, "typing_indicator": {"type": "text"}})
    );
    set_mode("disabled").await;
    h.customer_says(
        "5215550003434",
        "R",
        json!({"type": "text", "text": {"body": "three"}}),
    )
    .await;
    wait_until("a second execution", || async {
        executions_of(&h, &wid).await.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reads(&h).await.len(), 2);
}
both_backends!(read_receipts_follow_the_read_mode);

/// Each execution runs as its own task: one stuck in a slow webhook does not delay others.
async fn a_slow_step_does_not_hold_others_back(backend: Backend) {
    let h = Harness::start(backend).await;
    let (receiver, base) = Receiver::start().await;
    let slow = json!({
        "nodes": [node("start", "start", json!({})),
                  node("call", "webhook", json!({"url": format!("{base}/slower"), "method": "GET"}))],
        "edges": [edge("start", "call", "next")],
    });
    let fast = json!({
        "nodes": [node("start", "start", json!({})),
                  node("set", "set_variable", json!({"variable_name": "done", "variable_value": "yes"}))],
        "edges": [edge("start", "set", "next")],
    });
    let slow = active_workflow(&h, "Slow one", slow, 0).await;
    let fast = active_workflow(&h, "Fast one", fast, 0).await;
    for w in [&slow, &fast] {
        trigger(&h, w, json!({"trigger_type": "api_call"})).await;
    }
    let stuck = start_api(&h, &slow, json!({})).await;
    wait_until("the slow call in flight", || async {
        !receiver.bodies("/slower").is_empty()
    })
    .await;
    let started = std::time::Instant::now();
    let quick = start_api(&h, &fast, json!({})).await;
    wait_status(&h, &quick, "ended").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the fast execution waited {:?} for the slow one",
        started.elapsed()
    );
    assert_eq!(execution(&h, &stuck).await["status"], "running");
    wait_status(&h, &stuck, "ended").await;
}
both_backends!(a_slow_step_does_not_hold_others_back);
