//! Raw inbound deliveries from Meta. A `pending` row is its own processing job, so storing
//! the payload and enqueuing its processing is one insert (invariant 7).

use sqlx::AnyConnection;

use crate::query::col;
use crate::{Backend, Db};

/// A delivery waiting for processing.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// Event id.
    pub id: String,
    /// Raw body as Meta sent it.
    pub body: String,
    /// Receipt time (ms).
    pub received_at: i64,
    /// Earlier processing attempts.
    pub attempts: i64,
}

/// A delivery to store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewEvent {
    /// Event id.
    pub id: String,
    /// Raw body.
    pub body: String,
    /// Receipt time (ms).
    pub received_at: i64,
}

/// Stores many deliveries with one statement in one transaction (group commit). The rows
/// travel as one JSON array parameter, so the statement text never changes and stays
/// prepared, whatever the batch size; each database expands it with its own JSON function.
pub async fn insert_batch(db: &Db, events: Vec<NewEvent>) -> crate::Result<()> {
    let rows =
        serde_json::to_string(&events).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
    let sql = match db.backend() {
        Backend::Sqlite => {
            "INSERT INTO inbound_events (id, received_at, body, status) \
             SELECT json_extract(value, '$.id'), json_extract(value, '$.received_at'), json_extract(value, '$.body'), 'pending' \
             FROM json_each($1)"
        }
        Backend::Postgres => {
            "INSERT INTO inbound_events (id, received_at, body, status) \
             SELECT id, received_at, body, 'pending' FROM json_to_recordset($1::json) AS r(id TEXT, received_at BIGINT, body TEXT)"
        }
    };
    let mut tx = db.writer().begin().await?;
    sqlx::query(sql).bind(rows).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Claims up to `limit` pending deliveries, oldest first, inside the caller's transaction.
/// On PostgreSQL the rows stay locked (`SKIP LOCKED`) until that transaction ends.
pub async fn claim(
    conn: &mut AnyConnection,
    backend: Backend,
    limit: i64,
) -> crate::Result<Vec<PendingEvent>> {
    let sql = match backend {
        Backend::Postgres => {
            "SELECT id, body, received_at, attempts FROM inbound_events WHERE status = 'pending' ORDER BY received_at, id LIMIT $1 FOR UPDATE SKIP LOCKED"
        }
        Backend::Sqlite => {
            "SELECT id, body, received_at, attempts FROM inbound_events WHERE status = 'pending' ORDER BY received_at, id LIMIT $1"
        }
    };
    let rows = sqlx::query(sql).bind(limit).fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            Ok(PendingEvent {
                id: col(r, "id")?,
                body: col(r, "body")?,
                received_at: col(r, "received_at")?,
                attempts: col(r, "attempts")?,
            })
        })
        .collect()
}

/// Marks a delivery processed, recording the errors of any change that could not be applied.
pub async fn mark_processed(
    conn: &mut AnyConnection,
    id: &str,
    errors: Option<&str>,
    now: i64,
) -> crate::Result<()> {
    sqlx::query("UPDATE inbound_events SET status = 'processed', processed_at = $1, errors = $2, attempts = attempts + 1 WHERE id = $3")
        .bind(now)
        .bind(errors)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a failed attempt; after `max_attempts` the delivery is parked as `failed`.
pub async fn record_failure(
    db: &Db,
    id: &str,
    error: &str,
    max_attempts: i64,
) -> crate::Result<()> {
    sqlx::query(
        "UPDATE inbound_events SET attempts = attempts + 1, errors = $1, \
         status = CASE WHEN attempts + 1 >= $2 THEN 'failed' ELSE status END WHERE id = $3",
    )
    .bind(error)
    .bind(max_attempts)
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Deliveries still waiting for processing.
pub async fn pending_count(db: &Db) -> crate::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM inbound_events WHERE status = 'pending'")
            .fetch_one(db.reader())
            .await?,
    )
}

/// Counts deliveries (all statuses); used by tests and the benchmark.
pub async fn total_count(db: &Db) -> crate::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM inbound_events")
        .fetch_one(db.reader())
        .await?)
}
