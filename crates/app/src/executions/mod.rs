//! Workflow executions: starting them (an inbound message on a number with a trigger, or the
//! API), driving them through the engine's interpreter with every effect recorded before it
//! is performed (`drive`), routing customer messages to them (`route`), and the operations of
//! the executions API (resume, status changes, jumps).

pub mod drive;
pub mod route;

use std::collections::HashMap;
use std::sync::Arc;

use chasqui_core::clock::Timestamp;
use chasqui_core::ids::new_id;
use chasqui_engine::{Definition, Machine, State, World};
use chasqui_store::executions::{self, Event, Execution, Input};
use chasqui_store::workflows::Workflow;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{App, AppError};

/// Execution statuses.
pub const STATUSES: [&str; 5] = ["running", "waiting", "handoff", "ended", "failed"];
/// `biz_opaque_callback_data` prefix of workflow sends: Meta echoes it in status webhooks,
/// which lets a send whose answer was lost be recognised.
pub const CALLBACK_PREFIX: &str = "chasqui:";

/// The effect in progress of an execution, stored before it is performed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Effect {
    /// A WhatsApp send: the pending message and the attempt.
    Send {
        /// The stored message (`pending.<id>` until Meta answers).
        message_id: String,
        /// The node.
        node: String,
        /// When the current attempt started (ms).
        started_at: i64,
        /// Attempts so far.
        attempts: u32,
    },
}

/// Loads definition versions (immutable once stored, so cached for the life of the node).
pub(crate) async fn definition(
    app: &App,
    workflow_id: &str,
    version: i64,
) -> Result<Arc<Definition>, AppError> {
    if let Some(found) = app.definitions().get(workflow_id, version) {
        return Ok(found);
    }
    let text = chasqui_store::workflows::definition(app.db(), workflow_id, version)
        .await?
        .ok_or_else(|| {
            AppError::Internal(format!(
                "workflow {workflow_id} version {version} is missing"
            ))
        })?;
    let raw: Value = serde_json::from_str(&text)
        .map_err(|e| AppError::Internal(format!("stored definition is not JSON: {e}")))?;
    let parsed = chasqui_engine::validate(&raw).map_err(|errors| {
        AppError::Internal(format!(
            "stored definition is invalid: {}",
            errors.join("; ")
        ))
    })?;
    let parsed = Arc::new(parsed);
    app.definitions().put(workflow_id, version, parsed.clone());
    Ok(parsed)
}

/// The definitions an interpreter reads: a map filled as frames need them.
pub(crate) type Loaded = HashMap<(String, i64), Arc<Definition>>;

/// Loads the definitions of every frame of `state` into `defs`.
pub(crate) async fn load_frames(
    app: &App,
    state: &State,
    defs: &mut Loaded,
) -> Result<(), AppError> {
    for f in &state.frames {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            defs.entry((f.workflow_id.clone(), f.version))
        {
            slot.insert(definition(app, &f.workflow_id, f.version).await?);
        }
    }
    Ok(())
}

/// Who an execution talks to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Thread {
    /// The number (Meta id).
    pub phone_number_id: Option<String>,
    /// The customer.
    pub contact_id: Option<String>,
    /// The conversation.
    pub conversation_id: Option<String>,
    /// The customer's wa_id.
    pub wa_id: Option<String>,
    /// The customer's profile name.
    pub profile_name: Option<String>,
}

/// A new execution of `w` (current version) and its first event.
pub(crate) async fn new_execution(
    app: &App,
    w: &Workflow,
    trigger_type: &str,
    thread: &Thread,
    vars: Map<String, Value>,
    extra_context: Map<String, Value>,
    metadata: Map<String, Value>,
) -> Result<(Execution, State), AppError> {
    let now = app.now();
    let id = new_id();
    let tracking_id = format!("trk_{}", id.replace('-', ""));
    let mut state = State::new(&w.id, w.lock_version);
    state.vars = vars;
    let mut system = Map::new();
    system.insert("trigger_type".into(), json!(trigger_type));
    system.insert("workflow_id".into(), json!(w.id));
    system.insert("flow_id".into(), json!(w.id));
    system.insert("execution_id".into(), json!(id));
    system.insert("tracking_id".into(), json!(tracking_id));
    system.insert("started_at".into(), json!(Timestamp(now).to_rfc3339()));
    if let Some(pnid) = &thread.phone_number_id
        && let Some(n) = chasqui_store::numbers::find(app.db(), &w.project_id, pnid).await?
    {
        system.insert(
            "whatsapp_config".into(),
            json!({
                "id": n.id, "phone_number_id": n.phone_number_id, "display_phone_number": n.display_phone_number,
                "business_account_id": n.business_account_id, "name": n.name, "kind": n.kind.as_str(),
            }),
        );
        system.insert("trigger_whatsapp_config_id".into(), json!(n.id));
        let customer = match &n.customer_id {
            Some(cid) => chasqui_store::projects::find_customer(app.db(), &w.project_id, cid)
                .await?
                .map(|c| json!({"id": c.id, "name": c.name, "external_customer_id": c.external_customer_id}))
                .unwrap_or(Value::Null),
            None => Value::Null,
        };
        system.insert("customer".into(), customer);
    }
    state.system = system;
    let mut context = Map::new();
    context.insert(
        "channel".into(),
        json!(if trigger_type == "inbound_message" {
            "whatsapp"
        } else {
            "api"
        }),
    );
    if let Some(wa_id) = &thread.wa_id {
        context.insert("phone_number".into(), json!(format!("+{wa_id}")));
        context.insert(
            "contact".into(),
            json!({"wa_id": wa_id, "profile_name": thread.profile_name}),
        );
    }
    if let Some(c) = &thread.conversation_id {
        context.insert("conversation_id".into(), json!(c));
    }
    if let Some(p) = &thread.phone_number_id {
        context.insert("phone_number_id".into(), json!(p));
    }
    for (k, v) in extra_context {
        context.entry(k).or_insert(v);
    }
    state.context = context;
    state.metadata = metadata;
    let e = Execution {
        id,
        project_id: w.project_id.clone(),
        workflow_id: w.id.clone(),
        workflow_version: w.lock_version,
        tracking_id,
        trigger_type: trigger_type.into(),
        status: "running".into(),
        waiting_reason: None,
        phone_number_id: thread.phone_number_id.clone(),
        contact_id: thread.contact_id.clone(),
        conversation_id: thread.conversation_id.clone(),
        wa_id: thread.wa_id.clone(),
        current_node: Some("start".into()),
        state: serde_json::to_string(&state).unwrap_or_default(),
        effect: None,
        wait_until: None,
        due_at: Some(now),
        lease_until: None,
        revision: 0,
        event_seq: 1,
        error_details: None,
        started_at: now,
        ended_at: None,
        last_event_at: now,
        updated_at: now,
    };
    Ok((e, state))
}

/// The first log entry of an execution.
pub(crate) fn started_event(e: &Execution) -> Event {
    Event {
        id: new_id(),
        seq: 1,
        event_type: "execution_started".into(),
        node_id: None,
        direction: None,
        edge_label: None,
        payload: json!({"trigger_type": e.trigger_type, "workflow_version": e.workflow_version})
            .to_string(),
        created_at: e.started_at,
    }
}

/// Body of `POST /workflows/{id}/executions` (root `workflow_execution`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartInput {
    /// The customer to talk to (E.164, `+` optional).
    pub phone_number: Option<String>,
    /// The number to talk through (Meta id).
    pub phone_number_id: Option<String>,
    /// Initial `vars`.
    pub variables: Option<Map<String, Value>>,
    /// Extra `context`.
    pub context: Option<Map<String, Value>>,
    /// Kept in `vars.initial_data`.
    pub initial_data: Option<Value>,
}

/// Starts an execution of an active workflow with an active `api_call` trigger.
pub async fn start(
    app: &App,
    project_id: &str,
    workflow_id: &str,
    input: StartInput,
    metadata: Map<String, Value>,
) -> Result<Execution, AppError> {
    let w = crate::workflows::find(app, project_id, workflow_id).await?;
    if w.status != "active" {
        return Err(AppError::invalid(format!(
            "workflow is {}; only active workflows can be started",
            w.status
        )));
    }
    let triggers = chasqui_store::triggers::for_workflow(app.db(), project_id, &w.id).await?;
    if !triggers
        .iter()
        .any(|t| t.trigger_type == "api_call" && t.active)
    {
        return Err(AppError::invalid(
            "the workflow has no active api_call trigger",
        ));
    }
    let mut thread = Thread::default();
    match (&input.phone_number, &input.phone_number_id) {
        (Some(phone), Some(pnid)) => {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            let clean = phone
                .chars()
                .all(|c| c.is_ascii_digit() || "+ -()".contains(c));
            if !clean || !(5..=20).contains(&digits.len()) {
                return Err(AppError::invalid(format!(
                    "phone_number is not a valid phone number: {phone:?}"
                )));
            }
            if chasqui_store::numbers::find(app.db(), project_id, pnid)
                .await?
                .is_none()
            {
                return Err(AppError::NotFound("phone number"));
            }
            thread.phone_number_id = Some(pnid.clone());
            thread.wa_id = Some(digits);
        }
        (None, None) => {}
        _ => {
            return Err(AppError::invalid(
                "phone_number and phone_number_id go together",
            ));
        }
    }
    let mut vars = input.variables.unwrap_or_default();
    if let Some(data) = input.initial_data.filter(|d| !d.is_null()) {
        vars.insert("initial_data".into(), data);
    }
    let (e, _) = new_execution(
        app,
        &w,
        "api_call",
        &thread,
        vars,
        input.context.unwrap_or_default(),
        metadata,
    )
    .await?;
    let now = app.now();
    // One unit of the group-commit queue: bursts of API starts share transactions.
    let project = project_id.to_owned();
    let inserted = app
        .write_unit(|| {
            let (e, thread, project) = (e.clone(), thread.clone(), project.clone());
            move |conn: &mut chasqui_store::Conn| -> futures::future::BoxFuture<'_, chasqui_store::Result<Execution>> {
            Box::pin(async move {
                let mut e = e;
                if let (Some(pnid), Some(wa_id)) = (&thread.phone_number_id, &thread.wa_id) {
                    let identity = chasqui_store::contacts::Identity {
                        wa_id: Some(wa_id.clone()),
                        user_id: None,
                        profile_name: None,
                    };
                    let contact_id =
                        chasqui_store::contacts::upsert(conn, &project, &identity, &new_id(), now)
                            .await?;
                    let (conversation_id, _) = chasqui_store::conversations::current(
                        conn,
                        chasqui_store::conversations::Thread {
                            project_id: &project,
                            phone_number_id: pnid,
                            contact_id: &contact_id,
                        },
                        &new_id(),
                        now,
                        chasqui_core::status::CONVERSATION_IDLE_MILLIS,
                        now,
                    )
                    .await?;
                    e.contact_id = Some(contact_id);
                    e.conversation_id = Some(conversation_id.clone());
                    let mut state: State = serde_json::from_str(&e.state).unwrap_or_default();
                    state
                        .context
                        .insert("conversation_id".into(), json!(conversation_id));
                    e.state = serde_json::to_string(&state).unwrap_or_default();
                }
                executions::insert(conn, &e).await?;
                executions::append_events(conn, &e.id, &[started_event(&e)]).await?;
                Ok(e)
            })
        }})
        .await;
    let e = match inserted {
        Ok(e) => e,
        Err(err) if chasqui_store::projects::is_unique_violation(&err) => {
            return Err(AppError::Conflict(
                "another execution is already driving this customer's conversation on that number"
                    .into(),
            ));
        }
        Err(err) => return Err(err.into()),
    };
    app.wake();
    Ok(e)
}

/// Finds an execution of the project (by id or tracking id).
pub async fn find(app: &App, project_id: &str, id: &str) -> Result<Execution, AppError> {
    executions::get(app.db(), project_id, id)
        .await?
        .ok_or(AppError::NotFound("workflow execution"))
}

/// Body of `POST /workflow_executions/{id}/resume`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeInput {
    /// `{kind, data}`: `data` becomes the saved response and `{{last_user_input}}`.
    pub message: Option<Value>,
    /// Merged into `vars`.
    pub variables: Option<Map<String, Value>>,
}

/// Resumes a waiting execution from the API (`system.last_resume.reason = "api"`).
pub async fn resume(
    app: &App,
    project_id: &str,
    id: &str,
    input: ResumeInput,
) -> Result<Execution, AppError> {
    let e = find(app, project_id, id).await?;
    if e.status != "waiting" {
        return Err(AppError::invalid(format!(
            "only waiting executions can be resumed; this one is {}",
            e.status
        )));
    }
    let data = match input.message {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Object(m)) => {
            if let Some(kind) = m.get("kind")
                && kind != "payload"
            {
                return Err(AppError::invalid("message.kind must be \"payload\""));
            }
            m.get("data").cloned().unwrap_or(Value::Null)
        }
        Some(Value::String(s)) => Value::String(s),
        Some(_) => {
            return Err(AppError::invalid(
                "message must be an object {kind, data} or a string",
            ));
        }
    };
    let now = app.now();
    let row = Input {
        id: new_id(),
        project_id: project_id.to_owned(),
        phone_number_id: e.phone_number_id.clone().unwrap_or_default(),
        contact_id: e.contact_id.clone().unwrap_or_default(),
        conversation_id: e.conversation_id.clone(),
        message_id: None,
        kind: "api".into(),
        input: json!({"data": data, "variables": input.variables.unwrap_or_default()}).to_string(),
        ord: new_id(),
        received_at: now,
        execution_id: Some(e.id.clone()),
    };
    let mut tx = app.db().writer().begin().await?;
    executions::push(&mut tx, &row).await?;
    executions::wake_at(&mut tx, &e.id, now).await?;
    tx.commit().await?;
    app.wake();
    Ok(e)
}

/// Whether a PATCH may move an execution from `from` to `to`.
pub fn transition_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("running", "waiting" | "ended" | "handoff")
            | ("waiting", "ended" | "handoff")
            | ("handoff", "waiting" | "ended")
    )
}

/// Applies a person's or the API's change to an execution that no engine loop holds: the
/// closure edits the execution and its interpreter, whose log is appended.
async fn change<F>(app: &App, project_id: &str, id: &str, edit: F) -> Result<Execution, AppError>
where
    F: FnOnce(
        &mut Execution,
        &mut Machine,
        &World<'_>,
        i64,
    ) -> Result<Option<&'static str>, AppError>,
{
    let mut e = find(app, project_id, id).await?;
    let now = app.now();
    if e.lease_until.is_some_and(|l| l > now) {
        return Err(AppError::Conflict(
            "the execution is running a step; retry shortly".into(),
        ));
    }
    let state: State = serde_json::from_str(&e.state)
        .map_err(|err| AppError::Internal(format!("execution state: {err}")))?;
    let mut defs = Loaded::new();
    load_frames(app, &state, &mut defs).await?;
    let mut machine = Machine::new(state, project_id);
    let event = {
        let env = HashMap::new();
        let world = World {
            defs: &defs,
            env: &env,
        };
        edit(&mut e, &mut machine, &world, now)?
    };
    let mut tx = app.db().writer().begin().await?;
    let due = drive::persist(&mut tx, &mut e, &mut machine, now).await?;
    if !due {
        return Err(AppError::Conflict(
            "the execution changed meanwhile; retry".into(),
        ));
    }
    if let Some(event_type) = event {
        let detail = json!({"handoff": {"reason": null, "source": "api"}});
        drive::publish(&mut tx, &e, event_type, detail, now).await?;
    }
    tx.commit().await?;
    app.wake();
    Ok(e)
}

/// Moves an execution to `ended`, `handoff` or `waiting` (the transition table is enforced).
pub async fn set_status(
    app: &App,
    project_id: &str,
    id: &str,
    to: &str,
    actor: &str,
) -> Result<Execution, AppError> {
    if !["ended", "handoff", "waiting"].contains(&to) {
        return Err(AppError::invalid(
            "status must be one of ended, handoff, waiting",
        ));
    }
    let actor = actor.to_owned();
    let to = to.to_owned();
    change(app, project_id, id, move |e, machine, world, now| {
        if !transition_allowed(&e.status, &to) {
            return Err(AppError::invalid(format!(
                "an execution cannot go from {} to {to}",
                e.status
            )));
        }
        let now_node = machine.node().map(str::to_owned);
        let from = std::mem::replace(&mut e.status, to.clone());
        machine.log.push(chasqui_engine::Logged {
            event_type: "status_changed",
            node: now_node.clone(),
            edge_label: None,
            direction: None,
            payload: json!({"from": from, "to": to, "actor": actor}),
        });
        e.effect = None;
        match to.as_str() {
            "ended" => {
                e.waiting_reason = None;
                e.wait_until = None;
                e.ended_at = Some(now);
                machine.log.push(chasqui_engine::Logged {
                    event_type: "execution_ended",
                    node: now_node,
                    edge_label: None,
                    direction: None,
                    payload: json!({"actor": actor}),
                });
                Ok(None)
            }
            "handoff" => {
                e.waiting_reason = None;
                e.wait_until = None;
                Ok(Some("workflow.execution.handoff"))
            }
            _ => {
                // Handed back: at a wait (or the handoff node) it waits for the customer;
                // anywhere else (after a jump) it runs from that node.
                let node_type = now_node.as_deref().and_then(|n| {
                    machine.state.current().and_then(|f| {
                        world
                            .defs
                            .get(&f.workflow_id, f.version)
                            .and_then(|d| d.node_type(n).map(str::to_owned))
                    })
                });
                match node_type.as_deref() {
                    Some("wait_for_response" | "handoff") | None => {
                        e.waiting_reason = Some("user_input".into());
                        if node_type.as_deref() != Some("wait_for_response") {
                            e.wait_until = None;
                        }
                    }
                    Some(_) => {
                        e.status = "running".into();
                        e.waiting_reason = None;
                        e.wait_until = None;
                    }
                }
                Ok(None)
            }
        }
    })
    .await
}

/// Moves a running, waiting or handoff execution to `node_id`, keeping its status and vars;
/// the jump and its actor are logged. A waiting execution runs from the node at once.
pub async fn jump(
    app: &App,
    project_id: &str,
    id: &str,
    node_id: &str,
    actor: &str,
) -> Result<Execution, AppError> {
    let (node_id, actor) = (node_id.to_owned(), actor.to_owned());
    change(app, project_id, id, move |e, machine, world, _now| {
        if !["running", "waiting", "handoff"].contains(&e.status.as_str()) {
            return Err(AppError::invalid(format!(
                "only running, waiting or handoff executions can jump; this one is {}",
                e.status
            )));
        }
        machine
            .jump(world, &node_id, &actor)
            .map_err(AppError::invalid)?;
        e.effect = None;
        if e.status == "waiting" {
            e.status = "running".into();
            e.waiting_reason = None;
            e.wait_until = None;
        }
        Ok(None)
    })
    .await
}

/// The execution as the API shows it (with its log when `events` is given).
pub fn to_json(e: &Execution, w: Option<&Workflow>, events: Option<&[Event]>) -> Value {
    let state: State = serde_json::from_str(&e.state).unwrap_or_default();
    let time = |t: Option<i64>| t.map(|t| Timestamp(t).to_rfc3339());
    let mut v = json!({
        "id": e.id,
        "status": e.status,
        "waiting_reason": e.waiting_reason,
        "tracking_id": e.tracking_id,
        "trigger_type": e.trigger_type,
        "started_at": time(Some(e.started_at)),
        "ended_at": time(e.ended_at),
        "last_event_at": time(Some(e.last_event_at)),
        "wait_until": time(e.wait_until),
        "whatsapp_conversation_id": e.conversation_id,
        "phone_number_id": e.phone_number_id,
        "workflow_id": e.workflow_id,
        "workflow_version": e.workflow_version,
        "workflow": w.map(|w| json!({"id": w.id, "name": w.name, "status": w.status})),
        "current_step": e.current_node.as_ref().map(|n| json!({
            "identifier": n,
            "workflow_id": state.current().map(|f| f.workflow_id.clone()),
            "depth": state.frames.len(),
        })),
        "error_details": e.error_details.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
        "execution_context": {
            "vars": state.vars, "system": state.system, "context": state.context, "metadata": state.metadata,
            "last_user_input": state.last_user_input,
        },
        "created_at": time(Some(e.started_at)),
        "updated_at": time(Some(e.updated_at)),
    });
    if let Some(events) = events {
        v["events"] = Value::Array(events.iter().map(event_json).collect());
    }
    v
}

/// One log entry as the API shows it.
pub fn event_json(ev: &Event) -> Value {
    json!({
        "id": ev.id,
        "seq": ev.seq,
        "event_type": ev.event_type,
        "created_at": Timestamp(ev.created_at).to_rfc3339(),
        "direction": ev.direction,
        "edge_label": ev.edge_label,
        "payload": serde_json::from_str::<Value>(&ev.payload).unwrap_or(Value::Null),
        "step": ev.node_id.as_ref().map(|n| json!({"identifier": n})),
    })
}

/// The variables a workflow can use, for editors: the fixed `system` and `context` names,
/// and the `vars` it writes (from its definition) or that its recent executions hold, each
/// with its JSON type, a few sample values and how many of those executions had it.
pub async fn variables(app: &App, project_id: &str, workflow_id: &str) -> Result<Value, AppError> {
    let w = crate::workflows::find(app, project_id, workflow_id).await?;
    let raw = crate::workflows::definition(app, &w).await?;
    let mut found: std::collections::BTreeMap<String, (Vec<Value>, i64, Option<i64>)> =
        Default::default();
    if let Ok(d) = chasqui_engine::validate(&raw) {
        for config in d.configs.values() {
            for key in ["save_response_to", "variable_name", "save_error_to"] {
                if let Some(name) = config.get(key).and_then(Value::as_str)
                    && !name.is_empty()
                {
                    found.entry(name.to_owned()).or_default();
                }
            }
        }
    }
    let filter = executions::Filter {
        workflow_id: Some(&w.id),
        ..Default::default()
    };
    let (recent, _) = executions::list(app.db(), project_id, &filter, 100, 0).await?;
    for e in &recent {
        let state: State = serde_json::from_str(&e.state).unwrap_or_default();
        for (name, value) in state.vars {
            let entry = found.entry(name).or_default();
            entry.1 += 1;
            entry.2 = Some(entry.2.map_or(e.last_event_at, |t| t.max(e.last_event_at)));
            if entry.0.len() < 3 && !entry.0.contains(&value) {
                entry.0.push(value);
            }
        }
    }
    let type_of = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let vars: Vec<Value> = found
        .into_iter()
        .map(|(name, (samples, usage, last))| {
            json!({
                "path": format!("vars.{name}"),
                "name": name,
                "type": samples.first().map_or("unknown", type_of),
                "sample_values": samples,
                "usage_count": usage,
                "last_seen_at": last.map(|t| Timestamp(t).to_rfc3339()),
                "reference": format!("{{{{vars.{name}}}}}"),
            })
        })
        .collect();
    Ok(json!({
        "fixed": {
            "system": {
                "trigger_type": "string", "workflow_id": "string", "flow_id": "string",
                "execution_id": "string", "tracking_id": "string", "started_at": "string",
                "whatsapp_config": "object", "trigger_whatsapp_config_id": "string",
                "customer": "object", "last_resume": "object",
            },
            "context": {
                "channel": "string", "phone_number": "string", "phone_number_id": "string",
                "conversation_id": "string", "contact": "object", "trigger_message": "any",
            },
            "last_user_input": "any",
        },
        "discovered": { "system": [], "context": [], "vars": vars },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_table() {
        let allowed: Vec<(&str, &str)> = STATUSES
            .iter()
            .flat_map(|from| STATUSES.iter().map(move |to| (*from, *to)))
            .filter(|(from, to)| transition_allowed(from, to))
            .collect();
        assert_eq!(
            allowed,
            vec![
                ("running", "waiting"),
                ("running", "handoff"),
                ("running", "ended"),
                ("waiting", "handoff"),
                ("waiting", "ended"),
                ("handoff", "waiting"),
                ("handoff", "ended"),
            ]
        );
    }
}
