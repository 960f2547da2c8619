//! The crate error ([`Error`]) and its single HTTP rendering ([`ApiError`]).
//!
//! Every failure leaves the API as one JSON shape:
//! `{"error": {"code": "bad_request"|"unauthorized"|"forbidden"|"not_found"|"conflict"|"unprocessable_entity"|"too_many_requests"|"unavailable"|"internal", "message": "...",
//! "fields": {name: reason}?}}`. 5xx answers are logged with their cause and carry a generic
//! message only.

use std::collections::BTreeMap;

use atlasmesh_core::{Classify, ErrorClass};
use axum::http::StatusCode;
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

#[cfg(test)]
mod tests {
    use super::*;

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
