//! Guarantee: `herd up --netns` puts every role in a network namespace of its own, clients in
//! the machine's namespace reach it through its client namespace, and `herd chaos partition`
//! cuts real links: a DataNode cut off leaves the NameNode's view while the file system keeps
//! serving, and rejoins once healed; a keeper cut one way and healed leaves an ensemble that
//! serves. Stopping `herd up` deletes its namespaces; after a kill -9 the next `herd up
//! --netns` on the dir deletes those left behind and starts.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{alive, capture, herd_bin};

const WAIT_MAX: Duration = Duration::from_secs(90);

/// A `herd up --netns` this test started; dropped, it is stopped (SIGTERM, SIGKILL after
/// 30 s), any process it listed that outlives it is killed, and namespaces it left are deleted
/// (unless it was killed with kill -9 on purpose).
struct NetnsUp {
    up: Child,
    dir: std::path::PathBuf,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    prefix: String,
    pids_seen: Vec<u32>,
    /// False once `herd up` was killed with kill -9: what it left is the next start's to delete.
    delete_namespaces: bool,
}

impl NetnsUp {
    fn start(dir: &Path) -> NetnsUp {
        let mut up = Command::new(herd_bin())
            .args(["up", "--netns", "--dir"])
            .arg(dir)
            .args(["--keepers", "3", "--datanodes", "3", "--nodemanagers", "0"])
            .env("RUST_LOG", "info,openraft=error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herd up --netns");
        let stdout = capture(up.stdout.take().expect("stdout"));
        let stderr = capture(up.stderr.take().expect("stderr"));
        let mut c = NetnsUp {
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
        c.prefix = file["netns"]["prefix"].as_str().expect("netns.prefix in cluster.json").to_owned();
        c.wait_live_datanodes(3);
        c
    }

    fn cluster_file(&mut self) -> Option<serde_json::Value> {
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
    fn herd(&self, args: &[&str]) -> Output {
        Command::new(herd_bin())
            .args(args)
            .env("HERD_CLUSTER", &self.dir)
            .env("HADOOP_USER_NAME", "herd")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run herd")
    }

    fn herd_ok(&self, args: &[&str]) -> String {
        let out = self.herd(args);
        assert!(out.status.success(), "herd {args:?}: {}\n{}", text(&out), self.output());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_live_datanodes(&mut self, n: usize) {
        let live = format!("Live datanodes ({n}):");
        self.wait_for(&live, |c| {
            let out = c.herd(&["dfsadmin", "report"]);
            String::from_utf8_lossy(&out.stdout).contains(&live).then_some(())
        });
    }

    fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(&mut Self) -> Option<T>) -> T {
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

    fn output(&self) -> String {
        format!("herd up stdout:\n{}\nherd up stderr:\n{}", self.stdout.lock().unwrap(), self.stderr.lock().unwrap())
    }

    /// SIGTERM to `herd up`; waits for it to exit.
    fn stop(&mut self) {
        common::terminate(&mut self.up, Duration::from_secs(30));
    }

    /// kill -9 to `herd up` alone (its children die of PDEATHSIG).
    fn kill9(&mut self) {
        let _ = self.up.kill();
        let _ = self.up.wait();
        self.delete_namespaces = false;
    }

    fn namespaces_left(&self) -> Vec<String> {
        namespaces_with(&self.prefix)
    }
}

impl Drop for NetnsUp {
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

fn namespaces_with(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let mine = format!("{prefix}-");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&mine))
        .map(String::from)
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// put `local` as `remote`, get it back, compare.
fn round_trip(c: &NetnsUp, remote: &str, body: &[u8]) {
    let local = c.dir.join(format!("in-{}", remote.trim_start_matches('/')));
    std::fs::write(&local, body).unwrap();
    c.herd_ok(&["fs", "put", local.to_str().unwrap(), remote]);
    let back = c.dir.join(format!("out-{}", remote.trim_start_matches('/')));
    c.herd_ok(&["fs", "get", remote, back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), body, "{remote} came back different");
}

#[test]
fn partitions_cut_real_links_and_namespaces_are_cleaned_up() {
    if !common::netns_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let mut c = NetnsUp::start(&dir);

    // Every role has a namespace of its own, and listens on its own address there.
    let file = c.cluster_file().unwrap();
    let procs = file["processes"].as_array().unwrap();
    let mut spaces: Vec<&str> = procs.iter().map(|p| p["netns"].as_str().expect("a netns per role")).collect();
    spaces.sort();
    spaces.dedup();
    assert_eq!(spaces.len(), procs.len(), "{file}");
    for p in procs {
        let ip = p["ip"].as_str().expect("an ip per role");
        for (key, addr) in p["addrs"].as_object().unwrap() {
            assert!(addr.as_str().unwrap().starts_with(&format!("{ip}:")), "{key}={addr} of {p}");
        }
    }
    assert_eq!(file["netns"]["client"], format!("{}-client", c.prefix));
    let left = c.namespaces_left();
    assert_eq!(left.len(), procs.len() + 2, "a namespace per role, the client's and the switch's: {left:?}");

    // Clients in the machine's namespace: they enter the client namespace themselves.
    c.herd_ok(&["status"]);
    round_trip(&c, "/before.txt", b"before any partition\n");

    // A DataNode cut off both ways leaves the view; the file system serves without it.
    let cut = c.herd_ok(&["chaos", "partition", "datanode:2"]);
    assert!(cut.contains("cut datanode:2") && cut.contains("client") && cut.contains("both ways"), "{cut}");
    c.wait_live_datanodes(2);
    let status = c.herd(&["status"]);
    let s = String::from_utf8_lossy(&status.stdout).into_owned();
    let view = s.lines().find(|l| l.contains("group=datanode")).unwrap_or_else(|| panic!("no datanode view in\n{s}"));
    assert!(!view.contains("2@"), "datanode 2 still in the view: {view}");
    round_trip(&c, "/during.txt", b"written while datanode 2 was cut off\n");

    // Healed, it rejoins.
    let healed = c.herd_ok(&["chaos", "heal"]);
    assert!(healed.contains("healed the cut datanode:2 -> client"), "{healed}");
    c.wait_live_datanodes(3);
    c.wait_for("datanode 2 back in the view", |c| {
        let s = String::from_utf8_lossy(&c.herd(&["status"]).stdout).into_owned();
        s.lines().any(|l| l.contains("group=datanode") && l.contains("2@")).then_some(())
    });

    // A keeper cut one way: only its own packets are dropped.
    let cut = c.herd_ok(&["chaos", "partition", "keeper:3", "--one-way"]);
    assert!(cut.contains("one way"), "{cut}");
    let rules = Command::new("ip")
        .args(["netns", "exec", &format!("{}-keeper1", c.prefix), "nft", "list", "table", "inet", "herd"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    let k3_ip = procs.iter().find(|p| p["role"] == "keeper" && p["id"] == "3").unwrap()["ip"].as_str().unwrap();
    assert!(rules.contains(&format!("ip saddr {k3_ip} drop")) && !rules.contains("daddr"), "{rules}");
    // The majority serves meanwhile.
    round_trip(&c, "/one-way.txt", b"keeper 3 cut one way\n");
    let healed = c.herd_ok(&["chaos", "heal", "keeper:3"]);
    assert!(healed.contains("healed the cut keeper:3 -> keeper:1"), "{healed}");
    c.wait_for("herd status all well after healing keeper 3", |c| c.herd(&["status"]).status.success().then_some(()));
    round_trip(&c, "/after.txt", b"after healing\n");

    // Stopped, it deletes its namespaces.
    c.stop();
    assert!(c.namespaces_left().is_empty(), "left after SIGTERM: {:?}", c.namespaces_left());
    drop(c);

    // kill -9 leaves the namespaces; the next `herd up --netns` on the dir removes them.
    let mut c = NetnsUp::start(&dir);
    c.kill9();
    assert!(!c.namespaces_left().is_empty(), "a kill -9'd herd up cannot have deleted its namespaces");
    drop(c);
    let mut c = NetnsUp::start(&dir);
    assert!(c.stderr.lock().unwrap().contains("an interrupted run left"), "{}", c.output());
    c.herd_ok(&["status"]);
    let out = c.herd_ok(&["fs", "cat", "/after.txt"]);
    assert_eq!(out, "after healing\n");
    c.stop();
    assert!(c.namespaces_left().is_empty(), "left after SIGTERM: {:?}", c.namespaces_left());
}
