//! Plain-text rendering of every WhatsApp message type, ready for a transcript or an LLM,
//! and the media reference a message carries.

use serde_json::Value;

/// Message types whose payload is a downloadable media object.
pub const MEDIA_TYPES: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

/// The media object of a message (`id`, `mime_type`, `sha256`, ...), if it has one.
pub fn media(message: &Value) -> Option<&Value> {
    let kind = message.get("type")?.as_str()?;
    if MEDIA_TYPES.contains(&kind) {
        message
            .get(kind)
            .filter(|m| m.get("id").is_some() || m.get("link").is_some())
    } else {
        None
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Renders a message as one human-readable line (or a few).
pub fn render(message: &Value) -> String {
    let kind = message
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let body = match kind {
        "text" => s(message, "/text/body").unwrap_or_default().to_owned(),
        "image" | "video" | "document" | "sticker" | "audio" => {
            let mut out = format!("[{kind}]");
            if let Some(name) = s(message, &format!("/{kind}/filename")) {
                out.push_str(&format!(" {name}"));
            }
            if message.pointer("/audio/voice").and_then(Value::as_bool) == Some(true) {
                out = "[voice message]".to_owned();
            }
            if let Some(caption) = s(message, &format!("/{kind}/caption")) {
                out.push_str(&format!(" {caption}"));
            }
            out
        }
        "location" => {
            let lat = message
                .pointer("/location/latitude")
                .map(Value::to_string)
                .unwrap_or_default();
            let lon = message
                .pointer("/location/longitude")
                .map(Value::to_string)
                .unwrap_or_default();
            let mut out = format!("[location] {lat}, {lon}");
            for key in ["name", "address"] {
                if let Some(part) = s(message, &format!("/location/{key}")) {
                    out.push_str(&format!(" — {part}"));
                }
            }
            out
        }
        "contacts" => {
            let cards = message
                .get("contacts")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let names: Vec<String> = cards
                .iter()
                .map(|c| {
                    let name = s(c, "/name/formatted_name").unwrap_or("contact");
                    match s(c, "/phones/0/phone") {
                        Some(phone) => format!("{name} ({phone})"),
                        None => name.to_owned(),
                    }
                })
                .collect();
            format!("[contacts] {}", names.join(", "))
        }
        "interactive" => render_interactive(message),
        "button" => s(message, "/button/text").unwrap_or("[button]").to_owned(),
        "reaction" => match s(message, "/reaction/emoji") {
            Some(emoji) => format!("[reaction] {emoji}"),
            None => "[reaction removed]".to_owned(),
        },
        "order" => {
            let items = message
                .pointer("/order/product_items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let lines: Vec<String> = items
                .iter()
                .map(|i| {
                    format!(
                        "{} x{} @ {} {}",
                        s(i, "/product_retailer_id").unwrap_or("item"),
                        i.get("quantity").map(Value::to_string).unwrap_or_default(),
                        i.get("item_price")
                            .map(Value::to_string)
                            .unwrap_or_default(),
                        s(i, "/currency").unwrap_or_default()
                    )
                })
                .collect();
            let mut out = format!("[order] {}", lines.join("; "));
            if let Some(text) = s(message, "/order/text") {
                out.push_str(&format!(" — {text}"));
            }
            out
        }
        "system" => format!(
            "[system] {}",
            s(message, "/system/body").unwrap_or_default()
        ),
        "template" => format!(
            "[template] {}",
            s(message, "/template/name").unwrap_or_default()
        ),
        "unsupported" | "unknown" => {
            let detail = s(message, "/errors/0/error_data/details")
                .or_else(|| s(message, "/errors/0/title"))
                .unwrap_or("unsupported message");
            format!("[unsupported] {detail}")
        }
        other => format!("[{other}]"),
    };
    body.trim().to_owned()
}

fn render_interactive(message: &Value) -> String {
    let kind = s(message, "/interactive/type").unwrap_or_default();
    match kind {
        "button_reply" => s(message, "/interactive/button_reply/title")
            .unwrap_or_default()
            .to_owned(),
        "list_reply" => {
            let title = s(message, "/interactive/list_reply/title").unwrap_or_default();
            match s(message, "/interactive/list_reply/description") {
                Some(d) => format!("{title} — {d}"),
                None => title.to_owned(),
            }
        }
        "nfm_reply" => {
            let raw = s(message, "/interactive/nfm_reply/response_json").unwrap_or("{}");
            let fields = serde_json::from_str::<serde_json::Map<String, Value>>(raw)
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| k.as_str() != "flow_token")
                        .map(|(k, v)| match v {
                            Value::String(s) => format!("{k}: {s}"),
                            other => format!("{k}: {other}"),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("[flow response] {fields}")
        }
        // Outbound interactive messages: their body text.
        _ => s(message, "/interactive/body/text")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("[interactive {kind}]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_each_type() {
        let cases = [
            (json!({"type":"text","text":{"body":"hola"}}), "hola"),
            (
                json!({"type":"image","image":{"id":"1","caption":"pot"}}),
                "[image] pot",
            ),
            (
                json!({"type":"audio","audio":{"id":"1","voice":true}}),
                "[voice message]",
            ),
            (
                json!({"type":"document","document":{"id":"1","filename":"a.pdf"}}),
                "[document] a.pdf",
            ),
            (
                json!({"type":"location","location":{"latitude":1.5,"longitude":-2,"name":"Shop"}}),
                "[location] 1.5, -2 — Shop",
            ),
            (
                json!({"type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"y","title":"Yes"}}}),
                "Yes",
            ),
            (
                json!({"type":"interactive","interactive":{"type":"nfm_reply","nfm_reply":{"response_json":"{\"flow_token\":\"t\",\"a\":\"b\"}"}}}),
                "[flow response] a: b",
            ),
            (
                json!({"type":"button","button":{"text":"Stop","payload":"s"}}),
                "Stop",
            ),
            (
                json!({"type":"reaction","reaction":{"message_id":"w","emoji":"👍"}}),
                "[reaction] 👍",
            ),
            (
                json!({"type":"reaction","reaction":{"message_id":"w","emoji":""}}),
                "[reaction removed]",
            ),
            (
                json!({"type":"system","system":{"body":"changed"}}),
                "[system] changed",
            ),
            (
                json!({"type":"unsupported","errors":[{"title":"Unsupported"}]}),
                "[unsupported] Unsupported",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(render(&message), expected, "{message}");
        }
        assert!(media(&json!({"type":"image","image":{"id":"1"}})).is_some());
        assert!(media(&json!({"type":"text","text":{"body":"x"}})).is_none());
    }
}
