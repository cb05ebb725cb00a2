//! Guarantee: `close()` ends the session (its ephemerals go at once), while dropping every
//! handle only stops the client: the session and its ephemerals live on until the keeper
//! expires it, or until someone holding the id and password resumes it and closes it (what a
//! supervisor does for a dead daemon). A closed session, or a wrong password, cannot be resumed.

mod common;

use common::{config, steady, TestKeeper, PATIENCE};
use keeper_proto::CreateMode;
use member::client::{open_acl, Error, Session, State};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_and_drop_does_not() {
    let k = TestKeeper::start().await;
    let observer = steady(&k).await;

    let closed = steady(&k).await;
    closed.create("/closed", b"", open_acl(), CreateMode::Ephemeral).await.unwrap();
    let (closed_id, closed_pw) = (closed.id(), closed.passwd());
    closed.close().await.unwrap();
    assert_eq!(observer.exists("/closed", false).await.unwrap(), None, "close() returned before the ephemeral went");
    let again = Session::resume(config(&[k.addr], Duration::from_secs(20)), closed_id, closed_pw).await;
    assert_eq!(again.err(), Some(Error::Expired), "a closed session resumed");

    let dropped = steady(&k).await;
    dropped.create("/dropped", b"", open_acl(), CreateMode::Ephemeral).await.unwrap();
    let (id, pw) = (dropped.id(), dropped.passwd());
    let mut state = dropped.state();
    let mut events = dropped.take_events().unwrap();
    drop(dropped);
    // The task stops: its state sender and event sender go with it.
    assert!(tokio::time::timeout(PATIENCE, state.changed()).await.unwrap().is_err());
    assert!(tokio::time::timeout(PATIENCE, events.recv()).await.unwrap().is_none());
    assert!(observer.exists("/dropped", false).await.unwrap().is_some(), "dropping the handles closed the session");

    let wrong = Session::resume(config(&[k.addr], Duration::from_secs(20)), id, vec![7; 16]).await;
    assert_eq!(wrong.err(), Some(Error::Expired), "a wrong password resumed the session");

    // The supervisor's way: resume with the password, then close.
    let resumed = Session::resume(config(&[k.addr], Duration::from_secs(20)), id, pw).await.unwrap();
    assert_eq!(resumed.id(), id);
    let stat = resumed.exists("/dropped", false).await.unwrap().expect("the ephemeral survived the drop");
    assert_eq!(stat.ephemeral_owner, id);
    resumed.close().await.unwrap();
    assert_eq!(observer.exists("/dropped", false).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_session_expires_on_its_timeout() {
    let k = TestKeeper::start().await;
    let observer = steady(&k).await;
    let short = Session::connect(config(&[k.addr], Duration::from_millis(500))).await.unwrap();
    assert_eq!(short.timeout(), Duration::from_millis(500));
    short.create("/short", b"", open_acl(), CreateMode::Ephemeral).await.unwrap();
    let mut state = short.state();
    drop(short);
    // Nobody closed it and nobody pings for it: only the keeper's expiry removes the node.
    let t0 = Instant::now();
    while observer.exists("/short", false).await.unwrap().is_some() {
        assert!(t0.elapsed() < PATIENCE, "an abandoned session never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The dropped client never learned of it: its task had stopped, without a final state.
    assert!(matches!(*state.borrow_and_update(), State::Connected { .. }));
    observer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_asked_while_disconnected_happens_on_the_next_connection() {
    let k = TestKeeper::start().await;
    let observer = steady(&k).await;
    let p = common::Proxy::start(k.addr).await;
    let s = Session::connect(config(&[p.addr], Duration::from_secs(20))).await.unwrap();
    s.create("/closing", b"", open_acl(), CreateMode::Ephemeral).await.unwrap();
    let mut state = s.state();
    p.down();
    common::wait_state(&mut state, "Disconnected", |s| matches!(s, State::Disconnected { .. })).await;
    let closing = tokio::spawn(s.close());
    // Gives the close time to reach the task while it is still disconnected (if it arrives
    // later, the test passes through the ordinary close instead: weaker, not wrong).
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.up();
    tokio::time::timeout(PATIENCE, closing).await.expect("close never finished").unwrap().unwrap();
    assert_eq!(*state.borrow_and_update(), State::Closed);
    assert_eq!(observer.exists("/closing", false).await.unwrap(), None);
}
