//! Account-level data from Meta: template statuses and the raw account events
//! (account_update, value-level errors, ...) recorded per project.

use sqlx::AnyConnection;

/// Records an account-level event for a project.
#[allow(clippy::too_many_arguments)]
pub async fn insert_event(
    conn: &mut AnyConnection,
    id: &str,
    project_id: &str,
    business_account_id: &str,
    phone_number_id: Option<&str>,
    field: &str,
    value: &str,
    now: i64,
) -> crate::Result<()> {
    sqlx::query(
        "INSERT INTO account_events (id, project_id, business_account_id, phone_number_id, field, value, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(project_id)
    .bind(business_account_id)
    .bind(phone_number_id)
    .bind(field)
    .bind(value)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a template's latest status from a `message_template_status_update`.
#[allow(clippy::too_many_arguments)]
pub async fn upsert_template_status(
    conn: &mut AnyConnection,
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
    sqlx::query(
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
    use sqlx::Row;
    let row = sqlx::query("SELECT name, status, reason FROM templates WHERE project_id = $1 AND meta_template_id = $2")
        .bind(project_id)
        .bind(meta_template_id)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| {
        Ok((
            r.try_get("name")?,
            r.try_get("status")?,
            r.try_get("reason")?,
        ))
    })
    .transpose()
}

/// Account events of a project, newest first: (field, phone_number_id, value).
pub async fn recent_events(
    db: &crate::Db,
    project_id: &str,
    limit: i64,
) -> crate::Result<Vec<(String, Option<String>, String)>> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT field, phone_number_id, value FROM account_events WHERE project_id = $1 ORDER BY received_at DESC, id DESC LIMIT $2",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("field")?,
                r.try_get("phone_number_id")?,
                r.try_get("value")?,
            ))
        })
        .collect()
}
