//! Projects and API keys.

use chasqui_core::apikey;
use chasqui_core::ids::new_id;
use chasqui_store::projects::{self, ApiKey, Project};

use crate::{App, AppError};

/// A project together with its first API key, shown once.
#[derive(Debug)]
pub struct CreatedProject {
    /// The project.
    pub project: Project,
    /// The plaintext key (only ever returned here).
    pub api_key: String,
}

/// Creates a project and its first key.
pub async fn create(app: &App, name: &str) -> Result<CreatedProject, AppError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(AppError::invalid("name must be 1 to 200 characters"));
    }
    let project = projects::create(app.db(), &new_id(), name, app.now()).await?;
    let (_, api_key) = create_key(app, &project.id, "default").await?;
    Ok(CreatedProject { project, api_key })
}

/// Creates another key for a project; returns its metadata and the plaintext key.
pub async fn create_key(
    app: &App,
    project_id: &str,
    name: &str,
) -> Result<(ApiKey, String), AppError> {
    if projects::find(app.db(), project_id).await?.is_none() {
        return Err(AppError::NotFound("project"));
    }
    let generated = apikey::generate();
    let key = ApiKey {
        id: new_id(),
        project_id: project_id.to_owned(),
        name: name.to_owned(),
        prefix: generated.display_prefix.clone(),
        created_at: app.now(),
        revoked_at: None,
    };
    projects::insert_key(app.db(), &key, &generated.hash).await?;
    Ok((key, generated.plaintext.expose().clone()))
}

/// The project a presented key belongs to.
pub async fn authenticate(app: &App, presented: &str) -> Result<String, AppError> {
    if !presented.starts_with(apikey::KEY_PREFIX) || presented.len() > 200 {
        return Err(AppError::Unauthorized("invalid API key".into()));
    }
    projects::project_for_key(app.db(), &apikey::hash(presented))
        .await?
        .ok_or_else(|| AppError::Unauthorized("invalid API key".into()))
}
