//! Guarantee: a session with nothing to say pings, so an idle connection is neither declared
//! dead by the client (it would reconnect) nor let expire by the keeper.

mod common;

use common::{config, steady, Proxy, TestKeeper, PATIENCE};
use keeper_proto::CreateMode;
use member::client::{open_acl, Session};
use std::time::{Duration, Instant};

/// A ping is a bare request header: 4 bytes of length, xid and opcode.
const PING_BYTES: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_pings_on_one_connection() {
    let k = TestKeeper::start().await;
    let observer = steady(&k).await;
    let p = Proxy::start(k.addr).await;
    let s = Session::connect(config(&[p.addr], Duration::from_millis(1500))).await.unwrap();
    s.create("/idle", b"", open_acl(), CreateMode::Ephemeral).await.unwrap();
    let sent = p.client_bytes();

    // Three pings take at least a whole session timeout: without them the keeper would have
    // expired the session, or the client would have given up on the connection.
    let t0 = Instant::now();
    while p.client_bytes() < sent + 3 * PING_BYTES {
        assert!(t0.elapsed() < PATIENCE, "an idle session sent no pings");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(p.accepted(), 1, "the idle connection was replaced");
    let stat = observer.exists("/idle", false).await.unwrap().expect("the idle session expired");
    assert_eq!(stat.ephemeral_owner, s.id());
    s.close().await.unwrap();
}
