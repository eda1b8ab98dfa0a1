//! Notices for the people of a project, e.g. a webhook paused automatically.

use crate::Conn;
use crate::Db;
use crate::query::col;

/// A stored notice.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// What happened, e.g. `webhook.paused`.
    pub kind: String,
    /// One line.
    pub subject: String,
    /// Details (JSON).
    pub details: String,
    /// When (ms).
    pub created_at: i64,
    /// When it was emailed, if it was.
    pub emailed_at: Option<i64>,
    /// Emailing attempts so far.
    pub email_attempts: i64,
    /// Why the last emailing attempt failed.
    pub email_error: Option<String>,
}

/// Attempts to email a notice before giving up (its error stays visible).
pub const MAX_EMAIL_ATTEMPTS: i64 = 5;

const COLS: &str =
    "id, project_id, kind, subject, details, created_at, emailed_at, email_attempts, email_error";

fn notification(r: &crate::sql::Row) -> crate::Result<Notification> {
    Ok(Notification {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        kind: col(r, "kind")?,
        subject: col(r, "subject")?,
        details: col(r, "details")?,
        created_at: col(r, "created_at")?,
        emailed_at: col(r, "emailed_at")?,
        email_attempts: col(r, "email_attempts")?,
        email_error: col(r, "email_error")?,
    })
}

/// Records a notice.
pub async fn insert(conn: &mut Conn, n: &Notification) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO notifications (id, project_id, kind, subject, details, created_at, emailed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&n.id)
    .bind(&n.project_id)
    .bind(&n.kind)
    .bind(&n.subject)
    .bind(&n.details)
    .bind(n.created_at)
    .bind(n.emailed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a notice in the caller's transaction unless one of the same project, kind and
/// `dedupe_key` was recorded since `since` (ms); returns whether it was recorded.
pub async fn insert_unless_recent(
    conn: &mut Conn,
    n: &Notification,
    dedupe_key: &str,
    since: i64,
) -> crate::Result<bool> {
    let done = crate::sql::query(
        "INSERT INTO notifications (id, project_id, kind, subject, details, created_at, dedupe_key) \
         SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS (SELECT 1 FROM notifications \
         WHERE project_id = $2 AND kind = $3 AND dedupe_key = $7 AND created_at >= $8)",
    )
    .bind(&n.id)
    .bind(&n.project_id)
    .bind(&n.kind)
    .bind(&n.subject)
    .bind(&n.details)
    .bind(n.created_at)
    .bind(dedupe_key)
    .bind(since)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims up to `limit` notices not yet emailed (and not given up on) for `lease_millis`,
/// oldest first, counting the attempt.
pub async fn claim_unsent(
    db: &Db,
    now: i64,
    lease_millis: i64,
    limit: i64,
) -> crate::Result<Vec<Notification>> {
    let mut tx = db.writer().begin().await?;
    let lock = db.backend().skip_locked();
    let sql = format!(
        "SELECT {COLS} FROM notifications WHERE emailed_at IS NULL AND email_attempts < $1 \
         AND (email_lease_until IS NULL OR email_lease_until < $2) ORDER BY created_at, id LIMIT $3{lock}"
    );
    let rows = crate::sql::query(sql)
        .bind(MAX_EMAIL_ATTEMPTS)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut n = notification(r)?;
        n.email_attempts += 1;
        crate::sql::query(
            "UPDATE notifications SET email_lease_until = $1, email_attempts = $2 WHERE id = $3",
        )
        .bind(now + lease_millis * n.email_attempts)
        .bind(n.email_attempts)
        .bind(&n.id)
        .execute(&mut *tx)
        .await?;
        claimed.push(n);
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Records that a notice was emailed.
pub async fn mark_emailed(db: &Db, id: &str, now: i64) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE notifications SET emailed_at = $1, email_error = NULL, email_lease_until = NULL WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Records why emailing a notice failed; `give_up` stops further attempts.
pub async fn mark_email_failed(db: &Db, id: &str, error: &str, give_up: bool) -> crate::Result<()> {
    // Giving up sets the attempts to the maximum, so no claim takes the notice again.
    let attempts = if give_up {
        Some(MAX_EMAIL_ATTEMPTS)
    } else {
        None
    };
    crate::sql::query(
        "UPDATE notifications SET email_error = $1, email_attempts = COALESCE($2, email_attempts) WHERE id = $3",
    )
    .bind(error)
    .bind(attempts)
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// A project's notices, newest first.
pub async fn list(db: &Db, project_id: &str, limit: i64) -> crate::Result<Vec<Notification>> {
    let sql = format!(
        "SELECT {COLS} FROM notifications WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    );
    let rows = crate::sql::query(sql)
        .bind(project_id)
        .bind(limit)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(notification).collect()
}
