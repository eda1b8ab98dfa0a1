//! Meta WhatsApp Cloud API wire formats: webhook envelopes, the `X-Hub-Signature-256`
//! scheme, Meta's exact JSON byte encoding, plain-text rendering of every message type,
//! and a small Graph API client. A standalone protocol crate: no database, no Chasqui types.

pub mod content;
pub mod graph;
pub mod json;
pub mod profile;
pub mod send;
pub mod signature;
pub mod template;
pub mod upload;
pub mod webhook;

/// The directory of this crate's fixtures `sub`, found when the tests run: cargo reuses a test
/// binary built in another checkout sharing the target directory, so a path fixed at compile
/// time may point at a checkout that is gone.
#[cfg(test)]
pub(crate) fn fixtures(sub: &str) -> String {
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    format!("{root}/fixtures/{sub}")
}

pub use signature::{sign, verify};
