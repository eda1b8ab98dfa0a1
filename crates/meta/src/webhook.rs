//! Webhook envelopes Meta posts to `/webhooks/meta`.
//!
//! The envelope is parsed loosely (every change stays a raw [`Value`]) so that one malformed
//! change never prevents its neighbours from being processed; each change is then decoded on
//! its own with [`Change::parse`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The top-level webhook body.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Envelope {
    /// Always `whatsapp_business_account` for WhatsApp.
    pub object: String,
    /// One entry per WhatsApp Business Account.
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// One entry of an envelope: the WABA id and its changes, still undecoded.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Entry {
    /// The WhatsApp Business Account id.
    pub id: String,
    /// Epoch seconds, present on account-level events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    /// The changes, each decoded independently.
    #[serde(default)]
    pub changes: Vec<Value>,
}

impl Envelope {
    /// Parses the envelope, requiring Meta's `object` and at least a well-formed entry list.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// Just the routing fields of an envelope, decoded without building a JSON tree (the hot path
/// of the inbound endpoint): the object, the WABA ids and the phone number ids.
#[derive(Debug, Deserialize)]
pub struct Routing<'a> {
    /// Always `whatsapp_business_account` for WhatsApp.
    #[serde(borrow)]
    pub object: std::borrow::Cow<'a, str>,
    /// Entries.
    #[serde(default, borrow)]
    pub entry: Vec<RoutingEntry<'a>>,
}

/// Routing fields of one entry.
#[derive(Debug, Deserialize)]
pub struct RoutingEntry<'a> {
    /// WABA id.
    #[serde(borrow)]
    pub id: std::borrow::Cow<'a, str>,
    /// Changes (only their metadata is read).
    #[serde(default, borrow)]
    pub changes: Vec<RoutingChange<'a>>,
}

/// Routing fields of one change. The value stays raw: a malformed value must not make the
/// whole delivery unreadable (its neighbours are still applied).
#[derive(Debug, Deserialize)]
pub struct RoutingChange<'a> {
    /// The change's value, undecoded.
    #[serde(default, borrow)]
    pub value: Option<&'a serde_json::value::RawValue>,
}

/// Routing fields of a change value.
#[derive(Debug, Deserialize)]
pub struct RoutingValue<'a> {
    /// Present on `messages` changes.
    #[serde(default, borrow)]
    pub metadata: Option<RoutingMetadata<'a>>,
}

/// The phone number a change concerns.
#[derive(Debug, Deserialize)]
pub struct RoutingMetadata<'a> {
    /// Meta's phone number id.
    #[serde(borrow)]
    pub phone_number_id: std::borrow::Cow<'a, str>,
}

impl<'a> Routing<'a> {
    /// Parses the routing fields; fails on malformed JSON or a malformed envelope.
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// Every phone number id named, and every WABA id, without duplicates.
    pub fn addressees(&self) -> (Vec<String>, Vec<String>) {
        let mut numbers: Vec<String> = Vec::new();
        let mut wabas: Vec<String> = Vec::new();
        for entry in &self.entry {
            if !wabas.iter().any(|w| w == entry.id.as_ref()) {
                wabas.push(entry.id.to_string());
            }
            for change in &entry.changes {
                let value = change
                    .value
                    .and_then(|raw| serde_json::from_str::<RoutingValue<'_>>(raw.get()).ok());
                if let Some(m) = value.as_ref().and_then(|v| v.metadata.as_ref())
                    && !numbers.iter().any(|n| n == m.phone_number_id.as_ref())
                {
                    numbers.push(m.phone_number_id.to_string());
                }
            }
        }
        (numbers, wabas)
    }
}

/// A decoded change.
#[derive(Debug, Clone)]
pub enum Change {
    /// `field: messages`: messages, statuses and value-level errors for one phone number.
    Messages(MessagesValue),
    /// `field: message_template_status_update`.
    TemplateStatus(TemplateStatusUpdate),
    /// Any other account-level field (account_update, phone_number_name_update, ...), kept raw.
    Account {
        /// The change's `field`.
        field: String,
        /// The change's `value`.
        value: Value,
    },
}

/// Why a change could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The change has no string `field`.
    #[error("change has no `field`")]
    MissingField,
    /// The change has no `value`.
    #[error("change has no `value`")]
    MissingValue,
    /// The value does not have the shape its field requires.
    #[error("malformed `{field}` value: {source}")]
    Malformed {
        /// The change's field.
        field: String,
        /// The decoding error.
        source: serde_json::Error,
    },
}

impl Change {
    /// Decodes one raw change.
    pub fn parse(raw: &Value) -> Result<Self, ChangeError> {
        let field = raw
            .get("field")
            .and_then(Value::as_str)
            .ok_or(ChangeError::MissingField)?;
        let value = raw.get("value").ok_or(ChangeError::MissingValue)?;
        let malformed = |source| ChangeError::Malformed {
            field: field.to_owned(),
            source,
        };
        match field {
            "messages" => Ok(Change::Messages(
                MessagesValue::deserialize(value).map_err(malformed)?,
            )),
            "message_template_status_update" => Ok(Change::TemplateStatus(
                TemplateStatusUpdate::deserialize(value).map_err(malformed)?,
            )),
            other => Ok(Change::Account {
                field: other.to_owned(),
                value: value.clone(),
            }),
        }
    }
}

/// The value of a `messages` change.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesValue {
    /// The business phone number the change concerns.
    pub metadata: Metadata,
    /// Profiles of the customers the messages or statuses concern.
    #[serde(default)]
    pub contacts: Vec<ContactProfile>,
    /// Inbound messages, kept raw: every type is stored as Meta sent it.
    #[serde(default)]
    pub messages: Vec<Value>,
    /// Status updates of outbound messages.
    #[serde(default)]
    pub statuses: Vec<Value>,
    /// Value-level errors (e.g. 130429).
    #[serde(default)]
    pub errors: Vec<Value>,
}

/// `metadata` of a messages change.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Metadata {
    /// The number as displayed.
    #[serde(default)]
    pub display_phone_number: String,
    /// Meta's id of the business phone number.
    pub phone_number_id: String,
}

/// A customer profile in `contacts`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ContactProfile {
    /// The customer's WhatsApp id (phone number); absent for username-only users.
    #[serde(default)]
    pub wa_id: Option<String>,
    /// The business-scoped user id (BSUID).
    #[serde(default)]
    pub user_id: Option<String>,
    /// The profile block.
    #[serde(default)]
    pub profile: Option<Profile>,
}

/// A customer's WhatsApp profile.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Profile {
    /// Display name chosen by the customer.
    #[serde(default)]
    pub name: Option<String>,
}

/// The fields of an inbound message every handler needs; the full object stays raw.
#[derive(Debug, Clone)]
pub struct MessageHead {
    /// The wamid.
    pub id: String,
    /// Sender's wa_id (may be absent for username-only senders).
    pub from: Option<String>,
    /// Sender's BSUID when Meta sends one.
    pub from_user_id: Option<String>,
    /// Epoch seconds.
    pub timestamp: i64,
    /// Meta's message `type`.
    pub kind: String,
}

impl MessageHead {
    /// Reads the head of a raw message, or says what is missing.
    pub fn parse(message: &Value) -> Result<Self, &'static str> {
        let id = message
            .get("id")
            .and_then(Value::as_str)
            .ok_or("message has no id")?;
        let kind = message
            .get("type")
            .and_then(Value::as_str)
            .ok_or("message has no type")?;
        let from = message
            .get("from")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let from_user_id = message
            .get("from_user_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if from.is_none() && from_user_id.is_none() {
            return Err("message has neither from nor from_user_id");
        }
        Ok(Self {
            id: id.to_owned(),
            from,
            from_user_id,
            timestamp: epoch(message.get("timestamp")).ok_or("message has no valid timestamp")?,
            kind: kind.to_owned(),
        })
    }
}

/// The fields of a status update every handler needs; the full object stays raw.
#[derive(Debug, Clone)]
pub struct StatusHead {
    /// The wamid of the outbound message.
    pub id: String,
    /// `sent`, `delivered`, `read`, `failed`, ...
    pub status: String,
    /// Epoch seconds.
    pub timestamp: i64,
    /// The customer's wa_id.
    pub recipient_id: Option<String>,
    /// The customer's BSUID.
    pub recipient_user_id: Option<String>,
}

impl StatusHead {
    /// Reads the head of a raw status, or says what is missing.
    pub fn parse(status: &Value) -> Result<Self, &'static str> {
        Ok(Self {
            id: status
                .get("id")
                .and_then(Value::as_str)
                .ok_or("status has no id")?
                .to_owned(),
            status: status
                .get("status")
                .and_then(Value::as_str)
                .ok_or("status has no status")?
                .to_owned(),
            timestamp: epoch(status.get("timestamp")).ok_or("status has no valid timestamp")?,
            recipient_id: status
                .get("recipient_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            recipient_user_id: status
                .get("recipient_user_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// The value of a `message_template_status_update` change.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TemplateStatusUpdate {
    /// APPROVED, REJECTED, PAUSED, ...
    pub event: String,
    /// Meta's numeric template id.
    pub message_template_id: Value,
    /// Template name.
    #[serde(default)]
    pub message_template_name: Option<String>,
    /// Template language.
    #[serde(default)]
    pub message_template_language: Option<String>,
    /// Rejection reason, `NONE` otherwise.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Meta sends epoch seconds as strings; accept numbers too.
fn epoch(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Vec<(String, Vec<u8>)> {
        let dir = crate::fixtures("webhooks");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("fixtures dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            out.push((name, std::fs::read(&path).expect("read")));
        }
        assert!(out.len() > 20);
        out
    }

    #[test]
    fn every_fixture_decodes() {
        for (name, body) in fixtures() {
            let envelope = Envelope::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(envelope.object, "whatsapp_business_account");
            for entry in &envelope.entry {
                for raw in &entry.changes {
                    match Change::parse(raw).unwrap_or_else(|e| panic!("{name}: {e}")) {
                        Change::Messages(v) => {
                            for m in &v.messages {
                                MessageHead::parse(m).unwrap_or_else(|e| panic!("{name}: {e}"));
                            }
                            for s in &v.statuses {
                                StatusHead::parse(s).unwrap_or_else(|e| panic!("{name}: {e}"));
                            }
                        }
                        Change::TemplateStatus(t) => assert!(!t.event.is_empty()),
                        Change::Account { field, .. } => assert!(!field.is_empty()),
                    }
                }
            }
        }
    }

    #[test]
    fn routing_matches_the_full_envelope() {
        for (name, body) in fixtures() {
            let full = Envelope::parse(&body).expect("envelope");
            let routing = Routing::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut numbers: Vec<String> = full
                .entry
                .iter()
                .flat_map(|e| e.changes.iter())
                .filter_map(|c| {
                    c.pointer("/value/metadata/phone_number_id")
                        .and_then(Value::as_str)
                })
                .map(str::to_owned)
                .collect();
            numbers.dedup();
            let wabas: Vec<String> = full.entry.iter().map(|e| e.id.clone()).collect();
            assert_eq!(routing.addressees(), (numbers, wabas), "{name}");
        }
        assert!(Routing::parse(br#"{"object":"x","entry":[{"changes":[]}]}"#).is_err());
        let mixed = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":3}},{"field":"messages","value":{"metadata":{"phone_number_id":"42"}}}]}]}"#;
        assert_eq!(
            Routing::parse(mixed).expect("lenient").addressees().0,
            vec!["42".to_owned()]
        );
    }

    #[test]
    fn bad_change_is_reported_not_fatal() {
        let raw = serde_json::json!({"field": "messages", "value": {"metadata": 3}});
        assert!(matches!(
            Change::parse(&raw),
            Err(ChangeError::Malformed { .. })
        ));
        assert!(matches!(
            Change::parse(&serde_json::json!({})),
            Err(ChangeError::MissingField)
        ));
    }
}
