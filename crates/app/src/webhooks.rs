//! Outbound webhooks: the endpoints users register, the events published to them (one
//! durable delivery per event and webhook, created in the transaction that produced the
//! event), and delivery: signed both the Kapso way and the Standard Webhooks way, retried
//! with backoff and jitter, each attempt logged. Targets are checked against SSRF rules when
//! saved and again, through the resolver, when delivered.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chasqui_core::ids::{new_id, random_bytes};
use chasqui_store::webhooks::{self, Attempt, DueDelivery, NewEvent, Next, Webhook};
use chasqui_store::{Conn as AnyConnection, StoreError, conversations, messages};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::render::{self, KapsoFields};
use crate::{App, AppError};

/// Events of a phone number.
pub const NUMBER_EVENTS: [&str; 8] = [
    "whatsapp.message.received",
    "whatsapp.message.sent",
    "whatsapp.message.delivered",
    "whatsapp.message.read",
    "whatsapp.message.failed",
    "whatsapp.conversation.created",
    "whatsapp.conversation.ended",
    "whatsapp.conversation.inactive",
];

/// Events of a project.
pub const PROJECT_EVENTS: [&str; 4] = [
    "whatsapp.phone_number.created",
    "whatsapp.phone_number.deleted",
    "workflow.execution.handoff",
    "workflow.execution.failed",
];

/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a response body is kept.
const BODY_KEPT: usize = 1024;
/// Lease of a claimed delivery: longer than the 10 s timeout plus recording; a node that
/// dies mid-delivery has its claims attempted again by others (or itself, restarted) after it.
const LEASE_MILLIS: i64 = 20_000;
/// Deliveries sent at once by one loop.
const BATCH: i64 = 128;

/// Fields of a create or update request (absent = default on create, unchanged on update).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Target URL.
    pub url: Option<String>,
    /// `kapso` (default) or `meta`.
    pub kind: Option<String>,
    /// Subscribed events.
    pub events: Option<Vec<String>>,
    /// Signing secret (generated when absent).
    pub secret_key: Option<String>,
    /// Extra headers.
    pub headers: Option<Map<String, Value>>,
    /// Whether deliveries are made.
    pub active: Option<bool>,
    /// Buffer received messages per conversation.
    pub buffer_enabled: Option<bool>,
    /// 1 to 60.
    pub buffer_window_seconds: Option<i64>,
    /// 1 to 100.
    pub max_buffer_size: Option<i64>,
    /// Buffered events.
    pub buffer_events: Option<Vec<String>>,
    /// 1 to 1440.
    pub inactivity_minutes: Option<i64>,
    /// `v1` or `v2`.
    pub payload_version: Option<String>,
}

/// Whether an address is reachable from the public internet (not loopback, private,
/// link-local, shared, multicast, unspecified or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Checks a webhook URL: http(s), a host, and (unless the instance allows private targets)
/// https and no loopback, private or literal internal address.
pub fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url is not a valid URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("url must use https".into()),
        other => return Err(format!("url must use https, not {other}")),
    }
    let Some(host) = parsed.host() else {
        return Err("url must name a host".into());
    };
    if url.len() > 2000 {
        return Err("url must be at most 2000 characters".into());
    }
    if allow_private {
        return Ok(());
    }
    let internal = match host {
        url::Host::Ipv4(ip) => !is_public(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
        url::Host::Domain(d) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".internal")
        }
    };
    if internal {
        return Err("url must not target a loopback, private or internal address".into());
    }
    Ok(())
}

/// A resolver for delivery that refuses hosts resolving to internal addresses, so a public
/// name cannot be pointed at the instance's network after the URL was checked.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves to no public address").into();
                return Err(refused);
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client of deliveries: guarded resolver, no redirects, 10 s timeout.
pub fn delivery_client(allow_private: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(GuardedResolver { allow_private }))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .user_agent(concat!("chasqui-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

fn catalogue(scope_number: bool) -> Vec<&'static str> {
    let mut all: Vec<&str> = NUMBER_EVENTS.to_vec();
    if !scope_number {
        all.extend(PROJECT_EVENTS);
    }
    all
}

/// A new signing secret, usable by Kapso receivers (the whole string is the HMAC key) and
/// Standard Webhooks libraries (`whsec_` + base64 key).
fn new_secret() -> String {
    format!("whsec_{}", B64.encode(random_bytes::<24>()))
}

/// Applies `input` to `w` (a new webhook with defaults, or the stored one), validating.
fn apply(app: &App, w: &mut Webhook, input: WebhookInput, creating: bool) -> Result<(), AppError> {
    let mut errors = Vec::new();
    if let Some(url) = input.url {
        match check_url(url.trim(), app.settings().webhook_allow_private) {
            Ok(()) => w.url = url.trim().to_owned(),
            Err(e) => errors.push(e),
        }
    } else if creating {
        errors.push("url is required".into());
    }
    if let Some(kind) = input.kind {
        match kind.as_str() {
            "kapso" => w.kind = kind,
            "meta" if w.phone_number_id.is_some() => w.kind = kind,
            "meta" => errors.push("kind meta is only for phone-number webhooks".into()),
            other => errors.push(format!("kind must be kapso or meta, not {other:?}")),
        }
    }
    let allowed = catalogue(w.phone_number_id.is_some());
    if let Some(events) = input.events {
        match events.iter().find(|e| !allowed.contains(&e.as_str())) {
            Some(bad) => errors.push(format!(
                "events: {bad:?} is not one of {}",
                allowed.join(", ")
            )),
            None => {
                let mut events = events;
                events.dedup();
                w.events = json!(events).to_string();
            }
        }
    }
    if w.kind == "kapso" && w.events == "[]" {
        errors.push("events must list at least one event for a kapso webhook".into());
    }
    match input.secret_key {
        Some(s) if s.len() < 16 || s.len() > 256 => {
            errors.push("secret_key must be 16 to 256 characters".into());
        }
        Some(s) => w.secret_enc = app.key().encrypt(&s),
        None if creating => w.secret_enc = app.key().encrypt(&new_secret()),
        None => {}
    }
    if let Some(headers) = input.headers {
        let reserved = |k: &str| {
            let k = k.to_ascii_lowercase();
            k.starts_with("x-webhook-")
                || k.starts_with("webhook-")
                || [
                    "content-type",
                    "content-length",
                    "host",
                    "x-idempotency-key",
                ]
                .contains(&k.as_str())
        };
        let valid = headers.iter().all(|(k, v)| {
            v.is_string()
                && reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_ok()
                && v.as_str()
                    .is_some_and(|v| reqwest::header::HeaderValue::from_str(v).is_ok())
        });
        if !valid || headers.len() > 20 {
            errors.push("headers must be at most 20 string header values".into());
        } else if let Some(k) = headers.keys().find(|k| reserved(k)) {
            errors.push(format!("headers: {k} is set by Chasqui"));
        } else {
            w.headers = Value::Object(headers).to_string();
        }
    }
    if let Some(active) = input.active {
        w.active = active;
        if active {
            // Re-enabling resumes delivery of everything held.
            w.paused_at = None;
            w.pause_reason = None;
        }
    }
    if let Some(b) = input.buffer_enabled {
        w.buffer_enabled = b;
    }
    let mut range = |name: &str, value: Option<i64>, lo: i64, hi: i64, slot: &mut i64| {
        if let Some(v) = value {
            if (lo..=hi).contains(&v) {
                *slot = v;
            } else {
                errors.push(format!("{name} must be {lo} to {hi}"));
            }
        }
    };
    range(
        "buffer_window_seconds",
        input.buffer_window_seconds,
        1,
        60,
        &mut w.buffer_window_seconds,
    );
    range(
        "max_buffer_size",
        input.max_buffer_size,
        1,
        100,
        &mut w.max_buffer_size,
    );
    range(
        "inactivity_minutes",
        input.inactivity_minutes,
        1,
        1440,
        &mut w.inactivity_minutes,
    );
    if let Some(events) = input.buffer_events {
        if events.iter().all(|e| e == "whatsapp.message.received") {
            w.buffer_events = json!(events).to_string();
        } else {
            errors.push("buffer_events may only contain whatsapp.message.received".into());
        }
    }
    if let Some(v) = input.payload_version {
        match v.as_str() {
            "v2" => w.payload_version = v,
            // Kapso's legacy flat shape; a new webhook has no reason to ask for it.
            "v1" => errors.push("payload_version v1 (legacy) is not supported; use v2".into()),
            _ => errors.push("payload_version must be v2".into()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Invalid(errors))
    }
}

/// Creates a webhook for a project (`phone_number_id: None`) or one of its numbers.
pub async fn create(
    app: &App,
    project_id: &str,
    phone_number_id: Option<&str>,
    input: WebhookInput,
) -> Result<Webhook, AppError> {
    let now = app.now();
    let mut w = Webhook {
        id: new_id(),
        project_id: project_id.to_owned(),
        phone_number_id: phone_number_id.map(str::to_owned),
        url: String::new(),
        kind: "kapso".into(),
        events: "[]".into(),
        secret_enc: String::new(),
        headers: "{}".into(),
        active: true,
        buffer_enabled: false,
        buffer_window_seconds: 5,
        max_buffer_size: 50,
        buffer_events: "[\"whatsapp.message.received\"]".into(),
        inactivity_minutes: 60,
        payload_version: "v2".into(),
        paused_at: None,
        pause_reason: None,
        created_at: now,
        updated_at: now,
    };
    apply(app, &mut w, input, true)?;
    if w.kind == "meta"
        && webhooks::list(app.db(), project_id, phone_number_id)
            .await?
            .iter()
            .any(|o| o.kind == "meta")
    {
        return Err(AppError::Conflict(
            "this phone number already has a meta webhook".into(),
        ));
    }
    webhooks::insert(app.db(), &w).await?;
    Ok(w)
}

/// Updates a webhook of the project (within `phone_number_id` when given).
pub async fn update(
    app: &App,
    project_id: &str,
    phone_number_id: Option<&str>,
    id: &str,
    input: WebhookInput,
) -> Result<Webhook, AppError> {
    let mut w = find(app, project_id, phone_number_id, id).await?;
    let was_meta = w.kind == "meta";
    apply(app, &mut w, input, false)?;
    if w.kind == "meta"
        && !was_meta
        && webhooks::list(app.db(), project_id, w.phone_number_id.as_deref())
            .await?
            .iter()
            .any(|o| o.kind == "meta" && o.id != w.id)
    {
        return Err(AppError::Conflict(
            "this phone number already has a meta webhook".into(),
        ));
    }
    w.updated_at = app.now();
    webhooks::update(app.db(), &w).await?;
    app.wake();
    Ok(w)
}

/// A webhook of the project (within `phone_number_id` when given).
pub async fn find(
    app: &App,
    project_id: &str,
    phone_number_id: Option<&str>,
    id: &str,
) -> Result<Webhook, AppError> {
    webhooks::get(app.db(), project_id, id)
        .await?
        .filter(|w| phone_number_id.is_none_or(|p| w.phone_number_id.as_deref() == Some(p)))
        .ok_or(AppError::NotFound("Webhook"))
}

/// The webhook's signing secret.
pub fn secret(app: &App, w: &Webhook) -> Result<String, AppError> {
    app.key()
        .decrypt(&w.secret_enc)
        .map_err(|e| AppError::Internal(format!("cannot decrypt a webhook secret: {e}")))
}

/// The API shape of a webhook (root `whatsapp_webhook` fields).
pub fn to_json(app: &App, w: &Webhook) -> Result<Value, AppError> {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let iso = |ms: i64| chasqui_core::Timestamp(ms).to_rfc3339();
    Ok(json!({
        "id": w.id,
        "project_id": w.project_id,
        "phone_number_id": w.phone_number_id,
        "url": w.url,
        "kind": w.kind,
        "events": parse(&w.events),
        "secret_key": secret(app, w)?,
        "headers": parse(&w.headers),
        "active": w.active && w.paused_at.is_none(),
        "paused_at": w.paused_at.map(iso),
        "pause_reason": w.pause_reason,
        "buffer_enabled": w.buffer_enabled,
        "buffer_window_seconds": w.buffer_window_seconds,
        "max_buffer_size": w.max_buffer_size,
        "buffer_events": parse(&w.buffer_events),
        "inactivity_minutes": w.inactivity_minutes,
        "payload_version": w.payload_version,
        "created_at": iso(w.created_at),
        "updated_at": iso(w.updated_at),
    }))
}

/// A stable event id: the same event published twice is one delivery per webhook.
fn event_id(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
    format!("evt_{}", &hex::encode(digest)[..32])
}

/// A message event (`whatsapp.message.*`).
#[derive(Debug, Clone, Copy)]
pub struct MessageEvent<'a> {
    /// Project.
    pub project_id: &'a str,
    /// Number.
    pub phone_number_id: &'a str,
    /// Event name.
    pub event_type: &'a str,
    /// The message.
    pub wamid: &'a str,
    /// Its conversation, when known (else the message's).
    pub conversation_id: Option<&'a str>,
    /// Whether the message opened the conversation.
    pub is_new_conversation: bool,
    /// Where it sits in Meta's stream (the inbound delivery and position), which orders a
    /// buffered batch.
    pub order: Option<&'a str>,
}

/// Publishes a message event in the caller's transaction.
pub async fn publish_message(
    conn: &mut AnyConnection,
    e: MessageEvent<'_>,
    now: i64,
) -> Result<u64, StoreError> {
    let id = event_id(&[e.project_id, e.event_type, e.phone_number_id, e.wamid]);
    let subject = json!({
        "wamid": e.wamid,
        "conversation_id": e.conversation_id,
        "is_new_conversation": e.is_new_conversation,
        "order": e.order,
    })
    .to_string();
    webhooks::publish(
        conn,
        NewEvent {
            id: &id,
            event_type: e.event_type,
            project_id: e.project_id,
            phone_number_id: Some(e.phone_number_id),
            subject: &subject,
            batch_key: e
                .conversation_id
                .filter(|_| e.event_type == "whatsapp.message.received"),
        },
        now,
    )
    .await
}

/// Publishes an event that needs no buffering, in the caller's transaction.
async fn publish_event(
    conn: &mut AnyConnection,
    project_id: &str,
    phone_number_id: Option<&str>,
    event_type: &str,
    id_parts: &[&str],
    subject: Value,
    now: i64,
) -> Result<u64, StoreError> {
    let id = event_id(id_parts);
    let subject = subject.to_string();
    webhooks::publish(
        conn,
        NewEvent {
            id: &id,
            event_type,
            project_id,
            phone_number_id,
            subject: &subject,
            batch_key: None,
        },
        now,
    )
    .await
}

/// Publishes a conversation event (`whatsapp.conversation.*`) in the caller's transaction.
pub async fn publish_conversation(
    conn: &mut AnyConnection,
    project_id: &str,
    phone_number_id: &str,
    event_type: &str,
    conversation_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let subject = json!({ "conversation_id": conversation_id });
    let parts = [project_id, event_type, conversation_id];
    publish_event(
        conn,
        project_id,
        Some(phone_number_id),
        event_type,
        &parts,
        subject,
        now,
    )
    .await
}

/// Publishes a project event (`whatsapp.phone_number.*`, `workflow.execution.*`) with its
/// payload, in the caller's transaction. `key` makes the event id stable (e.g. the
/// execution id and its transition).
pub async fn publish_project(
    conn: &mut AnyConnection,
    project_id: &str,
    event_type: &str,
    key: &str,
    payload: &Value,
    now: i64,
) -> Result<u64, StoreError> {
    let subject = json!({ "payload": payload });
    let parts = [project_id, event_type, key];
    publish_event(conn, project_id, None, event_type, &parts, subject, now).await
}

/// Queues `whatsapp.conversation.inactive` for conversations quiet past each subscribed
/// webhook's `inactivity_minutes` (as of `as_of`); returns how many deliveries.
pub async fn sweep_inactive(app: &App, as_of: i64) -> Result<u64, AppError> {
    let n = webhooks::publish_inactive(app.db(), as_of, app.now()).await?;
    if n > 0 {
        app.wake();
    }
    Ok(n)
}

/// Renders a delivery's v2 body from the stored message and conversation.
async fn render_payload(app: &App, d: &DueDelivery) -> Result<Value, AppError> {
    let subject: Value = serde_json::from_str(&d.subject).unwrap_or(Value::Null);
    if let Some(Value::Array(members)) = subject.get("batch") {
        // A buffer: every member rendered, in the order they arrived.
        let mut data = Vec::with_capacity(members.len());
        for member in members {
            match render_subject(app, d, member).await {
                Ok(v) => data.push(v),
                Err(AppError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(json!({ "type": d.event_type, "batch": true, "data": data }));
    }
    render_subject(app, d, &subject).await
}

/// Renders one event's body from its subject.
async fn render_subject(app: &App, d: &DueDelivery, subject: &Value) -> Result<Value, AppError> {
    if let Some(payload) = subject.get("payload") {
        return Ok(payload.clone());
    }
    let now = app.now();
    let mut body = Map::new();
    let mut conversation_id = subject
        .get("conversation_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(wamid) = subject.get("wamid").and_then(Value::as_str) {
        let pnid = d.phone_number_id.as_deref().unwrap_or_default();
        let Some(m) = messages::get(app.db(), &d.project_id, pnid, wamid).await? else {
            return Err(AppError::NotFound("Message"));
        };
        conversation_id = conversation_id.or_else(|| m.conversation_id.clone());
        let statuses = render::statuses_for(app, std::slice::from_ref(&m)).await?;
        let all = KapsoFields::messages(Some("kapso(*)")).unwrap_or_default();
        body.insert("message".into(), render::message(app, &m, &statuses, &all));
        body.insert(
            "is_new_conversation".into(),
            subject
                .get("is_new_conversation")
                .cloned()
                .unwrap_or(Value::Bool(false)),
        );
    }
    let conversation = match &conversation_id {
        Some(id) => conversations::get(app.db(), &d.project_id, id).await?,
        None => None,
    };
    let conversation_json = conversation
        .as_ref()
        .map(|c| render::conversation(c, &KapsoFields::default(), now));
    body.insert(
        "conversation".into(),
        conversation_json.unwrap_or(Value::Null),
    );
    if let Some(minutes) = subject.get("inactivity_minutes") {
        body.insert("inactivity".into(), json!({ "minutes": minutes }));
        if let Some(c) = &conversation {
            body.insert(
                "since_message".into(),
                json!({
                    "whatsapp_message_id": c.last_message_id,
                    "created_at": c.last_message_at.map(|t| chasqui_core::Timestamp(t).to_rfc3339()),
                }),
            );
        }
    }
    body.insert(
        "phone_number_id".into(),
        json!(d.phone_number_id.as_deref()),
    );
    Ok(Value::Object(body))
}

/// The retry delay after attempt `attempt` (1-based), with ±20 % jitter, or `None` when the
/// schedule is exhausted. A `Retry-After` (seconds) on 429/503 is honoured when longer.
fn retry_delay_millis(schedule: &[u64], attempt: i64, retry_after: Option<u64>) -> Option<i64> {
    let base = *schedule.get(usize::try_from(attempt - 1).ok()?)?;
    let jitter = f64::from(u32::from_le_bytes(random_bytes::<4>())) / f64::from(u32::MAX);
    let millis = (base as f64 * 1000.0 * (0.8 + 0.4 * jitter)) as i64;
    Some(millis.max(retry_after.map_or(0, |s| (s as i64) * 1000)))
}

/// What one HTTP attempt came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Response status, if a response came.
    pub status_code: Option<i64>,
    /// The first 1 KB of the response body.
    pub response_body: Option<String>,
    /// Transport error, or the status when it was not 2xx.
    pub error: Option<String>,
    /// Time to the response or failure.
    pub latency_ms: i64,
    /// `Retry-After` seconds of a 429/503.
    pub retry_after: Option<u64>,
}

impl Outcome {
    /// Whether the receiver answered 2xx.
    pub fn ok(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// An event to post: its name, stable id and body (and batch size for buffered batches).
#[derive(Debug, Clone)]
pub struct Signed<'a> {
    /// Event name.
    pub event_type: &'a str,
    /// Stable event id.
    pub event_id: &'a str,
    /// The body.
    pub body: String,
    /// Members of a batch.
    pub batch_size: Option<usize>,
    /// Signing time (epoch seconds).
    pub now_secs: i64,
}

/// Posts an event to the webhook, signed the Kapso way and the Standard Webhooks way.
pub async fn send_signed(
    client: &reqwest::Client,
    w: &Webhook,
    secret: &str,
    event: Signed<'_>,
) -> Outcome {
    let Signed {
        event_type,
        event_id,
        body,
        batch_size,
        now_secs,
    } = event;
    let signature = chasqui_core::secrets::hmac_sha256_hex(secret.as_bytes(), body.as_bytes());
    let standard_key = secret
        .strip_prefix("whsec_")
        .and_then(|k| B64.decode(k).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let signed = format!("{event_id}.{now_secs}.{body}");
    let standard = hex::decode(chasqui_core::secrets::hmac_sha256_hex(
        &standard_key,
        signed.as_bytes(),
    ))
    .unwrap_or_default();
    let mut request = client
        .post(&w.url)
        .header("content-type", "application/json")
        .header("x-webhook-event", event_type)
        .header("x-webhook-signature", &signature)
        .header("x-idempotency-key", event_id)
        .header("x-webhook-payload-version", &w.payload_version)
        .header("webhook-id", event_id)
        .header("webhook-timestamp", now_secs.to_string())
        .header("webhook-signature", format!("v1,{}", B64.encode(standard)));
    if let Some(n) = batch_size {
        request = request
            .header("x-webhook-batch", "true")
            .header("x-batch-size", n.to_string());
    }
    request = with_custom_headers(request, w);
    finish(request, body).await
}

/// Forwards Meta's payload as Meta sends it: signed with `X-Hub-Signature-256` (the webhook's
/// secret), so Meta receiver libraries verify it; `X-Idempotency-Key` is its SHA-256.
pub async fn send_as_meta(
    client: &reqwest::Client,
    w: &Webhook,
    secret: &str,
    event_id: &str,
    body: String,
) -> Outcome {
    let signature = chasqui_meta::sign(secret.as_bytes(), body.as_bytes());
    let mut request = client
        .post(&w.url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .header("x-idempotency-key", event_id);
    request = with_custom_headers(request, w);
    finish(request, body).await
}

/// Adds the webhook's own headers.
fn with_custom_headers(
    mut request: reqwest::RequestBuilder,
    w: &Webhook,
) -> reqwest::RequestBuilder {
    if let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(&w.headers) {
        for (k, v) in extra {
            if let Some(v) = v.as_str() {
                request = request.header(k, v);
            }
        }
    }
    request
}

/// Sends a prepared request and describes the outcome.
async fn finish(request: reqwest::RequestBuilder, body: String) -> Outcome {
    let started = Instant::now();
    let result = request.body(body).send().await;
    let latency_ms = started.elapsed().as_millis() as i64;
    match result {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|_| status == 429 || status == 503);
            let mut text = r.text().await.unwrap_or_default();
            if text.len() > BODY_KEPT {
                let mut cut = BODY_KEPT;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            let ok = (200..300).contains(&status);
            Outcome {
                status_code: Some(i64::from(status)),
                response_body: Some(text),
                error: (!ok).then(|| format!("receiver answered {status}")),
                latency_ms,
                retry_after,
            }
        }
        Err(e) => Outcome {
            status_code: None,
            response_body: None,
            error: Some(describe(&e)),
            latency_ms,
            retry_after: None,
        },
    }
}

/// The body of a delivery: frozen at its first attempt, else rendered now (once per event
/// and batch of due deliveries: a fan-out to many webhooks renders it once).
async fn body_of(
    app: &App,
    d: &DueDelivery,
    rendered: &tokio::sync::Mutex<std::collections::HashMap<String, String>>,
) -> Result<String, AppError> {
    if let Some(p) = &d.payload {
        return Ok(p.clone());
    }
    let mut cache = rendered.lock().await;
    if let Some(text) = cache.get(&d.event_id) {
        return Ok(text.clone());
    }
    let payload = match render_payload(app, d).await {
        Ok(p) => p,
        Err(AppError::NotFound(what)) => json!({ "error": format!("{what} no longer exists") }),
        Err(e) => return Err(e),
    };
    let text = payload.to_string();
    cache.insert(d.event_id.clone(), text.clone());
    Ok(text)
}

/// What one delivery's attempt produced, to be recorded with the rest of its batch.
struct Done {
    delivery_id: String,
    number: i64,
    outcome: Outcome,
    next: Next,
    payload: String,
    webhook: Webhook,
}

/// Sends one delivery; the attempt is recorded by the caller with its batch.
async fn attempt(
    app: &App,
    client: &reqwest::Client,
    d: DueDelivery,
    rendered: &tokio::sync::Mutex<std::collections::HashMap<String, String>>,
) -> Result<Done, AppError> {
    let body = body_of(app, &d, rendered).await?;
    let payload = body.clone();
    let secret = secret(app, &d.webhook)?;
    let outcome = if d.webhook.kind == "meta" {
        send_as_meta(client, &d.webhook, &secret, &d.event_id, body).await
    } else {
        let batch_size = serde_json::from_str::<Value>(&d.subject)
            .ok()
            .and_then(|s| s.get("batch").and_then(Value::as_array).map(Vec::len));
        let event = Signed {
            event_type: &d.event_type,
            event_id: &d.event_id,
            body,
            batch_size,
            now_secs: app.now() / 1000,
        };
        send_signed(client, &d.webhook, &secret, event).await
    };
    let number = d.attempts + 1;
    let next = if outcome.ok() {
        Next::Delivered
    } else {
        match retry_delay_millis(
            &app.settings().webhook_retry_schedule,
            number,
            outcome.retry_after,
        ) {
            Some(delay) => Next::RetryAt(app.now() + delay),
            None => Next::Failed,
        }
    };
    Ok(Done {
        delivery_id: d.id,
        number,
        outcome,
        next,
        payload,
        webhook: d.webhook,
    })
}

/// The window of the automatic pause rule.
const PAUSE_WINDOW_MILLIS: i64 = 15 * 60_000;

/// The pause rule over the last 15 minutes: at least 20 attempts, at least 10 of them
/// failed, and more than 85 % failed.
fn should_pause(total: i64, failed: i64) -> bool {
    total >= 20 && failed >= 10 && failed * 100 > total * 85
}

/// Pauses a webhook whose deliveries in the last 15 minutes number at least 20, with at least
/// 10 failures and a failure rate above 85 %, and records a notice for the project.
async fn maybe_pause(app: &App, w: &Webhook, last: &Outcome) -> Result<(), AppError> {
    let now = app.now();
    let (total, failed) =
        webhooks::attempt_stats(app.db(), &w.id, now - PAUSE_WINDOW_MILLIS).await?;
    if !should_pause(total, failed) {
        return Ok(());
    }
    let last_error = last.error.clone().unwrap_or_default();
    let reason =
        format!("{failed} of {total} delivery attempts failed in 15 minutes (last: {last_error})");
    // The pause and its notice commit together: a crash cannot leave one without the other.
    let mut tx = app.db().writer().begin().await?;
    if !webhooks::pause(&mut tx, &w.id, &reason, now).await? {
        return Ok(());
    }
    let details = json!({
        "webhook_id": w.id,
        "url": w.url,
        "phone_number_id": w.phone_number_id,
        "attempts": total,
        "failed": failed,
        "last_response_status": last.status_code,
        "last_error": last_error,
        "resume": "PATCH the webhook with active: true; held deliveries are then sent",
    });
    chasqui_store::notifications::insert(
        &mut tx,
        &chasqui_store::notifications::Notification {
            id: new_id(),
            project_id: w.project_id.clone(),
            kind: "webhook.paused".into(),
            subject: format!("Webhook {} was paused after repeated failures", w.url),
            details: details.to_string(),
            created_at: now,
            emailed_at: None,
            email_attempts: 0,
            email_error: None,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(webhook = %w.id, url = %w.url, %reason, "webhook paused");
    Ok(())
}

/// A synthetic event of `event_type` for `POST .../webhooks/{id}/test`.
pub fn test_payload(w: &Webhook, event_type: &str) -> Value {
    json!({
        "test": true,
        "message": {
            "id": "wamid.TEST", "timestamp": "0", "type": "text", "text": {"body": "Test event from Chasqui"},
            "kapso": {"direction": "inbound", "status": "received", "content": "Test event from Chasqui", "statuses": []},
        },
        "conversation": null,
        "is_new_conversation": false,
        "phone_number_id": w.phone_number_id,
        "event": event_type,
    })
}

/// Sends a signed test event to a webhook now (not queued, not retried) and returns the
/// attempt.
pub async fn send_test(
    app: &App,
    client: &reqwest::Client,
    w: &Webhook,
    event_type: &str,
) -> Result<Outcome, AppError> {
    let allowed = catalogue(w.phone_number_id.is_some());
    if !allowed.contains(&event_type) {
        return Err(AppError::invalid(format!(
            "event_type must be one of {}",
            allowed.join(", ")
        )));
    }
    let secret = secret(app, w)?;
    let body = test_payload(w, event_type).to_string();
    let event_id = format!("evt_test_{}", hex::encode(random_bytes::<8>()));
    let event = Signed {
        event_type,
        event_id: &event_id,
        body,
        batch_size: None,
        now_secs: app.now() / 1000,
    };
    Ok(send_signed(client, w, &secret, event).await)
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("timed out after {} s", TIMEOUT.as_secs());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Sends the deliveries due now; returns how many were attempted.
pub async fn deliver_due(app: &App, client: &reqwest::Client) -> Result<usize, AppError> {
    webhooks::flush_buffers(app.db(), app.now()).await?;
    let due = webhooks::claim_due(app.db(), BATCH, app.now(), LEASE_MILLIS).await?;
    let n = due.len();
    let rendered = tokio::sync::Mutex::new(std::collections::HashMap::new());
    let results =
        futures::future::join_all(due.into_iter().map(|d| attempt(app, client, d, &rendered)))
            .await;
    let mut done = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(d) => done.push(d),
            // Its lease runs out and it is attempted again.
            Err(e) => tracing::warn!(error = %e, "webhook delivery attempt failed to run"),
        }
    }
    let records: Vec<webhooks::AttemptRecord<'_>> = done
        .iter()
        .map(|d| webhooks::AttemptRecord {
            attempt: Attempt {
                delivery_id: &d.delivery_id,
                attempt: d.number,
                status_code: d.outcome.status_code,
                latency_ms: d.outcome.latency_ms,
                response_body: d.outcome.response_body.clone(),
                error: d.outcome.error.clone(),
            },
            next: d.next,
            payload: &d.payload,
        })
        .collect();
    // The whole batch's attempts share one commit.
    webhooks::record_attempts(app.db(), &records, app.now()).await?;
    let mut checked: Vec<&str> = Vec::new();
    for d in done.iter().filter(|d| !d.outcome.ok()) {
        if !checked.contains(&d.webhook.id.as_str()) {
            checked.push(&d.webhook.id);
            maybe_pause(app, &d.webhook, &d.outcome).await?;
        }
    }
    Ok(n)
}

/// Deliveries deleted per statement by [`prune_delivered`], so sends and processing never
/// wait long for the writer.
const PRUNE_CHUNK: i64 = 500;

/// Deletes the delivered webhook events (deliveries and attempts) older than the retention
/// setting, project by project (deleting a webhook deletes its log, so only projects with
/// webhooks have one); returns how many deliveries went. Waiting and failed
/// deliveries are kept whatever their age.
pub async fn prune_delivered(app: &App) -> Result<u64, StoreError> {
    let Some(retention) = app.settings().webhook_retention_ms else {
        return Ok(0);
    };
    let before = app.now() - retention;
    let mut deleted = 0;
    for project_id in webhooks::projects_with_webhooks(app.db()).await? {
        loop {
            let n = webhooks::delete_finished_before(app.db(), &project_id, before, PRUNE_CHUNK)
                .await?;
            deleted += n;
            if n < PRUNE_CHUNK as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrf_rules() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("http://hooks.example.com/x", false).is_err());
        for bad in [
            "https://127.0.0.1/x",
            "https://10.1.2.3/",
            "https://192.168.0.10/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost:8080/",
            "https://100.64.0.1/",
            "ftp://example.com/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
    }

    #[test]
    fn pause_boundary() {
        assert!(!should_pause(19, 19), "19 attempts are not enough");
        assert!(should_pause(20, 18), "20 attempts, 90 % failed");
        assert!(!should_pause(20, 17), "85 % is not above 85 %");
        assert!(should_pause(22, 19), "86 % failed");
        assert!(!should_pause(100, 85));
        assert!(should_pause(100, 86));
        assert!(!should_pause(20, 9));
    }

    #[test]
    fn retry_schedule_with_jitter_and_retry_after() {
        let schedule = [10, 40, 90];
        let first = retry_delay_millis(&schedule, 1, None).expect("retry");
        assert!((8_000..=12_000).contains(&first), "{first}");
        let third = retry_delay_millis(&schedule, 3, None).expect("retry");
        assert!((72_000..=108_000).contains(&third), "{third}");
        assert_eq!(retry_delay_millis(&schedule, 4, None), None);
        assert_eq!(retry_delay_millis(&schedule, 1, Some(120)), Some(120_000));
    }
}
