//! Secrets at rest and in memory: the instance key that encrypts Meta tokens and app
//! secrets (AES-256-GCM), keyed digests for lookups and signed URLs (HMAC-SHA256), and
//! [`Secret`], a wrapper whose `Debug` never shows its contents.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ids::random_bytes;

/// A value that must never be printed: `Debug` and `Display` render `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret value; call sites that need it say so explicitly.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

/// Errors of the secret store.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The ciphertext is not in Chasqui's format.
    #[error("encrypted value is malformed")]
    Malformed,
    /// The ciphertext does not decrypt with this instance key.
    #[error("encrypted value does not decrypt with this instance key (was the key changed?)")]
    WrongKey,
    /// An instance key of the wrong length or encoding.
    #[error("instance key must be 32 bytes, base64 encoded")]
    BadKey,
}

const CIPHER_PREFIX: &str = "v1:";

/// The instance's 32-byte master key. Every node that shares a database must share it.
#[derive(Clone)]
pub struct InstanceKey([u8; 32]);

impl fmt::Debug for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InstanceKey(***)")
    }
}

impl InstanceKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        InstanceKey(random_bytes::<32>())
    }

    /// Parses the base64 text form (as stored in `instance.key` or `CHASQUI_INSTANCE_KEY`).
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = B64.decode(text.trim()).map_err(|_| SecretError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(InstanceKey(key))
    }

    /// The base64 text form.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Encrypts `plaintext` with a fresh random nonce: `v1:` + base64(nonce ‖ ciphertext ‖ tag).
    pub fn encrypt(&self, plaintext: &str) -> String {
        let cipher = self.cipher();
        let nonce_bytes = random_bytes::<12>();
        let nonce = Nonce::from(nonce_bytes);
        // AES-GCM encryption only fails for plaintexts beyond 64 GiB.
        let sealed = cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("AES-GCM encryption of a bounded plaintext");
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        format!("{CIPHER_PREFIX}{}", B64.encode(out))
    }

    /// Decrypts a value produced by [`InstanceKey::encrypt`].
    pub fn decrypt(&self, stored: &str) -> Result<String, SecretError> {
        let body = stored
            .strip_prefix(CIPHER_PREFIX)
            .ok_or(SecretError::Malformed)?;
        let bytes = B64.decode(body).map_err(|_| SecretError::Malformed)?;
        if bytes.len() < 12 + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce_bytes, sealed) = bytes.split_at(12);
        let nonce_array: [u8; 12] = nonce_bytes.try_into().map_err(|_| SecretError::Malformed)?;
        let plain = self
            .cipher()
            .decrypt(&Nonce::from(nonce_array), sealed)
            .map_err(|_| SecretError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SecretError::Malformed)
    }

    /// A keyed digest (lowercase hex HMAC-SHA256) of `data` for `purpose`: lets secrets
    /// such as verify tokens be looked up by value without storing them in clear.
    pub fn digest(&self, purpose: &str, data: &[u8]) -> String {
        hex::encode(self.mac(purpose, data))
    }

    /// Checks `signature` (lowercase hex) against [`InstanceKey::digest`] in constant time.
    pub fn verify_digest(&self, purpose: &str, data: &[u8], signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let expected = self.mac(purpose, data);
        given.len() == expected.len() && bool::from(given.ct_eq(&expected))
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

/// HMAC-SHA256 of `body` with `key`, lowercase hex.
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypts_and_decrypts_with_fresh_nonces() {
        let key = InstanceKey::generate();
        let a = key.encrypt("EAAG-token");
        let b = key.encrypt("EAAG-token");
        assert_ne!(a, b, "each encryption uses its own nonce");
        assert!(!a.contains("EAAG"));
        assert_eq!(key.decrypt(&a).unwrap(), "EAAG-token");
    }

    #[test]
    fn another_key_cannot_decrypt_and_tampering_is_detected() {
        let key = InstanceKey::generate();
        let sealed = key.encrypt("secret");
        assert!(matches!(
            InstanceKey::generate().decrypt(&sealed),
            Err(SecretError::WrongKey)
        ));
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(key.decrypt(&tampered).is_err());
        assert!(matches!(key.decrypt("plain"), Err(SecretError::Malformed)));
    }

    #[test]
    fn key_round_trips_through_base64() {
        let key = InstanceKey::generate();
        let again = InstanceKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(again.digest("p", b"x"), key.digest("p", b"x"));
        assert!(InstanceKey::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn digests_are_purpose_bound_and_verified() {
        let key = InstanceKey::generate();
        let d = key.digest("verify-token", b"abc");
        assert_ne!(d, key.digest("media-url", b"abc"));
        assert!(key.verify_digest("verify-token", b"abc", &d));
        assert!(!key.verify_digest("verify-token", b"abd", &d));
        assert!(!key.verify_digest("verify-token", b"abc", "zz"));
    }

    #[test]
    fn secret_debug_hides_value() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", InstanceKey::generate()), "InstanceKey(***)");
    }
}
