//! `WriteBlock`: one node of a write pipeline (HDFS's `BlockReceiver` + `PacketResponder`).
//!
//! ```text
//! upstream --op--> [open replica] --op (targets[1..])--> downstream
//! upstream <--op response (Success once downstream's is)--
//! receiver (this thread), per packet: read, check seqno/offset/CRCs, forward, write,
//!     fsync on sync|last, finalize on last, queue (seqno, my status)
//! responder (a second thread), per queued packet, in order: read downstream's ack of it,
//!     ack upstream [mine, downstream...]
//! ```
//!
//! The two threads make the pipeline stream: the receiver reads the next packet while earlier
//! ones are still being acknowledged downstream, so a packet's round trip through the
//! pipeline is paid once per window of packets the client keeps in flight, not once per
//! packet. The queue between them is bounded ([`ACK_QUEUE`]); the receiver never writes to
//! the upstream socket, the responder never reads from it.
//!
//! A setup failure downstream is answered with an `Error` op response whose message starts
//! with `bad link <data_addr>:` naming the first node that could not be set up (HDFS's
//! `firstBadLink`), and the replica just created is dropped. A downstream failure mid-write is
//! acknowledged as `[this node's status, Error]`: the `Error` names the node right after this
//! one, and the connection ends after that ack.

use std::io::Write as _;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver as Queue, SyncSender};

use dfs_proto::transfer::{Op, OpResponse, Packet, PipelineAck, Status, WriteStage};
use dfs_proto::{DatanodeInfo, ExtendedBlock, FrameError};

use super::{close_after_refusal, respond, set_timeouts, status_of, Shared, MAX_PIPELINE_LEN};
use crate::{ReplicaState, ReplicaWriter, StoreError};

/// Packets written and not yet acknowledged upstream, at most (HDFS's responder queue).
pub const ACK_QUEUE: usize = 128;

pub(super) struct WriteOp {
    pub(super) block: ExtendedBlock,
    pub(super) new_gs: u64,
    pub(super) targets: Vec<DatanodeInfo>,
    pub(super) client_name: String,
    pub(super) stage: WriteStage,
    pub(super) namenode_epoch: i64,
}

/// Serves one `WriteBlock`. `Err` is the reason the connection was refused or broken, for the
/// server's one log line; a client that simply went away is `Ok`.
pub(super) fn serve(shared: &Shared, conn: u64, up: &TcpStream, op: WriteOp) -> Result<(), String> {
    let id = op.block.id;
    let ours = shared.config.namenode_epoch.load(Ordering::SeqCst);
    if op.namenode_epoch != 0 && op.namenode_epoch < ours {
        let why = format!("block {id}: namenode epoch {} is older than {ours}", op.namenode_epoch);
        let _ = respond(&mut &*up, Status::ErrorStale, &why, 0);
        return Err(why);
    }
    if op.targets.len() >= MAX_PIPELINE_LEN {
        let why = format!("block {id}: a pipeline of {} more nodes", op.targets.len());
        let _ = respond(&mut &*up, Status::ErrorInvalid, &why, 0);
        return Err(why);
    }
    let store = &shared.store;
    let opened = match op.stage {
        WriteStage::Create => store.create_rbw(id, op.block.gs),
        WriteStage::Append => store.append(id, op.block.gs, op.new_gs),
        WriteStage::Recovery => store.recover_rbw(id, op.new_gs, op.block.len),
        WriteStage::Transfer => store.create_temporary(id, op.block.gs),
    };
    let writer = match opened {
        Ok(w) => w,
        Err(e) => {
            let why = format!("block {id} ({:?}): {e}", op.stage);
            let _ = respond(&mut &*up, status_of(&e), &why, 0);
            return Err(why);
        }
    };

    let mut down = None;
    if let Some(first) = op.targets.first() {
        match connect_downstream(shared, conn, first, &op) {
            Ok(s) => down = Some(s),
            Err(reason) => {
                let why = format!("bad link {}: {reason}", first.data_addr);
                drop_new_replica(shared, writer, op.stage);
                let _ = respond(&mut &*up, Status::Error, &why, 0);
                return Err(format!("block {id}: {why}"));
            }
        }
    }
    if let Err(e) = respond(&mut &*up, Status::Success, "", 0) {
        drop_new_replica(shared, writer, op.stage);
        return Err(format!("block {id}: sending the op response: {e}"));
    }
    tracing::debug!(node = %shared.config.node_id, block = id, client = %op.client_name, "pipeline set up");
    let downstream_len = op.targets.len();
    Receiver { shared, up, down, downstream_len, writer: Some(writer), id, seqno: 0 }.run()
}

/// Connects the next node and sets it up; `Err` says why it failed.
fn connect_downstream(shared: &Shared, conn: u64, next: &DatanodeInfo, op: &WriteOp) -> Result<TcpStream, String> {
    let timeout = shared.config.io_timeout;
    let addr = next
        .data_addr
        .to_socket_addrs()
        .map_err(|e| format!("resolving: {e}"))?
        .next()
        .ok_or_else(|| "no address".to_string())?;
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connecting: {e}"))?;
    shared.register(conn, &s);
    set_timeouts(&s, timeout).map_err(|e| format!("socket options: {e}"))?;
    let forwarded = Op::WriteBlock {
        block: op.block,
        new_gs: op.new_gs,
        targets: op.targets[1..].to_vec(),
        client_name: op.client_name.clone(),
        stage: op.stage,
        namenode_epoch: op.namenode_epoch,
    };
    let frame = forwarded.to_frame().map_err(|e| format!("encoding the op: {e}"))?;
    (&s).write_all(&frame).and_then(|()| (&s).flush()).map_err(|e| format!("sending the op: {e}"))?;
    let resp = OpResponse::read_from(&mut &s).map_err(|e| format!("reading its op response: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("{:?}: {}", resp.status, resp.message));
    }
    Ok(s)
}

/// A replica this op created (and nobody else has seen) is removed when the pipeline cannot
/// be set up, so the client may retry the same block; an append's or recovery's replica stays.
fn drop_new_replica(shared: &Shared, writer: ReplicaWriter, stage: WriteStage) {
    let id = writer.id();
    drop(writer);
    if stage == WriteStage::Create
        && shared.store.get(id).is_some_and(|r| r.state == ReplicaState::Rbw && r.length == 0)
    {
        let _ = shared.store.delete(id);
    }
}

struct Receiver<'a> {
    shared: &'a Shared,
    up: &'a TcpStream,
    down: Option<TcpStream>,
    /// Nodes after this one: the most statuses a downstream ack may carry.
    downstream_len: usize,
    /// `None` once finalized.
    writer: Option<ReplicaWriter>,
    id: u64,
    /// The seqno the next packet must have.
    seqno: u64,
}

/// What the receiver tells the responder about one packet.
enum Queued {
    /// Packet `seqno` was handled: this node's status, whether it went downstream.
    Packet { seqno: u64, mine: Status, forwarded: bool, last: bool },
    /// Packet `seqno` was refused before anything of it was written or forwarded: ack
    /// `[status]` (this node's only) and end.
    Refuse { seqno: u64, status: Status },
}

impl Receiver<'_> {
    fn run(mut self) -> Result<(), String> {
        let id = self.id;
        let down_acks = match self.down.as_ref().map(TcpStream::try_clone).transpose() {
            Ok(d) => d,
            Err(e) => return self.refuse_now(Status::Error, format!("block {id}: cloning the downstream socket: {e}")),
        };
        let (tx, rx) = sync_channel(ACK_QUEUE);
        let broken = AtomicBool::new(false);
        let (shared, up, downstream_len) = (self.shared, self.up, self.downstream_len);
        let (received, responded) = std::thread::scope(|scope| {
            let responder = Responder { shared, up, down: down_acks, downstream_len, id, broken: &broken };
            let handle =
                std::thread::Builder::new().name(format!("dn-ack-{id}")).spawn_scoped(scope, move || responder.run(rx));
            let handle = match handle {
                Ok(h) => h,
                Err(e) => return (Err(format!("block {id}: starting the responder: {e}")), Ok(())),
            };
            let received = self.receive(tx, &broken);
            let responded = handle.join().unwrap_or_else(|_| Err(format!("block {id}: the responder panicked")));
            (received, responded)
        });
        if broken.load(Ordering::SeqCst) {
            // The client may still be sending: read what is in flight before closing, so that
            // it reads the failed ack instead of a reset.
            close_after_refusal(up);
        }
        received.and(responded)
    }

    /// The receiver: reads, checks, forwards and writes packets, queueing each for the
    /// responder. Ends after the last packet, at the first failure, or once the responder
    /// found the pipeline broken.
    fn receive(&mut self, tx: SyncSender<Queued>, broken: &AtomicBool) -> Result<(), String> {
        let id = self.id;
        let mut forwarding = self.down.is_some();
        loop {
            if broken.load(Ordering::SeqCst) {
                return Err(format!("block {id}: pipeline broken before packet {}", self.seqno));
            }
            let refuse = |status, why: String| {
                let _ = tx.send(Queued::Refuse { seqno: self.seqno, status });
                Err(format!("block {id}: {why}"))
            };
            let packet = match Packet::read_from(&mut &*self.up) {
                Ok(p) => p,
                Err(FrameError::Io(e)) => {
                    // The client went away (or timed out): the rbw replica stays for recovery.
                    return Err(format!("block {id}: reading packet {}: {e}", self.seqno));
                }
                Err(e) => return refuse(Status::ErrorInvalid, format!("malformed packet {}: {e}", self.seqno)),
            };
            let h = packet.header;
            let expected_offset = self.writer.as_ref().map(|w| w.length());
            if h.seqno != self.seqno {
                return refuse(Status::ErrorInvalid, format!("packet seqno {}, expected {}", h.seqno, self.seqno));
            }
            if expected_offset != Some(h.offset_in_block) {
                let why = match expected_offset {
                    Some(o) => format!("packet {} at offset {}, expected {o}", h.seqno, h.offset_in_block),
                    None => format!("packet {} after the last packet", h.seqno),
                };
                return refuse(Status::ErrorInvalid, why);
            }
            if let Some(bad) = packet.verify() {
                return refuse(Status::ErrorChecksum, format!("packet {} fails its checksum at offset {bad}", h.seqno));
            }

            // Downstream first, so that the next node writes while this one does. Once that
            // fails nothing more goes there; the responder acks the node as failed.
            if forwarding {
                if let Some(d) = &self.down {
                    if packet.write_to(&mut &*d).and_then(|()| (&*d).flush()).is_err() {
                        forwarding = false;
                    }
                }
            }
            let mine = self.write(&packet);
            let queued = Queued::Packet { seqno: h.seqno, mine, forwarded: forwarding, last: h.last };
            if tx.send(queued).is_err() {
                return Err(format!("block {id}: the responder ended before packet {}", h.seqno));
            }
            if !mine.is_success() {
                return Err(format!("block {id}: packet {} failed here with {mine:?}", h.seqno));
            }
            if h.last {
                return Ok(());
            }
            self.seqno += 1;
        }
    }

    /// Refuses at once, before the responder exists.
    fn refuse_now(self, status: Status, why: String) -> Result<(), String> {
        let ack = PipelineAck { seqno: self.seqno, statuses: vec![status] };
        let _ = ack.write_to(&mut &*self.up).and_then(|()| (&*self.up).flush());
        close_after_refusal(self.up);
        Err(why)
    }

    /// Writes, syncs and (on `last`) finalizes one packet `receive` verified; this node's
    /// status.
    fn write(&mut self, p: &Packet) -> Status {
        let h = p.header;
        let Some(w) = self.writer.as_mut() else { return Status::ErrorInvalid };
        let r = w.write_packet_verified(h.offset_in_block, &p.data, &p.crcs).and_then(|()| {
            if h.sync || h.last {
                w.flush(true)
            } else {
                Ok(())
            }
        });
        let r: Result<(), StoreError> = r.and_then(|()| {
            if h.last {
                let w = self.writer.take().expect("checked");
                w.finalize().map(|_| ())
            } else {
                Ok(())
            }
        });
        match r {
            Ok(()) => Status::Success,
            Err(e) => {
                tracing::warn!(node = %self.shared.config.node_id, block = self.id, "packet {}: {e}", h.seqno);
                status_of(&e)
            }
        }
    }
}

/// The responder: acknowledges queued packets upstream in order, each once downstream did.
struct Responder<'a> {
    shared: &'a Shared,
    up: &'a TcpStream,
    /// A clone of the downstream socket, for reading its acks.
    down: Option<TcpStream>,
    downstream_len: usize,
    id: u64,
    /// Set when an ack other than all-Success was sent (or could not be): the receiver stops.
    broken: &'a AtomicBool,
}

impl Responder<'_> {
    fn run(self, rx: Queue<Queued>) -> Result<(), String> {
        let id = self.id;
        let mut down_ok = self.down.is_some();
        for q in rx {
            let (seqno, statuses, last) = match q {
                Queued::Refuse { seqno, status } => (seqno, vec![status], true),
                Queued::Packet { seqno, mine, forwarded, last } => {
                    let mut statuses = vec![mine];
                    if let Some(d) = &self.down {
                        down_ok &= forwarded;
                        if down_ok {
                            match PipelineAck::read_from(&mut &*d) {
                                Ok(ack)
                                    if ack.seqno == seqno
                                        && (1..=self.downstream_len).contains(&ack.statuses.len()) =>
                                {
                                    statuses.extend(ack.statuses)
                                }
                                Ok(ack) => {
                                    tracing::warn!(block = id, "downstream ack {ack:?} for packet {seqno}");
                                    down_ok = false;
                                }
                                Err(e) => {
                                    tracing::warn!(node = %self.shared.config.node_id, block = id, "downstream ack of {seqno}: {e}");
                                    down_ok = false;
                                }
                            }
                        }
                        if !down_ok {
                            statuses.push(Status::Error);
                        }
                    }
                    (seqno, statuses, last)
                }
            };
            let ok = statuses.iter().all(|s| s.is_success());
            let ack = PipelineAck { seqno, statuses: statuses.clone() };
            if let Err(e) = ack.write_to(&mut &*self.up).and_then(|()| (&*self.up).flush()) {
                self.stop();
                return Err(format!("block {id}: sending ack {seqno}: {e}"));
            }
            if !ok {
                self.stop();
                return Err(format!("block {id}: packet {seqno} acked {statuses:?}; pipeline closed"));
            }
            if last {
                return Ok(());
            }
        }
        // The receiver ended without a last packet (the client went away): nothing to ack.
        Ok(())
    }

    /// Marks the pipeline broken and stops sending upstream; the receiver sees the mark
    /// before its next packet, and the connection is drained and closed after both end.
    fn stop(&self) {
        self.broken.store(true, Ordering::SeqCst);
        let _ = self.up.shutdown(Shutdown::Write);
        if let Some(d) = &self.down {
            let _ = d.shutdown(Shutdown::Both);
        }
    }
}
