//! `X-Hub-Signature-256`: `sha256=` + lowercase hex HMAC-SHA256 of the raw body bytes.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header Meta signs webhook deliveries with.
pub const HEADER: &str = "x-hub-signature-256";

fn mac(secret: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The header value Meta would send for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(secret, body)))
}

/// Checks a header value against the raw body in constant time. Accepts upper- or
/// lower-case hex; anything that is not `sha256=<64 hex>` fails.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_part) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_part) else {
        return false;
    };
    if given.len() != 32 {
        return false;
    }
    mac(secret, body).ct_eq(&given).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/{name}", crate::fixtures("signature"))).expect("fixture")
    }

    #[test]
    fn fixture_vector_verifies_over_raw_bytes_only() {
        let secret = read("secret.txt");
        let body = read("body.json");
        let header = String::from_utf8(read("expected-header.txt")).expect("utf8");
        assert_eq!(sign(&secret, &body), header);
        assert!(verify(&secret, &body, &header));
        assert!(verify(
            &secret,
            &body,
            &header.to_uppercase().replace("SHA256=", "sha256=")
        ));
        let reserialised = read("negative/body-reserialised.json");
        assert!(!verify(&secret, &reserialised, &header));
    }

    #[test]
    fn malformed_headers_fail() {
        for bad in ["", "sha256=", "sha1=abcd", "sha256=zz", "sha256=abcd"] {
            assert!(!verify(b"k", b"body", bad), "{bad}");
        }
        assert!(!verify(b"other", b"body", &sign(b"k", b"body")));
    }
}
