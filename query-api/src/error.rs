//! The crate error ([`Error`]) and its single HTTP rendering ([`ApiError`]).
//!
//! Every failure leaves the API as one JSON shape:
//! `{"error": {"code": <ErrorCode>, "message": "...", "fields": {name: reason}?}}`. 5xx answers
//! are logged with their cause and carry a generic message only.
//!
//! Handlers answer with [`ApiError`]; what does not come from a handler (axum's extractor
//! rejections, the body limit, the router's 405) is rewritten into the same shape by the
//! [`json_errors`] middleware, with the same status and headers.

use std::collections::BTreeMap;

use atlasmesh_core::{Classify, ErrorClass};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Classify for Error {
    /// Who is to blame: the caller, a dependency (retry later) or us. The stores' errors are
    /// classified where the sinks classify them, so the API and the workers agree.
    fn class(&self) -> ErrorClass {
        match self {
            Error::ClickHouse(e) => atlasmesh_sinks::clickhouse_class(e),
            Error::Postgres(e) => atlasmesh_sinks::postgres_class(e),
            Error::Redis(e) => atlasmesh_sinks::redis_class(e),
            Error::Kafka(_) | Error::Http(_) | Error::Timeout(_) | Error::Io(_) => {
                ErrorClass::Retriable
            }
            // The server's configuration, not the caller's input.
            Error::Config(_) | Error::Corrupt(_) | Error::Internal(_) => ErrorClass::Internal,
        }
    }
}

/// The machine-readable `error.code` of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    UnprocessableEntity,
    TooManyRequests,
    Unavailable,
    Internal,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    RequestHeaderFieldsTooLarge,
}

impl ErrorCode {
    /// The code of an answer with `status` (a 4xx without a code of its own is `bad_request`,
    /// a 5xx `internal`, except the dependency statuses 502/503/504: `unavailable`).
    pub fn for_status(status: StatusCode) -> ErrorCode {
        match status {
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
            StatusCode::CONFLICT => ErrorCode::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::UnprocessableEntity,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::RequestHeaderFieldsTooLarge,
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => ErrorCode::Unavailable,
            s if s.is_server_error() => ErrorCode::Internal,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// Per-parameter reasons of a `bad_request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

/// An HTTP error answer. Handlers return `Result<_, ApiError>`; crate errors convert into it.
#[derive(Debug)]
pub enum ApiError {
    BadRequest {
        message: String,
        fields: BTreeMap<String, String>,
    },
    /// 401: no or invalid credentials.
    Unauthorized(String),
    /// 403: authenticated, but the role or scope does not allow it.
    Forbidden(String),
    NotFound(String),
    /// 409: conflicts with the current state (e.g. over capacity, idempotency key reuse).
    Conflict(String),
    /// 422: well-formed JSON whose fields are invalid.
    Unprocessable {
        message: String,
        fields: BTreeMap<String, String>,
    },
    /// 429: the caller's rate limit is exhausted; retry after that many seconds.
    TooManyRequests {
        retry_after_s: u64,
    },
    /// A protocol-level 4xx (405, 408, 413, 415, 431, ...): the status says it all, the code
    /// follows from it ([`ErrorCode::for_status`]).
    Http {
        status: StatusCode,
        message: String,
    },
    /// A dependency failed; the cause is logged, never shown.
    Unavailable(Error),
    /// A bug or broken invariant; the cause is logged, never shown.
    Internal(Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }

    /// A 400 naming the parameters at fault.
    pub fn invalid_fields(fields: BTreeMap<String, String>) -> ApiError {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        ApiError::BadRequest {
            message: format!("invalid parameters: {}", names.join(", ")),
            fields,
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::NotFound(message.into())
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::Unauthorized(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::Conflict(message.into())
    }

    /// A protocol-level answer with `status` (a 4xx) and `message`.
    pub fn http(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::Http {
            status,
            message: message.into(),
        }
    }

    /// 429 for a wait of `wait` (at least one second in `Retry-After`).
    pub fn too_many_requests(wait: std::time::Duration) -> ApiError {
        ApiError::TooManyRequests {
            retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64,
        }
    }

    /// A 422 naming the body fields at fault.
    pub fn unprocessable(fields: BTreeMap<String, String>) -> ApiError {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        ApiError::Unprocessable {
            message: format!("invalid fields: {}", names.join(", ")),
            fields,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Http { status, .. } => *status,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> ErrorBody {
        let (code, message, fields) = match self {
            ApiError::BadRequest { message, fields } => (
                ErrorCode::BadRequest,
                message.clone(),
                (!fields.is_empty()).then(|| fields.clone()),
            ),
            ApiError::NotFound(m) => (ErrorCode::NotFound, m.clone(), None),
            ApiError::Unauthorized(m) => (ErrorCode::Unauthorized, m.clone(), None),
            ApiError::Forbidden(m) => (ErrorCode::Forbidden, m.clone(), None),
            ApiError::Conflict(m) => (ErrorCode::Conflict, m.clone(), None),
            ApiError::Unprocessable { message, fields } => (
                ErrorCode::UnprocessableEntity,
                message.clone(),
                (!fields.is_empty()).then(|| fields.clone()),
            ),
            ApiError::TooManyRequests { retry_after_s } => (
                ErrorCode::TooManyRequests,
                format!("rate limit exceeded, retry after {retry_after_s} s"),
                None,
            ),
            ApiError::Http { status, message } => {
                (ErrorCode::for_status(*status), message.clone(), None)
            }
            ApiError::Unavailable(_) => (
                ErrorCode::Unavailable,
                "a backing store is unavailable, retry later".into(),
                None,
            ),
            ApiError::Internal(_) => (ErrorCode::Internal, "internal error".into(), None),
        };
        ErrorBody {
            error: ErrorDetail {
                code,
                message,
                fields,
            },
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e.class() {
            // User errors are safe to show (none of today's variants is one).
            ErrorClass::User => ApiError::bad_request(e.to_string()),
            ErrorClass::Retriable => ApiError::Unavailable(e),
            ErrorClass::Internal => ApiError::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Unavailable(e) => {
                tracing::error!(error = %e, class = %e.class(), "Request failed: dependency unavailable.")
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, class = %e.class(), "Request failed: internal error.")
            }
            _ => {}
        }
        let mut res = (self.status(), Json(self.body())).into_response();
        match &self {
            ApiError::Unauthorized(_) => {
                res.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            ApiError::TooManyRequests { retry_after_s } => {
                res.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(*retry_after_s),
                );
            }
            _ => {}
        }
        res
    }
}

/// Longest foreign error body read to become the message of its JSON rewrite.
const MAX_FOREIGN_BODY: usize = 4096;
/// Longest message carried over from a foreign error body.
const MAX_FOREIGN_MESSAGE: usize = 300;

/// Middleware: an error answer (4xx, 5xx) that is not JSON becomes the API's error shape with
/// the same status and headers (`Allow`, `Retry-After`, `WWW-Authenticate`, ... are kept). The
/// plain-text message of a 4xx (an axum rejection, say) becomes `message`; a 5xx gets a
/// generic message and is logged. Answers that are already JSON pass unchanged.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::body::has_json_essence);
    if is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, MAX_FOREIGN_BODY)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let body = foreign_error_body(status, &text);
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), body = %text, "Request failed: non-JSON server error.");
    }
    let json = serde_json::to_vec(&body).expect("error body serializes");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(json))
}

/// The JSON body replacing a non-JSON error answer with `status` and body `text`.
fn foreign_error_body(status: StatusCode, text: &str) -> ErrorBody {
    let generic = || {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    };
    let message = if status.is_server_error() || text.is_empty() {
        generic()
    } else if text.chars().count() > MAX_FOREIGN_MESSAGE {
        let cut: String = text.chars().take(MAX_FOREIGN_MESSAGE).collect();
        format!("{cut}…")
    } else {
        text.to_string()
    };
    ErrorBody {
        error: ErrorDetail {
            code: ErrorCode::for_status(status),
            message,
            fields: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_status() {
        for (status, code) in [
            (400, "bad_request"),
            (405, "method_not_allowed"),
            (408, "request_timeout"),
            (413, "payload_too_large"),
            (415, "unsupported_media_type"),
            (431, "request_header_fields_too_large"),
            (418, "bad_request"),
            (500, "internal"),
            (503, "unavailable"),
        ] {
            let s = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                serde_json::to_value(ErrorCode::for_status(s)).unwrap(),
                code,
                "{status}"
            );
        }
    }

    #[test]
    fn foreign_errors_keep_4xx_text_and_hide_5xx_text() {
        let b = foreign_error_body(StatusCode::BAD_REQUEST, "Invalid UTF-8 in path");
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"error": {"code": "bad_request", "message": "Invalid UTF-8 in path"}})
        );
        let b = foreign_error_body(StatusCode::INTERNAL_SERVER_ERROR, "panicked at secret.rs:1");
        assert_eq!(b.error.message, "internal server error");
        let b = foreign_error_body(StatusCode::PAYLOAD_TOO_LARGE, "");
        assert_eq!(b.error.message, "payload too large");
        let long = "x".repeat(10_000);
        let b = foreign_error_body(StatusCode::BAD_REQUEST, &long);
        assert_eq!(b.error.message.chars().count(), MAX_FOREIGN_MESSAGE + 1);
    }

    #[tokio::test]
    async fn the_middleware_rewrites_plain_errors_only() {
        use axum::routing::get;
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route(
                "/plain",
                get(|| async {
                    (
                        StatusCode::METHOD_NOT_ALLOWED,
                        [(header::ALLOW, "GET")],
                        "nope",
                    )
                }),
            )
            .route("/json", get(|| async { ApiError::conflict("taken") }))
            .route("/ok", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(json_errors));
        let call = |uri: &'static str| {
            let app = app.clone();
            async move {
                let res = app
                    .oneshot(
                        axum::http::Request::get(uri)
                            .body(axum::body::Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let (parts, body) = res.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 16).await.unwrap();
                (parts, bytes)
            }
        };
        let (p, b) = call("/plain").await;
        assert_eq!(p.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(p.headers[header::ALLOW], "GET");
        assert_eq!(p.headers[header::CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "method_not_allowed", "message": "nope"}})
        );
        let (p, b) = call("/json").await;
        assert_eq!(p.status, StatusCode::CONFLICT);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["message"], "taken");
        let (p, b) = call("/ok").await;
        assert_eq!((p.status, &b[..]), (StatusCode::OK, &b"fine"[..]));
    }

    #[test]
    fn shapes() {
        let mut f = BTreeMap::new();
        f.insert("limit".to_string(), "must be an integer".to_string());
        let e = ApiError::invalid_fields(f);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "bad_request", "message": "invalid parameters: limit",
                "fields": {"limit": "must be an integer"}}})
        );
        let v = serde_json::to_value(ApiError::not_found("no such fleet").body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "not_found", "message": "no such fleet"}})
        );
        let e: ApiError = Error::Timeout("clickhouse").into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(v["error"]["code"], "unavailable");
        assert!(!v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("clickhouse"));
        let e: ApiError = Error::Corrupt("x".into()).into();
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        // A store error that is no dependency failure is ours: 500, not 503.
        let e: ApiError = Error::Postgres(sqlx::Error::RowNotFound).into();
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let e: ApiError = Error::Postgres(sqlx::Error::PoolTimedOut).into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
