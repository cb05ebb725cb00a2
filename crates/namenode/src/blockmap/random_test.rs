//! Random event histories: after every event the map's invariants hold, and every command a
//! tick emits names only DataNodes in the view, never a corrupt source, and never a second
//! copy in flight of one block to one target. A failure prints its seed; rerun one seed with
//! `NAMENODE_SEED=<seed>`.

use super::*;

use crate::test_rng::Rng;

const NODES: u64 = 7;
const BLOCKS: u64 = 12;

/// Returns how many transfers and invalidations the history emitted.
fn run(seed: u64) -> (usize, usize) {
    let mut rng = Rng(seed);
    let cfg = Config {
        max_transfers_per_source: 2,
        max_targets_per_tick: 6,
        pending_timeout: Duration::from_secs(10),
        min_free_bytes: 10,
    };
    let mut m = BlockMap::new(cfg);
    let mut incarnation = [0i64; NODES as usize];
    let mut gs = [1u64; BLOCKS as usize];
    let start = Instant::now();
    let mut now_s = 0u64;
    let mut transfers_seen: Vec<(u64, String, Vec<String>)> = Vec::new();
    let mut invalidations = 0;
    for step in 0..400 {
        let n = rng.below(NODES);
        let id = format!("dn{n}");
        let b = rng.below(BLOCKS);
        let inc = incarnation[n as usize];
        match rng.below(12) {
            0 => {
                incarnation[n as usize] += 1;
                let rack = format!("/r{}", n % 3);
                m.datanode_joined(&id, incarnation[n as usize], &rack, 1000, 10 + rng.below(1000));
            }
            1 => {
                m.datanode_left(&id, inc);
            }
            2 => {
                let r = 1 + rng.below(4) as u16;
                m.set_block(Block { id: b, gs: gs[b as usize], len: 100 }, r, rng.below(5) == 0);
            }
            3 if rng.below(4) == 0 => {
                gs[b as usize] += 1;
                m.set_block(Block { id: b, gs: gs[b as usize], len: 100 }, 3, false);
            }
            4 if rng.below(6) == 0 => m.remove_block(b),
            5 => {
                let g = gs[b as usize].saturating_sub(rng.below(2));
                let state = if rng.below(5) == 0 { ReplicaState::Rbw } else { ReplicaState::Finalized };
                let _ = m.incremental(&id, inc, &[ReportedReplica { id: b, gs: g, len: 100, state }], &[]);
            }
            6 => {
                let _ = m.incremental(&id, inc, &[], &[b]);
            }
            7 => {
                m.report_corrupt(b, &id);
            }
            8 => {
                let _ = m.heartbeat(&id, inc, rng.below(1000), rng.below(4) as u32);
            }
            9 => {
                // Some transfer completes (or a stale report of it arrives).
                if let Some((blk, _, targets)) = transfers_seen.get(rng.below(transfers_seen.len() as u64 + 1) as usize)
                {
                    let t = &targets[rng.below(targets.len() as u64) as usize];
                    let ti = t[2..].parse::<usize>().unwrap();
                    let r =
                        ReportedReplica { id: *blk, gs: gs[*blk as usize], len: 100, state: ReplicaState::Finalized };
                    let _ = m.incremental(t, incarnation[ti], &[r], &[]);
                }
            }
            10 => {
                if rng.below(10) == 0 {
                    let _ = m.decommission(&id);
                }
            }
            _ => {
                now_s += rng.below(6);
                let now = start + Duration::from_secs(now_s);
                let cmds = m.tick(now);
                for c in &cmds {
                    match c {
                        Command::Transfer { block, source, targets } => {
                            assert!(m.is_live_datanode(source), "seed {seed} step {step}: dead source in {c:?}");
                            assert!(!m.is_corrupt(block.id, source), "seed {seed} step {step}: corrupt source {c:?}");
                            assert!(!targets.is_empty());
                            for t in targets {
                                assert!(m.is_live_datanode(t), "seed {seed} step {step}: dead target in {c:?}");
                                assert_ne!(t, source);
                            }
                            transfers_seen.push((block.id, source.clone(), targets.clone()));
                        }
                        Command::Invalidate { datanode, blocks } => {
                            assert!(m.is_live_datanode(datanode), "seed {seed} step {step}: dead node in {c:?}");
                            assert!(!blocks.is_empty());
                            invalidations += 1;
                        }
                    }
                }
            }
        }
        if let Err(e) = m.check_invariants() {
            panic!("seed {seed} step {step}: {e}");
        }
    }
    (transfers_seen.len(), invalidations)
}

#[test]
fn random_histories_keep_the_invariants() {
    if let Some(seed) = std::env::var("NAMENODE_SEED").ok().and_then(|s| s.parse().ok()) {
        run(seed);
        return;
    }
    let (mut transfers, mut invalidations) = (0, 0);
    for seed in 0..200 {
        let (t, i) = run(seed);
        transfers += t;
        invalidations += i;
    }
    // The histories exercise the monitor, not only the bookkeeping.
    assert!(transfers > 200 && invalidations > 200, "{transfers} transfers, {invalidations} invalidations");
}
