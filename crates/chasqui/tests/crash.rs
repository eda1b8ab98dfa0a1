//! A node killed with SIGKILL right after acknowledging webhooks loses none of them: after a
//! restart every acknowledged delivery is processed.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{APP_SECRET, Backend, CLOUD_PNID, CLOUD_WABA, envelope, text_change, wait_until};
use serde_json::{Value, json};

struct Node {
    child: Child,
    base: String,
    api_key: Option<String>,
}

impl Drop for Node {
    /// A failing test must not leak a server.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &std::path::Path, database_url: &str) -> Node {
    let config = dir.join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chasqui"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
        ])
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env("CHASQUI_WEBHOOK_ALLOW_PRIVATE", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn chasqui");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut base = None;
    let mut api_key = None;
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(rest) = line.strip_prefix("Chasqui is listening on ") {
            base = rest.split_whitespace().next().map(str::to_owned);
            if !is_first_run(dir) {
                break;
            }
        }
        if let Some(rest) = line.trim().strip_prefix("API key:") {
            api_key = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Node {
        child,
        base: base.expect("listening line"),
        api_key,
    }
}

fn is_first_run(dir: &std::path::Path) -> bool {
    !dir.join("started-once").exists()
}

async fn sigkill_after_ack_loses_nothing(backend: Backend) {
    chasqui::install_crypto_provider();
    let dir = tempfile::tempdir().expect("dir");
    let database_url = common::database(backend, dir.path()).await;
    let node = spawn(dir.path(), &database_url);
    std::fs::write(dir.path().join("started-once"), "").expect("marker");
    let key = node.api_key.clone().expect("first run prints the key");
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/platform/v1/whatsapp/phone_numbers", node.base))
        .header("x-api-key", &key)
        .json(&json!({"whatsapp_phone_number": {"kind": "cloud", "phone_number_id": CLOUD_PNID, "business_account_id": CLOUD_WABA,
            "access_token": "t", "app_secret": APP_SECRET}}))
        .send()
        .await
        .expect("create number");
    assert_eq!(created.status(), 201);

    const N: usize = 200;
    let now = common::now_secs();
    let sends = (0..N).map(|i| {
        let http = http.clone();
        let url = format!("{}/webhooks/meta", node.base);
        async move {
            let body = envelope(vec![text_change(
                &format!("wamid.CRASH{i}"),
                "16505550000",
                now - 600 + i as i64,
                "x",
            )]);
            let signature = chasqui_meta::sign(APP_SECRET.as_bytes(), &body);
            http.post(url)
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
                .await
                .expect("post")
                .status()
        }
    });
    let statuses = futures::future::join_all(sends).await;
    let mut node = node;
    node.child.kill().expect("SIGKILL");
    node.child.wait().expect("reap");
    assert!(statuses.iter().all(|s| s.as_u16() == 200), "{statuses:?}");

    let restarted = spawn(dir.path(), &database_url);
    let base = restarted.base.clone();
    wait_until("every acknowledged webhook processed after restart", || {
        let http = http.clone();
        let key = key.clone();
        let base = base.clone();
        async move {
            let r = http
                .get(format!(
                    "{base}/meta/whatsapp/v24.0/{CLOUD_PNID}/conversations"
                ))
                .header("x-api-key", key)
                .send()
                .await
                .expect("get");
            let body: Value = r.json().await.expect("json");
            body["data"][0]["kapso"]["messages_count"] == N
        }
    })
    .await;
    drop(restarted);
}
both_backends!(sigkill_after_ack_loses_nothing);

/// A node killed while a webhook delivery is in flight delivers it after restart, with the
/// same X-Idempotency-Key (the receiver can tell it is the same event).
async fn sigkill_mid_delivery_redelivers(backend: Backend) {
    use std::sync::{Arc, Mutex};
    chasqui::install_crypto_provider();
    let dir = tempfile::tempdir().expect("dir");
    let database_url = common::database(backend, dir.path()).await;

    // The receiver never answers its first request; later ones get 200.
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = keys.clone();
    let sink = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let first = {
                    let mut keys = seen.lock().expect("lock");
                    let key = headers["x-idempotency-key"]
                        .to_str()
                        .unwrap_or_default()
                        .to_owned();
                    keys.push(key);
                    keys.len() == 1
                };
                if first {
                    std::future::pending::<()>().await;
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, sink).await });

    let node = spawn(dir.path(), &database_url);
    std::fs::write(dir.path().join("started-once"), "").expect("marker");
    let key = node.api_key.clone().expect("first run prints the key");
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/platform/v1/whatsapp/phone_numbers", node.base))
        .header("x-api-key", &key)
        .json(&json!({"whatsapp_phone_number": {"kind": "cloud", "phone_number_id": CLOUD_PNID, "business_account_id": CLOUD_WABA,
            "access_token": "t", "app_secret": APP_SECRET}}))
        .send()
        .await
        .expect("create number");
    assert_eq!(created.status(), 201);
    let hook = http
        .post(format!("{}/platform/v1/whatsapp/webhooks", node.base))
        .header("x-api-key", &key)
        .json(&json!({"whatsapp_webhook": {"url": hook_url, "events": ["whatsapp.message.received"]}}))
        .send()
        .await
        .expect("create webhook");
    assert_eq!(hook.status(), 201);
    let body = envelope(vec![text_change(
        "wamid.MIDFLIGHT",
        "16505550000",
        common::now_secs(),
        "hello",
    )]);
    let signature = chasqui_meta::sign(APP_SECRET.as_bytes(), &body);
    let posted = http
        .post(format!("{}/webhooks/meta", node.base))
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), 200);
    wait_until("the delivery is in flight", || async {
        keys.lock().expect("lock").len() == 1
    })
    .await;
    let mut node = node;
    node.child.kill().expect("SIGKILL");
    node.child.wait().expect("reap");

    let restarted = spawn(dir.path(), &database_url);
    // The lease (20 s) runs out and the delivery is attempted again.
    let start = std::time::Instant::now();
    while keys.lock().expect("lock").len() < 2 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "never re-delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let keys = keys.lock().expect("lock").clone();
    assert_eq!(keys[0], keys[1], "same X-Idempotency-Key");
    drop(restarted);
}
both_backends!(sigkill_mid_delivery_redelivers);
