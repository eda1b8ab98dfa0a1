//! `chasqui bench`: load generators measured against a running server.
//!
//! `ingest` posts realistic signed webhooks (text messages from many customers mixed with
//! status updates) and reports accepted/s, latency percentiles, and the time until the server
//! has processed everything (read from `/metrics`). `null-server` is the ceiling: a handler
//! that only checks the signature, parses the JSON and answers 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use clap::Subcommand;
use serde_json::{Value, json};

/// Benchmark commands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Post signed webhooks to a server and measure.
    Ingest {
        /// Base URL of the server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// API key: creates a `cloud` number with a fresh app secret to post for.
        #[arg(long, env = "CHASQUI_BENCH_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// App secret to sign with (instead of --api-key).
        #[arg(long, hide_env_values = true)]
        app_secret: Option<String>,
        /// Phone number id to post for (with --app-secret).
        #[arg(long, default_value = "100000000000001")]
        phone_number_id: String,
        /// Target requests per second in total (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Share of deliveries that are status updates (0-100).
        #[arg(long, default_value_t = 30)]
        status_percent: u64,
        /// Do not wait for processing to finish.
        #[arg(long)]
        no_wait: bool,
    },
    /// Send text messages through the Meta proxy to a sandbox number across many
    /// conversations; reports sends/s and latency, and checks per-conversation order.
    Send {
        /// Base URL of the server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// API key of the project.
        #[arg(long, env = "CHASQUI_BENCH_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Sandbox phone number id to send from (default: a new sandbox number).
        #[arg(long)]
        phone_number_id: Option<String>,
        /// Conversations (simulated customers) to spread the sends over.
        #[arg(long, default_value_t = 256)]
        conversations: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Concurrent connections (each owns a share of the conversations).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Fan inbound messages out to N webhooks on a loopback sink run by the tool; reports
    /// deliveries/s and end-to-end latency (the server needs --webhook-allow-private true).
    Delivery {
        /// Base URL of the server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// API key of the project.
        #[arg(long, env = "CHASQUI_BENCH_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Webhooks subscribed to every event.
        #[arg(long, default_value_t = 10)]
        webhooks: usize,
        /// Inbound messages to post.
        #[arg(long, default_value_t = 2000)]
        events: usize,
        /// Concurrent posters.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Simulated customers through a five-step workflow (send, wait, decide, send, end) on a
    /// new sandbox number (or a cloud number on a standalone sandbox); reports
    /// conversations/s, step latency and, with --server-pid, the server's CPU per
    /// conversation; with --park the server's RSS with that many more executions waiting.
    Flows {
        /// Base URL of the server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// API key of the project.
        #[arg(long, env = "CHASQUI_BENCH_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Simulated customers (each one conversation).
        #[arg(long, default_value_t = 1000)]
        customers: usize,
        /// Concurrent requests.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Executions to park in a 7-day wait afterwards (0 = skip).
        #[arg(long, default_value_t = 0)]
        park: usize,
        /// Process id of the server, to read its CPU time and RSS.
        #[arg(long)]
        server_pid: Option<u32>,
        /// A standalone sandbox (`chasqui sandbox serve`) to play Meta instead of the
        /// server's embedded one, so that Meta's side runs in its own process: the server
        /// must run with `--graph-base-url` set to it, and the sandbox with
        /// `--webhook-url {server}/webhooks/meta`.
        #[arg(long, requires = "sandbox_app_secret")]
        sandbox_url: Option<String>,
        /// The standalone sandbox's `--app-secret` (the bench's cloud number gets it).
        #[arg(long, hide_env_values = true)]
        sandbox_app_secret: Option<String>,
        /// Process id of the standalone sandbox, to read its CPU time.
        #[arg(long)]
        sandbox_pid: Option<u32>,
    },
    /// Serve the null handler (signature check + JSON parse + 200) as a ceiling
    /// (listens on --listen, default 127.0.0.1:8099).
    NullServer {
        /// App secret to verify with.
        #[arg(long, default_value = "bench-secret")]
        app_secret: String,
    },
}

/// Runs a benchmark command.
pub async fn run(command: BenchCommand, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest {
            url,
            api_key,
            app_secret,
            phone_number_id,
            rate,
            duration,
            concurrency,
            status_percent,
            no_wait,
        } => {
            let url = url.trim_end_matches('/').to_owned();
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(concurrency)
                .build()?;
            let (secret, pnid) = match (api_key, app_secret) {
                (Some(key), None) => create_number(&client, &url, &key).await?,
                (None, Some(secret)) => (secret, phone_number_id),
                _ => bail!("give either --api-key or --app-secret"),
            };
            if !url.starts_with("http://") {
                bail!("the load generator speaks plain HTTP: give an http:// URL");
            }
            let report = ingest(IngestPlan {
                url: url.clone(),
                secret,
                pnid,
                rate,
                duration: Duration::from_secs(duration),
                concurrency: concurrency.max(1),
                status_percent: status_percent.min(100),
                now: {
                    use chasqui_core::Clock;
                    chasqui_core::SystemClock.now().secs()
                },
            })
            .await?;
            report.print();
            if !no_wait {
                wait_processed(&url, report.started).await?;
            }
            Ok(())
        }
        BenchCommand::Send {
            url,
            api_key,
            phone_number_id,
            conversations,
            duration,
            concurrency,
        } => {
            let url = url.trim_end_matches('/').to_owned();
            if !url.starts_with("http://") {
                bail!("the load generator speaks plain HTTP: give an http:// URL");
            }
            let concurrency = concurrency.clamp(1, conversations.max(1));
            crate::bench_send::run(crate::bench_send::SendPlan {
                url,
                api_key,
                phone_number_id,
                conversations: conversations.max(1),
                duration: Duration::from_secs(duration),
                concurrency,
            })
            .await
        }
        BenchCommand::Delivery {
            url,
            api_key,
            webhooks,
            events,
            concurrency,
        } => {
            crate::bench_delivery::run(crate::bench_delivery::DeliveryPlan {
                url: url.trim_end_matches('/').to_owned(),
                api_key,
                webhooks: webhooks.clamp(1, 100),
                events: events.max(1),
                concurrency,
            })
            .await
        }
        BenchCommand::Flows {
            url,
            api_key,
            customers,
            concurrency,
            park,
            server_pid,
            sandbox_url,
            sandbox_app_secret,
            sandbox_pid,
        } => {
            let standalone = match (sandbox_url, sandbox_app_secret) {
                (Some(url), Some(app_secret)) => Some(crate::bench_flows::Standalone {
                    url: url.trim_end_matches('/').to_owned(),
                    app_secret,
                    pid: sandbox_pid,
                }),
                (None, None) => None,
                _ => bail!("--sandbox-url and --sandbox-app-secret go together"),
            };
            crate::bench_flows::run(crate::bench_flows::FlowsPlan {
                url: url.trim_end_matches('/').to_owned(),
                api_key,
                customers: customers.max(1),
                concurrency: concurrency.max(1),
                park,
                server_pid,
                standalone,
            })
            .await
        }
        BenchCommand::NullServer { app_secret } => null_server(listen, app_secret).await,
    }
}

/// A new `cloud` number's id and its creation body for the Platform API: fresh numeric ids,
/// any access token, webhooks signed with `app_secret`.
pub(crate) fn cloud_number(name: &str, app_secret: &str) -> (String, Value) {
    let pnid = format!("7{}", chasqui_core::ids::random_digits(14));
    let body = json!({ "whatsapp_phone_number": {
        "kind": "cloud", "name": name, "phone_number_id": pnid,
        "business_account_id": format!("6{}", chasqui_core::ids::random_digits(14)),
        "display_phone_number": "15550001111", "access_token": "bench-token", "app_secret": app_secret,
    }});
    (pnid, body)
}

async fn create_number(
    client: &reqwest::Client,
    url: &str,
    key: &str,
) -> anyhow::Result<(String, String)> {
    let secret = chasqui_core::ids::random_token("bench_");
    let (pnid, body) = cloud_number("bench", &secret);
    let response = client
        .post(format!("{url}/platform/v1/whatsapp/phone_numbers"))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .context("creating the bench phone number")?;
    if !response.status().is_success() {
        bail!(
            "creating the bench phone number: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    eprintln!("created cloud number {pnid} for the benchmark");
    Ok((secret, pnid))
}

struct IngestPlan {
    url: String,
    secret: String,
    pnid: String,
    rate: u64,
    duration: Duration,
    concurrency: usize,
    status_percent: u64,
    now: i64,
}

pub(crate) struct Report {
    pub(crate) started: Instant,
    pub(crate) elapsed: Duration,
    pub(crate) accepted: u64,
    pub(crate) failed: u64,
    pub(crate) latencies_us: Vec<u64>,
}

impl Report {
    pub(crate) fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn print(&self) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "accepted {} ({:.0}/s), failed {}, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {:.1} s",
            self.accepted,
            self.accepted as f64 / secs,
            self.failed,
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(1.0),
            secs
        );
    }
}

/// One delivery body: a text message from one of 1,000 customers, or a status update.
/// Written from a template (no JSON tree) so the load generator stays cheap; the bytes are
/// what Meta sends (compact, ASCII).
fn payload(pnid: &str, n: u64, status_percent: u64, now: i64) -> Vec<u8> {
    let customer = 15_550_000_000u64 + n % 1000;
    let head = r#"{"object":"whatsapp_business_account","entry":[{"id":"600000000000001","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":""#;
    let value = if n % 100 < status_percent {
        let status = ["sent", "delivered", "read"][(n % 3) as usize];
        format!(
            r#"{head}{pnid}"}},"statuses":[{{"id":"wamid.BENCHOUT{id}","status":"{status}","timestamp":"{now}","recipient_id":"{customer}"}}]}},"field":"messages"}}]}}]}}"#,
            id = n / 3
        )
    } else {
        format!(
            r#"{head}{pnid}"}},"contacts":[{{"profile":{{"name":"Customer {c}"}},"wa_id":"{customer}"}}],"messages":[{{"from":"{customer}","id":"wamid.BENCH{n}X{now}","timestamp":"{now}","type":"text","text":{{"body":"Hola, I would like to order #{n} please"}}}}]}},"field":"messages"}}]}}]}}"#,
            c = n % 1000
        )
    };
    value.into_bytes()
}

async fn ingest(plan: IngestPlan) -> anyhow::Result<Report> {
    let plan = Arc::new(plan);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let progress = indicatif::ProgressBar::new(plan.duration.as_secs());
    let tick = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                progress.inc(1);
            }
        })
    };
    let mut tasks = Vec::new();
    for worker in 0..plan.concurrency {
        let plan = plan.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut ok, mut failed) = (0u64, 0u64);
            let interval = (plan.rate > 0)
                .then(|| Duration::from_secs_f64(plan.concurrency as f64 / plan.rate as f64));
            let mut next = Instant::now() + Duration::from_micros(worker as u64 * 10);
            let mut conn = RawConn::connect(&plan.url).await.ok();
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    let now = Instant::now();
                    if next > now {
                        tokio::time::sleep(next - now).await;
                    }
                    next += interval;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = payload(&plan.pnid, n, plan.status_percent, plan.now);
                let signature = chasqui_meta::sign(plan.secret.as_bytes(), &body);
                let t = Instant::now();
                let status = match conn.as_mut() {
                    Some(c) => c.post(&signature, &body).await.ok(),
                    None => None,
                };
                match status {
                    Some(200..=299) => {
                        ok += 1;
                        latencies.push(t.elapsed().as_micros() as u64);
                    }
                    Some(_) => failed += 1,
                    None => {
                        failed += 1;
                        conn = RawConn::connect(&plan.url).await.ok();
                    }
                }
            }
            (ok, failed, latencies)
        }));
    }
    let mut report = Report {
        started,
        elapsed: Duration::ZERO,
        accepted: 0,
        failed: 0,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (ok, failed, latencies) = task.await?;
        report.accepted += ok;
        report.failed += failed;
        report.latencies_us.extend(latencies);
    }
    report.elapsed = started.elapsed();
    tick.abort();
    progress.finish_and_clear();
    report.latencies_us.sort_unstable();
    Ok(report)
}

/// A bare HTTP/1.1 keep-alive connection: the load generator must cost far less CPU than
/// the server it measures (both share this machine's cores), which a full client does not.
pub(crate) struct RawConn {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    host: String,
}

impl RawConn {
    pub(crate) async fn connect(url: &str) -> std::io::Result<Self> {
        let host = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let stream = tokio::net::TcpStream::connect(&host).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: tokio::io::BufReader::new(stream),
            host,
        })
    }

    /// Posts one webhook; returns the response status.
    async fn post(&mut self, signature: &str, body: &[u8]) -> std::io::Result<u16> {
        let header = format!("X-Hub-Signature-256: {signature}\r\n");
        self.request("/webhooks/meta", &header, body)
            .await
            .map(|(status, _)| status)
    }

    /// Posts `body` (JSON) to `path` with extra header lines (each ending in CRLF); returns
    /// the status and the response body.
    pub(crate) async fn request(
        &mut self,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.stream.get_mut().write_all(&request).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(std::io::Error::other)?;
            }
        }
        let mut rest = vec![0u8; length];
        self.stream.read_exact(&mut rest).await?;
        Ok((status, rest))
    }
}

/// Waits until the target's inbox has applied every delivery from Meta; prints and returns
/// when that happened (from `started`), or `None` for a target without `/metrics`.
pub(crate) async fn wait_processed(
    url: &str,
    started: Instant,
) -> anyhow::Result<Option<Duration>> {
    let client = reqwest::Client::new();
    let pending = || async {
        let text = client
            .get(format!("{url}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        anyhow::Ok(
            text.lines()
                .find_map(|l| l.strip_prefix("chasqui_inbound_events_pending "))
                .and_then(|v| v.trim().parse::<u64>().ok()),
        )
    };
    // Drained once the inbox is empty and stays empty for a second: status webhooks the
    // sandbox has yet to send (50 ms apart) would show by then.
    let mut empty_since: Option<Duration> = None;
    loop {
        match pending().await? {
            Some(0) => {
                let now = started.elapsed();
                let since = *empty_since.get_or_insert(now);
                if now - since >= Duration::from_secs(1) {
                    println!("all processed {:.1} s after the start", since.as_secs_f64());
                    return Ok(Some(since));
                }
            }
            Some(_) => empty_since = None,
            None => {
                eprintln!("the target has no /metrics (null server?); not waiting for processing");
                return Ok(None);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The SQLite counters `bench` reports per unit of work, as `/metrics` names them.
const WRITER_COUNTERS: [(&str, &str); 4] = [
    ("chasqui_sqlite_statements_total", "statements"),
    ("chasqui_sqlite_commits_total", "commits"),
    ("chasqui_sqlite_wal_frames_total", "WAL frames"),
    ("chasqui_sqlite_rows_changed_total", "rows changed"),
];

/// What the target's SQLite writer of the main file has done so far (`/metrics`), in
/// [`WRITER_COUNTERS`]' order; `None` for a target without them (PostgreSQL, null server).
pub(crate) async fn writer_counts(
    http: &reqwest::Client,
    url: &str,
) -> anyhow::Result<Option<[u64; 4]>> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut out = [0; 4];
    for (slot, (name, _)) in out.iter_mut().zip(WRITER_COUNTERS) {
        let prefix = format!("{name}{{file=\"main\"}} ");
        let Some(value) = text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
        else {
            return Ok(None);
        };
        *slot = value;
    }
    Ok(Some(out))
}

/// The writer's work between two readings per `units`, e.g. "95.2 statements, 4.7 commits,
/// 36.0 WAL frames, 41.0 rows changed".
pub(crate) fn writer_work(before: [u64; 4], after: [u64; 4], units: usize) -> String {
    WRITER_COUNTERS
        .iter()
        .zip(before.iter().zip(after))
        .map(|((_, label), (b, a))| {
            format!(
                "{:.1} {label}",
                a.saturating_sub(*b) as f64 / units.max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn null_server(listen: std::net::SocketAddr, secret: String) -> anyhow::Result<()> {
    let secret = Arc::new(secret);
    let app = axum::Router::new().route(
        "/webhooks/meta",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let secret = secret.clone();
            async move {
                let sig = headers
                    .get("x-hub-signature-256")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if !chasqui_meta::verify(secret.as_bytes(), &body, sig) {
                    return StatusCode::UNAUTHORIZED;
                }
                match serde_json::from_slice::<Value>(&body) {
                    Ok(_) => StatusCode::OK,
                    Err(_) => StatusCode::BAD_REQUEST,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("null handler on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::payload;

    #[test]
    fn payloads_are_valid_webhooks() {
        for n in [0, 1, 2, 50, 99] {
            let body = payload("123", n, 30, 1_780_000_000);
            let envelope = chasqui_meta::webhook::Routing::parse(&body).expect("envelope");
            let (numbers, _) = envelope.addressees();
            assert_eq!(numbers, vec!["123".to_owned()]);
        }
    }
}
