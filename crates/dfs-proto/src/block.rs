//! Types the protocols share: blocks and the DataNodes that hold them.

use crate::codec::wire_struct;

wire_struct! {
    /// A block as the wire names it: `id u64 | gs u64 | len u64`.
    #[derive(Copy, Hash)]
    pub struct ExtendedBlock {
        pub id: u64,
        /// Generation stamp: grows at every pipeline update or recovery, fencing stale replicas.
        pub gs: u64,
        /// Bytes: final for a complete block, as acknowledged so far for one being written.
        pub len: u64,
    }
}

wire_struct! {
    /// A DataNode as clients and other DataNodes reach it:
    /// `id string | data_addr string | http_addr string | rack string`.
    pub struct DatanodeInfo {
        /// Its member id (`datanode/<id>` in the keeper).
        pub id: String,
        /// `host:port` of its data-transfer port.
        pub data_addr: String,
        /// `host:port` of its HTTP port.
        pub http_addr: String,
        /// Its rack path, e.g. `/rack1` (`/default-rack` when the topology does not know it).
        pub rack: String,
    }
}

wire_struct! {
    /// A block with the DataNodes holding it, in the order a reader should try them:
    /// `block | offset u64 | locations vec<DatanodeInfo> | corrupt bool`.
    pub struct LocatedBlock {
        pub block: ExtendedBlock,
        /// Where the block starts in its file.
        pub offset: u64,
        pub locations: Vec<DatanodeInfo>,
        /// Every listed replica is known corrupt (HDFS lists them anyway, so a reader may try).
        pub corrupt: bool,
    }
}
