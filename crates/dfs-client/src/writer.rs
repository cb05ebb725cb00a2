//! [`FileWriter`]: a file open for writing (HDFS's `DFSOutputStream` and `DataStreamer`).
//!
//! ```text
//! write(bytes) -> Packetizer (256 KiB packets, cut at block ends)
//!   first packet of a block: AddBlock(previous, excluded) -> pipeline -> WriteBlock(Create)
//!     (set-up failure: AbandonBlock, exclude the node named, AddBlock again; bounded)
//!   packet -> BlockStream (window of unacknowledged packets; an ack thread)
//!   block full: the `last` packet, wait for every ack; the block is `previous` from now on
//! pipeline broken (failed ack, or the first node's connection) -> plan::decide:
//!   Recover: UpdateBlockForPipeline -> new stamp; WriteBlock(Recovery, acked length) on the
//!     survivors; resend the unacknowledged packets, then `last`: the block ends there;
//!     UpdatePipeline(old, new, survivors); the file goes on in a new block
//!   Reallocate (nothing acknowledged): AbandonBlock, resend everything to a new block
//!   Fail: the write fails (the only node died holding acknowledged data, or too many breaks)
//! close: last packet, `last`, Complete(last block) until the NameNode says closed (bounded)
//! ```
//!
//! Ending a recovered block early replaces HDFS's transfer of the partial replica to a
//! replacement DataNode: the short block stays under-replicated until the NameNode's
//! replication monitor copies it, and the rest of the file is written at full replication.

mod plan;
mod stream;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_proto::client_nn::FileStatus;
use dfs_proto::transfer::{Op, WriteStage};
use dfs_proto::{ClientRequest, ClientResponse, DatanodeInfo, ExtendedBlock};

use crate::client::{unexpected, CreateOptions, Inner};
use crate::error::{DfsError, Result};
use crate::lease::{LeaseGuard, LeaseRenewer};
use plan::{decide, Break, Cut, Limits, Packetizer, Recovery};
use stream::{BlockStream, Leftover};

/// Blocks whose last acks may be outstanding at once while the next block streams.
const FINISHING_MAX: usize = 2;

/// A file open for writing. Bytes are acknowledged by the DataNodes as they stream;
/// [`FileWriter::close`] waits for the last acknowledgement and closes the file on the
/// NameNode. Dropping a writer without closing it abandons the stream: the file stays open
/// until its lease expires and the NameNode recovers it.
pub struct FileWriter {
    inner: Arc<Inner>,
    path: String,
    status: FileStatus,
    packer: Packetizer,
    /// The block being written, if any.
    current: Option<Current>,
    /// The file's last block as the NameNode should learn it (final length): `previous` of
    /// the next AddBlock, `last` of Complete.
    last_block: Option<ExtendedBlock>,
    /// DataNodes (ids) this writer found dead; never offered again.
    excluded: Vec<String>,
    written: u64,
    closed: bool,
    /// Set once a write failed: every later call fails the same way.
    failed: Option<String>,
    /// Blocks whose data every node acknowledged and whose `last` packet (fsync, finalize) is
    /// still being acknowledged, while the next block streams: the disk flushes one block
    /// while the network carries the next. At most [`FINISHING_MAX`]; all are settled before
    /// `complete`.
    finishing: Vec<(ExtendedBlock, BlockStream)>,
    _lease: LeaseGuard,
}

struct Current {
    stream: BlockStream,
    /// The block as the NameNode knows it (its stamp changes only with UpdatePipeline).
    block: ExtendedBlock,
    recoveries: usize,
    /// False for an append's reopened block: it holds older data and is never abandoned.
    may_abandon: bool,
}

impl FileWriter {
    pub(crate) fn create(inner: Arc<Inner>, path: &str, opts: CreateOptions) -> Result<FileWriter> {
        let (replication, block_size) = match (opts.replication, opts.block_size) {
            (Some(r), Some(b)) => (r, b),
            (r, b) => {
                let d = inner.server_defaults()?;
                (r.unwrap_or(d.replication), b.unwrap_or(d.block_size))
            }
        };
        let req = ClientRequest::Create {
            path: path.to_string(),
            perm: opts.perm,
            overwrite: opts.overwrite,
            create_parent: opts.create_parent,
            replication,
            block_size,
            client_name: inner.client_name.clone(),
        };
        let status = match inner.call(req)? {
            ClientResponse::Status { status } => status,
            other => return Err(unexpected("create", other)),
        };
        let lease = LeaseRenewer::acquire(&inner);
        Ok(FileWriter::new(inner, path, status, 0, None, lease))
    }

    pub(crate) fn append(inner: Arc<Inner>, path: &str) -> Result<FileWriter> {
        let req =
            ClientRequest::Append { path: path.to_string(), client_name: inner.client_name.clone(), new_block: false };
        let (status, last) = match inner.call(req)? {
            ClientResponse::Appended { status, last } => (status, last),
            other => return Err(unexpected("append", other)),
        };
        let lease = LeaseRenewer::acquire(&inner);
        match last {
            None => {
                // The last block is full (or there is none): the next block follows it.
                let lbs = inner.block_locations(path, 0, u64::MAX >> 1)?;
                let previous = lbs.last_block.map(|b| b.block).or_else(|| lbs.blocks.last().map(|b| b.block));
                Ok(FileWriter::new(inner, path, status, 0, previous, lease))
            }
            Some(lb) => {
                let mut w = FileWriter::new(inner, path, status, lb.block.len, None, lease);
                w.reopen(lb.block, lb.locations)?;
                Ok(w)
            }
        }
    }

    fn new(
        inner: Arc<Inner>,
        path: &str,
        status: FileStatus,
        offset: u64,
        last_block: Option<ExtendedBlock>,
        lease: LeaseGuard,
    ) -> FileWriter {
        let block_size = status.block_size.max(1);
        let packet_len = inner.config.packet_len.clamp(1, dfs_proto::transfer::MAX_PACKET_DATA_LEN);
        FileWriter {
            inner,
            path: path.to_string(),
            status,
            packer: Packetizer::new(block_size, packet_len, offset),
            current: None,
            last_block,
            excluded: Vec::new(),
            written: 0,
            closed: false,
            failed: None,
            finishing: Vec::new(),
            _lease: lease,
        }
    }

    /// The file as `create` or `append` returned it.
    pub fn status(&self) -> &FileStatus {
        &self.status
    }

    /// Bytes written through this writer so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Sends what is buffered and waits until every node acknowledged it (fsynced): a reader
    /// that opens the file after this sees those bytes.
    pub fn hflush(&mut self) -> Result<()> {
        self.check_usable()?;
        let r = self.hflush_inner();
        self.note(r)
    }

    fn hflush_inner(&mut self) -> Result<()> {
        if let Some(cut) = self.packer.flush(true) {
            self.send_cut(cut)?;
        }
        // A recovery either ends the block (all acknowledged) or moves its packets to a new
        // block, whose acks are then waited for; recoveries are bounded.
        while let Some(c) = &self.current {
            match c.stream.wait_acked() {
                Ok(()) => return Ok(()),
                Err(brk) => self.recover(brk)?,
            }
        }
        Ok(())
    }

    /// Sends the rest, waits for every acknowledgement, and closes the file on the NameNode.
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        self.check_usable()?;
        let r = self.finish_data();
        self.note(r)?;
        self.closed = true;
        self.complete()
    }

    fn finish_data(&mut self) -> Result<()> {
        if let Some(cut) = self.packer.flush(true) {
            self.send_cut(cut)?;
        }
        self.end_block()?;
        for (b, s) in std::mem::take(&mut self.finishing) {
            self.settle(b, s)?;
        }
        Ok(())
    }

    /// Complete, retried while the NameNode has no finalized replica of the last block yet.
    fn complete(&mut self) -> Result<()> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            let req = ClientRequest::Complete {
                path: self.path.clone(),
                client_name: self.inner.client_name.clone(),
                last: self.last_block,
            };
            if self.inner.call_bool("complete", req)? {
                return Ok(());
            }
            if started.elapsed() + pause > self.inner.config.complete_wait {
                return Err(DfsError::NotClosed { path: self.path.clone() });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(400));
        }
    }

    fn check_usable(&self) -> Result<()> {
        if let Some(reason) = &self.failed {
            return Err(DfsError::WriteFailed { path: self.path.clone(), reason: reason.clone() });
        }
        if self.closed {
            return Err(DfsError::Invalid(format!("{} is closed", self.path)));
        }
        Ok(())
    }

    /// Remembers a failure: the stream is gone, later calls fail the same way.
    fn note<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
            self.current = None;
        }
        r
    }

    fn write_bytes(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let (n, cut) = self.packer.push(data);
            data = &data[n..];
            self.written += n as u64;
            if let Some(cut) = cut {
                self.send_cut(cut)?;
            }
        }
        Ok(())
    }

    /// Sends one packet, starting a block first if none is being written; ends the block if
    /// the packet fills it.
    fn send_cut(&mut self, cut: Cut) -> Result<()> {
        if self.current.is_none() {
            debug_assert_eq!(cut.offset, 0, "a new block starts at 0");
            self.current = Some(self.new_block()?);
        }
        let c = self.current.as_mut().expect("a block is being written");
        if let Err(brk) = c.stream.send(cut.offset, cut.data, cut.sync, false) {
            self.recover(brk)?;
        }
        if cut.ends_block {
            self.end_block()?;
        }
        Ok(())
    }

    /// Ends the current block (if any): waits until every node acknowledged its data, then
    /// sends its `last` packet and moves on without waiting for that one's acks (see
    /// `finishing`); a failure before the `last` packet is recovered as any other.
    fn end_block(&mut self) -> Result<()> {
        // A recovery ends the block itself, or moves its packets to a new block that still
        // needs its `last` packet; recoveries are bounded.
        while let Some(c) = self.current.as_mut() {
            if let Err(brk) = c.stream.wait_acked() {
                self.recover(brk)?;
                continue;
            }
            let end = c.stream.sent_end;
            if let Err(brk) = c.stream.send(end, Vec::new(), true, true) {
                self.recover(brk)?;
                continue;
            }
            let c = self.current.take().expect("checked");
            let block = ExtendedBlock { len: end, ..c.block };
            self.last_block = Some(block);
            self.finishing.push((block, c.stream));
            while self.finishing.len() > FINISHING_MAX {
                let (b, s) = self.finishing.remove(0);
                self.settle(b, s)?;
            }
        }
        Ok(())
    }

    /// Waits for a finishing block's last acks. If some node failed to finalize it, the block
    /// is still good if another did: the NameNode then lists a finalized replica of it (and
    /// its replication monitor copies it back to full replication); if none did, the write
    /// fails.
    fn settle(&self, block: ExtendedBlock, stream: BlockStream) -> Result<()> {
        let Err(brk) = stream.wait_acked() else { return Ok(()) };
        drop(stream);
        let started = Instant::now();
        loop {
            let lbs = self.inner.block_locations(&self.path, 0, u64::MAX >> 1)?;
            let listed = lbs.blocks.iter().chain(lbs.last_block.iter()).any(|lb| {
                lb.block.id == block.id && lb.block.gs == block.gs && !lb.locations.is_empty() && !lb.corrupt
            });
            if listed {
                tracing::info!(
                    block = block.id,
                    "the block's last packet failed at some node ({brk:?}); another finalized it"
                );
                return Ok(());
            }
            if started.elapsed() > self.inner.config.complete_wait {
                return Err(DfsError::WriteFailed {
                    path: self.path.clone(),
                    reason: format!("block {} was finalized by no DataNode ({brk:?})", block.id),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// AddBlock and a pipeline for it, excluding each node that fails to set up (bounded).
    fn new_block(&mut self) -> Result<Current> {
        let attempts = self.inner.config.max_block_attempts.max(1);
        let mut last_reason = String::new();
        for _ in 0..attempts {
            let req = ClientRequest::AddBlock {
                path: self.path.clone(),
                client_name: self.inner.client_name.clone(),
                previous: self.last_block,
                excluded: self.excluded.clone(),
            };
            let lb = match self.inner.call(req)? {
                ClientResponse::Located { block } => block,
                other => return Err(unexpected("addBlock", other)),
            };
            if lb.locations.is_empty() {
                self.abandon(lb.block);
                break;
            }
            let op = Op::WriteBlock {
                block: lb.block,
                new_gs: lb.block.gs,
                targets: lb.locations[1..].to_vec(),
                client_name: self.inner.client_name.clone(),
                stage: WriteStage::Create,
                namenode_epoch: 0,
            };
            let cfg = &self.inner.config;
            match BlockStream::open(lb.locations.clone(), &op, 0, cfg.datanode_timeout, cfg.window_packets) {
                Ok(stream) => {
                    let block = ExtendedBlock { len: 0, ..lb.block };
                    return Ok(Current { stream, block, recoveries: 0, may_abandon: true });
                }
                Err(e) => {
                    let bad = &lb.locations[e.bad.min(lb.locations.len() - 1)];
                    tracing::warn!(path = %self.path, block = lb.block.id, node = %bad.id, "pipeline set-up failed: {}", e.reason);
                    last_reason = e.reason;
                    self.exclude(bad);
                    self.abandon(lb.block);
                }
            }
        }
        tracing::warn!(path = %self.path, "no pipeline for a new block: {last_reason}");
        Err(DfsError::NoDatanodes { path: self.path.clone(), excluded: self.excluded.clone() })
    }

    /// An append's partial last block: a new stamp, then the pipeline reopens the finalized
    /// replicas under it.
    fn reopen(&mut self, block: ExtendedBlock, nodes: Vec<DatanodeInfo>) -> Result<()> {
        if nodes.is_empty() {
            return Err(DfsError::WriteFailed {
                path: self.path.clone(),
                reason: format!("no replica of the last block {} to append to", block.id),
            });
        }
        let new_gs = self.new_stamp(block)?;
        let op = Op::WriteBlock {
            block,
            new_gs,
            targets: nodes[1..].to_vec(),
            client_name: self.inner.client_name.clone(),
            stage: WriteStage::Append,
            namenode_epoch: 0,
        };
        let cfg = &self.inner.config;
        let stream = BlockStream::open(nodes.clone(), &op, block.len, cfg.datanode_timeout, cfg.window_packets)
            .map_err(|e| DfsError::WriteFailed {
                path: self.path.clone(),
                reason: format!("reopening block {} for append on {}: {}", block.id, nodes[e.bad].data_addr, e.reason),
            })?;
        let new_block = ExtendedBlock { gs: new_gs, ..block };
        self.update_pipeline(block, new_block, &nodes)?;
        self.current = Some(Current { stream, block: new_block, recoveries: 0, may_abandon: false });
        Ok(())
    }

    /// Pipeline recovery of the current block (see the module documentation). On success the
    /// block has ended (or, reallocated, goes on in a new block), and writing can go on.
    fn recover(&mut self, mut brk: Break) -> Result<()> {
        let max_recoveries = self.inner.config.max_recoveries_per_block;
        loop {
            let c = self.current.take().expect("a block is being written");
            let lim = Limits { max_recoveries, may_abandon: c.may_abandon };
            let Current { stream, block, recoveries, may_abandon } = c;
            let pipeline = stream.pipeline.clone();
            let Leftover { acked_end, unacked } = stream.finish();
            let plan = decide(pipeline.len(), brk, acked_end, recoveries, lim);
            tracing::warn!(path = %self.path, block = block.id, ?brk, acked_end, ?plan, "pipeline broken");
            match plan {
                Recovery::Fail { bad, reason } => {
                    self.exclude(&pipeline[bad]);
                    return Err(DfsError::WriteFailed {
                        path: self.path.clone(),
                        reason: format!("block {}: {reason} (last failed: {})", block.id, pipeline[bad].data_addr),
                    });
                }
                Recovery::Reallocate { bad } => {
                    self.exclude(&pipeline[bad]);
                    self.abandon(block);
                    let mut fresh = self.new_block()?;
                    fresh.recoveries = recoveries + 1;
                    self.current = Some(fresh);
                    match self.resend(unacked) {
                        Ok(()) => return Ok(()),
                        Err(b) => brk = b,
                    }
                }
                Recovery::Recover { bad, survivors } => {
                    self.exclude(&pipeline[bad]);
                    let mut nodes: Vec<DatanodeInfo> = survivors.iter().map(|&i| pipeline[i].clone()).collect();
                    let old = ExtendedBlock { len: acked_end, ..block };
                    let stream = self.recovery_stream(old, &mut nodes, recoveries)?;
                    let new_gs = stream.1;
                    self.current = Some(Current { stream: stream.0, block, recoveries: recoveries + 1, may_abandon });
                    // Resend, then end the block here: the survivors finalize it.
                    let r = self.resend(unacked).and_then(|()| {
                        let c = self.current.as_mut().expect("set above");
                        let end = c.stream.sent_end;
                        c.stream.send(end, Vec::new(), true, true)?;
                        c.stream.wait_acked()
                    });
                    match r {
                        Ok(()) => {
                            let c = self.current.take().expect("set above");
                            let end = c.stream.sent_end;
                            let new_block = ExtendedBlock { gs: new_gs, len: end, ..block };
                            self.update_pipeline(old, new_block, &nodes)?;
                            self.last_block = Some(new_block);
                            self.packer.restart_block();
                            return Ok(());
                        }
                        Err(b) => {
                            // The NameNode still knows the old stamp; a further recovery
                            // starts from the same block with the survivors' pipeline.
                            brk = b;
                        }
                    }
                }
            }
        }
    }

    /// A new stamp and a Recovery pipeline on `nodes`; a node that fails to set up is dropped
    /// and the next tried (bounded by the nodes).
    fn recovery_stream(
        &mut self,
        old: ExtendedBlock,
        nodes: &mut Vec<DatanodeInfo>,
        recoveries: usize,
    ) -> Result<(BlockStream, u64)> {
        let mut why = String::new();
        while !nodes.is_empty() {
            let new_gs = self.new_stamp(old)?;
            let op = Op::WriteBlock {
                block: old,
                new_gs,
                targets: nodes[1..].to_vec(),
                client_name: self.inner.client_name.clone(),
                stage: WriteStage::Recovery,
                namenode_epoch: 0,
            };
            let cfg = &self.inner.config;
            match BlockStream::open(nodes.clone(), &op, old.len, cfg.datanode_timeout, cfg.window_packets) {
                Ok(s) => return Ok((s, new_gs)),
                Err(e) => {
                    let bad = nodes.remove(e.bad.min(nodes.len() - 1));
                    tracing::warn!(path = %self.path, block = old.id, node = %bad.id, "recovery set-up failed: {}", e.reason);
                    why = e.reason;
                    self.exclude(&bad);
                }
            }
        }
        Err(DfsError::WriteFailed {
            path: self.path.clone(),
            reason: format!(
                "block {}: no DataNode left to recover it on after {} recoveries ({why})",
                old.id,
                recoveries + 1
            ),
        })
    }

    /// Sends packets left over by a broken stream, renumbered, at their offsets. A `last`
    /// packet among them is dropped: the caller decides how the block ends.
    fn resend(&mut self, packets: Vec<dfs_proto::Packet>) -> Result<(), Break> {
        let c = self.current.as_mut().expect("a block is being written");
        for p in packets {
            if p.header.last {
                continue;
            }
            c.stream.send(p.header.offset_in_block, p.data, p.header.sync, false)?;
        }
        Ok(())
    }

    fn new_stamp(&self, block: ExtendedBlock) -> Result<u64> {
        let req = ClientRequest::UpdateBlockForPipeline { block, client_name: self.inner.client_name.clone() };
        match self.inner.call(req)? {
            ClientResponse::Block { block } => Ok(block.gs),
            other => Err(unexpected("updateBlockForPipeline", other)),
        }
    }

    fn update_pipeline(&self, old: ExtendedBlock, new: ExtendedBlock, nodes: &[DatanodeInfo]) -> Result<()> {
        let req = ClientRequest::UpdatePipeline {
            client_name: self.inner.client_name.clone(),
            old_block: old,
            new_block: new,
            new_nodes: nodes.iter().map(|n| n.id.clone()).collect(),
        };
        self.inner.call_done("updatePipeline", req)
    }

    /// Gives up a block AddBlock allocated; a failure only leaves it for the NameNode to clean.
    fn abandon(&self, block: ExtendedBlock) {
        let req =
            ClientRequest::AbandonBlock { path: self.path.clone(), client_name: self.inner.client_name.clone(), block };
        if let Err(e) = self.inner.call_done("abandonBlock", req) {
            tracing::warn!(path = %self.path, block = block.id, "abandoning the block: {e}");
        }
    }

    fn exclude(&mut self, node: &DatanodeInfo) {
        if !self.excluded.contains(&node.id) {
            self.excluded.push(node.id.clone());
        }
    }
}

impl io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_usable().map_err(to_io)?;
        let r = self.write_bytes(buf);
        self.note(r).map_err(to_io)?;
        Ok(buf.len())
    }

    /// Buffered bytes wait for a full packet; use [`FileWriter::hflush`] to push them out.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn to_io(e: DfsError) -> io::Error {
    match e {
        DfsError::Io(e) => e,
        other => io::Error::other(other),
    }
}
