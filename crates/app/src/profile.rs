//! Business profile updates through the proxy, including the profile photo: Meta takes photos
//! only through its resumable upload API, so Chasqui runs that exchange for the caller.

use chasqui_meta::graph::{GraphBody, GraphReply, encode_query};
use chasqui_store::numbers::PhoneNumber;
use reqwest::Method;
use serde_json::{Map, Value};

use crate::App;
use crate::graph::{ProxyError, forward};

/// Largest profile photo Meta accepts.
pub const MAX_PHOTO_BYTES: usize = 5 * 1024 * 1024;

/// A profile photo to set.
#[derive(Debug)]
pub struct Photo {
    /// File name.
    pub file_name: String,
    /// The image (JPEG or PNG).
    pub bytes: Vec<u8>,
}

fn success_json(reply: &GraphReply) -> Option<Value> {
    reply.json().filter(|_| reply.is_success())
}

/// `POST /{phone_number_id}/whatsapp_business_profile`: checks the fields against Meta's
/// limits, uploads the photo (when given) to get its handle, then updates the profile.
/// Meta's answer to the first call that fails, or to the update, is returned unchanged.
pub async fn update(
    app: &App,
    number: &PhoneNumber,
    mut request: Map<String, Value>,
    photo: Option<Photo>,
) -> Result<GraphReply, ProxyError> {
    // Some SDKs leave it out; Meta requires it.
    request
        .entry("messaging_product")
        .or_insert_with(|| Value::from("whatsapp"));
    let mut fields = request.clone();
    fields.remove("messaging_product");
    fields.remove("profile_picture_handle");
    chasqui_meta::profile::check(&fields).map_err(ProxyError::Invalid)?;
    if let Some(photo) = photo {
        let mime = match chasqui_meta::upload::sniff(&photo.bytes) {
            Some(m @ ("image/jpeg" | "image/png")) => m,
            _ => {
                return Err(ProxyError::Invalid(
                    "The profile photo must be a JPEG or PNG image.".into(),
                ));
            }
        };
        if photo.bytes.len() > MAX_PHOTO_BYTES {
            return Err(ProxyError::Invalid(format!(
                "The profile photo is {} bytes; Meta accepts at most {MAX_PHOTO_BYTES}.",
                photo.bytes.len()
            )));
        }
        let query = format!(
            "file_name={}&file_length={}&file_type={}",
            encode_query(&photo.file_name),
            photo.bytes.len(),
            encode_query(mime)
        );
        let session = forward(
            app,
            number,
            Method::POST,
            "app/uploads",
            Some(&query),
            GraphBody::Empty,
        )
        .await?;
        let Some(session_id) = success_json(&session)
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
        else {
            return Ok(session);
        };
        let (path, sig) = match session_id.split_once('?') {
            Some((path, sig)) => (path.to_owned(), Some(sig.to_owned())),
            None => (session_id.clone(), None),
        };
        let uploaded = forward(
            app,
            number,
            Method::POST,
            &path,
            sig.as_deref(),
            GraphBody::UploadChunk(photo.bytes),
        )
        .await?;
        let Some(handle) = success_json(&uploaded)
            .and_then(|v| v.get("h").and_then(Value::as_str).map(str::to_owned))
        else {
            return Ok(uploaded);
        };
        request.insert("profile_picture_handle".into(), Value::from(handle));
    }
    let path = format!("{}/whatsapp_business_profile", number.phone_number_id);
    let body = GraphBody::Json(serde_json::to_vec(&request).unwrap_or_default());
    forward(app, number, Method::POST, &path, None, body).await
}
