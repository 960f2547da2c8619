//! The closed-loop rebalancing bench without the CLI (same library call as
//! `atlasmesh bench-rebalance`), plus the forecast quality on the simulated demand:
//!
//! ```sh
//! cargo run --release -p atlasmesh-simulator --example bench_rebalance -- --seeds 5
//! ```
//!
//! Options: `--seeds N` (seeds 1..=N, default 5), `--days D`, `--zones Z`, `--vehicles V`,
//! `--adoption 1.0,0.5`, `--forecast-weeks W` (0 skips the forecast backtest, default 8),
//! `--json`. Progress on stderr, the tables (or JSON) on stdout.

use std::process::ExitCode;

use atlasmesh_simulator::zones::{bench_rebalance, forecast_quality, ZoneSimConfig};

struct Opts {
    seeds: u64,
    adoptions: Vec<f64>,
    forecast_weeks: usize,
    json: bool,
    cfg: ZoneSimConfig,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        seeds: 5,
        adoptions: vec![1.0, 0.5],
        forecast_weeks: 8,
        json: false,
        cfg: ZoneSimConfig::default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        let bad = |e: &dyn std::fmt::Display| format!("{a}: {e}");
        match a.as_str() {
            "--seeds" => o.seeds = value()?.parse().map_err(|e| bad(&e))?,
            "--days" => o.cfg.days = value()?.parse().map_err(|e| bad(&e))?,
            "--zones" => o.cfg.city.zones = value()?.parse().map_err(|e| bad(&e))?,
            "--vehicles" => o.cfg.fleet.vehicles = value()?.parse().map_err(|e| bad(&e))?,
            "--forecast-weeks" => o.forecast_weeks = value()?.parse().map_err(|e| bad(&e))?,
            "--adoption" => {
                o.adoptions = value()?
                    .split(',')
                    .map(|s| s.trim().parse::<f64>().map_err(|e| bad(&e)))
                    .collect::<Result<_, _>>()?
            }
            "--json" => o.json = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench_rebalance: {e}");
            return ExitCode::from(2);
        }
    };
    let seeds: Vec<u64> = (1..=o.seeds).collect();
    let started = std::time::Instant::now();
    let report = bench_rebalance(&o.cfg, &seeds, &o.adoptions, &mut |p| {
        if p.day == p.days {
            let arm = p
                .adoption
                .map_or("no engine".into(), |a| format!("adoption {a:.2}"));
            eprintln!(
                "bench-rebalance: run {}/{} ({arm}, seed {}) done, {:.1} s",
                p.run + 1,
                p.runs,
                p.seed,
                started.elapsed().as_secs_f64()
            );
        }
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench_rebalance: {e}");
            return ExitCode::FAILURE;
        }
    };
    let forecast = if o.forecast_weeks > 0 {
        match forecast_quality(&o.cfg, 1, o.forecast_weeks) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("bench_rebalance: forecast: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    if o.json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let Some(f) = &forecast {
            v["forecast"] = serde_json::json!(f
                .horizons
                .iter()
                .map(|h| serde_json::json!({
                    "horizon": h.horizon, "mase_hw": h.mase_hw, "mase_naive": h.mase_naive,
                    "relative": h.relative, "coverage80": h.coverage80, "coverage95": h.coverage95,
                }))
                .collect::<Vec<_>>());
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", report.table());
        if let Some(f) = &forecast {
            print!("\n{}", f.table());
        }
    }
    eprintln!("bench_rebalance: {:.1} s", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}
