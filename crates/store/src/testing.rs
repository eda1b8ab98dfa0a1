//! Helpers for tests: a fresh database per test (a real PostgreSQL, or an SQLite file).

use sqlx::{AssertSqlSafe, Connection};

/// The admin URL tests use, from `CHASQUI_TEST_POSTGRES_URL`.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("CHASQUI_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Creates an empty database named after `prefix` and a random suffix; returns its URL.
pub async fn create_postgres_database(admin_url: &str, prefix: &str) -> crate::Result<String> {
    sqlx::any::install_default_drivers();
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple()).to_lowercase();
    let mut conn = sqlx::AnyConnection::connect(admin_url).await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let base = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |s| s + 2) => &base[..i],
        _ => base,
    };
    Ok(format!("{base}/{name}{query}"))
}

/// A fresh, migrated SQLite database in `dir`.
#[cfg(test)]
pub(crate) async fn sqlite(dir: &tempfile::TempDir) -> crate::Db {
    let url = format!("sqlite:{}", dir.path().join("test.db").display());
    let db = crate::Db::connect(&url).await.expect("sqlite");
    db.migrate().await.expect("migrate");
    db
}

/// A fresh, migrated PostgreSQL database named after `prefix`, or `None` when no
/// PostgreSQL is configured (a failure when `CHASQUI_REQUIRE_POSTGRES=1`).
#[cfg(test)]
pub(crate) async fn postgres(prefix: &str) -> Option<crate::Db> {
    let Some(admin) = postgres_admin_url() else {
        assert!(
            std::env::var("CHASQUI_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "CHASQUI_TEST_POSTGRES_URL is required"
        );
        return None;
    };
    let url = create_postgres_database(&admin, prefix)
        .await
        .expect("database");
    let db = crate::Db::connect(&url).await.expect("connect");
    db.migrate().await.expect("migrate");
    Some(db)
}

/// Creates project `p`, which the store tests' rows belong to.
#[cfg(test)]
pub(crate) async fn project(db: &crate::Db) {
    crate::sql::query("INSERT INTO projects (id, name, created_at) VALUES ('p', 'p', 0)")
        .execute(db.writer())
        .await
        .expect("project");
}

/// What the SQLite writer of the main file has done so far.
#[cfg(test)]
pub(crate) fn main_counts(db: &crate::Db) -> crate::write_stats::WriteCounts {
    db.write_counts()
        .into_iter()
        .find_map(|(file, counts)| (file == "main").then_some(counts))
        .expect("the main file's counts")
}
