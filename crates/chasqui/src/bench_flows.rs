//! `chasqui bench flows`: simulated customers through a five-step workflow (send, wait,
//! decide, send, end) on a sandbox number. Every customer writes, gets the question, answers,
//! gets the answer; the run reports completed conversations per second, the engine's step
//! latency (from an input to the effect it causes, from the step log), and optionally the
//! CPU time each process spent per conversation and the server's RSS with many executions
//! parked in waits.
//!
//! Meta is played by the server's embedded sandbox, or by a standalone one
//! (`chasqui sandbox serve`) in its own process: then the server's CPU time is the server's
//! alone, without Meta's side of every exchange.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};

/// What to run.
pub(crate) struct FlowsPlan {
    pub(crate) url: String,
    pub(crate) api_key: String,
    pub(crate) customers: usize,
    pub(crate) concurrency: usize,
    pub(crate) park: usize,
    pub(crate) server_pid: Option<u32>,
    pub(crate) standalone: Option<Standalone>,
}

/// A standalone sandbox playing Meta.
pub(crate) struct Standalone {
    /// Its base URL (control API under `/v1`).
    pub(crate) url: String,
    /// The app secret it signs webhooks with.
    pub(crate) app_secret: String,
    /// Its process id, to read its CPU time.
    pub(crate) pid: Option<u32>,
}

struct Api {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("x-api-key", &self.key);
        exchange(request, path, body).await
    }

    /// Executions waiting, ended and failed, from `/metrics`.
    async fn counts(&self) -> anyhow::Result<(u64, u64, u64)> {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?;
        let read = |status: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(&format!(
                        "chasqui_workflow_executions{{status=\"{status}\"}} "
                    ))
                })
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((read("waiting"), read("ended"), read("failed")))
    }
}

/// Sends `request` (with `body` as JSON unless null) and returns the JSON answer, or an error
/// naming `what` for a failure status.
async fn exchange(
    mut request: reqwest::RequestBuilder,
    what: &str,
    body: Value,
) -> anyhow::Result<Value> {
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{what}: {status} {body}");
    }
    Ok(body)
}

fn node(id: &str, t: &str, config: Value) -> Value {
    json!({"id": id, "data": {"node_type": t, "config": config}})
}

fn edge(s: &str, t: &str, label: &str) -> Value {
    json!({"source": s, "target": t, "label": label})
}

/// A new sandbox number of the server's embedded sandbox.
fn sandbox_number() -> Value {
    json!({"whatsapp_phone_number": {"kind": "sandbox", "name": "bench flows"}})
}

/// A new cloud number on the standalone sandbox (which accepts any numeric id and token).
fn standalone_number(sandbox: &Standalone) -> Value {
    crate::bench::cloud_number("bench flows", &sandbox.app_secret).1
}

async fn setup(
    api: &Api,
    number: Value,
    definition: Value,
    trigger: Value,
) -> anyhow::Result<(String, String)> {
    let number = api
        .call(
            reqwest::Method::POST,
            "/platform/v1/whatsapp/phone_numbers",
            number,
        )
        .await?;
    let pnid = number["data"]["phone_number_id"]
        .as_str()
        .context("number id")?
        .to_owned();
    let name = format!("bench flows {}", chasqui_core::ids::random_digits(6));
    let w = api
        .call(
            reqwest::Method::POST,
            "/platform/v1/workflows",
            json!({"workflow": {"name": name, "status": "active", "definition": definition}}),
        )
        .await?;
    let wid = w["data"]["id"].as_str().context("workflow id")?.to_owned();
    let mut trigger = trigger;
    if trigger["trigger_type"] == "inbound_message" {
        trigger["phone_number_id"] = json!(pnid);
    }
    api.call(
        reqwest::Method::POST,
        &format!("/platform/v1/workflows/{wid}/triggers"),
        json!({ "trigger": trigger }),
    )
    .await?;
    Ok((pnid, wid))
}

/// Waits until `check(waiting, ended)` holds; gives up when an execution fails (more than
/// `failed_before`), as none should, or when nothing moves for [`STALL`].
async fn wait_for(
    api: &Api,
    what: &str,
    failed_before: u64,
    check: impl Fn(u64, u64) -> bool,
) -> anyhow::Result<()> {
    const HINT: &str = "GET /platform/v1/workflow_executions/ID tells why; with --sandbox-url \
        the server must run with --graph-base-url set to the standalone sandbox";
    let mut last = (0, 0, Instant::now());
    loop {
        let (waiting, ended, failed) = api.counts().await?;
        if check(waiting, ended) {
            return Ok(());
        }
        if failed > failed_before {
            bail!(
                "{} executions failed while waiting for {what} ({HINT})",
                failed - failed_before
            );
        }
        if (waiting, ended) != (last.0, last.1) {
            last = (waiting, ended, Instant::now());
        } else if last.2.elapsed() > STALL {
            bail!(
                "nothing moved for {} s while waiting for {what} (waiting {waiting}, ended {ended}; {HINT})",
                STALL.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(POLL_MILLIS)).await;
    }
}

/// How long the executions may stay as they are before the tool gives up.
const STALL: Duration = Duration::from_secs(30);

/// How often the tool looks at `/metrics` while it waits: the run's end is known that late at
/// most.
const POLL_MILLIS: u64 = 50;

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/PID/stat`.
const USER_HZ: u64 = 100;

/// CPU time (user + system, all threads, in milliseconds) process `pid` has used so far.
fn cpu_millis(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1000 / USER_HZ)
}

/// CPU time of the processes taking part in a run: the server, the standalone sandbox and
/// this tool.
struct CpuClock {
    pids: Vec<(&'static str, u32)>,
    start: Vec<Option<u64>>,
}

impl CpuClock {
    fn start(server: Option<u32>, sandbox: Option<u32>) -> Self {
        let mut pids = Vec::new();
        if let Some(pid) = server {
            pids.push(("server", pid));
        }
        if let Some(pid) = sandbox {
            pids.push(("standalone sandbox", pid));
        }
        pids.push(("this tool", std::process::id()));
        let start = pids.iter().map(|(_, pid)| cpu_millis(*pid)).collect();
        Self { pids, start }
    }

    /// Each process's CPU time since the start, divided by `units`, in milliseconds.
    fn per_unit(&self, units: usize) -> Vec<(&'static str, f64)> {
        self.pids
            .iter()
            .zip(&self.start)
            .filter_map(|((name, pid), start)| {
                let used = cpu_millis(*pid)?.checked_sub((*start)?)?;
                Some((*name, used as f64 / units.max(1) as f64))
            })
            .collect()
    }
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Runs the benchmark.
pub(crate) async fn run(plan: FlowsPlan) -> anyhow::Result<()> {
    let api = Api {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(plan.concurrency)
            .build()?,
        url: plan.url.clone(),
        key: plan.api_key.clone(),
    };
    let definition = json!({
        "nodes": [
            node("start", "start", json!({})),
            node("ask", "send_text", json!({"message": "Hi {{context.contact.profile_name}}, shall we confirm? (yes/no)"})),
            node("wait", "wait_for_response", json!({"save_response_to": "answer", "timeout_seconds": 3600})),
            node("route", "decide", json!({"conditions": [
                {"label": "yes", "expression": "String(vars.answer).toLowerCase() === 'yes'"},
                {"label": "no", "expression": "true"}]})),
            node("done", "send_text", json!({"message": "Confirmed, thanks {{context.contact.profile_name}}"})),
            node("later", "send_text", json!({"message": "No problem"})),
        ],
        "edges": [edge("start", "ask", "next"), edge("ask", "wait", "next"), edge("wait", "route", "next"),
                  edge("route", "done", "yes"), edge("route", "later", "no")],
    });
    let number = match &plan.standalone {
        Some(sandbox) => standalone_number(sandbox),
        None => sandbox_number(),
    };
    let (pnid, wid) = setup(
        &api,
        number,
        definition,
        json!({"trigger_type": "inbound_message", "active": true}),
    )
    .await?;
    let run_id = chasqui_core::ids::random_digits(4);
    let customer = |i: usize| format!("1557{run_id}{i:07}");
    let (waiting0, ended0, failed0) = api.counts().await?;
    let meta = match &plan.standalone {
        Some(sandbox) => format!("the standalone sandbox at {}", sandbox.url),
        None => "the embedded sandbox".to_owned(),
    };
    eprintln!(
        "{} customers through a five-step flow on number {pnid} ({} at a time; Meta is {meta})",
        plan.customers, plan.concurrency
    );

    let standalone = plan.standalone.as_ref();
    let say = |i: usize, text: &'static str| {
        let api = &api;
        let pnid = pnid.clone();
        let from = customer(i);
        let body = json!({"from": from, "profile_name": format!("Bench {i}"), "message": {"type": "text", "text": {"body": text}}});
        async move {
            match standalone {
                Some(sandbox) => {
                    let url = format!("{}/v1/phone_numbers/{pnid}/inbound", sandbox.url);
                    exchange(api.http.post(&url), &url, body).await
                }
                None => {
                    let path = format!("/sandbox/v1/phone_numbers/{pnid}/inbound");
                    api.call(reqwest::Method::POST, &path, body).await
                }
            }
        }
    };
    let cpu = CpuClock::start(plan.server_pid, standalone.and_then(|s| s.pid));
    let written = crate::bench::writer_counts(&api.http, &plan.url).await?;
    let started = Instant::now();
    let results: Vec<anyhow::Result<Value>> = futures::stream::iter(0..plan.customers)
        .map(|i| say(i, "hi"))
        .buffer_unordered(plan.concurrency)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let n = plan.customers as u64;
    wait_for(&api, "every customer asked", failed0, |waiting, _| {
        waiting >= waiting0 + n
    })
    .await?;
    let asked = started.elapsed();
    let results: Vec<anyhow::Result<Value>> = futures::stream::iter(0..plan.customers)
        .map(|i| say(i, if i % 2 == 0 { "yes" } else { "no" }))
        .buffer_unordered(plan.concurrency)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    wait_for(&api, "every conversation complete", failed0, |_, ended| {
        ended >= ended0 + n
    })
    .await?;
    let elapsed = started.elapsed();
    // The status webhooks of the last sends are still coming: the CPU a conversation costs
    // includes applying them.
    crate::bench::wait_processed(&plan.url, started).await?;
    let cpu = cpu.per_unit(plan.customers);
    let written = match (
        written,
        crate::bench::writer_counts(&api.http, &plan.url).await?,
    ) {
        (Some(before), Some(after)) => {
            Some(crate::bench::writer_work(before, after, plan.customers))
        }
        _ => None,
    };

    // Step latency from the step log: an input (start or reply) to the send it caused.
    let mut latencies: Vec<i64> = Vec::new();
    let mut page = 1;
    loop {
        let list = api
            .call(
                reqwest::Method::GET,
                &format!("/platform/v1/workflows/{wid}/executions?per_page=100&page={page}"),
                Value::Null,
            )
            .await?;
        let rows = list["data"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            break;
        }
        for e in rows
            .iter()
            .take(2000usize.saturating_sub(latencies.len() / 2))
        {
            let id = e["id"].as_str().unwrap_or_default();
            let events = api
                .call(
                    reqwest::Method::GET,
                    &format!("/platform/v1/workflow_executions/{id}/events?per_page=200"),
                    Value::Null,
                )
                .await?;
            let mut input_at: Option<i64> = None;
            for ev in events["data"].as_array().into_iter().flatten() {
                let at = ev["created_at"]
                    .as_str()
                    .and_then(chasqui_core::clock::Timestamp::parse)
                    .map(|t| t.millis());
                match ev["event_type"].as_str() {
                    Some("execution_started" | "user_input_received") => input_at = at,
                    Some("action_performed") => {
                        if let (Some(a), Some(b)) = (input_at.take(), at) {
                            latencies.push(b - a);
                        }
                    }
                    _ => {}
                }
            }
        }
        if latencies.len() >= 4000 {
            break;
        }
        page += 1;
    }
    latencies.sort_unstable();
    let secs = elapsed.as_secs_f64();
    println!(
        "completed {} conversations in {:.1} s: {:.0} conversations/s ({:.0} sends/s); all asked after {:.1} s",
        plan.customers,
        secs,
        plan.customers as f64 / secs,
        2.0 * plan.customers as f64 / secs,
        asked.as_secs_f64()
    );
    println!(
        "step latency (input to its send, {} samples): p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    let server_millis = cpu
        .iter()
        .find(|(name, _)| *name == "server")
        .map(|(_, millis)| *millis);
    let cpu: Vec<String> = cpu
        .iter()
        .map(|(name, millis)| format!("{name} {millis:.2} ms"))
        .collect();
    println!(
        "CPU per conversation, its status webhooks applied: {}",
        cpu.join(", ")
    );
    if let Some(millis) = server_millis.filter(|m| *m > 0.0) {
        // What the run cost the server alone: its throughput on CPUs it had to itself,
        // without Meta's side and the load generator, which share this machine's.
        println!(
            "server capacity: {:.0} conversations per CPU-second of the server's own time",
            1000.0 / millis
        );
    }
    if let Some(written) = written {
        // Counted until the inbox stayed empty for a second: the background loops' polls
        // of that second are in it.
        println!("SQLite writer per conversation, its status webhooks applied: {written}");
    }

    if plan.park > 0 {
        park(&api, &plan).await?;
    }
    Ok(())
}

/// Parks `plan.park` executions in a 7-day wait (started through the API, no sends) and
/// reports the server's RSS before and after.
async fn park(api: &Api, plan: &FlowsPlan) -> anyhow::Result<()> {
    let definition = json!({
        "nodes": [node("start", "start", json!({})),
                  node("wait", "wait_for_response", json!({"timeout_seconds": 604800, "save_response_to": "a"}))],
        "edges": [edge("start", "wait", "next")],
    });
    let trigger = json!({"trigger_type": "api_call"});
    let (pnid, wid) = setup(api, sandbox_number(), definition, trigger).await?;
    let before = plan.server_pid.and_then(rss_kib);
    let (waiting0, _, failed0) = api.counts().await?;
    let run_id = chasqui_core::ids::random_digits(4);
    let started = Instant::now();
    let results: Vec<anyhow::Result<Value>> = futures::stream::iter(0..plan.park)
        .map(|i| {
            let body = json!({"workflow_execution": {"phone_number": format!("+1558{run_id}{i:07}"), "phone_number_id": pnid}});
            let path = format!("/platform/v1/workflows/{wid}/executions");
            async move { api.call(reqwest::Method::POST, &path, body).await }
        })
        .buffer_unordered(plan.concurrency)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let n = plan.park as u64;
    wait_for(api, "every execution parked", failed0, |waiting, _| {
        waiting >= waiting0 + n
    })
    .await?;
    println!(
        "parked {} executions in waits in {:.1} s ({:.0} starts/s)",
        plan.park,
        started.elapsed().as_secs_f64(),
        plan.park as f64 / started.elapsed().as_secs_f64()
    );
    match (before, plan.server_pid.and_then(rss_kib)) {
        (Some(b), Some(a)) => println!(
            "server RSS: {:.1} MB before, {:.1} MB with {} more executions waiting",
            b as f64 / 1024.0,
            a as f64 / 1024.0,
            plan.park
        ),
        _ => println!("server RSS: give --server-pid to measure it"),
    }
    Ok(())
}
