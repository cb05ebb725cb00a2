//! Data transfer: what flows on a DataNode's data port (HDFS's `DataTransferProtocol`).
//!
//! ```text
//! op            len u32 | version u16 = 1 | Op (tag u8 | fields)       len <= MAX_OP_FRAME_LEN
//! op response   len u32 | status u8 | message string | first_chunk_offset u64
//! packet        seqno u64 | offset_in_block u64 | flags u8 (bit 0 last, bit 1 sync)
//!               | data_len u32 (<= 256 KiB) | crc u32 × n | data (data_len bytes)
//! ack           seqno u64 | count u8 | status u8 × count
//! block checksum  len u32 | bytes_per_crc u32 | crc_per_block u64 | md5 [u8; 16]
//! ```
//!
//! A write: the client sends `WriteBlock` to the first DataNode, which forwards it (minus
//! itself in `targets`) down the pipeline; each answers an op response upstream once its
//! downstream did. Then packets flow down and acks flow up: a DataNode checks a packet's CRCs
//! before writing and forwarding it, and acks a seqno once its own write and its downstream's
//! ack are in, listing its own status first and then its downstream's. The last packet has
//! `last` set and no data. A read: `ReadBlock`, an op response whose `first_chunk_offset` is
//! where the packets start (the chunk boundary at or before the offset asked), then packets
//! from the DataNode until one with `last`. A block checksum: `BlockChecksum`, an op response,
//! and if it says `Success` a [`BlockChecksumResponse`] frame.
//!
//! **Checksums.** `n` CRC32Cs cover `data` cut at the block's 512-byte chunk boundaries: a
//! packet at `offset_in_block` not on a boundary first completes the chunk it starts in, so
//! its first piece is `512 - offset % 512` bytes (or all of `data`, if shorter), the following
//! pieces 512 bytes, the last one what is left. Offset 700, 1000 bytes: pieces of 324, 512 and
//! 164 bytes. `n` = `ceil((offset % 512 + data_len) / 512)`, 0 when `data_len` is 0. This is
//! what the DataNode store's `write_packet_checked` takes.

use crate::block::{DatanodeInfo, ExtendedBlock};
use crate::codec::{wire_enum, wire_struct, DecodeError, Message, Reader, Writer};
use crate::rpc::{self, FrameError};
use std::io::{IoSlice, Read, Write};
use std::ops::Range;

/// The data-transfer protocol version every op frame starts with.
pub const DATA_TRANSFER_VERSION: u16 = 1;
/// The largest op or op-response frame body.
pub const MAX_OP_FRAME_LEN: usize = 64 << 10;
/// Bytes per checksum: the replicas' chunk size.
pub const CHUNK_LEN: usize = 512;
/// The most data one packet carries. HDFS uses 64 KiB; herd's pipeline measured ~20% faster
/// with 256 KiB (a quarter of the wake-ups and syscalls per byte on every node, on 2 cores),
/// and the data port is herd's own protocol.
pub const MAX_PACKET_DATA_LEN: usize = 256 << 10;
/// The most CRCs a packet carries: its data may start mid-chunk, so one more than its whole
/// chunks.
pub const MAX_PACKET_CRCS: usize = MAX_PACKET_DATA_LEN / CHUNK_LEN + 1;
/// The largest block offset a packet may reach (the DataNode store's replica bound).
pub const MAX_BLOCK_LEN: u64 = 1 << 40;

wire_enum! {
    /// How a `WriteBlock` opens the replica (HDFS `BlockConstructionStage`, simplified).
    #[derive(Copy, Hash)]
    pub enum WriteStage {
        /// A new block: `block.gs` is its stamp, `block.len` 0.
        Create = 0,
        /// Reopen a finalized replica at `block.gs` under `new_gs`.
        Append = 1,
        /// Pipeline recovery: cut the replica being written to `block.len` (the acknowledged
        /// length) under `new_gs`.
        Recovery = 2,
        /// A copy into a temporary replica (re-replication, or a replacement node in recovery).
        Transfer = 3,
    }
}

wire_enum! {
    pub enum Op {
        WriteBlock {
            block: ExtendedBlock,
            /// The stamp the replica will have (`block.gs` unless appending or recovering).
            new_gs: u64,
            /// The rest of the pipeline after the receiver, in order.
            targets: Vec<DatanodeInfo>,
            /// The writing client (or `""` for a DataNode-initiated transfer).
            client_name: String,
            stage: WriteStage,
            /// The NameNode epoch of the command behind a transfer (0 for a client's write).
            namenode_epoch: i64,
        } = 0,
        /// `len` bytes from `offset`; `verify`: check every chunk's CRC before sending.
        ReadBlock { block: ExtendedBlock, offset: u64, len: u64, verify: bool } = 1,
        /// Send the whole replica (the source side of a copy).
        CopyBlock { block: ExtendedBlock } = 2,
        /// Lease recovery, step one, sent by the NameNode to each replica of a block whose
        /// writer is gone: fence the replica's writer and move a replica being written to
        /// stamp `recovery_id` at its current length; answer its length. `block.gs` is the
        /// stamp the NameNode knows (an older replica is stale).
        InitRecovery { block: ExtendedBlock, recovery_id: u64, namenode_epoch: i64 } = 3,
        /// Lease recovery, step two: cut the replica to `block.len` and finalize it under
        /// stamp `block.gs` (the recovery id); answer its length.
        FinishRecovery { block: ExtendedBlock, namenode_epoch: i64 } = 4,
        /// The MD5 of the stored CRCs of the finalized replica's first `block.len` bytes
        /// (HDFS's `OP_BLOCK_CHECKSUM`, MD5CRC); answered by an op response and, on success,
        /// a [`BlockChecksumResponse`]. See docs/dfs-formats.md for which bytes it covers.
        BlockChecksum { block: ExtendedBlock } = 5,
    }
}

impl Op {
    /// The op's frame: `len u32 | version u16 | op`.
    pub fn to_frame(&self) -> Result<Vec<u8>, FrameError> {
        rpc::encode_frame(&Versioned(self.clone()), MAX_OP_FRAME_LEN)
    }

    /// Decodes an op frame's body, refusing another protocol version.
    pub fn from_body(body: &[u8]) -> Result<Op, DecodeError> {
        Versioned::from_bytes(body).map(|v| v.0)
    }

    /// Reads one op frame (blocking).
    pub fn read_from(r: &mut impl Read) -> Result<Op, FrameError> {
        Ok(Op::from_body(&rpc::read_frame(r, MAX_OP_FRAME_LEN)?)?)
    }
}

/// An op after the protocol version.
struct Versioned(Op);

impl Message for Versioned {
    const MIN_WIRE: usize = 2 + Op::MIN_WIRE;
    fn encode(&self, w: &mut Writer) {
        w.u16(DATA_TRANSFER_VERSION);
        self.0.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u16()?;
        if version != DATA_TRANSFER_VERSION {
            return Err(DecodeError::BadValue { what: "data transfer version", value: version.into() });
        }
        Ok(Versioned(Op::decode(r)?))
    }
}

wire_enum! {
    /// One node's outcome, in op responses and acks.
    #[derive(Copy, Hash)]
    pub enum Status {
        Success = 0,
        Error = 1,
        /// A packet's data did not match its CRCs (or a replica's, on a read).
        ErrorChecksum = 2,
        /// A request the node cannot serve: no such replica, bad offset, malformed.
        ErrorInvalid = 3,
        /// The replica already exists.
        ErrorExists = 4,
        ErrorDiskFull = 5,
        /// A generation stamp or NameNode epoch older than the node's.
        ErrorStale = 6,
    }
}

impl Status {
    pub fn is_success(self) -> bool {
        self == Status::Success
    }
}

wire_struct! {
    /// The answer to an op, sent as a frame (`len u32 | body`).
    pub struct OpResponse {
        pub status: Status,
        /// Why, when the status is not success.
        pub message: String,
        /// For a read: the block offset the first packet starts at (chunk-aligned, at or
        /// before the offset asked for). For `InitRecovery` and `FinishRecovery`: the
        /// replica's length. 0 otherwise.
        pub first_chunk_offset: u64,
    }
}

impl OpResponse {
    pub fn to_frame(&self) -> Result<Vec<u8>, FrameError> {
        rpc::encode_frame(self, MAX_OP_FRAME_LEN)
    }

    /// Reads one op response frame (blocking).
    pub fn read_from(r: &mut impl Read) -> Result<OpResponse, FrameError> {
        rpc::read_message(r, MAX_OP_FRAME_LEN)
    }
}

wire_struct! {
    /// What a `BlockChecksum` op answers after its `Success` op response, as a frame
    /// (`len u32 | body`): HDFS's `OpBlockChecksumResponseProto` for MD5CRC.
    pub struct BlockChecksumResponse {
        /// Data bytes per CRC (the meta file header's, 512).
        pub bytes_per_crc: u32,
        /// CRCs the replica's meta file holds (`ceil(replica length / bytes_per_crc)`), even
        /// when the MD5 covers fewer.
        pub crc_per_block: u64,
        /// MD5 of the big-endian CRC32Cs covering the bytes asked for.
        pub md5: [u8; 16],
    }
}

impl BlockChecksumResponse {
    pub fn to_frame(&self) -> Result<Vec<u8>, FrameError> {
        rpc::encode_frame(self, MAX_OP_FRAME_LEN)
    }

    /// Reads one block checksum frame (blocking).
    pub fn read_from(r: &mut impl Read) -> Result<BlockChecksumResponse, FrameError> {
        rpc::read_message(r, MAX_OP_FRAME_LEN)
    }
}

/// Asks for a block checksum over a connected data-port stream (blocking): sends the op,
/// reads the op response and, if it says `Success`, the answer. `Ok(Err(response))`: refused.
pub fn request_block_checksum(
    s: &mut (impl Read + Write),
    block: ExtendedBlock,
) -> Result<Result<BlockChecksumResponse, OpResponse>, FrameError> {
    s.write_all(&Op::BlockChecksum { block }.to_frame()?)?;
    s.flush()?;
    let resp = OpResponse::read_from(s)?;
    if !resp.status.is_success() {
        return Ok(Err(resp));
    }
    Ok(Ok(BlockChecksumResponse::read_from(s)?))
}

/// The pieces of a packet's `len` data bytes at block offset `offset`, as ranges of the data,
/// cut at the block's chunk boundaries.
pub fn chunk_pieces(offset: u64, len: usize) -> impl Iterator<Item = Range<usize>> {
    let first = CHUNK_LEN - (offset % CHUNK_LEN as u64) as usize;
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= len {
            return None;
        }
        let end = if start == 0 { first.min(len) } else { (start + CHUNK_LEN).min(len) };
        let piece = start..end;
        start = end;
        Some(piece)
    })
}

/// How many CRCs a packet of `len` bytes at `offset` carries.
pub fn piece_count(offset: u64, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    ((offset % CHUNK_LEN as u64) as usize + len).div_ceil(CHUNK_LEN)
}

/// The CRC32C of each piece of `data` at block offset `offset`.
pub fn checksums(offset: u64, data: &[u8]) -> Vec<u32> {
    chunk_pieces(offset, data.len()).map(|p| crc32c::crc32c(&data[p])).collect()
}

/// The fixed part of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    pub seqno: u64,
    pub offset_in_block: u64,
    /// The block's last packet (no data follows in this block).
    pub last: bool,
    /// Each node fsyncs before acknowledging (hflush/hsync).
    pub sync: bool,
    pub data_len: u32,
}

const FLAG_LAST: u8 = 1;
const FLAG_SYNC: u8 = 2;

impl PacketHeader {
    /// Bytes of an encoded header.
    pub const LEN: usize = 21;

    /// CRCs in the packet.
    pub fn crc_count(&self) -> usize {
        piece_count(self.offset_in_block, self.data_len as usize)
    }

    /// Bytes after the header: the CRCs and the data.
    pub fn body_len(&self) -> usize {
        4 * self.crc_count() + self.data_len as usize
    }
}

impl Message for PacketHeader {
    const MIN_WIRE: usize = PacketHeader::LEN;
    fn encode(&self, w: &mut Writer) {
        w.u64(self.seqno);
        w.u64(self.offset_in_block);
        w.u8(if self.last { FLAG_LAST } else { 0 } | if self.sync { FLAG_SYNC } else { 0 });
        w.u32(self.data_len);
    }

    /// Checks the limits, so [`PacketHeader::body_len`] is safe to allocate.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let seqno = r.u64()?;
        let offset_in_block = r.u64()?;
        let flags = r.u8()?;
        if flags & !(FLAG_LAST | FLAG_SYNC) != 0 {
            return Err(DecodeError::BadValue { what: "packet flags", value: flags.into() });
        }
        let data_len = r.u32()?;
        if data_len as usize > MAX_PACKET_DATA_LEN {
            return Err(DecodeError::TooLarge {
                what: "packet data",
                len: data_len.into(),
                limit: MAX_PACKET_DATA_LEN as u64,
            });
        }
        let end = offset_in_block.saturating_add(data_len.into());
        if end > MAX_BLOCK_LEN {
            return Err(DecodeError::TooLarge { what: "packet end offset", len: end, limit: MAX_BLOCK_LEN });
        }
        Ok(PacketHeader {
            seqno,
            offset_in_block,
            last: flags & FLAG_LAST != 0,
            sync: flags & FLAG_SYNC != 0,
            data_len,
        })
    }
}

/// A packet: header, one CRC per chunk piece, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub header: PacketHeader,
    pub crcs: Vec<u32>,
    pub data: Vec<u8>,
}

impl Packet {
    /// A packet of `data` at `offset` with its CRCs computed.
    ///
    /// Panics if `data` exceeds [`MAX_PACKET_DATA_LEN`] or ends past [`MAX_BLOCK_LEN`]: the
    /// caller cuts its data into packets.
    pub fn build(seqno: u64, offset: u64, data: Vec<u8>, last: bool, sync: bool) -> Packet {
        assert!(data.len() <= MAX_PACKET_DATA_LEN, "packet of {} bytes", data.len());
        assert!(offset + data.len() as u64 <= MAX_BLOCK_LEN, "packet past the block limit");
        let header = PacketHeader { seqno, offset_in_block: offset, last, sync, data_len: data.len() as u32 };
        let crcs = checksums(offset, &data);
        debug_assert_eq!(crcs.len(), header.crc_count());
        Packet { header, crcs, data }
    }

    /// The block offset of the first piece whose CRC does not match (a missing CRC counts as a
    /// mismatch; surplus CRCs as one at the packet's end), `None` if all match.
    pub fn verify(&self) -> Option<u64> {
        let offset = self.header.offset_in_block;
        let mut n = 0;
        for (i, piece) in chunk_pieces(offset, self.data.len()).enumerate() {
            if self.crcs.get(i) != Some(&crc32c::crc32c(&self.data[piece.clone()])) {
                return Some(offset + piece.start as u64);
            }
            n += 1;
        }
        (self.crcs.len() != n || self.header.data_len as usize != self.data.len())
            .then_some(offset + self.data.len() as u64)
    }

    /// Decodes the CRCs and data that follow `header` (exactly [`PacketHeader::body_len`] bytes).
    pub fn decode_body(header: PacketHeader, body: &[u8]) -> Result<Packet, DecodeError> {
        let mut r = Reader::new(body);
        let p = Packet::decode_after(header, &mut r)?;
        r.finish()?;
        Ok(p)
    }

    fn decode_after(header: PacketHeader, r: &mut Reader<'_>) -> Result<Packet, DecodeError> {
        let n = header.crc_count();
        let raw = r.take(4 * n)?;
        let crcs = raw.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
        let data = r.take(header.data_len as usize)?.to_vec();
        Ok(Packet { header, crcs, data })
    }

    /// Reads one packet (blocking). The header's limits are checked before the body is
    /// allocated; the CRCs are not verified (see [`Packet::verify`]). The data is read straight
    /// into its own buffer, never zero-filled or copied: packets are most of what crosses a
    /// pipeline.
    pub fn read_from(r: &mut impl Read) -> Result<Packet, FrameError> {
        let mut h = [0u8; PacketHeader::LEN];
        r.read_exact(&mut h)?;
        let header = PacketHeader::from_bytes(&h)?;
        let mut raw = [0u8; 4 * MAX_PACKET_CRCS];
        let raw = &mut raw[..4 * header.crc_count()];
        r.read_exact(raw)?;
        let crcs = raw.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
        let len = header.data_len as usize;
        let mut data = Vec::with_capacity(len);
        r.take(len as u64).read_to_end(&mut data)?;
        if data.len() != len {
            return Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("packet data: {} of {len} bytes before the end of the stream", data.len()),
            )));
        }
        Ok(Packet { header, crcs, data })
    }

    /// Writes the packet (blocking; no flush): the header and CRCs from one small buffer, the
    /// data from its own, without copying it into a frame first.
    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        assert_eq!(self.header.data_len as usize, self.data.len(), "packet data length");
        assert_eq!(self.header.crc_count(), self.crcs.len(), "packet checksum count");
        let mut head = Writer { buf: Vec::with_capacity(PacketHeader::LEN + 4 * self.crcs.len()) };
        self.header.encode(&mut head);
        for c in &self.crcs {
            head.u32(*c);
        }
        let mut parts = [head.buf.as_slice(), self.data.as_slice()];
        while !parts[0].is_empty() || !parts[1].is_empty() {
            let n = w.write_vectored(&[IoSlice::new(parts[0]), IoSlice::new(parts[1])])?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            let first = n.min(parts[0].len());
            parts[0] = &parts[0][first..];
            parts[1] = &parts[1][n - first..];
        }
        Ok(())
    }
}

impl Message for Packet {
    const MIN_WIRE: usize = PacketHeader::LEN;

    /// Panics if the packet is inconsistent (data length or CRC count not the header's): only
    /// [`Packet::build`] and decoding make packets that are sent.
    fn encode(&self, w: &mut Writer) {
        assert_eq!(self.header.data_len as usize, self.data.len(), "packet data length");
        assert_eq!(self.header.crc_count(), self.crcs.len(), "packet checksum count");
        self.header.encode(w);
        for c in &self.crcs {
            w.u32(*c);
        }
        w.buf.extend_from_slice(&self.data);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = PacketHeader::decode(r)?;
        Packet::decode_after(header, r)
    }
}

/// The largest number of statuses an ack carries (its count is one byte).
pub const MAX_ACK_STATUSES: usize = u8::MAX as usize;

/// An acknowledgement, flowing upstream: the replying node's status first, then those of the
/// nodes after it in the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineAck {
    pub seqno: u64,
    pub statuses: Vec<Status>,
}

impl PipelineAck {
    /// Every node succeeded.
    pub fn is_success(&self) -> bool {
        self.statuses.iter().all(|s| s.is_success())
    }

    /// The position (0 = the replying node) of the first node that failed.
    pub fn first_failed(&self) -> Option<usize> {
        self.statuses.iter().position(|s| !s.is_success())
    }

    /// Reads one ack (blocking).
    pub fn read_from(r: &mut impl Read) -> Result<PipelineAck, FrameError> {
        let mut head = [0u8; 9];
        r.read_exact(&mut head)?;
        let mut buf = head.to_vec();
        buf.resize(9 + head[8] as usize, 0);
        r.read_exact(&mut buf[9..])?;
        Ok(PipelineAck::from_bytes(&buf)?)
    }

    /// Writes the ack (blocking; no flush).
    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.to_bytes())
    }
}

impl Message for PipelineAck {
    const MIN_WIRE: usize = 9;

    /// Panics on more than [`MAX_ACK_STATUSES`] statuses (no pipeline is that long).
    fn encode(&self, w: &mut Writer) {
        w.u64(self.seqno);
        w.u8(u8::try_from(self.statuses.len()).expect("at most 255 statuses in an ack"));
        for s in &self.statuses {
            s.encode(w);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let seqno = r.u64()?;
        let n = r.u8()? as usize;
        let statuses = (0..n).map(|_| Status::decode(r)).collect::<Result<_, _>>()?;
        Ok(PipelineAck { seqno, statuses })
    }
}
