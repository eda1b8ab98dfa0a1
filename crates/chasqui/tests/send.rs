//! End-to-end: sending through the Meta proxy to the sandbox, on SQLite and PostgreSQL.

mod common;

use common::{Backend, Harness, wait_until};
use serde_json::{Value, json};

async fn post_send(
    h: &Harness,
    pnid: &str,
    body: &Value,
    key: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = h
        .http
        .post(h.url(&format!("/meta/whatsapp/v24.0/{pnid}/messages")))
        .header("x-api-key", &h.key)
        .json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let r = request.send().await.expect("send");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, r.json().await.unwrap_or(Value::Null), retry)
}

async fn text_send_is_stored_and_tracked(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    h.customer_says(
        "15550001234",
        "Ana",
        json!({"type": "text", "text": {"body": "hi"}}),
    )
    .await;
    h.settle().await;
    let body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+1 555 000 1234",
        "type": "text", "text": {"preview_url": false, "body": "Hola Ana, we open at 9."}});
    let (status, answer, _) = post_send(&h, &pnid, &body, Some("order-1")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["contacts"][0]["wa_id"], "15550001234");
    let wamid = answer["messages"][0]["id"]
        .as_str()
        .expect("wamid")
        .to_owned();

    // The same key and body replays the first answer without sending again; another body is 422.
    let (status, again, _) = post_send(&h, &pnid, &body, Some("order-1")).await;
    assert_eq!(status, 200);
    assert_eq!(again, answer);
    let mut other = body.clone();
    other["text"]["body"] = json!("something else");
    let (status, err, _) = post_send(&h, &pnid, &other, Some("order-1")).await;
    assert_eq!(status, 422, "{err}");
    let (_, outbox) = h
        .get(&format!("/sandbox/v1/phone_numbers/{pnid}/outbox"))
        .await;
    assert_eq!(outbox["data"].as_array().expect("outbox").len(), 1);
    assert_eq!(outbox["data"][0]["text"]["body"], "Hola Ana, we open at 9.");

    // The sandbox's status webhooks move it to read; it belongs to Ana's conversation.
    wait_until("read status", || async {
        let (status, m) = h
            .get(&format!("/meta/whatsapp/v24.0/{pnid}/messages/{wamid}"))
            .await;
        status == 200 && m["kapso"]["status"] == "read"
    })
    .await;
    let (_, m) = h
        .get(&format!("/meta/whatsapp/v24.0/{pnid}/messages/{wamid}"))
        .await;
    assert_eq!(m["kapso"]["direction"], "outbound");
    assert_eq!(m["kapso"]["content"], "Hola Ana, we open at 9.");
    assert_eq!(m["kapso"]["statuses"].as_array().expect("history").len(), 3);
    let (_, convs) = h.get("/platform/v1/whatsapp/conversations").await;
    assert_eq!(convs["data"].as_array().expect("data").len(), 1);
    assert_eq!(convs["data"][0]["kapso"]["messages_count"], 2);
    assert_eq!(convs["data"][0]["kapso"]["last_message_id"], wamid.as_str());
    assert!(convs["data"][0]["kapso"]["last_outbound_at"].is_string());
    h.stop().await;
}
both_backends!(text_send_is_stored_and_tracked);

async fn send_errors(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    // Outside the 24-hour window a free-form message is refused up front (131047), nothing sent.
    let body = json!({"messaging_product": "whatsapp", "to": "15550001234", "type": "text", "text": {"body": "hello?"}});
    let (status, err, _) = post_send(&h, &pnid, &body, None).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], 131047);
    assert!(
        err["error"]["error_data"]["details"]
            .as_str()
            .expect("details")
            .contains("24 hours")
    );
    let (_, outbox) = h
        .get(&format!("/sandbox/v1/phone_numbers/{pnid}/outbox"))
        .await;
    assert_eq!(outbox["data"].as_array().expect("outbox").len(), 0);
    let (_, convs) = h.get("/platform/v1/whatsapp/conversations").await;
    assert_eq!(
        convs["data"].as_array().expect("data").len(),
        0,
        "a refused send writes nothing: {convs}"
    );
    // The customer writes: the window opens.
    h.customer_says(
        "15550001234",
        "Bea",
        json!({"type": "text", "text": {"body": "hi"}}),
    )
    .await;
    h.settle().await;
    let (_, convs) = h.get("/platform/v1/whatsapp/conversations").await;
    assert_eq!(
        convs["data"][0]["kapso"]["customer_service_window_open"],
        true
    );
    assert!(convs["data"][0]["kapso"]["customer_service_window_expires_at"].is_string());
    let cases = [
        json!({"to": "15550001234", "type": "text", "text": {"body": "x"}}),
        json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}),
        json!({"messaging_product": "whatsapp", "to": "not a number", "type": "text", "text": {"body": "x"}}),
        json!({"messaging_product": "whatsapp", "to": "15550001234", "type": "text", "text": {"body": ""}}),
        json!({"messaging_product": "whatsapp", "to": "15550001234", "type": "text", "text": {"body": "x".repeat(4097)}}),
        json!({"messaging_product": "whatsapp", "to": "15550001234", "type": "hologram", "hologram": {}}),
        json!({"messaging_product": "whatsapp", "to": "15550001234", "type": "image"}),
    ];
    for body in &cases {
        let (status, err, _) = post_send(&h, &pnid, body, None).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["code"], 100, "{err}");
        assert!(err["error"]["fbtrace_id"].is_string());
        assert!(err["error"]["error_data"]["details"].is_string(), "{err}");
    }
    let r = h
        .http
        .post(h.url(&format!("/meta/whatsapp/v24.0/{pnid}/messages")))
        .header("x-api-key", &h.key)
        .body("{")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);

    // A Graph 5xx is answered as Meta answered it, and the message is stored as failed.
    let (status, _) = h
        .send(
            reqwest::Method::PUT,
            &format!("/sandbox/v1/phone_numbers/{pnid}/faults"),
            json!({"graph_errors": 1}),
        )
        .await;
    assert_eq!(status, 200);
    let body = json!({"messaging_product": "whatsapp", "to": "15550001234", "type": "text", "text": {"body": "retry me"}});
    let (status, err, _) = post_send(&h, &pnid, &body, None).await;
    assert_eq!(status, 500, "{err}");
    assert_eq!(err["error"]["code"], 1);
    let (_, failed) = h
        .get(&format!(
            "/meta/whatsapp/v24.0/{pnid}/messages?direction=outbound&status=failed"
        ))
        .await;
    assert_eq!(failed["data"].as_array().expect("data").len(), 1);
    // The conversation is free again: the next send goes through.
    let (status, ok, _) = post_send(&h, &pnid, &body, None).await;
    assert_eq!(status, 200, "{ok}");

    // While a send is in flight in the conversation, another gets 409 with Retry-After.
    let (_, convs) = h.get("/platform/v1/whatsapp/conversations").await;
    let conversation_id = convs["data"][0]["id"].as_str().expect("id").to_owned();
    let now = common::now_secs() * 1000;
    let blocking = chasqui_store::messages::NewMessage {
        id: chasqui_core::ids::new_id(),
        project_id: h.project_id.clone(),
        phone_number_id: pnid.clone(),
        conversation_id: Some(conversation_id),
        contact_id: None,
        wamid: "pending.test".into(),
        direction: "outbound".into(),
        message_type: "text".into(),
        status: "pending".into(),
        status_rank: 0,
        body: "{}".into(),
        content: String::new(),
        has_media: false,
        media_id: None,
        sent_at: now,
        created_at: now,
    };
    chasqui_store::messages::begin_send(h.app().db(), &blocking)
        .await
        .expect("in flight");
    let (status, err, retry) = post_send(&h, &pnid, &body, None).await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(retry.as_deref(), Some("1"));
    // Another project's key cannot send from this number.
    let other = chasqui_app::projects::create(h.app(), "Other")
        .await
        .expect("project");
    let r = h
        .http
        .post(h.url(&format!("/meta/whatsapp/v24.0/{pnid}/messages")))
        .header("x-api-key", &other.api_key)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    h.stop().await;
}
both_backends!(send_errors);

/// Creates a template through the proxy and waits for the sandbox to approve it.
async fn approved_template(h: &Harness, waba: &str, template: Value) {
    let (status, created) = h
        .post(
            &format!("/meta/whatsapp/v24.0/{waba}/message_templates"),
            template,
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    wait_until("template approved", || async {
        let (_, t) = h.get(&format!("/meta/whatsapp/v24.0/{id}")).await;
        t["status"] == "APPROVED"
    })
    .await;
}

/// Every request sample of Meta's send API goes through the proxy, reaches the customer's
/// phone (the sandbox outbox) and ends `read` (reactions: `sent`) with its status history.
async fn every_type_round_trip(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    let (status, _) = h
        .send(
            reqwest::Method::PUT,
            "/sandbox/v1/settings",
            json!({"status_delay_ms": 5, "template_review_ms": 20}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, numbers) = h.get("/platform/v1/whatsapp/phone_numbers").await;
    let waba = numbers["data"]
        .as_array()
        .expect("numbers")
        .iter()
        .find(|n| n["phone_number_id"] == pnid.as_str())
        .and_then(|n| n["business_account_id"].as_str())
        .expect("waba")
        .to_owned();
    approved_template(&h, &waba, json!({"name": "summer_sale", "language": "en_US", "category": "MARKETING",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1hZ2U="]}},
            {"type": "BODY", "text": "Hi {{1}}, take {{2}} off this week.", "example": {"body_text": [["Ana", "20%"]]}},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Shop", "url": "https://shop.example.com/s/{{1}}", "example": ["summer26"]}]}]})).await;
    approved_template(&h, &waba, json!({"name": "order_confirmation", "language": "en_US", "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [{"type": "BODY", "text": "Thanks {{first_name}}! Total {{total}}, shipping {{ship_date}}.",
            "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"},
                {"param_name": "total", "example": "$1"}, {"param_name": "ship_date", "example": "May 2"}]}}]})).await;
    approved_template(&h, &waba, json!({"name": "order_shipped", "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hi {{1}}, order {{2}} shipped.", "example": {"body_text": [["Ana", "A-1"]]}}]})).await;

    h.customer_says(
        "16505551234",
        "José",
        json!({"type": "text", "text": {"body": "hola"}}),
    )
    .await;
    h.settle().await;
    let dir = common::manifest_dir().join("../meta/fixtures/send");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("request-"))
        })
        .collect();
    files.sort();
    let mut sent = Vec::new();
    for path in &files {
        let body: Value =
            serde_json::from_slice(&std::fs::read(path).expect("read")).expect("fixture json");
        let (status, answer, _) = post_send(&h, &pnid, &body, None).await;
        assert_eq!(status, 200, "{}: {answer}", path.display());
        if let Some(wamid) = answer["messages"][0]["id"].as_str() {
            let kind = body["type"].as_str().unwrap_or("text").to_owned();
            sent.push((wamid.to_owned(), kind));
        } else {
            assert_eq!(answer["success"], true, "{}: {answer}", path.display());
        }
    }
    assert_eq!(
        sent.len(),
        files.len() - 2,
        "all but the two mark-as-read samples"
    );
    let (_, outbox) = h
        .get(&format!("/sandbox/v1/phone_numbers/{pnid}/outbox"))
        .await;
    assert_eq!(outbox["data"].as_array().expect("outbox").len(), sent.len());
    for (wamid, kind) in &sent {
        let (want, history) = if kind == "reaction" {
            ("sent", 1)
        } else {
            ("read", 3)
        };
        wait_until(&format!("{kind} {want}"), || async {
            let (_, m) = h
                .get(&format!("/meta/whatsapp/v24.0/{pnid}/messages/{wamid}"))
                .await;
            m["kapso"]["status"] == want
                && m["kapso"]["statuses"].as_array().map(Vec::len) == Some(history)
                && m["type"] == kind.as_str()
        })
        .await;
    }
}
both_backends!(every_type_round_trip);

/// Real concurrent sends to one conversation while Meta is slow: exactly one goes through,
/// the others get 409 with Retry-After, and nothing but the one is stored.
async fn concurrent_sends_to_one_conversation(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    h.customer_says(
        "15550006666",
        "Eva",
        json!({"type": "text", "text": {"body": "hi"}}),
    )
    .await;
    h.settle().await;
    let (status, _) = h
        .send(
            reqwest::Method::PUT,
            &format!("/sandbox/v1/phone_numbers/{pnid}/faults"),
            json!({"send_delay_ms": 400}),
        )
        .await;
    assert_eq!(status, 200);
    let sends = (0..8).map(|i| {
        let body = json!({"messaging_product": "whatsapp", "to": "15550006666", "type": "text",
            "text": {"body": format!("burst {i}")}});
        let (h, pnid) = (&h, &pnid);
        async move { post_send(h, pnid, &body, None).await }
    });
    let results = futures::future::join_all(sends).await;
    let ok = results.iter().filter(|(s, _, _)| *s == 200).count();
    let busy: Vec<_> = results.iter().filter(|(s, _, _)| *s == 409).collect();
    assert_eq!(ok, 1, "{results:?}");
    assert_eq!(busy.len(), 7, "{results:?}");
    assert!(busy.iter().all(|(_, body, retry)| retry.as_deref() == Some("1")
        && body["error"]["code"].is_i64()));
    let (_, stored) = h
        .get(&format!(
            "/meta/whatsapp/v24.0/{pnid}/messages?direction=outbound"
        ))
        .await;
    assert_eq!(stored["data"].as_array().expect("data").len(), 1);
    let (_, outbox) = h
        .get(&format!("/sandbox/v1/phone_numbers/{pnid}/outbox"))
        .await;
    assert_eq!(outbox["data"].as_array().expect("outbox").len(), 1);
}
both_backends!(concurrent_sends_to_one_conversation);
