use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::counters::Counters;
use crate::config::TelemetryConfig;
use crate::telemetry::{km_to_m, kph_to_ckph, kwh_to_wh, TelemetryEvent, VehicleStatus};

/// Speeds above this (hundredths of km/h) count as moving.
const MOVING_CKPH: i64 = 50;

/// Window parameters in effect (from [`TelemetryConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowParams {
    pub window_ms: i64,
    pub out_of_orderness_ms: i64,
    pub allowed_lateness_ms: i64,
    pub max_gap_ms: i64,
}

impl From<&TelemetryConfig> for WindowParams {
    fn from(c: &TelemetryConfig) -> Self {
        WindowParams {
            window_ms: c.window_ms,
            out_of_orderness_ms: c.out_of_orderness_ms,
            allowed_lateness_ms: c.allowed_lateness_ms,
            max_gap_ms: c.max_gap_ms,
        }
    }
}

impl WindowParams {
    fn floor(&self, ts: i64) -> i64 {
        ts.div_euclid(self.window_ms) * self.window_ms
    }
}

/// The compact part of an event the kernel keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub ts: i64,
    pub seq: i64,
    pub status: VehicleStatus,
    pub odometer_m: i64,
    pub energy_wh: i64,
    pub speed_ckph: i64,
    pub mission: Option<String>,
}

impl Sample {
    pub fn from_event(e: &TelemetryEvent) -> Sample {
        Sample {
            ts: e.ts_ms,
            seq: e.seq,
            status: e.status,
            odometer_m: km_to_m(e.odometer_km),
            energy_wh: kwh_to_wh(e.energy_used_kwh),
            speed_ckph: kph_to_ckph(e.speed_kph),
            mission: e.mission_id.clone().filter(|m| !m.is_empty()),
        }
    }

    fn key(&self) -> (i64, i64) {
        (self.ts, self.seq)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct VehicleTrack {
    fleet_id: String,
    /// Sorted by (ts, seq); the first one may be an anchor older than the retention floor.
    samples: Vec<Sample>,
    /// While a journal runs: the samples accepted since it last gave a delta, and whether the
    /// fleet changed (or the vehicle is new). Not part of the state.
    #[serde(skip)]
    pending: Vec<Sample>,
    #[serde(skip)]
    fleet_changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowScope {
    Vehicle,
    /// The fleet's partial over the vehicles of one source partition.
    FleetPartial,
}

/// A closed (or re-emitted) window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowResult {
    pub scope: WindowScope,
    pub fleet_id: String,
    /// Empty for fleet partials.
    pub vehicle_id: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// 1 when first closed; +1 each time a late event changes it.
    pub version: u32,
    pub counters: Counters,
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// Counted. `late`: it fell into an already closed window (which was re-emitted);
    /// `newest`: it is now the vehicle's latest sample.
    Accepted { late: bool, newest: bool },
    /// Same (ts, seq) already seen for this vehicle: ignored.
    Duplicate,
    /// Behind the closed frontier by more than the allowed lateness.
    TooLate { closed_until_ms: i64 },
}

/// Window state of one source partition. Serialisable: the runner checkpoints it with the
/// partition's offset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PartitionWindows {
    max_ts: Option<i64>,
    /// Every window ending at or before this is closed.
    closed_until: Option<i64>,
    vehicles: BTreeMap<String, VehicleTrack>,
    vehicle_versions: BTreeMap<(String, i64), u32>,
    fleet_versions: BTreeMap<(String, i64), u32>,
    /// Changes since [`PartitionWindows::start_journal`], for incremental checkpoints; not
    /// part of the state (never serialised).
    #[serde(skip)]
    journal: Option<Journal>,
}

/// What changed in a [`PartitionWindows`] since its journal started: applied to a copy of the
/// state taken then ([`PartitionWindows::apply_delta`]), it gives the state now, exactly. Its
/// size grows with the accepted samples and closed windows, not with the vehicles held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowsDelta {
    max_ts: Option<i64>,
    closed_until: Option<i64>,
    /// Vehicles seen the first time or whose fleet changed, with their fleet now.
    fleets: Vec<(String, String)>,
    /// Accepted samples per vehicle (each lands at its sorted place).
    samples: Vec<(String, Vec<Sample>)>,
    /// Window versions set, in order (a later entry wins).
    vehicle_versions: Vec<((String, i64), u32)>,
    fleet_versions: Vec<((String, i64), u32)>,
}

/// The part of a running journal kept beside the vehicles (their samples and fleet changes
/// wait in their tracks).
#[derive(Debug, Clone, Default)]
struct Journal {
    vehicle_versions: Vec<((String, i64), u32)>,
    fleet_versions: Vec<((String, i64), u32)>,
}

impl WindowsDelta {
    /// Accepted samples it carries.
    pub fn samples(&self) -> usize {
        self.samples.iter().map(|(_, s)| s.len()).sum()
    }
}

/// Counters of one vehicle's samples for the window `[ws, we)`.
pub(crate) fn vehicle_counters(samples: &[Sample], ws: i64, we: i64, max_gap: i64) -> Counters {
    let mut c = Counters::default();
    let lo = samples.partition_point(|s| s.ts < ws - max_gap);
    let first_in = samples.partition_point(|s| s.ts < ws);
    let hi = samples.partition_point(|s| s.ts < we);
    for i in lo..hi {
        let s = &samples[i];
        let len = match samples.get(i + 1) {
            Some(n) => (n.ts - s.ts).min(max_gap),
            None => max_gap,
        };
        let start = s.ts.max(ws);
        let end = (s.ts + len).min(we);
        if end > start {
            c.add_status_time(s.status, (end - start) as u64);
        }
    }
    let mut missions: BTreeSet<&str> = BTreeSet::new();
    let mut active = false;
    for i in first_in..hi {
        let s = &samples[i];
        c.samples += 1;
        let prev = i.checked_sub(1).map(|p| &samples[p]);
        if let Some(p) = prev {
            c.distance_m += (s.odometer_m - p.odometer_m).max(0) as u64;
            c.energy_wh += (s.energy_wh - p.energy_wh).max(0) as u64;
        }
        if s.status == VehicleStatus::Fault && prev.is_none_or(|p| p.status != VehicleStatus::Fault)
        {
            c.fault_count += 1;
        }
        if s.speed_ckph > MOVING_CKPH {
            c.moving_samples += 1;
            c.moving_speed_ckph_sum += s.speed_ckph as u64;
        }
        if let Some(m) = &s.mission {
            missions.insert(m);
        }
        active |= s.status != VehicleStatus::Offline;
    }
    c.mission_count = missions.len() as u64;
    c.active_vehicles = u64::from(active);
    c.vehicles = u64::from(!c.is_empty());
    c
}

impl PartitionWindows {
    pub fn closed_until_ms(&self) -> Option<i64> {
        self.closed_until
    }

    pub fn max_ts_ms(&self) -> Option<i64> {
        self.max_ts
    }

    /// Number of samples held (for state-size metrics).
    pub fn retained_samples(&self) -> usize {
        self.vehicles.values().map(|t| t.samples.len()).sum()
    }

    /// Samples the vehicles' buffers have room for (allocated, held or not).
    pub fn sample_capacity(&self) -> usize {
        self.vehicles.values().map(|t| t.samples.capacity()).sum()
    }

    fn fleet_counters(&self, fleet: &str, ws: i64, p: &WindowParams) -> Counters {
        let mut c = Counters::default();
        for t in self.vehicles.values().filter(|t| t.fleet_id == fleet) {
            c.add(&vehicle_counters(
                &t.samples,
                ws,
                ws + p.window_ms,
                p.max_gap_ms,
            ));
        }
        c
    }

    fn bump(
        map: &mut BTreeMap<(String, i64), u32>,
        journal: Option<&mut Vec<((String, i64), u32)>>,
        key: (String, i64),
    ) -> u32 {
        let journaled = journal.is_some().then(|| key.clone());
        let v = map.entry(key).or_insert(0);
        *v += 1;
        if let (Some(j), Some(key)) = (journal, journaled) {
            j.push((key, *v));
        }
        *v
    }

    /// Starts (or restarts) recording changes: the next [`PartitionWindows::take_delta`]
    /// returns what changed from the state as it is now.
    pub fn start_journal(&mut self) {
        self.journal = Some(Journal::default());
        for t in self.vehicles.values_mut() {
            t.pending = Vec::new();
            t.fleet_changed = false;
        }
    }

    /// What changed since the journal started, and restarts it; `None` when no journal runs.
    pub fn take_delta(&mut self) -> Option<WindowsDelta> {
        let journal = std::mem::take(self.journal.as_mut()?);
        let (mut fleets, mut samples) = (Vec::new(), Vec::new());
        for (vehicle, t) in &mut self.vehicles {
            if std::mem::take(&mut t.fleet_changed) {
                fleets.push((vehicle.clone(), t.fleet_id.clone()));
            }
            if !t.pending.is_empty() {
                samples.push((vehicle.clone(), std::mem::take(&mut t.pending)));
            }
        }
        Some(WindowsDelta {
            max_ts: self.max_ts,
            closed_until: self.closed_until,
            fleets,
            samples,
            vehicle_versions: journal.vehicle_versions,
            fleet_versions: journal.fleet_versions,
        })
    }

    /// Brings a state up to date with `delta`, taken from a state equal to this one: the
    /// result equals the state the delta was taken from. Samples land at their sorted place,
    /// versions are set in order, and the pruning that followed them live is done again (it
    /// depends only on the closed frontier, and every sample and window accepted after a
    /// pruning lies inside what that pruning kept).
    pub fn apply_delta(&mut self, p: &WindowParams, delta: WindowsDelta) {
        let WindowsDelta {
            max_ts,
            closed_until,
            fleets,
            samples,
            vehicle_versions,
            fleet_versions,
        } = delta;
        for (vehicle, fleet) in fleets {
            self.vehicles.entry(vehicle).or_default().fleet_id = fleet;
        }
        for (vehicle, samples) in samples {
            let track = self.vehicles.entry(vehicle).or_default();
            for s in samples {
                if let Err(pos) = track.samples.binary_search_by(|t| t.key().cmp(&s.key())) {
                    track.samples.insert(pos, s);
                }
            }
        }
        self.vehicle_versions.extend(vehicle_versions);
        self.fleet_versions.extend(fleet_versions);
        self.max_ts = max_ts;
        self.closed_until = closed_until;
        self.prune(p);
    }

    /// Feeds one valid event. Closed windows (and re-emitted ones) are appended to `out`.
    pub fn ingest(
        &mut self,
        p: &WindowParams,
        ev: &TelemetryEvent,
        out: &mut Vec<WindowResult>,
    ) -> Ingest {
        let sample = Sample::from_event(ev);
        let ts = sample.ts;
        let closed_until = *self.closed_until.get_or_insert_with(|| p.floor(ts));
        if ts < closed_until - p.allowed_lateness_ms {
            return Ingest::TooLate {
                closed_until_ms: closed_until,
            };
        }
        let vid = &ev.vehicle_id;
        // Looked up by reference: the id is cloned only for a vehicle seen the first time.
        if !self.vehicles.contains_key(vid) {
            self.vehicles.insert(vid.clone(), VehicleTrack::default());
        }
        let track = self.vehicles.get_mut(vid).expect("inserted above");
        if track.fleet_id != ev.fleet_id {
            track.fleet_id = ev.fleet_id.clone();
            track.fleet_changed = self.journal.is_some();
        }
        // In order (the common case): after the newest sample, no search of the buffer.
        let pos = match track.samples.last() {
            Some(last) if last.key() < sample.key() => track.samples.len(),
            _ => match track
                .samples
                .binary_search_by(|s| s.key().cmp(&sample.key()))
            {
                Ok(_) => return Ingest::Duplicate,
                Err(pos) => pos,
            },
        };
        let newest = pos == track.samples.len();
        let late = ts < closed_until;
        if self.journal.is_some() {
            track.pending.push(sample.clone());
        }
        if !late {
            track.samples.insert(pos, sample);
        } else {
            // Windows whose counters this sample can change: from the window of the earliest
            // segment it can shorten up to the closed frontier.
            let fleet = track.fleet_id.clone();
            let from = p.floor(ts - p.max_gap_ms);
            let windows: Vec<i64> = (from..closed_until).step_by(p.window_ms as usize).collect();
            let vehicle_at = |this: &Self, ws: i64| {
                vehicle_counters(
                    &this.vehicles[vid].samples,
                    ws,
                    ws + p.window_ms,
                    p.max_gap_ms,
                )
            };
            let before: Vec<Counters> = windows.iter().map(|&ws| vehicle_at(self, ws)).collect();
            let fleet_before: Vec<Counters> = windows
                .iter()
                .map(|&ws| self.fleet_counters(&fleet, ws, p))
                .collect();
            if let Some(t) = self.vehicles.get_mut(vid) {
                t.samples.insert(pos, sample);
            }
            for (i, &ws) in windows.iter().enumerate() {
                let after = vehicle_at(self, ws);
                if after == before[i] {
                    continue;
                }
                let version = Self::bump(
                    &mut self.vehicle_versions,
                    self.journal.as_mut().map(|j| &mut j.vehicle_versions),
                    (vid.clone(), ws),
                );
                out.push(WindowResult {
                    scope: WindowScope::Vehicle,
                    fleet_id: fleet.clone(),
                    vehicle_id: vid.clone(),
                    window_start_ms: ws,
                    window_end_ms: ws + p.window_ms,
                    version,
                    counters: after,
                });
                let fleet_after = self.fleet_counters(&fleet, ws, p);
                if fleet_after != fleet_before[i] {
                    let version = Self::bump(
                        &mut self.fleet_versions,
                        self.journal.as_mut().map(|j| &mut j.fleet_versions),
                        (fleet.clone(), ws),
                    );
                    out.push(WindowResult {
                        scope: WindowScope::FleetPartial,
                        fleet_id: fleet.clone(),
                        vehicle_id: String::new(),
                        window_start_ms: ws,
                        window_end_ms: ws + p.window_ms,
                        version,
                        counters: fleet_after,
                    });
                }
            }
        }
        if self.max_ts.is_none_or(|m| ts > m) {
            self.max_ts = Some(ts);
        }
        let watermark = self.max_ts.unwrap_or(ts) - p.out_of_orderness_ms;
        self.advance(p, watermark, out);
        Ingest::Accepted { late, newest }
    }

    /// The partition went idle: close every window that holds data, as if event time had
    /// moved past the last segment of every vehicle.
    pub fn flush_idle(&mut self, p: &WindowParams, out: &mut Vec<WindowResult>) {
        if let Some(max_ts) = self.max_ts {
            self.advance(p, max_ts + p.max_gap_ms + p.window_ms, out);
        }
    }

    /// Closes every window ending at or before `watermark`.
    pub fn advance(&mut self, p: &WindowParams, watermark: i64, out: &mut Vec<WindowResult>) {
        let Some(mut closed_until) = self.closed_until else {
            return;
        };
        while closed_until + p.window_ms <= watermark {
            // Jump over windows no segment can reach.
            let next_ts = self
                .vehicles
                .values()
                .filter_map(|t| {
                    let i = t
                        .samples
                        .partition_point(|s| s.ts < closed_until - p.max_gap_ms);
                    t.samples.get(i).map(|s| s.ts)
                })
                .min();
            let Some(next_ts) = next_ts else {
                closed_until = p.floor(watermark);
                break;
            };
            let ws = closed_until.max(p.floor(next_ts));
            if ws + p.window_ms > watermark {
                closed_until = ws;
                break;
            }
            self.close_window(p, ws, out);
            closed_until = ws + p.window_ms;
        }
        if Some(closed_until) != self.closed_until {
            self.closed_until = Some(closed_until);
            self.prune(p);
        }
    }

    fn close_window(&mut self, p: &WindowParams, ws: i64, out: &mut Vec<WindowResult>) {
        let we = ws + p.window_ms;
        let mut fleets: BTreeMap<String, Counters> = BTreeMap::new();
        for (vehicle, t) in &self.vehicles {
            let c = vehicle_counters(&t.samples, ws, we, p.max_gap_ms);
            if c.is_empty() {
                continue;
            }
            fleets.entry(t.fleet_id.clone()).or_default().add(&c);
            let version = Self::bump(
                &mut self.vehicle_versions,
                self.journal.as_mut().map(|j| &mut j.vehicle_versions),
                (vehicle.clone(), ws),
            );
            out.push(WindowResult {
                scope: WindowScope::Vehicle,
                fleet_id: t.fleet_id.clone(),
                vehicle_id: vehicle.clone(),
                window_start_ms: ws,
                window_end_ms: we,
                version,
                counters: c,
            });
        }
        for (fleet, c) in fleets {
            let version = Self::bump(
                &mut self.fleet_versions,
                self.journal.as_mut().map(|j| &mut j.fleet_versions),
                (fleet.clone(), ws),
            );
            out.push(WindowResult {
                scope: WindowScope::FleetPartial,
                fleet_id: fleet,
                vehicle_id: String::new(),
                window_start_ms: ws,
                window_end_ms: we,
                version,
                counters: c,
            });
        }
    }

    /// Drops samples and versions no accepted late event can touch any more, keeping one
    /// anchor sample per vehicle for deltas and segments.
    fn prune(&mut self, p: &WindowParams) {
        let Some(closed_until) = self.closed_until else {
            return;
        };
        let floor = closed_until - p.allowed_lateness_ms - p.max_gap_ms - p.window_ms;
        let keep_from = floor - p.max_gap_ms;
        for t in self.vehicles.values_mut() {
            let i = t.samples.partition_point(|s| s.ts < keep_from);
            if i > 1 {
                t.samples.drain(..i - 1);
                // A vehicle gone silent keeps its anchor, not the buffer it reported into (a
                // reporting one holds most of its buffer, so this never churns).
                if t.samples.capacity() > 4 * t.samples.len().max(4) {
                    t.samples.shrink_to(2 * t.samples.len());
                }
            }
        }
        self.vehicle_versions.retain(|(_, ws), _| *ws >= floor);
        self.fleet_versions.retain(|(_, ws), _| *ws >= floor);
    }
}

#[cfg(test)]
mod tests;
