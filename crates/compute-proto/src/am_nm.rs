//! ApplicationMaster <-> NodeManager (YARN's `ContainerManagementProtocol`), preamble id 6.
//!
//! ```text
//! StartContainer -> Started     StopContainer -> Stopped     GetContainerStatus -> Status
//! ```
//!
//! A NodeManager starts a container only with a token that verifies under the RM's secret,
//! names this node, and belongs to an attempt it does not know to be finished; otherwise it
//! answers `org.apache.hadoop.yarn.exceptions.InvalidContainerException` (see
//! [`crate::errors`]).

use crate::ids::ContainerId;
use crate::records::{ContainerLaunchContext, ContainerStatus};
use crate::token::ContainerToken;
use rpc::wire_enum;

wire_enum! {
    pub enum ContainerManagementRequest {
        StartContainer { token: ContainerToken, launch: ContainerLaunchContext } = 0,
        /// SIGTERM to its process group, SIGKILL 250 ms later; its status then completes
        /// with `exit_status::KILLED_BY_APPMASTER`.
        StopContainer { container_id: ContainerId } = 1,
        GetContainerStatus { container_id: ContainerId } = 2,
    }
}

wire_enum! {
    pub enum ContainerManagementResponse {
        Started { container_id: ContainerId } = 0,
        Stopped = 1,
        Status { status: ContainerStatus } = 2,
    }
}
