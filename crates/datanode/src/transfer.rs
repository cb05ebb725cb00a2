//! The DataNode's data-transfer server: the data port (HDFS's `DataXceiverServer`), serving
//! `WriteBlock` (pipelines), `ReadBlock` and `CopyBlock` over the frames of
//! [`dfs_proto::transfer`] on top of a [`Store`].
//!
//! **Threads, not tasks.** One blocking std thread per connection (HDFS's xceiver model), at
//! most [`TransferConfig::max_connections`] at once; a connection over the bound is answered
//! with an `Error` op response and closed. Every step of a transfer is blocking I/O (a socket
//! read, a `pwrite`, an fsync, the next socket write), and the store is blocking `std::fs`
//! anyway: with tokio every packet would hop to `spawn_blocking` and back, for no gain at a
//! few dozen connections per node. Every socket has [`TransferConfig::io_timeout`] as its read
//! and write timeout, so no thread waits forever on a silent peer; `shutdown` closes every
//! socket the server holds and joins every thread.
//!
//! **Write pipeline** (`transfer/write.rs`). Op -> (stale epoch? `ErrorStale`, nothing opened) -> open
//! the replica by stage -> connect the first target and forward the op with the rest of the
//! targets -> the op response upstream (`Success` only once the downstream answered
//! `Success`). Then, per packet, in order: check seqno (0, 1, 2, ...) and offset (the
//! replica's length), verify the CRCs, forward downstream, write with the sender's CRCs, fsync
//! on `sync`/`last`, finalize on `last`, wait for the downstream ack of that seqno, ack
//! upstream `[mine, downstream...]`. A packet is handled fully before the next is read (the
//! nodes still write each packet in parallel, since it is forwarded before it is written).
//! Any status other than `Success` in an ack ends the connection after that ack: the pipeline
//! is broken and the client recovers it (new generation stamp, `Recovery` stage).
//!
//! **Reads** (`transfer/read.rs`): see the layout there; a replica that fails its checksums mid-stream
//! ends the stream early with a trailer naming the offset, never with bad bytes.
//!
//! **Lease recovery** (`transfer/recover.rs`): the NameNode itself asks each replica of an
//! abandoned block for its length (`InitRecovery`, which fences the writer) and then has each
//! cut to the shortest and finalized under the recovery stamp (`FinishRecovery`); both carry
//! the NameNode's epoch, which must be nonzero and not older than the newest seen.
//!
//! **Block checksums** (`transfer/checksum.rs`): the MD5 of a finalized replica's stored CRCs,
//! HDFS's per-block part of a file checksum; one op, one op response, one answer frame.
//!
//! **Replication** is pushed by the source (HDFS's `DNA_TRANSFER`): the source reads its
//! finalized replica and sends it to the target as a `WriteBlock` of stage `Transfer`
//! ([`client::transfer_block`]), which the target writes to a temporary replica and finalizes
//! on the last packet; the op carries the NameNode epoch of the command, so a command from a
//! deposed NameNode is refused. `CopyBlock` streams a whole finalized replica like a read of
//! `[0, len)` (for a puller such as a balancer).
//!
//! **Bad input** (an op frame that does not decode, another version, an oversize length, a
//! packet out of order by seqno or offset, unknown flags, a CRC mismatch) is answered with an
//! error status where the protocol has room for one (an `ErrorInvalid` op response, or an ack
//! `[ErrorInvalid | ErrorChecksum]` for the packet), then that connection closes; nothing of
//! the bad packet is written, and no other replica or connection is touched. Each refused or
//! broken connection is one `warn` line. Seqnos start at 0 on every connection (a recovery is
//! a new connection).

mod checksum;
pub mod client;
mod read;
mod recover;
mod write;

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use dfs_proto::transfer::{Op, OpResponse, Status};
use dfs_proto::FrameError;

use crate::store::lock;
use crate::{Store, StoreError};

/// How a transfer server runs.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// This DataNode's id (its member id), for logs and messages.
    pub node_id: String,
    /// Connections served at once; more are refused with an `Error` op response.
    pub max_connections: usize,
    /// Read and write timeout of every socket, and the connect timeout downstream.
    pub io_timeout: Duration,
    /// The newest NameNode epoch this DataNode has seen, raised by whoever learns a newer
    /// one. A `WriteBlock` with a nonzero `namenode_epoch` below it is refused (`ErrorStale`);
    /// 0 is a client's write, which no NameNode command is behind.
    pub namenode_epoch: Arc<AtomicI64>,
}

/// Reads the connections a [`TransferServer`] is serving (cheap to clone).
#[derive(Clone)]
pub struct Load(Arc<Shared>);

impl Load {
    pub fn connections(&self) -> usize {
        self.0.active.load(Ordering::SeqCst)
    }
}

/// The running data port. Dropping it shuts it down.
pub struct TransferServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) config: TransferConfig,
    stopping: AtomicBool,
    active: AtomicUsize,
    next_conn: AtomicU64,
    /// std Mutex: short critical sections (insert, remove, a sweep of `shutdown` calls).
    sockets: Mutex<HashMap<u64, Vec<TcpStream>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    /// Keeps a clone of a connection's socket so that `shutdown` can close it; a socket
    /// registered after the sweep is closed at once.
    pub(crate) fn register(&self, conn: u64, s: &TcpStream) {
        let Ok(clone) = s.try_clone() else { return };
        let mut sockets = lock(&self.sockets);
        if self.stopping.load(Ordering::SeqCst) {
            let _ = clone.shutdown(Shutdown::Both);
        }
        sockets.entry(conn).or_default().push(clone);
    }
}

impl TransferServer {
    /// Binds `listen` and starts accepting. Port 0 picks a free port (see `local_addr`).
    pub fn start(store: Store, listen: SocketAddr, config: TransferConfig) -> std::io::Result<TransferServer> {
        let listener = TcpListener::bind(listen)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store,
            config,
            stopping: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
            sockets: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("dn-xfer-accept-{}", shared.config.node_id))
            .spawn(move || accept_loop(listener, s))?;
        Ok(TransferServer { local_addr, shared, accept: Some(accept) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A counter of the connections being served now (reads, writes, copies): the DataNode's
    /// load, as its heartbeats report it.
    pub fn load(&self) -> Load {
        Load(self.shared.clone())
    }

    /// Stops accepting, closes every connection's sockets (so its peers see the node gone),
    /// and joins every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept.take() else { return };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept; the loop sees `stopping` and ends.
        let _ = TcpStream::connect_timeout(&self.local_addr, Duration::from_secs(1));
        let _ = accept.join();
        for s in lock(&self.shared.sockets).values().flatten() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for TransferServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                tracing::warn!(node = %shared.config.node_id, "data port accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        lock(&shared.threads).retain(|t| !t.is_finished());
        if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.config.max_connections {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            refuse(&shared, peer, "too many connections");
            let _ = set_timeouts(&stream, shared.config.io_timeout);
            let _ = respond(&mut &stream, Status::Error, "too many connections", 0);
            continue;
        }
        let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        shared.register(conn, &stream);
        let s = shared.clone();
        let spawned = std::thread::Builder::new().name(format!("dn-xfer-{conn}")).spawn(move || {
            serve(&s, conn, stream, peer);
            lock(&s.sockets).remove(&conn);
            s.active.fetch_sub(1, Ordering::SeqCst);
        });
        match spawned {
            Ok(t) => lock(&shared.threads).push(t),
            Err(e) => {
                lock(&shared.sockets).remove(&conn);
                shared.active.fetch_sub(1, Ordering::SeqCst);
                refuse(&shared, peer, &format!("cannot start a thread: {e}"));
            }
        }
    }
}

/// One connection: one op, then its packets.
fn serve(shared: &Shared, conn: u64, stream: TcpStream, peer: SocketAddr) {
    if let Err(e) = set_timeouts(&stream, shared.config.io_timeout) {
        refuse(shared, peer, &format!("socket options: {e}"));
        return;
    }
    let op = match Op::read_from(&mut &stream) {
        Ok(op) => op,
        Err(FrameError::Io(e)) => {
            tracing::debug!(node = %shared.config.node_id, %peer, "connection closed before an op: {e}");
            return;
        }
        Err(e) => {
            refuse(shared, peer, &format!("malformed op: {e}"));
            let _ = respond(&mut &stream, Status::ErrorInvalid, &format!("malformed op: {e}"), 0);
            close_after_refusal(&stream);
            return;
        }
    };
    let outcome = match op {
        Op::WriteBlock { block, new_gs, targets, client_name, stage, namenode_epoch } => {
            let op = write::WriteOp { block, new_gs, targets, client_name, stage, namenode_epoch };
            write::serve(shared, conn, &stream, op)
        }
        Op::ReadBlock { block, offset, len, verify } => read::serve(shared, &stream, block, offset, len, false, verify),
        Op::CopyBlock { block } => read::serve(shared, &stream, block, 0, 0, true, true),
        Op::InitRecovery { block, recovery_id, namenode_epoch } => {
            recover::serve(shared, &stream, namenode_epoch, block.id, || {
                shared.store.init_recovery(block.id, block.gs, recovery_id)
            })
        }
        Op::FinishRecovery { block, namenode_epoch } => {
            recover::serve(shared, &stream, namenode_epoch, block.id, || {
                shared.store.finish_recovery(block.id, block.gs, block.len)
            })
        }
        Op::BlockChecksum { block } => checksum::serve(shared, &stream, block),
    };
    if let Err(why) = outcome {
        refuse(shared, peer, &why);
    }
}

/// The one log line of a refused (or failed) connection.
fn refuse(shared: &Shared, peer: SocketAddr, why: &str) {
    tracing::warn!(node = %shared.config.node_id, %peer, "data transfer refused: {why}");
}

/// The longest pipeline an op may name (HDFS's replication factor rarely exceeds 10); it
/// bounds the statuses of an ack, whose count is one byte.
pub const MAX_PIPELINE_LEN: usize = 32;

/// Closes a connection whose peer may still be sending (a refused packet, an op frame not
/// read in full): stops writing, then reads and drops what is in flight for a moment, so the
/// close does not reset the connection before the peer has read the error sent to it.
pub(crate) fn close_after_refusal(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut scratch = [0u8; 16 << 10];
    let mut drained = 0;
    while drained < (1 << 20) {
        match std::io::Read::read(&mut &*s, &mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

pub(crate) fn set_timeouts(s: &TcpStream, t: Duration) -> std::io::Result<()> {
    s.set_read_timeout(Some(t))?;
    s.set_write_timeout(Some(t))?;
    s.set_nodelay(true)
}

/// Sends an op response frame.
pub(crate) fn respond(
    w: &mut impl std::io::Write,
    status: Status,
    message: &str,
    first_chunk_offset: u64,
) -> Result<(), FrameError> {
    let frame = OpResponse { status, message: message.to_string(), first_chunk_offset }.to_frame()?;
    w.write_all(&frame)?;
    w.flush()?;
    Ok(())
}

/// The wire status of a store error.
pub fn status_of(e: &StoreError) -> Status {
    match e {
        StoreError::AlreadyExists { .. } => Status::ErrorExists,
        StoreError::StaleGenStamp { .. }
        | StoreError::GenStampMismatch { .. }
        | StoreError::GenStampNotNewer { .. }
        | StoreError::WriterFenced { .. } => Status::ErrorStale,
        StoreError::Corrupt { .. } => Status::ErrorChecksum,
        StoreError::DiskFull { .. } => Status::ErrorDiskFull,
        StoreError::NoSuchReplica { .. }
        | StoreError::WrongState { .. }
        | StoreError::OutOfOrder { .. }
        | StoreError::BadPacket { .. }
        | StoreError::OutOfRange { .. }
        | StoreError::TooLarge { .. }
        | StoreError::TooShort { .. } => Status::ErrorInvalid,
        StoreError::DirInUse { .. } | StoreError::NoDataDirs | StoreError::Io { .. } => Status::Error,
    }
}
