//! Shared harness of the end-to-end tests: a real node on a loopback port over a fresh SQLite
//! file or a fresh PostgreSQL database, a project with a sandbox number and a cloud number
//! whose app secret the test knows.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use chasqui::config::ConfigArgs;
use chasqui::node::{self, Running};
use serde_json::{Value, json};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async test body on SQLite and on PostgreSQL (the latter is skipped with a notice
/// when no server is configured, and fails when CHASQUI_REQUIRE_POSTGRES=1).
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if common::postgres_available() {
                    super::$name(common::Backend::Postgres).await;
                }
            }
        }
    };
}

/// This crate's directory, found when the tests run (a test binary may be reused from another
/// checkout sharing the target directory, so a path fixed at compile time may be gone).
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
        .into()
}

pub fn postgres_available() -> bool {
    if chasqui_store::testing::postgres_admin_url().is_some() {
        return true;
    }
    assert!(
        std::env::var("CHASQUI_REQUIRE_POSTGRES").as_deref() != Ok("1"),
        "CHASQUI_TEST_POSTGRES_URL is required"
    );
    eprintln!("skipping: CHASQUI_TEST_POSTGRES_URL is not set");
    false
}

/// A fresh database URL (and the temp dir that holds data files).
pub async fn database(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite:{}", dir.join("chasqui.db").display()),
        Backend::Postgres => {
            let admin = chasqui_store::testing::postgres_admin_url().expect("postgres url");
            chasqui_store::testing::create_postgres_database(&admin, "chasqui_test")
                .await
                .expect("create database")
        }
    }
}

pub const APP_SECRET: &str = "e2e-app-secret-0123456789";
pub const CLOUD_PNID: &str = "106540352242922";
pub const CLOUD_WABA: &str = "102290129340398";
pub const CLOUD_TOKEN: &str = "EAAG-e2e-token";

pub struct Harness {
    pub running: Option<Running>,
    pub base: String,
    pub http: reqwest::Client,
    pub key: String,
    pub project_id: String,
    pub sandbox_pnid: String,
    /// The first owner's login.
    pub owner_email: String,
    pub owner_password: String,
    pub dir: tempfile::TempDir,
    pub database_url: String,
}

impl Harness {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, ConfigArgs::default()).await
    }

    /// Starts with extra settings (listen, data dir and database are the harness's).
    pub async fn start_with(backend: Backend, extra: ConfigArgs) -> Self {
        chasqui::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = database(backend, dir.path()).await;
        let mut harness = Self::start_on(dir, database_url, extra).await;
        harness.setup_cloud_number().await;
        harness
    }

    pub async fn start_on(dir: tempfile::TempDir, database_url: String, extra: ConfigArgs) -> Self {
        let clock: std::sync::Arc<dyn chasqui_core::Clock> =
            std::sync::Arc::new(chasqui_core::SystemClock);
        Self::start_on_with_clock(dir, database_url, extra, clock).await
    }

    /// Starts with a given clock (e.g. a `ManualClock` the test moves forward).
    pub async fn start_with_clock(
        backend: Backend,
        extra: ConfigArgs,
        clock: std::sync::Arc<dyn chasqui_core::Clock>,
    ) -> Self {
        chasqui::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = database(backend, dir.path()).await;
        let mut harness = Self::start_on_with_clock(dir, database_url, extra, clock).await;
        harness.setup_cloud_number().await;
        harness
    }

    pub async fn start_on_with_clock(
        dir: tempfile::TempDir,
        database_url: String,
        extra: ConfigArgs,
        clock: std::sync::Arc<dyn chasqui_core::Clock>,
    ) -> Self {
        // Every statement a test runs on SQLite has its plan checked when the harness drops.
        chasqui_store::plans::record();
        // RUST_LOG=warn (or finer) shows the node's logs in a failing test's output.
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let args = ConfigArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().to_path_buf()),
            database_url: Some(database_url.clone()),
            config: Some(write_empty_config(dir.path())),
            // Webhook receivers in tests live on loopback; retries come quickly.
            webhook_allow_private: extra.webhook_allow_private.clone().or(Some("true".into())),
            webhook_retry_schedule: extra
                .webhook_retry_schedule
                .clone()
                .or(Some("1,1,1".into())),
            // A step interrupted by a storage error is taken up again within a test's wait.
            workflow_step_lease: extra.workflow_step_lease.clone().or(Some("10".into())),
            ..extra
        };
        let running = node::start_with_clock(args.resolve().expect("config"), clock)
            .await
            .expect("start");
        let first = running
            .first_run
            .clone()
            .expect("first run creates a project");
        let base = format!("http://{}", running.addr);
        let h = Self {
            base,
            http: reqwest::Client::new(),
            key: first.api_key,
            project_id: first.project_id,
            sandbox_pnid: first.phone_number_id,
            owner_email: first.owner_email,
            owner_password: first.owner_password,
            running: Some(running),
            dir,
            database_url,
        };
        h.park_demo_workflow().await;
        h
    }

    /// Archives the first start's demo workflow and deactivates its trigger, so tests own the
    /// sandbox number and the workflow lists (tests of the demo turn both back on).
    async fn park_demo_workflow(&self) {
        let (_, list) = self
            .get("/platform/v1/workflows?name_contains=Welcome")
            .await;
        // A first start leaves exactly one demo workflow, active, on the sandbox number.
        assert_eq!(list["meta"]["total_count"], 1, "{list}");
        for w in list["data"].as_array().into_iter().flatten() {
            assert_eq!(w["status"], "active", "{w}");
            let id = w["id"].as_str().expect("id");
            let (_, triggers) = self
                .get(&format!("/platform/v1/workflows/{id}/triggers"))
                .await;
            for t in triggers["data"].as_array().into_iter().flatten() {
                assert_eq!(t["active"], true, "{t}");
                assert_eq!(t["phone_number_id"], self.sandbox_pnid.as_str(), "{t}");
                let tid = t["id"].as_str().expect("trigger id");
                let (status, body) = self
                    .send(
                        reqwest::Method::PATCH,
                        &format!("/platform/v1/triggers/{tid}"),
                        json!({"trigger": {"active": false}}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
            let (status, body) = self
                .send(
                    reqwest::Method::DELETE,
                    &format!("/platform/v1/workflows/{id}"),
                    json!({}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }

    async fn setup_cloud_number(&mut self) {
        let (status, body) = self
            .post(
                "/platform/v1/whatsapp/phone_numbers",
                json!({ "whatsapp_phone_number": {
                    "kind": "cloud", "name": "Cloud line", "phone_number_id": CLOUD_PNID,
                    "business_account_id": CLOUD_WABA, "display_phone_number": "15550783881",
                    "access_token": CLOUD_TOKEN, "app_secret": APP_SECRET, "webhook_verify_token": "verify-me",
                }}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    pub fn app(&self) -> &chasqui_app::App {
        &self.running.as_ref().expect("running").app
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_with_key(path, &self.key).await
    }

    pub async fn get_with_key(&self, path: &str, key: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .header("x-api-key", key)
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .header("x-api-key", &self.key)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    /// A simulated customer message through the embedded sandbox; returns the wamid.
    /// The node's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn customer_says(&self, from: &str, name: &str, message: Value) -> String {
        let path = format!("/sandbox/v1/phone_numbers/{}/inbound", self.sandbox_pnid);
        let (status, body) = self
            .post(
                &path,
                json!({ "from": from, "profile_name": name, "message": message }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["wamid"].as_str().expect("wamid").to_owned()
    }

    /// Posts raw bytes to /webhooks/meta, signed with `secret` (or the given header).
    pub async fn post_webhook(&self, body: &[u8], signature: Option<String>) -> u16 {
        let signature =
            signature.unwrap_or_else(|| chasqui_meta::sign(APP_SECRET.as_bytes(), body));
        self.http
            .post(self.url("/webhooks/meta"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body.to_vec())
            .send()
            .await
            .expect("webhook")
            .status()
            .as_u16()
    }

    /// Waits until nothing is pending processing.
    pub async fn settle(&self) {
        wait_until("inbound events processed", || async {
            chasqui_store::events::pending_count(self.app().db())
                .await
                .expect("count")
                == 0
        })
        .await;
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
            running.wait().await.expect("clean stop");
        }
    }
}

impl Drop for Harness {
    /// Fails the test when a statement run so far on SQLite has a plan that reads more
    /// than it returns (`chasqui_store::plans`); plans do not depend on the data, so this
    /// small file shows what a large one would do.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let bad = chasqui_store::plans::violations();
        assert!(
            bad.is_empty(),
            "{} statement(s) with a plan that will not scale:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }
}

fn write_empty_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("chasqui.toml");
    std::fs::write(&path, "# test config\n").expect("config");
    path
}

/// Polls `check` for up to 30 s (a killed node's claims expire after 10 s).
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A Meta envelope for the cloud number with the given change values.
pub fn envelope(changes: Vec<Value>) -> Vec<u8> {
    let changes: Vec<Value> = changes
        .into_iter()
        .map(|v| json!({ "value": v, "field": "messages" }))
        .collect();
    let body = json!({ "object": "whatsapp_business_account", "entry": [{ "id": CLOUD_WABA, "changes": changes }] });
    chasqui_meta::json::to_meta_bytes(&body)
}

/// A text message change value for the cloud number.
pub fn text_change(wamid: &str, from: &str, timestamp: i64, text: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": CLOUD_PNID },
        "contacts": [{ "profile": { "name": "José" }, "wa_id": from }],
        "messages": [{ "from": from, "id": wamid, "timestamp": timestamp.to_string(), "type": "text", "text": { "body": text } }],
    })
}

/// Current epoch seconds.
pub fn now_secs() -> i64 {
    use chasqui_core::Clock;
    chasqui_core::SystemClock.now().secs()
}

/// One email an [`SmtpSink`] accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A minimal SMTP server on loopback that keeps what it is sent; it can answer the next N
/// messages with a temporary failure (451).
#[derive(Clone)]
pub struct SmtpSink {
    pub addr: std::net::SocketAddr,
    pub mails: std::sync::Arc<std::sync::Mutex<Vec<Mail>>>,
    pub refuse_next: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind smtp");
        let sink = Self {
            addr: listener.local_addr().expect("addr"),
            mails: Default::default(),
            refuse_next: Default::default(),
        };
        let shared = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = shared.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let (mut from, mut to) = (String::new(), Vec::new());
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") {
                            b"250-sink\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("MAIL FROM:") {
                            from = line[10..].trim().to_owned();
                            b"250 OK\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            to.push(line[8..].trim().to_owned());
                            b"250 OK\r\n"
                        } else if upper == "DATA" {
                            let _ = write.write_all(b"354 go on\r\n").await;
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            let refused = sink
                                .refuse_next
                                .fetch_update(
                                    std::sync::atomic::Ordering::SeqCst,
                                    std::sync::atomic::Ordering::SeqCst,
                                    |n| n.checked_sub(1),
                                )
                                .is_ok();
                            if refused {
                                b"451 try again later\r\n"
                            } else {
                                sink.mails.lock().expect("mails").push(Mail {
                                    from: std::mem::take(&mut from),
                                    to: std::mem::take(&mut to),
                                    data,
                                });
                                b"250 queued\r\n"
                            }
                        } else if upper == "QUIT" {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 OK\r\n"
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("mails").clone()
    }
}

/// A logged-in browser: the session cookie and the CSRF token it was given.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
    pub user_id: String,
}

pub async fn login(h: &Harness, email: &str, password: &str) -> Result<Browser, (u16, Value)> {
    let r = h
        .http
        .post(h.url("/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login");
    let status = r.status().as_u16();
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status != 200 {
        return Err((status, body));
    }
    let set_cookie = set_cookie.expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    Ok(Browser {
        cookie,
        csrf: body["data"]["csrf_token"]
            .as_str()
            .expect("csrf")
            .to_owned(),
        user_id: body["data"]["user"]["id"].as_str().expect("id").to_owned(),
    })
}

impl Browser {
    /// A request with the cookie; `csrf` adds the token header.
    pub async fn call(
        &self,
        h: &Harness,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> (u16, Value) {
        let mut r = h
            .http
            .request(method, h.url(path))
            .header("cookie", &self.cookie);
        if csrf {
            r = r.header("x-csrf-token", &self.csrf);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, h: &Harness, path: &str) -> (u16, Value) {
        self.call(h, reqwest::Method::GET, path, None, false).await
    }

    pub async fn post(&self, h: &Harness, path: &str, body: Value) -> (u16, Value) {
        self.call(h, reqwest::Method::POST, path, Some(body), true)
            .await
    }
}
