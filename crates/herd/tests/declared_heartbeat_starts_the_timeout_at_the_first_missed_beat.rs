//! Guarantee: a session that declares its heartbeat interval (`addAuth("herd", "heartbeat=MS")`)
//! is expired only after a silence of its timeout plus that interval — the timeout counts from
//! the first heartbeat that did not come, so a client is never declared dead sooner than the
//! timeout after it stopped — while a session that declares nothing keeps ZooKeeper's rule.

mod common;

use common::KeeperProc;
use keeper_proto::client::SyncClient;
use std::time::Duration;

const TIMEOUT_MS: i32 = 2000;

/// Opens a session, optionally declaring a 1 s heartbeat, falls silent for 2.5 s (past the
/// timeout, within timeout + heartbeat), and tells whether the session survived.
fn survives_silence(k: &KeeperProc, declare: bool) -> bool {
    let mut c = SyncClient::connect(k.addr, TIMEOUT_MS, None).unwrap();
    assert_eq!(c.timeout_ms, TIMEOUT_MS);
    if declare {
        c.add_auth("herd", b"fast-expiry=0,heartbeat=1000").unwrap();
    }
    std::thread::sleep(Duration::from_millis(2500));
    c.exists("/", false).is_ok()
}

#[test]
fn the_timeout_counts_from_the_first_missed_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let k =
        KeeperProc::start(dir.path(), &["--zk-property", "tickTime=100", "--zk-property", "maxSessionTimeout=8000"]);
    assert!(survives_silence(&k, true), "expired before timeout + declared heartbeat");
    assert!(!survives_silence(&k, false), "a session that declared nothing outlived its timeout");
    let mut bad = SyncClient::connect(k.addr, TIMEOUT_MS, None).unwrap();
    assert!(bad.add_auth("herd", b"heartbeat=often").is_err(), "a bad option was accepted");
}
