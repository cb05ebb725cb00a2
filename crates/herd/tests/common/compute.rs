//! A compute cluster for tests: `herd up --datanodes D --nodemanagers N` (one keeper, a
//! NameNode and D DataNodes when D > 0, a ResourceManager and NodeManagers `nm1..nmN`) in a
//! temp dir on a free port base. Dropped, also when a test panics, it stops `herd up`
//! (SIGTERM, SIGKILL after 20 s) and then SIGKILLs any process cluster.json ever listed that
//! is still alive, so a failing test leaves nothing behind.
#![allow(dead_code)] // each test file uses a different part

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compute_proto::records::{NodeReport, NodeState};
use compute_proto::{ApplicationClientRequest, ApplicationClientResponse};
use rpc::{Caller, Protocol, RetryPolicy, RpcClient};

use super::{alive, capture, herd_bin};

/// How long any wait of the harness lasts before the test fails.
const WAIT_MAX: Duration = Duration::from_secs(120);
/// `herd up` stops each tier's roles with SIGTERM and SIGKILLs them 10 s later; this leaves
/// room for that.
const STOP_MAX: Duration = Duration::from_secs(20);

pub struct ComputeCluster {
    /// `herd up`; in a Mutex so that waits (`&self`) can see whether it exited.
    up: Mutex<Child>,
    dir: tempfile::TempDir,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    port_base: u16,
    /// Every pid cluster.json listed while the harness read it, for the clean-up in `drop`.
    pids_seen: Mutex<Vec<u32>>,
}

impl ComputeCluster {
    /// Starts the cluster with `extra_up_args` for `herd up`, and waits until every process
    /// runs and the ResourceManager has every NodeManager RUNNING.
    pub fn start(datanodes: usize, nodemanagers: usize, extra_up_args: &[&str]) -> ComputeCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        // Keeper client and peer, NameNode RPC and HTTP, ResourceManager RPC.
        let base = super::free_port_base_for(&[2181, 2888, 8020, 9870, 8032]);
        let mut up = Command::new(herd_bin())
            .args(["up", "--dir"])
            .arg(dir.path())
            .args(["--port-base", &base.to_string()])
            .args(["--datanodes", &datanodes.to_string(), "--nodemanagers", &nodemanagers.to_string()])
            .args(extra_up_args)
            .env("RUST_LOG", "info,openraft=error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herd up");
        let stdout = capture(up.stdout.take().expect("stdout"));
        let stderr = capture(up.stderr.take().expect("stderr"));
        let c = ComputeCluster {
            up: Mutex::new(up),
            dir,
            stdout,
            stderr,
            port_base: base,
            pids_seen: Mutex::new(Vec::new()),
        };
        // cluster.json is first written once every process printed its ready line.
        c.wait_for("cluster.json with every process running", || {
            let procs = c.processes()?;
            procs.iter().all(|p| p["state"] == "running").then_some(())
        });
        assert_eq!(c.nodemanager_ids().len(), nodemanagers, "{}", c.output());
        if nodemanagers > 0 {
            c.wait_nodes_running(nodemanagers);
        }
        if datanodes > 0 {
            // A process that printed its ready line may not have registered with the NameNode
            // yet: wait until every DataNode is live there.
            let live = format!("Live datanodes ({datanodes}):");
            c.wait_for(&format!("{datanodes} live datanodes"), || {
                let out = c.herd(&["dfsadmin", "report"]);
                String::from_utf8_lossy(&out.stdout).contains(&live).then_some(())
            });
        }
        c
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `--port-base` `herd up` was given.
    pub fn port_base(&self) -> u16 {
        self.port_base
    }

    /// cluster.json's `processes`, or None while it is missing (`herd up` starting or gone).
    pub fn processes(&self) -> Option<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(self.dir.path().join("cluster.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let procs = v["processes"].as_array()?.clone();
        let mut seen = self.pids_seen.lock().unwrap();
        for pid in procs.iter().filter_map(|p| p["pid"].as_u64()) {
            if !seen.contains(&(pid as u32)) {
                seen.push(pid as u32);
            }
        }
        Some(procs)
    }

    /// The cluster.json entry of `role` `id`.
    pub fn entry(&self, role: &str, id: &str) -> serde_json::Value {
        let procs = self.processes().expect("cluster.json");
        procs.into_iter().find(|p| p["role"] == role && p["id"] == id).unwrap_or_else(|| panic!("no {role} {id}"))
    }

    /// The `key` address of `role` `id` per cluster.json; None if it has none.
    pub fn addr(&self, role: &str, id: &str, key: &str) -> Option<String> {
        self.entry(role, id)["addrs"][key].as_str().map(str::to_string)
    }

    /// The ResourceManager's client RPC address.
    pub fn rm_addr(&self) -> String {
        self.addr("resourcemanager", "1", "rpc").expect("the resourcemanager's rpc address")
    }

    /// The NameNode's RPC address; None when the cluster runs no file system.
    pub fn namenode_addr(&self) -> Option<String> {
        let procs = self.processes().expect("cluster.json");
        procs.iter().find(|p| p["role"] == "namenode").and_then(|p| p["addrs"]["rpc"].as_str()).map(str::to_string)
    }

    /// The NodeManagers' ids, in cluster.json's order (`nm1`, `nm2`, ...).
    pub fn nodemanager_ids(&self) -> Vec<String> {
        let procs = self.processes().expect("cluster.json");
        procs
            .iter()
            .filter(|p| p["role"] == "nodemanager")
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect()
    }

    /// The pid of NodeManager `nm<i>` (1-based) per cluster.json: its latest process.
    pub fn nodemanager_pid(&self, i: usize) -> u32 {
        let pid = self.entry("nodemanager", &format!("nm{i}"))["pid"].as_u64().expect("a pid");
        pid.try_into().expect("a pid fits u32")
    }

    /// SIGKILL to NodeManager `nm<i>`'s current process; returns its pid.
    pub fn kill9_nodemanager(&self, i: usize) -> u32 {
        let pid = self.nodemanager_pid(i);
        assert!(alive(pid), "nodemanager nm{i} (pid {pid}) is not running");
        // SAFETY: a NodeManager that the `herd up` this test started runs as this pid (cluster.json
        // names the latest process, and it is alive).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        pid
    }

    /// Runs `herd ARGS` against this cluster (`HERD_CLUSTER` names its dir, as `--cluster`).
    pub fn herd(&self, args: &[&str]) -> Output {
        Command::new(herd_bin())
            .args(args)
            .env("HERD_CLUSTER", self.dir.path())
            .env("HADOOP_USER_NAME", "herd")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run herd")
    }

    /// A client of the ResourceManager's client protocol, as user `herd`.
    pub fn rm_client(&self) -> RpcClient {
        let policy = RetryPolicy {
            io_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(10),
            first_pause: Duration::from_millis(50),
        };
        RpcClient::new(self.rm_addr(), Protocol::ClientResourceManager, Caller::new("herd", Vec::new()), policy)
    }

    /// The nodes the ResourceManager reports (GetClusterNodes, every state).
    pub fn cluster_nodes(&self) -> Result<Vec<NodeReport>, String> {
        let req = ApplicationClientRequest::GetClusterNodes { states: Vec::new() };
        match self.rm_client().call::<_, ApplicationClientResponse>(&req) {
            Ok(ApplicationClientResponse::Nodes { nodes }) => Ok(nodes),
            Ok(other) => panic!("GetClusterNodes answered {other:?}"),
            Err(e) => Err(format!("{e:?}")),
        }
    }

    /// Waits until the ResourceManager's RUNNING nodes are exactly the `n` NodeManagers
    /// cluster.json lists as running now, by control address (a node's id): so a NodeManager
    /// that was restarted counts only once its new process has registered. Returns them.
    pub fn wait_nodes_running(&self, n: usize) -> Vec<NodeReport> {
        let t0 = Instant::now();
        loop {
            let mut want: Vec<String> = self
                .processes()
                .unwrap_or_default()
                .iter()
                .filter(|p| p["role"] == "nodemanager" && p["state"] == "running")
                .filter_map(|p| p["addrs"]["ctl"].as_str().map(str::to_string))
                .collect();
            want.sort();
            let last = match self.cluster_nodes() {
                Ok(nodes) => {
                    let running: Vec<NodeReport> =
                        nodes.into_iter().filter(|r| r.state == NodeState::Running).collect();
                    let mut got: Vec<String> = running.iter().map(|r| r.node_id.to_string()).collect();
                    got.sort();
                    if want.len() == n && got == want {
                        return running;
                    }
                    format!("RUNNING at the RM: {got:?}; running NodeManagers in cluster.json: {want:?}")
                }
                Err(e) => format!("GetClusterNodes: {e}"),
            };
            self.check_up(&format!("{n} nodes RUNNING ({last})"), t0);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `f` until it gives a value; fails with `herd up`'s output if `herd up` exits or
    /// [`WAIT_MAX`] passes.
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let t0 = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            self.check_up(what, t0);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn check_up(&self, what: &str, t0: Instant) {
        let exited = self.up.lock().unwrap().try_wait().expect("try_wait");
        if let Some(status) = exited {
            panic!("herd up exited ({status}) while waiting for {what}\n{}", self.output());
        }
        assert!(t0.elapsed() < WAIT_MAX, "gave up waiting for {what}\n{}", self.output());
    }

    /// What `herd up` printed so far.
    pub fn output(&self) -> String {
        format!("herd up stdout:\n{}\nherd up stderr:\n{}", self.stdout.lock().unwrap(), self.stderr.lock().unwrap())
    }

    /// Every pid cluster.json listed while the harness read it.
    pub fn pids_seen(&self) -> Vec<u32> {
        self.pids_seen.lock().unwrap().clone()
    }

    /// SIGTERM to `herd up`, and waits for it to exit (SIGKILL after [`STOP_MAX`]).
    pub fn stop(&mut self) -> ExitStatus {
        let up = self.up.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(status) = up.try_wait().expect("try_wait") {
            return status;
        }
        // SAFETY: SIGTERM to the `herd up` this harness started, not yet reaped.
        unsafe { libc::kill(up.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Some(status) = up.try_wait().expect("try_wait") {
                return status;
            }
            if t0.elapsed() > STOP_MAX {
                let _ = up.kill();
                return up.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ComputeCluster {
    fn drop(&mut self) {
        self.stop();
        // PDEATHSIG has the kernel SIGTERM every child once `herd up` is gone; give them a
        // moment, then make sure. These pids are the children of the `herd up` this test started.
        let pids = self.pids_seen.get_mut().unwrap_or_else(|p| p.into_inner()).clone();
        let t0 = Instant::now();
        while pids.iter().any(|&p| alive(p)) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in pids {
            if alive(pid) {
                // SAFETY: a process started by the `herd up` this test started, outliving it.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}
