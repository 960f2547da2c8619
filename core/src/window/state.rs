use std::collections::{BTreeMap, BTreeSet, HashMap};

mod id;
mod legacy;
#[cfg(test)]
mod oracle;
mod points;
mod track;

use serde::{Deserialize, Serialize};

use self::id::Id;
use self::points::Point;
use self::track::VehicleTrack;
use super::counters::Counters;
use crate::config::TelemetryConfig;
use crate::telemetry::{kph_to_ckph, TelemetryEvent, VehicleStatus};

/// Speeds above this (hundredths of km/h) count as moving.
pub(crate) const MOVING_CKPH: i64 = 50;

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
    pub(crate) fn floor(&self, ts: i64) -> i64 {
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
        SampleRef::of(&Point::of_event(e), e).to_owned()
    }

    /// The event's mission, if it names one.
    fn mission_of(e: &TelemetryEvent) -> Option<&str> {
        e.mission_id.as_deref().filter(|m| !m.is_empty())
    }
}

/// [`Sample`] borrowing the event's mission, as a delta writes it: the same fields in the same
/// order, so the bytes are those of the owned sample.
#[derive(Clone, Copy, Serialize)]
struct SampleRef<'a> {
    ts: i64,
    seq: i64,
    status: VehicleStatus,
    odometer_m: i64,
    energy_wh: i64,
    speed_ckph: i64,
    mission: Option<&'a str>,
}

impl<'a> SampleRef<'a> {
    /// The sample of `e`, whose point is `p` (converted once).
    fn of(p: &Point, e: &'a TelemetryEvent) -> Self {
        SampleRef {
            ts: p.ts,
            seq: p.seq,
            status: p.status,
            odometer_m: p.odometer_m,
            energy_wh: p.energy_wh,
            speed_ckph: kph_to_ckph(e.speed_kph),
            mission: Sample::mission_of(e),
        }
    }

    /// The length of the sample [`SampleRef::encode_delta`] wrote at the start of `bytes`.
    fn encoded_len(bytes: &[u8]) -> usize {
        use crate::wire::get_u64;
        let mut at = 0;
        // ts, seq, status, odometer, energy, speed; then the mission.
        for _ in 0..6 {
            get_u64(bytes, &mut at);
        }
        at += 1;
        if bytes[at - 1] == 1 {
            let len = get_u64(bytes, &mut at);
            at += len as usize;
        }
        at
    }

    /// The bytes [`put_delta`] writes for the sample.
    fn encode_delta(&self, out: &mut Vec<u8>) {
        use crate::wire::{put_i64, put_option_str, put_status};
        put_i64(out, self.ts);
        put_i64(out, self.seq);
        put_status(out, self.status);
        put_i64(out, self.odometer_m);
        put_i64(out, self.energy_wh);
        put_i64(out, self.speed_ckph);
        put_option_str(out, self.mission);
    }

    fn to_owned(self) -> Sample {
        let SampleRef {
            ts,
            seq,
            status,
            odometer_m,
            energy_wh,
            speed_ckph,
            mission,
        } = self;
        let mission = mission.map(str::to_owned);
        Sample {
            ts,
            seq,
            status,
            odometer_m,
            energy_wh,
            speed_ckph,
            mission,
        }
    }
}

/// The encoding of checkpoint deltas: bincode with variable-length integers.
fn delta_options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
}

/// Appends `v` as [`delta_options`] encode it.
fn put_delta<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    use bincode::Options;
    delta_options()
        .serialize_into(out, v)
        .expect("a delta part serialises into memory");
}

/// A vehicle's part of the running journal: where its samples accepted since the last delta
/// are in the journal's log, and whether its fleet changed. Kept in the vehicle's track (which
/// counting a sample touches anyway); the samples themselves go to the one log of the
/// partition, whose end is in cache, instead of a buffer per vehicle (a cold block per event
/// at 10,000 vehicles, BENCHMARKS §3o).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pending {
    /// Offset of the vehicle's newest entry in [`Journal::log`] (while `count > 0`).
    last: usize,
    count: u32,
    /// The vehicle is new or its fleet changed since the last delta (it is in
    /// [`Journal::refleeted`]).
    fleet_changed: bool,
}

impl Pending {
    /// Appends the sample to the log, as [`put_delta`] writes a [`SampleRef`] (by hand: once
    /// per event, BENCHMARKS §3n; a test holds the two to the same bytes).
    fn push(&mut self, j: &mut Journal, vehicle: &str, p: &Point, e: &TelemetryEvent) {
        let at = j.log.len();
        let back = if self.count == 0 {
            j.touched.push(Id::new(vehicle));
            0
        } else {
            at - self.last
        };
        crate::wire::put_varint(&mut j.log, back as u64);
        SampleRef::of(p, e).encode_delta(&mut j.log);
        self.last = at;
        self.count += 1;
    }

    /// Marks the vehicle new or moved to another fleet since the last delta.
    fn fleet_changed(&mut self, j: &mut Journal, vehicle: &str) {
        if !self.fleet_changed {
            self.fleet_changed = true;
            j.refleeted.push(Id::new(vehicle));
        }
    }

    /// Appends the vehicle's samples as a `Vec<Sample>` of a delta (in the order accepted),
    /// read from `log` through `chain` (scratch space), and forgets them.
    fn take_into(&mut self, log: &[u8], chain: &mut Vec<usize>, out: &mut Vec<u8>) {
        use crate::wire::get_varint;
        chain.clear();
        if self.count > 0 {
            let mut at = self.last;
            loop {
                let mut sample = at;
                let back = get_varint(log, &mut sample) as usize;
                chain.push(sample);
                if back == 0 {
                    break;
                }
                at -= back;
            }
        }
        debug_assert_eq!(chain.len(), self.count as usize);
        put_delta(out, &(chain.len() as u64));
        for &sample in chain.iter().rev() {
            let end = sample + SampleRef::encoded_len(&log[sample..]);
            out.extend_from_slice(&log[sample..end]);
        }
        self.count = 0;
    }
}

/// Emits a vehicle window again (or first): its next version, journaled.
fn bump_vehicle(
    slot: &mut track::Slot,
    journal: Option<&mut Journal>,
    vehicle: &str,
    ws: i64,
) -> u32 {
    slot.version += 1;
    if let Some(j) = journal {
        j.vehicle_versions
            .push(((vehicle.to_owned(), ws), slot.version));
    }
    slot.version
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
///
/// Bounded: per vehicle it keeps the counters of the windows a late sample can still change
/// (from the window of the oldest acceptable sample on) and the samples such a sample can fall
/// next to (compact points, see `points.rs`), and nothing of a vehicle gone silent but one
/// anchor point. A late sample updates the counters in place through its two neighbours
/// (`track.rs`); the results equal recomputing the windows from every sample (the test
/// oracle, the previous kernel, checks this on random streams).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PartitionWindows {
    /// The layout's tag, first in a checkpoint ([`PartitionWindows::decode`]).
    layout: Layout,
    max_ts: Option<i64>,
    /// Every window ending at or before this is closed.
    closed_until: Option<i64>,
    /// Hashed: an event's vehicle is found in one probe however many vehicles the partition
    /// holds (a search of an ordered map compares the id with a dozen cold ones at 10,000).
    /// The walks whose order shows (closing a window, the serialised state) sort the ids.
    #[serde(serialize_with = "sorted_by_id")]
    vehicles: Vehicles,
    fleet_versions: BTreeMap<(String, i64), u32>,
    /// Changes since [`PartitionWindows::start_journal`], for incremental checkpoints; not
    /// part of the state (never serialised).
    #[serde(skip)]
    journal: Option<Journal>,
}

/// The vehicles of a partition by id.
type Vehicles = HashMap<Id, VehicleTrack, hashbrown::DefaultHashBuilder>;

/// Serialises the vehicles in id order, as the ordered map this layout was written from did:
/// the same state gives the same bytes, whatever the map's insertion history.
fn sorted_by_id<S: serde::Serializer>(v: &Vehicles, s: S) -> Result<S::Ok, S::Error> {
    let mut entries: Vec<(&Id, &VehicleTrack)> = v.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    s.collect_map(entries)
}

/// Tags the serialised layout of [`PartitionWindows`]: the first 8 bytes of a checkpoint. The
/// layout before it (the unbounded kernel's) starts with an `Option` tag byte and a
/// timestamp, never with these bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Layout;

impl Layout {
    const TAG: u64 = u64::from_le_bytes(*b"AMwin\x02\x00\x00");
}

impl Serialize for Layout {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(Self::TAG)
    }
}

impl<'de> Deserialize<'de> for Layout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            Self::TAG => Ok(Layout),
            other => Err(serde::de::Error::custom(format!(
                "not the bounded window layout (tag {other:#x})"
            ))),
        }
    }
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

/// What a running journal records (each vehicle's track holds its [`Pending`] part). Its
/// buffers are kept from delta to delta.
#[derive(Debug, Clone, Default)]
struct Journal {
    vehicle_versions: Vec<((String, i64), u32)>,
    fleet_versions: Vec<((String, i64), u32)>,
    /// The samples accepted since the last delta, every vehicle's in one log in the order
    /// accepted. An entry is the distance back to the same vehicle's entry before it (0 for
    /// its first; LEB128), then the sample as the delta writes it; a vehicle's entries are
    /// chained back from its [`Pending::last`].
    log: Vec<u8>,
    /// The vehicles with samples in the log, in the order of their first.
    touched: Vec<Id>,
    /// The vehicles new or moved to another fleet since the last delta, in that order.
    refleeted: Vec<Id>,
    /// Scratch space: where one vehicle's samples are, while a delta is written.
    chain: Vec<usize>,
}

impl Journal {
    /// Bytes its buffers hold.
    fn heap_bytes(&self) -> usize {
        let versions = |v: &Vec<((String, i64), u32)>| {
            v.capacity() * std::mem::size_of::<((String, i64), u32)>()
                + v.iter().map(|((id, _), _)| id.capacity()).sum::<usize>()
        };
        versions(&self.vehicle_versions)
            + versions(&self.fleet_versions)
            + self.log.capacity()
            + (self.touched.capacity() + self.refleeted.capacity()) * std::mem::size_of::<Id>()
            + self.chain.capacity() * std::mem::size_of::<usize>()
    }
}

impl WindowsDelta {
    /// Accepted samples it carries.
    pub fn samples(&self) -> usize {
        self.samples.iter().map(|(_, s)| s.len()).sum()
    }

    /// The delta as a checkpoint stores it ([`PartitionWindows::take_delta_encoded`] writes
    /// the same bytes without building the delta).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_delta(&mut out, self);
        out
    }

    /// Reads what [`WindowsDelta::encode`] or [`PartitionWindows::take_delta_encoded`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<WindowsDelta, String> {
        use bincode::Options;
        delta_options()
            .deserialize(bytes)
            .map_err(|e| format!("unreadable checkpoint delta: {e}"))
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
    /// Reads a checkpointed state: this layout, or the one earlier releases wrote (every
    /// retained sample), upgraded to this one with the same windows and versions.
    pub fn decode(bytes: &[u8], p: &WindowParams) -> Result<PartitionWindows, String> {
        match bincode::deserialize::<PartitionWindows>(bytes) {
            Ok(w) => Ok(w),
            Err(e) => match bincode::deserialize::<legacy::Legacy>(bytes) {
                Ok(l) => Ok(l.upgrade(p)),
                Err(_) => Err(e.to_string()),
            },
        }
    }

    pub fn closed_until_ms(&self) -> Option<i64> {
        self.closed_until
    }

    pub fn max_ts_ms(&self) -> Option<i64> {
        self.max_ts
    }

    /// Number of samples held, anchors included (for state-size metrics).
    pub fn retained_samples(&self) -> usize {
        self.vehicles.values().map(VehicleTrack::points).sum()
    }

    /// Bytes the vehicles' entries hold: ids, tracks and their buffers (capacity, used or
    /// not), the versions of fleet windows, and a running journal's buffers. The map's own
    /// nodes and the allocator's overhead are not counted (a process's RSS shows them).
    pub fn state_bytes(&self) -> usize {
        let vehicles: usize = self
            .vehicles
            .iter()
            .map(|(k, t)| {
                std::mem::size_of::<Id>()
                    + k.heap_bytes()
                    + std::mem::size_of::<VehicleTrack>()
                    + t.heap_bytes()
            })
            .sum();
        let fleets: usize = self
            .fleet_versions
            .keys()
            .map(|(f, _)| std::mem::size_of::<((String, i64), u32)>() + f.capacity())
            .sum();
        vehicles + fleets + self.journal.as_ref().map_or(0, Journal::heap_bytes)
    }

    /// The fleet's partial for the window at `ws`: the sum over its vehicles in this
    /// partition.
    fn fleet_counters(&self, fleet: &str, ws: i64) -> Counters {
        let mut c = Counters::default();
        for t in self.vehicles.values().filter(|t| t.fleet_id == *fleet) {
            if let Some(s) = t.slot(ws) {
                c.add(&s.counters());
            }
        }
        c
    }

    /// Emits the fleet partial of the window at `ws` under its next version.
    fn emit_fleet(
        &mut self,
        p: &WindowParams,
        fleet: String,
        ws: i64,
        counters: Counters,
        out: &mut Vec<WindowResult>,
    ) {
        let key = (fleet, ws);
        let v = self.fleet_versions.get(&key).copied().unwrap_or(0) + 1;
        if let Some(j) = self.journal.as_mut() {
            j.fleet_versions.push((key.clone(), v));
        }
        let fleet_id = key.0.clone();
        self.fleet_versions.insert(key, v);
        out.push(WindowResult {
            scope: WindowScope::FleetPartial,
            fleet_id,
            vehicle_id: String::new(),
            window_start_ms: ws,
            window_end_ms: ws + p.window_ms,
            version: v,
            counters,
        });
    }

    /// Starts (or restarts) recording changes: the next [`PartitionWindows::take_delta`]
    /// returns what changed from the state as it is now.
    pub fn start_journal(&mut self) {
        self.journal = Some(Journal::default());
        for t in self.vehicles.values_mut() {
            t.pending = Pending::default();
        }
    }

    /// What changed since the journal started, and restarts it; `None` when no journal runs.
    pub fn take_delta(&mut self) -> Option<WindowsDelta> {
        let bytes = self.take_delta_encoded()?;
        Some(WindowsDelta::decode(&bytes).expect("a delta reads back"))
    }

    /// [`PartitionWindows::take_delta`] as [`WindowsDelta::encode`] writes it, straight from
    /// the journal: the samples are already encoded, and nothing is copied into a delta
    /// first. It looks up only the vehicles the journal names (those with samples or a new
    /// fleet), in the order they first changed, so its cost follows the changes, not the
    /// vehicles held; when a quarter or more of the vehicles have samples, it walks the map
    /// once instead, in the map's order.
    pub fn take_delta_encoded(&mut self) -> Option<Vec<u8>> {
        let Self {
            journal, vehicles, ..
        } = self;
        let j = journal.as_mut()?;
        // The fields of `WindowsDelta` in order; a `Vec` is its length, then its items.
        let mut out = Vec::with_capacity(64 + j.log.len());
        put_delta(&mut out, &self.max_ts);
        put_delta(&mut out, &self.closed_until);
        put_delta(&mut out, &(j.refleeted.len() as u64));
        for id in j.refleeted.drain(..) {
            let t = vehicles
                .get_mut(id.as_bytes())
                .expect("a journaled vehicle is held (vehicles are never removed)");
            t.pending.fleet_changed = false;
            put_delta(&mut out, &(id.as_str(), t.fleet_id.as_str()));
        }
        put_delta(&mut out, &(j.touched.len() as u64));
        if j.touched.len() * 4 < vehicles.len() {
            for id in j.touched.drain(..) {
                let t = vehicles
                    .get_mut(id.as_bytes())
                    .expect("a journaled vehicle is held (vehicles are never removed)");
                put_delta(&mut out, id.as_str());
                t.pending.take_into(&j.log, &mut j.chain, &mut out);
            }
        } else {
            // A quarter or more of the partition's vehicles changed: one walk of the map in
            // memory order costs less than a lookup each (BENCHMARKS §3o).
            j.touched.clear();
            for (id, t) in vehicles.iter_mut() {
                if t.pending.count > 0 {
                    put_delta(&mut out, id.as_str());
                    t.pending.take_into(&j.log, &mut j.chain, &mut out);
                }
            }
        }
        // A burst (a backlog's big batches) does not keep its memory for good.
        let used = j.log.len();
        j.log.clear();
        if j.log.capacity() > (1 << 20) && j.log.capacity() > 4 * used {
            j.log.shrink_to(used);
        }
        put_delta(&mut out, &std::mem::take(&mut j.vehicle_versions));
        put_delta(&mut out, &std::mem::take(&mut j.fleet_versions));
        Some(out)
    }

    /// Brings a state up to date with `delta`, taken from a state equal to this one: the
    /// result equals the state the delta was taken from. The samples are counted again (a
    /// window's counters depend only on which samples it holds, not on their order), versions
    /// are set in order, and the pruning that followed them live is done again (it depends
    /// only on the closed frontier, and every sample accepted after a pruning lies inside
    /// what that pruning kept).
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
            self.vehicles.entry(Id::new(&vehicle)).or_default().fleet_id = Id::new(&fleet);
        }
        for (vehicle, samples) in samples {
            let track = self.vehicles.entry(Id::new(&vehicle)).or_default();
            for s in samples {
                track.insert_sample(p, &s);
            }
        }
        for ((vehicle, ws), version) in vehicle_versions {
            if let Some(slot) = self
                .vehicles
                .get_mut(vehicle.as_bytes())
                .and_then(|t| t.slot_mut(ws))
            {
                slot.version = version;
            }
        }
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
        let ts = ev.ts_ms;
        let closed_until = *self.closed_until.get_or_insert_with(|| p.floor(ts));
        if ts < closed_until - p.allowed_lateness_ms {
            return Ingest::TooLate {
                closed_until_ms: closed_until,
            };
        }
        let vid = &ev.vehicle_id;
        // Looked up by reference, once: the id is cloned only for a vehicle seen the first time.
        let track = match self.vehicles.get_mut(vid.as_bytes()) {
            Some(t) => t,
            None => self.vehicles.entry(Id::new(vid)).or_default(),
        };
        if track.fleet_id != *ev.fleet_id {
            track.fleet_id = Id::new(&ev.fleet_id);
            if let Some(j) = self.journal.as_mut() {
                track.pending.fleet_changed(j, vid);
            }
        }
        let late = ts < closed_until;
        // The closed windows this sample can change (from its own on), as they are now.
        let before: Vec<(i64, Counters)> = if late {
            (p.floor(ts)..closed_until)
                .step_by(p.window_ms as usize)
                .map(|ws| (ws, track.slot(ws).map(|s| s.counters()).unwrap_or_default()))
                .collect()
        } else {
            Vec::new()
        };
        let mission = Sample::mission_of(ev);
        let point = Point::of_event(ev);
        let Some(newest) = track.insert(p, point, kph_to_ckph(ev.speed_kph), mission) else {
            return Ingest::Duplicate;
        };
        if let Some(j) = self.journal.as_mut() {
            track.pending.push(j, vid, &point, ev);
        }
        for (ws, before) in before {
            let track = self
                .vehicles
                .get_mut(vid.as_bytes())
                .expect("counted above");
            let Some(slot) = track.slot_mut(ws) else {
                continue; // still empty
            };
            let after = slot.counters();
            if after == before {
                continue;
            }
            let version = bump_vehicle(slot, self.journal.as_mut(), vid, ws);
            let fleet = track.fleet_id.as_str().to_owned();
            out.push(WindowResult {
                scope: WindowScope::Vehicle,
                fleet_id: fleet.clone(),
                vehicle_id: vid.clone(),
                window_start_ms: ws,
                window_end_ms: ws + p.window_ms,
                version,
                counters: after,
            });
            // The vehicle's counters changed, so its fleet's sum did too.
            let counters = self.fleet_counters(&fleet, ws);
            self.emit_fleet(p, fleet, ws, counters, out);
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
            // Jump over windows no segment can reach: the first sample whose segment can reach
            // past the frontier decides the next window to look at.
            let mut next: Option<i64> = None;
            for t in self.vehicles.values() {
                if let Some(ws) = t.next_window(p, closed_until) {
                    next = Some(next.map_or(ws, |n| n.min(ws)));
                    if ws == closed_until {
                        break;
                    }
                }
            }
            let Some(ws) = next else {
                closed_until = p.floor(watermark);
                break;
            };
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
        let mut fleets: BTreeMap<&str, Counters> = BTreeMap::new();
        // In id order, the order the window's results go out in.
        let mut closing: Vec<(&Id, &mut VehicleTrack)> = self
            .vehicles
            .iter_mut()
            .filter(|(_, t)| t.slot(ws).is_some_and(|s| !s.is_empty()))
            .collect();
        closing.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (vehicle, t) in closing {
            let slot = t.slot_mut(ws).expect("filtered above");
            let c = slot.counters();
            let version = bump_vehicle(slot, self.journal.as_mut(), vehicle.as_str(), ws);
            fleets.entry(t.fleet_id.as_str()).or_default().add(&c);
            out.push(WindowResult {
                scope: WindowScope::Vehicle,
                fleet_id: t.fleet_id.as_str().to_owned(),
                vehicle_id: vehicle.as_str().to_owned(),
                window_start_ms: ws,
                window_end_ms: we,
                version,
                counters: c,
            });
        }
        let fleets: Vec<(String, Counters)> =
            fleets.into_iter().map(|(f, c)| (f.to_owned(), c)).collect();
        for (fleet, c) in fleets {
            self.emit_fleet(p, fleet, ws, c, out);
        }
    }

    /// Drops what no acceptable late sample can touch any more: the windows before the one of
    /// the oldest acceptable sample, and the samples older than it, keeping the newest of
    /// those per vehicle as its anchor (a late sample's neighbour, and all the window jump in
    /// [`PartitionWindows::advance`] needs of them: it only asks whether a vehicle has a
    /// sample within a gap of the frontier, and the anchor answers for the ones dropped).
    fn prune(&mut self, p: &WindowParams) {
        let Some(closed_until) = self.closed_until else {
            return;
        };
        let slot_floor = p.floor(closed_until - p.allowed_lateness_ms);
        let point_floor = closed_until - p.allowed_lateness_ms;
        for t in self.vehicles.values_mut() {
            t.prune(slot_floor, point_floor);
        }
        self.fleet_versions.retain(|(_, ws), _| *ws >= slot_floor);
    }
}

#[cfg(test)]
mod tests;
