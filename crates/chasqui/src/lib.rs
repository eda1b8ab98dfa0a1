//! The `chasqui` binary's library half: configuration, node lifecycle, CLI commands and the
//! benchmark tool, so end-to-end tests can start real nodes in-process.

pub mod bench;
mod bench_delivery;
mod bench_flows;
mod bench_send;
pub mod cli;
pub mod config;
pub mod node;

/// Installs the process-wide TLS crypto provider (ring) once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
