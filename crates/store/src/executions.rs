//! Workflow executions, their step log, and the inbox of customer messages and API resumes
//! waiting to reach them.

use crate::Conn;
use crate::sql::{Arg, Row};

use crate::Db;
use crate::query::col;

/// A stored execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// Workflow.
    pub workflow_id: String,
    /// Definition version it started with.
    pub workflow_version: i64,
    /// Opaque id returned to API callers.
    pub tracking_id: String,
    /// `inbound_message` or `api_call`.
    pub trigger_type: String,
    /// running, waiting, handoff, ended or failed.
    pub status: String,
    /// `user_input` while waiting.
    pub waiting_reason: Option<String>,
    /// The number it talks through.
    pub phone_number_id: Option<String>,
    /// The customer.
    pub contact_id: Option<String>,
    /// The conversation it last acted in.
    pub conversation_id: Option<String>,
    /// The customer's WhatsApp id (recipient of sends).
    pub wa_id: Option<String>,
    /// Current node of the running frame.
    pub current_node: Option<String>,
    /// Interpreter state (JSON).
    pub state: String,
    /// Effect in progress (JSON), recorded before it is performed.
    pub effect: Option<String>,
    /// Timeout of the current wait (ms).
    pub wait_until: Option<i64>,
    /// When the engine must look at it next (ms).
    pub due_at: Option<i64>,
    /// Claimed by an engine loop until then (ms).
    pub lease_until: Option<i64>,
    /// Bumped by every save (optimistic concurrency).
    pub revision: i64,
    /// Sequence number of the last logged event.
    pub event_seq: i64,
    /// Why it failed (JSON).
    pub error_details: Option<String>,
    /// Started (ms).
    pub started_at: i64,
    /// Ended or failed (ms).
    pub ended_at: Option<i64>,
    /// Last logged event (ms).
    pub last_event_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

const COLS: &str = "id, project_id, workflow_id, workflow_version, tracking_id, trigger_type, status, waiting_reason, phone_number_id, contact_id, conversation_id, wa_id, current_node, state, effect, wait_until, due_at, lease_until, revision, event_seq, error_details, started_at, ended_at, last_event_at, updated_at";

fn execution(r: &Row) -> crate::Result<Execution> {
    Ok(Execution {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        workflow_id: col(r, "workflow_id")?,
        workflow_version: col(r, "workflow_version")?,
        tracking_id: col(r, "tracking_id")?,
        trigger_type: col(r, "trigger_type")?,
        status: col(r, "status")?,
        waiting_reason: col(r, "waiting_reason")?,
        phone_number_id: col(r, "phone_number_id")?,
        contact_id: col(r, "contact_id")?,
        conversation_id: col(r, "conversation_id")?,
        wa_id: col(r, "wa_id")?,
        current_node: col(r, "current_node")?,
        state: col(r, "state")?,
        effect: col(r, "effect")?,
        wait_until: col(r, "wait_until")?,
        due_at: col(r, "due_at")?,
        lease_until: col(r, "lease_until")?,
        revision: col(r, "revision")?,
        event_seq: col(r, "event_seq")?,
        error_details: col(r, "error_details")?,
        started_at: col(r, "started_at")?,
        ended_at: col(r, "ended_at")?,
        last_event_at: col(r, "last_event_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// Stores a new execution (a unique violation: the thread already has a driving one).
pub async fn insert(conn: &mut Conn, e: &Execution) -> crate::Result<()> {
    let sql = format!(
        "INSERT INTO workflow_executions ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)"
    );
    crate::sql::query(sql)
        .bind(&e.id)
        .bind(&e.project_id)
        .bind(&e.workflow_id)
        .bind(e.workflow_version)
        .bind(&e.tracking_id)
        .bind(&e.trigger_type)
        .bind(&e.status)
        .bind(&e.waiting_reason)
        .bind(&e.phone_number_id)
        .bind(&e.contact_id)
        .bind(&e.conversation_id)
        .bind(&e.wa_id)
        .bind(&e.current_node)
        .bind(&e.state)
        .bind(&e.effect)
        .bind(e.wait_until)
        .bind(e.due_at)
        .bind(e.lease_until)
        .bind(e.revision)
        .bind(e.event_seq)
        .bind(&e.error_details)
        .bind(e.started_at)
        .bind(e.ended_at)
        .bind(e.last_event_at)
        .bind(e.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Saves every mutable field if nobody saved since `e.revision` was read; returns whether
/// it did (the stored revision becomes `e.revision + 1`), with `due_at`. A due time that
/// depends on other rows (queued inputs) is corrected with [`set_due`] once this update
/// holds the row.
pub async fn save(conn: &mut Conn, e: &Execution, due_at: Option<i64>) -> crate::Result<bool> {
    let done = crate::sql::query(
        "UPDATE workflow_executions SET status = $1, waiting_reason = $2, conversation_id = $3, current_node = $4, state = $5, effect = $6, wait_until = $7, lease_until = $8, revision = revision + 1, event_seq = $9, error_details = $10, ended_at = $11, last_event_at = $12, updated_at = $13, contact_id = $14, wa_id = $15, due_at = $18 \
         WHERE id = $16 AND revision = $17",
    )
    .bind(&e.status)
    .bind(&e.waiting_reason)
    .bind(&e.conversation_id)
    .bind(&e.current_node)
    .bind(&e.state)
    .bind(&e.effect)
    .bind(e.wait_until)
    .bind(e.lease_until)
    .bind(e.event_seq)
    .bind(&e.error_details)
    .bind(e.ended_at)
    .bind(e.last_event_at)
    .bind(e.updated_at)
    .bind(&e.contact_id)
    .bind(&e.wa_id)
    .bind(&e.id)
    .bind(e.revision)
    .bind(due_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets when the engine looks at the execution next.
pub async fn set_due(conn: &mut Conn, id: &str, due_at: Option<i64>) -> crate::Result<()> {
    crate::sql::query("UPDATE workflow_executions SET due_at = $1 WHERE id = $2")
        .bind(due_at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Brings `due_at` forward to `at` (never later than it is) for an execution that waits.
pub async fn wake_at(conn: &mut Conn, id: &str, at: i64) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE workflow_executions SET due_at = CASE WHEN due_at IS NULL OR due_at > $1 THEN $1 ELSE due_at END WHERE id = $2 AND status = 'waiting'",
    )
    .bind(at)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// One execution of a project.
pub async fn get(db: &Db, project_id: &str, id: &str) -> crate::Result<Option<Execution>> {
    let sql = format!(
        "SELECT {COLS} FROM workflow_executions WHERE project_id = $1 AND (id = $2 OR tracking_id = $2)"
    );
    crate::sql::query(sql)
        .bind(project_id)
        .bind(id)
        .fetch_optional(db.reader())
        .await?
        .as_ref()
        .map(execution)
        .transpose()
}

/// One execution, read inside a transaction.
pub async fn get_in(conn: &mut Conn, id: &str) -> crate::Result<Option<Execution>> {
    let sql = format!("SELECT {COLS} FROM workflow_executions WHERE id = $1");
    crate::sql::query(sql)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(execution)
        .transpose()
}

/// The execution driving a customer's thread on a number (running, waiting or handoff).
pub async fn driving(
    conn: &mut Conn,
    phone_number_id: &str,
    contact_id: &str,
) -> crate::Result<Option<Execution>> {
    let sql = format!(
        "SELECT {COLS} FROM workflow_executions WHERE phone_number_id = $1 AND contact_id = $2 AND status IN ('running', 'waiting', 'handoff')"
    );
    crate::sql::query(sql)
        .bind(phone_number_id)
        .bind(contact_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(execution)
        .transpose()
}

/// Claims up to `limit` executions due by `now` and not leased, leasing them.
pub async fn claim_due(
    db: &Db,
    now: i64,
    lease_millis: i64,
    limit: i64,
) -> crate::Result<Vec<Execution>> {
    // A lease lost in a power cut only makes the execution due again.
    let mut tx = db.writer().begin_relaxed().await?;
    let lock = db.backend().skip_locked();
    let sql = format!(
        "SELECT {COLS} FROM workflow_executions WHERE due_at IS NOT NULL AND due_at <= $1 AND (lease_until IS NULL OR lease_until < $1) ORDER BY due_at LIMIT $2{lock}"
    );
    let rows = crate::sql::query(sql)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let mut claimed = rows
        .iter()
        .map(execution)
        .collect::<crate::Result<Vec<_>>>()?;
    let ids: Vec<String> = claimed.iter().map(|e| e.id.clone()).collect();
    set_lease(
        &mut tx,
        "UPDATE workflow_executions SET lease_until = $1, revision = revision + 1",
        Some(now + lease_millis),
        &ids,
    )
    .await?;
    for e in &mut claimed {
        e.lease_until = Some(now + lease_millis);
        e.revision += 1;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Filters of an execution list.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// One workflow.
    pub workflow_id: Option<&'a str>,
    /// One conversation.
    pub conversation_id: Option<&'a str>,
    /// One status.
    pub status: Option<&'a str>,
    /// One waiting reason.
    pub waiting_reason: Option<&'a str>,
    /// Started at or after (ms).
    pub created_after: Option<i64>,
    /// Started before (ms).
    pub created_before: Option<i64>,
}

/// The conditions of `f` within the project. Only the filters given become conditions, so
/// the planner can start from the index of the one that narrows most (the workflow's or the
/// conversation's executions, in start order).
fn conditions(project_id: &str, f: &Filter<'_>) -> crate::query::Filter {
    let mut w = crate::query::Filter::default();
    w.push(Arg::Text(project_id.to_owned()), |p| {
        format!("project_id = {p}")
    });
    // Within one workflow or conversation the status is checked on the rows found, not
    // looked up in the status index (which holds every execution of the instance, and
    // which both databases' planners may prefer otherwise). `status` is NOT NULL, so
    // COALESCE changes nothing but the plan.
    let scoped = f.workflow_id.is_some() || f.conversation_id.is_some();
    let status = if scoped {
        "COALESCE(status, '')"
    } else {
        "status"
    };
    for (value, column) in [
        (f.workflow_id, "workflow_id"),
        (f.conversation_id, "conversation_id"),
        (f.status, status),
        (f.waiting_reason, "waiting_reason"),
    ] {
        if let Some(v) = value {
            w.push(Arg::Text(v.to_owned()), |p| format!("{column} = {p}"));
        }
    }
    if let Some(t) = f.created_after {
        w.push(Arg::Int(t), |p| format!("started_at >= {p}"));
    }
    if let Some(t) = f.created_before {
        w.push(Arg::Int(t), |p| format!("started_at < {p}"));
    }
    w
}

/// A project's executions, newest first, with the total count.
pub async fn list(
    db: &Db,
    project_id: &str,
    f: &Filter<'_>,
    limit: i64,
    offset: i64,
) -> crate::Result<(Vec<Execution>, i64)> {
    let mut filter = conditions(project_id, f);
    let conditions = filter.where_sql();
    let count_sql = format!("SELECT COUNT(*) AS n FROM workflow_executions{conditions}");
    let total: i64 = filter
        .query(count_sql)
        .fetch_one(db.reader())
        .await?
        .get("n")?;
    let limit_at = filter.bind(Arg::Int(limit));
    let offset_at = filter.bind(Arg::Int(offset));
    let sql = format!(
        "SELECT {COLS} FROM workflow_executions{conditions} ORDER BY started_at DESC, id DESC LIMIT {limit_at} OFFSET {offset_at}"
    );
    let rows = filter.query(sql).fetch_all(db.reader()).await?;
    Ok((
        rows.iter().map(execution).collect::<crate::Result<_>>()?,
        total,
    ))
}

/// Executions per status across the instance (for `/metrics`).
pub async fn status_counts(db: &Db) -> crate::Result<Vec<(String, i64)>> {
    let rows =
        crate::sql::query("SELECT status, COUNT(*) AS n FROM workflow_executions GROUP BY status")
            .fetch_all(db.reader())
            .await?;
    rows.iter()
        .map(|r| Ok((col(r, "status")?, col(r, "n")?)))
        .collect()
}

/// A step-log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Id.
    pub id: String,
    /// Position in the execution's log (1-based).
    pub seq: i64,
    /// Type (`step_entered`, ...).
    pub event_type: String,
    /// Node.
    pub node_id: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    /// Edge taken.
    pub edge_label: Option<String>,
    /// Details (JSON).
    pub payload: String,
    /// When (ms).
    pub created_at: i64,
}

/// `($1, ..., $n), ($n+1, ...)`: placeholders of `rows` rows of `cols` values.
fn values(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$from, ..., $(from + n - 1)`.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows per multi-row statement (well under both databases' parameter limits).
const CHUNK: usize = 64;

/// Appends events to an execution's log (one statement per 64 events).
pub async fn append_events(
    conn: &mut Conn,
    execution_id: &str,
    events: &[Event],
) -> crate::Result<()> {
    for chunk in events.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO workflow_events (id, execution_id, seq, event_type, node_id, direction, edge_label, payload, created_at) VALUES {}",
            values(chunk.len(), 9)
        );
        let mut q = crate::sql::query(sql);
        for e in chunk {
            q = q
                .bind(&e.id)
                .bind(execution_id)
                .bind(e.seq)
                .bind(&e.event_type)
                .bind(&e.node_id)
                .bind(&e.direction)
                .bind(&e.edge_label)
                .bind(&e.payload)
                .bind(e.created_at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// An execution's log in order, from position `after` (exclusive), at most `limit`.
pub async fn events(
    db: &Db,
    execution_id: &str,
    after: i64,
    limit: i64,
) -> crate::Result<Vec<Event>> {
    let rows = crate::sql::query(
        "SELECT id, seq, event_type, node_id, direction, edge_label, payload, created_at FROM workflow_events WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(execution_id)
    .bind(after)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Event {
                id: col(r, "id")?,
                seq: col(r, "seq")?,
                event_type: col(r, "event_type")?,
                node_id: col(r, "node_id")?,
                direction: col(r, "direction")?,
                edge_label: col(r, "edge_label")?,
                payload: col(r, "payload")?,
                created_at: col(r, "created_at")?,
            })
        })
        .collect()
}

/// A customer message or API resume on its way to an execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// Number.
    pub phone_number_id: String,
    /// Customer.
    pub contact_id: String,
    /// Conversation of the message.
    pub conversation_id: Option<String>,
    /// The stored message, for `message` inputs.
    pub message_id: Option<String>,
    /// `message` or `api`.
    pub kind: String,
    /// The input (JSON).
    pub input: String,
    /// Sort key: Meta's stream order for messages.
    pub ord: String,
    /// When it arrived (ms).
    pub received_at: i64,
    /// The execution it was routed to.
    pub execution_id: Option<String>,
}

const INPUT_COLS: &str = "id, project_id, phone_number_id, contact_id, conversation_id, message_id, kind, input, ord, received_at, execution_id";

fn input(r: &Row) -> crate::Result<Input> {
    Ok(Input {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        phone_number_id: col(r, "phone_number_id")?,
        contact_id: col(r, "contact_id")?,
        conversation_id: col(r, "conversation_id")?,
        message_id: col(r, "message_id")?,
        kind: col(r, "kind")?,
        input: col(r, "input")?,
        ord: col(r, "ord")?,
        received_at: col(r, "received_at")?,
        execution_id: col(r, "execution_id")?,
    })
}

/// Queues an inbound message for routing, but only when a workflow could want it: the
/// thread has a running or waiting execution, or the number has an active inbound trigger
/// on an active workflow. Returns whether it was queued.
pub async fn offer_message(conn: &mut Conn, i: &Input) -> crate::Result<bool> {
    let done = crate::sql::query(
        "INSERT INTO workflow_inbox (id, project_id, phone_number_id, contact_id, conversation_id, message_id, kind, input, ord, received_at) \
         SELECT $1, $2, $3, $4, $5, $6, 'message', $7, $8, $9 \
         WHERE EXISTS (SELECT 1 FROM workflow_executions WHERE phone_number_id = $3 AND contact_id = $4 AND status IN ('running', 'waiting', 'handoff') AND status <> 'handoff') \
            OR EXISTS (SELECT 1 FROM workflow_triggers t JOIN workflows w ON w.id = t.workflow_id \
                       WHERE t.phone_number_id = $3 AND t.trigger_type = 'inbound_message' AND t.active = 1 AND w.status = 'active')",
    )
    .bind(&i.id)
    .bind(&i.project_id)
    .bind(&i.phone_number_id)
    .bind(&i.contact_id)
    .bind(&i.conversation_id)
    .bind(&i.message_id)
    .bind(&i.input)
    .bind(&i.ord)
    .bind(i.received_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Queues an input already addressed to an execution (an API resume).
pub async fn push(conn: &mut Conn, i: &Input) -> crate::Result<()> {
    let sql = format!(
        "INSERT INTO workflow_inbox ({INPUT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    crate::sql::query(sql)
        .bind(&i.id)
        .bind(&i.project_id)
        .bind(&i.phone_number_id)
        .bind(&i.contact_id)
        .bind(&i.conversation_id)
        .bind(&i.message_id)
        .bind(&i.kind)
        .bind(&i.input)
        .bind(&i.ord)
        .bind(i.received_at)
        .bind(&i.execution_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims up to `limit` unrouted inputs in arrival order, leasing them.
pub async fn claim_unrouted(
    db: &Db,
    now: i64,
    lease_millis: i64,
    limit: i64,
) -> crate::Result<Vec<Input>> {
    // A lease lost in a power cut only routes the inputs again.
    let mut tx = db.writer().begin_relaxed().await?;
    let lock = db.backend().skip_locked();
    let sql = format!(
        "SELECT {INPUT_COLS} FROM workflow_inbox WHERE execution_id IS NULL AND (lease_until IS NULL OR lease_until < $1) ORDER BY ord, id LIMIT $2{lock}"
    );
    let rows = crate::sql::query(sql)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let claimed: Vec<Input> = rows.iter().map(input).collect::<crate::Result<_>>()?;
    let ids: Vec<String> = claimed.iter().map(|i| i.id.clone()).collect();
    set_lease(
        &mut tx,
        "UPDATE workflow_inbox SET lease_until = $1",
        Some(now + lease_millis),
        &ids,
    )
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Runs `update` (which sets `lease_until = $1`) for the rows `ids`, 64 at a time.
async fn set_lease(
    conn: &mut Conn,
    update: &str,
    until: Option<i64>,
    ids: &[String],
) -> crate::Result<()> {
    for chunk in ids.chunks(CHUNK) {
        let sql = format!("{update} WHERE id IN ({})", placeholders(2, chunk.len()));
        let mut q = crate::sql::query(sql).bind(until);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Routes inputs to an execution.
pub async fn attach(conn: &mut Conn, ids: &[String], execution_id: &str) -> crate::Result<()> {
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "UPDATE workflow_inbox SET execution_id = $1, lease_until = NULL WHERE id IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = crate::sql::query(sql).bind(execution_id);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Releases claimed inputs for another try.
pub async fn release_inputs(db: &Db, ids: &[String]) -> crate::Result<()> {
    let mut conn = db.writer().acquire().await?;
    set_lease(
        &mut conn,
        "UPDATE workflow_inbox SET lease_until = $1",
        None,
        ids,
    )
    .await
}

/// Removes inputs (consumed, or nobody wants them).
pub async fn remove(conn: &mut Conn, ids: &[String]) -> crate::Result<()> {
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "DELETE FROM workflow_inbox WHERE id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = crate::sql::query(sql);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The inputs routed to an execution and not consumed yet, in order.
pub async fn pending(conn: &mut Conn, execution_id: &str) -> crate::Result<Vec<Input>> {
    let sql =
        format!("SELECT {INPUT_COLS} FROM workflow_inbox WHERE execution_id = $1 ORDER BY ord, id");
    let rows = crate::sql::query(sql)
        .bind(execution_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(input).collect()
}

/// Gives up a lease without other changes, asking to be looked at again at `due_at`.
pub async fn release(db: &Db, id: &str, revision: i64, due_at: Option<i64>) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE workflow_executions SET lease_until = NULL, due_at = $1, revision = revision + 1 WHERE id = $2 AND revision = $3",
    )
    .bind(due_at)
    .bind(id)
    .bind(revision)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Frees what an execution that stopped driving its thread had queued: customer messages go
/// back to routing (`reroute`, so an ended execution's unread message can start the next
/// one) or are dropped (a handoff: a person reads them); API resumes are dropped.
pub async fn release_queue(
    conn: &mut Conn,
    execution_id: &str,
    reroute: bool,
) -> crate::Result<()> {
    if reroute {
        crate::sql::query(
            "UPDATE workflow_inbox SET execution_id = NULL, lease_until = NULL WHERE execution_id = $1 AND kind = 'message'",
        )
        .bind(execution_id)
        .execute(&mut *conn)
        .await?;
    }
    crate::sql::query("DELETE FROM workflow_inbox WHERE execution_id = $1")
        .bind(execution_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Releases a leased execution whose step failed on our side (storage), to be tried again at
/// `due_at`; a running execution only (one that moved on is left alone).
pub async fn retry_later(db: &Db, id: &str, due_at: i64) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE workflow_executions SET lease_until = NULL, due_at = $1, revision = revision + 1 WHERE id = $2 AND status IN ('running', 'waiting')",
    )
    .bind(due_at)
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Extends the lease of an execution this node holds (same revision) before a long step;
/// false when it is no longer ours.
pub async fn renew_lease(db: &Db, id: &str, revision: i64, until: i64) -> crate::Result<bool> {
    let done = crate::sql::query(
        "UPDATE workflow_executions SET lease_until = $1 WHERE id = $2 AND revision = $3",
    )
    .bind(until)
    .bind(id)
    .bind(revision)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A project's executions, newest first, keyset-paged (Kapso's cursor style).
pub async fn list_page(
    db: &Db,
    project_id: &str,
    f: &Filter<'_>,
    limit: i64,
    cursor: &crate::Cursor,
) -> crate::Result<crate::Page<Execution>> {
    use crate::query::{keyset, page};
    let mut w = conditions(project_id, f);
    let order = keyset(&mut w, cursor, "started_at", "id");
    let l = w.bind(Arg::Int(limit + 1));
    let sql = format!(
        "SELECT {COLS} FROM workflow_executions{} ORDER BY started_at {order}, id {order} LIMIT {l}",
        w.where_sql()
    );
    let rows = w.query(sql).fetch_all(db.reader()).await?;
    let items = rows
        .iter()
        .map(execution)
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(page(items, limit as usize, cursor, |e| {
        (e.started_at, e.id.clone())
    }))
}
