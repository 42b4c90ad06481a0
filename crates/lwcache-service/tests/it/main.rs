//! The service's telemetry setup: the Prometheus text of `/metrics`, checked
//! by promtool and sample by sample; OTLP export to a local HTTP stub, and
//! none without an endpoint; configuration from the standard variables.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

mod config;
mod otlp;
mod prometheus;
mod support;
