//! Raw inbound deliveries from Meta. A `pending` row is its own processing job, so storing
//! the payload and enqueuing its processing is one insert (invariant 7).

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
    // One statement is atomic on its own: no explicit transaction, one round trip.
    let mut conn = db.inbox().acquire().await?;
    if db.backend() == Backend::Postgres {
        crate::sql::query(sql).bind(rows).execute(&mut conn).await?;
        return Ok(());
    }
    // The inbox file syncs lazily (leases and marks may be lost in a crash without harm);
    // a delivery is acknowledged to Meta only once it is on disk, so this commit is synced,
    // and with it everything written before it.
    crate::sql::query("PRAGMA synchronous = FULL")
        .execute(&mut conn)
        .await?;
    let stored = crate::sql::query(sql).bind(rows).execute(&mut conn).await;
    crate::sql::query("PRAGMA synchronous = NORMAL")
        .execute(&mut conn)
        .await?;
    stored?;
    Ok(())
}

/// Claims up to `limit` pending deliveries, oldest first, for `lease_millis`. A claimed row
/// is invisible to other claimers until its lease expires; if its worker dies the row is
/// claimed again (processing is idempotent).
pub async fn claim(
    db: &Db,
    limit: i64,
    now: i64,
    lease_millis: i64,
) -> crate::Result<Vec<PendingEvent>> {
    let sql = match db.backend() {
        Backend::Postgres => {
            "UPDATE inbound_events SET locked_until = $1 WHERE id IN (\
               SELECT id FROM inbound_events WHERE status = 'pending' AND (locked_until IS NULL OR locked_until < $2) \
               ORDER BY received_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             AND (locked_until IS NULL OR locked_until < $2) \
             RETURNING id, body, received_at, attempts"
        }
        Backend::Sqlite => {
            "UPDATE inbound_events SET locked_until = $1 WHERE id IN (\
               SELECT id FROM inbound_events WHERE status = 'pending' AND (locked_until IS NULL OR locked_until < $2) \
               ORDER BY received_at, id LIMIT $3) \
             RETURNING id, body, received_at, attempts"
        }
    };
    let rows = crate::sql::query(sql)
        .bind(now + lease_millis)
        .bind(now)
        .bind(limit)
        .fetch_all(db.inbox())
        .await?;
    let mut events = rows
        .iter()
        .map(|r| {
            Ok(PendingEvent {
                id: col(r, "id")?,
                body: col(r, "body")?,
                received_at: col(r, "received_at")?,
                attempts: col(r, "attempts")?,
            })
        })
        .collect::<crate::Result<Vec<_>>>()?;
    // RETURNING does not promise an order.
    events.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
    Ok(events)
}

/// Marks deliveries processed, with the errors of any change that could not be applied,
/// in one transaction.
pub async fn mark_processed(
    db: &Db,
    done: &[(String, Option<String>)],
    now: i64,
) -> crate::Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    if db.backend() == Backend::Sqlite {
        // On the direct connection a prepared UPDATE per row costs microseconds; a
        // set-based UPDATE would parse its JSON parameter once per row it touches.
        let mut tx = db.inbox().begin().await?;
        for (id, errors) in done {
            crate::sql::query(
                "UPDATE inbound_events SET status = 'processed', processed_at = $1, attempts = attempts + 1, \
                   locked_until = NULL, errors = $3 WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .bind(errors.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        return Ok(());
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        id: &'a str,
        errors: Option<&'a str>,
    }
    let rows: Vec<Row<'_>> = done
        .iter()
        .map(|(id, errors)| Row {
            id,
            errors: errors.as_deref(),
        })
        .collect();
    let rows =
        serde_json::to_string(&rows).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
    crate::sql::query(
        "UPDATE inbound_events AS e SET status = 'processed', processed_at = $1, attempts = e.attempts + 1, locked_until = NULL, errors = r.errors \
         FROM json_to_recordset($2::json) AS r(id TEXT, errors TEXT) WHERE e.id = r.id",
    )
    .bind(now)
    .bind(rows)
    .execute(db.inbox())
    .await?;
    Ok(())
}

/// Returns claimed deliveries to the queue without counting an attempt.
pub async fn release(db: &Db, ids: &[String]) -> crate::Result<()> {
    let mut tx = db.inbox().begin().await?;
    for id in ids {
        crate::sql::query("UPDATE inbound_events SET locked_until = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Releases every lease (a single-node SQLite start: no other worker can hold one).
pub async fn release_all(db: &Db) -> crate::Result<()> {
    crate::sql::query("UPDATE inbound_events SET locked_until = NULL WHERE status = 'pending' AND locked_until IS NOT NULL")
        .execute(db.inbox())
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
    crate::sql::query(
        "UPDATE inbound_events SET attempts = attempts + 1, errors = $1, locked_until = NULL, \
         status = CASE WHEN attempts + 1 >= $2 THEN 'failed' ELSE status END WHERE id = $3",
    )
    .bind(error)
    .bind(max_attempts)
    .bind(id)
    .execute(db.inbox())
    .await?;
    Ok(())
}

/// A delivery parked after failing to store.
#[derive(Debug, Clone)]
pub struct FailedEvent {
    /// Event id.
    pub id: String,
    /// Receipt time (ms).
    pub received_at: i64,
    /// Processing attempts.
    pub attempts: i64,
    /// The last error.
    pub errors: Option<String>,
}

/// Deliveries parked after failing to store, oldest first.
pub async fn failed(db: &Db, limit: i64) -> crate::Result<Vec<FailedEvent>> {
    let rows = crate::sql::query(
        "SELECT id, received_at, attempts, errors FROM inbound_events WHERE status = 'failed' \
         ORDER BY received_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.inbox())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(FailedEvent {
                id: col(r, "id")?,
                received_at: col(r, "received_at")?,
                attempts: col(r, "attempts")?,
                errors: col(r, "errors")?,
            })
        })
        .collect()
}

/// Deliveries parked after failing to store.
pub async fn failed_count(db: &Db) -> crate::Result<i64> {
    crate::sql::query_scalar("SELECT COUNT(*) FROM inbound_events WHERE status = 'failed'")
        .fetch_one(db.inbox())
        .await
}

/// Deletes up to `limit` processed deliveries stored before the moment `before_id` stands
/// for (a UUIDv7 floor: ids are time-ordered, so the primary key finds them); pending and
/// failed ones stay. Returns how many went.
pub async fn delete_processed_before(db: &Db, before_id: &str, limit: i64) -> crate::Result<u64> {
    let done = crate::sql::query(
        "DELETE FROM inbound_events WHERE id IN (\
           SELECT id FROM inbound_events WHERE id < $1 AND status = 'processed' ORDER BY id LIMIT $2)",
    )
    .bind(before_id)
    .bind(limit)
    .execute(db.inbox())
    .await?;
    Ok(done.rows_affected())
}

/// Deliveries still waiting for processing.
pub async fn pending_count(db: &Db) -> crate::Result<i64> {
    crate::sql::query_scalar("SELECT COUNT(*) FROM inbound_events WHERE status = 'pending'")
        .fetch_one(db.inbox())
        .await
}

/// Counts deliveries (all statuses); used by tests and the benchmark.
pub async fn total_count(db: &Db) -> crate::Result<i64> {
    crate::sql::query_scalar("SELECT COUNT(*) FROM inbound_events")
        .fetch_one(db.inbox())
        .await
}
