//! Decoding one Confluent-framed telemetry message (magic byte + 4-byte schema id + Avro datum):
//!
//! - `baseline_from_avro_datum`: `apache_avro::from_avro_datum` with the already parsed writer
//!   schema + `from_value::<TelemetryEvent>` (what decoding costs with no registry client at all);
//! - `codec_decode_telemetry`: `atlasmesh_schemas::Codec::decode_telemetry`, the path the
//!   pipeline uses, against an in-process schema registry (`spawn_ephemeral`). The schema is
//!   fetched on the first call and cached by schema_registry_converter afterwards, so the
//!   steady state measured here does no HTTP.
//!
//! - `codec_generic_path`: the same `Codec`, through the generic path every telemetry message
//!   took before the direct decoder (apache-avro `Value`, NUL check, `from_value`): reached by
//!   asking `decode_record` for a transparent newtype of the event ([`Generic`]);
//! - `prepared_direct` / `prepared_generic`: the two paths without the framing and cache
//!   lookup (`PreparedSchema::decode_telemetry` / `decode_record`);
//! - `apache_avro_read_deser`: apache-avro's direct serde reader
//!   (`GenericDatumReader::read_deser`, no `Value`; it cannot resolve an evolved writer);
//! - `serde_avro_fast`: `serde_avro_fast::from_datum_slice` against the writer schema.
//!
//! All loops run inside one tokio `block_on` per sample (`iter_custom`), so no per-message
//! runtime entry cost is counted.
//!
//!   cargo bench -p atlasmesh-schemas --bench avro_decode

use std::hint::black_box;
use std::time::{Duration, Instant};

use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use atlasmesh_schemas::bounded::Limits;
use atlasmesh_schemas::{Codec, PreparedSchema, SchemaKind};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The event as a type other than `TelemetryEvent`: `Codec::decode_record` gives it the
/// generic path, the one every telemetry message took before the direct decoder.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Generic(TelemetryEvent);

fn event() -> TelemetryEvent {
    TelemetryEvent {
        event_id: "6f1c2b9e-3d4a-4c1b-9a7e-2f8d5e6a7b01".into(),
        fleet_id: "fleet-berlin".into(),
        vehicle_id: "veh-0042".into(),
        ts_ms: 1_767_225_600_123,
        seq: 86_400,
        lat: 52.520_008,
        lon: 13.404_954,
        speed_kph: 37.25,
        odometer_km: 18_234.512,
        energy_pct: 64.5,
        energy_used_kwh: 2_411.873,
        status: VehicleStatus::OnMission,
        mission_id: Some("mission-2026-000123".into()),
        zone_id: Some("zone-mitte".into()),
        payload_kg: 412.0,
        fault_codes: vec!["P0420".into()],
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let topic = "fleet.telemetry.v1";
    let (url, server) = rt
        .block_on(atlasmesh_test_support::schema_registry::spawn_ephemeral())
        .expect("registry");
    let codec = Codec::new(&url).expect("codec");
    let ev = event();
    let bytes = rt
        .block_on(codec.encode(topic, SchemaKind::Telemetry, &ev))
        .expect("encode");
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    // Warm the decoder's schema cache and check both paths agree.
    let via_codec = rt.block_on(codec.decode_telemetry(&bytes)).expect("decode");
    assert_eq!(via_codec, ev);
    let schema = SchemaKind::Telemetry.parsed();
    // `from_avro_datum` is deprecated in apache-avro 0.22 (in favour of GenericDatumReader) but
    // is still the plainest "bytes + schema → Value" call, which is what the baseline is for.
    #[allow(deprecated)]
    let plain = |b: &[u8]| -> TelemetryEvent {
        let mut datum = &b[5..];
        let v = apache_avro::from_avro_datum(&schema, &mut datum, None).expect("datum");
        apache_avro::from_value::<TelemetryEvent>(&v).expect("from_value")
    };
    assert_eq!(plain(&bytes), ev);
    let generic = rt
        .block_on(codec.decode_record::<Generic>(&bytes, SchemaKind::Telemetry))
        .expect("generic");
    assert_eq!(generic.0, ev);
    let prepared = PreparedSchema::new(schema.clone(), Some(SchemaKind::Telemetry)).expect("plan");
    assert!(prepared.has_direct_telemetry());
    let limits = Limits::default();
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .expect("reader");
    let read_deser = |b: &[u8]| -> TelemetryEvent {
        let mut datum = &b[5..];
        reader.read_deser(&mut datum).expect("read_deser")
    };
    assert_eq!(read_deser(&bytes), ev);
    let fast: serde_avro_fast::Schema = SchemaKind::Telemetry.schema().parse().expect("schema");
    let fast_decode = |b: &[u8]| -> TelemetryEvent {
        serde_avro_fast::from_datum_slice(&b[5..], &fast).expect("serde_avro_fast")
    };
    assert_eq!(fast_decode(&bytes), ev);

    let mut g = c.benchmark_group("avro_decode_telemetry");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.warm_up_time(Duration::from_secs(1));
    g.bench_function("baseline_from_avro_datum", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(plain(black_box(&bytes)));
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("codec_decode_telemetry", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(
                        codec
                            .decode_telemetry(black_box(&bytes))
                            .await
                            .expect("decode"),
                    );
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("codec_generic_path", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(
                        codec
                            .decode_record::<Generic>(black_box(&bytes), SchemaKind::Telemetry)
                            .await
                            .expect("decode"),
                    );
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("prepared_direct", |b| {
        b.iter(|| {
            prepared
                .decode_telemetry(black_box(&bytes[5..]), limits)
                .expect("direct")
        })
    });
    g.bench_function("prepared_generic", |b| {
        b.iter(|| {
            prepared
                .decode_record::<TelemetryEvent>(black_box(&bytes[5..]), limits)
                .expect("generic")
        })
    });
    g.bench_function("apache_avro_read_deser", |b| {
        b.iter(|| read_deser(black_box(&bytes)))
    });
    g.bench_function("serde_avro_fast", |b| {
        b.iter(|| fast_decode(black_box(&bytes)))
    });
    g.finish();
    server.abort();
}

criterion_group!(benches, bench);
criterion_main!(benches);
