//! The DataNode <-> NameNode protocol (HDFS's `DatanodeProtocol`): one request enum, one
//! response enum, carried in [`crate::rpc`] envelopes, and the commands the NameNode sends back.
//!
//! Each variant is `tag u8 | its fields in declaration order` (see [`crate::codec`]). Every
//! request after `Register` names the DataNode and its incarnation (its membership session);
//! the NameNode refuses an incarnation its view does not list, and the DataNode then
//! registers again and sends a full block report. Every command names the NameNode's epoch
//! (its incarnation); a DataNode refuses commands older than the newest epoch it has seen.
//!
//! ```text
//! Register                                   -> Registered
//! Heartbeat, BlockReport, IncrementalBlockReport -> Commands
//! ReportBadBlocks                            -> Done
//! ```

use crate::block::{DatanodeInfo, ExtendedBlock};
use crate::codec::{wire_enum, wire_struct};

wire_enum! {
    pub enum DatanodeRequest {
        Register {
            id: String,
            incarnation: i64,
            data_addr: String,
            http_addr: String,
            rack: String,
            capacity: u64,
            used: u64,
        } = 0,
        Heartbeat {
            id: String,
            incarnation: i64,
            capacity: u64,
            /// Bytes of replica files.
            used: u64,
            /// Bytes available to the DataNode.
            free: u64,
            /// Block transfers (reads, writes, copies) in progress.
            active_transfers: u32,
            failed_volumes: u32,
        } = 1,
        /// Every replica the DataNode holds (finalized and being written).
        BlockReport { id: String, incarnation: i64, replicas: Vec<ReportedReplica> } = 2,
        /// Changes since the last report: replicas finalized, deleted, or started.
        IncrementalBlockReport {
            id: String,
            incarnation: i64,
            received: Vec<ReportedReplica>,
            deleted: Vec<ExtendedBlock>,
            receiving: Vec<ReportedReplica>,
        } = 3,
        /// Replicas of this DataNode the block scanner (or a read) found corrupt.
        ReportBadBlocks { id: String, incarnation: i64, blocks: Vec<ExtendedBlock> } = 4,
    }
}

wire_enum! {
    pub enum DatanodeResponse {
        Done = 0,
        Registered { namenode_epoch: i64 } = 1,
        Commands { response: HeartbeatResponse } = 2,
    }
}

wire_struct! {
    pub struct HeartbeatResponse {
        /// The NameNode's incarnation.
        pub namenode_epoch: i64,
        pub commands: Vec<DatanodeCommand>,
    }
}

wire_enum! {
    #[derive(Copy, Hash)]
    pub enum ReplicaState {
        Finalized = 0,
        /// Being written (or was when the DataNode stopped).
        Rbw = 1,
    }
}

wire_struct! {
    /// One line of a block report: `id u64 | gs u64 | len u64 | state u8`.
    #[derive(Copy, Hash)]
    pub struct ReportedReplica {
        pub id: u64,
        pub gs: u64,
        pub len: u64,
        pub state: ReplicaState,
    }
}

wire_enum! {
    /// What the NameNode tells a DataNode to do. Each names the NameNode epoch it was issued in.
    pub enum DatanodeCommand {
        /// Copy the replica of `block` to `targets` (a pipeline, in order) for re-replication.
        Transfer { namenode_epoch: i64, block: ExtendedBlock, targets: Vec<DatanodeInfo> } = 0,
        /// Delete these replicas.
        Invalidate { namenode_epoch: i64, blocks: Vec<ExtendedBlock> } = 1,
        /// Register again, then send a full block report.
        Reregister { namenode_epoch: i64 } = 2,
    }
}

impl DatanodeCommand {
    /// The NameNode epoch the command was issued in.
    pub fn namenode_epoch(&self) -> i64 {
        match self {
            DatanodeCommand::Transfer { namenode_epoch, .. }
            | DatanodeCommand::Invalidate { namenode_epoch, .. }
            | DatanodeCommand::Reregister { namenode_epoch } => *namenode_epoch,
        }
    }
}
