//! Library side of the `atlasmesh` binary: telemetry production (simulator → Kafka), the
//! end-to-end bench, and process set-up helpers. `main.rs` only parses arguments.

pub mod alerts_bench;
pub mod api_bench;
pub mod bench;
pub mod cpu;
pub mod credentials;
pub mod pipeline_bench;
pub mod produce;
pub mod state_bench;
pub mod telemetry_setup;
pub mod worker_health;

pub use telemetry_setup::{init_logging, install_metrics, LogFormat};
