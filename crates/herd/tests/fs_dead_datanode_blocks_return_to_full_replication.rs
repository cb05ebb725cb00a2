//! Guarantee: when a DataNode dies and stays dead, every block it held returns to full
//! replication from the survivors, highest risk first (blocks left with one live replica are
//! copied before blocks left with two), and every file reads back identical.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::dfs::{bytes, strip_ansi, wait_for, DfsCluster};
use dfs_client::{CreateOptions, Dfs};

const MIB: usize = 1 << 20;

#[test]
fn a_dead_datanodes_blocks_are_copied_back_highest_risk_first() {
    let mut c = DfsCluster::start(4, &[], &[]);
    let dfs = Dfs::connect(&c.namenode_addr, "herd").expect("connect");
    // Two files of 6 one-MiB blocks: replication 2 (one replica left after a death) and 3
    // (two left).
    let mut files = Vec::new();
    for (path, replication, seed) in [("/risk/r2", 2u16, 2u64), ("/risk/r3", 3, 3)] {
        let data = bytes(6 * MIB, seed);
        let opts = CreateOptions { replication: Some(replication), block_size: Some(MIB as u64), ..Default::default() };
        let mut w = dfs.create(path, opts).expect("create");
        w.write_all(&data).expect("write");
        w.close().expect("close");
        files.push((path, replication, data));
    }
    c.wait_healthy("/risk", Duration::from_secs(60));

    // The victim: the DataNode holding the most replicas of the replication-2 file.
    let located = |path: &str| dfs.block_locations(path, 0, u64::MAX >> 1).expect("locations").blocks;
    let mut holds = [0usize; 5];
    for lb in located("/risk/r2") {
        for l in &lb.locations {
            holds[l.id.parse::<usize>().expect("numeric id")] += 1;
        }
    }
    let victim = (1..=4).max_by_key(|i| holds[*i]).expect("a victim");
    assert!(holds[victim] > 0);
    let lost = |path: &str| -> Vec<u64> {
        located(path)
            .iter()
            .filter(|lb| lb.locations.iter().any(|l| l.id == victim.to_string()))
            .map(|lb| lb.block.id)
            .collect()
    };
    let (lost_r2, lost_r3) = (lost("/risk/r2"), lost("/risk/r3"));

    let t0 = Instant::now();
    c.kill9_datanode(victim);
    let nn_log = || strip_ansi(&c.namenode.as_ref().expect("namenode").log());
    let left = format!("datanode left the view datanode={victim} ");
    wait_for(Duration::from_secs(30), || nn_log().contains(&left), || format!("{left:?} in the namenode log"));
    let noticed = t0.elapsed();
    let fsck = c.wait_healthy("/risk", Duration::from_secs(60));
    let took = t0.elapsed();
    eprintln!(
        "datanode {victim} killed: noticed in {noticed:?}; {} + {} blocks back to full replication {:?} after the view change ({took:?} after the kill)",
        lost_r2.len(),
        lost_r3.len(),
        took - noticed
    );
    assert!(!fsck.contains(&format!("datanode {victim} ")), "no replica on the dead node is counted:\n{fsck}");

    // Order of the copies: each monitor tick schedules in priority order, so within a tick
    // every block left with one live replica comes before any block left with two. (A block
    // whose only source is at its transfer bound waits for a later tick.)
    let log = strip_ansi(&c.namenode.as_ref().expect("namenode").log());
    let scheduled: Vec<(f64, u64)> = log
        .lines()
        .filter(|l| l.contains("replication scheduled"))
        .filter_map(|l| {
            // `2026-11-22T09:38:04.084819Z  INFO ...`: seconds within the day are enough.
            let time = l.split_whitespace().next()?.split('T').nth(1)?.trim_end_matches('Z');
            let mut hms = time.split(':');
            let (h, m, sec): (f64, f64, f64) =
                (hms.next()?.parse().ok()?, hms.next()?.parse().ok()?, hms.next()?.parse().ok()?);
            let block = l.split("block=").nth(1)?.split_whitespace().next()?.parse().ok()?;
            Some((h * 3600.0 + m * 60.0 + sec, block))
        })
        .filter(|(_, b)| lost_r2.contains(b) || lost_r3.contains(b))
        .collect();
    let mut ticks: Vec<Vec<u64>> = Vec::new();
    let mut last_time = f64::MIN;
    for (t, b) in &scheduled {
        if t - last_time > 0.05 {
            ticks.push(Vec::new());
        }
        last_time = *t;
        ticks.last_mut().expect("a tick").push(*b);
    }
    assert!(
        ticks.first().and_then(|t| t.first()).is_some_and(|b| lost_r2.contains(b)),
        "the first copy is of a block with one live replica: {ticks:?}"
    );
    for tick in &ticks {
        let last_r2 = tick.iter().rposition(|b| lost_r2.contains(b));
        let first_r3 = tick.iter().position(|b| lost_r3.contains(b));
        if let (Some(a), Some(b)) = (last_r2, first_r3) {
            assert!(a < b, "within a tick, a block with one live replica came after one with two: {ticks:?} (r2 {lost_r2:?}, r3 {lost_r3:?})");
        }
    }
    let all: Vec<u64> = scheduled.iter().map(|(_, b)| *b).collect();
    for b in lost_r2.iter().chain(&lost_r3) {
        assert!(all.contains(b), "block {b} was never copied: {ticks:?}");
    }

    for (path, replication, data) in &files {
        for lb in located(path) {
            assert_eq!(lb.locations.len(), usize::from(*replication), "{path}: {lb:?}");
            assert!(lb.locations.iter().all(|l| l.id != victim.to_string()));
        }
        let mut back = Vec::new();
        dfs.open(path).expect("open").read_to_end(&mut back).expect("read");
        assert!(back == *data, "{path} reads back identical");
    }
}
