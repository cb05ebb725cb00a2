//! A file system cluster for `herd fs` tests: `herd up --datanodes N --nodemanagers 0` (no
//! compute: these tests do not use it) in a temp dir on a free port base, stopped (SIGTERM,
//! then SIGKILL) when dropped, also when a test panics.
#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct FsCluster {
    pub up: Child,
    pub dir: tempfile::TempDir,
}

impl FsCluster {
    /// Starts one keeper, one NameNode and `datanodes` DataNodes, and waits until a file can
    /// be written (the DataNodes registered).
    pub fn start(datanodes: usize) -> FsCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = free_fs_port_base();
        let up = Command::new(super::herd_bin())
            .args(["up", "--dir"])
            .arg(dir.path())
            .args(["--port-base", &base.to_string(), "--datanodes", &datanodes.to_string(), "--nodemanagers", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn herd up");
        let c = FsCluster { up, dir };
        c.wait_for("every process running", || {
            let v = c.cluster_json()?;
            let procs = v["processes"].as_array()?;
            let running = procs.iter().filter(|p| p["state"] == "running").count();
            (running == 2 + datanodes).then_some(())
        });
        let probe = c.dir.path().join("probe");
        std::fs::write(&probe, b"probe").expect("write probe");
        let mut last = String::new();
        let t0 = Instant::now();
        loop {
            let out = c.fs(&["put", "-f", "-r", &datanodes.min(3).to_string(), probe.to_str().unwrap(), "/probe"]);
            if out.status.success() {
                break;
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(t0.elapsed() < Duration::from_secs(120), "no first write: {last}");
            std::thread::sleep(Duration::from_millis(200));
        }
        drop(last);
        assert!(c.fs(&["rm", "/probe"]).status.success());
        c
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cluster_json(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("cluster.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The pid of DataNode `id` per cluster.json.
    pub fn datanode_pid(&self, id: &str) -> Option<u32> {
        let v = self.cluster_json()?;
        v["processes"]
            .as_array()?
            .iter()
            .find(|p| p["role"] == "datanode" && p["id"] == id)
            .and_then(|p| p["pid"].as_u64())
            .map(|p| p as u32)
    }

    /// The HTTP address (`host:port`) of a role's process per cluster.json (`namenode` "1",
    /// `datanode` "2", ...).
    pub fn http_addr(&self, role: &str, id: &str) -> String {
        let v = self.cluster_json().expect("cluster.json");
        let p = v["processes"].as_array().expect("processes").iter().find(|p| p["role"] == role && p["id"] == id);
        p.and_then(|p| p["addrs"]["http"].as_str()).expect("an http address").to_string()
    }

    /// The data directory of DataNode `id` (as `herd up` lays it out).
    pub fn datanode_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("datanode-{id}"))
    }

    /// Runs `herd fs --cluster DIR args...`.
    pub fn fs(&self, args: &[&str]) -> Output {
        Command::new(super::herd_bin())
            .arg("fs")
            .arg("--cluster")
            .arg(self.dir.path())
            .args(args)
            .env("HADOOP_USER_NAME", "herd")
            .env("RUST_LOG", "warn")
            .env_remove("HERD_CLUSTER")
            .stdin(Stdio::null())
            .output()
            .expect("run herd fs")
    }

    pub fn fs_ok(&self, args: &[&str]) -> String {
        let out = self.fs(args);
        assert!(out.status.success(), "herd fs {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let t0 = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A `--port-base` B with the keeper's ports (2181 + B, 2888 + B) and the NameNode's
/// (8020 + B, 9870 + B) free now.
fn free_fs_port_base() -> u16 {
    // Keeper client and peer, NameNode RPC and HTTP.
    super::free_port_base_for(&[2181, 2888, 8020, 9870])
}

impl Drop for FsCluster {
    fn drop(&mut self) {
        super::terminate(&mut self.up, Duration::from_secs(10));
    }
}
