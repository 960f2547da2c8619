use std::fmt;

/// Who is to blame for an error, and so what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input from a user or producer: reject it, never retry.
    User,
    /// A dependency (store, broker, registry) failed: retry with backoff.
    External,
    /// A bug or broken invariant.
    Internal,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::User => "user",
            ErrorClass::External => "external",
            ErrorClass::Internal => "internal",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidEvent(_) => ErrorClass::User,
            Error::Config(_) => ErrorClass::User,
        }
    }

    pub fn is_retriable(&self) -> bool {
        self.class() == ErrorClass::External
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
