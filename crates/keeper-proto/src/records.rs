//! The records of ZooKeeper 3.8's `zookeeper.jute` that cross the client port.

use crate::jute::{DecodeError, Jute, Reader, Writer};
use crate::record;

/// The first frame a client sends. `read_only` is absent from old clients' frames.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: bool,
}

impl Jute for ConnectRequest {
    const MIN_WIRE: usize = 28;
    fn encode(&self, w: &mut Writer) {
        w.i32(self.protocol_version);
        w.i64(self.last_zxid_seen);
        w.i32(self.timeout_ms);
        w.i64(self.session_id);
        w.buffer(Some(&self.passwd));
        w.bool(self.read_only);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: r.i32()?,
            last_zxid_seen: r.i64()?,
            timeout_ms: r.i32()?,
            session_id: r.i64()?,
            passwd: r.buffer()?.unwrap_or_default(),
            read_only: if r.remaining() > 0 { r.bool()? } else { false },
        })
    }
}

record! {
    /// The server's answer to [`ConnectRequest`]; a zero timeout tells the client its session expired.
    pub struct ConnectResponse {
        pub protocol_version: i32,
        pub timeout_ms: i32,
        pub session_id: i64,
        pub passwd: Option<Vec<u8>>,
        pub read_only: bool,
    }
}

record! {
    pub struct RequestHeader { pub xid: i32, pub op: i32 }
}

record! {
    pub struct ReplyHeader { pub xid: i32, pub zxid: i64, pub err: i32 }
}

record! {
    /// A znode's metadata, field for field as ZooKeeper's `Stat`.
    pub struct Stat {
        pub czxid: i64,
        pub mzxid: i64,
        pub ctime: i64,
        pub mtime: i64,
        pub version: i32,
        pub cversion: i32,
        pub aversion: i32,
        pub ephemeral_owner: i64,
        pub data_length: i32,
        pub num_children: i32,
        pub pzxid: i64,
    }
}

record! {
    #[derive(PartialOrd, Ord, Hash)]
    pub struct Id { pub scheme: String, pub id: String }
}

record! {
    #[derive(PartialOrd, Ord, Hash)]
    pub struct Acl { pub perms: i32, pub id: Id }
}

record! {
    pub struct CreateRequest {
        pub path: String,
        pub data: Option<Vec<u8>>,
        pub acl: Vec<Acl>,
        pub flags: i32,
    }
}

record! {
    pub struct CreateTtlRequest {
        pub path: String,
        pub data: Option<Vec<u8>>,
        pub acl: Vec<Acl>,
        pub flags: i32,
        pub ttl: i64,
    }
}

record! {
    pub struct CreateResponse { pub path: String }
}

record! {
    pub struct Create2Response { pub path: String, pub stat: Stat }
}

record! {
    pub struct DeleteRequest { pub path: String, pub version: i32 }
}

record! {
    /// exists, getData, getChildren and getChildren2 share this shape.
    pub struct PathWatchRequest { pub path: String, pub watch: bool }
}

record! {
    pub struct StatResponse { pub stat: Stat }
}

record! {
    pub struct GetDataResponse { pub data: Option<Vec<u8>>, pub stat: Stat }
}

record! {
    pub struct SetDataRequest { pub path: String, pub data: Option<Vec<u8>>, pub version: i32 }
}

record! {
    pub struct GetChildrenResponse { pub children: Vec<String> }
}

record! {
    pub struct GetChildren2Response { pub children: Vec<String>, pub stat: Stat }
}

record! {
    pub struct CheckVersionRequest { pub path: String, pub version: i32 }
}

record! {
    /// getACL, sync, getAllChildrenNumber and getEphemerals carry only a path.
    pub struct PathRequest { pub path: String }
}

record! {
    pub struct GetAclResponse { pub acl: Vec<Acl>, pub stat: Stat }
}

record! {
    pub struct SetAclRequest { pub path: String, pub acl: Vec<Acl>, pub version: i32 }
}

record! {
    /// Null strings decode as empty: "not given".
    pub struct ReconfigRequest {
        pub joining_servers: String,
        pub leaving_servers: String,
        pub new_members: String,
        pub cur_config_id: i64,
    }
}

record! {
    pub struct SyncResponse { pub path: String }
}

record! {
    pub struct AuthPacket { pub kind: i32, pub scheme: String, pub auth: Option<Vec<u8>> }
}

record! {
    pub struct SetWatches {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
    }
}

record! {
    pub struct SetWatches2 {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
        pub persistent_watches: Vec<String>,
        pub persistent_recursive_watches: Vec<String>,
    }
}

record! {
    pub struct AddWatchRequest { pub path: String, pub mode: i32 }
}

record! {
    /// checkWatches and removeWatches.
    pub struct WatchesRequest { pub path: String, pub kind: i32 }
}

record! {
    pub struct GetEphemeralsResponse { pub ephemerals: Vec<String> }
}

record! {
    pub struct GetAllChildrenNumberResponse { pub total: i32 }
}

record! {
    pub struct ClientInfo { pub auth_scheme: String, pub user: String }
}

record! {
    pub struct WhoAmIResponse { pub client_info: Vec<ClientInfo> }
}

record! {
    pub struct WatcherEvent { pub kind: i32, pub state: i32, pub path: String }
}

record! {
    pub struct ErrorResponse { pub err: i32 }
}

record! {
    /// Precedes each op of a multi request and each result of a multi response.
    pub struct MultiHeader { pub op: i32, pub done: bool, pub err: i32 }
}

impl MultiHeader {
    /// The header that ends a multi request or response.
    pub fn end() -> Self {
        MultiHeader { op: -1, done: true, err: -1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_without_read_only_flag() {
        let full = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 5,
            timeout_ms: 10_000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: true,
        };
        let mut b = full.to_bytes();
        assert_eq!(ConnectRequest::from_bytes(&b).unwrap(), full);
        b.pop();
        let old = ConnectRequest::from_bytes(&b).unwrap();
        assert!(!old.read_only);
    }

    #[test]
    fn stat_is_68_bytes() {
        assert_eq!(Stat::default().to_bytes().len(), 68);
        assert_eq!(<Stat as Jute>::MIN_WIRE, 68);
    }
}
