//! Project API keys. A key is 24 random bytes shown once; only its SHA-256 is stored,
//! which is safe for high-entropy secrets and lets a key be found by its hash.

use sha2::{Digest, Sha256};

use crate::ids::random_bytes;

/// The prefix every key starts with, so leaked keys are recognisable.
pub const KEY_PREFIX: &str = "chq_";

/// A freshly minted key: the clear text (to show once) and what is stored.
#[derive(Debug)]
pub struct NewApiKey {
    /// The key as the user must send it in `X-API-Key`. Never stored.
    pub plaintext: crate::Secret<String>,
    /// SHA-256 of the key, lowercase hex.
    pub hash: String,
    /// The first characters, kept to tell keys apart in listings.
    pub display_prefix: String,
}

/// Mints a new random API key.
pub fn generate() -> NewApiKey {
    let plaintext = format!("{KEY_PREFIX}{}", hex::encode(random_bytes::<24>()));
    let display_prefix = plaintext[..KEY_PREFIX.len() + 6].to_string();
    NewApiKey {
        hash: hash(&plaintext),
        plaintext: crate::Secret::new(plaintext),
        display_prefix,
    }
}

/// The stored form of a presented key.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_consistently() {
        let a = generate();
        let b = generate();
        assert_ne!(a.plaintext.expose(), b.plaintext.expose());
        assert!(a.plaintext.expose().starts_with(KEY_PREFIX));
        assert_eq!(hash(a.plaintext.expose()), a.hash);
        assert!(a.plaintext.expose().starts_with(&a.display_prefix));
        assert_eq!(a.hash.len(), 64);
    }
}
