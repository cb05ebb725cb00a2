//! herd's NameNode: the metadata master of an HDFS-compatible file system.
//!
//! The crate promises that the namespace (directories, files, their blocks, leases and the retry
//! cache) is a deterministic state machine: every replica that applies the same log entries in
//! the same order holds an equal state, answers every request identically, and can checkpoint
//! that state to bytes and load it back exactly. Nothing inside `apply` reads a clock, a random
//! generator or the disk: inode ids, block ids and generation stamps come from the log index,
//! times from the entry. Hadoop 3's FSNamesystem/FSDirectory are the reference for semantics:
//! path rules, permission checks (superuser, traverse, sticky bit), error precedence, lease
//! soft/hard limits and the Java exception names clients expect.
//!
//! Layout: [`namespace`] holds the state machine ([`namespace::Namespace`], its log
//! [`namespace::Entry`] and [`namespace::Op`], replies and [`namespace::Error`]); inside it,
//! `path` has HDFS's path rules, `perm` the permission checker, `codec` the checkpoint format.
//! [`journal`] makes the namespace durable: a one-voter keeper-raft log applied to it by an
//! actor, with snapshots of the serialized namespace (`journal::codec`: the log record format).
//! [`blockmap`] is the block map and replication monitor: replica locations rebuilt from block
//! reports, a pure state machine whose `tick` emits transfers and deletions, with placement.
//! [`server`] is the daemon: the control RPC server for clients and DataNodes over the journal
//! and the block map, the DataNode view, the replication and lease monitors, and block
//! recovery over the DataNodes' data ports. It depends on the rest, never the other way round.

pub mod blockmap;
pub mod journal;
pub mod namespace;
pub mod server;
#[cfg(test)]
mod test_rng {
    pub(crate) use ::test_rng::Rng;
}
mod varint;
