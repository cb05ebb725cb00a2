//! The ResourceManager daemon: the two state machines ([`crate::scheduler`],
//! [`crate::attempts`]) behind one lock, the keeper store, the RPC port and the loops.
//!
//! **Concurrency.** All mutable state is one [`Core`] behind a `std::sync::Mutex`. Every
//! request's work on it is a short, synchronous call into the pure machines (no `.await` while
//! the lock is held); the slow parts — keeper writes and the AM launch call to a NodeManager —
//! happen after the lock is released. An actor would serialize the same work through a
//! channel and add a hop per request without buying anything here (mini-redis's argument).
//!
//! **Store writes** are ordered by a second, async lock ([`Shared::store`]): [`Shared::flush`]
//! takes it, then snapshots the apps marked dirty under the core lock, then writes them. A
//! later snapshot is therefore never overwritten by an earlier one. A submission is
//! acknowledged only after its flush succeeded.
//!
//! Layout: `client.rs`, `am.rs`, `nm.rs` are the three protocols' handlers; `monitor.rs` the
//! loops (own epoch, the `nodemanager` view, AM expiry) and the AM launcher.

mod am;
mod client;
mod monitor;
mod nm;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use compute_proto::ids::{self as wire, ApplicationAttemptId, ApplicationId};
use compute_proto::records::{
    self as rec, ApplicationSubmission, ContainerLaunchContext, ContainerState, ContainerStatus,
};
use compute_proto::token::ContainerToken;
use compute_proto::{
    ApplicationClientRequest, ApplicationMasterRequest, ContainerManagementRequest, ResourceTrackerRequest,
};
use member::client::ClientConfig;
use member::membership::{Membership, MembershipConfig};
use member::report::Reporter;
use member::view::View;
use rpc::codec::Message;
use rpc::frame::{self as frame, Protocol, Request, Response, MAX_FRAME_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::attempts::{self, AppState, AttemptRecord, AttemptState, Attempts, Decision, FinalStatus};
use crate::scheduler::{self, Scheduler};
use crate::store::{Store, StoreError, StoredApp, StoredAttempt, StoredContainer};
use crate::types::{AppId, AttemptId, ContainerId, Resources};

/// How the ResourceManager runs.
#[derive(Clone)]
pub struct RmConfig {
    pub rpc_listen: SocketAddr,
    /// Its own membership (`resourcemanager/<id>`); its incarnation is the RM epoch.
    pub membership: MembershipConfig,
    /// The store's session and the `nodemanager` view's.
    pub keeper: ClientConfig,
    pub scheduler: scheduler::Config,
    pub attempts: attempts::Config,
    /// Open connections at most; more are refused at accept.
    pub max_connections: usize,
    /// Unfinished apps at most; a submission beyond is refused.
    pub max_apps: usize,
    /// How often AM expiry is checked.
    pub expiry_check: Duration,
}

impl RmConfig {
    pub const LISTEN_DEFAULT: &'static str = "127.0.0.1:8032";
    pub const MAX_CONNECTIONS_DEFAULT: usize = 1024;
    pub const MAX_APPS_DEFAULT: usize = 10_000;
}

/// What the RM knows of an app beyond its lifecycle record.
pub(crate) struct AppInfo {
    pub id: ApplicationId,
    pub user: String,
    pub submission: ApplicationSubmission,
    pub start_ms: u64,
    pub finish_ms: Option<u64>,
    pub am_host: String,
    pub am_rpc_port: u16,
    pub tracking_url: String,
    pub progress: rec::Progress,
    /// Containers of the current attempt allocated since its AM's last Allocate.
    pub allocated: Vec<rec::Container>,
    /// Containers of the app that completed since its AM's last Allocate.
    pub completed: Vec<ContainerStatus>,
    /// Nodes lost since its AM's last Allocate (YARN's updated nodes), at most
    /// `UPDATED_NODES_MAX` (the oldest go first).
    pub updated_nodes: Vec<rec::NodeReport>,
    pub response_id: u32,
}

/// Node updates kept for an AM that does not call.
pub(crate) const UPDATED_NODES_MAX: usize = 1000;

/// A registered NodeManager.
pub(crate) struct NodeInfo {
    pub incarnation: i64,
    pub ctl_addr: wire::NodeId,
    pub http_addr: String,
    pub rack: String,
    pub capability: rec::Resource,
    pub health: rec::NodeHealth,
    pub health_ms: u64,
    /// Containers to kill, told in its next heartbeat.
    pub to_kill: BTreeSet<wire::ContainerId>,
}

/// The mutable state. See the module documentation for why it is one mutex.
pub(crate) struct Core {
    pub scheduler: Scheduler,
    pub attempts: Attempts,
    pub apps: BTreeMap<AppId, AppInfo>,
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Apps whose stored record is older than the one in memory.
    pub dirty: BTreeSet<AppId>,
    /// Ended attempts and apps, told to every NodeManager (the newest `FINISHED_KEEP`).
    pub finished_attempts: Vec<ApplicationAttemptId>,
    pub finished_apps: Vec<ApplicationId>,
    /// AM containers allocated and not yet started, for the launcher.
    pub launches: Vec<Launch>,
    pub view: Option<View>,
}

/// How many ended attempts and apps the heartbeats repeat.
const FINISHED_KEEP: usize = 256;

/// An AM container to start on its NodeManager.
pub(crate) struct Launch {
    pub attempt: AttemptId,
    pub ctl_addr: String,
    pub token: ContainerToken,
    pub launch: ContainerLaunchContext,
    /// The application's user: the AM runs as it (YARN starts the AM as the submitter).
    pub user: String,
}

pub(crate) struct Shared {
    pub config: RmConfig,
    core: Mutex<Core>,
    pub store: tokio::sync::Mutex<Store>,
    pub secret: Vec<u8>,
    /// The container-id epoch of this run (from the store's sequence, 24 bits).
    pub container_epoch: u32,
    /// The RM epoch: its incarnation while a member, else 0.
    pub epoch: AtomicI64,
    /// Apps are numbered `application_<cluster_ts>_<seq>`; `cluster_ts` is this run's start.
    pub cluster_ts: u64,
    pub started: Instant,
    pub stop: CancellationToken,
}

pub(crate) fn now_wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Shared {
    pub fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Monotonic milliseconds since start: the state machines' clock.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Writes every dirty app to the store (see the module documentation for the order).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let mut store = self.store.lock().await;
        let snapshots: Vec<StoredApp> = {
            let mut core = self.core();
            let dirty = std::mem::take(&mut core.dirty);
            dirty.into_iter().filter_map(|a| core.stored(a)).collect()
        };
        for (i, s) in snapshots.iter().enumerate() {
            if let Err(e) = store.save(s).await {
                // Mark what was not written dirty again, so the next flush retries it.
                {
                    let mut core = self.core();
                    for s in &snapshots[i..] {
                        if let Some(app) = core.app_of(&s.app_id) {
                            core.dirty.insert(app);
                        }
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Flushes, logging a failure (the next flush retries).
    pub async fn flush_or_log(&self) {
        if let Err(e) = self.flush().await {
            tracing::error!("writing the RM store: {e}");
        }
    }

    /// Signs a token for a scheduler container.
    pub fn token(&self, core: &Core, c: &scheduler::Container) -> Option<ContainerToken> {
        let attempt = core.wire_attempt(c.attempt)?;
        let node = core.nodes.get(&c.node)?;
        let container_id = wire::ContainerId::new(attempt, self.container_epoch, c.id.seq)?;
        let mut t = ContainerToken {
            container_id,
            node_id: node.ctl_addr.clone(),
            resource: rec::Resource { memory_mb: c.resources.memory_mb, vcores: c.resources.vcores },
            app_attempt: attempt,
            rm_epoch: self.epoch(),
            mac: [0; 32],
        };
        t.sign(&self.secret);
        Some(t)
    }

    /// Carries out the lifecycle's decisions on the scheduler and the node kill lists.
    pub fn apply(&self, core: &mut Core, decisions: Vec<Decision>) {
        for d in decisions {
            match d {
                Decision::StartAttempt(a) => {
                    core.dirty.insert(a.app);
                    let am = core.apps.get(&a.app).map(|i| i.submission.am_resource);
                    let Some(am) = am else { continue };
                    if let Some(info) = core.apps.get_mut(&a.app) {
                        info.allocated.clear();
                        info.am_host.clear();
                        info.am_rpc_port = 0;
                    }
                    match core.scheduler.add_attempt(a, Resources::new(am.memory_mb, am.vcores)) {
                        Ok(old) => self.kill_containers(core, old),
                        Err(e) => tracing::error!("starting {a}: {e}"),
                    }
                    tracing::info!(attempt = %a, "attempt started");
                }
                Decision::KillAttempt(a) => {
                    core.dirty.insert(a.app);
                    if let Some(w) = core.wire_attempt(a) {
                        core.finished_attempts.push(w);
                        trim(&mut core.finished_attempts);
                    }
                    let live: Vec<scheduler::Container> =
                        core.scheduler.containers().filter(|c| c.attempt == a).cloned().collect();
                    for c in &live {
                        let _ = core.scheduler.release(a, c.id);
                    }
                    self.kill_containers(core, live);
                }
                Decision::AppFinished { app, state, final_status, diagnostics } => {
                    core.dirty.insert(app);
                    let live = core.scheduler.remove_app(app);
                    self.kill_containers(core, live);
                    if let Some(info) = core.apps.get_mut(&app) {
                        info.finish_ms = Some(now_wall_ms());
                        let id = info.id;
                        core.finished_apps.push(id);
                        trim(&mut core.finished_apps);
                    }
                    tracing::info!(app = %app, ?state, ?final_status, diagnostics, "application finished");
                }
            }
        }
    }

    /// Tells the containers' NodeManagers to kill them.
    fn kill_containers(&self, core: &mut Core, containers: Vec<scheduler::Container>) {
        for c in containers {
            let Some(attempt) = core.wire_attempt(c.attempt) else { continue };
            let Some(id) = wire::ContainerId::new(attempt, self.container_epoch, c.id.seq) else { continue };
            if let Some(n) = core.nodes.get_mut(&c.node) {
                n.to_kill.insert(id);
            }
        }
    }
}

fn trim<T>(v: &mut Vec<T>) {
    if v.len() > FINISHED_KEEP {
        v.drain(..v.len() - FINISHED_KEEP);
    }
}

impl Core {
    pub fn app_of(&self, id: &ApplicationId) -> Option<AppId> {
        let app = AppId(u64::from(id.seq));
        self.apps.get(&app).filter(|i| i.id == *id).map(|_| app)
    }

    pub fn attempt_of(&self, id: &ApplicationAttemptId) -> Option<AttemptId> {
        Some(AttemptId { app: self.app_of(&id.app)?, attempt: id.attempt })
    }

    pub fn wire_attempt(&self, a: AttemptId) -> Option<ApplicationAttemptId> {
        Some(ApplicationAttemptId { app: self.apps.get(&a.app)?.id, attempt: a.attempt })
    }

    /// An internal container id from a wire one of this RM run (`None` for another run's).
    pub fn container_of(&self, id: &wire::ContainerId, epoch: u32) -> Option<ContainerId> {
        (id.epoch == epoch).then_some(ContainerId { epoch: u64::from(epoch), seq: id.seq })
    }

    /// A completed-container status for the app's AM.
    pub fn report_completed(&mut self, app: AppId, status: ContainerStatus) {
        if let Some(info) = self.apps.get_mut(&app) {
            // Bounded: an AM that never calls again has its app expired and finished.
            if info.completed.len() < 100_000 {
                info.completed.push(status);
            }
        }
    }

    pub fn stored(&self, app: AppId) -> Option<StoredApp> {
        let info = self.apps.get(&app)?;
        let r = self.attempts.record(app)?;
        Some(StoredApp {
            app_id: info.id,
            user: info.user.clone(),
            submission: info.submission.clone(),
            start_ms: info.start_ms,
            finish_ms: info.finish_ms,
            max_attempts: r.max_attempts,
            state: app_state_index(r.state),
            final_status: r.final_status.map(|f| final_index(f) + 1).unwrap_or(0),
            diagnostics: r.diagnostics.clone(),
            attempts: r
                .attempts
                .iter()
                .map(|a| StoredAttempt {
                    number: a.number,
                    state: attempt_state_index(a.state),
                    am_container: a.am_container.as_ref().map(|(c, n)| StoredContainer {
                        epoch: c.epoch,
                        seq: c.seq,
                        node: n.clone(),
                    }),
                    counted: a.counted,
                    diagnostics: a.diagnostics.clone(),
                })
                .collect(),
        })
    }

    pub fn report(&self, app: AppId) -> Option<rec::ApplicationReport> {
        let info = self.apps.get(&app)?;
        let r = self.attempts.record(app)?;
        Some(rec::ApplicationReport {
            app_id: info.id,
            user: info.user.clone(),
            queue: info.submission.queue.clone(),
            name: info.submission.name.clone(),
            state: wire_app_state(r.state),
            final_status: match r.final_status {
                None => rec::FinalApplicationStatus::Undefined,
                Some(f) => wire_final(f),
            },
            current_attempt: r.attempts.last().map(|a| ApplicationAttemptId { app: info.id, attempt: a.number }),
            am_host: info.am_host.clone(),
            am_rpc_port: info.am_rpc_port,
            tracking_url: info.tracking_url.clone(),
            diagnostics: r.diagnostics.clone(),
            progress: info.progress,
            start_ms: info.start_ms,
            finish_ms: info.finish_ms,
        })
    }
}

const APP_STATES: [AppState; 7] = [
    AppState::New,
    AppState::Submitted,
    AppState::Accepted,
    AppState::Running,
    AppState::Finished,
    AppState::Failed,
    AppState::Killed,
];
const ATTEMPT_STATES: [AttemptState; 8] = [
    AttemptState::Scheduled,
    AttemptState::Allocated,
    AttemptState::Launched,
    AttemptState::Running,
    AttemptState::Recovering,
    AttemptState::Finished,
    AttemptState::Failed,
    AttemptState::Killed,
];
const FINALS: [FinalStatus; 3] = [FinalStatus::Succeeded, FinalStatus::Failed, FinalStatus::Killed];

fn app_state_index(s: AppState) -> u8 {
    APP_STATES.iter().position(|x| *x == s).unwrap_or(0) as u8
}
fn attempt_state_index(s: AttemptState) -> u8 {
    ATTEMPT_STATES.iter().position(|x| *x == s).unwrap_or(0) as u8
}
fn final_index(s: FinalStatus) -> u8 {
    FINALS.iter().position(|x| *x == s).unwrap_or(0) as u8
}

pub(crate) fn wire_app_state(s: AppState) -> rec::ApplicationState {
    match s {
        AppState::New => rec::ApplicationState::New,
        AppState::Submitted => rec::ApplicationState::Submitted,
        AppState::Accepted => rec::ApplicationState::Accepted,
        AppState::Running => rec::ApplicationState::Running,
        AppState::Finished => rec::ApplicationState::Finished,
        AppState::Failed => rec::ApplicationState::Failed,
        AppState::Killed => rec::ApplicationState::Killed,
    }
}

fn wire_final(f: FinalStatus) -> rec::FinalApplicationStatus {
    match f {
        FinalStatus::Succeeded => rec::FinalApplicationStatus::Succeeded,
        FinalStatus::Failed => rec::FinalApplicationStatus::Failed,
        FinalStatus::Killed => rec::FinalApplicationStatus::Killed,
    }
}

/// The stored record back as the lifecycle's, or why not.
fn record_of(s: &StoredApp, app: AppId) -> Result<attempts::AppRecord, String> {
    let app_state = *APP_STATES.get(usize::from(s.state)).ok_or_else(|| format!("app state {}", s.state))?;
    let final_status = match s.final_status {
        0 => None,
        n => Some(*FINALS.get(usize::from(n) - 1).ok_or_else(|| format!("final status {n}"))?),
    };
    let mut attempts = Vec::new();
    for a in &s.attempts {
        let state = *ATTEMPT_STATES.get(usize::from(a.state)).ok_or_else(|| format!("attempt state {}", a.state))?;
        attempts.push(AttemptRecord {
            number: a.number,
            state,
            am_container: a.am_container.as_ref().map(|c| (ContainerId { epoch: c.epoch, seq: c.seq }, c.node.clone())),
            counted: a.counted,
            diagnostics: a.diagnostics.clone(),
        });
    }
    Ok(attempts::AppRecord {
        app,
        max_attempts: s.max_attempts,
        state: app_state,
        final_status,
        diagnostics: s.diagnostics.clone(),
        attempts,
    })
}

/// A container status completed with `exit`.
pub(crate) fn completed_status(id: wire::ContainerId, exit: i32, diagnostics: String) -> ContainerStatus {
    ContainerStatus { container_id: id, state: ContainerState::Complete, exit_status: exit, diagnostics }
}

/// Why the ResourceManager did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("binding the RPC port {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("membership: {0}")]
    Member(#[from] member::view::MemberError),
    #[error("scheduler: {0}")]
    Scheduler(#[from] scheduler::Error),
}

/// A running ResourceManager; [`ResourceManager::shutdown`] stops it.
pub struct ResourceManager {
    rpc_addr: SocketAddr,
    shared: Arc<Shared>,
    membership: Option<Membership>,
    tasks: Vec<JoinHandle<()>>,
}

impl ResourceManager {
    /// Opens the store (secret, epoch), reloads the unfinished apps, opens the RPC port and
    /// starts the loops.
    pub async fn start(config: RmConfig, reporter: Option<Reporter>) -> Result<ResourceManager, StartError> {
        let mut store = Store::open(config.keeper.clone()).await?;
        let secret = store.secret().await?;
        let container_epoch = (store.next("epoch").await? % u64::from(wire::ContainerId::EPOCH_MAX)) as u32;
        let stored = store.load_all().await?;
        let mut sched_config = config.scheduler.clone();
        sched_config.epoch = u64::from(container_epoch);
        let scheduler = Scheduler::new(sched_config)?;
        let listener = TcpListener::bind(config.rpc_listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.rpc_listen, source })?;
        let rpc_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.rpc_listen, source })?;
        let membership = Membership::start(config.membership.clone(), reporter)?;
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                scheduler,
                attempts: Attempts::new(config.attempts.clone()),
                apps: BTreeMap::new(),
                nodes: BTreeMap::new(),
                dirty: BTreeSet::new(),
                finished_attempts: Vec::new(),
                finished_apps: Vec::new(),
                launches: Vec::new(),
                view: None,
            }),
            store: tokio::sync::Mutex::new(store),
            secret,
            container_epoch,
            epoch: AtomicI64::new(0),
            cluster_ts: now_wall_ms(),
            started: Instant::now(),
            stop: CancellationToken::new(),
            config,
        });
        shared.recover(stored);
        shared.flush().await?;
        let (kick_tx, kick_rx) = watch::channel(());
        let tasks = vec![
            tokio::spawn(accept_loop(listener, shared.clone(), kick_tx.clone())),
            tokio::spawn(monitor::watch_epoch(shared.clone(), membership.status())),
            tokio::spawn(monitor::watch_nodemanagers(shared.clone(), kick_tx.clone())),
            tokio::spawn(monitor::expiry(shared.clone(), kick_tx)),
            tokio::spawn(monitor::launcher(shared.clone(), kick_rx)),
        ];
        tracing::info!(rpc = %rpc_addr, container_epoch, "resourcemanager started");
        Ok(ResourceManager { rpc_addr, shared, membership: Some(membership), tasks })
    }

    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// Stops the loops and the port and leaves the membership (the store keeps everything).
    pub async fn shutdown(mut self) {
        self.shared.stop.cancel();
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        if let Some(m) = self.membership.take() {
            m.leave().await;
        }
        self.shared.flush_or_log().await;
    }
}

impl Shared {
    /// Reloads the stored apps into the machines (YARN's RM recovery): finished apps for
    /// reports, unfinished ones through `Attempts::recover`.
    fn recover(&self, stored: Vec<StoredApp>) {
        let now = self.now_ms();
        let mut core = self.core();
        for s in stored {
            let app = AppId(u64::from(s.app_id.seq));
            let record = match record_of(&s, app) {
                Ok(r) => r,
                Err(why) => {
                    tracing::error!(app = %s.app_id, "stored record is invalid ({why}); skipped");
                    continue;
                }
            };
            let fin = record.state.is_final();
            core.apps.insert(
                app,
                AppInfo {
                    id: s.app_id,
                    user: s.user.clone(),
                    submission: s.submission.clone(),
                    start_ms: s.start_ms,
                    finish_ms: s.finish_ms,
                    am_host: String::new(),
                    am_rpc_port: 0,
                    tracking_url: String::new(),
                    progress: rec::Progress::from_ppm(0),
                    allocated: Vec::new(),
                    completed: Vec::new(),
                    updated_nodes: Vec::new(),
                    response_id: 0,
                },
            );
            if !fin {
                if let Err(e) = core.scheduler.add_app(app, &s.submission.queue, &s.user) {
                    tracing::error!(app = %s.app_id, "recovering: {e}");
                }
            }
            let submitted = record.state == AppState::New || record.state == AppState::Submitted;
            match core.attempts.recover(record, now) {
                Ok(d) => self.apply(&mut core, d),
                Err(e) => tracing::error!(app = %s.app_id, "recovering: {e}"),
            }
            if submitted {
                // Stored but never accepted: accept it now.
                match core.attempts.accept(app) {
                    Ok(d) => self.apply(&mut core, d),
                    Err(e) => tracing::error!(app = %s.app_id, "recovering: {e}"),
                }
            }
            core.dirty.insert(app);
            tracing::info!(app = %s.app_id, state = ?core.attempts.state(app), "application recovered");
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, kick: watch::Sender<()>) {
    let (max, stop) = (shared.config.max_connections, shared.stop.clone());
    rpc::server::accept_loop("resourcemanager", listener, max, stop, |stream, peer| {
        serve(stream, peer, shared.clone(), kick.clone())
    })
    .await
}

/// One connection: the preamble names the protocol, then requests answered in order.
async fn serve(
    mut stream: TcpStream,
    _peer: SocketAddr,
    shared: Arc<Shared>,
    kick: watch::Sender<()>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut pre = [0u8; 6];
    stream.read_exact(&mut pre).await.map_err(|e| format!("preamble: {e}"))?;
    let protocol = match Protocol::from_preamble(pre) {
        Ok(
            p @ (Protocol::ClientResourceManager
            | Protocol::ApplicationMasterResourceManager
            | Protocol::NodeManagerResourceManager),
        ) => p,
        Ok(p) => return Err(format!("refused: protocol {p:?} is not served here")),
        Err(e) => return Err(format!("bad preamble: {e}")),
    };
    loop {
        let mut prefix = [0u8; 4];
        match stream.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let len = frame::frame_len(prefix, MAX_FRAME_LEN).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.map_err(|e| e.to_string())?;
        let (bytes, close) = match protocol {
            Protocol::ClientResourceManager => match Request::<ApplicationClientRequest>::from_bytes(&body) {
                Ok(req) => {
                    let call_id = req.header.call_id;
                    frame::response_frame(&Response { call_id, result: client::handle(&shared, req).await })
                }
                Err(e) => malformed(&body, &e),
            },
            Protocol::ApplicationMasterResourceManager => {
                match Request::<ApplicationMasterRequest>::from_bytes(&body) {
                    Ok(req) => {
                        let call_id = req.header.call_id;
                        frame::response_frame(&Response { call_id, result: am::handle(&shared, req.body).await })
                    }
                    Err(e) => malformed(&body, &e),
                }
            }
            _ => match Request::<ResourceTrackerRequest>::from_bytes(&body) {
                Ok(req) => {
                    let call_id = req.header.call_id;
                    let result = nm::handle(&shared, req.body).await;
                    let _ = kick.send(());
                    frame::response_frame(&Response { call_id, result })
                }
                Err(e) => malformed(&body, &e),
            },
        };
        stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
        if close {
            let _ = stream.shutdown().await;
            return Err("malformed request".into());
        }
    }
}

/// The answer to a request that does not decode (see `rpc::frame::malformed_frame`); logged here.
fn malformed(body: &[u8], e: &rpc::DecodeError) -> (Vec<u8>, bool) {
    tracing::warn!("refused a malformed request: {e}");
    frame::malformed_frame::<compute_proto::ApplicationClientResponse>(body, e)
}

/// The launch request for an AM container (used by the launcher).
pub(crate) fn start_request(l: &Launch) -> ContainerManagementRequest {
    ContainerManagementRequest::StartContainer { token: l.token.clone(), launch: l.launch.clone() }
}

pub(crate) use compute_proto::records::exit_status as exits;
