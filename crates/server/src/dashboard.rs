//! The dashboard: the React app built into `web/dist`, embedded in the binary (debug builds
//! too, so a test binary serves exactly the dist it was built with) and served at `/`. Paths that are not files get `index.html`, so
//! the app's own routes load; API prefixes never do.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use serde_json::json;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
struct Assets;

/// Paths that belong to APIs: an unknown one is a JSON 404, never the app.
const API_PREFIXES: &[&str] = &[
    "platform/",
    "embed-api/",
    "meta/",
    "sandbox/",
    "webhooks/",
    "auth/",
    "media/",
    "healthz",
    "readyz",
    "metrics",
];

/// What the dashboard's pages may load: only this server (WebSocket included), plus
/// images and media that messages link to over https. Only an embed page may be framed.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob: https:; media-src 'self' blob: https:; \
connect-src 'self'; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors";

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "Not found"})),
    )
        .into_response()
}

/// The router's fallback: a dashboard file, the app's `index.html`, or a JSON 404.
pub(crate) async fn serve(method: Method, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if API_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return not_found();
    }
    if method != Method::GET && method != Method::HEAD {
        return not_found();
    }
    file_response(path, "'none'")
}

/// The app's `index.html` for an embed page, which the given origins may frame.
pub(crate) fn embed_page(frame_ancestors: &str) -> Response {
    file_response("", frame_ancestors)
}

fn file_response(path: &str, frame_ancestors: &str) -> Response {
    let (file, name) = match Assets::get(path).filter(|_| !path.is_empty()) {
        Some(f) => (f, path),
        None => match Assets::get("index.html") {
            Some(f) => (f, "index.html"),
            None => return not_found(),
        },
    };
    let cache = if name.starts_with("assets/") {
        // Vite names assets by their content hash.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, file.metadata.mimetype().to_owned()),
            (header::CACHE_CONTROL, cache.to_owned()),
        ],
        file.data.into_owned(),
    )
        .into_response();
    let headers = response.headers_mut();
    let csp = format!("{CSP} {frame_ancestors}");
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp)
            .unwrap_or_else(|_| HeaderValue::from_static("frame-ancestors 'none'")),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
