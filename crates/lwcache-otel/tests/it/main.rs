//! `OtelMetrics` and the manager's spans through the OpenTelemetry SDK's
//! in-memory exporters: a real cache manager over the in-memory adapters
//! runs a scripted sequence, and every counter, histogram and span it
//! produced is checked against what the script did.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

mod support;

mod script;
