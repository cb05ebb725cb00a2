//! Target choice, rack-aware as HDFS's default policy: the first replica local to the writer,
//! the second on another rack, the third on the second's rack, more spread over the racks
//! holding the fewest. Ties break by most free space, then smallest id, so the same state
//! always gives the same targets.

use std::collections::{BTreeMap, BTreeSet};

use super::BlockMap;

/// Who writes the block: a DataNode (its replica is the first), or a client on a known rack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    Datanode(String),
    Rack(String),
}

impl BlockMap {
    /// Chooses up to `n` new targets for a block whose good replicas are on `existing` (in
    /// order: the rack rule counts them as the first replicas). Skips DataNodes that are
    /// decommissioning, `excluded`, already holding a replica, or below the free-space floor.
    /// Returns fewer when the cluster has no more candidates.
    pub fn choose_targets(
        &self,
        writer: Option<&Writer>,
        n: usize,
        excluded: &BTreeSet<String>,
        existing: &[String],
    ) -> Vec<String> {
        // Candidates, best first: most free space, then smallest id.
        let mut cands: Vec<&str> = self
            .datanodes
            .iter()
            .filter(|(id, d)| {
                !d.decommissioning
                    && d.free >= self.config.min_free_bytes
                    && !excluded.contains(id.as_str())
                    && !existing.iter().any(|e| e == *id)
            })
            .map(|(id, _)| id.as_str())
            .collect();
        cands.sort_by_key(|id| (std::cmp::Reverse(self.datanodes[*id].free), *id));

        // Racks of the replicas so far, in order (existing ones the map no longer knows are skipped).
        let mut racks: Vec<&str> =
            existing.iter().filter_map(|e| self.datanodes.get(e)).map(|d| d.rack.as_str()).collect();
        let mut chosen: Vec<String> = Vec::new();
        while chosen.len() < n {
            let free: Vec<&str> = cands.iter().copied().filter(|c| !chosen.iter().any(|x| x == c)).collect();
            let rack = |id: &str| self.datanodes[id].rack.as_str();
            let best_on = |pred: &dyn Fn(&str) -> bool| free.iter().copied().find(|c| pred(rack(c)));
            let pick = match racks.len() {
                0 => match writer {
                    Some(Writer::Datanode(w)) if free.contains(&w.as_str()) => Some(w.as_str()),
                    Some(Writer::Datanode(w)) => match self.datanodes.get(w) {
                        Some(d) => best_on(&|r| r == d.rack),
                        None => None,
                    },
                    Some(Writer::Rack(r)) => best_on(&|x| x == r),
                    None => None,
                },
                1 => best_on(&|r| r != racks[0]),
                2 if racks[0] != racks[1] => best_on(&|r| r == racks[1]),
                2 => best_on(&|r| r != racks[0]),
                _ => {
                    let mut per_rack: BTreeMap<&str, usize> = BTreeMap::new();
                    for r in &racks {
                        *per_rack.entry(r).or_default() += 1;
                    }
                    // min_by_key returns the first minimum: free-space order within a rack load.
                    free.iter().copied().min_by_key(|c| per_rack.get(rack(c)).copied().unwrap_or(0))
                }
            };
            let Some(pick) = pick.or_else(|| free.first().copied()) else { break };
            racks.push(rack(pick));
            chosen.push(pick.to_string());
        }
        chosen
    }
}
