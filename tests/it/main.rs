//! Integration tests: one test binary that runs the real `podstack` binary.

mod support;

mod api;
mod build;
mod malformed;
mod supervise;
mod sync;
