use super::*;

const T0: i64 = 1_700_000_040_000; // a window boundary (divisible by 60 000)

fn params() -> WindowParams {
    WindowParams {
        window_ms: 60_000,
        out_of_orderness_ms: 0,
        allowed_lateness_ms: 120_000,
        max_gap_ms: 30_000,
    }
}

fn ev(
    vehicle: &str,
    ts: i64,
    seq: i64,
    status: VehicleStatus,
    odo_km: f64,
    kwh: f64,
    speed: f64,
) -> TelemetryEvent {
    TelemetryEvent {
        event_id: format!("{vehicle}-{seq}"),
        fleet_id: "f1".into(),
        vehicle_id: vehicle.into(),
        ts_ms: ts,
        seq,
        lat: 0.0,
        lon: 0.0,
        speed_kph: speed,
        odometer_km: odo_km,
        energy_pct: 50.0,
        energy_used_kwh: kwh,
        status,
        mission_id: None,
        zone_id: None,
        payload_kg: 0.0,
        fault_codes: vec![],
    }
}

fn vehicle_rows(out: &[WindowResult]) -> Vec<&WindowResult> {
    out.iter()
        .filter(|r| r.scope == WindowScope::Vehicle)
        .collect()
}

#[test]
fn splits_segments_exactly_and_closes_on_watermark() {
    use VehicleStatus::*;
    let p = params();
    let mut st = PartitionWindows::default();
    let mut out = vec![];
    // 0s en_route, 20s idle, 50s en_route (segment crosses into the next window), 70s fault.
    st.ingest(&p, &ev("v1", T0, 1, EnRoute, 10.0, 1.0, 36.0), &mut out);
    st.ingest(
        &p,
        &ev("v1", T0 + 20_000, 2, Idle, 10.2, 1.05, 0.0),
        &mut out,
    );
    st.ingest(
        &p,
        &ev("v1", T0 + 50_000, 3, EnRoute, 10.2, 1.06, 40.0),
        &mut out,
    );
    assert!(out.is_empty(), "window still open");
    st.ingest(
        &p,
        &ev("v1", T0 + 70_000, 4, Fault, 10.4, 1.10, 0.0),
        &mut out,
    );
    let rows = vehicle_rows(&out);
    assert_eq!(rows.len(), 1);
    let c = &rows[0].counters;
    assert_eq!(rows[0].window_start_ms, T0);
    assert_eq!(rows[0].version, 1);
    assert_eq!(c.observed_ms, 60_000);
    assert_eq!(c.busy_ms, 20_000 + 10_000);
    assert_eq!(c.idle_ms, 30_000);
    assert_eq!(c.available_ms, 60_000);
    assert_eq!(c.distance_m, 200); // only samples 2 and 3 lie in the window
    assert_eq!(c.energy_wh, 60);
    assert_eq!(c.samples, 3);
    assert_eq!(c.moving_samples, 2);
    assert_eq!(c.moving_speed_ckph_sum, 7_600);
    assert_eq!(c.fault_count, 0);
    assert_eq!(c.active_vehicles, 1);
    let fleet: Vec<_> = out
        .iter()
        .filter(|r| r.scope == WindowScope::FleetPartial)
        .collect();
    assert_eq!(fleet.len(), 1);
    assert_eq!(fleet[0].counters, *c);
}

#[test]
fn silence_beyond_max_gap_is_unobserved() {
    use VehicleStatus::*;
    let p = params();
    let mut st = PartitionWindows::default();
    let mut out = vec![];
    st.ingest(&p, &ev("v1", T0, 1, Charging, 1.0, 1.0, 0.0), &mut out);
    st.ingest(
        &p,
        &ev("v1", T0 + 180_000, 2, Idle, 1.0, 1.0, 0.0),
        &mut out,
    );
    let rows = vehicle_rows(&out);
    assert_eq!(
        rows.len(),
        1,
        "only the first window has observed time: {rows:?}"
    );
    assert_eq!(rows[0].counters.observed_ms, 30_000);
    assert_eq!(rows[0].counters.charging_ms, 30_000);
}

#[test]
fn late_event_within_lateness_re_emits_with_higher_version() {
    use VehicleStatus::*;
    let p = params();
    let mut st = PartitionWindows::default();
    let mut out = vec![];
    st.ingest(&p, &ev("v1", T0, 1, Idle, 1.0, 1.0, 0.0), &mut out);
    st.ingest(&p, &ev("v1", T0 + 30_000, 3, Idle, 1.0, 1.0, 0.0), &mut out);
    st.ingest(&p, &ev("v1", T0 + 61_000, 4, Idle, 1.0, 1.0, 0.0), &mut out);
    assert_eq!(vehicle_rows(&out)[0].counters.busy_ms, 0);
    out.clear();
    let r = st.ingest(
        &p,
        &ev("v1", T0 + 10_000, 2, OnMission, 1.1, 1.02, 20.0),
        &mut out,
    );
    assert_eq!(
        r,
        Ingest::Accepted {
            late: true,
            newest: false
        }
    );
    let rows = vehicle_rows(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].version, 2);
    assert_eq!(rows[0].counters.busy_ms, 20_000);
    assert_eq!(rows[0].counters.distance_m, 100);
    assert_eq!(rows[0].counters.samples, 3);
    let fleet: Vec<_> = out
        .iter()
        .filter(|r| r.scope == WindowScope::FleetPartial)
        .collect();
    assert_eq!(fleet[0].version, 2);
    // the next window's distance (sample 4 against sample 3) did not change: odometer 1.0→1.0.
    assert_eq!(
        st.ingest(
            &p,
            &ev("v1", T0 + 10_000, 2, OnMission, 1.1, 1.02, 20.0),
            &mut out
        ),
        Ingest::Duplicate
    );
}

#[test]
fn too_late_is_refused_and_changes_nothing() {
    use VehicleStatus::*;
    let p = params();
    let mut st = PartitionWindows::default();
    let mut out = vec![];
    st.ingest(&p, &ev("v1", T0, 1, Idle, 1.0, 1.0, 0.0), &mut out);
    st.ingest(
        &p,
        &ev("v1", T0 + 600_000, 2, Idle, 1.0, 1.0, 0.0),
        &mut out,
    );
    out.clear();
    let r = st.ingest(&p, &ev("v1", T0 + 1_000, 3, Fault, 1.0, 1.0, 0.0), &mut out);
    assert_eq!(
        r,
        Ingest::TooLate {
            closed_until_ms: T0 + 600_000
        }
    );
    assert!(out.is_empty());
}

#[test]
fn idle_flush_closes_open_windows_and_state_round_trips() {
    use VehicleStatus::*;
    let p = params();
    let mut st = PartitionWindows::default();
    let mut out = vec![];
    st.ingest(
        &p,
        &ev("v1", T0 + 5_000, 1, EnRoute, 1.0, 1.0, 30.0),
        &mut out,
    );
    st.ingest(
        &p,
        &ev("v2", T0 + 6_000, 1, Maintenance, 1.0, 1.0, 0.0),
        &mut out,
    );
    assert!(out.is_empty());
    let bytes = serde_json::to_vec(&st).unwrap();
    let mut restored: PartitionWindows = serde_json::from_slice(&bytes).unwrap();
    let mut out2 = vec![];
    st.flush_idle(&p, &mut out);
    restored.flush_idle(&p, &mut out2);
    assert_eq!(out, out2);
    let fleet: Vec<_> = out
        .iter()
        .filter(|r| r.scope == WindowScope::FleetPartial)
        .collect();
    assert_eq!(fleet.len(), 1);
    assert_eq!(fleet[0].counters.vehicles, 2);
    assert_eq!(fleet[0].counters.observed_ms, 60_000);
    assert_eq!(fleet[0].counters.busy_ms, 30_000);
    assert_eq!(fleet[0].counters.maintenance_ms, 30_000);
    assert_eq!(fleet[0].counters.available_ms, 30_000);
}

#[test]
fn arrival_order_within_out_of_orderness_does_not_matter() {
    use VehicleStatus::*;
    let p = WindowParams {
        out_of_orderness_ms: 5_000,
        ..params()
    };
    let evs: Vec<_> = (0..300)
        .map(|i| {
            let st = [Idle, EnRoute, OnMission, Charging, Fault][(i / 7) % 5];
            ev(
                "v1",
                T0 + i as i64 * 1_000,
                i as i64,
                st,
                i as f64 * 0.01,
                i as f64 * 0.002,
                (i % 50) as f64,
            )
        })
        .collect();
    let run = |order: &[usize]| {
        let mut st = PartitionWindows::default();
        let mut out = vec![];
        for &i in order {
            st.ingest(&p, &evs[i], &mut out);
        }
        st.flush_idle(&p, &mut out);
        let mut last: BTreeMap<i64, Counters> = BTreeMap::new();
        for r in out.into_iter().filter(|r| r.scope == WindowScope::Vehicle) {
            last.insert(r.window_start_ms, r.counters);
        }
        last
    };
    let in_order: Vec<usize> = (0..300).collect();
    let mut shuffled = in_order.clone();
    for chunk in shuffled.chunks_mut(4) {
        chunk.reverse();
    }
    assert_eq!(run(&in_order), run(&shuffled));
    assert_eq!(run(&in_order).len(), 6);
}

/// Incremental checkpoints: a state restored from a full copy plus the deltas taken at random
/// checkpoints equals the live state byte for byte, and keeps producing the same windows.
/// Random streams: several vehicles in two fleets (one changes fleet), out-of-order, late,
/// too-late and duplicate samples, missions, idle closes.
#[test]
fn full_copy_plus_deltas_equals_the_live_state() {
    use rand::{Rng, SeedableRng};
    use VehicleStatus::*;
    let p = WindowParams {
        out_of_orderness_ms: 5_000,
        ..params()
    };
    for seed in 0..40u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut live = PartitionWindows::default();
        let mut base = bincode::serialize(&live).unwrap();
        live.start_journal();
        let mut deltas: Vec<Vec<u8>> = vec![];
        let mut out = vec![];
        let mut clock = T0;
        let mut seq = 0;
        for step in 0..1_500 {
            clock += rng.gen_range(0..900);
            seq += 1;
            let v = rng.gen_range(0..6);
            // Mostly on time, some a little or much late, a few far too late; some repeats.
            let ts = match rng.gen_range(0..20) {
                0..=13 => clock,
                14..=16 => clock - rng.gen_range(0..60_000),
                17 => clock - rng.gen_range(60_000..400_000),
                _ => clock - rng.gen_range(0..3_000),
            };
            let status = [Idle, EnRoute, OnMission, Charging, Fault, Offline][rng.gen_range(0..6)];
            let mut e = ev(
                &format!("v{v}"),
                ts,
                if rng.gen_bool(0.05) { seq - 1 } else { seq },
                status,
                (ts - T0) as f64 / 50_000.0,
                (ts - T0) as f64 / 400_000.0,
                rng.gen_range(0.0..90.0),
            );
            e.fleet_id = if v < 3 || (v == 5 && step > 700) {
                "f1".into()
            } else {
                "f2".into()
            };
            if rng.gen_bool(0.3) {
                e.mission_id = Some(format!("m{}", rng.gen_range(0..4)));
            }
            live.ingest(&p, &e, &mut out);
            if rng.gen_bool(0.01) {
                live.flush_idle(&p, &mut out);
            }
            // A checkpoint: now and then a full copy, otherwise a delta.
            if rng.gen_bool(0.05) {
                if rng.gen_bool(0.15) {
                    base = bincode::serialize(&live).unwrap();
                    deltas.clear();
                    live.start_journal();
                } else {
                    // As the worker stores it, written straight from the journal; the
                    // delta read back writes the same bytes (the layout is `WindowsDelta`'s).
                    let d = live.take_delta_encoded().expect("journal runs");
                    let read = WindowsDelta::decode(&d).unwrap();
                    assert_eq!(read.encode(), d, "seed {seed}, step {step}: delta layout");
                    deltas.push(d);
                }
                let mut restored: PartitionWindows = bincode::deserialize(&base).unwrap();
                for d in &deltas {
                    restored.apply_delta(&p, WindowsDelta::decode(d).unwrap());
                }
                assert_eq!(
                    bincode::serialize(&restored).unwrap(),
                    bincode::serialize(&live).unwrap(),
                    "seed {seed}, step {step}: restored state differs"
                );
            }
        }
        // The restored copy goes on exactly like the live one.
        let d = live.take_delta().unwrap();
        let mut restored: PartitionWindows = bincode::deserialize(&base).unwrap();
        for d in &deltas {
            restored.apply_delta(&p, WindowsDelta::decode(d).unwrap());
        }
        restored.apply_delta(&p, d);
        let (mut a, mut b) = (vec![], vec![]);
        let e = ev("v1", clock + 1_000, seq + 1, Idle, 99.0, 9.0, 0.0);
        live.ingest(&p, &e, &mut a);
        restored.ingest(&p, &e, &mut b);
        live.flush_idle(&p, &mut a);
        restored.flush_idle(&p, &mut b);
        assert_eq!(a, b, "seed {seed}");
        assert!(!a.is_empty());
    }
}

/// A delta names the vehicles in the order they first changed (few of the partition's did)
/// and each one's samples in the order accepted (late ones included), from the one log all
/// vehicles share; a vehicle silent since the last delta is not in it, and the next delta
/// starts empty.
#[test]
fn a_delta_lists_vehicles_as_they_first_changed() {
    use VehicleStatus::*;
    let p = params();
    let mut st = PartitionWindows::default();
    let mut out = vec![];
    let at = |v: &str, s: i64| ev(v, T0 + s * 1_000, s, EnRoute, s as f64 * 0.01, 0.0, 30.0);
    for v in 0..20 {
        st.ingest(&p, &at(&format!("silent-{v}"), 0), &mut out);
    }
    st.start_journal();
    let order = [
        ("b", 1),
        ("a", 2),
        ("b", 3),
        ("c", 4),
        ("a", 5),
        ("b", 2),
        ("a", 5),
    ];
    for (v, s) in order {
        let mut e = at(v, s);
        e.mission_id = Some(format!("m-{v}-{s}"));
        st.ingest(&p, &e, &mut out);
    }
    let d = WindowsDelta::decode(&st.take_delta_encoded().unwrap()).unwrap();
    let got: Vec<(&str, Vec<i64>)> = d
        .samples
        .iter()
        .map(|(v, s)| (v.as_str(), s.iter().map(|s| s.seq).collect()))
        .collect();
    // ("a", 5) came twice: the second is a duplicate, not journaled.
    assert_eq!(
        got,
        [("b", vec![1, 3, 2]), ("a", vec![2, 5]), ("c", vec![4])]
    );
    let fleets: Vec<&str> = d.fleets.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(fleets, ["b", "a", "c"]);
    let mut late = at("b", 2);
    late.mission_id = Some("m-b-2".into());
    assert_eq!(d.samples[0].1[2], Sample::from_event(&late));
    let next = st.take_delta().unwrap();
    assert_eq!((next.samples(), next.fleets.len()), (0, 0));
}

/// The journal's log keeps its memory from delta to delta, and gives back what a burst grew
/// it to once a later delta uses less than a quarter of it.
#[test]
fn the_journal_log_gives_back_a_burst() {
    use VehicleStatus::*;
    let p = params();
    let mut st = PartitionWindows::default();
    let mut out = vec![];
    st.start_journal();
    let log_capacity = |st: &PartitionWindows| st.journal.as_ref().unwrap().log.capacity();
    let mut burst = |st: &mut PartitionWindows, events: i64, from: i64| {
        for s in from..from + events {
            let e = ev(&format!("v{}", s % 500), T0 + s, s, EnRoute, 1.0, 0.0, 30.0);
            st.ingest(&p, &e, &mut out);
        }
        st.take_delta_encoded().unwrap().len()
    };
    let big = burst(&mut st, 100_000, 0);
    assert!(big > 1 << 20, "the burst's delta: {big} bytes");
    // Kept for the next delta: the burst's size.
    assert!(log_capacity(&st) >= big - 100_000, "{}", log_capacity(&st));
    let small = burst(&mut st, 1_000, 100_000);
    assert!(
        log_capacity(&st) <= small,
        "given back to what the last delta used ({small} bytes): {}",
        log_capacity(&st)
    );
    // A delta of the same size again keeps it.
    let kept = log_capacity(&st);
    burst(&mut st, 1_000, 101_000);
    assert_eq!(log_capacity(&st), kept);
}

#[test]
fn no_journal_no_delta() {
    let mut st = PartitionWindows::default();
    assert!(st.take_delta().is_none());
    st.start_journal();
    let d = st.take_delta().unwrap();
    assert_eq!(d.samples(), 0);
}

/// A vehicle that went silent keeps only its anchor point; its buffer is released.
#[test]
fn a_silent_vehicle_releases_its_buffer() {
    use VehicleStatus::*;
    let p = params();
    let mut st = PartitionWindows::default();
    let mut out = vec![];
    let mut v2_only = PartitionWindows::default();
    let mut out2 = vec![];
    for s in 0..1_000i64 {
        let ts = T0 + s * 1_000;
        if s < 400 {
            st.ingest(
                &p,
                &ev("v1", ts, s, EnRoute, s as f64 * 0.01, 0.0, 30.0),
                &mut out,
            );
        }
        let e = ev("v2", ts, s, EnRoute, s as f64 * 0.01, 0.0, 30.0);
        st.ingest(&p, &e, &mut out);
        v2_only.ingest(&p, &e, &mut out2);
    }
    assert_eq!(st.retained_samples(), v2_only.retained_samples() + 1);
    let v1 = st.state_bytes() - v2_only.state_bytes();
    assert!(
        v1 <= 300,
        "v1 holds an anchor, no buffer and no window: {v1} bytes"
    );
}

/// Bounded: at 1 Hz with the default parameters a vehicle holds about three minutes of
/// points and a handful of windows, far below a kilobyte per minute of lateness.
#[test]
fn a_reporting_vehicle_holds_a_bounded_compact_state() {
    use VehicleStatus::*;
    let p = WindowParams::from(&crate::config::TelemetryConfig::default());
    let mut st = PartitionWindows::default();
    let mut out = vec![];
    let mut peak = 0;
    for s in 0..3_600i64 {
        let status = [EnRoute, OnMission, Idle][(s / 180 % 3) as usize];
        let mut e = ev(
            "v1",
            T0 + s * 1_000,
            s,
            status,
            s as f64 * 0.012,
            s as f64 * 0.002,
            43.0,
        );
        e.mission_id = (status == OnMission).then(|| format!("m-{}", s / 180));
        st.ingest(&p, &e, &mut out);
        if s > 600 {
            peak = peak.max(st.state_bytes());
        }
    }
    assert!(st.retained_samples() <= 190, "{}", st.retained_samples());
    assert!(peak <= 2_048, "peak state {peak} bytes");
}

/// The bounded kernel against the previous one (which keeps every sample a late one can touch
/// and recomputes each window from them): the same rows, versions and verdicts, in the same
/// order, on random streams with late, too-late and duplicate samples, out-of-order arrival,
/// fleet changes, missions, silences beyond the gap and idle flushes, under several window
/// parameters (lateness shorter and longer than the gap, windows shorter than the gap).
#[test]
fn the_bounded_kernel_equals_recomputing_from_every_sample() {
    use rand::{Rng, SeedableRng};
    let shapes = [
        params(),
        WindowParams {
            out_of_orderness_ms: 5_000,
            allowed_lateness_ms: 120_000,
            max_gap_ms: 60_000,
            window_ms: 60_000,
        },
        WindowParams {
            out_of_orderness_ms: 2_000,
            allowed_lateness_ms: 10_000,
            max_gap_ms: 90_000,
            window_ms: 30_000,
        },
        WindowParams {
            out_of_orderness_ms: 0,
            allowed_lateness_ms: 0,
            max_gap_ms: 20_000,
            window_ms: 10_000,
        },
    ];
    let mut rows = 0;
    let mut late_rows = 0;
    for (k, p) in shapes.iter().enumerate() {
        for seed in 0..60u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed * 31 + k as u64);
            let mut new = PartitionWindows::default();
            let mut old = oracle::Oracle::default();
            let (mut a, mut b) = (vec![], vec![]);
            let mut stream = RandomStream::new(&mut rng);
            for step in 0..2_000 {
                let e = stream.next(&mut rng, p, step);
                let (ra, rb) = (new.ingest(p, &e, &mut a), old.ingest(p, &e, &mut b));
                assert_eq!(ra, rb, "shape {k} seed {seed} step {step}: verdict");
                if rng.gen_bool(0.005) {
                    new.flush_idle(p, &mut a);
                    old.flush_idle(p, &mut b);
                }
                assert_eq!(a, b, "shape {k} seed {seed} step {step}: rows");
                assert_eq!(new.closed_until_ms(), old.closed_until_ms());
                late_rows += a.iter().filter(|r| r.version > 1).count();
                rows += a.len();
                a.clear();
                b.clear();
            }
            new.flush_idle(p, &mut a);
            old.flush_idle(p, &mut b);
            assert_eq!(a, b, "shape {k} seed {seed}: final flush");
        }
    }
    assert!(
        rows > 10_000 && late_rows > 1_000,
        "{rows} rows, {late_rows} re-emitted"
    );
}

/// Random telemetry for the kernel tests: vehicles in two fleets (one moves), mostly on time,
/// some a little or much late, a few far too late, repeats, silences, counter resets,
/// missions.
struct RandomStream {
    clock: i64,
    seq: i64,
    vehicles: usize,
}

impl RandomStream {
    fn new(rng: &mut impl rand::Rng) -> Self {
        RandomStream {
            clock: T0,
            seq: 0,
            vehicles: rng.gen_range(1..8),
        }
    }

    fn next(&mut self, rng: &mut impl rand::Rng, p: &WindowParams, step: usize) -> TelemetryEvent {
        self.clock += if rng.gen_bool(0.01) {
            rng.gen_range(0..400_000)
        } else {
            rng.gen_range(0..1_500)
        };
        self.seq += 1;
        let clock = self.clock;
        let v = rng.gen_range(0..self.vehicles);
        let ts = match rng.gen_range(0..20) {
            0..=12 => clock,
            13..=15 => clock - rng.gen_range(0..60_000),
            16 => clock - rng.gen_range(60_000..400_000),
            17 => clock - rng.gen_range(0..p.allowed_lateness_ms + p.window_ms + 1),
            _ => clock - rng.gen_range(0..3_000),
        };
        let status = VehicleStatus::ALL[rng.gen_range(0..7)];
        let odo = if rng.gen_bool(0.02) {
            0.0 // a counter reset
        } else {
            (ts - T0) as f64 / 50_000.0 + rng.gen_range(0.0..0.05)
        };
        let mut e = ev(
            &format!("v{v}"),
            ts,
            if rng.gen_bool(0.05) {
                self.seq - 1
            } else {
                self.seq
            },
            status,
            odo,
            (ts - T0) as f64 / 400_000.0,
            rng.gen_range(0.0..90.0),
        );
        e.fleet_id = if v % 2 == 0 || (v == 3 && step > 900) {
            "f1".into()
        } else {
            "f2".into()
        };
        if rng.gen_bool(0.3) {
            e.mission_id = Some(format!("m{}", rng.gen_range(0..4)));
        }
        e
    }
}

/// A checkpoint written by the previous release (its layout: every retained sample) is read
/// and upgraded to the state the bounded kernel holds after the same events, byte for byte,
/// and both go on with the same rows.
#[test]
fn a_legacy_checkpoint_is_upgraded_exactly() {
    use rand::{Rng, SeedableRng};
    let p = WindowParams {
        out_of_orderness_ms: 5_000,
        ..params()
    };
    for seed in 0..30u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut new = PartitionWindows::default();
        let mut old = oracle::Oracle::default();
        let mut stream = RandomStream::new(&mut rng);
        let (mut a, mut b) = (vec![], vec![]);
        let cut = rng.gen_range(100..1_500);
        for step in 0..cut {
            let e = stream.next(&mut rng, &p, step);
            new.ingest(&p, &e, &mut a);
            old.ingest(&p, &e, &mut b);
        }
        let legacy_bytes = bincode::serialize(&old).unwrap();
        assert!(bincode::deserialize::<PartitionWindows>(&legacy_bytes).is_err());
        let mut upgraded = PartitionWindows::decode(&legacy_bytes, &p).unwrap();
        assert_eq!(
            bincode::serialize(&upgraded).unwrap(),
            bincode::serialize(&new).unwrap(),
            "seed {seed}: upgraded state"
        );
        let (mut a, mut b) = (vec![], vec![]);
        for step in cut..cut + 500 {
            let e = stream.next(&mut rng, &p, step);
            assert_eq!(upgraded.ingest(&p, &e, &mut a), old.ingest(&p, &e, &mut b));
        }
        upgraded.flush_idle(&p, &mut a);
        old.flush_idle(&p, &mut b);
        assert_eq!(a, b, "seed {seed}: rows after the upgrade");
        assert!(!a.is_empty());
    }
    assert!(PartitionWindows::decode(b"not a checkpoint", &p).is_err());
}

#[test]
fn the_vehicles_come_out_in_id_order_whatever_order_they_arrived_in() {
    use VehicleStatus::*;
    let p = params();
    let ids: Vec<String> = (0..300)
        .map(|i| format!("v{:03}", (i * 7919) % 300))
        .collect();
    let run = |order: &[String]| {
        let mut st = PartitionWindows::default();
        let mut out = vec![];
        for v in order {
            st.ingest(&p, &ev(v, T0 + 1_000, 1, EnRoute, 1.0, 1.0, 30.0), &mut out);
        }
        let state = bincode::serialize(&st).unwrap();
        st.ingest(
            &p,
            &ev("w", T0 + 2 * 60_000, 1, Idle, 1.0, 1.0, 0.0),
            &mut out,
        );
        let closed: Vec<String> = vehicle_rows(&out)
            .iter()
            .map(|r| r.vehicle_id.clone())
            .collect();
        (state, closed)
    };
    let mut sorted = ids.clone();
    sorted.sort();
    let mut reversed = sorted.clone();
    reversed.reverse();
    let (state_a, closed_a) = run(&ids);
    let (state_b, closed_b) = run(&reversed);
    let (state_c, closed_c) = run(&sorted);
    assert_eq!(closed_a, sorted, "a window's vehicles close in id order");
    assert_eq!(closed_b, sorted);
    assert_eq!(closed_c, sorted);
    assert!(
        state_a == state_c && state_b == state_c,
        "the serialised state does not depend on arrival order"
    );
}

/// A delta's sample written by hand is the bytes bincode writes for it (and its length is read
/// back from them), on random samples (every status, integers of every width, missions
/// absent, empty, long and non-ASCII).
#[test]
fn delta_samples_encode_as_bincode() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let missions = ["", "m-1", "mission-é", &"m".repeat(260)];
    for _ in 0..5_000 {
        let mut int = || rng.gen::<i64>() >> rng.gen_range(0..64);
        let (ts, seq, odometer_m, energy_wh, speed_ckph) = (int(), int(), int(), int(), int());
        let s = SampleRef {
            ts,
            seq,
            status: VehicleStatus::ALL[rng.gen_range(0..7)],
            odometer_m,
            energy_wh,
            speed_ckph,
            mission: rng
                .gen_bool(0.7)
                .then(|| missions[rng.gen_range(0..missions.len())]),
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        s.encode_delta(&mut ours);
        put_delta(&mut theirs, &s);
        assert_eq!(ours, theirs);
        // The journal finds where a sample ends in its log by reading it.
        let len = ours.len();
        ours.extend_from_slice(&[7; 9]);
        assert_eq!(SampleRef::encoded_len(&ours), len);
    }
}
