//! herd's file system client: what `herd fs` (and later WebHDFS and MapReduce) use to talk to
//! a NameNode and stream bytes to and from DataNodes. Blocking, thread-based, no runtime.
//!
//! What it promises:
//! - **Metadata calls go through one connection** to the NameNode ([`Dfs`]), retried under the
//!   same call id when the connection breaks, so a retried create, rename or delete applies
//!   once (the NameNode's retry cache). Errors keep Hadoop's exception classes
//!   ([`DfsError::Remote`]); [`shell_reason`] words them as Hadoop's shell does.
//! - **A write is acknowledged data or an error.** [`FileWriter`] cuts bytes into packets of
//!   256 KiB (CRC32C per 512-byte chunk) and keeps at most a window of them in flight to the
//!   pipeline; `close` returns only once every packet was acknowledged by every node of its
//!   pipeline and the NameNode closed the file. A DataNode that dies mid-block is dropped from
//!   the pipeline (pipeline recovery: new generation stamp, survivors cut to the acknowledged
//!   length, unacknowledged packets resent), that block ends there, and the file goes on in a
//!   new block at full replication; the NameNode re-replicates the short block. Everything is
//!   bounded: pipeline set-ups, recoveries, waits for the file to close.
//! - **A read never returns a byte that failed its checksum.** [`FileReader`] checks every
//!   packet, fails over to the next replica on any error (reporting checksum failures to the
//!   NameNode), refetches the locations once, then fails naming the block. Reads stream: at
//!   most one packet is buffered.
//! - **Leases are renewed** by one background thread per [`Dfs`], running only while a writer
//!   of it is open, and stopped by the last writer to close.
//!
//! Layout: [`client`] holds [`Dfs`] (connection, metadata calls, `create`/`append`/`open`);
//! [`writer`] the [`FileWriter`] over `writer/stream.rs` (one block's packets and its ack
//! thread) and `writer/plan.rs` (the pure decisions: packet cuts, what to do when a pipeline
//! breaks); [`reader`] the [`FileReader`]; [`checksum`] HDFS's file checksum ([`FileChecksum`]); [`glob`] Hadoop's glob patterns; `lease.rs` the
//! renewer; [`cluster`] reads `cluster.json`; [`error`] the one error type.

pub mod checksum;
pub mod client;
pub mod cluster;
pub mod error;
pub mod glob;
mod lease;
pub mod reader;
pub mod writer;

pub use checksum::FileChecksum;
pub use client::{ClientConfig, CreateOptions, Dfs};
pub use dfs_proto::client_nn::{
    AdminState, BlockHealth, ContentSummary, DatanodeStatus, FileKind, LocatedBlocks, ReplicaHealth,
    ReplicaHealthState, ServerDefaults,
};
pub use dfs_proto::{DatanodeInfo, ExtendedBlock, FileStatus, LocatedBlock, RemoteError};
pub use error::{shell_reason, DfsError, Result, ShellReason};
pub use reader::FileReader;
pub use writer::FileWriter;

/// The user a client acts as: `HADOOP_USER_NAME`, else `USER`, else `herd` (Hadoop's
/// pseudo-authentication order, with a fixed fallback).
pub fn default_user() -> String {
    ["HADOOP_USER_NAME", "USER"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| !u.is_empty())
        .unwrap_or_else(|| "herd".to_string())
}
