//! Chasqui's HTTP surface: the inbound Meta webhook endpoint, the Platform API
//! (`/platform/v1`), the Meta proxy (`/meta/whatsapp/vN.0`), the embedded sandbox
//! (`/sandbox`), dashboard login (`/auth`), signed media downloads and health checks. Handlers are thin: parse,
//! authorize, call one use-case, render.

mod assignments;
mod auth;
mod dashboard;
mod embeds;
mod error;
mod extract;
mod health;
mod inbound;
mod media;
mod platform;
mod proxy;
mod realtime;
use chasqui_app::render;
mod executions;
mod sandbox;
mod templates;
mod users;
mod webhooks;
mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use chasqui_app::App;
use chasqui_app::ingest::IngestQueue;
use chasqui_sandbox::Sandbox;
use tower_http::trace::TraceLayer;

pub use sandbox::register_sandbox_number;

/// Largest request body accepted (Meta's webhooks are far smaller).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Use-cases.
    pub app: App,
    /// Writer of inbound deliveries; `None` on a worker-only node.
    pub ingest: Option<IngestQueue>,
    /// The embedded sandbox.
    pub sandbox: Sandbox,
    /// Lets `/readyz` report draining during shutdown.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// The full router of a node.
pub fn router(state: AppState) -> Router {
    let graph = chasqui_sandbox::graph_router(state.sandbox.clone());
    Router::new()
        .merge(health::routes())
        .merge(inbound::routes())
        .merge(media::routes())
        .nest(
            "/platform/v1",
            platform::routes()
                .merge(templates::routes())
                .merge(webhooks::routes())
                .merge(workflows::routes())
                .merge(executions::routes())
                .merge(users::routes())
                .merge(assignments::routes())
                .merge(realtime::routes())
                .merge(embeds::routes()),
        )
        .merge(users::auth_routes())
        .merge(embeds::embed_routes())
        .merge(proxy::guarded(state.clone()))
        .nest("/sandbox/v1", sandbox::routes())
        .with_state(state)
        .nest("/sandbox/graph", graph)
        .fallback(dashboard::serve)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
}
