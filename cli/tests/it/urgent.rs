//! Closed windows and alerts do not wait for the checkpoint interval: with checkpoints every
//! 10 minutes, a vehicle's fault reaches the alert topic as a firing message within seconds of
//! its window closing (the telemetry pipeline flushes the closed window `runner.urgent_flush_ms`
//! after closing it, the alerts pipeline its pager message likewise). Without that, nothing
//! would leave either pipeline before the first checkpoint, 10 minutes in.

use std::time::{Duration, Instant};

use atlasmesh_core::clock::now_ms;
use atlasmesh_simulator::{Emitted, EventKind};
use rdkafka::message::Message;

use crate::common::{sigterm, TestEnv};

const WINDOW_MS: i64 = 2_000;

#[tokio::test(flavor = "multi_thread")]
async fn closed_windows_and_alerts_leave_before_the_checkpoint_interval() {
    let env = TestEnv::new("urgent");
    env.migrate();
    let pg = env.pg().await;
    let fleet = "fleet-urgent";
    sqlx::query(
        "INSERT INTO alert_rules (id, fleet_id, scope, metric, comparison, threshold, severity)
         VALUES ('urgent-fault', $1, 'vehicle', 'fault_count', 'gt', 0, 'critical')",
    )
    .bind(fleet)
    .execute(&pg)
    .await
    .unwrap();
    let interval_ms = "600000";
    let mut worker = env.spawn_worker_args(
        1,
        &["--pipelines", "telemetry,alerts"],
        &[
            ("ATLASMESH_RUNNER__CHECKPOINT_INTERVAL_MS", interval_ms),
            ("ATLASMESH_RUNNER__URGENT_FLUSH_MS", "20"),
            ("ATLASMESH_TELEMETRY__WINDOW_MS", "2000"),
            ("ATLASMESH_TELEMETRY__OUT_OF_ORDERNESS_MS", "100"),
            // Windows close on event time here, not on idleness.
            ("ATLASMESH_TELEMETRY__IDLE_FLUSH_MS", "600000"),
            ("ATLASMESH_ALERTS__RULES_REFRESH_MS", "1000"),
        ],
    );
    let alerts = env.consumer(&env.cfg.topics.alerts, "probe");

    // One vehicle reporting live every 100 ms; every sample of the windows from 6 s on faulted
    // (the worker may still be starting before that).
    let started = Instant::now();
    let first_ms = now_ms();
    let fault_from = (first_ms / WINDOW_MS + 3) * WINDOW_MS;
    let mut seq = 0i64;
    let mut next_sample = Instant::now();
    let deadline = Duration::from_secs(150);
    let firing_at = loop {
        assert!(
            started.elapsed() < deadline,
            "no firing alert within {deadline:?} (checkpoints every {interval_ms} ms); logs in {}",
            env.log_dir.display()
        );
        if Instant::now() >= next_sample {
            next_sample += Duration::from_millis(100);
            seq += 1;
            let ts = now_ms();
            let event = atlasmesh::alerts_bench::driving_sample(
                fleet,
                "veh-urgent",
                seq,
                ts,
                ts >= fault_from,
            );
            env.produce(&[Emitted::Event {
                key: event.vehicle_id.clone(),
                event,
                kind: EventKind::Normal,
                sent_ms: None,
            }])
            .await;
        }
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(50), alerts.recv()).await {
            let body: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            if body["event_action"] == "trigger" {
                break now_ms();
            }
        }
    };
    // The first faulted window closes once event time passes its end + out-of-orderness; its
    // alert comes within seconds of that, far before the first checkpoint (10 minutes).
    let closable = fault_from + WINDOW_MS + 100;
    let after = firing_at - closable;
    assert!(
        after < 60_000,
        "the alert came {after} ms after its window could close; logs in {}",
        env.log_dir.display()
    );
    sigterm(&mut worker);
    eprintln!(
        "alert {after} ms after its window could close (checkpoint interval {interval_ms} ms)"
    );
}
