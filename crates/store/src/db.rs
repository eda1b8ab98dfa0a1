//! Connection pools and migrations.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{ConnectOptions, Connection, Executor, SqlSafeStr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::task::JoinHandle;

use crate::checkpoint::{Checkpointer, WalFile};
use crate::lane::{Lane, LanePin};
use crate::sql::{LiteConn, Pool, Role, SharedLite};
use crate::write_stats::{WriteCounts, WriteStats};

/// Reader connections to an SQLite file.
const READERS: usize = 4;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A direct SQLite connection refused or failed a statement.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL is not usable.
    #[error("invalid database url {url:?}: {reason}")]
    Url {
        /// The URL, with any password removed.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Stored data does not have the shape the code expects.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The shared transaction of a group commit failed; the work was not stored.
    #[error("group commit failed: {0}")]
    GroupCommit(String),
    /// A row changed since it was read (an optimistic update lost); nothing was written.
    #[error("stale: {0}")]
    Stale(String),
}

impl StoreError {
    /// Whether retrying the same work can succeed: a deadlock or serialization failure
    /// between concurrent transactions (PostgreSQL) or a busy database (SQLite).
    pub fn is_retryable_conflict(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                matches!(
                    e.code().as_deref(),
                    Some("40P01" | "40001" | "5" | "6" | "517")
                )
            }
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }

    /// Whether a unique key or primary key refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.is_unique_violation(),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }
}

/// Which database the pools talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file: one writer connection, several readers (WAL).
    Sqlite,
    /// PostgreSQL: one pool shared by every statement.
    Postgres,
}

impl Backend {
    /// The suffix of a claiming SELECT: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so that
    /// concurrent claimers take disjoint rows; nothing on SQLite (one writer).
    pub fn skip_locked(self) -> &'static str {
        match self {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }
}

/// The database handle: a writer pool, a reader pool, and the inbox pool that holds raw
/// inbound deliveries. On PostgreSQL all three are one pool; on SQLite the inbox is a
/// separate file with its own writer, so storing a delivery never waits for the write lock
/// that processing holds on the main file.
#[derive(Debug, Clone)]
pub struct Db {
    write: Pool,
    read: Pool,
    inbox: Pool,
    /// SQLite: the connection migrations run on (sqlx's migrator), opened only for them.
    migrate_options: Option<AnyConnectOptions>,
    backend: Backend,
    /// SQLite: the thread that runs the tasks driving the writer connection.
    lane: Option<Arc<Lane>>,
    /// SQLite: the thread that copies both files' WAL back (the writers never do).
    _checkpoints: Option<Arc<Checkpointer>>,
    /// SQLite: what each file's writer has done (`main`, then `inbox`).
    write_stats: Vec<(&'static str, Arc<WriteStats>)>,
    /// SQLite: notified when a commit has made webhook deliveries.
    deliveries: Option<Arc<tokio::sync::Notify>>,
}

/// Schema of the SQLite inbox file (the same table the PostgreSQL migration creates).
const INBOX_SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS inbound_events (id TEXT PRIMARY KEY, received_at BIGINT NOT NULL, body TEXT NOT NULL, \
     status TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, locked_until BIGINT, processed_at BIGINT, errors TEXT)",
    // Only the waiting deliveries, in claim order (migration 0017 on PostgreSQL).
    "CREATE INDEX IF NOT EXISTS inbound_events_queue ON inbound_events(received_at, id) WHERE status = 'pending'",
    "DROP INDEX IF EXISTS inbound_events_pending",
    // Only the parked deliveries (migration 0018 on PostgreSQL).
    "CREATE INDEX IF NOT EXISTS inbound_events_failed ON inbound_events(received_at, id) WHERE status = 'failed'",
];

/// The inbox file beside an SQLite database: `x.db` → `x-inbound.db`.
fn inbox_path(path: &str) -> String {
    let p = std::path::Path::new(path);
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "chasqui".into());
    p.with_file_name(format!("{stem}-inbound.db"))
        .to_string_lossy()
        .into_owned()
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "send", include_str!("../migrations/0002_send.sql")),
    (
        3,
        "templates_media",
        include_str!("../migrations/0003_templates_media.sql"),
    ),
    (
        4,
        "webhooks",
        include_str!("../migrations/0004_webhooks.sql"),
    ),
    (
        5,
        "notifications",
        include_str!("../migrations/0005_notifications.sql"),
    ),
    (
        6,
        "webhook_buffers",
        include_str!("../migrations/0006_webhook_buffers.sql"),
    ),
    (
        7,
        "conversation_order",
        include_str!("../migrations/0007_conversation_order.sql"),
    ),
    (
        8,
        "workflows",
        include_str!("../migrations/0008_workflows.sql"),
    ),
    (
        9,
        "triggers_env",
        include_str!("../migrations/0009_triggers_env.sql"),
    ),
    (
        10,
        "executions",
        include_str!("../migrations/0010_executions.sql"),
    ),
    (
        11,
        "execution_status_index",
        include_str!("../migrations/0011_execution_status_index.sql"),
    ),
    (12, "users", include_str!("../migrations/0012_users.sql")),
    (
        13,
        "notification_email",
        include_str!("../migrations/0013_notification_email.sql"),
    ),
    (
        14,
        "inbox_embeds",
        include_str!("../migrations/0014_inbox_embeds.sql"),
    ),
    (
        15,
        "conversation_reads",
        include_str!("../migrations/0015_conversation_reads.sql"),
    ),
    (
        16,
        "contacts_wa_id",
        include_str!("../migrations/0016_contacts_wa_id.sql"),
    ),
    (
        17,
        "query_plans",
        include_str!("../migrations/0017_query_plans.sql"),
    ),
    (
        18,
        "inbound_failed",
        include_str!("../migrations/0018_inbound_failed.sql"),
    ),
    (
        19,
        "webhook_held",
        include_str!("../migrations/0019_webhook_held.sql"),
    ),
    (
        20,
        "status_history_by_message",
        include_str!("../migrations/0020_status_history_by_message.sql"),
    ),
];

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Hides the password of a URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}://{}:***@{}", &url[..scheme], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl Db {
    /// Opens `url` (`sqlite:PATH` or `postgres://...`), creating an SQLite file if needed;
    /// an SQLite writer lane is pinned as [`LanePin::Auto`] says.
    pub async fn connect(url: &str) -> crate::Result<Self> {
        Self::connect_with(url, LanePin::Auto).await
    }

    /// [`Db::connect`] with the SQLite writer lane pinned as `pin` says (ignored on
    /// PostgreSQL).
    pub async fn connect_with(url: &str, pin: LanePin) -> crate::Result<Self> {
        sqlx::any::install_default_drivers();
        let bad = |reason: &str| StoreError::Url {
            url: redact_url(url),
            reason: reason.to_owned(),
        };
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(bad(
                    "give a file path, e.g. sqlite:./chasqui-data/chasqui.db",
                ));
            }
            if let Some(parent) = std::path::Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| bad(&format!("cannot create {}: {e}", parent.display())))?;
            }
            let options = AnyConnectOptions::from_str(&format!("sqlite://{path}?mode=rwc"))
                .map_err(|e| bad(&e.to_string()))?;
            let open = |file: &str, role: Role| {
                LiteConn::open(file, role).map_err(|e| bad(&format!("{file}: {e}")))
            };
            let lane = Lane::start(pin).map_err(|e| bad(&format!("writer thread: {e}")))?;
            if let Some(cpu) = lane.cpu() {
                tracing::debug!(cpu, "SQLite writer lane pinned");
            }
            // The writer first: it creates the file and switches it to WAL.
            let mut write = open(path, Role::Writer)?;
            write.watch_webhooks();
            let deliveries = Arc::new(tokio::sync::Notify::new());
            write.announce_deliveries(deliveries.clone());
            let read = (0..READERS)
                .map(|_| open(path, Role::Reader))
                .collect::<crate::Result<Vec<_>>>()?;
            let inbox_file = inbox_path(path);
            let mut inbox = open(&inbox_file, Role::LazyWriter)?;
            // After the writers: the files exist and are in WAL mode.
            let files =
                [(path.to_owned(), &mut write), (inbox_file, &mut inbox)].map(|(path, writer)| {
                    let restart = Arc::new(AtomicBool::new(false));
                    writer.restart_wal_on(restart.clone());
                    WalFile { path, restart }
                });
            let checkpoints = Checkpointer::start(files.into())
                .map_err(|e| bad(&format!("checkpoint thread: {e}")))?;
            let write_stats =
                [("main", &mut write), ("inbox", &mut inbox)].map(|(file, writer)| {
                    let stats = Arc::new(WriteStats::default());
                    writer.count_into(stats.clone());
                    (file, stats)
                });
            Ok(Self {
                write: Pool::lite(SharedLite::new(vec![write])),
                read: Pool::lite(SharedLite::new(read)),
                inbox: Pool::lite(SharedLite::new(vec![inbox])),
                migrate_options: Some(options),
                backend: Backend::Sqlite,
                lane: Some(Arc::new(lane)),
                _checkpoints: Some(Arc::new(checkpoints)),
                write_stats: write_stats.into(),
                deliveries: Some(deliveries),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = AnyConnectOptions::from_str(url).map_err(|e| bad(&e.to_string()))?;
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            let pool = Pool::sqlx(pool);
            Ok(Self {
                write: pool.clone(),
                read: pool.clone(),
                inbox: pool,
                migrate_options: None,
                backend: Backend::Postgres,
                lane: None,
                _checkpoints: None,
                write_stats: Vec::new(),
                deliveries: None,
            })
        } else {
            Err(bad("expected sqlite:PATH or postgres://..."))
        }
    }

    /// SQLite: what each file's writer has done since it opened, by file (`main`, `inbox`);
    /// empty on PostgreSQL.
    pub fn write_counts(&self) -> Vec<(&'static str, WriteCounts)> {
        self.write_stats
            .iter()
            .map(|(file, stats)| (*file, stats.read()))
            .collect()
    }

    /// SQLite: completes after the next commit that makes webhook deliveries, or
    /// [`Db::wake_deliveries`]. `None` on PostgreSQL, where commits on other nodes make
    /// deliveries too. Arm it (`Notified::enable`) before looking for work.
    pub fn deliveries_committed(&self) -> Option<tokio::sync::futures::Notified<'_>> {
        self.deliveries.as_ref().map(|n| n.notified())
    }

    /// SQLite: wakes what waits on [`Db::deliveries_committed`] (deliveries made ready
    /// otherwise than by a new event: a webhook enabled again, a retry asked for).
    pub fn wake_deliveries(&self) {
        if let Some(n) = &self.deliveries {
            n.notify_waiters();
        }
    }

    /// The database in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for statements that write (on SQLite the single, direct writer connection).
    pub fn writer(&self) -> &Pool {
        &self.write
    }

    /// Runs a task that writes: on SQLite on the writer lane, beside the writer
    /// connection's thread; on PostgreSQL on the current runtime.
    pub fn spawn_writer<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.lane {
            Some(lane) => lane.spawn(task),
            None => tokio::spawn(task),
        }
    }

    /// The pool for read-only statements.
    pub fn reader(&self) -> &Pool {
        &self.read
    }

    /// The pool of the inbound deliveries table (the main pool on PostgreSQL).
    pub fn inbox(&self) -> &Pool {
        &self.inbox
    }

    /// Applies pending migrations (and creates the SQLite inbox table).
    pub async fn migrate(&self) -> crate::Result<()> {
        match &self.migrate_options {
            None => {
                let mut conn = self.write.acquire().await?;
                migrator().run(conn.sqlx_mut()?).await?;
            }
            Some(options) => {
                // Holding the writer, so nothing else writes while the schema changes.
                let mut writer = self.write.acquire().await?;
                // The migrations write through a connection of their own.
                writer.forget_webhook_subscribers();
                let mut conn = options.connect().await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                migrator().run(&mut conn).await?;
                conn.close().await?;
                for ddl in INBOX_SCHEMA {
                    crate::sql::query(ddl).execute(&self.inbox).await?;
                }
            }
        }
        Ok(())
    }

    /// Whether the database answers and every migration is applied.
    pub async fn ready(&self) -> crate::Result<bool> {
        let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or_default();
        let applied: Option<i64> = crate::sql::query_scalar(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE",
        )
        .fetch_one(&self.read)
        .await
        .or_else(|e| match e {
            StoreError::Db(sqlx::Error::Database(_)) => Ok(None),
            other => Err(other),
        })?;
        Ok(applied == Some(latest))
    }

    /// Closes both pools, waiting for checked-out connections.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
        self.inbox.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn inbox_sits_beside_the_database() {
        assert_eq!(
            super::inbox_path("./data/chasqui.db"),
            "./data/chasqui-inbound.db"
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite:./x.db"), "sqlite:./x.db");
    }
}
