//! Media as Meta serves it: upload (`POST /{phone_number_id}/media`), metadata with an
//! absolute download URL (`GET /{media_id}`), download, and `DELETE /{media_id}`.

use axum::Json;
use axum::extract::multipart::Multipart;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::graph::{
    QueryMap, Refusal, graph_error, invalid_token, no_object, param_error, success,
};
use crate::state::Sandbox;

/// The fields of a media upload form (`multipart/form-data`).
#[derive(Debug, Default)]
pub struct UploadForm {
    /// `messaging_product` (must be `whatsapp`).
    pub messaging_product: Option<String>,
    /// The `type` field: the file's MIME type.
    pub mime_type: Option<String>,
    /// The `file` part: its own content type, file name and bytes.
    pub file: Option<UploadFile>,
}

/// The `file` part of an upload.
#[derive(Debug)]
pub struct UploadFile {
    /// The part's `Content-Type`.
    pub part_type: Option<String>,
    /// The part's file name.
    pub filename: Option<String>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl UploadForm {
    /// The file's MIME type: the `type` field, else the part's own type unless it is
    /// generic, else what the bytes announce.
    pub fn resolved_mime(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        self.mime_type
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().to_ascii_lowercase())
            .or_else(|| {
                file.part_type
                    .as_deref()
                    .filter(|t| !t.starts_with("application/octet-stream"))
                    .map(str::to_ascii_lowercase)
            })
            .or_else(|| chasqui_meta::upload::sniff(&file.bytes).map(str::to_owned))
    }
}

/// Reads an upload form as Meta's clients send it (any field order).
pub async fn read_upload_form(mut multipart: Multipart) -> Result<UploadForm, String> {
    let mut form = UploadForm::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(form),
            Err(e) => return Err(format!("The multipart body could not be read: {e}")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let part_type = field.content_type().map(str::to_owned);
                let filename = field.file_name().map(str::to_owned);
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| format!("The file part could not be read: {e}"))?;
                form.file = Some(UploadFile {
                    part_type,
                    filename,
                    bytes: bytes.to_vec(),
                });
            }
            "messaging_product" | "type" => {
                let value = field
                    .text()
                    .await
                    .map_err(|e| format!("The {name} part could not be read: {e}"))?;
                if name == "type" {
                    form.mime_type = Some(value);
                } else {
                    form.messaging_product = Some(value);
                }
            }
            // ttl_minutes, upload_strategy and the like change nothing here.
            _ => {}
        }
    }
}

impl Sandbox {
    /// `POST /{phone_number_id}/media`.
    pub(crate) async fn upload_media(
        &self,
        phone_number_id: &str,
        headers: &HeaderMap,
        multipart: Multipart,
    ) -> Response {
        if self.take_graph_fault(phone_number_id) {
            return Self::fault_response();
        }
        let Ok(number) = self.number(phone_number_id) else {
            return no_object(&Method::POST, phone_number_id);
        };
        if !Self::token_ok(&number, headers) {
            return invalid_token();
        }
        let form = match read_upload_form(multipart).await {
            Ok(f) => f,
            Err(e) => return param_error(&e),
        };
        if form.messaging_product.as_deref() != Some("whatsapp") {
            return param_error(
                "The parameter messaging_product is required and must be whatsapp.",
            );
        }
        let Some(mime) = form.resolved_mime() else {
            return param_error("The parameters file and type are required.");
        };
        let Some(UploadFile { bytes, .. }) = form.file else {
            return param_error("The parameter file is required.");
        };
        if let Err(details) = chasqui_meta::upload::check(&mime, bytes.len()) {
            return param_error(&details);
        }
        let id = self.store_media(phone_number_id, &mime, bytes);
        Json(json!({ "id": id })).into_response()
    }

    /// The media a request names, if the caller may touch it (`?phone_number_id=` must be its
    /// number; the token must be its number's).
    fn media_for(
        &self,
        method: &Method,
        media_id: &str,
        query: &QueryMap,
        headers: &HeaderMap,
    ) -> Result<crate::state::StoredMedia, Refusal> {
        let media = self
            .world()
            .media
            .get(media_id)
            .cloned()
            .filter(|m| {
                query
                    .get("phone_number_id")
                    .is_none_or(|p| p == &m.phone_number_id)
            })
            .ok_or_else(|| Box::new(no_object(method, media_id)))?;
        if self.take_graph_fault(&media.phone_number_id) {
            return Err(Box::new(Self::fault_response()));
        }
        if let Ok(number) = self.number(&media.phone_number_id)
            && !Self::token_ok(&number, headers)
        {
            return Err(Box::new(invalid_token()));
        }
        Ok(media)
    }

    /// `GET /{media_id}`: metadata with a download URL.
    pub(crate) fn graph_media(
        &self,
        media_id: &str,
        query: &QueryMap,
        headers: &HeaderMap,
    ) -> Response {
        let media = match self.media_for(&Method::GET, media_id, query, headers) {
            Ok(m) => m,
            Err(r) => return *r,
        };
        Json(json!({
            "messaging_product": "whatsapp",
            "url": format!("{}/download/{media_id}", self.base_url()),
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": media.bytes.len(),
            "id": media_id,
        }))
        .into_response()
    }

    /// `DELETE /{media_id}`.
    pub(crate) fn delete_media(
        &self,
        media_id: &str,
        query: &QueryMap,
        headers: &HeaderMap,
    ) -> Response {
        if let Err(r) = self.media_for(&Method::DELETE, media_id, query, headers) {
            return *r;
        }
        self.world().media.remove(media_id);
        success()
    }

    /// The bytes of a media file.
    pub(crate) fn graph_download(&self, media_id: &str, headers: &HeaderMap) -> Response {
        let Some(media) = self.world().media.get(media_id).cloned() else {
            return graph_error(
                StatusCode::NOT_FOUND,
                100,
                "Unsupported get request. Object does not exist",
            );
        };
        if self.settings().require_download_token
            && let Ok(number) = self.number(&media.phone_number_id)
            && !Self::token_ok(&number, headers)
        {
            return invalid_token();
        }
        (
            [(header::CONTENT_TYPE, media.mime_type.clone())],
            media.bytes.as_ref().clone(),
        )
            .into_response()
    }
}
