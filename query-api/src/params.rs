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

/// Middleware: a request whose path or query holds a NUL character (`%00`) is a 400 naming
/// the parameter (`path` for the path), before any handler or store sees it. PostgreSQL stores
/// NUL in no text, so every id, filter and cursor is refused here at once.
pub async fn refuse_nul(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri();
    let mut fields = BTreeMap::new();
    let decoded_has_nul = |s: &str| percent_decode(s).contains(&0);
    if decoded_has_nul(uri.path()) {
        fields.insert(
            "path".to_string(),
            "must not contain a NUL character".to_string(),
        );
    }
    for pair in uri.query().unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if decoded_has_nul(k) || decoded_has_nul(v) {
            let name = String::from_utf8_lossy(&percent_decode(k)).replace('\0', "\\0");
            fields.insert(name, "must not contain a NUL character".to_string());
        }
    }
    if fields.is_empty() {
        next.run(req).await
    } else {
        ApiError::invalid_fields(fields).into_response()
    }
}

/// `%XX` decoded (and `+` as space, as in a query), leaving malformed escapes as they are.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
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
    fn percent_decoding_finds_nul() {
        assert_eq!(percent_decode("a%00b"), b"a\0b");
        assert_eq!(percent_decode("a%2Fb+c"), b"a/b c");
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%0"), b"%0");
        assert_eq!(percent_decode("%zz"), b"%zz");
    }

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
