//! A Google Shared Drive as `rclone backend drives` lists it: what the Drive rules (`drive`)
//! choose from, the setup errors name (`error`) and the report shows (`report`).

use serde::{Deserialize, Serialize};

/// A Shared Drive as `rclone backend drives` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedDrive {
    pub id: String,
    pub name: String,
}
