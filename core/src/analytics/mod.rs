//! Pure metric kernels of the performance and alert pipelines: battery state of health from
//! discharges and its trajectory ([`battery`]), failure risk from fault and precursor patterns
//! ([`failure`]), vehicle health scores and fleet health ([`health`]), performance scores with their
//! components ([`score`]), least-squares trends ([`trend`]), the alert rule state machine and its
//! pager message ([`alert`]), the utilization share from status durations ([`utilization`]) and
//! the assembly of fleet reports ([`report`]) and of fleet health reports ([`health_report`]),
//! and one vehicle's UTC days folded from its telemetry for the health pipeline ([`vehicle_day`]).
//!
//! No clock, no I/O, no randomness: every function maps its inputs to its outputs, so the same
//! code runs in the stream workers, in the Arroyo UDFs (`udfs/`) and in the golden-file tests
//! (`core/tests/golden.rs`, whose expected values `core/tests/golden/compute.py` computes
//! independently). Undefined results are `None` or an error, never NaN or infinity.

pub mod alert;
pub mod battery;
pub mod failure;
pub mod health;
pub mod health_report;
pub mod metrics;
pub mod report;
pub mod score;
pub mod trend;
pub mod utilization;
pub mod vehicle_day;
