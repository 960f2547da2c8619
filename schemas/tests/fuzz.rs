//! Property-based fuzzing of the Avro decode path and the telemetry validator (issue 10): a
//! bounded number of generated and mutated inputs, every one decoded through
//! [`PreparedSchema::decode`] (what `Codec` does after fetching the writer schema) and, when
//! it decodes, validated by `atlasmesh_core::telemetry::validate`. Nothing may panic, and no
//! single decode may allocate more than [`MAX_BYTES_PER_DECODE`] however many items the bytes
//! declare.
//!
//! One `#[test]` runs every property in turn, so this binary has no other thread allocating
//! while a decode is measured (the allocator statistics are process-wide).

use std::alloc::System;

use apache_avro::types::Value;
use apache_avro::Schema;
use atlasmesh_core::telemetry::{validate, ValidationLimits};
use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use atlasmesh_schemas::bounded::{zigzag, Limits};
use atlasmesh_schemas::{PreparedSchema, SchemaKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// What one decode may allocate in total: the default limit of 100,000 values at well under
/// 100 bytes each, plus the strings, which cannot exceed the message.
const MAX_BYTES_PER_DECODE: usize = 16 << 20;

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,12}",
        any::<String>(),
        Just("x\u{0}y".to_string()),
        Just(String::new()),
    ]
}

fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e3f64..1e3,
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-0.0),
    ]
}

fn arb_event() -> impl Strategy<Value = TelemetryEvent> {
    (
        (
            arb_text(),
            arb_text(),
            arb_text(),
            any::<i64>(),
            any::<i64>(),
        ),
        (
            arb_f64(),
            arb_f64(),
            arb_f64(),
            arb_f64(),
            arb_f64(),
            arb_f64(),
        ),
        (
            0..VehicleStatus::ALL.len(),
            proptest::option::of(arb_text()),
            proptest::option::of(arb_text()),
            arb_f64(),
            proptest::collection::vec(arb_text(), 0..4),
        ),
    )
        .prop_map(
            |(
                (event_id, fleet_id, vehicle_id, ts_ms, seq),
                (lat, lon, speed, odo, pct, kwh),
                rest,
            )| {
                let (status, mission_id, zone_id, payload_kg, fault_codes) = rest;
                TelemetryEvent {
                    event_id,
                    fleet_id,
                    vehicle_id,
                    ts_ms,
                    seq,
                    lat,
                    lon,
                    speed_kph: speed,
                    odometer_km: odo,
                    energy_pct: pct,
                    energy_used_kwh: kwh,
                    status: VehicleStatus::ALL[status],
                    mission_id,
                    zone_id,
                    payload_kg,
                    fault_codes,
                }
            },
        )
}

fn encode(schema: &Schema, ev: &TelemetryEvent) -> Vec<u8> {
    let v = apache_avro::to_value(ev).unwrap().resolve(schema).unwrap();
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(v)
        .unwrap()
}

/// An edit of a valid datum: what a corrupt or hostile producer could send.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Append(Vec<u8>),
    /// A varint claiming a huge count, spliced in.
    HugeCount(usize, i64),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Edit::Flip(i, x)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1..8usize).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
        proptest::collection::vec(any::<u8>(), 1..8).prop_map(Edit::Append),
        (
            any::<usize>(),
            prop_oneof![
                Just(i64::MAX),
                Just(i64::MIN),
                Just(1 << 40),
                Just(-(1 << 40))
            ]
        )
            .prop_map(|(i, n)| Edit::HugeCount(i, n)),
    ]
}

fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |i: usize, b: &Vec<u8>| if b.is_empty() { 0 } else { i % (b.len() + 1) };
        match e {
            Edit::Flip(i, x) if !b.is_empty() => {
                let i = i % b.len();
                b[i] ^= x;
            }
            Edit::Flip(..) => {}
            Edit::Insert(i, bytes) => {
                let i = at(*i, &b);
                b.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(i, n) => {
                let i = at(*i, &b);
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Edit::Truncate(i) => {
                let i = at(*i, &b);
                b.truncate(i);
            }
            Edit::Append(bytes) => b.extend(bytes),
            Edit::HugeCount(i, n) => {
                let i = at(*i, &b);
                b.splice(i..i, zigzag(*n));
            }
        }
    }
    b
}

/// Decodes `body` with `p`, measuring what it allocates; panics if that exceeds the bound.
fn decode_measured(p: &PreparedSchema, body: &[u8]) -> Option<Value> {
    let region = Region::new(GLOBAL);
    let out = p.decode(body, Limits::default());
    let allocated = region.change().bytes_allocated;
    assert!(
        allocated <= MAX_BYTES_PER_DECODE,
        "decoding {} bytes allocated {allocated} bytes",
        body.len()
    );
    out.ok()
}

fn check_event(v: &Value) {
    if let Ok(ev) = apache_avro::from_value::<TelemetryEvent>(v) {
        let _ = validate(&ev, 1_700_000_000_000, &ValidationLimits::default());
    }
}

#[test]
fn decode_and_validate_survive_generated_and_mutated_input() {
    let schema = SchemaKind::Telemetry.parsed();
    let telemetry = PreparedSchema::new(schema.clone(), Some(SchemaKind::Telemetry)).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });

    // 1. Every event round-trips, and the validator takes whatever decodes.
    runner
        .run(&arb_event(), |ev| {
            let body = encode(&schema, &ev);
            let v = decode_measured(&telemetry, &body).expect("its own encoding decodes");
            let back: TelemetryEvent = apache_avro::from_value(&v).unwrap();
            prop_assert_eq!(format!("{back:?}"), format!("{ev:?}"));
            check_event(&v);
            Ok(())
        })
        .unwrap();

    // 2. Edited encodings: decoded or refused, never a panic, never a large allocation.
    runner
        .run(
            &(arb_event(), proptest::collection::vec(arb_edit(), 1..4)),
            |(ev, edits)| {
                let body = apply(encode(&schema, &ev), &edits);
                if let Some(v) = decode_measured(&telemetry, &body) {
                    check_event(&v);
                }
                Ok(())
            },
        )
        .unwrap();

    // 3. Arbitrary bytes against writer schemas made for bombs.
    let bombs = [
        r#"{"type":"array","items":{"type":"array","items":"null"}}"#,
        r#"{"type":"map","values":{"type":"array","items":"null"}}"#,
        r#"{"type":"record","name":"Node","fields":[
            {"name":"next","type":["null","Node"]},
            {"name":"many","type":{"type":"array","items":"null"}}]}"#,
    ];
    for text in bombs {
        let writer = Schema::parse_str(text).unwrap();
        let p = PreparedSchema::new(writer, None).unwrap();
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..64), |bytes| {
                decode_measured(&p, &bytes);
                Ok(())
            })
            .unwrap();
        // And the crafted ones: huge declared counts in a few bytes, truncated or complete
        // (one outer item holding n nulls is a well-formed datum of a few bytes).
        for n in [
            1i64 << 20,
            1 << 29,
            1 << 40,
            i64::MAX,
            -(1 << 40),
            i64::MIN + 1,
        ] {
            let mut b = zigzag(n);
            b.extend(zigzag(n));
            b.extend([0, 0]);
            decode_measured(&p, &b);
            let mut b = zigzag(1);
            b.extend(zigzag(n));
            b.extend([0, 0]);
            decode_measured(&p, &b);
        }
    }
}
