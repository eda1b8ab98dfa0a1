//! `chasqui bench send`: text messages through the Meta proxy to a sandbox number, spread
//! over many conversations. Each connection owns a disjoint set of conversations and sends
//! to them round-robin, one request at a time, numbering each conversation's messages; at
//! the end the sandbox outbox (what "Meta" received) must show every conversation's messages
//! in that order.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::bench::{RawConn, Report, wait_processed};

/// What to run.
pub(crate) struct SendPlan {
    pub(crate) url: String,
    pub(crate) api_key: String,
    pub(crate) phone_number_id: Option<String>,
    pub(crate) conversations: usize,
    pub(crate) duration: Duration,
    pub(crate) concurrency: usize,
}

fn customer(i: usize) -> String {
    format!("1555900{i:05}")
}

async fn sandbox_number(client: &reqwest::Client, plan: &SendPlan) -> anyhow::Result<String> {
    if let Some(pnid) = &plan.phone_number_id {
        return Ok(pnid.clone());
    }
    let response = client
        .post(format!("{}/platform/v1/whatsapp/phone_numbers", plan.url))
        .header("x-api-key", &plan.api_key)
        .json(&json!({ "whatsapp_phone_number": { "kind": "sandbox", "name": "bench send" } }))
        .send()
        .await
        .context("creating the sandbox number")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("creating the sandbox number: {status} {body}");
    }
    let pnid = body
        .pointer("/data/phone_number_id")
        .and_then(Value::as_str)
        .context("the created number has no phone_number_id")?
        .to_owned();
    eprintln!("created sandbox number {pnid} for the benchmark");
    Ok(pnid)
}

/// Every customer writes first, so free-form messages are inside the 24-hour window.
async fn open_windows(client: &reqwest::Client, plan: &SendPlan, pnid: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    for i in 0..plan.conversations {
        let response = client
            .post(format!(
                "{}/sandbox/v1/phone_numbers/{pnid}/inbound",
                plan.url
            ))
            .header("x-api-key", &plan.api_key)
            .json(
                &json!({ "from": customer(i), "profile_name": format!("Bench {i}"),
                "message": { "type": "text", "text": { "body": "hello" } } }),
            )
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "the sandbox refused a customer message: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
    }
    wait_processed(&plan.url, started).await.map(drop)
}

struct Worker {
    ok: u64,
    failed: u64,
    conflicts: u64,
    latencies: Vec<u64>,
}

async fn worker(plan: &SendPlan, pnid: &str, index: usize, deadline: Instant) -> Worker {
    let mine: Vec<usize> = (index..plan.conversations)
        .step_by(plan.concurrency)
        .collect();
    let mut next_seq = vec![0u64; mine.len()];
    let mut result = Worker {
        ok: 0,
        failed: 0,
        conflicts: 0,
        latencies: Vec::new(),
    };
    let path = format!("/meta/whatsapp/v24.0/{pnid}/messages");
    let header = format!("X-API-Key: {}\r\n", plan.api_key);
    let mut conn = RawConn::connect(&plan.url).await.ok();
    let mut turn = 0usize;
    while Instant::now() < deadline && !mine.is_empty() {
        let slot = turn % mine.len();
        turn += 1;
        let body = format!(
            r#"{{"messaging_product":"whatsapp","to":"{}","type":"text","text":{{"body":"bench seq {}"}}}}"#,
            customer(mine[slot]),
            next_seq[slot]
        );
        let t = Instant::now();
        let answer = match conn.as_mut() {
            Some(c) => c.request(&path, &header, body.as_bytes()).await.ok(),
            None => None,
        };
        match answer {
            Some((200, _)) => {
                result.ok += 1;
                result.latencies.push(t.elapsed().as_micros() as u64);
                next_seq[slot] += 1;
            }
            Some((409, _)) => result.conflicts += 1,
            Some(_) => result.failed += 1,
            None => {
                result.failed += 1;
                conn = RawConn::connect(&plan.url).await.ok();
            }
        }
    }
    result
}

/// Checks that the sandbox received each conversation's messages in order.
async fn check_order(
    client: &reqwest::Client,
    plan: &SendPlan,
    pnid: &str,
) -> anyhow::Result<(usize, usize)> {
    let outbox: Value = client
        .get(format!(
            "{}/sandbox/v1/phone_numbers/{pnid}/outbox",
            plan.url
        ))
        .header("x-api-key", &plan.api_key)
        .send()
        .await?
        .json()
        .await?;
    let mut last: std::collections::HashMap<String, u64> = Default::default();
    let (mut checked, mut out_of_order) = (0, 0);
    for m in outbox["data"].as_array().into_iter().flatten() {
        let (Some(to), Some(text)) = (
            m["to"].as_str(),
            m.pointer("/text/body").and_then(Value::as_str),
        ) else {
            continue;
        };
        let Some(seq) = text
            .strip_prefix("bench seq ")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        checked += 1;
        if let Some(previous) = last.insert(to.to_owned(), seq)
            && previous + 1 != seq
        {
            out_of_order += 1;
        }
    }
    Ok((checked, out_of_order))
}

/// Runs the send benchmark.
pub(crate) async fn run(plan: SendPlan) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let pnid = sandbox_number(&client, &plan).await?;
    open_windows(&client, &plan, &pnid).await?;
    let written = crate::bench::writer_counts(&client, &plan.url).await?;
    let started = Instant::now();
    let deadline = started + plan.duration;
    let plan = std::sync::Arc::new(plan);
    let mut tasks = Vec::new();
    for index in 0..plan.concurrency {
        let (plan, pnid) = (plan.clone(), pnid.clone());
        tasks.push(tokio::spawn(async move {
            worker(&plan, &pnid, index, deadline).await
        }));
    }
    let mut report = Report {
        started,
        elapsed: Duration::ZERO,
        accepted: 0,
        failed: 0,
        latencies_us: Vec::new(),
    };
    let mut conflicts = 0;
    for task in tasks {
        let w = task.await?;
        report.accepted += w.ok;
        report.failed += w.failed;
        conflicts += w.conflicts;
        report.latencies_us.extend(w.latencies);
    }
    report.elapsed = started.elapsed();
    report.latencies_us.sort_unstable();
    let secs = report.elapsed.as_secs_f64();
    println!(
        "sent {} ({:.0}/s) over {} conversations, failed {}, 409 {}, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {:.1} s",
        report.accepted,
        report.accepted as f64 / secs,
        plan.conversations,
        report.failed,
        conflicts,
        report.percentile(0.50),
        report.percentile(0.99),
        report.percentile(1.0),
        secs
    );
    let (checked, out_of_order) = check_order(&client, &plan, &pnid).await?;
    println!(
        "order: {checked} messages checked in the sandbox outbox, {out_of_order} out of order"
    );
    if let Some(drained) = wait_processed(&plan.url, started).await? {
        // Meta's three status webhooks per send are stored at once but applied from the
        // inbox: under load they lag behind the sends.
        println!(
            "with their statuses applied: {:.0} sends/s ({} sends over the {:.1} s until the inbox drained)",
            report.accepted as f64 / drained.as_secs_f64().max(0.001),
            report.accepted,
            drained.as_secs_f64()
        );
        if let (Some(before), Some(after)) = (
            written,
            crate::bench::writer_counts(&client, &plan.url).await?,
        ) {
            let per_send = crate::bench::writer_work(
                before,
                after,
                usize::try_from(report.accepted).unwrap_or(usize::MAX),
            );
            println!("SQLite writer per send, its statuses applied: {per_send}");
        }
    }
    if out_of_order > 0 {
        bail!("{out_of_order} messages reached Meta out of order");
    }
    Ok(())
}
