//! The `lwcache` service: game services in any language read and write the
//! hot state of their worlds over HTTP/JSON, through the cache manager.
//!
//! - [`config`]: flags, environment and file, merged by one pure function.
//! - [`backend`]: the in-memory or real backends, chosen at run time.
//! - [`routes`]: the endpoint table, the router, its extractors, answers,
//!   handlers and bearer authentication.
//! - `openapi`: the OpenAPI document of those routes, built beside the
//!   endpoint table alone.
//! - `json`: the event body; values and documents are mapped by
//!   `lwcache-json`.
//! - `error`: the JSON error answers.
//! - [`readiness`]: the state `/readyz` answers (`ready`, `degraded`,
//!   `unavailable`), decided by one function.
//! - [`server`]: listening and the orderly shutdown.
//! - [`demo`]: the simulated players of `lwcache demo`.
//! - [`telemetry`]: the OpenTelemetry SDK, the Prometheus text of
//!   `/metrics`, OTLP export and the tracing subscriber; the only place in
//!   the workspace that installs any of them.

pub mod backend;
pub mod config;
pub mod demo;
pub(crate) mod error;
pub(crate) mod json;
pub(crate) mod openapi;
pub mod readiness;
pub mod routes;
pub mod server;
pub mod telemetry;
