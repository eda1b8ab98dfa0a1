//! Conversation lifecycle changes that others hear about: ending idle conversations, ending
//! or reopening one by request, and the `whatsapp.conversation.*` events they publish in the
//! same transaction.

use chasqui_store::conversations::{self, Conversation};
use chasqui_store::projects::is_unique_violation;

use crate::{App, AppError, webhooks};

/// Conversations ended per transaction by the sweeper.
const SWEEP_BATCH: i64 = 500;

/// Ends every conversation idle for `idle_millis` and publishes `whatsapp.conversation.ended`
/// for each; returns how many.
pub async fn end_idle(app: &App, idle_millis: i64) -> Result<u64, AppError> {
    let mut total = 0u64;
    loop {
        let now = app.now();
        let mut tx = app.db().writer().begin().await.map_err(store_error)?;
        let ended =
            conversations::end_idle(&mut tx, app.db().backend(), idle_millis, now, SWEEP_BATCH)
                .await?;
        for c in &ended {
            webhooks::publish_conversation(
                &mut tx,
                &c.project_id,
                &c.phone_number_id,
                "whatsapp.conversation.ended",
                &c.id,
                now,
            )
            .await?;
        }
        tx.commit().await.map_err(store_error)?;
        total += ended.len() as u64;
        if (ended.len() as i64) < SWEEP_BATCH {
            if total > 0 {
                app.wake();
            }
            return Ok(total);
        }
    }
}

fn store_error(e: chasqui_store::StoreError) -> AppError {
    AppError::Store(e)
}

/// Ends (`ended`) or reopens (`active`) a conversation of the project; returns it after.
/// Ending publishes `whatsapp.conversation.ended` in the same transaction.
pub async fn set_status(
    app: &App,
    project_id: &str,
    id: &str,
    status: Option<&str>,
) -> Result<Conversation, AppError> {
    let db = app.db();
    let current = conversations::get(db, project_id, id)
        .await?
        .ok_or(AppError::NotFound("Conversation"))?;
    match status {
        None => {}
        Some(s) if s == current.status => {}
        Some(s @ ("ended" | "active")) => {
            let now = app.now();
            let mut tx = db.writer().begin().await.map_err(store_error)?;
            match conversations::set_status(&mut tx, project_id, id, s, now).await {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(AppError::Conflict(
                        "another conversation with this contact is active".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            if s == "ended" {
                webhooks::publish_conversation(
                    &mut tx,
                    project_id,
                    &current.phone_number_id,
                    "whatsapp.conversation.ended",
                    id,
                    now,
                )
                .await?;
            }
            tx.commit().await.map_err(store_error)?;
            app.wake();
            app.publish_changes(vec![chasqui_store::notifier::Change {
                project_id: project_id.to_owned(),
                kind: "conversation".into(),
                phone_number_id: Some(current.phone_number_id.clone()),
                conversation_id: Some(id.to_owned()),
                wamid: None,
            }])
            .await;
        }
        Some(other) => {
            return Err(AppError::invalid(format!(
                "status must be active or ended, not {other:?}"
            )));
        }
    }
    conversations::get(db, project_id, id)
        .await?
        .ok_or(AppError::NotFound("Conversation"))
}
