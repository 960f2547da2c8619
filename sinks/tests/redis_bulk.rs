//! The latest values written by the bulk writer (RESP encoded by hand, a connection of its
//! own) land in Redis exactly as the `redis` crate's pipeline writes them; a Redis error
//! reply is an error and the connection stays usable; a killed connection is replaced; the
//! URL's database is used. Needs Redis (`REDIS_URL`, default loopback).

use std::collections::BTreeMap;

use atlasmesh_core::keys;
use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use atlasmesh_sinks::redis::{EncodedLatest, RedisBatch, RedisSink};
use atlasmesh_sinks::Error;

fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix(what: &str) -> String {
    format!(
        "it:bulk:{what}:{}:{}",
        std::process::id(),
        atlasmesh_core::clock::now_ms()
    )
}

fn event(fleet: usize, vehicle: usize, ts_ms: i64) -> TelemetryEvent {
    TelemetryEvent {
        event_id: format!("{fleet}-{vehicle}-{ts_ms}"),
        fleet_id: format!("fleet-{fleet}"),
        vehicle_id: if vehicle.is_multiple_of(97) {
            format!("vé\r\n{vehicle}")
        } else {
            format!("v{vehicle:05}")
        },
        ts_ms,
        seq: ts_ms / 1000,
        lat: 45.0 + vehicle as f64 * 1e-4,
        lon: -73.0,
        speed_kph: (vehicle % 90) as f64,
        odometer_km: 1000.0 + vehicle as f64,
        energy_pct: 55.5,
        energy_used_kwh: 0.25,
        status: VehicleStatus::ALL[vehicle % 7],
        mission_id: vehicle.is_multiple_of(3).then(|| format!("m{vehicle}")),
        zone_id: None,
        payload_kg: 0.0,
        fault_codes: vec![],
    }
}

/// Every field of the `vehicles` and `live` hashes of `fleets` under `prefix` in `url`.
async fn hashes(url: &str, prefix: &str, fleets: usize) -> Vec<BTreeMap<Vec<u8>, Vec<u8>>> {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut out = Vec::new();
    for f in 0..fleets {
        let fleet = format!("fleet-{f}");
        for key in [
            keys::fleet_vehicles(prefix, &fleet),
            keys::fleet_live(prefix, &fleet),
        ] {
            let h: BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut c)
                .await
                .unwrap();
            out.push(h);
        }
    }
    out
}

async fn delete(url: &str, prefix: &str, fleets: usize) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for f in 0..fleets {
        let fleet = format!("fleet-{f}");
        let _: () = redis::cmd("DEL")
            .arg(keys::fleet_vehicles(prefix, &fleet))
            .arg(keys::fleet_live(prefix, &fleet))
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn bulk_writes_equal_the_crates_pipeline() {
    let url = url();
    let (fleets, vehicles) = (3, 2_600); // more than one HSET per fleet (1,000 per command)
    let (bulk_prefix, crate_prefix) = (prefix("ours"), prefix("crate"));
    let ours = RedisSink::connect(&url, &bulk_prefix).await.unwrap();
    let theirs = RedisSink::connect(&url, &crate_prefix)
        .await
        .unwrap()
        .without_bulk_writer();
    let mut enc = EncodedLatest::default();
    for round in 0..3i64 {
        enc.clear();
        for v in 0..vehicles {
            if round > 0 && v % 2 == 1 {
                continue; // half the fleet silent this round: their values stay
            }
            enc.push(&event(v % fleets, v, 1_700_000_000_000 + round * 1000));
        }
        let batch = RedisBatch::default();
        ours.write_with_latest(enc.newest(), &batch).await.unwrap();
        theirs
            .write_with_latest(enc.newest(), &batch)
            .await
            .unwrap();
        let (a, b) = (
            hashes(&url, &bulk_prefix, fleets).await,
            hashes(&url, &crate_prefix, fleets).await,
        );
        assert_eq!(a, b, "round {round}");
        let fields: usize = a.iter().map(BTreeMap::len).sum();
        assert_eq!(fields, 2 * vehicles, "round {round}");
        // The values read back as the events last written.
        let v = 97 * 2; // a vehicle id with CR LF in it, reporting every round
        let fleet = v % fleets;
        let got = &a[2 * fleet][event(fleet, v, 0).vehicle_id.as_bytes()];
        let want = event(fleet, v, 1_700_000_000_000 + round * 1000);
        assert_eq!(keys::decode_latest(got), Ok(want));
    }
    delete(&url, &bulk_prefix, fleets).await;
    delete(&url, &crate_prefix, fleets).await;
}

#[tokio::test]
async fn bulk_errors_are_reported_and_the_writer_recovers() {
    let url = url();
    let p = prefix("errors");
    let sink = RedisSink::connect(&url, &p).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    // fleet-0's vehicles hash is a string: HSET answers WRONGTYPE.
    let key = keys::fleet_vehicles(&p, "fleet-0");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("not a hash")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut enc = EncodedLatest::default();
    for v in 0..10 {
        enc.push(&event(v % 2, v, 1_000));
    }
    let batch = RedisBatch::default();
    match sink.write_with_latest(enc.newest(), &batch).await {
        Err(Error::Other(e)) => assert!(e.contains("WRONGTYPE"), "{e}"),
        other => panic!("expected WRONGTYPE, got {other:?}"),
    }
    // fleet-1 was written all the same (each HSET answers on its own).
    let fleet_1: usize = redis::cmd("HLEN")
        .arg(keys::fleet_vehicles(&p, "fleet-1"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(fleet_1, 5);
    // The same connection, still in step, writes once the key is a hash again.
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    sink.write_with_latest(enc.newest(), &batch).await.unwrap();
    assert_eq!(hashes(&url, &p, 2).await[0].len(), 5);
    // The bulk connection killed: a write may fail once, as unavailable, and the next one
    // opens a new connection.
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap();
    let name = format!("name={} ", RedisSink::bulk_client_name(&p));
    let line = clients.lines().find(|l| l.contains(&name)).expect(&name);
    let id = line.split(' ').find_map(|f| f.strip_prefix("id=")).unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut c)
        .await
        .unwrap();
    delete(&url, &p, 2).await;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match sink.write_with_latest(enc.newest(), &batch).await {
            Ok(()) => break,
            Err(e) if attempts < 3 => eprintln!("attempt {attempts}: {e}"),
            Err(e) => panic!("no recovery after {attempts} attempts: {e}"),
        }
    }
    let written: usize = hashes(&url, &p, 2).await.iter().map(BTreeMap::len).sum();
    assert_eq!(written, 20);
    delete(&url, &p, 2).await;
}

/// Writes cut short at any point (the caller gave up waiting) leave the next write correct:
/// its success is its own replies', and what it wrote is there.
#[tokio::test]
async fn cancelled_writes_leave_the_next_one_in_step() {
    let url = url();
    let p = prefix("cancel");
    let sink = RedisSink::connect(&url, &p).await.unwrap();
    let batch = RedisBatch::default();
    let mut enc = EncodedLatest::default();
    for round in 0..60i64 {
        enc.clear();
        for v in 0..3_000 {
            enc.push(&event(v % 2, v, round));
        }
        let cut = std::time::Duration::from_micros(50 * round as u64);
        let _ = tokio::time::timeout(cut, sink.write_with_latest(enc.newest(), &batch)).await;
    }
    enc.clear();
    for v in 0..3_000 {
        enc.push(&event(v % 2, v, 1_000_000));
    }
    sink.write_with_latest(enc.newest(), &batch).await.unwrap();
    let all = hashes(&url, &p, 2).await;
    for (fleet, vehicles) in [(0, &all[0]), (1, &all[2])] {
        assert_eq!(vehicles.len(), 1_500);
        for (id, value) in vehicles {
            let e = keys::decode_latest(value).unwrap();
            assert_eq!(
                (e.ts_ms, &e.fleet_id),
                (1_000_000, &format!("fleet-{fleet}")),
                "{id:?}"
            );
        }
    }
    delete(&url, &p, 2).await;
}

#[tokio::test]
async fn bulk_writes_go_to_the_urls_database() {
    // The URL without a database of its own, then with database 5.
    let base = url();
    let base = match base.rsplit_once('/') {
        Some((head, db)) if !head.ends_with('/') && db.parse::<u32>().is_ok() => head.into(),
        _ => base.trim_end_matches('/').to_string(),
    };
    let url = format!("{base}/5");
    let p = prefix("db");
    let sink = RedisSink::connect(&url, &p).await.unwrap();
    let mut enc = EncodedLatest::default();
    enc.push(&event(0, 1, 1_000));
    sink.write_with_latest(enc.newest(), &RedisBatch::default())
        .await
        .unwrap();
    assert_eq!(hashes(&url, &p, 1).await[0].len(), 1);
    assert!(hashes(&base, &p, 1).await[0].is_empty());
    delete(&url, &p, 1).await;
}
