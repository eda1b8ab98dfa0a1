//! A small Graph API client: media metadata and download for the inbound path, sends, and a
//! generic call the proxy forwards through.

use bytes::Bytes;
use serde::Deserialize;
use std::time::Duration;

/// Meta's public Graph API host.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version Chasqui speaks.
pub const VERSION: &str = "v24.0";

/// Errors from the Graph API.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Network or protocol failure.
    #[error("graph request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// Meta answered with an error status.
    #[error("graph answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Response body (truncated).
        body: String,
    },
}

impl GraphError {
    /// Whether a retry may succeed (network errors, 429 and 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            GraphError::Transport(_) => true,
            GraphError::Status { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

/// Media metadata from `GET /{media_id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct MediaInfo {
    /// Short-lived download URL (needs the access token).
    pub url: String,
    /// MIME type.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Base64 SHA-256 of the file.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub file_size: Option<serde_json::Value>,
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay as they are).
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The body of a Graph call.
#[derive(Debug)]
pub enum GraphBody {
    /// No body.
    Empty,
    /// A JSON document.
    Json(Vec<u8>),
    /// A multipart form (media uploads).
    Multipart(reqwest::multipart::Form),
    /// A whole file for a resumable upload session (sent with `file_offset: 0`).
    UploadChunk(Vec<u8>),
}

/// Meta's answer to a Graph call, unchanged.
#[derive(Debug, Clone)]
pub struct GraphReply {
    /// HTTP status.
    pub status: u16,
    /// Response content type.
    pub content_type: Option<String>,
    /// Response body.
    pub body: Bytes,
}

impl GraphReply {
    /// Whether Meta answered 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A Graph API client bound to one base URL.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
}

impl GraphClient {
    /// A client for `base_url` (e.g. [`DEFAULT_BASE_URL`] or a sandbox).
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The base URL this client calls.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /{version}/{media_id}`.
    pub async fn media_info(&self, media_id: &str, token: &str) -> Result<MediaInfo, GraphError> {
        let url = format!("{}/{VERSION}/{media_id}", self.base_url);
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(15))
            .send()
            .await?;
        Ok(check(response).await?.json().await?)
    }

    /// `POST /{version}/{phone_number_id}/messages` with the caller's body, returning Meta's
    /// status and body unchanged (errors included: the proxy answers them as they are).
    pub async fn send_message(
        &self,
        phone_number_id: &str,
        token: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Bytes), GraphError> {
        let url = format!("{}/{VERSION}/{phone_number_id}/messages", self.base_url);
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?))
    }

    /// Any Graph call: `method /{version}/{path}?{query}` with the number's token, answering
    /// Meta's status, content type and body unchanged (errors included).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: Option<&str>,
        token: &str,
        body: GraphBody,
    ) -> Result<GraphReply, GraphError> {
        let mut url = format!(
            "{}/{VERSION}/{}",
            self.base_url,
            path.trim_start_matches('/')
        );
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(60));
        request = match body {
            GraphBody::Empty => request,
            GraphBody::Json(bytes) => request
                .header("content-type", "application/json")
                .body(bytes),
            GraphBody::Multipart(form) => request.multipart(form),
            GraphBody::UploadChunk(bytes) => request
                .header("file_offset", "0")
                .header("content-type", "application/octet-stream")
                .body(bytes),
        };
        let response = request.send().await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(GraphReply {
            status,
            content_type,
            body: response.bytes().await?,
        })
    }

    /// Downloads the bytes behind a media URL.
    pub async fn download(&self, url: &str, token: &str) -> Result<Bytes, GraphError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(60))
            .send()
            .await?;
        Ok(check(response).await?.bytes().await?)
    }
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response, GraphError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let mut body = response.text().await.unwrap_or_default();
    body.truncate(500);
    Err(GraphError::Status {
        status: status.as_u16(),
        body,
    })
}
