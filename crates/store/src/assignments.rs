//! Who handles a conversation: at most one active assignment per conversation (a partial
//! unique index), with the history of earlier ones kept inactive.

use crate::Conn;
use crate::sql::Row;

use crate::Db;
use crate::query::col;

/// A conversation assignment.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// The conversation.
    pub conversation_id: String,
    /// The assignee.
    pub user_id: String,
    /// Who assigned (a user), if a user did.
    pub created_by_user_id: Option<String>,
    /// Free text.
    pub notes: Option<String>,
    /// Whether it is the conversation's current assignment.
    pub active: bool,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

const COLS: &str = "id, project_id, conversation_id, user_id, created_by_user_id, notes, active, created_at, updated_at";

fn assignment(r: &Row) -> crate::Result<Assignment> {
    Ok(Assignment {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        conversation_id: col(r, "conversation_id")?,
        user_id: col(r, "user_id")?,
        created_by_user_id: col(r, "created_by_user_id")?,
        notes: col(r, "notes")?,
        active: col::<i64>(r, "active")? != 0,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

async fn deactivate_others(
    conn: &mut Conn,
    conversation_id: &str,
    except: &str,
    now: i64,
) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE conversation_assignments SET active = 0, updated_at = $1 WHERE conversation_id = $2 AND active = 1 AND id <> $3",
    )
    .bind(now)
    .bind(conversation_id)
    .bind(except)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores an assignment; when it is active, the conversation's previous active assignment
/// becomes inactive in the same transaction. Two concurrent writers cannot both leave an
/// active one: the second gets a unique violation, which the caller may retry.
pub async fn insert(db: &Db, a: &Assignment) -> crate::Result<()> {
    let mut conn = db.writer().acquire().await?;
    let mut tx = conn.begin().await?;
    if a.active {
        deactivate_others(&mut tx, &a.conversation_id, &a.id, a.created_at).await?;
    }
    let sql = format!(
        "INSERT INTO conversation_assignments ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    );
    crate::sql::query(sql)
        .bind(&a.id)
        .bind(&a.project_id)
        .bind(&a.conversation_id)
        .bind(&a.user_id)
        .bind(&a.created_by_user_id)
        .bind(&a.notes)
        .bind(i64::from(a.active))
        .bind(a.created_at)
        .bind(a.updated_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Writes the changed fields of an assignment (user, notes, active); activating it
/// deactivates the conversation's other active assignment in the same transaction.
pub async fn update(db: &Db, a: &Assignment) -> crate::Result<bool> {
    let mut conn = db.writer().acquire().await?;
    let mut tx = conn.begin().await?;
    if a.active {
        deactivate_others(&mut tx, &a.conversation_id, &a.id, a.updated_at).await?;
    }
    let done = crate::sql::query(
        "UPDATE conversation_assignments SET user_id = $1, notes = $2, active = $3, updated_at = $4 WHERE id = $5 AND project_id = $6",
    )
    .bind(&a.user_id)
    .bind(&a.notes)
    .bind(i64::from(a.active))
    .bind(a.updated_at)
    .bind(&a.id)
    .bind(&a.project_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(done)
}

/// One assignment of a conversation.
pub async fn get(
    db: &Db,
    project_id: &str,
    conversation_id: &str,
    id: &str,
) -> crate::Result<Option<Assignment>> {
    let sql = format!(
        "SELECT {COLS} FROM conversation_assignments WHERE project_id = $1 AND conversation_id = $2 AND id = $3"
    );
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(conversation_id)
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(assignment).transpose()
}

/// A conversation's assignments, newest first, and their total; `active` filters.
pub async fn list(
    db: &Db,
    project_id: &str,
    conversation_id: &str,
    active: Option<bool>,
    limit: i64,
    offset: i64,
) -> crate::Result<(Vec<Assignment>, i64)> {
    let filter =
        "project_id = $1 AND conversation_id = $2 AND (CAST($3 AS BIGINT) IS NULL OR active = $3)";
    let active = active.map(i64::from);
    let sql = format!(
        "SELECT {COLS} FROM conversation_assignments WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
    );
    let rows = crate::sql::query(sql)
        .bind(project_id)
        .bind(conversation_id)
        .bind(active)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.reader())
        .await?;
    let count = format!("SELECT COUNT(*) FROM conversation_assignments WHERE {filter}");
    let total: i64 = crate::sql::query_scalar(count)
        .bind(project_id)
        .bind(conversation_id)
        .bind(active)
        .fetch_one(db.reader())
        .await?;
    Ok((
        rows.iter().map(assignment).collect::<crate::Result<_>>()?,
        total,
    ))
}
