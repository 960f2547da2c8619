//! `atlasmesh bench-state`: the window kernel's memory and checkpoint cost at fleet scale, in
//! process (no servers). N vehicles report once a second for S simulated seconds (in event-time
//! order, each vehicle at its own offset within the second, statuses, missions, odometer and
//! energy moving); after every simulated second a checkpoint is taken the way the runner takes
//! it (`runner.delta_checkpoints`): a delta onto the stored full state, the full state again
//! once the deltas weigh as much as it does or a snapshot is due (`runner.snapshot_interval_ms`,
//! 5 min by default). A full
//! checkpoint (the behaviour with deltas off) is also serialised every `--full-every` seconds
//! and its bytes and CPU reported per checkpoint.
//!
//! Reported (JSON on stdout, progress on stderr): samples held and sample buffers per vehicle,
//! serialised state per vehicle, RSS growth per vehicle (`/proc/self/statm`), and per second
//! of stream the checkpoint bytes and CPU time (this thread's, `/proc/thread-self/schedstat`)
//! for both ways. With `--verify`, the stored full state plus its deltas is restored at the
//! end and compared with the live state byte for byte.

use std::time::Instant;

use atlasmesh_core::config::Config;
use atlasmesh_core::telemetry::{TelemetryEvent, VehicleStatus};
use atlasmesh_core::window::{PartitionWindows, WindowParams, WindowsDelta};
use clap::Args;

use crate::cpu::{rss_bytes, thread_cpu_ns};
use serde::Serialize;

#[derive(Args, Debug, Clone)]
pub struct BenchStateArgs {
    /// Vehicles reporting once a second.
    #[arg(long, default_value_t = 10_000)]
    pub vehicles: usize,
    /// Simulated seconds of stream.
    #[arg(long, default_value_t = 400)]
    pub seconds: i64,
    /// Serialise the whole state (a checkpoint with deltas off) every this many seconds.
    #[arg(long, default_value_t = 20)]
    pub full_every: i64,
    /// Keep the stored checkpoint and restore it at the end (compared byte for byte).
    #[arg(long)]
    pub verify: bool,
    /// Record no deltas (`runner.delta_checkpoints = false`): only full checkpoints, and the
    /// ingest cost without the kernel's journal.
    #[arg(long)]
    pub no_deltas: bool,
}

#[derive(Debug, Serialize)]
pub struct StateSummary {
    pub vehicles: usize,
    pub seconds: i64,
    pub events: u64,
    pub ingest_cpu_ns_per_event: f64,
    pub samples_held_per_vehicle: f64,
    /// What the kernel holds per vehicle at the end ([`PartitionWindows::state_bytes`]: ids,
    /// tracks, buffers by capacity; not the map's nodes or the allocator's overhead).
    pub state_bytes_per_vehicle: f64,
    /// The most it held, sampled every 10 simulated seconds after the first 200.
    pub peak_state_bytes_per_vehicle: f64,
    pub serialized_state_bytes_per_vehicle: f64,
    pub rss_growth_bytes_per_vehicle: f64,
    /// Deltas on (the default): bytes written per second of stream, full states included.
    pub incremental_bytes_per_s: f64,
    pub incremental_cpu_ms_per_s: f64,
    pub incremental_full_writes: u64,
    pub incremental_delta_writes: u64,
    pub mean_delta_bytes: f64,
    /// Deltas off: every one-second checkpoint writes the whole state.
    pub full_bytes_per_s: f64,
    pub full_cpu_ms_per_s: f64,
    /// Restored state equals the live one (with `--verify`).
    pub restored_equal: Option<bool>,
}

/// One vehicle's event at second `s` (a deterministic drive: statuses change every few
/// minutes, a mission while on mission, moving speed and counters).
fn fill(e: &mut TelemetryEvent, i: usize, s: i64, t0: i64) {
    let phase = ((s / 180) as usize + i) % 6;
    let status = [
        VehicleStatus::Idle,
        VehicleStatus::EnRoute,
        VehicleStatus::OnMission,
        VehicleStatus::OnMission,
        VehicleStatus::Charging,
        VehicleStatus::EnRoute,
    ][phase];
    let moving = matches!(status, VehicleStatus::EnRoute | VehicleStatus::OnMission);
    e.ts_ms = t0 + s * 1_000 + ((i * 7_919) % 1_000) as i64;
    e.seq = s;
    e.status = status;
    e.speed_kph = if moving { 30.0 + (i % 40) as f64 } else { 0.0 };
    e.odometer_km += e.speed_kph / 3_600.0;
    e.energy_used_kwh += if moving { 0.005 } else { 0.0005 };
    e.mission_id = (status == VehicleStatus::OnMission).then(|| format!("m-{i}-{}", s / 360));
}

/// Runs with the window parameters of `cfg.telemetry` and the snapshot interval of
/// `cfg.runner` (a snapshot writes the full state).
pub fn run(args: &BenchStateArgs, cfg: &Config) -> anyhow::Result<StateSummary> {
    let p = WindowParams::from(&cfg.telemetry);
    let snapshot_every_s = (cfg.runner.snapshot_interval_ms / 1_000) as i64;
    let t0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let n = args.vehicles.max(1);
    let mut events: Vec<TelemetryEvent> = (0..n)
        .map(|i| TelemetryEvent {
            event_id: String::new(),
            fleet_id: format!("fleet-{:03}", i / 500),
            vehicle_id: format!("veh-{i:06}"),
            ts_ms: t0,
            seq: 0,
            lat: 0.0,
            lon: 0.0,
            speed_kph: 0.0,
            odometer_km: 1_000.0 + i as f64,
            energy_pct: 80.0,
            energy_used_kwh: 100.0,
            status: VehicleStatus::Idle,
            mission_id: None,
            zone_id: None,
            payload_kg: 0.0,
            fault_codes: vec![],
        })
        .collect();
    // Events in event-time order within each second: vehicles sorted by their offset.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (i * 7_919) % 1_000);

    let rss_before = rss_bytes();
    let mut st = PartitionWindows::default();
    let mut out = Vec::new();
    let (mut ingest_ns, mut events_in) = (0u64, 0u64);
    // Deltas on: the stored base, its size, the deltas after it.
    let mut base: Vec<u8> = bincode::serialize(&st)?;
    if !args.no_deltas {
        st.start_journal();
    }
    let mut deltas: Vec<Vec<u8>> = Vec::new();
    let (mut base_bytes, mut delta_bytes) = (base.len(), 0usize);
    let (mut inc_bytes, mut inc_ns, mut fulls, mut delta_writes, mut delta_sum) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last_snapshot = 0i64;
    // Deltas off: measured every `full_every` seconds.
    let (mut full_bytes, mut full_ns, mut full_samples) = (0u64, 0u64, 0u64);
    let mut peak_state = 0usize;
    let started = Instant::now();
    let mut last_progress = Instant::now();
    for s in 0..args.seconds {
        let c0 = thread_cpu_ns();
        for &i in &order {
            fill(&mut events[i], i, s, t0);
            st.ingest(&p, &events[i], &mut out);
            out.clear();
        }
        ingest_ns += thread_cpu_ns() - c0;
        events_in += n as u64;

        let c0 = thread_cpu_ns();
        let snapshot_due = snapshot_every_s > 0 && s - last_snapshot >= snapshot_every_s;
        if args.no_deltas {
            // Nothing recorded: only the full checkpoints below.
        } else if snapshot_due || delta_bytes >= base_bytes {
            let full = bincode::serialize(&st)?;
            st.start_journal();
            inc_bytes += full.len() as u64;
            (base_bytes, delta_bytes) = (full.len(), 0);
            fulls += 1;
            if snapshot_due {
                last_snapshot = s;
            }
            if args.verify {
                base = full;
                deltas.clear();
            }
        } else if let Some(bytes) = st.take_delta_encoded() {
            inc_bytes += bytes.len() as u64;
            delta_bytes += bytes.len();
            delta_writes += 1;
            delta_sum += bytes.len() as u64;
            if args.verify {
                deltas.push(bytes);
            }
        }
        inc_ns += thread_cpu_ns() - c0;

        if s >= 200 && s % 10 == 0 {
            peak_state = peak_state.max(st.state_bytes());
        }
        if args.full_every > 0 && s % args.full_every == args.full_every - 1 {
            let c0 = thread_cpu_ns();
            let full = bincode::serialize(&st)?;
            full_ns += thread_cpu_ns() - c0;
            full_bytes += full.len() as u64;
            full_samples += 1;
        }
        if last_progress.elapsed().as_secs() >= 2 {
            last_progress = Instant::now();
            eprintln!(
                "bench-state: {}/{} s simulated, {} events, {:.0} s elapsed",
                s + 1,
                args.seconds,
                events_in,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let rss_after = rss_bytes();
    let serialized = bincode::serialize(&st)?.len();
    let restored_equal = if args.verify {
        let mut r: PartitionWindows = bincode::deserialize(&base)?;
        for d in &deltas {
            r.apply_delta(&p, WindowsDelta::decode(d).map_err(anyhow::Error::msg)?);
        }
        // The live state's journal is not part of it: compare what a checkpoint holds.
        Some(bincode::serialize(&r)? == bincode::serialize(&st)?)
    } else {
        None
    };
    let secs = args.seconds.max(1) as f64;
    let per_vehicle = |x: f64| x / n as f64;
    Ok(StateSummary {
        vehicles: n,
        seconds: args.seconds,
        events: events_in,
        ingest_cpu_ns_per_event: ingest_ns as f64 / events_in.max(1) as f64,
        samples_held_per_vehicle: per_vehicle(st.retained_samples() as f64),
        state_bytes_per_vehicle: per_vehicle(st.state_bytes() as f64),
        peak_state_bytes_per_vehicle: per_vehicle(peak_state as f64),
        serialized_state_bytes_per_vehicle: per_vehicle(serialized as f64),
        rss_growth_bytes_per_vehicle: per_vehicle(rss_after.saturating_sub(rss_before) as f64),
        incremental_bytes_per_s: inc_bytes as f64 / secs,
        incremental_cpu_ms_per_s: inc_ns as f64 / 1e6 / secs,
        incremental_full_writes: fulls,
        incremental_delta_writes: delta_writes,
        mean_delta_bytes: delta_sum as f64 / delta_writes.max(1) as f64,
        full_bytes_per_s: full_bytes as f64 / full_samples.max(1) as f64,
        full_cpu_ms_per_s: full_ns as f64 / 1e6 / full_samples.max(1) as f64,
        restored_equal,
    })
}
