//! Workflows and the versions of their definitions.

use crate::Conn;
use crate::sql::Row;

use crate::Db;
use crate::query::col;

/// A stored workflow (its current definition is the version `lock_version`).
#[derive(Debug, Clone)]
pub struct Workflow {
    /// Id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// Kebab-case handle.
    pub slug: String,
    /// Description.
    pub description: Option<String>,
    /// `draft`, `active` or `archived`.
    pub status: String,
    /// Current definition version.
    pub lock_version: i64,
    /// Burst window of inbound messages before a resume.
    pub message_debounce_seconds: i64,
    /// `disabled`, `read_only` or `read_with_typing`.
    pub inbound_message_read_mode: String,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

const COLS: &str = "id, project_id, name, slug, description, status, lock_version, message_debounce_seconds, inbound_message_read_mode, created_at, updated_at";

fn workflow(r: &Row) -> crate::Result<Workflow> {
    Ok(Workflow {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        name: col(r, "name")?,
        slug: col(r, "slug")?,
        description: col(r, "description")?,
        status: col(r, "status")?,
        lock_version: col(r, "lock_version")?,
        message_debounce_seconds: col(r, "message_debounce_seconds")?,
        inbound_message_read_mode: col(r, "inbound_message_read_mode")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// Stores a new workflow with its first definition (version 1).
pub async fn insert(db: &Db, w: &Workflow, definition: &str) -> crate::Result<()> {
    let mut tx = db.writer().begin().await?;
    let sql = format!(
        "INSERT INTO workflows ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    crate::sql::query(sql)
        .bind(&w.id)
        .bind(&w.project_id)
        .bind(&w.name)
        .bind(&w.slug)
        .bind(&w.description)
        .bind(&w.status)
        .bind(w.lock_version)
        .bind(w.message_debounce_seconds)
        .bind(&w.inbound_message_read_mode)
        .bind(w.created_at)
        .bind(w.updated_at)
        .execute(&mut *tx)
        .await?;
    crate::sql::query(
        "INSERT INTO workflow_versions (workflow_id, version, definition, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&w.id)
    .bind(w.lock_version)
    .bind(definition)
    .bind(w.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Saves a workflow's fields; with a new definition, only if the stored `lock_version` is
/// still `expected` (it becomes `w.lock_version`). Returns false when another edit won.
pub async fn update(
    db: &Db,
    w: &Workflow,
    expected_version: i64,
    definition: Option<&str>,
) -> crate::Result<bool> {
    let mut tx = db.writer().begin().await?;
    let done = crate::sql::query(
        "UPDATE workflows SET name = $1, slug = $2, description = $3, status = $4, lock_version = $5, \
         message_debounce_seconds = $6, inbound_message_read_mode = $7, updated_at = $8 \
         WHERE id = $9 AND project_id = $10 AND lock_version = $11",
    )
    .bind(&w.name)
    .bind(&w.slug)
    .bind(&w.description)
    .bind(&w.status)
    .bind(w.lock_version)
    .bind(w.message_debounce_seconds)
    .bind(&w.inbound_message_read_mode)
    .bind(w.updated_at)
    .bind(&w.id)
    .bind(&w.project_id)
    .bind(expected_version)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    if let Some(definition) = definition {
        crate::sql::query(
            "INSERT INTO workflow_versions (workflow_id, version, definition, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&w.id)
        .bind(w.lock_version)
        .bind(definition)
        .bind(w.updated_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// A project's workflow.
pub async fn get(db: &Db, project_id: &str, id: &str) -> crate::Result<Option<Workflow>> {
    let sql = format!("SELECT {COLS} FROM workflows WHERE project_id = $1 AND id = $2");
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(workflow).transpose()
}

/// One version of a workflow's definition (JSON).
pub async fn definition(db: &Db, workflow_id: &str, version: i64) -> crate::Result<Option<String>> {
    let found = crate::sql::query_scalar(
        "SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
    )
    .bind(workflow_id)
    .bind(version)
    .fetch_optional(db.reader())
    .await?;
    Ok(found)
}

/// A project's workflows, newest first, optionally of one status and whose name contains a
/// text; with the total count.
pub async fn list(
    db: &Db,
    project_id: &str,
    status: Option<&str>,
    name_contains: Option<&str>,
    limit: i64,
    offset: i64,
) -> crate::Result<(Vec<Workflow>, i64)> {
    let pattern = name_contains.map(|n| format!("%{}%", n.to_lowercase()));
    let filter = "project_id = $1 AND (CAST($2 AS TEXT) IS NULL OR status = $2) AND (CAST($3 AS TEXT) IS NULL OR LOWER(name) LIKE $3)";
    let sql = format!(
        "SELECT {COLS} FROM workflows WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
    );
    let rows = crate::sql::query(sql)
        .bind(project_id)
        .bind(status)
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.reader())
        .await?;
    let count_sql = format!("SELECT COUNT(*) FROM workflows WHERE {filter}");
    let total: i64 = crate::sql::query_scalar(count_sql)
        .bind(project_id)
        .bind(status)
        .bind(&pattern)
        .fetch_one(db.reader())
        .await?;
    Ok((
        rows.iter().map(workflow).collect::<crate::Result<_>>()?,
        total,
    ))
}

/// A project's workflow by slug.
pub async fn by_slug(db: &Db, project_id: &str, slug: &str) -> crate::Result<Option<Workflow>> {
    let sql = format!("SELECT {COLS} FROM workflows WHERE project_id = $1 AND slug = $2");
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(slug)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(workflow).transpose()
}

/// A workflow's debounce window in seconds (0 when it is gone), read in a transaction.
pub async fn debounce_seconds(conn: &mut Conn, id: &str) -> crate::Result<i64> {
    let seconds: Option<i64> =
        crate::sql::query_scalar("SELECT message_debounce_seconds FROM workflows WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(seconds.unwrap_or(0))
}
