//! `chasqui bench delivery`: inbound messages fanned out to N webhooks that point at a
//! loopback sink run by the tool itself. Reports deliveries/s and the end-to-end latency from
//! the simulated customer's message to the webhook's arrival at the sink.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::body::Bytes;
use serde_json::{Value, json};

/// What to run.
pub(crate) struct DeliveryPlan {
    pub(crate) url: String,
    pub(crate) api_key: String,
    pub(crate) webhooks: usize,
    pub(crate) events: usize,
    pub(crate) concurrency: usize,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[derive(Default)]
struct Arrivals {
    latencies_ms: Vec<u64>,
    last: Option<Instant>,
}

async fn start_sink(arrivals: Arc<Mutex<Arrivals>>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let arrivals = arrivals.clone();
            async move {
                let now = epoch_ms();
                let sent = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                    v.pointer("/message/kapso/content")
                        .and_then(Value::as_str)
                        .and_then(|t| t.strip_prefix("bench "))
                        .and_then(|t| t.parse::<u64>().ok())
                });
                let mut a = arrivals.lock().unwrap_or_else(|p| p.into_inner());
                a.latencies_ms
                    .push(sent.map_or(0, |s| now.saturating_sub(s)));
                a.last = Some(Instant::now());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

async fn post(
    client: &reqwest::Client,
    plan: &DeliveryPlan,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let response = client
        .post(format!("{}{path}", plan.url))
        .header("x-api-key", &plan.api_key)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {path}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {path}: {status} {answer}");
    }
    Ok(answer)
}

/// Runs the delivery benchmark.
pub(crate) async fn run(plan: DeliveryPlan) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let sink = start_sink(arrivals.clone()).await?;
    let number = post(
        &client,
        &plan,
        "/platform/v1/whatsapp/phone_numbers",
        json!({ "whatsapp_phone_number": { "kind": "sandbox", "name": "bench delivery" } }),
    )
    .await?;
    let pnid = number
        .pointer("/data/phone_number_id")
        .and_then(Value::as_str)
        .context("the created number has no phone_number_id")?
        .to_owned();
    let mut hooks = Vec::new();
    for _ in 0..plan.webhooks {
        let created = post(&client, &plan, &format!("/platform/v1/whatsapp/phone_numbers/{pnid}/webhooks"),
            json!({ "whatsapp_webhook": { "url": sink, "events": ["whatsapp.message.received"] } }))
            .await
            .context("creating a webhook (start the server with --webhook-allow-private true: the sink is on loopback)")?;
        hooks.push(
            created
                .pointer("/data/id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        );
    }
    eprintln!("sandbox number {pnid}, {} webhooks to {sink}", hooks.len());

    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let plan = Arc::new(plan);
    let mut tasks = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let (client, plan, next, pnid) = (client.clone(), plan.clone(), next.clone(), pnid.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= plan.events {
                    return Ok::<_, anyhow::Error>(());
                }
                let body = json!({ "from": format!("1555800{:05}", i % 50_000), "profile_name": "Bench",
                    "message": { "type": "text", "text": { "body": format!("bench {}", epoch_ms()) } } });
                post(&client, &plan, &format!("/sandbox/v1/phone_numbers/{pnid}/inbound"), body).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let posted = started.elapsed();
    let expected = plan.events * plan.webhooks;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let got = arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .latencies_ms
            .len();
        if got >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut latencies, last) = {
        let a = arrivals.lock().unwrap_or_else(|p| p.into_inner());
        (a.latencies_ms.clone(), a.last)
    };
    latencies.sort_unstable();
    let elapsed = last.map_or(started.elapsed(), |l| l - started);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{} of {expected} deliveries ({} events x {} webhooks) in {:.1} s: {:.0} deliveries/s; events posted in {:.1} s; end-to-end latency p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        plan.events,
        plan.webhooks,
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        posted.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    for id in hooks {
        let _ = client
            .delete(format!(
                "{}/platform/v1/whatsapp/phone_numbers/{pnid}/webhooks/{id}",
                plan.url
            ))
            .header("x-api-key", &plan.api_key)
            .send()
            .await;
    }
    if latencies.len() < expected {
        bail!("only {} of {expected} deliveries arrived", latencies.len());
    }
    Ok(())
}
