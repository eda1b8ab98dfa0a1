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
    /// Answer 429 with `Retry-After: 2` to this many requests first.
    throttle_first: Arc<Mutex<usize>>,
    arrivals: Arc<Mutex<Vec<std::time::Instant>>>,
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

async fn receive(
    State(sink): State<Sink>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    sink.seen.lock().expect("lock").push((headers, body));
    sink.arrivals
        .lock()
        .expect("lock")
        .push(std::time::Instant::now());
    let mut throttled = sink.throttle_first.lock().expect("lock");
    if *throttled > 0 {
        *throttled -= 1;
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "2")]).into_response();
    }
    let mut left = sink.fail_first.lock().expect("lock");
    if *left > 0 {
        *left -= 1;
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

/// Subscribes a project webhook at `url` to `whatsapp.message.received`; returns its id.
async fn subscribe_received(h: &Harness, url: &str) -> String {
    let (status, created) = h
        .post(
            "/platform/v1/whatsapp/webhooks",
            json!({"whatsapp_webhook": {"url": url, "events": ["whatsapp.message.received"]}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["data"]["id"].as_str().expect("id").to_owned()
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
    subscribe_received(&h, &url).await;
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
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("chasqui_webhook_deliveries_failed 1"),
        "{metrics}"
    );
    let failed = &log["data"][0];
    assert_eq!(failed["attempt_count"], 4);
    assert_eq!(failed["attempts"].as_array().expect("attempts").len(), 4);
    assert!(failed["attempts"][0]["error"].is_string());
    // A failed delivery can be attempted again, alone or in bulk.
    let failed_id = failed["id"].as_str().expect("id").to_owned();
    let (status, one) = h
        .post(
            &format!("/platform/v1/webhook_deliveries/{failed_id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["data"]["requeued"], 1);
    let (status, _) = h
        .post(
            "/platform/v1/webhook_deliveries/no-such-delivery/retry",
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    wait_until("failed again", || async {
        let (_, log) = h
            .get(&format!(
                "/platform/v1/webhook_deliveries?webhook_id={dead_id}&status=failed"
            ))
            .await;
        log["data"][0]["attempt_count"] == 5
    })
    .await;
    let (status, bulk) = h
        .post(
            "/platform/v1/webhook_deliveries/recover",
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["data"]["requeued"], 1);
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

async fn pausing_resuming_and_recovery(backend: Backend) {
    // The owner hears about the pause by email.
    let smtp = common::SmtpSink::start().await;
    let h = Harness::start_with(
        backend,
        chasqui::config::ConfigArgs {
            smtp_url: Some(smtp.url()),
            ..Default::default()
        },
    )
    .await;
    let (sink, url) = Sink::start(1_000_000).await;
    let id = subscribe_received(&h, &url).await;

    // The test endpoint sends a signed event now and reports the answer.
    let (status, test) = h
        .post(
            &format!(
                "/platform/v1/whatsapp/webhooks/{id}/test?event_type=whatsapp.message.received"
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["data"]["success"], false);
    assert_eq!(test["data"]["response_status"], 500);
    let (status, _) = h
        .post(
            &format!("/platform/v1/whatsapp/webhooks/{id}/test?event_type=nope"),
            json!({}),
        )
        .await;
    assert_eq!(status, 422);

    // Six messages from six customers: 24 failing attempts within the window pause it.
    for i in 0..6 {
        h.customer_says(
            &format!("1555000700{i}"),
            "C",
            json!({"type": "text", "text": {"body": "hi"}}),
        )
        .await;
    }
    wait_until("paused", || async {
        let (_, w) = h.get(&format!("/platform/v1/whatsapp/webhooks/{id}")).await;
        w["data"]["paused_at"].is_string()
    })
    .await;
    let (_, w) = h.get(&format!("/platform/v1/whatsapp/webhooks/{id}")).await;
    assert_eq!(w["data"]["active"], false);
    assert!(
        w["data"]["pause_reason"]
            .as_str()
            .expect("reason")
            .contains("failed")
    );
    let (_, notes) = h.get("/platform/v1/notifications").await;
    assert_eq!(notes["data"][0]["kind"], "webhook.paused");
    assert_eq!(notes["data"][0]["details"]["webhook_id"], id.as_str());
    wait_until("the pause is emailed", || async {
        !smtp.mails().is_empty()
    })
    .await;
    let mail = &smtp.mails()[0];
    assert_eq!(mail.to, vec![format!("<{}>", h.owner_email)]);
    assert!(mail.data.contains(&id), "{}", mail.data);
    assert!(mail.data.contains("paused"), "{}", mail.data);

    // While paused, new events are held, not attempted.
    let seen_before = sink.seen.lock().expect("lock").len();
    h.customer_says(
        "15550007777",
        "Held",
        json!({"type": "text", "text": {"body": "held"}}),
    )
    .await;
    h.settle().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        sink.seen.lock().expect("lock").len(),
        seen_before,
        "nothing sent while paused"
    );
    // They wait outside the send queue (claims never walk past them), listed as pending.
    let queued: i64 = chasqui_store::sql::query_scalar(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'pending'",
    )
    .bind(&id)
    .fetch_one(h.app().db().reader())
    .await
    .expect("count");
    assert_eq!(
        queued, 0,
        "nothing of a paused webhook is in the send queue"
    );
    let waiting = deliveries_of(&h, &id, "pending").await;
    assert!(!waiting.is_empty());
    assert!(
        waiting
            .iter()
            .all(|d| d["status"] == "pending" && d["next_attempt_at"].is_null()),
        "pending, with no attempt planned while paused: {waiting:?}"
    );

    // Re-enabling resumes: the held event arrives.
    *sink.fail_first.lock().expect("lock") = 0;
    let (status, _) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/whatsapp/webhooks/{id}"),
            json!({"whatsapp_webhook": {"active": true}}),
        )
        .await;
    assert_eq!(status, 200);
    wait_until("held event delivered", || async {
        sink.events("whatsapp.message.received")
            .iter()
            .any(|(_, b)| b["message"]["kapso"]["content"] == "held")
    })
    .await;

    // Failed deliveries come back one by one or in bulk.
    wait_until("all six exhausted", || async {
        let (_, log) = h
            .get(&format!(
                "/platform/v1/webhook_deliveries?webhook_id={id}&status=failed&limit=100"
            ))
            .await;
        log["data"]
            .as_array()
            .is_some_and(|d| d.len() + sink.events("whatsapp.message.received").len() >= 7)
    })
    .await;
    let (_, failed) = h
        .get(&format!(
            "/platform/v1/webhook_deliveries?webhook_id={id}&status=failed&limit=100"
        ))
        .await;
    let failed: Vec<String> = failed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_owned())
        .collect();
    if let Some(first) = failed.first() {
        let (status, one) = h
            .post(
                &format!("/platform/v1/webhook_deliveries/{first}/retry"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{one}");
        assert_eq!(one["data"]["requeued"], 1);
        let (status, _) = h
            .post(
                &format!("/platform/v1/webhook_deliveries/{first}/retry"),
                json!({}),
            )
            .await;
        assert_eq!(status, 404, "no longer failed");
    }
    let (status, bulk) = h
        .post(
            "/platform/v1/webhook_deliveries/recover",
            json!({"since": 0, "webhook_id": id}),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");
    wait_until("recovered deliveries delivered", || async {
        let (_, log) = h
            .get(&format!(
                "/platform/v1/webhook_deliveries?webhook_id={id}&status=delivered&limit=100"
            ))
            .await;
        log["data"].as_array().is_some_and(|d| d.len() == 7)
    })
    .await;
    let (status, _) = h
        .post("/platform/v1/webhook_deliveries/recover", json!({}))
        .await;
    assert_eq!(status, 400);
}
both_backends!(pausing_resuming_and_recovery);

async fn meta_kind_forwards_raw_payloads(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    let (sink, url) = Sink::start(0).await;
    let path = format!("/platform/v1/whatsapp/phone_numbers/{pnid}/webhooks");
    let secret = "meta-forward-secret-123";
    let (status, created) = h
        .post(
            &path,
            json!({"whatsapp_webhook": {"url": url, "kind": "meta", "secret_key": secret}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, again) = h
        .post(
            &path,
            json!({"whatsapp_webhook": {"url": url, "kind": "meta"}}),
        )
        .await;
    assert_eq!(status, 409, "one meta webhook per number: {again}");

    let wamid = h
        .customer_says(
            "15550008888",
            "Di",
            json!({"type": "text", "text": {"body": "raw please"}}),
        )
        .await;
    wait_until("raw payload forwarded", || async {
        !sink.seen.lock().expect("lock").is_empty()
    })
    .await;
    let (headers, body) = sink.seen.lock().expect("lock")[0].clone();
    let signature = headers["x-hub-signature-256"].to_str().expect("sig");
    assert!(
        chasqui_meta::verify(secret.as_bytes(), &body, signature),
        "Meta-style signature"
    );
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    assert_eq!(headers["x-idempotency-key"].to_str().expect("key"), digest);
    let envelope: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(envelope["object"], "whatsapp_business_account");
    assert_eq!(
        envelope["entry"][0]["changes"][0]["value"]["messages"][0]["id"],
        wamid.as_str()
    );
    // Meta's exact bytes (escaped slashes and all) pass through unchanged.
    assert!(!body.is_empty() && body.iter().all(u8::is_ascii));
}
both_backends!(meta_kind_forwards_raw_payloads);

async fn conversation_and_number_events(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    let (sink, url) = Sink::start(0).await;
    let (status, _) = h
        .post(
            "/platform/v1/whatsapp/webhooks",
            json!({"whatsapp_webhook": {"url": url, "inactivity_minutes": 30,
            "events": ["whatsapp.conversation.ended", "whatsapp.conversation.inactive",
                "whatsapp.phone_number.created", "whatsapp.phone_number.deleted"]}}),
        )
        .await;
    assert_eq!(status, 201);

    // Numbers: created and deleted reach project webhooks.
    let (status, number) = h
        .post(
            "/platform/v1/whatsapp/phone_numbers",
            json!({"whatsapp_phone_number": {"kind": "sandbox", "name": "Second"}}),
        )
        .await;
    assert_eq!(status, 201, "{number}");
    let second = number["data"]["phone_number_id"]
        .as_str()
        .expect("pnid")
        .to_owned();
    let (status, _) = h
        .post(
            &format!("/platform/v1/whatsapp/phone_numbers/{second}/webhooks"),
            json!({"whatsapp_webhook": {"url": url, "events": ["whatsapp.message.received"]}}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/platform/v1/whatsapp/phone_numbers/{second}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let stored = chasqui_store::webhooks::list(h.app().db(), &h.project_id, Some(&second))
        .await
        .expect("list");
    assert!(stored.is_empty(), "a deleted number's webhooks go with it");
    wait_until("number events", || async {
        !sink.events("whatsapp.phone_number.created").is_empty()
            && !sink.events("whatsapp.phone_number.deleted").is_empty()
    })
    .await;
    let (_, created) = sink.events("whatsapp.phone_number.created").remove(0);
    assert_eq!(created["phone_number_id"], second.as_str());
    assert_eq!(created["project"]["id"], h.project_id.as_str());

    // A quiet conversation is announced once per idle period, then ending it is announced.
    h.customer_says(
        "15550009999",
        "Quiet",
        json!({"type": "text", "text": {"body": "hello?"}}),
    )
    .await;
    h.settle().await;
    let app = h.app();
    let later = app.now() + 31 * 60_000;
    assert_eq!(
        chasqui_app::webhooks::sweep_inactive(app, app.now())
            .await
            .expect("sweep"),
        0
    );
    assert_eq!(
        chasqui_app::webhooks::sweep_inactive(app, later)
            .await
            .expect("sweep"),
        1
    );
    assert_eq!(
        chasqui_app::webhooks::sweep_inactive(app, later + 60_000)
            .await
            .expect("sweep"),
        0,
        "once per idle period"
    );
    wait_until("inactive event", || async {
        !sink.events("whatsapp.conversation.inactive").is_empty()
    })
    .await;
    let (_, inactive) = sink.events("whatsapp.conversation.inactive").remove(0);
    assert_eq!(inactive["inactivity"]["minutes"], 30);
    assert_eq!(inactive["phone_number_id"], pnid.as_str());
    let conversation_id = inactive["conversation"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(inactive["since_message"]["whatsapp_message_id"].is_string());

    // The customer writes again: a new idle period, announced again. The sweep has already
    // looked past this message's moment (as of `later + 60 s`), so this also checks that
    // it looks back behind its mark. Meta's timestamps are in seconds: let one pass, so the
    // new message is a new moment of activity.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    h.customer_says(
        "15550009999",
        "Quiet",
        json!({"type": "text", "text": {"body": "still there?"}}),
    )
    .await;
    h.settle().await;
    let again = app.now() + 31 * 60_000;
    assert_eq!(
        chasqui_app::webhooks::sweep_inactive(app, again)
            .await
            .expect("sweep"),
        1,
        "a new idle period"
    );
    assert_eq!(
        chasqui_app::webhooks::sweep_inactive(app, again + 60_000)
            .await
            .expect("sweep"),
        0
    );
    wait_until("second inactive event", || async {
        sink.events("whatsapp.conversation.inactive").len() == 2
    })
    .await;
    let (_, second_idle) = sink.events("whatsapp.conversation.inactive").remove(1);
    assert_eq!(second_idle["conversation"]["id"], conversation_id.as_str());

    let (status, ended) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/whatsapp/conversations/{conversation_id}"),
            json!({"whatsapp_conversation": {"status": "ended"}}),
        )
        .await;
    assert_eq!(status, 200, "{ended}");
    wait_until("ended event", || async {
        !sink.events("whatsapp.conversation.ended").is_empty()
    })
    .await;
    let (_, ended) = sink.events("whatsapp.conversation.ended").remove(0);
    assert_eq!(ended["conversation"]["id"], conversation_id.as_str());
    assert_eq!(ended["conversation"]["status"], "ended");
}
both_backends!(conversation_and_number_events);

async fn received_messages_are_buffered_per_conversation(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    let (sink, url) = Sink::start(0).await;
    let (status, created) = h
        .post(&format!("/platform/v1/whatsapp/phone_numbers/{pnid}/webhooks"),
            json!({"whatsapp_webhook": {"url": url, "events": ["whatsapp.message.received", "whatsapp.conversation.created"],
                "buffer_enabled": true, "buffer_window_seconds": 2, "max_buffer_size": 3}}))
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["data"]["secret_key"]
        .as_str()
        .expect("secret")
        .to_owned();

    // Two quick messages: one batch of two when the window ends, in order.
    let started = std::time::Instant::now();
    for text in ["one", "two"] {
        h.customer_says(
            "15550001111",
            "Ana",
            json!({"type": "text", "text": {"body": text}}),
        )
        .await;
    }
    wait_until("first batch", || async {
        !sink.events("whatsapp.message.received").is_empty()
    })
    .await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "held for the window"
    );
    let (headers, body) = sink.raw("whatsapp.message.received").remove(0);
    assert_eq!(headers["x-webhook-batch"], "true");
    assert_eq!(headers["x-batch-size"], "2");
    assert_eq!(
        headers["x-webhook-signature"].to_str().expect("sig"),
        hmac_hex(secret.as_bytes(), &body)
    );
    let batch: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(batch["type"], "whatsapp.message.received");
    assert_eq!(batch["batch"], true);
    let texts: Vec<_> = batch["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d["message"]["kapso"]["content"].clone())
        .collect();
    assert_eq!(texts, vec![json!("one"), json!("two")]);
    // Other events are not buffered.
    assert_eq!(sink.events("whatsapp.conversation.created").len(), 1);

    // A full buffer goes at once; the rest waits for its own window.
    for text in ["a", "b", "c", "d"] {
        h.customer_says(
            "15550001111",
            "Ana",
            json!({"type": "text", "text": {"body": text}}),
        )
        .await;
    }
    wait_until("full batch", || async {
        sink.events("whatsapp.message.received").len() >= 2
    })
    .await;
    let (headers, _) = sink.events("whatsapp.message.received").remove(1);
    assert_eq!(headers["x-batch-size"], "3");
    wait_until("last batch", || async {
        sink.events("whatsapp.message.received").len() == 3
    })
    .await;
    // Each batch is in Meta's order. Which three go first is the first three stored: on
    // PostgreSQL, workers store a burst in parallel, so that need not be a, b, c.
    let contents = |i: usize| -> Vec<String> {
        sink.events("whatsapp.message.received")[i].1["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|d| {
                d["message"]["kapso"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let (full, last) = (contents(1), contents(2));
    assert_eq!(full.len(), 3);
    assert_eq!(last.len(), 1);
    assert!(full.windows(2).all(|w| w[0] < w[1]), "in order: {full:?}");
    let mut all = [full, last].concat();
    all.sort();
    assert_eq!(all, ["a", "b", "c", "d"]);
    let (_, log) = h
        .get("/platform/v1/webhook_deliveries?status=batched&limit=100")
        .await;
    assert_eq!(log["data"].as_array().expect("data").len(), 6);

    // Paused (as after repeated failures), then enabled again: what arrived meanwhile was
    // held, and rejoins its buffer.
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    {
        let db = h.app().db();
        let mut tx = db.writer().begin().await.expect("tx");
        let paused = chasqui_store::webhooks::pause(&mut tx, &id, "test", h.app().now())
            .await
            .expect("pause");
        assert!(paused);
        tx.commit().await.expect("commit");
    }
    let deliveries_before = sink.seen.lock().expect("lock").len();
    for text in ["late-1", "late-2"] {
        h.customer_says(
            "15550002222",
            "Bea",
            json!({"type": "text", "text": {"body": text}}),
        )
        .await;
    }
    h.settle().await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        sink.seen.lock().expect("lock").len(),
        deliveries_before,
        "nothing sent while paused, though the window has passed"
    );
    let (status, body) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/whatsapp/webhooks/{id}"),
            json!({"whatsapp_webhook": {"active": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_until("the held pair arrives as one batch", || async {
        sink.events("whatsapp.message.received").len() == 4
    })
    .await;
    let (headers, _) = sink.events("whatsapp.message.received").remove(3);
    assert_eq!(headers["x-batch-size"], "2");
    assert_eq!(contents(3), ["late-1", "late-2"]);
}
both_backends!(received_messages_are_buffered_per_conversation);

async fn isolation_throttling_and_refused_sends(backend: Backend) {
    let h = Harness::start(backend).await;
    let a = h.sandbox_pnid.clone();
    let (status, other) = h
        .post(
            "/platform/v1/whatsapp/phone_numbers",
            json!({"whatsapp_phone_number": {"kind": "sandbox", "name": "B"}}),
        )
        .await;
    assert_eq!(status, 201);
    let b = other["data"]["phone_number_id"]
        .as_str()
        .expect("pnid")
        .to_owned();
    let (sink, url) = Sink::start(0).await;
    *sink.throttle_first.lock().expect("lock") = 1;
    let (status, _) = h
        .post(&format!("/platform/v1/whatsapp/phone_numbers/{a}/webhooks"),
            json!({"whatsapp_webhook": {"url": url, "events": ["whatsapp.message.received", "whatsapp.message.failed"]}}))
        .await;
    assert_eq!(status, 201);

    // A message to number B never reaches number A's webhook.
    let (status, _) = h
        .post(
            &format!("/sandbox/v1/phone_numbers/{b}/inbound"),
            json!({"from": "15550002222", "message": {"type": "text", "text": {"body": "for B"}}}),
        )
        .await;
    assert_eq!(status, 200);
    h.customer_says(
        "15550003333",
        "A",
        json!({"type": "text", "text": {"body": "for A"}}),
    )
    .await;

    // The first answer is 429 with Retry-After: 2, longer than the 1 s schedule: honoured.
    wait_until("delivered after 429", || async {
        sink.events("whatsapp.message.received").len() == 2
    })
    .await;
    let arrivals = sink.arrivals.lock().expect("lock").clone();
    assert!(
        arrivals[1] - arrivals[0] >= std::time::Duration::from_millis(1900),
        "waited for Retry-After"
    );
    for (_, body) in sink.events("whatsapp.message.received") {
        assert_eq!(body["phone_number_id"], a.as_str());
        assert_eq!(body["message"]["kapso"]["content"], "for A");
    }

    // A send Meta refuses is announced as whatsapp.message.failed.
    let (status, _) = h
        .send(
            reqwest::Method::PUT,
            &format!("/sandbox/v1/phone_numbers/{a}/faults"),
            json!({"send_errors": [130429]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, err) = h
        .post(&format!("/meta/whatsapp/v24.0/{a}/messages"),
            json!({"messaging_product": "whatsapp", "to": "15550003333", "type": "text", "text": {"body": "too fast"}}))
        .await;
    assert_eq!(status, 400, "{err}");
    wait_until("failed event", || async {
        !sink.events("whatsapp.message.failed").is_empty()
    })
    .await;
    let (_, failed) = sink.events("whatsapp.message.failed").remove(0);
    assert_eq!(failed["message"]["kapso"]["status"], "failed");
    assert_eq!(failed["message"]["kapso"]["direction"], "outbound");
}
both_backends!(isolation_throttling_and_refused_sends);

/// A receiver that does not answer within 10 s is a failed attempt, retried on schedule.
/// (SQLite only: the test waits out the real timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_receivers_time_out_and_are_retried() {
    let h = Harness::start(Backend::Sqlite).await;
    let calls = Arc::new(Mutex::new(0usize));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                let first = {
                    let mut n = counter.lock().expect("lock");
                    *n += 1;
                    *n == 1
                };
                if first {
                    tokio::time::sleep(std::time::Duration::from_secs(15)).await;
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    subscribe_received(&h, &url).await;
    h.customer_says(
        "15550001212",
        "Slow",
        json!({"type": "text", "text": {"body": "tick"}}),
    )
    .await;
    let start = std::time::Instant::now();
    loop {
        let (_, log) = h
            .get("/platform/v1/webhook_deliveries?status=delivered")
            .await;
        if let Some(d) = log["data"].as_array().and_then(|d| d.first()) {
            assert_eq!(d["attempt_count"], 2);
            let first = &d["attempts"][0];
            assert!(first["response_status"].is_null());
            assert!(
                first["error"]
                    .as_str()
                    .expect("error")
                    .contains("timed out"),
                "{first}"
            );
            assert!(first["latency_ms"].as_i64().expect("latency") >= 9_900);
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(40),
            "never delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Retries wait for the schedule on the node's clock: nothing moves until the manual clock
/// passes each delay (10 s, then 40 s, ±20 % jitter).
async fn retries_follow_the_schedule_on_the_manual_clock(backend: Backend) {
    use chasqui_core::{Clock, ManualClock, SystemClock};
    let clock = ManualClock::new(SystemClock.now());
    let extra = chasqui::config::ConfigArgs {
        webhook_retry_schedule: Some("10,40,90".into()),
        ..Default::default()
    };
    let h = Harness::start_with_clock(backend, extra, Arc::new(clock.clone())).await;
    let (sink, url) = Sink::start(2).await;
    subscribe_received(&h, &url).await;
    h.customer_says(
        "15550003434",
        "Clock",
        json!({"type": "text", "text": {"body": "tick"}}),
    )
    .await;
    let count = || sink.seen.lock().expect("lock").len();
    // The sink sees an attempt before the node records it; the clock moves only once it is
    // recorded, or a late record would find the attempt's lease already run out.
    let h = &h;
    let recorded = |n: i64| async move {
        wait_until("attempt recorded", || async {
            let (_, log) = h.get("/platform/v1/webhook_deliveries").await;
            log["data"][0]["attempt_count"] == n
        })
        .await;
    };
    wait_until("first attempt", || async { count() == 1 }).await;
    recorded(1).await;
    let idle = || tokio::time::sleep(std::time::Duration::from_millis(800));
    idle().await;
    assert_eq!(count(), 1, "the clock has not moved: no retry");

    clock.advance_millis(7_000);
    h.app().wake();
    idle().await;
    assert_eq!(count(), 1, "7 s is before the earliest first retry (8 s)");
    clock.advance_millis(6_000);
    h.app().wake();
    wait_until("second attempt after 10 s", || async { count() == 2 }).await;
    recorded(2).await;

    clock.advance_millis(30_000);
    h.app().wake();
    idle().await;
    assert_eq!(
        count(),
        2,
        "30 s is before the earliest second retry (32 s)"
    );
    clock.advance_millis(20_000);
    h.app().wake();
    wait_until("third attempt after 40 s", || async { count() == 3 }).await;
    wait_until("delivered", || async {
        let (_, log) = h
            .get("/platform/v1/webhook_deliveries?status=delivered")
            .await;
        log["data"][0]["attempt_count"] == 3
    })
    .await;
}
both_backends!(retries_follow_the_schedule_on_the_manual_clock);

/// The pause boundary, attempt by attempt on the manual clock: 19 failed attempts in the
/// window leave the webhook running, the 20th pauses it.
async fn pause_boundary_on_the_manual_clock(backend: Backend) {
    use chasqui_core::{Clock, ManualClock, SystemClock};
    let clock = ManualClock::new(SystemClock.now());
    let extra = chasqui::config::ConfigArgs {
        webhook_retry_schedule: Some("1,1,1".into()),
        ..Default::default()
    };
    let h = Harness::start_with_clock(backend, extra, Arc::new(clock.clone())).await;
    let (sink, url) = Sink::start(1_000_000).await;
    let id = subscribe_received(&h, &url).await;
    let count = || sink.seen.lock().expect("lock").len();
    let paused = || async {
        let (_, w) = h.get(&format!("/platform/v1/whatsapp/webhooks/{id}")).await;
        w["data"]["paused_at"].is_string()
    };
    // The sink sees an attempt before the node records it (and checks the rule); the clock
    // moves only once every attempt is recorded, or a late record would date the next retry
    // after the clock's next step.
    let h = &h;
    let recorded = |n: usize| async move {
        wait_until(&format!("{n} attempts recorded"), || async {
            let (_, log) = h.get("/platform/v1/webhook_deliveries").await;
            let total: i64 = log["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["attempt_count"].as_i64())
                .sum();
            total == n as i64
        })
        .await;
    };
    let step = |expected: usize| {
        clock.advance_millis(1_300);
        h.app().wake();
        async move {
            wait_until(&format!("{expected} attempts"), || async {
                count() == expected
            })
            .await;
            recorded(expected).await;
        }
    };
    for i in 0..4 {
        h.customer_says(
            &format!("155500050{i:02}"),
            "B",
            json!({"type": "text", "text": {"body": "x"}}),
        )
        .await;
    }
    wait_until("4 first attempts", || async { count() == 4 }).await;
    recorded(4).await;
    step(8).await;
    step(12).await;
    step(16).await;
    assert!(!paused().await, "16 failed attempts");
    h.customer_says(
        "15550005099",
        "B",
        json!({"type": "text", "text": {"body": "x"}}),
    )
    .await;
    wait_until("17 attempts", || async { count() == 17 }).await;
    recorded(17).await;
    step(18).await;
    step(19).await;
    assert!(!paused().await, "19 failed attempts: not yet");
    step(20).await;
    wait_until("paused at 20", paused).await;
}
both_backends!(pause_boundary_on_the_manual_clock);

/// Deliveries of a webhook, as the API lists them.
async fn deliveries_of(h: &Harness, webhook_id: &str, status: &str) -> Vec<Value> {
    let (code, log) = h
        .get(&format!(
            "/platform/v1/webhook_deliveries?webhook_id={webhook_id}&status={status}&limit=100"
        ))
        .await;
    assert_eq!(code, 200, "{log}");
    log["data"].as_array().cloned().unwrap_or_default()
}

/// Rows of `table` (webhook_deliveries or webhook_attempts) that belong to a webhook.
async fn stored_rows(h: &Harness, table: &str, webhook_id: &str) -> i64 {
    let sql = match table {
        "webhook_deliveries" => "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1",
        _ => {
            "SELECT COUNT(*) FROM webhook_attempts WHERE delivery_id IN \
             (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)"
        }
    };
    chasqui_store::sql::query_scalar::<i64>(sql)
        .bind(webhook_id)
        .fetch_one(h.app().db().reader())
        .await
        .expect("count")
}

/// Delivered events leave the delivery log once past the retention (30 days by default),
/// with their attempts; failed deliveries stay, and can still be retried.
async fn delivered_events_are_pruned_after_their_retention(backend: Backend) {
    use chasqui_core::{Clock, ManualClock, SystemClock};
    let clock = ManualClock::new(SystemClock.now());
    let extra = chasqui::config::ConfigArgs {
        webhook_retry_schedule: Some("1".into()),
        ..Default::default()
    };
    let h = Harness::start_with_clock(backend, extra, Arc::new(clock.clone())).await;
    let (ok_sink, ok_url) = Sink::start(0).await;
    let (_bad_sink, bad_url) = Sink::start(1_000_000).await;
    let mut ids = Vec::new();
    for url in [&ok_url, &bad_url] {
        ids.push(subscribe_received(&h, url).await);
    }
    let (ok, bad) = (&ids[0], &ids[1]);
    for i in 0..2 {
        h.customer_says(
            &format!("1555000810{i}"),
            "Old",
            json!({"type": "text", "text": {"body": "old news"}}),
        )
        .await;
    }
    let h = &h;
    wait_until("both delivered", || async {
        deliveries_of(h, ok, "delivered").await.len() == 2
    })
    .await;
    assert_eq!(ok_sink.events("whatsapp.message.received").len(), 2);
    wait_until("first failed attempts recorded", || async {
        let log = deliveries_of(h, bad, "pending").await;
        log.len() == 2 && log.iter().all(|d| d["attempt_count"] == 1)
    })
    .await;
    clock.advance_millis(2_000);
    h.app().wake();
    wait_until("the failing ones give up", || async {
        deliveries_of(h, bad, "failed").await.len() == 2
    })
    .await;
    assert_eq!(stored_rows(h, "webhook_attempts", ok).await, 2);
    assert_eq!(stored_rows(h, "webhook_attempts", bad).await, 4);

    let prune = || async {
        chasqui_app::webhooks::prune_delivered(h.app())
            .await
            .expect("prune")
    };
    clock.advance_millis(29 * 86_400_000);
    assert_eq!(prune().await, 0, "29 days old: kept");
    assert_eq!(deliveries_of(h, ok, "delivered").await.len(), 2);
    clock.advance_millis(2 * 86_400_000);
    assert_eq!(prune().await, 2, "31 days old: the delivered ones go");
    assert_eq!(prune().await, 0, "once");
    assert_eq!(stored_rows(h, "webhook_deliveries", ok).await, 0);
    assert_eq!(
        stored_rows(h, "webhook_attempts", ok).await,
        0,
        "their attempts go with them"
    );
    let failed = deliveries_of(h, bad, "failed").await;
    assert_eq!(failed.len(), 2, "failed deliveries stay");
    assert_eq!(failed[0]["attempts"].as_array().expect("attempts").len(), 2);
    let (status, retried) = h
        .post(
            &format!(
                "/platform/v1/webhook_deliveries/{}/retry",
                failed[0]["id"].as_str().expect("id")
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["data"]["requeued"], 1);
}
both_backends!(delivered_events_are_pruned_after_their_retention);

/// A delivery left held at a running webhook (on PostgreSQL, published while another
/// transaction re-enabled the webhook) is released by the sweeper's safety net.
async fn stray_held_deliveries_are_released(backend: Backend) {
    let h = Harness::start(backend).await;
    let (sink, url) = Sink::start(0).await;
    let id = subscribe_received(&h, &url).await;
    let db = h.app().db().clone();
    let mut tx = db.writer().begin().await.expect("tx");
    assert!(
        chasqui_store::webhooks::pause(&mut tx, &id, "test", h.app().now())
            .await
            .expect("pause")
    );
    tx.commit().await.expect("commit");
    h.customer_says(
        "15550009191",
        "Stray",
        json!({"type": "text", "text": {"body": "stray"}}),
    )
    .await;
    h.settle().await;
    // The race's outcome: the webhook runs again, its delivery still held.
    chasqui_store::sql::query(
        "UPDATE webhooks SET paused_at = NULL, pause_reason = NULL WHERE id = $1",
    )
    .bind(&id)
    .execute(db.writer())
    .await
    .expect("unpause");
    // Out of the queue, nothing else sends it (looked at at once: the sweeper's own pass,
    // every 15 s, is unlikely to come in between).
    let held: i64 = chasqui_store::sql::query_scalar(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'held'",
    )
    .bind(&id)
    .fetch_one(db.reader())
    .await
    .expect("count");
    assert_eq!(held, 1);
    assert_eq!(
        chasqui_store::webhooks::release_stray(&db)
            .await
            .expect("release"),
        1
    );
    h.app().wake();
    wait_until("the stray delivery arrives", || async {
        sink.events("whatsapp.message.received").len() == 1
    })
    .await;
    assert_eq!(
        chasqui_store::webhooks::release_stray(&db)
            .await
            .expect("release"),
        0,
        "nothing else held"
    );
}
both_backends!(stray_held_deliveries_are_released);
