//! JSON shapes of stored resources (Kapso's where they exist), and the `fields=kapso(...)`
//! selection of the message `kapso` block.

use std::collections::{BTreeSet, HashMap};

use crate::App;
use chasqui_core::Timestamp;
use chasqui_store::conversations::Conversation;
use chasqui_store::messages::StoredMessage;
use chasqui_store::numbers::PhoneNumber;
use chasqui_store::projects::Customer;
use serde_json::{Map, Value, json};

fn iso(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

fn iso_opt(ms: Option<i64>) -> Value {
    ms.map(|m| Value::String(iso(m))).unwrap_or(Value::Null)
}

/// Every field the message `kapso` block can carry.
const MESSAGE_FIELDS: &[&str] = &[
    "direction",
    "status",
    "processing_status",
    "origin",
    "phone_number",
    "phone_number_id",
    "whatsapp_conversation_id",
    "contact_name",
    "has_media",
    "media_url",
    "media_data",
    "content",
    "statuses",
    "flow_response",
    "flow_token",
    "order_text",
];

/// The block's default fields.
const MESSAGE_DEFAULT: &[&str] = &[
    "direction",
    "status",
    "processing_status",
    "origin",
    "phone_number",
    "phone_number_id",
    "whatsapp_conversation_id",
    "contact_name",
    "has_media",
    "media_url",
    "content",
    "statuses",
    "flow_response",
    "flow_token",
    "order_text",
];

/// Conversation `kapso` fields.
const CONVERSATION_FIELDS: &[&str] = &[
    "contact_name",
    "messages_count",
    "last_message_id",
    "last_message_type",
    "last_message_timestamp",
    "last_message_text",
    "last_inbound_at",
    "last_outbound_at",
    "customer_service_window_open",
    "customer_service_window_expires_at",
];

/// Which `kapso` fields to render (`Default`: the default set).
#[derive(Debug, Clone, Default)]
pub struct KapsoFields(Option<BTreeSet<String>>);

impl KapsoFields {
    /// Parses `fields`: absent or without `kapso(...)` → defaults; `kapso(*)`/`kapso(all)` →
    /// all; `kapso()` → none; `kapso(a,b)` → those (unknown names are an error).
    pub fn parse(fields: Option<&str>, all: &[&str], default: &[&str]) -> Result<Self, String> {
        let set = |names: &[&str]| Some(names.iter().map(|s| (*s).to_owned()).collect());
        let Some(fields) = fields else {
            return Ok(Self(set(default)));
        };
        let Some(start) = fields.find("kapso(") else {
            return Ok(Self(set(default)));
        };
        let rest = &fields[start + 6..];
        let Some(end) = rest.find(')') else {
            return Err("fields: kapso( is not closed".into());
        };
        let inner = rest[..end].trim();
        match inner {
            "" => Ok(Self(None)),
            "*" | "all" => Ok(Self(set(all))),
            "default" => Ok(Self(set(default))),
            list => {
                let mut chosen = BTreeSet::new();
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if !all.contains(&name) {
                        return Err(format!(
                            "fields: unknown kapso field {name:?}; known: {}",
                            all.join(", ")
                        ));
                    }
                    chosen.insert(name.to_owned());
                }
                Ok(Self(Some(chosen)))
            }
        }
    }

    /// The selection for messages from a `fields` parameter.
    pub fn messages(fields: Option<&str>) -> Result<Self, String> {
        Self::parse(fields, MESSAGE_FIELDS, MESSAGE_DEFAULT)
    }

    /// The selection for conversations from a `fields` parameter.
    pub fn conversations(fields: Option<&str>) -> Result<Self, String> {
        Self::parse(fields, CONVERSATION_FIELDS, CONVERSATION_FIELDS)
    }

    fn wants(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(name))
    }

    fn filter(&self, block: Map<String, Value>) -> Option<Value> {
        let set = self.0.as_ref()?;
        Some(Value::Object(
            block.into_iter().filter(|(k, _)| set.contains(k)).collect(),
        ))
    }
}

/// A stored message in Meta's shape plus the `kapso` block.
pub fn message(
    app: &App,
    m: &StoredMessage,
    statuses: &HashMap<String, Vec<Value>>,
    fields: &KapsoFields,
) -> Value {
    let mut out = match serde_json::from_str::<Value>(&m.body) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    out.insert("id".into(), json!(m.wamid));
    out.entry("timestamp")
        .or_insert_with(|| json!((m.sent_at / 1000).to_string()));
    out.entry("type").or_insert_with(|| json!(m.message_type));
    let Some(_) = fields.0.as_ref() else {
        return Value::Object(out);
    };
    let mut k = Map::new();
    k.insert("direction".into(), json!(m.direction));
    k.insert("status".into(), json!(m.status));
    k.insert("processing_status".into(), json!("processed"));
    k.insert("origin".into(), json!("cloud_api"));
    k.insert(
        "phone_number".into(),
        m.wa_id
            .as_ref()
            .map(|w| json!(format!("+{w}")))
            .unwrap_or(Value::Null),
    );
    k.insert("phone_number_id".into(), json!(m.phone_number_id));
    k.insert("whatsapp_conversation_id".into(), json!(m.conversation_id));
    k.insert("contact_name".into(), json!(m.contact_name));
    k.insert("has_media".into(), json!(m.has_media));
    if fields.wants("media_url") || fields.wants("media_data") {
        let url = m
            .media_id
            .as_ref()
            .map(|id| crate::media::signed_url(app, id));
        k.insert("media_url".into(), json!(url));
        if let Some(media) = out.get(&m.message_type) {
            k.insert(
                "media_data".into(),
                json!({ "url": url, "filename": media.get("filename"), "content_type": media.get("mime_type") }),
            );
        }
    }
    k.insert("content".into(), json!(m.content));
    k.insert(
        "statuses".into(),
        Value::Array(statuses.get(&m.wamid).cloned().unwrap_or_default()),
    );
    if let Some(raw) = out
        .get("interactive")
        .and_then(|i| i.pointer("/nfm_reply/response_json"))
        .and_then(Value::as_str)
    {
        let parsed = serde_json::from_str::<Value>(raw).unwrap_or(Value::Null);
        k.insert(
            "flow_token".into(),
            parsed.get("flow_token").cloned().unwrap_or(Value::Null),
        );
        k.insert("flow_response".into(), parsed);
    }
    if m.message_type == "order" {
        k.insert("order_text".into(), json!(m.content));
    }
    if let Some(block) = fields.filter(k) {
        out.insert("kapso".into(), block);
    }
    Value::Object(out)
}

/// A conversation in Kapso's shape.
pub fn conversation(c: &Conversation, fields: &KapsoFields, now: i64) -> Value {
    let mut out = json!({
        "id": c.id,
        "phone_number": c.wa_id.as_ref().map(|w| format!("+{w}")),
        "phone_number_id": c.phone_number_id,
        "status": c.status,
        "last_active_at": iso(c.last_active_at),
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "ended_at": iso_opt(c.ended_at),
        "metadata": {},
        "business_scoped_user_id": c.user_id,
        "assigned_user_id": c.assigned_user_id,
        "workflow_status": c.workflow_status,
        "unread_count": c.unread_count,
    });
    let mut k = Map::new();
    k.insert("contact_name".into(), json!(c.contact_name));
    k.insert("messages_count".into(), json!(c.messages_count));
    k.insert("last_message_id".into(), json!(c.last_message_id));
    k.insert("last_message_type".into(), json!(c.last_message_type));
    k.insert("last_message_timestamp".into(), iso_opt(c.last_message_at));
    k.insert("last_message_text".into(), json!(c.last_message_text));
    k.insert("last_inbound_at".into(), iso_opt(c.last_inbound_at));
    k.insert("last_outbound_at".into(), iso_opt(c.last_outbound_at));
    let window_ends = c
        .last_inbound_at
        .map(|t| t + chasqui_core::status::CUSTOMER_SERVICE_WINDOW_MILLIS);
    k.insert(
        "customer_service_window_open".into(),
        json!(window_ends.is_some_and(|end| end > now)),
    );
    k.insert(
        "customer_service_window_expires_at".into(),
        iso_opt(window_ends),
    );
    if let (Some(block), Value::Object(map)) = (fields.filter(k), &mut out) {
        map.insert("kapso".into(), block);
    }
    out
}

/// A phone number without its secrets.
pub fn number(n: &PhoneNumber) -> Value {
    let normalized = n
        .display_phone_number
        .as_ref()
        .map(|d| d.chars().filter(char::is_ascii_digit).collect::<String>());
    json!({
        "id": n.phone_number_id,
        "internal_id": n.id,
        "phone_number_id": n.phone_number_id,
        "business_account_id": n.business_account_id,
        "kind": n.kind.as_str(),
        "name": n.name,
        "display_phone_number": n.display_phone_number,
        "display_phone_number_normalized": normalized,
        "customer_id": n.customer_id,
        "webhook_verify_token_set": n.verify_token_digest.is_some(),
        "status": "CONNECTED",
        "created_at": iso(n.created_at),
        "updated_at": iso(n.updated_at),
    })
}

/// A customer.
pub fn customer(c: &Customer) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "external_customer_id": c.external_customer_id,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    })
}

/// Statuses of a page of messages, grouped by wamid.
pub async fn statuses_for(
    app: &App,
    messages: &[StoredMessage],
) -> Result<HashMap<String, Vec<Value>>, chasqui_store::StoreError> {
    let mut by_number: HashMap<&str, Vec<String>> = HashMap::new();
    for m in messages {
        by_number
            .entry(m.phone_number_id.as_str())
            .or_default()
            .push(m.wamid.clone());
    }
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for (pnid, wamids) in by_number {
        for (wamid, raw) in chasqui_store::messages::statuses(app.db(), pnid, &wamids).await? {
            out.entry(wamid)
                .or_default()
                .push(serde_json::from_str(&raw).unwrap_or(Value::Null));
        }
    }
    Ok(out)
}
