//! The conformance suite against the in-memory adapters, on tokio's paused
//! clock.

use std::sync::Arc;

use lwcache_memory::MemoryRepository;
use lwcache_testkit::{Harness, PausedClock};

lwcache_testkit::memory_harness!();

mod near;

async fn harness() -> Option<Harness> {
    Some(memory_harness(
        Arc::new(MemoryRepository::new()),
        Arc::new(PausedClock),
    ))
}

mod conformance {
    use super::harness;
    lwcache_testkit::conformance_tests!(harness(), (start_paused = true));
}
