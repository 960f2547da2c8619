//! The pipelines' error: what a pipeline's `handle` or `flush` (or its construction) can
//! fail with, classified once ([`Classify`]) so the runner knows whether to pause and retry
//! or to stop the pipeline.

use atlasmesh_core::{Classify, ErrorClass};
use schema_registry_converter::error::SRCError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sink or store failed; its own class decides.
    #[error(transparent)]
    Sink(#[from] atlasmesh_sinks::Error),
    /// Encoding a record with the schema registry failed; retriable when the registry could
    /// not be reached.
    #[error("encoding {what}: {message}")]
    Encode {
        what: &'static str,
        message: String,
        retriable: bool,
    },
    /// A dependency is not there or not done yet (schema registry down, a command lane
    /// full): retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The pipeline cannot be set up (configuration, a client that cannot be created).
    #[error("setting up: {0}")]
    Setup(String),
    /// A bug or broken invariant.
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An encoding failure of `what`, retriable as the registry client says.
    pub fn encode(what: &'static str, e: &SRCError) -> Error {
        Error::Encode {
            what,
            message: e.to_string(),
            retriable: e.retriable,
        }
    }

    /// The dependency whose failure this is, when one is named: the runner probes it while
    /// it waits to retry (`runner.retry_probe_ms`).
    pub fn dependency(&self) -> Option<crate::ready::Dependency> {
        use crate::ready::Dependency;
        use atlasmesh_sinks::Error as S;
        match self {
            Error::Sink(S::ClickHouse(_)) => Some(Dependency::ClickHouse),
            Error::Sink(S::Postgres(_)) => Some(Dependency::Postgres),
            Error::Sink(S::Redis(_)) => Some(Dependency::Redis),
            Error::Sink(S::Kafka(_)) => Some(Dependency::Kafka),
            Error::Encode {
                retriable: true, ..
            } => Some(Dependency::SchemaRegistry),
            _ => None,
        }
    }

    /// A set-up failure, with what was being set up.
    pub fn setup(what: &str, e: impl std::fmt::Display) -> Error {
        Error::Setup(format!("{what}: {e}"))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Sink(e.into())
    }
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Sink(e) => e.class(),
            Error::Encode { retriable, .. } => {
                if *retriable {
                    ErrorClass::Retriable
                } else {
                    ErrorClass::Internal
                }
            }
            Error::Unavailable(_) => ErrorClass::Retriable,
            Error::Setup(_) | Error::Internal(_) => ErrorClass::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(Error::Unavailable("lane full".into()).is_retriable());
        assert!(Error::from(sqlx::Error::PoolTimedOut).is_retriable());
        assert!(!Error::from(sqlx::Error::RowNotFound).is_retriable());
        assert!(!Error::Sink(atlasmesh_sinks::Error::Other("x".into())).is_retriable());
        let down = SRCError::new("registry", None, true);
        assert!(Error::encode("record", &down).is_retriable());
        let bad = SRCError::new("schema", None, false);
        assert_eq!(Error::encode("record", &bad).class(), ErrorClass::Internal);
        assert_eq!(Error::Internal("x".into()).class(), ErrorClass::Internal);
    }
}
