use std::collections::{BTreeMap, HashMap, HashSet};

use atlasmesh_core::telemetry::{validate, ValidationLimits};
use atlasmesh_core::{TelemetryEvent, VehicleStatus};

use super::*;

fn cfg(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        fleets: 2,
        vehicles_per_fleet: 5,
        ..SimConfig::default()
    }
}

fn all_on(seed: u64) -> SimConfig {
    SimConfig {
        out_of_order_pct: 0.03,
        duplicate_pct: 0.03,
        malformed_pct: 0.02,
        invalid_pct: 0.02,
        late_pct: 0.01,
        offline_backlog_pct: 0.002,
        ..cfg(seed)
    }
}

/// Debug text compares NaN speeds as equal, unlike `PartialEq`.
fn fingerprint(items: &[Emitted]) -> Vec<String> {
    items.iter().map(|i| format!("{i:?}")).collect()
}

fn run_steps(c: SimConfig, steps: usize) -> (Vec<Emitted>, i64) {
    let mut sim = Simulator::new(c);
    let mut all = Vec::new();
    for _ in 0..steps {
        all.extend(sim.next_batch());
    }
    (all, sim.now_ms())
}

fn by_vehicle<'a>(events: &[&'a TelemetryEvent]) -> BTreeMap<&'a str, Vec<&'a TelemetryEvent>> {
    let mut m: BTreeMap<&str, Vec<&TelemetryEvent>> = BTreeMap::new();
    for e in events {
        m.entry(e.vehicle_id.as_str()).or_default().push(e);
    }
    for v in m.values_mut() {
        v.sort_by_key(|e| (e.ts_ms, e.seq));
    }
    m
}

fn count_kind(items: &[Emitted], k: EventKind) -> usize {
    items.iter().filter(|i| i.kind() == Some(k)).count()
}

#[test]
fn deterministic_for_a_seed() {
    let a = Simulator::new(all_on(7)).take(20_000);
    let b = Simulator::new(all_on(7)).take(20_000);
    assert_eq!(fingerprint(&a), fingerprint(&b));
    let c = Simulator::new(all_on(8)).take(20_000);
    assert_ne!(fingerprint(&a), fingerprint(&c));
}

#[test]
fn injection_switches_do_not_change_vehicle_physics() {
    // Same seed, with and without injection: the counted events at a common (vehicle, seq)
    // carry the same physical values whenever the seq was not shifted by a too-late event.
    let (plain, _) = run_steps(cfg(3), 300);
    let mut c = all_on(3);
    c.late_pct = 0.0;
    let (noisy, _) = run_steps(c, 300);
    let index: HashMap<(&str, i64), &TelemetryEvent> = valid_counted_events(&plain)
        .into_iter()
        .map(|e| ((e.vehicle_id.as_str(), e.seq), e))
        .collect();
    let mut compared = 0;
    for e in valid_counted_events(&noisy) {
        let p = index[&(e.vehicle_id.as_str(), e.seq)];
        assert_eq!(
            (p.ts_ms, p.odometer_km, p.energy_used_kwh, p.status),
            (e.ts_ms, e.odometer_km, e.energy_used_kwh, e.status)
        );
        compared += 1;
    }
    assert!(compared > 2_000);
}

#[test]
fn take_returns_exactly_n_and_continues_the_stream() {
    let mut sim = Simulator::new(all_on(1));
    for n in [0usize, 1, 7, 10, 333, 5_000] {
        assert_eq!(sim.take(n).len(), n);
    }
    let mut a = Simulator::new(all_on(1));
    let mut joined = a.take(123);
    joined.extend(a.take(4_000));
    let whole = Simulator::new(all_on(1)).take(4_123);
    assert_eq!(fingerprint(&joined), fingerprint(&whole));
    // next_batch after take hands out the leftovers first.
    let mut b = Simulator::new(all_on(1));
    let mut mixed = b.take(15);
    while mixed.len() < 4_123 {
        mixed.extend(b.next_batch());
    }
    assert_eq!(fingerprint(&mixed[..4_123]), fingerprint(&whole));
}

#[test]
fn ids_formats_and_steps() {
    let mut sim = Simulator::new(SimConfig {
        fleets: 3,
        vehicles_per_fleet: 4,
        ..SimConfig::default()
    });
    let ids = sim.vehicle_ids();
    assert_eq!(ids.len(), 12);
    assert_eq!(ids[0], "f001-v0001");
    assert_eq!(ids[11], "f003-v0004");
    let start = sim.now_ms();
    let batch = sim.next_batch();
    assert_eq!(batch.len(), 12);
    assert_eq!(sim.now_ms(), start + 1_000);
    let mut event_ids = HashSet::new();
    for it in &batch {
        let e = it.event().unwrap();
        assert_eq!(it.key(), e.vehicle_id);
        assert_eq!(e.fleet_id, format!("fleet-{}", &e.vehicle_id[1..4]));
        assert!(e.ts_ms >= start && e.ts_ms < sim.now_ms());
        assert_eq!(e.seq, 1);
        assert!(uuid::Uuid::parse_str(&e.event_id).is_ok(), "{}", e.event_id);
        assert!(event_ids.insert(e.event_id.clone()));
    }
}

#[test]
fn long_run_invariants_of_valid_events() {
    // 20 vehicles × 2 h; no injection: every sample is Normal, seq 1, 2, 3, ... per vehicle.
    let c = SimConfig {
        fleets: 2,
        vehicles_per_fleet: 10,
        ..SimConfig::default()
    };
    let (items, now) = run_steps(c, 7_200);
    assert!(items.iter().all(|i| i.kind() == Some(EventKind::Normal)));
    let counted = valid_counted_events(&items);
    assert_eq!(counted.len(), items.len());
    let lim = ValidationLimits::default();
    let mut statuses = HashSet::new();
    let mut transitions = 0usize;
    let mut missions = HashSet::new();
    let (mut dist_m, mut drive_wh) = (0i64, 0i64);
    let mut charged = false;
    for (vid, evs) in by_vehicle(&counted) {
        for (i, e) in evs.iter().enumerate() {
            validate(e, now, &lim).unwrap_or_else(|err| panic!("{vid}: {err}: {e:?}"));
            assert_eq!(e.seq, i as i64 + 1, "{vid}: contiguous seq");
            statuses.insert(e.status);
            assert_eq!(e.speed_kph, (e.speed_kph * 100.0).round() / 100.0);
            assert_eq!(
                e.odometer_km,
                atlasmesh_core::telemetry::km_to_m(e.odometer_km) as f64 / 1000.0
            );
            assert_eq!(
                e.energy_used_kwh,
                atlasmesh_core::telemetry::kwh_to_wh(e.energy_used_kwh) as f64 / 1000.0
            );
            if e.status.is_busy() {
                assert!((20.0..=60.0).contains(&e.speed_kph), "{e:?}");
            } else {
                assert_eq!(e.speed_kph, 0.0, "{e:?}");
            }
            assert_eq!(
                e.mission_id.is_some(),
                e.status == VehicleStatus::OnMission,
                "{e:?}"
            );
            assert_eq!(
                e.payload_kg > 0.0,
                e.status == VehicleStatus::OnMission,
                "{e:?}"
            );
            assert_eq!(
                !e.fault_codes.is_empty(),
                e.status == VehicleStatus::Fault,
                "{e:?}"
            );
            assert_eq!(
                e.zone_id.is_none(),
                e.status == VehicleStatus::Offline,
                "{e:?}"
            );
            if let Some(m) = &e.mission_id {
                assert!(m.starts_with("m-"));
                missions.insert(m.clone());
            }
            if i > 0 {
                let p = evs[i - 1];
                assert!(e.ts_ms > p.ts_ms);
                assert!(e.ts_ms - p.ts_ms < 2_000);
                assert!(e.odometer_km >= p.odometer_km, "{vid} odometer went back");
                assert!(
                    e.energy_used_kwh >= p.energy_used_kwh,
                    "{vid} energy went back"
                );
                if e.status != p.status {
                    transitions += 1;
                }
                // A mission id persists for the whole mission.
                if e.status == VehicleStatus::OnMission && p.status == VehicleStatus::OnMission {
                    assert_eq!(e.mission_id, p.mission_id);
                }
                let dm = atlasmesh_core::telemetry::km_to_m(e.odometer_km)
                    - atlasmesh_core::telemetry::km_to_m(p.odometer_km);
                // Distance matches the previous speed × elapsed time (to a metre of carry).
                let expect = p.speed_kph / 3.6 * (e.ts_ms - p.ts_ms) as f64 / 1000.0;
                assert!(
                    (dm as f64 - expect).abs() <= 1.0,
                    "{vid}: {dm} m vs {expect}"
                );
                if p.status.is_busy() {
                    dist_m += dm;
                    drive_wh += atlasmesh_core::telemetry::kwh_to_wh(e.energy_used_kwh)
                        - atlasmesh_core::telemetry::kwh_to_wh(p.energy_used_kwh);
                }
                if p.status == VehicleStatus::Charging && e.status == VehicleStatus::Charging {
                    assert!(e.energy_pct >= p.energy_pct);
                    charged |= e.energy_pct > p.energy_pct;
                }
            }
        }
    }
    for s in VehicleStatus::ALL {
        assert!(statuses.contains(&s), "status {s:?} never used");
    }
    assert!(charged);
    // Dwell times of tens of seconds to minutes: 20 vehicles × 120 min see many transitions,
    // but far fewer than one per 20 s.
    assert!(transitions > 20 * 120 / 5, "{transitions}");
    assert!(transitions < 20 * 7_200 / 20, "{transitions}");
    assert!(missions.len() > 40, "{}", missions.len());
    let kwh_per_km = drive_wh as f64 / dist_m as f64;
    assert!((0.15..0.30).contains(&kwh_per_km), "{kwh_per_km}");
}

#[test]
fn minute_windows_see_transitions() {
    let (items, _) = run_steps(cfg(11), 3_600);
    let counted = valid_counted_events(&items);
    let mut per_window: HashMap<(&str, i64), HashSet<VehicleStatus>> = HashMap::new();
    for e in &counted {
        per_window
            .entry((e.vehicle_id.as_str(), e.ts_ms.div_euclid(60_000)))
            .or_default()
            .insert(e.status);
    }
    let mixed = per_window.values().filter(|s| s.len() > 1).count();
    let share = mixed as f64 / per_window.len() as f64;
    assert!((0.1..0.9).contains(&share), "{share}");
}

/// Runs with only `set` switched on and returns items.
fn only(set: impl FnOnce(&mut SimConfig), steps: usize) -> (Vec<Emitted>, i64) {
    let mut c = cfg(5);
    set(&mut c);
    run_steps(c, steps)
}

fn assert_rate(got: usize, total: usize, p: f64) {
    let rate = got as f64 / total as f64;
    assert!(
        (rate - p).abs() < p * 0.25,
        "rate {rate} vs {p} ({got}/{total})"
    );
}

#[test]
fn out_of_order_rate_and_bound() {
    let (items, _) = only(|c| c.out_of_order_pct = 0.05, 2_000);
    let n = count_kind(&items, EventKind::OutOfOrder);
    // Samples emitted while one waits go out plain, so the rate is slightly below p.
    assert_rate(n, items.len(), 0.05 * 0.9);
    let mut newest: HashMap<&str, i64> = HashMap::new();
    for it in &items {
        let e = it.event().unwrap();
        let nv = newest.entry(e.vehicle_id.as_str()).or_insert(i64::MIN);
        if it.kind() == Some(EventKind::OutOfOrder) {
            assert!(*nv > e.ts_ms, "held sample not behind a newer one");
            assert!(
                *nv - e.ts_ms < MAX_OUT_OF_ORDER_MS,
                "{} ms behind",
                *nv - e.ts_ms
            );
        } else {
            assert!(e.ts_ms > *nv, "normal sample must be the newest");
        }
        *nv = (*nv).max(e.ts_ms);
    }
    // Nothing lost: all samples are counted; the only seq missing is a sample still held back
    // when the run stopped (at most one per vehicle, within the last few steps).
    let counted = valid_counted_events(&items);
    assert_eq!(counted.len(), items.len());
    for evs in by_vehicle(&counted).values() {
        let max = evs.last().unwrap().seq;
        let have: HashSet<i64> = evs.iter().map(|e| e.seq).collect();
        let missing: Vec<i64> = (1..=max).filter(|q| !have.contains(q)).collect();
        assert!(
            missing.len() <= 1 && missing.iter().all(|q| *q > max - 6),
            "{missing:?}"
        );
    }
}

#[test]
fn duplicate_rate_and_identity() {
    let (items, _) = only(|c| c.duplicate_pct = 0.05, 2_000);
    let dups = count_kind(&items, EventKind::Duplicate);
    let originals = items.len() - dups;
    assert_rate(dups, originals, 0.05);
    let mut seen: HashMap<&str, &TelemetryEvent> = HashMap::new();
    for it in &items {
        let e = it.event().unwrap();
        if it.kind() == Some(EventKind::Duplicate) {
            assert_eq!(seen[e.event_id.as_str()], e, "duplicate must be identical");
        } else {
            assert!(seen.insert(&e.event_id, e).is_none());
        }
    }
    assert_eq!(valid_counted_events(&items).len(), originals);
}

#[test]
fn malformed_rate_and_variants() {
    let (items, _) = only(|c| c.malformed_pct = 0.05, 2_000);
    let mut whys = HashSet::new();
    let mut n = 0;
    for it in &items {
        if let Emitted::Malformed {
            key, bytes, why, ..
        } = it
        {
            n += 1;
            whys.insert(*why);
            assert!(key.starts_with('f'));
            assert!(!bytes.is_empty());
            match *why {
                malformed::WHY_TRUNCATED => {
                    assert_eq!(bytes[0], 0);
                    assert_eq!(&bytes[1..5], &1u32.to_be_bytes());
                    assert!(bytes.len() < 120);
                }
                _ => assert_ne!(bytes[0], 0, "{why}"),
            }
        }
    }
    assert_rate(n, items.len(), 0.05);
    assert_eq!(whys.len(), 4, "{whys:?}");
    // The lost samples leave seq gaps but counted events stay monotonic.
    assert_eq!(valid_counted_events(&items).len(), items.len() - n);
}

#[test]
fn avro_frame_layout() {
    let (items, _) = run_steps(cfg(2), 1);
    let e = items[0].event().unwrap();
    let f = malformed::confluent_frame(9, e);
    assert_eq!(&f[..5], &[0, 0, 0, 0, 9]);
    // 36-char uuid string: zigzag length 72, then the text.
    assert_eq!(f[5], 72);
    assert_eq!(&f[6..42], e.event_id.as_bytes());
    assert_eq!(
        *f.last().unwrap(),
        0,
        "empty fault_codes array ends the record"
    );
}

#[test]
fn invalid_rate_and_rejection() {
    let (items, now) = only(|c| c.invalid_pct = 0.05, 2_000);
    let lim = ValidationLimits::default();
    let mut variants = HashSet::new();
    let mut n = 0;
    for it in &items {
        let e = it.event().unwrap();
        if it.kind() == Some(EventKind::Invalid) {
            n += 1;
            assert!(validate(e, now, &lim).is_err(), "{e:?}");
            variants.insert(if e.speed_kph.is_nan() {
                "nan"
            } else if e.energy_used_kwh < 0.0 {
                "energy"
            } else {
                assert!(e.ts_ms >= YEAR_2100_MS);
                "future"
            });
        } else {
            validate(e, now, &lim).unwrap();
        }
    }
    assert_rate(n, items.len(), 0.05);
    assert_eq!(variants.len(), 3);
    // Invalid events consume a seq: counted seqs per vehicle have gaps exactly there.
    let counted = valid_counted_events(&items);
    for evs in by_vehicle(&counted).values() {
        assert!(evs.windows(2).all(|w| w[1].seq > w[0].seq));
    }
}

#[test]
fn too_late_rate_and_plausibility() {
    let c = SimConfig {
        late_pct: 0.02,
        too_late_ms: 120_000,
        ..cfg(6)
    };
    let (items, now) = run_steps(c, 1_200);
    let lim = ValidationLimits::default();
    let n = count_kind(&items, EventKind::TooLate);
    assert_rate(n, items.len() - n, 0.02);
    let mut newest: HashMap<&str, i64> = HashMap::new();
    let mut seqs: HashMap<&str, HashSet<i64>> = HashMap::new();
    let mut late_events = Vec::new();
    for it in &items {
        let e = it.event().unwrap();
        assert!(
            seqs.entry(&e.vehicle_id).or_default().insert(e.seq),
            "seq reused"
        );
        validate(e, now, &lim).unwrap();
        if it.kind() == Some(EventKind::TooLate) {
            assert!(e.ts_ms < newest[e.vehicle_id.as_str()] - 120_000);
            late_events.push(e);
        } else {
            let nv = newest.entry(&e.vehicle_id).or_insert(i64::MIN);
            *nv = (*nv).max(e.ts_ms);
        }
    }
    // Inserted among the vehicle's valid events in (ts, seq) order, a too-late event keeps the
    // counters monotonic: its odometer/energy are those of that past instant.
    let counted = valid_counted_events(&items);
    let per = by_vehicle(&counted);
    for e in late_events {
        let evs = &per[e.vehicle_id.as_str()];
        let before = evs
            .iter()
            .rev()
            .find(|x| (x.ts_ms, x.seq) < (e.ts_ms, e.seq));
        let after = evs.iter().find(|x| (x.ts_ms, x.seq) > (e.ts_ms, e.seq));
        if let Some(b) = before {
            assert!(b.odometer_km <= e.odometer_km && b.energy_used_kwh <= e.energy_used_kwh);
            assert_eq!(b.odometer_km, e.odometer_km, "value of that instant");
        }
        if let Some(a) = after {
            assert!(a.odometer_km >= e.odometer_km && a.energy_used_kwh >= e.energy_used_kwh);
        }
    }
}

#[test]
fn backlog_silences_and_uploads() {
    let p = 0.002;
    let (items, now) = only(|c| c.offline_backlog_pct = p, 3_000);
    let lim = ValidationLimits::default();
    let mut bursts = 0;
    let mut last_kind: HashMap<&str, EventKind> = HashMap::new();
    let mut newest_all = i64::MIN;
    let mut oldest_age: i64 = 0;
    let mut newest: HashMap<&str, i64> = HashMap::new();
    for it in &items {
        let e = it.event().unwrap();
        validate(e, now, &lim).unwrap();
        let k = it.kind().unwrap();
        assert!(matches!(k, EventKind::Normal | EventKind::Backlog));
        let nv = newest.entry(&e.vehicle_id).or_insert(i64::MIN);
        assert!(e.ts_ms > *nv, "a backlog is uploaded in order");
        *nv = e.ts_ms;
        if k == EventKind::Backlog
            && last_kind.get(e.vehicle_id.as_str()) != Some(&EventKind::Backlog)
        {
            bursts += 1;
            oldest_age = oldest_age.max(newest_all - e.ts_ms);
        }
        last_kind.insert(&e.vehicle_id, k);
        newest_all = newest_all.max(e.ts_ms);
    }
    // Silences start with probability p per online vehicle step (~60 steps each).
    let steps = 10 * 3_000;
    let expected = p * steps as f64 / (1.0 + p * 60.0);
    assert!(
        (bursts as f64 - expected).abs() < expected * 0.3,
        "{bursts} vs {expected}"
    );
    // Uploaded after other vehicles' newer samples, 30-90 s behind them.
    assert!((30_000..=92_000).contains(&oldest_age), "{oldest_age}");
    let backlog = count_kind(&items, EventKind::Backlog);
    assert!(backlog > bursts * 25, "{backlog}");
    let counted = valid_counted_events(&items);
    assert_eq!(counted.len(), items.len());
}

#[test]
fn counted_helper_dedups_and_drops_rejects() {
    let (items, _) = run_steps(all_on(9), 1_000);
    let counted = valid_counted_events(&items);
    let mut keys = HashSet::new();
    for e in &counted {
        assert!(keys.insert((e.vehicle_id.clone(), e.ts_ms, e.seq)));
    }
    let expect = items
        .iter()
        .filter(|i| {
            matches!(
                i.kind(),
                Some(EventKind::Normal | EventKind::OutOfOrder | EventKind::Backlog)
            )
        })
        .count();
    assert_eq!(counted.len(), expect);
    // Per vehicle, valid events stay monotonic with every switch on.
    for (vid, evs) in by_vehicle(&counted) {
        let mut seqs = HashSet::new();
        for w in evs.windows(2) {
            assert!(w[1].odometer_km >= w[0].odometer_km, "{vid}");
            assert!(w[1].energy_used_kwh >= w[0].energy_used_kwh, "{vid}");
        }
        assert!(evs.iter().all(|e| seqs.insert(e.seq)));
        for e in &evs {
            if !e.status.is_busy() {
                assert_eq!(e.speed_kph, 0.0);
            }
        }
    }
}

fn battery_cfg(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        fleets: 1,
        vehicles_per_fleet: 6,
        interval_ms: 300_000,
        battery: Some(BatteryModel {
            acceleration: 10.0,
            counter_resets_per_day: 0.05,
            ..BatteryModel::default()
        }),
        ..SimConfig::default()
    }
}

#[test]
fn battery_truth_ages_with_time_use_and_fast_charging() {
    let m = BatteryModel::default();
    let mut sim = Simulator::new(battery_cfg(11));
    let mut items = Vec::new();
    for _ in 0..30 * 288 {
        items.extend(sim.next_batch());
    }
    let events = valid_counted_events(&items);
    let lim = ValidationLimits::default();
    for (vid, evs) in by_vehicle(&events) {
        let t = sim.battery_truth(vid).unwrap();
        // Rates as documented: cycle fade × (1 + factor × DC share), × acceleration.
        let base = t.cycle_pp_per_1000_km / (1.0 + m.dc_fast_fade_factor * t.dc_fast_share) / 10.0;
        assert!(base >= m.cycle_pp_per_1000_km.0 - 1e-12 && base <= m.cycle_pp_per_1000_km.1);
        let cal_year = t.calendar_pp_per_month * 12.0 / 10.0;
        assert!(cal_year >= m.calendar_pp_per_year.0 - 1e-9);
        assert!(cal_year <= m.calendar_pp_per_year.1 + 1e-9);
        // The trace declines and matches the documented rates over the month.
        let (a, b) = (t.trace[0], *t.trace.last().unwrap());
        assert!(t.trace.windows(2).all(|w| w[1].soh_pct <= w[0].soh_pct));
        let months = (b.ts_ms - a.ts_ms) as f64 / (30.436875 * 86_400_000.0);
        let want = t.calendar_pp_per_month * months
            + t.cycle_pp_per_1000_km * (b.odometer_km - a.odometer_km) / 1000.0;
        assert!(((a.soh_pct - b.soh_pct) - want).abs() < 1e-6 * want.max(1.0));
        assert_eq!(t.soh_now_pct, b.soh_pct);
        assert_eq!(t.soh_at(a.ts_ms), Some(a.soh_pct));
        assert_eq!(t.soh_at(a.ts_ms - 1), None);
        // Both kinds of sessions for a mixed habit; the counter resets where the truth says.
        assert!(t.sessions.0 + t.sessions.1 > 20, "{vid}: {:?}", t.sessions);
        let drops: Vec<i64> = evs
            .windows(2)
            .filter(|w| w[1].energy_used_kwh < w[0].energy_used_kwh)
            .map(|w| w[1].ts_ms)
            .collect();
        assert_eq!(drops, t.counter_resets_ms, "{vid}");
        // Reported state of charge: the usable capacity's, within the noise; samples valid.
        for e in evs.iter() {
            validate(e, sim.now_ms(), &lim).unwrap();
            assert!((0.0..=100.0).contains(&e.energy_pct));
        }
        let charging = evs
            .windows(2)
            .filter(|w| w[1].status == VehicleStatus::Charging)
            .count();
        assert!(charging > 0);
    }
    // Heavier DC fast charging, faster cycle fade (same base range for all).
    let truths: Vec<BatteryTruth> = sim
        .vehicle_ids()
        .iter()
        .map(|v| sim.battery_truth(v).unwrap())
        .collect();
    let dc: u32 = truths.iter().map(|t| t.sessions.1).sum();
    let ac: u32 = truths.iter().map(|t| t.sessions.0).sum();
    assert!(dc > 0 && ac > 0);
    // Off by default: no truth, and a fixed capacity.
    let plain = Simulator::new(cfg(11));
    assert!(plain.battery_truth("f001-v0001").is_none());
    assert!(plain.failure_truth("f001-v0001").is_none());
    assert!(sim.battery_truth("nope").is_none());
}

#[test]
fn battery_truth_is_deterministic_and_opt_in_models_do_not_touch_each_other() {
    let run = |c: SimConfig| {
        let mut sim = Simulator::new(c);
        for _ in 0..2_000 {
            sim.next_batch();
        }
        sim.battery_truth("f001-v0002").unwrap()
    };
    assert_eq!(run(battery_cfg(4)), run(battery_cfg(4)));
    assert_ne!(run(battery_cfg(4)).soh0_pct, run(battery_cfg(5)).soh0_pct);
}

#[test]
fn failures_follow_rising_precursors_and_show_in_telemetry() {
    let c = SimConfig {
        seed: 21,
        fleets: 2,
        vehicles_per_fleet: 10,
        interval_ms: 600_000,
        failures: Some(FailureModel::default()),
        ..SimConfig::default()
    };
    let start = c.start_ms;
    let mut sim = Simulator::new(c);
    let mut items = Vec::new();
    for _ in 0..120 * 144 {
        items.extend(sim.next_batch());
    }
    let events = valid_counted_events(&items);
    let day = 86_400_000i64;
    let (mut near, mut near_days, mut far, mut far_days) = (0usize, 0i64, 0usize, 0i64);
    let mut failures = 0;
    for (vid, evs) in by_vehicle(&events) {
        let t = sim.failure_truth(vid).unwrap();
        failures += t.failures.len();
        assert!(t.warnings > 0);
        for f in &t.failures {
            // The failure sample: a fault with the failure code, then maintenance for repair.
            let i = evs.iter().position(|e| e.ts_ms == f.ts_ms).unwrap();
            assert_eq!(evs[i].status, VehicleStatus::Fault);
            assert_eq!(evs[i].fault_codes, vec![f.code.clone()]);
            assert!(f.code.starts_with("F-"));
            let next = evs[i..]
                .iter()
                .find(|e| e.status != VehicleStatus::Fault)
                .unwrap();
            assert_eq!(next.status, VehicleStatus::Maintenance);
        }
        // Precursor warnings in the 3 days before a failure vs away from any.
        let is_w = |e: &&&TelemetryEvent| e.fault_codes.iter().any(|c| c.starts_with("W-"));
        for d in 0..120 {
            let (lo, hi) = (start + d * day, start + (d + 1) * day);
            let w = evs
                .iter()
                .filter(|e| e.ts_ms >= lo && e.ts_ms < hi)
                .filter(is_w)
                .count();
            let ahead = t.failures.iter().map(|f| f.ts_ms - hi).filter(|&a| a >= 0);
            match ahead.min() {
                Some(a) if a < 3 * day => {
                    near += w;
                    near_days += 1;
                }
                Some(a) if a < 21 * day => {}
                _ => {
                    far += w;
                    far_days += 1;
                }
            }
        }
    }
    assert!(failures >= 5, "{failures} failures");
    let near_rate = near as f64 / near_days as f64;
    let far_rate = far as f64 / far_days as f64;
    assert!(
        near_rate > 4.0 * far_rate,
        "precursors per day before failures {near_rate:.2}, elsewhere {far_rate:.2}"
    );
    // Deterministic truth.
    let again = {
        let mut s = Simulator::new(SimConfig {
            seed: 21,
            fleets: 2,
            vehicles_per_fleet: 10,
            interval_ms: 600_000,
            failures: Some(FailureModel::default()),
            ..SimConfig::default()
        });
        for _ in 0..120 * 144 {
            s.next_batch();
        }
        s.failure_truth("f002-v0003").unwrap()
    };
    assert_eq!(again, sim.failure_truth("f002-v0003").unwrap());
}

#[test]
fn both_models_together_at_one_hertz_give_valid_telemetry() {
    let c = SimConfig {
        seed: 3,
        fleets: 1,
        vehicles_per_fleet: 4,
        battery: Some(BatteryModel::default()),
        failures: Some(FailureModel {
            mtbf_days: 0.02,
            ..FailureModel::default()
        }),
        ..SimConfig::default()
    };
    let (items, now) = run_steps(c.clone(), 7_200);
    assert_eq!(
        fingerprint(&items),
        fingerprint(&run_steps(c.clone(), 7_200).0)
    );
    let lim = ValidationLimits::default();
    let events = valid_counted_events(&items);
    assert_eq!(events.len(), items.len());
    for e in &events {
        validate(e, now, &lim).unwrap_or_else(|err| panic!("{err}: {e:?}"));
    }
    let mut sim = Simulator::new(c);
    for _ in 0..7_200 {
        sim.next_batch();
    }
    let failures: usize = sim
        .vehicle_ids()
        .iter()
        .map(|v| sim.failure_truth(v).unwrap().failures.len())
        .sum();
    assert!(failures > 0);
    assert!(sim
        .vehicle_ids()
        .iter()
        .all(|v| sim.battery_truth(v).unwrap().soh_now_pct < 100.0));
}

#[test]
fn fleet_zones_are_the_telemetry_zone_ids_with_centroids() {
    let zones = crate::fleet_zones(2);
    let ids: Vec<&str> = zones.iter().map(|z| z.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "fleet-002-zone-central",
            "fleet-002-zone-north",
            "fleet-002-zone-east",
            "fleet-002-zone-south",
            "fleet-002-zone-west"
        ]
    );
    let c = &zones[0];
    for z in &zones[1..] {
        let km = atlasmesh_optimizer::model::haversine_km(c.lat, c.lon, z.lat, z.lon);
        assert!((km - 5.0).abs() < 0.05, "{} is {km} km out", z.id);
    }
    // The telemetry carries exactly these ids.
    let items = Simulator::new(SimConfig {
        fleets: 2,
        vehicles_per_fleet: 3,
        ..SimConfig::default()
    })
    .take(600);
    for e in valid_counted_events(&items) {
        if let Some(z) = &e.zone_id {
            let fleet_no: u32 = e.fleet_id[6..].parse().unwrap();
            assert!(
                crate::fleet_zones(fleet_no).iter().any(|s| &s.id == z),
                "{z}"
            );
        }
    }
}
