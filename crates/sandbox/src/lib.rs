//! An emulator of Meta's WhatsApp Cloud API for offline development and tests.
//!
//! Simulated customers send messages that reach the server as Meta's signed webhooks (Meta's
//! exact bytes and escaping); the business side gets a Graph API subset (send, media) whose
//! sends land in an outbox and produce status webhooks. Faults can be injected: duplicate
//! deliveries, out-of-order statuses and 5xx answers for the next N Graph calls.
//!
//! It runs embedded in `chasqui serve` (the server authenticates and calls [`Sandbox`]) or
//! standalone via [`standalone_router`].

mod deliver;
mod graph;
mod state;

pub use graph::graph_router;
pub use state::{Faults, InboundRequest, NumberConfig, Sandbox, SandboxError, StatusRequest};

use axum::Router;

/// The standalone sandbox: the Graph API at the root and the control API under `/v1`,
/// without authentication (bind it to loopback).
pub fn standalone_router(sandbox: Sandbox) -> Router {
    graph::control_router(sandbox.clone()).merge(graph_router(sandbox))
}
