//! What starts a workflow: an inbound message on a number, or an API call.

use crate::sql::Row;

use crate::Db;
use crate::query::col;

/// A workflow trigger.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// Workflow.
    pub workflow_id: String,
    /// `inbound_message` or `api_call`.
    pub trigger_type: String,
    /// The number, for `inbound_message`.
    pub phone_number_id: Option<String>,
    /// Whether it fires.
    pub active: bool,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

const COLS: &str =
    "id, project_id, workflow_id, trigger_type, phone_number_id, active, created_at, updated_at";

fn trigger(r: &Row) -> crate::Result<Trigger> {
    Ok(Trigger {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        workflow_id: col(r, "workflow_id")?,
        trigger_type: col(r, "trigger_type")?,
        phone_number_id: col(r, "phone_number_id")?,
        active: col::<i64>(r, "active")? != 0,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// Stores a trigger (a unique violation means the number or workflow already has one).
pub async fn insert(db: &Db, t: &Trigger) -> crate::Result<()> {
    let sql =
        format!("INSERT INTO workflow_triggers ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
    crate::sql::query(sql)
        .bind(&t.id)
        .bind(&t.project_id)
        .bind(&t.workflow_id)
        .bind(&t.trigger_type)
        .bind(&t.phone_number_id)
        .bind(i64::from(t.active))
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Turns a trigger on or off.
pub async fn set_active(
    db: &Db,
    project_id: &str,
    id: &str,
    active: bool,
    now: i64,
) -> crate::Result<bool> {
    let done = crate::sql::query(
        "UPDATE workflow_triggers SET active = $1, updated_at = $2 WHERE id = $3 AND project_id = $4",
    )
    .bind(i64::from(active))
    .bind(now)
    .bind(id)
    .bind(project_id)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a trigger.
pub async fn delete(db: &Db, project_id: &str, id: &str) -> crate::Result<bool> {
    let done = crate::sql::query("DELETE FROM workflow_triggers WHERE id = $1 AND project_id = $2")
        .bind(id)
        .bind(project_id)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A project's trigger.
pub async fn get(db: &Db, project_id: &str, id: &str) -> crate::Result<Option<Trigger>> {
    let sql = format!("SELECT {COLS} FROM workflow_triggers WHERE project_id = $1 AND id = $2");
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(trigger).transpose()
}

/// A workflow's triggers, oldest first.
pub async fn for_workflow(
    db: &Db,
    project_id: &str,
    workflow_id: &str,
) -> crate::Result<Vec<Trigger>> {
    let sql = format!(
        "SELECT {COLS} FROM workflow_triggers WHERE project_id = $1 AND workflow_id = $2 ORDER BY created_at, id"
    );
    let rows = crate::sql::query(sql)
        .bind(project_id)
        .bind(workflow_id)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(trigger).collect()
}

/// The active `inbound_message` trigger of a number whose workflow is active, if any.
pub async fn active_inbound(db: &Db, phone_number_id: &str) -> crate::Result<Option<Trigger>> {
    let cols = COLS
        .split(", ")
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {cols} FROM workflow_triggers t JOIN workflows w ON w.id = t.workflow_id \
         WHERE t.phone_number_id = $1 AND t.trigger_type = 'inbound_message' AND t.active = 1 AND w.status = 'active'"
    );
    crate::sql::query(sql)
        .bind(phone_number_id)
        .fetch_optional(db.reader())
        .await?
        .as_ref()
        .map(trigger)
        .transpose()
}
