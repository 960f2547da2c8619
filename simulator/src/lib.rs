//! atlasmesh-simulator: a deterministic fleet telemetry generator with fault injection.
//!
//! Pure library: no Kafka, no clock, no I/O. The same [`SimConfig`] (including the seed) always
//! yields the same sequence of [`Emitted`] items. Every item is labelled with its [`EventKind`],
//! so an end-to-end test knows which events a correct pipeline must count
//! ([`valid_counted_events`]) and which it must send to the DLQ (invalid, too late,
//! undecodable).
//!
//! Model, per vehicle (ids `f{fleet:03}-v{vehicle:04}`, fleets `fleet-{fleet:03}`, both 1-based):
//! - one sample every `interval_ms` at a fixed per-vehicle phase plus a small jitter;
//! - a status machine over idle, en_route, on_mission, charging, maintenance, fault, offline with
//!   dwell times of tens of seconds to minutes; low battery sends the vehicle to a charger;
//! - speed 0 unless en_route / on_mission (20–60 km/h, 2 decimals); the odometer advances by the
//!   previously reported speed × elapsed time (metre resolution) and energy by ~0.16–0.22 kWh/km
//!   (heavier with payload) plus a small auxiliary draw (Wh resolution);
//! - a mission id `m-f{fleet}-v{vehicle}-{n}` and a payload while on_mission, fault codes while
//!   in fault, a zone from the position around the fleet's city centre (none while offline);
//! - opt-in ground truth for analytics ([`SimConfig::battery`], [`SimConfig::failures`]):
//!   battery ageing with charging habits, noisy state of charge and counter resets; failures
//!   announced by precursor warnings. Their truth is queryable ([`Simulator::battery_truth`],
//!   [`Simulator::failure_truth`]); use a coarse `interval_ms` (minutes) to simulate months.
//!
//! Randomness: ChaCha8 streams per vehicle (physics, injection, ids, and one for the opt-in
//! models), so the vehicles' physical trajectories do not depend on the injection switches, and
//! with the opt-in models off the output is exactly what it was without them.

pub mod derived;
pub mod failure_training;
mod malformed;
mod vehicle;
pub mod zones;

use std::collections::{HashSet, VecDeque};

use atlasmesh_core::TelemetryEvent;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use vehicle::{
    fleet_zones, zone_id, BatteryModel, BatteryTruth, FailureModel, FailureRecord, FailureTruth,
    SimZone, SohPoint,
};
use vehicle::{Options, Snapshot, Vehicle};

/// 2100-01-01T00:00:00Z, the base of far-future invalid timestamps.
pub const YEAR_2100_MS: i64 = 4_102_444_800_000;
/// Out-of-order samples are emitted less than this far (event time) behind the vehicle's newest.
pub const MAX_OUT_OF_ORDER_MS: i64 = 5_000;
/// Backlog silences last between these bounds (ms).
pub const BACKLOG_SILENCE_MS: (i64, i64) = (30_000, 90_000);

/// Simulation parameters. All `*_pct` values are probabilities in `0.0..=1.0` (not percent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    pub seed: u64,
    pub fleets: u32,
    pub vehicles_per_fleet: u32,
    /// Event time of the first step, epoch ms.
    pub start_ms: i64,
    /// Per-vehicle sample period (ms).
    pub interval_ms: i64,
    /// Per sample: hold it back and emit it after 1..n later samples of the same vehicle
    /// (less than [`MAX_OUT_OF_ORDER_MS`] event time behind them).
    pub out_of_order_pct: f64,
    /// Per sample: emit an identical copy (same event_id and seq) 0–3 steps later.
    pub duplicate_pct: f64,
    /// Per sample: the sample is lost and undecodable bytes are emitted in its place.
    pub malformed_pct: f64,
    /// Per sample: the sample is replaced by an invalid one (NaN speed, negative
    /// energy_used_kwh or a year-2100 ts) with the same seq.
    pub invalid_pct: f64,
    /// Per sample: additionally emit a [`EventKind::TooLate`] event for a past instant more than
    /// `too_late_ms` behind the vehicle's newest emitted event.
    pub late_pct: f64,
    /// Per vehicle step: go silent for 30–90 s, then upload the recorded samples at once.
    pub offline_backlog_pct: f64,
    /// How far behind the vehicle's newest event a too-late event lies (at least).
    pub too_late_ms: i64,
    /// Opt-in ground truth for battery analytics: per-vehicle state of health falling with
    /// time and use (faster with DC fast charging), noisy state of charge, charging sessions
    /// and counter resets; the truth from [`Simulator::battery_truth`]. `None` (default): a
    /// fixed capacity, output unchanged.
    pub battery: Option<BatteryModel>,
    /// Opt-in failures with precursor warnings; the truth from [`Simulator::failure_truth`].
    /// `None` (default): no failures, output unchanged.
    pub failures: Option<FailureModel>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            fleets: 2,
            vehicles_per_fleet: 10,
            // 2026-01-01T00:00:00Z
            start_ms: 1_767_225_600_000,
            interval_ms: 1_000,
            out_of_order_pct: 0.0,
            duplicate_pct: 0.0,
            malformed_pct: 0.0,
            invalid_pct: 0.0,
            late_pct: 0.0,
            offline_backlog_pct: 0.0,
            too_late_ms: 600_000,
            battery: None,
            failures: None,
        }
    }
}

/// What an emitted event is, from the point of view of a correct pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// In order, valid: counted.
    Normal,
    /// Valid, emitted after newer samples of the same vehicle (< 5 s event time): counted.
    OutOfOrder,
    /// Second copy of an event already emitted (same event_id, seq): must not be counted twice.
    Duplicate,
    /// Valid sample recorded during a silence and uploaded later: counted (late, re-emits windows).
    Backlog,
    /// Values the validator must reject: NaN speed, negative energy_used_kwh, ts in year 2100.
    Invalid,
    /// Older than `too_late_ms` behind the vehicle's newest: DLQ as late.
    TooLate,
}

impl EventKind {
    /// Whether a correct pipeline counts this event (duplicates only once, by their first copy).
    pub fn is_counted(self) -> bool {
        matches!(
            self,
            EventKind::Normal | EventKind::OutOfOrder | EventKind::Backlog | EventKind::Duplicate
        )
    }
}

/// One record to produce to `fleet.telemetry.v1`, keyed by vehicle id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Emitted {
    Event {
        key: String,
        event: TelemetryEvent,
        kind: EventKind,
        /// When the device sent it (see [`Emitted::sent_ms`]).
        sent_ms: Option<i64>,
    },
    /// Bytes that are not valid Confluent Avro (the producer sends them as the raw value).
    Malformed {
        key: String,
        bytes: Vec<u8>,
        why: &'static str,
        sent_ms: Option<i64>,
    },
}

impl Emitted {
    pub fn key(&self) -> &str {
        match self {
            Emitted::Event { key, .. } | Emitted::Malformed { key, .. } => key,
        }
    }

    pub fn event(&self) -> Option<&TelemetryEvent> {
        match self {
            Emitted::Event { event, .. } => Some(event),
            Emitted::Malformed { .. } => None,
        }
    }

    /// `None` for malformed bytes.
    pub fn kind(&self) -> Option<EventKind> {
        match self {
            Emitted::Event { kind, .. } => Some(*kind),
            Emitted::Malformed { .. } => None,
        }
    }

    /// The simulated send time (epoch ms): the end of the time step in which the simulator
    /// emitted the item, so the simulated clock at upload. Non-decreasing in emission order;
    /// a late, backlog or too-late sample goes out with the clock of its upload, and an
    /// invalid year-2100 timestamp does not move it. The producer uses it as the Kafka
    /// message timestamp, so `atlasmesh replay --from/--to` selects simulated time.
    /// `None` for items made by hand (the producer stamps them with its own clock).
    pub fn sent_ms(&self) -> Option<i64> {
        match self {
            Emitted::Event { sent_ms, .. } | Emitted::Malformed { sent_ms, .. } => *sent_ms,
        }
    }

    fn set_sent_ms(&mut self, at: i64) {
        match self {
            Emitted::Event { sent_ms, .. } | Emitted::Malformed { sent_ms, .. } => {
                *sent_ms = Some(at)
            }
        }
    }
}

/// The events a correct pipeline must count, in emission order: kinds Normal, OutOfOrder,
/// Backlog and Duplicate, deduplicated by `(vehicle_id, ts_ms, seq)` (first copy wins).
pub fn valid_counted_events(items: &[Emitted]) -> Vec<&TelemetryEvent> {
    let mut seen: HashSet<(&str, i64, i64)> = HashSet::new();
    items
        .iter()
        .filter_map(|it| match it {
            Emitted::Event { event, kind, .. } if kind.is_counted() => Some(event),
            _ => None,
        })
        .filter(|e| seen.insert((e.vehicle_id.as_str(), e.ts_ms, e.seq)))
        .collect()
}

struct Pending {
    due_step: u64,
    kind: EventKind,
    event: TelemetryEvent,
}

/// Per-vehicle generation and injection state.
struct Sim {
    v: Vehicle,
    inj: ChaCha8Rng,
    ids: ChaCha8Rng,
    next_seq: i64,
    newest_emitted_ts: Option<i64>,
    silent_until: Option<i64>,
    backlog: Vec<TelemetryEvent>,
    pending: Vec<Pending>,
    /// Recent snapshots, oldest first; the front is the newest one at or before the pruning
    /// bound (initially the pre-start state).
    history: VecDeque<Snapshot>,
}

impl Sim {
    fn event_id(&mut self) -> String {
        let bytes: [u8; 16] = self.ids.gen();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn emit(&mut self, out: &mut Vec<Emitted>, event: TelemetryEvent, kind: EventKind) {
        if kind.is_counted() {
            self.newest_emitted_ts = Some(
                self.newest_emitted_ts
                    .map_or(event.ts_ms, |n| n.max(event.ts_ms)),
            );
        }
        out.push(Emitted::Event {
            key: self.v.vehicle_id.clone(),
            event,
            kind,
            sent_ms: None,
        });
    }
}

/// The generator. See the crate docs for the model.
pub struct Simulator {
    cfg: SimConfig,
    sims: Vec<Sim>,
    step: u64,
    buffer: VecDeque<Emitted>,
    schema_id: u32,
    max_ooo_steps: u64,
}

fn prob(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

impl Simulator {
    /// Panics if `interval_ms <= 0` or `too_late_ms < 0`.
    pub fn new(mut cfg: SimConfig) -> Self {
        assert!(cfg.interval_ms > 0, "interval_ms must be positive");
        assert!(cfg.too_late_ms >= 0, "too_late_ms must not be negative");
        for p in [
            &mut cfg.out_of_order_pct,
            &mut cfg.duplicate_pct,
            &mut cfg.malformed_pct,
            &mut cfg.invalid_pct,
            &mut cfg.late_pct,
            &mut cfg.offline_backlog_pct,
        ] {
            *p = prob(*p);
        }
        let mut sims = Vec::with_capacity((cfg.fleets * cfg.vehicles_per_fleet) as usize);
        let stream = |idx: u64, k: u64| {
            let mut r = ChaCha8Rng::seed_from_u64(cfg.seed);
            r.set_stream(idx * 4 + k);
            r
        };
        for f in 1..=cfg.fleets {
            for vn in 1..=cfg.vehicles_per_fleet {
                let idx = sims.len() as u64;
                let opts = Options {
                    start_ms: cfg.start_ms,
                    battery: cfg.battery.as_ref(),
                    failures: cfg.failures.as_ref(),
                    health: stream(idx, 3),
                };
                let v = Vehicle::new(f, vn, cfg.interval_ms, stream(idx, 0), opts);
                let history = VecDeque::from([v.pre_start_snapshot()]);
                sims.push(Sim {
                    v,
                    inj: stream(idx, 1),
                    ids: stream(idx, 2),
                    next_seq: 1,
                    newest_emitted_ts: None,
                    silent_until: None,
                    backlog: Vec::new(),
                    pending: Vec::new(),
                    history,
                });
            }
        }
        // Sample ts = step start + fixed phase + jitter (< 1/4 interval), so a sample held h
        // steps is less than h + 1/4 intervals behind the one it is released after.
        let max_ooo_steps =
            ((MAX_OUT_OF_ORDER_MS - 1 - cfg.interval_ms / 4) / cfg.interval_ms).max(1) as u64;
        Simulator {
            cfg,
            sims,
            step: 0,
            buffer: VecDeque::new(),
            schema_id: 1,
            max_ooo_steps,
        }
    }

    /// Schema id written into the Confluent header of the "wrong magic byte" and "truncated"
    /// malformed payloads (default 1), so they fail on decoding rather than on schema lookup.
    pub fn with_schema_id(mut self, schema_id: u32) -> Self {
        self.schema_id = schema_id;
        self
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// All vehicle ids, in generation order.
    /// Every vehicle's fleet, id and nominal battery capacity (kWh): what an operator
    /// registers in `vehicle_batteries` for the health pipeline (`atlasmesh sim-batteries`).
    pub fn batteries(&self) -> Vec<(String, String, f64)> {
        self.sims
            .iter()
            .map(|s| {
                (
                    s.v.fleet_id.clone(),
                    s.v.vehicle_id.clone(),
                    s.v.nominal_kwh(),
                )
            })
            .collect()
    }

    pub fn vehicle_ids(&self) -> Vec<String> {
        self.sims.iter().map(|s| s.v.vehicle_id.clone()).collect()
    }

    /// The generator's truth about a vehicle's battery so far (`None`: unknown vehicle or no
    /// [`SimConfig::battery`]).
    pub fn battery_truth(&self, vehicle_id: &str) -> Option<BatteryTruth> {
        self.sims
            .iter()
            .find(|s| s.v.vehicle_id == vehicle_id)?
            .v
            .battery_truth()
    }

    /// The generator's truth about a vehicle's failures so far (`None`: unknown vehicle or no
    /// [`SimConfig::failures`]).
    pub fn failure_truth(&self, vehicle_id: &str) -> Option<FailureTruth> {
        self.sims
            .iter()
            .find(|s| s.v.vehicle_id == vehicle_id)?
            .v
            .failure_truth()
    }

    /// End (exclusive) of the event time generated so far: `start_ms + steps × interval_ms`.
    /// Every sample of every generated step has `ts_ms < now_ms()` (invalid year-2100 events
    /// aside). Use it as the processing clock for validation.
    pub fn now_ms(&self) -> i64 {
        self.cfg.start_ms + self.step as i64 * self.cfg.interval_ms
    }

    /// Generates one time step: every vehicle's sample(s) for the next interval, in emission
    /// order. Items left over from a previous [`take`](Self::take) come first.
    pub fn next_batch(&mut self) -> Vec<Emitted> {
        let mut out: Vec<Emitted> = self.buffer.drain(..).collect();
        self.generate_step(&mut out);
        out
    }

    /// Exactly `n` items, generating as many steps as needed; the rest is kept for the next
    /// call. Panics if the configuration has no vehicles and `n > 0`.
    pub fn take(&mut self, n: usize) -> Vec<Emitted> {
        assert!(n == 0 || !self.sims.is_empty(), "no vehicles configured");
        while self.buffer.len() < n {
            let mut out = Vec::new();
            self.generate_step(&mut out);
            self.buffer.extend(out);
        }
        self.buffer.drain(..n).collect()
    }

    fn generate_step(&mut self, out: &mut Vec<Emitted>) {
        let step = self.step;
        let step_start = self.cfg.start_ms + step as i64 * self.cfg.interval_ms;
        let cfg = &self.cfg;
        let first = out.len();
        for s in &mut self.sims {
            step_vehicle(
                cfg,
                self.schema_id,
                self.max_ooo_steps,
                step,
                step_start,
                s,
                out,
            );
        }
        for it in &mut out[first..] {
            it.set_sent_ms(step_start + cfg.interval_ms);
        }
        self.step += 1;
    }
}

fn step_vehicle(
    cfg: &SimConfig,
    schema_id: u32,
    max_ooo_steps: u64,
    step: u64,
    step_start: i64,
    s: &mut Sim,
    out: &mut Vec<Emitted>,
) {
    let ts = step_start + s.v.phase_ms + s.v.jitter_ms(cfg.interval_ms / 4);
    let snap = s.v.advance(ts);
    // History for too-late events: keep one snapshot at or before the oldest instant we may
    // need, and everything after it.
    s.history.push_back(snap);
    let bound = ts - cfg.too_late_ms - 120_000;
    while s.history.len() >= 2 && s.history[1].ts <= bound {
        s.history.pop_front();
    }
    let seq = s.next_seq;
    s.next_seq += 1;
    let event_id = s.event_id();
    let sample = s.v.event(&snap, ts, seq, event_id);

    // Silence (offline backlog): record, then upload everything at once.
    if let Some(until) = s.silent_until {
        if ts < until {
            s.backlog.push(sample);
            return;
        }
        s.silent_until = None;
        for ev in std::mem::take(&mut s.backlog) {
            s.emit(out, ev, EventKind::Backlog);
        }
    } else if s.inj.gen_bool(cfg.offline_backlog_pct) {
        let (lo, hi) = BACKLOG_SILENCE_MS;
        s.silent_until = Some(ts + s.inj.gen_range(lo..=hi));
        // Held-back samples become part of the upload, in order.
        let (held, keep): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut s.pending)
            .into_iter()
            .partition(|p| p.kind == EventKind::OutOfOrder);
        s.pending = keep;
        s.backlog.extend(held.into_iter().map(|p| p.event));
        s.backlog.push(sample);
        s.backlog.sort_by_key(|e| (e.ts_ms, e.seq));
        return;
    }

    // Online: inject on this sample. While a held-back sample waits, this one goes out plain
    // so the held one is released right after a newer sample.
    let u: f64 = s.inj.gen();
    let ooo_waiting = s.pending.iter().any(|p| p.kind == EventKind::OutOfOrder);
    let mut t = 0.0;
    let mut hit = |p: f64| {
        let lo = t;
        t += p;
        !ooo_waiting && u >= lo && u < t
    };
    if hit(cfg.malformed_pct) {
        let (bytes, why) = malformed::malformed(&mut s.inj, schema_id, &sample);
        out.push(Emitted::Malformed {
            key: s.v.vehicle_id.clone(),
            bytes,
            why,
            sent_ms: None,
        });
    } else if hit(cfg.invalid_pct) {
        let mut ev = sample;
        match s.inj.gen_range(0..3) {
            0 => ev.speed_kph = f64::NAN,
            1 => ev.energy_used_kwh = -(ev.energy_used_kwh + s.inj.gen_range(0.001..10.0)),
            _ => ev.ts_ms = YEAR_2100_MS + s.inj.gen_range(0..365 * 86_400_000i64),
        }
        s.emit(out, ev, EventKind::Invalid);
    } else if hit(cfg.out_of_order_pct) {
        let hold = s.inj.gen_range(1..=max_ooo_steps);
        s.pending.push(Pending {
            due_step: step + hold,
            kind: EventKind::OutOfOrder,
            event: sample,
        });
    } else if hit(cfg.duplicate_pct) {
        let delay = s.inj.gen_range(0..=3);
        s.pending.push(Pending {
            due_step: step + delay,
            kind: EventKind::Duplicate,
            event: sample.clone(),
        });
        s.emit(out, sample, EventKind::Normal);
    } else {
        s.emit(out, sample, EventKind::Normal);
    }

    // Release what is due: duplicates any time, held samples only behind a newer one.
    let newest = s.newest_emitted_ts;
    let (release, keep): (Vec<Pending>, Vec<Pending>) =
        std::mem::take(&mut s.pending).into_iter().partition(|p| {
            p.due_step <= step
                && (p.kind == EventKind::Duplicate || newest.is_some_and(|n| n > p.event.ts_ms))
        });
    s.pending = keep;
    for p in release {
        s.emit(out, p.event, p.kind);
    }

    // Too late: a plausible event for a past instant far behind the vehicle's newest.
    if s.inj.gen_bool(cfg.late_pct) {
        if let Some(newest) = s.newest_emitted_ts {
            let target = newest - cfg.too_late_ms - s.inj.gen_range(1_000..=60_000);
            let snap = s
                .history
                .iter()
                .rev()
                .find(|h| h.ts <= target)
                .copied()
                .unwrap_or_else(|| s.v.pre_start_snapshot());
            let seq = s.next_seq;
            s.next_seq += 1;
            let id = s.event_id();
            let ev = s.v.event(&snap, target, seq, id);
            s.emit(out, ev, EventKind::TooLate);
        }
    }
}

#[cfg(test)]
mod tests;
