//! The testkit's own tests: the fault-injecting proxy against a local echo
//! server.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed test, with its message"
)]

mod proxy;
