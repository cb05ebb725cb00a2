//! Types the compute protocols share: resources, states, container statuses, reports, launch
//! contexts, allocated containers. Each is `its fields in declaration order` (structs) or
//! `tag u8 | fields` (enums), as the `rpc` codec encodes them; names are YARN's.

use crate::ids::{ApplicationAttemptId, ApplicationId, ContainerId, NodeId};
use crate::token::ContainerToken;
use rpc::codec::{DecodeError, Message, Reader, Writer};
use rpc::{wire_enum, wire_struct};

wire_struct! {
    /// YARN's `Resource`: `memory_mb u64 | vcores u32`.
    #[derive(Copy, Hash, Default)]
    pub struct Resource {
        pub memory_mb: u64,
        pub vcores: u32,
    }
}

/// A fraction done, from 0 to 1, in millionths so that it has one encoding and compares
/// exactly (YARN sends a float): `u32`, at most 1 000 000; more is refused on decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Progress(u32);

impl Progress {
    pub const PPM_MAX: u32 = 1_000_000;
    pub const DONE: Progress = Progress(Self::PPM_MAX);

    /// `ppm` millionths, held to 1 000 000.
    pub fn from_ppm(ppm: u32) -> Progress {
        Progress(ppm.min(Self::PPM_MAX))
    }

    /// A fraction, held to [0, 1] (NaN is 0).
    pub fn from_fraction(f: f64) -> Progress {
        let f = if f.is_nan() { 0.0 } else { f.clamp(0.0, 1.0) };
        Progress((f * f64::from(Self::PPM_MAX)).round() as u32)
    }

    pub fn ppm(self) -> u32 {
        self.0
    }

    pub fn fraction(self) -> f64 {
        f64::from(self.0) / f64::from(Self::PPM_MAX)
    }
}

impl Message for Progress {
    const MIN_WIRE: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.u32(self.0);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u32()? {
            ppm if ppm <= Self::PPM_MAX => Ok(Progress(ppm)),
            ppm => Err(DecodeError::BadValue { what: "progress (ppm)", value: ppm.into() }),
        }
    }
}

wire_enum! {
    /// YARN's `YarnApplicationState`.
    #[derive(Copy, Hash)]
    pub enum ApplicationState {
        New = 0,
        /// Being written to the RM's store before the submission is acknowledged.
        NewSaving = 1,
        Submitted = 2,
        /// Admitted by the scheduler; waiting for its AM container or for the AM to register.
        Accepted = 3,
        Running = 4,
        Finished = 5,
        Failed = 6,
        Killed = 7,
    }
}

impl ApplicationState {
    /// FINISHED, FAILED or KILLED: the application will never run again.
    pub fn is_final(self) -> bool {
        matches!(self, ApplicationState::Finished | ApplicationState::Failed | ApplicationState::Killed)
    }
}

wire_enum! {
    /// YARN's `FinalApplicationStatus`: the outcome the AM reports (UNDEFINED while running).
    #[derive(Copy, Hash)]
    pub enum FinalApplicationStatus {
        Undefined = 0,
        Succeeded = 1,
        Failed = 2,
        Killed = 3,
    }
}

wire_enum! {
    /// YARN's `ContainerState`.
    #[derive(Copy, Hash)]
    pub enum ContainerState {
        New = 0,
        Running = 1,
        Complete = 2,
    }
}

/// YARN's `ContainerExitStatus`: the exit status of a container that did not end by its own
/// exit (which reports the process's exit code, or 128 + the signal).
pub mod exit_status {
    pub const SUCCESS: i32 = 0;
    pub const INVALID: i32 = -1000;
    /// Killed by the framework: released by the application, or lost with its node.
    pub const ABORTED: i32 = -100;
    pub const DISKS_FAILED: i32 = -101;
    pub const PREEMPTED: i32 = -102;
    pub const KILLED_EXCEEDED_VMEM: i32 = -103;
    pub const KILLED_EXCEEDED_PMEM: i32 = -104;
    pub const KILLED_BY_APPMASTER: i32 = -105;
    pub const KILLED_BY_RESOURCEMANAGER: i32 = -106;
    pub const KILLED_AFTER_APP_COMPLETION: i32 = -107;
    pub const KILLED_BY_CONTAINER_SCHEDULER: i32 = -108;

    /// The constant's name, for diagnostics (`None` for an ordinary exit code).
    pub fn name(status: i32) -> Option<&'static str> {
        Some(match status {
            SUCCESS => "SUCCESS",
            INVALID => "INVALID",
            ABORTED => "ABORTED",
            DISKS_FAILED => "DISKS_FAILED",
            PREEMPTED => "PREEMPTED",
            KILLED_EXCEEDED_VMEM => "KILLED_EXCEEDED_VMEM",
            KILLED_EXCEEDED_PMEM => "KILLED_EXCEEDED_PMEM",
            KILLED_BY_APPMASTER => "KILLED_BY_APPMASTER",
            KILLED_BY_RESOURCEMANAGER => "KILLED_BY_RESOURCEMANAGER",
            KILLED_AFTER_APP_COMPLETION => "KILLED_AFTER_APP_COMPLETION",
            KILLED_BY_CONTAINER_SCHEDULER => "KILLED_BY_CONTAINER_SCHEDULER",
            _ => return None,
        })
    }
}

wire_struct! {
    /// YARN's `ContainerStatus`: `container_id | state | exit_status i32 | diagnostics`.
    pub struct ContainerStatus {
        pub container_id: ContainerId,
        pub state: ContainerState,
        /// [`exit_status`] or the process's exit code; [`exit_status::INVALID`] until complete.
        pub exit_status: i32,
        pub diagnostics: String,
    }
}

wire_enum! {
    /// YARN's `NodeState`.
    #[derive(Copy, Hash)]
    pub enum NodeState {
        New = 0,
        Running = 1,
        /// Its health check failed: it gets no new containers.
        Unhealthy = 2,
        Decommissioned = 3,
        /// It left the `nodemanager` membership view.
        Lost = 4,
        Rebooted = 5,
        Decommissioning = 6,
        Shutdown = 7,
    }
}

wire_struct! {
    /// YARN's `NodeHealthStatus` as a NodeManager reports it.
    pub struct NodeHealth {
        pub healthy: bool,
        /// The health script's `ERROR` line or time-out ("" when healthy).
        pub report: String,
    }
}

wire_struct! {
    /// YARN's `NodeReport`: a NodeManager as the RM sees it.
    pub struct NodeReport {
        pub node_id: NodeId,
        pub rack: String,
        /// `host:port` of its HTTP server (container logs).
        pub http_addr: String,
        pub state: NodeState,
        pub health_report: String,
        pub capability: Resource,
        pub used: Resource,
        pub containers: u32,
        /// When its health last changed or was reported (ms since the epoch).
        pub last_health_update_ms: u64,
    }
}

wire_struct! {
    /// A file from the DFS that a container needs in its working directory (YARN's
    /// `LocalResource`, one kind: a file, fetched before the process starts).
    pub struct LocalResource {
        /// Absolute DFS path.
        pub path: String,
        /// Its name in the container's working directory (one path component).
        pub local_name: String,
    }
}

wire_struct! {
    /// One environment variable of a container.
    pub struct EnvVar {
        pub name: String,
        pub value: String,
    }
}

wire_struct! {
    /// YARN's `ContainerLaunchContext`: what a container runs. Its resources are its token's.
    pub struct ContainerLaunchContext {
        /// argv: the program, then its arguments (no shell).
        pub command: Vec<String>,
        /// Set on top of the NodeManager's (`CONTAINER_ID`, the RM, NM and DFS addresses).
        pub env: Vec<EnvVar>,
        /// Fetched from the DFS into the working directory before the process starts.
        pub files: Vec<LocalResource>,
    }
}

wire_struct! {
    /// YARN's `Container`, as an Allocate hands it to an AM: the token names the container,
    /// its node, resources and attempt, and is what the NodeManager checks at StartContainer.
    pub struct Container {
        pub token: ContainerToken,
        /// The priority of the ask it was allocated for.
        pub priority: u32,
        /// `host:port` of its node's HTTP server.
        pub node_http_addr: String,
    }
}

impl Container {
    pub fn id(&self) -> ContainerId {
        self.token.container_id
    }

    pub fn node_id(&self) -> &NodeId {
        &self.token.node_id
    }

    pub fn resource(&self) -> Resource {
        self.token.resource
    }
}

wire_struct! {
    /// What SubmitApplication carries (YARN's `ApplicationSubmissionContext`). The user is the
    /// request header's.
    pub struct ApplicationSubmission {
        pub name: String,
        /// The scheduler queue ("default" when the client names none).
        pub queue: String,
        /// The AM's command, env and files.
        pub am_launch: ContainerLaunchContext,
        pub am_resource: Resource,
        /// How many AM attempts before the app fails (YARN's default is 2).
        pub max_attempts: u32,
    }
}

wire_struct! {
    /// YARN's `ApplicationReport`.
    pub struct ApplicationReport {
        pub app_id: ApplicationId,
        pub user: String,
        pub queue: String,
        pub name: String,
        pub state: ApplicationState,
        pub final_status: FinalApplicationStatus,
        pub current_attempt: Option<ApplicationAttemptId>,
        /// The current AM's host and RPC port, once registered ("" and 0 before).
        pub am_host: String,
        pub am_rpc_port: u16,
        pub tracking_url: String,
        pub diagnostics: String,
        pub progress: Progress,
        pub start_ms: u64,
        pub finish_ms: Option<u64>,
    }
}

wire_struct! {
    /// YARN's `ResourceRequest`: `count` containers of `resource` at `priority`, on `nodes`
    /// or `racks` or, when both are empty or `relax_locality` lets it, anywhere.
    pub struct ResourceRequest {
        /// Lower is served first (the AM container is 0).
        pub priority: u32,
        pub resource: Resource,
        /// Host names preferred (node-local).
        pub nodes: Vec<String>,
        /// Rack paths preferred (rack-local), e.g. `/rack1`.
        pub racks: Vec<String>,
        /// Whether the scheduler may fall back to a rack, then any node, after its delay.
        pub relax_locality: bool,
        /// How many containers are still wanted for this ask, in all (YARN's rule: an ask
        /// replaces the one before with the same priority, resource and locality, so a
        /// repeated Allocate asks for nothing twice; 0 withdraws it).
        pub count: u32,
    }
}
