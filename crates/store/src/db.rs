//! Connection pools and migrations.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, SqlSafeStr};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
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
}

/// Which database the pools talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file: one writer connection, several readers (WAL).
    Sqlite,
    /// PostgreSQL: one pool shared by every statement.
    Postgres,
}

/// The database handle: a writer pool and a reader pool (the same pool on PostgreSQL).
#[derive(Debug, Clone)]
pub struct Db {
    write: AnyPool,
    read: AnyPool,
    backend: Backend,
}

const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "init", include_str!("../migrations/0001_init.sql"))];

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

/// Hides the password of a URL for messages.
pub(crate) fn redact_url(url: &str) -> String {
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
    /// Opens `url` (`sqlite:PATH` or `postgres://...`), creating an SQLite file if needed.
    pub async fn connect(url: &str) -> crate::Result<Self> {
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
            let pool = |max: u32| {
                AnyPoolOptions::new()
                    .max_connections(max)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = FULL",
                                "PRAGMA busy_timeout = 10000",
                                "PRAGMA foreign_keys = ON",
                            ] {
                                conn.execute(pragma).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(options.clone())
            };
            let write = pool(1).await?;
            let read = pool(4).await?;
            Ok(Self {
                write,
                read,
                backend: Backend::Sqlite,
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = AnyConnectOptions::from_str(url).map_err(|e| bad(&e.to_string()))?;
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Ok(Self {
                write: pool.clone(),
                read: pool,
                backend: Backend::Postgres,
            })
        } else {
            Err(bad("expected sqlite:PATH or postgres://..."))
        }
    }

    /// The database in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for statements that write (a single connection on SQLite).
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// The pool for read-only statements.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> crate::Result<()> {
        migrator().run(&self.write).await?;
        Ok(())
    }

    /// Whether the database answers and every migration is applied.
    pub async fn ready(&self) -> crate::Result<bool> {
        let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or_default();
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.read)
                .await
                .or_else(|e| match e {
                    sqlx::Error::Database(_) => Ok(None),
                    other => Err(other),
                })?;
        Ok(applied == Some(latest))
    }

    /// Closes both pools, waiting for checked-out connections.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite:./x.db"), "sqlite:./x.db");
    }
}
