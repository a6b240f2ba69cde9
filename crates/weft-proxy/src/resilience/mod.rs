//! Resilience, one concern per module: the balancer's latency estimate, failure accrual
//! (circuit breaking), the retry budget, deadlines, the compiled per-service policy, and an
//! optional time limit on a future.

pub mod accrual;
pub mod budget;
pub mod deadline;
pub mod ewma;
pub mod policy;
pub mod timeout;
