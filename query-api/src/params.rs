//! Query-string handling shared by the handlers: a strict extractor (unknown or repeated
//! parameters are a 400 in the API's error shape), time parsing/formatting and opaque cursors.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Like [`axum::extract::Query`], but its rejection is an [`ApiError`] naming the parameter.
/// Use with structs marked `#[serde(deny_unknown_fields)]`.
#[derive(Debug)]
pub struct StrictQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for StrictQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(v)) => Ok(StrictQuery(v)),
            Err(rejection) => Err(query_error(&rejection.body_text())),
        }
    }
}

/// Middleware: a request whose path or query holds a NUL character (`%00`; a raw NUL cannot
/// be in a URI) is a 400 naming the parameter (`path` for the path), before any handler or
/// store sees it. PostgreSQL stores NUL in no text, so every id, filter and cursor is refused
/// here at once.
pub async fn refuse_nul(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    const NUL: &str = "%00";
    let uri = req.uri();
    let query = uri.query().unwrap_or("");
    if !uri.path().contains(NUL) && !query.contains(NUL) {
        return next.run(req).await;
    }
    let mut fields = BTreeMap::new();
    if uri.path().contains(NUL) {
        fields.insert(
            "path".to_string(),
            "must not contain a NUL character".to_string(),
        );
    }
    for pair in query.split('&').filter(|p| p.contains(NUL)) {
        let name = pair.split_once('=').map_or(pair, |(k, _)| k);
        fields.insert(
            name.to_string(),
            "must not contain a NUL character".to_string(),
        );
    }
    ApiError::invalid_fields(fields).into_response()
}

/// Turns a serde_urlencoded message into a 400 with `fields` where the parameter is known.
fn query_error(text: &str) -> ApiError {
    let quoted = |marker: &str| -> Option<String> {
        let rest = &text[text.find(marker)? + marker.len()..];
        Some(rest[..rest.find('`')?].to_string())
    };
    let mut fields = BTreeMap::new();
    if let Some(name) = quoted("unknown field `") {
        fields.insert(name, "unknown parameter".to_string());
    } else if let Some(name) = quoted("duplicate field `") {
        fields.insert(name, "given more than once".to_string());
    }
    if fields.is_empty() {
        ApiError::bad_request(text.to_string())
    } else {
        ApiError::invalid_fields(fields)
    }
}

pub use atlasmesh_core::clock::parse_instant;
use atlasmesh_core::clock::{MAX_INSTANT_MS, MIN_INSTANT_MS};

/// Epoch milliseconds as RFC 3339 UTC (`Z`), with fractional seconds only when non-zero.
pub fn format_instant(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(d) => d.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => ms.to_string(),
    }
}

/// The sort key of the last row of a page. Clients see it only as an opaque string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorKey {
    /// Scope the cursor was issued for (`fleet` / `vehicle`).
    #[serde(rename = "s")]
    pub scope: String,
    #[serde(rename = "f")]
    pub fleet_id: String,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<String>,
    #[serde(rename = "w")]
    pub window_start_ms: i64,
}

impl CursorKey {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("cursor serializes");
        let mut out = String::with_capacity(json.len() * 2);
        for b in json {
            out.push(char::from_digit((b >> 4) as u32, 16).expect("nibble"));
            out.push(char::from_digit((b & 0xf) as u32, 16).expect("nibble"));
        }
        out
    }

    pub fn decode(s: &str) -> Option<CursorKey> {
        if !s.len().is_multiple_of(2) || s.len() > 4096 {
            return None;
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let key: CursorKey = serde_json::from_slice(&bytes).ok()?;
        (MIN_INSTANT_MS..=MAX_INSTANT_MS)
            .contains(&key.window_start_ms)
            .then_some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        assert_eq!(parse_instant("1700000040000"), Some(1_700_000_040_000));
        assert_eq!(
            parse_instant("2023-11-14T22:14:00Z"),
            Some(1_700_000_040_000)
        );
        assert_eq!(
            parse_instant("2023-11-14T23:14:00+01:00"),
            Some(1_700_000_040_000)
        );
        assert_eq!(
            parse_instant("2023-11-14T22:14:00.5Z"),
            Some(1_700_000_040_500)
        );
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(format_instant(1_700_000_040_000), "2023-11-14T22:14:00Z");
        assert_eq!(
            format_instant(1_700_000_040_500),
            "2023-11-14T22:14:00.500Z"
        );
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = CursorKey {
            scope: "vehicle".into(),
            fleet_id: "f-1".into(),
            vehicle_id: Some("v'\"é".into()),
            window_start_ms: 1_700_000_040_000,
        };
        let s = c.encode();
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(CursorKey::decode(&s), Some(c));
        assert_eq!(CursorKey::decode("zz"), None);
        assert_eq!(CursorKey::decode("7b"), None);
        assert_eq!(CursorKey::decode("é"), None);
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let e = query_error(
            "Failed to deserialize query string: unknown field `foo`, expected one of `a`",
        );
        match e {
            ApiError::BadRequest { fields, .. } => {
                assert_eq!(
                    fields.get("foo").map(String::as_str),
                    Some("unknown parameter")
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
