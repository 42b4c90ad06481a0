//! End-to-end suites for lwcache live in `it/`; this library is empty.
