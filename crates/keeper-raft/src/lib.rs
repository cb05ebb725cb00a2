//! Raft replication of the keeper's log with openraft (0.10.0-alpha.37, pinned).
//!
//! This crate promises the pieces openraft leaves to its user, built for the keeper: a durable
//! log store (fsync before any entry is reported flushed, torn tails cut on open, vote saved
//! atomically before `save_vote` returns), a state-machine adapter that hands applied entries
//! to an actor (the keeper's core) and waits for its ack, and a TCP peer network. It is the
//! ensemble issue's replication layer, tested on its own (three nodes in one process: election,
//! replication, leader failover, catch-up by snapshot; one node: restart and recovery); the
//! keeper server is wired to it in a later step. Porting notes: `docs/openraft-notes.md`.
//!
//! Layout:
//! - [`TypeConfig`]: the `declare_raft_types!` configuration (this file).
//! - [`codec`]: hand-written binary encoding of every openraft type that is stored or sent
//!   (openraft is built without its `serde` feature).
//! - [`log_store`]: `RaftLogStorage` and `RaftLogReader` on append-only CRC'd segment files,
//!   group-committed by one writer thread.
//! - [`state_machine`]: `RaftStateMachine` forwarding applied batches to an actor.
//! - [`network`]: `RaftNetworkFactory` and `RaftNetworkV2` over length-prefixed TCP frames, and
//!   the server side that dispatches to `Raft`.
//! - [`node`]: glue: the `Config`, opening storage, starting and stopping a node.

use std::fmt;

pub mod codec;
pub mod log_store;
pub mod network;
pub mod node;
pub mod state_machine;

/// Opaque application payload: in herd this is the jute-encoded Txn.
///
/// `AppData` only requires `Send + Sync + Debug + Display + 'static` when openraft is built
/// WITHOUT the `serde` feature. (With `serde`, D/R/Node would also need Serialize+Deserialize.)
#[derive(Clone, PartialEq, Eq)]
pub struct Txn(pub Vec<u8>);

impl fmt::Debug for Txn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Txn({} bytes)", self.0.len())
    }
}

impl fmt::Display for Txn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Txn({}B)", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// Raft type configuration for herd.
    pub TypeConfig:
        D = Txn,
        // Response returned to `client_write` callers: the log index the txn was applied at.
        R = u64,
        NodeId = u64,
        // `BasicNode { addr: String }` is the peer's raft TCP address.
        Node = openraft::BasicNode,
        Term = u64,
        // Standard Raft: at most one leader per term, so a log id is just (term, index) and our
        // on-disk record `index u64 | term u64` is enough. (The default `leader_id_adv` would make
        // every LogId carry the leader's node id as well.)
        LeaderId = openraft::vote::leader_id_std::LeaderId<u64, u64>,
        // All the other associated types keep the macro defaults:
        //   Vote = openraft::impls::Vote<LeaderId>, Payload = EntryPayload<D, NodeId, Node>,
        //   Entry = openraft::Entry<CommittedLeaderId, Payload>,
        //   Responder<T> = ProgressResponder, Batch<T> = InlineBatch,
        //   AsyncRuntime = tokio (openraft_rt_tokio::TokioRuntime via feature "tokio-rt"),
        //   ErrorSource = BoxedErrorSource.
);

// ---- Handy aliases (openraft::type_config::alias has generic versions of these) -----------

pub type NodeId = u64;
pub type Node = openraft::BasicNode;
pub type LeaderId = openraft::vote::leader_id_std::LeaderId<u64, u64>;
/// What a log id carries in standard mode: just the term.
pub type CommittedLeaderId = openraft::vote::leader_id_std::CommittedLeaderId<u64>;
pub type LogId = openraft::LogId<CommittedLeaderId>;
pub type Vote = openraft::Vote<LeaderId>;
pub type Entry = openraft::Entry<CommittedLeaderId, Payload>;
pub type Payload = openraft::EntryPayload<Txn, NodeId, Node>;
pub type Membership = openraft::Membership<NodeId, Node>;
pub type StoredMembership = openraft::StoredMembership<CommittedLeaderId, NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<CommittedLeaderId, NodeId, Node>;
/// Snapshot payload type chosen for the prototype: the whole serialized state in memory.
pub type SnapshotData = bytes::Bytes;
pub type Snapshot = openraft::Snapshot<CommittedLeaderId, NodeId, Node, SnapshotData>;

pub type Raft = openraft::Raft<TypeConfig, state_machine::ActorStateMachine>;

/// Build a `LogId` from (term, index).
pub fn log_id(term: u64, index: u64) -> LogId {
    openraft::LogId::new(CommittedLeaderId::new(term), index)
}
