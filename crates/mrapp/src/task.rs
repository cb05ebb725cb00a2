//! The task process (`herd task --am HOST:PORT`): asks the AM for its task (by its container
//! id), runs one map or reduce attempt, and reports. A reporter thread sends the attempt's
//! progress and counters every [`STATUS_INTERVAL`]; if the AM answers that it no longer runs
//! this attempt, the process exits at once.
//!
//! - Map: reads its split's lines from the DFS, runs the mapper (built-in or a streaming
//!   command), partitions, sorts, spills and merges into `file.out` + index in the app's local
//!   dir, where the NodeManager's shuffle server serves it; then `Done` with that server's
//!   address. In a map-only job it writes `part-m-NNNNN` under the committer's attempt dir and
//!   commits like a reduce.
//! - Reduce: polls the AM for map completion events, fetches its partition of each map's
//!   output (retrying, and reporting each failed fetch to the AM, which re-runs a map after
//!   repeated reports), merges, reduces, writes `part-r-NNNNN` under the committer's attempt
//!   dir, asks `CanCommit`, commits the task, and reports `Done`.
//!
//! Any error is sent as `FatalError` with the message and (streaming) the command's stderr
//! tail, and the process exits 1.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compute_proto::ids::{ContainerId, TaskAttemptId};
use compute_proto::records::Progress;
use compute_proto::umbilical::{
    Counter, MapEventStatus, Phase, TaskSpec, TaskStatus, UmbilicalRequest, UmbilicalResponse,
};
use dfs_client::{CreateOptions, Dfs, FileWriter};
use mapreduce::api::{Emit, Mapper, Reducer};
use mapreduce::builtin::{GrepMapper, IdentityMapper, IdentityReducer, SumReducer, WordCountMapper};
use mapreduce::collector::{CollectorConfig, MapOutputCollector};
use mapreduce::committer::FileOutputCommitter;
use mapreduce::counters::Counters;
use mapreduce::merge::{reduce, ShuffleSegments};
use mapreduce::split::{LineRecordReader, MAX_LINE_LEN_DEFAULT};
use mapreduce::streaming::StreamCommand;
use nodemanager::shuffle::{self, ShuffleRequest, ShuffleStatus};
use rpc::client::{CallError, Caller, RetryPolicy, RpcClient};
use rpc::frame::Protocol;

use crate::am::{read_dfs_file, ENV_NAMENODE};
use crate::conf::{JobConf, JobKind};

pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// Map completion events asked for at once.
const EVENTS_MAX: u32 = 1000;
/// Pause between polls for new map outputs, and after a failed fetch.
const POLL: Duration = Duration::from_millis(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// A fetched segment larger than this is refused (it would be held in memory whole).
const SEGMENT_MAX: u64 = 1 << 30;
/// The exit code of a task the AM disowned.
pub const EXIT_DISOWNED: i32 = 3;

/// Where the task runs; from its container's environment.
#[derive(Debug, Clone)]
pub struct TaskConfig {
    pub am: String,
    pub container_id: ContainerId,
    pub namenode: String,
    pub job_file: String,
    pub user: String,
    /// The app's local dirs on this node (`LOCAL_DIRS`).
    pub local_dirs: Vec<PathBuf>,
    /// This node's shuffle server.
    pub shuffle_addr: String,
    /// The container's working directory (shipped files are here).
    pub work_dir: PathBuf,
}

impl TaskConfig {
    pub fn from_env(am: &str) -> Result<TaskConfig, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("${name} is not set"));
        let local_dirs: Vec<PathBuf> =
            var("LOCAL_DIRS")?.split(',').filter(|s| !s.is_empty()).map(PathBuf::from).collect();
        if local_dirs.is_empty() {
            return Err("$LOCAL_DIRS is empty".into());
        }
        Ok(TaskConfig {
            am: am.to_owned(),
            container_id: var("CONTAINER_ID")?.parse().map_err(|e| format!("$CONTAINER_ID: {e}"))?,
            namenode: var(ENV_NAMENODE)?,
            job_file: var(crate::am::ENV_JOB_FILE)?,
            user: var("USER")?,
            local_dirs,
            shuffle_addr: var("HERD_SHUFFLE_ADDR")?,
            work_dir: std::env::current_dir().map_err(|e| format!("working dir: {e}"))?,
        })
    }
}

/// What the reporter thread sends.
struct Shared {
    /// Bumped by every sign of the user code's life (records in and out, streaming's
    /// `reporter:` lines): Hadoop's progress, which the AM's task time-out watches.
    activity: Arc<AtomicU64>,
    /// The framework itself is working (fetching, sorting, merging, committing): it counts
    /// as progress, as Hadoop's merge and shuffle report progress.
    framework_busy: Arc<AtomicBool>,
    progress_ppm: AtomicU32,
    phase: Mutex<Phase>,
    counters: Mutex<Counters>,
    state_text: Mutex<String>,
}

impl Shared {
    fn set_progress(&self, fraction: f64) {
        self.progress_ppm.store(Progress::from_fraction(fraction).ppm(), Ordering::Relaxed);
    }

    fn set_counters(&self, c: Counters) {
        *self.counters.lock().unwrap_or_else(|e| e.into_inner()) = c;
    }

    /// A streaming command's last `reporter:status:` message, if it sent one.
    fn set_state_text(&self, text: Option<String>) {
        if let Some(t) = text {
            *self.state_text.lock().unwrap_or_else(|e| e.into_inner()) = t;
        }
    }

    fn busy(&self, b: bool) {
        self.framework_busy.store(b, Ordering::Relaxed);
    }

    fn set_phase(&self, p: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    fn status(&self) -> TaskStatus {
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(g, n, v)| Counter { group: g.to_owned(), name: n.to_owned(), value: v })
            .collect();
        TaskStatus {
            progress: Progress::from_ppm(self.progress_ppm.load(Ordering::Relaxed)),
            phase: *self.phase.lock().unwrap_or_else(|e| e.into_inner()),
            counters,
            state_text: self.state_text.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

fn umbilical(cfg: &TaskConfig) -> RpcClient {
    RpcClient::new(
        cfg.am.clone(),
        Protocol::TaskUmbilical,
        Caller::new(cfg.user.clone(), Vec::new()),
        RetryPolicy { io_timeout: Duration::from_secs(10), retry_for: Duration::from_secs(20), ..Default::default() },
    )
}

fn call(c: &mut RpcClient, req: &UmbilicalRequest) -> Result<UmbilicalResponse, String> {
    c.call::<_, UmbilicalResponse>(req).map_err(|e: CallError| format!("the AM: {e}"))
}

/// A task's failure: what it says and, for a streaming command, its stderr's end.
struct Failure {
    message: String,
    stderr_tail: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure { message, stderr_tail: String::new() }
    }
}

impl From<mapreduce::Error> for Failure {
    fn from(e: mapreduce::Error) -> Failure {
        let stderr_tail = match &e {
            mapreduce::Error::StreamingFailed { stderr_tail, .. }
            | mapreduce::Error::StreamingInputNotConsumed { stderr_tail, .. } => stderr_tail.clone(),
            _ => String::new(),
        };
        Failure { message: e.to_string(), stderr_tail }
    }
}

/// Runs the container's task; returns the process's exit code.
pub fn run(cfg: TaskConfig) -> i32 {
    let mut am = umbilical(&cfg);
    let spec = match call(&mut am, &UmbilicalRequest::GetTask { container_id: cfg.container_id }) {
        Ok(UmbilicalResponse::Task { task: Some(t) }) => t,
        Ok(UmbilicalResponse::Task { task: None }) => {
            eprintln!("the AM has no task for {}", cfg.container_id);
            return 0;
        }
        Ok(other) => {
            eprintln!("unexpected answer to GetTask: {other:?}");
            return 1;
        }
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let attempt = spec.attempt();
    eprintln!("running {attempt}");
    let shared = Arc::new(Shared {
        activity: Arc::new(AtomicU64::new(0)),
        framework_busy: Arc::new(AtomicBool::new(true)),
        progress_ppm: AtomicU32::new(0),
        phase: Mutex::new(Phase::Starting),
        counters: Mutex::new(Counters::new()),
        state_text: Mutex::new(String::new()),
    });
    {
        let (shared, cfg) = (shared.clone(), cfg.clone());
        std::thread::spawn(move || reporter(cfg, attempt, shared));
    }
    let outcome = (|| -> Result<String, Failure> {
        let dfs = Dfs::connect(&cfg.namenode, &cfg.user).map_err(|e| format!("the DFS: {e}"))?;
        let conf = JobConf::from_json(&read_dfs_file(&dfs, &cfg.job_file, 16 << 20)?)?;
        make_commands_executable(&cfg.work_dir, &conf);
        match spec {
            TaskSpec::Map { attempt, split, reduces } => {
                run_map(&cfg, &conf, &dfs, &mut am, &shared, attempt, &split, reduces)
            }
            TaskSpec::Reduce { attempt, maps } => run_reduce(&cfg, &conf, &dfs, &mut am, &shared, attempt, maps),
        }
    })();
    match outcome {
        Ok(shuffle_addr) => {
            shared.set_progress(1.0);
            let _ = call(&mut am, &UmbilicalRequest::StatusUpdate { attempt, status: shared.status() });
            match call(&mut am, &UmbilicalRequest::Done { attempt, shuffle_addr }) {
                Ok(_) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            }
        }
        Err(f) => {
            eprintln!("{attempt} failed: {}", f.message);
            let req = UmbilicalRequest::FatalError { attempt, message: f.message, stderr_tail: f.stderr_tail };
            let _ = call(&mut am, &req);
            1
        }
    }
}

/// Sends the status every interval in which the task made progress (and only then: a task
/// whose user code hangs falls silent, and the AM's time-out fails it); exits the process
/// when the AM disowns the attempt.
fn reporter(cfg: TaskConfig, attempt: TaskAttemptId, shared: Arc<Shared>) {
    let mut am = umbilical(&cfg);
    let (mut last, mut last_activity) = (None, u64::MAX);
    loop {
        std::thread::sleep(STATUS_INTERVAL);
        let status = shared.status();
        let activity = shared.activity.load(Ordering::Relaxed);
        let progressed = shared.framework_busy.load(Ordering::Relaxed)
            || activity != last_activity
            || last.as_ref() != Some(&status);
        if !progressed {
            continue;
        }
        last = Some(status.clone());
        last_activity = activity;
        match call(&mut am, &UmbilicalRequest::StatusUpdate { attempt, status }) {
            Ok(UmbilicalResponse::Feedback { task_found: false }) => {
                eprintln!("the AM no longer runs {attempt}: exiting");
                std::process::exit(EXIT_DISOWNED);
            }
            Ok(_) => {}
            Err(e) => eprintln!("status: {e}"),
        }
    }
}

/// Hadoop Streaming makes a shipped file that is a command's program executable.
fn make_commands_executable(dir: &Path, conf: &JobConf) {
    use std::os::unix::fs::PermissionsExt;
    let JobKind::Streaming { mapper, reducer, combiner } = &conf.kind else { return };
    for cmd in [Some(mapper), reducer.as_ref(), combiner.as_ref()].into_iter().flatten() {
        let Some(program) = cmd.split_whitespace().next() else { continue };
        if conf.files.iter().any(|f| f.local_name == program) {
            let p = dir.join(program);
            if let Ok(meta) = std::fs::metadata(&p) {
                let mut perm = meta.permissions();
                perm.set_mode(perm.mode() | 0o111);
                let _ = std::fs::set_permissions(&p, perm);
            }
        }
    }
}

/// Counts the bytes read through it, for progress.
struct Counting<R> {
    inner: R,
    pos: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let p = self.inner.seek(to)?;
        self.pos.store(p, Ordering::Relaxed);
        Ok(p)
    }
}

fn streaming(cmd: &str, cfg: &TaskConfig, attempt: TaskAttemptId, shared: &Shared) -> StreamCommand {
    let mut c = StreamCommand::new(cmd, &cfg.work_dir);
    c.activity = Some(shared.activity.clone());
    // Hadoop Streaming looks a command's program up in the task's working directory first, so
    // `-mapper mapper.py -file mapper.py` runs the shipped file.
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    c.env.push(("PATH".into(), format!("{}:{path}", cfg.work_dir.display())));
    // Hadoop Streaming gives the command the job's configuration as environment variables.
    c.env.push(("mapreduce_task_attempt_id".into(), attempt.to_string()));
    c.env.push(("mapreduce_task_id".into(), attempt.task.to_string()));
    c.env.push(("mapreduce_task_partition".into(), attempt.task.index.to_string()));
    c
}

fn builtin_mapper(kind: &JobKind) -> Result<Box<dyn Mapper>, Failure> {
    Ok(match kind {
        JobKind::Wordcount => Box::new(WordCountMapper),
        JobKind::Grep { pattern } => Box::new(GrepMapper::new(pattern.as_bytes())?),
        JobKind::Sort => Box::new(IdentityMapper),
        JobKind::Streaming { .. } | JobKind::Teragen { .. } | JobKind::Teravalidate => {
            return Err(format!("{kind:?} has no built-in mapper").into())
        }
    })
}

fn builtin_reducer(kind: &JobKind) -> Option<Box<dyn Reducer>> {
    match kind {
        JobKind::Wordcount | JobKind::Grep { .. } => Some(Box::new(SumReducer)),
        JobKind::Sort => Some(Box::new(IdentityReducer)),
        JobKind::Streaming { .. } | JobKind::Teragen { .. } | JobKind::Teravalidate => None,
    }
}

/// TeraGen's map: rows `split.start ..` (`split.length` of them) into `part-m-NNNNN`.
fn run_teragen(
    conf: &JobConf,
    dfs: &Dfs,
    am: &mut RpcClient,
    shared: &Arc<Shared>,
    attempt: TaskAttemptId,
    committer: &FileOutputCommitter,
    split: &compute_proto::umbilical::FileSplit,
) -> Result<String, Failure> {
    let dir = committer.task_attempt_path(&attempt.to_string()).map_err(|e| e.to_string())?;
    let mut out = TextOutput::create(dfs, &format!("{dir}/part-m-{:05}", attempt.task.index), shared)?;
    for (i, r) in (split.start..split.start + split.length).enumerate() {
        let row = crate::tera::row(r);
        out.emit(&row[..crate::tera::ROW_LEN - 1], b"")?;
        if i % 10_000 == 0 {
            shared.set_progress(i as f64 / split.length.max(1) as f64);
        }
    }
    let mut counters = Counters::new();
    counters.add_task(mapreduce::TaskCounter::MapOutputRecords, out.records);
    shared.busy(true);
    out.close()?;
    shared.set_counters(counters);
    commit(conf, dfs, am, attempt, committer)?;
    Ok(String::new())
}

/// `key<TAB>value` lines into a DFS file (Hadoop's TextOutputFormat; an empty value writes
/// the key alone, so that `sort`'s output is the input's lines).
struct TextOutput {
    w: std::io::BufWriter<FileWriter>,
    records: u64,
    activity: Arc<AtomicU64>,
}

impl Emit for TextOutput {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> mapreduce::Result<()> {
        let io = |e| mapreduce::Error::User(format!("writing the output: {e}"));
        self.w.write_all(key).map_err(io)?;
        if !value.is_empty() {
            self.w.write_all(b"\t").map_err(io)?;
            self.w.write_all(value).map_err(io)?;
        }
        self.w.write_all(b"\n").map_err(io)?;
        self.records += 1;
        self.activity.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl TextOutput {
    fn create(dfs: &Dfs, path: &str, shared: &Shared) -> Result<TextOutput, Failure> {
        let w = dfs.create(path, CreateOptions::default()).map_err(|e| format!("{path}: {e}"))?;
        Ok(TextOutput {
            w: std::io::BufWriter::with_capacity(1 << 20, w),
            records: 0,
            activity: shared.activity.clone(),
        })
    }

    fn close(self) -> Result<(), Failure> {
        let w = self.w.into_inner().map_err(|e| format!("writing the output: {}", e.error()))?;
        w.close().map_err(|e| Failure::from(format!("closing the output: {e}")))
    }
}

/// The committer's steps at the end of a task that writes output: CanCommit until allowed,
/// then commitTask.
fn commit(
    conf: &JobConf,
    dfs: &Dfs,
    am: &mut RpcClient,
    attempt: TaskAttemptId,
    committer: &FileOutputCommitter,
) -> Result<(), Failure> {
    loop {
        match call(am, &UmbilicalRequest::CanCommit { attempt })? {
            UmbilicalResponse::CommitAllowed { allowed: true } => break,
            UmbilicalResponse::CommitAllowed { allowed: false } => std::thread::sleep(POLL),
            other => return Err(format!("unexpected answer to CanCommit: {other:?}").into()),
        }
    }
    committer
        .commit_task(dfs, &attempt.task.to_string(), &attempt.to_string())
        .map_err(|e| Failure::from(format!("commit of {attempt} to {}: {e}", conf.output)))
}

#[allow(clippy::too_many_arguments)]
fn run_map(
    cfg: &TaskConfig,
    conf: &JobConf,
    dfs: &Dfs,
    am: &mut RpcClient,
    shared: &Arc<Shared>,
    attempt: TaskAttemptId,
    split: &compute_proto::umbilical::FileSplit,
    reduces: u32,
) -> Result<String, Failure> {
    shared.set_phase(Phase::Map);
    shared.busy(false);
    if matches!(conf.kind, JobKind::Teragen { .. }) {
        let committer = FileOutputCommitter::new(&conf.output, attempt_am(cfg)).map_err(|e| e.to_string())?;
        return run_teragen(conf, dfs, am, shared, attempt, &committer, split);
    }
    let file = dfs.open(&split.path).map_err(|e| format!("{}: {e}", split.path))?;
    let pos = Arc::new(AtomicU64::new(0));
    let reader = Counting { inner: file, pos: pos.clone() };
    let mut records = LineRecordReader::new(reader, split.start, split.length, MAX_LINE_LEN_DEFAULT)?;
    // Progress from the bytes read, on a thread of its own (the map loop may be a command).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (shared, pos, done) = (shared.clone(), pos.clone(), done.clone());
        let (start, len) = (split.start, split.length.max(1));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let read = pos.load(Ordering::Relaxed).saturating_sub(start);
                shared.set_progress((read as f64 / len as f64).min(0.99));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
    }
    let committer = FileOutputCommitter::new(&conf.output, attempt_am(cfg)).map_err(|e| e.to_string())?;
    let result = if reduces == 0 {
        // Map-only: the mapper's output is the job's output.
        let dir = committer.task_attempt_path(&attempt.to_string()).map_err(|e| e.to_string())?;
        let path = format!("{dir}/part-m-{:05}", attempt.task.index);
        let mut out = TextOutput::create(dfs, &path, shared)?;
        let mut counters = Counters::new();
        match &conf.kind {
            JobKind::Streaming { mapper, .. } => {
                let cmd = streaming(mapper, cfg, attempt, shared);
                let mut n = 0u64;
                let feed = |stdin: &mut dyn Write| -> mapreduce::Result<()> {
                    while let Some((_, line)) = records.next_record()? {
                        n += 1;
                        mapreduce::streaming::write_map_input(stdin, line)
                            .map_err(|e| mapreduce::Error::User(format!("the mapper's stdin: {e}")))?;
                    }
                    Ok(())
                };
                let outcome = mapreduce::streaming::run(&cmd, feed, &mut out)?;
                counters.merge(&outcome.counters);
                counters.add_task(mapreduce::TaskCounter::MapInputRecords, n);
            }
            kind => {
                let mut mapper = builtin_mapper(kind)?;
                let mut n = 0u64;
                while let Some((offset, line)) = records.next_record()? {
                    n += 1;
                    mapper.map(offset, line, &mut out)?;
                }
                counters.add_task(mapreduce::TaskCounter::MapInputRecords, n);
            }
        }
        counters.add_task(mapreduce::TaskCounter::MapOutputRecords, out.records);
        shared.busy(true);
        out.close()?;
        shared.set_counters(counters);
        done.store(true, Ordering::Relaxed);
        commit(conf, dfs, am, attempt, &committer)?;
        Ok(String::new())
    } else {
        let local = cfg.local_dirs[attempt.task.index as usize % cfg.local_dirs.len()].clone();
        let dir = local.join("output").join(attempt.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let combiner = if conf.has_combiner() { builtin_reducer(&conf.kind) } else { None };
        let budget = (conf.sort_mb as usize) << 20;
        let mut config = CollectorConfig::new(&dir, reduces, budget);
        config.busy = Some(shared.framework_busy.clone());
        let mut collector = MapOutputCollector::new(config, combiner);
        match &conf.kind {
            JobKind::Streaming { mapper, .. } => {
                let cmd = streaming(mapper, cfg, attempt, shared);
                let outcome = mapreduce::task::run_streaming_map(&cmd, records, &mut collector)?;
                shared.set_state_text(outcome.status);
            }
            JobKind::Wordcount => count_words(&mut records, &mut collector, budget / 2)?,
            JobKind::Teravalidate => {
                let mut s = crate::tera::SplitSummary::default();
                while let Some((_, line)) = records.next_record()? {
                    s.add(line);
                }
                collector.counters_mut().add_task(mapreduce::TaskCounter::MapInputRecords, s.rows);
                collector.collect(0, &crate::tera::split_key(&split.path, split.start), &s.encode())?;
            }
            JobKind::Sort if reduces > 1 => {
                // A total order: each line to the reduce whose key range holds it.
                let json = read_dfs_file(dfs, &conf.partitions_file(), 256 << 20)?;
                let cuts: Vec<Vec<u8>> =
                    serde_json::from_slice(&json).map_err(|e| format!("{}: {e}", conf.partitions_file()))?;
                let mut n = 0u64;
                while let Some((_, line)) = records.next_record()? {
                    n += 1;
                    collector.collect(crate::tera::range_partition(&cuts, line), line, b"")?;
                }
                collector.counters_mut().add_task(mapreduce::TaskCounter::MapInputRecords, n);
            }
            kind => {
                let mut mapper = builtin_mapper(kind)?;
                mapreduce::task::run_map(&mut records, mapper.as_mut(), &mut collector)?;
            }
        }
        shared.set_phase(Phase::Sort);
        shared.busy(true);
        let (_, mut counters) = collector.close()?;
        if let JobKind::Streaming { combiner: Some(combiner), .. } = &conf.kind {
            // The combiner is user code: its own life, not the framework's, keeps the task.
            shared.busy(false);
            let cmd = streaming(combiner, cfg, attempt, shared);
            mapreduce::task::run_streaming_combiner(&cmd, &dir, reduces, budget, &mut counters)?;
            shared.busy(true);
        }
        shared.set_counters(counters);
        done.store(true, Ordering::Relaxed);
        Ok(cfg.shuffle_addr.clone())
    };
    done.store(true, Ordering::Relaxed);
    result
}

/// Wordcount's map with in-mapper combining: counts words in a hash map and hands the
/// collector one `(word, count)` record per word per flush (when the map's keys pass
/// `memory_budget` bytes, and at the end), instead of one `(word, 1)` per occurrence that the
/// sort buffer would have to sort before the combiner could sum them. The combiner still runs
/// on spills. Counters stay Hadoop's: MAP_OUTPUT_RECORDS counts the words the map function
/// emitted; the summing shows in COMBINE_INPUT_RECORDS and COMBINE_OUTPUT_RECORDS.
fn count_words<R: Read + Seek>(
    records: &mut LineRecordReader<R>,
    collector: &mut MapOutputCollector,
    memory_budget: usize,
) -> Result<(), Failure> {
    use mapreduce::TaskCounter;
    let mut counts: std::collections::HashMap<Vec<u8>, u64> = std::collections::HashMap::new();
    let (mut lines, mut words, mut flushed, mut held) = (0u64, 0u64, 0u64, 0usize);
    let flush = |counts: &mut std::collections::HashMap<Vec<u8>, u64>,
                 collector: &mut MapOutputCollector|
     -> mapreduce::Result<u64> {
        let mut n = 0;
        for (word, count) in counts.drain() {
            collector.emit(&word, count.to_string().as_bytes())?;
            n += 1;
        }
        Ok(n)
    };
    while let Some((_, line)) = records.next_record()? {
        lines += 1;
        for word in line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
            words += 1;
            match counts.get_mut(word) {
                Some(c) => *c += 1,
                None => {
                    held += word.len() + 48;
                    counts.insert(word.to_vec(), 1);
                }
            }
        }
        if held > memory_budget {
            flushed += flush(&mut counts, collector)?;
            held = 0;
        }
    }
    flushed += flush(&mut counts, collector)?;
    let c = collector.counters_mut();
    c.add_task(TaskCounter::MapInputRecords, lines);
    // The collector counted the flushed records as map output: make it the words emitted.
    c.add_task(TaskCounter::MapOutputRecords, words - flushed);
    c.add_task(TaskCounter::CombineInputRecords, words);
    c.add_task(TaskCounter::CombineOutputRecords, flushed);
    Ok(())
}

/// The AM attempt a task belongs to (its container's).
fn attempt_am(cfg: &TaskConfig) -> u32 {
    cfg.container_id.attempt.attempt
}

fn run_reduce(
    cfg: &TaskConfig,
    conf: &JobConf,
    dfs: &Dfs,
    am: &mut RpcClient,
    shared: &Arc<Shared>,
    attempt: TaskAttemptId,
    maps: u32,
) -> Result<String, Failure> {
    shared.set_phase(Phase::Shuffle);
    let scratch = cfg.work_dir.join("shuffle");
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let mut segments = ShuffleSegments::new(&scratch, (conf.shuffle_mb as usize) << 20);
    // Per map index: the attempt whose output to fetch and where, until fetched.
    let mut wanted: BTreeMap<u32, (TaskAttemptId, String)> = BTreeMap::new();
    let mut fetched = vec![false; maps as usize];
    let mut fetched_count = 0u32;
    let mut next_event = 0u32;
    let mut backoff_until: BTreeMap<u32, Instant> = BTreeMap::new();
    while fetched_count < maps {
        let events = match call(
            am,
            &UmbilicalRequest::GetMapCompletionEvents { attempt, from_event_id: next_event, max: EVENTS_MAX },
        )? {
            UmbilicalResponse::MapCompletionEvents { events } => events,
            other => return Err(format!("unexpected answer to GetMapCompletionEvents: {other:?}").into()),
        };
        next_event += events.len() as u32;
        for e in events {
            let idx = e.map_attempt.task.index;
            if idx >= maps {
                continue;
            }
            match e.status {
                MapEventStatus::Succeeded => {
                    wanted.insert(idx, (e.map_attempt, e.shuffle_addr));
                    backoff_until.remove(&idx);
                }
                MapEventStatus::Obsolete | MapEventStatus::Failed | MapEventStatus::Killed => {
                    if wanted.get(&idx).is_some_and(|(a, _)| *a == e.map_attempt) {
                        wanted.remove(&idx);
                    }
                }
            }
        }
        // Fetch what is known and not yet fetched, one request per shuffle server.
        let now = Instant::now();
        let mut by_addr: BTreeMap<String, Vec<(u32, TaskAttemptId)>> = BTreeMap::new();
        for (&idx, (a, addr)) in &wanted {
            if !fetched[idx as usize] && backoff_until.get(&idx).is_none_or(|t| *t <= now) {
                by_addr.entry(addr.clone()).or_default().push((idx, *a));
            }
        }
        let mut progressed = false;
        for (addr, list) in by_addr {
            let req = ShuffleRequest {
                app: attempt.task.app,
                user: cfg.user.clone(),
                maps: list.iter().map(|(_, a)| *a).collect(),
                partition: attempt.task.index,
            };
            let answers = shuffle::fetch(&addr, &req, FETCH_TIMEOUT, SEGMENT_MAX);
            let answers = match answers {
                Ok(a) => a.into_iter().map(Some).collect::<Vec<_>>(),
                Err(e) => {
                    eprintln!("fetch from {addr}: {e}");
                    list.iter().map(|_| None).collect()
                }
            };
            for ((idx, map), answer) in list.into_iter().zip(answers) {
                let ok = match answer {
                    Some((h, bytes)) if h.status == ShuffleStatus::Ok => {
                        match segments.add_fetched(idx as usize, bytes, h.crc32c) {
                            Ok(()) => true,
                            Err(e) => {
                                eprintln!("fetched {map} from {addr}: {e}");
                                false
                            }
                        }
                    }
                    Some((h, _)) => {
                        eprintln!("fetch {map} from {addr}: {:?}: {}", h.status, h.message);
                        false
                    }
                    None => false,
                };
                if ok {
                    fetched[idx as usize] = true;
                    fetched_count += 1;
                    progressed = true;
                } else {
                    let _ = call(am, &UmbilicalRequest::ReportFetchFailure { attempt, map_attempt: map });
                    backoff_until.insert(idx, Instant::now() + Duration::from_secs(1));
                }
            }
        }
        shared.set_progress(fetched_count as f64 / maps.max(1) as f64 / 3.0);
        if fetched_count < maps && !progressed {
            std::thread::sleep(POLL);
        }
    }
    shared.set_phase(Phase::Reduce);
    shared.set_progress(1.0 / 3.0);
    shared.busy(false);
    let mut counters = Counters::new();
    let mut merger = segments.into_merger(&mut counters)?;
    let committer = FileOutputCommitter::new(&conf.output, attempt_am(cfg)).map_err(|e| e.to_string())?;
    let dir = committer.task_attempt_path(&attempt.to_string()).map_err(|e| e.to_string())?;
    let path = format!("{dir}/part-r-{:05}", attempt.task.index);
    let mut out = TextOutput::create(dfs, &path, shared)?;
    match &conf.kind {
        JobKind::Streaming { reducer: Some(reducer), .. } => {
            let cmd = streaming(reducer, cfg, attempt, shared);
            let outcome = mapreduce::task::run_streaming_reduce(&cmd, merger, &mut out, &mut counters)?;
            shared.set_state_text(outcome.status);
        }
        JobKind::Teravalidate => {
            let mut splits = Vec::new();
            let mut bad = None;
            mapreduce::merge::for_each_group(&mut merger, |key, values| {
                while let Some(v) = values.next_value() {
                    match crate::tera::SplitSummary::decode(v) {
                        Some(s) => splits.push((key.to_vec(), s)),
                        None => bad = Some(String::from_utf8_lossy(key).into_owned()),
                    }
                }
                Ok(())
            })?;
            if let Some(k) = bad {
                return Err(format!("teravalidate: a bad summary for {k}").into());
            }
            for (k, v) in crate::tera::validate(&splits) {
                out.emit(k.as_bytes(), v.as_bytes())?;
            }
        }
        JobKind::Streaming { reducer: None, .. } => {
            // No reducer: the identity (Hadoop's IdentityReducer with streaming).
            reduce(&mut merger, &mut IdentityReducer, &mut out, &mut counters)?;
        }
        kind => {
            let mut r = builtin_reducer(kind).expect("built-in jobs have a reducer");
            reduce(&mut merger, r.as_mut(), &mut out, &mut counters)?;
        }
    }
    shared.busy(true);
    out.close()?;
    shared.set_counters(counters);
    shared.set_progress(0.99);
    commit(conf, dfs, am, attempt, &committer)?;
    Ok(String::new())
}
