//! herd's ResourceManager: which container runs where, and the life of each application.
//!
//! The crate promises two pure state machines, the deciding parts of YARN's ResourceManager
//! rebuilt around herd's rules: events in, decisions out, no I/O, no clocks (time is the
//! caller's monotonic millisecond count) and no hash-order in any decision, so that the same
//! events always give the same decisions and each machine can be tested alone, with random
//! histories checked against its invariants.
//!
//! Layout: [`types`] holds the ids and the [`Resources`] vector both machines share (local
//! stand-ins for the protocol crate's ids). [`scheduler`] is YARN's scheduler: nodes and their
//! capacity, queues with shares, apps FIFO within a queue, asks as a `ResourceRequest` table
//! with delay scheduling, AM containers, blacklists; a node's heartbeat returns the containers
//! allocated on it. [`attempts`] is the application and attempt lifecycle: states, the attempt
//! budget (YARN's rule of what counts), the AM expiry, fencing of old attempts, RM-restart
//! recovery; its events return the decisions the daemon carries out (start an attempt, kill
//! an attempt's containers, finish the app). [`store`] keeps apps, attempts, the app
//! sequence and the container-token secret in the keeper; [`server`] is the daemon (RPC for
//! clients, AMs and NodeManagers, the `nodemanager` view, AM launch and expiry). Neither machine knows of the other: the daemon feeds the scheduler's AM
//! containers to the lifecycle, and the lifecycle's decisions to the scheduler.

pub mod attempts;
pub mod scheduler;
pub mod server;
pub mod store;
#[cfg(test)]
mod test_rng {
    pub(crate) use ::test_rng::Rng;
}
pub mod types;

pub use types::{AppId, AttemptId, ContainerId, NodeId, Priority, Resources};
