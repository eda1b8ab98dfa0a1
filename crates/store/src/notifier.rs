//! Realtime change notices for open inboxes: a broadcast inside the process on SQLite (one
//! node owns the file), `LISTEN/NOTIFY` on PostgreSQL so that every node hears the changes
//! any node made. A notice only says what changed; clients read the data through the API.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::{Backend, Db};

/// The PostgreSQL channel.
const CHANNEL: &str = "chasqui_realtime";
/// PostgreSQL refuses payloads of 8000 bytes or more; notices are sent in batches below it.
const MAX_PAYLOAD: usize = 7_000;
/// Notices a slow subscriber may lag behind before it is told to resynchronise.
const CAPACITY: usize = 4_096;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Change {
    /// The project it belongs to (subscribers only see their own).
    pub project_id: String,
    /// `message` (stored or sent), `status` (of a message), `conversation` (status or
    /// fields), `assignment`, or `resync` (notices may have been missed: read everything
    /// again).
    pub kind: String,
    /// The business number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    /// The conversation, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The message, for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wamid: Option<String>,
}

/// Publishes and fans out [`Change`]s.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: broadcast::Sender<Arc<Change>>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    /// A notifier with no subscribers yet.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Self { tx }
    }

    /// Receives every change published from now on (on PostgreSQL, by any node whose
    /// listener runs; see [`Notifier::listen`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    fn fan_out(&self, change: Change) {
        // No subscriber is not an error.
        let _ = self.tx.send(Arc::new(change));
    }

    /// Publishes changes that are committed. On PostgreSQL they go through `NOTIFY` (and come
    /// back to this node through its listener); on SQLite straight to the subscribers.
    pub async fn publish(&self, db: &Db, changes: Vec<Change>) -> crate::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        match db.backend() {
            Backend::Sqlite => {
                for c in changes {
                    self.fan_out(c);
                }
                Ok(())
            }
            Backend::Postgres => {
                for payload in payloads(&changes) {
                    crate::sql::query("SELECT pg_notify($1, $2)")
                        .bind(CHANNEL)
                        .bind(payload)
                        .execute(db.writer())
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// On PostgreSQL, listens to the channel until `shutdown` and fans every notice out to
    /// this node's subscribers; after a lost connection it reconnects and tells every
    /// project's subscribers to resynchronise. Nothing to do on SQLite.
    pub fn listen(
        &self,
        database_url: &str,
        backend: Backend,
        shutdown: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if backend != Backend::Postgres {
            return None;
        }
        let (this, url) = (self.clone(), database_url.to_owned());
        Some(tokio::spawn(async move {
            let mut first = true;
            while !shutdown.is_cancelled() {
                match this.listen_once(&url, &shutdown, first).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "realtime listener lost its connection; reconnecting");
                        first = false;
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.cancelled() => return,
                        }
                    }
                }
            }
        }))
    }

    async fn listen_once(
        &self,
        url: &str,
        shutdown: &CancellationToken,
        first: bool,
    ) -> Result<(), sqlx::Error> {
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        if !first {
            // Notices sent while the connection was down are lost: everyone reads again.
            self.fan_out(Change {
                project_id: "*".into(),
                kind: "resync".into(),
                phone_number_id: None,
                conversation_id: None,
                wamid: None,
            });
        }
        loop {
            let notification = tokio::select! {
                n = listener.recv() => n?,
                _ = shutdown.cancelled() => return Ok(()),
            };
            match serde_json::from_str::<Vec<Change>>(notification.payload()) {
                Ok(changes) => changes.into_iter().for_each(|c| self.fan_out(c)),
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed realtime notice"),
            }
        }
    }
}

/// JSON arrays of changes, each below PostgreSQL's payload limit.
fn payloads(changes: &[Change]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 2;
    for c in changes {
        let Ok(text) = serde_json::to_string(c) else {
            continue;
        };
        if text.len() + 2 > MAX_PAYLOAD {
            continue;
        }
        if size + text.len() + 1 > MAX_PAYLOAD && !current.is_empty() {
            out.push(format!("[{}]", current.join(",")));
            current.clear();
            size = 2;
        }
        size += text.len() + 1;
        current.push(text);
    }
    if !current.is_empty() {
        out.push(format!("[{}]", current.join(",")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_below_the_postgres_limit_and_keep_every_change() {
        let changes: Vec<Change> = (0..500)
            .map(|i| Change {
                project_id: format!("project-{i}"),
                kind: "message".into(),
                phone_number_id: Some("123".into()),
                conversation_id: Some(format!("conversation-{i:05}")),
                wamid: None,
            })
            .collect();
        let batches = payloads(&changes);
        assert!(batches.len() > 1);
        let mut back = Vec::new();
        for b in &batches {
            assert!(b.len() < MAX_PAYLOAD, "{}", b.len());
            back.extend(serde_json::from_str::<Vec<Change>>(b).expect("json"));
        }
        assert_eq!(back, changes);
    }
}
