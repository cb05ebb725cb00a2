//! Guarantee: with `herd.adaptiveSessionTimeout`, a session that was suspected (silent for more
//! than half its timeout) and then spoke again gets a longer timeout, so the same pause that
//! would have expired it before no longer does; without it, the keeper keeps ZooKeeper's fixed
//! timeout. Either way, nothing expires before its configured timeout.

mod common;

use common::KeeperProc;
use keeper_proto::client::SyncClient;
use std::time::{Duration, Instant};

const TIMEOUT_MS: i32 = 2000;

/// Pauses (no pings) for `pause`, then checks whether the session survived it.
fn survives_pause(c: &mut SyncClient, pause: Duration) -> bool {
    std::thread::sleep(pause);
    c.exists("/", false).is_ok()
}

fn run(adaptive: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    // The grown timeout stays within maxSessionTimeout (20 x tickTime unless set).
    let mut args = vec!["--zk-property", "tickTime=100", "--zk-property", "maxSessionTimeout=8000"];
    if adaptive {
        args.extend(["--zk-property", "herd.adaptiveSessionTimeout=true"]);
    }
    let k = KeeperProc::start(dir.path(), &args);
    let mut c = SyncClient::connect(k.addr, TIMEOUT_MS, None).unwrap();
    assert_eq!(c.timeout_ms, TIMEOUT_MS);
    // Silent for three quarters of the timeout: suspected, not expired, then heard again.
    assert!(survives_pause(&mut c, Duration::from_millis(1500)), "expired before its timeout");
    // Pings for a while (the suspicion is over), then a pause past the configured timeout
    // but within the grown one (1.5 x 2 s = 3 s).
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(500) {
        c.exists("/", false).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    survives_pause(&mut c, Duration::from_millis(2500))
}

#[test]
fn adaptive_sessions_survive_a_longer_pause_after_a_false_suspicion() {
    assert!(run(true), "the adaptive timeout did not grow after a false suspicion");
}

#[test]
fn fixed_sessions_expire_after_the_same_pause() {
    assert!(!run(false), "a fixed 2 s timeout survived a 2.5 s pause");
}
