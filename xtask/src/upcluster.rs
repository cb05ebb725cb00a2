//! A `herd up` cluster for the benches (`fsbench.rs`, `mrbench.rs`): started on a free port
//! base in a scratch dir, stopped by its pid; the helpers around it (free disk, logs kept on
//! failure, medians). cluster.json is parsed by hand, as xtask has no JSON dependency.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long `herd up` may take to print `cluster described in`.
const UP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopped `herd up` gets after SIGINT before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// On failure, copies the cluster's logs (small) out of the scratch dir before it is removed
/// with its large files: every `*.log` and cluster.json at the top of the scratch and cluster
/// dirs, and the containers' stdout and stderr under each NodeManager's `logs` dir.
pub fn keep_logs(dir: &Path) {
    let logs = dir.with_file_name(format!("{}-logs", dir.file_name().unwrap_or_default().to_string_lossy()));
    let mut kept = 0;
    for d in [dir.to_owned(), dir.join("cluster")] {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.extension().is_some_and(|x| x == "log") || name == "cluster.json" {
                if std::fs::create_dir_all(&logs).is_ok() && std::fs::copy(&p, logs.join(&name)).is_ok() {
                    kept += 1;
                }
            } else if name.starts_with("nodemanager-") && p.join("logs").is_dir() {
                kept += copy_tree(&p.join("logs"), &logs.join(&name));
            }
        }
    }
    if kept > 0 {
        eprintln!("xtask: logs kept in {} (--keep keeps the whole scratch dir)", logs.display());
    }
}

/// Copies the files under `from` (container logs: app/container/stdout|stderr) into `to`;
/// returns how many. Files past 64 MiB are left out: a log that large is not read whole.
fn copy_tree(from: &Path, to: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(from) else { return 0 };
    let mut n = 0;
    for e in entries.flatten() {
        let (p, q) = (e.path(), to.join(e.file_name()));
        match e.metadata() {
            Ok(md) if md.is_dir() => n += copy_tree(&p, &q),
            Ok(md) if md.len() <= 64 << 20 && std::fs::create_dir_all(to).is_ok() && std::fs::copy(&p, &q).is_ok() => {
                n += 1
            }
            _ => {}
        }
    }
    n
}

/// The median of `v` (the mean of the middle two when even).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Free MiB on the file system holding `dir`, from `df -k`.
pub fn free_mib(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-k").arg("--output=avail").arg(dir).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let kib: u64 = String::from_utf8_lossy(&out.stdout).lines().nth(1)?.trim().parse().ok()?;
    Some(kib / 1024)
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if text.trim().is_empty() {
        return format!("{} is empty", path.display());
    }
    let all: Vec<&str> = text.lines().collect();
    format!("{} (last lines):\n    {}", path.display(), all[all.len().saturating_sub(lines)..].join("\n    "))
}

/// A port base B for `herd up --keepers 1` under which its fixed ports (keeper client 2181 + B,
/// peer 2888 + B, NameNode RPC 8020 + B and HTTP 9870 + B, ResourceManager 8032 + B) are free
/// now. B is kept so that 8020 + B stays below
/// the kernel's ephemeral range (32768 up), where the tests' own bases and the DataNodes'
/// port-0 data ports land.
fn free_port_base() -> Result<u16> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut seed = u64::from(std::process::id()) ^ now.as_nanos() as u64;
    for _ in 0..100 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let base = 10_000 + (seed >> 33) as u16 % 14_000;
        let held: Vec<TcpListener> = [2181, 2888, 8020, 9870, 8032]
            .iter()
            .map_while(|p| TcpListener::bind(("127.0.0.1", p + base)).ok())
            .collect();
        if held.len() == 5 {
            return Ok(base);
        }
    }
    bail!("found no port base with the keeper's, NameNode's (RPC and HTTP) and ResourceManager's ports free")
}

/// A `herd up` cluster: the `herd up` process, stopped by its pid when dropped (SIGINT, then
/// SIGKILL after 20 s); `herd up` stops its children itself.
pub struct Cluster {
    child: Child,
    pub namenode: String,
    /// The cluster dir (`herd up --dir`), inside the scratch dir.
    pub dir: PathBuf,
    /// Lines `herd up` printed after it was up (restarts, failures).
    events: Arc<Mutex<Vec<String>>>,
}

impl Cluster {
    /// Starts `herd up` with 3 DataNodes and `nodemanagers` NodeManagers (and a
    /// ResourceManager when that is not 0) in `dir`/cluster, its stderr in `dir`/up.log.
    pub fn start(herd: &Path, dir: &Path, nodemanagers: u16) -> Result<Cluster> {
        let cdir = dir.join("cluster");
        let log = dir.join("up.log");
        let base = free_port_base()?;
        let mut cmd = Command::new(herd);
        cmd.arg("up").arg("--dir").arg(&cdir).args(["--port-base", &base.to_string(), "--datanodes", "3"]);
        cmd.args(["--nodemanagers", &nodemanagers.to_string()]);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(File::create(&log)?);
        eprintln!("xtask: running {cmd:?}");
        let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let stdout = child.stdout.take().context("herd up's stdout")?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut c = Cluster { child, namenode: String::new(), dir: cdir, events: events.clone() };
        let (tx, rx) = mpsc::channel();
        // Sends the ready line, then keeps what follows and drains stdout so `herd up` never
        // blocks on a full pipe. Not joined: it ends at end of file.
        std::thread::spawn(move || {
            let mut up = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if up {
                    events.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                } else if line.starts_with("cluster described in") {
                    up = true;
                    let _ = tx.send(());
                }
            }
        });
        match rx.recv_timeout(UP_TIMEOUT) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("herd up printed no `cluster described in` within {UP_TIMEOUT:?}; {}", log_tail(&log, 15))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let st = c
                    .wait_exit(Duration::from_secs(2))
                    .map_or("closed its stdout".to_owned(), |s| format!("exited ({s})"));
                bail!("herd up {st} before the cluster was up; {}", log_tail(&log, 15))
            }
        }
        let json = std::fs::read_to_string(c.dir.join("cluster.json")).context("reading cluster.json")?;
        c.namenode = namenode_rpc(&json).with_context(|| format!("no namenode rpc address in cluster.json: {json}"))?;
        Ok(c)
    }

    /// Runs `herd fs --namenode ADDR ARGS...`, its output appended to fs.log; fails with the
    /// log's tail when it fails or outlives `timeout` (then it is killed by its pid). Polls
    /// every millisecond, so the caller's timing is off by at most that.
    pub fn fs(&self, herd: &Path, args: &[&str], timeout: Duration) -> Result<()> {
        let log_path = self.dir.parent().unwrap_or(&self.dir).join("fs.log");
        let mut log = File::options().create(true).append(true).open(&log_path)?;
        writeln!(log, "$ herd fs --namenode {} {}", self.namenode, args.join(" "))?;
        let mut cmd = Command::new(herd);
        cmd.env("RUST_BACKTRACE", "0").args(["fs", "--namenode", &self.namenode]).args(args);
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if t0.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "herd fs {} did not finish within {timeout:?}; killed. {}",
                    args.join(" "),
                    log_tail(&log_path, 10)
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if !status.success() {
            bail!("herd fs {} failed ({status}); {}", args.join(" "), log_tail(&log_path, 10));
        }
        Ok(())
    }

    /// `herd fs cat PATH` into /dev/null: the whole file read back (and checked against its
    /// CRCs by the client), nothing written locally.
    pub fn cat(&self, herd: &Path, path: &str, timeout: Duration) -> Result<()> {
        let mut cmd = Command::new(herd);
        cmd.env("RUST_BACKTRACE", "0").args(["fs", "--namenode", &self.namenode, "cat", path]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let t0 = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    bail!("herd fs cat {path} failed ({status}): {err}");
                }
                return Ok(());
            }
            if t0.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!("herd fs cat {path} did not finish within {timeout:?}; killed");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// What `herd up` printed after the cluster was up (a restarted or failed process makes the
    /// figures suspect).
    pub fn notes(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|l| format!("during the bench herd up printed: {l}"))
            .collect()
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if t0.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id().to_string();
        // The shell's builtin kill: no dependency on procps' /usr/bin/kill.
        let _ = Command::new("sh").args(["-c", "kill -INT \"$1\"", "sh", &pid]).status();
        if self.wait_exit(STOP_GRACE).is_none() {
            eprintln!("xtask: herd up (pid {pid}) still running {STOP_GRACE:?} after SIGINT; SIGKILL");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Each process object of cluster.json as text, from its `"role"` key to the next one (xtask
/// parses it by hand), with its role.
fn processes(json: &str) -> impl Iterator<Item = (String, &str)> {
    json.split("\"role\"").skip(1).filter_map(|p| Some((string_after(&format!("\"role\"{p}"), "role")?, p)))
}

/// The string value of the first `"key": "value"` in `s`.
fn string_after(s: &str, key: &str) -> Option<String> {
    let rest = s.split_once(&format!("\"{key}\""))?.1;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest.split_once('"')?.0.to_owned())
}

/// `addrs.rpc` of the process whose role is "namenode", from cluster.json.
fn namenode_rpc(json: &str) -> Option<String> {
    processes(json).find_map(|(role, p)| if role == "namenode" { string_after(p, "rpc") } else { None })
}

/// The pid of process `role` `id` in cluster.json (its current process, or while it
/// restarts, the latest one).
pub fn process_pid(json: &str, role: &str, id: &str) -> Option<u32> {
    let (_, p) = processes(json).find(|(r, p)| r == role && string_after(p, "id").as_deref() == Some(id))?;
    let rest = p.split_once("\"pid\"")?.1.trim_start().strip_prefix(':')?.trim_start();
    rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

impl Cluster {
    /// cluster.json as `herd up` last wrote it (whole: it is renamed into place).
    pub fn json(&self) -> Result<String> {
        std::fs::read_to_string(self.dir.join("cluster.json")).context("reading cluster.json")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_cluster_json() {
        let json = r#"{"processes": [
          {"role": "keeper", "id": "1", "state": "running", "pid": 1, "restarts": 0, "addrs": {"client": "127.0.0.1:2181"}},
          {"role": "datanode", "id": "1", "state": "running", "pid": 2, "restarts": 0, "addrs": {"data": "127.0.0.1:4000"}},
          {"role": "namenode", "id": "1", "state": "running", "pid": 3, "restarts": 0, "addrs": {"rpc": "127.0.0.1:8020"}},
          {"role": "nodemanager", "id": "nm1", "state": "running", "pid": 41, "restarts": 0, "addrs": {}},
          {"role": "nodemanager", "id": "nm2", "state": "running", "pid": 42, "restarts": 1, "addrs": {}}
        ]}"#;
        assert_eq!(super::namenode_rpc(json).as_deref(), Some("127.0.0.1:8020"));
        assert_eq!(super::process_pid(json, "nodemanager", "nm2"), Some(42));
        assert_eq!(super::process_pid(json, "nodemanager", "nm3"), None);
        assert_eq!(super::process_pid(json, "datanode", "1"), Some(2));
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0]), 2.5);
    }
}
