//! Applying stored deliveries: each change on its own (validated before its first write), so a malformed
//! change is recorded as an error while its neighbours are applied. Messages dedupe by wamid,
//! statuses by (wamid, status), and statuses only move forward.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chasqui_core::ids::new_id;
use chasqui_core::status::{CONVERSATION_IDLE_MILLIS, MessageStatus};
use chasqui_meta::content;
use chasqui_meta::webhook::{
    Change, Envelope, MessageHead, MessagesValue, StatusHead, TemplateStatusUpdate,
};
use chasqui_store::contacts::{self, Identity};
use chasqui_store::conversations::{self, Activity};
use chasqui_store::events::PendingEvent;
use chasqui_store::messages::{self, Appended, NewMessage};
use chasqui_store::notifier::Change as Noted;
use chasqui_store::{Conn, StoreError, events, jobs, media};
use futures::future::BoxFuture;
use serde_json::Value;

use crate::{App, webhooks};
use sha2::Digest;

/// Deliveries claimed per pass. On SQLite a pass is one unit of a shared transaction: a
/// larger one clears a backlog in fewer commits but makes the sends sharing those commits
/// wait longer (measured: growing passes up to 128 or 512 during a backlog cost `bench send`
/// 15-25 %, for ~10 % more `bench delivery`).
pub const BATCH: i64 = 32;
/// Attempts before a delivery that keeps failing on storage errors is parked as `failed`.
pub const MAX_ATTEMPTS: i64 = 5;
/// Job kind of inbound media downloads.
pub const MEDIA_DOWNLOAD: &str = "media.download";

/// Lease of claimed deliveries; a worker that dies releases them by letting it expire.
const LEASE_MILLIS: i64 = 10_000;

/// Where a change came from: its delivery, its position, its account.
#[derive(Debug, Clone, Copy)]
struct Source<'a> {
    event_id: &'a str,
    /// When the delivery reached us (ms).
    received_at: i64,
    change_index: i64,
    waba_id: &'a str,
}

/// Processes one batch of pending deliveries; returns how many it claimed.
///
/// The deliveries are claimed with a lease in the inbox, their effects committed on the main
/// database, then they are marked processed. A crash between the two commits replays them
/// after the lease, which changes nothing: every effect is idempotent.
///
/// SQLite applies the whole batch as one unit of the group-commit queue: it shares its
/// transaction (and its fsync) with the sends and workflow saves waiting at that moment,
/// instead of taking turns with them for the single writer connection. PostgreSQL runs
/// several workers at once and applies each delivery in its own transaction, so row locks
/// are always taken in one order (contact, conversation, message) and workers cannot
/// deadlock.
pub async fn process_batch(app: &App) -> Result<usize, StoreError> {
    let (claimed, noted) = crate::realtime::collecting(apply_batch(app)).await;
    // Changes of a group that rolled back only make an inbox read again: harmless.
    app.publish_changes(noted).await;
    let (claimed, shared) = claimed?;
    app.publish_changes(shared).await;
    Ok(claimed)
}

/// Rows deleted per statement by [`prune_processed`], so ingest never waits long for the
/// inbox's writer.
const PRUNE_CHUNK: i64 = 500;

/// Deletes the processed deliveries older than the retention setting (none when it keeps
/// them forever); returns how many went. Messages and statuses stay: only Meta's raw bodies
/// go. Pending and failed deliveries are kept whatever their age.
pub async fn prune_processed(app: &App) -> Result<u64, StoreError> {
    let Some(retention) = app.settings().inbound_retention_ms else {
        return Ok(0);
    };
    let before = chasqui_core::ids::v7_floor(app.now() - retention);
    let mut deleted = 0;
    loop {
        let n = events::delete_processed_before(app.db(), &before, PRUNE_CHUNK).await?;
        deleted += n;
        if n < PRUNE_CHUNK as u64 {
            return Ok(deleted);
        }
        tokio::task::yield_now().await;
    }
}

/// What applying a batch came to.
struct Applied {
    /// Applied deliveries, with the errors of their unusable parts.
    done: Vec<(String, Option<String>)>,
    /// The delivery whose storage error stopped the batch, if any.
    failed: Option<(String, StoreError)>,
}

/// Claims and applies a batch and records the outcome in the inbox; returns how many were
/// claimed and, on SQLite, the changes the shared unit noted (published once committed).
async fn apply_batch(app: &App) -> Result<(usize, Vec<Noted>), StoreError> {
    let db = app.db();
    let pending = events::claim(db, BATCH, app.now(), LEASE_MILLIS).await?;
    if pending.is_empty() {
        return Ok((0, Vec::new()));
    }
    let now = app.now();
    let (outcome, changes) = match db.backend() {
        chasqui_store::Backend::Sqlite => apply_shared(app, &pending, now).await?,
        chasqui_store::Backend::Postgres => {
            (apply_one_by_one(app, &pending, now).await?, Vec::new())
        }
    };
    let Applied { done, failed } = outcome;
    // Every delivery neither applied nor failed goes back to the queue.
    let applied: HashSet<&str> = done.iter().map(|(id, _)| id.as_str()).collect();
    let mut unclaimed: Vec<String> = pending
        .iter()
        .filter(|e| !applied.contains(e.id.as_str()))
        .map(|e| e.id.clone())
        .collect();
    if let Some((id, error)) = failed {
        if error.is_retryable_conflict() {
            // Concurrent transactions collided: nobody's fault, retry without an attempt.
            tracing::debug!(error = %error, "processing conflicted; retrying");
        } else {
            tracing::warn!(event_id = %id, error = %error, "inbound event failed; will retry");
            events::record_failure(db, &id, &error.to_string(), MAX_ATTEMPTS).await?;
            unclaimed.retain(|e| *e != id);
        }
    }
    if !done.is_empty() {
        events::mark_processed(db, &done, now).await?;
        app.wake_workers();
    }
    if !unclaimed.is_empty() {
        events::release(db, &unclaimed).await?;
    }
    Ok((pending.len(), changes))
}

/// The applied deliveries of a shared unit and the changes it noted.
type Shared = (Vec<(String, Option<String>)>, Vec<Noted>);

/// SQLite: the batch as one group-commit unit. A storage error rolls the whole unit back (its
/// neighbours in the transaction are unaffected) and names the delivery that caused it.
async fn apply_shared(
    app: &App,
    pending: &[PendingEvent],
    now: i64,
) -> Result<(Applied, Vec<Noted>), StoreError> {
    let culprit: Arc<Mutex<Option<String>>> = Arc::default();
    let (unit_app, slot) = (app.clone(), culprit.clone());
    let batch = pending.to_vec();
    let result = app
        .writes()
        .run(
            move |conn: &mut Conn| -> BoxFuture<'_, Result<Shared, StoreError>> {
                Box::pin(async move {
                    let (applied, changes) =
                        crate::realtime::collecting(apply_group(&unit_app, conn, &batch, now))
                            .await;
                    match applied {
                        Ok(done) => Ok((done, changes)),
                        Err((id, error)) => {
                            if let Ok(mut slot) = slot.lock() {
                                *slot = Some(id);
                            }
                            Err(error)
                        }
                    }
                })
            },
        )
        .await;
    match result {
        Ok((done, changes)) => Ok((Applied { done, failed: None }, changes)),
        Err(error) => {
            let id = culprit.lock().ok().and_then(|mut slot| slot.take());
            match id {
                Some(id) => Ok((
                    Applied {
                        done: Vec::new(),
                        failed: Some((id, error)),
                    },
                    Vec::new(),
                )),
                // The shared commit failed: the leases expire and the batch runs again.
                None => Err(error),
            }
        }
    }
}

/// PostgreSQL: one delivery per transaction, in order, stopping at the first storage error.
async fn apply_one_by_one(
    app: &App,
    pending: &[PendingEvent],
    now: i64,
) -> Result<Applied, StoreError> {
    let mut done = Vec::with_capacity(pending.len());
    for event in pending {
        let mut tx = app.db().writer().begin().await?;
        match apply_group(app, &mut tx, std::slice::from_ref(event), now).await {
            Ok(applied) => {
                tx.commit().await?;
                done.extend(applied);
            }
            Err((id, error)) => {
                tx.rollback().await?;
                return Ok(Applied {
                    done,
                    failed: Some((id, error)),
                });
            }
        }
    }
    Ok(Applied { done, failed: None })
}

/// Applies `group` in the caller's transaction; on a storage error returns the id of the
/// delivery that caused it (the caller rolls back).
async fn apply_group(
    app: &App,
    conn: &mut Conn,
    group: &[PendingEvent],
    now: i64,
) -> Result<Vec<(String, Option<String>)>, (String, StoreError)> {
    let mut applied = Vec::with_capacity(group.len());
    for event in group {
        match apply_event(app, conn, event, now).await {
            Ok(errors) => applied.push((event.id.clone(), errors)),
            Err(e) => return Err((event.id.clone(), e)),
        }
    }
    Ok(applied)
}

/// Applies one delivery inside the caller's transaction; returns the errors of the changes
/// or items that could not be applied (JSON), if any.
async fn apply_event(
    app: &App,
    conn: &mut Conn,
    event: &PendingEvent,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let (id, body) = (event.id.as_str(), event.body.as_str());
    forward_raw(app, conn, body, now).await?;
    let mut errors: Vec<String> = Vec::new();
    match Envelope::parse(body.as_bytes()) {
        Err(e) => errors.push(format!("envelope: {e}")),
        Ok(envelope) => {
            let mut change_index = 0i64;
            for (ei, entry) in envelope.entry.iter().enumerate() {
                for (ci, raw) in entry.changes.iter().enumerate() {
                    let source = Source {
                        event_id: id,
                        received_at: event.received_at,
                        change_index,
                        waba_id: &entry.id,
                    };
                    change_index += 1;
                    // Every check that can reject a change runs before its first write, so a
                    // rejected change leaves nothing behind; a storage error aborts the batch.
                    let outcome = match Change::parse(raw) {
                        Err(e) => Err(e.to_string()),
                        Ok(change) => apply_change(app, conn, source, raw, change, now).await?,
                    };
                    match outcome {
                        Ok(item_errors) => errors.extend(
                            item_errors
                                .into_iter()
                                .map(|e| format!("entry {ei} change {ci}: {e}")),
                        ),
                        Err(e) => errors.push(format!("entry {ei} change {ci}: {e}")),
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        return Ok(None);
    }
    tracing::warn!(event_id = %id, errors = ?errors, "parts of an inbound event were not applied");
    Ok(Some(serde_json::to_string(&errors).unwrap_or_default()))
}

/// Queues Meta's delivery, as received, for the `meta` webhooks of the numbers it concerns:
/// the numbers named in its changes, or for account-level changes every number of the
/// account.
async fn forward_raw(app: &App, conn: &mut Conn, body: &str, now: i64) -> Result<(), StoreError> {
    if !chasqui_store::webhooks::may_forward_raw(conn).await? {
        return Ok(());
    }
    let Ok(routing) = chasqui_meta::webhook::Routing::parse(body.as_bytes()) else {
        return Ok(());
    };
    let (numbers, wabas) = routing.addressees();
    let (by_number, by_waba) = app.directory().routes(&numbers, &wabas, false).await?;
    let targets = if numbers.is_empty() {
        by_waba
    } else {
        by_number
    };
    if targets.is_empty() {
        return Ok(());
    }
    let event_id = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    for route in targets {
        chasqui_store::webhooks::publish_raw(
            conn,
            &route.project_id,
            &route.phone_number_id,
            &event_id,
            body,
            now,
        )
        .await?;
    }
    Ok(())
}

/// `Ok(Ok(errors))`: applied, with per-item problems; `Ok(Err(_))`: the change is unusable.
async fn apply_change(
    app: &App,
    conn: &mut Conn,
    source: Source<'_>,
    raw: &Value,
    change: Change,
    now: i64,
) -> Result<Result<Vec<String>, String>, StoreError> {
    let waba_id = source.waba_id;
    match change {
        Change::Messages(value) => apply_messages(app, conn, source, value, now).await,
        Change::TemplateStatus(update) => {
            apply_template_status(app, conn, source, raw, &update, now).await
        }
        Change::Account { field, value } => {
            let routes = waba_routes(app, waba_id).await?;
            if routes.is_empty() {
                return Ok(Err(format!("no phone number of account {waba_id}")));
            }
            record_account_event(conn, source, &routes, None, &field, &value, now).await?;
            Ok(Ok(Vec::new()))
        }
    }
}

async fn waba_routes(app: &App, waba_id: &str) -> Result<Vec<String>, StoreError> {
    let (_, routes) = app
        .directory()
        .routes(&[], &[waba_id.to_owned()], false)
        .await?;
    let mut projects: Vec<String> = routes.iter().map(|r| r.project_id.clone()).collect();
    projects.sort();
    projects.dedup();
    Ok(projects)
}

async fn record_account_event(
    conn: &mut Conn,
    source: Source<'_>,
    projects: &[String],
    phone_number_id: Option<&str>,
    field: &str,
    value: &Value,
    now: i64,
) -> Result<(), StoreError> {
    let value = value.to_string();
    for project_id in projects {
        let event = chasqui_store::accounts::AccountEvent {
            id: &new_id(),
            project_id,
            business_account_id: source.waba_id,
            phone_number_id,
            field,
            value: &value,
            source_event_id: source.event_id,
            change_index: source.change_index,
        };
        chasqui_store::accounts::insert_event(conn, event, now).await?;
    }
    Ok(())
}

async fn apply_template_status(
    app: &App,
    conn: &mut Conn,
    source: Source<'_>,
    raw: &Value,
    update: &TemplateStatusUpdate,
    now: i64,
) -> Result<Result<Vec<String>, String>, StoreError> {
    let waba_id = source.waba_id;
    let projects = waba_routes(app, waba_id).await?;
    if projects.is_empty() {
        return Ok(Err(format!("no phone number of account {waba_id}")));
    }
    let template_id = match &update.message_template_id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for project_id in &projects {
        chasqui_store::accounts::upsert_template_status(
            conn,
            &new_id(),
            project_id,
            waba_id,
            &template_id,
            update.message_template_name.as_deref(),
            update.message_template_language.as_deref(),
            raw.pointer("/value/message_template_category")
                .and_then(Value::as_str),
            &update.event,
            update.reason.as_deref(),
            now,
        )
        .await?;
    }
    let value = raw.get("value").cloned().unwrap_or(Value::Null);
    record_account_event(
        conn,
        source,
        &projects,
        None,
        "message_template_status_update",
        &value,
        now,
    )
    .await?;
    Ok(Ok(Vec::new()))
}

async fn apply_messages(
    app: &App,
    conn: &mut Conn,
    source: Source<'_>,
    value: MessagesValue,
    now: i64,
) -> Result<Result<Vec<String>, String>, StoreError> {
    let pnid = value.metadata.phone_number_id.clone();
    let Some(route) = app.directory().number(&pnid).await? else {
        return Ok(Err(format!("unknown phone_number_id {pnid}")));
    };
    let project_id = route.project_id.clone();
    let mut errors = Vec::new();

    // Profiles by wa_id and by user id, to name the senders.
    let mut profiles: HashMap<String, Identity> = HashMap::new();
    for c in &value.contacts {
        let identity = Identity {
            wa_id: c.wa_id.clone(),
            user_id: c.user_id.clone(),
            profile_name: c.profile.as_ref().and_then(|p| p.name.clone()),
        };
        if let Some(w) = &c.wa_id {
            profiles.insert(w.clone(), identity.clone());
        }
        if let Some(u) = &c.user_id {
            profiles.insert(u.clone(), identity);
        }
    }

    for (i, message) in value.messages.iter().enumerate() {
        let head = match MessageHead::parse(message) {
            Ok(h) => h,
            Err(e) => {
                errors.push(format!("message {i}: {e}"));
                continue;
            }
        };
        let identity = head
            .from
            .as_ref()
            .or(head.from_user_id.as_ref())
            .and_then(|k| profiles.get(k).cloned())
            .map(|mut p| {
                p.wa_id = p.wa_id.or_else(|| head.from.clone());
                p
            })
            .unwrap_or(Identity {
                wa_id: head.from.clone(),
                user_id: head.from_user_id.clone(),
                profile_name: None,
            });
        let order = format!("{}.{i:04}", source.event_id);
        let sent_at = inbound_sent_at(head.timestamp, source.received_at);
        store_inbound(
            conn,
            &project_id,
            &pnid,
            message,
            &head,
            &identity,
            &order,
            sent_at,
            now,
        )
        .await?;
    }

    for (i, status) in value.statuses.iter().enumerate() {
        let head = match StatusHead::parse(status) {
            Ok(h) => h,
            Err(e) => {
                errors.push(format!("status {i}: {e}"));
                continue;
            }
        };
        store_status(conn, &project_id, &pnid, status, &head, &profiles, now).await?;
    }

    if !value.errors.is_empty() {
        let errors_value = Value::Array(value.errors.clone());
        record_account_event(
            conn,
            source,
            std::slice::from_ref(&project_id),
            Some(&pnid),
            "messages.errors",
            &errors_value,
            now,
        )
        .await?;
    }
    Ok(Ok(errors))
}

/// When an inbound message was sent, in ms. Meta stamps it to the second, our sends are
/// stamped to the millisecond: a reply sent 300 ms into a second and the customer's answer
/// 800 ms into it would both read that second, and the answer would sort first. Within its
/// second, the moment the delivery reached us places it; a delivery that arrives a second or
/// more late goes last in its second (so a burst keeps Meta's order); one stamped ahead of
/// our clock goes first.
fn inbound_sent_at(timestamp_secs: i64, received_at: i64) -> i64 {
    let start = timestamp_secs.saturating_mul(1000);
    received_at.clamp(start, start.saturating_add(999))
}

#[allow(clippy::too_many_arguments)]
async fn store_inbound(
    conn: &mut Conn,
    project_id: &str,
    pnid: &str,
    message: &Value,
    head: &MessageHead,
    identity: &Identity,
    order: &str,
    sent_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    if messages::exists(conn, pnid, &head.id).await? {
        return Ok(());
    }
    let contact_id = contacts::upsert(conn, project_id, identity, &new_id(), now).await?;
    let thread = conversations::Thread {
        project_id,
        phone_number_id: pnid,
        contact_id: &contact_id,
    };
    let (conversation_id, opened) = conversations::current(
        conn,
        thread,
        &new_id(),
        sent_at,
        CONVERSATION_IDLE_MILLIS,
        now,
    )
    .await?;
    let media_object = content::media(message);
    let mut media_id = None;
    if let Some(m) = media_object.filter(|m| m.get("id").is_some()) {
        let record = media::Media {
            id: new_id(),
            project_id: project_id.to_owned(),
            phone_number_id: pnid.to_owned(),
            meta_media_id: m.get("id").map(json_text).unwrap_or_default(),
            mime_type: m
                .get("mime_type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            sha256: m.get("sha256").and_then(Value::as_str).map(str::to_owned),
            file_size: None,
            filename: m.get("filename").and_then(Value::as_str).map(str::to_owned),
            storage_path: None,
            status: "pending".into(),
            error: None,
        };
        let (id, fresh) = media::record(conn, &record, now).await?;
        if fresh {
            let payload = serde_json::json!({ "media_id": id }).to_string();
            jobs::enqueue(conn, &new_id(), MEDIA_DOWNLOAD, &payload, now, 8, now).await?;
        }
        media_id = Some(id);
    }
    let text = content::render(message);
    let message_id = new_id();
    let contact_id_for_flows = contact_id.clone();
    let inserted = messages::insert(
        conn,
        &NewMessage {
            id: message_id.clone(),
            project_id: project_id.to_owned(),
            phone_number_id: pnid.to_owned(),
            conversation_id: Some(conversation_id.clone()),
            contact_id: Some(contact_id),
            wamid: head.id.clone(),
            direction: "inbound".into(),
            message_type: head.kind.clone(),
            status: MessageStatus::Received.as_str().into(),
            status_rank: MessageStatus::Received.rank(),
            body: message.to_string(),
            content: text.clone(),
            has_media: media_object.is_some(),
            media_id,
            sent_at,
            created_at: now,
        },
    )
    .await?;
    if inserted {
        let activity = Activity {
            wamid: &head.id,
            message_type: &head.kind,
            text: &text,
            at: sent_at,
            inbound: true,
            order,
        };
        conversations::record_activity(conn, &conversation_id, &activity, now).await?;
        if opened {
            webhooks::publish_conversation(
                conn,
                project_id,
                pnid,
                "whatsapp.conversation.created",
                &conversation_id,
                now,
            )
            .await?;
        }
        let event = webhooks::MessageEvent {
            project_id,
            phone_number_id: pnid,
            event_type: "whatsapp.message.received",
            wamid: &head.id,
            conversation_id: Some(&conversation_id),
            is_new_conversation: opened,
            order: Some(order),
        };
        webhooks::publish_message(conn, event, now).await?;
        let input = crate::executions::route::inbound_input(message, head, identity, &text);
        let offer = chasqui_store::executions::Input {
            id: new_id(),
            project_id: project_id.to_owned(),
            phone_number_id: pnid.to_owned(),
            contact_id: contact_id_for_flows,
            conversation_id: Some(conversation_id.clone()),
            message_id: Some(message_id),
            kind: "message".into(),
            input: input.to_string(),
            ord: order.to_owned(),
            received_at: now,
            execution_id: None,
        };
        chasqui_store::executions::offer_message(conn, &offer).await?;
    }
    crate::realtime::note(
        project_id,
        "message",
        pnid,
        Some(&conversation_id),
        Some(&head.id),
    );
    Ok(())
}

async fn store_status(
    conn: &mut Conn,
    project_id: &str,
    pnid: &str,
    raw: &Value,
    head: &StatusHead,
    profiles: &HashMap<String, Identity>,
    now: i64,
) -> Result<(), StoreError> {
    let status_at = head.timestamp.saturating_mul(1000);
    let raw_text = raw.to_string();
    let record = messages::StatusRecord {
        id: &new_id(),
        phone_number_id: pnid,
        wamid: &head.id,
        status: &head.status,
        status_at,
        raw: &raw_text,
    };
    let parsed = head.status.parse::<MessageStatus>().ok();
    // Usually the message is ours: the status joins its history in one statement.
    let mut appended = messages::append_status(conn, record, now).await?;
    if appended == Appended::NoMessage {
        // A send may be taking this wamid right now: wait for it, then try again.
        messages::lock_wamid(conn, pnid, &head.id).await?;
        appended = messages::append_status(conn, record, now).await?;
    }
    // A workflow send whose node died before Meta's answer names itself here.
    if appended == Appended::NoMessage
        && let Some(ours) = raw
            .get("biz_opaque_callback_data")
            .and_then(Value::as_str)
            .and_then(|d| d.strip_prefix(crate::executions::CALLBACK_PREFIX))
        && messages::adopt_wamid(conn, ours, pnid, &head.id, now).await?
    {
        appended = messages::append_status(conn, record, now).await?;
    }
    if appended == Appended::NoMessage {
        // A message sent outside Chasqui (or before its send was recorded): keep a stub so
        // its statuses have somewhere to live.
        let key = head
            .recipient_id
            .as_ref()
            .or(head.recipient_user_id.as_ref());
        let identity = key
            .and_then(|k| profiles.get(k).cloned())
            .unwrap_or(Identity {
                wa_id: head.recipient_id.clone(),
                user_id: head.recipient_user_id.clone(),
                profile_name: None,
            });
        let (contact_id, conversation_id) = if identity.key().is_some() {
            let contact_id = contacts::upsert(conn, project_id, &identity, &new_id(), now).await?;
            let thread = conversations::Thread {
                project_id,
                phone_number_id: pnid,
                contact_id: &contact_id,
            };
            let (conversation_id, _) = conversations::current(
                conn,
                thread,
                &new_id(),
                status_at,
                CONVERSATION_IDLE_MILLIS,
                now,
            )
            .await?;
            (Some(contact_id), Some(conversation_id))
        } else {
            (None, None)
        };
        let status = parsed.unwrap_or(MessageStatus::Sent);
        let body = serde_json::json!({ "id": head.id, "to": head.recipient_id, "type": "unknown" });
        messages::insert(
            conn,
            &NewMessage {
                id: new_id(),
                project_id: project_id.to_owned(),
                phone_number_id: pnid.to_owned(),
                conversation_id,
                contact_id,
                wamid: head.id.clone(),
                direction: "outbound".into(),
                message_type: "unknown".into(),
                status: status.as_str().into(),
                status_rank: status.rank(),
                body: body.to_string(),
                content: String::new(),
                has_media: false,
                media_id: None,
                sent_at: status_at,
                created_at: now,
            },
        )
        .await?;
        appended = messages::append_status(conn, record, now).await?;
    }
    if appended != Appended::Fresh {
        // Meta repeated a status the message already has: nothing changes.
        return Ok(());
    }
    crate::realtime::note(project_id, "status", pnid, None, Some(&head.id));
    if let Some(status) = parsed {
        messages::advance_status(conn, pnid, &head.id, status.as_str(), status.rank(), now).await?;
        if matches!(
            status,
            MessageStatus::Sent
                | MessageStatus::Delivered
                | MessageStatus::Read
                | MessageStatus::Failed
        ) {
            let event_type = format!("whatsapp.message.{}", status.as_str());
            let event = webhooks::MessageEvent {
                project_id,
                phone_number_id: pnid,
                event_type: &event_type,
                wamid: &head.id,
                conversation_id: None,
                is_new_conversation: false,
                order: None,
            };
            webhooks::publish_message(conn, event, now).await?;
        }
    }
    Ok(())
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::inbound_sent_at;

    #[test]
    fn an_inbound_message_is_placed_within_its_second() {
        let second = 1_780_000_000;
        let start = second * 1000;
        assert_eq!(inbound_sent_at(second, start + 640), start + 640, "on time");
        assert_eq!(inbound_sent_at(second, start), start);
        assert_eq!(
            inbound_sent_at(second, start + 5_000),
            start + 999,
            "late: last"
        );
        assert_eq!(
            inbound_sent_at(second, start - 2_000),
            start,
            "our clock behind: first"
        );
        // Later arrivals never sort before earlier ones of the same second.
        let mut last = i64::MIN;
        for received in (start - 500..start + 2_000).step_by(50) {
            let at = inbound_sent_at(second, received);
            assert!(at >= last && (start..start + 1000).contains(&at));
            last = at;
        }
    }
}
