//! Library side of the `atlasmesh` binary: telemetry production (simulator → Kafka), the
//! end-to-end bench, and process set-up helpers. `main.rs` only parses arguments.

pub mod bench;
pub mod produce;
pub mod telemetry_setup;

pub use telemetry_setup::{init_logging, install_metrics, LogFormat};
