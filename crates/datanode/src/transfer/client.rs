//! Blocking client side of the data port: what the file system client library and a
//! replicating DataNode speak. Small on purpose: one connection per call, packets sent one at
//! a time, each acknowledged before the next (a streaming client keeps a window of packets in
//! flight over [`WriteStream`] instead).

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use dfs_proto::transfer::{
    Op, OpResponse, Packet, PacketHeader, PipelineAck, Status, WriteStage, CHUNK_LEN, MAX_PACKET_DATA_LEN,
};
use dfs_proto::{DatanodeInfo, ExtendedBlock, FrameError};

use super::set_timeouts;
use crate::Store;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Wire(#[from] FrameError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The op (or a read, mid-stream) was answered with a failure.
    #[error("refused with {status:?}: {message}")]
    Refused { status: Status, message: String },
    /// A packet was not acknowledged by every node: `ack.first_failed()` names the first
    /// node (0 = the one this client talks to) that failed.
    #[error("packet {} acknowledged {:?}", .ack.seqno, .ack.statuses)]
    Failed { ack: PipelineAck, acked_len: u64 },
    /// The server broke the protocol (a packet out of order, a bad checksum on arrival).
    #[error("bad reply: {0}")]
    BadReply(String),
    #[error("local store: {0}")]
    Store(#[from] crate::StoreError),
}

/// A `WriteBlock` connection after its op response.
pub struct WriteStream {
    stream: TcpStream,
}

impl WriteStream {
    /// Connects, sends `op` and reads its op response; a failure status is `Refused`.
    pub fn open(addr: SocketAddr, op: &Op, timeout: Duration) -> Result<WriteStream, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        set_timeouts(&stream, timeout)?;
        (&stream).write_all(&op.to_frame()?)?;
        let resp = OpResponse::read_from(&mut &stream)?;
        if !resp.status.is_success() {
            return Err(ClientError::Refused { status: resp.status, message: resp.message });
        }
        Ok(WriteStream { stream })
    }

    pub fn send(&mut self, p: &Packet) -> Result<(), ClientError> {
        p.write_to(&mut self.stream)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Sends raw bytes (for tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    pub fn recv_ack(&mut self) -> Result<PipelineAck, ClientError> {
        Ok(PipelineAck::read_from(&mut self.stream)?)
    }
}

/// The `WriteBlock` op of a client's new block through `pipeline` (the first node is the
/// one connected to).
pub fn create_op(block: ExtendedBlock, pipeline: &[DatanodeInfo], client_name: &str) -> Op {
    Op::WriteBlock {
        block,
        new_gs: block.gs,
        targets: pipeline.iter().skip(1).cloned().collect(),
        client_name: client_name.to_string(),
        stage: WriteStage::Create,
        namenode_epoch: 0,
    }
}

/// Writes `data` as block `block` through `pipeline` in packets of `packet_len` bytes (the
/// last data packet synced, then an empty `last` packet). Returns the bytes every node
/// acknowledged; a failed ack is `Failed` with what was acknowledged before it.
pub fn write_block(
    pipeline: &[DatanodeInfo],
    block: ExtendedBlock,
    data: &[u8],
    packet_len: usize,
    timeout: Duration,
) -> Result<u64, ClientError> {
    let first = pipeline.first().ok_or_else(|| ClientError::BadReply("empty pipeline".into()))?;
    let addr = resolve(&first.data_addr)?;
    let mut w = WriteStream::open(addr, &create_op(block, pipeline, "herd-client"), timeout)?;
    send_all(&mut w, 0, data, packet_len)
}

/// Sends `data` from block offset `offset` as packets (seqno from 0), then the `last` packet,
/// each acknowledged before the next. Returns the acknowledged end offset.
pub fn send_all(w: &mut WriteStream, offset: u64, data: &[u8], packet_len: usize) -> Result<u64, ClientError> {
    let packet_len = packet_len.clamp(1, MAX_PACKET_DATA_LEN);
    let mut acked = offset;
    let mut pieces: Vec<&[u8]> = data.chunks(packet_len).collect();
    pieces.push(&[]);
    let n = pieces.len();
    for (i, piece) in pieces.into_iter().enumerate() {
        let (seqno, last, sync) = (i as u64, i + 1 == n, i + 2 == n);
        w.send(&Packet::build(seqno, acked, piece.to_vec(), last, sync))?;
        let ack = w.recv_ack()?;
        if ack.seqno != seqno || !ack.is_success() {
            return Err(ClientError::Failed { ack, acked_len: acked });
        }
        acked += piece.len() as u64;
    }
    Ok(acked)
}

/// Reads `[offset, offset + len)` of block `block` from the DataNode at `addr`, checking every
/// packet's CRCs, and returns exactly those bytes.
pub fn read_block(
    addr: SocketAddr,
    block: ExtendedBlock,
    offset: u64,
    len: u64,
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    let op = Op::ReadBlock { block, offset, len, verify: true };
    let (first, data) = read_stream(addr, &op, timeout)?;
    let skip = usize::try_from(offset - first).map_err(|_| ClientError::BadReply("offset".into()))?;
    let want = usize::try_from(len).map_err(|_| ClientError::BadReply("length".into()))?;
    if first > offset || data.len() < skip + want {
        return Err(ClientError::BadReply(format!("{} bytes from {first} do not cover {offset}+{len}", data.len())));
    }
    Ok(data[skip..skip + want].to_vec())
}

/// Sends `op` (a read or copy) and collects its packets: (first_chunk_offset, bytes from it).
/// A trailer after a short stream is `Refused` with its status.
pub fn read_stream(addr: SocketAddr, op: &Op, timeout: Duration) -> Result<(u64, Vec<u8>), ClientError> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    set_timeouts(&s, timeout)?;
    s.write_all(&op.to_frame()?)?;
    let resp = OpResponse::read_from(&mut s)?;
    if !resp.status.is_success() {
        return Err(ClientError::Refused { status: resp.status, message: resp.message });
    }
    let first = resp.first_chunk_offset;
    if first % CHUNK_LEN as u64 != 0 {
        return Err(ClientError::BadReply(format!("first_chunk_offset {first} not chunk-aligned")));
    }
    let mut data = Vec::new();
    let mut seqno = 0;
    loop {
        let p = Packet::read_from(&mut s)?;
        let at = first + data.len() as u64;
        if p.header.seqno != seqno || p.header.offset_in_block != at {
            return Err(ClientError::BadReply(format!(
                "packet {} at {}, expected {seqno} at {at}",
                p.header.seqno, p.header.offset_in_block
            )));
        }
        if let Some(bad) = p.verify() {
            return Err(ClientError::BadReply(format!("checksum mismatch at offset {bad}")));
        }
        data.extend_from_slice(&p.data);
        if p.header.last {
            break;
        }
        seqno += 1;
    }
    // A short stream is followed by a trailer saying why; a full one by nothing. The caller
    // knows which it asked for, but reading a trailer if one is there is cheaper than passing
    // the range in: the server closes after the stream, so EOF means none.
    match OpResponse::read_from(&mut s) {
        Ok(t) if !t.status.is_success() => Err(ClientError::Refused { status: t.status, message: t.message }),
        Ok(_) => Err(ClientError::BadReply("a success trailer".into())),
        Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok((first, data)),
        Err(e) => Err(e.into()),
    }
}

/// Replication, source side: sends the finalized replica `block` of `store` to `target` as a
/// `WriteBlock` of stage `Transfer` carrying the NameNode epoch of the command behind it.
pub fn transfer_block(
    store: &Store,
    block: ExtendedBlock,
    target: &DatanodeInfo,
    namenode_epoch: i64,
    timeout: Duration,
) -> Result<u64, ClientError> {
    transfer_block_pipeline(store, block, std::slice::from_ref(target), namenode_epoch, timeout)
}

/// [`transfer_block`] through a pipeline of targets: sent to the first, which forwards it to
/// the rest in order (a NameNode's `Transfer` command names several targets at once).
pub fn transfer_block_pipeline(
    store: &Store,
    block: ExtendedBlock,
    targets: &[DatanodeInfo],
    namenode_epoch: i64,
    timeout: Duration,
) -> Result<u64, ClientError> {
    let first = targets.first().ok_or_else(|| ClientError::BadReply("no targets".into()))?;
    let reader = store.open_reader(block.id, block.gs)?;
    let length = reader.length()?;
    let op = Op::WriteBlock {
        block: ExtendedBlock { len: length, ..block },
        new_gs: block.gs,
        targets: targets[1..].to_vec(),
        client_name: String::new(),
        stage: WriteStage::Transfer,
        namenode_epoch,
    };
    let mut w = WriteStream::open(resolve(&first.data_addr)?, &op, timeout)?;
    let mut seqno = 0;
    let mut at = 0;
    for piece in reader.chunks(0, length) {
        let c = piece?;
        // The chunks start at 0 and are chunk-aligned, so the store's CRCs are the packet's:
        // checked on disk by the store, sent unchanged, checked again by the target.
        let header =
            PacketHeader { seqno, offset_in_block: at, last: false, sync: false, data_len: c.data.len() as u32 };
        let p = Packet { header, crcs: c.crcs, data: c.data };
        at += p.data.len() as u64;
        w.send(&p)?;
        let ack = w.recv_ack()?;
        if ack.seqno != seqno || !ack.is_success() {
            return Err(ClientError::Failed { ack, acked_len: at - p.data.len() as u64 });
        }
        seqno += 1;
    }
    w.send(&Packet::build(seqno, at, Vec::new(), true, true))?;
    let ack = w.recv_ack()?;
    if ack.seqno != seqno || !ack.is_success() {
        return Err(ClientError::Failed { ack, acked_len: at });
    }
    Ok(at)
}

fn resolve(addr: &str) -> Result<SocketAddr, ClientError> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()?.next().ok_or_else(|| ClientError::BadReply(format!("{addr}: no address")))
}
