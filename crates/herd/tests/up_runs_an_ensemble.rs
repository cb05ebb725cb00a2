//! Guarantee: `herd up --keepers 3` runs three keepers as independently supervised children,
//! each described in cluster.json with its client and peer address; a member killed with
//! kill -9 is restarted alone (the others keep their pids); SIGTERM stops every member and
//! removes cluster.json. And the members are one ensemble: a znode written through member 1 is
//! read through members 2 and 3, and through member 2 again after its restart. Every keeper is
//! in the membership view `keeper`; the killed one's session is ended by its supervisor (not
//! left to expire), and it rejoins as a new, higher incarnation.

mod common;

use common::{alive, capture};

use keeper_proto::client::{ClientError, SyncClient};
use keeper_proto::codes::ErrorCode;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEEPERS: u16 = 3;
const CLIENT_PORT: u16 = 2181;
const PEER_PORT: u16 = 2888;

/// One keeper as cluster.json describes it.
#[derive(Debug, Clone, PartialEq)]
struct Member {
    id: String,
    pid: u32,
    client: SocketAddr,
    peer: SocketAddr,
}

/// A running `herd up`. Dropped, it stops `herd up` (SIGTERM, SIGKILL after 15 s) and then
/// SIGKILLs any keeper it ever listed that is still alive, so a failing test leaves nothing behind.
struct Up {
    child: Child,
    dir: tempfile::TempDir,
    base: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// Every keeper pid seen in cluster.json, for the clean-up in `drop`.
    pids_seen: Vec<u32>,
}

impl Up {
    fn start(keepers: u16) -> Up {
        let dir = tempfile::tempdir().unwrap();
        let base = common::free_port_base(KEEPERS);
        let mut child = Command::new(common::herd_bin())
            .args(["up", "--dir"])
            .arg(dir.path())
            // Keepers only: the base was chosen for their ports alone.
            .args(["--keepers", &keepers.to_string(), "--port-base", &base.to_string()])
            .args(["--datanodes", "0", "--nodemanagers", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herd up");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        Up { child, dir, base, stdout, stderr, pids_seen: Vec::new() }
    }

    /// The keepers cluster.json lists now, or None while it is missing or being replaced.
    fn members(&mut self) -> Option<Vec<Member>> {
        let text = std::fs::read_to_string(self.dir.path().join("cluster.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let members: Vec<Member> = v["processes"]
            .as_array()?
            .iter()
            .map(|p| {
                assert_eq!(p["role"], "keeper", "{p}");
                Member {
                    id: p["id"].as_str().unwrap().to_owned(),
                    pid: p["pid"].as_u64().unwrap().try_into().unwrap(),
                    client: p["addrs"]["client"].as_str().unwrap().parse().unwrap(),
                    peer: p["addrs"]["peer"].as_str().unwrap().parse().unwrap(),
                }
            })
            .collect();
        for m in &members {
            if !self.pids_seen.contains(&m.pid) {
                self.pids_seen.push(m.pid);
            }
        }
        Some(members)
    }

    /// Polls `f` for up to 60 s; fails at once, with `herd up`'s output, if `herd up` exits.
    fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(&mut Up) -> Option<T>) -> T {
        let t0 = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200)); // let the pipes drain
                panic!("herd up exited ({status}) while waiting for {what}\n{}", self.output());
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "timed out waiting for {what}\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to 30 s: children get 10 s to stop) for `herd up` to exit.
    fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "herd up did not exit\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        let logs: String = (1..=KEEPERS)
            .map(|i| {
                let log = self.dir.path().join(format!("keeper-{i}.log"));
                format!("--- keeper-{i}.log\n{}\n", std::fs::read_to_string(log).unwrap_or_default())
            })
            .collect();
        format!(
            "--- herd up stdout\n{}\n--- herd up stderr\n{}\n{logs}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        common::terminate(&mut self.child, Duration::from_secs(15));
        // PDEATHSIG has the kernel SIGTERM every keeper once `herd up` is gone; give them a
        // moment, then make sure. These pids are the children of the `herd up` this test started.
        let t0 = Instant::now();
        while self.pids_seen.iter().any(|&p| alive(p)) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for &pid in &self.pids_seen {
            if alive(pid) {
                // SAFETY: a keeper started by the `herd up` this test started, outliving it.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// Waits until cluster.json lists `KEEPERS` keepers, and checks what it says about them.
fn wait_for_ensemble(up: &mut Up) -> Vec<Member> {
    let members = up.wait_for("cluster.json with 3 keepers", |up| up.members());
    assert_eq!(members.len(), KEEPERS as usize, "{members:?}");
    for (i, m) in (0u16..).zip(&members) {
        assert_eq!(m.id, (i + 1).to_string());
        assert_eq!(m.client, SocketAddr::from(([127, 0, 0, 1], CLIENT_PORT + up.base + i)));
        assert_eq!(m.peer, SocketAddr::from(([127, 0, 0, 1], PEER_PORT + up.base + i)));
        assert!(m.pid > 0 && alive(m.pid), "keeper {} (pid {}) is not running", m.id, m.pid);
    }
    let mut pids: Vec<u32> = members.iter().map(|m| m.pid).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), KEEPERS as usize, "keepers share a pid: {members:?}");
    members
}

// The ensemble itself: replication through `herd up`'s members. The test's steps marked
// "Ensemble:" check this; they need the keeper wired to keeper-raft (the ensemble issue), while
// the supervision steps around them would pass with three unconnected keepers.

/// How long the members get to elect a leader and replicate.
const ELECTION_DEADLINE: Duration = Duration::from_secs(20);

/// Retries `f` until it succeeds or [`ELECTION_DEADLINE`] passes; the panic carries the last
/// error and every process's output.
fn retry<T>(up: &Up, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let t0 = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if t0.elapsed() > ELECTION_DEADLINE => {
                panic!("{what}: still failing after {ELECTION_DEADLINE:?}: {e}\n{}", up.output())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The `keeper` group's members through `m`: id -> incarnation (czxid of the member znode).
fn keeper_view(m: &Member) -> Option<Vec<(String, i64)>> {
    let mut c = SyncClient::connect(m.client, 10_000, None).ok()?;
    let mut ids = c.children("/herd/members/keeper", false).ok()?;
    ids.sort();
    ids.into_iter()
        .map(|id| Some((id.clone(), c.exists(&format!("/herd/members/keeper/{id}"), false).ok()??.czxid)))
        .collect()
}

/// Creates `path` through `m`. Connecting opens a session, itself a log entry, so it succeeds
/// only once a leader exists. A create whose reply was lost may have committed: a retry that
/// finds the node then counts, and the reads check its data either way.
fn create_through(up: &Up, m: &Member, path: &str, data: &[u8]) {
    let mut attempted = false;
    retry(up, &format!("create {path} through member {}", m.id), || {
        let mut c = SyncClient::connect(m.client, 10_000, None).map_err(|e| e.to_string())?;
        let first = !std::mem::replace(&mut attempted, true);
        match c.create(path, data, 0) {
            Ok(_) => Ok(()),
            Err(ClientError::Keeper(ErrorCode::NodeExists, _)) if !first => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    });
}

/// Reads `path` through `m`. A member serves reads from what it has applied, so it may lag a
/// write made through another member briefly: retry until the node shows up.
fn read_through(up: &Up, m: &Member, path: &str) -> Vec<u8> {
    retry(up, &format!("read {path} through member {}", m.id), || {
        let mut c = SyncClient::connect(m.client, 10_000, None).map_err(|e| e.to_string())?;
        c.get(path, false).map(|(data, _)| data).map_err(|e| e.to_string())
    })
}

#[test]
fn up_runs_and_supervises_a_three_keeper_ensemble() {
    let mut up = Up::start(KEEPERS);
    let members = wait_for_ensemble(&mut up);
    let connect = members.iter().map(|m| m.client.to_string()).collect::<Vec<_>>().join(",");
    up.wait_for("the connect string on stdout", |up| up.stdout.lock().unwrap().contains(&connect).then_some(()));
    for m in &members {
        assert!(up.dir().join(format!("keeper-{}", m.id)).is_dir(), "keeper {} has no data dir of its own", m.id);
    }

    // Ensemble: a write through member 1 is read through members 2 and 3.
    create_through(&up, &members[0], "/ensemble", b"written-on-1");
    for m in &members[1..] {
        assert_eq!(read_through(&up, m, "/ensemble"), b"written-on-1", "member {} holds other data", m.id);
    }

    // Every keeper joined the membership view as keeper/<id>.
    let view = up.wait_for("every keeper in the view", |_| keeper_view(&members[0]).filter(|v| v.len() == 3));
    assert_eq!(view.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["1", "2", "3"]);
    let old_incarnation = view[1].1;

    // kill -9 of member 2: the supervisor restarts it alone, at the same addresses.
    let victim = members[1].clone();
    // SAFETY: killing a keeper that the `herd up` this test started runs; its pid is positive.
    unsafe { libc::kill(victim.pid as i32, libc::SIGKILL) };
    let after = up.wait_for("member 2 restarted", |up| {
        let now = up.members()?;
        (now[1].pid != victim.pid).then_some(now)
    });
    assert!(alive(after[1].pid), "restarted member 2 (pid {}) is not running", after[1].pid);
    assert_eq!(after[1].client, victim.client);
    assert_eq!(after[1].peer, victim.peer);
    assert_eq!(after[0], members[0], "member 1 was disturbed by member 2's restart");
    assert_eq!(after[2], members[2], "member 3 was disturbed by member 2's restart");
    assert!(alive(members[0].pid) && alive(members[2].pid));

    // Its session was ended by the supervisor, and it rejoined as a new incarnation.
    up.wait_for("the supervisor's notice in the log", |up| {
        let log = up.stderr.lock().unwrap();
        let ended = |l: &str| l.contains("of keeper 2") && (l.contains("ended session") || l.contains("already gone"));
        log.lines().any(ended).then_some(())
    });
    let rejoined = up.wait_for("member 2 rejoined the view", |_| {
        keeper_view(&members[0]).filter(|v| v.len() == 3 && v[1].1 != old_incarnation)
    });
    assert!(rejoined[1].1 > old_incarnation, "member 2's new incarnation is not above its old one: {rejoined:?}");

    // Ensemble: the restarted member rejoins and serves what was written before its crash.
    assert_eq!(read_through(&up, &after[1], "/ensemble"), b"written-on-1", "restarted member 2 lost /ensemble");

    // SIGTERM to `herd up` stops every member and removes cluster.json.
    // SAFETY: SIGTERM to the `herd up` process this test started.
    unsafe { libc::kill(up.child.id() as i32, libc::SIGTERM) };
    let status = up.wait_for_exit();
    assert!(status.success(), "herd up exited with {status}\n{}", up.output());
    for m in &after {
        assert!(!alive(m.pid), "keeper {} (pid {}) outlived herd up", m.id, m.pid);
    }
    assert!(!up.dir().join("cluster.json").exists(), "cluster.json outlived herd up");
}
