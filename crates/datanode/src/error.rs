//! The store's one error type: every variant names a condition a caller can act on.

use std::io;
use std::path::PathBuf;

use crate::store::ReplicaState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no replica of block {id}")]
    NoSuchReplica { id: u64 },
    #[error("a replica of block {id} already exists")]
    AlreadyExists { id: u64 },
    /// The replica on disk is older than the one asked for: it missed a pipeline recovery or an
    /// append and must not be served.
    #[error("block {id}: replica has generation stamp {on_disk}, older than the requested {wanted}")]
    StaleGenStamp { id: u64, on_disk: u64, wanted: u64 },
    /// The replica on disk is newer than the caller thinks (the caller is the stale one).
    #[error("block {id}: replica has generation stamp {on_disk}, not the expected {wanted}")]
    GenStampMismatch { id: u64, on_disk: u64, wanted: u64 },
    #[error("block {id}: new generation stamp {proposed} is not newer than {current}")]
    GenStampNotNewer { id: u64, current: u64, proposed: u64 },
    #[error("block {id}: replica is {state:?}, the operation needs {needed:?}")]
    WrongState { id: u64, state: ReplicaState, needed: ReplicaState },
    /// The bytes at `offset` (the start of a 512-byte chunk) do not match their checksum, or
    /// the data or meta file is not the size its length implies. Never served.
    #[error("block {id}: corrupt chunk at offset {offset}")]
    Corrupt { id: u64, offset: u64 },
    #[error("block {id}: packet at offset {offset}, but the replica is {expected} bytes long")]
    OutOfOrder { id: u64, offset: u64, expected: u64 },
    #[error("block {id}: bad packet: {reason}")]
    BadPacket { id: u64, reason: String },
    #[error("block {id}: range {offset}+{len} is beyond the replica's length {length}")]
    OutOfRange { id: u64, offset: u64, len: u64, length: u64 },
    #[error("block {id}: {what} of {len} bytes is over the limit of {limit}")]
    TooLarge { id: u64, what: &'static str, len: u64, limit: u64 },
    #[error("block {id}: replica has {on_disk} bytes, fewer than the {wanted} asked for")]
    TooShort { id: u64, on_disk: u64, wanted: u64 },
    /// Another writer (a pipeline recovery) took the replica over; this writer is done.
    #[error("block {id}: this writer was superseded by a recovery")]
    WriterFenced { id: u64 },
    /// The disk is full. The failed packet is not part of the replica; what was written before
    /// it still is.
    #[error("data dir {dir} is full")]
    DiskFull { dir: PathBuf },
    #[error("data dir {dir} is in use by another DataNode")]
    DirInUse { dir: PathBuf },
    #[error("no data dirs given")]
    NoDataDirs,
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Maps an I/O error on a file under `dir`: ENOSPC and EDQUOT are `DiskFull`, the rest `Io`.
pub(crate) fn io_error(e: io::Error, dir: &std::path::Path, context: impl FnOnce() -> String) -> StoreError {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => StoreError::DiskFull { dir: dir.to_path_buf() },
        _ => StoreError::Io { context: context(), source: e },
    }
}
