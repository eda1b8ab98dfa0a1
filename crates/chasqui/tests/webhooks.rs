//! End-to-end: outbound webhooks to a receiver on loopback, on SQLite and PostgreSQL.

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use common::{Backend, Harness, wait_until};
use serde_json::{Value, json};

/// A webhook receiver: records every request; answers 500 to the first `fail_first`.
#[derive(Clone, Default)]
struct Sink {
    seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    fail_first: Arc<Mutex<usize>>,
}

impl Sink {
    async fn start(fail_first: usize) -> (Self, String) {
        let sink = Sink::default();
        *sink.fail_first.lock().expect("lock") = fail_first;
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(sink.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (sink, url)
    }

    fn events(&self, event: &str) -> Vec<(HeaderMap, Value)> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(h, _)| h["x-webhook-event"] == event)
            .map(|(h, b)| (h.clone(), serde_json::from_slice(b).expect("json body")))
            .collect()
    }

    fn raw(&self, event: &str) -> Vec<(HeaderMap, Bytes)> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(h, _)| h["x-webhook-event"] == event)
            .cloned()
            .collect()
    }
}

async fn receive(State(sink): State<Sink>, headers: HeaderMap, body: Bytes) -> StatusCode {
    sink.seen.lock().expect("lock").push((headers, body));
    let mut left = sink.fail_first.lock().expect("lock");
    if *left > 0 {
        *left -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    chasqui_core::secrets::hmac_sha256_hex(key, body)
}

async fn message_events_are_signed_and_delivered(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    let (sink, url) = Sink::start(0).await;
    let path = format!("/platform/v1/whatsapp/phone_numbers/{pnid}/webhooks");

    // Validation.
    for (body, what) in [
        (
            json!({"url": "ftp://x.example/hook", "events": ["whatsapp.message.received"]}),
            "url",
        ),
        (
            json!({"url": url, "events": ["whatsapp.message.exploded"]}),
            "events",
        ),
        (json!({"url": url, "events": []}), "events"),
        (
            json!({"url": url, "events": ["whatsapp.message.received"], "buffer_window_seconds": 0}),
            "buffer_window_seconds",
        ),
        (
            json!({"url": url, "events": ["whatsapp.message.received"], "headers": {"X-Webhook-Event": "x"}}),
            "headers",
        ),
    ] {
        let (status, err) = h.post(&path, json!({ "whatsapp_webhook": body })).await;
        assert_eq!(status, 422, "{what}: {err}");
        assert!(err["errors"].to_string().contains(what), "{what}: {err}");
    }
    let (status, err) = h
        .post(
            "/platform/v1/whatsapp/webhooks",
            json!({"whatsapp_webhook": {"url": url, "kind": "meta"}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");

    let events = json!([
        "whatsapp.message.received",
        "whatsapp.message.sent",
        "whatsapp.message.delivered",
        "whatsapp.message.read",
        "whatsapp.conversation.created"
    ]);
    let (status, created) = h
        .post(&path, json!({"whatsapp_webhook": {"url": url, "events": events, "headers": {"X-Tenant": "acme"}}}))
        .await;
    assert_eq!(status, 201, "{created}");
    let hook = created["data"].clone();
    let secret = hook["secret_key"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(hook["kind"], "kapso");
    assert_eq!(hook["payload_version"], "v2");
    let (_, listed) = h.get(&path).await;
    assert_eq!(listed["data"].as_array().expect("list").len(), 1);
    let (_, project_level) = h.get("/platform/v1/whatsapp/webhooks").await;
    assert_eq!(project_level["data"].as_array().expect("list").len(), 0);

    // A customer writes: message.received and conversation.created arrive, signed.
    let wamid = h
        .customer_says(
            "15550001234",
            "Ana",
            json!({"type": "text", "text": {"body": "hola"}}),
        )
        .await;
    wait_until("message.received delivered", || async {
        !sink.events("whatsapp.message.received").is_empty()
            && !sink.events("whatsapp.conversation.created").is_empty()
    })
    .await;
    let (headers, body) = sink.raw("whatsapp.message.received").remove(0);
    assert_eq!(
        headers["x-webhook-signature"].to_str().expect("sig"),
        hmac_hex(secret.as_bytes(), &body)
    );
    assert_eq!(headers["x-webhook-payload-version"], "v2");
    assert_eq!(headers["x-tenant"], "acme");
    let key = headers["x-idempotency-key"]
        .to_str()
        .expect("key")
        .to_owned();
    assert_eq!(headers["webhook-id"].to_str().expect("id"), key);
    // Standard Webhooks: v1,<base64 HMAC of "id.timestamp.body"> keyed by the whsec_ secret.
    let timestamp = headers["webhook-timestamp"].to_str().expect("ts");
    let signed = [key.as_bytes(), b".", timestamp.as_bytes(), b".", &body].concat();
    let raw_key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("key");
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hex::decode(hmac_hex(&raw_key, &signed)).expect("hex"));
    assert_eq!(
        headers["webhook-signature"].to_str().expect("sig"),
        format!("v1,{expected}")
    );
    let payload: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(payload["message"]["id"], wamid.as_str());
    assert_eq!(payload["message"]["kapso"]["direction"], "inbound");
    assert_eq!(payload["message"]["kapso"]["content"], "hola");
    assert_eq!(payload["phone_number_id"], pnid.as_str());
    assert_eq!(payload["is_new_conversation"], true);
    assert!(payload["conversation"]["id"].is_string());

    // A reply: sent, delivered and read arrive with the status history.
    let (status, sent) = h
        .post(&format!("/meta/whatsapp/v24.0/{pnid}/messages"),
            json!({"messaging_product": "whatsapp", "to": "15550001234", "type": "text", "text": {"body": "hi Ana"}}))
        .await;
    assert_eq!(status, 200, "{sent}");
    let out = sent["messages"][0]["id"]
        .as_str()
        .expect("wamid")
        .to_owned();
    wait_until("read delivered", || async {
        !sink.events("whatsapp.message.read").is_empty()
    })
    .await;
    for event in [
        "whatsapp.message.sent",
        "whatsapp.message.delivered",
        "whatsapp.message.read",
    ] {
        let got = sink.events(event);
        assert_eq!(got.len(), 1, "{event} once");
        assert_eq!(got[0].1["message"]["id"], out.as_str());
        assert_eq!(got[0].1["message"]["kapso"]["direction"], "outbound");
    }
    let (_, read) = sink.events("whatsapp.message.read").remove(0);
    assert_eq!(
        read["message"]["kapso"]["statuses"]
            .as_array()
            .expect("history")
            .len(),
        3
    );

    // The delivery log shows every delivery with its attempt.
    let (status, log) = h
        .get("/platform/v1/webhook_deliveries?event=whatsapp.message.received")
        .await;
    assert_eq!(status, 200, "{log}");
    let first = &log["data"][0];
    assert_eq!(first["status"], "delivered");
    assert_eq!(first["attempts"][0]["response_status"], 200);
    assert!(first["attempts"][0]["latency_ms"].is_i64());

    // Deleting the webhook stops deliveries.
    let id = hook["id"].as_str().expect("id");
    let (status, _) = h
        .send(
            reqwest::Method::DELETE,
            &format!("{path}/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = h.get(&format!("{path}/{id}")).await;
    assert_eq!(status, 404);
}
both_backends!(message_events_are_signed_and_delivered);

async fn failures_are_retried_then_kept(backend: Backend) {
    let h = Harness::start(backend).await;
    let (sink, url) = Sink::start(2).await;
    let (status, _) = h
        .post(
            "/platform/v1/whatsapp/webhooks",
            json!({"whatsapp_webhook": {"url": url, "events": ["whatsapp.message.received"]}}),
        )
        .await;
    assert_eq!(status, 201);
    // Nothing listens on port 9 of loopback: every attempt fails.
    let (status, dead) = h
        .post("/platform/v1/whatsapp/webhooks",
            json!({"whatsapp_webhook": {"url": "http://127.0.0.1:9/hook", "events": ["whatsapp.message.received"]}}))
        .await;
    assert_eq!(status, 201, "{dead}");
    let dead_id = dead["data"]["id"].as_str().expect("id").to_owned();
    h.customer_says(
        "15550005555",
        "Bo",
        json!({"type": "text", "text": {"body": "are you there?"}}),
    )
    .await;

    // Two 500s, then a 200: three attempts, one idempotency key.
    wait_until("delivered after retries", || async {
        sink.events("whatsapp.message.received").len() == 3
    })
    .await;
    let got = sink.raw("whatsapp.message.received");
    let keys: Vec<_> = got
        .iter()
        .map(|(h, _)| h["x-idempotency-key"].clone())
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "stable key across retries"
    );
    assert!(
        got.windows(2).all(|w| w[0].1 == w[1].1),
        "retries send the same bytes"
    );

    // The dead endpoint exhausts its schedule (3 retries) and stays visible as failed.
    wait_until("exhausted", || async {
        let (_, log) = h
            .get(&format!(
                "/platform/v1/webhook_deliveries?webhook_id={dead_id}&status=failed"
            ))
            .await;
        log["data"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let (_, log) = h
        .get(&format!(
            "/platform/v1/webhook_deliveries?webhook_id={dead_id}"
        ))
        .await;
    let failed = &log["data"][0];
    assert_eq!(failed["attempt_count"], 4);
    assert_eq!(failed["attempts"].as_array().expect("attempts").len(), 4);
    assert!(failed["attempts"][0]["error"].is_string());
    let (_, ok_log) = h
        .get("/platform/v1/webhook_deliveries?status=delivered")
        .await;
    let delivered = &ok_log["data"][0];
    let codes: Vec<_> = delivered["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["response_status"].clone())
        .collect();
    assert_eq!(codes, vec![json!(500), json!(500), json!(200)]);
}
both_backends!(failures_are_retried_then_kept);
