//! `atlasmesh bench-api`: load on the query API — reads, then the command path — in one run.
//!
//! The API and the command worker run in this process on an isolated configuration (topics
//! `benchapi-<ts>.*`, consumer group prefix `benchapi-<ts>`), against the configured stores.
//! The per-caller rate limit is lifted for the bench caller (it measures the server, not the
//! limiter). Phases:
//! 1. Commands: `concurrency` clients POST `commands` write requests (the body template with
//!    `{i}` replaced by the request number); accepted (202) count, submit rate and latency;
//!    then the time until every accepted command reached a final state in `command_log`
//!    (applied or rejected) — the end-to-end command rate.
//! 2. Reads: `concurrency` clients issue GETs round-robin over `read_paths` for `read_secs`
//!    (by default lists and items of what phase 1 created); requests/s, p50/p99/max latency,
//!    non-2xx and transport errors.
//!
//! With `--api-url` the bench reads from an API running elsewhere instead (reads only, no
//! command phase), and with `--api-pid` reports that process's CPU time per request, read from
//! `/proc`; `--read-rate` makes the reads open-loop at a fixed total rate, each latency counted
//! from the request's scheduled time.
//!
//! Progress goes to stderr every 2 s; the summary is returned as JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use atlasmesh_core::config::Config;
use atlasmesh_core::{Role, Scope};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::watch;

use crate::cpu::process_cpu;

const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct ApiBenchOptions {
    pub concurrency: usize,
    pub read_secs: u64,
    pub read_paths: Vec<String>,
    pub commands: u64,
    pub command_path: String,
    /// JSON body; `{i}` is replaced by the request number.
    pub command_body: String,
    pub timeout: Duration,
    /// Read from this running API instead of one started in this process (reads only; the
    /// token is signed with the configured `auth.hs256_secret`).
    pub api_url: Option<String>,
    /// The external API's process: its CPU time over the read phase is reported per request.
    pub api_pid: Option<u32>,
    /// Open loop: requests per second over all clients, each sent at its scheduled time and
    /// its latency counted from then (queueing behind a slow server included). `None`: every
    /// client sends its next request as soon as the previous one is answered.
    pub read_rate: Option<f64>,
}

/// The isolated configuration of one run.
pub fn bench_config(base: &Config, ts: i64) -> Config {
    let mut cfg = base.clone();
    let tag = format!("benchapi-{ts}");
    cfg.topics.commands = format!("{tag}.commands");
    cfg.topics.command_results = format!("{tag}.command-results");
    cfg.topics.dlq = format!("{tag}.dlq");
    cfg.kafka.group_prefix = tag;
    cfg.auth.rate_limit_per_s = u32::MAX / 4;
    cfg.auth.rate_limit_burst = u32::MAX / 4;
    if cfg.command_signing.keys.is_empty() {
        cfg.command_signing.keys = format!(
            "bench:bench-command-key-{ts}-{}-0123456789abcdef",
            std::process::id()
        );
    }
    // Every bench request comes from 127.0.0.1: no per-address limits.
    cfg.api.address_rate_limit_per_s = 0;
    cfg.api.address_auth_failures_per_s = 0;
    cfg.api.max_connections = cfg.api.max_connections.max(4096);
    if cfg.auth.hs256_secret.is_none() {
        cfg.auth.hs256_secret = Some(format!("bench-secret-{ts}-{}", std::process::id()));
    }
    cfg
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    non_2xx: AtomicU64,
    transport: AtomicU64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub async fn run(base: &Config, opts: ApiBenchOptions) -> anyhow::Result<serde_json::Value> {
    if let Some(url) = opts.api_url.clone() {
        return run_external(base, &url, opts).await;
    }
    let ts = atlasmesh_core::clock::now_ms();
    let cfg = Arc::new(bench_config(base, ts));
    eprintln!(
        "bench-api: preparing (topics {}, group prefix {})",
        cfg.topics.commands, cfg.kafka.group_prefix
    );
    atlasmesh_pipelines::prepare(&cfg)
        .await
        .context("prepare")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn({
        let cfg = cfg.clone();
        let rx = stop_rx.clone();
        async move {
            atlasmesh_pipelines::run_pipelines(
                cfg,
                &[atlasmesh_pipelines::commands::NAME.to_string()],
                rx,
            )
            .await
        }
    });
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let state = atlasmesh_query_api::AppState::connect(&cfg, prometheus).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    // The production server (connection limit, read timeouts), as `atlasmesh api` serves.
    let api = tokio::spawn({
        let state = state.clone();
        let mut rx = stop_rx.clone();
        atlasmesh_query_api::serve_listener(state, listener, async move {
            let _ = rx.wait_for(|s| *s).await;
        })
    });
    let secret = cfg
        .auth
        .hs256_secret
        .as_deref()
        .expect("set by bench_config");
    let (client, token) = bench_client(secret, opts.concurrency)?;

    // Commands first: the read phase then reads what they created.
    let commands = command_phase(&client, &base_url, &token, &opts, &state.postgres).await?;
    let reads = read_phase(&client, &base_url, &token, &opts).await;

    let _ = stop_tx.send(true);
    let _ = api.await;
    worker.await??;
    Ok(
        json!({ "reads": reads, "commands": commands, "concurrency": opts.concurrency, "base_url": base_url }),
    )
}

/// The HTTP client of `concurrency` bench clients and an admin token signed with `secret`.
fn bench_client(secret: &str, concurrency: usize) -> anyhow::Result<(reqwest::Client, String)> {
    let token = atlasmesh_query_api::auth::jwt::issue_hs256(
        secret,
        "bench",
        Role::Admin,
        &Scope::all(),
        Duration::from_secs(3600),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    Ok((client, token))
}

/// Reads only, against an API running elsewhere (`--api-url`), with its process CPU per
/// request when `--api-pid` names it.
async fn run_external(
    base: &Config,
    base_url: &str,
    opts: ApiBenchOptions,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        opts.commands == 0,
        "--api-url measures reads only: pass --commands 0"
    );
    let secret = base
        .auth
        .hs256_secret
        .as_deref()
        .context("--api-url needs the API's auth.hs256_secret in this configuration")?;
    let (client, token) = bench_client(secret, opts.concurrency)?;
    // One request of each path first: the answers must be 2xx, or the run measures errors.
    for path in &opts.read_paths {
        let r = client
            .get(format!("{base_url}{path}"))
            .bearer_auth(&token)
            .send()
            .await?;
        let status = r.status();
        anyhow::ensure!(
            status.is_success(),
            "GET {path} answered {status}: {}",
            r.text().await.unwrap_or_default()
        );
    }
    let cpu_before = opts.api_pid.map(process_cpu).transpose()?;
    let mut reads = read_phase(&client, base_url, &token, &opts).await;
    if let (Some(pid), Some(before)) = (opts.api_pid, cpu_before) {
        let cpu = process_cpu(pid)?.saturating_sub(before);
        let n = reads["requests"].as_u64().unwrap_or(0).max(1);
        reads["api_cpu_seconds"] = json!(cpu.as_secs_f64());
        reads["api_cpu_us_per_request"] = json!(cpu.as_secs_f64() * 1e6 / n as f64);
    }
    Ok(json!({ "reads": reads, "concurrency": opts.concurrency, "base_url": base_url }))
}

async fn read_phase(
    client: &reqwest::Client,
    base_url: &str,
    token: &str,
    opts: &ApiBenchOptions,
) -> serde_json::Value {
    let tally = Arc::new(Tally::default());
    let hist = Arc::new(Mutex::new(histogram()));
    let deadline = Instant::now() + Duration::from_secs(opts.read_secs);
    let paths = Arc::new(opts.read_paths.clone());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..opts.concurrency {
        let (client, tally, hist, paths) =
            (client.clone(), tally.clone(), hist.clone(), paths.clone());
        let (base_url, token) = (base_url.to_string(), token.to_string());
        let rate = opts.read_rate;
        let concurrency = opts.concurrency;
        tasks.push(tokio::spawn(async move {
            let mut local = histogram();
            let mut i = c;
            let mut k = 0u64;
            while Instant::now() < deadline {
                let url = format!("{base_url}{}", paths[i % paths.len()]);
                i += 1;
                let t = match rate {
                    // Request k of client c is due at (k·concurrency + c) / rate.
                    Some(rate) => {
                        let due = started
                            + Duration::from_secs_f64(
                                (k * concurrency as u64 + c as u64) as f64 / rate,
                            );
                        k += 1;
                        if due >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                match client.get(&url).bearer_auth(&token).send().await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let _ = r.bytes().await;
                        local.saturating_record(t.elapsed().as_micros() as u64);
                        if ok { &tally.ok } else { &tally.non_2xx }.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        tally.transport.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            hist.lock().expect("lock").add(&local).expect("same bounds");
        }));
    }
    let progress = tokio::spawn({
        let tally = tally.clone();
        async move {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let n = tally.ok.load(Ordering::Relaxed) + tally.non_2xx.load(Ordering::Relaxed);
                eprintln!(
                    "bench-api: reads {n} requests, {:.0}/s",
                    n as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
    });
    for t in tasks {
        let _ = t.await;
    }
    progress.abort();
    let secs = started.elapsed().as_secs_f64();
    let h = hist.lock().expect("lock");
    let ok = tally.ok.load(Ordering::Relaxed);
    let non_2xx = tally.non_2xx.load(Ordering::Relaxed);
    json!({
        "paths": opts.read_paths,
        "target_rate_per_s": opts.read_rate,
        "seconds": secs,
        "requests": ok + non_2xx,
        "requests_per_s": (ok + non_2xx) as f64 / secs,
        "ok": ok,
        "non_2xx": non_2xx,
        "transport_errors": tally.transport.load(Ordering::Relaxed),
        "p50_ms": ms(&h, 0.50),
        "p99_ms": ms(&h, 0.99),
        "max_ms": h.max() as f64 / 1000.0,
    })
}

async fn command_phase(
    client: &reqwest::Client,
    base_url: &str,
    token: &str,
    opts: &ApiBenchOptions,
    pg: &sqlx::PgPool,
) -> anyhow::Result<serde_json::Value> {
    let tally = Arc::new(Tally::default());
    let hist = Arc::new(Mutex::new(histogram()));
    let next = Arc::new(AtomicU64::new(0));
    let accepted_ids = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..opts.concurrency {
        let (client, tally, hist, next, ids) = (
            client.clone(),
            tally.clone(),
            hist.clone(),
            next.clone(),
            accepted_ids.clone(),
        );
        let url = format!("{base_url}{}", opts.command_path);
        let (token, body, total) = (token.to_string(), opts.command_body.clone(), opts.commands);
        tasks.push(tokio::spawn(async move {
            let mut local = histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let b = body.replace("{i}", &i.to_string());
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(b)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        local.saturating_record(t.elapsed().as_micros() as u64);
                        if let Some(id) = v.get("command_id").and_then(|x| x.as_str()) {
                            ids.lock().expect("lock").push(id.to_string());
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            tally.non_2xx.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        if tally.non_2xx.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("bench-api: command answered {status}: {text}");
                        }
                    }
                    Err(_) => {
                        tally.transport.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            hist.lock().expect("lock").add(&local).expect("same bounds");
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let submit_secs = started.elapsed().as_secs_f64();
    let ids = accepted_ids.lock().expect("lock").clone();
    let accepted = ids.len() as u64;
    eprintln!("bench-api: {accepted} commands accepted in {submit_secs:.1} s; waiting for every one to reach a final state");
    let mut last_progress = Instant::now();
    let (applied, rejected) = loop {
        let (applied, rejected): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'applied'), count(*) FILTER (WHERE status = 'rejected')
             FROM command_log WHERE command_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_one(pg)
        .await?;
        if (applied + rejected) as u64 >= accepted {
            break (applied, rejected);
        }
        anyhow::ensure!(
            started.elapsed() < opts.timeout,
            "only {} of {accepted} commands final after {:?}",
            applied + rejected,
            opts.timeout
        );
        if last_progress.elapsed() >= PROGRESS_EVERY {
            eprintln!(
                "bench-api: {}/{accepted} commands final",
                applied + rejected
            );
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let total_secs = started.elapsed().as_secs_f64();
    let h = hist.lock().expect("lock");
    Ok(json!({
        "path": opts.command_path,
        "requested": opts.commands,
        "accepted": accepted,
        "non_202": tally.non_2xx.load(Ordering::Relaxed),
        "transport_errors": tally.transport.load(Ordering::Relaxed),
        "submit_seconds": submit_secs,
        "submit_per_s": accepted as f64 / submit_secs,
        "submit_p50_ms": ms(&h, 0.50),
        "submit_p99_ms": ms(&h, 0.99),
        "all_final_seconds": total_secs,
        "end_to_end_per_s": accepted as f64 / total_secs,
        "applied": applied,
        "rejected": rejected,
    }))
}
