//! `fsck PATH`: every file under PATH, block by block with its replicas and their states, then
//! Hadoop's summary and its last line, `The filesystem under path 'PATH' is HEALTHY` (exit 0)
//! or `... is CORRUPT` (exit 1).
//!
//! As in Hadoop: a block with no live (or decommissioning) replica is missing, or corrupt if
//! it has corrupt replicas; either makes the path CORRUPT. Fewer live replicas than expected
//! is listed as under-replicated and stays HEALTHY. Files open for writing are listed but not
//! judged (Hadoop skips them without -openforwrite): their last block has no finalized replica
//! yet.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dfs_client::{BlockHealth, FileKind, ReplicaHealthState};

use super::{child, format, Shell};

/// What one block's replicas say.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlockVerdict {
    pub live: usize,
    pub corrupt: usize,
    pub decommissioning: usize,
    pub stale: usize,
    pub expected: usize,
}

impl BlockVerdict {
    pub fn of(b: &BlockHealth) -> BlockVerdict {
        let count = |s| b.replicas.iter().filter(|r| r.state == s).count();
        BlockVerdict {
            live: count(ReplicaHealthState::Live),
            corrupt: count(ReplicaHealthState::Corrupt),
            decommissioning: count(ReplicaHealthState::Decommissioning),
            stale: count(ReplicaHealthState::Stale),
            expected: b.expected_replication as usize,
        }
    }

    /// No replica a reader can use.
    pub fn missing(&self) -> bool {
        self.live + self.decommissioning == 0
    }

    pub fn corrupt_block(&self) -> bool {
        self.missing() && self.corrupt > 0
    }

    pub fn under_replicated(&self) -> bool {
        !self.missing() && self.live < self.expected
    }
}

#[derive(Default)]
struct Totals {
    files: u64,
    dirs: u64,
    open_files: u64,
    size: u64,
    blocks: u64,
    missing: u64,
    corrupt: u64,
    under: u64,
    over: u64,
    missing_replicas: u64,
    replicas: u64,
    expected_replicas: u64,
}

pub(super) fn run(sh: &mut Shell, arg: &str) -> i32 {
    let started = Instant::now();
    let path = sh.abs(arg);
    println!("Connecting to namenode at {}", sh.namenode);
    println!("FSCK started by {} for path {path} at {}", sh.user, now());
    let root = match sh.dfs.status(&path) {
        Ok(Some(s)) => s,
        Ok(None) => {
            println!("FSCK ended at {} in {} milliseconds", now(), started.elapsed().as_millis());
            println!("FSCK failed: path {path} does not exist");
            sh.failed = true;
            return 1;
        }
        Err(e) => {
            sh.fail(arg, &e);
            return 1;
        }
    };
    let mut t = Totals::default();
    let mut stack = vec![(path.clone(), root)];
    while let Some((p, st)) = stack.pop() {
        if st.kind == FileKind::Dir {
            t.dirs += 1;
            match sh.dfs.list(&p) {
                Ok(entries) => {
                    // Reversed onto the stack: printed in name order.
                    for e in entries.into_iter().rev() {
                        stack.push((child(&p, &e.name), e));
                    }
                }
                Err(e) => sh.fail(&p, &e),
            }
            continue;
        }
        t.files += 1;
        t.size += st.length;
        let blocks = match sh.dfs.block_health(&p) {
            Ok(b) => b,
            Err(e) => {
                sh.fail(&p, &e);
                continue;
            }
        };
        let mut line =
            format!("{p} {} bytes, replicated: replication={}, {} block(s): ", st.length, st.replication, blocks.len());
        if st.under_construction {
            t.open_files += 1;
            println!("{line} OPENFORWRITE");
        }
        let mut problems = Vec::new();
        for b in &blocks {
            let v = BlockVerdict::of(b);
            if st.under_construction {
                continue;
            }
            t.blocks += 1;
            t.replicas += v.live as u64;
            t.expected_replicas += v.expected as u64;
            let name = format!("blk_{}_{}", b.block.id, b.block.gs);
            if v.corrupt_block() {
                t.corrupt += 1;
                problems.push(format!("CORRUPT block {name}"));
            } else if v.missing() {
                t.missing += 1;
                problems.push(format!("MISSING 1 blocks of total size {} B", b.block.len));
            } else if v.under_replicated() {
                t.under += 1;
                t.missing_replicas += (v.expected - v.live) as u64;
                problems.push(format!(
                    "Under replicated {name}. Target Replicas is {} but found {} live replica(s), {} decommissioned replica(s), {} decommissioning replica(s).",
                    v.expected, v.live, 0, v.decommissioning
                ));
            } else if v.live > v.expected {
                t.over += 1;
            }
        }
        if !st.under_construction {
            if problems.is_empty() {
                line.push_str(" OK");
                println!("{line}");
            } else {
                println!("{line}");
                for p in &problems {
                    println!("{p}");
                }
            }
        }
        for (i, b) in blocks.iter().enumerate() {
            let v = BlockVerdict::of(b);
            let replicas: Vec<String> = b
                .replicas
                .iter()
                .map(|r| format!("{}[{}, {:?}]", r.datanode.id, r.datanode.data_addr, r.state))
                .collect();
            println!(
                "{i}. blk_{}_{} len={} Live_repl={}  [{}]",
                b.block.id,
                b.block.gs,
                b.block.len,
                v.live,
                replicas.join(", ")
            );
        }
        println!();
    }
    let healthy = t.missing == 0 && t.corrupt == 0;
    let pct = |n: u64| if t.blocks == 0 { 0.0 } else { n as f64 * 100.0 / t.blocks as f64 };
    println!("Status: {}", if healthy { "HEALTHY" } else { "CORRUPT" });
    println!(" Total size:\t{} B", t.size);
    println!(" Total dirs:\t{}", t.dirs);
    println!(" Total files:\t{}", t.files);
    if t.open_files > 0 {
        println!(" Files open for write (not checked):\t{}", t.open_files);
    }
    let avg = t.size.checked_div(t.blocks).unwrap_or(0);
    println!(" Total blocks (validated):\t{} (avg. block size {avg} B)", t.blocks);
    println!(
        " Minimally replicated blocks:\t{} ({:.1} %)",
        t.blocks - t.missing - t.corrupt,
        pct(t.blocks - t.missing - t.corrupt)
    );
    println!(" Over-replicated blocks:\t{} ({:.1} %)", t.over, pct(t.over));
    println!(" Under-replicated blocks:\t{} ({:.1} %)", t.under, pct(t.under));
    let avg_repl = if t.blocks == 0 { 0.0 } else { t.replicas as f64 / t.blocks as f64 };
    println!(" Average block replication:\t{avg_repl:.1}");
    println!(" Missing blocks:\t\t{}", t.missing);
    println!(" Corrupt blocks:\t\t{}", t.corrupt);
    let mr_pct =
        if t.expected_replicas == 0 { 0.0 } else { t.missing_replicas as f64 * 100.0 / t.expected_replicas as f64 };
    println!(" Missing replicas:\t\t{} ({mr_pct:.1} %)", t.missing_replicas);
    println!("FSCK ended at {} in {} milliseconds", now(), started.elapsed().as_millis());
    println!();
    println!();
    println!("The filesystem under path '{path}' is {}", if healthy { "HEALTHY" } else { "CORRUPT" });
    if healthy && !sh.failed {
        0
    } else {
        1
    }
}

fn now() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let c = format::civil(ms, false);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_client::{DatanodeInfo, ExtendedBlock, ReplicaHealth};

    fn block(expected: u16, states: &[ReplicaHealthState]) -> BlockHealth {
        BlockHealth {
            block: ExtendedBlock { id: 1, gs: 1, len: 10 },
            expected_replication: expected,
            replicas: states
                .iter()
                .enumerate()
                .map(|(i, s)| ReplicaHealth {
                    datanode: DatanodeInfo {
                        id: format!("dn{i}"),
                        data_addr: String::new(),
                        http_addr: String::new(),
                        rack: String::new(),
                    },
                    state: *s,
                })
                .collect(),
        }
    }

    #[test]
    fn verdicts_as_hadoop() {
        use ReplicaHealthState::*;
        let v = BlockVerdict::of(&block(3, &[Live, Live, Live]));
        assert!(!v.missing() && !v.under_replicated() && !v.corrupt_block());
        let v = BlockVerdict::of(&block(3, &[Live, Stale]));
        assert!(v.under_replicated() && !v.missing());
        let v = BlockVerdict::of(&block(3, &[Corrupt, Corrupt]));
        assert!(v.missing() && v.corrupt_block());
        let v = BlockVerdict::of(&block(2, &[Stale]));
        assert!(v.missing() && !v.corrupt_block());
        let v = BlockVerdict::of(&block(2, &[]));
        assert!(v.missing());
        // A live copy beside a corrupt one: readable, under-replicated, not corrupt.
        let v = BlockVerdict::of(&block(2, &[Corrupt, Live]));
        assert!(!v.missing() && v.under_replicated() && !v.corrupt_block());
        let v = BlockVerdict::of(&block(1, &[Decommissioning]));
        assert!(!v.missing());
    }
}
