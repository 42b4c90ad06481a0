//! lwcache's consistency checker, as a library: the model of a run's
//! history and the read check ([`model`]), the grouping of verdicts by key
//! kind and fault window ([`report`]), and the report's rendering
//! ([`render`]). The binary `lwcache-chaos` runs the servers, the faults and
//! the workload; everything here is tested without a server.

pub mod model;
pub mod render;
pub mod report;
