//! Request parsing with precise 400s: JSON bodies (rooted or not), query parameters,
//! paging and time filters.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use chasqui_core::Timestamp;
use chasqui_meta::graph::encode_query;
use chasqui_store::{Cursor, decode_cursor};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Parses a JSON body, accepting Kapso's rooted form `{"<root>": {...}}` or the bare object.
pub(crate) fn rooted<T: DeserializeOwned>(body: &[u8], root: &str) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let inner = match value {
        Value::Object(mut map) if map.len() == 1 && map.contains_key(root) => {
            map.remove(root).unwrap_or(Value::Null)
        }
        Value::Object(map) => Value::Object(map),
        _ => {
            return Err(ApiError::bad_request(format!(
                "body must be a JSON object (optionally under {root:?})"
            )));
        }
    };
    if !inner.is_object() {
        return Err(ApiError::bad_request(format!("{root} must be an object")));
    }
    serde_json::from_value(inner).map_err(|e| ApiError::bad_request(format!("invalid {root}: {e}")))
}

/// Query parameters as a map; a malformed query string is a 400.
#[derive(Debug, Default)]
pub(crate) struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(Params(map))
    }
}

impl Params {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_owned)
    }

    /// A bounded integer parameter.
    pub(crate) fn int(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(format!("{key} must be an integer from {min} to {max}")),
            },
        }
    }

    /// A time filter: ISO-8601 or epoch seconds; returns epoch milliseconds.
    pub(crate) fn time(&self, key: &str) -> Result<Option<i64>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        if let Ok(secs) = v.parse::<i64>() {
            return Ok(Some(secs.saturating_mul(1000)));
        }
        Timestamp::parse(v)
            .map(|t| Some(t.millis()))
            .ok_or_else(|| format!("{key} must be an ISO-8601 time or epoch seconds"))
    }

    /// `before`/`after` keyset cursor.
    pub(crate) fn cursor(&self) -> Result<Cursor, String> {
        match (self.get("after"), self.get("before")) {
            (Some(_), Some(_)) => Err("use either after or before, not both".into()),
            (Some(a), None) => decode_cursor(a)
                .map(|(s, id)| Cursor::After(s, id))
                .ok_or_else(|| "invalid after cursor".into()),
            (None, Some(b)) => decode_cursor(b)
                .map(|(s, id)| Cursor::Before(s, id))
                .ok_or_else(|| "invalid before cursor".into()),
            (None, None) => Ok(Cursor::Start),
        }
    }

    /// The same query with `after`/`before` replaced, for paging links.
    pub(crate) fn with_cursor(&self, key: &str, cursor: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(k, _)| k.as_str() != "after" && k.as_str() != "before")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.sort();
        pairs.push((key, cursor));
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}
