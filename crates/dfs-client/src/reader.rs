//! [`FileReader`]: a file open for reading (HDFS's `DFSInputStream`).
//!
//! ```text
//! open: GetBlockLocations(whole file)
//! read at pos: the block holding pos -> its locations in order -> ReadBlock(pos.., rest of block)
//!   packets checked (seqno, offset, CRC32C per chunk) and handed out as they arrive
//!   connect error, error op response, I/O error    -> next location
//!   bad CRC, or a trailer saying ErrorChecksum     -> ReportBadBlocks(that replica), next location
//!   every location failed -> GetBlockLocations again, once -> AllReplicasFailed{block}
//! ```
//!
//! A fail-over resumes at the first byte not yet handed out, so the caller never sees a byte
//! twice or a byte that failed its check.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use dfs_proto::client_nn::{BadReplica, LocatedBlocks};
use dfs_proto::transfer::{Op, OpResponse, Packet, Status, CHUNK_LEN};
use dfs_proto::{ClientRequest, DatanodeInfo, ExtendedBlock, FrameError, LocatedBlock};

use crate::client::Inner;
use crate::error::{DfsError, Result};

/// Refetches of one block's locations before a read gives up on it; the n-th waits n - 1
/// times [`REFETCH_PAUSE`] first (0 + 1 + 2 + 3 s at most).
const REFETCHES: u32 = 4;
const REFETCH_PAUSE: Duration = Duration::from_secs(1);

/// A file open for reading; `Read` from the current position, `Seek`, or [`FileReader::read_at`].
pub struct FileReader {
    inner: Arc<Inner>,
    path: String,
    len: u64,
    blocks: Vec<LocatedBlock>,
    pos: u64,
    /// The open replica stream, positioned at `pos`.
    current: Option<BlockRead>,
    /// Per block id: DataNodes (ids) that failed it for this reader.
    failed: HashMap<u64, HashSet<String>>,
    /// How often each block's locations were refetched (at most [`REFETCHES`] times).
    refetched: HashMap<u64, u32>,
}

/// Why one replica could not serve a read.
#[derive(Debug)]
enum ReplicaFailure {
    /// Connection, I/O, a refusal: try another replica.
    Unavailable(String),
    /// The replica's bytes fail their checksum at this block offset: report it, try another.
    Corrupt { offset: u64 },
}

impl FileReader {
    pub(crate) fn open(inner: Arc<Inner>, path: &str) -> Result<FileReader> {
        let (blocks, len) = blocks_in_order(inner.block_locations(path, 0, u64::MAX >> 1)?);
        Ok(FileReader {
            inner,
            path: path.to_string(),
            len,
            blocks,
            pos: 0,
            current: None,
            failed: Default::default(),
            refetched: HashMap::new(),
        })
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads up to `buf.len()` bytes at `offset` without moving the position (HDFS's pread).
    /// Returns 0 only at the end of the file.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let idx = self.block_index(offset)?;
        let lb = &self.blocks[idx];
        let in_block = offset - lb.offset;
        let want = (buf.len() as u64).min(lb.block.len - in_block);
        let mut r = self.open_replica(idx, in_block, want)?;
        let mut done = 0;
        while (done as u64) < want {
            match r.read(&mut buf[done..want as usize]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(f) => {
                    let at = in_block + done as u64;
                    self.replica_failed(idx, &r.node, f);
                    r = self.open_replica(idx, at, want - done as u64)?;
                }
            }
        }
        Ok(done)
    }

    fn block_index(&self, offset: u64) -> Result<usize> {
        self.blocks
            .iter()
            .position(|b| b.offset <= offset && offset < b.offset + b.block.len)
            .ok_or_else(|| DfsError::Invalid(format!("{}: no block holds offset {offset}", self.path)))
    }

    /// Opens a stream of `[offset, offset + len)` of block `idx` on the first replica that
    /// serves it, after at most [`REFETCHES`] refetches of the locations.
    fn open_replica(&mut self, idx: usize, offset: u64, len: u64) -> Result<BlockRead> {
        let timeout = self.inner.config.datanode_timeout;
        let mut errors: Vec<String> = Vec::new();
        loop {
            let lb = self.blocks[idx].clone();
            let failed = self.failed.get(&lb.block.id).cloned().unwrap_or_default();
            for node in lb.locations.iter().filter(|n| !failed.contains(&n.id)) {
                match BlockRead::open(node, lb.block, offset, len, timeout) {
                    Ok(r) => return Ok(r),
                    Err(f) => {
                        errors.push(format!("{}: {f:?}", node.data_addr));
                        self.replica_failed(idx, node, f);
                    }
                }
            }
            if !self.refetch(idx)? {
                let detail = if errors.is_empty() { "no locations".to_string() } else { errors.join("; ") };
                return Err(DfsError::AllReplicasFailed { path: self.path.clone(), block: lb.block.id, detail });
            }
        }
    }

    /// Fetches block `idx`'s locations again, waiting a little longer each time after the
    /// first (HDFS's client does the same, `dfs.client.max.block.acquire.failures`): a
    /// NameNode that just restarted knows no replica until the DataNodes report, which takes
    /// a heartbeat or two. False once the block had its [`REFETCHES`].
    fn refetch(&mut self, idx: usize) -> Result<bool> {
        let lb = &self.blocks[idx];
        let n = self.refetched.entry(lb.block.id).or_insert(0);
        if *n >= REFETCHES {
            return Ok(false);
        }
        std::thread::sleep(REFETCH_PAUSE * *n);
        *n += 1;
        let id = lb.block.id;
        let lbs = self.inner.block_locations(&self.path, lb.offset, lb.block.len.max(1))?;
        let fresh = lbs.blocks.into_iter().chain(lbs.last_block).find(|b| b.block.id == id);
        if let Some(fresh) = fresh {
            // Nodes that failed may have been fixed (a replica rebuilt): try all again.
            self.failed.remove(&id);
            self.blocks[idx] = fresh;
        }
        Ok(true)
    }

    fn replica_failed(&mut self, idx: usize, node: &DatanodeInfo, f: ReplicaFailure) {
        let block = self.blocks[idx].block;
        self.failed.entry(block.id).or_default().insert(node.id.clone());
        match f {
            ReplicaFailure::Unavailable(why) => {
                tracing::warn!(path = %self.path, block = block.id, node = %node.data_addr, "replica unavailable: {why}");
            }
            ReplicaFailure::Corrupt { offset } => {
                tracing::warn!(path = %self.path, block = block.id, node = %node.data_addr, offset, "corrupt replica");
                let bad = BadReplica { block, datanode: node.id.clone() };
                if let Err(e) =
                    self.inner.call_done("reportBadBlocks", ClientRequest::ReportBadBlocks { blocks: vec![bad] })
                {
                    tracing::warn!(block = block.id, "reporting a corrupt replica: {e}");
                }
            }
        }
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.current.is_none() {
                let idx = self.block_index(self.pos)?;
                let lb = &self.blocks[idx];
                let in_block = self.pos - lb.offset;
                let rest = lb.block.len - in_block;
                self.current = Some(self.open_replica(idx, in_block, rest)?.with_index(idx));
            }
            let r = self.current.as_mut().expect("opened above");
            match r.read(buf) {
                Ok(0) => {
                    // The block's range is done: the next read opens the next block.
                    self.current = None;
                    if self.pos >= self.len {
                        return Ok(0);
                    }
                }
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(f) => {
                    let r = self.current.take().expect("checked");
                    self.replica_failed(r.index, &r.node, f);
                }
            }
        }
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf).map_err(|e| match e {
            DfsError::Io(e) => e,
            other => io::Error::other(other),
        })
    }
}

impl Seek for FileReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(o) => Some(o),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        if target != self.pos {
            self.current = None;
            self.pos = target;
        }
        Ok(self.pos)
    }
}

/// A file's blocks by offset, the last block included once (it is listed apart while the
/// file is being written), and the file's length: what the NameNode says, or the end of the
/// last block if that is further.
pub(crate) fn blocks_in_order(lbs: LocatedBlocks) -> (Vec<LocatedBlock>, u64) {
    let mut blocks = lbs.blocks;
    if let Some(last) = lbs.last_block {
        if !blocks.iter().any(|b| b.block.id == last.block.id) {
            blocks.push(last);
        }
    }
    blocks.sort_by_key(|b| b.offset);
    let end = blocks.last().map_or(0, |b| b.offset + b.block.len);
    let len = lbs.file_length.max(end);
    (blocks, len)
}

/// One replica's stream of a range of a block.
struct BlockRead {
    sock: TcpStream,
    node: DatanodeInfo,
    /// The block's index in the reader's list (for the sequential stream).
    index: usize,
    /// Block offset of the next byte to hand out, and the end of the range.
    at: u64,
    end: u64,
    /// Data of the last packet from `at` on.
    pending: Vec<u8>,
    pending_pos: usize,
    /// The next packet's expected seqno and offset.
    seqno: u64,
    next_offset: u64,
    done: bool,
}

impl BlockRead {
    fn open(
        node: &DatanodeInfo,
        block: ExtendedBlock,
        offset: u64,
        len: u64,
        timeout: Duration,
    ) -> Result<BlockRead, ReplicaFailure> {
        let unavailable = |why: String| ReplicaFailure::Unavailable(why);
        let addr = node
            .data_addr
            .to_socket_addrs()
            .map_err(|e| unavailable(format!("resolving: {e}")))?
            .next()
            .ok_or_else(|| unavailable("no address".into()))?;
        let sock = TcpStream::connect_timeout(&addr, timeout).map_err(|e| unavailable(format!("connecting: {e}")))?;
        let setup = || -> Result<OpResponse, FrameError> {
            sock.set_read_timeout(Some(timeout))?;
            sock.set_write_timeout(Some(timeout))?;
            sock.set_nodelay(true)?;
            // The client checks every packet's CRCs itself (and reports a corrupt replica), so the
            // DataNode need not check them first.
            let op = Op::ReadBlock { block, offset, len, verify: false };
            (&sock).write_all(&op.to_frame()?)?;
            OpResponse::read_from(&mut &sock)
        };
        let resp = setup().map_err(|e| unavailable(format!("read request: {e}")))?;
        match resp.status {
            Status::Success => {}
            Status::ErrorChecksum => return Err(ReplicaFailure::Corrupt { offset }),
            s => return Err(unavailable(format!("refused with {s:?}: {}", resp.message))),
        }
        let first = resp.first_chunk_offset;
        if first > offset || first % CHUNK_LEN as u64 != 0 || offset - first >= CHUNK_LEN as u64 {
            return Err(unavailable(format!("first chunk offset {first} for a read at {offset}")));
        }
        Ok(BlockRead {
            sock,
            node: node.clone(),
            index: 0,
            at: offset,
            end: offset + len,
            pending: Vec::new(),
            pending_pos: 0,
            seqno: 0,
            next_offset: first,
            done: len == 0,
        })
    }

    fn with_index(mut self, index: usize) -> BlockRead {
        self.index = index;
        self
    }

    /// Hands out checked bytes of the range; 0 once it is all out.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReplicaFailure> {
        while self.pending_pos == self.pending.len() {
            // Past the range, the `last` packet is still read: the stream ends cleanly.
            if self.done {
                return Ok(0);
            }
            self.next_packet()?;
        }
        let n = buf.len().min(self.pending.len() - self.pending_pos);
        buf[..n].copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
        self.pending_pos += n;
        self.at += n as u64;
        Ok(n)
    }

    fn next_packet(&mut self) -> Result<(), ReplicaFailure> {
        let unavailable = |why: String| ReplicaFailure::Unavailable(why);
        let p = Packet::read_from(&mut self.sock).map_err(|e| unavailable(format!("reading a packet: {e}")))?;
        let h = p.header;
        if h.seqno != self.seqno || h.offset_in_block != self.next_offset {
            return Err(unavailable(format!(
                "packet {} at {}, expected {} at {}",
                h.seqno, h.offset_in_block, self.seqno, self.next_offset
            )));
        }
        if let Some(bad) = p.verify() {
            return Err(ReplicaFailure::Corrupt { offset: bad });
        }
        self.seqno += 1;
        self.next_offset += p.data.len() as u64;
        if h.last {
            self.done = true;
            if self.next_offset < self.end {
                // A short stream: a trailer says why.
                return Err(match OpResponse::read_from(&mut self.sock) {
                    Ok(t) if t.status == Status::ErrorChecksum => ReplicaFailure::Corrupt { offset: self.next_offset },
                    Ok(t) => {
                        unavailable(format!("stream ended at {}: {:?}: {}", self.next_offset, t.status, t.message))
                    }
                    Err(e) => unavailable(format!("stream ended at {}: {e}", self.next_offset)),
                });
            }
            let _ = self.sock.shutdown(Shutdown::Both);
            self.pending.clear();
            self.pending_pos = 0;
            return Ok(());
        }
        // Keep the part of the packet inside [at, end).
        let start = h.offset_in_block;
        let from = self.at.saturating_sub(start).min(p.data.len() as u64) as usize;
        let to = (self.end.saturating_sub(start)).min(p.data.len() as u64) as usize;
        let mut data = p.data;
        data.truncate(to);
        self.pending = data;
        self.pending_pos = from.min(self.pending.len());
        Ok(())
    }
}
