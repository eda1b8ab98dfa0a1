//! End-to-end: simulated customers through the sandbox, raw signed deliveries, and both
//! read APIs, on SQLite and PostgreSQL.

mod common;

use common::{APP_SECRET, Backend, CLOUD_PNID, Harness, envelope, text_change, wait_until};
use serde_json::{Value, json};

async fn messages_of(h: &Harness, pnid: &str, query: &str) -> Vec<Value> {
    let (status, body) = h
        .get(&format!("/meta/whatsapp/v24.0/{pnid}/messages{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

async fn customer_messages_appear_in_both_apis(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let text = h
        .customer_says(
            "15551234567",
            "Ana",
            json!({"type": "text", "text": {"body": "Hola, ¿abren hoy?"}}),
        )
        .await;
    let image = h
        .customer_says(
            "15551234567",
            "Ana",
            json!({"type": "image", "image": {"caption": "this pot?"}}),
        )
        .await;
    let button = h
        .customer_says(
            "15551234567",
            "Ana",
            json!({"type": "interactive", "context": {"from": "15550000000", "id": "wamid.PREV"},
                   "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes please"}}}),
        )
        .await;
    let location = h
        .customer_says(
            "15551234567",
            "Ana",
            json!({"type": "location", "location": {"latitude": -12.0464, "longitude": -77.0428, "name": "Plaza Mayor"}}),
        )
        .await;
    h.settle().await;

    let pnid = h.sandbox_pnid.clone();
    let listed = messages_of(&h, &pnid, "").await;
    assert_eq!(listed.len(), 4);
    let by_id = |id: &str| {
        listed
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .expect("message listed")
    };
    let t = by_id(&text);
    assert_eq!(t["type"], "text");
    assert_eq!(t["from"], "15551234567");
    assert_eq!(t["kapso"]["direction"], "inbound");
    assert_eq!(t["kapso"]["status"], "received");
    assert_eq!(t["kapso"]["content"], "Hola, ¿abren hoy?");
    assert_eq!(t["kapso"]["contact_name"], "Ana");
    assert_eq!(t["kapso"]["has_media"], false);
    assert_eq!(t["kapso"]["phone_number"], "+15551234567");
    let conversation_id = t["kapso"]["whatsapp_conversation_id"]
        .as_str()
        .expect("conversation")
        .to_owned();
    let i = by_id(&image);
    assert_eq!(i["kapso"]["has_media"], true);
    assert_eq!(i["kapso"]["content"], "[image] this pot?");
    let b = by_id(&button);
    assert_eq!(b["kapso"]["content"], "Yes please");
    assert_eq!(b["context"]["id"], "wamid.PREV");
    let l = by_id(&location);
    assert!(
        l["kapso"]["content"]
            .as_str()
            .expect("content")
            .contains("Plaza Mayor"),
        "{l}"
    );
    assert_eq!(l["location"]["latitude"], -12.0464);

    // The inbound media was downloaded through the sandbox's Graph API and is served signed.
    wait_until("media download", || async {
        let m = messages_of(&h, &pnid, "").await;
        let url = m
            .iter()
            .find(|x| x["id"] == image.as_str())
            .and_then(|x| x["kapso"]["media_url"].as_str().map(str::to_owned));
        match url {
            Some(url) => {
                let r = h.http.get(url).send().await.expect("media");
                r.status() == 200 && r.bytes().await.expect("bytes").starts_with(b"\x89PNG")
            }
            None => false,
        }
    })
    .await;
    let url = i["kapso"]["media_url"]
        .as_str()
        .expect("url")
        .replace("sig=", "sig=0");
    assert_eq!(
        h.http.get(url).send().await.expect("tampered").status(),
        403
    );

    // One message by wamid; kapso() gives Meta's pure shape.
    let (status, one) = h
        .get(&format!(
            "/meta/whatsapp/v24.0/{pnid}/messages/{text}?fields=kapso()"
        ))
        .await;
    assert_eq!(status, 200);
    assert!(one.get("kapso").is_none());
    assert_eq!(one["text"]["body"], "Hola, ¿abren hoy?");
    let (_, some) = h
        .get(&format!(
            "/meta/whatsapp/v23.0/{pnid}/messages/{text}?fields=kapso(content,status)"
        ))
        .await;
    assert_eq!(some["kapso"].as_object().expect("kapso").len(), 2);
    let (status, _) = h
        .get(&format!(
            "/meta/whatsapp/v24.0/{pnid}/messages/{text}?fields=kapso(nope)"
        ))
        .await;
    assert_eq!(status, 400);

    // Platform: the conversation and its messages.
    let (status, convs) = h.get("/platform/v1/whatsapp/conversations").await;
    assert_eq!(status, 200);
    let convs = convs["data"].as_array().expect("data");
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["id"], conversation_id.as_str());
    assert_eq!(convs[0]["status"], "active");
    assert_eq!(convs[0]["kapso"]["messages_count"], 4);
    assert_eq!(convs[0]["kapso"]["contact_name"], "Ana");
    assert_eq!(convs[0]["kapso"]["last_message_type"], "location");
    let (status, msgs) = h
        .get(&format!(
            "/platform/v1/whatsapp/conversations/{conversation_id}/messages?limit=3"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(msgs["data"].as_array().expect("data").len(), 3);
    let next = msgs["paging"]["next"]
        .as_str()
        .expect("next page")
        .to_owned();
    assert!(next.starts_with("http://127.0.0.1:"), "{next}");
    let rest: Value = h
        .http
        .get(&next)
        .header("x-api-key", &h.key)
        .send()
        .await
        .expect("next")
        .json()
        .await
        .expect("json");
    assert_eq!(rest["data"].as_array().expect("data").len(), 1);
    assert!(rest["paging"]["next"].is_null());

    // Proxy conversations and contacts.
    let (_, pc) = h
        .get(&format!("/meta/whatsapp/v24.0/{pnid}/conversations"))
        .await;
    assert_eq!(pc["data"][0]["id"], conversation_id.as_str());
    let (_, contacts) = h
        .get(&format!("/meta/whatsapp/v24.0/{pnid}/contacts"))
        .await;
    assert_eq!(contacts["data"][0]["wa_id"], "15551234567");
    assert_eq!(contacts["data"][0]["profile_name"], "Ana");

    // Ending the conversation; the next message opens a new one.
    let (status, ended) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/whatsapp/conversations/{conversation_id}"),
            json!({"whatsapp_conversation": {"status": "ended"}}),
        )
        .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["data"]["status"], "ended");
    h.customer_says(
        "15551234567",
        "Ana",
        json!({"type": "text", "text": {"body": "me again"}}),
    )
    .await;
    h.settle().await;
    let (_, convs) = h
        .get("/platform/v1/whatsapp/conversations?status=active")
        .await;
    assert_eq!(convs["data"].as_array().expect("data").len(), 1);
    assert_ne!(convs["data"][0]["id"], conversation_id.as_str());
    h.stop().await;
}
both_backends!(customer_messages_appear_in_both_apis);

async fn duplicates_and_out_of_order_statuses(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    let (status, _) = h
        .send(
            reqwest::Method::PUT,
            &format!("/sandbox/v1/phone_numbers/{pnid}/faults"),
            json!({"duplicate_deliveries": 3}),
        )
        .await;
    assert_eq!(status, 200);
    let wamid = h
        .customer_says(
            "15557654321",
            "Bo",
            json!({"type": "text", "text": {"body": "once"}}),
        )
        .await;
    // Statuses of an outbound message, delivered out of order (and the first two duplicated).
    let (status, body) = h
        .post(
            &format!("/sandbox/v1/phone_numbers/{pnid}/statuses"),
            json!({"wamid": "wamid.OUTBOUND1", "recipient_id": "15557654321", "statuses": ["read", "sent", "delivered", "sent"]}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    h.settle().await;
    let total = chasqui_store::events::total_count(h.app().db())
        .await
        .expect("count");
    assert_eq!(total, 8, "5 deliveries, the first 3 of them twice");
    let listed = messages_of(&h, &pnid, "").await;
    assert_eq!(
        listed.iter().filter(|m| m["id"] == wamid.as_str()).count(),
        1
    );
    let (_, convs) = h.get("/platform/v1/whatsapp/conversations").await;
    assert_eq!(convs["data"][0]["kapso"]["messages_count"], 1);
    let (status, out) = h
        .get(&format!(
            "/meta/whatsapp/v24.0/{pnid}/messages/wamid.OUTBOUND1"
        ))
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["kapso"]["status"], "read");
    assert_eq!(out["kapso"]["direction"], "outbound");
    let history: Vec<&str> = out["kapso"]["statuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert_eq!(history.len(), 3, "{history:?}");
    for s in ["sent", "delivered", "read"] {
        assert!(history.contains(&s), "{history:?}");
    }
    let (_, filtered) = h
        .get(&format!(
            "/meta/whatsapp/v24.0/{pnid}/messages?direction=outbound&status=read"
        ))
        .await;
    assert_eq!(filtered["data"].as_array().expect("data").len(), 1);
    h.stop().await;
}
both_backends!(duplicates_and_out_of_order_statuses);

async fn bad_input_stores_nothing(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let db = h.app().db().clone();
    let body = envelope(vec![text_change(
        "wamid.A1",
        "16505551234",
        1_780_000_000,
        "hi",
    )]);
    // Wrong secret, missing header, re-serialised body: 401 and nothing stored.
    assert_eq!(
        h.post_webhook(&body, Some(chasqui_meta::sign(b"wrong", &body)))
            .await,
        401
    );
    let r = h
        .http
        .post(h.url("/webhooks/meta"))
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    let value: Value = serde_json::from_slice(&body).expect("json");
    let reserialised = serde_json::to_vec(&value).expect("bytes");
    assert_ne!(reserialised, body);
    assert_eq!(
        h.post_webhook(
            &reserialised,
            Some(chasqui_meta::sign(APP_SECRET.as_bytes(), &body))
        )
        .await,
        401
    );
    // Unknown number.
    let other = String::from_utf8(body.clone())
        .expect("utf8")
        .replace(CLOUD_PNID, "999999999999999");
    assert_eq!(h.post_webhook(other.as_bytes(), None).await, 401);
    // Malformed JSON, even correctly signed: 400.
    assert_eq!(
        h.post_webhook(
            b"{\"object\": \"whatsapp_business_account\", \"entry\": [",
            None
        )
        .await,
        400
    );
    assert_eq!(
        h.post_webhook(b"{\"object\": \"page\", \"entry\": []}", None)
            .await,
        400
    );
    assert_eq!(
        chasqui_store::events::total_count(&db)
            .await
            .expect("count"),
        0
    );
    // The genuine delivery is accepted.
    assert_eq!(h.post_webhook(&body, None).await, 200);
    h.settle().await;
    assert_eq!(messages_of(&h, CLOUD_PNID, "").await.len(), 1);
    // Bearer auth with the number's own Meta token works on the proxy; a wrong one is 401.
    let r = h
        .http
        .get(h.url(&format!("/meta/whatsapp/v24.0/{CLOUD_PNID}/messages")))
        .bearer_auth(common::CLOUD_TOKEN)
        .send()
        .await
        .expect("bearer");
    assert_eq!(r.status(), 200);
    let r = h
        .http
        .get(h.url(&format!("/meta/whatsapp/v24.0/{CLOUD_PNID}/messages")))
        .bearer_auth("EAAG-wrong")
        .send()
        .await
        .expect("bearer");
    assert_eq!(r.status(), 401);
    let err: Value = r.json().await.expect("json");
    assert_eq!(err["error"]["code"], 190);
    h.stop().await;
}
both_backends!(bad_input_stores_nothing);

async fn one_bad_change_keeps_its_neighbours(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let t0 = common::now_secs() - 26 * 3600;
    let body = envelope(vec![
        text_change("wamid.N1", "16505551234", t0, "first"),
        json!({"metadata": 3}),
        json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": CLOUD_PNID},
            "messages": [{"from": "16505551234", "type": "text", "text": {"body": "no id"}}],
        }),
        text_change("wamid.N2", "16505551234", t0 + 1, "second"),
    ]);
    assert_eq!(h.post_webhook(&body, None).await, 200);
    // The same delivery again (Meta retries): nothing changes.
    assert_eq!(h.post_webhook(&body, None).await, 200);
    h.settle().await;
    let listed = messages_of(&h, CLOUD_PNID, "").await;
    let ids: Vec<&str> = listed
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec!["wamid.N2", "wamid.N1"]);
    assert_eq!(listed[0]["kapso"]["contact_name"], "José");
    // A message 25 hours later opens a new conversation; the old one ended.
    let later = envelope(vec![text_change(
        "wamid.N3",
        "16505551234",
        t0 + 25 * 3600,
        "back",
    )]);
    assert_eq!(h.post_webhook(&later, None).await, 200);
    h.settle().await;
    let (_, all) = h
        .get(&format!(
            "/platform/v1/whatsapp/conversations?phone_number_id={CLOUD_PNID}"
        ))
        .await;
    let all = all["data"].as_array().expect("data");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["status"], "active");
    assert_eq!(all[1]["status"], "ended");
    assert_eq!(all[1]["kapso"]["messages_count"], 2);
    h.stop().await;
}
both_backends!(one_bad_change_keeps_its_neighbours);

/// Makes the database refuse to store a message whose text is "poison" (a storage error in
/// the middle of processing a delivery).
async fn refuse_poison(db: &chasqui_store::Db, backend: Backend) {
    let refuse = match backend {
        Backend::Sqlite => vec![
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages WHEN NEW.content = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned message'); END",
        ],
        Backend::Postgres => vec![
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN \
             IF NEW.content = 'poison' THEN RAISE EXCEPTION 'poisoned message'; END IF; RETURN NEW; END $f$",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ],
    };
    for sql in refuse {
        chasqui_store::sql::query(sql)
            .execute(db.writer())
            .await
            .expect("trigger");
    }
}

/// A delivery whose storage fails (a database trigger refuses its message) is retried on its
/// own and parked as failed after five attempts, with nothing of it left behind; deliveries
/// processed with it in one batch (on SQLite, one unit of a shared transaction) are applied.
async fn a_delivery_that_cannot_be_stored_is_parked_alone(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let db = h.app().db().clone();
    refuse_poison(&db, backend).await;
    let t0 = common::now_secs() - 60;
    let bodies = [
        envelope(vec![text_change("wamid.P1", "16505550001", t0, "fine")]),
        envelope(vec![text_change("wamid.P2", "16505550002", t0, "poison")]),
        envelope(vec![text_change(
            "wamid.P3",
            "16505550003",
            t0,
            "also fine",
        )]),
    ];
    // Posted together, so that processing usually claims them in one batch.
    let posted = futures::future::join_all(bodies.iter().map(|b| h.post_webhook(b, None))).await;
    assert_eq!(posted, vec![200, 200, 200]);
    h.settle().await;
    let listed = messages_of(&h, CLOUD_PNID, "").await;
    let mut ids: Vec<&str> = listed
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec!["wamid.P1", "wamid.P3"]);
    let failed = chasqui_store::events::failed(&db, 10)
        .await
        .expect("failed deliveries");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, 5);
    assert!(
        failed[0]
            .errors
            .as_deref()
            .is_some_and(|e| e.contains("poisoned message")),
        "{:?}",
        failed[0].errors
    );
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("chasqui_inbound_events_failed 1\n"),
        "{metrics}"
    );
    // Nothing of the refused delivery survived: no conversation for its sender.
    let (_, convs) = h
        .get(&format!(
            "/platform/v1/whatsapp/conversations?phone_number_id={CLOUD_PNID}"
        ))
        .await;
    let numbers: Vec<String> = convs["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["phone_number"].to_string())
        .collect();
    assert_eq!(numbers.len(), 2, "{numbers:?}");
    assert!(
        !numbers.iter().any(|n| n.contains("16505550002")),
        "{numbers:?}"
    );
    h.stop().await;
}
both_backends!(a_delivery_that_cannot_be_stored_is_parked_alone);

/// Processed deliveries (Meta's raw bodies) are deleted once past the retention (7 days by
/// default); the messages they carried stay, a failed delivery stays, and a late retry of a
/// deleted delivery is still recognised as a duplicate.
async fn processed_deliveries_are_pruned_after_their_retention(backend: Backend) {
    use chasqui_core::{Clock, ManualClock, SystemClock};
    let clock = ManualClock::new(SystemClock.now());
    let mut h = Harness::start_with_clock(
        backend,
        chasqui::config::ConfigArgs::default(),
        std::sync::Arc::new(clock.clone()),
    )
    .await;
    let db = h.app().db().clone();
    refuse_poison(&db, backend).await;
    let t0 = common::now_secs() - 60;
    let kept = envelope(vec![text_change("wamid.R1", "16505550011", t0, "one")]);
    for body in [
        kept.clone(),
        envelope(vec![text_change("wamid.R2", "16505550012", t0, "two")]),
        envelope(vec![text_change("wamid.R3", "16505550013", t0, "poison")]),
    ] {
        assert_eq!(h.post_webhook(&body, None).await, 200);
    }
    h.settle().await;
    let total = || async {
        chasqui_store::events::total_count(&db)
            .await
            .expect("count")
    };
    assert_eq!(total().await, 3);
    let prune = || async {
        chasqui_app::processing::prune_processed(h.app())
            .await
            .expect("prune")
    };
    clock.advance_millis(6 * 86_400_000);
    assert_eq!(prune().await, 0, "six days old: kept");
    assert_eq!(total().await, 3);
    clock.advance_millis(2 * 86_400_000);
    assert_eq!(prune().await, 2, "eight days old: the processed ones go");
    assert_eq!(total().await, 1, "the failed delivery stays");
    assert_eq!(
        chasqui_store::events::failed_count(&db)
            .await
            .expect("failed"),
        1
    );
    assert_eq!(messages_of(&h, CLOUD_PNID, "").await.len(), 2);
    // Meta retries a delivery for days: the message is not stored twice.
    assert_eq!(h.post_webhook(&kept, None).await, 200);
    h.settle().await;
    assert_eq!(messages_of(&h, CLOUD_PNID, "").await.len(), 2);
    h.stop().await;
}
both_backends!(processed_deliveries_are_pruned_after_their_retention);

async fn every_fixture_is_applied(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let dir = common::manifest_dir().join("../meta/fixtures/webhooks");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for path in &names {
        let body = std::fs::read(path).expect("read");
        assert_eq!(h.post_webhook(&body, None).await, 200, "{}", path.display());
    }
    h.settle().await;
    let db = h.app().db();
    let listed = messages_of(&h, CLOUD_PNID, "?limit=100").await;
    let types: std::collections::BTreeSet<&str> = listed
        .iter()
        .map(|m| m["type"].as_str().expect("type"))
        .collect();
    for t in [
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "reaction",
        "order",
        "system",
        "unsupported",
    ] {
        assert!(types.contains(t), "missing {t}: {types:?}");
    }
    for m in &listed {
        assert!(
            !m["kapso"]["content"].as_str().expect("content").is_empty()
                || m["kapso"]["direction"] == "outbound",
            "{m}"
        );
    }
    let referral = listed
        .iter()
        .find(|m| m.get("referral").is_some())
        .expect("ctwa referral kept");
    assert_eq!(referral["referral"]["source_type"], "ad");
    let flow = listed
        .iter()
        .find(|m| m["interactive"]["type"] == "nfm_reply")
        .expect("flow reply");
    assert_eq!(flow["kapso"]["flow_token"], "tok-123");
    // Statuses: the failed one keeps its error in the history.
    let failed = listed
        .iter()
        .find(|m| m["kapso"]["status"] == "failed")
        .expect("failed status");
    assert_eq!(failed["kapso"]["statuses"][0]["errors"][0]["code"], 131026);
    // Template status and account events are recorded for the WABA's project.
    let template = chasqui_store::accounts::template_status(db, &h.project_id, "1689556908129832")
        .await
        .expect("template");
    let (name, status, _) = template.expect("template recorded");
    assert_eq!(name.as_deref(), Some("order_confirmation"));
    assert!(status == "APPROVED" || status == "REJECTED");
    let events = chasqui_store::accounts::recent_events(db, &h.project_id, 50)
        .await
        .expect("events");
    for field in [
        "account_update",
        "messages.errors",
        "message_template_status_update",
    ] {
        assert!(
            events.iter().any(|(f, _, _)| f == field),
            "{field} not recorded: {events:?}"
        );
    }
    h.stop().await;
}
both_backends!(every_fixture_is_applied);

/// The `last_inbound_at` of the cloud number's latest conversation.
async fn last_inbound_at(h: &Harness) -> String {
    let (_, convs) = h
        .get(&format!(
            "/platform/v1/whatsapp/conversations?phone_number_id={CLOUD_PNID}"
        ))
        .await;
    convs["data"][0]["kapso"]["last_inbound_at"]
        .as_str()
        .expect("last_inbound_at")
        .to_owned()
}

/// Meta stamps messages to the second: within its second, an inbound message is placed by
/// when its delivery reached us (so it sorts against our own millisecond-stamped sends); a
/// delivery a second or more late goes last in its second, keeping Meta's order.
async fn inbound_messages_are_placed_within_their_second(backend: Backend) {
    use chasqui_core::{Clock, ManualClock, SystemClock, Timestamp};
    let second = SystemClock.now().secs() - 10;
    let clock = ManualClock::new(Timestamp(second * 1000 + 640));
    let mut h = Harness::start_with_clock(
        backend,
        chasqui::config::ConfigArgs::default(),
        std::sync::Arc::new(clock.clone()),
    )
    .await;
    let on_time = envelope(vec![text_change("wamid.S1", "16505550099", second, "now")]);
    assert_eq!(h.post_webhook(&on_time, None).await, 200);
    h.settle().await;
    assert_eq!(
        last_inbound_at(&h).await,
        Timestamp(second * 1000 + 640).to_rfc3339(),
        "placed at its arrival, 640 ms into its second"
    );
    clock.advance_millis(5_000);
    let late = envelope(vec![text_change("wamid.S2", "16505550099", second, "late")]);
    assert_eq!(h.post_webhook(&late, None).await, 200);
    h.settle().await;
    assert_eq!(
        last_inbound_at(&h).await,
        Timestamp(second * 1000 + 999).to_rfc3339(),
        "a late delivery goes last in its second"
    );
    let listed = messages_of(&h, CLOUD_PNID, "").await;
    let texts: Vec<_> = listed
        .iter()
        .map(|m| m["text"]["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(texts, ["late", "now"], "newest first, in Meta's order");
    assert!(
        listed
            .iter()
            .all(|m| m["timestamp"] == json!(second.to_string())),
        "Meta's own timestamp is kept"
    );
    h.stop().await;
}
both_backends!(inbound_messages_are_placed_within_their_second);
