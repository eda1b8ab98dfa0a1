//! A project's environment variables (`${ENV:KEY}` in workflows); values are stored
//! encrypted by the caller.

use crate::Db;
use crate::query::col;

/// A variable's name and dates (never its value).
#[derive(Debug, Clone)]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Encrypted value.
    pub value_enc: String,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

/// Sets a variable; returns whether it is new.
pub async fn put(
    db: &Db,
    project_id: &str,
    name: &str,
    value_enc: &str,
    now: i64,
) -> crate::Result<bool> {
    let existed: i64 = crate::sql::query_scalar(
        "SELECT COUNT(*) FROM env_vars WHERE project_id = $1 AND name = $2",
    )
    .bind(project_id)
    .bind(name)
    .fetch_one(db.reader())
    .await?;
    crate::sql::query(
        "INSERT INTO env_vars (project_id, name, value_enc, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (project_id, name) DO UPDATE SET value_enc = excluded.value_enc, updated_at = excluded.updated_at",
    )
    .bind(project_id)
    .bind(name)
    .bind(value_enc)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(existed == 0)
}

/// Deletes a variable.
pub async fn delete(db: &Db, project_id: &str, name: &str) -> crate::Result<bool> {
    let done = crate::sql::query("DELETE FROM env_vars WHERE project_id = $1 AND name = $2")
        .bind(project_id)
        .bind(name)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A project's variables by name.
pub async fn list(db: &Db, project_id: &str) -> crate::Result<Vec<EnvVar>> {
    let rows = crate::sql::query(
        "SELECT name, value_enc, created_at, updated_at FROM env_vars WHERE project_id = $1 ORDER BY name",
    )
    .bind(project_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(EnvVar {
                name: col(r, "name")?,
                value_enc: col(r, "value_enc")?,
                created_at: col(r, "created_at")?,
                updated_at: col(r, "updated_at")?,
            })
        })
        .collect()
}
