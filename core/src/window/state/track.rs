//! One vehicle's state: its retained points and, per window that can still change, the
//! window's counters, kept up to date as each sample is counted. A sample changes the counters
//! only through its two neighbours (the segment of the one before is cut short where it
//! begins; the one after takes its distance, energy and fault entry from it instead), so
//! counting it touches a handful of values, however late it is.

use serde::{Deserialize, Serialize};

use super::points::{Place, Point, Points};
use super::{Counters, Sample, WindowParams, MOVING_CKPH};
use crate::telemetry::VehicleStatus;

/// One vehicle's counters for the window starting at `ws` (the additive parts; the rest of
/// [`Counters`] is derived from them in [`Slot::counters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Slot {
    pub ws: i64,
    /// 0 until the window closes; then the version last emitted.
    pub version: u32,
    /// Status time per [`VehicleStatus`] (in its declaration order). A window's segments do
    /// not overlap, so each fits in u32 while a window is at most a day (validated).
    status_ms: [u32; 7],
    samples: u32,
    moving_samples: u32,
    fault_count: u32,
    active: bool,
    distance_m: u64,
    energy_wh: u64,
    moving_speed_ckph_sum: u64,
    /// Distinct mission ids of the window's samples, sorted.
    missions: Vec<Box<str>>,
}

impl Slot {
    fn new(ws: i64) -> Slot {
        Slot {
            ws,
            ..Slot::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.samples == 0 && self.status_ms.iter().all(|&t| t == 0)
    }

    /// The window's counters, exactly as [`super::vehicle_counters`] computes them from the
    /// samples.
    pub fn counters(&self) -> Counters {
        let mut c = Counters::default();
        for (status, &ms) in VehicleStatus::ALL.iter().zip(&self.status_ms) {
            if ms > 0 {
                c.add_status_time(*status, u64::from(ms));
            }
        }
        c.samples = u64::from(self.samples);
        c.distance_m = self.distance_m;
        c.energy_wh = self.energy_wh;
        c.moving_samples = u64::from(self.moving_samples);
        c.moving_speed_ckph_sum = self.moving_speed_ckph_sum;
        c.fault_count = u64::from(self.fault_count);
        c.mission_count = self.missions.len() as u64;
        c.active_vehicles = u64::from(self.active);
        c.vehicles = u64::from(!c.is_empty());
        c
    }

    fn heap_bytes(&self) -> usize {
        self.missions.capacity() * std::mem::size_of::<Box<str>>()
            + self.missions.iter().map(|m| m.len()).sum::<usize>()
    }
}

/// A pair's distance and energy (the later sample's deltas; a counter reset counts 0).
fn deltas(prev: &Point, p: &Point) -> (u64, u64) {
    (
        (p.odometer_m - prev.odometer_m).max(0) as u64,
        (p.energy_wh - prev.energy_wh).max(0) as u64,
    )
}

/// Whether `p` enters fault (its previous sample, if any, is not in fault).
fn enters_fault(prev: Option<&Point>, p: &Point) -> bool {
    p.status == VehicleStatus::Fault && prev.is_none_or(|q| q.status != VehicleStatus::Fault)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct VehicleTrack {
    pub fleet_id: super::id::Id,
    /// The newest point older than the retained ones (a late sample's neighbour when it falls
    /// before them all).
    anchor: Option<Point>,
    /// Every counted sample since the anchor, sorted by (ts, seq).
    points: Points,
    /// The newest point of all (the last of `points`, or the anchor).
    newest: Option<Point>,
    /// Windows that can still change, by start; a window with nothing in it has no slot.
    slots: Vec<Slot>,
    /// While a journal runs: where the samples accepted since it last gave a delta are, and
    /// whether the fleet changed (or the vehicle is new). Not part of the state.
    #[serde(skip)]
    pub pending: super::Pending,
}

impl VehicleTrack {
    pub fn points(&self) -> usize {
        self.points.len() + usize::from(self.anchor.is_some())
    }

    /// Bytes allocated outside the track itself.
    pub fn heap_bytes(&self) -> usize {
        self.fleet_id.heap_bytes()
            + self.points.heap_bytes()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.slots.iter().map(Slot::heap_bytes).sum::<usize>()
    }

    pub fn slot(&self, ws: i64) -> Option<&Slot> {
        self.slots
            .binary_search_by_key(&ws, |s| s.ws)
            .ok()
            .map(|i| &self.slots[i])
    }

    pub fn slot_mut(&mut self, ws: i64) -> Option<&mut Slot> {
        self.slots
            .binary_search_by_key(&ws, |s| s.ws)
            .ok()
            .map(|i| &mut self.slots[i])
    }

    /// The first window at or after `closed_until` this vehicle's samples may reach: that of
    /// its first sample at or after `closed_until - max_gap` (or `closed_until`, if earlier);
    /// `None` when it has none.
    pub fn next_window(&self, p: &WindowParams, closed_until: i64) -> Option<i64> {
        let from = closed_until - p.max_gap_ms;
        if self.newest.is_none_or(|n| n.ts < from) {
            return None;
        }
        if self.slot(closed_until).is_some_and(|s| s.samples > 0) {
            return Some(closed_until);
        }
        self.anchor
            .into_iter()
            .chain(self.points.iter(self.anchor.as_ref()))
            .find(|q| q.ts >= from)
            .map(|q| closed_until.max(p.floor(q.ts)))
    }

    fn slot_entry(&mut self, ws: i64) -> &mut Slot {
        let i = match self.slots.binary_search_by_key(&ws, |s| s.ws) {
            Ok(i) => i,
            Err(i) => {
                if self.slots.len() == self.slots.capacity() {
                    // One at a time: a reporting vehicle holds a steady handful of windows.
                    self.slots.reserve_exact(1);
                }
                self.slots.insert(i, Slot::new(ws));
                i
            }
        };
        &mut self.slots[i]
    }

    /// Adds (or, with `remove`, takes away) `status` time over `[from, to)`, split exactly
    /// across the windows it overlaps. True when a window was left with nothing.
    fn status_time(
        &mut self,
        p: &WindowParams,
        status: VehicleStatus,
        from: i64,
        to: i64,
        remove: bool,
    ) -> bool {
        let mut emptied = false;
        let mut start = from;
        while start < to {
            let ws = p.floor(start);
            let end = to.min(ws + p.window_ms);
            let ms = u32::try_from(end - start).expect("a window is at most a day");
            let slot = self.slot_entry(ws);
            if remove {
                slot.status_ms[status as usize] -= ms;
                emptied |= slot.version == 0 && slot.is_empty();
            } else {
                slot.status_ms[status as usize] += ms;
            }
            start = end;
        }
        emptied
    }

    /// Counts a sample (`point`, its speed and mission): places it among the points and
    /// updates the counters of the windows it changes. `None` when the same (ts, seq) was
    /// counted already; else whether it is now the newest. The caller makes sure it is newer
    /// than the anchor.
    pub fn insert(
        &mut self,
        p: &WindowParams,
        point: Point,
        speed_ckph: i64,
        mission: Option<&str>,
    ) -> Option<bool> {
        let s = &point;
        let (prev, next, place) = match self.newest {
            Some(last) if last.key() >= point.key() => {
                match self.points.place(self.anchor.as_ref(), point.key()) {
                    Place::Present => return None,
                    place @ Place::Between { prev, next, .. } => (prev, next, Some(place)),
                }
            }
            last => (last, None, None),
        };
        let gap = p.max_gap_ms;
        // The segment before is cut short at s; s's own segment starts.
        // (Added before the cut is taken away: a window only the cut leaves empty is one s's
        // segment does not reach either.)
        let end = s.ts + next.map_or(gap, |n| (n.ts - s.ts).min(gap));
        self.status_time(p, s.status, s.ts, end, false);
        let mut emptied = false;
        if let Some(q) = &prev {
            let old_end = q.ts + next.map_or(gap, |n| (n.ts - q.ts).min(gap));
            if old_end > s.ts {
                emptied = self.status_time(p, q.status, s.ts, old_end, true);
            }
        }
        // s in its window.
        let slot = self.slot_entry(p.floor(s.ts));
        slot.samples += 1;
        if let Some(q) = &prev {
            let (d, e) = deltas(q, &point);
            slot.distance_m += d;
            slot.energy_wh += e;
        }
        if enters_fault(prev.as_ref(), &point) {
            slot.fault_count += 1;
        }
        if speed_ckph > MOVING_CKPH {
            slot.moving_samples += 1;
            slot.moving_speed_ckph_sum += speed_ckph as u64;
        }
        slot.active |= s.status != VehicleStatus::Offline;
        if let Some(m) = mission {
            if let Err(i) = slot.missions.binary_search_by(|x| (**x).cmp(m)) {
                slot.missions.insert(i, m.into());
            }
        }
        // The sample after now follows s.
        if let Some(n) = &next {
            let slot = self.slot_entry(p.floor(n.ts));
            if let Some(q) = &prev {
                let (d, e) = deltas(q, n);
                slot.distance_m -= d;
                slot.energy_wh -= e;
            }
            let (d, e) = deltas(&point, n);
            slot.distance_m += d;
            slot.energy_wh += e;
            if enters_fault(prev.as_ref(), n) {
                slot.fault_count -= 1;
            }
            if enters_fault(Some(&point), n) {
                slot.fault_count += 1;
            }
        }
        // Windows left with nothing (a segment cut short no longer reaches them) hold no slot.
        if emptied {
            self.slots.retain(|s| s.version > 0 || !s.is_empty());
        }
        match place {
            Some(place) => {
                self.points.insert(&place, &point);
                Some(false)
            }
            None => {
                self.points.push(self.newest.as_ref(), &point);
                self.newest = Some(point);
                Some(true)
            }
        }
    }

    /// Counts a sample (see [`VehicleTrack::insert`]).
    pub fn insert_sample(&mut self, p: &WindowParams, s: &Sample) -> Option<bool> {
        self.insert(p, Point::of(s), s.speed_ckph, s.mission.as_deref())
    }

    /// Forgets the windows before `slot_floor` and the points before `point_floor` (keeping
    /// the newest of those as the anchor).
    pub fn prune(&mut self, slot_floor: i64, point_floor: i64) {
        let i = self.slots.partition_point(|s| s.ws < slot_floor);
        if i > 0 {
            self.slots.drain(..i);
            if self.slots.is_empty() {
                self.slots = Vec::new();
            }
        }
        if let Some(a) = self.points.drop_before(self.anchor.as_ref(), point_floor) {
            self.anchor = Some(a);
            self.points.trim();
        }
    }
}
