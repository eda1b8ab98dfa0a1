//! The template cache: Meta's template objects per WABA, written when templates are created,
//! edited, fetched or synced through the proxy, and kept current by status webhooks
//! (`accounts::upsert_template_status`).

use crate::sql::Row;
use serde_json::Value;

use crate::Db;
use crate::query::col;

/// A cached template.
#[derive(Debug, Clone)]
pub struct Template {
    /// Row id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// WABA id.
    pub business_account_id: String,
    /// Meta's template id.
    pub meta_template_id: String,
    /// Name.
    pub name: Option<String>,
    /// Language code.
    pub language: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Latest status.
    pub status: String,
    /// Rejection or pause reason.
    pub reason: Option<String>,
    /// `POSITIONAL` or `NAMED`.
    pub parameter_format: Option<String>,
    /// Meta's object as last seen (JSON), when known.
    pub body: Option<String>,
    /// Last change (ms).
    pub updated_at: i64,
}

impl Template {
    /// Meta's object with the latest status: the cached body, or what the status webhooks said.
    pub fn to_meta(&self) -> Value {
        let mut object = self
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        let fields = [
            ("name", self.name.as_deref()),
            ("language", self.language.as_deref()),
            ("category", self.category.as_deref()),
            ("parameter_format", self.parameter_format.as_deref()),
        ];
        for (key, value) in fields {
            if let Some(v) = value
                && object.get(key).is_none()
            {
                object[key] = Value::from(v);
            }
        }
        object["status"] = Value::from(self.status.as_str());
        object["id"] = Value::from(self.meta_template_id.as_str());
        object
    }
}

fn template(r: &Row) -> crate::Result<Template> {
    Ok(Template {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        business_account_id: col(r, "business_account_id")?,
        meta_template_id: col(r, "meta_template_id")?,
        name: col(r, "name")?,
        language: col(r, "language")?,
        category: col(r, "category")?,
        status: col(r, "status")?,
        reason: col(r, "reason")?,
        parameter_format: col(r, "parameter_format")?,
        body: col(r, "body")?,
        updated_at: col(r, "updated_at")?,
    })
}

const COLS: &str = "id, project_id, business_account_id, meta_template_id, name, language, category, status, reason, parameter_format, body, updated_at";

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Caches Meta's template object (must carry `id`); fields it lacks keep their cached value.
pub async fn upsert(
    db: &Db,
    row_id: &str,
    project_id: &str,
    business_account_id: &str,
    object: &Value,
    now: i64,
) -> crate::Result<()> {
    let Some(meta_id) = text(object, "id") else {
        return Ok(());
    };
    let status = text(object, "status").unwrap_or_else(|| "PENDING".into());
    // A partial object (e.g. `fields=status`) must not replace the cached components.
    let full = object.get("components").is_some();
    crate::sql::query(
        "INSERT INTO templates (id, project_id, business_account_id, meta_template_id, name, language, category, status, reason, parameter_format, body, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (business_account_id, meta_template_id) DO UPDATE SET \
           name = COALESCE(excluded.name, templates.name), language = COALESCE(excluded.language, templates.language), \
           category = COALESCE(excluded.category, templates.category), status = excluded.status, \
           reason = COALESCE(excluded.reason, templates.reason), \
           parameter_format = COALESCE(excluded.parameter_format, templates.parameter_format), \
           body = COALESCE(excluded.body, templates.body), updated_at = excluded.updated_at",
    )
    .bind(row_id)
    .bind(project_id)
    .bind(business_account_id)
    .bind(&meta_id)
    .bind(text(object, "name"))
    .bind(text(object, "language"))
    .bind(text(object, "category"))
    .bind(&status)
    .bind(text(object, "rejected_reason"))
    .bind(text(object, "parameter_format"))
    .bind(full.then(|| object.to_string()))
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Sets a cached template's status (an edit re-enters review; a delete marks it `DELETED`).
pub async fn set_status(
    db: &Db,
    business_account_id: &str,
    meta_template_id: &str,
    status: &str,
    now: i64,
) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE templates SET status = $1, updated_at = $2 WHERE business_account_id = $3 AND meta_template_id = $4",
    )
    .bind(status)
    .bind(now)
    .bind(business_account_id)
    .bind(meta_template_id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// A project's cached template by Meta's id.
pub async fn find(
    db: &Db,
    project_id: &str,
    meta_template_id: &str,
) -> crate::Result<Option<Template>> {
    let sql =
        format!("SELECT {COLS} FROM templates WHERE project_id = $1 AND meta_template_id = $2");
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(meta_template_id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(template).transpose()
}

/// Cached templates with Meta's id (any project: callers check ownership).
pub async fn by_meta_id(db: &Db, meta_template_id: &str) -> crate::Result<Vec<Template>> {
    let sql = format!("SELECT {COLS} FROM templates WHERE meta_template_id = $1");
    let rows = crate::sql::query(sql)
        .bind(meta_template_id)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(template).collect()
}

/// A WABA's cached templates with a name (all languages), not deleted.
pub async fn by_name(
    db: &Db,
    business_account_id: &str,
    name: &str,
) -> crate::Result<Vec<Template>> {
    let sql = format!(
        "SELECT {COLS} FROM templates WHERE business_account_id = $1 AND name = $2 AND status <> 'DELETED' ORDER BY language"
    );
    let rows = crate::sql::query(sql)
        .bind(business_account_id)
        .bind(name)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(template).collect()
}

/// A project's cached templates, optionally of one WABA and one status, by name and language.
pub async fn list(
    db: &Db,
    project_id: &str,
    business_account_id: Option<&str>,
    status: Option<&str>,
) -> crate::Result<Vec<Template>> {
    let sql = format!(
        "SELECT {COLS} FROM templates WHERE project_id = $1 AND ($2 IS NULL OR business_account_id = $2) \
         AND ($3 IS NULL OR status = $3) AND status <> 'DELETED' ORDER BY name, language, meta_template_id"
    );
    let rows = crate::sql::query(sql)
        .bind(project_id)
        .bind(business_account_id)
        .bind(status)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(template).collect()
}

/// Marks every cached template of a WABA that a full sync did not see as `DELETED`;
/// returns how many.
pub async fn mark_unseen_deleted(
    db: &Db,
    business_account_id: &str,
    seen: &[String],
    now: i64,
) -> crate::Result<u64> {
    let seen = serde_json::to_string(seen).unwrap_or_else(|_| "[]".into());
    let sql = match db.backend() {
        crate::Backend::Sqlite => {
            "UPDATE templates SET status = 'DELETED', updated_at = $1 WHERE business_account_id = $2 AND status <> 'DELETED' \
             AND meta_template_id NOT IN (SELECT value FROM json_each($3))"
        }
        crate::Backend::Postgres => {
            "UPDATE templates SET status = 'DELETED', updated_at = $1 WHERE business_account_id = $2 AND status <> 'DELETED' \
             AND meta_template_id NOT IN (SELECT jsonb_array_elements_text($3::jsonb))"
        }
    };
    let done = crate::sql::query(sql)
        .bind(now)
        .bind(business_account_id)
        .bind(seen)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected())
}
