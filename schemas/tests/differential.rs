//! The direct telemetry decoder against the generic one (issue 12 item 3): random events
//! written with today's schema and with evolved writer schemas (an older writer without the
//! optional fields and with narrower numbers, a newer one with reordered fields, reordered enum
//! symbols, other union layouts and extra fields of every shape), plus edited and random
//! bytes, must decode to the same event or fail with the same error kind through
//! [`PreparedSchema::decode_telemetry`] (direct) and [`PreparedSchema::decode_record`]
//! (apache-avro value, NUL check, serde).

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::Schema;
use atlasmesh_core::TelemetryEvent;
use atlasmesh_schemas::bounded::Limits;
use atlasmesh_schemas::{DecodeError, PreparedSchema, SchemaKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

mod common;
use common::{apply, arb_edit, arb_event};

/// An older writer: no mission, zone or fault codes (the reader defaults them), `seq` as an
/// `int`, `speed_kph` as a `float`, `energy_used_kwh` as a `long`, `payload_kg` as an `int`.
const OLDER: &str = r#"{"type":"record","name":"TelemetryEvent","namespace":"io.atlasmesh.fleet.v1",
 "fields":[
  {"name":"event_id","type":"string"},{"name":"fleet_id","type":"string"},
  {"name":"vehicle_id","type":"string"},{"name":"ts_ms","type":"long"},
  {"name":"seq","type":"int"},{"name":"lat","type":"double"},{"name":"lon","type":"double"},
  {"name":"speed_kph","type":"float"},{"name":"odometer_km","type":"double"},
  {"name":"energy_pct","type":"double"},{"name":"energy_used_kwh","type":"long"},
  {"name":"status","type":{"type":"enum","name":"VehicleStatus",
    "symbols":["offline","idle","en_route","on_mission","charging","maintenance","fault"]}},
  {"name":"payload_kg","type":"int"}]}"#;

/// A newer writer: fields reordered, enum symbols reordered, `mission_id` as
/// `["string","null"]`, `zone_id` as a plain `string`, and extra fields the reader ignores
/// (a string, a map, a nested named record with an array and a union, a fixed, a reference to
/// that record, a boolean and an enum).
const NEWER: &str = r#"{"type":"record","name":"TelemetryEvent","namespace":"io.atlasmesh.fleet.v1",
 "fields":[
  {"name":"vehicle_id","type":"string"},
  {"name":"firmware","type":"string"},
  {"name":"status","type":{"type":"enum","name":"VehicleStatus",
    "symbols":["fault","maintenance","charging","on_mission","en_route","idle","offline"]}},
  {"name":"ts_ms","type":"long"},{"name":"event_id","type":"string"},
  {"name":"tags","type":{"type":"map","values":"string"}},
  {"name":"fleet_id","type":"string"},{"name":"seq","type":"long"},
  {"name":"battery","type":{"type":"record","name":"Battery","fields":[
    {"name":"cells","type":{"type":"array","items":"double"}},
    {"name":"temp_c","type":["null","float"]}]}},
  {"name":"mission_id","type":["string","null"]},
  {"name":"lon","type":"double"},{"name":"lat","type":"double"},
  {"name":"digest","type":{"type":"fixed","name":"Digest","size":4}},
  {"name":"speed_kph","type":"double"},{"name":"odometer_km","type":"double"},
  {"name":"spare","type":"Battery"},
  {"name":"energy_pct","type":"double"},{"name":"energy_used_kwh","type":"double"},
  {"name":"zone_id","type":"string"},
  {"name":"charging","type":"boolean"},
  {"name":"mode","type":{"type":"enum","name":"Mode","symbols":["A","B","C"]}},
  {"name":"payload_kg","type":"double"},
  {"name":"fault_codes","type":{"type":"array","items":"string"}}]}"#;

/// The Avro value of `ev` as `writer` lays it out (numbers narrowed to the writer's types,
/// extra fields filled from the event's own content).
fn value_for(writer: &Schema, ev: &TelemetryEvent) -> Value {
    let Schema::Record(r) = writer else {
        panic!("record writer")
    };
    let battery = |scale: f64| {
        Value::Record(vec![
            (
                "cells".into(),
                Value::Array(vec![
                    Value::Double(ev.lat * scale),
                    Value::Double(ev.lon * scale),
                ]),
            ),
            (
                "temp_c".into(),
                if ev.seq % 2 == 0 {
                    Value::Union(0, Box::new(Value::Null))
                } else {
                    Value::Union(1, Box::new(Value::Float(ev.speed_kph as f32)))
                },
            ),
        ])
    };
    let real = |v: f64, s: &Schema| match s {
        Schema::Double => Value::Double(v),
        Schema::Float => Value::Float(v as f32),
        Schema::Long => Value::Long(v as i64),
        Schema::Int => Value::Int(v as i32),
        other => panic!("{other:?}"),
    };
    let fields = r
        .fields
        .iter()
        .map(|f| {
            let v = match (f.name.as_str(), &f.schema) {
                ("event_id", _) => Value::String(ev.event_id.clone()),
                ("fleet_id", _) => Value::String(ev.fleet_id.clone()),
                ("vehicle_id", _) => Value::String(ev.vehicle_id.clone()),
                ("ts_ms", _) => Value::Long(ev.ts_ms),
                ("seq", Schema::Int) => Value::Int(ev.seq as i32),
                ("seq", _) => Value::Long(ev.seq),
                ("lat", s) => real(ev.lat, s),
                ("lon", s) => real(ev.lon, s),
                ("speed_kph", s) => real(ev.speed_kph, s),
                ("odometer_km", s) => real(ev.odometer_km, s),
                ("energy_pct", s) => real(ev.energy_pct, s),
                ("energy_used_kwh", s) => real(ev.energy_used_kwh, s),
                ("payload_kg", s) => real(ev.payload_kg, s),
                ("status", Schema::Enum(e)) => {
                    let sym = ev.status.as_str();
                    let i = e.symbols.iter().position(|s| s == sym).unwrap();
                    Value::Enum(i as u32, sym.to_string())
                }
                ("mission_id" | "zone_id", s) => {
                    let text = if f.name == "mission_id" {
                        &ev.mission_id
                    } else {
                        &ev.zone_id
                    };
                    match (s, text) {
                        (Schema::String, t) => Value::String(t.clone().unwrap_or_default()),
                        (Schema::Union(u), t) => {
                            let want = |x: &Schema| match t {
                                Some(_) => *x == Schema::String,
                                None => *x == Schema::Null,
                            };
                            let i = u.variants().iter().position(want).unwrap();
                            let inner = t.clone().map_or(Value::Null, Value::String);
                            Value::Union(i as u32, Box::new(inner))
                        }
                        other => panic!("{other:?}"),
                    }
                }
                ("fault_codes", _) => Value::Array(
                    ev.fault_codes
                        .iter()
                        .map(|c| Value::String(c.clone()))
                        .collect(),
                ),
                ("firmware", _) => Value::String(ev.vehicle_id.chars().rev().collect()),
                ("tags", _) => Value::Map(
                    ev.fault_codes
                        .iter()
                        .map(|c| (c.clone(), Value::String(ev.fleet_id.clone())))
                        .collect::<HashMap<_, _>>(),
                ),
                ("battery", _) => battery(1.0),
                ("spare", _) => battery(-1.0),
                ("digest", _) => Value::Fixed(4, ev.ts_ms.to_le_bytes()[..4].to_vec()),
                ("charging", _) => Value::Boolean(ev.seq % 3 == 0),
                ("mode", _) => {
                    let i = ev.seq.rem_euclid(3) as u32;
                    Value::Enum(i, ["A", "B", "C"][i as usize].to_string())
                }
                (other, _) => panic!("no value for {other}"),
            };
            (f.name.clone(), v)
        })
        .collect();
    Value::Record(fields)
}

fn write(writer: &Schema, ev: &TelemetryEvent) -> Vec<u8> {
    apache_avro::writer::datum::GenericDatumWriter::builder(writer)
        .build()
        .unwrap()
        .write_value_to_vec(value_for(writer, ev))
        .unwrap()
}

/// A decode result as compared: the event (floats by their exact rendering, so `-0.0` and
/// `0.0` differ) or the error kind; an `Invalid` refusal also by its message (the field named).
fn outcome(r: Result<TelemetryEvent, DecodeError>) -> String {
    match r {
        Ok(ev) => format!("ok {ev:?}"),
        Err(DecodeError::Invalid(m)) => format!("invalid {m}"),
        Err(DecodeError::Undecodable(_)) => "undecodable".into(),
        Err(DecodeError::WrongRecord(_)) => "wrong record".into(),
        Err(DecodeError::UnknownSchema { .. }) => "unknown schema".into(),
        Err(DecodeError::Unavailable(_)) => "unavailable".into(),
    }
}

struct Writers {
    schemas: Vec<(&'static str, Schema)>,
    prepared: Vec<PreparedSchema>,
}

fn writers() -> Writers {
    let schemas = vec![
        ("today", SchemaKind::Telemetry.parsed()),
        ("older", Schema::parse_str(OLDER).unwrap()),
        ("newer", Schema::parse_str(NEWER).unwrap()),
    ];
    let prepared = schemas
        .iter()
        .map(|(name, s)| {
            let p = PreparedSchema::new(s.clone(), Some(SchemaKind::Telemetry)).unwrap();
            assert!(p.has_direct_telemetry(), "{name}: no direct plan");
            p
        })
        .collect();
    Writers { schemas, prepared }
}

thread_local! {
    /// The buffer `decode_telemetry_into` reuses across cases: it holds whatever the cases
    /// before left in it (other writers' events, fault codes, missions, or part of a datum
    /// refused midway), as the worker's reused batch slots do.
    static REUSED: std::cell::RefCell<TelemetryEvent> = std::cell::RefCell::new(TelemetryEvent::default());
}

/// Both paths on `body`, and the direct one again into a reused buffer; fails with the
/// writer's name if they differ. Returns the outcome.
fn same(w: &Writers, i: usize, body: &[u8], limits: Limits) -> Result<String, TestCaseError> {
    let p = &w.prepared[i];
    let direct = outcome(p.decode_telemetry(body, limits));
    let generic = outcome(p.decode_record::<TelemetryEvent>(body, limits));
    prop_assert_eq!(&direct, &generic, "writer {}", w.schemas[i].0);
    let reused = REUSED.with(|slot| {
        let mut ev = slot.borrow_mut();
        let r = p.decode_telemetry_into(body, limits, &mut ev);
        outcome(r.map(|()| ev.clone()))
    });
    prop_assert_eq!(&direct, &reused, "writer {}, reused buffer", w.schemas[i].0);
    Ok(direct)
}

fn arb_limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        8 => Just(Limits::default()),
        1 => (0u64..40).prop_map(|max_values| Limits { max_values, ..Limits::default() }),
        1 => (0u32..4).prop_map(|max_depth| Limits { max_depth, ..Limits::default() }),
    ]
}

#[test]
fn direct_and_generic_telemetry_decoders_agree() {
    let w = writers();
    let mut runner = TestRunner::new(Config {
        cases: 10_000,
        failure_persistence: None,
        ..Config::default()
    });
    let oks = [0usize; 3].map(std::cell::Cell::new);

    // 1. 10,000 random events, each written with every writer schema.
    runner
        .run(&(arb_event(), arb_limits()), |(ev, limits)| {
            for (i, ok) in oks.iter().enumerate() {
                let body = write(&w.schemas[i].1, &ev);
                if same(&w, i, &body, limits)?.starts_with("ok") {
                    ok.set(ok.get() + 1);
                }
            }
            Ok(())
        })
        .unwrap();
    // About a fifth decode to an event (arb_text gives a NUL a quarter of the time, which
    // refuses the record; a few meet a small limit): thousands of events either way.
    for (i, n) in oks.iter().map(std::cell::Cell::get).enumerate() {
        assert!(n > 1_500, "{}: only {n} decoded", w.schemas[i].0);
    }

    // 2. Edited encodings (flips, inserts, deletions, truncations, appended bytes, huge counts).
    runner
        .run(
            &(
                arb_event(),
                proptest::collection::vec(arb_edit(), 1..4),
                0..3usize,
            ),
            |(ev, edits, i)| {
                let body = apply(write(&w.schemas[i].1, &ev), &edits);
                same(&w, i, &body, Limits::default())?;
                Ok(())
            },
        )
        .unwrap();

    // 3. Every truncation of a thousand encodings, and random bytes.
    let mut fewer = TestRunner::new(Config {
        cases: 1_000,
        failure_persistence: None,
        ..Config::default()
    });
    fewer
        .run(&(arb_event(), 0..3usize), |(ev, i)| {
            let body = write(&w.schemas[i].1, &ev);
            for cut in 0..body.len() {
                prop_assert_eq!(same(&w, i, &body[..cut], Limits::default())?, "undecodable");
            }
            Ok(())
        })
        .unwrap();
    runner
        .run(
            &(proptest::collection::vec(any::<u8>(), 0..160), 0..3usize),
            |(bytes, i)| {
                same(&w, i, &bytes, Limits::default())?;
                Ok(())
            },
        )
        .unwrap();
}
