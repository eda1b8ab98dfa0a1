//! End-to-end: projects, keys, customers, phone numbers, tenancy and the handshake.

mod common;

use common::{Backend, CLOUD_PNID, Harness};
use reqwest::Method;
use serde_json::{Value, json};

async fn tenancy_and_crud(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let other = chasqui_app::projects::create(h.app(), "Other")
        .await
        .expect("project B");

    // Unknown key: 401. Another project's number, conversation or customer: 404.
    let (status, body) = h
        .get_with_key("/platform/v1/whatsapp/phone_numbers", "chq_nope")
        .await;
    assert_eq!(status, 401, "{body}");
    let r = h
        .http
        .get(h.url("/platform/v1/customers"))
        .send()
        .await
        .expect("no key");
    assert_eq!(r.status(), 401);
    h.customer_says(
        "15551112222",
        "Cy",
        json!({"type": "text", "text": {"body": "hi"}}),
    )
    .await;
    h.settle().await;
    let (_, convs) = h.get("/platform/v1/whatsapp/conversations").await;
    let conversation_id = convs["data"][0]["id"].as_str().expect("id").to_owned();
    let pnid = h.sandbox_pnid.clone();
    for path in [
        format!("/platform/v1/whatsapp/conversations/{conversation_id}"),
        format!("/platform/v1/whatsapp/conversations/{conversation_id}/messages"),
        format!("/platform/v1/whatsapp/phone_numbers/{pnid}"),
        format!("/meta/whatsapp/v24.0/{pnid}/messages"),
        format!("/meta/whatsapp/v24.0/{pnid}/conversations"),
        format!("/sandbox/v1/phone_numbers/{pnid}/outbox"),
    ] {
        let (status, body) = h.get_with_key(&path, &other.api_key).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (_, listed) = h
        .get_with_key("/platform/v1/whatsapp/conversations", &other.api_key)
        .await;
    assert_eq!(listed["data"].as_array().expect("data").len(), 0);

    // Customers CRUD with validation.
    let (status, body) = h
        .post("/platform/v1/customers", json!({"customer": {"name": ""}}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"][0].as_str().expect("msg").contains("Name"));
    let (status, body) = h
        .post(
            "/platform/v1/customers",
            json!({"customer": {"name": "Acme", "external_customer_id": "acme-1"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let customer_id = body["data"]["id"].as_str().expect("id").to_owned();
    let (status, _) = h
        .post(
            "/platform/v1/customers",
            json!({"customer": {"name": "Acme 2", "external_customer_id": "acme-1"}}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = h
        .post(
            "/platform/v1/customers",
            json!({"customer": {"name": "x", "bogus": 1}}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = h
        .send(
            Method::PATCH,
            &format!("/platform/v1/customers/{customer_id}"),
            json!({"name": "Acme Inc"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["name"], "Acme Inc");
    let (_, list) = h
        .get("/platform/v1/customers?name_contains=inc&per_page=1")
        .await;
    assert_eq!(list["meta"]["total_count"], 1);
    let (status, _) = h
        .get_with_key(
            &format!("/platform/v1/customers/{customer_id}"),
            &other.api_key,
        )
        .await;
    assert_eq!(status, 404);

    // Phone numbers: secrets never returned; validation; duplicate; belongs to a customer.
    let (status, body) = h
        .get(&format!("/platform/v1/whatsapp/phone_numbers/{CLOUD_PNID}"))
        .await;
    assert_eq!(status, 200);
    let text = body.to_string();
    assert!(
        !text.contains(common::APP_SECRET)
            && !text.contains(common::CLOUD_TOKEN)
            && !text.contains("verify-me")
    );
    assert_eq!(body["data"]["kind"], "cloud");
    let (status, body) = h
        .post(
            "/platform/v1/whatsapp/phone_numbers",
            json!({"whatsapp_phone_number": {"kind": "cloud", "phone_number_id": "abc"}}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["errors"].as_array().expect("errors").len() >= 3,
        "{body}"
    );
    let dup = json!({"whatsapp_phone_number": {"kind": "cloud", "phone_number_id": CLOUD_PNID, "business_account_id": "1",
        "access_token": "t", "app_secret": "s"}});
    let (status, _) = h
        .post("/platform/v1/whatsapp/phone_numbers", dup.clone())
        .await;
    assert_eq!(status, 409);
    let (status, _) = h
        .send(Method::POST, "/platform/v1/whatsapp/phone_numbers", dup)
        .await;
    assert_eq!(status, 409);
    let (status, body) = h
        .post(
            &format!("/platform/v1/customers/{customer_id}/whatsapp/phone_numbers"),
            json!({"whatsapp_phone_number": {"kind": "sandbox", "name": "Acme line"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let acme_number = body["data"]["phone_number_id"]
        .as_str()
        .expect("pnid")
        .to_owned();
    assert_eq!(body["data"]["customer_id"], customer_id.as_str());
    let (_, filtered) = h
        .get(&format!(
            "/platform/v1/whatsapp/phone_numbers?customer_id={customer_id}"
        ))
        .await;
    assert_eq!(filtered["data"].as_array().expect("data").len(), 1);
    let (status, body) = h
        .send(
            Method::PATCH,
            &format!("/platform/v1/whatsapp/phone_numbers/{acme_number}"),
            json!({"whatsapp_phone_number": {"name": "Renamed", "customer_id": "nope"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = h
        .send(
            Method::PATCH,
            &format!("/platform/v1/whatsapp/phone_numbers/{acme_number}"),
            json!({"whatsapp_phone_number": {"name": "Renamed"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["name"], "Renamed");
    // Deleting the customer detaches its number.
    let (status, _) = h
        .send(
            Method::DELETE,
            &format!("/platform/v1/customers/{customer_id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let (_, n) = h
        .get(&format!(
            "/platform/v1/whatsapp/phone_numbers/{acme_number}"
        ))
        .await;
    assert!(n["data"]["customer_id"].is_null());
    let (status, _) = h
        .send(
            Method::DELETE,
            &format!("/platform/v1/whatsapp/phone_numbers/{acme_number}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = h
        .get(&format!(
            "/platform/v1/whatsapp/phone_numbers/{acme_number}"
        ))
        .await;
    assert_eq!(status, 404);

    // Bad query parameters are precise 400s.
    for q in [
        "limit=0",
        "limit=abc",
        "status=open",
        "after=%%%",
        "last_active_since=yesterday",
    ] {
        let (status, body) = h
            .get(&format!("/platform/v1/whatsapp/conversations?{q}"))
            .await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body["error"].is_string());
    }
    let (status, body) = h.get(&format!("/meta/whatsapp/v24/{pnid}/messages")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], 100);

    // Revoked keys stop working.
    let keys = chasqui_store::projects::list_keys(h.app().db(), &other.project.id)
        .await
        .expect("keys");
    assert!(
        chasqui_store::projects::revoke_key(h.app().db(), &other.project.id, &keys[0].id, 1)
            .await
            .expect("revoke")
    );
    let (status, _) = h
        .get_with_key("/platform/v1/customers", &other.api_key)
        .await;
    assert_eq!(status, 401);
    h.stop().await;
}
both_backends!(tenancy_and_crud);

async fn handshake_and_health(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let ok = h
        .http
        .get(h.url(
            "/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
        ))
        .send()
        .await
        .expect("handshake");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("text"), "1158201444");
    let bad = h
        .http
        .get(h.url("/webhooks/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"))
        .send()
        .await
        .expect("handshake");
    assert_eq!(bad.status(), 403);
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            h.http
                .get(h.url(path))
                .send()
                .await
                .expect("health")
                .status(),
            200,
            "{path}"
        );
    }
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("chasqui_inbound_events_pending 0"),
        "{metrics}"
    );
    // SQLite: the writers' counters (the harness has written its project and keys).
    let counter = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{{file=\"main\"}} ")))
            .and_then(|v| v.parse::<u64>().ok())
    };
    match backend {
        Backend::Sqlite => {
            for name in [
                "chasqui_sqlite_statements_total",
                "chasqui_sqlite_commits_total",
                "chasqui_sqlite_rows_changed_total",
                "chasqui_sqlite_wal_frames_total",
            ] {
                assert!(counter(name).is_some_and(|n| n > 0), "{name}: {metrics}");
            }
            assert!(
                metrics.contains("chasqui_sqlite_statements_total{file=\"inbox\"}"),
                "{metrics}"
            );
        }
        Backend::Postgres => assert!(!metrics.contains("chasqui_sqlite_"), "{metrics}"),
    }
    h.stop().await;
    // After a stop the same database opens again (migrations are idempotent) with no first run.
    let dir = tempfile::tempdir().expect("dir");
    let args = chasqui::config::ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(h.dir.path().to_path_buf()),
        database_url: Some(h.database_url.clone()),
        config: Some(dir.path().join("none.toml")),
        ..Default::default()
    };
    std::fs::write(dir.path().join("none.toml"), "").expect("config");
    let again = chasqui::node::start(args.resolve().expect("config"))
        .await
        .expect("restart");
    assert!(again.first_run.is_none());
    again.stop();
    again.wait().await.expect("stop");
}
both_backends!(handshake_and_health);

/// The dashboard is served from the binary: the app at `/` and its own routes, hashed
/// assets cached for good, and API paths never answered with the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_and_api_paths_stay_json() {
    let h = Harness::start(Backend::Sqlite).await;
    let r = h.http.get(h.url("/")).send().await.expect("get /");
    assert_eq!(r.status(), 200);
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    let html = r.text().await.expect("html");
    assert!(html.contains("<div id=\"root\">"), "{html}");
    let asset = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .expect("a script asset")
        .to_owned();
    let r = h.http.get(h.url(&asset)).send().await.expect("asset");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .expect("cache")
            .contains("immutable")
    );
    // The app's own routes load the app.
    let r = h
        .http
        .get(h.url("/inbox/some-conversation"))
        .send()
        .await
        .expect("route");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("text").contains("<div id=\"root\">"));
    // Unknown API paths are JSON 404s.
    for path in [
        "/platform/v1/nothing-here",
        "/meta/whatsapp/v24.0",
        "/auth/nope",
    ] {
        let r = h.http.get(h.url(path)).send().await.expect("api");
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"], "Not found", "{path}");
    }
}
