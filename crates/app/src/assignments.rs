//! Assigning conversations to project members: one active assignment per conversation,
//! reassigning by creating a new one or editing the current one.

use chasqui_core::ids::new_id;
use chasqui_store::assignments::{self, Assignment};
use chasqui_store::projects::is_unique_violation;
use chasqui_store::{conversations, users};

use crate::{App, AppError};

/// Longest `notes`, in characters.
const NOTES_MAX: usize = 2_000;

/// Changes to an assignment; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct AssignmentChange {
    /// Reassign to this member.
    pub user_id: Option<String>,
    /// Replace the notes (`Some(None)` clears them).
    pub notes: Option<Option<String>>,
    /// `false` unassigns; `true` makes it the current assignment again.
    pub active: Option<bool>,
}

fn check_notes(notes: Option<&str>) -> Result<(), AppError> {
    match notes {
        Some(n) if n.chars().count() > NOTES_MAX => Err(AppError::invalid(format!(
            "notes must be at most {NOTES_MAX} characters"
        ))),
        _ => Ok(()),
    }
}

async fn check_member(app: &App, project_id: &str, user_id: &str) -> Result<(), AppError> {
    if users::member(app.db(), project_id, user_id)
        .await?
        .is_none()
    {
        return Err(AppError::invalid(format!(
            "user_id {user_id} is not a member of this project"
        )));
    }
    Ok(())
}

async fn check_conversation(
    app: &App,
    project_id: &str,
    conversation_id: &str,
) -> Result<String, AppError> {
    conversations::get(app.db(), project_id, conversation_id)
        .await?
        .map(|c| c.phone_number_id)
        .ok_or(AppError::NotFound("Conversation"))
}

/// Tells open inboxes that a conversation's assignment changed.
async fn announce(app: &App, a: &Assignment, phone_number_id: String) {
    app.publish_changes(vec![chasqui_store::notifier::Change {
        project_id: a.project_id.clone(),
        kind: "assignment".into(),
        phone_number_id: Some(phone_number_id),
        conversation_id: Some(a.conversation_id.clone()),
        wamid: None,
    }])
    .await;
}

/// Runs a write that may lose a race for the conversation's one active assignment; a few
/// attempts settle it (the loser's transaction wrote nothing).
async fn settle<F, Fut>(mut write: F) -> Result<(), AppError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = chasqui_store::Result<bool>>,
{
    for _ in 0..3 {
        match write().await {
            Ok(true) => return Ok(()),
            Ok(false) => return Err(AppError::NotFound("Assignment")),
            Err(e) if is_unique_violation(&e) || e.is_retryable_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Conflict(
        "the conversation's assignment is changing concurrently; retry".into(),
    ))
}

/// Assigns a conversation to a member; the previous active assignment becomes inactive.
pub async fn create(
    app: &App,
    project_id: &str,
    conversation_id: &str,
    user_id: &str,
    notes: Option<String>,
    created_by_user_id: Option<&str>,
) -> Result<Assignment, AppError> {
    let phone_number_id = check_conversation(app, project_id, conversation_id).await?;
    check_notes(notes.as_deref())?;
    check_member(app, project_id, user_id).await?;
    let now = app.now();
    let a = Assignment {
        id: new_id(),
        project_id: project_id.to_owned(),
        conversation_id: conversation_id.to_owned(),
        user_id: user_id.to_owned(),
        created_by_user_id: created_by_user_id.map(str::to_owned),
        notes,
        active: true,
        created_at: now,
        updated_at: now,
    };
    settle(|| async { assignments::insert(app.db(), &a).await.map(|()| true) }).await?;
    announce(app, &a, phone_number_id).await;
    Ok(a)
}

/// Changes an assignment (reassign, notes, unassign or reactivate).
pub async fn update(
    app: &App,
    project_id: &str,
    conversation_id: &str,
    id: &str,
    change: AssignmentChange,
) -> Result<Assignment, AppError> {
    let mut a = assignments::get(app.db(), project_id, conversation_id, id)
        .await?
        .ok_or(AppError::NotFound("Assignment"))?;
    if let Some(user_id) = change.user_id {
        check_member(app, project_id, &user_id).await?;
        a.user_id = user_id;
    }
    if let Some(notes) = change.notes {
        check_notes(notes.as_deref())?;
        a.notes = notes;
    }
    if let Some(active) = change.active {
        a.active = active;
    }
    a.updated_at = app.now();
    settle(|| assignments::update(app.db(), &a)).await?;
    let phone_number_id = check_conversation(app, project_id, conversation_id).await?;
    announce(app, &a, phone_number_id).await;
    Ok(a)
}
