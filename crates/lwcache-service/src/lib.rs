//! lwcache's service: the process that wires adapters, the cache manager and
//! telemetry together.
//!
//! [`telemetry`] installs the OpenTelemetry SDK, the exporters and the
//! tracing subscriber; it is the only place in the workspace that does.

pub mod telemetry;
