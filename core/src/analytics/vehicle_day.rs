//! One vehicle's UTC days as its telemetry streams in: the day's window counters (the same
//! definitions as a telemetry window spanning the day), its battery discharge segments and
//! its fault, precursor and failure counts, with constant state per vehicle.
//!
//! Semantics (the window kernel's, `crate::window`, for a window of one UTC day):
//! - Samples are taken in `(ts_ms, seq)` order per vehicle; one not newer than the vehicle's
//!   newest is ignored ([`DayIngest::Older`]: a repeat or an out-of-order sample), one in a day
//!   already closed for the vehicle is refused ([`DayIngest::Late`]).
//! - A sample's status holds until the next sample, at most `max_gap_ms`; that time is split
//!   at midnight between the days it covers (a day with no sample of its own but covered by a
//!   held status gets a row too, as its window would).
//! - Distance and energy are the odometer and energy-counter increases from the previous
//!   sample (decreases count 0: counter resets), on the day of the later sample; a fault is a
//!   sample in `fault` after one that was not.
//! - Battery: the samples feed a [`SegmentBuilder`]; a segment belongs to the day of its last
//!   sample. A run still open when its day closes ends there.
//! - Precursors and failures as in [`crate::analytics::failure`] ([`DayCounts`]).
//!
//! A day is closed by the caller ([`VehicleDays::close_until`]) once no sample of it can
//! still arrive (the pipeline's watermark passed its end plus a delay).
//!
//! Pure: no clock, no I/O.

use serde::{Deserialize, Serialize};

use crate::analytics::battery::{BatterySample, Segment, SegmentBuilder, SohParams};
use crate::analytics::failure::{code_flags, DayCounts};
use crate::window::Counters;
use crate::{TelemetryEvent, VehicleStatus};

pub const DAY_MS: i64 = 86_400_000;

/// Start of the UTC day holding `ts_ms`.
pub fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(DAY_MS) * DAY_MS
}

/// What the fold needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct DayParams {
    pub max_gap_ms: i64,
    pub soh: SohParams,
    pub precursor_prefix: String,
    pub failure_prefix: String,
}

/// The vehicle's newest sample, as far as the fold needs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Last {
    ts: i64,
    seq: i64,
    status: VehicleStatus,
    odometer_m: i64,
    energy_wh: i64,
    failure_code: bool,
}

/// A day still open for the vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenDay {
    day_ms: i64,
    counters: Counters,
    counts: DayCounts,
    segments: Vec<Segment>,
    /// Odometer of the day's last sample, km.
    odometer_km: Option<f64>,
}

impl OpenDay {
    fn new(day_ms: i64) -> OpenDay {
        OpenDay {
            day_ms,
            counters: Counters::default(),
            counts: DayCounts {
                day_ms,
                ..DayCounts::default()
            },
            segments: Vec::new(),
            odometer_km: None,
        }
    }
}

/// A closed vehicle-day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedDay {
    pub day_ms: i64,
    pub counters: Counters,
    pub counts: DayCounts,
    /// The discharge segments that ended on the day.
    pub segments: Vec<Segment>,
    pub odometer_km: Option<f64>,
}

/// What became of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayIngest {
    Accepted,
    /// Not newer than the vehicle's newest sample.
    Older,
    /// Its day is closed for the vehicle.
    Late,
}

/// One vehicle's open days and running state (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VehicleDays {
    last: Option<Last>,
    /// The newest sample's status is counted up to here.
    held_until: i64,
    battery: SegmentBuilder,
    /// Ascending; usually one, two around midnight.
    open: Vec<OpenDay>,
    /// Days starting before this are closed.
    closed_before: i64,
}

fn km_to_m(km: f64) -> i64 {
    (km * 1000.0).round() as i64
}

fn kwh_to_wh(kwh: f64) -> i64 {
    (kwh * 1000.0).round() as i64
}

impl VehicleDays {
    fn day_mut(&mut self, day_ms: i64) -> Option<&mut OpenDay> {
        if day_ms < self.closed_before {
            return None;
        }
        let i = match self.open.binary_search_by_key(&day_ms, |d| d.day_ms) {
            Ok(i) => i,
            Err(i) => {
                self.open.insert(i, OpenDay::new(day_ms));
                i
            }
        };
        Some(&mut self.open[i])
    }

    /// Counts `status` over `[from, to)`, split at midnight, on the days still open.
    fn hold(&mut self, from: i64, to: i64, status: VehicleStatus) {
        let mut t = from;
        while t < to {
            let day = day_of(t);
            let end = to.min(day + DAY_MS);
            if let Some(d) = self.day_mut(day) {
                d.counters.add_status_time(status, (end - t) as u64);
            }
            t = end;
        }
    }

    /// Folds one sample in.
    pub fn ingest(&mut self, e: &TelemetryEvent, p: &DayParams) -> DayIngest {
        if self.last.is_some_and(|l| (e.ts_ms, e.seq) <= (l.ts, l.seq)) {
            return DayIngest::Older;
        }
        let day = day_of(e.ts_ms);
        if day < self.closed_before {
            return DayIngest::Late;
        }
        if let Some(l) = self.last {
            let end = l.ts + (e.ts_ms - l.ts).min(p.max_gap_ms);
            self.hold(l.ts.max(self.held_until), end, l.status);
        }
        let sample = BatterySample {
            ts_ms: e.ts_ms,
            soc_pct: e.energy_pct,
            energy_used_kwh: e.energy_used_kwh,
            odometer_km: e.odometer_km,
            charging: e.status == VehicleStatus::Charging,
        };
        if let Some(seg) = self.battery.push(&sample, &p.soh) {
            if let Some(d) = self.day_mut(day_of(seg.end_ms)) {
                d.segments.push(seg);
            }
        }
        let (precursor, failure_code) =
            code_flags(&e.fault_codes, &p.precursor_prefix, &p.failure_prefix);
        let (odometer_m, energy_wh) = (km_to_m(e.odometer_km), kwh_to_wh(e.energy_used_kwh));
        let last = self.last;
        let d = self.day_mut(day).expect("the sample's day is open");
        let c = &mut d.counters;
        c.samples += 1;
        if let Some(l) = last {
            c.distance_m += (odometer_m - l.odometer_m).max(0) as u64;
            c.energy_wh += (energy_wh - l.energy_wh).max(0) as u64;
        }
        let fault = e.status == VehicleStatus::Fault;
        let entered_fault = fault && last.is_none_or(|l| l.status != VehicleStatus::Fault);
        c.fault_count += u64::from(entered_fault);
        c.vehicles = 1;
        c.active_vehicles |= u64::from(e.status != VehicleStatus::Offline);
        let k = &mut d.counts;
        k.samples += 1;
        k.precursors += u32::from(precursor);
        k.faults += u32::from(entered_fault);
        k.failures += u32::from(failure_code && !last.is_some_and(|l| l.failure_code));
        d.odometer_km = Some(e.odometer_km);
        self.last = Some(Last {
            ts: e.ts_ms,
            seq: e.seq,
            status: e.status,
            odometer_m,
            energy_wh,
            failure_code,
        });
        self.held_until = e.ts_ms;
        DayIngest::Accepted
    }

    /// Closes every day that starts before `before_ms` (a day boundary), oldest first: the
    /// newest sample's status is counted on them up to `max_gap_ms`, and a discharge run whose
    /// last sample lies on them ends.
    pub fn close_until(&mut self, before_ms: i64, p: &DayParams) -> Vec<ClosedDay> {
        let before_ms = day_of(before_ms);
        if before_ms <= self.closed_before {
            return Vec::new();
        }
        if let Some(l) = self.last {
            let end = (l.ts + p.max_gap_ms).min(before_ms);
            if end > self.held_until.max(l.ts) {
                self.hold(l.ts.max(self.held_until), end, l.status);
                self.held_until = end;
            }
        }
        if self.battery.last_ts_ms().is_some_and(|t| t < before_ms) {
            if let Some(seg) = self.battery.finish(&p.soh) {
                if let Some(d) = self.day_mut(day_of(seg.end_ms)) {
                    d.segments.push(seg);
                }
            }
        }
        self.closed_before = before_ms;
        let keep = self.open.partition_point(|d| d.day_ms < before_ms);
        self.open
            .drain(..keep)
            .map(|d| ClosedDay {
                day_ms: d.day_ms,
                counters: d.counters,
                counts: d.counts,
                segments: d.segments,
                odometer_km: d.odometer_km,
            })
            .collect()
    }

    /// Start of the oldest day still open.
    pub fn oldest_open_day(&self) -> Option<i64> {
        self.open.first().map(|d| d.day_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::state::{vehicle_counters, Sample};

    fn params() -> DayParams {
        DayParams {
            max_gap_ms: 60_000,
            soh: SohParams::default(),
            precursor_prefix: "W-".into(),
            failure_prefix: "F-".into(),
        }
    }

    fn event(ts_ms: i64, seq: i64, status: VehicleStatus, odo: f64, kwh: f64) -> TelemetryEvent {
        TelemetryEvent {
            event_id: format!("e{seq}"),
            fleet_id: "f".into(),
            vehicle_id: "v".into(),
            ts_ms,
            seq,
            lat: 0.0,
            lon: 0.0,
            speed_kph: 0.0,
            odometer_km: odo,
            energy_pct: 80.0,
            energy_used_kwh: kwh,
            status,
            mission_id: None,
            zone_id: None,
            payload_kg: 0.0,
            fault_codes: vec![],
        }
    }

    /// The day counters equal the window kernel's counters of a one-day window over the same
    /// samples (time held across midnight, gaps, faults, counter resets).
    #[test]
    fn a_day_counts_what_a_day_long_window_counts() {
        let d0 = 20_000 * DAY_MS;
        let statuses = [
            VehicleStatus::Idle,
            VehicleStatus::OnMission,
            VehicleStatus::Fault,
            VehicleStatus::Fault,
            VehicleStatus::Maintenance,
            VehicleStatus::Offline,
            VehicleStatus::Charging,
            VehicleStatus::EnRoute,
        ];
        let mut events = Vec::new();
        let mut t = d0 + DAY_MS - 3_600_000;
        let (mut odo, mut kwh) = (1000.0, 50.0);
        for i in 0..1000i64 {
            // Irregular steps, some longer than max_gap, across midnight twice.
            t += [20_000, 45_000, 90_000, 30_000, 700_000][(i % 5) as usize];
            odo += 0.3;
            kwh = if i == 150 || i == 700 {
                0.5
            } else {
                kwh + 0.05
            };
            events.push(event(t, i, statuses[(i % 8) as usize], odo, kwh));
        }
        let p = params();
        let mut v = VehicleDays::default();
        for e in &events {
            assert_eq!(v.ingest(e, &p), DayIngest::Accepted);
        }
        assert_eq!(v.ingest(&events[10], &p), DayIngest::Older);
        let closed = v.close_until(day_of(t) + DAY_MS, &p);
        assert!(closed.len() >= 3, "{}", closed.len());
        let samples: Vec<Sample> = events.iter().map(Sample::from_event).collect();
        for c in &closed {
            let w = vehicle_counters(&samples, c.day_ms, c.day_ms + DAY_MS, p.max_gap_ms);
            for (name, a, b) in [
                ("samples", c.counters.samples, w.samples),
                ("observed_ms", c.counters.observed_ms, w.observed_ms),
                ("busy_ms", c.counters.busy_ms, w.busy_ms),
                ("available_ms", c.counters.available_ms, w.available_ms),
                (
                    "maintenance_ms",
                    c.counters.maintenance_ms,
                    w.maintenance_ms,
                ),
                ("fault_ms", c.counters.fault_ms, w.fault_ms),
                ("offline_ms", c.counters.offline_ms, w.offline_ms),
                ("charging_ms", c.counters.charging_ms, w.charging_ms),
                ("distance_m", c.counters.distance_m, w.distance_m),
                ("energy_wh", c.counters.energy_wh, w.energy_wh),
                ("fault_count", c.counters.fault_count, w.fault_count),
            ] {
                assert_eq!(a, b, "day {} {name}", c.day_ms);
            }
            assert_eq!(c.counts.faults as u64, c.counters.fault_count);
        }
        // A sample of a closed day is refused.
        let mut late = events[0].clone();
        late.ts_ms = t + 1;
        late.seq = 10_000;
        let mut old = late.clone();
        old.ts_ms = d0;
        old.seq = 10_001;
        let mut v2 = v.clone();
        assert_eq!(v2.ingest(&late, &p), DayIngest::Late);
        assert_eq!(v.ingest(&old, &p), DayIngest::Older);
    }

    #[test]
    fn segments_go_to_the_day_they_end_and_open_runs_end_with_their_day() {
        let p = DayParams {
            max_gap_ms: 6 * 3_600_000,
            ..params()
        };
        let d0 = 20_100 * DAY_MS;
        let mut v = VehicleDays::default();
        // A discharge from 23:00 to 01:00 (ends the next day), then silence.
        let start = d0 + DAY_MS - 3_600_000;
        for i in 0..=40i64 {
            let mut e = event(start + i * 180_000, i, VehicleStatus::OnMission, 0.0, 0.0);
            e.energy_pct = 90.0 - i as f64;
            e.energy_used_kwh = 100.0 + 0.6 * i as f64;
            e.odometer_km = 500.0 + i as f64;
            e.fault_codes = if i == 5 {
                vec!["W-P0A80".into()]
            } else {
                vec![]
            };
            if i == 15 {
                e.fault_codes = vec!["F-HVB".into()];
            }
            assert_eq!(v.ingest(&e, &p), DayIngest::Accepted);
        }
        let first = v.close_until(d0 + DAY_MS, &p);
        assert_eq!(first.len(), 1);
        assert!(first[0].segments.is_empty());
        assert_eq!(
            (first[0].counts.precursors, first[0].counts.failures),
            (1, 1)
        );
        let second = v.close_until(d0 + 2 * DAY_MS, &p);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].segments.len(), 1);
        assert!((second[0].segments[0].capacity_kwh - 60.0).abs() < 1e-9);
        assert_eq!(v.oldest_open_day(), None);
    }
}
