//! Between the namespace's types and the wire's, and errors as Hadoop names them.

use dfs_proto::client_nn::{FileKind, FileStatus as WireStatus};
use dfs_proto::rpc::RemoteError;
use dfs_proto::ExtendedBlock;

use crate::journal::JournalError;
use crate::namespace::{Block, Error, FileStatus};

pub fn block(b: Block) -> ExtendedBlock {
    ExtendedBlock { id: b.id, gs: b.gs, len: b.len }
}

pub fn from_wire(b: ExtendedBlock) -> Block {
    Block { id: b.id, gs: b.gs, len: b.len }
}

pub fn status(name: &str, s: &FileStatus) -> WireStatus {
    WireStatus {
        name: name.to_string(),
        kind: if s.is_dir { FileKind::Dir } else { FileKind::File },
        length: s.length,
        owner: s.owner.clone(),
        group: s.group.clone(),
        perm: s.perm,
        replication: s.replication,
        block_size: s.block_size,
        mtime_ms: s.mtime_ms,
        atime_ms: s.atime_ms,
        file_id: s.id,
        children: s.children,
        under_construction: s.under_construction,
    }
}

pub fn ns_error(e: Error) -> RemoteError {
    RemoteError::new(e.java_class(), e.to_string())
}

pub fn journal_error(e: JournalError) -> RemoteError {
    match e {
        JournalError::NotLeader { .. } => RemoteError::new("org.apache.hadoop.ipc.StandbyException", e.to_string()),
        _ => RemoteError::new("java.io.IOException", e.to_string()),
    }
}

pub fn invalid(message: impl Into<String>) -> RemoteError {
    RemoteError::new("org.apache.hadoop.HadoopIllegalArgumentException", message)
}
