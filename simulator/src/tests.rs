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
        if let Emitted::Malformed { key, bytes, why } = it {
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
