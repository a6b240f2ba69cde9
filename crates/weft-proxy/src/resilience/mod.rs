//! Resilience, one concern per module: the balancer's latency estimate, failure accrual
//! (circuit breaking), the retry verdict and budget, deadlines, and the compiled
//! per-service policy. Each is tested alone, with time passed in.

pub(crate) mod accrual;
pub(crate) mod budget;
pub(crate) mod deadline;
pub(crate) mod ewma;
pub(crate) mod policy;
pub(crate) mod retry;
