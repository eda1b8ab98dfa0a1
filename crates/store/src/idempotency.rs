//! Idempotency keys of send requests: the first request with a key runs; a repeat with the
//! same body gets the first response; a repeat with another body is refused.

use crate::Db;
use crate::query::col;

/// What a key means for a new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: run the request, then [`complete`] the key.
    New,
    /// Already answered: replay this status and body.
    Done {
        /// HTTP status of the first response.
        status: u16,
        /// Body of the first response.
        body: String,
    },
    /// The first request with this key is still running.
    InProgress,
    /// The key was used with a different body.
    Mismatch,
}

/// Claims `key` for a request whose body hashes to `hash`.
pub async fn claim(
    db: &Db,
    project_id: &str,
    key: &str,
    hash: &str,
    now: i64,
) -> crate::Result<Claim> {
    let inserted = crate::sql::query(
        "INSERT INTO idempotency_keys (project_id, idempotency_key, request_hash, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (project_id, idempotency_key) DO NOTHING",
    )
    .bind(project_id)
    .bind(key)
    .bind(hash)
    .bind(now)
    .execute(db.writer())
    .await?
    .rows_affected()
        == 1;
    if inserted {
        return Ok(Claim::New);
    }
    let row = crate::sql::query(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE project_id = $1 AND idempotency_key = $2",
    )
    .bind(project_id)
    .bind(key)
    .fetch_one(db.writer())
    .await?;
    let stored_hash: String = col(&row, "request_hash")?;
    if stored_hash != hash {
        return Ok(Claim::Mismatch);
    }
    let status: Option<i64> = col(&row, "response_status")?;
    let body: Option<String> = col(&row, "response_body")?;
    Ok(match (status, body) {
        (Some(status), Some(body)) => Claim::Done {
            status: u16::try_from(status).unwrap_or(500),
            body,
        },
        _ => Claim::InProgress,
    })
}

/// Stores the response of the request that claimed `key`.
pub async fn complete(
    db: &Db,
    project_id: &str,
    key: &str,
    status: u16,
    body: &str,
) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE idempotency_keys SET response_status = $1, response_body = $2 WHERE project_id = $3 AND idempotency_key = $4",
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(project_id)
    .bind(key)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Forgets a key whose request failed before reaching Meta, so a retry can run.
pub async fn release(db: &Db, project_id: &str, key: &str) -> crate::Result<()> {
    crate::sql::query("DELETE FROM idempotency_keys WHERE project_id = $1 AND idempotency_key = $2 AND response_status IS NULL")
        .bind(project_id)
        .bind(key)
        .execute(db.writer())
        .await?;
    Ok(())
}
