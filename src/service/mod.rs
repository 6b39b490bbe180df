//! What any process the pod supervises needs, below both the pod's services (`supervisor`:
//! ComfyUI, JupyterLab) and the output sync (`sync`: rclone): one service's pure state machine
//! and restart policy (`state`), process groups and the reaper (`process`), why a service
//! ended (`exit_reason`), the log book (`logs`), the clock (`clock`), tasks tied to their owner
//! (`task`), a service's status as the API shows it (`status`), the HTTP client for services on
//! the pod's loopback (`loopback`), and the secrets a child must not inherit (`secrets`).
//! Nothing here knows ComfyUI from rclone beyond the names it is given.

pub mod clock;
pub mod exit_reason;
pub mod logs;
pub mod loopback;
pub mod process;
pub mod secrets;
pub mod state;
pub mod status;
pub mod task;
