//! The NodeManager daemon (`herd nodemanager`): the containers, the control port (AM <-> NM,
//! `daemon/ctl.rs`, which fetches a launch context's files from the DFS with
//! [`crate::localize`]), the shuffle port ([`crate::shuffle`]), the HTTP server for container
//! logs ([`crate::logs`], when `listen_http` is set), the health checker, a membership in group
//! [`GROUP`], and the conversation with the ResourceManager (`daemon/service.rs`).
//!
//! ```text
//! Membership (task) ──status──> service thread ──RegisterNodeManager, NodeHeartbeat──> RM
//!   container ends (task) ──completed statuses──┘  <── kill, finished apps/attempts, resync
//!   health task ──health──┘
//! AM ──StartContainer(token), StopContainer, GetContainerStatus──> ctl port (tasks)
//! reducer ──fetch──> shuffle port
//! `herd job logs` ──GET /logs/...──> http port
//! ```
//!
//! **Tokens.** A container starts only with a token that verifies under the RM's secret
//! (read from the keeper at [`SECRET_PATH`] at start, and again, at most once a second, when
//! a token does not verify: the RM may have made it after this node started), names this
//! node, belongs to an attempt not known to be finished, and is not older than the newest RM
//! epoch seen.
//!
//! **Completed containers are reported until acknowledged**: a completed status rides on
//! every heartbeat until one of them is answered (by an RM not older than the newest seen).
//!
//! **It acts only as a member.** Before its first membership it sends nothing; expelled, it
//! kills its containers (they belong to the old incarnation) and registers again as the new
//! one. An RM answer from an older epoch than the newest seen is ignored.

mod ctl;
mod service;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use compute_proto::exit_status;
use compute_proto::ids::{ApplicationAttemptId, ApplicationId, ContainerId, NodeId};
use compute_proto::records::{ContainerState, ContainerStatus, Resource};
use member::client::{ClientConfig, Session};
use member::fence::Fence;
use member::membership::{Membership, MembershipConfig, Status};
use member::report::Reporter;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::containers::{self, ContainerExit, Containers, Ended};
use crate::health::{Health, HealthScript};
use crate::logs::LogServer;
use crate::shuffle::{self, ShuffleServer};

/// The membership group of NodeManagers (`/herd/members/nodemanager/<id>`).
pub const GROUP: &str = "nodemanager";
/// The znode holding the RM's container-token secret (the RM creates it).
pub const SECRET_PATH: &str = "/herd/rm/secret";
/// The control port unless told otherwise (YARN's NodeManager web port is 8042; herd's
/// control port takes the number, see ARCHITECTURE.md).
pub const LISTEN_CTL_DEFAULT: &str = "127.0.0.1:8042";
pub const LISTEN_SHUFFLE_DEFAULT: &str = shuffle::LISTEN_DEFAULT;
pub const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_millis(500);
pub const HEALTH_INTERVAL_DEFAULT: Duration = Duration::from_secs(10);
pub const RPC_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
pub const RACK_DEFAULT: &str = "/default-rack";
/// Control-port connections at once.
pub const MAX_CONNECTIONS_DEFAULT: usize = 256;
/// Containers running at once, whatever the tokens say.
pub const MAX_CONTAINERS: usize = 1024;
/// Completed statuses kept for the RM while it does not answer; past this the oldest go.
const COMPLETED_MAX: usize = 10_000;
/// Finished attempts and apps remembered (to refuse their tokens); past this the oldest go.
const FINISHED_MAX: usize = 10_000;
/// The secret is read again at most this often.
const SECRET_REREAD: Duration = Duration::from_secs(1);

/// How a NodeManager runs. [`NodemanagerConfig::new`] gives the defaults above.
#[derive(Debug, Clone)]
pub struct NodemanagerConfig {
    /// Its member id in group [`GROUP`] and its name to the RM.
    pub id: String,
    /// Local dirs: containers' working dirs and map outputs (`usercache/...`). At least one.
    pub local_dirs: Vec<PathBuf>,
    /// Containers' stdout and stderr go to `<log_dir>/<app>/<container>/`.
    pub log_dir: PathBuf,
    /// The RM's `host:port` (ResourceTracker protocol); also given to containers.
    pub rm: String,
    /// The keeper session; `group`, `id`, `payload` are set by the daemon.
    pub membership: MembershipConfig,
    /// What it offers containers.
    pub resource: Resource,
    /// The control port; port 0 picks one. Its IP is the node id's host, so give the address
    /// others reach it by (not 0.0.0.0).
    pub listen_ctl: SocketAddr,
    pub listen_shuffle: SocketAddr,
    /// `host:port` of its HTTP server, sent at registration ("" when none).
    pub http_addr: String,
    /// Where its HTTP server (container logs, [`crate::logs`]) listens; None: no HTTP server.
    /// Port 0 picks one. The bound address replaces `http_addr`, so give the address others
    /// reach it by (not 0.0.0.0), as for the control port.
    pub listen_http: Option<SocketAddr>,
    /// The NameNode's RPC address, for containers' files from the DFS (launch contexts'
    /// `files`); None: a launch context with files is refused.
    pub namenode: Option<String>,
    pub rack: String,
    pub heartbeat_interval: Duration,
    /// None: always healthy.
    pub health_script: Option<HealthScript>,
    pub health_interval: Duration,
    /// Bounds one attempt of an RM call.
    pub rpc_timeout: Duration,
    pub max_connections: usize,
    pub containers: containers::Config,
}

impl NodemanagerConfig {
    pub fn new(id: &str, local_dirs: Vec<PathBuf>, log_dir: PathBuf, rm: &str, membership: MembershipConfig) -> Self {
        NodemanagerConfig {
            id: id.to_owned(),
            local_dirs,
            log_dir,
            rm: rm.to_owned(),
            membership,
            resource: Resource { memory_mb: 8192, vcores: 8 },
            listen_ctl: LISTEN_CTL_DEFAULT.parse().expect("a literal socket address"),
            listen_shuffle: LISTEN_SHUFFLE_DEFAULT.parse().expect("a literal socket address"),
            http_addr: String::new(),
            listen_http: None,
            namenode: None,
            rack: RACK_DEFAULT.to_owned(),
            heartbeat_interval: HEARTBEAT_INTERVAL_DEFAULT,
            health_script: None,
            health_interval: HEALTH_INTERVAL_DEFAULT,
            rpc_timeout: RPC_TIMEOUT_DEFAULT,
            max_connections: MAX_CONNECTIONS_DEFAULT,
            containers: containers::Config::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no local dir given")]
    NoLocalDirs,
    #[error("{what} port {addr}: {source}")]
    Listen { what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("membership: {0}")]
    Member(#[from] member::view::MemberError),
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
}

/// What the daemon's tasks and threads share; one std Mutex, never held across I/O or an
/// await (every critical section is a few map operations).
#[derive(Default)]
pub(crate) struct State {
    pub(crate) secret: Option<Vec<u8>>,
    pub(crate) secret_read: Option<Instant>,
    pub(crate) live: BTreeSet<ContainerId>,
    /// Completed, not yet acknowledged by the RM.
    pub(crate) completed: BTreeMap<ContainerId, ContainerStatus>,
    /// The last completed statuses, for GetContainerStatus and to refuse a second start.
    pub(crate) recent: VecDeque<ContainerStatus>,
    /// Why a container was stopped (an `exit_status` constant), until its end is reported.
    pub(crate) kill_reason: BTreeMap<ContainerId, i32>,
    pub(crate) finished_attempts: BTreeSet<ApplicationAttemptId>,
    finished_order: VecDeque<ApplicationAttemptId>,
    pub(crate) health: Option<Health>,
}

pub(crate) struct Shared {
    pub(crate) cfg: NodemanagerConfig,
    pub(crate) node_id: NodeId,
    pub(crate) ctl_addr: SocketAddr,
    pub(crate) shuffle_addr: SocketAddr,
    pub(crate) containers: Containers,
    pub(crate) state: Mutex<State>,
    /// The newest RM epoch seen (from answers and tokens' signers).
    pub(crate) fence: Fence,
    pub(crate) stop: CancellationToken,
    pub(crate) runtime: tokio::runtime::Handle,
    /// Held while the secret is read again, so that a second StartContainer arriving meanwhile
    /// waits for that read instead of being refused for want of a secret.
    pub(crate) secret_reread: tokio::sync::Mutex<()>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops a container, remembering why (the status it completes with).
    pub(crate) fn kill(&self, id: &ContainerId, reason: i32) -> bool {
        let mut st = self.lock();
        if !st.live.contains(id) {
            return false;
        }
        st.kill_reason.entry(*id).or_insert(reason);
        drop(st);
        // A container still fetching its files has no process yet: `ctl::start` finds the
        // reason and does not launch it.
        self.containers.kill(&id.to_string());
        true
    }

    /// Stops every container whose id `pick` chooses.
    pub(crate) fn kill_where(&self, reason: i32, pick: impl Fn(&ContainerId) -> bool) {
        let ids: Vec<ContainerId> = self.lock().live.iter().filter(|c| pick(c)).copied().collect();
        for id in ids {
            self.kill(&id, reason);
        }
    }

    /// An attempt ended: its tokens start nothing from now on.
    pub(crate) fn attempt_finished(&self, a: ApplicationAttemptId) {
        let mut st = self.lock();
        if st.finished_attempts.insert(a) {
            st.finished_order.push_back(a);
            if st.finished_order.len() > FINISHED_MAX {
                if let Some(old) = st.finished_order.pop_front() {
                    st.finished_attempts.remove(&old);
                }
            }
        }
    }

    /// An application ended: its containers are killed and its local dirs deleted once they
    /// are gone.
    pub(crate) fn app_finished(self: &Arc<Self>, app: ApplicationId) {
        self.kill_where(exit_status::KILLED_AFTER_APP_COMPLETION, |c| c.app() == app);
        let me = self.clone();
        let delay = self.cfg.containers.kill_delay * 2;
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let dirs = me.cfg.local_dirs.clone();
            let _ = tokio::task::spawn_blocking(move || delete_app_dirs(&dirs, &app)).await;
        });
    }

    /// Reads the RM's secret from the keeper again, unless one was read less than a second
    /// ago; true if it changed. Without a secret it always reads: a token arriving just after
    /// a first read found none (the RM made its secret meanwhile) must not be refused.
    pub(crate) async fn reread_secret(&self) -> bool {
        let _one_at_a_time = self.secret_reread.lock().await;
        {
            let mut st = self.lock();
            if st.secret.is_some() && st.secret_read.is_some_and(|t| t.elapsed() < SECRET_REREAD) {
                return false;
            }
            st.secret_read = Some(Instant::now());
        }
        match read_secret(self.cfg.membership.client.clone()).await {
            Ok(s) => {
                let mut st = self.lock();
                let changed = st.secret.as_ref() != Some(&s);
                st.secret = Some(s);
                changed
            }
            Err(e) => {
                tracing::warn!("reading the RM's secret at {SECRET_PATH}: {e}");
                false
            }
        }
    }

    /// A container's end, as the RM is told.
    pub(crate) fn completed(&self, exit: ContainerExit) {
        let Ok(id) = exit.id.parse::<ContainerId>() else {
            tracing::warn!(container = %exit.id, "an end of a container with a foreign id");
            return;
        };
        let mut st = self.lock();
        st.live.remove(&id);
        let reason = st.kill_reason.remove(&id);
        let exit_status = match exit.ended {
            Ended::Exited(_) | Ended::Signaled(_) => exit.exit_status,
            Ended::Killed => reason.unwrap_or(exit_status::KILLED_BY_APPMASTER),
            Ended::OverMemory { .. } => exit_status::KILLED_EXCEEDED_PMEM,
        };
        let status = ContainerStatus {
            container_id: id,
            state: ContainerState::Complete,
            exit_status,
            diagnostics: exit.diagnostics,
        };
        st.completed.insert(id, status.clone());
        while st.completed.len() > COMPLETED_MAX {
            st.completed.pop_first();
        }
        st.recent.push_back(status);
        while st.recent.len() > COMPLETED_MAX {
            st.recent.pop_front();
        }
    }
}

/// `usercache/*/appcache/<app>` under every local dir, deleted.
fn delete_app_dirs(local_dirs: &[PathBuf], app: &ApplicationId) {
    for local in local_dirs {
        let Ok(users) = std::fs::read_dir(local.join("usercache")) else { continue };
        for user in users.flatten() {
            let dir = user.path().join("appcache").join(app.to_string());
            if dir.exists() {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), "deleting a finished app's dir: {e}");
                }
            }
        }
    }
}

/// The RM's secret from the keeper (one short session).
pub async fn read_secret(client: ClientConfig) -> Result<Vec<u8>, member::client::Error> {
    let session = Session::connect(client).await?;
    let got = session.get_data(SECRET_PATH, false).await;
    let _ = session.close().await;
    Ok(got?.0)
}

/// A running NodeManager.
pub struct Nodemanager {
    shared: Arc<Shared>,
    status: watch::Receiver<Status>,
    membership: Option<Membership>,
    shuffle: Option<ShuffleServer>,
    logs: Option<LogServer>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Nodemanager {
    /// Binds the control and shuffle ports, reads the secret (absent is not an error: the RM
    /// may come later), joins the membership and starts the service thread. Runs on a tokio
    /// runtime.
    pub async fn start(mut cfg: NodemanagerConfig, reporter: Option<Reporter>) -> Result<Nodemanager, StartError> {
        if cfg.local_dirs.is_empty() {
            return Err(StartError::NoLocalDirs);
        }
        // Containers run in their own working dirs: every path they are given must be absolute.
        for d in cfg.local_dirs.iter_mut().chain([&mut cfg.log_dir]) {
            if let Ok(abs) = std::path::absolute(&*d) {
                *d = abs;
            }
        }
        let ctl = tokio::net::TcpListener::bind(cfg.listen_ctl).await.map_err(|source| StartError::Listen {
            what: "control",
            addr: cfg.listen_ctl,
            source,
        })?;
        let ctl_addr =
            ctl.local_addr().map_err(|source| StartError::Listen { what: "control", addr: cfg.listen_ctl, source })?;
        let shuffle = ShuffleServer::start(cfg.listen_shuffle, cfg.local_dirs.clone(), cfg.max_connections)
            .await
            .map_err(|source| StartError::Listen { what: "shuffle", addr: cfg.listen_shuffle, source })?;
        let mut cfg = cfg;
        let logs = match cfg.listen_http {
            Some(listen) => {
                let server = LogServer::start(listen, cfg.log_dir.clone())
                    .await
                    .map_err(|source| StartError::Listen { what: "http", addr: listen, source })?;
                cfg.http_addr = server.local_addr().to_string();
                Some(server)
            }
            None => None,
        };
        let stop = CancellationToken::new();
        let (containers, events) = Containers::start(cfg.containers.clone(), stop.clone());

        let mut mcfg = cfg.membership.clone();
        mcfg.group = GROUP.to_owned();
        mcfg.id = cfg.id.clone();
        mcfg.payload = ctl_addr.to_string().into_bytes();
        let membership = Membership::start(mcfg, reporter)?;
        let status = membership.status();

        let shared = Arc::new(Shared {
            node_id: NodeId { host: ctl_addr.ip().to_string(), port: ctl_addr.port() },
            ctl_addr,
            shuffle_addr: shuffle.local_addr(),
            containers,
            state: Mutex::new(State::default()),
            fence: Fence::new(),
            stop: stop.clone(),
            runtime: tokio::runtime::Handle::current(),
            secret_reread: tokio::sync::Mutex::new(()),
            cfg,
        });
        let mut nm = Nodemanager {
            shared: shared.clone(),
            status: status.clone(),
            membership: Some(membership),
            shuffle: Some(shuffle),
            logs,
            tasks: Vec::new(),
            threads: Vec::new(),
        };
        if !shared.reread_secret().await {
            tracing::info!("no RM secret yet at {SECRET_PATH}; read again when a token arrives");
        }
        nm.tasks.push(tokio::spawn(container_ends(shared.clone(), events)));
        nm.tasks.push(tokio::spawn(ctl::accept_loop(ctl, shared.clone())));
        if let Some(script) = shared.cfg.health_script.clone() {
            nm.tasks.push(tokio::spawn(health_loop(shared.clone(), script)));
        }
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("nm-service-{}", shared.cfg.id))
            .spawn(move || service::run(s, status));
        match spawned {
            Ok(t) => nm.threads.push(t),
            Err(e) => {
                nm.shutdown().await;
                return Err(StartError::Thread(e));
            }
        }
        tracing::info!(id = %shared.cfg.id, ctl = %ctl_addr, shuffle = %shared.shuffle_addr, http = %shared.cfg.http_addr, rm = %shared.cfg.rm, "nodemanager started");
        Ok(nm)
    }

    pub fn ctl_addr(&self) -> SocketAddr {
        self.shared.ctl_addr
    }

    pub fn shuffle_addr(&self) -> SocketAddr {
        self.shared.shuffle_addr
    }

    /// The HTTP server's address (container logs), if it runs one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.logs.as_ref().map(|l| l.local_addr())
    }

    /// Its YARN node id (the control port's address): what tokens for it name.
    pub fn node_id(&self) -> NodeId {
        self.shared.node_id.clone()
    }

    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The newest RM epoch seen.
    pub fn rm_epoch(&self) -> i64 {
        self.shared.fence.current()
    }

    /// Stops everything: the service thread, the ports, every container (killed), the
    /// membership (left, so the member znode goes at once).
    pub async fn shutdown(mut self) {
        self.shared.stop.cancel();
        self.shared.containers.kill_all();
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
        if let Some(s) = self.shuffle.take() {
            s.shutdown().await;
        }
        if let Some(s) = self.logs.take() {
            s.shutdown().await;
        }
        if let Some(m) = self.membership.take() {
            m.leave().await;
        }
        tracing::info!(ctl = %self.shared.ctl_addr, "nodemanager stopped");
    }
}

impl Drop for Nodemanager {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

async fn container_ends(shared: Arc<Shared>, mut events: mpsc::Receiver<ContainerExit>) {
    loop {
        let exit = tokio::select! {
            _ = shared.stop.cancelled() => return,
            e = events.recv() => match e {
                Some(e) => e,
                None => return,
            },
        };
        shared.completed(exit);
    }
}

async fn health_loop(shared: Arc<Shared>, script: HealthScript) {
    let mut tick = tokio::time::interval(shared.cfg.health_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let h = script.check().await;
        if !h.healthy {
            tracing::warn!("node unhealthy: {}", h.report);
        }
        shared.lock().health = Some(h);
    }
}

/// Sleeps `d` unless `stop` is cancelled first (checked every 20 ms); false when stopped.
pub(crate) fn sleep_unless_stopped(stop: &CancellationToken, d: Duration) -> bool {
    const SLICE: Duration = Duration::from_millis(20);
    let end = Instant::now() + d;
    loop {
        if stop.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep(SLICE.min(end - now));
    }
}
