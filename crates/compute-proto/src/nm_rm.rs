//! NodeManager <-> ResourceManager (YARN's `ResourceTracker`), preamble id 5.
//!
//! ```text
//! RegisterNodeManager -> Registered
//! NodeHeartbeat       -> Heartbeat
//! ```
//!
//! Every request names the NodeManager's member id and incarnation (its membership session);
//! the RM refuses an incarnation its `nodemanager` view does not list, and answers a
//! heartbeat from a NodeManager it does not know (or that last saw an older RM epoch) with
//! `resync`: the NodeManager registers again with its running containers. Every answer
//! names the RM's epoch; a NodeManager ignores orders older than the newest epoch it saw.

use crate::ids::{ApplicationAttemptId, ApplicationId, ContainerId, NodeId};
use crate::records::{ContainerStatus, NodeHealth, Resource};
use rpc::wire_enum;

wire_enum! {
    pub enum ResourceTrackerRequest {
        RegisterNodeManager {
            /// Its member id (`nodemanager/<id>` in the keeper).
            id: String,
            incarnation: i64,
            /// What it offers containers.
            resource: Resource,
            /// Its control port (container start/stop), which is also its YARN node id.
            ctl_addr: NodeId,
            /// `host:port` of its HTTP server (logs) and of its shuffle server.
            http_addr: String,
            shuffle_addr: String,
            /// Its rack path (`/default-rack` when it knows none).
            rack: String,
            /// Containers still running from before (an RM restart or a resync).
            running: Vec<ContainerStatus>,
        } = 0,
        NodeHeartbeat {
            id: String,
            incarnation: i64,
            /// Every container it holds that is running or completed since the last answer.
            statuses: Vec<ContainerStatus>,
            health: NodeHealth,
            /// The newest RM epoch it has seen (0 before any).
            last_rm_epoch: i64,
        } = 1,
    }
}

wire_enum! {
    pub enum ResourceTrackerResponse {
        Registered { rm_epoch: i64 } = 0,
        Heartbeat {
            containers_to_kill: Vec<ContainerId>,
            /// Applications that ended: their containers are killed, their local dirs and map
            /// outputs deleted.
            finished_apps: Vec<ApplicationId>,
            /// Attempts that ended: a token of one of these starts nothing.
            finished_attempts: Vec<ApplicationAttemptId>,
            /// Register again (with the running containers) before heartbeating.
            resync: bool,
            rm_epoch: i64,
        } = 1,
    }
}
