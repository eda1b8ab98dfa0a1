//! A project's environment variables for `${ENV:KEY}` in workflows: names are
//! `UPPER_SNAKE_CASE`, values are encrypted with the instance key and never returned.

use std::collections::HashMap;

use chasqui_store::env_vars;

use crate::{App, AppError};

/// Largest value.
const MAX_VALUE: usize = 10_000;

/// Whether `name` is a valid variable name.
pub fn name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 64
}

/// Sets a variable; returns whether it is new.
pub async fn put(app: &App, project_id: &str, name: &str, value: &str) -> Result<bool, AppError> {
    if !name_ok(name) {
        return Err(AppError::invalid(
            "the name must be UPPER_SNAKE_CASE (A-Z, 0-9, _; starting with a letter; at most 64)",
        ));
    }
    if value.len() > MAX_VALUE {
        return Err(AppError::invalid(format!(
            "value must be at most {MAX_VALUE} bytes"
        )));
    }
    let encrypted = app.key().encrypt(value);
    Ok(env_vars::put(app.db(), project_id, name, &encrypted, app.now()).await?)
}

/// A project's variables, decrypted, for interpolation.
pub async fn resolve(app: &App, project_id: &str) -> Result<HashMap<String, String>, AppError> {
    env_vars::list(app.db(), project_id)
        .await?
        .into_iter()
        .map(|v| {
            let value = app
                .key()
                .decrypt(&v.value_enc)
                .map_err(|e| AppError::Internal(format!("cannot decrypt {}: {e}", v.name)))?;
            Ok((v.name, value))
        })
        .collect()
}
