//! Start-up and run-time dependency loss on a busy machine (issue 11): `atlasmesh run` started
//! before its broker waits for it and comes up by itself; an API whose broker dies reports it on
//! `/health` and recovers without a restart. Both use a private Tansu broker on its own port.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atlasmesh_test_support::tansu_broker::{free_port, TansuBroker};

use crate::common::{sigterm, TestEnv};

/// `/health`'s status code and its `checks.kafka.status` ("up"/"down"), or None when the API
/// does not answer.
async fn health(base: &str) -> Option<(u16, String)> {
    let r = reqwest::Client::new()
        .get(format!("{base}/health"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    let code = r.status().as_u16();
    let body: serde_json::Value = r.json().await.ok()?;
    let kafka = body["checks"]["kafka"]["status"]
        .as_str()
        .unwrap_or("")
        .to_string();
    Some((code, kafka))
}

async fn wait_health(base: &str, want: u16, within: Duration, child: &mut Child, what: &str) {
    let started = Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: the process exited instead of waiting"
        );
        let got = health(base).await;
        if got.as_ref().map(|g| g.0) == Some(want) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{what}: /health is {got:?}, not {want}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_started_before_its_broker_comes_up_by_itself() {
    let port = free_port().unwrap();
    let mut env = TestEnv::new("latebroker");
    env.cfg.kafka.brokers = format!("127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{}", free_port().unwrap());
    let base = format!("http://{listen}");
    let log_path = env.log_dir.join("run.log");
    let mut run = Command::new(env!("CARGO_BIN_EXE_atlasmesh"))
        .arg("run")
        .envs(env.envs())
        .env("ATLASMESH_API__LISTEN", &listen)
        .env("ATLASMESH_STARTUP__DEADLINE_SECS", "300")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();

    // 20 s without a broker: the process waits (the API answers, degraded).
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        run.try_wait().unwrap().is_none(),
        "atlasmesh run exited without a broker; log {}",
        log_path.display()
    );
    let before = health(&base).await;
    assert_eq!(
        before,
        Some((503, "down".to_string())),
        "while the broker is missing /health must say so"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("Waiting for a dependency") && log.contains("\"dependency\":\"kafka\""),
        "the log must name what it waits for; log {}",
        log_path.display()
    );

    let _broker = TansuBroker::start_on(port).expect("private tansu");
    wait_health(
        &base,
        200,
        Duration::from_secs(240),
        &mut run,
        "after the broker started",
    )
    .await;
    // Up for real: the worker prepared the topics on the late broker and runs its pipelines.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("Dependency answers; going on."),
        "log {}",
        log_path.display()
    );
    sigterm(&mut run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_reports_a_lost_broker_and_recovers_without_restart() {
    let mut broker = TansuBroker::start_on(free_port().unwrap()).expect("private tansu");
    let mut env = TestEnv::new("brokerloss");
    env.cfg.kafka.brokers = broker.bootstrap();
    env.migrate();
    let (mut api, base) = env.spawn_api(0).await;
    wait_health(&base, 200, Duration::from_secs(120), &mut api, "before").await;

    broker.stop().unwrap();
    wait_health(&base, 503, Duration::from_secs(60), &mut api, "broker down").await;
    assert_eq!(health(&base).await.map(|h| h.1), Some("down".to_string()));

    broker.restart().unwrap();
    wait_health(
        &base,
        200,
        Duration::from_secs(120),
        &mut api,
        "broker back",
    )
    .await;
    sigterm(&mut api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_broker_is_gone_stops_within_its_shutdown_grace() {
    let mut broker = TansuBroker::start_on(free_port().unwrap()).expect("private tansu");
    let mut env = TestEnv::new("stopnobroker");
    env.cfg.kafka.brokers = broker.bootstrap();
    env.migrate();
    let items = atlasmesh_simulator::Simulator::new(atlasmesh_simulator::SimConfig {
        seed: 5,
        fleets: 1,
        vehicles_per_fleet: 2,
        ..atlasmesh_simulator::SimConfig::default()
    })
    .take(200);
    env.produce(&items).await;
    let mut worker = env.spawn_worker_args(
        0,
        &["--pipelines", "telemetry"],
        &[("ATLASMESH_RUNNER__SHUTDOWN_GRACE_MS", "3000")],
    );
    let pg = env.pg().await;
    env.wait_checkpointed(&pg, items.len() as i64, Duration::from_secs(120))
        .await;
    // The broker goes away for good; the worker notices and retries. A stop must not wait for
    // it (before: the final checkpoint's produce waited out message.timeout.ms and more).
    broker.stop().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    use nix::sys::signal::{kill, Signal};
    kill(
        nix::unistd::Pid::from_raw(worker.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    loop {
        if worker.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the worker did not stop within 20 s of SIGTERM (grace 3 s + 10 s); log {}",
            env.log_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
