//! Guarantee: sessions are durable state. After a keeper is killed and restarted, a client
//! resumes its session with id and password and keeps its ephemerals; a session that does not
//! come back expires one timeout after the restart, and its ephemerals are deleted. A wrong
//! password is refused as ZooKeeper refuses it.

mod common;

use common::KeeperProc;
use keeper_proto::client::{ClientError, SyncClient};
use std::time::{Duration, Instant};

const FAST: [&str; 2] = ["--zk-property", "tickTime=100"];

#[test]
fn resume_after_restart_then_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut k = KeeperProc::start(dir.path(), &FAST);
    let mut stays = SyncClient::connect(k.addr, 1500, None).unwrap();
    stays.create("/stays", b"", 1).unwrap();
    let mut leaves = SyncClient::connect(k.addr, 1500, None).unwrap();
    leaves.create("/leaves", b"", 1).unwrap();
    let (sid, pw) = (stays.session_id, stays.passwd.clone());
    k.kill9();
    drop((stays, leaves));

    let k = KeeperProc::start(dir.path(), &FAST);
    // Wrong password: ZooKeeper's "expired" answer.
    assert!(matches!(SyncClient::connect(k.addr, 1500, Some((sid, vec![9; 16]))), Err(ClientError::Expired)));
    let mut resumed = SyncClient::connect(k.addr, 1500, Some((sid, pw))).unwrap();
    assert_eq!(resumed.session_id, sid);
    let mut observer = SyncClient::connect(k.addr, 1500, None).unwrap();
    let t0 = Instant::now();
    while observer.exists("/leaves", false).unwrap().is_some() {
        assert!(t0.elapsed() < Duration::from_secs(30), "an abandoned session never expired");
        // Keep the resumed session alive meanwhile.
        resumed.exists("/stays", false).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(observer.exists("/stays", false).unwrap().is_some(), "the resumed session lost its ephemeral");
    resumed.close().unwrap();
    assert!(observer.exists("/stays", false).unwrap().is_none(), "closeSession leaves no ephemerals");
}
