//! The sandbox's in-memory world: numbers, outboxes, media and faults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// A business number the sandbox plays Meta for.
#[derive(Clone, Serialize, Deserialize)]
pub struct NumberConfig {
    /// Meta phone number id.
    pub phone_number_id: String,
    /// WABA id.
    pub business_account_id: String,
    /// Displayed number (digits).
    pub display_phone_number: String,
    /// App secret that signs webhooks.
    pub app_secret: String,
    /// Access token the Graph API expects (`None`: any token).
    pub access_token: Option<String>,
    /// Where webhooks go.
    pub webhook_url: String,
}

impl std::fmt::Debug for NumberConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumberConfig")
            .field("phone_number_id", &self.phone_number_id)
            .field("business_account_id", &self.business_account_id)
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

/// Injected faults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Deliver each of the next N webhooks twice.
    #[serde(default)]
    pub duplicate_deliveries: u32,
    /// Answer the next N Graph API calls with a 500 Meta error.
    #[serde(default)]
    pub graph_errors: u32,
    /// Deliver the statuses of sends in reverse order (read, delivered, sent).
    #[serde(default)]
    pub reorder_statuses: bool,
    /// Meta errors for the next sends, one per send, in order: 130429 (throughput) and 131056
    /// (pair rate limit) are answered synchronously with HTTP 400; 131026 (undeliverable) is
    /// accepted and then reported as a `failed` status, as Meta does.
    #[serde(default)]
    pub send_errors: Vec<u32>,
    /// Answer every send this many milliseconds late (a slow Graph API), up to 60000. The
    /// send is not accepted until the delay is over.
    #[serde(default)]
    pub send_delay_ms: u64,
    /// Accept every send at once but answer it this many milliseconds later, up to 60000 (a
    /// caller that dies meanwhile never learns the wamid; the status webhooks still come).
    #[serde(default)]
    pub answer_delay_ms: u64,
}

/// Send errors the sandbox can inject.
pub const INJECTABLE_SEND_ERRORS: [u32; 3] = [130429, 131056, 131026];

/// Sandbox-wide behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Pause before each status webhook of a send (sent, delivered, read), in milliseconds.
    pub status_delay_ms: u64,
    /// How long a created or edited template stays `PENDING`, in milliseconds.
    pub template_review_ms: u64,
    /// The review's outcome: `APPROVED` or `REJECTED`.
    pub template_review_outcome: String,
    /// Whether media downloads need the number's access token (Meta's behaviour; off by
    /// default because some client libraries download without it).
    pub require_download_token: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            status_delay_ms: 50,
            template_review_ms: 200,
            template_review_outcome: "APPROVED".into(),
            require_download_token: false,
        }
    }
}

/// A simulated customer's message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundRequest {
    /// The customer's wa_id (digits).
    pub from: String,
    /// The customer's profile name.
    #[serde(default)]
    pub profile_name: Option<String>,
    /// The customer's business-scoped user id.
    #[serde(default)]
    pub user_id: Option<String>,
    /// A Meta message object without `id`, `timestamp` and `from`. Media objects may carry
    /// `data_base64` (the file) instead of an `id`; without either, a placeholder file is made.
    pub message: Value,
}

/// Status webhooks to emit for a message the business sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// The outbound wamid.
    pub wamid: String,
    /// Recipient wa_id.
    pub recipient_id: String,
    /// Statuses in delivery order, e.g. `["read", "sent", "delivered"]`.
    pub statuses: Vec<String>,
}

/// Errors of sandbox operations, each with an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Bad input (400).
    #[error("{0}")]
    Invalid(String),
    /// Unknown number or media (404).
    #[error("{0}")]
    NotFound(String),
    /// The webhook receiver never accepted the delivery (502).
    #[error("webhook delivery failed: {0}")]
    Delivery(String),
}

#[derive(Debug, Clone)]
pub(crate) struct StoredMedia {
    pub(crate) phone_number_id: String,
    pub(crate) mime_type: String,
    pub(crate) sha256: String,
    pub(crate) bytes: Arc<Vec<u8>>,
}

/// A message template of a WABA.
#[derive(Debug, Clone)]
pub(crate) struct StoredTemplate {
    pub(crate) id: String,
    pub(crate) waba: String,
    /// Meta's object: name, language, category, parameter_format, components, status, ...
    pub(crate) body: Map<String, Value>,
}

impl StoredTemplate {
    pub(crate) fn field(&self, key: &str) -> &str {
        self.body
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// A resumable upload session.
#[derive(Debug, Clone)]
pub(crate) struct UploadSession {
    pub(crate) file_type: String,
    pub(crate) file_length: usize,
}

#[derive(Debug, Default)]
pub(crate) struct World {
    pub(crate) numbers: HashMap<String, NumberConfig>,
    pub(crate) outbox: HashMap<String, Vec<Value>>,
    /// Mark-as-read requests (with their typing indicators) per number, oldest first.
    pub(crate) reads: HashMap<String, Vec<Value>>,
    pub(crate) media: HashMap<String, StoredMedia>,
    pub(crate) faults: HashMap<String, Faults>,
    /// When each simulated customer last wrote to each number (epoch seconds).
    pub(crate) last_inbound: HashMap<(String, String), i64>,
    /// Last profile name each simulated customer used, per number.
    pub(crate) profiles: HashMap<(String, String), String>,
    pub(crate) settings: Settings,
    /// Templates in creation order.
    pub(crate) templates: Vec<StoredTemplate>,
    /// WABAs whose sample template exists.
    pub(crate) seeded_wabas: std::collections::HashSet<String>,
    /// Business profiles per number.
    pub(crate) business_profiles: HashMap<String, Map<String, Value>>,
    /// Resumable upload sessions by id.
    pub(crate) uploads: HashMap<String, UploadSession>,
    /// Uploaded files by handle (`h`).
    pub(crate) handles: HashMap<String, StoredMedia>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) world: Mutex<World>,
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: OnceLock<String>,
    /// Standalone mode: numbers appear on first use with these defaults.
    pub(crate) auto: Option<(String, String)>,
}

/// The sandbox handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // Without an OS random source the sandbox cannot mint ids; fall back to time.
    if getrandom::fill(&mut buf).is_err() {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        buf.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (t >> (i % 16)) as u8);
    }
    hex::encode(buf)
}

/// A wamid in Meta's style.
pub(crate) fn new_wamid() -> String {
    format!(
        "wamid.{}",
        B64.encode(format!("SBX{}", random_hex(16).to_uppercase()))
    )
}

/// A numeric Graph object id (media, templates).
pub(crate) fn new_object_id() -> String {
    new_media_id()
}

fn new_media_id() -> String {
    let digits: String = random_hex(8)
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    format!("1{digits}")
}

/// A 1×1 PNG used when a simulated customer sends an image without data.
const PLACEHOLDER_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44, 0x41, 0x54,
    0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0, 0x05, 0, 0x01, 0xff, 0x56, 0x2f, 0xe5, 0x8b,
    0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

impl Sandbox {
    /// A sandbox whose numbers are registered explicitly (embedded mode).
    pub fn new(http: reqwest::Client) -> Self {
        Self::build(http, None)
    }

    /// A standalone sandbox: any phone number id is accepted on first use, its webhooks go to
    /// `webhook_url` signed with `app_secret`, and any Graph access token is accepted.
    pub fn standalone(http: reqwest::Client, webhook_url: &str, app_secret: &str) -> Self {
        Self::build(http, Some((webhook_url.to_owned(), app_secret.to_owned())))
    }

    fn build(http: reqwest::Client, auto: Option<(String, String)>) -> Self {
        Self {
            inner: Arc::new(Inner {
                world: Mutex::new(World::default()),
                http,
                base_url: OnceLock::new(),
                auto,
            }),
        }
    }

    pub(crate) fn world(&self) -> std::sync::MutexGuard<'_, World> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters for an emulator; keep serving.
        self.inner.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the URL under which the Graph API is reachable (for media download URLs).
    pub fn set_base_url(&self, url: &str) {
        let _ = self
            .inner
            .base_url
            .set(url.trim_end_matches('/').to_owned());
    }

    pub(crate) fn base_url(&self) -> String {
        self.inner.base_url.get().cloned().unwrap_or_default()
    }

    /// Registers or replaces a number.
    pub fn upsert_number(&self, config: NumberConfig) {
        self.world()
            .numbers
            .insert(config.phone_number_id.clone(), config);
    }

    /// Forgets a number.
    pub fn remove_number(&self, phone_number_id: &str) {
        let mut w = self.world();
        w.numbers.remove(phone_number_id);
        w.outbox.remove(phone_number_id);
        w.reads.remove(phone_number_id);
    }

    pub(crate) fn number(&self, phone_number_id: &str) -> Result<NumberConfig, SandboxError> {
        let mut w = self.world();
        if let Some(n) = w.numbers.get(phone_number_id) {
            return Ok(n.clone());
        }
        match &self.inner.auto {
            Some((url, secret))
                if !phone_number_id.is_empty()
                    && phone_number_id.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let n = NumberConfig {
                    phone_number_id: phone_number_id.to_owned(),
                    business_account_id: format!("{phone_number_id}0"),
                    display_phone_number: "15550000000".into(),
                    app_secret: secret.clone(),
                    access_token: None,
                    webhook_url: url.clone(),
                };
                w.numbers.insert(phone_number_id.to_owned(), n.clone());
                Ok(n)
            }
            _ => Err(SandboxError::NotFound(format!(
                "unknown phone number {phone_number_id}"
            ))),
        }
    }

    /// Replaces the fault settings of a number.
    pub fn set_faults(&self, phone_number_id: &str, faults: Faults) -> Result<(), SandboxError> {
        self.number(phone_number_id)?;
        if faults.send_delay_ms > 60_000 || faults.answer_delay_ms > 60_000 {
            return Err(SandboxError::Invalid(
                "send_delay_ms and answer_delay_ms are at most 60000".into(),
            ));
        }
        if let Some(code) = faults
            .send_errors
            .iter()
            .find(|c| !INJECTABLE_SEND_ERRORS.contains(c))
        {
            return Err(SandboxError::Invalid(format!(
                "send_errors: {code} is not one of {INJECTABLE_SEND_ERRORS:?}"
            )));
        }
        self.world()
            .faults
            .insert(phone_number_id.to_owned(), faults);
        Ok(())
    }

    /// The current fault settings of a number.
    pub fn faults(&self, phone_number_id: &str) -> Faults {
        self.world()
            .faults
            .get(phone_number_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The sandbox-wide settings.
    pub fn settings(&self) -> Settings {
        self.world().settings.clone()
    }

    /// Replaces the sandbox-wide settings.
    pub fn set_settings(&self, settings: Settings) -> Result<(), SandboxError> {
        if !["APPROVED", "REJECTED"].contains(&settings.template_review_outcome.as_str()) {
            return Err(SandboxError::Invalid(
                "template_review_outcome must be APPROVED or REJECTED".into(),
            ));
        }
        if settings.status_delay_ms > 600_000 || settings.template_review_ms > 86_400_000 {
            return Err(SandboxError::Invalid(
                "status_delay_ms is at most 600000 and template_review_ms at most 86400000".into(),
            ));
        }
        self.world().settings = settings;
        Ok(())
    }

    /// The numbers of a WABA.
    pub(crate) fn numbers_of(&self, waba: &str) -> Vec<NumberConfig> {
        let mut numbers: Vec<NumberConfig> = self
            .world()
            .numbers
            .values()
            .filter(|n| n.business_account_id == waba)
            .cloned()
            .collect();
        numbers.sort_by(|a, b| a.phone_number_id.cmp(&b.phone_number_id));
        numbers
    }

    /// What the business sent to a number's customers, oldest first.
    pub fn outbox(&self, phone_number_id: &str) -> Result<Vec<Value>, SandboxError> {
        self.number(phone_number_id)?;
        Ok(self
            .world()
            .outbox
            .get(phone_number_id)
            .cloned()
            .unwrap_or_default())
    }

    /// The mark-as-read requests the business made on a number (blue ticks and typing
    /// indicators the customer saw), oldest first.
    pub fn reads(&self, phone_number_id: &str) -> Result<Vec<Value>, SandboxError> {
        self.number(phone_number_id)?;
        Ok(self
            .world()
            .reads
            .get(phone_number_id)
            .cloned()
            .unwrap_or_default())
    }

    /// Stores a media file and returns its id.
    pub(crate) fn store_media(
        &self,
        phone_number_id: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> String {
        let id = new_media_id();
        let sha256 = B64.encode(Sha256::digest(&bytes));
        self.world().media.insert(
            id.clone(),
            StoredMedia {
                phone_number_id: phone_number_id.to_owned(),
                mime_type: mime_type.to_owned(),
                sha256,
                bytes: Arc::new(bytes),
            },
        );
        id
    }

    /// A simulated customer sends `request.message` to the number; the signed webhook is
    /// delivered (and acknowledged) before this returns the new wamid.
    pub async fn inbound(
        &self,
        phone_number_id: &str,
        request: InboundRequest,
    ) -> Result<String, SandboxError> {
        let number = self.number(phone_number_id)?;
        if request.from.is_empty()
            || request.from.len() > 20
            || !request.from.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(SandboxError::Invalid(
                "from must be the customer's wa_id (digits)".into(),
            ));
        }
        let Value::Object(mut fields) = request.message else {
            return Err(SandboxError::Invalid(
                "message must be a Meta message object".into(),
            ));
        };
        for reserved in ["id", "timestamp", "from"] {
            if fields.contains_key(reserved) {
                return Err(SandboxError::Invalid(format!(
                    "message must not contain {reserved:?}; the sandbox sets it"
                )));
            }
        }
        let kind = match fields.get("type").and_then(Value::as_str) {
            Some(k) => k.to_owned(),
            None => return Err(SandboxError::Invalid("message.type is required".into())),
        };
        if kind != "unsupported" && kind != "system" && !fields.contains_key(&kind) {
            return Err(SandboxError::Invalid(format!(
                "message.{kind} is required for type {kind:?}"
            )));
        }
        if chasqui_meta::content::MEDIA_TYPES.contains(&kind.as_str()) {
            self.prepare_media(phone_number_id, &kind, &mut fields)?;
        }
        let wamid = new_wamid();
        // Meta's key order: context first, then from, id, timestamp, type and the payload.
        let mut message = Map::new();
        if let Some(context) = fields.remove("context") {
            message.insert("context".into(), context);
        }
        message.insert("from".into(), json!(request.from));
        if let Some(u) = &request.user_id {
            message.insert("from_user_id".into(), json!(u));
        }
        message.insert("id".into(), json!(wamid));
        message.insert("timestamp".into(), json!(now_secs().to_string()));
        message.insert("type".into(), json!(kind));
        fields.remove("type");
        message.extend(fields);
        let mut contact = Map::new();
        let profile_name = {
            let mut w = self.world();
            let key = (phone_number_id.to_owned(), request.from.clone());
            match &request.profile_name {
                Some(name) => {
                    w.profiles.insert(key, name.clone());
                    name.clone()
                }
                None => w
                    .profiles
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| format!("Customer {}", request.from)),
            }
        };
        contact.insert("profile".into(), json!({ "name": profile_name }));
        contact.insert("wa_id".into(), json!(request.from));
        if let Some(u) = &request.user_id {
            contact.insert("user_id".into(), json!(u));
        }
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": number.display_phone_number, "phone_number_id": number.phone_number_id },
            "contacts": [Value::Object(contact)],
            "messages": [Value::Object(message)],
        });
        self.world().last_inbound.insert(
            (phone_number_id.to_owned(), request.from.clone()),
            now_secs(),
        );
        self.deliver(&number, "messages", value).await?;
        Ok(wamid)
    }

    fn prepare_media(
        &self,
        pnid: &str,
        kind: &str,
        fields: &mut Map<String, Value>,
    ) -> Result<(), SandboxError> {
        let Some(Value::Object(media)) = fields.get_mut(kind) else {
            return Err(SandboxError::Invalid(format!(
                "message.{kind} must be an object"
            )));
        };
        if media.contains_key("id") {
            return Ok(());
        }
        let default_mime = match kind {
            "image" => "image/png",
            "sticker" => "image/webp",
            "audio" => "audio/ogg",
            "video" => "video/mp4",
            _ => "application/pdf",
        };
        let mime = media
            .get("mime_type")
            .and_then(Value::as_str)
            .unwrap_or(default_mime)
            .to_owned();
        let bytes = match media.remove("data_base64") {
            Some(Value::String(data)) => B64.decode(data).map_err(|e| {
                SandboxError::Invalid(format!("message.{kind}.data_base64 is not base64: {e}"))
            })?,
            Some(_) => {
                return Err(SandboxError::Invalid(format!(
                    "message.{kind}.data_base64 must be a string"
                )));
            }
            None if kind == "image" => PLACEHOLDER_PNG.to_vec(),
            None => format!("sandbox {kind} file").into_bytes(),
        };
        let id = self.store_media(pnid, &mime, bytes);
        let stored = self
            .world()
            .media
            .get(&id)
            .map(|m| m.sha256.clone())
            .unwrap_or_default();
        media.insert("mime_type".into(), json!(mime));
        media.insert("sha256".into(), json!(stored));
        media.insert("id".into(), json!(id));
        Ok(())
    }

    /// Delivers status webhooks for an outbound message, in the given order.
    pub async fn statuses(
        &self,
        phone_number_id: &str,
        request: StatusRequest,
    ) -> Result<(), SandboxError> {
        let number = self.number(phone_number_id)?;
        const KNOWN: [&str; 5] = ["sent", "delivered", "read", "failed", "played"];
        if request.statuses.is_empty()
            || request
                .statuses
                .iter()
                .any(|s| !KNOWN.contains(&s.as_str()))
        {
            return Err(SandboxError::Invalid(format!(
                "statuses must be a non-empty list of {KNOWN:?}"
            )));
        }
        for status in &request.statuses {
            self.deliver_status(
                &number,
                &request.wamid,
                &request.recipient_id,
                status,
                None,
                None,
            )
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn deliver_status(
        &self,
        number: &NumberConfig,
        wamid: &str,
        recipient: &str,
        status: &str,
        errors: Option<Value>,
        callback: Option<&str>,
    ) -> Result<(), SandboxError> {
        let mut s = Map::new();
        s.insert("id".into(), json!(wamid));
        s.insert("status".into(), json!(status));
        s.insert("timestamp".into(), json!(now_secs().to_string()));
        s.insert("recipient_id".into(), json!(recipient));
        if let Some(data) = callback {
            s.insert("biz_opaque_callback_data".into(), json!(data));
        }
        if status != "failed" && status != "read" {
            s.insert("pricing".into(), json!({"billable": true, "pricing_model": "PMP", "category": "service", "type": "regular"}));
        }
        if let Some(errors) = errors {
            s.insert("errors".into(), errors);
        }
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": number.display_phone_number, "phone_number_id": number.phone_number_id },
            "statuses": [Value::Object(s)],
        });
        self.deliver(number, "messages", value).await
    }
}
