//! Meta's exact JSON bytes: compact, `/` escaped as `\/`, every non-ASCII character as a
//! lowercase `\uXXXX` escape (UTF-16 surrogate pairs above the BMP). Signatures cover these
//! bytes, so the sandbox must produce them exactly as Meta does.

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};
use std::io;

/// Serializes `value` the way Meta's webhook sender does.
pub fn to_meta_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, MetaFormatter);
    // Serializing plain data into a Vec cannot fail.
    if value.serialize(&mut ser).is_err() {
        out.clear();
        out.extend_from_slice(b"null");
    }
    out
}

struct MetaFormatter;

impl Formatter for MetaFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if ch.is_ascii() && ch != '/' {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            if ch == '/' {
                writer.write_all(b"\\/")?;
            } else {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
            start = i + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        CompactFormatter.begin_string(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_signature_fixture_bytes() {
        let dir = crate::fixtures("signature");
        let body = std::fs::read(format!("{dir}/body.json")).expect("fixture");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            String::from_utf8(to_meta_bytes(&value)).expect("utf8"),
            String::from_utf8(body).expect("utf8")
        );
    }

    #[test]
    fn escapes_astral_characters_as_surrogates() {
        let bytes = to_meta_bytes(&serde_json::json!({"t": "a/😀é\n"}));
        assert_eq!(
            String::from_utf8(bytes).expect("utf8"),
            r#"{"t":"a\/\ud83d\ude00\u00e9\n"}"#
        );
    }
}
