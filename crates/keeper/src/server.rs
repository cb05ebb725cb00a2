//! The client port: recovery at start, the accept loop, one task pair per connection (reader
//! and writer), the log thread, and four-letter words.
//!
//! The TLS client port (`secureClientPort`) runs the same accept loop and the same connection
//! code over a rustls stream (`tls.rs` builds the acceptor); a failed handshake closes that
//! connection only. Both ports feed one core, with connection ids unique across them.
//!
//! A connection's reader decodes frames and forwards them to the core, holding one permit of the
//! connection's semaphore per request in flight; at the limit it stops reading, which pushes back
//! on the client through TCP. A frame over `jute.maxbuffer`, a malformed frame or an unknown opcode
//! closes that connection only.

use crate::config::KeeperConfig;
use crate::core::{ClientRequest, ConnOut, CoreMsg, KeeperCore, LogCmd, Out, Replicator, OUTBOUND_FRAMES_MAX};
use crate::tree::DataTree;
use crate::txn::Txn;
use crate::wal::{Entry, Wal};
use crate::watch::ConnId;
use crate::{fourlw, snapshot};
use anyhow::Context;
use keeper_proto::{ConnectRequest, Jute, Reader, Request, RequestHeader};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Most log entries written between two fsyncs.
const GROUP_COMMIT_MAX: usize = 4096;
/// A client must finish its TLS handshake and send its connect frame, each within this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The state recovered from disk.
pub struct Recovered {
    pub tree: DataTree,
    pub wal: Wal,
    pub last_snapshot: u64,
    pub replayed: usize,
    _lock: File,
}

/// Takes the data dir's lock, loads the newest valid snapshot and replays the log after it.
pub fn recover(cfg: &KeeperConfig) -> anyhow::Result<Recovered> {
    let dir = &cfg.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    let lock = lock_dir(dir)?;
    snapshot::remove_partial(dir)?;
    let mut tree = None;
    let mut last_snapshot = 0;
    for index in snapshot::list(dir)? {
        match snapshot::read(dir, index)
            .and_then(|b| DataTree::deserialize(&b).map_err(|e| format!("snapshot {index}: {e}")))
        {
            Ok(t) => {
                tree = Some(t);
                last_snapshot = index;
                break;
            }
            Err(why) => tracing::warn!("skipping unusable snapshot: {why}"),
        }
    }
    let mut tree = tree.unwrap_or_default();
    tree.extended_types = cfg.extended_types;
    let (wal, entries) = Wal::open(&dir.join("log"), last_snapshot)?;
    for note in &wal.recovery_notes {
        tracing::warn!("{note}");
    }
    let replayed = entries.len();
    for e in entries {
        let txn = Txn::decode(&e.payload)
            .with_context(|| format!("log entry {} passed its checksum but does not decode", e.index))?;
        tree.apply(e.index, &txn);
    }
    anyhow::ensure!(
        wal.next_index() == tree.last_zxid() as u64 + 1,
        "log ends at {} but the tree is at {}",
        wal.next_index() - 1,
        tree.last_zxid()
    );
    Ok(Recovered { tree, wal, last_snapshot, replayed, _lock: lock })
}

fn lock_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("lock");
    let f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    anyhow::ensure!(rc == 0, "data dir {} is in use by another keeper ({})", dir.display(), io::Error::last_os_error());
    Ok(f)
}

/// A running keeper.
pub struct Keeper {
    pub client_addr: SocketAddr,
    /// The TLS client port's address, when `secureClientPort` is set.
    pub secure_client_addr: Option<SocketAddr>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Keeper {
    /// Recovers, binds the client port and starts serving; stops when `shutdown` is cancelled.
    /// With more than one `server.N`, the keeper is an ensemble member (see `ensemble.rs`).
    pub async fn start(cfg: KeeperConfig, shutdown: CancellationToken) -> anyhow::Result<Keeper> {
        if cfg.peers.len() > 1 {
            return Self::start_member(cfg, shutdown).await;
        }
        let rec = recover(&cfg)?;
        tracing::info!(
            "recovered keeper state: snapshot {} + {} log entries, last zxid 0x{:x}, {} sessions",
            rec.last_snapshot,
            rec.replayed,
            rec.tree.last_zxid(),
            rec.tree.sessions().len()
        );
        let (listener, secure) = bind_ports(&cfg).await?;
        let client_addr = listener.local_addr()?;
        let secure_client_addr = secure.as_ref().map(|s| s.addr);
        let (core_tx, core_rx) = mpsc::channel::<CoreMsg>(8192);
        let (log_tx, log_rx) = std_mpsc::channel::<LogCmd>();
        let Recovered { tree, wal, last_snapshot, _lock, .. } = rec;
        let log_core = core_tx.clone();
        std::thread::Builder::new()
            .name("keeper-log".into())
            .spawn(move || log_thread(wal, log_rx, log_core))
            .context("starting the log thread")?;
        let core = KeeperCore::new(cfg.clone(), tree, last_snapshot, Replicator::Wal(log_tx), core_tx.clone());
        let cfg = Arc::new(cfg);
        let task = tokio::spawn(async move {
            let _lock = _lock;
            let mut core_task = tokio::spawn(core.run(core_rx));
            let accept = serve_ports(listener, secure, cfg, core_tx, shutdown.clone());
            let r = tokio::select! {
                r = &mut core_task => r.context("keeper core panicked").and_then(|r| r),
                r = accept => r,
                _ = shutdown.cancelled() => Ok(()),
            };
            // The core ends with the keeper (its log thread then sees its channel close), so a
            // keeper restarted in the same process never shares the log with a stale core.
            core_task.abort();
            r
        });
        Ok(Keeper { client_addr, secure_client_addr, task })
    }

    async fn start_member(cfg: KeeperConfig, shutdown: CancellationToken) -> anyhow::Result<Keeper> {
        let dir = &cfg.data_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
        let lock = lock_dir(dir)?;
        let (core_tx, core_rx) = mpsc::channel::<CoreMsg>(8192);
        let (raft_tx, raft_rx) = mpsc::unbounded_channel();
        let mut tree = DataTree::new();
        tree.extended_types = cfg.extended_types;
        // The core runs before raft starts: raft replays the log into it while starting.
        let core = KeeperCore::new(cfg.clone(), tree, 0, Replicator::Raft(raft_tx), core_tx.clone());
        let mut core_task = tokio::spawn(core.run(core_rx));
        let mut ensemble = crate::ensemble::start(&cfg, core_tx.clone(), raft_rx, shutdown.clone()).await?;
        let (listener, secure) = bind_ports(&cfg).await?;
        let client_addr = listener.local_addr()?;
        let secure_client_addr = secure.as_ref().map(|s| s.addr);
        let cfg = Arc::new(cfg);
        let task = tokio::spawn(async move {
            let _lock = lock;
            let accept = serve_ports(listener, secure, cfg, core_tx, shutdown.clone());
            let r = tokio::select! {
                r = &mut core_task => r.context("keeper core panicked").and_then(|r| r),
                r = accept => r,
                _ = shutdown.cancelled() => Ok(()),
            };
            ensemble.stop().await;
            core_task.abort();
            r
        });
        Ok(Keeper { client_addr, secure_client_addr, task })
    }

    /// Waits for the keeper to stop; an error means it stopped on its own (a log failure).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("keeper task panicked")?
    }
}

fn log_thread(mut wal: Wal, rx: std_mpsc::Receiver<LogCmd>, core: mpsc::Sender<CoreMsg>) {
    let fail = |e: crate::wal::WalError| {
        tracing::error!("keeper log write failed: {e}");
        let _ = core.blocking_send(CoreMsg::LogFailed(e.to_string()));
    };
    while let Ok(first) = rx.recv() {
        let mut txns = Vec::new();
        let mut compact = None;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                LogCmd::Append(t) => txns.push(t),
                LogCmd::Compact { covered } => compact = Some(covered),
            }
            if txns.len() < GROUP_COMMIT_MAX {
                next = rx.try_recv().ok();
            }
        }
        if !txns.is_empty() {
            let first_index = wal.next_index();
            let entries: Vec<Entry> = txns
                .iter()
                .enumerate()
                .map(|(i, t)| Entry { index: first_index + i as u64, term: 1, payload: t.encode() })
                .collect();
            if let Err(e) = wal.append(&entries).and_then(|_| wal.sync()) {
                return fail(e);
            }
            let committed = txns.into_iter().enumerate().map(|(i, t)| (first_index + i as u64, t)).collect();
            if core.blocking_send(CoreMsg::Committed { entries: committed, last_term: 1, ack: None }).is_err() {
                return;
            }
        }
        if let Some(covered) = compact {
            if let Err(e) = wal.compact(covered) {
                return fail(e);
            }
        }
    }
}

type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Counts a connection against its address for as long as it lives.
struct IpSlot {
    map: PerIp,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        // A short critical section with no await inside: a std Mutex is the right tool.
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// The bound TLS client port and its acceptor.
struct SecurePort {
    listener: TcpListener,
    addr: SocketAddr,
    tls: TlsAcceptor,
}

/// Builds the TLS acceptor (so that a bad key store stops start-up, naming the file) and binds
/// the TLS client port, when `secureClientPort` is set.
/// Binds the client port and, if configured, the TLS client port.
async fn bind_ports(cfg: &KeeperConfig) -> anyhow::Result<(TcpListener, Option<SecurePort>)> {
    let listener =
        TcpListener::bind(cfg.client_addr).await.with_context(|| format!("binding client port {}", cfg.client_addr))?;
    Ok((listener, bind_secure(cfg).await?))
}

async fn bind_secure(cfg: &KeeperConfig) -> anyhow::Result<Option<SecurePort>> {
    let Some(addr) = cfg.secure_client_addr() else { return Ok(None) };
    let tls = crate::tls::acceptor(&cfg.ssl).context("setting up the TLS client port (secureClientPort)")?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding the TLS client port {addr}"))?;
    let addr = listener.local_addr()?;
    tracing::info!("TLS client port on {addr} (client certificates: {:?})", cfg.ssl.client_auth);
    Ok(Some(SecurePort { listener, addr, tls }))
}

/// Runs the plain client port and, if bound, the TLS one until shutdown.
async fn serve_ports(
    plain: TcpListener,
    secure: Option<SecurePort>,
    cfg: Arc<KeeperConfig>,
    core: mpsc::Sender<CoreMsg>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let next_id = Arc::new(AtomicU64::new(1));
    let plain = accept_loop(plain, None, cfg.clone(), core.clone(), next_id.clone(), shutdown.clone());
    match secure {
        None => plain.await,
        Some(s) => {
            let secure = accept_loop(s.listener, Some(s.tls), cfg, core, next_id, shutdown);
            tokio::try_join!(plain, secure).map(|_| ())
        }
    }
}

/// Accepts on one client port; with `tls`, each connection first completes a TLS handshake.
/// Each port counts `maxClientCnxns` on its own, as ZooKeeper's two connection factories do.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    cfg: Arc<KeeperConfig>,
    core: mpsc::Sender<CoreMsg>,
    next_id: Arc<AtomicU64>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let per_ip: PerIp = Arc::default();
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return Ok(()),
        };
        let slot = {
            let mut m = per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(addr.ip()).or_insert(0);
            if cfg.max_client_cnxns > 0 && *n >= cfg.max_client_cnxns {
                tracing::warn!("too many connections from {} - max is {}", addr.ip(), cfg.max_client_cnxns);
                drop(stream);
                continue;
            }
            *n += 1;
            IpSlot { map: per_ip.clone(), ip: addr.ip() }
        };
        let _ = stream.set_nodelay(true);
        let conn = next_id.fetch_add(1, Ordering::Relaxed);
        let (cfg, core, shutdown, tls) = (cfg.clone(), core.clone(), shutdown.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let result = match tls {
                None => {
                    let (rd, wr) = stream.into_split();
                    serve(rd, wr, addr, conn, cfg, core, shutdown).await
                }
                Some(tls) => {
                    let handshake = tokio::select! {
                        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)) => r,
                        _ = shutdown.cancelled() => return,
                    };
                    match handshake {
                        Ok(Ok(stream)) => {
                            let (rd, wr) = tokio::io::split(stream);
                            serve(rd, wr, addr, conn, cfg, core, shutdown).await
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%addr, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%addr, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%addr, "connection closed: {e}");
            }
        });
    }
}

async fn read_frame<R: AsyncReadExt + Unpin>(
    rd: &mut R,
    first: Option<u32>,
    max: usize,
) -> io::Result<Option<Vec<u8>>> {
    let len = match first {
        Some(n) => n,
        None => match rd.read_u32().await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        },
    };
    let len = len as i32;
    if len < 0 || len as usize > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame length {len} is outside 0..={max} (jute.maxbuffer)"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    rd.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// One client connection, over TCP or TLS: `rd` and `wr` are its two halves.
async fn serve<R, W>(
    rd: R,
    mut wr: W,
    addr: SocketAddr,
    conn: ConnId,
    cfg: Arc<KeeperConfig>,
    core: mpsc::Sender<CoreMsg>,
    shutdown: CancellationToken,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut rd = BufReader::new(rd);
    let mut head = [0u8; 4];
    tokio::time::timeout(HANDSHAKE_TIMEOUT, rd.read_exact(&mut head))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no connect request"))??;
    if let Some(word) = fourlw::word_of(head) {
        let (tx, rx) = oneshot::channel();
        let _ = core.send(CoreMsg::FourLetter { word: word.to_owned(), reply: tx }).await;
        let text = rx.await.unwrap_or_default();
        wr.write_all(text.as_bytes()).await?;
        wr.shutdown().await?;
        return Ok(());
    }
    let body = read_frame(&mut rd, Some(u32::from_be_bytes(head)), cfg.jute_max_buffer)
        .await?
        .ok_or_else(|| invalid("eof in connect request".into()))?;
    let req = ConnectRequest::from_bytes(&body).map_err(|e| invalid(format!("bad connect request: {e}")))?;
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_FRAMES_MAX);
    let stop = shutdown.child_token();
    let writer = tokio::spawn(write_loop(wr, out_rx, stop.clone()));
    let out = ConnOut::new(out_tx, stop.clone());
    if core.send(CoreMsg::Connect { conn, addr, req, out }).await.is_err() {
        return Ok(());
    }
    let permits = Arc::new(Semaphore::new(cfg.max_outstanding_per_conn));
    let result = async {
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.map_err(|_| invalid("semaphore closed".into()))?,
                _ = stop.cancelled() => return Ok(()),
            };
            let frame = tokio::select! {
                f = read_frame(&mut rd, None, cfg.jute_max_buffer) => f?,
                _ = stop.cancelled() => return Ok(()),
            };
            let Some(frame) = frame else { return Ok(()) };
            let mut r = Reader::new(&frame);
            let h = RequestHeader::decode(&mut r).map_err(|e| invalid(format!("bad request header: {e}")))?;
            let body = r.rest().to_vec();
            let req = Request::decode(h.op, &body).map_err(|e| invalid(format!("bad request (type {}): {e}", h.op)))?;
            let request = ClientRequest { xid: h.xid, req, body, permit };
            if core.send(CoreMsg::Request { conn, request }).await.is_err() {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = &result {
        tracing::info!(%addr, "closing connection: {e}");
    }
    let _ = core.send(CoreMsg::Gone { conn }).await;
    stop.cancel();
    let _ = writer.await;
    result
}

async fn write_loop<W: AsyncWrite + Unpin>(wr: W, mut rx: mpsc::Receiver<Out>, stop: CancellationToken) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    'outer: loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = stop.cancelled() => None,
        };
        let Some(mut msg) = first else { break };
        loop {
            match msg {
                Out::Frame(b) => {
                    if wr.write_all(&b).await.is_err() {
                        break 'outer;
                    }
                }
                Out::Close => break 'outer,
            }
            match rx.try_recv() {
                Ok(m) => msg = m,
                Err(_) => break,
            }
        }
        if wr.flush().await.is_err() {
            break;
        }
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    stop.cancel();
}
