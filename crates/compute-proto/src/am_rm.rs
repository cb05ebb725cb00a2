//! ApplicationMaster <-> ResourceManager (YARN's `ApplicationMasterProtocol`), preamble id 4.
//!
//! ```text
//! RegisterApplicationMaster -> Registered
//! Allocate                  -> Allocated
//! FinishApplicationMaster   -> Finished
//! ```
//!
//! Every request names the attempt. One that is not the application's current attempt is
//! refused with `ApplicationAttemptNotFoundException` (the AM exits); an Allocate before
//! registering, or after an RM restart forgot the registration, gets
//! `ApplicationMasterNotRegisteredException` (the AM registers again).

use crate::ids::{ApplicationAttemptId, ContainerId, NodeId};
use crate::records::{
    Container, ContainerStatus, FinalApplicationStatus, NodeReport, Progress, Resource, ResourceRequest,
};
use rpc::wire_enum;

wire_enum! {
    pub enum ApplicationMasterRequest {
        RegisterApplicationMaster {
            attempt: ApplicationAttemptId,
            /// Where its tasks reach it (the umbilical), and its web page ("" if none).
            host: String,
            rpc_port: u16,
            tracking_url: String,
        } = 0,
        Allocate {
            attempt: ApplicationAttemptId,
            /// The `response_id` of the last answer it got (0 at first): an Allocate retried
            /// after a lost answer gets that answer again instead of a second allocation
            /// (YARN's rule).
            last_response_id: u32,
            asks: Vec<ResourceRequest>,
            /// Containers it gives back (allocated but unused, or done with).
            releases: Vec<ContainerId>,
            /// Nodes it wants nothing more on (too many failed tasks there), and nodes it
            /// takes back.
            blacklist_additions: Vec<NodeId>,
            blacklist_removals: Vec<NodeId>,
            progress: Progress,
        } = 1,
        FinishApplicationMaster {
            attempt: ApplicationAttemptId,
            final_status: FinalApplicationStatus,
            diagnostics: String,
            tracking_url: String,
        } = 2,
    }
}

wire_enum! {
    pub enum ApplicationMasterResponse {
        Registered {
            /// The largest container the scheduler will give.
            max_resource: Resource,
            rm_epoch: i64,
        } = 0,
        Allocated {
            response_id: u32,
            /// New containers, each with its token for the NodeManager.
            allocated: Vec<Container>,
            /// Containers of this application that ended since the last answer (exited,
            /// killed, or lost with their node: `exit_status::ABORTED`).
            completed: Vec<ContainerStatus>,
            /// Nodes whose state changed (lost, unhealthy, back).
            updated_nodes: Vec<NodeReport>,
            /// The resources the application could still get now (YARN's headroom).
            available: Resource,
            cluster_nodes: u32,
            rm_epoch: i64,
        } = 1,
        /// `unregistered`: the RM has recorded the outcome and the AM may exit (YARN's
        /// `isUnregistered`); false: call again.
        Finished { unregistered: bool } = 2,
    }
}
