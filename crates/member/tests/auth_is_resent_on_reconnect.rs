//! Guarantee: identities added with `add_auth` (or given in the config) are sent again, first,
//! on every new connection, so nodes protected by them stay readable after a reconnect; an
//! identity the server refuses fails its call with AuthFailed and is not sent again.

mod common;

use common::{config, steady, wait_state, Proxy, TestKeeper, PATIENCE};
use keeper_proto::{CreateMode, ErrorCode};
use member::client::{creator_all_acl, Error, Session, State};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_survive_reconnects() {
    let k = TestKeeper::start().await;
    let p = Proxy::start(k.addr).await;
    let s = Session::connect(config(&[p.addr], Duration::from_secs(5))).await.unwrap();
    let mut state = s.state();
    s.add_auth("digest", b"alice:secret").await.unwrap();
    s.create("/private", b"x", creator_all_acl(), CreateMode::Persistent).await.unwrap();
    let stranger = steady(&k).await;
    assert_eq!(stranger.get_data("/private", false).await, Err(Error::Keeper(ErrorCode::NoAuth)));

    // A refused scheme: the call fails, and the keeper drops the connection after it.
    // The reconnect may be over before the state is looked at, so retry rather than watch.
    assert_eq!(s.add_auth("no-such-scheme", b"x").await, Err(Error::Keeper(ErrorCode::AuthFailed)));
    let t0 = std::time::Instant::now();
    let read = loop {
        match s.get_data("/private", false).await {
            Err(Error::ConnectionLoss) if t0.elapsed() < PATIENCE => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            r => break r,
        }
    };
    assert_eq!(read.unwrap().0, b"x", "digest identity not re-sent");

    // A reconnect of the proxy's making: the identity is sent again before the read.
    p.down();
    wait_state(&mut state, "Disconnected", |s| matches!(s, State::Disconnected { .. })).await;
    p.up();
    wait_state(&mut state, "Connected", |s| matches!(s, State::Connected { .. })).await;
    assert_eq!(s.get_data("/private", false).await.unwrap().0, b"x");

    // Identities from the config are in place before the first request.
    let mut cfg = config(&[k.addr], Duration::from_secs(20));
    cfg.auth = vec![("digest".into(), b"alice:secret".to_vec())];
    let configured = Session::connect(cfg).await.unwrap();
    assert_eq!(configured.get_data("/private", false).await.unwrap().0, b"x");
    configured.close().await.unwrap();

    let mut cfg = config(&[k.addr], Duration::from_secs(20));
    cfg.auth = vec![("no-such-scheme".into(), b"x".to_vec())];
    assert_eq!(Session::connect(cfg).await.err(), Some(Error::Keeper(ErrorCode::AuthFailed)));
    s.close().await.unwrap();
}
