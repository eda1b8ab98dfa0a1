//! Sending through the Meta-compatible proxy: validate, record the message (pending, in
//! flight) and its conversation before the Graph call, then store Meta's answer. One send at
//! a time per conversation; an `Idempotency-Key` replays the first answer.

use chasqui_core::ids::new_id;
use chasqui_core::status::{CONVERSATION_IDLE_MILLIS, MessageStatus};
use chasqui_meta::graph::GraphClient;
use chasqui_store::contacts::{self, Identity};
use chasqui_store::conversations::{self, Activity};
use chasqui_store::idempotency::{self, Claim};
use chasqui_store::messages::{self, NewMessage};
use chasqui_store::numbers::PhoneNumber;
use chasqui_store::projects::is_unique_violation;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::App;

/// How long an in-flight send may last before it is considered interrupted.
const IN_FLIGHT_MILLIS: i64 = 60_000;
/// Why a send did not reach Meta.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request is invalid (Meta's error 100, HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// A free-form message outside the 24-hour customer-service window (Meta's 131047),
    /// refused before spending a Graph call.
    #[error(
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
    )]
    WindowClosed,
    /// Another message of the conversation is in flight (409, retry shortly).
    #[error("another message is in flight for this conversation; retry shortly")]
    InFlight,
    /// The idempotency key was used with another body (422).
    #[error("Idempotency-Key was already used with a different request body")]
    KeyReused,
    /// The first request with this idempotency key is still running (409).
    #[error("a request with this Idempotency-Key is still in progress")]
    KeyInProgress,
    /// Meta could not be reached (502).
    #[error("the Graph API could not be reached: {0}")]
    Upstream(String),
    /// Storage failed (500).
    #[error(transparent)]
    Store(#[from] chasqui_store::StoreError),
}

/// Meta's answer, passed through unchanged.
#[derive(Debug, Clone)]
pub struct GraphAnswer {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

fn invalid(details: impl Into<String>) -> SendError {
    SendError::Invalid(details.into())
}

/// The recipient's wa_id from `to`/`recipient` (digits only).
fn recipient(request: &serde_json::Map<String, Value>) -> Result<String, SendError> {
    let raw = request
        .get("to")
        .or_else(|| request.get("recipient"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("The parameter to is required."))?;
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let clean = raw
        .chars()
        .all(|c| c.is_ascii_digit() || "+ -()".contains(c));
    if !clean || !(5..=20).contains(&digits.len()) {
        return Err(invalid(format!(
            "The parameter to is not a valid phone number: {raw:?}"
        )));
    }
    Ok(digits)
}

/// Sends `body` (Meta's send request) from `number`.
pub async fn send(
    app: &App,
    number: &PhoneNumber,
    body: &[u8],
    idempotency_key: Option<&str>,
) -> Result<GraphAnswer, SendError> {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("The request body must be a JSON object."));
    };
    let key = match idempotency_key {
        Some(k) if k.is_empty() || k.len() > 255 => {
            return Err(invalid("Idempotency-Key must be 1 to 255 characters."));
        }
        other => other,
    };
    if let Some(key) = key {
        let canonical = serde_json::to_vec(&request).unwrap_or_default();
        let hash = hex::encode(Sha256::digest(&canonical));
        match idempotency::claim(app.db(), &number.project_id, key, &hash, app.now()).await? {
            Claim::New => {}
            Claim::Done { status, body } => {
                return Ok(GraphAnswer {
                    status,
                    body: body.into_bytes(),
                });
            }
            Claim::InProgress => return Err(SendError::KeyInProgress),
            Claim::Mismatch => return Err(SendError::KeyReused),
        }
    }
    let result = send_once(app, number, request).await;
    if let Some(key) = key {
        match &result {
            Ok(answer) => {
                let text = String::from_utf8_lossy(&answer.body);
                idempotency::complete(app.db(), &number.project_id, key, answer.status, &text)
                    .await?;
            }
            // Nothing reached Meta: the same key may be retried.
            Err(_) => idempotency::release(app.db(), &number.project_id, key).await?,
        }
    }
    result
}

async fn send_once(
    app: &App,
    number: &PhoneNumber,
    request: serde_json::Map<String, Value>,
) -> Result<GraphAnswer, SendError> {
    let creds =
        crate::numbers::credentials(app, number).map_err(|e| SendError::Upstream(e.to_string()))?;
    let graph = GraphClient::new(app.http().clone(), &app.graph_base_url(number.kind));
    let raw = serde_json::to_vec(&request).unwrap_or_default();

    // Mark-as-read (and typing indicators) change no stored message: pass through.
    if request.get("status").and_then(Value::as_str) == Some("read") {
        if request.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
            return Err(invalid(
                "The parameter messaging_product is required and must be \"whatsapp\".",
            ));
        }
        if request.get("message_id").and_then(Value::as_str).is_none() {
            return Err(invalid("The parameter message_id is required."));
        }
        let (status, body) = graph
            .send_message(&number.phone_number_id, creds.access_token.expose(), raw)
            .await
            .map_err(|e| SendError::Upstream(e.to_string()))?;
        return Ok(GraphAnswer {
            status,
            body: body.to_vec(),
        });
    }

    let kind = chasqui_meta::send::validate(&request).map_err(SendError::Invalid)?;
    let wa_id = recipient(&request)?;
    let now = app.now();
    let db = app.db();

    // Media sent by the id of a file uploaded through the proxy links to that file.
    let media_id = match request
        .get(&kind)
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
    {
        Some(meta_id) if chasqui_meta::content::MEDIA_TYPES.contains(&kind.as_str()) => {
            chasqui_store::media::find_meta(
                db,
                &number.project_id,
                &number.phone_number_id,
                meta_id,
            )
            .await?
            .map(|m| m.id)
        }
        _ => None,
    };
    let id = new_id();
    let has_media = chasqui_meta::content::MEDIA_TYPES.contains(&kind.as_str());
    let content = chasqui_meta::content::render(&Value::Object(request));
    let message = NewMessage {
        id: id.clone(),
        project_id: number.project_id.clone(),
        phone_number_id: number.phone_number_id.clone(),
        conversation_id: None,
        contact_id: None,
        wamid: format!("pending.{id}"),
        direction: "outbound".into(),
        message_type: kind.clone(),
        status: MessageStatus::Pending.as_str().into(),
        status_rank: MessageStatus::Pending.rank(),
        // The same compact serialization as the bytes sent to Meta.
        body: String::from_utf8_lossy(&raw).into_owned(),
        content: content.clone(),
        has_media,
        media_id,
        sent_at: now,
        created_at: now,
    };

    // The contact, its conversation and the pending message exist before the call; outside
    // the customer-service window only templates may go, refused before any write.
    let window = if kind == "template" {
        Window::Ignore
    } else {
        Window::Require
    };
    let conversation_id = match begin(app, &wa_id, &message, window).await? {
        Begun::Started(conversation_id) => conversation_id,
        Begun::WindowClosed => return Err(SendError::WindowClosed),
        Begun::Busy(conversation_id) => {
            // One send per conversation at a time; an abandoned one does not block forever.
            if !messages::expire_in_flight(db, &conversation_id, now - IN_FLIGHT_MILLIS, now)
                .await?
            {
                return Err(SendError::InFlight);
            }
            match begin(app, &wa_id, &message, window).await? {
                Begun::Started(conversation_id) => conversation_id,
                Begun::WindowClosed => return Err(SendError::WindowClosed),
                Begun::Busy(_) => return Err(SendError::InFlight),
            }
        }
    };

    let answer = graph
        .send_message(&number.phone_number_id, creds.access_token.expose(), raw)
        .await;
    let (status, body) = match answer {
        Ok(found) => found,
        Err(e) => {
            let error = format!("{{\"transport\":{:?}}}", e.to_string());
            finish(app, number, id, conversation_id, Outcome::Failed(error)).await?;
            return Err(SendError::Upstream(e.to_string()));
        }
    };
    let wamid = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.pointer("/messages/0/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let outcome = match wamid {
        Some(wamid) if (200..300).contains(&status) => Outcome::Accepted {
            phone_number_id: number.phone_number_id.clone(),
            wamid,
            kind,
            content,
            at: now,
        },
        _ => Outcome::Failed(String::from_utf8_lossy(&body).into_owned()),
    };
    finish(app, number, id, conversation_id, outcome).await?;
    Ok(GraphAnswer {
        status,
        body: body.to_vec(),
    })
}

/// Whether a send needs the customer-service window open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Free-form messages: the customer wrote in the last 24 hours.
    Require,
    /// Templates go at any time.
    Ignore,
}

/// Whether a send could start in its conversation.
enum Begun {
    /// The window is closed: nothing was written.
    WindowClosed,
    /// The pending message is stored, in flight, in this conversation.
    Started(String),
    /// Another send of this conversation is in flight.
    Busy(String),
}

/// Stores the contact, its current conversation and the pending in-flight message in one
/// group-committed unit, once the window (when required) is found open in that same
/// transaction.
async fn begin(
    app: &App,
    wa_id: &str,
    message: &NewMessage,
    window: Window,
) -> Result<Begun, SendError> {
    let now = app.now();
    let begun = app
        .write_unit(|| {
            let (wa_id, mut message) = (wa_id.to_owned(), message.clone());
            move |conn: &mut chasqui_store::Conn| -> futures::future::BoxFuture<'_, chasqui_store::Result<Begun>> {
            Box::pin(async move {
                if window == Window::Require {
                    let last_inbound = conversations::last_inbound_at(
                        &mut *conn,
                        &message.project_id,
                        &message.phone_number_id,
                        &wa_id,
                    )
                    .await?;
                    let open = last_inbound.is_some_and(|t| {
                        t + chasqui_core::status::CUSTOMER_SERVICE_WINDOW_MILLIS > now
                    });
                    if !open {
                        return Ok(Begun::WindowClosed);
                    }
                }
                let identity = Identity {
                    wa_id: Some(wa_id),
                    user_id: None,
                    profile_name: None,
                };
                let contact_id =
                    contacts::upsert(conn, &message.project_id, &identity, &new_id(), now).await?;
                let thread = conversations::Thread {
                    project_id: &message.project_id,
                    phone_number_id: &message.phone_number_id,
                    contact_id: &contact_id,
                };
                let (conversation_id, _) = conversations::current(
                    conn,
                    thread,
                    &new_id(),
                    now,
                    CONVERSATION_IDLE_MILLIS,
                    now,
                )
                .await?;
                if messages::in_flight(conn, &conversation_id).await? {
                    return Ok(Begun::Busy(conversation_id));
                }
                message.conversation_id = Some(conversation_id.clone());
                message.contact_id = Some(contact_id);
                messages::start_send(conn, &message).await?;
                Ok(Begun::Started(conversation_id))
            })
        }})
        .await;
    match begun {
        Ok(b) => Ok(b),
        // Another node started a send in the same conversation at the same moment.
        Err(e) if is_unique_violation(&e) => Err(SendError::InFlight),
        Err(e) => Err(e.into()),
    }
}

/// How Meta answered a send.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Meta accepted it under this wamid.
    Accepted {
        phone_number_id: String,
        wamid: String,
        kind: String,
        content: String,
        at: i64,
    },
    /// Meta refused it (its error body) or could not be reached.
    Failed(String),
}

/// Stores Meta's answer and frees the conversation, in one group-committed unit.
async fn finish(
    app: &App,
    number: &PhoneNumber,
    id: String,
    conversation_id: String,
    outcome: Outcome,
) -> Result<(), SendError> {
    let now = app.now();
    app.write_unit(|| {
        let (project_id, phone_number_id) =
            (number.project_id.clone(), number.phone_number_id.clone());
        let (id, conversation_id, outcome) = (id.clone(), conversation_id.clone(), outcome.clone());
        move |conn: &mut chasqui_store::Conn| -> futures::future::BoxFuture<'_, chasqui_store::Result<()>> {
            Box::pin(async move {
                record_outcome(
                    conn,
                    &project_id,
                    &phone_number_id,
                    &id,
                    &conversation_id,
                    outcome,
                    now,
                )
                .await
            })
        }
    })
    .await?;
    app.publish_changes(vec![chasqui_store::notifier::Change {
        project_id: number.project_id.clone(),
        kind: "message".into(),
        phone_number_id: Some(number.phone_number_id.clone()),
        conversation_id: Some(conversation_id),
        wamid: None,
    }])
    .await;
    Ok(())
}

/// Stores Meta's answer to the send of message `id` and frees its conversation; a refusal
/// publishes `whatsapp.message.failed`.
pub(crate) async fn record_outcome(
    conn: &mut chasqui_store::Conn,
    project_id: &str,
    phone_number_id: &str,
    id: &str,
    conversation_id: &str,
    outcome: Outcome,
    now: i64,
) -> Result<(), chasqui_store::StoreError> {
    match outcome {
        Outcome::Accepted {
            phone_number_id,
            wamid,
            kind,
            content,
            at,
        } => {
            messages::finish_send(conn, id, &phone_number_id, &wamid, now).await?;
            let activity = Activity {
                wamid: &wamid,
                message_type: &kind,
                text: &content,
                at,
                inbound: false,
                order: id,
            };
            conversations::record_activity(conn, conversation_id, &activity, now).await
        }
        Outcome::Failed(error) => {
            messages::fail_send(conn, id, &error, now).await?;
            // Meta refused it: subscribers hear `whatsapp.message.failed` now.
            let wamid = format!("pending.{id}");
            let event = crate::webhooks::MessageEvent {
                project_id,
                phone_number_id,
                event_type: "whatsapp.message.failed",
                wamid: &wamid,
                conversation_id: Some(conversation_id),
                is_new_conversation: false,
                order: None,
            };
            crate::webhooks::publish_message(conn, event, now).await?;
            Ok(())
        }
    }
}
