//! Chasqui's use-cases: accepting and processing Meta's webhooks, projects and keys,
//! phone numbers, media, and the background workers that drive them. HTTP handlers call
//! into this crate; SQL stays in `chasqui-store`, Meta's wire formats in `chasqui-meta`.

pub mod assignments;
pub mod conversations;
pub mod directory;
pub mod embeds;
pub mod env_vars;
pub mod error;
pub mod executions;
pub mod graph;
pub mod ingest;
pub mod mail;
pub mod media;
pub mod messaging;
pub mod numbers;
pub mod processing;
pub mod profile;
pub mod projects;
pub mod realtime;
pub mod render;
pub mod templates;
pub mod users;
pub mod webhooks;
pub mod worker;
pub mod workflows;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use chasqui_core::{Clock, InstanceKey};
use chasqui_store::Db;

pub use error::AppError;

/// Settings the use-cases need from the instance configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Data directory (media files live under `media/`).
    pub data_dir: PathBuf,
    /// Graph API base URL for `cloud` numbers.
    pub graph_base_url: String,
    /// Lifetime of signed media URLs, in seconds.
    pub media_url_ttl_secs: i64,
    /// Whether outbound webhooks may target loopback and private addresses.
    pub webhook_allow_private: bool,
    /// Delays before each webhook retry, in seconds.
    pub webhook_retry_schedule: Vec<u64>,
    /// Lease of a workflow step (ms): an execution whose node died is picked up again after
    /// it, and a send interrupted mid-call is sent again only if Meta has not named it by then.
    pub workflow_step_lease_ms: i64,
    /// SMTP for emailing notices to project members; `None`: notices are only recorded.
    pub smtp: Option<mail::SmtpSettings>,
    /// How long processed inbound deliveries (Meta's raw bodies) are kept (ms); `None`
    /// keeps them forever.
    pub inbound_retention_ms: Option<i64>,
    /// How long delivered webhook events stay in the delivery log (ms); `None` keeps them
    /// forever.
    pub webhook_retention_ms: Option<i64>,
}

/// Definition versions loaded on this node (versions never change once stored).
#[derive(Debug, Default)]
pub struct DefinitionCache(
    std::sync::Mutex<std::collections::HashMap<(String, i64), Arc<chasqui_engine::Definition>>>,
);

impl DefinitionCache {
    /// A cached version.
    pub fn get(&self, workflow_id: &str, version: i64) -> Option<Arc<chasqui_engine::Definition>> {
        self.0
            .lock()
            .ok()?
            .get(&(workflow_id.to_owned(), version))
            .cloned()
    }

    /// Caches a version.
    pub fn put(&self, workflow_id: &str, version: i64, d: Arc<chasqui_engine::Definition>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert((workflow_id.to_owned(), version), d);
        }
    }
}

/// Shared state of one Chasqui node.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    key: InstanceKey,
    clock: Arc<dyn Clock>,
    settings: Settings,
    directory: directory::Directory,
    http: reqwest::Client,
    wake: tokio::sync::Notify,
    public_url: OnceLock<String>,
    local_url: OnceLock<String>,
    writes: OnceLock<chasqui_store::group::WriteQueue>,
    definitions: DefinitionCache,
    login_throttle: users::LoginThrottle,
    notifier: chasqui_store::notifier::Notifier,
}

impl App {
    /// Wires the use-cases to a database, the instance key and a clock.
    pub fn new(db: Db, key: InstanceKey, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("chasqui/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                directory: directory::Directory::new(db.clone(), key.clone()),
                db,
                key,
                clock,
                settings,
                http,
                wake: tokio::sync::Notify::new(),
                public_url: OnceLock::new(),
                local_url: OnceLock::new(),
                writes: OnceLock::new(),
                definitions: DefinitionCache::default(),
                login_throttle: users::LoginThrottle::default(),
                notifier: chasqui_store::notifier::Notifier::new(),
            }),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The group-commit queue for small writes of concurrent requests (started on first use,
    /// inside the runtime): one writer with large batches on SQLite, eight writers with one
    /// unit per transaction on PostgreSQL.
    pub fn writes(&self) -> &chasqui_store::group::WriteQueue {
        self.inner.writes.get_or_init(|| {
            let (writers, max_batch) = match self.inner.db.backend() {
                chasqui_store::Backend::Sqlite => (1, 256),
                chasqui_store::Backend::Postgres => (8, 1),
            };
            chasqui_store::group::WriteQueue::start(self.inner.db.clone(), writers, max_batch)
        })
    }

    /// Runs a unit of the group-commit queue, building it afresh for another attempt when it
    /// lost a deadlock or serialization conflict (PostgreSQL aborts one of two transactions
    /// that wait on each other); at most five attempts, 10 to 80 ms apart.
    pub async fn write_unit<T, M, F>(&self, mut make: M) -> chasqui_store::Result<T>
    where
        T: Send + 'static,
        M: FnMut() -> F,
        F: for<'c> FnOnce(
                &'c mut chasqui_store::Conn,
            ) -> futures::future::BoxFuture<'c, chasqui_store::Result<T>>
            + Send
            + 'static,
    {
        let mut attempt = 1u64;
        loop {
            match self.writes().run(make()).await {
                Err(e) if e.is_retryable_conflict() && attempt < 5 => {
                    tracing::debug!(error = %e, attempt, "write unit conflicted; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(10 << (attempt - 1))).await;
                    attempt += 1;
                }
                Err(e) if e.is_retryable_conflict() => {
                    tracing::warn!(error = %e, "write unit kept conflicting; giving up");
                    return Err(e);
                }
                other => return other,
            }
        }
    }

    /// Realtime change notices (the inbox's WebSocket subscribes here).
    pub fn notifier(&self) -> &chasqui_store::notifier::Notifier {
        &self.inner.notifier
    }

    /// Publishes committed changes to open inboxes; a failure only delays them until the
    /// clients' next read, so it is logged, not returned.
    pub async fn publish_changes(&self, changes: Vec<chasqui_store::notifier::Change>) {
        if let Err(e) = self.inner.notifier.publish(&self.inner.db, changes).await {
            tracing::warn!(error = %e, "publishing realtime changes failed");
        }
    }

    /// Failed logins per address on this node.
    pub fn login_throttle(&self) -> &users::LoginThrottle {
        &self.inner.login_throttle
    }

    /// Workflow definitions loaded on this node.
    pub fn definitions(&self) -> &DefinitionCache {
        &self.inner.definitions
    }

    /// The instance key.
    pub fn key(&self) -> &InstanceKey {
        &self.inner.key
    }

    /// Current time in epoch milliseconds.
    pub fn now(&self) -> i64 {
        self.inner.clock.now().millis()
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Instance settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Routing cache of phone numbers and their app secrets.
    pub fn directory(&self) -> &directory::Directory {
        &self.inner.directory
    }

    /// Shared outbound HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Wakes every worker loop, the webhook deliveries' included.
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
        self.inner.db.wake_deliveries();
    }

    /// Wakes the worker loops after work that made webhook deliveries only by publishing
    /// events: on SQLite the delivery loops are woken by the commit that made them
    /// ([`chasqui_store::Db::deliveries_committed`]), so only the others here; on
    /// PostgreSQL every loop, as [`App::wake`].
    pub fn wake_workers(&self) {
        match self.inner.db.deliveries_committed() {
            Some(_) => self.inner.wake.notify_waiters(),
            None => self.wake(),
        }
    }

    /// What the webhook delivery loops wait for: a commit that made deliveries or
    /// [`App::wake`] on SQLite, any wake-up on PostgreSQL. Arm it before looking for work.
    pub fn deliveries_woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner
            .db
            .deliveries_committed()
            .unwrap_or_else(|| self.inner.wake.notified())
    }

    /// Completes once [`App::wake`] is called. Arm it (`Notified::enable`) before looking for
    /// work, so that a wake-up between the look and the wait is not missed.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.wake.notified()
    }

    /// The externally reachable base URL of this node (set once the listener is bound).
    pub fn public_url(&self) -> &str {
        self.inner
            .public_url
            .get()
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1:8080")
    }

    /// Sets the public base URL; only the first call has an effect.
    pub fn set_public_url(&self, url: &str) {
        let _ = self
            .inner
            .public_url
            .set(url.trim_end_matches('/').to_owned());
    }

    /// The loopback base URL of this node's own listener (for calls to itself).
    pub fn local_url(&self) -> &str {
        self.inner
            .local_url
            .get()
            .map(String::as_str)
            .unwrap_or_else(|| self.public_url())
    }

    /// Sets the loopback base URL; only the first call has an effect.
    pub fn set_local_url(&self, url: &str) {
        let _ = self
            .inner
            .local_url
            .set(url.trim_end_matches('/').to_owned());
    }

    /// The Graph API base URL for a number of `kind`: the embedded sandbox for `sandbox`.
    pub fn graph_base_url(&self, kind: chasqui_core::NumberKind) -> String {
        if kind == chasqui_core::NumberKind::Sandbox {
            format!("{}/sandbox/graph", self.local_url())
        } else {
            self.inner.settings.graph_base_url.clone()
        }
    }
}
