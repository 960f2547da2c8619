//! Generators shared by the property tests: random telemetry events (any text, extreme
//! floats, options, fault codes), their Avro encoding with a given writer schema, and edits
//! of a valid datum (what a corrupt or hostile producer could send).
#![allow(dead_code)]

use apache_avro::Schema;
use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use atlasmesh_schemas::bounded::zigzag;
use proptest::prelude::*;

pub fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,12}",
        any::<String>(),
        Just("x\u{0}y".to_string()),
        Just(String::new()),
    ]
}

pub fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e3f64..1e3,
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-0.0),
    ]
}

pub fn arb_event() -> impl Strategy<Value = TelemetryEvent> {
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

pub fn encode(schema: &Schema, ev: &TelemetryEvent) -> Vec<u8> {
    let v = apache_avro::to_value(ev).unwrap().resolve(schema).unwrap();
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(v)
        .unwrap()
}

/// An edit of a valid datum: what a corrupt or hostile producer could send.
#[derive(Debug, Clone)]
pub enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Append(Vec<u8>),
    /// A varint claiming a huge count, spliced in.
    HugeCount(usize, i64),
}

pub fn arb_edit() -> impl Strategy<Value = Edit> {
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

pub fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
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
