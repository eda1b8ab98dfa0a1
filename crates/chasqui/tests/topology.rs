//! End-to-end: a `cloud` number pointed at the standalone sandbox with `--graph-base-url`,
//! and split roles (an API node and a worker node sharing one PostgreSQL).

mod common;

use base64::Engine;
use chasqui::config::ConfigArgs;
use common::{APP_SECRET, Backend, CLOUD_PNID, Harness, wait_until};
use serde_json::{Value, json};

async fn cloud_number_against_standalone_sandbox(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sandbox");
    let sandbox_url = format!("http://{}", listener.local_addr().expect("addr"));
    let extra = ConfigArgs {
        graph_base_url: Some(sandbox_url.clone()),
        ..Default::default()
    };
    let mut h = Harness::start_with(backend, extra).await;
    let sandbox = chasqui_sandbox::Sandbox::standalone(
        reqwest::Client::new(),
        &h.url("/webhooks/meta"),
        APP_SECRET,
    );
    sandbox.set_base_url(&sandbox_url);
    let server = tokio::spawn(async move {
        axum::serve(listener, chasqui_sandbox::standalone_router(sandbox)).await
    });

    // A customer sends a document; the webhook is signed with the app secret the cloud number holds.
    let data = base64::engine::general_purpose::STANDARD.encode(b"invoice #42");
    let r = h
        .http
        .post(format!("{sandbox_url}/v1/phone_numbers/{CLOUD_PNID}/inbound"))
        .json(&json!({"from": "5491122334455", "profile_name": "Lu",
            "message": {"type": "document", "document": {"filename": "invoice.txt", "mime_type": "text/plain", "data_base64": data}}}))
        .send()
        .await
        .expect("inbound");
    assert_eq!(r.status(), 200);
    let wamid = r.json::<Value>().await.expect("json")["wamid"]
        .as_str()
        .expect("wamid")
        .to_owned();
    h.settle().await;
    // The media download goes through --graph-base-url (the standalone sandbox) with the number's token.
    wait_until("document downloaded", || async {
        let (_, m) = h
            .get(&format!(
                "/meta/whatsapp/v24.0/{CLOUD_PNID}/messages/{wamid}"
            ))
            .await;
        let Some(url) = m["kapso"]["media_url"].as_str().map(str::to_owned) else {
            return false;
        };
        let r = h.http.get(url).send().await.expect("media");
        r.status() == 200 && r.bytes().await.expect("bytes").as_ref() == b"invoice #42"
    })
    .await;
    let (_, m) = h
        .get(&format!(
            "/meta/whatsapp/v24.0/{CLOUD_PNID}/messages/{wamid}"
        ))
        .await;
    assert_eq!(m["kapso"]["content"], "[document] invoice.txt");

    // The business sends through the sandbox's Graph API: outbox, then sent/delivered/read webhooks.
    let sent: Value = h
        .http
        .post(format!("{sandbox_url}/v24.0/{CLOUD_PNID}/messages"))
        .bearer_auth("any-token")
        .json(&json!({"messaging_product": "whatsapp", "to": "5491122334455", "type": "text", "text": {"body": "Received, thanks"}}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let out_id = sent["messages"][0]["id"]
        .as_str()
        .expect("wamid")
        .to_owned();
    assert_eq!(sent["contacts"][0]["wa_id"], "5491122334455");
    let outbox: Value = h
        .http
        .get(format!(
            "{sandbox_url}/v1/phone_numbers/{CLOUD_PNID}/outbox"
        ))
        .send()
        .await
        .expect("outbox")
        .json()
        .await
        .expect("json");
    assert_eq!(outbox["data"][0]["text"]["body"], "Received, thanks");
    wait_until("outbound statuses stored", || async {
        let (status, m) = h
            .get(&format!(
                "/meta/whatsapp/v24.0/{CLOUD_PNID}/messages/{out_id}"
            ))
            .await;
        status == 200
            && m["kapso"]["status"] == "read"
            && m["kapso"]["statuses"].as_array().map(Vec::len) == Some(3)
    })
    .await;

    // Outside the customer's 24-hour window Meta accepts, then fails the message with 131047.
    let late: Value = h
        .http
        .post(format!("{sandbox_url}/v24.0/{CLOUD_PNID}/messages"))
        .json(&json!({"messaging_product": "whatsapp", "to": "5491100000000", "type": "text", "text": {"body": "hello?"}}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let late_id = late["messages"][0]["id"]
        .as_str()
        .expect("wamid")
        .to_owned();
    wait_until("131047 failure stored", || async {
        let (status, m) = h
            .get(&format!(
                "/meta/whatsapp/v24.0/{CLOUD_PNID}/messages/{late_id}"
            ))
            .await;
        status == 200
            && m["kapso"]["status"] == "failed"
            && m["kapso"]["statuses"][0]["errors"][0]["code"] == 131047
    })
    .await;

    // Injected 5xx for the next Graph call.
    let r = h
        .http
        .put(format!(
            "{sandbox_url}/v1/phone_numbers/{CLOUD_PNID}/faults"
        ))
        .json(&json!({"graph_errors": 1}))
        .send()
        .await
        .expect("faults");
    assert_eq!(r.status(), 200);
    let send = || {
        h.http
            .post(format!("{sandbox_url}/v24.0/{CLOUD_PNID}/messages"))
            .json(&json!({"messaging_product": "whatsapp", "to": "5491122334455", "type": "text", "text": {"body": "again"}}))
            .send()
    };
    assert_eq!(send().await.expect("send").status(), 500);
    assert_eq!(send().await.expect("send").status(), 200);
    server.abort();
    h.stop().await;
}
both_backends!(cloud_number_against_standalone_sandbox);

/// An `api` node only stores; a `worker` node on the same PostgreSQL processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_worker_nodes_share_postgres() {
    if !common::postgres_available() {
        return;
    }
    let api_extra = ConfigArgs {
        role: Some("api".into()),
        ..Default::default()
    };
    let mut api = Harness::start_with(Backend::Postgres, api_extra).await;
    let body = common::envelope(vec![common::text_change(
        "wamid.SPLIT1",
        "16505551234",
        common::now_secs(),
        "split",
    )]);
    assert_eq!(api.post_webhook(&body, None).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        chasqui_store::events::pending_count(api.app().db())
            .await
            .expect("count"),
        1,
        "api node must not process"
    );

    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("c.toml"), "").expect("config");
    let worker_args = ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(api.dir.path().to_path_buf()),
        database_url: Some(api.database_url.clone()),
        config: Some(dir.path().join("c.toml")),
        role: Some("worker".into()),
        ..Default::default()
    };
    let worker = chasqui::node::start(worker_args.resolve().expect("config"))
        .await
        .expect("worker");
    assert!(worker.first_run.is_none());
    api.settle().await;
    let (_, m) = api
        .get(&format!(
            "/meta/whatsapp/v24.0/{CLOUD_PNID}/messages/wamid.SPLIT1"
        ))
        .await;
    assert_eq!(m["kapso"]["content"], "split");
    // The worker node does not accept webhooks.
    let r = api
        .http
        .post(format!("http://{}/webhooks/meta", worker.addr))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 503);
    worker.stop();
    worker.wait().await.expect("stop");
    api.stop().await;
}

/// A stop while deliveries are in flight drains them: every acknowledged delivery is stored,
/// and the next start applies whatever was not applied yet.
async fn shutdown_drains_in_flight_deliveries(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let now = common::now_secs();
    let (client, webhook_url) = (h.http.clone(), h.url("/webhooks/meta"));
    let sends = (0..100).map(|i| {
        let http = client.clone();
        let url = webhook_url.clone();
        async move {
            let body = common::envelope(vec![common::text_change(
                &format!("wamid.DRAIN{i}"),
                "16505551111",
                now + i,
                "x",
            )]);
            let signature = chasqui_meta::sign(APP_SECRET.as_bytes(), &body);
            http.post(url)
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let running = h.running.take().expect("running");
    let (results, stopped) = tokio::join!(futures::future::join_all(sends), async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        running.stop();
        running.wait().await
    });
    stopped.expect("clean stop");
    let acknowledged = results.iter().filter(|r| matches!(r, Ok(200))).count();
    assert!(acknowledged > 0, "{results:?}");
    // Restart on the same database: everything acknowledged is there and gets applied.
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("c.toml"), "").expect("config");
    let args = ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(h.dir.path().to_path_buf()),
        database_url: Some(h.database_url.clone()),
        config: Some(dir.path().join("c.toml")),
        ..Default::default()
    };
    let again = chasqui::node::start(args.resolve().expect("config"))
        .await
        .expect("restart");
    let stored = chasqui_store::events::total_count(again.app.db())
        .await
        .expect("count") as usize;
    assert!(
        stored >= acknowledged,
        "stored {stored} < acknowledged {acknowledged}"
    );
    let db = again.app.db().clone();
    wait_until("restart applies the rest", || async {
        chasqui_store::events::pending_count(&db)
            .await
            .expect("count")
            == 0
    })
    .await;
    let base = format!("http://{}", again.addr);
    let r: Value = h
        .http
        .get(format!(
            "{base}/meta/whatsapp/v24.0/{CLOUD_PNID}/conversations"
        ))
        .header("x-api-key", &h.key)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        r["data"][0]["kapso"]["messages_count"]
            .as_u64()
            .expect("count") as usize,
        stored
    );
    again.stop();
    again.wait().await.expect("stop");
}
both_backends!(shutdown_drains_in_flight_deliveries);
