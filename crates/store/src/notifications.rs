//! Notices for the people of a project, e.g. a webhook paused automatically.

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
}

/// Records a notice.
pub async fn insert(db: &Db, n: &Notification) -> crate::Result<()> {
    sqlx::query(
        "INSERT INTO notifications (id, project_id, kind, subject, details, created_at, emailed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&n.id)
    .bind(&n.project_id)
    .bind(&n.kind)
    .bind(&n.subject)
    .bind(&n.details)
    .bind(n.created_at)
    .bind(n.emailed_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// A project's notices, newest first.
pub async fn list(db: &Db, project_id: &str, limit: i64) -> crate::Result<Vec<Notification>> {
    let rows = sqlx::query(
        "SELECT id, project_id, kind, subject, details, created_at, emailed_at FROM notifications WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Notification {
                id: col(r, "id")?,
                project_id: col(r, "project_id")?,
                kind: col(r, "kind")?,
                subject: col(r, "subject")?,
                details: col(r, "details")?,
                created_at: col(r, "created_at")?,
                emailed_at: col(r, "emailed_at")?,
            })
        })
        .collect()
}
