//! The durable job queue for work with external effects (media downloads, later webhook
//! deliveries). Jobs are claimed with a lease, retried with backoff, parked when exhausted.

use crate::query::col;
use crate::{Backend, Conn, Db};

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// What to do.
    pub kind: String,
    /// Its JSON payload.
    pub payload: String,
    /// Attempts so far, including this one.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
}

/// Enqueues a job inside the caller's transaction (invariant 1).
pub async fn enqueue(
    conn: &mut Conn,
    id: &str,
    kind: &str,
    payload: &str,
    run_at: i64,
    max_attempts: i64,
    now: i64,
) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO jobs (id, kind, payload, status, run_at, max_attempts, created_at) VALUES ($1, $2, $3, 'queued', $4, $5, $6)",
    )
    .bind(id)
    .bind(kind)
    .bind(payload)
    .bind(run_at)
    .bind(max_attempts)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due jobs for `lease_millis`; an expired lease makes a job due again,
/// so a crashed worker's jobs run again (handlers are idempotent).
pub async fn claim(db: &Db, limit: i64, now: i64, lease_millis: i64) -> crate::Result<Vec<Job>> {
    let mut tx = db.writer().begin().await?;
    let select = match db.backend() {
        Backend::Postgres => {
            "SELECT id, kind, payload, attempts, max_attempts FROM jobs WHERE status = 'queued' AND run_at <= $1 AND (locked_until IS NULL OR locked_until < $1) ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
        }
        Backend::Sqlite => {
            "SELECT id, kind, payload, attempts, max_attempts FROM jobs WHERE status = 'queued' AND run_at <= $1 AND (locked_until IS NULL OR locked_until < $1) ORDER BY run_at, id LIMIT $2"
        }
    };
    let rows = crate::sql::query(select)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for r in &rows {
        let job = Job {
            id: col(r, "id")?,
            kind: col(r, "kind")?,
            payload: col(r, "payload")?,
            attempts: col::<i64>(r, "attempts")? + 1,
            max_attempts: col(r, "max_attempts")?,
        };
        crate::sql::query(
            "UPDATE jobs SET locked_until = $1, attempts = attempts + 1 WHERE id = $2",
        )
        .bind(now + lease_millis)
        .bind(&job.id)
        .execute(&mut *tx)
        .await?;
        jobs.push(job);
    }
    tx.commit().await?;
    Ok(jobs)
}

/// Removes a finished job.
pub async fn complete(db: &Db, id: &str) -> crate::Result<()> {
    crate::sql::query("DELETE FROM jobs WHERE id = $1")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Schedules a retry at `run_at`, or parks the job when `park` (kept with its error).
pub async fn fail(db: &Db, id: &str, error: &str, run_at: i64, park: bool) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE jobs SET last_error = $1, run_at = $2, locked_until = NULL, status = CASE WHEN $3 = 1 THEN 'parked' ELSE 'queued' END WHERE id = $4",
    )
    .bind(error)
    .bind(run_at)
    .bind(i64::from(park))
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Jobs by status (`queued` or `parked`).
pub async fn count(db: &Db, status: &str) -> crate::Result<i64> {
    crate::sql::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = $1")
        .bind(status)
        .fetch_one(db.reader())
        .await
}
