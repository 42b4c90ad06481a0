//! The conformance suite against the in-memory adapters, on tokio's paused
//! clock.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed test, with its message"
)]

use std::sync::Arc;

use lwcache_memory::MemoryRepository;
use lwcache_testkit::{Harness, PausedClock};

lwcache_testkit::memory_harness!();

mod memo;
mod near;

async fn harness() -> Option<Harness> {
    Some(memory_harness(
        Arc::new(MemoryRepository::new()),
        Arc::new(PausedClock),
    ))
}

mod refresh;

mod conformance {
    use super::harness;
    lwcache_testkit::conformance_tests!(harness(), (start_paused = true));
}
