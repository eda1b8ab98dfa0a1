//! Routing customer messages to workflows. A message stored on a number with an active
//! inbound trigger (or in a thread an execution drives) is queued in the transaction that
//! stores it; this pass then decides, per customer thread and in Meta's order: a thread in
//! handoff → nothing; an execution running or waiting → it receives the messages (a waiting
//! one is woken, after the workflow's debounce window); otherwise the trigger starts one.

use chasqui_meta::webhook::MessageHead;
use chasqui_store::contacts::Identity;
use chasqui_store::executions::{self, Input};
use serde_json::{Map, Value, json};

use super::{Thread, new_execution, started_event};
use crate::{App, AppError};

/// Inputs routed per pass: each thread's routing is a unit of the group-commit queue, so a
/// pass costs about one commit whatever its size.
const BATCH: i64 = 512;
/// Lease of claimed inputs.
const LEASE_MILLIS: i64 = 30_000;

/// What a workflow sees of a customer message: its text form (`{{last_user_input}}`) and
/// the value a wait saves (the text, or the structured reply: button, list row, flow
/// response, location, media).
pub fn inbound_input(
    message: &Value,
    head: &MessageHead,
    identity: &Identity,
    text: &str,
) -> Value {
    let kind = head.kind.as_str();
    let value = match kind {
        "text" => json!(text),
        "interactive" => {
            let i = message.get("interactive").cloned().unwrap_or(Value::Null);
            let t = i.get("type").and_then(Value::as_str).unwrap_or_default();
            match t {
                "nfm_reply" => {
                    let reply = i.get("nfm_reply").cloned().unwrap_or(Value::Null);
                    let parsed = reply
                        .get("response_json")
                        .and_then(Value::as_str)
                        .and_then(|r| serde_json::from_str::<Value>(r).ok())
                        .unwrap_or(Value::Null);
                    json!({"type": "flow_response", "response": parsed, "body": reply.get("body")})
                }
                other => {
                    let mut v = i.get(other).cloned().unwrap_or(Value::Null);
                    if let Value::Object(m) = &mut v {
                        m.insert("type".into(), json!(other));
                    }
                    v
                }
            }
        }
        "button" => {
            let b = message.get("button").cloned().unwrap_or(Value::Null);
            json!({"type": "button", "payload": b.get("payload"), "text": b.get("text")})
        }
        other => {
            let mut v = message.get(other).cloned().unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("type".into(), json!(other));
            }
            v
        }
    };
    let text = match kind {
        "interactive" => value
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or(text)
            .to_owned(),
        _ => text.to_owned(),
    };
    json!({
        "text": text,
        "value": value,
        "type": kind,
        "wamid": head.id,
        "wa_id": identity.wa_id,
        "profile_name": identity.profile_name,
    })
}

/// Routes queued inputs; returns how many were claimed.
pub async fn route_pending(app: &App) -> Result<usize, AppError> {
    let rows = executions::claim_unrouted(app.db(), app.now(), LEASE_MILLIS, BATCH).await?;
    let n = rows.len();
    let mut threads: Vec<Vec<Input>> = Vec::new();
    for row in rows {
        match threads.iter_mut().find(|t| {
            t[0].phone_number_id == row.phone_number_id && t[0].contact_id == row.contact_id
        }) {
            Some(t) => t.push(row),
            None => threads.push(vec![row]),
        }
    }
    // Threads are independent: route them together (their writes share group commits).
    let routes = threads.into_iter().map(|thread| async move {
        let ids: Vec<String> = thread.iter().map(|i| i.id.clone()).collect();
        if let Err(e) = route_thread(app, thread).await {
            tracing::warn!(error = %e, "routing customer messages to workflows failed; retrying");
            executions::release_inputs(app.db(), &ids).await?;
        }
        Ok::<(), AppError>(())
    });
    for result in futures::future::join_all(routes).await {
        result?;
    }
    if n > 0 {
        app.wake_workers();
    }
    Ok(n)
}

/// Where a thread's queued messages went.
enum Routed {
    /// To an execution of this workflow.
    To(String),
    /// Nowhere: a person owns the thread, or no workflow wants them.
    Dropped,
    /// The driving execution ended meanwhile: route them again.
    Again,
}

async fn route_thread(app: &App, rows: Vec<Input>) -> Result<(), AppError> {
    let first = &rows[0];
    let now = app.now();
    // A new execution, prepared outside the transaction in case nothing drives the thread.
    let mut candidate = None;
    // Most messages belong to a thread an execution already drives: then no new one is
    // prepared (the unit below checks again, under its lock, and starts one if needed
    // only when this read said so).
    let driven = {
        let mut conn = app.db().reader().acquire().await?;
        executions::driving(&mut conn, &first.phone_number_id, &first.contact_id)
            .await?
            .is_some()
    };
    if !driven
        && let Some(trigger) =
            chasqui_store::triggers::active_inbound(app.db(), &first.phone_number_id).await?
        && let Some(w) =
            chasqui_store::workflows::get(app.db(), &first.project_id, &trigger.workflow_id).await?
    {
        let input: Value = serde_json::from_str(&first.input).unwrap_or(Value::Null);
        let thread = Thread {
            phone_number_id: Some(first.phone_number_id.clone()),
            contact_id: Some(first.contact_id.clone()),
            conversation_id: first.conversation_id.clone(),
            wa_id: input
                .get("wa_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            profile_name: input
                .get("profile_name")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        let (mut e, mut state) = new_execution(
            app,
            &w,
            "inbound_message",
            &thread,
            Map::new(),
            Map::new(),
            Map::new(),
        )
        .await?;
        // The triggering message is the first input: `{{last_user_input}}` from the start.
        state.last_user_input = input.get("text").cloned().unwrap_or(Value::Null);
        state.context.insert(
            "trigger_message".into(),
            input.get("value").cloned().unwrap_or(Value::Null),
        );
        e.state = serde_json::to_string(&state).unwrap_or_default();
        candidate = Some((e, w.message_debounce_seconds));
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let (pnid, contact_id) = (first.phone_number_id.clone(), first.contact_id.clone());
    let last = rows.last().map_or(now, |r| r.received_at);
    let routed = app
        .write_unit(|| {
            let (pnid, contact_id, ids, candidate) = (
                pnid.clone(),
                contact_id.clone(),
                ids.clone(),
                candidate.clone(),
            );
            move |conn: &mut chasqui_store::Conn| -> futures::future::BoxFuture<
                '_,
                chasqui_store::Result<Routed>,
            > {
                Box::pin(async move {
                    match executions::driving(conn, &pnid, &contact_id).await? {
                        Some(e) if e.status == "handoff" => {
                            // A person owns the conversation.
                            executions::remove(conn, &ids).await?;
                            Ok(Routed::Dropped)
                        }
                        Some(e) => {
                            executions::attach(conn, &ids, &e.id).await?;
                            let debounce =
                                chasqui_store::workflows::debounce_seconds(conn, &e.workflow_id)
                                    .await?;
                            executions::wake_at(conn, &e.id, last + debounce * 1000).await?;
                            Ok(Routed::To(e.workflow_id))
                        }
                        None => match candidate {
                            // The execution ended since the read above: route again, now
                            // preparing a new one.
                            None if driven => Ok(Routed::Again),
                            None => {
                                executions::remove(conn, &ids).await?;
                                Ok(Routed::Dropped)
                            }
                            Some((e, _)) => {
                                executions::insert(conn, &e).await?;
                                executions::append_events(conn, &e.id, &[started_event(&e)])
                                    .await?;
                                executions::remove(conn, &ids[..1]).await?;
                                executions::attach(conn, &ids[1..], &e.id).await?;
                                Ok(Routed::To(e.workflow_id))
                            }
                        },
                    }
                })
            }
        })
        .await;
    match routed {
        Ok(Routed::To(workflow_id)) => {
            let wamid = rows
                .iter()
                .rev()
                .filter_map(|r| serde_json::from_str::<Value>(&r.input).ok())
                .find_map(|v| v.get("wamid").and_then(Value::as_str).map(str::to_owned));
            if let Some(wamid) = wamid {
                mark_read(
                    app,
                    &first.project_id,
                    &first.phone_number_id,
                    &workflow_id,
                    wamid,
                )
                .await?;
            }
            Ok(())
        }
        Ok(Routed::Again) => {
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            executions::release_inputs(app.db(), &ids).await?;
            Ok(())
        }
        Ok(Routed::Dropped) => Ok(()),
        // Another node started one this instant: route again next pass.
        Err(err) if chasqui_store::projects::is_unique_violation(&err) => {
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            executions::release_inputs(app.db(), &ids).await?;
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Marks the customer's latest message read (with a typing indicator for
/// `read_with_typing`) when the workflow's `inbound_message_read_mode` asks for it. Best
/// effort, in the background: a failed receipt never holds a workflow back.
async fn mark_read(
    app: &App,
    project_id: &str,
    phone_number_id: &str,
    workflow_id: &str,
    wamid: String,
) -> Result<(), AppError> {
    let Some(w) = chasqui_store::workflows::get(app.db(), project_id, workflow_id).await? else {
        return Ok(());
    };
    let mut body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
    match w.inbound_message_read_mode.as_str() {
        "read_only" => {}
        "read_with_typing" => body["typing_indicator"] = json!({"type": "text"}),
        _ => return Ok(()),
    }
    let Some(number) = chasqui_store::numbers::find(app.db(), project_id, phone_number_id).await?
    else {
        return Ok(());
    };
    let app = app.clone();
    tokio::spawn(async move {
        let sent = async {
            let creds = crate::numbers::credentials(&app, &number).map_err(|e| e.to_string())?;
            let graph = chasqui_meta::graph::GraphClient::new(
                app.http().clone(),
                &app.graph_base_url(number.kind),
            );
            let (status, answer) = graph
                .send_message(
                    &number.phone_number_id,
                    creds.access_token.expose(),
                    body.to_string().into_bytes(),
                )
                .await
                .map_err(|e| e.to_string())?;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("{status} {}", String::from_utf8_lossy(&answer)))
            }
        };
        if let Err(e) = sent.await {
            tracing::warn!(error = %e, "marking a customer message read failed");
        }
    });
    Ok(())
}
