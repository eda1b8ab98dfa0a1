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
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients")
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
        .args(["-c", "import pywa, kapso_whatsapp"])
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

async fn run(program: &str, script: &str, env: Vec<(&'static str, String)>) {
    let (program, file) = (program.to_owned(), script.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .arg(&file)
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
        stdout.contains("\"done\""),
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
    run("node", "kapso.mjs", env.clone()).await;
    run("python3", "kapso_py_check.py", env.clone()).await;
    run("python3", "pywa_check.py", env).await;

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
