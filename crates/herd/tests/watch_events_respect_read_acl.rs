//! Guarantee (ZooKeeper 3.8.4+, CVE-2024-23944): a watch event reaches a connection only if
//! that connection may READ the node the event is about; a persistent recursive watch on "/"
//! does not leak the names of nodes it cannot read.

mod common;

use common::KeeperProc;
use keeper_proto::client::SyncClient;
use keeper_proto::*;

#[test]
fn events_for_unreadable_nodes_are_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let k = KeeperProc::start(dir.path(), &[]);
    let mut watcher = SyncClient::connect(k.addr, 10_000, None).unwrap();
    // A persistent recursive watch on the root (addWatch, mode 1).
    watcher.call(OpCode::AddWatch, &AddWatchRequest { path: "/".into(), mode: 1 }.to_bytes()).unwrap();
    assert!(watcher.exists("/secret", true).unwrap().is_none());

    let mut owner = SyncClient::connect(k.addr, 10_000, None).unwrap();
    owner.add_auth("digest", b"alice:pw").unwrap();
    let only_alice = vec![Acl { perms: Perms::ALL, id: Id { scheme: "auth".into(), id: String::new() } }];
    owner.create_with_acl("/secret", b"s", only_alice, 0).unwrap();
    owner.create("/open", b"o", 0).unwrap();

    // The first event the watcher sees is about /open: nothing about /secret got through,
    // neither from the exists watch nor from the recursive one.
    let ev = watcher.next_event().unwrap();
    assert_eq!((ev.path.as_str(), ev.kind), ("/open", EventType::NodeCreated.code()), "{ev:?}");
    // The one-shot exists watch on /secret was used up, as in ZooKeeper.
    owner.delete("/open", -1).unwrap();
    let ev = watcher.next_event().unwrap();
    assert_eq!((ev.path.as_str(), ev.kind), ("/open", EventType::NodeDeleted.code()), "{ev:?}");

    // Alice herself, watching /secret, is told.
    let mut alice = SyncClient::connect(k.addr, 10_000, None).unwrap();
    alice.add_auth("digest", b"alice:pw").unwrap();
    alice.get("/secret", true).unwrap();
    owner.set("/secret", b"s2", -1).unwrap();
    let ev = alice.next_event().unwrap();
    assert_eq!((ev.path.as_str(), ev.kind), ("/secret", EventType::NodeDataChanged.code()));
}
