//! Inbox embeds: tokens (kept as SHA-256 hashes) that open the inbox inside another site,
//! confined to a scope.

use crate::sql::Row;

use crate::Db;
use crate::query::col;

/// A stored embed.
#[derive(Debug, Clone)]
pub struct InboxEmbed {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Label.
    pub name: String,
    /// `project`, `phone_number` or `customer`.
    pub scope_type: String,
    /// The number's `phone_number_id` or the customer's id (none for `project`).
    pub scope_id: Option<String>,
    /// Origins that may frame it (JSON array).
    pub allowed_origins: String,
    /// `system`, `light` or `dark`.
    pub default_mode: String,
    /// First characters of the token, to recognise it.
    pub token_prefix: String,
    /// Expiry (ms).
    pub expires_at: Option<i64>,
    /// Revocation (ms).
    pub revoked_at: Option<i64>,
    /// Last request made with it (ms).
    pub last_used_at: Option<i64>,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

const COLS: &str = "id, project_id, name, scope_type, scope_id, allowed_origins, default_mode, token_prefix, expires_at, revoked_at, last_used_at, created_at, updated_at";

fn embed(r: &Row) -> crate::Result<InboxEmbed> {
    Ok(InboxEmbed {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        name: col(r, "name")?,
        scope_type: col(r, "scope_type")?,
        scope_id: col(r, "scope_id")?,
        allowed_origins: col(r, "allowed_origins")?,
        default_mode: col(r, "default_mode")?,
        token_prefix: col(r, "token_prefix")?,
        expires_at: col(r, "expires_at")?,
        revoked_at: col(r, "revoked_at")?,
        last_used_at: col(r, "last_used_at")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// Stores a new embed with the hash of its token.
pub async fn insert(db: &Db, e: &InboxEmbed, token_hash: &str) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO inbox_embeds (id, project_id, name, scope_type, scope_id, allowed_origins, default_mode, token_hash, token_prefix, expires_at, revoked_at, last_used_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&e.id)
    .bind(&e.project_id)
    .bind(&e.name)
    .bind(&e.scope_type)
    .bind(&e.scope_id)
    .bind(&e.allowed_origins)
    .bind(&e.default_mode)
    .bind(token_hash)
    .bind(&e.token_prefix)
    .bind(e.expires_at)
    .bind(e.revoked_at)
    .bind(e.last_used_at)
    .bind(e.created_at)
    .bind(e.updated_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Writes the editable fields (name, origins, mode, expiry) and `revoked_at`.
pub async fn update(db: &Db, e: &InboxEmbed) -> crate::Result<bool> {
    Ok(crate::sql::query(
        "UPDATE inbox_embeds SET name = $1, allowed_origins = $2, default_mode = $3, expires_at = $4, revoked_at = $5, updated_at = $6 WHERE id = $7 AND project_id = $8",
    )
    .bind(&e.name)
    .bind(&e.allowed_origins)
    .bind(&e.default_mode)
    .bind(e.expires_at)
    .bind(e.revoked_at)
    .bind(e.updated_at)
    .bind(&e.id)
    .bind(&e.project_id)
    .execute(db.writer())
    .await?
    .rows_affected()
        == 1)
}

/// One embed of a project.
pub async fn get(db: &Db, project_id: &str, id: &str) -> crate::Result<Option<InboxEmbed>> {
    let sql = format!("SELECT {COLS} FROM inbox_embeds WHERE project_id = $1 AND id = $2");
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(embed).transpose()
}

/// The embed a token hash belongs to (revoked and expired ones included: the caller says why
/// it is refused).
pub async fn by_token_hash(db: &Db, token_hash: &str) -> crate::Result<Option<InboxEmbed>> {
    let sql = format!("SELECT {COLS} FROM inbox_embeds WHERE token_hash = $1");
    let row = crate::sql::query(sql)
        .bind(token_hash)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(embed).transpose()
}

/// A project's embeds, newest first, and their total.
pub async fn list(
    db: &Db,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> crate::Result<(Vec<InboxEmbed>, i64)> {
    let sql = format!(
        "SELECT {COLS} FROM inbox_embeds WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    );
    let rows = crate::sql::query(sql)
        .bind(project_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.reader())
        .await?;
    let total: i64 =
        crate::sql::query_scalar("SELECT COUNT(*) FROM inbox_embeds WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(db.reader())
            .await?;
    Ok((rows.iter().map(embed).collect::<crate::Result<_>>()?, total))
}

/// Records a use, at most once a minute per embed.
pub async fn touch(db: &Db, id: &str, now: i64) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE inbox_embeds SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(now)
    .bind(id)
    .bind(now - 60_000)
    .execute(db.writer())
    .await?;
    Ok(())
}
