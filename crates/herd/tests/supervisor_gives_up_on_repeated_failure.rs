//! Guarantee: a child that keeps dying is given up on after `--restarts-max` restarts within
//! `--restart-window-s`, with an error that names the failures, instead of being restarted
//! forever. `herd supervise` then exits non-zero; `herd up` marks that role `"state": "failed"`
//! with its `"error"` in cluster.json and keeps the other roles running.
//!
//! Under `herd up` the failure is a real one: keeper 3's data directory is replaced by a plain
//! file (as if its disk went away) and the keeper is killed; every restart then fails at start.

mod common;

use common::{alive, capture};

use keeper_proto::client::{ClientError, SyncClient};
use keeper_proto::codes::ErrorCode;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for anything here; the work takes a few seconds at most.
const DEADLINE: Duration = Duration::from_secs(90);

/// A child process of this test: SIGTERM on drop, SIGKILL if it does not exit within 15 s.
struct Proc {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn herd");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        Proc { child, stdout, stderr }
    }

    fn output(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout.lock().unwrap(), self.stderr.lock().unwrap())
    }

    /// Waits for the process to exit, and lets its pipes drain.
    fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(t0.elapsed() < DEADLINE, "did not exit\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        common::terminate(&mut self.child, Duration::from_secs(15));
    }
}

#[test]
fn supervise_exits_with_an_error_after_restarts_max_failures() {
    let mut sup = Proc::spawn(Command::new(common::herd_bin()).args([
        "supervise",
        "--restarts-max",
        "3",
        "--restart-window-s",
        "30",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]));
    let status = sup.wait_for_exit();
    let out = sup.output();
    assert!(!status.success(), "herd supervise succeeded\n{out}");
    // The first run and three restarts: four deaths, one more than the budget allows.
    assert!(out.contains("sh died 4 times within 30s (last: exit status: 3); gave up"), "{out}");
    assert_eq!(out.matches("failed after").count(), 4, "not every failure was logged\n{out}");
}

// ---- herd up ----

const KEEPERS: u16 = 3;

/// One process as cluster.json describes it.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    id: String,
    state: String,
    pid: u32,
    restarts: u64,
    client: SocketAddr,
    error: Option<String>,
}

fn entries(dir: &std::path::Path) -> Option<Vec<Entry>> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let entries = v["processes"]
        .as_array()?
        .iter()
        .map(|p| Entry {
            id: p["id"].as_str().unwrap().to_owned(),
            state: p["state"].as_str().unwrap().to_owned(),
            pid: p["pid"].as_u64().unwrap().try_into().unwrap(),
            restarts: p["restarts"].as_u64().unwrap(),
            client: p["addrs"]["client"].as_str().unwrap().parse().unwrap(),
            error: p["error"].as_str().map(str::to_owned),
        })
        .collect();
    Some(entries)
}

/// Polls `f`; fails with `herd up`'s output if it exits or the deadline passes.
fn wait_for<T>(up: &mut Proc, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if let Some(status) = up.child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(200));
            panic!("herd up exited ({status}) while waiting for {what}\n{}", up.output());
        }
        assert!(t0.elapsed() < DEADLINE, "timed out waiting for {what}\n{}", up.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn up_marks_a_role_that_keeps_failing_failed_and_keeps_the_others() {
    // Declared first, so dropped last: after `herd up` is stopped.
    let keepers_seen = Reap::default();
    let dir = tempfile::tempdir().unwrap();
    let base = common::free_port_base(KEEPERS);
    let mut up = Proc::spawn(
        Command::new(common::herd_bin())
            .args(["up", "--dir"])
            .arg(dir.path())
            // Keepers only: the base was chosen for their ports alone.
            .args(["--keepers", &KEEPERS.to_string(), "--port-base", &base.to_string()])
            .args(["--datanodes", "0", "--nodemanagers", "0"])
            // A wide window, so that a slow machine cannot spread the deaths out of it.
            .args(["--restarts-max", "3", "--restart-window-s", "600"]),
    );
    let before = wait_for(&mut up, "cluster.json", || entries(dir.path()));
    assert_eq!(before.len(), KEEPERS as usize);
    for e in &before {
        assert_eq!((e.state.as_str(), e.restarts, &e.error), ("running", 0, &None), "{e:?}");
        keepers_seen.0.lock().unwrap().push(e.pid);
    }

    // Keeper 3's disk goes away: its data dir becomes a plain file, and it is killed.
    let data_dir = dir.path().join("keeper-3");
    std::fs::rename(&data_dir, dir.path().join("keeper-3.gone")).unwrap();
    std::fs::write(&data_dir, b"not a directory").unwrap();
    // SAFETY: kill -9 of keeper 3, a child of the `herd up` this test started.
    unsafe { libc::kill(before[2].pid as i32, libc::SIGKILL) };

    let failed = wait_for(&mut up, "keeper 3 to be failed", || {
        let now = entries(dir.path())?;
        (now[2].state == "failed").then_some(now)
    });
    let error = failed[2].error.clone().expect("a failed role has an error");
    // The kill and three failed restarts: four deaths.
    assert!(error.contains("keeper 3 died 4 times within 600s"), "{error}");
    assert!(error.contains("exited during start"), "{error}");
    assert_eq!(failed[2].restarts, 3, "{:?}", failed[2]);
    assert!(up.output().contains(&format!("keeper 3 failed: {error}")), "{}", up.output());

    // The others were not touched, and keep serving: a write through keeper 1 commits (two of
    // three members are a majority).
    for (b, f) in before.iter().zip(&failed).take(2) {
        assert_eq!((f.state.as_str(), f.pid, f.restarts), ("running", b.pid, 0), "keeper {} was disturbed", b.id);
        assert!(alive(f.pid), "keeper {} (pid {}) is not running", f.id, f.pid);
    }
    let mut attempted = false;
    wait_for(&mut up, "a write through keeper 1", || {
        let mut c = SyncClient::connect(failed[0].client, 10_000, None).ok()?;
        let first = !std::mem::replace(&mut attempted, true);
        match c.create("/still-serving", b"", 0) {
            Ok(_) => Some(()),
            // A retry after a lost reply finds the node its first attempt made.
            Err(ClientError::Keeper(ErrorCode::NodeExists, _)) if !first => Some(()),
            Err(_) => None,
        }
    });
    assert!(up.child.try_wait().unwrap().is_none(), "herd up exited\n{}", up.output());

    // SIGTERM still stops everything cleanly.
    // SAFETY: SIGTERM to the `herd up` this test started.
    unsafe { libc::kill(up.child.id() as i32, libc::SIGTERM) };
    let status = up.wait_for_exit();
    assert!(status.success(), "herd up exited with {status}\n{}", up.output());
    for e in &failed[..2] {
        assert!(!alive(e.pid), "keeper {} (pid {}) outlived herd up", e.id, e.pid);
    }
    assert!(!dir.path().join("cluster.json").exists());
}

/// Keepers of a `herd up` that this test started. Dropped after `herd up` is stopped, it
/// SIGKILLs any still alive (PDEATHSIG should have ended them already).
#[derive(Default)]
struct Reap(Mutex<Vec<u32>>);

impl Drop for Reap {
    fn drop(&mut self) {
        let pids = self.0.lock().unwrap();
        let t0 = Instant::now();
        while pids.iter().any(|&p| alive(p)) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for &pid in pids.iter() {
            if alive(pid) {
                // SAFETY: a keeper started by the `herd up` this test started, outliving it.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}
