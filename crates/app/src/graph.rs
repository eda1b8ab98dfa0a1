//! Forwarding Graph calls for a number through the proxy: the number's own token, Meta's
//! answer unchanged, and the errors a proxied call can end with.

use chasqui_meta::graph::{GraphBody, GraphClient, GraphReply};
use chasqui_meta::template::TemplateError;
use chasqui_store::numbers::PhoneNumber;

use crate::{App, AppError};

/// Why a proxied call did not produce Meta's answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request is invalid (Meta's error 100, HTTP 400) with its details.
    #[error("{0}")]
    Invalid(String),
    /// A template request breaks Meta's template rules (error 100 with a subcode).
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Meta could not be reached (502).
    #[error("the Graph API could not be reached: {0}")]
    Upstream(String),
    /// Our side failed.
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<chasqui_store::StoreError> for ProxyError {
    fn from(e: chasqui_store::StoreError) -> Self {
        ProxyError::App(AppError::Store(e))
    }
}

/// Sends `method /{version}/{path}?{query}` to the Graph API that serves `number`, with the
/// number's access token.
pub async fn forward(
    app: &App,
    number: &PhoneNumber,
    method: reqwest::Method,
    path: &str,
    query: Option<&str>,
    body: GraphBody,
) -> Result<GraphReply, ProxyError> {
    let creds = crate::numbers::credentials(app, number)?;
    let graph = GraphClient::new(app.http().clone(), &app.graph_base_url(number.kind));
    graph
        .call(method, path, query, creds.access_token.expose(), body)
        .await
        .map_err(|e| ProxyError::Upstream(e.to_string()))
}
