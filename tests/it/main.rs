//! Integration tests: one test binary that runs the real `podstack` binary.

mod support;

mod api;
mod build;
mod deploy;
mod docs;
mod fleet;
mod init;
mod injection;
mod lock;
mod malformed;
mod models;
mod panel;
mod plan;
mod slots;
mod stress;
mod supervise;
mod sync;
mod verify;
