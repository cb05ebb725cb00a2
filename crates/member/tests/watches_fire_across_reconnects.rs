//! Guarantee: one-shot watches fire once, and a watch armed before a disconnect still fires
//! after the session reconnects (to another server of its list), even when the change happened
//! while it was disconnected: the client re-registers it with setWatches2 relative to the last
//! zxid it saw. Meanwhile the state goes Connected -> Disconnected -> Connected, requests fail
//! fast with ConnectionLoss, and the session (id, ephemerals) is the same afterwards.

mod common;

use common::{config, steady, wait_state, Proxy, TestKeeper, PATIENCE};
use keeper_proto::{CreateMode, EventType};
use member::client::{open_acl, Error, Session, State, WatchEvent};
use std::time::Duration;
use tokio::sync::mpsc;

async fn next(events: &mut mpsc::Receiver<WatchEvent>) -> WatchEvent {
    tokio::time::timeout(PATIENCE, events.recv()).await.expect("no watch event came").expect("events channel ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_exist_and_child_watches_fire_once() {
    let k = TestKeeper::start().await;
    let s = steady(&k).await;
    let writer = steady(&k).await;
    let mut events = s.take_events().unwrap();
    assert!(s.take_events().is_none(), "there is one events receiver");

    s.create("/d", b"1", open_acl(), CreateMode::Persistent).await.unwrap();
    s.get_data("/d", true).await.unwrap();
    assert_eq!(s.exists("/later", true).await.unwrap(), None);
    s.get_children2("/d", true).await.unwrap();

    writer.set_data("/d", b"2", -1).await.unwrap();
    assert_eq!(next(&mut events).await, WatchEvent { kind: EventType::NodeDataChanged, path: "/d".into() });
    writer.create("/later", b"", open_acl(), CreateMode::Persistent).await.unwrap();
    assert_eq!(next(&mut events).await, WatchEvent { kind: EventType::NodeCreated, path: "/later".into() });
    writer.create("/d/c", b"", open_acl(), CreateMode::Persistent).await.unwrap();
    assert_eq!(next(&mut events).await, WatchEvent { kind: EventType::NodeChildrenChanged, path: "/d".into() });

    // Used up: a second change fires nothing; a fresh watch then fires for the next one.
    writer.set_data("/d", b"3", -1).await.unwrap();
    s.get_data("/d", true).await.unwrap();
    writer.set_data("/d", b"4", -1).await.unwrap();
    assert_eq!(next(&mut events).await, WatchEvent { kind: EventType::NodeDataChanged, path: "/d".into() });
    assert!(events.try_recv().is_err(), "a used-up watch fired again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_watch_fires_after_a_reconnect_for_a_change_made_while_away() {
    let k = TestKeeper::start().await;
    let writer = steady(&k).await;
    writer.create("/w", b"", open_acl(), CreateMode::Persistent).await.unwrap();
    writer.create("/gone", b"", open_acl(), CreateMode::Persistent).await.unwrap();
    let (a, b) = (Proxy::start(k.addr).await, Proxy::start(k.addr).await);

    let s = Session::connect(config(&[a.addr, b.addr], Duration::from_secs(3))).await.unwrap();
    let mut state = s.state();
    assert_eq!(*state.borrow_and_update(), State::Connected { server: a.addr });
    let mut events = s.take_events().unwrap();
    s.create("/mine", b"", open_acl(), CreateMode::Ephemeral).await.unwrap();
    s.get_children2("/w", true).await.unwrap();
    s.get_data("/gone", true).await.unwrap();
    assert_eq!(s.exists("/born", true).await.unwrap(), None);

    a.down();
    b.down();
    wait_state(&mut state, "Disconnected", |s| matches!(s, State::Disconnected { .. })).await;
    assert_eq!(s.exists("/w", false).await, Err(Error::ConnectionLoss), "a request waited while disconnected");
    writer.create("/w/new", b"", open_acl(), CreateMode::Persistent).await.unwrap();
    writer.delete("/gone", -1).await.unwrap();
    writer.create("/born", b"", open_acl(), CreateMode::Persistent).await.unwrap();
    assert!(events.try_recv().is_err(), "an event came while disconnected");

    b.up();
    let back = wait_state(&mut state, "Connected", |s| matches!(s, State::Connected { .. })).await;
    assert_eq!(back, State::Connected { server: b.addr }, "reconnected through the other host");
    let mut got = vec![next(&mut events).await, next(&mut events).await, next(&mut events).await];
    got.sort_by(|x, y| x.path.cmp(&y.path));
    assert_eq!(
        got,
        vec![
            WatchEvent { kind: EventType::NodeCreated, path: "/born".into() },
            WatchEvent { kind: EventType::NodeDeleted, path: "/gone".into() },
            WatchEvent { kind: EventType::NodeChildrenChanged, path: "/w".into() },
        ]
    );
    let stat = s.exists("/mine", false).await.unwrap().expect("the session's ephemeral survived the reconnect");
    assert_eq!(stat.ephemeral_owner, s.id());
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_declared_dead_and_replaced() {
    let k = TestKeeper::start().await;
    let (a, b) = (Proxy::start(k.addr).await, Proxy::start(k.addr).await);
    let s = Session::connect(config(&[a.addr, b.addr], Duration::from_secs(4))).await.unwrap();
    let mut state = s.state();
    assert_eq!(*state.borrow_and_update(), State::Connected { server: a.addr });
    let id = s.id();

    // The socket stays open but carries nothing: only the missing ping replies tell.
    a.freeze();
    let in_flight = {
        let s = s.clone();
        tokio::spawn(async move { s.get_data("/", false).await })
    };
    // Disconnected may last too briefly to be seen here; the move to the next host shows it.
    wait_state(&mut state, "Connected to b", |s| *s == State::Connected { server: b.addr }).await;
    assert_eq!(in_flight.await.unwrap(), Err(Error::ConnectionLoss), "the request in flight was not failed");
    assert_eq!(s.id(), id);
    s.get_data("/", false).await.unwrap();
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_expires_while_away_is_reported_expired() {
    let k = TestKeeper::start().await;
    let observer = steady(&k).await;
    let p = Proxy::start(k.addr).await;
    let s = Session::connect(config(&[p.addr], Duration::from_millis(600))).await.unwrap();
    s.create("/eph", b"", open_acl(), CreateMode::Ephemeral).await.unwrap();
    let mut events = s.take_events().unwrap();
    let mut state = s.state();

    p.down();
    wait_state(&mut state, "Disconnected", |s| matches!(s, State::Disconnected { .. })).await;
    let t0 = std::time::Instant::now();
    while observer.exists("/eph", false).await.unwrap().is_some() {
        assert!(t0.elapsed() < PATIENCE, "the keeper never expired the session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.up();
    wait_state(&mut state, "Expired", |s| *s == State::Expired).await;
    assert_eq!(s.get_data("/", false).await, Err(Error::Expired));
    assert!(next_or_end(&mut events).await.is_none(), "the events channel ends with the session");
    assert_eq!(s.close().await, Err(Error::Expired));
}

async fn next_or_end(events: &mut mpsc::Receiver<WatchEvent>) -> Option<WatchEvent> {
    tokio::time::timeout(PATIENCE, events.recv()).await.expect("events channel neither ended nor delivered")
}
