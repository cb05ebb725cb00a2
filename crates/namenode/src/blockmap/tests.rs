//! The block map's behaviour, asserted through the commands `tick` emits.

use super::*;

const GB: u64 = 1 << 30;

fn t0() -> Instant {
    Instant::now()
}

fn fin(id: u64, gs: u64, len: u64) -> ReportedReplica {
    ReportedReplica { id, gs, len, state: ReplicaState::Finalized }
}

fn blk(id: u64) -> Block {
    Block { id, gs: 1, len: 100 }
}

/// 2 racks x 3 nodes: dn1..dn3 on /r1, dn4..dn6 on /r2; dnN has N GB free unless given.
fn cluster(config: Config) -> BlockMap {
    let mut m = BlockMap::new(config);
    for i in 1..=6 {
        let rack = if i <= 3 { "/r1" } else { "/r2" };
        m.datanode_joined(&format!("dn{i}"), 1, rack, 100 * GB, i * GB);
    }
    m
}

/// Sets block `id` (gs 1, len 100) complete with `replication`, held by `holders`.
fn place(m: &mut BlockMap, id: u64, replication: u16, holders: &[&str]) {
    m.set_block(blk(id), replication, false);
    for h in holders {
        m.incremental(h, 1, &[fin(id, 1, 100)], &[]).unwrap();
    }
}

fn transfers(cmds: &[Command]) -> Vec<(u64, String, Vec<String>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Transfer { block, source, targets } => Some((block.id, source.clone(), targets.clone())),
            _ => None,
        })
        .collect()
}

fn invalidates(cmds: &[Command]) -> Vec<(String, Vec<u64>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Invalidate { datanode, blocks } => Some((datanode.clone(), blocks.iter().map(|b| b.id).collect())),
            _ => None,
        })
        .collect()
}

fn s(x: &[&str]) -> Vec<String> {
    x.iter().map(|v| v.to_string()).collect()
}

#[test]
fn healthy_cluster_emits_nothing() {
    let mut m = cluster(Config::default());
    place(&mut m, 1, 3, &["dn1", "dn4", "dn5"]);
    assert_eq!(m.tick(t0()), vec![]);
    assert_eq!(m.health(1).unwrap().state, BlockState::Healthy);
    assert_eq!(m.stats(), BlockStats { blocks: 1, ..BlockStats::default() });
}

#[test]
fn datanode_leaving_schedules_highest_risk_first() {
    let mut m = cluster(Config { min_free_bytes: 0, ..Config::default() });
    // Block 1 keeps two live replicas, block 2 one: block 2 goes first despite its larger id.
    place(&mut m, 1, 3, &["dn1", "dn4", "dn5"]);
    place(&mut m, 2, 3, &["dn1", "dn2", "dn6"]);
    assert!(m.datanode_left("dn1", 1));
    assert!(m.datanode_left("dn2", 1));
    assert_eq!(m.health(2).unwrap().state, BlockState::UnderReplicated);
    assert_eq!(m.stats().under_replicated, 2);
    let cmds = m.tick(t0());
    let t = transfers(&cmds);
    assert_eq!(t.len(), 2, "{cmds:?}");
    assert_eq!(t[0].0, 2);
    assert_eq!(t[0].1, "dn6");
    // Two targets for block 2: the second replica on the other rack (/r1: dn3 is its only
    // node), the third on that rack too being impossible, so back on /r2 (dn5, more free).
    assert_eq!(t[0].2, s(&["dn3", "dn5"]));
    assert_eq!(t[1].0, 1);
    assert_eq!(t[1].2, s(&["dn3"]), "block 1's live replicas are on /r2: the new one on /r1");
    assert!(invalidates(&cmds).is_empty());
    assert_eq!(m.health(1).unwrap().state, BlockState::Pending);
    assert_eq!(m.stats().pending, 2);
    // Nothing more while the copies are in flight.
    assert!(transfers(&m.tick(t0())).is_empty());
}

#[test]
fn confirmed_copies_become_live_and_unconfirmed_are_rescheduled() {
    let cfg = Config { pending_timeout: Duration::from_secs(10), ..Config::default() };
    let mut m = cluster(cfg);
    place(&mut m, 1, 2, &["dn1", "dn4"]);
    place(&mut m, 2, 2, &["dn2", "dn5"]);
    m.datanode_left("dn4", 1);
    m.datanode_left("dn5", 1);
    let now = t0();
    let t = transfers(&m.tick(now));
    assert_eq!(t, vec![(1, "dn1".into(), s(&["dn6"])), (2, "dn2".into(), s(&["dn6"]))]);
    // Block 1's copy is confirmed; block 2's never is.
    m.incremental("dn6", 1, &[fin(1, 1, 100)], &[]).unwrap();
    let h = m.health(1).unwrap();
    assert_eq!((h.state, h.live, h.pending), (BlockState::Healthy, 2, 0));
    assert_eq!(m.health(2).unwrap().state, BlockState::Pending);
    assert!(m.tick(now + Duration::from_secs(9)).is_empty());
    let t = transfers(&m.tick(now + Duration::from_secs(10)));
    assert_eq!(t, vec![(2, "dn2".into(), s(&["dn6"]))], "rescheduled after the time-out");
}

#[test]
fn excess_replicas_after_a_return_are_invalidated_placement_aware() {
    let mut m = cluster(Config { min_free_bytes: 0, ..Config::default() });
    place(&mut m, 1, 3, &["dn1", "dn2", "dn4"]);
    m.datanode_left("dn2", 1);
    let t = transfers(&m.tick(t0()));
    assert_eq!(t.len(), 1);
    let target = t[0].2[0].clone();
    m.incremental(&target, 1, &[fin(1, 1, 100)], &[]).unwrap();
    // dn2 returns with its old replica: four live, one too many.
    m.datanode_joined("dn2", 2, "/r1", 100 * GB, 2 * GB);
    m.block_report("dn2", 2, &[fin(1, 1, 100)]).unwrap();
    assert_eq!(m.health(1).unwrap().live, 4);
    let cmds = m.tick(t0());
    assert!(transfers(&cmds).is_empty());
    // Racks: /r1 {dn1, dn2}, /r2 {dn4, target}; all tie at two, so the least free: dn1 (1 GB).
    assert_eq!(invalidates(&cmds), vec![("dn1".to_string(), vec![1])]);
    assert_eq!(m.health(1).unwrap().live, 3);
}

#[test]
fn excess_prefers_the_rack_with_most_replicas() {
    let mut m = cluster(Config::default());
    place(&mut m, 1, 2, &["dn3", "dn4", "dn6"]);
    // /r2 holds two; within it dn4 has less free space than dn6.
    assert_eq!(invalidates(&m.tick(t0())), vec![("dn4".to_string(), vec![1])]);
}

#[test]
fn corrupt_replica_is_never_a_source_and_deleted_once_fully_replicated() {
    let mut m = cluster(Config { min_free_bytes: 0, ..Config::default() });
    place(&mut m, 1, 3, &["dn1", "dn2", "dn4"]);
    // dn1 is the least busy, but it is corrupt.
    m.heartbeat("dn2", 1, 2 * GB, 3).unwrap();
    assert!(m.report_corrupt(1, "dn1"));
    let cmds = m.tick(t0());
    let t = transfers(&cmds);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].1, "dn4", "dn1 is corrupt, dn2 busier");
    assert!(invalidates(&cmds).is_empty(), "not deleted before the block has its full count");
    let target = t[0].2[0].clone();
    m.incremental(&target, 1, &[fin(1, 1, 100)], &[]).unwrap();
    let cmds = m.tick(t0());
    assert_eq!(invalidates(&cmds), vec![("dn1".to_string(), vec![1])]);
    assert!(m.health(1).unwrap().locations.iter().all(|l| !l.corrupt));
}

#[test]
fn unfinished_replica_of_a_complete_block_goes_and_its_node_gets_a_copy() {
    // dn3 died before the block's last packet and came back with its replica still rbw: it
    // will never be finalized, and while it is there dn3 is no target for the copy.
    let mut m = BlockMap::new(Config { min_free_bytes: 0, ..Config::default() });
    for i in 1..=3 {
        m.datanode_joined(&format!("dn{i}"), 1, "/r1", 100 * GB, GB);
    }
    place(&mut m, 1, 3, &["dn1", "dn2"]);
    let rbw = ReportedReplica { id: 1, gs: 1, len: 60, state: ReplicaState::Rbw };
    m.block_report("dn3", 1, &[rbw]).unwrap();
    let cmds = m.tick(t0());
    assert_eq!(invalidates(&cmds), vec![("dn3".to_string(), vec![1])]);
    assert_eq!(transfers(&cmds), vec![]);
    m.incremental("dn3", 1, &[], &[1]).unwrap();
    let cmds = m.tick(t0());
    assert_eq!(transfers(&cmds).iter().map(|t| t.2.clone()).collect::<Vec<_>>(), vec![s(&["dn3"])]);
    // The same for a replica at an older stamp (its DataNode missed a pipeline recovery): no
    // copy goes to its node in the tick that deletes it.
    place(&mut m, 3, 3, &["dn1", "dn2"]);
    m.block_report("dn3", 1, &[fin(1, 1, 100), fin(3, 0, 100)]).unwrap();
    let cmds = m.tick(t0());
    assert!(invalidates(&cmds).contains(&("dn3".to_string(), vec![3])), "{cmds:?}");
    assert!(transfers(&cmds).iter().all(|t| t.0 != 3), "{cmds:?}");
    m.incremental("dn3", 1, &[], &[3]).unwrap();
    assert!(transfers(&m.tick(t0())).iter().any(|t| t.0 == 3 && t.2 == s(&["dn3"])));
    // A replica still being written that an incremental report announced is finishing: it is
    // neither deleted nor copied around for a while, then treated as an orphan.
    place(&mut m, 4, 3, &["dn1", "dn2"]);
    m.incremental("dn3", 1, &[ReportedReplica { id: 4, gs: 1, len: 100, state: ReplicaState::Rbw }], &[]).unwrap();
    let t = t0();
    let cmds = m.tick(t);
    assert!(invalidates(&cmds).iter().all(|(_, b)| !b.contains(&4)), "{cmds:?}");
    assert!(transfers(&cmds).iter().all(|x| x.0 != 4), "{cmds:?}");
    let later = t + Config::default().pending_timeout;
    assert!(invalidates(&m.tick(later)).contains(&("dn3".to_string(), vec![4])));
    // But an rbw replica that is all a block has is kept.
    place(&mut m, 2, 3, &[]);
    m.incremental("dn1", 1, &[ReportedReplica { id: 2, gs: 1, len: 100, state: ReplicaState::Rbw }], &[]).unwrap();
    assert!(invalidates(&m.tick(t0())).iter().all(|(_, b)| !b.contains(&2)));
    m.check_invariants().unwrap();
}

#[test]
fn corrupt_replica_gives_up_its_node_when_no_other_target_exists() {
    // Three DataNodes, replication 3, one replica corrupt: the only target for a good copy is
    // the node holding the corrupt one. It is deleted first; the node is a target again only
    // once it reports the deletion.
    let mut m = BlockMap::new(Config { min_free_bytes: 0, ..Config::default() });
    for i in 1..=3 {
        m.datanode_joined(&format!("dn{i}"), 1, "/r1", 100 * GB, GB);
    }
    place(&mut m, 1, 3, &["dn1", "dn2", "dn3"]);
    assert!(m.report_corrupt(1, "dn2"));
    let cmds = m.tick(t0());
    assert_eq!(transfers(&cmds), vec![]);
    assert_eq!(invalidates(&cmds), vec![("dn2".to_string(), vec![1])]);
    assert_eq!(m.tick(t0()), vec![], "no copy to dn2 while its old replica may still be there");
    m.incremental("dn2", 1, &[], &[1]).unwrap();
    let cmds = m.tick(t0());
    assert_eq!(transfers(&cmds).iter().map(|t| t.2.clone()).collect::<Vec<_>>(), vec![s(&["dn2"])]);
    m.incremental("dn2", 1, &[fin(1, 1, 100)], &[]).unwrap();
    assert_eq!(m.health(1).unwrap().state, BlockState::Healthy);
    m.check_invariants().unwrap();
}

#[test]
fn only_corrupt_replicas_make_a_corrupt_block_with_no_copy() {
    let mut m = cluster(Config::default());
    place(&mut m, 1, 2, &["dn1", "dn4"]);
    m.report_corrupt(1, "dn1");
    m.report_corrupt(1, "dn4");
    assert_eq!(m.health(1).unwrap().state, BlockState::Corrupt);
    assert_eq!(m.tick(t0()), vec![], "no source, and the corrupt copies are all there is");
    assert_eq!(m.stats().corrupt, 1);
}

#[test]
fn wrong_length_replica_is_corrupt() {
    let mut m = cluster(Config::default());
    place(&mut m, 1, 2, &["dn1"]);
    m.incremental("dn4", 1, &[fin(1, 1, 99)], &[]).unwrap();
    assert!(m.is_corrupt(1, "dn4"));
}

#[test]
fn stale_generation_stamps_are_invalidated_at_once() {
    let mut m = cluster(Config::default());
    m.set_block(Block { id: 1, gs: 5, len: 100 }, 2, false);
    m.block_report("dn1", 1, &[fin(1, 5, 100)]).unwrap();
    m.block_report("dn4", 1, &[fin(1, 3, 100)]).unwrap();
    let h = m.health(1).unwrap();
    assert_eq!(h.live, 1);
    assert_eq!(h.locations.len(), 1, "the stale replica is not recorded");
    let cmds = m.tick(t0());
    assert_eq!(invalidates(&cmds), vec![("dn4".to_string(), vec![1])]);
    let Some(Command::Invalidate { blocks, .. }) = cmds.iter().find(|c| matches!(c, Command::Invalidate { .. })) else {
        unreachable!()
    };
    assert_eq!(blocks[0].gs, 3, "names the stale replica's own stamp");
    // A recovery bumps the stamp of a complete block: the old replicas go.
    m.set_block(Block { id: 1, gs: 6, len: 100 }, 2, false);
    assert_eq!(invalidates(&m.tick(t0())), vec![("dn1".to_string(), vec![1])]);
    assert_eq!(m.health(1).unwrap().state, BlockState::Missing);
}

#[test]
fn under_construction_blocks_are_left_alone() {
    let mut m = cluster(Config::default());
    m.set_block(Block { id: 1, gs: 2, len: 0 }, 3, true);
    m.incremental("dn1", 1, &[ReportedReplica { id: 1, gs: 1, len: 10, state: ReplicaState::Rbw }], &[]).unwrap();
    assert_eq!(m.tick(t0()), vec![]);
    assert_eq!(m.stats().under_construction, 1);
    // Completed: the old-stamp replica goes, the block is missing until good ones report.
    m.set_block(Block { id: 1, gs: 2, len: 100 }, 3, false);
    assert_eq!(invalidates(&m.tick(t0())), vec![("dn1".to_string(), vec![1])]);
}

#[test]
fn removed_and_unknown_blocks_are_invalidated() {
    let mut m = cluster(Config::default());
    place(&mut m, 1, 2, &["dn1", "dn4"]);
    m.remove_block(1);
    m.incremental("dn2", 1, &[fin(9, 1, 100)], &[]).unwrap();
    assert_eq!(
        invalidates(&m.tick(t0())),
        vec![("dn1".to_string(), vec![1]), ("dn2".to_string(), vec![9]), ("dn4".to_string(), vec![1])]
    );
    m.check_invariants().unwrap();
}

#[test]
fn stale_incarnations_are_refused() {
    let mut m = cluster(Config::default());
    let stale = |r: Result<(), Error>| matches!(r, Err(Error::StaleIncarnation { .. }));
    assert!(stale(m.heartbeat("dn1", 0, GB, 0)));
    assert!(stale(m.block_report("dn1", 2, &[])));
    assert!(stale(m.incremental("dn7", 1, &[], &[])));
    assert!(m.heartbeat("dn1", 1, GB, 0).is_ok());
    // An old incarnation leaving after the new one joined changes nothing.
    m.datanode_joined("dn1", 2, "/r1", 100 * GB, GB);
    assert!(!m.datanode_left("dn1", 1));
    assert!(stale(m.heartbeat("dn1", 1, GB, 0)));
    assert_eq!(
        m.heartbeat("dn1", 1, GB, 0),
        Err(Error::StaleIncarnation { id: "dn1".into(), incarnation: 1, current: Some(2) })
    );
    assert!(m.datanode_left("dn1", 2));
    assert!(stale(m.heartbeat("dn1", 2, GB, 0)));
}

#[test]
fn placement_follows_the_rack_rule() {
    let mut m = cluster(Config::default());
    let none = BTreeSet::new();
    // Writer dn2 on /r1: dn2, then the other rack's best (dn6), then dn6's rack (dn5).
    let w = Writer::Datanode("dn2".into());
    assert_eq!(m.choose_targets(Some(&w), 3, &none, &[]), s(&["dn2", "dn6", "dn5"]));
    // More replicas spread: the fourth goes to the rack holding fewer (/r1).
    assert_eq!(m.choose_targets(Some(&w), 4, &none, &[]), s(&["dn2", "dn6", "dn5", "dn3"]));
    // A client on /r2 with no DataNode: the first on /r2, the second on /r1.
    let w = Writer::Rack("/r2".into());
    assert_eq!(m.choose_targets(Some(&w), 3, &none, &[]), s(&["dn6", "dn3", "dn2"]));
    // Excluded and decommissioning nodes are skipped.
    m.decommission("dn6").unwrap();
    let excluded: BTreeSet<String> = ["dn3".to_string()].into();
    let w = Writer::Datanode("dn1".into());
    assert_eq!(m.choose_targets(Some(&w), 3, &excluded, &[]), s(&["dn1", "dn5", "dn4"]));
    // Existing replicas count as the first ones: one on /r2 → the next on /r1, then /r1 again.
    assert_eq!(m.choose_targets(None, 2, &none, &s(&["dn4"])), s(&["dn3", "dn2"]));
    // Full nodes are skipped (min_free_bytes is 128 MiB).
    m.heartbeat("dn5", 1, 1, 0).unwrap();
    assert_eq!(m.choose_targets(None, 1, &none, &s(&["dn1"])), s(&["dn4"]));
    // Not enough nodes: fewer targets.
    assert_eq!(m.choose_targets(None, 9, &none, &[]).len(), 4);
}

#[test]
fn single_rack_spreads_over_nodes() {
    let mut m = BlockMap::new(Config { min_free_bytes: 0, ..Config::default() });
    for i in 1..=4 {
        m.datanode_joined(&format!("dn{i}"), 1, "/default-rack", 100, 10 * i);
    }
    let w = Writer::Datanode("dn1".into());
    assert_eq!(m.choose_targets(Some(&w), 3, &BTreeSet::new(), &[]), s(&["dn1", "dn4", "dn3"]));
}

#[test]
fn decommissioning_drains_then_is_done() {
    let mut m = cluster(Config::default());
    place(&mut m, 1, 2, &["dn1", "dn4"]);
    place(&mut m, 2, 1, &["dn1"]);
    assert!(m.decommission_done("dn1").unwrap(), "holds nothing under-replicated yet");
    m.decommission("dn1").unwrap();
    assert!(!m.decommission_done("dn1").unwrap());
    assert_eq!(m.health(2).unwrap().state, BlockState::UnderReplicated);
    let t = transfers(&m.tick(t0()));
    // Block 1 has one live replica (priority 0), block 2 only a decommissioning one (2).
    assert_eq!(t.len(), 2);
    // Sources tie on load (none busy), so the smaller id: dn1.
    assert_eq!((t[0].0, t[0].1.as_str()), (1, "dn1"));
    assert_eq!((t[1].0, t[1].1.as_str()), (2, "dn1"), "a decommissioning replica is still a source");
    assert!(t.iter().all(|(_, _, ts)| !ts.contains(&"dn1".to_string())));
    for (b, _, ts) in &t {
        m.incremental(&ts[0], 1, &[fin(*b, 1, 100)], &[]).unwrap();
    }
    assert!(m.decommission_done("dn1").unwrap());
    // Its replicas are not excess: they simply stop counting.
    assert!(m.tick(t0()).is_empty());
    assert_eq!(m.decommission("dn9"), Err(Error::UnknownDatanode("dn9".into())));
}

#[test]
fn per_source_and_per_tick_bounds() {
    let cfg = Config { max_transfers_per_source: 3, max_targets_per_tick: 100, ..Config::default() };
    let mut m = cluster(cfg);
    for b in 1..=10 {
        place(&mut m, b, 2, &["dn1"]);
    }
    let t = transfers(&m.tick(t0()));
    assert_eq!(t.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(t.iter().all(|x| x.1 == "dn1"));
    assert!(transfers(&m.tick(t0())).is_empty(), "dn1 is at its bound");
    // One copy confirmed frees one slot.
    let (b, _, ts) = &t[0];
    m.incremental(&ts[0], 1, &[fin(*b, 1, 100)], &[]).unwrap();
    let t = transfers(&m.tick(t0()));
    assert_eq!(t.iter().map(|x| x.0).collect::<Vec<_>>(), vec![4]);

    let cfg = Config { max_transfers_per_source: 100, max_targets_per_tick: 5, ..Config::default() };
    let mut m = cluster(cfg);
    for b in 1..=10 {
        place(&mut m, b, 3, &["dn1"]);
    }
    let t = transfers(&m.tick(t0()));
    // Two targets each: 2 + 2 + 1.
    assert_eq!(t.iter().map(|x| x.2.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
}
