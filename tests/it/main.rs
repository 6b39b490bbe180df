//! Integration tests: one test binary that runs the real `podstack` binary.

mod support;

mod build;
mod malformed;
