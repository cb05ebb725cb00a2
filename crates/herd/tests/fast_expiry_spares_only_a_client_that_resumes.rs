//! Guarantee: a session that opted in to socket-close fast expiry (`addAuth("herd",
//! "fast-expiry=MS")`) is expired within its grace after its connection breaks without
//! closeSession — long before its session timeout — unless the client resumes it, on any
//! keeper, within the grace. The decision is made when the expiry is applied, against the
//! session's connection epoch, so a client that moved to another member is never expired by the
//! old member's notice. Sessions that did not opt in keep ZooKeeper's behaviour.

mod common;

use common::ensemble::Ensemble;
use common::KeeperProc;
use keeper_proto::client::SyncClient;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Far longer than any grace here, so an expiry seen within [`FAST_BOUND`] was the fast path.
const TIMEOUT_MS: i32 = 30_000;
const FAST_BOUND: Duration = Duration::from_secs(15);
const GRACE_MS: u64 = 500;

fn opted_in(addr: SocketAddr, path: &str) -> SyncClient {
    let mut c = SyncClient::connect(addr, TIMEOUT_MS, None).unwrap();
    c.add_auth("herd", format!("fast-expiry={GRACE_MS}").as_bytes()).unwrap();
    c.create(path, b"", 1).unwrap();
    c
}

fn wait_gone(observer: &mut SyncClient, path: &str) {
    let t0 = Instant::now();
    while observer.exists(path, false).unwrap().is_some() {
        assert!(t0.elapsed() < FAST_BOUND, "{path} outlived its connection by {FAST_BOUND:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits several graces, then checks the node is still there.
fn assert_stays(observer: &mut SyncClient, path: &str) {
    std::thread::sleep(Duration::from_millis(GRACE_MS * 4));
    assert!(observer.exists(path, false).unwrap().is_some(), "{path} was expired");
}

#[test]
fn standalone() {
    let dir = tempfile::tempdir().unwrap();
    let k = KeeperProc::start(dir.path(), &[]);
    let mut observer = SyncClient::connect(k.addr, TIMEOUT_MS, None).unwrap();

    // A crash: the socket closes (the kernel sends FIN) without closeSession.
    let crashed = opted_in(k.addr, "/crashed");
    drop(crashed);
    wait_gone(&mut observer, "/crashed");

    // A client whose connection broke and that resumed at once keeps its session.
    let c = opted_in(k.addr, "/resumed");
    let (sid, pw) = (c.session_id, c.passwd.clone());
    drop(c);
    let mut resumed = SyncClient::connect(k.addr, TIMEOUT_MS, Some((sid, pw))).unwrap();
    assert_stays(&mut observer, "/resumed");
    resumed.exists("/resumed", false).unwrap();

    // Not opted in: ZooKeeper's rules, the session waits for its timeout.
    let mut plain = SyncClient::connect(k.addr, TIMEOUT_MS, None).unwrap();
    plain.create("/plain", b"", 1).unwrap();
    drop(plain);
    assert_stays(&mut observer, "/plain");

    // Opting out again (fast-expiry=0) restores ZooKeeper's rules.
    let mut out = opted_in(k.addr, "/opted-out");
    out.add_auth("herd", b"fast-expiry=0").unwrap();
    drop(out);
    assert_stays(&mut observer, "/opted-out");

    // A bad option is refused as ZooKeeper refuses an unknown auth: AuthFailed.
    let mut bad = SyncClient::connect(k.addr, TIMEOUT_MS, None).unwrap();
    assert!(bad.add_auth("herd", b"fast-expiry=soon").is_err());
}

#[test]
fn ensemble_member_change_within_the_grace() {
    let e = Ensemble::start(3);
    e.wait_settled(Duration::from_secs(60)).unwrap();
    let addrs = e.client_addrs();
    let mut observer = SyncClient::connect(addrs[2], TIMEOUT_MS, None).unwrap();

    // The client's connection to member 0 breaks and it resumes at member 1 within the grace:
    // member 0's notice must not expire it.
    let c = opted_in(addrs[0], "/moved");
    let (sid, pw) = (c.session_id, c.passwd.clone());
    drop(c);
    let mut moved = SyncClient::connect(addrs[1], TIMEOUT_MS, Some((sid, pw))).unwrap();
    assert_stays(&mut observer, "/moved");
    moved.sync("/").unwrap();
    // ... and when it then dies at member 1, member 1's notice expires it.
    drop(moved);
    wait_gone(&mut observer, "/moved");
}
