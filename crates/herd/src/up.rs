//! `herd up`: a whole cluster on one machine as supervised child processes on loopback.
//!
//! For now the cluster is keepers: one standalone keeper, or an ensemble of 3 or 5
//! (`--keepers`). Every child has a supervising task of its own that restarts it with back-off
//! when it dies (a restarted ensemble member rejoins with its own data dir), so one child's
//! restart never delays noticing another's death. A child that dies too often within a window
//! makes the whole supervisor give up (stop everything and exit with an error) rather than loop.
//! The main loop alone writes `cluster.json`, from the events the tasks send it.

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Default ports before `--port-base` is added. Keeper I (1-based) uses these plus I - 1.
pub const KEEPER_CLIENT_PORT: u16 = 2181;
pub const KEEPER_PEER_PORT: u16 = 2888;
/// Ensemble sizes `--keepers` accepts: odd, so a majority survives the loss of a minority.
const KEEPERS_ALLOWED: [u8; 3] = [1, 3, 5];
/// Restarts allowed within [`RESTART_WINDOW`] before the supervisor gives up.
const RESTARTS_MAX: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child has to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

// Keeper I's ports are the defaults plus I - 1: with at most five keepers the client ports span
// 2181..=2185 and the peer ports 2888..=2892 (plus the same base), so the two ranges never meet.
const _: () =
    assert!(KEEPER_CLIENT_PORT as u32 + KEEPERS_ALLOWED[KEEPERS_ALLOWED.len() - 1] as u32 <= KEEPER_PEER_PORT as u32);

#[derive(Args)]
pub struct UpArgs {
    /// Cluster directory: every process's data and log, and cluster.json.
    #[arg(long, default_value = ".herd")]
    dir: PathBuf,
    /// Added to every default port, so clusters can run side by side. Keeper I (1..=N) serves
    /// clients on 2181 + B + I - 1 and its peers (replication) on 2888 + B + I - 1: the client
    /// ports (2181..=2185 + B) and the peer ports (2888..=2892 + B) never overlap.
    #[arg(long, value_name = "B", default_value_t = 0)]
    port_base: u16,
    /// Keepers to run: 1 (standalone) or an ensemble of 3 or 5.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_keepers)]
    keepers: u8,
}

fn parse_keepers(s: &str) -> Result<u8, String> {
    let n: u8 = s.parse().map_err(|_| format!("{s:?} is not a number of keepers"))?;
    if KEEPERS_ALLOWED.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} keepers: run 1 (standalone), or an ensemble of 3 or 5 (an odd size, so that a majority \
             outlives a minority's failure)"
        ))
    }
}

#[derive(Serialize, Clone)]
struct ProcessEntry {
    role: String,
    id: String,
    /// The pid of the child's latest incarnation.
    pid: u32,
    addrs: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ClusterFile {
    processes: Vec<ProcessEntry>,
}

/// How to start one child.
struct ChildSpec {
    role: &'static str,
    id: String,
    args: Vec<String>,
    log: PathBuf,
    /// Addresses the child does not print on its ready line (a keeper's peer port).
    known_addrs: BTreeMap<String, String>,
}

/// A child that printed its ready line.
struct Running {
    child: Child,
    pid: u32,
    /// From the ready line, plus [`ChildSpec::known_addrs`].
    addrs: BTreeMap<String, String>,
}

/// What a child's supervising task tells the main loop.
enum Event {
    /// Child `index` was restarted and is ready.
    Restarted { index: usize, pid: u32, addrs: BTreeMap<String, String> },
    /// A child died too often; the cluster stops.
    GaveUp(anyhow::Error),
}

/// One keeper per id 1..=N. A standalone keeper gets exactly the flags it always had; ensemble
/// members also get their id and every member's peer address, themselves included.
fn keeper_specs(dir: &Path, keepers: u8, port_base: u16) -> anyhow::Result<Vec<ChildSpec>> {
    let port = |default: u16, id: u8| {
        default
            .checked_add(port_base)
            .and_then(|p| p.checked_add(u16::from(id) - 1))
            .with_context(|| format!("--port-base {port_base} pushes keeper {id}'s ports past 65535"))
    };
    let mut peers = Vec::new();
    for id in 1..=keepers {
        peers.push(format!("{id}=127.0.0.1:{}", port(KEEPER_PEER_PORT, id)?));
    }
    let mut specs = Vec::new();
    for id in 1..=keepers {
        let data_dir = dir.join(format!("keeper-{id}"));
        let client_addr = format!("127.0.0.1:{}", port(KEEPER_CLIENT_PORT, id)?);
        let mut args = vec!["keeper".to_owned(), "--data-dir".to_owned(), data_dir.display().to_string()];
        args.extend(["--client-addr".to_owned(), client_addr]);
        let mut known_addrs = BTreeMap::new();
        if keepers > 1 {
            args.extend(["--id".to_owned(), id.to_string()]);
            for p in &peers {
                args.extend(["--peer".to_owned(), p.clone()]);
            }
            known_addrs.insert("peer".to_owned(), format!("127.0.0.1:{}", port(KEEPER_PEER_PORT, id)?));
        }
        let log = dir.join(format!("keeper-{id}.log"));
        specs.push(ChildSpec { role: "keeper", id: id.to_string(), args, log, known_addrs });
    }
    Ok(specs)
}

/// A child process that has not reported ready yet.
struct Spawned {
    child: Child,
    pid: u32,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// Starts the child process; [`wait_ready`] then reads its stdout.
fn spawn(spec: &ChildSpec) -> anyhow::Result<Spawned> {
    let exe = std::env::current_exe().context("locating the herd binary")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .with_context(|| format!("opening {}", spec.log.display()))?;
    let mut cmd = Command::new(exe);
    // SAFETY: prctl and setpgid are async-signal-safe. PDEATHSIG has the kernel SIGTERM the
    // child if this supervisor dies, even by kill -9, so no daemon outlives its supervisor.
    // Its own process group keeps a terminal's Ctrl-C away from the child: the supervisor
    // alone decides how children stop, and never mistakes that for a crash to restart.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    let mut child = cmd
        .args(&spec.args)
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} {}", spec.role, spec.id))?;
    let pid = child.id().context("a child just spawned has no pid")?;
    let stdout = child.stdout.take().context("child stdout")?;
    Ok(Spawned { child, pid, stdout: BufReader::new(stdout).lines() })
}

/// Waits for the child's ready line (`herd ROLE ready KEY=ADDR...`) and returns its addresses.
async fn wait_ready(
    spec: &ChildSpec,
    mut lines: Lines<BufReader<ChildStdout>>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let prefix = format!("herd {} ready ", spec.role);
    let ready = tokio::time::timeout(READY_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(&prefix) {
                return Ok::<_, anyhow::Error>(Some(rest.to_owned()));
            }
        }
        Ok(None)
    })
    .await
    .with_context(|| format!("{} {} did not become ready; see {}", spec.role, spec.id, spec.log.display()))??;
    let ready =
        ready.with_context(|| format!("{} {} exited during start; see {}", spec.role, spec.id, spec.log.display()))?;
    let mut addrs = spec.known_addrs.clone();
    addrs.extend(
        ready.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(addrs)
}

/// Starts the child and waits until it is ready. `Ok(None)`: cancelled meanwhile, child stopped.
async fn start(spec: &ChildSpec, cancel: &CancellationToken) -> anyhow::Result<Option<Running>> {
    let Spawned { mut child, pid, stdout } = spawn(spec)?;
    let addrs = tokio::select! {
        _ = cancel.cancelled() => {
            stop(&mut child).await;
            return Ok(None);
        }
        // On an error `child` is dropped, and kill_on_drop ends it if it still runs.
        ready = wait_ready(spec, stdout) => ready?,
    };
    Ok(Some(Running { child, pid, addrs }))
}

/// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; reaps the child either way.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: sending a signal to our own child, not yet reaped, by its pid.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(STOP_TIMEOUT, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

fn write_cluster_file(dir: &Path, entries: &[ProcessEntry]) -> anyhow::Result<()> {
    let file = ClusterFile { processes: entries.to_vec() };
    let path = dir.join("cluster.json");
    let tmp = dir.join("cluster.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&file)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

fn show_addrs(addrs: &BTreeMap<String, String>) -> String {
    addrs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

pub async fn run(a: UpArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let specs = keeper_specs(&a.dir, a.keepers, a.port_base)?;

    // Every child is spawned before any is waited for, so a member that waits for its peers
    // before it reports ready cannot hold up the others' start. If one fails, dropping the rest
    // kills them (kill_on_drop). A signal now has its default effect: this process ends, and
    // PDEATHSIG sends the children SIGTERM.
    let mut spawned = Vec::new();
    for spec in &specs {
        spawned.push(spawn(spec)?);
    }
    let mut started = Vec::new();
    for (spec, Spawned { child, pid, stdout }) in specs.iter().zip(spawned) {
        let addrs = wait_ready(spec, stdout).await?;
        started.push(Running { child, pid, addrs });
    }

    let mut entries: Vec<ProcessEntry> = specs
        .iter()
        .zip(&started)
        .map(|(s, r)| ProcessEntry { role: s.role.to_owned(), id: s.id.clone(), pid: r.pid, addrs: r.addrs.clone() })
        .collect();
    write_cluster_file(&a.dir, &entries)?;
    for (s, r) in specs.iter().zip(&started) {
        println!("{} {} up: pid {} {} (log {})", s.role, s.id, r.pid, show_addrs(&r.addrs), s.log.display());
    }
    let connect: Vec<&str> = entries.iter().filter_map(|e| e.addrs.get("client").map(String::as_str)).collect();
    println!("ZooKeeper connect string: {}", connect.join(","));
    println!("cluster described in {}; Ctrl-C stops it", a.dir.join("cluster.json").display());

    // One listener for the whole run, so a signal that lands during a restart is not missed.
    let stop_signal = crate::stop_signal();
    tokio::pin!(stop_signal);
    let cancel = CancellationToken::new();
    let (events_tx, mut events) = mpsc::channel(specs.len() * 2);
    let mut tasks = JoinSet::new();
    for (index, (spec, r)) in specs.into_iter().zip(started).enumerate() {
        tasks.spawn(supervise_child(index, spec, r, cancel.clone(), events_tx.clone()));
    }
    drop(events_tx);

    let result = loop {
        tokio::select! {
            _ = &mut stop_signal => {
                println!("stopping cluster");
                break Ok(());
            }
            event = events.recv() => match event {
                Some(Event::Restarted { index, pid, addrs }) => {
                    let e = &mut entries[index];
                    println!("{} {} restarted: pid {} {}", e.role, e.id, pid, show_addrs(&addrs));
                    e.pid = pid;
                    e.addrs = addrs;
                    if let Err(err) = write_cluster_file(&a.dir, &entries) {
                        break Err(err.context("rewriting cluster.json"));
                    }
                }
                Some(Event::GaveUp(err)) => break Err(err),
                None => break Err(anyhow::anyhow!("every child's supervisor ended")),
            },
        }
    };
    // The tasks stop their children in parallel. Closing the channel first means none of them
    // can be stuck sending an event nobody reads.
    drop(events);
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    let _ = std::fs::remove_file(a.dir.join("cluster.json"));
    result
}

/// Supervises one child until `cancel` (then stops it) or until it dies too often (then
/// reports [`Event::GaveUp`]). A restart that fails counts as one more death.
async fn supervise_child(
    index: usize,
    spec: ChildSpec,
    mut r: Running,
    cancel: CancellationToken,
    events: mpsc::Sender<Event>,
) {
    let mut deaths: Vec<Instant> = Vec::new();
    // Records a death: Ok(the back-off before the next start), or Err once the child has died
    // too often to be started again.
    let mut died = |what: String| {
        let now = Instant::now();
        deaths.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        deaths.push(now);
        tracing::warn!("{} {} {what}; {} deaths in the last minute", spec.role, spec.id, deaths.len());
        if deaths.len() > RESTARTS_MAX {
            return Err(anyhow::anyhow!(
                "{} {} died {} times within {:?}; giving up (see {})",
                spec.role,
                spec.id,
                deaths.len(),
                RESTART_WINDOW,
                spec.log.display()
            ));
        }
        Ok(Duration::from_millis(200 << deaths.len().min(5)))
    };
    loop {
        let status = tokio::select! {
            _ = cancel.cancelled() => {
                stop(&mut r.child).await;
                return;
            }
            status = r.child.wait() => status,
        };
        let what = match status {
            Ok(status) => format!("exited ({status})"),
            Err(e) => {
                // Never run two of the same child: make sure this one is gone before restarting.
                let _ = r.child.start_kill();
                format!("could not be waited for ({e})")
            }
        };
        let mut verdict = died(what);
        r = loop {
            let backoff = match verdict {
                Ok(backoff) => backoff,
                Err(e) => {
                    let _ = events.send(Event::GaveUp(e)).await;
                    return;
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            match start(&spec, &cancel).await {
                Ok(Some(r)) => break r,
                Ok(None) => return,
                Err(e) => verdict = died(format!("failed to restart ({e:#})")),
            }
        };
        tracing::info!("{} {} restarted as pid {}", spec.role, spec.id, r.pid);
        let restarted = Event::Restarted { index, pid: r.pid, addrs: r.addrs.clone() };
        if events.send(restarted).await.is_err() {
            // The main loop has ended: cancel is set or about to be; stop the child.
            stop(&mut r.child).await;
            return;
        }
    }
}
