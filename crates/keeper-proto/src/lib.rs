//! The ZooKeeper 3.8 client protocol as bytes: jute encoding, records, opcodes and error codes.
//!
//! This crate promises a total decoder: any byte sequence decodes to a value or to a
//! [`DecodeError`], never a panic, and every length is checked against the bytes actually present
//! before anything is allocated. It knows nothing about servers or sessions, so clients and tools
//! can link it alone.
//!
//! Layout: [`jute`] holds the primitive reader/writer and the [`jute::Jute`] trait;
//! [`records`] the records of `zookeeper.jute`; [`codes`] opcodes, error codes, event types,
//! create modes and permissions; [`request`] the one `Request` enum that a server dispatches on; [`client`] a small blocking
//! client for tools and tests.

pub mod client;
pub mod codes;
pub mod jute;
pub mod records;
pub mod request;

pub use codes::{CreateMode, ErrorCode, EventType, KeeperState, OpCode, Perms, WatcherType};
pub use jute::{DecodeError, Jute, Reader, Writer};
pub use records::*;
pub use request::Request;

/// Reserved xids: the server's watch notifications, pings, auth replies and set-watches replies.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}
