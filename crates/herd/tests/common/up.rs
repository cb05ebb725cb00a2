//! `herd up` started by a test in a temp dir of its own, on loopback or with `--netns`, and
//! always stopped (see [`Up`]).
#![allow(dead_code)] // each test file uses a different part

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use super::mr::text;
use super::{alive, capture, herd_bin};

const WAIT_MAX: Duration = Duration::from_secs(90);

/// A `herd up` a test started (with `--netns` or on loopback); dropped, it is stopped
/// (SIGTERM, SIGKILL after 30 s), any process it listed that outlives it is killed, and
/// namespaces it left are deleted (unless it was killed with kill -9 on purpose).
pub struct Up {
    pub up: Child,
    pub dir: std::path::PathBuf,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    pub prefix: String,
    pub pids_seen: Vec<u32>,
    /// False once `herd up` was killed with kill -9: what it left is the next start's to delete.
    pub delete_namespaces: bool,
}

impl Up {
    /// `herd up --dir DIR ARGS`; waits until every process runs and every DataNode is live.
    /// A loopback cluster gets a free port base.
    pub fn start(dir: &Path, args: &[&str]) -> Up {
        let mut cmd = Command::new(herd_bin());
        cmd.args(["up", "--dir"]).arg(dir).args(args);
        if !args.contains(&"--netns") {
            let base = super::free_port_base_for(&[2181, 2888, 8020, 9870, 8032]);
            cmd.args(["--port-base", &base.to_string()]);
        }
        let datanodes: usize = args
            .iter()
            .position(|a| *a == "--datanodes")
            .and_then(|i| args.get(i + 1))
            .map_or(3, |n| n.parse().expect("--datanodes N"));
        let mut up = cmd
            .env("RUST_LOG", "info,openraft=error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herd up");
        let stdout = capture(up.stdout.take().expect("stdout"));
        let stderr = capture(up.stderr.take().expect("stderr"));
        let mut c = Up {
            up,
            dir: dir.to_path_buf(),
            stdout,
            stderr,
            prefix: String::new(),
            pids_seen: Vec::new(),
            delete_namespaces: true,
        };
        let file = c.wait_for("cluster.json with every process running", |c| {
            let v = c.cluster_file()?;
            // A kill -9'd run's cluster.json lists processes that are gone: wait for this run's.
            let procs = v["processes"].as_array()?;
            procs
                .iter()
                .all(|p| p["state"] == "running" && p["pid"].as_u64().is_some_and(|p| alive(p as u32)))
                .then_some(v)
        });
        c.prefix = file["netns"]["prefix"].as_str().unwrap_or_default().to_owned();
        if datanodes > 0 {
            c.wait_live_datanodes(datanodes);
        }
        c
    }

    pub fn cluster_file(&mut self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join("cluster.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        for p in v["processes"].as_array()? {
            if let Some(pid) = p["pid"].as_u64() {
                if !self.pids_seen.contains(&(pid as u32)) {
                    self.pids_seen.push(pid as u32);
                }
            }
        }
        Some(v)
    }

    /// `herd ARGS` from this test's own (the machine's) namespace, given the cluster dir.
    pub fn herd(&self, args: &[&str]) -> Output {
        Command::new(herd_bin())
            .args(args)
            .env("HERD_CLUSTER", &self.dir)
            .env("HADOOP_USER_NAME", "herd")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run herd")
    }

    pub fn herd_ok(&self, args: &[&str]) -> String {
        let out = self.herd(args);
        assert!(out.status.success(), "herd {args:?}: {}\n{}", text(&out), self.output());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn wait_live_datanodes(&mut self, n: usize) {
        let live = format!("Live datanodes ({n}):");
        self.wait_for(&live, |c| {
            let out = c.herd(&["dfsadmin", "report"]);
            String::from_utf8_lossy(&out.stdout).contains(&live).then_some(())
        });
    }

    pub fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(&mut Self) -> Option<T>) -> T {
        let t0 = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if let Some(status) = self.up.try_wait().expect("try_wait") {
                panic!("herd up exited ({status}) while waiting for {what}\n{}", self.output());
            }
            assert!(t0.elapsed() < WAIT_MAX, "gave up waiting for {what}\n{}", self.output());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn output(&self) -> String {
        format!("herd up stdout:\n{}\nherd up stderr:\n{}", self.stdout.lock().unwrap(), self.stderr.lock().unwrap())
    }

    /// SIGTERM to `herd up`; waits for it to exit.
    pub fn stop(&mut self) {
        super::terminate(&mut self.up, Duration::from_secs(30));
    }

    /// kill -9 to `herd up` alone (its children die of PDEATHSIG).
    pub fn kill9(&mut self) {
        let _ = self.up.kill();
        let _ = self.up.wait();
        self.delete_namespaces = false;
    }

    pub fn namespaces_left(&self) -> Vec<String> {
        namespaces_with(&self.prefix)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.stop();
        let t0 = Instant::now();
        while self.pids_seen.iter().any(|&p| alive(p)) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for &pid in &self.pids_seen {
            if alive(pid) {
                // SAFETY: a process of the `herd up` this test started, outliving it.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        if self.delete_namespaces && !self.prefix.is_empty() {
            for ns in self.namespaces_left() {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
        }
    }
}

pub fn namespaces_with(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let mine = format!("{prefix}-");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&mine))
        .map(String::from)
        .collect()
}
