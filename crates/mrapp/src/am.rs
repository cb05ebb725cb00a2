//! The MapReduce ApplicationMaster process (`herd appmaster`): the runtime around
//! [`JobCore`]. Threads, not tasks: every call it makes (RM, NodeManagers, DFS) is a blocking
//! client, and a job's AM serves at most its own tasks.
//!
//! - The main thread heartbeats the RM (Allocate every [`ALLOCATE_INTERVAL`]), feeds what comes
//!   back into the core, runs the core's commands and its task time-out, and ends the job.
//! - Each StartContainer / StopContainer runs on its own short thread (a dead NodeManager
//!   costs that thread its time-out, not the job's heartbeat).
//! - The umbilical server: one thread accepts, one thread per task connection (at most
//!   [`MAX_CONNECTIONS`]), each answer from the core under its lock.
//!
//! The core is behind one `std::sync::Mutex`; no lock is held across a network call. Commands
//! the umbilical handlers produce (a task's Done that completes the job, a FatalError) are
//! queued and run by the main thread.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use compute_proto::ids::{ApplicationAttemptId, ContainerId, NodeId, TaskId, TaskType};
use compute_proto::records::{
    ContainerLaunchContext, EnvVar, FinalApplicationStatus, LocalResource, NodeState, Resource,
};
use compute_proto::umbilical::{FileSplit, UmbilicalRequest, UmbilicalResponse};
use compute_proto::{
    errors, ApplicationMasterRequest, ApplicationMasterResponse, ContainerManagementRequest,
    ContainerManagementResponse,
};
use dfs_client::{Dfs, FileKind};
use mapreduce::committer::FileOutputCommitter;
use mapreduce::split::{splits_for_file, BlockLocation};
use rpc::client::{CallError, Caller, RetryPolicy, RpcClient};
use rpc::frame::{self, Protocol, Request, Response};

use crate::conf::{JobConf, JobKind};
use crate::job::{Command, JobCore, JobState, MapInput, Plan};
use crate::report::JobReport;

pub const ALLOCATE_INTERVAL: Duration = Duration::from_millis(200);
/// Task connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// The largest umbilical request (a status with its counters).
const MAX_REQUEST: usize = 4 << 20;

/// Where the AM runs and whom it talks to; from its container's environment.
#[derive(Debug, Clone)]
pub struct AmConfig {
    pub job_file: String,
    pub namenode: String,
    pub rm: String,
    pub container_id: ContainerId,
    pub user: String,
    /// The `herd` executable that task containers run.
    pub herd_exe: PathBuf,
    /// The address tasks reach the umbilical by (this node's host).
    pub bind_host: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AmError {
    #[error("{0}")]
    Setup(String),
    #[error("the ResourceManager refused this attempt: {0}")]
    Fenced(String),
    #[error("ResourceManager: {0}")]
    Rm(String),
}

/// Environment variable names the AM reads and sets for its tasks.
pub const ENV_NAMENODE: &str = "HERD_NAMENODE";
pub const ENV_JOB_FILE: &str = "HERD_JOB_FILE";

impl AmConfig {
    /// From the container environment the NodeManager sets (`CONTAINER_ID`, `HERD_RM_ADDR`,
    /// `HERD_NM_ADDR`, `USER`) and the job's (`HERD_NAMENODE`).
    pub fn from_env(job_file: &str) -> Result<AmConfig, AmError> {
        let var = |name: &str| std::env::var(name).map_err(|_| AmError::Setup(format!("${name} is not set")));
        let container_id: ContainerId =
            var("CONTAINER_ID")?.parse().map_err(|e| AmError::Setup(format!("$CONTAINER_ID: {e}")))?;
        let nm = var("HERD_NM_ADDR")?;
        let bind_host = nm.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_else(|| "127.0.0.1".into());
        Ok(AmConfig {
            job_file: job_file.to_owned(),
            namenode: var(ENV_NAMENODE)?,
            rm: var("HERD_RM_ADDR")?,
            container_id,
            user: var("USER")?,
            herd_exe: std::env::current_exe().map_err(|e| AmError::Setup(format!("this executable: {e}")))?,
            bind_host,
        })
    }

    pub fn attempt(&self) -> ApplicationAttemptId {
        self.container_id.attempt
    }
}

/// Reads a whole (small) DFS file.
pub fn read_dfs_file(dfs: &Dfs, path: &str, max: u64) -> Result<Vec<u8>, String> {
    let mut r = dfs.open(path).map_err(|e| format!("{path}: {e}"))?;
    if r.len() > max {
        return Err(format!("{path}: {} bytes, more than {max}", r.len()));
    }
    let mut buf = Vec::with_capacity(r.len() as usize);
    r.read_to_end(&mut buf).map_err(|e| format!("{path}: {e}"))?;
    Ok(buf)
}

/// Writes a whole DFS file, replacing one there.
pub fn write_dfs_file(dfs: &Dfs, path: &str, bytes: &[u8]) -> Result<(), String> {
    let opts = dfs_client::CreateOptions { overwrite: true, ..Default::default() };
    let mut w = dfs.create(path, opts).map_err(|e| format!("{path}: {e}"))?;
    w.write_all(bytes).map_err(|e| format!("{path}: {e}"))?;
    w.close().map_err(|e| format!("{path}: {e}"))
}

/// The input files of the job: each file named, and each file (not starting with `_` or `.`)
/// of each directory named.
pub fn input_files(dfs: &Dfs, inputs: &[String]) -> Result<Vec<(String, u64)>, String> {
    let mut files = Vec::new();
    for input in inputs {
        let st = dfs.status(input).map_err(|e| format!("input {input}: {e}"))?;
        let Some(st) = st else { return Err(format!("Input path does not exist: {input}")) };
        match st.kind {
            FileKind::File => files.push((input.clone(), st.length)),
            FileKind::Dir => {
                for child in dfs.list(input).map_err(|e| format!("input {input}: {e}"))? {
                    if child.kind == FileKind::File && !child.name.starts_with(['_', '.']) {
                        files.push((format!("{}/{}", input.trim_end_matches('/'), child.name), child.length));
                    }
                }
            }
        }
    }
    if files.is_empty() {
        return Err(format!("no input files in {}", inputs.join(", ")));
    }
    Ok(files)
}

/// One split per block of every input file, with the hosts that hold it.
pub fn compute_splits(dfs: &Dfs, inputs: &[String]) -> Result<Vec<MapInput>, String> {
    let mut out = Vec::new();
    for (path, len) in input_files(dfs, inputs)? {
        let located = dfs.block_locations(&path, 0, len.max(1)).map_err(|e| format!("{path}: {e}"))?;
        let blocks: Vec<BlockLocation> = located
            .blocks
            .iter()
            .map(|b| BlockLocation {
                offset: b.offset,
                length: b.block.len,
                hosts: b
                    .locations
                    .iter()
                    .map(|d| d.data_addr.rsplit_once(':').map_or(d.data_addr.clone(), |(h, _)| h.to_string()))
                    .collect(),
            })
            .collect();
        for s in splits_for_file(&path, located.file_length, &blocks).map_err(|e| e.to_string())? {
            out.push(MapInput {
                split: FileSplit { path: s.path.clone(), start: s.start, length: s.length },
                hosts: s.hosts.clone(),
            });
        }
    }
    Ok(out)
}

/// Samples lines of the input (the first lines of up to `SAMPLE_SPLITS_MAX` splits, evenly
/// chosen) and writes the total-order sort's cut points (Hadoop's InputSampler).
fn write_cut_points(dfs: &Dfs, conf: &JobConf, maps: &[MapInput]) -> Result<(), String> {
    use crate::tera::{cut_points, SAMPLE_LINES_PER_SPLIT, SAMPLE_SPLITS_MAX};
    let step = maps.len().div_ceil(SAMPLE_SPLITS_MAX).max(1);
    let mut samples = Vec::new();
    for m in maps.iter().step_by(step) {
        let s = &m.split;
        let file = dfs.open(&s.path).map_err(|e| format!("sampling {}: {e}", s.path))?;
        let mut r =
            mapreduce::split::LineRecordReader::new(file, s.start, s.length, mapreduce::split::MAX_LINE_LEN_DEFAULT)
                .map_err(|e| format!("sampling {}: {e}", s.path))?;
        for _ in 0..SAMPLE_LINES_PER_SPLIT {
            match r.next_record().map_err(|e| format!("sampling {}: {e}", s.path))? {
                Some((_, line)) => samples.push(line.to_vec()),
                None => break,
            }
        }
    }
    let cuts = cut_points(samples, conf.reduces);
    let json = serde_json::to_vec(&cuts).map_err(|e| e.to_string())?;
    write_dfs_file(dfs, &conf.partitions_file(), &json)
}

/// The committer's name for a task and an attempt.
pub fn task_name(t: &TaskId) -> String {
    t.to_string()
}

struct Shared {
    core: Mutex<JobCore>,
    /// Commands produced off the main thread, run by it.
    queued: Mutex<Vec<Command>>,
    conf: JobConf,
    connections: AtomicUsize,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, JobCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue(&self, cmds: Vec<Command>) {
        if !cmds.is_empty() {
            self.queued.lock().unwrap_or_else(|p| p.into_inner()).extend(cmds);
        }
    }

    fn report(&self) -> JobReport {
        self.core().report(&self.conf.name, &self.conf.user, &self.conf.output)
    }
}

/// Runs the job to its end. Ok: the outcome was recorded with the RM (the process exits 0);
/// the job itself may have failed.
pub fn run(cfg: AmConfig) -> Result<JobReport, AmError> {
    let attempt = cfg.attempt();
    let dfs = Dfs::connect(&cfg.namenode, &cfg.user).map_err(|e| AmError::Setup(format!("the DFS: {e}")))?;
    let conf_bytes = read_dfs_file(&dfs, &cfg.job_file, 16 << 20).map_err(AmError::Setup)?;
    let conf = JobConf::from_json(&conf_bytes).map_err(AmError::Setup)?;
    let committer =
        FileOutputCommitter::new(&conf.output, attempt.attempt).map_err(|e| AmError::Setup(e.to_string()))?;

    let mut rm = RpcClient::new(
        cfg.rm.clone(),
        Protocol::ApplicationMasterResourceManager,
        Caller::new(cfg.user.clone(), Vec::new()),
        RetryPolicy { io_timeout: Duration::from_secs(10), retry_for: Duration::from_secs(60), ..Default::default() },
    );
    let listener = TcpListener::bind((cfg.bind_host.as_str(), 0))
        .map_err(|e| AmError::Setup(format!("binding the umbilical on {}: {e}", cfg.bind_host)))?;
    let umbilical = listener.local_addr().map_err(|e| AmError::Setup(e.to_string()))?;
    register(&mut rm, attempt, &cfg.bind_host, umbilical.port())?;
    tracing::info!(%attempt, umbilical = %umbilical, job = %cfg.job_file, "appmaster registered");

    // The plan: splits, and what an earlier attempt committed.
    let setup = (|| -> Result<Plan, String> {
        let maps = match &conf.kind {
            JobKind::Teragen { rows, maps } => crate::tera::gen_ranges(*rows, *maps)
                .into_iter()
                .map(|(start, length)| MapInput {
                    split: FileSplit { path: String::new(), start, length },
                    hosts: Vec::new(),
                })
                .collect(),
            _ => compute_splits(&dfs, &conf.input)?,
        };
        if conf.kind == JobKind::Sort && conf.reduces > 1 {
            write_cut_points(&dfs, &conf, &maps)?;
        }
        let app = attempt.app;
        let mut recovered = BTreeSet::new();
        let committing: Vec<TaskId> = if conf.reduces > 0 {
            (0..conf.reduces).map(|index| TaskId { app, kind: TaskType::Reduce, index }).collect()
        } else {
            (0..maps.len() as u32).map(|index| TaskId { app, kind: TaskType::Map, index }).collect()
        };
        if attempt.attempt > 1 {
            for t in committing {
                if committer.recover_task(&dfs, &task_name(&t)).map_err(|e| e.to_string())? {
                    recovered.insert(t);
                }
            }
            tracing::info!(recovered = recovered.len(), "tasks recovered from the previous attempt");
        }
        committer.setup_job(&dfs).map_err(|e| e.to_string())?;
        Ok(Plan {
            app,
            am_attempt: attempt.attempt,
            maps,
            reduces: conf.reduces,
            recovered,
            max_task_attempts: conf.max_task_attempts,
            blacklist_after: conf.blacklist_after,
            task_timeout_ms: conf.task_timeout_ms,
            task_resource: Resource { memory_mb: conf.task_memory_mb, vcores: 1 },
        })
    })();
    let core = match setup {
        Ok(plan) => JobCore::new(plan, crate::now_ms()),
        Err(why) => {
            // Nothing ran: the job fails with the reason (a missing input, say).
            let plan = Plan {
                app: attempt.app,
                am_attempt: attempt.attempt,
                maps: Vec::new(),
                reduces: 0,
                recovered: BTreeSet::new(),
                max_task_attempts: 1,
                blacklist_after: 1,
                task_timeout_ms: conf.task_timeout_ms,
                task_resource: Resource { memory_mb: conf.task_memory_mb, vcores: 1 },
            };
            let mut core = JobCore::new(plan, crate::now_ms());
            core.fail(format!("Job setup failed: {why}"));
            core
        }
    };
    let mut first = Vec::new();
    if *core.state() == JobState::Committing {
        first.push(Command::CommitJob);
    }
    if matches!(core.state(), JobState::Failed(_)) {
        first.push(Command::AbortJob);
    }
    let shared = Arc::new(Shared {
        core: Mutex::new(core),
        queued: Mutex::new(first),
        conf: conf.clone(),
        connections: AtomicUsize::new(0),
    });
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("umbilical".into())
            .spawn(move || serve_umbilical(listener, shared))
            .map_err(|e| AmError::Setup(format!("umbilical thread: {e}")))?;
    }

    let launch = TaskLaunch {
        herd_exe: cfg.herd_exe.display().to_string(),
        umbilical: umbilical.to_string(),
        job_file: cfg.job_file.clone(),
        namenode: cfg.namenode.clone(),
        user: cfg.user.clone(),
        files: conf
            .files
            .iter()
            .map(|f| LocalResource { path: f.path.clone(), local_name: f.local_name.clone() })
            .collect(),
    };
    let mut releases: Vec<ContainerId> = Vec::new();
    let mut blacklist: Vec<NodeId> = Vec::new();
    let mut last_response_id = 0u32;
    let mut lost_nodes: BTreeSet<NodeId> = BTreeSet::new();
    loop {
        let now = crate::now_ms();
        let mut cmds = std::mem::take(&mut *shared.queued.lock().unwrap_or_else(|p| p.into_inner()));
        cmds.extend(shared.core().tick(now));
        run_commands(cmds, &shared, &launch, &dfs, &committer, &mut releases, &mut blacklist);
        let state = shared.core().state().clone();
        if matches!(state, JobState::Succeeded | JobState::Failed(_)) {
            break;
        }
        let (asks, progress) = {
            let mut core = shared.core();
            (core.asks(), core.app_progress())
        };
        let req = ApplicationMasterRequest::Allocate {
            attempt,
            last_response_id,
            asks,
            releases: std::mem::take(&mut releases),
            blacklist_additions: std::mem::take(&mut blacklist),
            blacklist_removals: Vec::new(),
            progress,
        };
        match rm.call::<_, ApplicationMasterResponse>(&req) {
            Ok(ApplicationMasterResponse::Allocated { response_id, allocated, completed, updated_nodes, .. }) => {
                last_response_id = response_id;
                let now = crate::now_ms();
                let mut cmds = Vec::new();
                {
                    let mut core = shared.core();
                    for n in &updated_nodes {
                        if matches!(n.state, NodeState::Lost | NodeState::Shutdown | NodeState::Decommissioned)
                            && lost_nodes.insert(n.node_id.clone())
                        {
                            tracing::warn!(node = %n.node_id, state = ?n.state, "node lost");
                            cmds.extend(core.node_lost(&n.node_id, now));
                        } else if n.state == NodeState::Running {
                            lost_nodes.remove(&n.node_id);
                        }
                    }
                    for s in &completed {
                        cmds.extend(core.container_completed(s, now));
                    }
                    cmds.extend(core.allocated(allocated, now));
                }
                run_commands(cmds, &shared, &launch, &dfs, &committer, &mut releases, &mut blacklist);
            }
            Ok(other) => return Err(AmError::Rm(format!("unexpected answer to Allocate: {other:?}"))),
            Err(CallError::Remote(e)) if e.class == errors::APPLICATION_MASTER_NOT_REGISTERED => {
                tracing::warn!(
                    "the ResourceManager forgot this attempt's registration (restarted?): registering again"
                );
                register(&mut rm, attempt, &cfg.bind_host, umbilical.port())?;
            }
            Err(CallError::Remote(e)) if e.class == errors::APPLICATION_ATTEMPT_NOT_FOUND => {
                stop_all(&shared);
                return Err(AmError::Fenced(e.to_string()));
            }
            Err(e) => tracing::warn!("allocate: {e}"),
        }
        std::thread::sleep(ALLOCATE_INTERVAL);
    }

    // The end: stop what runs, write the report, unregister.
    stop_all(&shared);
    let report = shared.report();
    if let Err(e) = write_dfs_file(&dfs, &conf.report_file(), report.to_json().as_bytes()) {
        tracing::warn!("writing the job report: {e}");
    }
    let (final_status, diagnostics) = match shared.core().state() {
        JobState::Succeeded => (FinalApplicationStatus::Succeeded, String::new()),
        JobState::Failed(why) => (FinalApplicationStatus::Failed, why.clone()),
        other => unreachable!("the loop ends only in a final state, not {other:?}"),
    };
    for _ in 0..100 {
        let req = ApplicationMasterRequest::FinishApplicationMaster {
            attempt,
            final_status,
            diagnostics: diagnostics.clone(),
            tracking_url: conf.report_file(),
        };
        match rm.call::<_, ApplicationMasterResponse>(&req) {
            Ok(ApplicationMasterResponse::Finished { unregistered: true }) => return Ok(report),
            Ok(_) => {}
            Err(CallError::Remote(e)) if e.class == errors::APPLICATION_ATTEMPT_NOT_FOUND => {
                return Err(AmError::Fenced(e.to_string()))
            }
            Err(e) => tracing::warn!("finish: {e}"),
        }
        std::thread::sleep(ALLOCATE_INTERVAL);
    }
    Err(AmError::Rm("the ResourceManager never recorded the outcome".into()))
}

fn register(rm: &mut RpcClient, attempt: ApplicationAttemptId, host: &str, port: u16) -> Result<(), AmError> {
    let req = ApplicationMasterRequest::RegisterApplicationMaster {
        attempt,
        host: host.to_owned(),
        rpc_port: port,
        tracking_url: String::new(),
    };
    match rm.call::<_, ApplicationMasterResponse>(&req) {
        Ok(ApplicationMasterResponse::Registered { .. }) => Ok(()),
        Ok(other) => Err(AmError::Rm(format!("unexpected answer to Register: {other:?}"))),
        Err(CallError::Remote(e)) if e.class == errors::APPLICATION_ATTEMPT_NOT_FOUND => {
            Err(AmError::Fenced(e.to_string()))
        }
        Err(e) => Err(AmError::Rm(e.to_string())),
    }
}

/// What every task container gets.
struct TaskLaunch {
    herd_exe: String,
    umbilical: String,
    job_file: String,
    namenode: String,
    user: String,
    files: Vec<LocalResource>,
}

fn nm_client(node: &NodeId, user: &str) -> RpcClient {
    RpcClient::new(
        format!("{}:{}", node.host, node.port),
        Protocol::ApplicationMasterNodeManager,
        Caller::new(user.to_owned(), Vec::new()),
        RetryPolicy { io_timeout: Duration::from_secs(10), retry_for: Duration::from_secs(5), ..Default::default() },
    )
}

fn run_commands(
    cmds: Vec<Command>,
    shared: &Arc<Shared>,
    launch: &TaskLaunch,
    dfs: &Dfs,
    committer: &FileOutputCommitter,
    releases: &mut Vec<ContainerId>,
    blacklist: &mut Vec<NodeId>,
) {
    for cmd in cmds {
        match cmd {
            Command::Launch { container, task } => {
                let ctx = ContainerLaunchContext {
                    command: vec![launch.herd_exe.clone(), "task".into(), "--am".into(), launch.umbilical.clone()],
                    env: vec![
                        EnvVar { name: ENV_NAMENODE.into(), value: launch.namenode.clone() },
                        EnvVar { name: ENV_JOB_FILE.into(), value: launch.job_file.clone() },
                    ],
                    files: launch.files.clone(),
                };
                let (shared, user) = (shared.clone(), launch.user.clone());
                let id = container.id();
                tracing::info!(container = %id, node = %container.node_id(), task = %task.attempt(), "launching");
                std::thread::spawn(move || {
                    let mut nm = nm_client(container.node_id(), &user);
                    let req =
                        ContainerManagementRequest::StartContainer { token: container.token.clone(), launch: ctx };
                    match nm.call::<_, ContainerManagementResponse>(&req) {
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(container = %id, "start failed: {e}");
                            let cmds = shared.core().launch_failed(&id, &e.to_string(), crate::now_ms());
                            shared.queue(cmds);
                            // The container is unused: give it back.
                            shared.queue(vec![Command::Release(id)]);
                        }
                    }
                });
            }
            Command::Stop { container, node } => {
                let user = launch.user.clone();
                std::thread::spawn(move || stop_container(&node, &user, container));
            }
            Command::Release(c) => releases.push(c),
            Command::Blacklist(n) => {
                tracing::warn!(node = %n, "blacklisted for this job");
                blacklist.push(n);
            }
            Command::AbortTask(a) => {
                if let Err(e) = committer.abort_task(dfs, &a.to_string()) {
                    tracing::warn!(attempt = %a, "abort task: {e}");
                }
            }
            Command::CommitJob => {
                let outcome = committer.commit_job(dfs);
                let mut core = shared.core();
                match outcome {
                    Ok(()) => {
                        tracing::info!("job committed");
                        core.committed();
                    }
                    Err(e) => {
                        let cmds = core.fail(format!("Job commit failed: {e}"));
                        drop(core);
                        shared.queue(cmds);
                    }
                }
            }
            Command::AbortJob => {
                if let Err(e) = committer.abort_job(dfs) {
                    tracing::warn!("abort job: {e}");
                }
            }
        }
    }
}

/// StopContainer to `node` (blocking; a failure is only logged: the container's end, or its
/// node's, reaches the AM through the RM either way).
fn stop_container(node: &NodeId, user: &str, container: ContainerId) {
    let req = ContainerManagementRequest::StopContainer { container_id: container };
    if let Err(e) = nm_client(node, user).call::<_, ContainerManagementResponse>(&req) {
        tracing::info!(%container, "stop: {e}");
    }
}

/// Stops every running task container (the job ended or this attempt was fenced).
fn stop_all(shared: &Shared) {
    let running = shared.core().running_containers();
    let user = shared.conf.user.clone();
    let handles: Vec<_> = running
        .into_iter()
        .map(|(c, n)| {
            let user = user.clone();
            std::thread::spawn(move || stop_container(&n, &user, c))
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

fn serve_umbilical(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("umbilical: refused a connection, {MAX_CONNECTIONS} already");
            continue;
        }
        let shared = shared.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve_connection(stream, &shared) {
                tracing::debug!("umbilical connection ended: {e}");
            }
            shared.connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn serve_connection(mut s: TcpStream, shared: &Shared) -> Result<(), String> {
    let _ = s.set_nodelay(true);
    let mut pre = [0u8; 6];
    s.read_exact(&mut pre).map_err(|e| format!("preamble: {e}"))?;
    match Protocol::from_preamble(pre) {
        Ok(Protocol::TaskUmbilical) => {}
        Ok(p) => return Err(format!("protocol {p:?} is not served here")),
        Err(e) => return Err(format!("bad preamble: {e}")),
    }
    loop {
        let body = match frame::read_frame(&mut s, MAX_REQUEST) {
            Ok(b) => b,
            Err(frame::FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let (bytes, close) = match <Request<UmbilicalRequest> as rpc::codec::Message>::from_bytes(&body) {
            Ok(req) => {
                let result = Ok(handle(shared, req.body));
                frame::response_frame(&Response { call_id: req.header.call_id, result })
            }
            Err(e) => frame::malformed_frame::<UmbilicalResponse>(&body, &e),
        };
        s.write_all(&bytes).map_err(|e| e.to_string())?;
        if close {
            return Err("malformed request".into());
        }
    }
}

fn handle(shared: &Shared, req: UmbilicalRequest) -> UmbilicalResponse {
    let now = crate::now_ms();
    match req {
        UmbilicalRequest::GetTask { container_id } => {
            UmbilicalResponse::Task { task: shared.core().get_task(&container_id, now) }
        }
        UmbilicalRequest::StatusUpdate { attempt, status } => {
            UmbilicalResponse::Feedback { task_found: shared.core().status_update(&attempt, status, now) }
        }
        UmbilicalRequest::Done { attempt, shuffle_addr } => {
            tracing::info!(%attempt, "done");
            let cmds = shared.core().done(&attempt, shuffle_addr, now);
            shared.queue(cmds);
            UmbilicalResponse::Ack
        }
        UmbilicalRequest::CanCommit { attempt } => {
            UmbilicalResponse::CommitAllowed { allowed: shared.core().can_commit(&attempt, now) }
        }
        UmbilicalRequest::FatalError { attempt, message, stderr_tail } => {
            tracing::warn!(%attempt, "task failed: {message}");
            let cmds = shared.core().fatal_error(&attempt, &message, &stderr_tail, now);
            shared.queue(cmds);
            UmbilicalResponse::Ack
        }
        UmbilicalRequest::ReportFetchFailure { attempt, map_attempt } => {
            tracing::warn!(%attempt, %map_attempt, "fetch failure reported");
            let cmds = shared.core().fetch_failure(&attempt, map_attempt, now);
            shared.queue(cmds);
            UmbilicalResponse::Ack
        }
        UmbilicalRequest::GetMapCompletionEvents { attempt, from_event_id, max } => {
            UmbilicalResponse::MapCompletionEvents {
                events: shared.core().map_events(&attempt, from_event_id, max.min(10_000), now),
            }
        }
        UmbilicalRequest::GetJobReport => UmbilicalResponse::JobReport { json: shared.report().to_json() },
    }
}

/// Asks a running AM for its job report (`herd job status`).
pub fn fetch_report(am_addr: &str, user: &str) -> Result<JobReport, String> {
    let mut c = RpcClient::new(
        am_addr.to_owned(),
        Protocol::TaskUmbilical,
        Caller::new(user.to_owned(), Vec::new()),
        RetryPolicy { io_timeout: Duration::from_secs(5), retry_for: Duration::ZERO, ..Default::default() },
    );
    match c.call::<_, UmbilicalResponse>(&UmbilicalRequest::GetJobReport) {
        Ok(UmbilicalResponse::JobReport { json }) => JobReport::from_json(&json),
        Ok(other) => Err(format!("unexpected answer: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}
