//! `atlasmesh replay --pipeline telemetry --from T --to T` (issue 15): after a live run over
//! three hours of (simulated) time, replaying the middle hour rewrites the ClickHouse rows of
//! that hour and leaves every result as it was, row for row, in ClickHouse and PostgreSQL.
//! The producer stamps each message with the simulated send time, so the range is an hour of
//! the fleet's clock, as an operator would name it.

use std::collections::BTreeMap;
use std::time::Duration;

use atlasmesh_core::clock::now_ms;
use atlasmesh_simulator::{SimConfig, Simulator};

use crate::common::{sigterm, TestEnv};

/// ClickHouse columns that record when a row was written, not what it says.
const WRITE_TIME_COLUMNS: &[&str] = &["ingested_at_ms", "emitted_at_ms"];

/// Every MergeTree table of the test's ClickHouse database as its merged rows (`FINAL`),
/// sorted, without the write-time columns.
async fn clickhouse_results(env: &TestEnv) -> BTreeMap<String, String> {
    let tables = env.ch_text(
        &format!(
            "SELECT name FROM system.tables WHERE database = '{}' AND engine LIKE '%MergeTree' ORDER BY name FORMAT TabSeparated",
            env.cfg.clickhouse.database
        ),
    )
    .await;
    let mut out = BTreeMap::new();
    for table in tables.lines() {
        let described = env
            .ch_text(&format!("DESCRIBE TABLE {table} FORMAT TabSeparated"))
            .await;
        let cols: Vec<&str> = described
            .lines()
            .filter_map(|l| l.split('\t').next())
            .filter(|c| !WRITE_TIME_COLUMNS.contains(c))
            .collect();
        let list = cols.join(", ");
        let rows = env
            .ch_text(&format!(
                "SELECT {list} FROM {table} FINAL ORDER BY {list} FORMAT TabSeparated"
            ))
            .await;
        out.insert(table.to_string(), rows);
    }
    out
}

/// Every table of the test's PostgreSQL database: row count and a digest of its sorted rows.
async fn postgres_results(pg: &sqlx::PgPool) -> BTreeMap<String, (i64, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pg)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let (n, digest): (i64, Option<String>) = sqlx::query_as(&format!(
            "SELECT count(*), md5(string_agg(x::text, '|' ORDER BY x::text)) FROM \"{t}\" x"
        ))
        .fetch_one(pg)
        .await
        .unwrap();
        out.insert(t, (n, digest.unwrap_or_default()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_middle_range_changes_no_result() {
    let env = TestEnv::new("replay");
    env.migrate();
    const HOUR_MS: i64 = 3_600_000;
    // Four vehicles, one sample every 3 s, three hours of simulated time.
    let mut sim = Simulator::new(SimConfig {
        seed: 31,
        fleets: 2,
        vehicles_per_fleet: 2,
        interval_ms: 3_000,
        out_of_order_pct: 5.0,
        duplicate_pct: 2.0,
        ..SimConfig::default()
    });
    let start = sim.config().start_ms;
    let mut items = Vec::new();
    while sim.now_ms() < start + 3 * HOUR_MS {
        items.extend(sim.next_batch());
    }
    // The middle hour, by send time (non-decreasing in emission order).
    let (from, to) = (start + HOUR_MS, start + 2 * HOUR_MS);
    let sent = |i: &atlasmesh_simulator::Emitted| i.sent_ms().expect("simulated send time");
    let i_from = items.partition_point(|i| sent(i) < from);
    let i_to = items.partition_point(|i| sent(i) < to);
    let (a, rest) = items.split_at(i_from);
    let (b, c) = rest.split_at(i_to - i_from);
    assert!(
        !a.is_empty() && !b.is_empty() && !c.is_empty(),
        "three hours"
    );
    // Snapshots often (the replay starts from one); windows close on watermarks only, so the
    // live run's results do not depend on when the broker delivered (no idle closes).
    let extra = [
        ("ATLASMESH_RUNNER__SNAPSHOT_INTERVAL_MS", "500"),
        ("ATLASMESH_TELEMETRY__IDLE_FLUSH_MS", "600000"),
    ];
    let pg = env.pg().await;
    let mut worker = env.spawn_worker_args(0, &["--pipelines", "telemetry,performance"], &extra);
    let timeout = Duration::from_secs(240);
    // In three parts, each checkpointed before the next: a snapshot precedes the hour.
    env.produce(a).await;
    env.wait_checkpointed(&pg, a.len() as i64, timeout).await;
    env.produce(b).await;
    env.wait_checkpointed(&pg, (a.len() + b.len()) as i64, timeout)
        .await;
    env.produce(c).await;
    env.wait_checkpointed(&pg, items.len() as i64, timeout)
        .await;
    // The performance pipeline folds the closed windows a moment later.
    tokio::time::sleep(Duration::from_secs(5)).await;
    sigterm(&mut worker);

    let ch_before = clickhouse_results(&env).await;
    let pg_before = postgres_results(&pg).await;
    assert!(
        ch_before["vehicle_window_metrics"].lines().count() > 20,
        "the live run closed windows"
    );
    let replay_started = now_ms();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlasmesh"))
        .args([
            "replay",
            "--pipeline",
            "telemetry",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
        ])
        .envs(env.envs())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::fs::write(env.log_dir.join("replay.log"), stderr.as_bytes()).unwrap();
    std::fs::write(env.log_dir.join("replay.json"), &out.stdout).unwrap();
    assert!(out.status.success(), "replay failed: {stderr}");
    assert!(
        stderr.contains("replay telemetry: ")
            && stderr.contains("events/s")
            && stderr.contains("ETA"),
        "progress output: {stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = summary["events"].as_u64().unwrap();
    assert!(
        events >= b.len() as u64 && events < items.len() as u64,
        "the range and its lead-in from a snapshot, not everything: {summary}"
    );
    let parts = summary["partitions"].as_array().unwrap();
    assert!(!parts.is_empty(), "{summary}");
    let mut in_range = 0;
    for p in parts {
        let (start, first, end) = (
            p["start_offset"].as_i64().unwrap(),
            p["range_offset"].as_i64().unwrap(),
            p["end_offset"].as_i64().unwrap(),
        );
        assert!(start <= first && first < end, "{p}");
        assert!(
            p["from_snapshot"].as_bool().unwrap(),
            "a snapshot precedes B: {p}"
        );
        in_range += end - first;
    }
    assert_eq!(in_range, b.len() as i64, "exactly the middle hour");

    // The replay wrote: rows of the range carry its write time (the newest insert of equal
    // key and version wins)…
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let rewritten = env
        .ch_rows::<N>(&format!(
            "SELECT count() AS n FROM vehicle_window_metrics FINAL WHERE emitted_at_ms >= {replay_started}"
        ))
        .await[0]
        .n;
    assert!(rewritten > 0, "the replay rewrote no window");
    // …and every result is what it was, row for row.
    let ch_after = clickhouse_results(&env).await;
    for (table, rows) in &ch_before {
        assert_eq!(
            rows.lines().count(),
            ch_after[table].lines().count(),
            "{table}: row count"
        );
        assert!(
            rows == &ch_after[table],
            "{table}: rows changed by the replay"
        );
    }
    assert_eq!(ch_before.len(), ch_after.len());
    assert_eq!(pg_before, postgres_results(&pg).await, "PostgreSQL changed");
}
