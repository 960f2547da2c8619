//! The health pipeline's pure part: per vehicle its open UTC days
//! ([`atlasmesh_core::analytics::vehicle_day`]), its recent daily state-of-health estimates and
//! fault counts (bounded), and what a closed vehicle-day yields: the day's counters, its state
//! of health, the state-of-health trajectory and the failure risk predicted at its end.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use atlasmesh_core::analytics::battery::{daily_soh, trajectory, DailySoh, SohTrajectory};
use atlasmesh_core::analytics::failure::{risk_inputs, DayCounts, RiskModel, RiskPrediction};
use atlasmesh_core::analytics::vehicle_day::{day_of, DayIngest, DayParams, VehicleDays, DAY_MS};
use atlasmesh_core::window::Counters;
use atlasmesh_core::TelemetryEvent;
use serde::{Deserialize, Serialize};

/// Tunables of the fold (from `[health]` and `[telemetry]`).
#[derive(Debug, Clone)]
pub struct FoldParams {
    pub day: DayParams,
    /// Watermark = newest event time − this (telemetry.out_of_orderness_ms + health.close_delay_ms).
    pub close_lag_ms: i64,
    pub soh_threshold_pct: f64,
    pub soh_history_days: usize,
    pub soh_min_days: usize,
    /// Days of fault counts the failure inputs look back.
    pub fault_days: usize,
    pub failure: atlasmesh_core::analytics::failure::FailureParams,
}

/// One vehicle's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VehicleHealth {
    pub fleet_id: String,
    pub days: VehicleDays,
    /// Daily state-of-health estimates, oldest first, at most `soh_history_days`.
    pub soh: VecDeque<DailySoh>,
    /// Fault counts of the days with samples, oldest first, at most `fault_days`.
    pub faults: VecDeque<DayCounts>,
}

/// A partition's state (checkpointed with its offset).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HealthState {
    pub vehicles: BTreeMap<String, VehicleHealth>,
    /// Newest event time seen on the partition.
    pub max_ts_ms: Option<i64>,
    /// Days starting before this are closed for every vehicle of the partition.
    pub closed_before_ms: i64,
}

/// A closed vehicle-day and the predictions made at its end: the facts the fleet-day's scores
/// are computed from (stored as JSON in `health_vehicle_days`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleDayFacts {
    pub fleet_id: String,
    pub vehicle_id: String,
    pub day_ms: i64,
    pub counters: Counters,
    pub counts: DayCounts,
    /// The day's state of health (`None`: no usable discharge, or no nominal capacity).
    pub soh: Option<DailySoh>,
    /// The nominal capacity it is relative to, kWh.
    pub nominal_kwh: Option<f64>,
    /// Usable capacity from the day's segments when no nominal is known, kWh.
    pub capacity_kwh: Option<f64>,
    /// The newest state of health known at the end of the day (this day's or an earlier one).
    pub latest_soh_pct: Option<f64>,
    /// The oldest daily estimate the trajectory saw.
    pub soh_first_day_ms: Option<i64>,
    pub trajectory: Option<SohTrajectory>,
    pub risk: Option<RiskPrediction>,
    pub odometer_km: Option<f64>,
}

impl VehicleDayFacts {
    /// Days from the end of the day until the state of health crosses the threshold.
    pub fn days_to_soh_threshold(&self) -> Option<f64> {
        let t = self.trajectory?;
        let at = t.crosses_at_ms?;
        Some((at - (self.day_ms + DAY_MS)) as f64 / DAY_MS as f64)
    }
}

/// What happened to a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folded {
    Accepted,
    Older,
    Late,
}

impl HealthState {
    /// Folds a valid sample in; the vehicle-days that closed because the watermark moved on
    /// are appended to `out`. `nominal` gives a vehicle's nominal capacity, kWh.
    pub fn fold(
        &mut self,
        e: &TelemetryEvent,
        p: &FoldParams,
        model: &RiskModel,
        nominal: &dyn Fn(&str) -> Option<f64>,
        out: &mut Vec<VehicleDayFacts>,
    ) -> Folded {
        let v = self
            .vehicles
            .entry(e.vehicle_id.clone())
            .or_insert_with(|| VehicleHealth {
                fleet_id: e.fleet_id.clone(),
                ..VehicleHealth::default()
            });
        let folded = match v.days.ingest(e, &p.day) {
            DayIngest::Accepted => Folded::Accepted,
            DayIngest::Older => Folded::Older,
            DayIngest::Late => Folded::Late,
        };
        self.max_ts_ms = Some(self.max_ts_ms.map_or(e.ts_ms, |m| m.max(e.ts_ms)));
        self.close(p, model, nominal, out);
        folded
    }

    /// Closes, for every vehicle, the days that end at or before the watermark less the lag.
    pub fn close(
        &mut self,
        p: &FoldParams,
        model: &RiskModel,
        nominal: &dyn Fn(&str) -> Option<f64>,
        out: &mut Vec<VehicleDayFacts>,
    ) {
        let Some(max) = self.max_ts_ms else { return };
        let before = day_of(max - p.close_lag_ms);
        if before <= self.closed_before_ms {
            return;
        }
        self.closed_before_ms = before;
        for (vehicle_id, v) in &mut self.vehicles {
            for day in v.days.close_until(before, &p.day) {
                out.push(v.closed(vehicle_id, day, p, model, nominal(vehicle_id)));
            }
        }
    }
}

impl VehicleHealth {
    fn closed(
        &mut self,
        vehicle_id: &str,
        day: atlasmesh_core::analytics::vehicle_day::ClosedDay,
        p: &FoldParams,
        model: &RiskModel,
        nominal_kwh: Option<f64>,
    ) -> VehicleDayFacts {
        let soh = nominal_kwh.and_then(|n| daily_soh(&day.segments, n).into_iter().next());
        // Without a nominal capacity the day's usable capacity is still reported.
        let capacity_kwh = daily_soh(&day.segments, 100.0)
            .first()
            .map(|d| d.capacity_kwh);
        if let Some(s) = soh {
            self.soh.push_back(s);
            while self.soh.len() > p.soh_history_days {
                self.soh.pop_front();
            }
        }
        if day.counts.samples > 0 {
            self.faults.push_back(day.counts);
            while self.faults.len() > p.fault_days {
                self.faults.pop_front();
            }
        }
        let history: Vec<DailySoh> = self.soh.iter().copied().collect();
        let trajectory = (history.len() >= p.soh_min_days)
            .then(|| trajectory(&history, p.soh_threshold_pct))
            .flatten();
        let faults: Vec<DayCounts> = self.faults.iter().copied().collect();
        let risk = risk_inputs(&faults, day.day_ms, &p.failure).map(|i| model.predict(&i));
        VehicleDayFacts {
            fleet_id: self.fleet_id.clone(),
            vehicle_id: vehicle_id.to_string(),
            day_ms: day.day_ms,
            counters: day.counters,
            counts: day.counts,
            soh,
            nominal_kwh,
            capacity_kwh,
            latest_soh_pct: self.soh.back().map(|s| s.soh_pct),
            soh_first_day_ms: self.soh.front().map(|s| s.day_ms),
            trajectory,
            risk,
            odometer_km: day.odometer_km,
        }
    }
}

/// The fleet's median kWh/km over its vehicles with distance on the day (`None`: none).
pub fn fleet_median_kwh_per_km(days: &[VehicleDayFacts]) -> Option<f64> {
    let mut v: Vec<f64> = days
        .iter()
        .filter_map(|d| d.counters.kwh_per_km())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The (fleet, day) pairs the facts belong to: the fleet-days to recompute.
pub fn fleet_days(facts: &[VehicleDayFacts]) -> BTreeSet<(String, i64)> {
    facts
        .iter()
        .map(|f| (f.fleet_id.clone(), f.day_ms))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlasmesh_core::analytics::battery::SohParams;
    use atlasmesh_core::analytics::failure::FailureParams;
    use atlasmesh_core::VehicleStatus;

    fn params() -> FoldParams {
        let failure = FailureParams::default();
        FoldParams {
            day: DayParams {
                max_gap_ms: 60_000,
                soh: SohParams::default(),
                precursor_prefix: failure.precursor_prefix.clone(),
                failure_prefix: failure.failure_prefix.clone(),
            },
            close_lag_ms: 305_000,
            soh_threshold_pct: 80.0,
            soh_history_days: 30,
            soh_min_days: 3,
            fault_days: failure.lookback_days() as usize,
            failure,
        }
    }

    /// A vehicle discharging 60 % of a 60 kWh battery (nominal 75: SoH 80 %) every day.
    fn day_of_driving(vehicle: &str, day: i64, seq0: i64) -> Vec<TelemetryEvent> {
        let start = day * DAY_MS + 8 * 3_600_000;
        (0..=60)
            .map(|i| TelemetryEvent {
                event_id: format!("{vehicle}-{day}-{i}"),
                fleet_id: "f1".into(),
                vehicle_id: vehicle.into(),
                ts_ms: start + i * 60_000,
                seq: seq0 + i,
                lat: 0.0,
                lon: 0.0,
                speed_kph: 30.0,
                odometer_km: (day * 60 + i) as f64,
                energy_pct: 90.0 - i as f64,
                energy_used_kwh: (day * 36) as f64 + 0.6 * i as f64,
                status: if i == 60 {
                    VehicleStatus::Charging
                } else {
                    VehicleStatus::OnMission
                },
                mission_id: None,
                zone_id: None,
                payload_kg: 0.0,
                fault_codes: vec![],
            })
            .collect()
    }

    #[test]
    fn days_close_on_the_watermark_with_soh_trajectory_and_risk() {
        let p = params();
        let model = RiskModel::builtin();
        let nominal = |v: &str| (v == "v1").then_some(75.0);
        let mut s = HealthState::default();
        let mut out = Vec::new();
        for d in 0..5 {
            for v in ["v1", "v2"] {
                for e in day_of_driving(v, 20_000 + d, d * 100) {
                    assert_eq!(s.fold(&e, &p, &model, &nominal, &mut out), Folded::Accepted);
                }
            }
        }
        // The last day is still open: the watermark is inside it.
        assert_eq!(out.len(), 8);
        let v1: Vec<&VehicleDayFacts> = out.iter().filter(|f| f.vehicle_id == "v1").collect();
        for f in &v1 {
            let soh = f.soh.expect("a day's discharge");
            assert!((soh.soh_pct - 80.0).abs() < 1e-6, "{soh:?}");
            assert!(f.risk.is_some());
        }
        // Flat SoH: a trajectory from the third day, never crossing.
        assert!(v1[1].trajectory.is_none());
        let t = v1[3].trajectory.expect("trajectory");
        assert!(t.per_month.abs() < 1e-6);
        assert_eq!(v1[3].days_to_soh_threshold(), None);
        // No nominal capacity: no SoH, but the usable capacity.
        let v2 = out.iter().find(|f| f.vehicle_id == "v2").unwrap();
        assert_eq!(v2.soh, None);
        assert!((v2.capacity_kwh.unwrap() - 60.0).abs() < 1e-6);
        assert_eq!(fleet_median_kwh_per_km(&out), Some(0.6));
        assert_eq!(fleet_days(&out).len(), 4);
    }
}
