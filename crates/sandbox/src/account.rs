//! Numbers and their business profile as Meta serves them: `GET /{phone_number_id}`,
//! `GET /{waba_id}/phone_numbers`, `GET/POST /{phone_number_id}/whatsapp_business_profile`,
//! and the resumable upload API that profile photos go through.

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::graph::{
    QueryMap, Refusal, invalid_token, no_object, param_error, select_fields, success,
};
use crate::state::{NumberConfig, Sandbox, StoredMedia, UploadSession, random_hex};

/// File types the resumable upload API takes.
const UPLOAD_TYPES: [&str; 5] = [
    "application/pdf",
    "image/jpeg",
    "image/jpg",
    "image/png",
    "video/mp4",
];

/// Largest profile photo.
const PROFILE_PHOTO_BYTES: usize = 5 * 1024 * 1024;

/// A number's display form in Meta's REST answers: `+` and the digits.
fn formatted(number: &NumberConfig) -> String {
    format!("+{}", number.display_phone_number)
}

fn phone_number_object(number: &NumberConfig) -> Map<String, Value> {
    let value = json!({
        "verified_name": "Chasqui Sandbox",
        "code_verification_status": "VERIFIED",
        "display_phone_number": formatted(number),
        "quality_rating": "GREEN",
        "platform_type": "CLOUD_API",
        "throughput": { "level": "STANDARD" },
        "account_mode": "SANDBOX",
        "status": "CONNECTED",
        "name_status": "APPROVED",
        "messaging_limit_tier": "TIER_250",
        "whatsapp_business_manager_messaging_limit": "TIER_250",
        "is_official_business_account": false,
        "id": number.phone_number_id,
    });
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The default fields Meta answers for a phone number.
const DEFAULT_NUMBER_FIELDS: &str = "verified_name,code_verification_status,display_phone_number,quality_rating,platform_type,throughput";

impl Sandbox {
    fn authorized_number(
        &self,
        pnid: &str,
        headers: &HeaderMap,
        method: &Method,
    ) -> Result<NumberConfig, Refusal> {
        if self.take_graph_fault(pnid) {
            return Err(Box::new(Self::fault_response()));
        }
        let number = self
            .number(pnid)
            .map_err(|_| Box::new(no_object(method, pnid)))?;
        if Self::token_ok(&number, headers) {
            Ok(number)
        } else {
            Err(Box::new(invalid_token()))
        }
    }

    /// `GET /{phone_number_id}`.
    pub(crate) fn get_phone_number(
        &self,
        pnid: &str,
        query: &QueryMap,
        headers: &HeaderMap,
    ) -> Response {
        let number = match self.authorized_number(pnid, headers, &Method::GET) {
            Ok(n) => n,
            Err(r) => return *r,
        };
        let mut query = query.clone();
        query
            .entry("fields".into())
            .or_insert_with(|| DEFAULT_NUMBER_FIELDS.into());
        Json(select_fields(phone_number_object(&number), &query)).into_response()
    }

    /// `GET /{waba_id}/phone_numbers`.
    pub(crate) fn list_phone_numbers(
        &self,
        waba: &str,
        query: &QueryMap,
        headers: &HeaderMap,
    ) -> Response {
        match self.waba_token_ok(waba, headers) {
            None => return no_object(&Method::GET, waba),
            Some(false) => return invalid_token(),
            Some(true) => {}
        }
        let mut query = query.clone();
        query
            .entry("fields".into())
            .or_insert_with(|| DEFAULT_NUMBER_FIELDS.into());
        let data: Vec<Value> = self
            .numbers_of(waba)
            .iter()
            .map(|n| select_fields(phone_number_object(n), &query))
            .collect();
        Json(json!({ "data": data })).into_response()
    }

    /// `GET /{phone_number_id}/whatsapp_business_profile`.
    pub(crate) fn get_business_profile(
        &self,
        pnid: &str,
        query: &QueryMap,
        headers: &HeaderMap,
    ) -> Response {
        if let Err(r) = self.authorized_number(pnid, headers, &Method::GET) {
            return *r;
        }
        let profile = self
            .world()
            .business_profiles
            .get(pnid)
            .cloned()
            .unwrap_or_default();
        let vertical = profile
            .get("vertical")
            .cloned()
            .unwrap_or_else(|| json!("UNDEFINED"));
        let mut out = match select_fields(profile, query) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        // pywa reads `vertical` unconditionally.
        out.insert("vertical".into(), vertical);
        out.insert("messaging_product".into(), json!("whatsapp"));
        Json(json!({ "data": [Value::Object(out)] })).into_response()
    }

    /// `POST /{phone_number_id}/whatsapp_business_profile`.
    pub(crate) fn update_business_profile(
        &self,
        pnid: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        if let Err(r) = self.authorized_number(pnid, headers, &Method::POST) {
            return *r;
        }
        let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(body) else {
            return param_error("The request body must be a JSON object.");
        };
        if request
            .remove("messaging_product")
            .and_then(|v| v.as_str().map(str::to_owned))
            != Some("whatsapp".into())
        {
            return param_error(
                "The parameter messaging_product is required and must be whatsapp.",
            );
        }
        if let Err(details) = chasqui_meta::profile::check(&request) {
            return param_error(&details);
        }
        let photo = match request.remove("profile_picture_handle") {
            None => None,
            Some(Value::String(h)) => {
                let Some(file) = self.world().handles.get(&h).cloned() else {
                    return param_error("profile_picture_handle is not a handle from an upload.");
                };
                if !["image/jpeg", "image/jpg", "image/png"].contains(&file.mime_type.as_str())
                    || file.bytes.len() > PROFILE_PHOTO_BYTES
                {
                    return param_error("The profile photo must be a JPG or PNG of at most 5 MB.");
                }
                Some(file)
            }
            Some(_) => return param_error("profile_picture_handle must be a string."),
        };
        let known = [
            "about",
            "address",
            "description",
            "email",
            "websites",
            "vertical",
        ];
        if let Some(k) = request.keys().find(|k| !known.contains(&k.as_str())) {
            return param_error(&format!("Unknown business profile field {k:?}."));
        }
        let photo_url = photo.map(|file| {
            let id = self.store_media(pnid, &file.mime_type, file.bytes.as_ref().clone());
            format!("{}/download/{id}", self.base_url())
        });
        let mut w = self.world();
        let profile = w.business_profiles.entry(pnid.to_owned()).or_default();
        profile.extend(request);
        if let Some(url) = photo_url {
            profile.insert("profile_picture_url".into(), json!(url));
        }
        success()
    }

    /// `POST /{app_id}/uploads?file_name=&file_length=&file_type=`: opens an upload session.
    pub(crate) fn start_upload(&self, query: &QueryMap) -> Response {
        let file_type = query.get("file_type").map(|t| t.to_ascii_lowercase());
        let Some(file_type) = file_type.filter(|t| UPLOAD_TYPES.contains(&t.as_str())) else {
            return param_error(&format!("file_type must be one of {UPLOAD_TYPES:?}."));
        };
        let Some(file_length) = query
            .get("file_length")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| (1..=chasqui_meta::upload::MAX_UPLOAD_BYTES).contains(l))
        else {
            return param_error("file_length must be the file's size in bytes.");
        };
        let session = random_hex(12);
        self.world().uploads.insert(
            session.clone(),
            UploadSession {
                file_type,
                file_length,
            },
        );
        Json(json!({ "id": format!("upload:{session}?sig=SBX{}", random_hex(6)) })).into_response()
    }

    /// `POST /upload:{session}`: the file's bytes (from `file_offset: 0`); answers the handle.
    pub(crate) fn finish_upload(
        &self,
        session: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let Some(upload) = self.world().uploads.get(session).cloned() else {
            return no_object(&Method::POST, &format!("upload:{session}"));
        };
        if headers.get("authorization").is_none() {
            return invalid_token();
        }
        let offset = headers
            .get("file_offset")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0");
        if offset != "0" {
            return param_error("file_offset must be 0: the sandbox takes the whole file at once.");
        }
        if body.len() != upload.file_length {
            return param_error(&format!(
                "The body has {} bytes; the session was opened for {}.",
                body.len(),
                upload.file_length
            ));
        }
        let handle = format!(
            "4::{}",
            B64.encode(format!("{}:{}", upload.file_type, random_hex(16)))
        );
        let mut w = self.world();
        w.uploads.remove(session);
        w.handles.insert(
            handle.clone(),
            StoredMedia {
                phone_number_id: String::new(),
                mime_type: upload.file_type.clone(),
                sha256: B64.encode(Sha256::digest(&body)),
                bytes: Arc::new(body.to_vec()),
            },
        );
        Json(json!({ "h": handle })).into_response()
    }

    /// `GET /upload:{session}`: how much of the file arrived.
    pub(crate) fn upload_status(&self, session: &str) -> Response {
        if self.world().uploads.contains_key(session) {
            Json(json!({ "id": format!("upload:{session}"), "file_offset": 0 })).into_response()
        } else {
            no_object(&Method::GET, &format!("upload:{session}"))
        }
    }
}
