//! `herd up`: a whole cluster on one machine as supervised child processes on loopback.
//!
//! For now the cluster is one keeper. The supervisor restarts a child that dies, with back-off,
//! and gives up (exiting with an error) after too many deaths in a window rather than loop.

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Default ports before `--port-base` is added.
pub const KEEPER_CLIENT_PORT: u16 = 2181;
/// Restarts allowed within [`RESTART_WINDOW`] before the supervisor gives up.
const RESTARTS_MAX: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args)]
pub struct UpArgs {
    /// Cluster directory: every process's data and log, and cluster.json.
    #[arg(long, default_value = ".herd")]
    dir: PathBuf,
    /// Added to every default port (keeper client 2181 -> 2181 + N), so clusters can run side by side.
    #[arg(long, default_value_t = 0)]
    port_base: u16,
}

#[derive(Serialize)]
struct ProcessEntry {
    role: String,
    id: String,
    pid: u32,
    addrs: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ClusterFile {
    processes: Vec<ProcessEntry>,
}

struct Supervised {
    role: &'static str,
    id: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    addrs: BTreeMap<String, String>,
    deaths: Vec<Instant>,
}

impl Supervised {
    async fn start(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("locating the herd binary")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
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
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {}", self.role, self.id))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix(&format!("herd {} ready ", self.role)) {
                    return Ok::<_, anyhow::Error>(Some(rest.to_owned()));
                }
            }
            Ok(None)
        })
        .await
        .with_context(|| format!("{} {} did not become ready; see {}", self.role, self.id, self.log.display()))??;
        let ready = ready
            .with_context(|| format!("{} {} exited during start; see {}", self.role, self.id, self.log.display()))?;
        self.addrs = ready
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        Ok(())
    }
}

fn write_cluster_file(dir: &Path, procs: &[Supervised]) -> anyhow::Result<()> {
    let file = ClusterFile {
        processes: procs
            .iter()
            .map(|p| ProcessEntry {
                role: p.role.to_owned(),
                id: p.id.clone(),
                pid: p.child.as_ref().and_then(|c| c.id()).unwrap_or(0),
                addrs: p.addrs.clone(),
            })
            .collect(),
    };
    let path = dir.join("cluster.json");
    let tmp = dir.join("cluster.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&file)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

async fn stop(p: &mut Supervised) {
    let Some(mut child) = p.child.take() else { return };
    if let Some(pid) = child.id() {
        // SAFETY: sending a signal to our own child by its pid.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

pub async fn run(a: UpArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let port = KEEPER_CLIENT_PORT.checked_add(a.port_base).context("--port-base pushes a port past 65535")?;
    let keeper_dir = a.dir.join("keeper-1");
    let mut procs = vec![Supervised {
        role: "keeper",
        id: "1".into(),
        args: vec![
            "keeper".into(),
            "--data-dir".into(),
            keeper_dir.display().to_string(),
            "--client-addr".into(),
            format!("127.0.0.1:{port}"),
        ],
        log: a.dir.join("keeper-1.log"),
        child: None,
        addrs: BTreeMap::new(),
        deaths: Vec::new(),
    }];
    for p in procs.iter_mut() {
        p.start().await?;
    }
    write_cluster_file(&a.dir, &procs)?;
    for p in &procs {
        println!("{} {} up: {:?} (log {})", p.role, p.id, p.addrs, p.log.display());
    }
    println!("cluster described in {}; Ctrl-C stops it", a.dir.join("cluster.json").display());
    let result = supervise(&a.dir, &mut procs).await;
    for p in procs.iter_mut() {
        stop(p).await;
    }
    let _ = std::fs::remove_file(a.dir.join("cluster.json"));
    result
}

async fn supervise(dir: &Path, procs: &mut [Supervised]) -> anyhow::Result<()> {
    // One listener for the whole run, so a signal that lands during a restart is not missed.
    let stop = crate::stop_signal();
    tokio::pin!(stop);
    loop {
        let p = &mut procs[0];
        let Some(child) = p.child.as_mut() else { anyhow::bail!("no child") };
        tokio::select! {
            _ = &mut stop => {
                println!("stopping cluster");
                return Ok(());
            }
            status = child.wait() => {
                let status = status?;
                p.child = None;
                let now = Instant::now();
                p.deaths.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
                p.deaths.push(now);
                tracing::warn!("{} {} exited ({status}); {} deaths in the last minute", p.role, p.id, p.deaths.len());
                if p.deaths.len() > RESTARTS_MAX {
                    anyhow::bail!("{} {} died {} times within {:?}; giving up (see {})", p.role, p.id, p.deaths.len(), RESTART_WINDOW, p.log.display());
                }
                let backoff = Duration::from_millis(200 << p.deaths.len().min(5));
                tokio::time::sleep(backoff).await;
                p.start().await?;
                write_cluster_file(dir, procs)?;
            }
        }
    }
}
