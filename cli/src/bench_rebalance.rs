//! `atlasmesh bench-rebalance`: the closed loop in the simulator. Runs the same seeded zone
//! demand with no engine and with the rebalancing engine at each adoption level
//! ([`atlasmesh_simulator::zones::bench_rebalance`], pure and in-process); progress on stderr,
//! a table or JSON on stdout.

use anyhow::Context;
use atlasmesh_simulator::zones::{bench_rebalance, ZoneSimConfig};
use clap::Args;

#[derive(Args)]
pub struct BenchRebalanceArgs {
    /// Seeds 1..=N.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Simulated days per run (the first is a Monday).
    #[arg(long, default_value_t = 14)]
    days: u32,
    /// Zones of the city (a centre and two rings).
    #[arg(long, default_value_t = 10)]
    zones: usize,
    /// Vehicles of the fleet.
    #[arg(long, default_value_t = 70)]
    vehicles: u32,
    /// Shares of recommended moves the vehicles follow, comma separated (0.0..=1.0).
    #[arg(long, value_delimiter = ',', default_value = "1.0,0.5")]
    adoption: Vec<f64>,
    /// JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &BenchRebalanceArgs) -> anyhow::Result<()> {
    let mut cfg = ZoneSimConfig {
        days: args.days,
        ..ZoneSimConfig::default()
    };
    cfg.city.zones = args.zones;
    cfg.fleet.vehicles = args.vehicles;
    let seeds: Vec<u64> = (1..=args.seeds.max(1)).collect();
    let started = std::time::Instant::now();
    let report = bench_rebalance(&cfg, &seeds, &args.adoption, &mut |p| {
        let arm = p
            .adoption
            .map_or_else(|| "no engine".to_string(), |a| format!("adoption {a:.2}"));
        eprintln!(
            "bench-rebalance: run {}/{} ({arm}, seed {}): day {}/{}, {:.1} s",
            p.run + 1,
            p.runs,
            p.seed,
            p.day,
            p.days,
            started.elapsed().as_secs_f64()
        );
    })
    .context("bench-rebalance")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
