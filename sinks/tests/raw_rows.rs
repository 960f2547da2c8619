//! `telemetry_raw` rows encoded by the sink ([`RawRows`], RowBinary written by hand as the
//! events are accepted) read back from the real ClickHouse (the stack's 18.16 server) exactly
//! as the rows the `clickhouse` crate writes from the same events: every column, every
//! status, strings empty, non-ASCII and longer than one length byte, several fault codes.
//!
//! Needs CLICKHOUSE_URL (`eval "$(scripts/stack env)"`; default http://127.0.0.1:8123).

use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use atlasmesh_sinks::clickhouse::{
    client, ClickHouseSink, RawEvent, RawRowRef, RawRows, RawTelemetryRow,
};

mod clickhouse_db;

fn events() -> Vec<RawEvent> {
    let long = "x".repeat(300);
    VehicleStatus::ALL
        .iter()
        .enumerate()
        .map(|(i, status)| RawEvent {
            event: TelemetryEvent {
                event_id: format!("e{i}-{}", if i == 1 { &long } else { "" }),
                fleet_id: if i == 2 {
                    "flotte-é-ß".into()
                } else {
                    "f".into()
                },
                vehicle_id: format!("v{i}"),
                ts_ms: 1_700_000_000_123 + 1_000 * i as i64,
                seq: i as i64 - 3,
                lat: 45.501_234_567_8,
                lon: -73.567_890_123_4,
                speed_kph: if i == 3 { f64::INFINITY } else { 31.25 },
                odometer_km: 1234.567 * i as f64,
                energy_pct: -0.0,
                energy_used_kwh: f64::MIN_POSITIVE,
                status: *status,
                mission_id: (i % 2 == 0).then(|| format!("m{i}{long}")),
                zone_id: (i % 3 == 0).then(|| "z1".to_string()),
                payload_kg: f64::MAX,
                fault_codes: (0..i).map(|c| format!("P{c:04}")).collect(),
            },
            partition: i as i32,
            offset: 1 << (40 + i),
        })
        .collect()
}

async fn read_all(ch: &ClickHouseSink) -> Vec<RawTelemetryRow> {
    ch.client()
        .query("SELECT ?fields FROM telemetry_raw ORDER BY vehicle_id")
        .fetch_all::<RawTelemetryRow>()
        .await
        .expect("select")
}

#[tokio::test]
async fn encoded_raw_rows_read_back_as_the_crates_rows() {
    let (by_crate, by_sink) = (
        clickhouse_db::config("raw_crate"),
        clickhouse_db::config("raw_sink"),
    );
    let events = events();
    let ingested_at_ms = 1_700_000_100_000;
    clickhouse_db::with_database(&by_crate, || async {
        clickhouse_db::with_database(&by_sink, || async {
            let mut insert = client(&by_crate)
                .insert::<RawRowRef<'static>>("telemetry_raw")
                .await
                .expect("insert");
            for e in &events {
                insert
                    .write(&RawRowRef::new(e, ingested_at_ms))
                    .await
                    .expect("write");
            }
            insert.end().await.expect("end");

            // Two batches as the pipeline writes them: shared with the insert, then cleared
            // and filled again in the same memory.
            let mut rows = RawRows::default();
            let sink = ClickHouseSink::new(&by_sink);
            let half = events.len() / 2;
            for part in [&events[..half], &events[half..]] {
                rows.clear();
                for e in part {
                    rows.push(e);
                }
                rows.set_ingested_at(ingested_at_ms);
                rows.share();
                assert_eq!(rows.len(), part.len());
                sink.write_raw(&rows).await.expect("write_raw");
            }

            let (expected, got) = (
                read_all(&ClickHouseSink::new(&by_crate)).await,
                read_all(&sink).await,
            );
            assert_eq!(got.len(), events.len());
            // Bit for bit, floats included (-0.0, infinity, the smallest normal).
            assert_eq!(format!("{got:?}"), format!("{expected:?}"));
            for (row, e) in got.iter().zip(&events) {
                assert_eq!(row.to_event().as_ref(), Some(&e.event));
                assert_eq!(
                    (row.source_partition, row.source_offset, row.ingested_at_ms),
                    (e.partition, e.offset, ingested_at_ms)
                );
                assert_eq!(row.energy_pct.to_bits(), (-0.0f64).to_bits());
            }
        })
        .await
    })
    .await;
}
