//! One block's packets to one pipeline: the caller's thread sends, an ack thread reads the
//! acks, and the packets in between wait in a bounded queue until acknowledged (so that a
//! pipeline recovery can resend them).
//!
//! ```text
//! caller --send(packet)--> [unacked queue, <= window] --socket--> DN1 -> DN2 -> DN3
//! ack thread <--acks-- DN1:  pops the queue in seqno order; a failed status or a broken
//!                            connection ends the stream with a Break for the caller
//! ```
//!
//! Seqnos start at 0 on every stream (a recovery is a new stream); offsets are the block's.

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use dfs_proto::transfer::{Op, OpResponse, Packet, PipelineAck};
use dfs_proto::{DatanodeInfo, FrameError, Message as _};

use super::plan::{ack_failure, bad_link, Break};

/// Why a pipeline could not be set up, and which node to blame (its pipeline position).
#[derive(Debug)]
pub(crate) struct SetupError {
    pub(crate) bad: usize,
    pub(crate) reason: String,
}

/// A block being streamed to a pipeline.
pub(crate) struct BlockStream {
    pub(crate) pipeline: Vec<DatanodeInfo>,
    sock: TcpStream,
    shared: Arc<Shared>,
    acker: Option<JoinHandle<()>>,
    window: usize,
    next_seqno: u64,
    /// The block offset after the last packet sent.
    pub(crate) sent_end: u64,
}

struct Shared {
    /// std Mutex: pushes and pops of a queue, never held across I/O.
    state: Mutex<AckState>,
    changed: Condvar,
}

struct AckState {
    unacked: VecDeque<Packet>,
    /// The block offset up to which every node acknowledged.
    acked_end: u64,
    broken: Option<Break>,
    /// The `last` packet was acknowledged: the block is finalized on every node.
    finished: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, AckState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a stream leaves behind when it ends: the acknowledged length and the packets sent (or
/// queued) but not acknowledged, in order.
pub(crate) struct Leftover {
    pub(crate) acked_end: u64,
    pub(crate) unacked: Vec<Packet>,
}

impl BlockStream {
    /// Connects the first node of `pipeline`, sends `op` and waits for its op response.
    /// `start` is the block offset the first packet will have (the acknowledged length).
    pub(crate) fn open(
        pipeline: Vec<DatanodeInfo>,
        op: &Op,
        start: u64,
        timeout: Duration,
        window: usize,
    ) -> Result<BlockStream, SetupError> {
        let first = pipeline.first().ok_or(SetupError { bad: 0, reason: "an empty pipeline".into() })?;
        let fail0 = |reason: String| SetupError { bad: 0, reason: format!("{}: {reason}", first.data_addr) };
        let addr = resolve(&first.data_addr).map_err(fail0)?;
        let sock = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail0(format!("connecting: {e}")))?;
        let setup = || -> Result<OpResponse, FrameError> {
            sock.set_read_timeout(Some(timeout))?;
            sock.set_write_timeout(Some(timeout))?;
            sock.set_nodelay(true)?;
            (&sock).write_all(&op.to_frame()?)?;
            (&sock).flush()?;
            OpResponse::read_from(&mut &sock)
        };
        let resp = setup().map_err(|e| fail0(format!("setting up the pipeline: {e}")))?;
        if !resp.status.is_success() {
            let addrs: Vec<&str> = pipeline.iter().map(|n| n.data_addr.as_str()).collect();
            let bad = bad_link(&resp.message, &addrs);
            return Err(SetupError { bad, reason: format!("{:?}: {}", resp.status, resp.message) });
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(AckState { unacked: VecDeque::new(), acked_end: start, broken: None, finished: false }),
            changed: Condvar::new(),
        });
        let reader = sock.try_clone().map_err(|e| fail0(format!("cloning the socket: {e}")))?;
        let (s, n) = (shared.clone(), pipeline.len());
        let acker = std::thread::Builder::new()
            .name("dfs-acks".into())
            .spawn(move || read_acks(reader, &s, n))
            .map_err(|e| fail0(format!("starting the ack thread: {e}")))?;
        Ok(BlockStream {
            pipeline,
            sock,
            shared,
            acker: Some(acker),
            window: window.max(1),
            next_seqno: 0,
            sent_end: start,
        })
    }

    /// Queues and sends a packet at `offset` (waiting while the window is full). A packet is
    /// queued even when the pipeline has broken, so that the recovery resends it.
    pub(crate) fn send(&mut self, offset: u64, data: Vec<u8>, sync: bool, last: bool) -> Result<(), Break> {
        debug_assert_eq!(offset, self.sent_end, "packets are contiguous");
        let packet = Packet::build(self.next_seqno, offset, data, last, sync);
        self.next_seqno += 1;
        self.sent_end = offset + packet.data.len() as u64;
        let bytes = packet.to_bytes();
        {
            let mut s = self.shared.lock();
            while s.unacked.len() >= self.window && s.broken.is_none() && !s.finished {
                s = self.shared.changed.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            s.unacked.push_back(packet);
            if let Some(b) = s.broken {
                return Err(b);
            }
        }
        if let Err(e) = (&self.sock).write_all(&bytes).and_then(|()| (&self.sock).flush()) {
            tracing::debug!(node = %self.pipeline[0].data_addr, "sending a packet: {e}");
            // The ack thread may know better (a failed ack arrived before the connection
            // closed): let it read what is there, then take its verdict.
            self.join_acker();
            let mut s = self.shared.lock();
            return Err(*s.broken.get_or_insert(Break::Connection));
        }
        Ok(())
    }

    /// Waits until every packet sent is acknowledged (or the pipeline broke).
    pub(crate) fn wait_acked(&self) -> Result<(), Break> {
        let mut s = self.shared.lock();
        loop {
            if let Some(b) = s.broken {
                return Err(b);
            }
            if s.unacked.is_empty() {
                return Ok(());
            }
            s = self.shared.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Closes the connection and returns what was not acknowledged.
    pub(crate) fn finish(mut self) -> Leftover {
        let _ = self.sock.shutdown(Shutdown::Both);
        self.join_acker();
        let mut s = self.shared.lock();
        Leftover { acked_end: s.acked_end, unacked: s.unacked.drain(..).collect() }
    }

    fn join_acker(&mut self) {
        if let Some(t) = self.acker.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BlockStream {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Both);
        self.join_acker();
    }
}

/// The ack thread: pops acknowledged packets in order until the `last` one, a failure, or the
/// connection's end.
fn read_acks(mut sock: TcpStream, shared: &Shared, pipeline_len: usize) {
    loop {
        let read = PipelineAck::read_from(&mut sock);
        let mut s = shared.lock();
        let ack = match read {
            Ok(ack) => ack,
            Err(FrameError::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                    && s.unacked.is_empty()
                    && s.broken.is_none() =>
            {
                // Nothing in flight: a quiet pipeline is not a broken one (a slow writer).
                continue;
            }
            Err(e) => {
                if !s.finished && s.broken.is_none() {
                    tracing::debug!("reading acks: {e}");
                    s.broken = Some(Break::Connection);
                }
                shared.changed.notify_all();
                return;
            }
        };
        let expected = s.unacked.front().map(|p| p.header.seqno);
        if expected != Some(ack.seqno) {
            tracing::warn!("ack for packet {} while expecting {expected:?}: the pipeline is broken", ack.seqno);
            s.broken = Some(Break::Connection);
        } else if let Some(index) = ack_failure(&ack.statuses, pipeline_len) {
            s.broken = Some(Break::Ack { index });
        } else if let Some(p) = s.unacked.pop_front() {
            s.acked_end = p.header.offset_in_block + p.data.len() as u64;
            s.finished = p.header.last;
        }
        let done = s.broken.is_some() || s.finished;
        shared.changed.notify_all();
        if done {
            return;
        }
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("resolving: {e}"))?
        .next()
        .ok_or_else(|| "resolves to no address".to_string())
}
