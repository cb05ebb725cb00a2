//! herd's control RPC, shared by every protocol crate (`dfs-proto`, `compute-proto`): a
//! canonical binary codec, length-prefixed frames carrying request and response envelopes,
//! the connection preamble that names the protocol, and a blocking client.
//!
//! What it promises:
//! - **Total decoding.** Any byte string decodes to a value or to a [`DecodeError`], never a
//!   panic; every length is checked against the bytes present before anything is allocated,
//!   and trailing bytes are an error. The encoding is canonical (one encoding per value).
//! - **Limits.** A frame is `len u32 BE | body` with the body at most
//!   [`frame::MAX_FRAME_LEN`] (16 MiB), refused from its prefix before the body is read.
//! - **One protocol per connection**, named by the preamble ([`Protocol`]); its ids are
//!   never reused.
//! - **Light.** std and `thiserror` (tokio only with the `server` feature); nothing of herd's
//!   servers.
//!
//! Layout: [`codec`] is the encoding (`Writer`, `Reader`, the [`Message`] trait, and the
//! [`wire_struct!`] and [`wire_enum!`] macros protocol crates declare their types with);
//! [`frame`] the framing, preamble, protocol ids and request/response envelopes; [`client`] a
//! blocking client that retries a broken call under the same call id; `server` (feature
//! `server`) the accept loop servers share; `wire_check` (feature
//! `wire-check`, for protocol crates' tests) the checks every message type must pass. The
//! byte layout is in `docs/rpc.md` and each module's doc.

pub mod client;
pub mod codec;
pub mod frame;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "wire-check")]
pub mod wire_check;

pub use client::{CallError, Caller, RetryPolicy, RpcClient};
pub use codec::{DecodeError, Message, Reader, Writer};
pub use frame::{FrameError, Protocol, RemoteError, Request, RequestHeader, Response};
