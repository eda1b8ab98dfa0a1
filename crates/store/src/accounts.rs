//! Account-level data from Meta: template statuses and the raw account events
//! (account_update, value-level errors, ...) recorded per project.

use crate::Conn;

/// An account-level event to record.
#[derive(Debug, Clone, Copy)]
pub struct AccountEvent<'a> {
    /// Row id.
    pub id: &'a str,
    /// Project it is recorded for.
    pub project_id: &'a str,
    /// WABA id.
    pub business_account_id: &'a str,
    /// The number, for number-level items (value errors).
    pub phone_number_id: Option<&'a str>,
    /// Meta's change field.
    pub field: &'a str,
    /// The raw value (JSON).
    pub value: &'a str,
    /// The delivery it came from.
    pub source_event_id: &'a str,
    /// Position of the change in that delivery.
    pub change_index: i64,
}

/// Records an account-level event for a project, once per (delivery, change).
pub async fn insert_event(conn: &mut Conn, e: AccountEvent<'_>, now: i64) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO account_events (id, project_id, business_account_id, phone_number_id, field, value, received_at, source_event_id, change_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (source_event_id, change_index, project_id) DO NOTHING",
    )
    .bind(e.id)
    .bind(e.project_id)
    .bind(e.business_account_id)
    .bind(e.phone_number_id)
    .bind(e.field)
    .bind(e.value)
    .bind(now)
    .bind(e.source_event_id)
    .bind(e.change_index)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a template's latest status from a `message_template_status_update`.
#[allow(clippy::too_many_arguments)]
pub async fn upsert_template_status(
    conn: &mut Conn,
    id: &str,
    project_id: &str,
    business_account_id: &str,
    meta_template_id: &str,
    name: Option<&str>,
    language: Option<&str>,
    category: Option<&str>,
    status: &str,
    reason: Option<&str>,
    now: i64,
) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO templates (id, project_id, business_account_id, meta_template_id, name, language, category, status, reason, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (business_account_id, meta_template_id) DO UPDATE SET \
           name = COALESCE(excluded.name, templates.name), language = COALESCE(excluded.language, templates.language), \
           category = COALESCE(excluded.category, templates.category), status = excluded.status, reason = excluded.reason, \
           updated_at = excluded.updated_at",
    )
    .bind(id)
    .bind(project_id)
    .bind(business_account_id)
    .bind(meta_template_id)
    .bind(name)
    .bind(language)
    .bind(category)
    .bind(status)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A template's status as last reported: (name, status, reason).
pub async fn template_status(
    db: &crate::Db,
    project_id: &str,
    meta_template_id: &str,
) -> crate::Result<Option<(Option<String>, String, Option<String>)>> {
    let row = crate::sql::query("SELECT name, status, reason FROM templates WHERE project_id = $1 AND meta_template_id = $2")
        .bind(project_id)
        .bind(meta_template_id)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| Ok((r.get("name")?, r.get("status")?, r.get("reason")?)))
        .transpose()
}

/// Account events of a project, newest first: (field, phone_number_id, value).
pub async fn recent_events(
    db: &crate::Db,
    project_id: &str,
    limit: i64,
) -> crate::Result<Vec<(String, Option<String>, String)>> {
    let rows = crate::sql::query(
        "SELECT field, phone_number_id, value FROM account_events WHERE project_id = $1 ORDER BY received_at DESC, id DESC LIMIT $2",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| Ok((r.get("field")?, r.get("phone_number_id")?, r.get("value")?)))
        .collect()
}
