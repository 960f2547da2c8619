//! AtlasMesh core: domain types, the pure metric kernels, validation, config loading and
//! metric-name constants. Depends on no other workspace crate and does no I/O.

pub mod analytics;
pub mod clock;
pub mod command;
pub mod command_signing;
pub mod config;
pub mod domain;
pub mod error;
pub mod hash;
pub mod keys;
pub mod metric_names;
pub mod scope;
pub mod telemetry;
pub mod window;
mod wire;

pub use error::{Classify, Error, ErrorClass, Result};
pub use scope::{Role, Scope};
pub use telemetry::{TelemetryEvent, VehicleStatus};
