//! Failure prediction measured where the truth is known: the simulator's failure process
//! (per-vehicle frailty, failures preceded by precursor warnings of rising frequency, some
//! failures with weak precursors, precursor episodes without a failure, ordinary faults;
//! `atlasmesh_simulator::FailureModel`) generates months of telemetry at 10-minute samples;
//! `atlasmesh_core::analytics::failure` sees only the telemetry, the labels come from
//! `Simulator::failure_truth`.
//!
//! Every vehicle-day after a 28-day warm-up is one prediction made at the end of the day: a
//! failure in the next 7 days or not. Three deciders, each fitted on the training seed only
//! and then applied unchanged to the test seeds (never tuned on them):
//! - never predict;
//! - fault count alone: alarm when the faults (entries into `fault`) of the last 7 days reach
//!   a threshold, chosen on the training seed to minimise the cost;
//! - the model: logistic regression over precursor and fault inputs, its probability
//!   threshold chosen on the training seed to minimise the cost.
//!
//! Cost = 10·FP + 500·FN (the Scania APS challenge's cost measure). The model must cost less
//! than both baselines on every test seed. `cargo test -p atlasmesh-simulator --test
//! failure_prediction -- --nocapture` prints the table kept in BENCHMARKS.md.

use atlasmesh_core::analytics::failure::{
    cost_optimal_threshold, Confusion, FailureParams, RiskInputs, RiskModel, FEATURE_NAMES,
};
use atlasmesh_simulator::failure_training::{failure_examples as examples, TRAIN_SEED};

const TEST_SEEDS: [u64; 3] = [2_001, 2_002, 2_003];

struct Row {
    name: &'static str,
    c: Confusion,
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{:.1} %", 100.0 * v))
}

#[test]
fn the_model_beats_never_and_fault_count_on_cost() {
    let p = FailureParams::default();
    // Generate the four seeds side by side; fitting and scoring stay sequential.
    let mut runs: Vec<(Vec<(RiskInputs, bool)>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = std::iter::once(TRAIN_SEED)
            .chain(TEST_SEEDS)
            .map(|seed| {
                let p = &p;
                s.spawn(move || examples(seed, p))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tests = runs.split_off(1);
    let (train, train_failures) = runs.pop().unwrap();
    let model = RiskModel::fit(&train, &p).expect("a model");
    // The health pipeline's built-in model is this fit (regenerate it with the example
    // `fit_failure_model` when the generator or the model changes).
    let fitted: RiskModel =
        serde_json::from_str(&serde_json::to_string_pretty(&model).unwrap()).unwrap();
    assert_eq!(
        RiskModel::builtin(),
        fitted,
        "core/src/analytics/failure_model.json is stale"
    );
    let fault_scored: Vec<(f64, bool)> = train
        .iter()
        .map(|(i, y)| (f64::from(i.faults_window), *y))
        .collect();
    let fault_t = cost_optimal_threshold(&fault_scored, p.cost_fp, p.cost_fn).unwrap();
    println!(
        "training seed {TRAIN_SEED}: {} vehicle-days, {} with a failure ahead, {train_failures} failures",
        train.len(),
        model.training_failures
    );
    for (n, b) in FEATURE_NAMES.iter().zip(&model.coefficients) {
        println!("  coefficient {n}: {b:.4}");
    }
    println!(
        "  model threshold p >= {:.4} (training cost {}); fault-count threshold >= {:.1} faults in 7 days (training cost {})",
        model.threshold, model.training_cost, fault_t.value, fault_t.cost
    );
    println!();
    println!("| seed | vehicle-days | failures ahead | decider | alarms | TP | FP | FN | precision | recall | cost |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (seed, (test, _)) in TEST_SEEDS.into_iter().zip(tests) {
        let positives = test.iter().filter(|e| e.1).count();
        assert!(
            positives >= 50,
            "seed {seed}: {positives} positive vehicle-days"
        );
        let rows = [
            Row {
                name: "never predict",
                c: Confusion::of(test.iter().map(|(_, y)| (false, *y))),
            },
            Row {
                name: "fault count",
                c: Confusion::of(
                    test.iter()
                        .map(|(i, y)| (f64::from(i.faults_window) >= fault_t.value, *y)),
                ),
            },
            Row {
                name: "model",
                c: Confusion::of(test.iter().map(|(i, y)| (model.predict(i).alarm, *y))),
            },
        ];
        for r in &rows {
            println!(
                "| {seed} | {} | {positives} | {} | {} | {} | {} | {} | {} | {} | {} |",
                test.len(),
                r.name,
                r.c.tp + r.c.fp,
                r.c.tp,
                r.c.fp,
                r.c.fn_,
                pct(r.c.precision()),
                pct(r.c.recall()),
                r.c.cost(p.cost_fp, p.cost_fn)
            );
        }
        let cost = |r: &Row| r.c.cost(p.cost_fp, p.cost_fn);
        assert!(
            cost(&rows[2]) < cost(&rows[0]) && cost(&rows[2]) < cost(&rows[1]),
            "seed {seed}: the model must cost less than both baselines"
        );
        // Not perfect: the noise in the generator leaves misses or false alarms.
        assert!(rows[2].c.fp + rows[2].c.fn_ > 0);
    }
}
