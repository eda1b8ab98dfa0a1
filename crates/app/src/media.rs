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
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    // Write to a temporary name, fsync, then rename: a crash never leaves a half file.
    let tmp = path.with_extension("part");
    let write = async {
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(&bytes).await?;
        file.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await
    };
    write
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
