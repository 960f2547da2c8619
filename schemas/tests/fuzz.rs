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
use atlasmesh_core::TelemetryEvent;
use atlasmesh_schemas::bounded::{zigzag, Limits};

use atlasmesh_schemas::{PreparedSchema, SchemaKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

mod common;
use common::{apply, arb_edit, arb_event, encode};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// What one decode may allocate in total: the default limit of 100,000 values at well under
/// 100 bytes each, plus the strings, which cannot exceed the message.
const MAX_BYTES_PER_DECODE: usize = 16 << 20;

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
