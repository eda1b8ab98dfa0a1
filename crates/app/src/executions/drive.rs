//! Driving executions: claim the due ones, run the interpreter, and perform its actions.
//!
//! A send is recorded first (the pending message and the execution's effect, in one
//! transaction), then Meta is called, then the answer is stored with the advanced state, in
//! the save where the execution next stops (its wait, its end, or before its next send). If
//! the node dies in between, the execution is claimed again once its lease expires and the
//! send is reconciled: Meta's status webhook names our message in `biz_opaque_callback_data`,
//! so a send that reached Meta has its wamid by then and is not repeated; one that did not is
//! sent again. Waits are rows (`wait_until`, `due_at`), never in-memory timers.

use std::collections::HashMap;

use chasqui_core::ids::new_id;
use chasqui_core::status::CONVERSATION_IDLE_MILLIS;
use chasqui_engine::{Action, Machine, Resume, State, World};
use chasqui_meta::graph::GraphClient;
use chasqui_store::executions::{self, Event, Execution, Input};
use chasqui_store::messages::{self, NewMessage};
use chasqui_store::{Conn, StoreError, conversations};
use serde_json::{Value, json};

use super::{CALLBACK_PREFIX, Effect, Loaded, load_frames};
use crate::messaging::Outcome;
use crate::{App, AppError};

/// Executions claimed per pass.
const BATCH: usize = 64;
/// Executions driven at once by one node: each runs as its own task, so a slow step (a
/// webhook node waiting for its 10 s timeout) never holds the others back. Most of a step
/// is waiting (for a group commit, for Meta), so many run at once.
const SLOTS: usize = 256;
/// Attempts of a send whose outcome stays unknown before the step fails.
const SEND_ATTEMPTS: u32 = 5;

/// Claims due executions for the free slots of `running` and drives each in its own task
/// (which wakes the workers when done); returns how many were claimed.
pub async fn run_due(app: &App, running: &mut tokio::task::JoinSet<()>) -> Result<usize, AppError> {
    while running.try_join_next().is_some() {}
    let free = SLOTS.saturating_sub(running.len()).min(BATCH);
    if free == 0 {
        return Ok(0);
    }
    let now = app.now();
    let lease = app.settings().workflow_step_lease_ms;
    let claimed = executions::claim_due(app.db(), now, lease, free as i64).await?;
    let n = claimed.len();
    for e in claimed {
        let app = app.clone();
        running.spawn(async move {
            let id = e.id.clone();
            match drive(&app, e).await {
                Ok(()) => {}
                // Someone else saved it meanwhile (a person through the API, or a node that
                // took it over): it is theirs now; leave it alone.
                Err(AppError::Conflict(why)) => {
                    tracing::debug!(execution_id = %id, %why, "execution taken over");
                }
                Err(err) => {
                tracing::warn!(execution_id = %id, error = %err, "workflow step failed; retrying shortly");
                let retry = app.now() + 5_000;
                if let Err(e) = executions::retry_later(app.db(), &id, retry).await {
                    tracing::error!(execution_id = %id, error = %e, "releasing an execution failed; its lease will expire");
                }
                }
            }
            app.wake_workers();
        });
    }
    Ok(n)
}

/// Moves the interpreter's state, position and new log entries into `e` (numbering the
/// entries) and returns them for [`store`].
pub(crate) fn prepare(e: &mut Execution, machine: &mut Machine, now: i64) -> Vec<Event> {
    let events: Vec<Event> = machine
        .log
        .drain(..)
        .enumerate()
        .map(|(i, l)| Event {
            id: new_id(),
            seq: e.event_seq + 1 + i as i64,
            event_type: l.event_type.into(),
            node_id: l.node,
            direction: l.direction.map(str::to_owned),
            edge_label: l.edge_label,
            payload: l.payload.to_string(),
            created_at: now,
        })
        .collect();
    e.event_seq += events.len() as i64;
    if !events.is_empty() {
        e.last_event_at = now;
    }
    e.state = serde_json::to_string(&machine.state).unwrap_or_default();
    e.current_node = machine.node().map(str::to_owned);
    e.updated_at = now;
    events
}

/// Saves a prepared execution (compare-and-swap on its revision) with its log entries, frees
/// the queue of one that stopped driving its thread, and works out when it is due next: a
/// waiting execution when its timeout passes or a queued input is ready. Returns `None` if
/// someone else saved it meanwhile (nothing written), else the new `due_at`.
pub(crate) async fn store(
    conn: &mut Conn,
    e: &Execution,
    events: &[Event],
    now: i64,
) -> Result<Option<Option<i64>>, StoreError> {
    // When it is due next. A waiting execution is due at its timeout, or sooner when a
    // queued input is ready: the queue is read after the save has locked the row, so an
    // input routed meanwhile is either seen here or wakes the execution once this commits.
    let mut due = match e.status.as_str() {
        "running" => match &e.effect {
            Some(_) => e.lease_until.or(Some(now)),
            None => Some(now),
        },
        "waiting" => e.wait_until,
        _ => None,
    };
    if !executions::save(conn, e, due).await? {
        return Ok(None);
    }
    executions::append_events(conn, &e.id, events).await?;
    match e.status.as_str() {
        "ended" | "failed" => executions::release_queue(conn, &e.id, true).await?,
        "handoff" => executions::release_queue(conn, &e.id, false).await?,
        "waiting" => {
            let pending = executions::pending(conn, &e.id).await?;
            if let Some(last) = pending.last() {
                let ready = last.received_at + debounce_for(conn, e).await?;
                due = Some(due.map_or(ready, |timeout| timeout.min(ready)));
                executions::set_due(conn, &e.id, due).await?;
            }
        }
        _ => {}
    }
    Ok(Some(due))
}

/// [`prepare`] and [`store`] in the caller's transaction; false if someone else saved the
/// execution meanwhile.
pub(crate) async fn persist(
    conn: &mut Conn,
    e: &mut Execution,
    machine: &mut Machine,
    now: i64,
) -> Result<bool, StoreError> {
    let events = prepare(e, machine, now);
    match store(conn, e, &events, now).await? {
        None => Ok(false),
        Some(due) => {
            e.revision += 1;
            e.due_at = due;
            Ok(true)
        }
    }
}

async fn debounce_for(conn: &mut Conn, e: &Execution) -> Result<i64, StoreError> {
    Ok(chasqui_store::workflows::debounce_seconds(conn, &e.workflow_id).await? * 1000)
}

/// Publishes `workflow.execution.handoff` (with `{"handoff": {reason, source}}`) or
/// `workflow.execution.failed` (with `{"error": {message}}`) for `e`, in the caller's
/// transaction, in Kapso's shape.
pub(crate) async fn publish(
    conn: &mut Conn,
    e: &Execution,
    event_type: &str,
    detail: Value,
    now: i64,
) -> Result<(), StoreError> {
    let mut payload = json!({
        "event": event_type,
        "occurred_at": chasqui_core::clock::Timestamp(now).to_rfc3339(),
        "project_id": e.project_id,
        "workflow_id": e.workflow_id,
        "workflow_execution_id": e.id,
        "status": e.status,
        "tracking_id": e.tracking_id,
        "channel": if e.trigger_type == "inbound_message" { "whatsapp" } else { "api" },
        "whatsapp_conversation_id": e.conversation_id,
        "phone_number_id": e.phone_number_id,
        "current_step": e.current_node,
    });
    if let (Value::Object(p), Value::Object(d)) = (&mut payload, detail) {
        p.extend(d);
    }
    let key = format!("{}:{}", e.id, e.event_seq);
    crate::webhooks::publish_project(conn, &e.project_id, event_type, &key, &payload, now).await?;
    if event_type == "workflow.execution.failed" {
        notice_failure(conn, e, &payload, now).await?;
    }
    Ok(())
}

/// Failure notices (emailed to the members when SMTP is set) come at most once per
/// workflow in this window; every failure stays in the executions API and the webhooks.
const FAILURE_NOTICE_WINDOW_MILLIS: i64 = 15 * 60_000;

/// Records a `workflow.execution.failed` notice for the project, unless this workflow had
/// one within the window.
async fn notice_failure(
    conn: &mut Conn,
    e: &Execution,
    payload: &Value,
    now: i64,
) -> Result<(), StoreError> {
    let message = payload["error"]["message"]
        .as_str()
        .unwrap_or("unknown error");
    let short: String = message.chars().take(120).collect();
    let notice = chasqui_store::notifications::Notification {
        id: chasqui_core::ids::new_id(),
        project_id: e.project_id.clone(),
        kind: "workflow.execution.failed".into(),
        subject: format!("A run of workflow {} failed: {short}", e.workflow_id),
        details: payload.to_string(),
        created_at: now,
        emailed_at: None,
        email_attempts: 0,
        email_error: None,
    };
    chasqui_store::notifications::insert_unless_recent(
        conn,
        &notice,
        &e.workflow_id,
        now - FAILURE_NOTICE_WINDOW_MILLIS,
    )
    .await?;
    Ok(())
}

/// One execution being driven by this node.
struct Run<'a> {
    app: &'a App,
    e: Execution,
    machine: Machine,
    defs: Loaded,
    /// The project's environment variables, read only once a definition of this run
    /// names one (`env_read`).
    env: HashMap<String, String>,
    env_read: bool,
    /// Inputs consumed since the last save (deleted with it).
    consumed: Vec<String>,
    /// The workflow's debounce window, read when the first input needs it.
    debounce_ms: Option<i64>,
    /// The status as last stored (inboxes hear when it changes).
    saved_status: String,
    /// Meta's answer to the last send, not stored yet: it goes with the next save (the
    /// wait, the end, or a save of its own before the next send), so a send costs two
    /// commits instead of three. Until then the recorded intent stands, and a crash
    /// reconciles it as before.
    answer: Option<Answer>,
}

/// Meta's answer to a workflow send, to be stored with the execution's next save.
#[derive(Clone)]
struct Answer {
    phone_number_id: String,
    message_id: String,
    outcome: Outcome,
}

async fn drive(app: &App, e: Execution) -> Result<(), AppError> {
    if !["running", "waiting"].contains(&e.status.as_str()) {
        executions::release(app.db(), &e.id, e.revision, None).await?;
        return Ok(());
    }
    let state: State = serde_json::from_str(&e.state)
        .map_err(|err| AppError::Internal(format!("execution state: {err}")))?;
    let mut defs = Loaded::new();
    load_frames(app, &state, &mut defs).await?;
    let env_read = defs.values().any(|d| d.uses_env());
    let env = if env_read {
        crate::env_vars::resolve(app, &e.project_id).await?
    } else {
        HashMap::new()
    };
    let mut run = Run {
        app,
        saved_status: e.status.clone(),
        machine: Machine::new(state, &e.project_id),
        e,
        defs,
        env,
        env_read,
        consumed: Vec::new(),
        debounce_ms: None,
        answer: None,
    };
    let result = run.go().await;
    if let Err(err) = &result
        && !matches!(err, AppError::Conflict(_))
        && run.answer.is_some()
    {
        // Meta's answer is known: store it (with the state so far) before giving up the
        // step, rather than leave the send to reconciliation. (After a conflict the
        // execution is someone else's: they reconcile it.)
        if let Err(e) = run.commit(With::Nothing).await {
            tracing::warn!(execution_id = %run.e.id, error = %e, "storing a send's answer after a failed step failed; it will be reconciled");
        }
    }
    result
}

/// Writes that go with a save of the execution, in the same unit.
#[derive(Clone)]
enum With {
    /// Only the execution.
    Nothing,
    /// A send's intent: this pending message, placed in the thread's current conversation.
    Intent(Box<NewMessage>),
    /// A workflow event to publish (type, details).
    Event(String, Value),
}

/// How a commit ended.
enum Committed {
    /// Saved.
    Saved,
    /// Not saved: another send of the conversation is in flight.
    Busy,
}

/// What happened to an attempted send.
enum Sent {
    /// The machine has the outcome; keep running.
    Continue,
    /// The execution is parked (saved) for now.
    Parked,
}

impl Run<'_> {
    async fn go(&mut self) -> Result<(), AppError> {
        let now = self.app.now();
        if let Some(effect) = self.e.effect.clone() {
            let effect: Effect = serde_json::from_str(&effect)
                .map_err(|err| AppError::Internal(format!("execution effect: {err}")))?;
            if let Sent::Parked = self.reconcile(effect).await? {
                return Ok(());
            }
        } else if self.e.status == "waiting" {
            let mut conn = self.app.db().reader().acquire().await?;
            let pending = executions::pending(&mut conn, &self.e.id).await?;
            drop(conn);
            if let Some(resume) = self.take_ready(&pending, now).await? {
                self.e.status = "running".into();
                self.e.waiting_reason = None;
                self.e.wait_until = None;
                let w = World {
                    defs: &self.defs,
                    env: &self.env,
                };
                self.machine.resume(&w, resume);
            } else if self.e.wait_until.is_some_and(|t| t <= now) {
                self.e.status = "running".into();
                self.e.waiting_reason = None;
                self.e.wait_until = None;
                let w = World {
                    defs: &self.defs,
                    env: &self.env,
                };
                self.machine.resume(&w, Resume::Timeout);
            } else {
                // Woken early (a reply still inside its debounce window): look again later.
                return self.save().await;
            }
        }
        self.run_actions().await
    }

    /// The inputs ready to resume a wait: the first one, or with a debounce window the whole
    /// burst once the window after its last message has passed.
    async fn take_ready(
        &mut self,
        pending: &[Input],
        now: i64,
    ) -> Result<Option<Resume>, AppError> {
        let Some(first) = pending.first() else {
            return Ok(None);
        };
        let debounce_ms = match self.debounce_ms {
            Some(ms) => ms,
            None if first.kind == "api" => 0,
            None => {
                let ms = chasqui_store::workflows::get(
                    self.app.db(),
                    &self.e.project_id,
                    &self.e.workflow_id,
                )
                .await?
                .map_or(0, |w| w.message_debounce_seconds * 1000);
                self.debounce_ms = Some(ms);
                ms
            }
        };
        Ok(self.ready(pending, debounce_ms, now))
    }

    /// [`Run::take_ready`] once the debounce window is known.
    fn ready(&mut self, pending: &[Input], debounce_ms: i64, now: i64) -> Option<Resume> {
        let first = pending.first()?;
        if first.kind == "api" {
            self.consumed.push(first.id.clone());
            let v: Value = serde_json::from_str(&first.input).unwrap_or(Value::Null);
            return Some(Resume::Api {
                data: v.get("data").cloned().unwrap_or(Value::Null),
                variables: v
                    .get("variables")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            });
        }
        if debounce_ms == 0 {
            self.consumed.push(first.id.clone());
            let v: Value = serde_json::from_str(&first.input).unwrap_or(Value::Null);
            return Some(user_input(&v));
        }
        let burst: Vec<&Input> = pending.iter().take_while(|i| i.kind == "message").collect();
        let last = burst.last()?;
        if last.received_at + debounce_ms > now {
            return None;
        }
        let values: Vec<Value> = burst
            .iter()
            .map(|i| serde_json::from_str(&i.input).unwrap_or(Value::Null))
            .collect();
        self.consumed.extend(burst.iter().map(|i| i.id.clone()));
        if values.len() == 1 {
            return Some(user_input(&values[0]));
        }
        let text = values
            .iter()
            .filter_map(|v| v.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n");
        Some(Resume::UserInput {
            text: text.clone(),
            value: Value::String(text),
        })
    }

    async fn run_actions(&mut self) -> Result<(), AppError> {
        loop {
            let action = {
                let w = World {
                    defs: &self.defs,
                    env: &self.env,
                };
                self.machine.run(&w)
            };
            match action {
                Action::Send { node, message } => {
                    if let Sent::Parked = self.send(node, message).await? {
                        return Ok(());
                    }
                }
                Action::Http {
                    request,
                    save_response_to,
                    ..
                } => {
                    self.renew_lease().await?;
                    let result = http(self.app, request).await;
                    let w = World {
                        defs: &self.defs,
                        env: &self.env,
                    };
                    self.machine
                        .effect_done(&w, result, save_response_to.as_deref());
                }
                Action::Call { workflow_id, .. } => {
                    let loaded = self.load_callable(&workflow_id).await?;
                    let w = World {
                        defs: &self.defs,
                        env: &self.env,
                    };
                    self.machine.enter_call(&w, loaded);
                }
                Action::Wait {
                    timeout_seconds, ..
                } => {
                    let now = self.app.now();
                    let mut conn = self.app.db().reader().acquire().await?;
                    let mut pending = executions::pending(&mut conn, &self.e.id).await?;
                    drop(conn);
                    pending.retain(|i| !self.consumed.contains(&i.id));
                    if let Some(resume) = self.take_ready(&pending, now).await? {
                        let w = World {
                            defs: &self.defs,
                            env: &self.env,
                        };
                        self.machine.resume(&w, resume);
                        continue;
                    }
                    self.e.status = "waiting".into();
                    self.e.waiting_reason = Some("user_input".into());
                    self.e.wait_until = timeout_seconds.map(|s| now + s * 1000);
                    return self.save().await;
                }
                Action::Handoff {
                    reason,
                    context_data,
                    node,
                } => {
                    self.e.status = "handoff".into();
                    self.e.waiting_reason = None;
                    self.e.wait_until = None;
                    self.machine.log.push(chasqui_engine::Logged {
                        event_type: "handoff",
                        node: Some(node),
                        edge_label: None,
                        direction: None,
                        payload: json!({"reason": reason, "context_data": context_data}),
                    });
                    let detail = json!({"handoff": {"reason": reason, "context_data": context_data, "source": "action_step"}});
                    return self
                        .finish(Some(("workflow.execution.handoff", detail)))
                        .await;
                }
                Action::End => {
                    self.e.status = "ended".into();
                    self.e.ended_at = Some(self.app.now());
                    self.machine.log.push(chasqui_engine::Logged {
                        event_type: "execution_ended",
                        node: None,
                        edge_label: None,
                        direction: None,
                        payload: Value::Null,
                    });
                    return self.finish(None).await;
                }
                Action::Fail { node, error } => {
                    self.e.status = "failed".into();
                    self.e.ended_at = Some(self.app.now());
                    self.e.error_details = Some(
                        json!({"message": error, "node": node, "failed_at": chasqui_core::clock::Timestamp(self.app.now()).to_rfc3339()})
                            .to_string(),
                    );
                    self.machine.log.push(chasqui_engine::Logged {
                        event_type: "execution_failed",
                        node: node.clone(),
                        edge_label: None,
                        direction: None,
                        payload: json!({"error": error}),
                    });
                    let detail = json!({"error": {"message": error, "node": node}});
                    return self
                        .finish(Some(("workflow.execution.failed", detail)))
                        .await;
                }
            }
        }
    }

    /// Extends this node's lease before a step that may take a while (an HTTP call).
    async fn renew_lease(&mut self) -> Result<(), AppError> {
        if self.answer.is_some() {
            // A slow step follows: store the last send's answer first.
            self.commit(With::Nothing).await?;
        }
        let until = self.app.now() + self.app.settings().workflow_step_lease_ms;
        if !executions::renew_lease(self.app.db(), &self.e.id, self.e.revision, until).await? {
            return Err(AppError::Conflict(format!(
                "execution {} was taken over",
                self.e.id
            )));
        }
        self.e.lease_until = Some(until);
        Ok(())
    }

    /// Saves and releases the execution.
    async fn save(&mut self) -> Result<(), AppError> {
        self.finish(None).await
    }

    /// Saves and releases the execution, publishing `event_type` with it.
    async fn finish(&mut self, event: Option<(&str, Value)>) -> Result<(), AppError> {
        self.e.lease_until = None;
        self.e.effect = None;
        let with = match event {
            Some((t, detail)) => With::Event(t.to_owned(), detail),
            None => With::Nothing,
        };
        self.commit(with).await.map(|_| ())
    }

    /// Saves the execution (state, log, consumed inputs, the last send's answer) together
    /// with `with`, as one unit of the group-commit queue, so that many executions share a
    /// transaction.
    async fn commit(&mut self, with: With) -> Result<Committed, AppError> {
        let now = self.app.now();
        if self.e.lease_until.is_some() {
            // Still ours and still running: every save renews the lease for the next step.
            self.e.lease_until = Some(now + self.app.settings().workflow_step_lease_ms);
        }
        let mut e = self.e.clone();
        let events = prepare(&mut e, &mut self.machine, now);
        let consumed = std::mem::take(&mut self.consumed);
        let answer = self.answer.clone();
        let result = self
            .app
            .write_unit(|| {
                let (mut e, events, consumed, with, answer) = (
                    e.clone(),
                    events.clone(),
                    consumed.clone(),
                    with.clone(),
                    answer.clone(),
                );
                move |conn: &mut Conn| -> futures::future::BoxFuture<
                    '_,
                    Result<(Execution, Committed), StoreError>,
                > {
                    Box::pin(async move {
                        let mut with = with;
                        if let Some(a) = answer {
                            // Meta's answer to the last send (never with an intent: that
                            // send's answer is saved first, see `send`).
                            let conversation_id = e.conversation_id.clone().unwrap_or_default();
                            crate::messaging::record_outcome(
                                conn,
                                &e.project_id,
                                &a.phone_number_id,
                                &a.message_id,
                                &conversation_id,
                                a.outcome,
                                now,
                            )
                            .await?;
                        }
                        if let With::Intent(m) = &mut with {
                            // The send goes in the thread's current conversation, one at a time.
                            let (Some(pnid), Some(contact_id)) =
                                (e.phone_number_id.clone(), e.contact_id.clone())
                            else {
                                return Err(StoreError::Corrupt("a send without a thread".into()));
                            };
                            let (conversation_id, _) = conversations::current(
                                conn,
                                conversations::Thread {
                                    project_id: &e.project_id,
                                    phone_number_id: &pnid,
                                    contact_id: &contact_id,
                                },
                                &new_id(),
                                now,
                                CONVERSATION_IDLE_MILLIS,
                                now,
                            )
                            .await?;
                            if messages::in_flight(conn, &conversation_id).await? {
                                return Ok((e, Committed::Busy));
                            }
                            m.conversation_id = Some(conversation_id.clone());
                            e.conversation_id = Some(conversation_id);
                        }
                        // Consumed inputs go first, so an ending execution does not re-route them.
                        executions::remove(conn, &consumed).await?;
                        let Some(due) = store(conn, &e, &events, now).await? else {
                            return Err(StoreError::Stale(format!("execution {}", e.id)));
                        };
                        match with {
                            With::Nothing => {}
                            With::Intent(m) => messages::start_send(conn, &m).await?,
                            With::Event(t, detail) => publish(conn, &e, &t, detail, now).await?,
                        }
                        e.revision += 1;
                        e.due_at = due;
                        Ok((e, Committed::Saved))
                    })
                }
            })
            .await;
        match result {
            Ok((e, Committed::Saved)) => {
                // Open inboxes hear of the flow's messages and of its status (their badge).
                let kind = match &with {
                    _ if answer.is_some() => Some("message"),
                    With::Intent(_) => Some("message"),
                    _ if e.status != self.saved_status => Some("conversation"),
                    _ => None,
                };
                if let (Some(kind), Some(pnid), Some(_)) = (
                    kind,
                    e.phone_number_id.as_deref(),
                    e.conversation_id.as_ref(),
                ) {
                    let change = chasqui_store::notifier::Change {
                        project_id: e.project_id.clone(),
                        kind: kind.into(),
                        phone_number_id: Some(pnid.to_owned()),
                        conversation_id: e.conversation_id.clone(),
                        wamid: None,
                    };
                    self.app.publish_changes(vec![change]).await;
                }
                self.saved_status = e.status.clone();
                self.e = e;
                self.answer = None;
                Ok(Committed::Saved)
            }
            Ok((_, Committed::Busy)) => Ok(Committed::Busy),
            Err(err) if chasqui_store::projects::is_unique_violation(&err) => Ok(Committed::Busy),
            Err(StoreError::Stale(what)) => {
                Err(AppError::Conflict(format!("{what} changed meanwhile")))
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn load_callable(
        &mut self,
        reference: &str,
    ) -> Result<Result<(String, i64), String>, AppError> {
        let found =
            chasqui_store::workflows::get(self.app.db(), &self.e.project_id, reference).await?;
        let found = match found {
            Some(w) => Some(w),
            None => {
                chasqui_store::workflows::by_slug(self.app.db(), &self.e.project_id, reference)
                    .await?
            }
        };
        let Some(w) = found else {
            return Ok(Err(format!(
                "the called workflow {reference:?} does not exist"
            )));
        };
        if w.status == "archived" {
            return Ok(Err(format!("the called workflow {:?} is archived", w.name)));
        }
        let d = super::definition(self.app, &w.id, w.lock_version).await?;
        if !self.env_read && d.uses_env() {
            self.env = crate::env_vars::resolve(self.app, &self.e.project_id).await?;
            self.env_read = true;
        }
        self.defs.insert((w.id.clone(), w.lock_version), d);
        Ok(Ok((w.id, w.lock_version)))
    }

    /// Performs a send: the intent first, then Meta, then the answer.
    async fn send(&mut self, node: String, message: Value) -> Result<Sent, AppError> {
        let app = self.app;
        let (Some(pnid), Some(wa_id), Some(contact_id)) = (
            self.e.phone_number_id.clone(),
            self.e.wa_id.clone(),
            self.e.contact_id.clone(),
        ) else {
            self.effect_failed(
                "this execution has no WhatsApp recipient: start it with phone_number and phone_number_id".into(),
            );
            return Ok(Sent::Continue);
        };
        let Some(number) =
            chasqui_store::numbers::find(app.db(), &self.e.project_id, &pnid).await?
        else {
            self.effect_failed(format!("phone number {pnid} is no longer connected"));
            return Ok(Sent::Continue);
        };
        let message_id = new_id();
        let mut request = match message {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        request.insert("messaging_product".into(), json!("whatsapp"));
        request.insert("recipient_type".into(), json!("individual"));
        request.insert("to".into(), json!(wa_id));
        request.insert(
            "biz_opaque_callback_data".into(),
            json!(format!("{CALLBACK_PREFIX}{message_id}")),
        );
        self.resolve_template(&number, &mut request).await?;
        let kind = match chasqui_meta::send::validate(&request) {
            Ok(k) => k,
            Err(details) => {
                self.effect_failed(format!("the message is not valid for WhatsApp: {details}"));
                return Ok(Sent::Continue);
            }
        };
        let now = app.now();
        if kind != "template" {
            let last = conversations::last_inbound_at(
                app.db().reader(),
                &self.e.project_id,
                &pnid,
                &wa_id,
            )
            .await?;
            let open = last
                .is_some_and(|t| t + chasqui_core::status::CUSTOMER_SERVICE_WINDOW_MILLIS > now);
            if !open {
                self.effect_failed(
                    "(#131047) Re-engagement message: more than 24 hours have passed since the customer last replied; only a template can be sent".into(),
                );
                return Ok(Sent::Continue);
            }
        }
        let content = chasqui_meta::content::render(&Value::Object(request.clone()));
        let pending = NewMessage {
            id: message_id.clone(),
            project_id: self.e.project_id.clone(),
            phone_number_id: pnid.clone(),
            conversation_id: None,
            contact_id: Some(contact_id.clone()),
            wamid: format!("pending.{message_id}"),
            direction: "outbound".into(),
            message_type: kind.clone(),
            status: chasqui_core::status::MessageStatus::Pending.as_str().into(),
            status_rank: chasqui_core::status::MessageStatus::Pending.rank(),
            body: Value::Object(request.clone()).to_string(),
            content: content.clone(),
            has_media: chasqui_meta::content::MEDIA_TYPES.contains(&kind.as_str()),
            media_id: None,
            sent_at: now,
            created_at: now,
        };
        // The intent: the pending message (in flight) and the effect, with the state so far.
        let effect = Effect::Send {
            message_id: message_id.clone(),
            node,
            started_at: now,
            attempts: 1,
        };
        if self.answer.is_some() {
            // The previous send's answer first, with the state as it was then: if this send
            // must wait for another one in flight, that answer is stored all the same.
            self.commit(With::Nothing).await?;
        }
        let (status, effect_before) = (self.e.status.clone(), self.e.effect.clone());
        self.e.status = "running".into();
        self.e.effect = Some(serde_json::to_string(&effect).unwrap_or_default());
        if let Committed::Busy = self.commit(With::Intent(Box::new(pending))).await? {
            // A proxy send of the same conversation is in flight: try again in a second.
            self.e.status = status;
            self.e.effect = effect_before;
            executions::release(app.db(), &self.e.id, self.e.revision, Some(now + 1_000)).await?;
            return Ok(Sent::Parked);
        }
        self.call_meta(&number, &message_id, request, kind, content)
            .await
    }

    /// Calls Meta for the pending message and records the answer with the advanced state.
    async fn call_meta(
        &mut self,
        number: &chasqui_store::numbers::PhoneNumber,
        message_id: &str,
        request: serde_json::Map<String, Value>,
        kind: String,
        content: String,
    ) -> Result<Sent, AppError> {
        let app = self.app;
        let creds = crate::numbers::credentials(app, number)?;
        let graph = GraphClient::new(app.http().clone(), &app.graph_base_url(number.kind));
        let raw = serde_json::to_vec(&request).unwrap_or_default();
        let answer = graph
            .send_message(&number.phone_number_id, creds.access_token.expose(), raw)
            .await;
        let now = app.now();
        let (status, body) = match answer {
            Ok(found) => found,
            Err(err) => {
                // Unknown whether Meta got it: leave the intent for reconciliation.
                tracing::warn!(execution_id = %self.e.id, error = %err, "workflow send did not complete; it will be reconciled");
                return Ok(Sent::Parked);
            }
        };
        let wamid = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            v.pointer("/messages/0/id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let (outcome, result) = match wamid {
            Some(wamid) if (200..300).contains(&status) => (
                Outcome::Accepted {
                    phone_number_id: number.phone_number_id.clone(),
                    wamid: wamid.clone(),
                    kind,
                    content,
                    at: now,
                },
                Ok(json!({"wamid": wamid, "message_id": message_id})),
            ),
            _ => {
                let text = String::from_utf8_lossy(&body).into_owned();
                let detail = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/error/message")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| text.clone());
                (
                    Outcome::Failed(text),
                    Err(format!("Meta refused the message ({status}): {detail}")),
                )
            }
        };
        {
            let w = World {
                defs: &self.defs,
                env: &self.env,
            };
            self.machine.effect_done(&w, result, None);
        }
        self.e.effect = None;
        self.answer = Some(Answer {
            phone_number_id: number.phone_number_id.clone(),
            message_id: message_id.to_owned(),
            outcome,
        });
        Ok(Sent::Continue)
    }

    /// A send recorded before this node (or another) died: finds out how it ended.
    async fn reconcile(&mut self, effect: Effect) -> Result<Sent, AppError> {
        let Effect::Send {
            message_id,
            node,
            started_at,
            attempts,
        } = effect;
        let app = self.app;
        let now = app.now();
        let mut conn = app.db().reader().acquire().await?;
        let state = messages::send_state(&mut conn, &message_id).await?;
        drop(conn);
        let Some((wamid, status, error)) = state else {
            self.e.effect = None;
            self.effect_failed(format!("the recorded send {message_id} is missing"));
            return Ok(Sent::Continue);
        };
        if !wamid.starts_with("pending.") {
            // Meta took it (its answer was stored, or its status webhook named it).
            self.e.effect = None;
            let w = World {
                defs: &self.defs,
                env: &self.env,
            };
            self.machine.effect_done(
                &w,
                Ok(json!({"wamid": wamid, "message_id": message_id, "reconciled": true})),
                None,
            );
            return Ok(Sent::Continue);
        }
        if status == "failed"
            && error
                .as_deref()
                .is_some_and(|e| e.starts_with("interrupted"))
        {
            // A proxy send gave up on it; nothing says it reached Meta: revive it and resend.
            let rank = chasqui_core::status::MessageStatus::Pending.rank();
            let revived = app
                .write_unit(|| {
                    let id = message_id.clone();
                    move |conn: &mut Conn| -> futures::future::BoxFuture<'_, Result<bool, StoreError>> {
                        Box::pin(async move {
                            messages::revive_interrupted(conn, &id, rank, now).await
                        })
                    }
                })
                .await;
            match revived {
                Ok(true) => {}
                Ok(false) => {
                    return Err(AppError::Conflict(format!(
                        "the interrupted send {message_id} changed meanwhile"
                    )));
                }
                Err(e) if chasqui_store::projects::is_unique_violation(&e) => {
                    executions::release(app.db(), &self.e.id, self.e.revision, Some(now + 1_000))
                        .await?;
                    return Ok(Sent::Parked);
                }
                Err(e) => return Err(e.into()),
            }
        } else if status == "failed" {
            self.e.effect = None;
            self.effect_failed(format!(
                "the message could not be sent: {}",
                error.unwrap_or_default()
            ));
            return Ok(Sent::Continue);
        }
        let lease = app.settings().workflow_step_lease_ms;
        if status != "failed" && now < started_at + lease {
            executions::release(
                app.db(),
                &self.e.id,
                self.e.revision,
                Some(started_at + lease),
            )
            .await?;
            return Ok(Sent::Parked);
        }
        if attempts >= SEND_ATTEMPTS {
            self.e.effect = None;
            let mut tx = app.db().writer().begin().await?;
            messages::fail_send(&mut tx, &message_id, "Meta could not be reached", now).await?;
            tx.commit().await?;
            self.effect_failed(format!(
                "Meta could not be reached after {SEND_ATTEMPTS} attempts"
            ));
            return Ok(Sent::Continue);
        }
        // Nothing reached Meta (no answer, no status webhook within the lease): send again.
        let Some(number) = chasqui_store::numbers::find(
            app.db(),
            &self.e.project_id,
            self.e.phone_number_id.as_deref().unwrap_or_default(),
        )
        .await?
        else {
            self.e.effect = None;
            self.effect_failed("the phone number is no longer connected".into());
            return Ok(Sent::Continue);
        };
        let mut conn = app.db().reader().acquire().await?;
        let body = messages::body(&mut conn, &message_id).await?;
        drop(conn);
        let request: serde_json::Map<String, Value> = body
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        let kind = request
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("text")
            .to_owned();
        let content = chasqui_meta::content::render(&Value::Object(request.clone()));
        let effect = Effect::Send {
            message_id: message_id.clone(),
            node,
            started_at: now,
            attempts: attempts + 1,
        };
        self.e.effect = Some(serde_json::to_string(&effect).unwrap_or_default());
        self.commit(With::Nothing).await?;
        tracing::info!(execution_id = %self.e.id, %message_id, attempt = attempts + 1, "resending an interrupted workflow send");
        self.call_meta(&number, &message_id, request, kind, content)
            .await
    }

    fn effect_failed(&mut self, error: String) {
        let w = World {
            defs: &self.defs,
            env: &self.env,
        };
        self.machine.effect_done(&w, Err(error), None);
    }

    /// A template referenced by the id of a stored template takes its name and language.
    async fn resolve_template(
        &self,
        number: &chasqui_store::numbers::PhoneNumber,
        request: &mut serde_json::Map<String, Value>,
    ) -> Result<(), AppError> {
        let Some(template) = request.get_mut("template").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let Some(name) = template
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Ok(());
        };
        if !name.chars().all(|c| c.is_ascii_digit()) {
            return Ok(());
        }
        if let Some(t) =
            chasqui_store::templates::find(self.app.db(), &number.project_id, &name).await?
            && let (Some(n), Some(l)) = (t.name, t.language)
        {
            template.insert("name".into(), json!(n));
            template.insert("language".into(), json!({"code": l}));
        }
        Ok(())
    }
}

/// The resume of a customer message (from its inbox input).
fn user_input(v: &Value) -> Resume {
    Resume::UserInput {
        text: v
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        value: v.get("value").cloned().unwrap_or(Value::Null),
    }
}

/// Performs a `webhook` node's request (SSRF rules, 10 s timeout, no redirects); a non-2xx
/// answer fails the step.
async fn http(app: &App, request: chasqui_engine::nodes::HttpRequest) -> Result<Value, String> {
    let allow_private = app.settings().webhook_allow_private;
    crate::webhooks::check_url(&request.url, allow_private)?;
    let client = crate::webhooks::delivery_client(allow_private);
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|e| format!("method: {e}"))?;
    let mut builder = client.request(method, &request.url);
    let mut has_type = false;
    for (k, v) in &request.headers {
        has_type |= k.eq_ignore_ascii_case("content-type");
        builder = builder.header(k, v);
    }
    if let Some(body) = request.body {
        if !has_type {
            builder = builder.header("content-type", "application/json");
        }
        builder = builder.body(body);
    }
    let response = builder
        .send()
        .await
        .map_err(|e| format!("the request to {} failed: {e}", request.url))?;
    let status = response.status().as_u16();
    let headers: serde_json::Map<String, Value> = response
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.to_string(), json!(v))))
        .collect();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(256 * 1024)]).into_owned();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    if !(200..300).contains(&status) {
        return Err(format!("{} answered HTTP {status}", request.url));
    }
    Ok(json!({"status": status, "body": body, "headers": headers}))
}
