//! Guarantee: a group's views have an epoch that grows with every join and departure; a member
//! whose znode is deleted (or whose session ends) learns it was expelled and rejoins as a new,
//! higher incarnation; a join waits while an older incarnation still holds the id; a master's
//! view refuses requests from incarnations it does not list.

mod common;

use common::{config, TestKeeper, PATIENCE};
use member::client::Session;
use member::membership::{HerdOptions, Membership, MembershipConfig, Status};
use member::view::{self, View, Watcher};
use std::time::Duration;

fn membership_config(k: &TestKeeper, group: &str, id: &str) -> MembershipConfig {
    MembershipConfig {
        client: config(&[k.addr], Duration::from_secs(4)),
        group: group.into(),
        id: id.into(),
        payload: format!("addr-of-{id}").into_bytes(),
        herd_options: Some(HerdOptions { fast_expiry: Some(Duration::from_millis(200)), declare_heartbeat: true }),
        join_wait_max: Duration::from_secs(30),
    }
}

async fn next_view(w: &mut Watcher) -> View {
    tokio::time::timeout(PATIENCE, w.next()).await.expect("a view within the patience bound")
}

/// Waits until `pred` holds for a view; returns it.
async fn view_where(w: &mut Watcher, pred: impl Fn(&View) -> bool) -> View {
    loop {
        let v = next_view(w).await;
        if pred(&v) {
            return v;
        }
    }
}

async fn member_status(m: &Membership, pred: impl Fn(&Status) -> bool) -> Status {
    let mut rx = m.status();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let s = rx.borrow_and_update().clone();
            if pred(&s) {
                return s;
            }
            rx.changed().await.expect("status sender alive");
        }
    })
    .await
    .expect("status within the patience bound")
}

#[tokio::test]
async fn joins_leaves_and_epochs() {
    let k = TestKeeper::start().await;
    let mut w = Watcher::new(config(&[k.addr], Duration::from_secs(10)), "workers").unwrap();
    let empty = next_view(&mut w).await;
    assert!(empty.members.is_empty());

    let a = Membership::start(membership_config(&k, "workers", "a"), None).unwrap();
    let b = Membership::start(membership_config(&k, "workers", "b"), None).unwrap();
    let both = view_where(&mut w, |v| v.members.len() == 2).await;
    assert!(both.epoch > empty.epoch);
    assert_eq!(both.members["a"].payload, b"addr-of-a");
    let Status::Member { incarnation, .. } = member_status(&a, |s| matches!(s, Status::Member { .. })).await else {
        unreachable!()
    };
    assert_eq!(both.members["a"].incarnation, incarnation);
    assert_eq!(both.admit("a", incarnation), Ok(()));

    // A clean leave: the znode goes at once, and the epoch grows again.
    a.leave().await;
    let left = view_where(&mut w, |v| !v.members.contains_key("a")).await;
    assert!(left.epoch > both.epoch);
    assert!(left.admit("a", incarnation).is_err(), "a departed member is still admitted");
    assert!(left.members.contains_key("b"));
    b.leave().await;
}

#[tokio::test]
async fn an_expelled_member_rejoins_as_a_new_incarnation() {
    let k = TestKeeper::start().await;
    let m = Membership::start(membership_config(&k, "workers", "x"), None).unwrap();
    let Status::Member { incarnation: first, .. } = member_status(&m, |s| matches!(s, Status::Member { .. })).await
    else {
        unreachable!()
    };
    // Someone (an operator, a master declaring it dead) deletes its znode.
    let admin = Session::connect(config(&[k.addr], Duration::from_secs(10))).await.unwrap();
    admin.delete(&view::member_path("workers", "x"), -1).await.unwrap();
    // (Expelled comes first, but a watch channel may skip it: the rejoin can be that quick.)
    let Status::Member { incarnation: second, .. } =
        member_status(&m, |s| matches!(s, Status::Member { incarnation, .. } if *incarnation != first)).await
    else {
        unreachable!()
    };
    assert!(second > first, "incarnations must grow: {first:#x} then {second:#x}");
    let v = view::read_view(&admin, "workers", false).await.unwrap();
    assert_eq!(v.admit("x", second), Ok(()));
    assert!(v.admit("x", first).is_err(), "the old incarnation is still admitted");
    m.leave().await;
}

#[tokio::test]
async fn a_join_waits_for_the_older_incarnation_to_end() {
    let k = TestKeeper::start().await;
    // An older incarnation of "y" still holds the id with its own live session.
    let old = Session::connect(config(&[k.addr], Duration::from_secs(10))).await.unwrap();
    view::join(&old, "workers", "y", b"old", Duration::ZERO).await.unwrap();
    let m = Membership::start(membership_config(&k, "workers", "y"), None).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*m.status().borrow(), Status::Joining, "joined while another session held the id");
    old.close().await.unwrap();
    member_status(&m, |s| matches!(s, Status::Member { .. })).await;
    m.leave().await;
}
