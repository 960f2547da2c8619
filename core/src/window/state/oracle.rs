//! The previous window kernel, kept as the tests' oracle: it holds every sample a late one can
//! touch and recomputes each window it may change from the samples. The bounded kernel must
//! give the same rows, in the same order, on any stream.

use std::collections::BTreeMap;

use super::legacy::{Legacy, LegacyTrack};
use super::{vehicle_counters, Counters, Ingest, Sample, WindowParams, WindowResult, WindowScope};
use crate::telemetry::TelemetryEvent;

/// The previous kernel's state: its layout is [`Legacy`].
pub(super) type Oracle = Legacy;
type VehicleTrack = LegacyTrack;

fn key(s: &Sample) -> (i64, i64) {
    (s.ts, s.seq)
}

impl Legacy {
    pub fn closed_until_ms(&self) -> Option<i64> {
        self.closed_until
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

    fn bump(map: &mut BTreeMap<(String, i64), u32>, key: (String, i64)) -> u32 {
        let v = map.entry(key).or_insert(0);
        *v += 1;
        *v
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
        }
        // In order (the common case): after the newest sample, no search of the buffer.
        let pos = match track.samples.last() {
            Some(last) if key(last) < key(&sample) => track.samples.len(),
            _ => match track
                .samples
                .binary_search_by(|s| key(s).cmp(&key(&sample)))
            {
                Ok(_) => return Ingest::Duplicate,
                Err(pos) => pos,
            },
        };
        let newest = pos == track.samples.len();
        let late = ts < closed_until;
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
                let version = Self::bump(&mut self.vehicle_versions, (vid.clone(), ws));
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
                    let version = Self::bump(&mut self.fleet_versions, (fleet.clone(), ws));
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
            let version = Self::bump(&mut self.vehicle_versions, (vehicle.clone(), ws));
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
            let version = Self::bump(&mut self.fleet_versions, (fleet.clone(), ws));
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
