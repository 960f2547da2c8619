//! AtlasMesh fleet optimization engine: the pure parts (no I/O, deterministic).
//!
//! - [`model`]: zones (centroid, capacity, optional neighbour list), travel from a matrix or
//!   from haversine distance × speed and cost per km, periods (15 min by default; travel rounded
//!   up to whole periods, at least 1 between different zones), idle vehicles, forecast arrivals
//!   and demand.
//! - [`network`]: the time-expanded network over zones × periods (hold, end, move, serve arcs
//!   and one served-demand arc), each arc typed by what it stands for.
//! - [`flow`]: an exact integral min-cost flow (primal network simplex, strongly feasible
//!   trees, warm starts on cost changes) with residual marginal costs for duals.
//! - [`constrained`]: the move budget and objective bounds as side constraints, solved exactly
//!   by Lagrangian parametric search and branch and bound (method, exactness and complexity in
//!   that module's docs).
//! - [`solver`]: one weighted solve: plan, LP bound, per-zone shadow prices; every plan passes
//!   [`checker::check`] before it is returned (a failure is [`Error::Check`]).
//! - [`objectives`]: weighted, lexicographic (tolerances) and Pareto (ε-constraint on coverage)
//!   modes with the payoff table.
//! - [`forecast`]: seasonal naive and Holt-Winters (additive seasonality) with 80/95 % intervals
//!   and a rolling-origin MASE backtest.
//!
//! # The move budget, exactly
//! Without the budget the problem is a min-cost flow: totally unimodular, so the network simplex
//! returns an integral optimum. The budget `Σ moves ≤ B` is one extra row that breaks this. The
//! solver relaxes it with a multiplier `λ` on every move arc and finds the best `λ*` exactly
//! (parametric search over the breakpoints of the concave Lagrangian, every flow solved on
//! integer costs `q·c + p·1_moves` for `λ = p/q`); `L(λ*)` equals the LP relaxation's optimum
//! because the flow polytope is integral. If a flow optimal at `λ*` uses exactly `B` moves (or
//! the LP point between the two bracketing flows is integral) it is optimal and the bound is met.
//! Otherwise a branch and bound on arc flows, with the same Lagrangian bound at each node, closes
//! the gap; objectives are integers, so a node is pruned when `⌈L(λ*)⌉` reaches the incumbent.
//! The exactness test checks the result against a MILP on 300 random instances.
//!
//! # Units
//! Cost in cents, efficiency in vehicle-minutes idle or moving empty, coverage as unserved
//! demand units (coverage % = served / demand); weights are non-negative integers, so every
//! objective is an exact integer and the checker compares them with `==`.

pub mod checker;
pub mod constrained;
pub mod flow;
pub mod forecast;
pub mod model;
pub mod network;
pub mod objectives;
pub mod plan;
pub mod recommend;
pub mod solver;

/// Errors of the optimizer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is malformed (user error, not retriable).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// No plan satisfies the constraints (user error: change the instance).
    #[error("infeasible: {0}")]
    Infeasible(String),
    /// A flow problem had a negative cycle of unbounded capacity (internal).
    #[error("unbounded flow problem")]
    Unbounded,
    /// Integer data too large for exact 64-bit arithmetic (user error: scale weights down).
    #[error("arithmetic overflow: scale the costs or weights down")]
    Overflow,
    /// The exact search exceeded its node limit without closing the gap (retriable with a
    /// higher limit).
    #[error("search limit reached after {0} branch-and-bound nodes")]
    SearchLimit(usize),
    /// A plan failed the checker (internal error: such a plan is never returned).
    #[error("plan rejected by the checker: {0}")]
    Check(String),
}

/// Result with the optimizer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
