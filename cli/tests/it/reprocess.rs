//! Reprocessing a user can trust (issue 17): a partition whose checkpoint row is gone starts
//! from the configured position (earliest) with empty state, in group mode too, where Kafka's
//! committed offsets would otherwise let it skip the whole history silently; and the group
//! timeouts come from `kafka.properties` when the user sets them.

use std::time::Duration;

use atlasmesh_simulator::{SimConfig, Simulator};

use crate::common::{sigterm, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_checkpoint_in_group_mode_reprocesses_from_the_start() {
    let env = TestEnv::new("resetgroup");
    env.migrate();
    let items = Simulator::new(SimConfig {
        seed: 21,
        fleets: 1,
        vehicles_per_fleet: 3,
        ..SimConfig::default()
    })
    .take(300);
    env.produce(&items).await;
    // Group mode, with timeouts a slow local broker can keep (the user's word wins).
    let conf = env.log_dir.join("group.toml");
    std::fs::write(
        &conf,
        "[kafka.properties]\n\"session.timeout.ms\" = \"45000\"\n\"heartbeat.interval.ms\" = \"3000\"\n",
    )
    .unwrap();
    let conf = conf.to_str().unwrap().to_string();
    let group = [
        ("ATLASMESH_KAFKA__ASSIGNMENT", "group"),
        ("ATLASMESH_CONFIG", conf.as_str()),
    ];
    let pg = env.pg().await;
    let mut worker = env.spawn_worker_args(0, &["--pipelines", "telemetry"], &group);
    env.wait_checkpointed(&pg, items.len() as i64, Duration::from_secs(240))
        .await;
    sigterm(&mut worker);

    // The reset the README describes: delete the pipeline's checkpoint rows. Kafka still holds
    // the group's committed offsets at the end of the log.
    sqlx::query("DELETE FROM stream_checkpoints WHERE pipeline = 'telemetry' AND topic = $1")
        .bind(&env.cfg.topics.telemetry)
        .execute(&pg)
        .await
        .unwrap();
    assert_eq!(env.checkpointed(&pg).await, 0);
    let mut worker = env.spawn_worker_args(1, &["--pipelines", "telemetry"], &group);
    // Every event is read again from the start and the checkpoints come back to the end.
    env.wait_checkpointed(&pg, items.len() as i64, Duration::from_secs(240))
        .await;
    sigterm(&mut worker);
    let log = std::fs::read_to_string(env.log_dir.join("worker-1.log")).unwrap();
    assert!(
        log.contains("No checkpoint for this partition"),
        "the start position must be stated in the log; {}",
        env.log_dir.display()
    );
}
