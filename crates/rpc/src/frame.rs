//! Control RPC framing: how a request and its response travel between a client and a server
//! (client or DataNode and NameNode; client, ApplicationMaster, NodeManager or task and
//! ResourceManager, NodeManager or ApplicationMaster).
//!
//! ```text
//! connection  preamble, once, client -> server: "HERD" | version u8 = 1 | protocol u8
//!             (the Protocol ids below)
//! frame       len u32 BE | body (len bytes; len <= MAX_FRAME_LEN = 16 MiB)
//! request     body = call_id u64 | client_id [u8; 16] | user string | groups vec<string>
//!                    | the protocol's request enum
//! response    body = call_id u64 | 0 u8 | the protocol's response enum
//!                  | call_id u64 | 1 u8 | class string | message string      (a RemoteError)
//! ```
//!
//! A frame's length is checked against the limit before its body is allocated or read. Calls
//! on one connection may be answered out of order; `call_id` pairs them, and with `client_id`
//! keys a server's retry cache (the NameNode's; a retried call reuses both).

use crate::codec::{wire_struct, DecodeError, Message, Reader, Writer};
use std::io::{Read, Write};

/// The largest frame body accepted or sent.
pub const MAX_FRAME_LEN: usize = 16 << 20;
/// The connection preamble's magic.
pub const MAGIC: [u8; 4] = *b"HERD";
/// The protocol version in the preamble.
pub const VERSION: u8 = 1;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit {limit}")]
    TooLarge { len: u64, limit: u64 },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Which protocol a connection speaks, named by its preamble. The ids are the preamble's
/// last byte; they are only ever added, never reused or renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Client <-> NameNode (HDFS's `ClientProtocol`).
    ClientNamenode = 1,
    /// DataNode <-> NameNode (HDFS's `DatanodeProtocol`).
    DatanodeNamenode = 2,
    /// Client <-> ResourceManager (YARN's `ApplicationClientProtocol`).
    ClientResourceManager = 3,
    /// ApplicationMaster <-> ResourceManager (YARN's `ApplicationMasterProtocol`).
    ApplicationMasterResourceManager = 4,
    /// NodeManager <-> ResourceManager (YARN's `ResourceTracker`).
    NodeManagerResourceManager = 5,
    /// ApplicationMaster <-> NodeManager (YARN's `ContainerManagementProtocol`).
    ApplicationMasterNodeManager = 6,
    /// Task <-> ApplicationMaster (MapReduce's `TaskUmbilicalProtocol`).
    TaskUmbilical = 7,
}

impl Protocol {
    /// Every protocol, in id order.
    pub const ALL: [Protocol; 7] = [
        Protocol::ClientNamenode,
        Protocol::DatanodeNamenode,
        Protocol::ClientResourceManager,
        Protocol::ApplicationMasterResourceManager,
        Protocol::NodeManagerResourceManager,
        Protocol::ApplicationMasterNodeManager,
        Protocol::TaskUmbilical,
    ];

    /// The id the preamble carries.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The protocol with preamble id `id`.
    pub fn from_id(id: u8) -> Result<Protocol, DecodeError> {
        Protocol::ALL.into_iter().find(|p| p.id() == id).ok_or(DecodeError::UnknownTag { what: "protocol", tag: id })
    }

    /// The six bytes a connection starts with.
    pub fn preamble(self) -> [u8; 6] {
        let m = MAGIC;
        [m[0], m[1], m[2], m[3], VERSION, self.id()]
    }

    /// Checks a received preamble.
    pub fn from_preamble(b: [u8; 6]) -> Result<Protocol, DecodeError> {
        if b[..4] != MAGIC {
            let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            return Err(DecodeError::BadValue { what: "preamble magic", value: magic.into() });
        }
        if b[4] != VERSION {
            return Err(DecodeError::BadValue { what: "protocol version", value: b[4].into() });
        }
        Protocol::from_id(b[5])
    }
}

/// The body length a frame's 4-byte prefix announces, refused if over `limit` (before the
/// caller allocates anything for it).
pub fn frame_len(prefix: [u8; 4], limit: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len: len as u64, limit: limit as u64 });
    }
    Ok(len)
}

/// `len u32 | body` for a message, refused if the body exceeds `limit`.
pub fn encode_frame<M: Message>(m: &M, limit: usize) -> Result<Vec<u8>, FrameError> {
    let mut w = Writer { buf: vec![0; 4] };
    m.encode(&mut w);
    let len = w.buf.len() - 4;
    if len > limit {
        return Err(FrameError::TooLarge { len: len as u64, limit: limit as u64 });
    }
    w.buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(w.buf)
}

/// Hadoop's class for a request a server could not decode.
pub const RPC_SERVER_EXCEPTION: &str = "org.apache.hadoop.ipc.RpcServerException";

/// A server's response frame, and whether the connection closes after it (no): a response
/// past [`MAX_FRAME_LEN`] is answered instead with an IOException that says so.
pub fn response_frame<B: Message>(r: &Response<B>) -> (Vec<u8>, bool) {
    match encode_frame(r, MAX_FRAME_LEN) {
        Ok(f) => (f, false),
        Err(e) => {
            let err: Response<B> = Response {
                call_id: r.call_id,
                result: Err(RemoteError::new("java.io.IOException", format!("response too large: {e}"))),
            };
            (encode_frame(&err, MAX_FRAME_LEN).unwrap_or_default(), false)
        }
    }
}

/// A server's answer to a request body that did not decode: an [`RPC_SERVER_EXCEPTION`] for
/// its call id (if its first 8 bytes are one), and true: the connection closes, since the
/// stream may be out of step. `B` is any response type of the protocol (an error encodes the
/// same whatever the body type).
pub fn malformed_frame<B: Message>(body: &[u8], e: &DecodeError) -> (Vec<u8>, bool) {
    let call_id = body.first_chunk::<8>().map(|b| u64::from_be_bytes(*b)).unwrap_or(0);
    let r: Response<B> =
        Response { call_id, result: Err(RemoteError::new(RPC_SERVER_EXCEPTION, format!("malformed request: {e}"))) };
    (encode_frame(&r, MAX_FRAME_LEN).unwrap_or_default(), true)
}

/// Splits one whole frame off the front of `buf`: `Ok(None)` if more bytes are needed, else
/// the body and the bytes consumed. For callers that buffer a stream themselves (async).
pub fn split_frame(buf: &[u8], limit: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = frame_len(*prefix, limit)?;
    Ok(buf.get(4..4 + len).map(|body| (body, 4 + len)))
}

/// Reads one frame's body (blocking).
pub fn read_frame(r: &mut impl Read, limit: usize) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix)?;
    let len = frame_len(prefix, limit)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Reads one frame and decodes it as `M` (blocking).
pub fn read_message<M: Message>(r: &mut impl Read, limit: usize) -> Result<M, FrameError> {
    Ok(M::from_bytes(&read_frame(r, limit)?)?)
}

/// Writes one message as a frame (blocking; no flush).
pub fn write_message<M: Message>(w: &mut impl Write, m: &M, limit: usize) -> Result<(), FrameError> {
    w.write_all(&encode_frame(m, limit)?)?;
    Ok(())
}

wire_struct! {
    /// Who calls, and which call this is.
    pub struct RequestHeader {
        /// Pairs the response with the request; with `client_id`, the retry-cache key.
        pub call_id: u64,
        /// A random id per client process (HDFS's `clientId`).
        pub client_id: [u8; 16],
        /// The caller's user name (pseudo-authentication, as WebHDFS's `user.name`).
        pub user: String,
        pub groups: Vec<String>,
    }
}

wire_struct! {
    /// A failed call, as Hadoop names it.
    pub struct RemoteError {
        /// The Java exception class, e.g. `java.io.FileNotFoundException`.
        pub class: String,
        pub message: String,
    }
}

/// Hadoop IPC's "try the same call again": the server could not complete it now (its store
/// was unreachable) and nothing of it took effect that a retry would repeat. [`crate::client`]
/// retries it as it retries a broken connection.
pub const RETRIABLE_EXCEPTION: &str = "org.apache.hadoop.ipc.RetriableException";

impl RemoteError {
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteError { class: class.into(), message: message.into() }
    }

    /// The simple class name (WebHDFS `RemoteException.exception`).
    pub fn exception_name(&self) -> &str {
        self.class.rsplit('.').next().unwrap_or(&self.class)
    }
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl std::error::Error for RemoteError {}

/// A request envelope: header, then the protocol's request enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<B> {
    pub header: RequestHeader,
    pub body: B,
}

impl<B: Message> Message for Request<B> {
    const MIN_WIRE: usize = RequestHeader::MIN_WIRE + B::MIN_WIRE;
    fn encode(&self, w: &mut Writer) {
        self.header.encode(w);
        self.body.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Request { header: RequestHeader::decode(r)?, body: B::decode(r)? })
    }
}

/// A response envelope: the call it answers, then its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<B> {
    pub call_id: u64,
    pub result: Result<B, RemoteError>,
}

impl<B: Message> Message for Response<B> {
    const MIN_WIRE: usize = 8 + 1;
    fn encode(&self, w: &mut Writer) {
        w.u64(self.call_id);
        match &self.result {
            Ok(b) => {
                w.u8(0);
                b.encode(w);
            }
            Err(e) => {
                w.u8(1);
                e.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let call_id = r.u64()?;
        let result = match r.u8()? {
            0 => Ok(B::decode(r)?),
            1 => Err(RemoteError::decode(r)?),
            tag => return Err(DecodeError::UnknownTag { what: "response result", tag }),
        };
        Ok(Response { call_id, result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_frame_is_refused_before_reading_the_body() {
        // Announces 16 MiB + 1 and carries nothing: read_frame must fail on the prefix alone,
        // not try to allocate and read the body (which would be Io(UnexpectedEof)).
        let mut wire: &[u8] = &((MAX_FRAME_LEN as u32 + 1).to_be_bytes());
        let err = read_frame(&mut wire, MAX_FRAME_LEN).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err:?}");
        assert!(matches!(split_frame(&[0xff; 4], MAX_FRAME_LEN), Err(FrameError::TooLarge { .. })));

        let big = vec![String::from_utf8(vec![b'a'; 100]).unwrap()];
        assert!(matches!(encode_frame(&big, 100), Err(FrameError::TooLarge { len: 108, limit: 100 })));
        assert!(encode_frame(&big, 108).is_ok());
    }

    #[test]
    fn frames_split_and_read_back() {
        let header = RequestHeader { call_id: 7, client_id: [3; 16], user: "ann".into(), groups: vec!["g".into()] };
        let frame = encode_frame(&header, MAX_FRAME_LEN).unwrap();
        for cut in 0..frame.len() {
            assert!(split_frame(&frame[..cut], MAX_FRAME_LEN).unwrap().is_none());
        }
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        let (body, used) = split_frame(&two, MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(RequestHeader::from_bytes(body).unwrap(), header);
        let mut r: &[u8] = &two;
        assert_eq!(read_message::<RequestHeader>(&mut r, MAX_FRAME_LEN).unwrap(), header);
        assert_eq!(read_message::<RequestHeader>(&mut r, MAX_FRAME_LEN).unwrap(), header);
        assert!(r.is_empty());
    }

    #[test]
    fn preamble_round_trips_and_rejects_strangers() {
        for p in Protocol::ALL {
            assert_eq!(Protocol::from_preamble(p.preamble()).unwrap(), p);
        }
        assert!(Protocol::from_preamble(*b"GET / ").is_err());
        assert!(Protocol::from_preamble(*b"HERD\x02\x01").is_err());
        assert!(Protocol::from_preamble(*b"HERD\x01\x00").is_err());
        assert!(Protocol::from_preamble(*b"HERD\x01\x08").is_err());
    }

    #[test]
    fn protocol_ids_are_the_documented_ones() {
        // The preamble ids are on the wire (docs/rpc.md): renumbering one breaks every peer.
        let ids: Vec<u8> = Protocol::ALL.iter().map(|p| p.id()).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(Protocol::ClientNamenode.id(), 1);
        assert_eq!(Protocol::DatanodeNamenode.id(), 2);
        assert_eq!(Protocol::TaskUmbilical.id(), 7);
    }

    #[test]
    fn remote_error_names() {
        let e = RemoteError::new("java.io.FileNotFoundException", "File /x does not exist.");
        assert_eq!(e.exception_name(), "FileNotFoundException");
        assert_eq!(e.to_string(), "java.io.FileNotFoundException: File /x does not exist.");
    }
}
