//! The client <-> NameNode protocol (HDFS's `ClientProtocol`): one request enum, one response
//! enum, carried in [`crate::rpc`] envelopes.
//!
//! Each variant is `tag u8 | its fields in declaration order` (see [`crate::codec`]); the tags
//! are the numbers after `=` below. Which response a request gets on success:
//!
//! ```text
//! Mkdirs, Delete, Complete, SetReplication, RecoverLease, Truncate -> Bool
//! Create                                                            -> Status
//! AddBlock                                                          -> Located
//! Append                                                            -> Appended
//! UpdateBlockForPipeline                                            -> Block (the new stamp)
//! AbandonBlock, UpdatePipeline, Rename, Set{Permission,Owner,Times},
//!   RenewLease, ReportBadBlocks, Concat                             -> Done
//! GetFileInfo -> FileInfo, List -> Listing, GetContentSummary -> ContentSummary,
//! GetBlockLocations -> LocatedBlocks, GetBlockHealth -> BlockHealth,
//! GetServerDefaults -> ServerDefaults, RefreshNodes -> Done, DatanodeReport -> DatanodeReport
//! ```

use crate::block::{DatanodeInfo, ExtendedBlock, LocatedBlock};
use crate::codec::{wire_enum, wire_struct};

wire_enum! {
    /// What a client asks the NameNode. Paths are absolute (`/a/b`).
    pub enum ClientRequest {
        /// HDFS `mkdirs`.
        Mkdirs { path: String, perm: u16, create_parent: bool } = 0,
        /// HDFS `create`: opens a new file for writing under a lease held by `client_name`.
        Create {
            path: String,
            perm: u16,
            overwrite: bool,
            create_parent: bool,
            replication: u16,
            block_size: u64,
            client_name: String,
        } = 1,
        /// Allocates the next block of a file open for writing. `previous` is the client's
        /// last block with its final length (`None` for the first block); `excluded` names
        /// DataNodes (by id) the client could not reach.
        AddBlock {
            path: String,
            client_name: String,
            previous: Option<ExtendedBlock>,
            excluded: Vec<String>,
        } = 2,
        /// Closes a file; `last` is the last block with its final length. `Bool(false)`: not
        /// yet enough replicas reported, call again.
        Complete { path: String, client_name: String, last: Option<ExtendedBlock> } = 3,
        /// Gives up the last block AddBlock allocated (the client could build no pipeline).
        AbandonBlock { path: String, client_name: String, block: ExtendedBlock } = 4,
        /// Reopens a file for writing: its last block if partial (and not `new_block`).
        Append { path: String, client_name: String, new_block: bool } = 5,
        /// Pipeline recovery, step one: a new generation stamp for the block being written.
        UpdateBlockForPipeline { block: ExtendedBlock, client_name: String } = 6,
        /// Pipeline recovery, step two: the block now has `new_block`'s stamp and length, on
        /// the DataNodes `new_nodes` (ids, pipeline order).
        UpdatePipeline {
            client_name: String,
            old_block: ExtendedBlock,
            new_block: ExtendedBlock,
            new_nodes: Vec<String>,
        } = 7,
        /// HDFS `rename2`: `dst` is the new name, never "into" a directory.
        Rename { src: String, dst: String, overwrite: bool } = 8,
        /// `Bool(false)`: nothing was there.
        Delete { path: String, recursive: bool } = 9,
        SetPermission { path: String, perm: u16 } = 10,
        /// `None` leaves that one unchanged.
        SetOwner { path: String, owner: Option<String>, group: Option<String> } = 11,
        /// `Bool(false)`: not a file.
        SetReplication { path: String, replication: u16 } = 12,
        /// `None` leaves that one unchanged.
        SetTimes { path: String, mtime_ms: Option<u64>, atime_ms: Option<u64> } = 13,
        RenewLease { client_name: String } = 14,
        /// Starts lease recovery of a file; `Bool(true)` once it is closed.
        RecoverLease { path: String, client_name: String } = 15,
        GetFileInfo { path: String } = 16,
        /// Up to `limit` entries after the name `start_after` ("" from the start).
        List { path: String, start_after: String, limit: u32 } = 17,
        GetContentSummary { path: String } = 18,
        /// The blocks overlapping `[offset, offset + length)`.
        GetBlockLocations { path: String, offset: u64, length: u64 } = 19,
        /// Replicas a reader found corrupt.
        ReportBadBlocks { blocks: Vec<BadReplica> } = 20,
        /// Per block of a file: where its replicas are and in what state (fsck).
        GetBlockHealth { path: String } = 21,
        /// Block size, replication and packet sizes a client should use by default.
        GetServerDefaults = 22,
        /// HDFS `refreshNodes` (superuser): re-read the exclude file; DataNodes it lists are
        /// decommissioned (drained), those it no longer lists are back in service.
        RefreshNodes = 23,
        /// HDFS `getDatanodeReport`: every registered DataNode and its state.
        DatanodeReport = 24,
        /// HDFS `truncate`: cuts a closed file to `new_length` (never longer). `Bool(true)`: done;
        /// `Bool(false)`: the last block is being cut by a block recovery, after which the
        /// NameNode closes the file (poll its status until it is no longer under
        /// construction). `client_name` holds the file's lease meanwhile.
        Truncate { path: String, new_length: u64, client_name: String } = 25,
        /// HDFS `concat`: appends the blocks of `srcs` (closed, non-empty files in `target`'s
        /// directory), in order, to the closed file `target`, and removes `srcs`.
        Concat { target: String, srcs: Vec<String> } = 26,
    }
}

wire_enum! {
    /// The NameNode's answer to a [`ClientRequest`] that succeeded.
    #[allow(clippy::large_enum_variant)] // Transient values; boxing would only add allocations.
    pub enum ClientResponse {
        Done = 0,
        Bool { value: bool } = 1,
        Status { status: FileStatus } = 2,
        /// `None`: nothing at that path.
        FileInfo { status: Option<FileStatus> } = 3,
        Block { block: ExtendedBlock } = 4,
        Located { block: LocatedBlock } = 5,
        /// The reopened file, and its last block if the writer continues it.
        Appended { status: FileStatus, last: Option<LocatedBlock> } = 6,
        /// Entries sorted by name; a file lists itself (with the name "").
        Listing { entries: Vec<FileStatus>, remaining: u64 } = 7,
        ContentSummary { summary: ContentSummary } = 8,
        LocatedBlocks { blocks: LocatedBlocks } = 9,
        BlockHealth { blocks: Vec<BlockHealth> } = 10,
        ServerDefaults { defaults: ServerDefaults } = 11,
        DatanodeReport { datanodes: Vec<DatanodeStatus> } = 12,
    }
}

wire_enum! {
    #[derive(Copy, Hash)]
    pub enum FileKind {
        File = 0,
        Dir = 1,
    }
}

wire_struct! {
    /// What `getFileInfo` and `getListing` tell about a path (HDFS `HdfsFileStatus`).
    pub struct FileStatus {
        /// The last path component ("" for the path asked about itself).
        pub name: String,
        pub kind: FileKind,
        pub length: u64,
        pub owner: String,
        pub group: String,
        /// Permission bits, sticky bit included (0o1777 at most).
        pub perm: u16,
        /// 0 for a directory.
        pub replication: u16,
        /// 0 for a directory.
        pub block_size: u64,
        pub mtime_ms: u64,
        pub atime_ms: u64,
        /// The inode id.
        pub file_id: u64,
        /// Number of children (directories; 0 for files).
        pub children: u64,
        /// Open for writing.
        pub under_construction: bool,
    }
}

wire_struct! {
    pub struct ContentSummary {
        pub length: u64,
        pub files: u64,
        /// Directories, the summarized one included.
        pub dirs: u64,
        /// Bytes stored on DataNodes: length × replication, per file.
        pub space_consumed: u64,
    }
}

wire_struct! {
    /// A file's blocks for a reader (HDFS `LocatedBlocks`).
    pub struct LocatedBlocks {
        pub file_length: u64,
        /// The blocks overlapping the range asked for.
        pub blocks: Vec<LocatedBlock>,
        pub under_construction: bool,
        /// The file's last block, whatever the range (a reader of an open file needs it).
        pub last_block: Option<LocatedBlock>,
        /// The last block is complete (its length is final).
        pub last_block_complete: bool,
    }
}

wire_struct! {
    /// A replica a reader (or the scanner) found corrupt.
    pub struct BadReplica {
        pub block: ExtendedBlock,
        /// The DataNode (id) holding the bad replica.
        pub datanode: String,
    }
}

wire_enum! {
    #[derive(Copy, Hash)]
    pub enum ReplicaHealthState {
        Live = 0,
        Corrupt = 1,
        /// On a DataNode being decommissioned: readable, but not counted towards replication.
        Decommissioning = 2,
        /// On a DataNode that left the membership view, until the NameNode forgets it.
        Stale = 3,
    }
}

wire_struct! {
    pub struct ReplicaHealth {
        pub datanode: DatanodeInfo,
        pub state: ReplicaHealthState,
    }
}

wire_struct! {
    /// One block of a file, as fsck sees it.
    pub struct BlockHealth {
        pub block: ExtendedBlock,
        pub expected_replication: u16,
        pub replicas: Vec<ReplicaHealth>,
    }
}

wire_struct! {
    /// HDFS `FsServerDefaults`, the part herd uses.
    pub struct ServerDefaults {
        pub block_size: u64,
        pub replication: u16,
        pub bytes_per_checksum: u32,
        pub write_packet_size: u32,
    }
}

wire_enum! {
    /// A DataNode's administrative state (HDFS `AdminStates`).
    #[derive(Copy, Hash)]
    pub enum AdminState {
        InService = 0,
        /// Listed in the exclude file: its replicas are being copied elsewhere.
        Decommissioning = 1,
        /// Drained: every block it holds is fully replicated elsewhere; it may be stopped.
        Decommissioned = 2,
    }
}

wire_struct! {
    /// One line of the DataNode report (HDFS `DatanodeInfo` with its counters).
    pub struct DatanodeStatus {
        pub datanode: DatanodeInfo,
        /// Its membership incarnation.
        pub incarnation: i64,
        pub state: AdminState,
        pub capacity: u64,
        pub free: u64,
        /// Replicas the NameNode knows it holds.
        pub blocks: u64,
    }
}
