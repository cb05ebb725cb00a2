//! The file system's wire types: the control RPCs (client <-> NameNode, DataNode <-> NameNode)
//! and the DataNode data-transfer protocol (ops, packets, acks), as bytes.
//!
//! What it promises:
//! - **Total decoding.** Any byte string decodes to a value or to a [`DecodeError`], never a
//!   panic; every length is checked against the bytes present before anything is allocated,
//!   and trailing bytes are an error. The encoding is canonical (one encoding per value).
//! - **Limits.** A control frame is `len u32 BE | body` with the body at most
//!   [`rpc::MAX_FRAME_LEN`] (16 MiB), an op frame at most [`transfer::MAX_OP_FRAME_LEN`]
//!   (64 KiB), a packet's data at most [`transfer::MAX_PACKET_DATA_LEN`] (256 KiB); a length
//!   over its limit is refused from its prefix, before the body is read.
//! - **Checksums as the replicas keep them.** A packet carries one CRC32C per piece of its data
//!   cut at the block's 512-byte chunk boundaries, which a DataNode checks ([`Packet::verify`])
//!   and hands to its store unchanged.
//! - **Light.** std, `thiserror`, `crc32c` and herd's `rpc`; nothing of herd's servers, so
//!   clients link it alone. Blocking `std::io` helpers are included; async callers read a
//!   frame's 4-byte prefix (or a packet's 21-byte header), check it with [`rpc::frame_len`]
//!   (or decode the [`PacketHeader`]), then read the body and decode it.
//!
//! Layout: [`codec`] is the encoding (`Writer`, `Reader`, the [`Message`] trait); [`rpc`] the
//! control framing, connection preamble and request/response envelopes; [`rpc_client`] a
//! blocking client that retries a broken call under the same call id — these three are the
//! `rpc` crate's, shared with the compute protocols and re-exported here under their old
//! paths, with [`rpc::Protocol`] narrowed to the file system's two protocols; [`block`] the
//! types the protocols share; [`client_nn`] and [`dn_nn`] one request enum and one response
//! enum per protocol; [`transfer`] the data port. Each module's doc gives its byte layout.

pub mod block;
pub mod client_nn;
pub mod codec;
pub mod dn_nn;
pub mod rpc;
pub mod rpc_client;
pub mod transfer;

pub use block::{DatanodeInfo, ExtendedBlock, LocatedBlock};
pub use client_nn::{ClientRequest, ClientResponse, FileStatus};
pub use codec::{DecodeError, Message, Reader, Writer};
pub use dn_nn::{DatanodeCommand, DatanodeRequest, DatanodeResponse};
pub use rpc::{FrameError, RemoteError, Request, RequestHeader, Response};
pub use transfer::{Op, OpResponse, Packet, PacketHeader, PipelineAck, Status};

#[cfg(test)]
mod transfer_test;
#[cfg(test)]
mod wire_test;
