//! The crate error, and the one error classification every crate shares: [`ErrorClass`]
//! says who is to blame and so whether a retry can help; [`Classify`] gives an error its
//! class. Sinks, pipelines and the API implement it on their own errors, so the runner's
//! retry and the API's status code read the same decision.

use std::fmt;

/// Who is to blame for an error, and so what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input from a user or producer: reject it, never retry.
    User,
    /// A dependency (store, broker, registry) is down, slow or in conflict: retry with
    /// backoff.
    Retriable,
    /// A bug, a broken invariant or anything else a retry cannot fix.
    Internal,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::User => "user",
            ErrorClass::Retriable => "retriable",
            ErrorClass::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows its [`ErrorClass`].
pub trait Classify {
    fn class(&self) -> ErrorClass;

    /// Whether retrying the same operation later can succeed.
    fn is_retriable(&self) -> bool {
        self.class() == ErrorClass::Retriable
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidEvent(_) => ErrorClass::User,
            Error::Config(_) => ErrorClass::User,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_retriable_is_retriable() {
        assert!(!Error::InvalidEvent("x".into()).is_retriable());
        assert_eq!(Error::Config("x".into()).class(), ErrorClass::User);
        assert_eq!(ErrorClass::Retriable.to_string(), "retriable");
    }
}
