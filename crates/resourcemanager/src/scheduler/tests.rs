//! The scheduler's rules, one test each, asserted through the containers heartbeats allocate.

use super::*;

const NODE: Resources = Resources::new(8192, 8);
const AM: Resources = Resources::new(1024, 1);
const TASK: Resources = Resources::new(2048, 1);

fn config() -> Config {
    Config { node_locality_delay: 2, rack_locality_delay: 4, max_am_share: 1.0, ..Config::default() }
}

/// n1, n2 on /r1; n3, n4 on /r2; each 8 GiB and 8 cores.
fn cluster(config: Config) -> Scheduler {
    let mut s = Scheduler::new(config).unwrap();
    for (n, rack) in [("n1", "/r1"), ("n2", "/r1"), ("n3", "/r2"), ("n4", "/r2")] {
        s.set_node(n, rack, NODE, true).unwrap();
    }
    s
}

fn att(app: u64, attempt: u32) -> AttemptId {
    AttemptId { app: AppId(app), attempt }
}

/// Adds app `id` to `queue` with attempt 1 and places its AM on `am_node`.
fn start(s: &mut Scheduler, id: u64, queue: &str, am_node: &str) -> AttemptId {
    s.add_app(AppId(id), queue, "alice").unwrap();
    s.add_attempt(att(id, 1), AM).unwrap();
    let got = s.on_node_heartbeat(am_node, 0);
    assert!(got.iter().any(|c| c.is_am && c.attempt == att(id, 1) && c.node == am_node), "{got:?}");
    att(id, 1)
}

fn any(priority: Priority, count: u32) -> Ask {
    Ask { priority, location: Location::Any, resources: TASK, count, relax_locality: true }
}

fn at(priority: Priority, location: Location, count: u32, relax: bool) -> Ask {
    Ask { priority, location, resources: TASK, count, relax_locality: relax }
}

fn node(n: &str) -> Location {
    Location::Node(n.into())
}

fn rack(r: &str) -> Location {
    Location::Rack(r.into())
}

/// The rows AMRMClient sends for one container at priority 20 on n1.
fn one_on_n1(s: &Scheduler, relax_locality: bool) -> Vec<Ask> {
    let req = ContainerRequest {
        priority: 20,
        resources: TASK,
        nodes: vec!["n1".into()],
        racks: vec![],
        relax_locality,
        count: 1,
    };
    expand(&[req], |n| s.rack_of(n).map(str::to_string))
}

/// (app, node, locality) of each allocation.
fn placed(cs: &[Container]) -> Vec<(u64, String, Locality)> {
    cs.iter().map(|c| (c.attempt.app.0, c.node.clone(), c.locality)).collect()
}

fn ok(s: &Scheduler) {
    s.check_invariants().unwrap();
}

#[test]
fn config_is_validated() {
    let bad = |c: Config| matches!(Scheduler::new(c), Err(Error::InvalidConfig(_)));
    assert!(bad(Config { queues: BTreeMap::from([("a".into(), 1.0)]), ..config() }));
    assert!(bad(Config { queues: BTreeMap::from([("default".into(), 0.6), ("b".into(), 0.5)]), ..config() }));
    assert!(bad(Config { queues: BTreeMap::from([("default".into(), 1.5)]), ..config() }));
    assert!(bad(Config { node_locality_delay: 5, rack_locality_delay: 4, ..config() }));
    assert!(Scheduler::new(Config {
        queues: BTreeMap::from([("default".into(), 0.6), ("b".into(), 0.4)]),
        ..config()
    })
    .is_ok());
}

#[test]
fn am_container_first_then_asks_fill_the_node_up_to_capacity() {
    let mut s = cluster(config());
    s.add_app(AppId(1), "default", "alice").unwrap();
    s.add_attempt(att(1, 1), AM).unwrap();
    assert_eq!(s.pending(AppId(1)), 1);
    let got = s.on_node_heartbeat("n1", 7);
    assert_eq!(got.len(), 1);
    let am = &got[0];
    assert!(am.is_am);
    assert_eq!((am.priority, am.resources, am.allocated_ms), (AM_PRIORITY, AM, 7));
    assert_eq!(am.id, ContainerId { epoch: 0, seq: 0 });
    s.update_asks(att(1, 1), &[any(20, 10)]).unwrap();
    // 8 GiB - 1 GiB AM leaves room for three 2 GiB tasks.
    let got = s.on_node_heartbeat("n1", 8);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|c| !c.is_am && c.priority == 20 && c.locality == Locality::OffSwitch));
    assert_eq!(s.node_free("n1"), Some(Resources::new(1024, 4)));
    assert_eq!(s.pending(AppId(1)), 7);
    assert!(s.on_node_heartbeat("n1", 9).is_empty());
    ok(&s);
}

#[test]
fn container_ids_carry_the_epoch_and_count_up() {
    let mut s = cluster(Config { epoch: 3, ..config() });
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[any(20, 2)]).unwrap();
    let got = s.on_node_heartbeat("n2", 0);
    let ids: Vec<ContainerId> = got.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![ContainerId { epoch: 3, seq: 1 }, ContainerId { epoch: 3, seq: 2 }]);
}

#[test]
fn release_and_completion_free_capacity_once() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[any(20, 2)]).unwrap();
    let got = s.on_node_heartbeat("n2", 0);
    let (c1, c2) = (got[0].id, got[1].id);
    assert_eq!(s.node_free("n2"), Some(Resources::new(4096, 6)));
    assert_eq!(s.release(a, c1).unwrap().id, c1);
    assert_eq!(s.release(a, c1), Err(Error::UnknownContainer(c1)));
    assert!(s.container_completed(c2).is_some());
    assert!(s.container_completed(c2).is_none());
    assert_eq!(s.node_free("n2"), Some(NODE));
    ok(&s);
}

#[test]
fn asks_replace_per_priority_and_location_and_zero_cancels() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[any(20, 5), any(10, 1)]).unwrap();
    s.update_asks(a, &[any(20, 2)]).unwrap();
    assert_eq!(s.pending(AppId(1)), 3);
    s.update_asks(a, &[any(10, 0)]).unwrap();
    assert_eq!(s.pending(AppId(1)), 2);
    let got = s.on_node_heartbeat("n2", 0);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|c| c.priority == 20));
    assert_eq!(s.pending(AppId(1)), 0);
    ok(&s);
}

#[test]
fn lower_priority_number_is_served_first() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[any(20, 4), any(5, 1), any(10, 1)]).unwrap();
    let got = s.on_node_heartbeat("n2", 0);
    let prios: Vec<Priority> = got.iter().map(|c| c.priority).collect();
    assert_eq!(prios, vec![5, 10, 20, 20]);
}

#[test]
fn asks_of_a_priority_without_an_any_row_get_nothing() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[at(20, node("n2"), 2, true)]).unwrap();
    assert!(s.on_node_heartbeat("n2", 0).is_empty());
    s.update_asks(a, &[any(20, 1)]).unwrap();
    assert_eq!(placed(&s.on_node_heartbeat("n2", 0)), vec![(1, "n2".into(), Locality::NodeLocal)]);
}

#[test]
fn invalid_asks_are_refused_whole() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    let huge = Ask { resources: Resources::new(1 << 20, 1), ..any(20, 1) };
    assert!(matches!(s.update_asks(a, &[any(10, 1), huge]), Err(Error::InvalidAsk(_))));
    let empty = Ask { resources: Resources::new(0, 1), ..any(20, 1) };
    assert!(matches!(s.update_asks(a, &[empty]), Err(Error::InvalidAsk(_))));
    // Nothing of a refused batch was applied; a zero count needs no valid size.
    assert_eq!(s.pending(AppId(1)), 0);
    s.update_asks(a, &[Ask { resources: Resources::ZERO, ..any(20, 0) }]).unwrap();
    assert!(matches!(s.add_attempt(att(1, 2), Resources::new(1 << 20, 1)), Err(Error::InvalidAsk(_))));
}

#[test]
fn fifo_within_a_queue_for_equal_priorities() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    let b = start(&mut s, 2, "default", "n1");
    s.update_asks(b, &[any(20, 3)]).unwrap();
    s.update_asks(a, &[any(20, 3)]).unwrap();
    // n2 holds four tasks: the first app's three, then one of the second's.
    let got = s.on_node_heartbeat("n2", 0);
    assert_eq!(placed(&got).iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 1, 1, 2]);
    let got = s.on_node_heartbeat("n3", 0);
    assert_eq!(placed(&got).iter().map(|p| p.0).collect::<Vec<_>>(), vec![2, 2]);
    ok(&s);
}

#[test]
fn an_ask_that_fits_nowhere_does_not_block_the_apps_behind_it() {
    let mut s = cluster(Config { max_allocation: Resources::new(16384, 8), ..config() });
    let a = start(&mut s, 1, "default", "n1");
    let b = start(&mut s, 2, "default", "n1");
    let big = Ask { resources: Resources::new(16384, 1), ..any(20, 1) };
    s.update_asks(a, &[big]).unwrap();
    s.update_asks(b, &[any(20, 1)]).unwrap();
    assert_eq!(placed(&s.on_node_heartbeat("n2", 0)), vec![(2, "n2".into(), Locality::OffSwitch)]);
    assert_eq!(s.pending(AppId(1)), 1);
}

#[test]
fn am_containers_go_before_the_head_apps_task_asks() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[any(20, 100)]).unwrap();
    s.add_app(AppId(2), "default", "bob").unwrap();
    s.add_attempt(att(2, 1), AM).unwrap();
    let got = s.on_node_heartbeat("n2", 0);
    assert!(got[0].is_am && got[0].attempt == att(2, 1), "{got:?}");
    assert!(got[1..].iter().all(|c| c.attempt == a));
}

#[test]
fn am_limit_holds_back_further_ams_but_always_allows_one() {
    // 4 nodes x 8 GiB = 32 GiB; 10% of it is 3.2 GiB: three 1 GiB AMs, not a fourth.
    let mut s = cluster(Config { max_am_share: 0.1, ..config() });
    for id in 1..=4 {
        s.add_app(AppId(id), "default", "alice").unwrap();
        s.add_attempt(att(id, 1), AM).unwrap();
    }
    let got = s.on_node_heartbeat("n1", 0);
    assert_eq!(got.iter().map(|c| c.attempt.app.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(s.on_node_heartbeat("n2", 0).is_empty());
    // An AM bigger than the whole limit still runs when it is the queue's only one.
    let mut s = cluster(Config { max_am_share: 0.01, ..config() });
    s.add_app(AppId(1), "default", "alice").unwrap();
    s.add_attempt(att(1, 1), AM).unwrap();
    assert_eq!(s.on_node_heartbeat("n1", 0).len(), 1);
    ok(&s);
}

#[test]
fn queue_furthest_below_its_share_is_served_first_ties_by_name() {
    let queues = BTreeMap::from([("default".into(), 0.0), ("a".into(), 0.5), ("b".into(), 0.5)]);
    let mut s = cluster(Config { queues, ..config() });
    // Equal use (nothing): "a" before "b" by name. AMs go on n4.
    let qa = start(&mut s, 1, "a", "n4");
    let qb = start(&mut s, 2, "b", "n4");
    s.update_asks(qb, &[any(20, 8)]).unwrap();
    s.update_asks(qa, &[any(20, 8)]).unwrap();
    // Both hold an AM (1/32 of the cluster each); then the two alternate as each allocation
    // puts its queue further over the other.
    let got = s.on_node_heartbeat("n1", 0);
    assert_eq!(got.iter().map(|c| c.attempt.app.0).collect::<Vec<_>>(), vec![1, 2, 1, 2]);
    // With one of a's released, a is below b; then ties go to a by name.
    s.release(qa, got[0].id).unwrap();
    let got = s.on_node_heartbeat("n2", 0);
    assert_eq!(got.iter().map(|c| c.attempt.app.0).collect::<Vec<_>>(), vec![1, 1, 2, 1]);
    ok(&s);
}

#[test]
fn a_share_zero_queue_gets_only_what_others_cannot_use() {
    let queues = BTreeMap::from([("default".into(), 0.0), ("a".into(), 1.0)]);
    let mut s = cluster(Config { queues, ..config() });
    let d = start(&mut s, 1, "default", "n4");
    let a = start(&mut s, 2, "a", "n4");
    s.update_asks(d, &[any(20, 8)]).unwrap();
    s.update_asks(a, &[any(20, 2)]).unwrap();
    let got = s.on_node_heartbeat("n1", 0);
    assert_eq!(got.iter().map(|c| c.attempt.app.0).collect::<Vec<_>>(), vec![2, 2, 1, 1]);
}

#[test]
fn node_local_at_once_rack_local_after_the_node_delay_any_after_the_rack_delay() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n4");
    // One container wanted on n1 (rack /r1), relaxable.
    let asks = one_on_n1(&s, true);
    s.update_asks(a, &asks).unwrap();
    // n2 shares the rack: missed twice (node delay 2), taken at the third offer.
    assert!(s.on_node_heartbeat("n2", 0).is_empty());
    assert!(s.on_node_heartbeat("n2", 1).is_empty());
    assert_eq!(placed(&s.on_node_heartbeat("n2", 2)), vec![(1, "n2".into(), Locality::RackLocal)]);

    // Off-switch: n3 is on another rack; it takes rack delay 4 missed offers.
    s.update_asks(a, &asks).unwrap();
    for t in 0..4 {
        assert!(s.on_node_heartbeat("n3", 10 + t).is_empty(), "offer {t}");
    }
    assert_eq!(placed(&s.on_node_heartbeat("n3", 20)), vec![(1, "n3".into(), Locality::OffSwitch)]);

    // Node-local is taken at the first offer, and resets the count.
    s.update_asks(a, &asks).unwrap();
    assert_eq!(placed(&s.on_node_heartbeat("n1", 30)), vec![(1, "n1".into(), Locality::NodeLocal)]);
    s.update_asks(a, &asks).unwrap();
    assert!(s.on_node_heartbeat("n2", 31).is_empty());
    ok(&s);
}

#[test]
fn an_off_switch_allocation_does_not_reset_the_wait() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n4");
    s.update_asks(a, &[at(20, node("n1"), 2, true), at(20, rack("/r1"), 2, true), any(20, 2)]).unwrap();
    for t in 0..4 {
        assert!(s.on_node_heartbeat("n3", t).is_empty());
    }
    // The fifth offer of n3 gives up on locality, and since an off-switch allocation keeps the
    // count, the second container does not wait again: both go in the same heartbeat.
    assert_eq!(placed(&s.on_node_heartbeat("n3", 5)), vec![(1, "n3".into(), Locality::OffSwitch); 2]);
    ok(&s);
}

#[test]
fn a_missed_offer_counts_once_per_heartbeat() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n4");
    let b = start(&mut s, 2, "default", "n4");
    s.update_asks(a, &[at(20, node("n1"), 1, true), at(20, rack("/r1"), 1, true), any(20, 1)]).unwrap();
    // b takes three containers from n2 in one heartbeat; a passes n2 up once, not three times.
    s.update_asks(b, &[any(20, 3)]).unwrap();
    assert_eq!(s.on_node_heartbeat("n2", 0).len(), 3);
    assert_eq!(s.apps[&AppId(1)].asks[&20].missed, 1);
}

#[test]
fn a_full_node_is_not_a_missed_offer() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n4");
    let b = start(&mut s, 2, "default", "n4");
    s.update_asks(b, &[any(20, 4)]).unwrap();
    assert_eq!(s.on_node_heartbeat("n2", 0).len(), 4);
    s.update_asks(a, &[at(20, node("n1"), 1, true), at(20, rack("/r1"), 1, true), any(20, 1)]).unwrap();
    for t in 1..10 {
        assert!(s.on_node_heartbeat("n2", t).is_empty());
    }
    assert_eq!(s.apps[&AppId(1)].asks[&20].missed, 0);
}

#[test]
fn without_relax_locality_an_ask_never_leaves_its_nodes() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n4");
    let asks = one_on_n1(&s, false);
    assert!(asks.contains(&at(20, rack("/r1"), 1, false)) && asks.contains(&at(20, Location::Any, 1, false)));
    s.update_asks(a, &asks).unwrap();
    for t in 0..50 {
        for n in ["n2", "n3", "n4"] {
            assert!(s.on_node_heartbeat(n, t).is_empty());
        }
    }
    assert_eq!(placed(&s.on_node_heartbeat("n1", 99)), vec![(1, "n1".into(), Locality::NodeLocal)]);
}

#[test]
fn a_rack_only_ask_takes_its_rack_at_once_and_no_other_without_relax() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n4");
    s.update_asks(a, &[at(20, rack("/r2"), 2, true), at(20, Location::Any, 2, false)]).unwrap();
    assert!(s.on_node_heartbeat("n1", 0).is_empty());
    assert_eq!(placed(&s.on_node_heartbeat("n3", 1)), vec![(1, "n3".into(), Locality::RackLocal); 2]);
}

#[test]
fn unhealthy_nodes_get_nothing_and_keep_their_containers() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n4");
    s.update_asks(a, &[any(20, 1)]).unwrap();
    s.set_node("n1", "/r1", NODE, false).unwrap();
    assert!(s.on_node_heartbeat("n1", 0).is_empty());
    s.set_node("n4", "/r2", NODE, false).unwrap();
    assert_eq!(s.containers().filter(|c| c.node == "n4").count(), 1);
    s.set_node("n1", "/r1", NODE, true).unwrap();
    assert_eq!(s.on_node_heartbeat("n1", 1).len(), 1);
    assert!(s.on_node_heartbeat("nX", 1).is_empty());
    ok(&s);
}

#[test]
fn blacklisted_nodes_get_nothing_of_that_app_am_included() {
    let mut s = cluster(config());
    s.add_app(AppId(1), "default", "alice").unwrap();
    s.set_blacklisted(AppId(1), "n1", true).unwrap();
    s.add_attempt(att(1, 1), AM).unwrap();
    // n1 goes to the app behind: its AM, then its task.
    let b = start(&mut s, 2, "default", "n1");
    assert_eq!(s.pending(AppId(1)), 1);
    s.update_asks(b, &[any(20, 1)]).unwrap();
    assert_eq!(placed(&s.on_node_heartbeat("n1", 0)), vec![(2, "n1".into(), Locality::OffSwitch)]);
    assert!(s.on_node_heartbeat("n1", 1).is_empty());
    s.set_blacklisted(AppId(1), "n1", false).unwrap();
    assert!(s.on_node_heartbeat("n1", 2)[0].is_am);
    ok(&s);
}

#[test]
fn a_lost_node_returns_its_containers() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[any(20, 2)]).unwrap();
    assert_eq!(s.on_node_heartbeat("n1", 0).len(), 2);
    let lost = s.remove_node("n1");
    assert_eq!(lost.len(), 3);
    assert!(lost.iter().any(|c| c.is_am));
    assert!(s.containers().next().is_none());
    assert!(s.remove_node("n1").is_empty());
    ok(&s);
}

#[test]
fn removing_an_app_frees_and_returns_its_containers() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[any(20, 2)]).unwrap();
    s.on_node_heartbeat("n2", 0);
    let freed = s.remove_app(AppId(1));
    assert_eq!(freed.len(), 3);
    assert_eq!(s.queue_used("default"), Some(Resources::ZERO));
    assert_eq!(s.node_free("n2"), Some(NODE));
    assert!(s.remove_app(AppId(1)).is_empty());
    assert!(s.app(AppId(1)).is_none());
    ok(&s);
}

#[test]
fn a_new_attempt_kills_the_old_ones_containers_and_fences_it() {
    let mut s = cluster(config());
    let a1 = start(&mut s, 1, "default", "n1");
    s.update_asks(a1, &[any(20, 5)]).unwrap();
    s.on_node_heartbeat("n2", 0);
    let killed = s.add_attempt(att(1, 2), AM).unwrap();
    assert_eq!(killed.len(), 5);
    assert!(killed.iter().all(|c| c.attempt == a1));
    assert_eq!(s.pending(AppId(1)), 1, "old asks dropped, the new AM wanted");
    assert_eq!(s.update_asks(a1, &[any(20, 1)]), Err(Error::NotCurrentAttempt { attempt: a1, current: Some(2) }));
    assert!(matches!(s.add_attempt(att(1, 2), AM), Err(Error::NotCurrentAttempt { .. })));
    assert!(matches!(s.add_attempt(att(9, 1), AM), Err(Error::UnknownApp(_))));
    let got = s.on_node_heartbeat("n3", 1);
    assert_eq!(got[0].attempt, att(1, 2));
    ok(&s);
}

#[test]
fn apps_need_a_known_queue_and_a_fresh_id() {
    let mut s = cluster(config());
    assert_eq!(s.add_app(AppId(1), "nope", "u"), Err(Error::UnknownQueue("nope".into())));
    s.add_app(AppId(1), "default", "u").unwrap();
    assert_eq!(s.add_app(AppId(1), "default", "u"), Err(Error::DuplicateApp(AppId(1))));
    assert_eq!(s.app(AppId(1)), Some(("default", "u")));
}

#[test]
fn node_capacity_cannot_shrink_below_use() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[any(20, 3)]).unwrap();
    s.on_node_heartbeat("n1", 0);
    let small = Resources::new(2048, 8);
    assert!(matches!(s.set_node("n1", "/r1", small, true), Err(Error::CapacityBelowUse { .. })));
    s.set_node("n1", "/r3", Resources::new(7168, 4), true).unwrap();
    assert_eq!(s.rack_of("n1"), Some("/r3"));
    assert_eq!(s.node_free("n1"), Some(Resources::ZERO));
    ok(&s);
}

#[test]
fn heartbeats_allocate_a_bounded_number() {
    let mut s = cluster(Config { max_allocations_per_heartbeat: 2, ..config() });
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[any(20, 8)]).unwrap();
    assert_eq!(s.on_node_heartbeat("n2", 0).len(), 2);
}

#[test]
fn expand_adds_up_rows_like_amrmclient() {
    let racks = |n: &str| Some(if n <= "n2" { "/r1" } else { "/r2" }.to_string());
    let req = |nodes: &[&str], count| ContainerRequest {
        priority: 20,
        resources: TASK,
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        racks: vec![],
        relax_locality: true,
        count,
    };
    let asks = expand(&[req(&["n1", "n3"], 1), req(&["n1", "n2"], 2), req(&[], 4)], racks);
    let rows: Vec<(Location, u32)> = asks.iter().map(|a| (a.location.clone(), a.count)).collect();
    assert_eq!(
        rows,
        vec![(node("n1"), 3), (node("n2"), 2), (node("n3"), 1), (rack("/r1"), 3), (rack("/r2"), 1), (Location::Any, 7)]
    );
}

#[test]
fn a_violated_rule_is_reported_by_check_invariants() {
    let mut s = cluster(config());
    let a = start(&mut s, 1, "default", "n1");
    s.update_asks(a, &[any(20, 1)]).unwrap();
    // Corrupt the bookkeeping by hand: the check must notice.
    s.nodes.get_mut("n1").unwrap().used += TASK;
    assert!(s.check_invariants().is_err());
}
