//! Guarantee: session expiry runs on the monotonic clock only. A wall-clock jump of an hour
//! forwards does not expire a live session, and a jump backwards does not keep a silent one
//! alive. The keeper runs under libfaketime (Debian's `faketime`, which `cargo xtask test`
//! installs), which moves its wall clock (CLOCK_REALTIME) while leaving CLOCK_MONOTONIC alone; a
//! znode's ctime shows that the keeper really saw the jump.

mod common;

use common::KeeperProc;
use keeper_proto::client::SyncClient;
use std::path::Path;
use std::time::{Duration, Instant};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const HOUR_MS: i64 = 3_600_000;

/// Keeps `live` pinging for `d`.
fn keep_alive(live: &mut SyncClient, d: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        live.exists("/", false).expect("a live session was expired");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ctime(c: &mut SyncClient, path: &str) -> i64 {
    c.create(path, b"", 0).unwrap();
    c.exists(path, false).unwrap().unwrap().ctime
}

#[test]
fn jumps_forwards_and_backwards() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime (cargo xtask test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("faketime");
    std::fs::write(&clock, "+0\n").unwrap();
    let data = dir.path().join("keeper");
    let clock_s = clock.display().to_string();
    let env = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", clock_s.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let k = KeeperProc::start_with_env(&data, "127.0.0.1:0", &["--zk-property", "tickTime=100"], &env);

    // Timeouts of one second (tickTime 100 allows 200 ms .. 2 s).
    let mut live = SyncClient::connect(k.addr, 1000, None).unwrap();
    live.create("/live", b"", 1).unwrap();
    let before = ctime(&mut live, "/t0");

    std::fs::write(&clock, "+1h\n").unwrap();
    keep_alive(&mut live, Duration::from_secs(2));
    let after = ctime(&mut live, "/t1");
    assert!(after - before > HOUR_MS - 60_000, "the keeper's wall clock did not jump forwards: {before} -> {after}");
    assert!(live.exists("/live", false).unwrap().is_some());

    // Backwards, to an hour before the start; a session that falls silent now must still
    // expire one (monotonic) timeout later.
    std::fs::write(&clock, "-1h\n").unwrap();
    let mut silent = SyncClient::connect(k.addr, 1000, None).unwrap();
    silent.create("/silent", b"", 1).unwrap();
    let back = ctime(&mut live, "/t2");
    assert!(before - back > HOUR_MS - 60_000, "the keeper's wall clock did not jump backwards: {before} -> {back}");
    let t0 = Instant::now();
    while live.exists("/silent", false).unwrap().is_some() {
        assert!(t0.elapsed() < Duration::from_secs(30), "a silent session never expired after the clock went back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(live.exists("/live", false).unwrap().is_some(), "the live session was expired");
    drop(silent);
}
