//! The Graph objects a business manages through the proxy: media (`/{phone_number_id}/media`,
//! `/{media_id}`), templates (`/{waba_id}/message_templates`, `/{template_id}`), the business
//! profile, phone numbers, and a few number edges passed through as they are.

use axum::body::Bytes;
use axum::extract::multipart::Multipart;
use axum::extract::{DefaultBodyLimit, FromRequest, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chasqui_app::graph::{ProxyError, forward};
use chasqui_app::templates;
use chasqui_meta::graph::{GraphBody, GraphReply};
use chasqui_store::numbers::{self, PhoneNumber};
use chasqui_store::{media, templates as cached};
use serde_json::{Map, Value};

use super::check_version;
use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::GraphError;
use crate::extract::Params;

/// Number edges passed to Meta unchanged.
const PASS_THROUGH_EDGES: [&str; 6] = [
    "register",
    "deregister",
    "request_code",
    "verify_code",
    "settings",
    "block_users",
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/meta/whatsapp/{version}/{id}",
            get(object_get).post(object_post).delete(object_delete),
        )
        .route(
            "/meta/whatsapp/{version}/{id}/media",
            post(upload_media).layer(DefaultBodyLimit::max(
                chasqui_meta::upload::MAX_UPLOAD_BYTES + 1024 * 1024,
            )),
        )
        .route(
            "/meta/whatsapp/{version}/{id}/whatsapp_business_profile",
            get(get_profile)
                .post(update_profile)
                .layer(DefaultBodyLimit::max(
                    chasqui_app::profile::MAX_PHOTO_BYTES + 1024 * 1024,
                )),
        )
        .route(
            "/meta/whatsapp/{version}/{id}/message_templates",
            get(list_templates)
                .post(create_or_edit_template)
                .put(create_or_edit_template)
                .delete(delete_templates),
        )
        .route(
            "/meta/whatsapp/{version}/{id}/message_templates/{item}",
            get(get_waba_template),
        )
        .route(
            "/meta/whatsapp/{version}/{id}/phone_numbers",
            get(list_phone_numbers),
        )
        .route(
            "/meta/whatsapp/{version}/{id}/{edge}",
            get(number_edge).post(number_edge).delete(number_edge),
        )
}

/// Meta's answer as the proxy's response.
fn reply(reply: GraphReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = reply
        .content_type
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    (status, [(header::CONTENT_TYPE, content_type)], reply.body).into_response()
}

fn proxy_error(e: ProxyError) -> Response {
    match e {
        ProxyError::Invalid(details) => GraphError::param(details).into_response(),
        ProxyError::Template(e) => {
            let trace = hex::encode(chasqui_core::ids::random_bytes::<8>());
            let body = e.to_graph_error(&format!("CHQ{trace}"));
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
        e @ ProxyError::Upstream(_) => {
            tracing::warn!(error = %e, "proxied Graph call failed");
            GraphError::new(StatusCode::BAD_GATEWAY, 1, e.to_string()).into_response()
        }
        ProxyError::App(e) => GraphError::from(e).into_response(),
    }
}

fn answer(result: Result<GraphReply, ProxyError>) -> Response {
    match result {
        Ok(r) => reply(r),
        Err(e) => proxy_error(e),
    }
}

/// `GET` passed to the number's Graph API, answered as Meta answered.
async fn pass_get(
    state: &AppState,
    number: &PhoneNumber,
    path: &str,
    query: Option<&str>,
) -> Response {
    answer(
        forward(
            &state.app,
            number,
            Method::GET,
            path,
            query,
            GraphBody::Empty,
        )
        .await,
    )
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, GraphError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(GraphError::param("The request body must be a JSON object.")),
    }
}

fn numeric(id: &str, what: &str) -> Result<(), GraphError> {
    if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(GraphError::param(format!(
            "{what} must be a numeric Graph id, not {id:?}."
        )))
    }
}

/// The raw query string of a request.
fn raw_query(uri: &OriginalUri) -> Option<String> {
    uri.query().map(str::to_owned)
}

/// What an id in `/{id}` names, for this caller.
enum Target {
    Number(PhoneNumber),
    Media(Box<media::Media>, PhoneNumber),
    Template(PhoneNumber),
}

async fn resolve(
    state: &AppState,
    caller: &Caller,
    id: &str,
    phone_number_id: Option<&str>,
) -> Result<Option<Target>, GraphError> {
    let db = state.app.db();
    if let Some(n) = numbers::find_any(db, id).await? {
        return if auth::may_use(state, caller, &n)? {
            Ok(Some(Target::Number(n)))
        } else {
            Err(auth::refused(caller, id))
        };
    }
    for m in media::by_meta_id(db, id).await? {
        if phone_number_id.is_some_and(|p| p != m.phone_number_id) {
            continue;
        }
        if let Some(n) = numbers::find(db, &m.project_id, &m.phone_number_id).await?
            && auth::may_use(state, caller, &n)?
        {
            return Ok(Some(Target::Media(Box::new(m), n)));
        }
    }
    for t in cached::by_meta_id(db, id).await? {
        let numbers = numbers::by_waba(db, &t.business_account_id).await?;
        if let Some(n) = auth::first_usable(state, caller, numbers)? {
            return Ok(Some(Target::Template(n)));
        }
    }
    Ok(None)
}

/// The number named by `?phone_number_id=`, when the caller may use it.
async fn hinted_number(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Option<PhoneNumber>, GraphError> {
    match params.get("phone_number_id") {
        Some(pnid) => Ok(Some(auth::number(state, headers, pnid).await?)),
        None => Ok(None),
    }
}

async fn object_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    uri: OriginalUri,
    params: Params,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    numeric(&id, "The object id")?;
    let caller = auth::caller(&state, &headers).await?;
    let query = raw_query(&uri);
    let app = &state.app;
    match resolve(&state, &caller, &id, params.get("phone_number_id")).await? {
        Some(Target::Number(n)) => Ok(pass_get(&state, &n, &id, query.as_deref()).await),
        Some(Target::Media(m, _)) if m.status == "stored" => {
            Ok(Json(chasqui_app::media::describe(app, &m)).into_response())
        }
        Some(Target::Media(_, n)) => Ok(pass_get(&state, &n, &id, query.as_deref()).await),
        Some(Target::Template(n)) => {
            Ok(answer(templates::get(app, &n, &id, query.as_deref()).await))
        }
        None => {
            if let Some(n) = hinted_number(&state, &headers, &params).await? {
                return Ok(pass_get(&state, &n, &id, query.as_deref()).await);
            }
            // A template made outside Chasqui and not synced yet: ask each WABA of the project.
            if let Caller::Project(project_id) = &caller {
                for n in numbers::one_per_waba(state.app.db(), project_id).await? {
                    let r = templates::get(app, &n, &id, query.as_deref()).await;
                    if matches!(&r, Ok(found) if found.is_success()) {
                        return Ok(answer(r));
                    }
                }
            }
            Err(GraphError::not_found(&id))
        }
    }
}

async fn object_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    numeric(&id, "The object id")?;
    let caller = auth::caller(&state, &headers).await?;
    let request = json_object(&body)?;
    match resolve(&state, &caller, &id, None).await? {
        Some(Target::Template(n)) => {
            Ok(answer(templates::edit(&state.app, &n, &id, request).await))
        }
        Some(Target::Number(n)) => {
            // Chasqui receives the number's webhooks; redirecting them would bypass it.
            if request.contains_key("webhook_configuration") {
                return Err(GraphError::param(
                    "webhook_configuration cannot be changed through Chasqui: Meta's webhooks for this number must reach Chasqui.",
                ));
            }
            let body = GraphBody::Json(body.to_vec());
            Ok(answer(
                forward(&state.app, &n, Method::POST, &id, None, body).await,
            ))
        }
        _ => Err(GraphError::not_found(&id)),
    }
}

async fn object_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    uri: OriginalUri,
    params: Params,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    numeric(&id, "The media id")?;
    let caller = auth::caller(&state, &headers).await?;
    let query = raw_query(&uri);
    let app = &state.app;
    let (local, number) = match resolve(&state, &caller, &id, params.get("phone_number_id")).await?
    {
        Some(Target::Media(m, n)) => (Some(*m), n),
        Some(_) => return Err(GraphError::param("Only media can be deleted by id.")),
        None => match hinted_number(&state, &headers, &params).await? {
            Some(n) => (None, n),
            None => return Err(GraphError::not_found(&id)),
        },
    };
    let result = forward(
        app,
        &number,
        Method::DELETE,
        &id,
        query.as_deref(),
        GraphBody::Empty,
    )
    .await;
    if let (Ok(r), Some(m)) = (&result, &local)
        && r.is_success()
    {
        chasqui_app::media::forget(app, m).await?;
    }
    Ok(answer(result))
}

async fn upload_media(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    multipart: Multipart,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    let number = auth::number(&state, &headers, &id).await?;
    let form = chasqui_sandbox::read_upload_form(multipart)
        .await
        .map_err(GraphError::param)?;
    if form.messaging_product.as_deref() != Some("whatsapp") {
        return Err(GraphError::param(
            "The parameter messaging_product is required and must be whatsapp.",
        ));
    }
    let mime_type = form
        .resolved_mime()
        .ok_or_else(|| GraphError::param("The parameters file and type are required."))?;
    let Some(file) = form.file else {
        return Err(GraphError::param("The parameter file is required."));
    };
    let upload = chasqui_app::media::Upload {
        mime_type,
        filename: file.filename,
        bytes: file.bytes,
    };
    Ok(answer(
        chasqui_app::media::upload(&state.app, &number, upload).await,
    ))
}

async fn get_profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    uri: OriginalUri,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    let number = auth::number(&state, &headers, &id).await?;
    let path = format!("{id}/whatsapp_business_profile");
    let query = raw_query(&uri);
    Ok(pass_get(&state, &number, &path, query.as_deref()).await)
}

/// `POST /{phone_number_id}/whatsapp_business_profile`: Meta's JSON body, or a multipart
/// form with the same fields (`websites` repeated) and a `file` part for the profile photo.
async fn update_profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    request: Request,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    let number = auth::number(&state, &headers, &id).await?;
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("multipart/form-data"));
    let (fields, photo) = if multipart {
        let form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| GraphError::param(e.body_text()))?;
        profile_form(form).await?
    } else {
        let body = Bytes::from_request(request, &state)
            .await
            .map_err(|e| GraphError::param(e.body_text()))?;
        (json_object(&body)?, None)
    };
    Ok(answer(
        chasqui_app::profile::update(&state.app, &number, fields, photo).await,
    ))
}

/// The fields and photo of a multipart profile update.
async fn profile_form(
    mut form: Multipart,
) -> Result<(Map<String, Value>, Option<chasqui_app::profile::Photo>), GraphError> {
    let mut fields = Map::new();
    let mut photo = None;
    let read_error = |e: axum::extract::multipart::MultipartError| {
        GraphError::param(format!("The multipart body could not be read: {e}"))
    };
    while let Some(field) = form.next_field().await.map_err(read_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let file_name = field.file_name().unwrap_or("profile.jpg").to_owned();
            let bytes = field.bytes().await.map_err(read_error)?;
            photo = Some(chasqui_app::profile::Photo {
                file_name,
                bytes: bytes.to_vec(),
            });
            continue;
        }
        let text = field.text().await.map_err(read_error)?;
        if name == "websites" {
            let list = fields
                .entry("websites")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list {
                list.push(Value::from(text));
            }
        } else {
            fields.insert(name, Value::from(text));
        }
    }
    Ok((fields, photo))
}

/// Points Meta's `paging.next`/`previous` at the proxy.
fn rewrite_paging(state: &AppState, version: &str, path: &str, r: GraphReply) -> GraphReply {
    let Some(mut body) = r.json().filter(|_| r.is_success()) else {
        return r;
    };
    let Some(Value::Object(paging)) = body.get_mut("paging") else {
        return r;
    };
    for key in ["next", "previous"] {
        if let Some(Value::String(url)) = paging.get_mut(key) {
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
            *url = format!(
                "{}/meta/whatsapp/{version}/{path}?{query}",
                state.app.public_url()
            );
        }
    }
    GraphReply {
        body: serde_json::to_vec(&body).unwrap_or_default().into(),
        ..r
    }
}

async fn list_templates(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    uri: OriginalUri,
    params: Params,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    let number = auth::waba(&state, &headers, &id).await?;
    params
        .int("limit", 25, 1, 1000)
        .map_err(GraphError::param)?;
    let query = raw_query(&uri);
    let path = format!("{id}/message_templates");
    Ok(
        match templates::list(&state.app, &number, query.as_deref()).await {
            Ok(r) => reply(rewrite_paging(&state, &version, &path, r)),
            Err(e) => proxy_error(e),
        },
    )
}

async fn create_or_edit_template(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    params: Params,
    body: Bytes,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    let number = auth::waba(&state, &headers, &id).await?;
    let request = json_object(&body)?;
    Ok(answer(match params.get("hsm_id") {
        Some(template_id) => {
            numeric(template_id, "hsm_id")?;
            templates::edit(&state.app, &number, template_id, request).await
        }
        None => templates::create(&state.app, &number, request).await,
    }))
}

async fn delete_templates(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    params: Params,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    let number = auth::waba(&state, &headers, &id).await?;
    if let Some(hsm_id) = params.get("hsm_id") {
        numeric(hsm_id, "hsm_id")?;
    }
    Ok(answer(
        templates::delete(
            &state.app,
            &number,
            params.get("name"),
            params.get("hsm_id"),
            params.get("language"),
        )
        .await,
    ))
}

async fn get_waba_template(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id, template_id)): Path<(String, String, String)>,
    uri: OriginalUri,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    numeric(&template_id, "The template id")?;
    let number = auth::waba(&state, &headers, &id).await?;
    let query = raw_query(&uri);
    Ok(answer(
        templates::get(&state.app, &number, &template_id, query.as_deref()).await,
    ))
}

async fn list_phone_numbers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
    uri: OriginalUri,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    let number = auth::waba(&state, &headers, &id).await?;
    let path = format!("{id}/phone_numbers");
    let query = raw_query(&uri);
    Ok(pass_get(&state, &number, &path, query.as_deref()).await)
}

async fn number_edge(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path((version, id, edge)): Path<(String, String, String)>,
    uri: OriginalUri,
    body: Bytes,
) -> Result<Response, GraphError> {
    check_version(&version)?;
    if !PASS_THROUGH_EDGES.contains(&edge.as_str()) {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            100,
            format!(
                "Unsupported {} request: the proxy does not serve /{{id}}/{edge}.",
                method.as_str().to_ascii_lowercase()
            ),
        ));
    }
    let number = auth::number(&state, &headers, &id).await?;
    let path = format!("{id}/{edge}");
    let query = raw_query(&uri);
    let body = if body.is_empty() {
        GraphBody::Empty
    } else {
        json_object(&body)?;
        GraphBody::Json(body.to_vec())
    };
    Ok(answer(
        forward(&state.app, &number, method, &path, query.as_deref(), body).await,
    ))
}
