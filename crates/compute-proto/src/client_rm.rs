//! Client <-> ResourceManager (YARN's `ApplicationClientProtocol`), preamble id 3: one
//! request enum, one response enum, in `rpc` envelopes.
//!
//! ```text
//! SubmitApplication    -> Submitted (the new id; the submission is in the RM's store)
//! GetApplicationReport -> Report          ListApplications -> Applications
//! KillApplication      -> KillRequested   GetClusterNodes  -> Nodes
//! ```
//!
//! An unknown application id gets `ApplicationNotFoundException`.

use crate::ids::ApplicationId;
use crate::records::{ApplicationReport, ApplicationState, ApplicationSubmission, NodeReport, NodeState};
use rpc::wire_enum;

wire_enum! {
    pub enum ApplicationClientRequest {
        SubmitApplication { submission: ApplicationSubmission } = 0,
        GetApplicationReport { app_id: ApplicationId } = 1,
        /// The applications in any of `states` (every application when empty).
        ListApplications { states: Vec<ApplicationState> } = 2,
        KillApplication { app_id: ApplicationId } = 3,
        /// The nodes in any of `states` (every node when empty).
        GetClusterNodes { states: Vec<NodeState> } = 4,
    }
}

wire_enum! {
    pub enum ApplicationClientResponse {
        Submitted { app_id: ApplicationId } = 0,
        Report { report: ApplicationReport } = 1,
        Applications { reports: Vec<ApplicationReport> } = 2,
        /// `completed`: the application is already KILLED (or had finished); else the kill is
        /// under way (YARN's `isKillCompleted`).
        KillRequested { completed: bool } = 3,
        Nodes { nodes: Vec<NodeReport> } = 4,
    }
}
