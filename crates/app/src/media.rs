//! Inbound media: downloaded by a retried job into `<data-dir>/media/`, served through
//! short-lived signed URLs.

use std::path::PathBuf;

use chasqui_meta::graph::GraphClient;
use chasqui_store::{jobs::Job, media, numbers};

use crate::{App, AppError};

/// Purpose tag of media URL signatures.
const URL_PURPOSE: &str = "media-url";

/// Where media files live.
pub fn media_dir(app: &App) -> PathBuf {
    app.settings().data_dir.join("media")
}

/// A signed URL for a stored media file, valid for the configured TTL.
pub fn signed_url(app: &App, media_id: &str) -> String {
    let expires = app.now() / 1000 + app.settings().media_url_ttl_secs;
    let sig = app
        .key()
        .digest(URL_PURPOSE, format!("{media_id}:{expires}").as_bytes());
    format!(
        "{}/media/{media_id}?expires={expires}&sig={sig}",
        app.public_url()
    )
}

/// Checks a signed URL's parameters (constant-time signature check, then expiry).
pub fn verify_signed(app: &App, media_id: &str, expires: i64, sig: &str) -> bool {
    app.key()
        .verify_digest(URL_PURPOSE, format!("{media_id}:{expires}").as_bytes(), sig)
        && expires >= app.now() / 1000
}

/// A stored file ready to serve.
#[derive(Debug)]
pub struct StoredFile {
    /// Absolute path.
    pub path: PathBuf,
    /// MIME type.
    pub mime_type: String,
}

/// The file behind a media id, once downloaded.
pub async fn stored_file(app: &App, media_id: &str) -> Result<StoredFile, AppError> {
    let m = media::get(app.db(), media_id)
        .await?
        .ok_or(AppError::NotFound("Media"))?;
    match (m.status.as_str(), m.storage_path) {
        ("stored", Some(path)) => Ok(StoredFile {
            path: media_dir(app).join(path),
            mime_type: m
                .mime_type
                .unwrap_or_else(|| "application/octet-stream".into()),
        }),
        _ => Err(AppError::NotFound("Media")),
    }
}

/// Runs one download job. `Ok(false)` means a transient failure worth retrying.
pub async fn run_download(app: &App, job: &Job) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Payload {
        media_id: String,
    }
    let payload: Payload =
        serde_json::from_str(&job.payload).map_err(|e| format!("bad payload: {e}"))?;
    let Some(m) = media::get(app.db(), &payload.media_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    if m.status == "stored" {
        return Ok(());
    }
    let Some(number) = numbers::find(app.db(), &m.project_id, &m.phone_number_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        media::mark_error(app.db(), &m.id, "phone number deleted", true, app.now())
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    };
    let creds = crate::numbers::credentials(app, &number).map_err(|e| e.to_string())?;
    let token = creds.access_token.expose();
    let graph = GraphClient::new(app.http().clone(), &app.graph_base_url(number.kind));
    let result = async {
        let info = graph.media_info(&m.meta_media_id, token).await?;
        let bytes = graph.download(&info.url, token).await?;
        Ok::<_, chasqui_meta::graph::GraphError>((info, bytes))
    }
    .await;
    let (info, bytes) = match result {
        Ok(found) => found,
        Err(e) => {
            let terminal = !e.is_transient() || job.attempts >= job.max_attempts;
            media::mark_error(app.db(), &m.id, &e.to_string(), terminal, app.now())
                .await
                .map_err(|e| e.to_string())?;
            return if terminal { Ok(()) } else { Err(e.to_string()) };
        }
    };
    let relative = format!("{}/{}", m.project_id, m.id);
    let path = media_dir(app).join(&relative);
    write_file(&path, &bytes)
        .await
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    media::mark_stored(
        app.db(),
        &m.id,
        &relative,
        bytes.len() as i64,
        info.mime_type.as_deref(),
        app.now(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// A file to upload through the proxy.
#[derive(Debug)]
pub struct Upload {
    /// MIME type (from the form's `type`, the part, or the bytes).
    pub mime_type: String,
    /// The part's file name.
    pub filename: Option<String>,
    /// The file.
    pub bytes: Vec<u8>,
}

async fn write_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    // Write to a temporary name, fsync, then rename: a crash never leaves a half file.
    let tmp = path.with_extension("part");
    let mut file = tokio::fs::File::create(&tmp).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    tokio::fs::rename(&tmp, path).await
}

/// `POST /{phone_number_id}/media`: checks Meta's type and size limits, keeps the file,
/// uploads it to Meta and records it under Meta's id. Meta's answer is returned unchanged.
pub async fn upload(
    app: &App,
    number: &numbers::PhoneNumber,
    upload: Upload,
) -> Result<chasqui_meta::graph::GraphReply, crate::graph::ProxyError> {
    use crate::graph::ProxyError;
    use base64::Engine;
    use sha2::Digest;

    chasqui_meta::upload::check(&upload.mime_type, upload.bytes.len())
        .map_err(ProxyError::Invalid)?;
    let id = chasqui_core::ids::new_id();
    let relative = format!("{}/{id}", number.project_id);
    let path = media_dir(app).join(&relative);
    write_file(&path, &upload.bytes)
        .await
        .map_err(|e| AppError::Internal(format!("write {}: {e}", path.display())))?;
    let filename = upload.filename.clone().unwrap_or_else(|| "file".into());
    let part = reqwest::multipart::Part::bytes(upload.bytes.clone())
        .file_name(filename)
        .mime_str(&upload.mime_type)
        .map_err(|e| ProxyError::Invalid(format!("type is not a MIME type: {e}")))?;
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", upload.mime_type.clone())
        .part("file", part);
    let path_on_meta = format!("{}/media", number.phone_number_id);
    let reply = crate::graph::forward(
        app,
        number,
        reqwest::Method::POST,
        &path_on_meta,
        None,
        chasqui_meta::graph::GraphBody::Multipart(form),
    )
    .await;
    let meta_id = reply
        .as_ref()
        .ok()
        .filter(|r| r.is_success())
        .and_then(|r| {
            r.json()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
        });
    let Some(meta_id) = meta_id else {
        // Meta did not take it: the copy is not kept.
        let _ = tokio::fs::remove_file(&path).await;
        return reply;
    };
    let record = media::Media {
        id,
        project_id: number.project_id.clone(),
        phone_number_id: number.phone_number_id.clone(),
        meta_media_id: meta_id,
        mime_type: Some(upload.mime_type),
        sha256: Some(
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&upload.bytes)),
        ),
        file_size: Some(upload.bytes.len() as i64),
        filename: upload.filename,
        storage_path: Some(relative),
        status: "stored".into(),
        error: None,
    };
    if let Err(e) = media::insert_uploaded(app.db(), &record, app.now()).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e.into());
    }
    reply
}

/// `GET /{media_id}` for a file Chasqui holds: Meta's fields with `url` and `download_url`
/// both signed Chasqui URLs (no token needed), and when the download URL expires.
pub fn describe(app: &App, m: &media::Media) -> serde_json::Value {
    let url = signed_url(app, &m.id);
    let expires = app.now() + app.settings().media_url_ttl_secs * 1000;
    serde_json::json!({
        "messaging_product": "whatsapp",
        "url": url,
        "mime_type": m.mime_type,
        "sha256": m.sha256,
        "file_size": m.file_size.unwrap_or_default(),
        "id": m.meta_media_id,
        "download_url": url,
        "download_url_expires_at": chasqui_core::Timestamp(expires).to_rfc3339(),
    })
}

/// Forgets a media record and its file (after Meta deleted it).
pub async fn forget(app: &App, m: &media::Media) -> Result<(), AppError> {
    media::delete(app.db(), &m.id).await?;
    if let Some(relative) = &m.storage_path {
        let _ = tokio::fs::remove_file(media_dir(app).join(relative)).await;
    }
    Ok(())
}
