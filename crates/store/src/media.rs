//! Media files: inbound media is recorded as `pending`, then downloaded by a job into the
//! data directory and marked `stored` (or `failed` after its retries).

use crate::Conn;
use crate::sql::Row;

use crate::Db;
use crate::query::col;

/// A stored media record.
#[derive(Debug, Clone)]
pub struct Media {
    /// Row id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Business number.
    pub phone_number_id: String,
    /// Meta's media id.
    pub meta_media_id: String,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Meta's base64 SHA-256.
    pub sha256: Option<String>,
    /// Size in bytes once stored.
    pub file_size: Option<i64>,
    /// File name, for documents.
    pub filename: Option<String>,
    /// Path relative to the media directory once stored.
    pub storage_path: Option<String>,
    /// `pending`, `stored` or `failed`.
    pub status: String,
    /// Last error.
    pub error: Option<String>,
}

fn media(r: &Row) -> crate::Result<Media> {
    Ok(Media {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        phone_number_id: col(r, "phone_number_id")?,
        meta_media_id: col(r, "meta_media_id")?,
        mime_type: col(r, "mime_type")?,
        sha256: col(r, "sha256")?,
        file_size: col(r, "file_size")?,
        filename: col(r, "filename")?,
        storage_path: col(r, "storage_path")?,
        status: col(r, "status")?,
        error: col(r, "error")?,
    })
}

const COLS: &str = "id, project_id, phone_number_id, meta_media_id, mime_type, sha256, file_size, filename, storage_path, status, error";

/// Records an inbound media object; returns its id and whether it is new.
pub async fn record(conn: &mut Conn, m: &Media, now: i64) -> crate::Result<(String, bool)> {
    let inserted = crate::sql::query(
        "INSERT INTO media (id, project_id, phone_number_id, meta_media_id, mime_type, sha256, filename, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) ON CONFLICT (phone_number_id, meta_media_id) DO NOTHING",
    )
    .bind(&m.id)
    .bind(&m.project_id)
    .bind(&m.phone_number_id)
    .bind(&m.meta_media_id)
    .bind(&m.mime_type)
    .bind(&m.sha256)
    .bind(&m.filename)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    let id: String = crate::sql::query_scalar(
        "SELECT id FROM media WHERE phone_number_id = $1 AND meta_media_id = $2",
    )
    .bind(&m.phone_number_id)
    .bind(&m.meta_media_id)
    .fetch_one(conn)
    .await?;
    Ok((id, inserted))
}

/// A media record by id (any project: callers check ownership).
pub async fn get(db: &Db, id: &str) -> crate::Result<Option<Media>> {
    let sql = format!("SELECT {COLS} FROM media WHERE id = $1");
    let row = crate::sql::query(sql)
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(media).transpose()
}

/// Marks media stored at `path`.
pub async fn mark_stored(
    db: &Db,
    id: &str,
    path: &str,
    size: i64,
    mime_type: Option<&str>,
    now: i64,
) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE media SET status = 'stored', storage_path = $1, file_size = $2, mime_type = COALESCE($3, mime_type), error = NULL, updated_at = $4 WHERE id = $5",
    )
    .bind(path)
    .bind(size)
    .bind(mime_type)
    .bind(now)
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Records a download error; `failed` when no retry remains.
pub async fn mark_error(
    db: &Db,
    id: &str,
    error: &str,
    terminal: bool,
    now: i64,
) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE media SET error = $1, status = CASE WHEN $2 = 1 THEN 'failed' ELSE status END, updated_at = $3 WHERE id = $4",
    )
    .bind(error)
    .bind(i64::from(terminal))
    .bind(now)
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Records a file uploaded through the proxy (already stored at `storage_path`) under the id
/// Meta gave it.
pub async fn insert_uploaded(db: &Db, m: &Media, now: i64) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO media (id, project_id, phone_number_id, meta_media_id, mime_type, sha256, file_size, filename, storage_path, status, origin, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'stored', 'upload', $10, $10)",
    )
    .bind(&m.id)
    .bind(&m.project_id)
    .bind(&m.phone_number_id)
    .bind(&m.meta_media_id)
    .bind(&m.mime_type)
    .bind(&m.sha256)
    .bind(m.file_size)
    .bind(&m.filename)
    .bind(&m.storage_path)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Media records carrying Meta's media id (any project: callers check ownership).
pub async fn by_meta_id(db: &Db, meta_media_id: &str) -> crate::Result<Vec<Media>> {
    let sql = format!("SELECT {COLS} FROM media WHERE meta_media_id = $1 ORDER BY created_at");
    let rows = crate::sql::query(sql)
        .bind(meta_media_id)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(media).collect()
}

/// The media row of a project's number with Meta's id, if any.
pub async fn find_meta(
    db: &Db,
    project_id: &str,
    phone_number_id: &str,
    meta_media_id: &str,
) -> crate::Result<Option<Media>> {
    let sql = format!(
        "SELECT {COLS} FROM media WHERE project_id = $1 AND phone_number_id = $2 AND meta_media_id = $3"
    );
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(phone_number_id)
        .bind(meta_media_id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(media).transpose()
}

/// Forgets a media record.
pub async fn delete(db: &Db, id: &str) -> crate::Result<()> {
    crate::sql::query("DELETE FROM media WHERE id = $1")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}
