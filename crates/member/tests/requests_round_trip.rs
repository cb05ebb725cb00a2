//! Guarantee: every request of the async client reaches the keeper and comes back decoded, with
//! the keeper's real Stat values and its error codes; closing ends the session for every handle.

mod common;

use common::{steady, TestKeeper};
use keeper_proto::{CreateMode, ErrorCode};
use member::client::{open_acl, Error, State};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_set_exists_children_delete() {
    let k = TestKeeper::start().await;
    let s = steady(&k).await;
    assert_ne!(s.id(), 0);
    assert_eq!(s.passwd().len(), 16);
    assert_eq!(s.timeout(), std::time::Duration::from_secs(20), "the keeper grants what is in range");
    assert_eq!(s.hosts(), k.addr.to_string());
    assert_eq!(*s.state().borrow(), State::Connected { server: k.addr });

    let (path, created) = s.create("/a", b"one", open_acl(), CreateMode::Persistent).await.unwrap();
    assert_eq!(path, "/a");
    assert!(created.czxid > 0 && created.czxid == created.mzxid && created.czxid == created.pzxid);
    assert_eq!((created.version, created.data_length, created.ephemeral_owner), (0, 3, 0));

    let (data, stat) = s.get_data("/a", false).await.unwrap();
    assert_eq!((data.as_slice(), &stat), (&b"one"[..], &created));

    let set = s.set_data("/a", b"two!", 0).await.unwrap();
    assert_eq!((set.version, set.data_length, set.czxid), (1, 4, created.czxid));
    assert!(set.mzxid > created.mzxid);
    assert_eq!(s.set_data("/a", b"x", 0).await, Err(Error::Keeper(ErrorCode::BadVersion)));
    assert_eq!(s.exists("/a", false).await.unwrap(), Some(set));
    assert_eq!(s.exists("/nope", false).await.unwrap(), None);
    assert_eq!(s.get_data("/nope", false).await, Err(Error::Keeper(ErrorCode::NoNode)));

    let (_, eph) = s.create("/a/b", b"", open_acl(), CreateMode::Ephemeral).await.unwrap();
    assert_eq!(eph.ephemeral_owner, s.id());
    let (seq, _) = s.create("/a/s-", b"", open_acl(), CreateMode::PersistentSequential).await.unwrap();
    assert_eq!(seq, "/a/s-0000000001", "the suffix is the parent's cversion before the create");
    let (mut children, parent) = s.get_children2("/a", false).await.unwrap();
    children.sort();
    assert_eq!(children, vec!["b".to_owned(), "s-0000000001".to_owned()]);
    assert_eq!((parent.num_children, parent.cversion, parent.version), (2, 2, 1));

    assert_eq!(
        s.create("/a", b"", open_acl(), CreateMode::Persistent).await,
        Err(Error::Keeper(ErrorCode::NodeExists))
    );
    assert_eq!(s.delete("/a", -1).await, Err(Error::Keeper(ErrorCode::NotEmpty)));
    s.delete("/a/b", 0).await.unwrap();
    s.delete(&seq, -1).await.unwrap();
    assert_eq!(s.delete("/a", 0).await, Err(Error::Keeper(ErrorCode::BadVersion)));
    s.delete("/a", 1).await.unwrap();
    assert_eq!(s.exists("/a", false).await.unwrap(), None);

    // Many requests in flight at once still come back, each to its caller.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let p = format!("/many-{i}");
            s.create(&p, i.to_string().as_bytes(), open_acl(), CreateMode::Persistent).await.unwrap();
            s.get_data(&p, false).await.unwrap().0
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), i.to_string().into_bytes());
    }

    let other = s.clone();
    let mut state = s.state();
    s.close().await.unwrap();
    assert_eq!(*state.borrow_and_update(), State::Closed);
    assert_eq!(other.exists("/", false).await, Err(Error::Closed));
}
