//! An emulator of Meta's WhatsApp Cloud API for offline development and tests.
//!
//! Simulated customers send messages that reach the server as Meta's signed webhooks (Meta's
//! exact bytes and escaping); the business side gets the Graph API a WhatsApp business uses
//! (send, media, templates with review, business profile, phone numbers) whose sends land in
//! an outbox and produce status webhooks after configurable delays. Faults can be injected:
//! duplicate deliveries, out-of-order statuses, 5xx answers for the next N Graph calls, and
//! Meta's send errors 130429, 131056 (synchronous) and 131026 (a failed status).
//!
//! It runs embedded in `chasqui serve` (the server authenticates and calls [`Sandbox`]) or
//! standalone via [`standalone_router`].

mod account;
mod control;
mod deliver;
mod graph;
mod media;
mod state;
mod templates;

pub use graph::graph_router;
pub use media::{UploadFile, UploadForm, read_upload_form};
pub use state::{
    Faults, INJECTABLE_SEND_ERRORS, InboundRequest, NumberConfig, Sandbox, SandboxError, Settings,
    StatusRequest,
};

use axum::Router;

/// The standalone sandbox: the Graph API at the root and the control API under `/v1`,
/// without authentication (bind it to loopback).
pub fn standalone_router(sandbox: Sandbox) -> Router {
    control::control_router(sandbox.clone()).merge(graph_router(sandbox))
}
