//! SIGKILL the worker several times during a 200k-event run: the final windows equal the
//! independent reference (= an uninterrupted run): nothing lost, nothing counted twice.

use std::time::Duration;

use atlasmesh_simulator::{valid_counted_events, SimConfig, Simulator};
use rand::{Rng, SeedableRng};

use crate::common::{sigkill, sigterm, TestEnv};
use crate::reference;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    let sim_cfg = SimConfig {
        seed: 2026,
        fleets: 4,
        vehicles_per_fleet: 25,
        out_of_order_pct: 0.01,
        duplicate_pct: 0.005,
        offline_backlog_pct: 0.0005,
        ..SimConfig::default()
    };
    kill_and_compare("crash", sim_cfg, 200_000, false).await;
}

/// The same at 10,000 vehicles, where checkpoints are deltas onto a full state (issue 12):
/// every restart restores full state + deltas, and the windows still equal the reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_10k_vehicles_restores_deltas_exactly() {
    let sim_cfg = SimConfig {
        seed: 4242,
        fleets: 20,
        vehicles_per_fleet: 500,
        out_of_order_pct: 0.01,
        duplicate_pct: 0.005,
        ..SimConfig::default()
    };
    let deltas = kill_and_compare("crash10k", sim_cfg, 200_000, true).await;
    assert!(
        deltas > 0,
        "no kill came after a checkpoint delta was stored"
    );
}

/// Produces `n` simulated items, SIGKILLs the worker at random points (at least three times,
/// each after durable progress; with `after_delta`, after a checkpoint delta was stored too,
/// so the restart restores a full state plus deltas), and compares the final windows with the
/// reference. Returns the most checkpoint deltas seen stored after a full state before a kill.
async fn kill_and_compare(name: &str, sim_cfg: SimConfig, n: usize, after_delta: bool) -> i32 {
    let env = TestEnv::new(name);
    env.migrate();
    let items = Simulator::new(sim_cfg).take(n);
    let counted = valid_counted_events(&items);
    let want_vehicle = reference::vehicle_windows(&counted);
    let want_fleet = reference::fleet_windows(&counted, &want_vehicle);
    env.produce(&items).await;

    let pg = env.pg().await;
    let total = items.len() as i64;
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = 0;
    // At most 5,000 events a batch: the run spans ~40 checkpoints however fast the build
    // consumes the backlog, so the kills land mid-run (with the default 50,000, a fast worker
    // restarted after the second kill could finish before its delay ran out).
    let pace = [("ATLASMESH_RUNNER__MAX_BATCH_EVENTS", "5000")];
    let mut worker = env.spawn_worker_with(0, &pace);
    let mut last = 0;
    let mut deltas = 0;
    for n in 1..=4 {
        // Kill only after the restarted worker made durable progress, at a random moment
        // inside its next batch.
        let started = std::time::Instant::now();
        while env.checkpointed(&pg).await <= last && started.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A restarted worker's first checkpoint is a full state (a snapshot); wait for a
        // delta on top of it.
        while after_delta && started.elapsed() < Duration::from_secs(120) {
            let d = env.checkpoint_deltas(&pg).await;
            deltas = deltas.max(d);
            if d > 0 || env.checkpointed(&pg).await >= total {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let delay = Duration::from_millis(rng.gen_range(0..1_500));
        tokio::time::sleep(delay).await;
        let progress = env.checkpointed(&pg).await;
        if progress >= total {
            break;
        }
        sigkill(&mut worker);
        kills += 1;
        last = env.checkpointed(&pg).await;
        eprintln!("crash test (seed {seed}): SIGKILL #{kills} {delay:?} after a checkpoint, at {progress}/{total} checkpointed");
        worker = env.spawn_worker_with(n, &pace);
    }
    assert!(
        kills >= 3 && last > 0,
        "the run finished before three kills landed mid-run (seed {seed}); logs in {}",
        env.log_dir.display()
    );
    env.wait_checkpointed(&pg, total, Duration::from_secs(300))
        .await;
    env.assert_windows(&want_vehicle, &want_fleet, Duration::from_secs(60))
        .await;
    assert_eq!(env.raw_count().await, counted.len() as u64);
    sigterm(&mut worker);
    deltas
}

/// A worker killed after consuming a partition to its end, before that partition went idle,
/// must still close the partition's open windows after a restart although no message arrives
/// for it any more (its state is loaded on assignment, not on the first message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_at_end_of_log_still_closes_open_windows() {
    let env = TestEnv::new("endoflog");
    env.migrate();
    let sim_cfg = SimConfig {
        seed: 7,
        fleets: 2,
        vehicles_per_fleet: 5,
        ..SimConfig::default()
    };
    let items = Simulator::new(sim_cfg).take(3_000);
    let counted = valid_counted_events(&items);
    let want_vehicle = reference::vehicle_windows(&counted);
    let want_fleet = reference::fleet_windows(&counted, &want_vehicle);
    env.produce(&items).await;
    let pg = env.pg().await;

    // First run: never idle, so the last windows stay open in the checkpointed state.
    let mut worker = env.spawn_worker_with(0, &[("ATLASMESH_TELEMETRY__IDLE_FLUSH_MS", "3600000")]);
    env.wait_checkpointed(&pg, items.len() as i64, Duration::from_secs(120))
        .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    sigkill(&mut worker);
    let open = want_vehicle
        .len()
        .saturating_sub(env.vehicle_windows().await.len());
    assert!(open > 0, "the scenario must end with open windows");

    // Restart with idle flush on: nothing new is consumed, the open windows close.
    let mut worker = env.spawn_worker(1);
    env.assert_windows(&want_vehicle, &want_fleet, Duration::from_secs(60))
        .await;
    assert_eq!(env.checkpointed(&pg).await, items.len() as i64);
    sigterm(&mut worker);
}
