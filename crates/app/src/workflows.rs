//! Workflows: create, edit with optimistic locking (`lock_version`), archive and duplicate.
//! Every definition is validated by the engine before it is stored, and every change of the
//! definition is a new version, so a running execution keeps the one it started with.

use chasqui_core::ids::new_id;
use chasqui_store::workflows::{self, Workflow};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{App, AppError};

/// Statuses of a workflow.
pub const STATUSES: [&str; 3] = ["draft", "active", "archived"];
/// Inbound read modes.
pub const READ_MODES: [&str; 3] = ["disabled", "read_only", "read_with_typing"];

/// Fields of a create or update request (root `workflow`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowInput {
    /// Name.
    pub name: Option<String>,
    /// Kebab-case handle (derived from the name when absent).
    pub slug: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// `draft`, `active` or `archived`.
    pub status: Option<String>,
    /// `{nodes, edges}`.
    pub definition: Option<Value>,
    /// The version the edit is based on; a stale one is refused (409).
    pub lock_version: Option<i64>,
    /// 0 to 60.
    pub message_debounce_seconds: Option<i64>,
    /// `disabled`, `read_only` or `read_with_typing`.
    pub inbound_message_read_mode: Option<String>,
}

fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').chars().take(100).collect()
}

fn slug_ok(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 100
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

/// Applies the scalar fields of `input` to `w`, collecting problems.
fn apply(w: &mut Workflow, input: &WorkflowInput, errors: &mut Vec<String>) {
    if let Some(name) = &input.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push("name must be 1 to 200 characters".into());
        } else {
            w.name = name.to_owned();
        }
    }
    if let Some(slug) = &input.slug {
        if slug_ok(slug) {
            w.slug = slug.clone();
        } else {
            errors.push("slug must be kebab-case: a-z, 0-9 and -".into());
        }
    }
    if let Some(d) = &input.description {
        if d.chars().count() > 2000 {
            errors.push("description must be at most 2000 characters".into());
        } else {
            w.description = Some(d.clone());
        }
    }
    if let Some(s) = &input.status {
        if STATUSES.contains(&s.as_str()) {
            w.status = s.clone();
        } else {
            errors.push(format!("status must be one of {}", STATUSES.join(", ")));
        }
    }
    if let Some(n) = input.message_debounce_seconds {
        if (0..=60).contains(&n) {
            w.message_debounce_seconds = n;
        } else {
            errors.push("message_debounce_seconds must be 0 to 60".into());
        }
    }
    if let Some(m) = &input.inbound_message_read_mode {
        if READ_MODES.contains(&m.as_str()) {
            w.inbound_message_read_mode = m.clone();
        } else {
            errors.push(format!(
                "inbound_message_read_mode must be one of {}",
                READ_MODES.join(", ")
            ));
        }
    }
}

fn check_definition(
    definition: &Value,
    errors: &mut Vec<String>,
) -> Option<chasqui_engine::Definition> {
    match chasqui_engine::validate(definition) {
        Ok(d) => Some(d),
        Err(problems) => {
            errors.extend(problems.into_iter().map(|p| format!("definition: {p}")));
            None
        }
    }
}

/// Creates a workflow (status `draft` unless given).
pub async fn create(
    app: &App,
    project_id: &str,
    input: WorkflowInput,
) -> Result<Workflow, AppError> {
    let now = app.now();
    let mut w = Workflow {
        id: new_id(),
        project_id: project_id.to_owned(),
        name: String::new(),
        slug: String::new(),
        description: None,
        status: "draft".into(),
        lock_version: 1,
        message_debounce_seconds: 0,
        inbound_message_read_mode: "disabled".into(),
        created_at: now,
        updated_at: now,
    };
    let mut errors = Vec::new();
    if input.name.is_none() {
        errors.push("name is required".into());
    }
    apply(&mut w, &input, &mut errors);
    if input.slug.is_none() {
        w.slug = slugify(&w.name);
    }
    let definition = match &input.definition {
        Some(d) => check_definition(d, &mut errors),
        None => {
            errors.push("definition is required".into());
            None
        }
    };
    if let Some(d) = &definition {
        check_calls(app, &w, d, &mut errors).await?;
    }
    let Some(definition) = definition.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    workflows::insert(app.db(), &w, &definition.raw.to_string()).await?;
    Ok(w)
}

/// Updates a workflow. A new definition becomes the next version; a `lock_version` that is
/// not the current one is refused with 409, as is an edit that lost a race with another.
pub async fn update(
    app: &App,
    project_id: &str,
    id: &str,
    input: WorkflowInput,
) -> Result<Workflow, AppError> {
    let mut w = find(app, project_id, id).await?;
    let expected = w.lock_version;
    if let Some(v) = input.lock_version
        && v != expected
    {
        return Err(AppError::Conflict(format!(
            "lock_version {v} is stale: the workflow is at version {expected}; reload it and retry"
        )));
    }
    let mut errors = Vec::new();
    apply(&mut w, &input, &mut errors);
    let definition = match &input.definition {
        Some(d) => check_definition(d, &mut errors),
        None => None,
    };
    if let Some(d) = &definition {
        check_calls(app, &w, d, &mut errors).await?;
    }
    let definition = definition.map(|d| d.raw.to_string());
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    if definition.is_some() {
        w.lock_version = expected + 1;
    }
    w.updated_at = app.now();
    if !workflows::update(app.db(), &w, expected, definition.as_deref()).await? {
        return Err(AppError::Conflict(
            "the workflow was changed meanwhile; reload it and retry".into(),
        ));
    }
    Ok(w)
}

/// A project's workflow by id or slug.
async fn resolve(
    app: &App,
    project_id: &str,
    reference: &str,
) -> Result<Option<Workflow>, AppError> {
    Ok(
        match workflows::get(app.db(), project_id, reference).await? {
            Some(w) => Some(w),
            None => workflows::by_slug(app.db(), project_id, reference).await?,
        },
    )
}

/// Checks the sub-workflows `d` calls: each must exist, and none may lead back to `own`
/// (a cycle is refused at save; the depth limit catches what templated ids hide).
async fn check_calls(
    app: &App,
    own: &Workflow,
    d: &chasqui_engine::Definition,
    errors: &mut Vec<String>,
) -> Result<(), AppError> {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<(String, Vec<String>)> = d
        .calls()
        .into_iter()
        .filter(|c| !c.contains("{{"))
        .map(|c| (c, vec![own.name.clone()]))
        .collect();
    while let Some((reference, path)) = stack.pop() {
        let Some(target) = resolve(app, &own.project_id, &reference).await? else {
            if path.len() == 1 {
                errors.push(format!(
                    "definition: a call node names workflow {reference:?}, which does not exist"
                ));
            }
            continue;
        };
        if target.id == own.id {
            errors.push(format!(
                "definition: calling {reference:?} makes a cycle: {} → {}",
                path.join(" → "),
                own.name
            ));
            break;
        }
        if !seen.insert(target.id.clone()) {
            continue;
        }
        let raw = definition(app, &target).await?;
        if let Ok(next) = chasqui_engine::validate(&raw) {
            let mut path = path.clone();
            path.push(target.name.clone());
            stack.extend(
                next.calls()
                    .into_iter()
                    .filter(|c| !c.contains("{{"))
                    .map(|c| (c, path.clone())),
            );
        }
    }
    Ok(())
}

/// A project's workflow.
pub async fn find(app: &App, project_id: &str, id: &str) -> Result<Workflow, AppError> {
    workflows::get(app.db(), project_id, id)
        .await?
        .ok_or(AppError::NotFound("Workflow"))
}

/// The current definition of a workflow.
pub async fn definition(app: &App, w: &Workflow) -> Result<Value, AppError> {
    let text = workflows::definition(app.db(), &w.id, w.lock_version)
        .await?
        .ok_or_else(|| {
            AppError::Internal(format!(
                "workflow {} has no version {}",
                w.id, w.lock_version
            ))
        })?;
    serde_json::from_str(&text).map_err(|e| AppError::Internal(format!("stored definition: {e}")))
}

/// Copies a workflow and its current definition into a new draft.
pub async fn duplicate(app: &App, project_id: &str, id: &str) -> Result<Workflow, AppError> {
    let w = find(app, project_id, id).await?;
    let definition = definition(app, &w).await?;
    let name: String = format!("{} (copy)", w.name).chars().take(200).collect();
    let input = WorkflowInput {
        name: Some(name.clone()),
        slug: Some(
            format!("{}-copy-{}", w.slug, &new_id()[..8])
                .chars()
                .take(100)
                .collect(),
        ),
        description: w.description.clone(),
        status: Some("draft".into()),
        definition: Some(definition),
        lock_version: None,
        message_debounce_seconds: Some(w.message_debounce_seconds),
        inbound_message_read_mode: Some(w.inbound_message_read_mode.clone()),
    };
    create(app, project_id, input).await
}

/// The API shape of a workflow (without its definition).
pub fn to_json(w: &Workflow) -> Value {
    let iso = |ms: i64| chasqui_core::Timestamp(ms).to_rfc3339();
    json!({
        "id": w.id,
        "project_id": w.project_id,
        "name": w.name,
        "slug": w.slug,
        "description": w.description,
        "status": w.status,
        "lock_version": w.lock_version,
        "message_debounce_seconds": w.message_debounce_seconds,
        "inbound_message_read_mode": w.inbound_message_read_mode,
        "created_at": iso(w.created_at),
        "updated_at": iso(w.updated_at),
    })
}

/// Trigger types a workflow can have now.
pub const TRIGGER_TYPES: [&str; 2] = ["inbound_message", "api_call"];

/// Fields of a trigger request (root `trigger`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerInput {
    /// `inbound_message` or `api_call`.
    pub trigger_type: Option<String>,
    /// Whether it fires (default true).
    pub active: Option<bool>,
    /// The number, for `inbound_message`.
    pub phone_number_id: Option<String>,
}

fn trigger_conflict(e: chasqui_store::StoreError, t: &str) -> AppError {
    if chasqui_store::projects::is_unique_violation(&e) {
        AppError::Conflict(if t == "inbound_message" {
            "this phone number already has an active inbound_message trigger".into()
        } else {
            "this workflow already has an api_call trigger".into()
        })
    } else {
        e.into()
    }
}

/// Adds a trigger to a workflow of the project.
pub async fn create_trigger(
    app: &App,
    project_id: &str,
    workflow_id: &str,
    input: TriggerInput,
) -> Result<chasqui_store::triggers::Trigger, AppError> {
    find(app, project_id, workflow_id).await?;
    let trigger_type = input.trigger_type.unwrap_or_default();
    if !TRIGGER_TYPES.contains(&trigger_type.as_str()) {
        return Err(AppError::invalid(format!(
            "trigger_type must be one of {} (whatsapp_event and project_event come with observer executions)",
            TRIGGER_TYPES.join(", ")
        )));
    }
    let phone_number_id = match (trigger_type.as_str(), input.phone_number_id) {
        ("inbound_message", Some(pnid)) => {
            chasqui_store::numbers::find(app.db(), project_id, &pnid)
                .await?
                .ok_or_else(|| {
                    AppError::invalid("phone_number_id is not a number of this project")
                })?;
            Some(pnid)
        }
        ("inbound_message", None) => {
            return Err(AppError::invalid(
                "an inbound_message trigger needs phone_number_id",
            ));
        }
        (_, Some(_)) => {
            return Err(AppError::invalid(
                "an api_call trigger takes no phone_number_id",
            ));
        }
        (_, None) => None,
    };
    let now = app.now();
    let t = chasqui_store::triggers::Trigger {
        id: new_id(),
        project_id: project_id.to_owned(),
        workflow_id: workflow_id.to_owned(),
        trigger_type: trigger_type.clone(),
        phone_number_id,
        active: input.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    chasqui_store::triggers::insert(app.db(), &t)
        .await
        .map_err(|e| trigger_conflict(e, &trigger_type))?;
    Ok(t)
}

/// Turns a trigger on or off (the only mutable field; change the rest by recreating it).
pub async fn update_trigger(
    app: &App,
    project_id: &str,
    id: &str,
    input: TriggerInput,
) -> Result<chasqui_store::triggers::Trigger, AppError> {
    let t = chasqui_store::triggers::get(app.db(), project_id, id)
        .await?
        .ok_or(AppError::NotFound("Trigger"))?;
    if input
        .trigger_type
        .as_ref()
        .is_some_and(|v| v != &t.trigger_type)
        || input
            .phone_number_id
            .as_ref()
            .is_some_and(|p| Some(p) != t.phone_number_id.as_ref())
    {
        return Err(AppError::invalid(
            "only active can change; delete the trigger and create another",
        ));
    }
    if let Some(active) = input.active {
        chasqui_store::triggers::set_active(app.db(), project_id, id, active, app.now())
            .await
            .map_err(|e| trigger_conflict(e, &t.trigger_type))?;
    }
    chasqui_store::triggers::get(app.db(), project_id, id)
        .await?
        .ok_or(AppError::NotFound("Trigger"))
}

/// The API shape of a trigger.
pub fn trigger_json(t: &chasqui_store::triggers::Trigger) -> Value {
    let iso = |ms: i64| chasqui_core::Timestamp(ms).to_rfc3339();
    json!({
        "id": t.id,
        "workflow_id": t.workflow_id,
        "trigger_type": t.trigger_type,
        "active": t.active,
        "phone_number_id": t.phone_number_id,
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    })
}

/// Creates the demo workflow of a first start: on the sandbox number it greets, offers
/// buttons, waits five minutes for the answer and branches on it (or on the timeout).
pub async fn create_welcome(
    app: &App,
    project_id: &str,
    phone_number_id: &str,
) -> Result<Workflow, AppError> {
    let definition: Value = serde_json::from_str(include_str!("welcome_workflow.json"))
        .map_err(|e| AppError::Internal(format!("welcome workflow: {e}")))?;
    let input = WorkflowInput {
        name: Some("Welcome".into()),
        description: Some(
            "Demo: greets, asks with buttons, waits with a timeout, branches.".into(),
        ),
        status: Some("active".into()),
        definition: Some(definition),
        ..WorkflowInput::default()
    };
    let w = create(app, project_id, input).await?;
    let trigger = TriggerInput {
        trigger_type: Some("inbound_message".into()),
        phone_number_id: Some(phone_number_id.to_owned()),
        active: Some(true),
    };
    create_trigger(app, project_id, &w.id, trigger).await?;
    Ok(w)
}
