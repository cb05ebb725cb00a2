//! The DataNode's block store: replicas of blocks on local disks, in HDFS's own on-disk format,
//! so that a replica is recognisable (and checkable) by anyone who knows HDFS.
//!
//! What it promises:
//! - **Never a bad byte.** Every 512-byte chunk carries a CRC32C in the replica's meta file
//!   (HDFS's `BlockMetadataHeader` + `DataChecksum` layout, see [`meta`]); every read checks
//!   each chunk it returns and answers `Corrupt { offset }` instead of bad data, and
//!   [`Store::verify`] checks a whole replica for the block scanner. Packets from a pipeline
//!   can be checked against their sender's checksums before they are written.
//! - **Acknowledged means durable.** A writer's `flush(true)` fsyncs data then meta; `finalize`
//!   fsyncs and renames into `finalized/` (fsync of the directories after). After a crash,
//!   `open` recovers each replica that was being written to the length its checksums cover,
//!   and completes a move that a crash interrupted.
//! - **A full disk is an error, not damage.** `DiskFull` leaves the replica as it was before
//!   the failed packet.
//! - **Generation stamps fence the past.** Append and pipeline recovery bump the stamp (a
//!   renamed meta file); a reader asking for a newer stamp than the disk has gets
//!   `StaleGenStamp`, and a writer superseded by a recovery gets `WriterFenced`.
//! - **No panics on bytes from disk**, and a bound on every packet, read and replica.
//!
//! Layout: [`meta`] is the file format (pure functions); [`store`] holds [`Store`] (data dirs,
//! the replica map, open/recovery, append, recovery, delete, report, space), with the
//! [`ReplicaWriter`] and [`ReplicaReader`] it hands out; [`StoreError`] is the one error type.
//! Everything is blocking `std::fs` I/O: callers on an async runtime run it on blocking threads.
//! [`transfer`] is the data port over the store (one thread per connection: pipelines, reads).
//! The store's change feed ([`store::Changes`]) records every replica created, finalized or
//! deleted, for the daemon's incremental reports. [`daemon`] is the DataNode daemon (`herd
//! datanode`): membership in the `datanode` group, registration, full and incremental block
//! reports, heartbeats, fenced NameNode commands (invalidate, replicate, re-register), and the
//! block scanner (`daemon/scanner.rs`, throttled reads of every finalized replica).
//!
//! **Boundary:** this crate knows blocks, not files: the store has no network, and the
//! transfer server speaks only the data port (`dfs-proto`), never to the NameNode or the
//! keeper. Only the daemon talks to the NameNode (`dfs-proto`'s DataNode protocol) and the
//! keeper (through `member`), and it uses both.

pub mod daemon;
mod error;
pub mod meta;
pub mod store;
pub mod transfer;

pub use error::{Result, StoreError};
pub use store::{
    ChunkStream, Chunks, ReplicaInfo, ReplicaReader, ReplicaState, ReplicaWriter, Space, Store, MAX_PACKET_LEN,
    MAX_READ_LEN, MAX_REPLICA_LEN,
};
