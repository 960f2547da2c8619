//! Request bodies. Every handler that reads a body takes it through [`JsonBody`], so the rules
//! below hold for every write at once:
//!
//! - a non-empty body must say it is JSON: `Content-Type: application/json` or
//!   `application/<anything>+json`, with no charset or `charset=utf-8` — anything else is 415;
//! - it must arrive within `api.body_read_timeout_ms` of the handler starting to read it —
//!   else 408 (a slow or stalled upload no longer holds its connection and task);
//! - it must fit [`MAX_BODY_BYTES`] — else 413 (at once when its `Content-Length` says so).
//!
//! All three are answered in the API's JSON error shape. Parsing the JSON itself is the
//! handler's ([`crate::resources::parse_body`]).

use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use http_body_util::BodyExt as _;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest request body read.
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// A request body that is empty or declared JSON, read within the configured time.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<JsonBody, ApiError> {
        // A read body is ours; `Bytes` would apply axum's limit with a plain-text rejection.
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
        let declares_json = content_type.as_deref().is_some_and(is_json_request_type);
        // A body announced by its length is refused before it is read when it is too large or
        // not declared JSON.
        let announced = req.body().size_hint().lower();
        if announced > MAX_BODY_BYTES as u64 {
            return Err(too_large());
        }
        if !declares_json && announced > 0 {
            return Err(unsupported(content_type.as_deref()));
        }
        let ms = state.config.api.body_read_timeout_ms;
        let bytes = read_within(req.into_body(), Duration::from_millis(ms)).await?;
        if !bytes.is_empty() && !declares_json {
            return Err(unsupported(content_type.as_deref()));
        }
        Ok(JsonBody(bytes))
    }
}

/// The whole body, or 408 when it takes longer than `timeout`.
async fn read_within(body: Body, timeout: Duration) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, read_limited(body, MAX_BODY_BYTES)).await {
        Err(_elapsed) => Err(ApiError::http(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
        )),
        Ok(read) => read,
    }
}

/// The body's bytes; 413 as soon as they exceed `max`, 400 when the body breaks off.
async fn read_limited(mut body: Body, max: usize) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the body failed: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

fn too_large() -> ApiError {
    ApiError::http(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

fn unsupported(content_type: Option<&str>) -> ApiError {
    ApiError::http(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        match content_type {
            None => "a request body needs Content-Type: application/json".to_string(),
            Some(ct) => {
                format!("Content-Type {ct:?} is not accepted: send application/json (UTF-8)")
            }
        },
    )
}

/// Whether a `Content-Type` value names JSON: `application/json` or `application/<x>+json`,
/// whatever its parameters.
pub fn has_json_essence(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    let sub = sub.to_ascii_lowercase();
    ty.eq_ignore_ascii_case("application")
        && (sub == "json" || (sub.len() > "+json".len() && sub.ends_with("+json")))
}

/// Whether the API accepts a request body of this `Content-Type`: a JSON type
/// ([`has_json_essence`]) whose `charset`, if given, is UTF-8 (other parameters are ignored).
pub fn is_json_request_type(content_type: &str) -> bool {
    has_json_essence(content_type)
        && content_type.split(';').skip(1).all(|param| {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            !name.trim().eq_ignore_ascii_case("charset") || {
                let v = value.trim().trim_matches('"');
                v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit() {
        let ok = read_limited(Body::from("0123456789"), 10).await.unwrap();
        assert_eq!(&ok[..], b"0123456789");
        let e = read_limited(Body::from("0123456789!"), 10)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(read_limited(Body::empty(), 0).await.unwrap().is_empty());
    }

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/merge-patch+json",
            "application/problem+json; charset=utf-8",
            "application/json; profile=x",
        ] {
            assert!(is_json_request_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/json",
            "application/+json",
            "application/jsonx",
            "application/json; charset=latin1",
            "application",
        ] {
            assert!(!is_json_request_type(bad), "{bad}");
        }
        // Responses: any JSON essence, parameters not checked.
        assert!(has_json_essence("application/json; charset=iso-8859-1"));
        assert!(!has_json_essence("text/plain; charset=utf-8"));
    }
}
