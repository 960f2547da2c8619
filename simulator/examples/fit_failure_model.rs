//! Fits the health pipeline's built-in failure-risk model on the training seed and prints it
//! as JSON (`atlasmesh_core::analytics::failure::RiskModel`):
//!
//! ```sh
//! cargo run --release -p atlasmesh-simulator --example fit_failure_model \
//!     > core/src/analytics/failure_model.json
//! ```
//!
//! Progress goes to stderr. A model fitted on an operator's own history can be given to the
//! pipeline instead with `health.failure_model_file`.

use atlasmesh_core::analytics::failure::{FailureParams, RiskModel};
use atlasmesh_simulator::failure_training::{failure_examples, DAYS, TRAIN_SEED};

fn main() {
    let p = FailureParams::default();
    eprintln!("simulating {DAYS} days of 100 vehicles (seed {TRAIN_SEED}) …");
    let (examples, failures) = failure_examples(TRAIN_SEED, &p);
    eprintln!(
        "{} vehicle-days, {failures} failures; fitting …",
        examples.len()
    );
    let model = RiskModel::fit(&examples, &p).expect("the training seed has both classes");
    eprintln!(
        "threshold p >= {:.4}, training cost {}",
        model.threshold, model.training_cost
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&model).expect("a model serializes")
    );
}
