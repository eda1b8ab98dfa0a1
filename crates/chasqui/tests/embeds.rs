//! End-to-end: inbox embeds, managed in the Platform API and used through `/embed/{token}`
//! and `/embed-api/*`, confined to their scope, refused once expired or revoked, on SQLite
//! and PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chasqui::config::ConfigArgs;
use chasqui_core::{Clock, ManualClock, SystemClock};
use common::{Backend, CLOUD_PNID, Harness, login};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn embed_get(h: &Harness, token: &str, path: &str) -> (u16, Value) {
    let r = h
        .http
        .get(h.url(path))
        .header("x-embed-token", token)
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn embed_post(h: &Harness, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = h
        .http
        .post(h.url(path))
        .header("x-embed-token", token)
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON text frame within 10 s.
async fn next_text(socket: &mut Socket) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

async fn embeds_are_confined_to_their_scope(backend: Backend) {
    let clock = ManualClock::new(SystemClock.now());
    let h =
        Harness::start_with_clock(backend, ConfigArgs::default(), Arc::new(clock.clone())).await;

    // Precise 422s.
    let (status, body) = h
        .post(
            "/platform/v1/inbox_embeds",
            json!({"inbox_embed": {"scope_type": "phone_number", "scope_id": "999", "allowed_origins": ["example.com", "https://a.com/x"], "default_mode": "neon"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let errors = body["errors"].to_string();
    for part in ["name is required", "999", "example.com", "a.com/x", "neon"] {
        assert!(errors.contains(part), "{part} in {errors}");
    }
    // Members cannot create embeds.
    let (_, agent) = h
        .post(
            "/platform/v1/users",
            json!({"user": {"email": "agent@example.com", "role": "member", "password": "agent-password"}}),
        )
        .await;
    assert!(agent["data"]["id"].is_string(), "{agent}");
    let member = login(&h, "agent@example.com", "agent-password")
        .await
        .expect("member");
    let (status, _) = member
        .post(&h, "/platform/v1/inbox_embeds", json!({"name": "x"}))
        .await;
    assert_eq!(status, 403);

    let (status, created) = h
        .post(
            "/platform/v1/inbox_embeds",
            json!({"inbox_embed": {"name": "Support widget", "scope_type": "phone_number", "scope_id": h.sandbox_pnid,
                "allowed_origins": ["https://*.example.com", "https://shop.test"], "default_mode": "dark"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["data"]["token"].as_str().expect("token").to_owned();
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    assert!(
        created["data"]["embed_url"]
            .as_str()
            .expect("url")
            .ends_with(&format!("/embed/{token}"))
    );
    // The token is shown once.
    let (_, read) = h.get(&format!("/platform/v1/inbox_embeds/{id}")).await;
    assert!(read["data"].get("token").is_none(), "{read}");
    assert_eq!(read["data"]["status"], "active");
    assert!(token.starts_with(read["data"]["token_prefix"].as_str().expect("prefix")));

    // One conversation on the embed's number, one on another number.
    h.customer_says(
        "5491100000011",
        "Ana",
        json!({"type": "text", "text": {"body": "on the sandbox"}}),
    )
    .await;
    let body = common::envelope(vec![common::text_change(
        "wamid.OTHER1",
        "16505550199",
        common::now_secs(),
        "on the cloud number",
    )]);
    assert_eq!(h.post_webhook(&body, None).await, 200);
    h.settle().await;
    let (_, all) = h.get("/platform/v1/whatsapp/conversations").await;
    let find = |pnid: &str| {
        all["data"]
            .as_array()
            .expect("list")
            .iter()
            .find(|c| c["phone_number_id"] == pnid)
            .expect("conversation")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let (inside, outside) = (find(&h.sandbox_pnid), find(CLOUD_PNID));

    // The page is framed only by the allowed origins.
    let r = h
        .http
        .get(h.url(&format!("/embed/{token}")))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.ends_with("frame-ancestors https://*.example.com https://shop.test"),
        "{csp}"
    );

    // The embed API sees its number's conversation and nothing else.
    let (status, session) = embed_get(&h, &token, "/embed-api/session").await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["data"]["default_mode"], "dark");
    assert_eq!(
        session["data"]["phone_numbers"]
            .as_array()
            .expect("numbers")
            .len(),
        1
    );
    let (status, list) = embed_get(&h, &token, "/embed-api/conversations?status=active").await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![inside.as_str()]);
    let (status, _) = embed_get(
        &h,
        &token,
        &format!("/embed-api/conversations?phone_number_id={CLOUD_PNID}"),
    )
    .await;
    assert_eq!(status, 404);
    for path in [
        format!("/embed-api/conversations/{outside}"),
        format!("/embed-api/conversations/{outside}/messages"),
    ] {
        let (status, _) = embed_get(&h, &token, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = embed_post(
        &h,
        &token,
        &format!("/embed-api/conversations/{outside}/messages"),
        json!({"type": "text", "text": {"body": "leak"}}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, messages) = embed_get(
        &h,
        &token,
        &format!("/embed-api/conversations/{inside}/messages"),
    )
    .await;
    assert_eq!(status, 200, "{messages}");
    assert_eq!(messages["data"][0]["text"]["body"], "on the sandbox");
    // A send goes to the conversation's customer, whatever `to` says.
    let (status, sent) = embed_post(
        &h,
        &token,
        &format!("/embed-api/conversations/{inside}/messages"),
        json!({"to": "15550000000", "type": "text", "text": {"body": "Hola Ana"}}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["contacts"][0]["wa_id"], "5491100000011");
    let (status, _) = embed_get(&h, "che_not-a-token", "/embed-api/conversations").await;
    assert_eq!(status, 401);
    let (status, _) = embed_get(&h, &h.key, "/embed-api/conversations").await;
    assert_eq!(status, 401, "an API key is not an embed token");

    // The embed's realtime feed carries its number's changes only.
    let url = format!(
        "{}/embed-api/realtime?token={token}",
        h.base.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    assert_eq!(
        next_text(&mut socket).await.expect("ready")["type"],
        "ready"
    );
    let body = common::envelope(vec![common::text_change(
        "wamid.OTHER2",
        "16505550199",
        common::now_secs(),
        "not for the embed",
    )]);
    assert_eq!(h.post_webhook(&body, None).await, 200);
    h.settle().await;
    h.customer_says(
        "5491100000011",
        "Ana",
        json!({"type": "text", "text": {"body": "for the embed"}}),
    )
    .await;
    loop {
        let frame = next_text(&mut socket).await.expect("the sandbox change");
        assert_ne!(frame["phone_number_id"], CLOUD_PNID, "{frame}");
        if frame["type"] == "message" && frame["phone_number_id"] == h.sandbox_pnid.as_str() {
            break;
        }
    }

    // Expiry and revocation refuse the token at once.
    let (status, body) = h
        .send(
            Method::PATCH,
            &format!("/platform/v1/inbox_embeds/{id}"),
            json!({"inbox_embed": {"expires_at": "2020-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let soon = chasqui_core::clock::Timestamp(clock.now().millis() + 60_000).to_rfc3339();
    let (status, body) = h
        .send(
            Method::PATCH,
            &format!("/platform/v1/inbox_embeds/{id}"),
            json!({"inbox_embed": {"expires_at": soon}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = embed_get(&h, &token, "/embed-api/conversations").await;
    assert_eq!(status, 200);
    clock.advance_millis(61_000);
    let (status, body) = embed_get(&h, &token, "/embed-api/conversations").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().expect("error").contains("expired"));
    let r = h
        .http
        .get(h.url(&format!("/embed/{token}")))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 401);
    let (status, body) = h
        .send(
            Method::PATCH,
            &format!("/platform/v1/inbox_embeds/{id}"),
            json!({"inbox_embed": {"expires_at": null}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = embed_get(&h, &token, "/embed-api/conversations").await;
    assert_eq!(status, 200);
    let (status, body) = h
        .send(
            Method::DELETE,
            &format!("/platform/v1/inbox_embeds/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "revoked");
    let (status, body) = embed_get(&h, &token, "/embed-api/conversations").await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().expect("error").contains("revoked"));
}
both_backends!(embeds_are_confined_to_their_scope);
