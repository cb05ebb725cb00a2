//! Guarantee: when a supervised child dies, `herd supervise` ends the keeper session the child
//! reported on its report pipe (closeSession with the reported id and password), so its
//! ephemeral znode goes at once, not after the session timeout, and only then restarts the
//! child. The same when the supervisor is told to stop (SIGTERM): it stops the child and ends
//! its session. A session the child reported closed is left alone, and a bad report line is
//! logged (without its content) and ignored.
//!
//! The child is `sh`, which reports a session that this test opened (the supervisor cannot tell
//! it from one the child opened: the id and password are all it needs), records its pid in a
//! file, and execs `sleep`.

mod common;

use common::alive;

use common::KeeperProc;
use keeper_proto::client::{ClientError, SyncClient};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Flag 1: an ephemeral znode, owned by the session that creates it.
const EPHEMERAL: i32 = 1;
/// Longest wait for anything here. Generous on a busy machine; the work takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(60);

/// The child: reports the lines in $REPORT (its first incarnation only, marked by $MARK), then
/// appends its pid to $PIDS, then becomes `sleep`, keeping its pid.
const CHILD: &str = r#"
if [ ! -e "$MARK" ]; then
    : > "$MARK"
    printf '%s' "$REPORT" >&"$HERD_SUPERVISOR_FD"
fi
echo $$ >> "$PIDS"
exec sleep 600
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn wait_for<T>(what: &str, sup: &Supervisor, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < DEADLINE, "timed out waiting for {what}\n--- supervisor stderr\n{}", sup.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `herd supervise` of [`CHILD`]. Dropped, it gets SIGTERM (then SIGKILL), and any
/// child pid it ever had is killed if still alive.
struct Supervisor {
    child: Child,
    stderr: Arc<Mutex<String>>,
    pids_file: PathBuf,
}

impl Supervisor {
    fn start(dir: &Path, report: &str) -> Supervisor {
        let pids_file = dir.join("pids");
        let mut child = Command::new(common::herd_bin())
            .args(["supervise", "--name", "worker", "--", "sh", "-c", CHILD])
            .env("REPORT", report)
            .env("MARK", dir.join("reported"))
            .env("PIDS", &pids_file)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herd supervise");
        let stderr = common::capture(child.stderr.take().unwrap());
        Supervisor { child, stderr, pids_file }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The pids the child's incarnations recorded, oldest first.
    fn child_pids(&self) -> Vec<u32> {
        let text = std::fs::read_to_string(&self.pids_file).unwrap_or_default();
        // A line is complete once its newline is written.
        text.split_inclusive('\n').filter(|l| l.ends_with('\n')).filter_map(|l| l.trim().parse().ok()).collect()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        common::terminate(&mut self.child, Duration::from_secs(15));
        for pid in self.child_pids() {
            if alive(pid) {
                // SAFETY: a child of the supervisor this test started, outliving it.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// Opens a session on the keeper and creates `/member` as its ephemeral. The session timeout
/// asked for is the keeper's longest (40 s).
fn session_with_member(keeper: &KeeperProc) -> SyncClient {
    let mut c = SyncClient::connect(keeper.addr, 40_000, None).unwrap();
    c.create("/member", b"", EPHEMERAL).unwrap();
    c
}

#[test]
fn a_killed_childs_session_is_ended_before_it_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let keeper = KeeperProc::start(&dir.path().join("keeper"), &[]);
    let owner = session_with_member(&keeper);
    let (id, pw) = (owner.session_id, hex(&owner.passwd));
    // Two bad lines first (an unknown kind, and one longer than any report may be): each is
    // logged and ignored, and the good line after them still counts.
    let report = format!("hello 0x1\n{}\nsession 0x{id:x} {pw} {}\n", "x".repeat(5000), keeper.addr);
    let sup = Supervisor::start(dir.path(), &report);

    // The child wrote its report before its pid: once the pid is there, so is the report.
    let first = wait_for("the child's pid", &sup, || sup.child_pids().first().copied());
    // SAFETY: kill -9 of the supervised child (sh exec'd into sleep), by its pid.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };

    let mut observer = SyncClient::connect(keeper.addr, 40_000, None).unwrap();
    wait_for("the dead child's ephemeral znode to go", &sup, || {
        observer.exists("/member", false).unwrap().is_none().then_some(())
    });
    // Gone because the supervisor closed the session, not because it expired: the supervisor
    // says it ended it (an expired one would be "already gone").
    let ended = format!("ended session 0x{id:x} of worker");
    wait_for("the supervisor's log of ending the session", &sup, || sup.stderr().contains(&ended).then_some(()));
    assert!(
        matches!(SyncClient::connect(keeper.addr, 40_000, Some((id, owner.passwd.clone()))), Err(ClientError::Expired)),
        "session 0x{id:x} still exists"
    );

    // And then restarted: a new process, after the session was ended.
    let second = wait_for("the restarted child", &sup, || sup.child_pids().get(1).copied());
    assert_ne!(second, first);
    assert!(alive(second), "restarted child {second} is not running");
    let log = wait_for("the restart in the log", &sup, || {
        let log = sup.stderr();
        log.contains("worker restarted as pid").then_some(log)
    });
    assert!(
        log.find(&ended) < log.find("worker restarted as pid"),
        "the child was restarted before its session was ended:\n{log}"
    );
    assert!(log.contains(&format!("worker (pid {first}) failed")) && log.contains("SIGKILL"), "{log}");
    assert_eq!(log.matches("wrote a bad report line").count(), 2, "bad lines not each logged once:\n{log}");
    assert!(log.contains("(unknown kind)") && log.contains("(line too long)"), "{log}");
    assert!(!log.contains(&pw), "the password was logged:\n{log}");
    drop(sup);
    drop(keeper);
}

#[test]
fn a_session_the_child_closed_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let keeper = KeeperProc::start(&dir.path().join("keeper"), &[]);
    let owner = session_with_member(&keeper);
    let (id, pw) = (owner.session_id, hex(&owner.passwd));
    // The child reports the session, then that it closed it (here it did not really: the
    // supervisor must take the child's word and do nothing).
    let report = format!("session 0x{id:x} {pw} {}\nclosed 0x{id:x}\n", keeper.addr);
    let sup = Supervisor::start(dir.path(), &report);

    let first = wait_for("the child's pid", &sup, || sup.child_pids().first().copied());
    // SAFETY: kill -9 of the supervised child, by its pid.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    // The supervisor does whatever it does about a death before it restarts the child, so once
    // the restart is logged, anything it was going to do to the session is done.
    let log = wait_for("the restart in the log", &sup, || {
        let log = sup.stderr();
        log.contains("worker restarted as pid").then_some(log)
    });
    assert!(log.contains(&format!("closed keeper session 0x{id:x}")), "{log}");
    assert!(
        !log.contains("ended session") && !log.contains("already gone"),
        "the supervisor touched the session:\n{log}"
    );

    let mut observer = SyncClient::connect(keeper.addr, 40_000, None).unwrap();
    assert!(observer.exists("/member", false).unwrap().is_some(), "the ephemeral znode went");
    // The session lives on, and its owner can still use it.
    let resumed = SyncClient::connect(keeper.addr, 40_000, Some((id, owner.passwd.clone())))
        .unwrap_or_else(|e| panic!("session 0x{id:x} is gone: {e}"));
    resumed.close().unwrap();
    drop(sup);
    drop(keeper);
}

#[test]
fn stopping_the_supervisor_ends_the_childs_session() {
    let dir = tempfile::tempdir().unwrap();
    let keeper = KeeperProc::start(&dir.path().join("keeper"), &[]);
    let owner = session_with_member(&keeper);
    let id = owner.session_id;
    let report = format!("session 0x{id:x} {} {}\n", hex(&owner.passwd), keeper.addr);
    let mut sup = Supervisor::start(dir.path(), &report);
    let child = wait_for("the child's pid", &sup, || sup.child_pids().first().copied());

    // SAFETY: SIGTERM to the `herd supervise` this test started.
    unsafe { libc::kill(sup.child.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = sup.child.try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed() < DEADLINE, "herd supervise did not exit\n{}", sup.stderr());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "herd supervise exited with {status}\n{}", sup.stderr());
    assert!(!alive(child), "the child {child} outlived its supervisor");
    let mut observer = SyncClient::connect(keeper.addr, 40_000, None).unwrap();
    assert!(observer.exists("/member", false).unwrap().is_none(), "the stopped child's ephemeral znode is still there");
    let ended = format!("ended session 0x{id:x} of worker");
    wait_for("the supervisor's log of ending the session", &sup, || sup.stderr().contains(&ended).then_some(()));
    drop(sup);
    drop(keeper);
}
