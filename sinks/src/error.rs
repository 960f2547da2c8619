//! The sinks' error and where its retry decision is made: [`postgres_class`],
//! [`clickhouse_class`] and [`redis_class`] classify the stores' own errors once, for the
//! runner (through [`Classify`]) and for the query API alike.

use atlasmesh_core::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] ::clickhouse::error::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("postgres migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A dependency is not there yet (down, slow, still busy): retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else; not retriable.
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::ClickHouse(e) => clickhouse_class(e),
            Error::Postgres(e) => postgres_class(e),
            Error::Migrate(_) => ErrorClass::Internal,
            Error::Redis(e) => redis_class(e),
            Error::Kafka(_) | Error::Unavailable(_) => ErrorClass::Retriable,
            Error::Other(_) => ErrorClass::Internal,
        }
    }
}

/// PostgreSQL SQLSTATE codes a retry can get past: serialization failure, deadlock, the
/// server shutting down or restarting (admin/crash shutdown, cannot connect now), too many
/// connections. Class 08 (connection exceptions) is matched separately.
const RETRIABLE_SQLSTATES: &[&str] = &["40001", "40P01", "57P01", "57P02", "57P03", "53300"];

/// The class of a PostgreSQL error: the connection or pool failing and the transient
/// SQLSTATEs are retriable; everything else (constraint violations, bad values, our own SQL,
/// decoding) is internal — an error caused by a user's data is turned into a rejection by
/// the caller before it becomes an error.
pub fn postgres_class(e: &sqlx::Error) -> ErrorClass {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => ErrorClass::Retriable,
        sqlx::Error::Database(d) => match d.code() {
            Some(code) if code.starts_with("08") || RETRIABLE_SQLSTATES.contains(&&*code) => {
                ErrorClass::Retriable
            }
            _ => ErrorClass::Internal,
        },
        _ => ErrorClass::Internal,
    }
}

/// The class of a ClickHouse error: the network, a timeout or an error answer of the server
/// (overloaded, too many parts, restarting) are retriable; a request we built wrongly
/// (invalid parameters, rows that do not match the schema) is internal.
pub fn clickhouse_class(e: &::clickhouse::error::Error) -> ErrorClass {
    use ::clickhouse::error::Error as E;
    match e {
        E::Network(_) | E::TimedOut | E::BadResponse(_) => ErrorClass::Retriable,
        _ if e.to_string().contains("Connection refused") => ErrorClass::Retriable,
        _ => ErrorClass::Internal,
    }
}

/// The class of a Redis error: connection trouble, timeouts and a server that is loading,
/// failing over or asks to try again are retriable; the rest is internal.
pub fn redis_class(e: &::redis::RedisError) -> ErrorClass {
    use ::redis::ErrorKind as K;
    let transient = matches!(
        e.kind(),
        K::BusyLoadingError | K::TryAgain | K::ClusterDown | K::MasterDown
    );
    if transient
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_connection_refusal()
    {
        ErrorClass::Retriable
    } else {
        ErrorClass::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(Error::Unavailable("x".into()).is_retriable());
        assert_eq!(Error::Other("x".into()).class(), ErrorClass::Internal);
        assert!(Error::Postgres(sqlx::Error::PoolTimedOut).is_retriable());
        assert_eq!(
            postgres_class(&sqlx::Error::RowNotFound),
            ErrorClass::Internal
        );
        assert!(Error::ClickHouse(::clickhouse::error::Error::TimedOut).is_retriable());
        assert_eq!(
            clickhouse_class(&::clickhouse::error::Error::RowNotFound),
            ErrorClass::Internal
        );
        let io =
            ::redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(Error::Redis(io).is_retriable());
        let loading = ::redis::RedisError::from((::redis::ErrorKind::BusyLoadingError, "loading"));
        assert_eq!(redis_class(&loading), ErrorClass::Retriable);
        let wrong = ::redis::RedisError::from((::redis::ErrorKind::TypeError, "wrong type"));
        assert_eq!(redis_class(&wrong), ErrorClass::Internal);
    }
}
