//! Unmodified client libraries against a real Chasqui: `@kapso/whatsapp-cloud-api` (npm),
//! `kapso-whatsapp-cloud-api` and `pywa` (PyPI), each driven by a script in `clients/` that
//! sends every common type, marks read, manages media and templates, edits the business
//! profile and reads stored messages and conversations. The packages are installed by
//! `.ci/run` (`npm ci --prefix clients`, `pip install -r clients/requirements.txt`); without
//! them the test is skipped with a notice, unless CHASQUI_REQUIRE_CLIENTS=1.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Backend, Harness};
use serde_json::json;

fn clients_dir() -> PathBuf {
    common::manifest_dir().join("../../clients")
}

fn available() -> bool {
    let node = clients_dir()
        .join("node_modules/@kapso/whatsapp-cloud-api/package.json")
        .exists()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    let python = Command::new("python3")
        .args(["-c", "import pywa, kapso_whatsapp, standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if node && python {
        return true;
    }
    assert!(
        std::env::var("CHASQUI_REQUIRE_CLIENTS").as_deref() != Ok("1"),
        "client libraries are required (CHASQUI_REQUIRE_CLIENTS=1) but missing: node package {node}, python packages {python}"
    );
    eprintln!(
        "skipping client-library checks: run `npm ci --prefix clients` and `pip install -r clients/requirements.txt`"
    );
    false
}

async fn run(program: &str, script: &str, env: Vec<(&'static str, String)>, args: &[&str]) {
    let (program, file) = (program.to_owned(), script.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .arg(&file)
            .args(&args)
            .current_dir(clients_dir())
            .envs(env)
            .output()
            .expect("run client script")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("\"done\"") || stdout.contains("\"verified\""),
        "{script} did not finish:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_libraries_work_unmodified() {
    if !available() {
        return;
    }
    let h = Harness::start(Backend::Sqlite).await;
    let pnid = h.sandbox_pnid.clone();
    let (status, _) = h
        .send(
            reqwest::Method::PUT,
            "/sandbox/v1/settings",
            json!({"status_delay_ms": 5, "template_review_ms": 20}),
        )
        .await;
    assert_eq!(status, 200);
    let customer = "15551230000";
    let inbound = h
        .customer_says(
            customer,
            "Ana",
            json!({"type": "text", "text": {"body": "hola"}}),
        )
        .await;
    h.settle().await;
    let number = chasqui_store::numbers::find(h.app().db(), &h.project_id, &pnid)
        .await
        .expect("find")
        .expect("number");
    let token = chasqui_app::numbers::credentials(h.app(), &number)
        .expect("credentials")
        .access_token
        .expose()
        .clone();
    let env = vec![
        ("CHASQUI_URL", h.base.clone()),
        ("CHASQUI_API_KEY", h.key.clone()),
        ("PNID", pnid.clone()),
        ("WABA", number.business_account_id.clone()),
        ("CUSTOMER", customer.to_owned()),
        ("INBOUND_WAMID", inbound),
        ("META_TOKEN", token),
    ];
    run("node", "kapso.mjs", env.clone(), &[]).await;
    run("python3", "kapso_py_check.py", env.clone(), &[]).await;
    run("python3", "pywa_check.py", env, &[]).await;

    // What the libraries sent reached the customer's phone (the sandbox) and is stored.
    let (_, outbox) = h
        .get(&format!("/sandbox/v1/phone_numbers/{pnid}/outbox"))
        .await;
    let bodies: Vec<&str> = outbox["data"]
        .as_array()
        .expect("outbox")
        .iter()
        .filter_map(|m| m.pointer("/text/body").and_then(|b| b.as_str()))
        .collect();
    for expected in [
        "Hola from the kapso SDK",
        "Hola from kapso python",
        "Hola from pywa",
    ] {
        assert!(
            bodies.contains(&expected),
            "{expected} missing from {bodies:?}"
        );
    }
    let (_, stored) = h
        .get(&format!(
            "/meta/whatsapp/v24.0/{pnid}/messages?direction=outbound&limit=100"
        ))
        .await;
    assert_eq!(
        stored["data"].as_array().expect("data").len(),
        outbox["data"].as_array().expect("outbox").len(),
        "every send the libraries made is stored"
    );
}

/// A receiver that keeps every request.
async fn capture_server() -> (
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>,
    String,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    store.lock().expect("lock").push((headers, body));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, url)
}

fn write_capture(
    dir: &std::path::Path,
    name: &str,
    secret: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> String {
    use base64::Engine;
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default())))
        .collect();
    let capture = json!({
        "secret": secret,
        "headers": headers,
        "body_base64": base64::engine::general_purpose::STANDARD.encode(body),
    });
    let path = dir.join(name);
    std::fs::write(&path, capture.to_string()).expect("write capture");
    path.display().to_string()
}

/// Signatures check out with implementations that share no code with Chasqui: the
/// `standardwebhooks` package and Python's hmac for a kapso webhook, Node's crypto for the
/// kapso and the meta kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_signatures_verify_independently() {
    if !available() {
        return;
    }
    let h = Harness::start(Backend::Sqlite).await;
    let pnid = h.sandbox_pnid.clone();
    let (seen, url) = capture_server().await;
    let (status, kapso) = h
        .post(
            "/platform/v1/whatsapp/webhooks",
            json!({"whatsapp_webhook": {"url": url, "events": ["whatsapp.message.received"]}}),
        )
        .await;
    assert_eq!(status, 201, "{kapso}");
    let kapso_secret = kapso["data"]["secret_key"]
        .as_str()
        .expect("secret")
        .to_owned();
    let meta_secret = "a meta receiver's app secret";
    let (status, _) = h
        .post(
            &format!("/platform/v1/whatsapp/phone_numbers/{pnid}/webhooks"),
            json!({"whatsapp_webhook": {"url": url, "kind": "meta", "secret_key": meta_secret}}),
        )
        .await;
    assert_eq!(status, 201);
    h.customer_says(
        "15550004321",
        "Vera",
        json!({"type": "text", "text": {"body": "check my signature"}}),
    )
    .await;
    common::wait_until("both deliveries", || async {
        seen.lock().expect("lock").len() >= 2
    })
    .await;
    let requests = seen.lock().expect("lock").clone();
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (headers, body)) in requests.iter().enumerate() {
        let is_meta = headers.contains_key("x-hub-signature-256");
        let secret = if is_meta {
            meta_secret
        } else {
            kapso_secret.as_str()
        };
        let file = write_capture(
            dir.path(),
            &format!("capture-{i}.json"),
            secret,
            headers,
            body,
        );
        run(
            "node",
            "verify_webhook.mjs",
            vec![("CAPTURE", file.clone())],
            &[&file],
        )
        .await;
        if !is_meta {
            run("python3", "verify_webhook.py", vec![], &[&file]).await;
        }
    }
}
