//! Resilience, one concern per module: the balancer's latency estimate, failure accrual
//! (circuit breaking), the retry budget, deadlines and the timers that enforce them, and
//! the compiled per-service policy.

pub mod accrual;
pub mod budget;
pub mod deadline;
pub mod ewma;
pub mod policy;
pub mod timers;
