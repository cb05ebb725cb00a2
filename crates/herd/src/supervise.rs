//! The supervisor: the parent of every herd daemon, used by `herd up` (one per role) and by
//! `herd supervise` (any one program).
//!
//! A supervised child goes `starting -> running -> (death) -> ending its session -> back-off
//! -> starting ...`, until it is stopped or has died more than `restarts_max` times within the
//! window, when it is `failed` with an error that says so. The child learns of the supervisor
//! through an inherited pipe ([`report_pipe`], protocol in `member::report`) on which it reports
//! its keeper session; when the child dies, the supervisor ends that session at once
//! ([`end_session`]), before backing off or restarting, so the cluster learns of a crash in
//! milliseconds instead of a session timeout.
//!
//! Layout: [`RestartPolicy`] and [`Budget`] (the pure give-up and back-off rule), [`ChildSpec`]
//! (how to start a child), [`Incarnation`] (one process of it), [`run`] (the supervising loop),
//! [`run_cli`] (`herd supervise`).

mod end_session;
mod report_pipe;

use anyhow::Context;
use clap::Args;
use member::report::{Report, SessionReport};
use report_pipe::{ReportPipe, CHILD_FD};
use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Defaults of [`RestartPolicy`], shared by the flags of `herd up` and `herd supervise`.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX_MS: u64 = 10_000;
pub const RESTARTS_MAX: usize = 5;
pub const RESTART_WINDOW_S: u64 = 60;
/// How long a child has to exit after SIGTERM before it gets SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the supervisor keeps trying to end a dead child's session; after that the session
/// ends by its own timeout, as it would without a supervisor.
const END_SESSION_BOUND: Duration = Duration::from_secs(30);
/// How long the restart waits for the session to end; the rest of [`END_SESSION_BOUND`] runs
/// beside the restart.
const END_SESSION_FIRST: Duration = Duration::from_millis(500);
/// The same when the supervisor itself is stopping: it should not linger.
const END_SESSION_BOUND_STOPPING: Duration = Duration::from_secs(5);

/// When to restart a child that died, and when to give up on it.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// The first back-off; it doubles with each death up to [`RestartPolicy::backoff_max`].
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Restarts allowed within [`RestartPolicy::window`]; one more death is a failure.
    pub restarts_max: usize,
    /// The window deaths are counted in. A child that ran longer than this before dying
    /// starts its back-off from the beginning again.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartArgs { restarts_max: RESTARTS_MAX, restart_window_s: RESTART_WINDOW_S, backoff_max_ms: BACKOFF_MAX_MS }
            .policy()
    }
}

/// The restart flags, the same for `herd up` and `herd supervise`.
#[derive(Args, Debug, Clone)]
pub struct RestartArgs {
    /// Restarts allowed within the window; one more death and the supervisor gives up on the
    /// child (a clean exit counts too: a daemon is meant to run until it is stopped).
    #[arg(long, value_name = "K", default_value_t = RESTARTS_MAX)]
    pub restarts_max: usize,
    /// The window, in seconds, in which deaths are counted.
    #[arg(long, value_name = "S", default_value_t = RESTART_WINDOW_S)]
    pub restart_window_s: u64,
    /// The longest back-off between restarts, in milliseconds (it starts at 100 ms and doubles).
    #[arg(long, value_name = "M", default_value_t = BACKOFF_MAX_MS)]
    pub backoff_max_ms: u64,
}

impl RestartArgs {
    pub fn policy(&self) -> RestartPolicy {
        let backoff_max = Duration::from_millis(self.backoff_max_ms);
        RestartPolicy {
            backoff_initial: BACKOFF_INITIAL.min(backoff_max),
            backoff_max,
            restarts_max: self.restarts_max,
            window: Duration::from_secs(self.restart_window_s),
        }
    }
}

/// What [`Budget::on_death`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Restart {
        backoff: Duration,
    },
    /// `deaths` deaths within the window: more than the policy allows.
    GiveUp {
        deaths: usize,
    },
}

/// The give-up and back-off rule, a pure function of the deaths it is told of.
#[derive(Debug)]
pub struct Budget {
    policy: RestartPolicy,
    /// Deaths within the window, oldest first; at most `restarts_max + 1` are ever kept.
    deaths: VecDeque<Instant>,
    /// Deaths since the child last ran longer than the window: the back-off's exponent.
    streak: u32,
}

impl Budget {
    pub fn new(policy: RestartPolicy) -> Budget {
        Budget { policy, deaths: VecDeque::new(), streak: 0 }
    }

    /// A death at `now` of a child that had run for `ran_for` (zero for a failed start).
    pub fn on_death(&mut self, now: Instant, ran_for: Duration) -> Verdict {
        if ran_for >= self.policy.window {
            self.streak = 0;
        }
        while self.deaths.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.policy.window) {
            self.deaths.pop_front();
        }
        self.deaths.push_back(now);
        if self.deaths.len() > self.policy.restarts_max {
            return Verdict::GiveUp { deaths: self.deaths.len() };
        }
        let backoff =
            self.policy.backoff_initial.saturating_mul(1u32 << self.streak.min(20)).min(self.policy.backoff_max);
        self.streak += 1;
        Verdict::Restart { backoff }
    }
}

/// How to start one child.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Its name in the log ("keeper 2").
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Where its stderr goes, appended (and its stdout, unless a ready line is awaited there).
    /// None: the supervisor's own.
    pub log: Option<PathBuf>,
    /// The child is ready once it prints a line with this prefix on stdout; the rest of the
    /// line is its addresses, `KEY=ADDR ...` (an empty ADDR is skipped). None: ready once
    /// started.
    pub ready_prefix: Option<String>,
    /// Addresses the child does not print on its ready line.
    pub known_addrs: BTreeMap<String, String>,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    pub policy: RestartPolicy,
    /// The network namespace (a name `ip netns` lists) the child runs in; None: the
    /// supervisor's own.
    pub netns: Option<String>,
}

impl ChildSpec {
    /// " (see LOG)", or nothing without a log file.
    pub fn see_log(&self) -> String {
        self.log.as_ref().map(|l| format!(" (see {})", l.display())).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Running,
    /// Dead: its session being ended, then backing off, then starting again.
    Restarting,
    /// Given up on, with the error that says why.
    Failed(String),
    Stopped,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Running => "running",
            State::Restarting => "restarting",
            State::Failed(_) => "failed",
            State::Stopped => "stopped",
        }
    }
}

/// What a supervisor tells its owner after each change.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    /// The pid of the child's latest process (while restarting: the dead one until the next
    /// is started).
    pub pid: u32,
    /// Processes started after the first.
    pub restarts: u32,
    /// From the ready line of the latest process that was ready.
    pub addrs: BTreeMap<String, String>,
}

/// Where [`run`] sends each [`Status`], tagged with the child's index.
pub type Updates = mpsc::Sender<(usize, Status)>;

/// One process of a supervised child.
pub struct Incarnation {
    child: Child,
    pub pid: u32,
    started: Instant,
    /// Until the ready line has been read.
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    pipe: ReportPipe,
    /// The latest session the child reported and has not reported closed.
    session: Option<SessionReport>,
    pub addrs: BTreeMap<String, String>,
}

impl Incarnation {
    /// Starts a process of `spec`; [`Incarnation::wait_ready`] then waits for its ready line.
    ///
    /// Call this only from threads that live as long as the supervisor (runtime workers or the
    /// main thread, never `spawn_blocking`): PDEATHSIG fires when the *thread* that forked the
    /// child ends.
    pub fn spawn(spec: &ChildSpec) -> anyhow::Result<Incarnation> {
        let (pipe, write_end) = report_pipe::pair().context("creating the report pipe")?;
        let log = |what: &str| -> anyhow::Result<Stdio> {
            Ok(match &spec.log {
                Some(path) => std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {} for {what}", path.display()))?
                    .into(),
                None => Stdio::inherit(),
            })
        };
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .env(member::report::ENV_FD, CHILD_FD.to_string())
            .stdin(Stdio::null())
            .stdout(if spec.ready_prefix.is_some() { Stdio::piped() } else { log("stdout")? })
            .stderr(log("stderr")?)
            .kill_on_drop(true);
        let write_fd = write_end.as_raw_fd();
        // Opened here, since pre_exec may not allocate; close-on-exec, so only the fork holds
        // it, and it lives until the child has exec'd (the end of this function).
        let netns = match &spec.netns {
            Some(ns) => Some(
                std::fs::File::open(format!("/var/run/netns/{ns}"))
                    .with_context(|| format!("opening network namespace {ns} for {}", spec.name))?,
            ),
            None => None,
        };
        let netns_fd = netns.as_ref().map(|f| f.as_raw_fd());
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec the closure makes only async-signal-safe calls
        // (prctl, getppid, setpgid, setns, dup2, fcntl) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                // The kernel SIGTERMs the child if this supervisor dies, even by kill -9, so no
                // daemon outlives its supervisor. If the supervisor died before the prctl, the
                // child has been re-parented already: give up on it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                // Its own process group keeps a terminal's Ctrl-C away from the child: the
                // supervisor alone decides how children stop, and never mistakes that for a
                // crash to restart.
                libc::setpgid(0, 0);
                // Into the role's network namespace (`herd up --netns`) by setns rather than
                // by running `ip netns exec`: the child is the herd process from its first
                // instruction, with no mount namespace of ip's, and a restart needs no ip.
                if let Some(fd) = netns_fd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // The write end on CHILD_FD, open across exec. dup2 replaces whatever the
                // child had there (the read end, if pipe2 handed out fd 3: it is close-on-exec
                // and not the child's business). If the write end already is CHILD_FD, dup2
                // does nothing, and close-on-exec must be cleared by hand.
                if write_fd != CHILD_FD && libc::dup2(write_fd, CHILD_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::fcntl(CHILD_FD, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {} ({})", spec.name, spec.program.display()))?;
        // Only the child (and whoever it hands it to) holds the write end now.
        drop(write_end);
        let pid = child.id().context("a child just spawned has no pid")?;
        let stdout = child.stdout.take().map(|out| BufReader::new(out).lines());
        Ok(Incarnation {
            child,
            pid,
            started: Instant::now(),
            stdout,
            pipe,
            session: None,
            addrs: spec.known_addrs.clone(),
        })
    }

    /// Waits for the ready line (if the spec has one) and takes the addresses on it. On an
    /// error the process may still run: [`Incarnation::kill`] it (or drop it).
    pub async fn wait_ready(&mut self, spec: &ChildSpec) -> anyhow::Result<()> {
        let Some(prefix) = &spec.ready_prefix else { return Ok(()) };
        let mut lines = self.stdout.take().context("the child's stdout was not kept")?;
        let deadline = tokio::time::sleep(spec.ready_timeout);
        tokio::pin!(deadline);
        let ready = loop {
            tokio::select! {
                _ = &mut deadline => anyhow::bail!("{} did not become ready within {:?}", spec.name, spec.ready_timeout),
                line = lines.next_line() => match line? {
                    Some(line) => {
                        if let Some(rest) = line.strip_prefix(prefix.as_str()) {
                            break rest.to_owned();
                        }
                    }
                    None => anyhow::bail!("{} exited during start", spec.name),
                },
                items = self.pipe.next() => self.apply(&spec.name, items),
            }
        };
        // `KEY=` with nothing after it is no address (a server the child does not run).
        self.addrs.extend(
            ready
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(())
    }

    /// Takes the child's reports in.
    fn apply(&mut self, name: &str, items: Vec<report_pipe::Item>) {
        for item in items {
            match item {
                Ok(Report::Session(s)) => {
                    tracing::info!(
                        "{name} (pid {}) holds keeper session 0x{:x} on {}",
                        self.pid,
                        s.session_id,
                        s.hosts
                    );
                    self.session = Some(s);
                }
                Ok(Report::Closed { session_id }) => {
                    if self.session.as_ref().is_some_and(|s| s.session_id == session_id) {
                        tracing::info!("{name} (pid {}) closed keeper session 0x{session_id:x}", self.pid);
                        self.session = None;
                    } else {
                        tracing::warn!("{name} (pid {}) reported closing session 0x{session_id:x}, which it did not report holding; ignored", self.pid);
                    }
                }
                // The line itself is not logged: it may hold a password.
                Err(why) => tracing::warn!("{name} (pid {}) wrote a bad report line ({why}); ignored", self.pid),
            }
        }
    }

    /// Waits for the process to end, reading its reports meanwhile, and then the reports it
    /// wrote just before it died. Returns how it ended ("exit status: 3", "signal: 9
    /// (SIGKILL)") and whether that was a clean exit (status 0).
    async fn wait(&mut self, name: &str) -> (String, bool) {
        let status = loop {
            tokio::select! {
                status = self.child.wait() => break status,
                items = self.pipe.next() => self.apply(name, items),
            }
        };
        let items = self.pipe.drain_now();
        self.apply(name, items);
        match status {
            Ok(status) => (status.to_string(), status.success()),
            Err(e) => {
                // Never run two of the same child: make sure this one is gone.
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                (format!("could not be waited for ({e})"), false)
            }
        }
    }

    /// SIGTERM to the child's process group, SIGKILL after `timeout`; reaps the child and
    /// reads its last reports.
    async fn stop(&mut self, name: &str, timeout: Duration) {
        self.signal(libc::SIGTERM);
        if tokio::time::timeout(timeout, self.wait(name)).await.is_err() {
            tracing::warn!("{name} (pid {}) did not stop within {timeout:?} of SIGTERM; killing it", self.pid);
            self.kill(name).await;
        }
    }

    /// SIGKILL to the child's process group; reaps it, and says how it ended.
    async fn kill(&mut self, name: &str) -> String {
        self.signal(libc::SIGKILL);
        self.wait(name).await.0
    }

    fn signal(&self, signal: i32) {
        // The group's id is the child's pid (setpgid(0, 0)). While the child is not reaped
        // (`id()` is Some) neither can be reused.
        if self.child.id().is_some() {
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-(self.pid as i32), signal) };
        }
    }
}

/// Ends the session a dead process reported holding, if it did not report closing it. The
/// report is forgotten only once this has run to the end (ended, or given up after `bound`):
/// if the future is dropped halfway, the session can be ended later.
async fn end_reported_session(name: &str, inc: &mut Incarnation, died: Instant, bound: Duration) {
    let Some(session) = inc.session.clone() else { return };
    let id = session.session_id;
    let first = bound.min(END_SESSION_FIRST);
    match end_session::end_session(&session, first).await {
        Ok(ended) => log_ended(name, id, died, ended),
        Err(e) if bound > first => {
            // No keeper answered yet: the session may live on the dead child itself (a
            // standalone keeper). Restarting must not wait for that, so the rest of the
            // attempt runs beside the restart, bounded by what is left of `bound`.
            tracing::info!("session 0x{id:x} of {name} not ended yet ({e}); still trying while it restarts");
            let name = name.to_owned();
            tokio::spawn(async move {
                match end_session::end_session(&session, bound - first).await {
                    Ok(ended) => log_ended(&name, id, died, ended),
                    Err(e) => {
                        tracing::warn!("could not end session 0x{id:x} of {name}, it will end by its timeout: {e}")
                    }
                }
            });
        }
        Err(e) => tracing::warn!("could not end session 0x{id:x} of {name}, it will end by its timeout: {e}"),
    }
    inc.session = None;
}

fn log_ended(name: &str, id: i64, died: Instant, ended: end_session::Ended) {
    let ms = died.elapsed().as_secs_f64() * 1e3;
    match ended {
        end_session::Ended::Closed(addr) => {
            let at = addr.map(|a| format!(" at {a}")).unwrap_or_default();
            tracing::info!("ended session 0x{id:x} of {name}{at} in {ms:.1} ms")
        }
        end_session::Ended::AlreadyGone => tracing::info!("session 0x{id:x} of {name} was already gone ({ms:.1} ms)"),
    }
}

/// Stops a running process: SIGTERM, SIGKILL after the stop timeout, then ends the session
/// it reported and did not close.
async fn stop_and_end(spec: &ChildSpec, inc: &mut Incarnation) {
    inc.stop(&spec.name, spec.stop_timeout).await;
    end_reported_session(&spec.name, inc, Instant::now(), END_SESSION_BOUND_STOPPING).await;
}

/// Supervises a child whose first process is running, until `cancel` (then stops it: Ok) or
/// until it has failed too often (Err, the error also sent as [`State::Failed`]).
pub async fn run(
    spec: &ChildSpec,
    mut inc: Incarnation,
    index: usize,
    cancel: &CancellationToken,
    updates: Option<&Updates>,
) -> anyhow::Result<()> {
    let mut budget = Budget::new(spec.policy.clone());
    let mut restarts = 0u32;
    let notify = |state: State, inc: &Incarnation, restarts: u32| {
        let status = Status { state, pid: inc.pid, restarts, addrs: inc.addrs.clone() };
        async move {
            if let Some(tx) = updates {
                // Err: the owner is gone (it is stopping); nothing left to tell.
                let _ = tx.send((index, status)).await;
            }
        }
    };
    let name = &spec.name;
    loop {
        // Running.
        let (what, clean) = tokio::select! {
            _ = cancel.cancelled() => {
                stop_and_end(spec, &mut inc).await;
                notify(State::Stopped, &inc, restarts).await;
                return Ok(());
            }
            ended = inc.wait(name) => ended,
        };
        let died = Instant::now();
        let ran_for = died.duration_since(inc.started);
        if clean {
            tracing::info!(
                "{name} (pid {}) exited cleanly after {ran_for:.1?}; restarting it: a daemon runs until it is stopped",
                inc.pid
            );
        } else {
            tracing::warn!("{name} (pid {}) failed after {ran_for:.1?}: {what}", inc.pid);
        }
        notify(State::Restarting, &inc, restarts).await;
        // Ending the session comes first: before the back-off, before the restart.
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = end_reported_session(name, &mut inc, died, END_SESSION_BOUND) => {}
        }
        if cancel.is_cancelled() {
            // Interrupted while ending it: try once more, briefly, as any stop does.
            end_reported_session(name, &mut inc, died, END_SESSION_BOUND_STOPPING).await;
            notify(State::Stopped, &inc, restarts).await;
            return Ok(());
        }
        let mut verdict = budget.on_death(died, ran_for);
        let mut last = what;
        inc = loop {
            let backoff = match verdict {
                Verdict::Restart { backoff } => backoff,
                Verdict::GiveUp { deaths } => {
                    let err = format!(
                        "{name} died {deaths} times within {:?} (last: {last}); gave up{}",
                        spec.policy.window,
                        spec.see_log()
                    );
                    tracing::error!("{err}");
                    notify(State::Failed(err.clone()), &inc, restarts).await;
                    return Err(anyhow::anyhow!(err));
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {
                    notify(State::Stopped, &inc, restarts).await;
                    return Ok(());
                }
                _ = tokio::time::sleep(backoff) => {}
            }
            let mut next = match Incarnation::spawn(spec) {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!("{name} could not be restarted: {e:#}");
                    last = format!("could not be restarted: {e:#}");
                    verdict = budget.on_death(Instant::now(), Duration::ZERO);
                    continue;
                }
            };
            restarts += 1;
            notify(State::Restarting, &next, restarts).await;
            let ready = tokio::select! {
                _ = cancel.cancelled() => {
                    stop_and_end(spec, &mut next).await;
                    notify(State::Stopped, &next, restarts).await;
                    return Ok(());
                }
                ready = next.wait_ready(spec) => ready,
            };
            match ready {
                Ok(()) => break next,
                Err(e) => {
                    let what = next.kill(name).await;
                    let died = Instant::now();
                    tracing::warn!("{e:#} ({what}){}", spec.see_log());
                    end_reported_session(name, &mut next, died, END_SESSION_BOUND).await;
                    last = format!("{e:#} ({what})");
                    verdict = budget.on_death(died, died.duration_since(next.started));
                    inc = next;
                }
            }
        };
        tracing::info!("{name} restarted as pid {}", inc.pid);
        notify(State::Running, &inc, restarts).await;
    }
}

#[derive(Args)]
pub struct SuperviseArgs {
    /// The child's name in the log (default: the program's file name).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    restart: RestartArgs,
    /// Append the child's stdout and stderr to FILE (default: they go where the supervisor's go;
    /// the supervisor logs to stderr).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// The program to supervise, and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM ARGS")]
    command: Vec<OsString>,
}

/// `herd supervise`: runs one program under the supervisor until SIGTERM/SIGINT (exit 0) or
/// until it fails too often (an error: exit status 1).
pub async fn run_cli(a: SuperviseArgs) -> anyhow::Result<()> {
    let (program, args) = a.command.split_first().context("no program to supervise")?;
    let program = PathBuf::from(program);
    let name = a.name.unwrap_or_else(|| {
        program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "child".into())
    });
    let spec = ChildSpec {
        name,
        program,
        args: args.to_vec(),
        log: a.log,
        ready_prefix: None,
        known_addrs: BTreeMap::new(),
        ready_timeout: Duration::ZERO,
        stop_timeout: STOP_TIMEOUT,
        policy: a.restart.policy(),
        netns: None,
    };
    // Listening before the first start, so that a signal is never missed.
    let stop_signal = crate::stop_signal();
    tokio::pin!(stop_signal);
    let inc = Incarnation::spawn(&spec)?;
    tracing::info!("{} started as pid {}", spec.name, inc.pid);
    let cancel = CancellationToken::new();
    let supervised = run(&spec, inc, 0, &cancel, None);
    tokio::pin!(supervised);
    tokio::select! {
        result = &mut supervised => result,
        _ = &mut stop_signal => {
            tracing::info!("stopping {}", spec.name);
            cancel.cancel();
            supervised.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(restarts_max: usize) -> RestartPolicy {
        RestartPolicy {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            restarts_max,
            window: Duration::from_secs(60),
        }
    }

    fn backoff(v: Verdict) -> Duration {
        match v {
            Verdict::Restart { backoff } => backoff,
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_max() {
        let mut b = Budget::new(policy(100));
        let t0 = Instant::now();
        let got: Vec<u64> = (0..6)
            .map(|i| backoff(b.on_death(t0 + Duration::from_millis(i), Duration::ZERO)).as_millis() as u64)
            .collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn gives_up_after_restarts_max_deaths_within_the_window() {
        let mut b = Budget::new(policy(3));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(matches!(b.on_death(t0 + Duration::from_secs(i), Duration::ZERO), Verdict::Restart { .. }));
        }
        assert_eq!(b.on_death(t0 + Duration::from_secs(3), Duration::ZERO), Verdict::GiveUp { deaths: 4 });
    }

    #[test]
    fn deaths_outside_the_window_do_not_count() {
        let mut b = Budget::new(policy(2));
        let t0 = Instant::now();
        assert!(matches!(b.on_death(t0, Duration::ZERO), Verdict::Restart { .. }));
        assert!(matches!(b.on_death(t0 + Duration::from_secs(1), Duration::ZERO), Verdict::Restart { .. }));
        // 70 s later the first two are out of the window.
        assert!(matches!(b.on_death(t0 + Duration::from_secs(70), Duration::ZERO), Verdict::Restart { .. }));
        assert!(matches!(b.on_death(t0 + Duration::from_secs(71), Duration::ZERO), Verdict::Restart { .. }));
        assert!(matches!(b.on_death(t0 + Duration::from_secs(72), Duration::ZERO), Verdict::GiveUp { deaths: 3 }));
    }

    #[test]
    fn a_child_that_ran_longer_than_the_window_starts_its_backoff_again() {
        let mut b = Budget::new(policy(100));
        let t0 = Instant::now();
        for i in 0..4 {
            b.on_death(t0 + Duration::from_millis(i), Duration::ZERO);
        }
        let later = t0 + Duration::from_secs(200);
        assert_eq!(backoff(b.on_death(later, Duration::from_secs(61))), Duration::from_millis(100));
        assert_eq!(backoff(b.on_death(later, Duration::ZERO)), Duration::from_millis(200));
    }
}
