//! Containers: each a process group started from its own working directory with its own
//! environment, stdout and stderr in its log directory, its memory held to a limit, stopped as
//! YARN stops one (SIGTERM to the group, SIGKILL [`Config::kill_delay`] later), and its end
//! reported once on the [`Containers`]' event channel.
//!
//! **Invariant:** every container launched is reported exactly once as a [`ContainerExit`],
//! whatever ends it (its own exit, a kill, the memory limit, a launch failure is an error
//! instead and is not reported). **Invariant:** a kill reaches every process of the group, so a
//! streaming task's children go with it; the group's leader dies with the NodeManager too
//! (PDEATHSIG), so a NodeManager killed with -9 leaves no container running unwatched.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How containers are run.
#[derive(Debug, Clone)]
pub struct Config {
    /// From SIGTERM to SIGKILL when a container is stopped (YARN's
    /// `yarn.nodemanager.sleep-delay-before-sigkill.ms`, 250 ms).
    pub kill_delay: Duration,
    /// How often every container's memory is measured.
    pub monitor_interval: Duration,
    /// Container ends queued for the daemon at most (a full queue holds the waiter back).
    pub events_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { kill_delay: Duration::from_millis(250), monitor_interval: Duration::from_secs(1), events_max: 1024 }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The container's id (YARN's `container_...` string); unique among running containers.
    pub id: String,
    /// The program and its arguments (no shell: give `sh -c` explicitly).
    pub argv: Vec<String>,
    /// Added to a cleared environment (PATH and HOME are passed through unless set here).
    pub env: Vec<(String, String)>,
    /// Its working directory; created if missing.
    pub work_dir: PathBuf,
    /// Where `stdout` and `stderr` go; created if missing.
    pub log_dir: PathBuf,
    /// Resident memory of the whole group, in bytes, past which it is killed; 0: no limit.
    pub memory_limit: u64,
}

/// Why a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself with this code.
    Exited(i32),
    /// A signal nobody here sent ended it.
    Signaled(i32),
    /// [`Containers::kill`] stopped it.
    Killed,
    /// Its group's resident memory passed the limit.
    OverMemory { rss: u64, limit: u64 },
}

/// A container's end, reported once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExit {
    pub id: String,
    pub ended: Ended,
    /// The exit status as a shell reports it (128 + signal for a signal), YARN's
    /// `ContainerStatus.exitStatus` for a container that ended by itself.
    pub exit_status: i32,
    /// For humans: what ended it, and the tail of its stderr when it failed.
    pub diagnostics: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("container {0} is already running")]
    Duplicate(String),
    #[error("container {id}: empty command")]
    EmptyCommand { id: String },
    #[error("container {id}: {what} {path}: {source}")]
    Dir { id: String, what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("container {id}: starting {program}: {source}")]
    Spawn { id: String, program: String, source: std::io::Error },
    #[error("the containers are shutting down")]
    Stopped,
}

/// Bytes of a failed container's stderr quoted in its diagnostics.
const STDERR_TAIL: u64 = 4096;

struct Running {
    pgid: libc::pid_t,
    memory_limit: u64,
    /// Set once a stop was asked for (why), so that the waiter reports it rather than the signal.
    stopping: Option<Ended>,
    log_dir: PathBuf,
}

/// The containers of one NodeManager. Cheap to clone.
#[derive(Clone)]
pub struct Containers {
    cfg: Config,
    running: Arc<Mutex<BTreeMap<String, Running>>>,
    events: mpsc::Sender<ContainerExit>,
    stop: CancellationToken,
}

impl Containers {
    /// The containers and the channel their ends arrive on; a memory monitor runs until `stop`.
    pub fn start(cfg: Config, stop: CancellationToken) -> (Containers, mpsc::Receiver<ContainerExit>) {
        let (events, rx) = mpsc::channel(cfg.events_max.max(1));
        let c = Containers { cfg, running: Arc::new(Mutex::new(BTreeMap::new())), events, stop };
        tokio::spawn(c.clone().monitor());
        (c, rx)
    }

    /// Starts a container; its end comes on the event channel. Call it from a runtime worker
    /// (or a thread that lives as long as the NodeManager), never `spawn_blocking`: PDEATHSIG
    /// fires when the thread that forked the child ends.
    pub fn launch(&self, spec: ContainerSpec) -> Result<u32, LaunchError> {
        if self.stop.is_cancelled() {
            return Err(LaunchError::Stopped);
        }
        let id = spec.id.clone();
        let Some((program, args)) = spec.argv.split_first() else { return Err(LaunchError::EmptyCommand { id }) };
        if self.lock().contains_key(&id) {
            return Err(LaunchError::Duplicate(id));
        }
        let dir = |what, path: &Path| {
            std::fs::create_dir_all(path).map_err(|source| LaunchError::Dir {
                id: id.clone(),
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        dir("work dir", &spec.work_dir)?;
        dir("log dir", &spec.log_dir)?;
        let open = |name: &str| {
            let path = spec.log_dir.join(name);
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|source| LaunchError::Dir {
                id: id.clone(),
                what: "log file",
                path,
                source,
            })
        };
        let (stdout, stderr) = (open("stdout")?, open("stderr")?);
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(&spec.work_dir).env_clear();
        for var in ["PATH", "HOME", "LANG"] {
            if let Ok(v) = std::env::var(var) {
                cmd.env(var, v);
            }
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("CONTAINER_ID", &id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec the closure makes only async-signal-safe calls
        // (prctl, getppid, setpgid) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                // The leader dies with the NodeManager (even by kill -9). If the NodeManager
                // died before the prctl, the child was re-parented already: give up.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                // Its own group: a stop reaches the container's children too.
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let mut child =
            cmd.spawn().map_err(|source| LaunchError::Spawn { id: id.clone(), program: program.clone(), source })?;
        let pid = child.id().unwrap_or(0);
        self.lock().insert(
            id.clone(),
            Running {
                pgid: pid as libc::pid_t,
                memory_limit: spec.memory_limit,
                stopping: None,
                log_dir: spec.log_dir.clone(),
            },
        );
        tracing::info!(container = %id, pid, "container started");
        let me = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let exit = me.finished(&id, status);
            tracing::info!(container = %id, status = exit.exit_status, ended = ?exit.ended, "container ended");
            let _ = me.events.send(exit).await;
        });
        Ok(pid)
    }

    /// Stops a container (SIGTERM to its group, SIGKILL after the kill delay). False if it is
    /// not running. Its end is reported as [`Ended::Killed`].
    pub fn kill(&self, id: &str) -> bool {
        self.stop_with(id, Ended::Killed)
    }

    /// The ids of the running containers.
    pub fn running(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Stops every container (the NodeManager is stopping).
    pub fn kill_all(&self) {
        for id in self.running() {
            self.kill(&id);
        }
    }

    fn stop_with(&self, id: &str, why: Ended) -> bool {
        let pgid = {
            let mut running = self.lock();
            let Some(r) = running.get_mut(id) else { return false };
            if r.stopping.is_none() {
                r.stopping = Some(why);
            }
            r.pgid
        };
        signal_group(pgid, libc::SIGTERM);
        let delay = self.cfg.kill_delay;
        let running = self.running.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // Only while its leader lives (the group id cannot have been reused then); once the
            // leader is gone, `finished` has killed the rest of the group already.
            if running.lock().unwrap_or_else(|p| p.into_inner()).get(&id).is_some_and(|r| r.pgid == pgid) {
                signal_group(pgid, libc::SIGKILL);
            }
        });
        true
    }

    /// Removes a finished container and describes its end.
    fn finished(&self, id: &str, status: std::io::Result<std::process::ExitStatus>) -> ContainerExit {
        let r = self.lock().remove(id);
        let (pgid, stopping, log_dir) = match r {
            Some(r) => (r.pgid, r.stopping, Some(r.log_dir)),
            None => (0, None, None),
        };
        // Whatever the leader's end, the rest of its group goes with it.
        if pgid > 0 {
            signal_group(pgid, libc::SIGKILL);
        }
        let (exit_status, own) = match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => (code, Ended::Exited(code)),
                (None, Some(sig)) => (128 + sig, Ended::Signaled(sig)),
                (None, None) => (-1, Ended::Exited(-1)),
            },
            Err(e) => {
                tracing::warn!(container = %id, "waiting for the container: {e}");
                (-1, Ended::Exited(-1))
            }
        };
        let ended = stopping.unwrap_or(own);
        let mut diagnostics = match &ended {
            Ended::Exited(0) => String::new(),
            Ended::Exited(c) => format!("exited with status {c}"),
            Ended::Signaled(s) => format!("killed by signal {s}"),
            Ended::Killed => "stopped on request".to_string(),
            Ended::OverMemory { rss, limit } => {
                format!("running beyond physical memory limits: {} MiB used of {} MiB; killed", rss >> 20, limit >> 20)
            }
        };
        if ended != Ended::Exited(0) {
            if let Some(tail) = log_dir.and_then(|d| tail_of(&d.join("stderr"), STDERR_TAIL)) {
                if !tail.is_empty() {
                    diagnostics.push_str("\nstderr (last lines):\n");
                    diagnostics.push_str(&tail);
                }
            }
        }
        ContainerExit { id: id.to_string(), ended, exit_status, diagnostics }
    }

    /// Measures every container's group every interval and stops those over their limit.
    async fn monitor(self) {
        let mut tick = tokio::time::interval(self.cfg.monitor_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => {
                    self.kill_all();
                    return;
                }
                _ = tick.tick() => {}
            }
            let limited: Vec<(String, libc::pid_t, u64)> = self
                .lock()
                .iter()
                .filter(|(_, r)| r.memory_limit > 0 && r.stopping.is_none())
                .map(|(id, r)| (id.clone(), r.pgid, r.memory_limit))
                .collect();
            if limited.is_empty() {
                continue;
            }
            let rss = tokio::task::spawn_blocking(group_rss).await.unwrap_or_default();
            for (id, pgid, limit) in limited {
                let used = rss.get(&pgid).copied().unwrap_or(0);
                if used > limit {
                    tracing::warn!(container = %id, used, limit, "container over its memory limit");
                    self.stop_with(&id, Ended::OverMemory { rss: used, limit });
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        // std Mutex: every critical section is a few map operations, never across an await.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn signal_group(pgid: libc::pid_t, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Resident bytes per process group, from /proc/<pid>/stat (field 5: pgrp; field 24: rss in
/// pages).
pub fn group_rss() -> BTreeMap<libc::pid_t, u64> {
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        if let Some((pgrp, rss_pages)) = parse_stat(&stat) {
            *out.entry(pgrp).or_insert(0) += rss_pages * page;
        }
    }
    out
}

/// (pgrp, rss pages) of a /proc/<pid>/stat line. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<(libc::pid_t, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): pgrp is field 5, rss field 24.
    let pgrp = fields.get(2)?.parse().ok()?;
    let rss = fields.get(21)?.parse().ok()?;
    Some((pgrp, rss))
}

/// The last `max` bytes of a file, from a line start when possible.
fn tail_of(path: &Path, max: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Some(match (len > max, text.find('\n')) {
        (true, Some(i)) => text[i + 1..].to_string(),
        _ => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "4242 (we (ird) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 100 1000000 321 18446744073709551615";
        assert_eq!(parse_stat(line), Some((4240, 321)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn tails_start_at_a_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "aaaa\nbbbb\ncccc\n").unwrap();
        assert_eq!(tail_of(&p, 8).unwrap(), "cccc\n");
        assert_eq!(tail_of(&p, 100).unwrap(), "aaaa\nbbbb\ncccc\n");
        assert!(tail_of(&d.path().join("none"), 10).is_none());
    }
}
