//! The testkit's own tests: the fault-injecting proxy against a local echo
//! server.

mod proxy;
