//! Guarantee: Apache ZooKeeper's own command-line clients, as Debian ships them, create, read,
//! update, delete and watch against herd unchanged: the C client `cli_mt` (package
//! zookeeper-bin) and the Java `zkCli.sh` (package zookeeper). `cargo xtask test` installs both
//! and sets HERD_EXTERNAL_CLIENTS=required, so a missing client fails the run instead of
//! skipping.

mod common;

use common::KeeperProc;
use keeper_proto::client::SyncClient;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLI_MT: &str = "/usr/lib/zookeeper/bin/cli_mt";
const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

/// Whether the external client is present; panics if it must be.
fn present(path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    if std::env::var("HERD_EXTERNAL_CLIENTS").as_deref() == Ok("required") {
        panic!("{path} is missing; `cargo xtask test` installs it");
    }
    eprintln!("skipping: {path} is not installed (run `cargo xtask test` to install it)");
    false
}

/// Runs an interactive client, feeding `script` lines with pauses. A line `#trigger:NEEDLE` is
/// not sent: it waits until the client's output contains NEEDLE (so the watch is surely set),
/// then runs `during`; `#wait:NEEDLE` only waits.
fn interactive(cmd: &mut Command, script: &[&str], pause: Duration, mut during: impl FnMut()) -> String {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // cli_mt reports on stderr, zkCli.sh on both: collect both into one buffer as they come.
    let seen = Arc::new(Mutex::new(String::new()));
    let mut readers = Vec::new();
    let pipes: [Box<dyn Read + Send>; 2] =
        [Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
    for mut pipe in pipes {
        let seen = seen.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }));
    }
    for line in script {
        std::thread::sleep(pause);
        let (wait, trigger) = match (line.strip_prefix("#trigger:"), line.strip_prefix("#wait:")) {
            (Some(n), _) => (Some(n), true),
            (_, Some(n)) => (Some(n), false),
            _ => (None, false),
        };
        if let Some(needle) = wait {
            let t0 = Instant::now();
            while !seen.lock().unwrap().contains(needle) {
                assert!(t0.elapsed() < Duration::from_secs(90), "never saw {needle:?} in {}", seen.lock().unwrap());
                std::thread::sleep(Duration::from_millis(50));
            }
            if trigger {
                during();
            }
            continue;
        }
        writeln!(stdin, "{line}").unwrap();
    }
    std::thread::sleep(pause);
    drop(stdin);
    // Bounded: a client that hangs is killed, and the assertions then fail.
    for _ in 0..400 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    for r in readers {
        r.join().unwrap();
    }
    let out = seen.lock().unwrap().clone();
    out
}

#[test]
fn c_client_cli_mt() {
    if !present(CLI_MT) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let k = KeeperProc::start(dir.path(), &[]);
    let host = k.addr.to_string();
    let addr = k.addr;
    let script = [
        "create /c",
        "create +e /c/eph",
        "set /c hello-from-c",
        "get /c",
        "ls /c",
        "wexists /c-watched",
        "#trigger:Error -101 for /c-watched",
        "#wait:CREATED_EVENT",
        "delete /c/eph",
        "delete /c",
        "exists /c",
        "quit",
    ];
    let out = interactive(Command::new(CLI_MT).args(["-h", &host]), &script, Duration::from_millis(400), || {
        let mut z = SyncClient::connect(addr, 10_000, None).unwrap();
        z.create("/c-watched", b"", 0).unwrap();
    });
    assert!(out.contains("name = /c\n") || out.contains("name = /c"), "create: {out}");
    assert!(out.contains("hello-from-c"), "get after set: {out}");
    assert!(out.contains("eph"), "ls: {out}");
    assert!(out.contains("CREATED_EVENT") && out.contains("/c-watched"), "watch: {out}");
    assert!(!out.contains("rc = -"), "an operation failed: {out}");
    let mut z = SyncClient::connect(addr, 10_000, None).unwrap();
    assert!(z.exists("/c", false).unwrap().is_none(), "delete did not happen: {out}");
}

#[test]
fn java_client_zkcli() {
    if !present(ZKCLI) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let k = KeeperProc::start(dir.path(), &[]);
    let server = k.addr.to_string();
    let cli = |args: &[&str]| {
        let o = Command::new(ZKCLI).args(["-server", &server]).args(args).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    let (ok, out) = cli(&["create", "/j", "data1"]);
    assert!(ok && out.contains("Created /j"), "{out}");
    let (ok, out) = cli(&["get", "/j"]);
    assert!(ok && out.contains("data1"), "{out}");
    let (ok, out) = cli(&["set", "/j", "data2"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&["stat", "/j"]);
    assert!(ok && out.contains("dataVersion = 1") && out.contains("dataLength = 5"), "{out}");
    let (ok, out) = cli(&["create", "/j", "again"]);
    assert!(!ok && out.contains("Node already exists"), "{out}");
    let (ok, out) = cli(&["delete", "/j"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&["get", "/j"]);
    assert!(!ok && out.contains("Node does not exist"), "{out}");

    let addr = k.addr;
    let mut z = SyncClient::connect(addr, 10_000, None).unwrap();
    z.create("/jw", b"v", 0).unwrap();
    let script =
        ["get -w /jw", "stat -w /jw-new", "#trigger:Node does not exist: /jw-new", "#wait:path:/jw-new", "quit"];
    let out = interactive(Command::new(ZKCLI).args(["-server", &server]), &script, Duration::from_millis(500), || {
        z.set("/jw", b"v2", -1).unwrap();
        z.create("/jw-new", b"", 0).unwrap();
    });
    assert!(out.contains("type:NodeDataChanged path:/jw"), "data watch: {out}");
    assert!(out.contains("type:NodeCreated path:/jw-new"), "exists watch: {out}");
}
