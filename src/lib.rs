//! podstack: stack manifests to reproducible ComfyUI pod images, and the pod's supervisor.

pub mod cli;
pub mod comfyui_cli;
pub mod compat;
pub mod context;
pub mod deploy;
pub mod digest;
pub mod download;
pub mod duration;
pub mod http;
pub mod lock;
pub mod manifest;
pub mod outcome;
pub mod problem;
pub mod project;
pub mod render;
pub mod resolved;
pub mod service;
pub mod shell;
pub mod supervisor;
pub mod sync;
pub mod user;
pub mod value;
pub mod verify;
pub mod version;
pub mod wheel;
pub mod wheelhouse;
