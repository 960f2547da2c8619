//! The telemetry window kernel: per-vehicle event-time state folded into closed 1-minute
//! windows per vehicle and per fleet. Pure: no clock, no I/O; the runner feeds it events and
//! tells it when a partition went idle.
//!
//! Definitions (the README repeats them for operators):
//! - A vehicle's samples are ordered by `(ts_ms, seq)`. Sample *i* reports status *sᵢ*, which
//!   holds from *tᵢ* until the next sample, but for at most `max_gap_ms`; silence beyond that is
//!   unobserved. That segment's time is split exactly across the windows it overlaps.
//! - `observed_ms` is all segment time in the window; `busy_ms` (en_route, on_mission),
//!   `available_ms` (not maintenance/fault/offline), `idle_ms` etc. are its parts.
//!   utilization = busy/observed, availability = available/observed, idle share = idle/observed.
//! - Distance and energy are odometer and energy-counter deltas (metres, Wh) of the samples
//!   whose time lies in the window, against the vehicle's previous sample; negative deltas
//!   (counter reset) count as 0.
//! - Average moving speed is the mean `speed_kph` of the window's samples with speed > 0.5 km/h.
//! - `fault_count` counts samples entering `fault` (previous status not fault); `mission_count`
//!   the distinct mission ids seen; a vehicle is *active* in a window if any of its samples
//!   there is not `offline`.
//! - Fleet rows are per source partition (`partial`): a vehicle lives in exactly one partition,
//!   so the fleet value is the sum of the partials; `fleet_window_metrics` in ClickHouse sums them.

mod counters;
pub(crate) mod state;

pub use counters::Counters;
pub(crate) use state::vehicle_counters;
pub use state::{
    Ingest, PartitionWindows, Sample, WindowParams, WindowResult, WindowScope, WindowsDelta,
};
