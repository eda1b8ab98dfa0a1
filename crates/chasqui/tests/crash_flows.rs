//! Crash tests of the workflow engine: a real `chasqui serve` process, killed with SIGKILL
//! during a send, during a wait and inside a sub-workflow, restarted on the same database.
//! The standalone sandbox (in this process, so it survives the kills) plays Meta; its outbox
//! shows every message the customer received, which must be each one exactly once.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{APP_SECRET, Backend, CLOUD_PNID, CLOUD_WABA, wait_until};
use serde_json::{Value, json};

struct Node {
    child: Child,
    base: String,
    api_key: Option<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

fn spawn(dir: &std::path::Path, database_url: &str, listen: &str, sandbox_url: &str) -> Node {
    let config = dir.join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chasqui"))
        .args(["serve", "--listen", listen, "--database-url", database_url])
        .args(["--graph-base-url", sandbox_url])
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env("CHASQUI_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("CHASQUI_WORKFLOW_STEP_LEASE", "3")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn chasqui");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first_run = !dir.join("started-once").exists();
    let (mut base, mut api_key) = (None, None);
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(rest) = line.strip_prefix("Chasqui is listening on ") {
            base = rest.split_whitespace().next().map(str::to_owned);
            if !first_run {
                break;
            }
        }
        if let Some(rest) = line.trim().strip_prefix("API key:") {
            api_key = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    std::fs::write(dir.join("started-once"), "").expect("marker");
    Node {
        child,
        base: base.expect("listening line"),
        api_key,
    }
}

/// A loopback address with a free port (the node keeps it across restarts, so the sandbox's
/// webhooks find it again).
async fn free_address() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr").to_string()
}

struct Client {
    http: reqwest::Client,
    key: String,
    sandbox: String,
}

impl Client {
    /// A client of the project a first start created, with the cloud number on the sandbox.
    async fn for_first_run(node: &Node, sandbox_url: &str) -> Self {
        let c = Client {
            http: reqwest::Client::new(),
            key: node.api_key.clone().expect("first run prints the key"),
            sandbox: sandbox_url.to_owned(),
        };
        c.call(&node.base, reqwest::Method::POST, "/platform/v1/whatsapp/phone_numbers",
            json!({"whatsapp_phone_number": {"kind": "cloud", "phone_number_id": CLOUD_PNID, "business_account_id": CLOUD_WABA,
                   "access_token": "t", "app_secret": APP_SECRET}})).await;
        c
    }

    /// Creates a workflow (body root `workflow`); returns its id.
    async fn workflow(&self, base: &str, workflow: Value) -> String {
        let w = self
            .call(
                base,
                reqwest::Method::POST,
                "/platform/v1/workflows",
                json!({ "workflow": workflow }),
            )
            .await;
        w["data"]["id"].as_str().expect("id").to_owned()
    }

    /// An active inbound trigger of the cloud number for `workflow_id`.
    async fn inbound_trigger(&self, base: &str, workflow_id: &str) {
        self.call(
            base,
            reqwest::Method::POST,
            &format!("/platform/v1/workflows/{workflow_id}/triggers"),
            json!({"trigger": {"trigger_type": "inbound_message", "phone_number_id": CLOUD_PNID, "active": true}}),
        )
        .await;
    }

    async fn call(&self, base: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{base}{path}"))
            .header("x-api-key", &self.key)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn customer_says(&self, text: &str) {
        let r = self
            .http
            .post(format!(
                "{}/v1/phone_numbers/{CLOUD_PNID}/inbound",
                self.sandbox
            ))
            .json(&json!({"from": "5215550009999", "profile_name": "Kim", "message": {"type": "text", "text": {"body": text}}}))
            .send()
            .await
            .expect("inbound");
        assert_eq!(r.status(), 200);
    }

    async fn faults(&self, faults: Value) {
        let r = self
            .http
            .put(format!(
                "{}/v1/phone_numbers/{CLOUD_PNID}/faults",
                self.sandbox
            ))
            .json(&faults)
            .send()
            .await
            .expect("faults");
        assert_eq!(r.status(), 200);
    }

    /// What the customer's phone received, in order.
    async fn received(&self) -> Vec<String> {
        let r = self
            .http
            .get(format!(
                "{}/v1/phone_numbers/{CLOUD_PNID}/outbox",
                self.sandbox
            ))
            .send()
            .await
            .expect("outbox");
        let v: Value = r.json().await.expect("json");
        v["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                m.pointer("/text/body")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    async fn execution(&self, base: &str, workflow_id: &str) -> Value {
        let v = self
            .call(
                base,
                reqwest::Method::GET,
                &format!("/platform/v1/workflows/{workflow_id}/executions"),
                Value::Null,
            )
            .await;
        v["data"][0].clone()
    }

    async fn wait_for(&self, base: &str, workflow_id: &str, status: &str, node: &str) {
        wait_until(&format!("execution {status} at {node}"), || async {
            let e = self.execution(base, workflow_id).await;
            e["status"] == status && (node.is_empty() || e["current_step"]["identifier"] == node)
        })
        .await;
    }

    /// Whether an outbound message with this text is stored and still waiting for Meta.
    async fn pending_send(&self, base: &str, text: &str) -> bool {
        let v = self
            .call(
                base,
                reqwest::Method::GET,
                &format!("/meta/whatsapp/v24.0/{CLOUD_PNID}/messages?fields=kapso(*)"),
                Value::Null,
            )
            .await;
        v["data"].as_array().into_iter().flatten().any(|m| {
            m.pointer("/text/body").and_then(Value::as_str) == Some(text)
                && m["kapso"]["status"] == "pending"
        })
    }
}

fn node(id: &str, t: &str, config: Value) -> Value {
    json!({"id": id, "data": {"node_type": t, "config": config}})
}

fn edge(s: &str, t: &str) -> Value {
    json!({"source": s, "target": t, "label": "next"})
}

async fn sigkill_anywhere_sends_each_message_once(backend: Backend) {
    chasqui::install_crypto_provider();
    let dir = tempfile::tempdir().expect("dir");
    let database_url = common::database(backend, dir.path()).await;
    let listen = free_address().await;

    // The sandbox lives in this process and keeps retrying its webhooks while the node is down.
    let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sandbox");
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr().expect("addr"));
    let sandbox = chasqui_sandbox::Sandbox::standalone(
        reqwest::Client::new(),
        &format!("http://{listen}/webhooks/meta"),
        APP_SECRET,
    );
    sandbox.set_base_url(&sandbox_url);
    tokio::spawn(async move {
        axum::serve(
            sandbox_listener,
            chasqui_sandbox::standalone_router(sandbox),
        )
        .await
    });

    let node_a = spawn(dir.path(), &database_url, &listen, &sandbox_url);
    let c = Client::for_first_run(&node_a, &sandbox_url).await;
    let base = node_a.base.clone();
    let child_id = c
        .workflow(&base, json!({"name": "Child", "status": "active", "definition": {
            "nodes": [node("start", "start", json!({})), node("s3", "send_text", json!({"message": "three"})),
                      node("w2", "wait_for_response", json!({"save_response_to": "b"})), node("s4", "send_text", json!({"message": "four"}))],
            "edges": [edge("start", "s3"), edge("s3", "w2"), edge("w2", "s4")]}}))
        .await;
    let wid = c
        .workflow(&base, json!({"name": "Main", "status": "active", "definition": {
            "nodes": [node("start", "start", json!({})), node("s1", "send_text", json!({"message": "one"})),
                      node("s2", "send_text", json!({"message": "two"})), node("w", "wait_for_response", json!({"save_response_to": "a"})),
                      node("c", "call", json!({"workflow_id": child_id})), node("s5", "send_text", json!({"message": "five: {{vars.b}}"}))],
            "edges": [edge("start", "s1"), edge("s1", "s2"), edge("s2", "w"), edge("w", "c"), edge("c", "s5")]}}))
        .await;
    c.inbound_trigger(&base, &wid).await;

    // 1. Killed during a send: Meta is slow to take "one"; the node dies while it waits.
    c.faults(json!({"send_delay_ms": 1500})).await;
    c.customer_says("hi").await;
    wait_until("the send of \"one\" in flight", || {
        c.pending_send(&base, "one")
    })
    .await;
    node_a.kill();
    c.faults(json!({})).await;
    let node_b = spawn(dir.path(), &database_url, &listen, &sandbox_url);
    let base = node_b.base.clone();
    c.wait_for(&base, &wid, "waiting", "w").await;
    assert_eq!(c.received().await, vec!["one", "two"]);

    // 2. Killed during a wait; then killed during a send whose answer never arrives (Meta
    // accepted it), inside the sub-workflow.
    node_b.kill();
    let node_c = spawn(dir.path(), &database_url, &listen, &sandbox_url);
    c.faults(json!({"answer_delay_ms": 5000})).await;
    c.customer_says("yes").await;
    wait_until("\"three\" accepted by Meta", || async {
        c.received().await.len() == 3
    })
    .await;
    node_c.kill();
    c.faults(json!({})).await;
    let node_d = spawn(dir.path(), &database_url, &listen, &sandbox_url);
    let base = node_d.base.clone();
    c.wait_for(&base, &wid, "waiting", "w2").await;
    let e = c.execution(&base, &wid).await;
    assert_eq!(e["current_step"]["depth"], 2, "{e}");

    // 3. Killed while the sub-workflow waits.
    node_d.kill();
    let node_e = spawn(dir.path(), &database_url, &listen, &sandbox_url);
    let base = node_e.base.clone();
    c.customer_says("deep").await;
    c.wait_for(&base, &wid, "ended", "").await;
    assert_eq!(
        c.received().await,
        vec!["one", "two", "three", "four", "five: deep"]
    );
    let e = c.execution(&base, &wid).await;
    assert_eq!(e["execution_context"]["vars"]["a"], "yes");
    drop(node_e);
}
both_backends!(sigkill_anywhere_sends_each_message_once);

/// Meta unreachable in the middle of a send: the outcome is unknown, so the send is left to
/// reconciliation; with no status webhook naming it by the end of the lease, it is sent again.
async fn an_unanswered_send_is_sent_again(backend: Backend) {
    chasqui::install_crypto_provider();
    let dir = tempfile::tempdir().expect("dir");
    let database_url = common::database(backend, dir.path()).await;
    let listen = free_address().await;
    let sandbox_addr = free_address().await;
    let sandbox_url = format!("http://{sandbox_addr}");
    let sandbox = chasqui_sandbox::Sandbox::standalone(
        reqwest::Client::new(),
        &format!("http://{listen}/webhooks/meta"),
        APP_SECRET,
    );
    sandbox.set_base_url(&sandbox_url);
    // Served with a graceful stop, so that stopping it refuses every connection.
    let serve = |sandbox: chasqui_sandbox::Sandbox, addr: String| async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, chasqui_sandbox::standalone_router(sandbox))
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await
        });
        (stop, task)
    };
    let (stop, server) = serve(sandbox.clone(), sandbox_addr.clone()).await;

    let running = spawn(dir.path(), &database_url, &listen, &sandbox_url);
    let c = Client::for_first_run(&running, &sandbox_url).await;
    let base = running.base.clone();
    let wid = c
        .workflow(&base, json!({"name": "Echo", "status": "active", "message_debounce_seconds": 2, "definition": {
            "nodes": [node("start", "start", json!({})), node("w", "wait_for_response", json!({"save_response_to": "a"})),
                      node("s", "send_text", json!({"message": "got {{vars.a}}"}))],
            "edges": [edge("start", "w"), edge("w", "s")]}}))
        .await;
    c.inbound_trigger(&base, &wid).await;
    c.customer_says("start").await;
    c.wait_for(&base, &wid, "waiting", "w").await;
    // The answer is delivered; Meta goes away before the workflow (2 s debounce) replies.
    c.customer_says("ping").await;
    stop.cancel();
    server.await.expect("join").expect("serve");
    wait_until("the send left to reconciliation", || {
        c.pending_send(&base, "got ping")
    })
    .await;
    let (stop, server) = serve(sandbox, sandbox_addr).await;
    c.wait_for(&base, &wid, "ended", "").await;
    assert_eq!(c.received().await, vec!["got ping"]);
    stop.cancel();
    let _ = server.await;
    drop(running);
}
both_backends!(an_unanswered_send_is_sent_again);
