//! The NameNode daemon: the control RPC server over the [`Journal`] (namespace) and the
//! [`BlockMap`] (replicas), with the background loops that keep them honest.
//!
//! ```text
//! clients ──ClientRequest──┐                      ┌── journal (namespace, durable)
//!                          ├─ one task per conn ──┤
//! DataNodes ─DatanodeReq───┘                      └── State (block map, registrations,
//!                                                      command queues)  [std Mutex]
//! loops: view watcher (datanode group) · replication monitor tick · lease monitor ·
//!        block recoveries · own membership (namenode/<id>: the epoch on every command)
//! ```
//!
//! **Block map mirroring.** Every write that changes a file's blocks is followed by a read on
//! the journal's actor that copies that file's blocks (stamp, length, replication, open or
//! not) into the block map, under the state lock; reads run after the applies before them, so
//! the block map never goes back to an older view of a file. Blocks an entry removed go
//! through [`BlockMap::remove_block`]. At start every file's blocks are loaded before the RPC
//! port opens, so that block reports never delete replicas of blocks not yet loaded.
//!
//! **DataNodes.** Liveness comes from the membership view of group `datanode`; a DataNode is
//! admitted by `Register` only with the incarnation the view lists (waiting a moment for the
//! view when the DataNode is quicker than the watch), and every later request must carry it:
//! any other is answered `UnregisteredNodeException`, and the DataNode registers again. A
//! DataNode that leaves the view is dropped from the block map at once, which makes its
//! blocks under-replicated, and the next monitor tick schedules copies.
//!
//! **Epoch.** The NameNode's own incarnation (its member znode's czxid) is the epoch on every
//! command. Until it is a member, and while expelled, it sends no commands.
//!
//! Layout: `server/client.rs` answers clients, `server/datanode.rs` DataNodes,
//! `server/monitor.rs` runs the loops, `server/recovery.rs` recovers abandoned blocks,
//! `server/convert.rs` maps between the namespace's types and the wire's.

mod client;
mod convert;
mod datanode;
mod http;
pub use http::StatusPage;
mod monitor;
mod recovery;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dfs_proto::dn_nn::DatanodeCommand;
use dfs_proto::rpc::{self, Protocol, Request, Response, MAX_FRAME_LEN};
use dfs_proto::{ClientRequest, DatanodeInfo, DatanodeRequest, Message};
use member::client::ClientConfig;
use member::membership::{Membership, MembershipConfig, Status};
use member::report::Reporter;
use member::view::View;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::blockmap::{self, BlockMap};
use crate::journal::{Journal, JournalError, JournalOptions};
use crate::namespace::{Entry, Namespace, Op, Outcome, NO_CLIENT, SUPERUSER};

/// The Java class of the answer to a DataNode the view does not list (HDFS's own).
pub const UNREGISTERED: &str = "org.apache.hadoop.hdfs.protocol.UnregisteredNodeException";
/// The Java class of a request that could not be decoded.
pub use ::rpc::frame::RPC_SERVER_EXCEPTION;
/// Commands queued for one DataNode, at most; older ones are dropped (the monitor reschedules
/// a copy whose command was lost once its pending time-out passes).
const COMMAND_QUEUE_MAX: usize = 4096;

/// How the NameNode runs. Defaults are HDFS's where herd has no reason to differ.
#[derive(Debug, Clone)]
pub struct NamenodeConfig {
    /// Its member id (`namenode/<id>`).
    pub id: String,
    /// The journal's directory (log and checkpoints).
    pub data_dir: PathBuf,
    /// The control RPC port (HDFS: 8020).
    pub rpc_listen: SocketAddr,
    /// Its own membership (group `namenode`); its incarnation is the command epoch.
    pub membership: MembershipConfig,
    /// The session that watches the `datanode` group.
    pub watch_client: ClientConfig,
    /// DataNode id, or the host of its data address, to rack (`/rack1`); DataNodes it does
    /// not list keep the rack they report.
    pub topology: BTreeMap<String, String>,
    /// Block size of files created without one (HDFS `dfs.blocksize`, 128 MiB).
    pub block_size: u64,
    /// Replication of files created without one (HDFS `dfs.replication`, 3).
    pub replication: u16,
    /// A writer silent this long loses its file to another writer (HDFS: 60 s).
    pub lease_soft: Duration,
    /// A writer silent this long has its files recovered by the NameNode (HDFS: 20 min in
    /// Hadoop 3; herd 5 min).
    pub lease_hard: Duration,
    /// How often the replication monitor runs (HDFS: 3 s; herd reacts within a tick of the
    /// view change).
    pub monitor_interval: Duration,
    pub blockmap: blockmap::Config,
    pub journal: JournalOptions,
    /// Client and DataNode connections served at once.
    pub max_connections: usize,
    /// HDFS's `dfs.hosts.exclude`: DataNode ids, one per line (`#` comments), to decommission;
    /// read at start and at every `refreshNodes`. None: nothing is excluded.
    pub exclude_file: Option<PathBuf>,
}

impl NamenodeConfig {
    pub const BLOCK_SIZE_DEFAULT: u64 = 128 << 20;
    pub const REPLICATION_DEFAULT: u16 = 3;
    pub const LEASE_SOFT_DEFAULT: Duration = Duration::from_secs(60);
    pub const LEASE_HARD_DEFAULT: Duration = Duration::from_secs(300);
    pub const MONITOR_INTERVAL_DEFAULT: Duration = Duration::from_millis(250);
}

/// A DataNode admitted by `Register`.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    pub info: DatanodeInfo,
    pub incarnation: i64,
}

/// What the NameNode knows beyond the namespace. One std Mutex: every critical section is a
/// few map operations and never awaits.
pub(crate) struct State {
    pub blocks: BlockMap,
    pub datanodes: BTreeMap<String, Registered>,
    pub commands: BTreeMap<String, VecDeque<DatanodeCommand>>,
    /// DataNode ids the exclude file lists: decommissioned while registered.
    pub excluded: BTreeSet<String>,
}

impl State {
    pub fn queue(&mut self, datanode: &str, cmd: DatanodeCommand) {
        let q = self.commands.entry(datanode.to_string()).or_default();
        if q.len() >= COMMAND_QUEUE_MAX {
            q.pop_front();
        }
        q.push_back(cmd);
    }

    pub fn info(&self, id: &str) -> Option<DatanodeInfo> {
        self.datanodes.get(id).map(|r| r.info.clone())
    }

    /// Takes a new exclude list: registered DataNodes it lists start decommissioning, those it
    /// no longer lists are back in service.
    pub fn set_excluded(&mut self, excluded: BTreeSet<String>) {
        for id in self.datanodes.keys() {
            let r = if excluded.contains(id) { self.blocks.decommission(id) } else { self.blocks.recommission(id) };
            if let Err(e) = r {
                tracing::warn!(datanode = %id, "exclude list: {e}");
            }
        }
        self.excluded = excluded;
    }
}

/// Reads an exclude file: one DataNode id per line, `#` starts a comment.
pub(crate) fn read_exclude_file(p: &std::path::Path) -> std::io::Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(p)?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

pub(crate) struct Shared {
    pub config: NamenodeConfig,
    pub journal: Journal,
    state: Mutex<State>,
    /// The command epoch: the NameNode's incarnation while it is a member, else 0.
    pub epoch: AtomicI64,
    /// The latest view of the `datanode` group.
    pub view: watch::Receiver<Option<View>>,
    /// Files whose abandoned last block is being recovered (inode ids).
    pub recovering: Mutex<BTreeSet<u64>>,
    pub stop: CancellationToken,
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Proposes `op` as the NameNode itself (the superuser; no retry cache).
    pub async fn propose_own(&self, op: Op) -> Result<Outcome, JournalError> {
        let e = Entry {
            time_ms: now_ms(),
            user: SUPERUSER.into(),
            groups: Vec::new(),
            client_id: NO_CLIENT,
            call_id: 0,
            op,
        };
        self.journal.propose(e).await
    }

    /// Copies a file's blocks into the block map and drops `removed` (see the module
    /// documentation: it runs on the journal's actor, after every apply before it). The file
    /// is found on the actor too, in the same read.
    pub async fn mirror(self: &Arc<Self>, file: MirrorOf, removed: Vec<u64>) -> Result<(), JournalError> {
        let s = self.clone();
        self.journal
            .read(move |ns| {
                let mut st = s.state();
                for b in removed {
                    st.blocks.remove_block(b);
                }
                let id = match file {
                    MirrorOf::Nothing => None,
                    MirrorOf::File(id) => Some(id),
                    MirrorOf::Path(p) => ns.lookup(&p).map(|i| i.id),
                    MirrorOf::BlockFile(b) => ns.file_of_block(b).map(|(f, _)| f),
                };
                if let Some(id) = id {
                    mirror_file(ns, &mut st.blocks, id);
                }
            })
            .await
    }
}

/// Which file [`Shared::mirror`] copies into the block map.
pub(crate) enum MirrorOf {
    Nothing,
    File(u64),
    Path(String),
    /// The file holding this block.
    BlockFile(u64),
}

/// The block map's view of one file (nothing if it is gone).
pub(crate) fn mirror_file(ns: &Namespace, blocks: &mut BlockMap, file_id: u64) {
    let Some(f) = ns.inode(file_id).and_then(|i| i.file()) else { return };
    let open = f.uc.as_ref().is_some_and(|u| u.open_block);
    let n = f.blocks.len();
    for (i, b) in f.blocks.iter().enumerate() {
        blocks.set_block(*b, f.replication, open && i + 1 == n);
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Why the NameNode did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("binding the RPC port {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("membership: {0}")]
    Member(#[from] member::view::MemberError),
    #[error("exclude file {path}: {source}")]
    Exclude { path: PathBuf, source: std::io::Error },
}

/// A running NameNode. [`Namenode::shutdown`] stops it.
pub struct Namenode {
    rpc_addr: SocketAddr,
    shared: Arc<Shared>,
    membership: Option<Membership>,
    tasks: Vec<JoinHandle<()>>,
}

impl Namenode {
    /// Recovers the namespace, loads its blocks into the block map, opens the RPC port and
    /// starts the loops. `reporter` hands the membership session to a supervisor.
    pub async fn start(config: NamenodeConfig, reporter: Option<Reporter>) -> Result<Namenode, StartError> {
        let journal = Journal::open_with(&config.data_dir, 1, config.journal.clone()).await?;
        let mut blocks = BlockMap::new(config.blockmap.clone());
        let loaded = journal
            .read(move |ns| {
                for (id, _) in ns.files() {
                    mirror_file(ns, &mut blocks, id);
                }
                blocks
            })
            .await?;
        let excluded = match &config.exclude_file {
            Some(p) if p.exists() => {
                read_exclude_file(p).map_err(|source| StartError::Exclude { path: p.clone(), source })?
            }
            _ => BTreeSet::new(),
        };
        let listener = TcpListener::bind(config.rpc_listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.rpc_listen, source })?;
        let rpc_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.rpc_listen, source })?;
        let membership = Membership::start(config.membership.clone(), reporter)?;
        let (view_tx, view_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            journal,
            state: Mutex::new(State {
                blocks: loaded,
                datanodes: BTreeMap::new(),
                commands: BTreeMap::new(),
                excluded,
            }),
            epoch: AtomicI64::new(0),
            view: view_rx,
            recovering: Mutex::new(BTreeSet::new()),
            stop: CancellationToken::new(),
            config,
        });
        let mut tasks = vec![
            tokio::spawn(accept_loop(listener, shared.clone())),
            tokio::spawn(monitor::watch_epoch(shared.clone(), membership.status())),
            tokio::spawn(monitor::watch_datanodes(shared.clone(), view_tx)),
        ];
        tasks.push(tokio::spawn(monitor::replication(shared.clone())));
        tasks.push(tokio::spawn(monitor::leases(shared.clone())));
        tracing::info!(rpc = %rpc_addr, "namenode started");
        Ok(Namenode { rpc_addr, shared, membership: Some(membership), tasks })
    }

    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// The `/status` page (for the HTTP port, which the caller serves).
    pub fn status_page(&self) -> StatusPage {
        StatusPage(Arc::downgrade(&self.shared))
    }

    /// The membership status (the epoch is its incarnation while `Member`).
    pub fn status(&self) -> Option<watch::Receiver<Status>> {
        self.membership.as_ref().map(|m| m.status())
    }

    /// Stops the loops and the RPC port, leaves the membership, and shuts the journal down.
    pub async fn shutdown(mut self) {
        self.shared.stop.cancel();
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        if let Some(m) = self.membership.take() {
            m.leave().await;
        }
        // Connection tasks hold the shared state (and the journal) until they see the stop.
        let mut shared = self.shared;
        for _ in 0..200 {
            match Arc::try_unwrap(shared) {
                Ok(s) => {
                    s.journal.shutdown().await;
                    return;
                }
                Err(again) => shared = again,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::warn!("namenode: connections still hold the journal after 2 s; leaving it to the runtime");
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let (max, stop) = (shared.config.max_connections, shared.stop.clone());
    ::rpc::server::accept_loop("namenode", listener, max, stop, |stream, peer| serve(stream, peer, shared.clone()))
        .await
}

/// One connection: the preamble, then requests answered in order.
async fn serve(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut pre = [0u8; 6];
    stream.read_exact(&mut pre).await.map_err(|e| format!("preamble: {e}"))?;
    let protocol = match Protocol::from_preamble(pre) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%peer, "refused: bad preamble: {e}");
            return Err(format!("bad preamble: {e}"));
        }
    };
    loop {
        let mut prefix = [0u8; 4];
        match stream.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let len = match rpc::frame_len(prefix, MAX_FRAME_LEN) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%peer, "refused: {e}");
                return Err(e.to_string());
            }
        };
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.map_err(|e| e.to_string())?;
        let answer = match protocol {
            Protocol::ClientNamenode => match Request::<ClientRequest>::from_bytes(&body) {
                Ok(req) => {
                    let call_id = req.header.call_id;
                    let result = client::handle(&shared, req, peer).await;
                    ::rpc::frame::response_frame(&Response { call_id, result })
                }
                Err(e) => malformed(&body, &e, peer),
            },
            Protocol::DatanodeNamenode => match Request::<DatanodeRequest>::from_bytes(&body) {
                Ok(req) => {
                    let call_id = req.header.call_id;
                    let result = datanode::handle(&shared, req.body).await;
                    ::rpc::frame::response_frame(&Response { call_id, result })
                }
                Err(e) => malformed(&body, &e, peer),
            },
        };
        let (frame, close) = answer;
        stream.write_all(&frame).await.map_err(|e| e.to_string())?;
        if close {
            let _ = stream.shutdown().await;
            return Err("malformed request".into());
        }
    }
}

/// The answer to a request that does not decode (see `rpc::malformed_frame`); logged here.
fn malformed(body: &[u8], e: &dfs_proto::DecodeError, peer: SocketAddr) -> (Vec<u8>, bool) {
    tracing::warn!(%peer, "refused a malformed request: {e}");
    ::rpc::frame::malformed_frame::<dfs_proto::ClientResponse>(body, e)
}
