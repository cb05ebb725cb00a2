//! A file-system cluster of real processes for tests: one keeper, one NameNode and N DataNodes,
//! each `herd` process with its own dir and free loopback ports, killed (SIGKILL) and reaped
//! when the cluster is dropped, also when a test panics. Roles can be killed with -9, paused
//! and restarted one by one; `herd fs` runs against the NameNode.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{capture, herd_bin, KeeperProc};

/// One daemon process and what it logged.
pub struct Daemon {
    pub child: Child,
    /// `KEY=ADDR` pairs from its ready line.
    pub ready: String,
    pub stderr: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `herd ARGS` and waits for its `herd <role> ready ...` line.
    pub fn start(args: &[String], role: &str) -> Daemon {
        let mut child = Command::new(herd_bin())
            .args(args)
            .env("RUST_LOG", "info,openraft=error")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn herd {role}: {e}"));
        let stderr = capture(child.stderr.take().expect("stderr"));
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let prefix = format!("herd {role} ready ");
        let Some(ready) = line.trim().strip_prefix(&prefix).map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!("{role} did not start: {line:?}; stderr: {}", stderr.lock().unwrap());
        };
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        Daemon { child, ready, stderr }
    }

    /// The address named `key` on the ready line.
    pub fn addr(&self, key: &str) -> String {
        self.ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
            .unwrap_or_else(|| panic!("no {key}= on ready line {:?}", self.ready))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct DfsCluster {
    pub dir: tempfile::TempDir,
    pub keeper: KeeperProc,
    pub namenode: Option<Daemon>,
    pub namenode_addr: String,
    namenode_extra: Vec<String>,
    pub datanodes: Vec<Option<Daemon>>,
    datanode_extra: Vec<String>,
}

impl DfsCluster {
    /// A keeper, a NameNode (with `nn_extra` flags) and `n` DataNodes (with `dn_extra`).
    pub fn start(n: usize, nn_extra: &[&str], dn_extra: &[&str]) -> DfsCluster {
        Self::start_with(n, nn_extra, dn_extra, &[])
    }

    /// As [`DfsCluster::start`], with more flags for some DataNodes: `(i, flags)`, 1-based.
    pub fn start_with(n: usize, nn_extra: &[&str], dn_extra: &[&str], per_node: &[(usize, &[&str])]) -> DfsCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let keeper = KeeperProc::start(&dir.path().join("keeper"), &[]);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = DfsCluster {
            keeper,
            namenode: None,
            namenode_addr: format!("127.0.0.1:{port}"),
            namenode_extra: nn_extra.iter().map(|s| s.to_string()).collect(),
            datanodes: Vec::new(),
            datanode_extra: dn_extra.iter().map(|s| s.to_string()).collect(),
            dir,
        };
        c.start_namenode();
        for i in 1..=n {
            let more: Vec<String> =
                per_node.iter().filter(|(j, _)| *j == i).flat_map(|(_, f)| f.iter().map(|s| s.to_string())).collect();
            let d = c.spawn_datanode(i, &more);
            c.datanodes.push(Some(d));
        }
        c.wait_datanodes(n);
        c
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn keepers(&self) -> String {
        self.keeper.addr.to_string()
    }

    pub fn start_namenode(&mut self) {
        let mut args: Vec<String> = ["namenode", "--data-dir"].iter().map(|s| s.to_string()).collect();
        args.push(self.path().join("namenode").display().to_string());
        args.extend(["--listen".into(), self.namenode_addr.clone(), "--keepers".into(), self.keepers()]);
        args.extend(["--http".into(), "127.0.0.1:0".into()]);
        args.extend(self.namenode_extra.iter().cloned());
        self.namenode = Some(Daemon::start(&args, "namenode"));
    }

    pub fn datanode_dir(&self, i: usize) -> PathBuf {
        self.path().join(format!("datanode-{i}"))
    }

    /// Starts DataNode `i` (1-based) with its own data dir, or `data_dir` instead if given.
    pub fn spawn_datanode(&self, i: usize, more: &[String]) -> Daemon {
        let mut args: Vec<String> = vec!["datanode".into(), "--id".into(), i.to_string()];
        if !more.iter().any(|a| a == "--data-dir") {
            args.extend(["--data-dir".into(), self.datanode_dir(i).display().to_string()]);
        }
        args.extend(["--namenode".into(), self.namenode_addr.clone(), "--keepers".into(), self.keepers()]);
        args.extend(["--listen-data".into(), "127.0.0.1:0".into(), "--listen-http".into(), "127.0.0.1:0".into()]);
        args.extend(["--heartbeat-ms".into(), "200".into()]);
        args.extend(self.datanode_extra.iter().cloned());
        args.extend(more.iter().cloned());
        Daemon::start(&args, "datanode")
    }

    pub fn restart_datanode(&mut self, i: usize) {
        let d = self.spawn_datanode(i, &[]);
        self.datanodes[i - 1] = Some(d);
    }

    pub fn kill9_datanode(&mut self, i: usize) {
        if let Some(mut d) = self.datanodes[i - 1].take() {
            d.kill9();
        }
    }

    /// Waits until the NameNode has had `n` DataNode registrations (counted from its log).
    pub fn wait_datanodes(&self, n: usize) {
        let nn = self.namenode.as_ref().expect("namenode running");
        wait_for(
            Duration::from_secs(30),
            || nn.log().matches("datanode registered").count() >= n,
            || format!("{n} datanodes registered; namenode log:\n{}", nn.log()),
        );
    }

    /// `herd fs --namenode ADDR ARGS` as `user`; its output.
    pub fn fs_as(&self, user: &str, args: &[&str]) -> Output {
        Command::new(herd_bin())
            .args(["fs", "--namenode", &self.namenode_addr])
            .args(args)
            .env("HADOOP_USER_NAME", user)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run herd fs")
    }

    /// `herd fs` as the superuser `herd`.
    pub fn fs(&self, args: &[&str]) -> Output {
        self.fs_as("herd", args)
    }

    /// `herd fs` that must succeed; its stdout.
    pub fn fs_ok(&self, args: &[&str]) -> String {
        let out = self.fs(args);
        assert!(out.status.success(), "herd fs {args:?} failed: {}\n{}", out.status, text(&out.stderr));
        text(&out.stdout)
    }

    /// Waits until `fsck PATH` says HEALTHY and every block has `replication` live replicas;
    /// returns the last fsck output.
    pub fn wait_healthy(&self, path: &str, timeout: Duration) -> String {
        let mut last = String::new();
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            let out = self.fs(&["fsck", path]);
            last = text(&out.stdout) + &text(&out.stderr);
            if out.status.success() && fully_replicated(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{path} not healthy within {timeout:?}; last fsck:\n{last}\nnamenode log:\n{}",
            self.namenode_log_tail()
        );
    }

    pub fn namenode_log_tail(&self) -> String {
        let log = self.namenode.as_ref().map(|n| n.log()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// An fsck report with no under-replicated block and no missing replica.
pub fn fully_replicated(fsck: &str) -> bool {
    fsck.contains(" Under-replicated blocks:\t0 ") && fsck.contains(" Missing replicas:\t\t0 ")
}

/// Log text without the terminal colour codes tracing adds.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes (then panics with `what()`).
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool, what: impl Fn() -> String) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < timeout, "timed out after {timeout:?} waiting for {}", what());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deterministic bytes (xorshift), different in every chunk.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// The replica files `blk_<id>` under a DataNode's finalized dir.
pub fn finalized_blocks(dn_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dn_dir.join("current").join("finalized")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("blk_") && !n.ends_with(".meta"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[path = "../../../datanode/tests/common/tmpfs.rs"]
mod tmpfs;
#[allow(unused_imports)] // only the bad-input test uses it
pub use tmpfs::Tmpfs;
