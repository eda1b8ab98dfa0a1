//! The inbox's realtime feed: `GET /platform/v1/realtime` upgrades to a WebSocket that
//! carries the project's change notices (`message`, `status`, `conversation`, `assignment`,
//! and `resync` when notices may have been missed). A notice names what changed; the client
//! reads it through the API.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use chasqui_app::AppError;
use chasqui_store::notifier::Change;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::{Actor, Auth};
use crate::error::ApiError;

/// How often an idle socket is pinged (proxies drop silent connections).
const PING_EVERY: Duration = Duration::from_secs(25);

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/realtime", get(realtime))
}

/// Whether a browser's `Origin` is this server (cookie-authenticated sockets only: another
/// site's page must not open one with the user's cookie).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

async fn realtime(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if matches!(auth.actor, Actor::User { .. }) && !same_origin(&headers) {
        return Err(ApiError(AppError::Forbidden(
            "a session's realtime feed opens only from this server's pages".into(),
        )));
    }
    let rx = state.app.notifier().subscribe();
    let project_id = auth.project_id;
    Ok(ws.on_upgrade(move |socket| {
        feed(socket, rx, move |c: &Change| {
            c.project_id == project_id || c.project_id == "*"
        })
    }))
}

fn frame(c: &Change) -> Message {
    Message::Text(
        json!({
            "type": c.kind,
            "phone_number_id": c.phone_number_id,
            "conversation_id": c.conversation_id,
            "wamid": c.wamid,
        })
        .to_string()
        .into(),
    )
}

/// Forwards the changes `visible` lets through until the client leaves.
pub(crate) async fn feed(
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<std::sync::Arc<Change>>,
    visible: impl Fn(&Change) -> bool + Send,
) {
    if socket
        .send(Message::Text(json!({"type": "ready"}).to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let out = tokio::select! {
            received = rx.recv() => match received {
                Ok(c) if visible(&c) => frame(&c),
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => Message::Text(json!({"type": "resync"}).to_string().into()),
                Err(RecvError::Closed) => break,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
        };
        if socket.send(out).await.is_err() {
            break;
        }
    }
}
