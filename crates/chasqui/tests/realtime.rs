//! End-to-end: the inbox's realtime feed over a WebSocket (session or API key), the proxy
//! sending with a session and its CSRF token, and, on PostgreSQL, a change made by one node
//! reaching a socket held by another.

mod common;

use std::time::Duration;

use chasqui::config::ConfigArgs;
use common::{Backend, Harness, login};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the feed with extra request headers; returns the socket after its `ready` frame,
/// or the HTTP status of a refused handshake.
async fn open(h: &Harness, headers: &[(&'static str, String)]) -> Result<Socket, u16> {
    let url = format!(
        "{}/platform/v1/realtime",
        h.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().expect("request");
    for (k, v) in headers {
        request
            .headers_mut()
            .insert(*k, v.parse().expect("header value"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, _)) => {
            let first = next_frame(&mut socket).await.expect("ready frame");
            assert_eq!(first["type"], "ready");
            Ok(socket)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("websocket: {e}"),
    }
}

/// The next JSON frame within 10 s (pings are skipped).
async fn next_frame(socket: &mut Socket) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).ok();
        }
    }
}

/// Frames until one matches, up to 10 s each.
async fn frame_where(socket: &mut Socket, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    loop {
        let frame = next_frame(socket)
            .await
            .unwrap_or_else(|| panic!("no frame for {what}"));
        if check(&frame) {
            return frame;
        }
    }
}

async fn the_inbox_hears_changes_as_they_happen(backend: Backend) {
    let h = Harness::start(backend).await;
    let owner = login(&h, &h.owner_email, &h.owner_password)
        .await
        .expect("owner");
    let host = h.base.trim_start_matches("http://").to_owned();
    let mut socket = open(
        &h,
        &[
            ("cookie", owner.cookie.clone()),
            ("origin", format!("http://{host}")),
        ],
    )
    .await
    .expect("the session opens the feed");

    // Another site's page cannot open it with the user's cookie.
    let refused = open(
        &h,
        &[
            ("cookie", owner.cookie.clone()),
            ("origin", "https://evil.example".to_owned()),
        ],
    )
    .await
    .err();
    assert_eq!(refused, Some(403));
    assert_eq!(open(&h, &[]).await.err(), Some(401));

    // Another project's socket hears nothing of this one.
    let other = chasqui_app::projects::create(h.app(), "Other")
        .await
        .expect("project");
    let mut stranger = open(&h, &[("x-api-key", other.api_key.clone())])
        .await
        .expect("key opens the feed");

    // A customer writes: the inbox hears of the message in its conversation.
    h.customer_says(
        "5491100000077",
        "Ana",
        json!({"type": "text", "text": {"body": "hola"}}),
    )
    .await;
    let heard = frame_where(&mut socket, "the inbound message", |f| {
        f["type"] == "message"
    })
    .await;
    assert_eq!(heard["phone_number_id"], h.sandbox_pnid.as_str());
    let conversation_id = heard["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_owned();
    let (status, list) = owner.get(&h, "/platform/v1/whatsapp/conversations").await;
    assert_eq!(status, 200);
    assert_eq!(list["data"][0]["id"], conversation_id.as_str());

    // The session replies through the proxy, with its CSRF token.
    let send_path = format!("/meta/whatsapp/v24.0/{}/messages", h.sandbox_pnid);
    let reply = json!({"messaging_product": "whatsapp", "to": "5491100000077", "type": "text", "text": {"body": "¡Hola Ana!"}});
    let (status, body) = owner
        .call(
            &h,
            reqwest::Method::POST,
            &send_path,
            Some(reply.clone()),
            false,
        )
        .await;
    assert_eq!(status, 403, "a send without the CSRF token: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("CSRF")
    );
    let (status, sent) = owner.post(&h, &send_path, reply).await;
    assert_eq!(status, 200, "{sent}");
    let wamid = sent["messages"][0]["id"]
        .as_str()
        .expect("wamid")
        .to_owned();
    frame_where(&mut socket, "the sent message", |f| {
        f["type"] == "message" && f["conversation_id"] == conversation_id.as_str()
    })
    .await;
    // Meta's statuses for it follow (the sandbox reports sent, delivered and read).
    frame_where(&mut socket, "a status of the reply", |f| {
        f["type"] == "status" && f["wamid"] == wamid.as_str()
    })
    .await;

    // Assigning and ending are heard too.
    let (status, body) = owner
        .post(
            &h,
            &format!("/platform/v1/whatsapp/conversations/{conversation_id}/assignments"),
            json!({"user_id": owner.user_id}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    frame_where(&mut socket, "the assignment", |f| f["type"] == "assignment").await;
    let (status, body) = owner
        .call(
            &h,
            reqwest::Method::PATCH,
            &format!("/platform/v1/whatsapp/conversations/{conversation_id}"),
            Some(json!({"status": "ended"})),
            true,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    frame_where(&mut socket, "the end", |f| {
        f["type"] == "conversation" && f["conversation_id"] == conversation_id.as_str()
    })
    .await;

    // Nothing of it reached the other project's socket.
    let leaked = tokio::time::timeout(Duration::from_millis(500), stranger.next()).await;
    assert!(
        !matches!(leaked, Ok(Some(Ok(Message::Text(_))))),
        "{leaked:?}"
    );
}
both_backends!(the_inbox_hears_changes_as_they_happen);

/// A socket on an API node hears a message that a worker node (sharing PostgreSQL) stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_cross_nodes_through_postgres() {
    if !common::postgres_available() {
        return;
    }
    let api = Harness::start_with(
        Backend::Postgres,
        ConfigArgs {
            role: Some("api".into()),
            ..Default::default()
        },
    )
    .await;
    let mut socket = open(&api, &[("x-api-key", api.key.clone())])
        .await
        .expect("feed");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("c.toml"), "").expect("config");
    let worker = chasqui::node::start(
        ConfigArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(api.dir.path().to_path_buf()),
            database_url: Some(api.database_url.clone()),
            config: Some(dir.path().join("c.toml")),
            role: Some("worker".into()),
            ..Default::default()
        }
        .resolve()
        .expect("config"),
    )
    .await
    .expect("worker");
    let body = common::envelope(vec![common::text_change(
        "wamid.CROSS1",
        "16505550001",
        common::now_secs(),
        "across nodes",
    )]);
    assert_eq!(api.post_webhook(&body, None).await, 200);
    let heard = frame_where(&mut socket, "the worker's change", |f| {
        f["type"] == "message" && f["wamid"] == "wamid.CROSS1"
    })
    .await;
    assert_eq!(heard["phone_number_id"], common::CLOUD_PNID);
    worker.stop();
    worker.wait().await.expect("worker stops");
}
