//! The modes of a run, each an `impl` block on the run driver ([`crate::run`]): fixed, ramp and
//! churn. Mix is any of them with a passthrough share ([`crate::config::LoadConfig`]).

mod churn;
mod fixed;
mod ramp;
