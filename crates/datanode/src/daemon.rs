//! The DataNode daemon (`herd datanode`): a [`Store`] on its data dirs, the data port
//! ([`TransferServer`]), a membership in group [`GROUP`], and the conversation with the
//! NameNode — registration, block reports, heartbeats, commands — plus the block scanner.
//!
//! ```text
//! Membership (tokio task) ──status──> service thread ──RPC──> NameNode
//!                                      ^   │  Register, BlockReport, IncrementalBlockReport,
//!   store change feed ──wake + ids─────┘   │  ReportBadBlocks, Heartbeat -> commands
//!   scanner thread ──bad replicas──────┘   └─> Invalidate (store.delete), Transfer (a thread
//!                                              each, pushing through the targets), Reregister
//! ```
//!
//! **One thread talks to the NameNode** (`daemon/service.rs`): the RPC client is blocking and
//! calls are sequential, so the service thread owns it and waits on the store's change feed
//! ([`crate::store::Changes`]) between calls, with the next heartbeat as deadline. A replica
//! created, finalized or deleted wakes it at once, so the incremental report goes out within
//! milliseconds (a writer's file closes only once its last block was reported finalized); the
//! scanner, membership changes and shutdown wake it the same way.
//!
//! **It acts only as a member.** Before its first membership and while expelled it sends
//! nothing and takes no commands; as each new incarnation it registers anew and sends a full
//! block report. A NameNode that answers `UnregisteredNodeException` (its view does not list
//! this incarnation) or sends `Reregister` gets the same. A NameNode that cannot be reached is
//! tried again every heartbeat interval (logged once per outage) while the data port keeps
//! serving clients.
//!
//! **Commands are fenced**: each names the NameNode's epoch, admitted by [`Fence::admit`]
//! only if not older than the newest seen (from `Registered` and earlier commands); the
//! transfer server's epoch follows, so a replication push of a deposed NameNode is refused by
//! its target too.
//!
//! **Everything it starts, [`Datanode::shutdown`] stops**: one cancellation token, threads
//! joined, the membership left (the member znode goes at once), the data port closed.

mod scanner;
mod service;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use dfs_proto::ExtendedBlock;
use member::fence::Fence;
use member::membership::{Membership, MembershipConfig, Status};
use member::report::Reporter;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::lock;
use crate::transfer::{TransferConfig, TransferServer};
use crate::Store;

/// The membership group of DataNodes (`/herd/members/datanode/<id>`).
pub const GROUP: &str = "datanode";
/// Where the data port listens unless told otherwise (HDFS's `dfs.datanode.address` port).
pub const LISTEN_DATA_DEFAULT: &str = "127.0.0.1:9866";
/// The rack of a DataNode nobody placed (HDFS's `NetworkTopology.DEFAULT_RACK`).
pub const RACK_DEFAULT: &str = "/default-rack";
/// How often a DataNode heartbeats (HDFS: 3 s; herd's membership already detects deaths, so
/// heartbeats carry load and commands, and commands should not wait long).
pub const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_millis(500);
/// A full pass of the block scanner at most this often (HDFS: 3 weeks; herd's disks are
/// smaller and a flipped byte should be found the same day).
pub const SCAN_PERIOD_DEFAULT: Duration = Duration::from_secs(6 * 3600);
/// The scanner reads at most this many bytes per second (so it never competes with clients
/// for the disk; HDFS's `dfs.block.scanner.volume.bytes.per.second` is 1 MiB/s).
pub const SCAN_BYTES_PER_SEC_DEFAULT: u64 = 32 << 20;
/// Bounds one attempt of a NameNode call (connect, write, read).
pub const RPC_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// The data port's socket timeout (HDFS's `dfs.client.socket-timeout` is 60 s).
pub const IO_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Data-port connections at once (HDFS's `dfs.datanode.max.transfer.threads` is 4096; each is
/// a thread here).
pub const MAX_CONNECTIONS_DEFAULT: usize = 256;
/// Replication pushes at once; a `Transfer` over the bound is dropped with a warning and the
/// NameNode reschedules it when its pending copy times out (HDFS's
/// `dfs.namenode.replication.max-streams` is 2, enforced by the NameNode).
pub const MAX_REPLICATIONS_DEFAULT: usize = 4;
/// Corrupt replicas queued for the NameNode at most; more wait for the next scan pass.
const BAD_QUEUE_MAX: usize = 1024;

/// How a DataNode runs. Build it with [`DatanodeConfig::new`] (every default is one of the
/// constants above, which the CLI uses too) and change what differs.
#[derive(Debug, Clone)]
pub struct DatanodeConfig {
    /// This DataNode's id: its member id in group [`GROUP`] and its name to the NameNode.
    pub id: String,
    /// Its data dirs (at least one).
    pub data_dirs: Vec<PathBuf>,
    /// The NameNode's `host:port` (DataNode protocol).
    pub namenode: String,
    /// The data port's address; port 0 picks a free one ([`Datanode::data_addr`]).
    pub listen_data: SocketAddr,
    /// Its rack path, sent at registration.
    pub rack: String,
    /// `host:port` of its HTTP port (WebHDFS, served by the caller), sent at registration so
    /// that the NameNode can redirect to it; "" when it has none.
    pub http_addr: String,
    /// The keeper session and its options. `group`, `id` and `payload` are set by the daemon
    /// ([`GROUP`], `id`, the data address).
    pub membership: MembershipConfig,
    pub heartbeat_interval: Duration,
    pub scan_period: Duration,
    pub scan_bytes_per_sec: u64,
    pub rpc_timeout: Duration,
    pub io_timeout: Duration,
    pub max_connections: usize,
    pub max_replications: usize,
}

impl DatanodeConfig {
    /// The defaults, for DataNode `id` on `data_dirs` reporting to `namenode`.
    pub fn new(id: &str, data_dirs: Vec<PathBuf>, namenode: &str, membership: MembershipConfig) -> DatanodeConfig {
        DatanodeConfig {
            id: id.to_owned(),
            data_dirs,
            namenode: namenode.to_owned(),
            listen_data: LISTEN_DATA_DEFAULT.parse().expect("a literal socket address"),
            rack: RACK_DEFAULT.to_owned(),
            http_addr: String::new(),
            membership,
            heartbeat_interval: HEARTBEAT_INTERVAL_DEFAULT,
            scan_period: SCAN_PERIOD_DEFAULT,
            scan_bytes_per_sec: SCAN_BYTES_PER_SEC_DEFAULT,
            rpc_timeout: RPC_TIMEOUT_DEFAULT,
            io_timeout: IO_TIMEOUT_DEFAULT,
            max_connections: MAX_CONNECTIONS_DEFAULT,
            max_replications: MAX_REPLICATIONS_DEFAULT,
        }
    }
}

/// Why a DataNode could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the data dirs: {0}")]
    Store(#[from] crate::StoreError),
    #[error("data port {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("membership: {0}")]
    Member(#[from] member::view::MemberError),
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
}

/// What the daemon's threads share.
pub(crate) struct Shared {
    pub(crate) store: Store,
    /// The newest NameNode epoch seen; commands below it are refused.
    pub(crate) fence: Fence,
    /// The transfer server's copy of the fence (it refuses stale replication pushes).
    pub(crate) epoch: Arc<AtomicI64>,
    /// Corrupt replicas found by the scanner, not yet accepted by the NameNode.
    /// std Mutex: a push or a swap, never held across I/O.
    pub(crate) bad: Mutex<Vec<ExtendedBlock>>,
    pub(crate) stop: CancellationToken,
    /// Connections the data port is serving: the load heartbeats report.
    pub(crate) load: crate::transfer::Load,
}

impl Shared {
    /// A NameNode epoch was learned (registration, an admitted command).
    pub(crate) fn advance_epoch(&self, epoch: i64) {
        self.fence.advance(epoch);
        self.epoch.fetch_max(epoch, Ordering::SeqCst);
    }

    /// Queues a corrupt replica for the NameNode (once; bounded) and wakes the service.
    pub(crate) fn report_bad(&self, b: ExtendedBlock) {
        let mut bad = lock(&self.bad);
        if bad.iter().any(|q| q.id == b.id && q.gs == b.gs) {
            return;
        }
        if bad.len() >= BAD_QUEUE_MAX {
            tracing::warn!("block {}: corrupt, but {BAD_QUEUE_MAX} reports are queued already", b.id);
            return;
        }
        bad.push(b);
        drop(bad);
        self.store.changes().wake();
    }
}

/// A running DataNode.
pub struct Datanode {
    shared: Arc<Shared>,
    data_addr: SocketAddr,
    status: watch::Receiver<Status>,
    transfer: Option<TransferServer>,
    membership: Option<Membership>,
    threads: Vec<JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Datanode {
    /// Opens the store, starts the data port, joins the membership (handing each session to
    /// the supervisor through `reporter`), and starts the service and scanner threads. Runs
    /// on a tokio runtime (the membership is a task).
    pub async fn start(cfg: DatanodeConfig, reporter: Option<Reporter>) -> Result<Datanode, StartError> {
        let store = {
            let dirs = cfg.data_dirs.clone();
            tokio::task::spawn_blocking(move || Store::open(&dirs))
                .await
                .map_err(|e| StartError::Thread(std::io::Error::other(e)))??
        };
        let epoch = Arc::new(AtomicI64::new(0));
        let transfer_cfg = TransferConfig {
            node_id: cfg.id.clone(),
            max_connections: cfg.max_connections,
            io_timeout: cfg.io_timeout,
            namenode_epoch: epoch.clone(),
        };
        let transfer = TransferServer::start(store.clone(), cfg.listen_data, transfer_cfg)
            .map_err(|source| StartError::Listen { addr: cfg.listen_data, source })?;
        let data_addr = transfer.local_addr();

        let mut mcfg = cfg.membership.clone();
        mcfg.group = GROUP.to_owned();
        mcfg.id = cfg.id.clone();
        mcfg.payload = data_addr.to_string().into_bytes();
        let membership = Membership::start(mcfg, reporter)?;
        let status = membership.status();

        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            store: store.clone(),
            fence: Fence::new(),
            epoch,
            bad: Mutex::new(Vec::new()),
            stop: stop.clone(),
            load: transfer.load(),
        });
        let mut dn = Datanode {
            shared: shared.clone(),
            data_addr,
            status: status.clone(),
            transfer: Some(transfer),
            membership: Some(membership),
            threads: Vec::new(),
            tasks: Vec::new(),
        };

        // Membership changes wake the service thread, which reads the status itself.
        let mut changed = status.clone();
        let (s, st) = (shared.clone(), stop.clone());
        dn.tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = st.cancelled() => return,
                    r = changed.changed() => {
                        if r.is_err() {
                            return;
                        }
                        s.store.changes().wake();
                    }
                }
            }
        }));

        let service = service::Service::new(&cfg, shared.clone(), data_addr, status);
        let spawned = std::thread::Builder::new().name(format!("dn-service-{}", cfg.id)).spawn(move || service.run());
        match spawned {
            Ok(t) => dn.threads.push(t),
            Err(e) => {
                dn.shutdown().await;
                return Err(StartError::Thread(e));
            }
        }
        let scan =
            scanner::Scanner { shared: shared.clone(), period: cfg.scan_period, bytes_per_sec: cfg.scan_bytes_per_sec };
        let spawned = std::thread::Builder::new().name(format!("dn-scanner-{}", cfg.id)).spawn(move || scan.run());
        match spawned {
            Ok(t) => dn.threads.push(t),
            Err(e) => {
                dn.shutdown().await;
                return Err(StartError::Thread(e));
            }
        }
        tracing::info!(id = %cfg.id, data = %data_addr, namenode = %cfg.namenode, "datanode started");
        Ok(dn)
    }

    /// The data port's bound address.
    pub fn data_addr(&self) -> SocketAddr {
        self.data_addr
    }

    /// The block store (shared with the data port).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The membership status: the daemon acts only while `Member`.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The newest NameNode epoch seen.
    pub fn namenode_epoch(&self) -> i64 {
        self.shared.fence.current()
    }

    /// Stops everything: the service (no more heartbeats; its replication pushes are joined),
    /// the scanner, the membership (closed, so the member znode goes at once), the data port.
    /// A NameNode call under way is waited for (bounded by the RPC timeout).
    pub async fn shutdown(mut self) {
        self.shared.stop.cancel();
        self.shared.store.changes().wake();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        if let Some(m) = self.membership.take() {
            m.leave().await;
        }
        if let Some(t) = self.transfer.take() {
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
        }
        tracing::info!(data = %self.data_addr, "datanode stopped");
    }
}

impl Drop for Datanode {
    /// Without `shutdown`: the threads and tasks are told to stop (not waited for); the data
    /// port closes with its server.
    fn drop(&mut self) {
        self.shared.stop.cancel();
        self.shared.store.changes().wake();
    }
}

/// Sleeps `d` unless `stop` is cancelled first (checked every 20 ms: a std thread has no way
/// to wait on a token); false when stopped.
pub(crate) fn sleep_unless_stopped(stop: &CancellationToken, d: Duration) -> bool {
    const SLICE: Duration = Duration::from_millis(20);
    let end = std::time::Instant::now() + d;
    loop {
        if stop.is_cancelled() {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep(SLICE.min(end - now));
    }
}
