//! AtlasMesh fleet optimization engine (pure logic, no I/O).

pub mod checker;
pub mod constrained;
pub mod flow;
pub mod forecast;
pub mod model;
pub mod network;
pub mod objectives;
pub mod plan;
pub mod solver;

/// Errors of the optimizer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is malformed (user error, not retriable).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// No plan satisfies the constraints.
    #[error("infeasible: {0}")]
    Infeasible(String),
    /// A flow problem had a negative cycle of unbounded capacity.
    #[error("unbounded flow problem")]
    Unbounded,
    /// Integer data too large for exact 64-bit arithmetic.
    #[error("arithmetic overflow: scale the costs down")]
    Overflow,
    /// The exact search exceeded its node limit without closing the gap.
    #[error("search limit reached after {0} branch-and-bound nodes")]
    SearchLimit(usize),
    /// A plan failed the checker (internal error: never returned as a plan).
    #[error("plan rejected by the checker: {0}")]
    Check(String),
}

/// Result with the optimizer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
