//! Outbound webhooks: the endpoints, their deliveries (one per event and webhook, created in
//! the transaction that produced the event) and the attempts made for each.

use crate::sql::Row;

use crate::query::{Arg, Cursor, Filter, Page, col, keyset, page};
use crate::{Backend, Conn, Db};

/// A webhook endpoint.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// The number it listens to; `None` for a project webhook.
    pub phone_number_id: Option<String>,
    /// Target URL.
    pub url: String,
    /// `kapso` or `meta`.
    pub kind: String,
    /// Subscribed events (JSON array).
    pub events: String,
    /// Encrypted signing secret.
    pub secret_enc: String,
    /// Extra headers (JSON object).
    pub headers: String,
    /// Whether deliveries are made.
    pub active: bool,
    /// Whether received messages are buffered per conversation.
    pub buffer_enabled: bool,
    /// Buffer window.
    pub buffer_window_seconds: i64,
    /// Largest batch.
    pub max_buffer_size: i64,
    /// Buffered events (JSON array).
    pub buffer_events: String,
    /// Idle minutes before `whatsapp.conversation.inactive`.
    pub inactivity_minutes: i64,
    /// `v1` or `v2`.
    pub payload_version: String,
    /// When it was paused automatically.
    pub paused_at: Option<i64>,
    /// Why.
    pub pause_reason: Option<String>,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

const COLS: &str = "id, project_id, phone_number_id, url, kind, events, secret_enc, headers, active, buffer_enabled, buffer_window_seconds, max_buffer_size, buffer_events, inactivity_minutes, payload_version, paused_at, pause_reason, created_at, updated_at";

fn webhook(r: &Row) -> crate::Result<Webhook> {
    Ok(Webhook {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        phone_number_id: col(r, "phone_number_id")?,
        url: col(r, "url")?,
        kind: col(r, "kind")?,
        events: col(r, "events")?,
        secret_enc: col(r, "secret_enc")?,
        headers: col(r, "headers")?,
        active: col::<i64>(r, "active")? != 0,
        buffer_enabled: col::<i64>(r, "buffer_enabled")? != 0,
        buffer_window_seconds: col(r, "buffer_window_seconds")?,
        max_buffer_size: col(r, "max_buffer_size")?,
        buffer_events: col(r, "buffer_events")?,
        inactivity_minutes: col(r, "inactivity_minutes")?,
        payload_version: col(r, "payload_version")?,
        paused_at: col(r, "paused_at")?,
        pause_reason: col(r, "pause_reason")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// Stores a new webhook.
pub async fn insert(db: &Db, w: &Webhook) -> crate::Result<()> {
    let sql = format!(
        "INSERT INTO webhooks ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    );
    bind_all(crate::sql::query(sql), w)
        .execute(db.writer())
        .await?;
    Ok(())
}

fn bind_all(q: crate::sql::Query, w: &Webhook) -> crate::sql::Query {
    q.bind(&w.id)
        .bind(&w.project_id)
        .bind(&w.phone_number_id)
        .bind(&w.url)
        .bind(&w.kind)
        .bind(&w.events)
        .bind(&w.secret_enc)
        .bind(&w.headers)
        .bind(i64::from(w.active))
        .bind(i64::from(w.buffer_enabled))
        .bind(w.buffer_window_seconds)
        .bind(w.max_buffer_size)
        .bind(&w.buffer_events)
        .bind(w.inactivity_minutes)
        .bind(&w.payload_version)
        .bind(w.paused_at)
        .bind(&w.pause_reason)
        .bind(w.created_at)
        .bind(w.updated_at)
}

/// Replaces a webhook's fields (the id and project stay). Disabling it holds its waiting
/// deliveries; enabling it (unpaused) sends them again, in the same transaction.
pub async fn update(db: &Db, w: &Webhook) -> crate::Result<()> {
    let sql = "UPDATE webhooks SET id = $1, project_id = $2, phone_number_id = $3, url = $4, kind = $5, events = $6, secret_enc = $7, headers = $8, active = $9, buffer_enabled = $10, buffer_window_seconds = $11, max_buffer_size = $12, buffer_events = $13, inactivity_minutes = $14, payload_version = $15, paused_at = $16, pause_reason = $17, created_at = $18, updated_at = $19 WHERE id = $1 AND project_id = $2";
    let mut tx = db.writer().begin().await?;
    bind_all(crate::sql::query(sql), w)
        .execute(&mut *tx)
        .await?;
    if w.active && w.paused_at.is_none() {
        release(&mut tx, &w.id).await?;
    } else {
        hold(&mut tx, &w.id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The status a new delivery to webhook `w` (an SQL alias) starts in: `held` while the
/// webhook is paused, else `pending`.
const WAITING: &str = "CASE WHEN w.paused_at IS NULL THEN 'pending' ELSE 'held' END";

/// The status a held delivery returns to: members of a conversation buffer rejoin it, the
/// others are due as they were.
const RELEASED: &str = "CASE WHEN batch_key IS NULL THEN 'pending' ELSE 'buffered' END";

/// Takes a webhook's waiting deliveries (pending, buffered) out of the claim queue while it
/// is paused or disabled: claims then never walk past them.
async fn hold<E: crate::sql::Exec>(on: E, webhook_id: &str) -> crate::Result<u64> {
    let done = crate::sql::query(
        "UPDATE webhook_deliveries SET status = 'held', locked_until = NULL \
         WHERE webhook_id = $1 AND status IN ('pending', 'buffered')",
    )
    .bind(webhook_id)
    .execute(on)
    .await?;
    Ok(done.rows_affected())
}

/// Puts a webhook's held deliveries back ([`RELEASED`]); buffer members whose window has
/// passed are batched at once.
async fn release<E: crate::sql::Exec>(on: E, webhook_id: &str) -> crate::Result<u64> {
    let done = crate::sql::query(format!(
        "UPDATE webhook_deliveries SET status = {RELEASED} WHERE webhook_id = $1 AND status = 'held'"
    ))
    .bind(webhook_id)
    .execute(on)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes a webhook with its deliveries and their attempts.
pub async fn delete(db: &Db, project_id: &str, id: &str) -> crate::Result<bool> {
    let mut tx = db.writer().begin().await?;
    crate::sql::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1 AND project_id = $2)",
    )
    .bind(id)
    .bind(project_id)
    .execute(&mut *tx)
    .await?;
    crate::sql::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND project_id = $2")
        .bind(id)
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
    let done = crate::sql::query("DELETE FROM webhooks WHERE id = $1 AND project_id = $2")
        .bind(id)
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// A project's webhook.
pub async fn get(db: &Db, project_id: &str, id: &str) -> crate::Result<Option<Webhook>> {
    let sql = format!("SELECT {COLS} FROM webhooks WHERE project_id = $1 AND id = $2");
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(webhook).transpose()
}

/// A project's webhooks of one number (`Some`) or its project webhooks (`None`), oldest first.
pub async fn list(
    db: &Db,
    project_id: &str,
    phone_number_id: Option<&str>,
) -> crate::Result<Vec<Webhook>> {
    let sql = format!(
        "SELECT {COLS} FROM webhooks WHERE project_id = $1 AND ((CAST($2 AS TEXT) IS NULL AND phone_number_id IS NULL) OR phone_number_id = $2) ORDER BY created_at, id"
    );
    let rows = crate::sql::query(sql)
        .bind(project_id)
        .bind(phone_number_id)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(webhook).collect()
}

/// What a fan-out needs to know of a webhook to tell whether it could reach it: the SQLite
/// writer keeps these for the whole table (a few rows per project), so that an event no
/// webhook subscribes to costs no statement. Every write to the table goes through that
/// writer, whose hooks mark the copy stale ([`crate::Conn::webhook_subscribers`]).
#[derive(Debug)]
pub(crate) struct Subscriber {
    project_id: String,
    kind: String,
    phone_number_id: Option<String>,
    active: bool,
    events: String,
}

/// Whether a webhook `reaches` picks could get a delivery: always on PostgreSQL (other nodes
/// write the table too); on SQLite, from the writer's copy of the table, read again after
/// any change to it.
async fn may_reach(conn: &mut Conn, reaches: impl Fn(&Subscriber) -> bool) -> crate::Result<bool> {
    let copy = match conn.webhook_subscribers() {
        None => return Ok(true),
        Some(Some(copy)) => copy,
        Some(None) => {
            let at = conn.webhook_changes().unwrap_or_default();
            let rows = crate::sql::query(
                "SELECT project_id, kind, phone_number_id, active, events FROM webhooks",
            )
            .fetch_all(&mut *conn)
            .await?;
            let copy = rows
                .iter()
                .map(|r| {
                    Ok(Subscriber {
                        project_id: col(r, "project_id")?,
                        kind: col(r, "kind")?,
                        phone_number_id: col(r, "phone_number_id")?,
                        active: col(r, "active")?,
                        events: col(r, "events")?,
                    })
                })
                .collect::<crate::Result<std::sync::Arc<[Subscriber]>>>()?;
            conn.keep_webhook_subscribers(at, copy.clone());
            copy
        }
    };
    Ok(copy.iter().any(reaches))
}

/// An event to deliver to every webhook of its scope that subscribes to it.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// Stable id: the same event published twice is delivered once per webhook.
    pub id: &'a str,
    /// Event name, e.g. `whatsapp.message.received`.
    pub event_type: &'a str,
    /// Project.
    pub project_id: &'a str,
    /// The number it happened on (reaches its webhooks and the project's); `None` for
    /// project events (project webhooks only).
    pub phone_number_id: Option<&'a str>,
    /// What it is about (JSON with ids), rendered at the first attempt.
    pub subject: &'a str,
    /// The buffer it joins at webhooks that buffer this event (the conversation).
    pub batch_key: Option<&'a str>,
}

/// Creates the deliveries of an event in the caller's transaction; returns how many. For
/// webhooks that buffer this event, the delivery waits as `buffered` under `batch_key` until
/// the window that opened with the first buffered event of that key ends.
pub async fn publish(conn: &mut Conn, e: NewEvent<'_>, now: i64) -> crate::Result<u64> {
    // The statement's filter, on the copy.
    let quoted = format!("\"{}\"", e.event_type);
    let subscribed = may_reach(conn, |w| {
        w.project_id == e.project_id
            && w.kind == "kapso"
            && w.active
            && w.events.contains(&quoted)
            && (w.phone_number_id.is_none()
                || (e.phone_number_id.is_some()
                    && w.phone_number_id.as_deref() == e.phone_number_id))
    })
    .await?;
    if !subscribed {
        return Ok(0);
    }
    let done = crate::sql::query(
        "INSERT INTO webhook_deliveries (id, project_id, webhook_id, event_id, event_type, phone_number_id, subject, status, attempts, next_attempt_at, created_at, updated_at, batch_key) \
         SELECT $1 || '.' || w.id, w.project_id, w.id, $1, $2, $3, $4, \
           CASE WHEN w.paused_at IS NOT NULL THEN 'held' \
                WHEN (w.buffer_enabled = 1 AND CAST($8 AS TEXT) IS NOT NULL AND replace(w.buffer_events, $7, '') <> w.buffer_events) THEN 'buffered' ELSE 'pending' END, 0, \
           CASE WHEN (w.buffer_enabled = 1 AND CAST($8 AS TEXT) IS NOT NULL AND replace(w.buffer_events, $7, '') <> w.buffer_events) THEN COALESCE((SELECT MIN(x.created_at) FROM webhook_deliveries x \
                  WHERE x.webhook_id = w.id AND x.batch_key = $8 AND x.status = 'buffered'), $5) + w.buffer_window_seconds * 1000 \
                ELSE $5 END, \
           $5, $5, CASE WHEN (w.buffer_enabled = 1 AND CAST($8 AS TEXT) IS NOT NULL AND replace(w.buffer_events, $7, '') <> w.buffer_events) THEN $8 ELSE NULL END \
         FROM webhooks w \
         WHERE w.project_id = $6 AND w.kind = 'kapso' AND w.active = 1 AND replace(w.events, $7, '') <> w.events \
           AND (w.phone_number_id IS NULL OR w.phone_number_id = $3) \
         ON CONFLICT (webhook_id, event_id) DO NOTHING",
    )
    .bind(e.id)
    .bind(e.event_type)
    .bind(e.phone_number_id)
    .bind(e.subject)
    .bind(now)
    .bind(e.project_id)
    .bind(quoted)
    .bind(e.batch_key)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        conn.note_deliveries();
    }
    Ok(done.rows_affected())
}

/// Turns every due buffer (window ended, or `max_buffer_size` members waiting) into one
/// pending batch delivery whose subject lists its members in order; returns how many
/// batches.
pub async fn flush_buffers(db: &Db, now: i64) -> crate::Result<usize> {
    let mut tx = db.writer().begin().await?;
    // One flusher at a time: concurrent loops (and nodes) would batch the same members
    // twice. SQLite's single writer connection already serializes this transaction.
    if db.backend() == Backend::Postgres {
        let mine: bool = crate::sql::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtext('chasqui.webhooks.flush_buffers'))",
        )
        .fetch_one(&mut *tx)
        .await?;
        if !mine {
            return Ok(0);
        }
    }
    let groups = crate::sql::query(
        "SELECT d.webhook_id, d.batch_key, MIN(w.max_buffer_size) AS max_size FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'buffered' AND w.active = 1 AND w.paused_at IS NULL \
         GROUP BY d.webhook_id, d.batch_key \
         HAVING MIN(d.next_attempt_at) <= $1 OR COUNT(*) >= MIN(w.max_buffer_size) LIMIT 100",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut batches = 0;
    for g in &groups {
        let webhook_id: String = g.get("webhook_id")?;
        let batch_key: String = g.get("batch_key")?;
        let max_size: i64 = g.get("max_size")?;
        // Meta's order decides which members go first (concurrent processing may have stored
        // them out of order): the inbound delivery's time-ordered id and the position in it.
        let rows = crate::sql::query(
            "SELECT id, project_id, event_id, event_type, phone_number_id, subject FROM webhook_deliveries \
             WHERE webhook_id = $1 AND batch_key = $2 AND status = 'buffered'",
        )
        .bind(&webhook_id)
        .bind(&batch_key)
        .fetch_all(&mut *tx)
        .await?;
        let mut members: Vec<(Option<String>, serde_json::Value, &Row)> = rows
            .iter()
            .map(|m| {
                let text: String = m.get("subject")?;
                let subject: serde_json::Value =
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
                let order = subject
                    .get("order")
                    .and_then(|o| o.as_str())
                    .map(str::to_owned);
                Ok((order, subject, m))
            })
            .collect::<crate::Result<_>>()?;
        members.sort_by(|a, b| a.0.cmp(&b.0));
        members.truncate(usize::try_from(max_size).unwrap_or(1).max(1));
        let Some((_, _, first)) = members.first() else {
            continue;
        };
        let first = *first;
        let first_event: String = first.get("event_id")?;
        let subjects: Vec<serde_json::Value> = members.iter().map(|m| m.1.clone()).collect();
        let leader = format!("batch.{first_event}.{webhook_id}");
        crate::sql::query(
            "INSERT INTO webhook_deliveries (id, project_id, webhook_id, event_id, event_type, phone_number_id, subject, status, attempts, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8, $8) ON CONFLICT (webhook_id, event_id) DO NOTHING",
        )
        .bind(&leader)
        .bind(first.get::<String>("project_id")?)
        .bind(&webhook_id)
        .bind(format!("batch.{first_event}"))
        .bind(first.get::<String>("event_type")?)
        .bind(first.get::<Option<String>>("phone_number_id")?)
        .bind(serde_json::json!({ "batch": subjects }).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (_, _, m) in &members {
            crate::sql::query(
                "UPDATE webhook_deliveries SET status = 'batched', batch_id = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(&leader)
            .bind(now)
            .bind(m.get::<String>("id")?)
            .execute(&mut *tx)
            .await?;
        }
        batches += 1;
    }
    tx.commit().await?;
    Ok(batches)
}

/// A delivery due now, with what sending it needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// Event id (`X-Idempotency-Key`).
    pub event_id: String,
    /// Event name.
    pub event_type: String,
    /// The number, for number events.
    pub phone_number_id: Option<String>,
    /// What the event is about.
    pub subject: String,
    /// The body, once rendered.
    pub payload: Option<String>,
    /// Attempts made before this one.
    pub attempts: i64,
    /// The webhook.
    pub webhook: Webhook,
}

/// Claims up to `limit` due deliveries of active, unpaused webhooks for `lease_millis`.
pub async fn claim_due(
    db: &Db,
    limit: i64,
    now: i64,
    lease_millis: i64,
) -> crate::Result<Vec<DueDelivery>> {
    let cols: String = COLS
        .split(", ")
        .map(|c| format!("w.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "SELECT d.id AS d_id, d.project_id AS d_project_id, d.event_id, d.event_type, d.phone_number_id AS d_phone_number_id, d.subject, d.payload, d.attempts, {cols} \
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND (d.locked_until IS NULL OR d.locked_until < $1) \
           AND w.active = 1 AND w.paused_at IS NULL \
         ORDER BY d.next_attempt_at, d.id LIMIT $2{lock}"
    );
    // A lease lost in a power cut only makes the deliveries due again at once.
    let mut tx = db.writer().begin_relaxed().await?;
    let rows = crate::sql::query(sql)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let mut due = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    for r in &rows {
        let d = DueDelivery {
            id: col(r, "d_id")?,
            project_id: col(r, "d_project_id")?,
            event_id: col(r, "event_id")?,
            event_type: col(r, "event_type")?,
            phone_number_id: col(r, "d_phone_number_id")?,
            subject: col(r, "subject")?,
            payload: col(r, "payload")?,
            attempts: col(r, "attempts")?,
            webhook: webhook(r)?,
        };
        ids.push(d.id.clone());
        due.push(d);
    }
    if !ids.is_empty() {
        let sql = match db.backend() {
            Backend::Sqlite => {
                "UPDATE webhook_deliveries SET locked_until = $1 WHERE id IN (SELECT value FROM json_each($2))"
            }
            Backend::Postgres => {
                "UPDATE webhook_deliveries SET locked_until = $1 WHERE id IN (SELECT jsonb_array_elements_text($2::jsonb))"
            }
        };
        crate::sql::query(sql)
            .bind(now + lease_millis)
            .bind(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(due)
}

/// One attempt's outcome.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// Delivery.
    pub delivery_id: &'a str,
    /// 1-based attempt number.
    pub attempt: i64,
    /// Response status, if a response came.
    pub status_code: Option<i64>,
    /// Time to the response (or the failure).
    pub latency_ms: i64,
    /// The start of the response body.
    pub response_body: Option<String>,
    /// Transport error or refusal.
    pub error: Option<String>,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered.
    Delivered,
    /// Try again at this time (ms).
    RetryAt(i64),
    /// No attempts left.
    Failed,
}

/// One recorded attempt and what happens to its delivery next.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    /// The attempt.
    pub attempt: Attempt<'a>,
    /// The delivery's next state.
    pub next: Next,
    /// The body sent; kept when the delivery will be sent again, so retries send the same bytes.
    pub payload: &'a str,
}

/// Records a batch of attempts and moves their deliveries on: one INSERT and one UPDATE for
/// the whole batch, in one transaction.
pub async fn record_attempts(
    db: &Db,
    records: &[AttemptRecord<'_>],
    now: i64,
) -> crate::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let a = &r.attempt;
            let (status, next_at, delivered_at) = match r.next {
                Next::Delivered => ("delivered", now, Some(now)),
                Next::RetryAt(at) => ("pending", at, None),
                Next::Failed => ("failed", now, None),
            };
            serde_json::json!({
                "id": format!("{}.{}", a.delivery_id, a.attempt),
                "delivery_id": a.delivery_id,
                "attempt": a.attempt,
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "response_body": a.response_body,
                "error": a.error,
                "status": status,
                "next_at": next_at,
                "delivered_at": delivered_at,
                // Frozen only for a delivery that will be sent again (a retry, or a manual
                // retry once failed): a delivered one never is, and skipping its copy halves
                // the bytes a busy webhook writes.
                "payload": (!matches!(r.next, Next::Delivered)).then_some(r.payload),
            })
        })
        .collect();
    let rows = serde_json::Value::Array(rows).to_string();
    let (insert, update) = match db.backend() {
        Backend::Sqlite => (
            "INSERT INTO webhook_attempts (id, delivery_id, attempt, status_code, latency_ms, response_body, error, attempted_at) \
             SELECT json_extract(value, '$.id'), json_extract(value, '$.delivery_id'), json_extract(value, '$.attempt'), \
                    json_extract(value, '$.status_code'), json_extract(value, '$.latency_ms'), json_extract(value, '$.response_body'), \
                    json_extract(value, '$.error'), $2 FROM json_each($1)",
            "UPDATE webhook_deliveries SET status = CASE WHEN json_extract(j.value, '$.status') = 'pending' AND EXISTS (SELECT 1 FROM webhooks w \
                  WHERE w.id = webhook_deliveries.webhook_id AND (w.active = 0 OR w.paused_at IS NOT NULL)) THEN 'held' ELSE json_extract(j.value, '$.status') END, attempts = json_extract(j.value, '$.attempt'), \
                next_attempt_at = json_extract(j.value, '$.next_at'), locked_until = NULL, \
                last_status_code = json_extract(j.value, '$.status_code'), last_error = json_extract(j.value, '$.error'), \
                delivered_at = json_extract(j.value, '$.delivered_at'), updated_at = $2, \
                payload = COALESCE(webhook_deliveries.payload, json_extract(j.value, '$.payload')) \
             FROM json_each($1) AS j WHERE webhook_deliveries.id = json_extract(j.value, '$.delivery_id')",
        ),
        Backend::Postgres => (
            "INSERT INTO webhook_attempts (id, delivery_id, attempt, status_code, latency_ms, response_body, error, attempted_at) \
             SELECT x->>'id', x->>'delivery_id', (x->>'attempt')::bigint, (x->>'status_code')::bigint, (x->>'latency_ms')::bigint, \
                    x->>'response_body', x->>'error', $2 FROM jsonb_array_elements($1::jsonb) x",
            "UPDATE webhook_deliveries d SET status = CASE WHEN x->>'status' = 'pending' AND EXISTS (SELECT 1 FROM webhooks w \
                  WHERE w.id = d.webhook_id AND (w.active = 0 OR w.paused_at IS NOT NULL)) THEN 'held' ELSE x->>'status' END, attempts = (x->>'attempt')::bigint, \
                next_attempt_at = (x->>'next_at')::bigint, locked_until = NULL, \
                last_status_code = (x->>'status_code')::bigint, last_error = x->>'error', \
                delivered_at = (x->>'delivered_at')::bigint, updated_at = $2, payload = COALESCE(d.payload, x->>'payload') \
             FROM jsonb_array_elements($1::jsonb) x WHERE d.id = x->>'delivery_id'",
        ),
    };
    // Outcomes lost in a power cut make those deliveries be sent again, with the same
    // idempotency key: at least once, as promised; never lost, since the events are synced.
    let mut tx = db.writer().begin_relaxed().await?;
    crate::sql::query(insert)
        .bind(&rows)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    crate::sql::query(update)
        .bind(&rows)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A delivery as listed.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Id.
    pub id: String,
    /// Webhook.
    pub webhook_id: String,
    /// The webhook's URL.
    pub webhook_url: String,
    /// Event id.
    pub event_id: String,
    /// Event name.
    pub event_type: String,
    /// Number.
    pub phone_number_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// Last response status.
    pub last_status_code: Option<i64>,
    /// Last error.
    pub last_error: Option<String>,
    /// Next attempt; `None` while its webhook is paused (held: none is planned).
    pub next_attempt_at: Option<i64>,
    /// When delivered.
    pub delivered_at: Option<i64>,
    /// Created.
    pub created_at: i64,
    /// Updated.
    pub updated_at: i64,
}

/// Filters of the delivery list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// One webhook.
    pub webhook_id: Option<String>,
    /// One event name.
    pub event_type: Option<String>,
    /// One status.
    pub status: Option<String>,
    /// Created at or after (ms).
    pub since: Option<i64>,
    /// Created at or before (ms).
    pub until: Option<i64>,
}

/// A project's deliveries, newest first.
pub async fn list_deliveries(
    db: &Db,
    project_id: &str,
    filter: &DeliveryFilter,
    limit: i64,
    cursor: &Cursor,
) -> crate::Result<Page<Delivery>> {
    let mut f = Filter::default();
    f.push(Arg::Text(project_id.to_owned()), |p| {
        format!("d.project_id = {p}")
    });
    if let Some(v) = &filter.webhook_id {
        f.push(Arg::Text(v.clone()), |p| format!("d.webhook_id = {p}"));
    }
    if let Some(v) = &filter.event_type {
        f.push(Arg::Text(v.clone()), |p| format!("d.event_type = {p}"));
    }
    if let Some(v) = &filter.status {
        // Held deliveries (of a paused webhook) are pending to the user.
        f.push(Arg::Text(v.clone()), |p| {
            format!("(d.status = {p} OR ({p} = 'pending' AND d.status = 'held'))")
        });
    }
    if let Some(v) = filter.since {
        f.push(Arg::Int(v), |p| format!("d.created_at >= {p}"));
    }
    if let Some(v) = filter.until {
        f.push(Arg::Int(v), |p| format!("d.created_at <= {p}"));
    }
    let order = keyset(&mut f, cursor, "d.created_at", "d.id");
    let l = f.bind(Arg::Int(limit + 1));
    let sql = format!(
        "SELECT d.id, d.webhook_id, w.url AS webhook_url, d.event_id, d.event_type, d.phone_number_id, d.status, d.attempts, d.last_status_code, d.last_error, d.next_attempt_at, d.delivered_at, d.created_at, d.updated_at \
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id{} ORDER BY d.created_at {order}, d.id {order} LIMIT {l}",
        f.where_sql()
    );
    let rows = f.query(sql).fetch_all(db.reader()).await?;
    let items = rows
        .iter()
        .map(|r| {
            // Held by a paused webhook: pending to the user, with no attempt planned.
            let status: String = col(r, "status")?;
            let held = status == "held";
            Ok(Delivery {
                id: col(r, "id")?,
                webhook_id: col(r, "webhook_id")?,
                webhook_url: col(r, "webhook_url")?,
                event_id: col(r, "event_id")?,
                event_type: col(r, "event_type")?,
                phone_number_id: col(r, "phone_number_id")?,
                status: if held { "pending".to_owned() } else { status },
                attempts: col(r, "attempts")?,
                last_status_code: col(r, "last_status_code")?,
                last_error: col(r, "last_error")?,
                next_attempt_at: (!held).then(|| col(r, "next_attempt_at")).transpose()?,
                delivered_at: col(r, "delivered_at")?,
                created_at: col(r, "created_at")?,
                updated_at: col(r, "updated_at")?,
            })
        })
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(page(items, limit as usize, cursor, |d| {
        (d.created_at, d.id.clone())
    }))
}

/// A recorded attempt.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    /// Delivery.
    pub delivery_id: String,
    /// 1-based number.
    pub attempt: i64,
    /// Response status.
    pub status_code: Option<i64>,
    /// Latency.
    pub latency_ms: i64,
    /// Start of the response body.
    pub response_body: Option<String>,
    /// Error.
    pub error: Option<String>,
    /// When (ms).
    pub attempted_at: i64,
}

/// The attempts of some deliveries, in order.
pub async fn attempts(db: &Db, delivery_ids: &[String]) -> crate::Result<Vec<AttemptRow>> {
    if delivery_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut f = Filter::default();
    let params: Vec<String> = delivery_ids
        .iter()
        .map(|id| f.bind(Arg::Text(id.clone())))
        .collect();
    let sql = format!(
        "SELECT delivery_id, attempt, status_code, latency_ms, response_body, error, attempted_at FROM webhook_attempts WHERE delivery_id IN ({}) ORDER BY delivery_id, attempt",
        params.join(", ")
    );
    let rows = f.query(sql).fetch_all(db.reader()).await?;
    rows.iter()
        .map(|r| {
            Ok(AttemptRow {
                delivery_id: col(r, "delivery_id")?,
                attempt: col(r, "attempt")?,
                status_code: col(r, "status_code")?,
                latency_ms: col(r, "latency_ms")?,
                response_body: col(r, "response_body")?,
                error: col(r, "error")?,
                attempted_at: col(r, "attempted_at")?,
            })
        })
        .collect()
}

/// Puts failed deliveries back in the queue for an immediate attempt: one (`id`), or every
/// failed delivery of the project created at or after `since` (optionally of one webhook).
/// Returns how many.
pub async fn requeue_failed(
    db: &Db,
    project_id: &str,
    id: Option<&str>,
    webhook_id: Option<&str>,
    since: i64,
    now: i64,
) -> crate::Result<u64> {
    let done = crate::sql::query(
        "UPDATE webhook_deliveries SET status = CASE WHEN EXISTS (SELECT 1 FROM webhooks w \
             WHERE w.id = webhook_deliveries.webhook_id AND w.active = 1 AND w.paused_at IS NULL) THEN 'pending' ELSE 'held' END, \
           next_attempt_at = $1, locked_until = NULL, updated_at = $1 \
         WHERE project_id = $2 AND status = 'failed' AND created_at >= $3 \
           AND (CAST($4 AS TEXT) IS NULL OR id = $4) AND (CAST($5 AS TEXT) IS NULL OR webhook_id = $5)",
    )
    .bind(now)
    .bind(project_id)
    .bind(since)
    .bind(id)
    .bind(webhook_id)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected())
}

/// Attempt counts of a webhook since `since`: (attempts, failed attempts).
pub async fn attempt_stats(db: &Db, webhook_id: &str, since: i64) -> crate::Result<(i64, i64)> {
    let row = crate::sql::query(
        "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN a.status_code >= 200 AND a.status_code < 300 THEN 0 ELSE 1 END), 0) AS failed \
         FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id \
         WHERE d.webhook_id = $1 AND a.attempted_at >= $2",
    )
    .bind(webhook_id)
    .bind(since)
    .fetch_one(db.reader())
    .await?;
    Ok((row.get("total")?, row.get("failed")?))
}

/// Pauses a webhook (automatic pausing) in the caller's transaction; returns whether it was
/// running.
pub async fn pause(conn: &mut Conn, id: &str, reason: &str, now: i64) -> crate::Result<bool> {
    let done = crate::sql::query(
        "UPDATE webhooks SET paused_at = $1, pause_reason = $2, updated_at = $1 WHERE id = $3 AND paused_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    hold(&mut *conn, id).await?;
    Ok(true)
}

/// Whether any active `meta` webhook could take Meta's raw deliveries: lets a caller skip
/// working out a delivery's addressees when none could. Always true on PostgreSQL.
pub async fn may_forward_raw(conn: &mut Conn) -> crate::Result<bool> {
    may_reach(conn, |w| w.kind == "meta" && w.active).await
}

/// Creates the deliveries of a raw Meta payload to the number's `meta` webhook (if any), in
/// the caller's transaction; the payload is the body, as received.
pub async fn publish_raw(
    conn: &mut Conn,
    project_id: &str,
    phone_number_id: &str,
    event_id: &str,
    payload: &str,
    now: i64,
) -> crate::Result<u64> {
    // The statement's filter, on the copy.
    let subscribed = may_reach(conn, |w| {
        w.project_id == project_id
            && w.phone_number_id.as_deref() == Some(phone_number_id)
            && w.kind == "meta"
            && w.active
    })
    .await?;
    if !subscribed {
        return Ok(0);
    }
    let done = crate::sql::query(format!(
        "INSERT INTO webhook_deliveries (id, project_id, webhook_id, event_id, event_type, phone_number_id, subject, payload, status, attempts, next_attempt_at, created_at, updated_at) \
         SELECT $1 || '.' || w.id, w.project_id, w.id, $1, 'meta', $2, '{{}}', $3, {WAITING}, 0, $4, $4, $4 FROM webhooks w \
         WHERE w.project_id = $5 AND w.phone_number_id = $2 AND w.kind = 'meta' AND w.active = 1 \
         ON CONFLICT (webhook_id, event_id) DO NOTHING"
    ))
    .bind(event_id)
    .bind(phone_number_id)
    .bind(payload)
    .bind(now)
    .bind(project_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        conn.note_deliveries();
    }
    Ok(done.rows_affected())
}

/// How far behind a webhook's sweep mark the inactivity sweep looks again: a conversation
/// whose last activity lands behind the mark (a message Meta delivered late, with its own
/// older timestamp) is still seen if it is no older than this.
const INACTIVE_LOOKBACK_MILLIS: i64 = 60 * 60 * 1000;

/// The webhooks the inactivity sweep serves.
const INACTIVE_SUBSCRIBERS: &str = "w.kind = 'kapso' AND w.active = 1 \
    AND w.events LIKE '%\"whatsapp.conversation.inactive\"%'";

/// Creates `whatsapp.conversation.inactive` deliveries for every active conversation that
/// has been quiet for at least the webhook's `inactivity_minutes`: once per idle period
/// (the event id carries the conversation's last activity), per webhook threshold, as of
/// `as_of`; the deliveries are due at `now`. Each webhook keeps the last-activity moment
/// its sweep has reached (`inactive_swept_until`), so a pass reads only the conversations
/// that crossed the threshold since the previous one, from the subscribed webhooks down.
pub async fn publish_inactive(db: &Db, as_of: i64, now: i64) -> crate::Result<u64> {
    let mut tx = db.writer().begin().await?;
    let done = crate::sql::query(format!(
        "INSERT INTO webhook_deliveries (id, project_id, webhook_id, event_id, event_type, phone_number_id, subject, status, attempts, next_attempt_at, created_at, updated_at) \
         SELECT 'inactive.' || c.id || '.' || CAST(c.last_active_at AS TEXT) || '.' || w.id, c.project_id, w.id, \
                'inactive.' || c.id || '.' || CAST(c.last_active_at AS TEXT), 'whatsapp.conversation.inactive', c.phone_number_id, \
                '{{\"conversation_id\":\"' || c.id || '\",\"inactivity_minutes\":' || CAST(w.inactivity_minutes AS TEXT) || '}}', \
                {WAITING}, 0, $1, $1, $1 \
         FROM webhooks w CROSS JOIN conversations c \
         WHERE {INACTIVE_SUBSCRIBERS} \
           AND c.project_id = w.project_id \
           AND c.last_active_at <= $2 - w.inactivity_minutes * 60000 \
           AND c.last_active_at > COALESCE(w.inactive_swept_until - $3, -1) \
           AND c.status = 'active' \
           AND (w.phone_number_id IS NULL OR w.phone_number_id = c.phone_number_id) \
         ON CONFLICT (webhook_id, event_id) DO NOTHING"
    ))
    .bind(now)
    .bind(as_of)
    .bind(INACTIVE_LOOKBACK_MILLIS)
    .execute(&mut *tx)
    .await?;
    crate::sql::query(format!(
        "UPDATE webhooks AS w SET inactive_swept_until = $1 - w.inactivity_minutes * 60000 \
         WHERE {INACTIVE_SUBSCRIBERS} \
           AND (w.inactive_swept_until IS NULL OR w.inactive_swept_until < $1 - w.inactivity_minutes * 60000)"
    ))
    .bind(as_of)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Deletes the webhooks of a number (with their deliveries and attempts), in the caller's
/// transaction; returns how many webhooks.
pub async fn delete_for_number(
    conn: &mut Conn,
    project_id: &str,
    phone_number_id: &str,
) -> crate::Result<u64> {
    crate::sql::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE w.project_id = $1 AND w.phone_number_id = $2)",
    )
    .bind(project_id)
    .bind(phone_number_id)
    .execute(&mut *conn)
    .await?;
    crate::sql::query(
        "DELETE FROM webhook_deliveries WHERE webhook_id IN (SELECT id FROM webhooks WHERE project_id = $1 AND phone_number_id = $2)",
    )
    .bind(project_id)
    .bind(phone_number_id)
    .execute(&mut *conn)
    .await?;
    let done =
        crate::sql::query("DELETE FROM webhooks WHERE project_id = $1 AND phone_number_id = $2")
            .bind(project_id)
            .bind(phone_number_id)
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected())
}

/// Deliveries waiting to be sent (pending, buffered, held by a paused webhook) and those
/// that gave up (failed).
pub async fn counts(db: &Db) -> crate::Result<(i64, i64)> {
    let row = crate::sql::query(
        // One count per status, each over its own partial index.
        "SELECT (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending') \
              + (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'buffered') \
              + (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'held') AS waiting, \
                (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'failed') AS failed",
    )
    .fetch_one(db.reader())
    .await?;
    Ok((row.get("waiting")?, row.get("failed")?))
}

/// Releases deliveries left `held` at a webhook that is running: on PostgreSQL an event
/// published (or an attempt recorded) while another transaction re-enabled the webhook may
/// have read it still paused and committed after that release. Returns how many.
pub async fn release_stray(db: &Db) -> crate::Result<u64> {
    let done = crate::sql::query(format!(
        "UPDATE webhook_deliveries SET status = {RELEASED} \
         WHERE status = 'held' AND webhook_id IN (SELECT w.id FROM webhooks w WHERE w.active = 1 AND w.paused_at IS NULL)"
    ))
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected())
}

/// The projects that have webhooks (so may have logged deliveries).
pub async fn projects_with_webhooks(db: &Db) -> crate::Result<Vec<String>> {
    crate::sql::query_scalar("SELECT DISTINCT project_id FROM webhooks")
        .fetch_all(db.reader())
        .await
}

/// Deletes up to `limit` of a project's deliveries that were delivered (or joined a batch)
/// before `before` (ms), with their attempts; returns how many deliveries. Waiting and
/// failed deliveries stay whatever their age.
pub async fn delete_finished_before(
    db: &Db,
    project_id: &str,
    before: i64,
    limit: i64,
) -> crate::Result<u64> {
    let mut tx = db.writer().begin().await?;
    let ids: Vec<String> = crate::sql::query_scalar(
        "SELECT id FROM webhook_deliveries \
         WHERE project_id = $1 AND created_at < $2 AND status IN ('delivered', 'batched') \
         ORDER BY created_at, id LIMIT $3",
    )
    .bind(project_id)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let list =
        serde_json::to_string(&ids).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
    let (attempts, deliveries) = match db.backend() {
        Backend::Sqlite => (
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT value FROM json_each($1))",
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT value FROM json_each($1))",
        ),
        Backend::Postgres => (
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))",
        ),
    };
    crate::sql::query(attempts)
        .bind(&list)
        .execute(&mut *tx)
        .await?;
    let done = crate::sql::query(deliveries)
        .bind(&list)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: &str, kind: &str, number: Option<&str>, events: &str) -> Webhook {
        Webhook {
            id: id.into(),
            project_id: "p".into(),
            phone_number_id: number.map(str::to_owned),
            url: "http://127.0.0.1:9/hook".into(),
            kind: kind.into(),
            events: events.into(),
            secret_enc: String::new(),
            headers: "{}".into(),
            active: true,
            buffer_enabled: false,
            buffer_window_seconds: 5,
            max_buffer_size: 10,
            buffer_events: "[]".into(),
            inactivity_minutes: 60,
            payload_version: "v2".into(),
            paused_at: None,
            pause_reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn event<'a>(id: &'a str, event_type: &'a str, number: Option<&'a str>) -> NewEvent<'a> {
        NewEvent {
            id,
            event_type,
            project_id: "p",
            phone_number_id: number,
            subject: "{}",
            batch_key: None,
        }
    }

    /// Deliveries made, and statements the writer ran, for `publish` of `e`.
    async fn publish_counted(db: &Db, e: NewEvent<'_>) -> (u64, u64) {
        let statements = || crate::testing::main_counts(db).statements;
        let before = statements();
        let mut conn = db.writer().acquire().await.expect("conn");
        let made = publish(&mut conn, e, 1).await.expect("publish");
        drop(conn);
        (made, statements() - before)
    }

    /// The SQLite writer skips fan-outs no webhook could take, and its copy of the table
    /// follows every change to it, rolled-back ones included.
    #[tokio::test]
    async fn fan_outs_no_webhook_takes_run_no_statement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::testing::sqlite(&dir).await;
        crate::testing::project(&db).await;
        let received = "whatsapp.message.received";

        // No webhook: the first look reads the table, the next ones nothing.
        assert_eq!(
            publish_counted(&db, event("e1", received, Some("n"))).await,
            (0, 1)
        );
        assert_eq!(
            publish_counted(&db, event("e2", received, Some("n"))).await,
            (0, 0)
        );

        let mut w = hook("w1", "kapso", None, "[\"whatsapp.message.received\"]");
        insert(&db, &w).await.expect("insert");
        assert_eq!(
            publish_counted(&db, event("e3", received, Some("n"))).await,
            (1, 2)
        );
        assert_eq!(
            publish_counted(&db, event("e4", received, None)).await,
            (1, 1)
        );
        // Another event, another project's number scope: nothing to run.
        let sent = "whatsapp.message.sent";
        assert_eq!(
            publish_counted(&db, event("e5", sent, Some("n"))).await,
            (0, 0)
        );

        w.events = "[\"whatsapp.message.sent\"]".into();
        update(&db, &w).await.expect("update");
        assert_eq!(
            publish_counted(&db, event("e6", sent, Some("n"))).await.0,
            1
        );
        assert_eq!(
            publish_counted(&db, event("e7", received, Some("n"))).await,
            (0, 0)
        );

        // A number's webhook takes that number's events only.
        insert(
            &db,
            &hook("w2", "kapso", Some("m"), "[\"whatsapp.message.received\"]"),
        )
        .await
        .expect("insert");
        assert_eq!(
            publish_counted(&db, event("e8", received, Some("n")))
                .await
                .0,
            0
        );
        assert_eq!(
            publish_counted(&db, event("e9", received, Some("m")))
                .await
                .0,
            1
        );
        assert_eq!(
            publish_counted(&db, event("e10", received, None)).await,
            (0, 0)
        );

        // Deleted in a transaction that rolls back: the webhook is still there.
        let mut tx = db.writer().begin().await.expect("begin");
        crate::sql::query("DELETE FROM webhooks WHERE id = 'w2'")
            .execute(&mut *tx)
            .await
            .expect("delete");
        assert_eq!(
            publish(&mut tx, event("e11", received, Some("m")), 1)
                .await
                .expect("in tx"),
            0
        );
        tx.rollback().await.expect("rollback");
        assert_eq!(
            publish_counted(&db, event("e12", received, Some("m")))
                .await
                .0,
            1
        );
        // The same inside a savepoint (a group-commit unit that failed).
        let mut tx = db.writer().begin().await.expect("begin");
        let mut unit = tx.begin().await.expect("savepoint");
        crate::sql::query("DELETE FROM webhooks WHERE id = 'w2'")
            .execute(&mut *unit)
            .await
            .expect("delete");
        let inside = publish(&mut unit, event("e13", received, Some("m")), 1).await;
        assert_eq!(inside.expect("in unit"), 0);
        unit.rollback().await.expect("rollback to savepoint");
        let after = publish(&mut tx, event("e14", received, Some("m")), 1).await;
        assert_eq!(after.expect("after"), 1);
        tx.commit().await.expect("commit");

        // Meta's raw payloads reach the number's meta webhook only.
        let raw = |id: &'static str, number: &'static str| {
            let db = db.clone();
            async move {
                let mut conn = db.writer().acquire().await.expect("conn");
                publish_raw(&mut conn, "p", number, id, "{}", 1)
                    .await
                    .expect("raw")
            }
        };
        assert_eq!(raw("r1", "m").await, 0);
        insert(&db, &hook("w3", "meta", Some("m"), "[]"))
            .await
            .expect("insert");
        assert_eq!(raw("r2", "m").await, 1);
        assert_eq!(raw("r3", "n").await, 0);
        assert!(delete(&db, "p", "w3").await.expect("delete"));
        assert_eq!(raw("r4", "m").await, 0);
    }

    async fn fired(n: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(50), n)
            .await
            .is_ok()
    }

    /// On SQLite, the commit that made deliveries wakes the delivery loops; a commit that
    /// made none, or a transaction still open, does not.
    #[tokio::test]
    async fn a_commit_that_made_deliveries_wakes_the_delivery_loops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::testing::sqlite(&dir).await;
        crate::testing::project(&db).await;
        insert(
            &db,
            &hook("w1", "kapso", None, "[\"whatsapp.message.sent\"]"),
        )
        .await
        .expect("insert");
        // No subscriber for this event: a commit with nothing to deliver.
        let n = db
            .deliveries_committed()
            .expect("SQLite announces deliveries");
        tokio::pin!(n);
        n.as_mut().enable();
        let mut tx = db.writer().begin().await.expect("begin");
        let made = publish(&mut tx, event("a", "whatsapp.message.read", None), 1).await;
        assert_eq!(made.expect("publish"), 0);
        tx.commit().await.expect("commit");
        assert!(!fired(n.as_mut()).await, "nothing to deliver");

        let n = db
            .deliveries_committed()
            .expect("SQLite announces deliveries");
        tokio::pin!(n);
        n.as_mut().enable();
        let mut tx = db.writer().begin().await.expect("begin");
        let made = publish(&mut tx, event("b", "whatsapp.message.sent", None), 1).await;
        assert_eq!(made.expect("publish"), 1);
        assert!(!fired(n.as_mut()).await, "not before the commit");
        tx.commit().await.expect("commit");
        assert!(fired(n.as_mut()).await, "woken by the commit");

        // Published by a statement of its own: woken at once.
        let n = db
            .deliveries_committed()
            .expect("SQLite announces deliveries");
        tokio::pin!(n);
        n.as_mut().enable();
        let mut conn = db.writer().acquire().await.expect("conn");
        let made = publish(&mut conn, event("c", "whatsapp.message.sent", None), 1).await;
        assert_eq!(made.expect("publish"), 1);
        assert!(
            fired(n.as_mut()).await,
            "woken by the statement's own commit"
        );
    }
}
