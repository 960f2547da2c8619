//! ClickHouse down for 30 s mid-run: the worker pauses (offsets do not move), then catches up
//! by itself with nothing lost.

use std::time::{Duration, Instant};

use atlasmesh_simulator::{valid_counted_events, SimConfig, Simulator};
use atlasmesh_test_support::clickhouse_server::ClickHouseServer;

use crate::common::{sigterm, TestEnv};
use crate::reference;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_for_30s_loses_nothing_and_catches_up() {
    let mut ch = ClickHouseServer::start(None).expect("private ClickHouse");
    let mut env = TestEnv::new("chdown");
    env.cfg.clickhouse.url = ch.url();
    env.migrate();
    let sim_cfg = SimConfig {
        seed: 99,
        fleets: 2,
        vehicles_per_fleet: 10,
        duplicate_pct: 0.005,
        ..SimConfig::default()
    };
    let items = Simulator::new(sim_cfg).take(30_000);
    let counted = valid_counted_events(&items);
    let want_vehicle = reference::vehicle_windows(&counted);
    let want_fleet = reference::fleet_windows(&counted, &want_vehicle);
    let (a, rest) = items.split_at(10_000);
    let (b, c) = rest.split_at(10_000);

    let pg = env.pg().await;
    let mut worker = env.spawn_worker(0);
    env.produce(a).await;
    env.wait_checkpointed(&pg, a.len() as i64, Duration::from_secs(60))
        .await;

    ch.stop().unwrap();
    let down_at = Instant::now();
    env.produce(b).await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;
    assert_eq!(
        env.checkpointed(&pg).await,
        a.len() as i64,
        "no offset may move while ClickHouse is down"
    );
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker must wait, not exit"
    );
    ch.restart().unwrap();
    env.produce(c).await;

    env.wait_checkpointed(&pg, items.len() as i64, Duration::from_secs(120))
        .await;
    env.assert_windows(&want_vehicle, &want_fleet, Duration::from_secs(30))
        .await;
    assert_eq!(env.raw_count().await, counted.len() as u64);
    sigterm(&mut worker);
}
