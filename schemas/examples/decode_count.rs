//! Decodes one Confluent-framed telemetry message N times through `Codec`, by the direct path
//! (`decode_telemetry`) or the generic one (`decode_record` of a transparent newtype, the path
//! every telemetry message took before): for counting instructions per message with callgrind,
//! as (total at N − total at 0) / N.
//!
//!   cargo build --release -p atlasmesh-schemas --example decode_count
//!   valgrind --tool=callgrind <target>/release/examples/decode_count direct 10000
//!   valgrind --tool=callgrind <target>/release/examples/decode_count generic 10000

use std::hint::black_box;

use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use atlasmesh_schemas::{Codec, SchemaKind};

#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Generic(TelemetryEvent);

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "direct".into());
    let n: usize = args.next().map_or(1000, |a| a.parse().expect("N"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (url, server) = atlasmesh_test_support::schema_registry::spawn_ephemeral()
            .await
            .expect("registry");
        let codec = Codec::new(&url).expect("codec");
        let ev = TelemetryEvent {
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
        };
        let bytes = codec
            .encode("fleet.telemetry.v1", SchemaKind::Telemetry, &ev)
            .await
            .expect("encode");
        // Warm both paths (schema fetched and prepared) whatever N is.
        assert_eq!(codec.decode_telemetry(&bytes).await.expect("direct"), ev);
        let warm = codec.decode_record::<Generic>(&bytes, SchemaKind::Telemetry);
        assert_eq!(warm.await.expect("generic").0, ev);
        for _ in 0..n {
            let b = black_box(&bytes[..]);
            match path.as_str() {
                "direct" => drop(black_box(codec.decode_telemetry(b).await.expect("direct"))),
                "generic" => drop(black_box(
                    codec
                        .decode_record::<Generic>(b, SchemaKind::Telemetry)
                        .await
                        .expect("generic"),
                )),
                other => panic!("path is direct or generic, not {other}"),
            }
        }
        server.abort();
    });
}
