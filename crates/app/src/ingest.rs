//! Receiving Meta's webhooks: verify the signature over the raw bytes, then store the raw
//! payload (which is also its processing job) through a group-commit writer, and only then
//! acknowledge. Processing happens apart, in [`crate::processing`].

use chasqui_core::ids::new_id;
use chasqui_meta::webhook::Routing;
use chasqui_store::events::{self, NewEvent};
use tokio::sync::{mpsc, oneshot};

use crate::App;

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is not a WhatsApp webhook envelope (400).
    #[error("malformed webhook payload: {0}")]
    Malformed(String),
    /// The signature is missing or does not match the app secret of the numbers named (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Storing failed; Meta will retry (503).
    #[error("could not store the delivery: {0}")]
    Unavailable(String),
}

/// Handle to the group-commit writer.
#[derive(Debug, Clone)]
pub struct IngestQueue {
    tx: mpsc::Sender<(NewEvent, oneshot::Sender<Result<(), String>>)>,
}

/// Most deliveries committed in one transaction.
const MAX_BATCH: usize = 1024;

impl IngestQueue {
    /// Starts the writer task. It stops once every queue handle is dropped and the queue drained.
    pub fn start(app: App) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) =
            mpsc::channel::<(NewEvent, oneshot::Sender<Result<(), String>>)>(8 * MAX_BATCH);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (events, replies): (Vec<NewEvent>, Vec<_>) = batch.drain(..).unzip();
                let started = std::time::Instant::now();
                let count = events.len();
                // Off the request workers: on SQLite the statement and its fsync run on the
                // thread that holds the inbox connection.
                let db = app.db().clone();
                let result = tokio::task::spawn_blocking(move || {
                    tokio::runtime::Handle::current().block_on(events::insert_batch(&db, events))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
                tracing::trace!(
                    count,
                    micros = started.elapsed().as_micros() as u64,
                    "ingest batch"
                );
                if let Err(e) = &result {
                    tracing::error!(error = %e, count, "storing inbound webhooks failed");
                }
                for reply in replies {
                    let _ = reply.send(result.clone());
                }
                // For the processing loop (stored deliveries from Meta make no webhook
                // deliveries by themselves).
                app.wake_workers();
            }
        });
        (Self { tx }, task)
    }

    async fn store(&self, event: NewEvent) -> Result<(), IngestError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((event, reply))
            .await
            .map_err(|_| IngestError::Unavailable("shutting down".into()))?;
        done.await
            .map_err(|_| IngestError::Unavailable("writer stopped".into()))?
            .map_err(IngestError::Unavailable)
    }
}

/// Verifies and durably stores one delivery; returns once it is committed.
pub async fn accept(
    app: &App,
    queue: &IngestQueue,
    signature: Option<&str>,
    body: &[u8],
) -> Result<String, IngestError> {
    let envelope = Routing::parse(body).map_err(|e| IngestError::Malformed(e.to_string()))?;
    if envelope.object != "whatsapp_business_account" {
        return Err(IngestError::Malformed(format!(
            "unsupported object {:?}",
            envelope.object
        )));
    }
    let signature = signature.ok_or(IngestError::Unauthorized("missing X-Hub-Signature-256"))?;
    let (numbers, wabas) = envelope.addressees();
    verify(app, &numbers, &wabas, signature, body).await?;
    let text =
        String::from_utf8(body.to_vec()).map_err(|e| IngestError::Malformed(e.to_string()))?;
    let id = new_id();
    queue
        .store(NewEvent {
            id: id.clone(),
            body: text,
            received_at: app.now(),
        })
        .await?;
    Ok(id)
}

/// Every number the payload names must be ours and signed by its app secret; a payload that
/// names only a WABA must be signed by the app secret of one of that account's numbers.
async fn verify(
    app: &App,
    numbers: &[String],
    wabas: &[String],
    signature: &str,
    body: &[u8],
) -> Result<(), IngestError> {
    let check = |force: bool| async move {
        let (by_number, by_waba) = app
            .directory()
            .routes(numbers, wabas, force)
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        let ok = if !numbers.is_empty() {
            by_number.len() == numbers.len()
                && by_number.iter().all(|r| {
                    chasqui_meta::verify(r.app_secret.expose().as_bytes(), body, signature)
                })
        } else {
            by_waba
                .iter()
                .any(|r| chasqui_meta::verify(r.app_secret.expose().as_bytes(), body, signature))
        };
        Ok::<bool, IngestError>(ok)
    };
    if check(false).await? || check(true).await? {
        Ok(())
    } else {
        Err(IngestError::Unauthorized(
            "invalid signature or unknown phone number",
        ))
    }
}
