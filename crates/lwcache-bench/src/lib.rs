//! lwcache's benchmarks: the pure parts of the `lwcache-bench` binary.
//!
//! The binary (`src/main.rs`) starts nothing itself: `cargo xtask bench`
//! starts the servers and hands it their addresses. It measures every
//! scenario against a baseline taken in the same run and fills a
//! [`report::Report`]; this library holds that report's model, the
//! percentile arithmetic ([`stats`]), the stale-read bookkeeping of the
//! players scenario ([`freshness`]) and the renderings ([`render`]: JSON,
//! markdown, SVG), so that they can be tested without a server.

pub mod date;
pub mod freshness;
pub mod render;
pub mod report;
pub mod stats;
