//! Helpers for tests that need a real PostgreSQL: a fresh database per test.

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
