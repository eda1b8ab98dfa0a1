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

pub use signature::{sign, verify};
