//! Guarantee: `herd up` starts a keeper with embedded defaults, describes it in cluster.json
//! (state, pid, restarts, addresses), restarts it after a kill -9 with its data intact, and
//! stops everything on SIGTERM.

mod common;

use common::alive;

use keeper_proto::client::SyncClient;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cluster(dir: &std::path::Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The keeper's pid and client address once cluster.json says it is running, and its restarts.
fn keeper_entry(v: &serde_json::Value) -> Option<(u32, SocketAddr, u64)> {
    let p = &v["processes"][0];
    assert_eq!(p["role"], "keeper");
    assert_eq!(p["id"], "1");
    if p["state"] != "running" {
        return None;
    }
    let pid = p["pid"].as_u64().unwrap() as u32;
    let addr = p["addrs"]["client"].as_str().unwrap().parse().unwrap();
    Some((pid, addr, p["restarts"].as_u64().unwrap()))
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn up_restarts_a_killed_keeper_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // A free port, expressed as a --port-base over the keeper's default 2181.
    let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = free.checked_sub(2181).expect("ephemeral ports lie above 2181");
    let mut up = Command::new(common::herd_bin())
        .args(["up", "--dir"])
        .arg(dir.path())
        // Keepers only: the base was chosen for their ports alone.
        .args(["--port-base", &base.to_string(), "--datanodes", "0", "--nodemanagers", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = scopeguard(up.id());
    let (pid, addr, restarts) = wait_for("cluster.json", || keeper_entry(&cluster(dir.path())?));
    assert_eq!(addr.port(), free);
    assert_eq!(restarts, 0);
    let mut c = SyncClient::connect(addr, 10_000, None).unwrap();
    c.create("/before-crash", b"kept", 0).unwrap();
    drop(c);

    // SAFETY: killing the keeper child that `herd up` started for this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let (pid2, addr2, restarts) = wait_for("a restarted keeper", || {
        let (p, a, r) = keeper_entry(&cluster(dir.path())?)?;
        (p != pid).then_some((p, a, r))
    });
    assert_eq!(addr2, addr);
    assert_eq!(restarts, 1);
    let mut c = wait_for("the restarted keeper to serve", || SyncClient::connect(addr2, 10_000, None).ok());
    assert_eq!(c.get("/before-crash", false).unwrap().0, b"kept");
    drop(c);

    // SAFETY: SIGTERM to the `herd up` process this test started.
    unsafe { libc::kill(up.id() as i32, libc::SIGTERM) };
    let status = wait_for("herd up to exit", || up.try_wait().unwrap());
    assert!(status.success(), "herd up exited with {status}");
    assert!(!alive(pid2), "keeper {pid2} outlived herd up");
    assert!(!dir.path().join("cluster.json").exists());
    drop(guard);
}

/// Kills the `herd up` process if the test fails before it stops it.
struct Guard(u32);
impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // SAFETY: SIGTERM to our own child; `herd up` then stops its keeper.
            unsafe { libc::kill(self.0 as i32, libc::SIGTERM) };
        }
    }
}
fn scopeguard(pid: u32) -> Guard {
    Guard(pid)
}
