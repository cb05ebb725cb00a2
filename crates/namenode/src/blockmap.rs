//! The block map and replication monitor: which DataNode holds which replica, and what must be
//! copied or deleted so that every block has its expected number of good replicas.
//!
//! It is a pure state machine like the namespace, but it is *not* logged: it is rebuilt from
//! block reports. Events come in as method calls (membership changes, heartbeats, block
//! reports, corruption reports, and what the namespace says each block should be), and
//! [`BlockMap::tick`] returns the [`Command`]s the caller sends to DataNodes. Nothing here reads
//! a clock or a random generator: time is the caller's `now`, and every choice breaks ties by
//! free space and then id, so the same events give the same commands.
//!
//! The namespace is the owner of each block's generation stamp, length and replication; the
//! caller mirrors its changes with [`BlockMap::set_block`] and [`BlockMap::remove_block`]. A
//! replica is *good* when its DataNode is in the membership view, it is finalized at the
//! block's current generation stamp and it is not marked corrupt; good replicas on
//! decommissioning DataNodes may be copied from but do not count as *live*.
//!
//! Layout: this file holds the state and the events; `placement` chooses targets
//! (rack-aware); `tests` and `random_test` assert the commands emitted.

mod placement;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::namespace::Block;

pub use placement::Writer;

/// Bounds of the replication monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Transfers one DataNode may be the source of at once (HDFS
    /// `dfs.namenode.replication.max-streams`).
    pub max_transfers_per_source: usize,
    /// Target replicas scheduled by one [`BlockMap::tick`], over all blocks.
    pub max_targets_per_tick: usize,
    /// A copy not confirmed by the target within this is dropped and the block rescheduled.
    pub pending_timeout: Duration,
    /// A DataNode with fewer free bytes than this is full: never a target.
    pub min_free_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_transfers_per_source: 4,
            max_targets_per_tick: 64,
            pending_timeout: Duration::from_secs(10),
            min_free_bytes: 128 << 20,
        }
    }
}

/// A replica's state on its DataNode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReplicaState {
    Finalized,
    /// Being written (or was when the DataNode stopped).
    Rbw,
}

/// One replica as a DataNode reports it (mirrors `dfs_proto::dn_nn::ReportedReplica`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportedReplica {
    pub id: u64,
    pub gs: u64,
    pub len: u64,
    pub state: ReplicaState,
}

/// What the NameNode must tell a DataNode. The caller adds its epoch and the DataNodes'
/// addresses when it turns these into `dfs_proto::dn_nn::DatanodeCommand`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `source` copies its replica of `block` to `targets` (a pipeline, in order).
    Transfer { block: Block, source: String, targets: Vec<String> },
    /// `datanode` deletes these replicas (each named with the replica's own stamp and length).
    Invalidate { datanode: String, blocks: Vec<Block> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The DataNode's incarnation is not the one the membership view lists (`current`, if
    /// any): the caller tells it to register again and send a full block report.
    #[error("datanode {id}: incarnation {incarnation} is not the current one ({current:?})")]
    StaleIncarnation { id: String, incarnation: i64, current: Option<i64> },
    #[error("datanode {0} is not in the membership view")]
    UnknownDatanode(String),
}

/// A block's health, for fsck and the status counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockState {
    /// At least its expected replication of live replicas.
    Healthy,
    /// Below replication, with too few copies in flight to make it up.
    UnderReplicated,
    /// Below replication, but the copies in flight will make it up.
    Pending,
    /// No good replica; only corrupt ones.
    Corrupt,
    /// No replica at all.
    Missing,
    /// Still being written: the replication monitor leaves it alone.
    UnderConstruction,
}

/// One replica of a block, as fsck lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub datanode: String,
    pub rack: String,
    pub gs: u64,
    pub len: u64,
    pub state: ReplicaState,
    /// Counts towards replication.
    pub live: bool,
    pub corrupt: bool,
    pub decommissioning: bool,
}

/// [`BlockMap::health`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHealth {
    pub block: Block,
    pub replication: u16,
    pub state: BlockState,
    pub live: usize,
    /// Copies in flight.
    pub pending: usize,
    pub locations: Vec<Location>,
}

/// Counts of blocks by state, for status output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStats {
    pub blocks: usize,
    pub under_construction: usize,
    pub under_replicated: usize,
    pub pending: usize,
    pub corrupt: usize,
    pub missing: usize,
}

#[derive(Debug, Clone)]
struct Datanode {
    incarnation: i64,
    rack: String,
    capacity: u64,
    free: u64,
    active_transfers: u32,
    decommissioning: bool,
    /// Ids of the blocks it holds a recorded replica of.
    blocks: BTreeSet<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    gs: u64,
    len: u64,
    state: ReplicaState,
}

#[derive(Debug, Clone)]
struct Entry {
    /// As the namespace knows it: the current stamp and length.
    block: Block,
    replication: u16,
    under_construction: bool,
    replicas: BTreeMap<String, Stored>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    /// The copy's id: the targets of one Transfer share it.
    transfer: u64,
    source: String,
    target: String,
    deadline: Instant,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    live: usize,
    decommissioning: usize,
    corrupt: usize,
    pending: usize,
}

/// The block map. See the module documentation.
#[derive(Debug)]
pub struct BlockMap {
    config: Config,
    datanodes: BTreeMap<String, Datanode>,
    blocks: BTreeMap<u64, Entry>,
    /// (block id, DataNode id) of replicas reported corrupt.
    corrupt: BTreeSet<(u64, String)>,
    /// Copies in flight, per block.
    pending: BTreeMap<u64, Vec<Pending>>,
    next_transfer: u64,
    /// Replicas to delete at the next tick, per DataNode.
    invalidate: BTreeMap<String, BTreeSet<Block>>,
    /// (block id, DataNode id) of replicas ordered deleted and not yet reported gone: the
    /// DataNode is no target for that block until then (a copy would find the old replica).
    deleting: BTreeSet<(u64, String)>,
    /// (block id, DataNode id) of replicas a full block report listed as still being written:
    /// after a DataNode restart no writer can finish them.
    orphans: BTreeSet<(u64, String)>,
    /// Replicas still being written of blocks already complete, and when a tick first saw
    /// each: the writer sent the last packet and the node is finalizing (the client moves on
    /// to the next block meanwhile). They count as copies in flight for `pending_timeout`,
    /// then as orphans.
    finishing: BTreeMap<(u64, String), Instant>,
}

impl BlockMap {
    pub fn new(config: Config) -> Self {
        BlockMap {
            config,
            datanodes: BTreeMap::new(),
            blocks: BTreeMap::new(),
            corrupt: BTreeSet::new(),
            pending: BTreeMap::new(),
            next_transfer: 0,
            invalidate: BTreeMap::new(),
            deleting: BTreeSet::new(),
            orphans: BTreeSet::new(),
            finishing: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---- DataNodes ----

    /// A DataNode entered the membership view. A new incarnation of a known id replaces the old
    /// one and forgets its replicas (the DataNode sends a full block report after registering).
    pub fn datanode_joined(&mut self, id: &str, incarnation: i64, rack: &str, capacity: u64, free: u64) {
        if let Some(dn) = self.datanodes.get_mut(id) {
            if dn.incarnation == incarnation {
                dn.rack = rack.to_string();
                dn.capacity = capacity;
                dn.free = free;
                return;
            }
            self.drop_datanode(id);
        }
        let dn = Datanode {
            incarnation,
            rack: rack.to_string(),
            capacity,
            free,
            active_transfers: 0,
            decommissioning: false,
            blocks: BTreeSet::new(),
        };
        self.datanodes.insert(id.to_string(), dn);
    }

    /// A DataNode left the membership view: it is dead at once, its replicas no longer count,
    /// and copies from or to it are dropped (so their blocks are rescheduled). An older
    /// incarnation leaving after a newer one joined changes nothing. Returns whether it was
    /// removed.
    pub fn datanode_left(&mut self, id: &str, incarnation: i64) -> bool {
        match self.datanodes.get(id) {
            Some(dn) if dn.incarnation == incarnation => {
                self.drop_datanode(id);
                true
            }
            _ => false,
        }
    }

    pub fn heartbeat(&mut self, id: &str, incarnation: i64, free: u64, active_transfers: u32) -> Result<(), Error> {
        let dn = self.current(id, incarnation)?;
        dn.free = free;
        dn.active_transfers = active_transfers;
        Ok(())
    }

    /// Start decommissioning: its replicas stay sources but stop counting as live, so its
    /// blocks are copied elsewhere, and it is never a target.
    pub fn decommission(&mut self, id: &str) -> Result<(), Error> {
        let dn = self.datanodes.get_mut(id).ok_or_else(|| Error::UnknownDatanode(id.to_string()))?;
        dn.decommissioning = true;
        Ok(())
    }

    /// Back in service (no longer in the exclude file): its replicas count again, and the
    /// excess that makes is deleted as any other.
    pub fn recommission(&mut self, id: &str) -> Result<(), Error> {
        let dn = self.datanodes.get_mut(id).ok_or_else(|| Error::UnknownDatanode(id.to_string()))?;
        dn.decommissioning = false;
        Ok(())
    }

    /// Whether every block a decommissioning DataNode holds a good replica of has its full live
    /// replication elsewhere (then the caller may retire it). A block still being written keeps
    /// it from being done.
    pub fn decommission_done(&self, id: &str) -> Result<bool, Error> {
        let dn = self.datanodes.get(id).ok_or_else(|| Error::UnknownDatanode(id.to_string()))?;
        for b in &dn.blocks {
            let Some(e) = self.blocks.get(b) else { continue };
            if e.under_construction {
                return Ok(false);
            }
            if !self.is_good(*b, e, id) {
                continue;
            }
            if self.counts(*b, e).live < usize::from(e.replication) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn current(&mut self, id: &str, incarnation: i64) -> Result<&mut Datanode, Error> {
        match self.datanodes.get_mut(id) {
            Some(dn) if dn.incarnation == incarnation => Ok(dn),
            other => Err(Error::StaleIncarnation {
                id: id.to_string(),
                incarnation,
                current: other.map(|dn| dn.incarnation),
            }),
        }
    }

    fn drop_datanode(&mut self, id: &str) {
        let Some(dn) = self.datanodes.remove(id) else { return };
        for b in &dn.blocks {
            if let Some(e) = self.blocks.get_mut(b) {
                e.replicas.remove(id);
            }
            self.corrupt.remove(&(*b, id.to_string()));
        }
        for list in self.pending.values_mut() {
            list.retain(|p| p.source != id && p.target != id);
        }
        self.pending.retain(|_, list| !list.is_empty());
        self.invalidate.remove(id);
        self.deleting.retain(|(_, d)| d != id);
        self.orphans.retain(|(_, d)| d != id);
        self.finishing.retain(|(_, d), _| d != id);
    }

    // ---- Blocks, as the namespace changes them ----

    /// The namespace created or changed a block: its current stamp and length, its file's
    /// replication, and whether it is still being written. Once complete, replicas at an older
    /// stamp are deleted and finalized ones of the wrong length are marked corrupt. A new stamp
    /// drops the copies in flight (they would carry the old one).
    pub fn set_block(&mut self, block: Block, replication: u16, under_construction: bool) {
        let e = self.blocks.entry(block.id).or_insert_with(|| Entry {
            block,
            replication,
            under_construction,
            replicas: BTreeMap::new(),
        });
        if e.block.gs != block.gs {
            self.pending.remove(&block.id);
        }
        e.block = block;
        e.replication = replication;
        e.under_construction = under_construction;
        if !under_construction {
            let replicas: Vec<(String, Stored)> = e.replicas.iter().map(|(d, s)| (d.clone(), *s)).collect();
            for (dn, s) in replicas {
                self.classify(&dn, block.id, s);
            }
        }
    }

    /// No file refers to the block any more: every replica of it is deleted.
    pub fn remove_block(&mut self, id: u64) {
        let Some(e) = self.blocks.remove(&id) else { return };
        for (dn, s) in e.replicas {
            if let Some(d) = self.datanodes.get_mut(&dn) {
                d.blocks.remove(&id);
            }
            self.corrupt.remove(&(id, dn.clone()));
            self.invalidate.entry(dn).or_default().insert(Block { id, gs: s.gs, len: s.len });
        }
        self.pending.remove(&id);
    }

    // ---- Replicas, as DataNodes report them ----

    /// A full block report: replaces the DataNode's replica set. A replica of a block the
    /// namespace never set is deleted, so the caller sets every block of a loaded namespace
    /// before it accepts reports (HDFS holds back in safe mode for the same reason).
    pub fn block_report(&mut self, id: &str, incarnation: i64, replicas: &[ReportedReplica]) -> Result<(), Error> {
        let dn = self.current(id, incarnation)?;
        let reported: BTreeSet<u64> = replicas.iter().map(|r| r.id).collect();
        let gone: Vec<u64> = dn.blocks.difference(&reported).copied().collect();
        for b in gone {
            self.forget_replica(id, b);
        }
        self.deleting.retain(|(b, d)| d != id || reported.contains(b));
        for r in replicas {
            self.add_replica(id, r);
            if r.state == ReplicaState::Rbw && self.blocks.get(&r.id).is_some_and(|e| e.replicas.contains_key(id)) {
                self.orphans.insert((r.id, id.to_string()));
            }
        }
        Ok(())
    }

    /// Changes since the last report: replicas received (finalized, or started being written)
    /// and deleted (block ids).
    pub fn incremental(
        &mut self,
        id: &str,
        incarnation: i64,
        received: &[ReportedReplica],
        deleted: &[u64],
    ) -> Result<(), Error> {
        self.current(id, incarnation)?;
        for r in received {
            self.add_replica(id, r);
        }
        for b in deleted {
            self.forget_replica(id, *b);
            self.deleting.remove(&(*b, id.to_string()));
        }
        Ok(())
    }

    /// A reader or the block scanner found `datanode`'s replica of `block` corrupt: it is never
    /// a source again and is deleted once the block has its full live count. Returns false when
    /// the map records no such replica.
    pub fn report_corrupt(&mut self, block: u64, datanode: &str) -> bool {
        let holds = self.blocks.get(&block).is_some_and(|e| e.replicas.contains_key(datanode));
        if !holds {
            return false;
        }
        self.corrupt.insert((block, datanode.to_string()));
        // A copy from it would fail its checksums; let the block be rescheduled now.
        if let Some(list) = self.pending.get_mut(&block) {
            list.retain(|p| p.source != datanode);
            if list.is_empty() {
                self.pending.remove(&block);
            }
        }
        true
    }

    fn add_replica(&mut self, dn: &str, r: &ReportedReplica) {
        let s = Stored { gs: r.gs, len: r.len, state: r.state };
        self.orphans.remove(&(r.id, dn.to_string()));
        let Some(e) = self.blocks.get_mut(&r.id) else {
            // No file refers to it (deleted while the DataNode was away): delete it.
            self.forget_replica(dn, r.id);
            self.invalidate.entry(dn.to_string()).or_default().insert(Block { id: r.id, gs: r.gs, len: r.len });
            return;
        };
        let old = e.replicas.insert(dn.to_string(), s);
        if old.is_some_and(|o| o.gs != s.gs || o.len != s.len) {
            // A new replica replaces the one the mark was about.
            self.corrupt.remove(&(r.id, dn.to_string()));
        }
        if let Some(d) = self.datanodes.get_mut(dn) {
            d.blocks.insert(r.id);
        }
        if self.classify(dn, r.id, s) {
            // A good replica at the target confirms the copy in flight.
            if let Some(list) = self.pending.get_mut(&r.id) {
                list.retain(|p| p.target != dn);
                if list.is_empty() {
                    self.pending.remove(&r.id);
                }
            }
        }
    }

    /// Applies the rules for a recorded replica of a complete block: an older stamp is deleted
    /// at once, a finalized replica of the wrong length is corrupt. Returns whether it is a
    /// finalized replica at the current stamp.
    fn classify(&mut self, dn: &str, block: u64, s: Stored) -> bool {
        let Some(e) = self.blocks.get(&block) else { return false };
        let (current, complete) = (e.block, !e.under_construction);
        if complete && s.gs < current.gs {
            self.delete_replica(block, dn);
            return false;
        }
        let finalized = s.gs == current.gs && s.state == ReplicaState::Finalized;
        if complete && finalized && s.len != current.len {
            self.corrupt.insert((block, dn.to_string()));
        }
        finalized
    }

    fn forget_replica(&mut self, dn: &str, block: u64) {
        if let Some(e) = self.blocks.get_mut(&block) {
            e.replicas.remove(dn);
        }
        if let Some(d) = self.datanodes.get_mut(dn) {
            d.blocks.remove(&block);
        }
        self.corrupt.remove(&(block, dn.to_string()));
        self.orphans.remove(&(block, dn.to_string()));
        self.finishing.remove(&(block, dn.to_string()));
    }

    // ---- Health ----

    /// A finalized, current-stamp, not corrupt replica on a DataNode in the view.
    fn is_good(&self, block: u64, e: &Entry, dn: &str) -> bool {
        let Some(s) = e.replicas.get(dn) else { return false };
        self.datanodes.contains_key(dn)
            && s.gs == e.block.gs
            && s.state == ReplicaState::Finalized
            && !self.corrupt.contains(&(block, dn.to_string()))
    }

    fn counts(&self, block: u64, e: &Entry) -> Counts {
        let mut c = Counts::default();
        for dn in e.replicas.keys() {
            if self.corrupt.contains(&(block, dn.clone())) {
                c.corrupt += 1;
            } else if self.is_good(block, e, dn) {
                if self.datanodes[dn].decommissioning {
                    c.decommissioning += 1;
                } else {
                    c.live += 1;
                }
            }
        }
        c.pending = self.pending.get(&block).map_or(0, Vec::len);
        c
    }

    fn state_of(&self, block: u64, e: &Entry) -> (BlockState, Counts) {
        let c = self.counts(block, e);
        let want = usize::from(e.replication);
        let state = if e.under_construction {
            BlockState::UnderConstruction
        } else if c.live >= want {
            BlockState::Healthy
        } else if c.live + c.decommissioning == 0 {
            if c.corrupt > 0 {
                BlockState::Corrupt
            } else {
                BlockState::Missing
            }
        } else if c.live + c.pending >= want {
            BlockState::Pending
        } else {
            BlockState::UnderReplicated
        };
        (state, c)
    }

    /// One block's replicas and state, for fsck. None if the namespace never set it.
    pub fn health(&self, block: u64) -> Option<BlockHealth> {
        let e = self.blocks.get(&block)?;
        let (state, c) = self.state_of(block, e);
        let locations = e
            .replicas
            .iter()
            .map(|(dn, s)| {
                let node = self.datanodes.get(dn);
                let decommissioning = node.is_some_and(|d| d.decommissioning);
                Location {
                    datanode: dn.clone(),
                    rack: node.map(|d| d.rack.clone()).unwrap_or_default(),
                    gs: s.gs,
                    len: s.len,
                    state: s.state,
                    live: self.is_good(block, e, dn) && !decommissioning,
                    corrupt: self.corrupt.contains(&(block, dn.clone())),
                    decommissioning,
                }
            })
            .collect();
        Some(BlockHealth {
            block: e.block,
            replication: e.replication,
            state,
            live: c.live,
            pending: c.pending,
            locations,
        })
    }

    /// Counts of blocks by state. Walks every block.
    pub fn stats(&self) -> BlockStats {
        let mut s = BlockStats { blocks: self.blocks.len(), ..BlockStats::default() };
        for (id, e) in &self.blocks {
            match self.state_of(*id, e).0 {
                BlockState::Healthy => {}
                BlockState::UnderConstruction => s.under_construction += 1,
                BlockState::UnderReplicated => s.under_replicated += 1,
                BlockState::Pending => s.pending += 1,
                BlockState::Corrupt => s.corrupt += 1,
                BlockState::Missing => s.missing += 1,
            }
        }
        s
    }

    // ---- The replication monitor ----

    /// One round of the replication monitor: drops copies past their time-out, schedules copies
    /// for blocks below replication (highest risk first, within the per-source and per-tick
    /// bounds), and deletes excess, corrupt (once the block is fully replicated) and stale
    /// replicas. Transfers come first, in priority order; then one Invalidate per DataNode.
    pub fn tick(&mut self, now: Instant) -> Vec<Command> {
        for list in self.pending.values_mut() {
            list.retain(|p| p.deadline > now);
        }
        self.pending.retain(|_, list| !list.is_empty());

        // Transfers in flight per source (one per Transfer, however many targets).
        let mut in_flight: BTreeMap<String, usize> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for p in self.pending.values().flatten() {
            if seen.insert(p.transfer) {
                *in_flight.entry(p.source.clone()).or_default() += 1;
            }
        }

        let mut needy: Vec<(u8, u64)> = Vec::new();
        let mut excess: Vec<(u64, String)> = Vec::new();
        let mut corrupt_done: Vec<u64> = Vec::new();
        let mut unfinished: Vec<(u64, String)> = Vec::new();
        let blocks = &self.blocks;
        self.finishing.retain(|(b, d), _| {
            blocks.get(b).is_some_and(|e| {
                !e.under_construction && e.replicas.get(d).is_some_and(|s| s.state == ReplicaState::Rbw)
            })
        });
        for (id, e) in &self.blocks {
            if e.under_construction {
                continue;
            }
            let c = self.counts(*id, e);
            // A replica still being written of a block that is complete is either finishing
            // (its last packet is being fsynced while the writer goes on) or will never be
            // finalized (a full report after a restart listed it, or it has been finishing
            // for longer than a copy may take). Finishing ones count as copies in flight;
            // the others go, so that their DataNodes can take good copies — not while one
            // might be all the block has.
            let mut finishing = 0;
            for (dn, _) in e.replicas.iter().filter(|(_, s)| s.state == ReplicaState::Rbw) {
                let key = (*id, dn.clone());
                let since = *self.finishing.entry(key.clone()).or_insert(now);
                if self.orphans.contains(&key) || now.saturating_duration_since(since) >= self.config.pending_timeout {
                    if c.live > 0 {
                        unfinished.push(key);
                    }
                } else {
                    finishing += 1;
                }
            }
            let want = usize::from(e.replication);
            if c.live >= want {
                if c.corrupt > 0 {
                    corrupt_done.push(*id);
                }
                if c.live > want && c.pending == 0 {
                    excess.extend(self.choose_excess(*id, e, c.live - want).into_iter().map(|dn| (*id, dn)));
                }
            } else if c.live + c.pending + finishing < want && c.live + c.decommissioning > 0 {
                let priority = if c.live == 1 {
                    0
                } else if c.live == 0 {
                    2
                } else {
                    1
                };
                needy.push((priority, *id));
            }
        }
        needy.sort();

        let mut commands = Vec::new();
        let mut budget = self.config.max_targets_per_tick;
        for (_, id) in needy {
            if budget == 0 {
                break;
            }
            if let Some(cmd) = self.schedule(id, now, &mut in_flight, &mut budget) {
                commands.push(cmd);
            }
        }

        for (id, dn) in excess.into_iter().chain(unfinished) {
            self.delete_replica(id, &dn);
        }
        for id in corrupt_done {
            let holders: Vec<String> = self
                .corrupt
                .range((id, String::new())..)
                .take_while(|(b, _)| *b == id)
                .map(|(_, d)| d.clone())
                .collect();
            for dn in holders {
                self.delete_replica(id, &dn);
            }
        }
        for (datanode, blocks) in std::mem::take(&mut self.invalidate) {
            if self.datanodes.contains_key(&datanode) && !blocks.is_empty() {
                commands.push(Command::Invalidate { datanode, blocks: blocks.into_iter().collect() });
            }
        }
        commands
    }

    /// Schedules one copy of block `id`: the least busy good source under its bound, targets
    /// from placement. None when no source or no target is available.
    fn schedule(
        &mut self,
        id: u64,
        now: Instant,
        in_flight: &mut BTreeMap<String, usize>,
        budget: &mut usize,
    ) -> Option<Command> {
        let e = &self.blocks[&id];
        let c = self.counts(id, e);
        let need = usize::from(e.replication).saturating_sub(c.live + c.pending).min(*budget);
        let good: Vec<&String> = e.replicas.keys().filter(|dn| self.is_good(id, e, dn)).collect();
        let source = good
            .iter()
            .filter(|dn| in_flight.get(dn.as_str()).copied().unwrap_or(0) < self.config.max_transfers_per_source)
            .min_by_key(|dn| {
                let busy = in_flight.get(dn.as_str()).copied().unwrap_or(0)
                    + self.datanodes[dn.as_str()].active_transfers as usize;
                (busy, dn.as_str())
            })?
            .to_string();
        // Live replicas first, so placement's rack rule starts from them.
        let mut existing: Vec<String> =
            good.iter().filter(|dn| !self.datanodes[dn.as_str()].decommissioning).map(|d| d.to_string()).collect();
        existing.extend(good.iter().filter(|dn| self.datanodes[dn.as_str()].decommissioning).map(|d| d.to_string()));
        let mut excluded: BTreeSet<String> = e.replicas.keys().cloned().collect();
        excluded.extend(self.pending.get(&id).into_iter().flatten().map(|p| p.target.clone()));
        excluded
            .extend(self.deleting.range((id, String::new())..).take_while(|(b, _)| *b == id).map(|(_, d)| d.clone()));
        let block = e.block;
        let targets = self.choose_targets(None, need, &excluded, &existing);
        if targets.is_empty() {
            // Every candidate already holds a replica: corrupt ones then take the places a
            // good copy needs (3 DataNodes, replication 3, one replica corrupt). They go now,
            // and their DataNodes are targets again once they report the deletion.
            let corrupt: Vec<String> =
                e.replicas.keys().filter(|dn| self.corrupt.contains(&(id, dn.to_string()))).cloned().collect();
            for dn in corrupt {
                self.delete_replica(id, &dn);
            }
            return None;
        }
        let transfer = self.next_transfer;
        self.next_transfer += 1;
        let deadline = now + self.config.pending_timeout;
        let list = self.pending.entry(id).or_default();
        for t in &targets {
            list.push(Pending { transfer, source: source.clone(), target: t.clone(), deadline });
        }
        *in_flight.entry(source.clone()).or_default() += 1;
        *budget -= targets.len();
        Some(Command::Transfer { block, source, targets })
    }

    /// Which `n` of a block's live replicas to delete: from the rack holding the most, then the
    /// DataNode with the least free space, then the smallest id.
    fn choose_excess(&self, id: u64, e: &Entry, n: usize) -> Vec<String> {
        let mut live: Vec<&String> = e
            .replicas
            .keys()
            .filter(|dn| self.is_good(id, e, dn) && !self.datanodes[dn.as_str()].decommissioning)
            .collect();
        let mut out = Vec::new();
        for _ in 0..n {
            let mut per_rack: BTreeMap<&str, usize> = BTreeMap::new();
            for dn in &live {
                *per_rack.entry(self.datanodes[dn.as_str()].rack.as_str()).or_default() += 1;
            }
            let Some(i) = (0..live.len()).max_by_key(|&i| {
                let d = &self.datanodes[live[i].as_str()];
                (per_rack[d.rack.as_str()], std::cmp::Reverse(d.free), std::cmp::Reverse(live[i].as_str()))
            }) else {
                break;
            };
            out.push(live.remove(i).clone());
        }
        out
    }

    /// Forgets a replica and queues its deletion.
    fn delete_replica(&mut self, id: u64, dn: &str) {
        let Some(s) = self.blocks.get(&id).and_then(|e| e.replicas.get(dn)).copied() else { return };
        self.forget_replica(dn, id);
        self.invalidate.entry(dn.to_string()).or_default().insert(Block { id, gs: s.gs, len: s.len });
        self.deleting.insert((id, dn.to_string()));
    }

    /// Checks the map's internal consistency (for tests): replica records and DataNode block
    /// sets agree, every pending copy names DataNodes in the view and a target at most once per
    /// block, and every corrupt mark names a recorded replica.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (id, e) in &self.blocks {
            for dn in e.replicas.keys() {
                let d = self.datanodes.get(dn).ok_or(format!("block {id}: replica on dead {dn}"))?;
                if !d.blocks.contains(id) {
                    return Err(format!("block {id}: {dn} does not list it"));
                }
            }
        }
        for (name, d) in &self.datanodes {
            for b in &d.blocks {
                if !self.blocks.get(b).is_some_and(|e| e.replicas.contains_key(name)) {
                    return Err(format!("{name} lists block {b} the map does not record"));
                }
            }
        }
        for (id, list) in &self.pending {
            let mut targets = BTreeSet::new();
            for p in list {
                if !self.datanodes.contains_key(&p.source) || !self.datanodes.contains_key(&p.target) {
                    return Err(format!("block {id}: pending copy names a dead DataNode"));
                }
                if !targets.insert(&p.target) {
                    return Err(format!("block {id}: two copies in flight to {}", p.target));
                }
            }
        }
        for (b, dn) in &self.corrupt {
            if !self.blocks.get(b).is_some_and(|e| e.replicas.contains_key(dn)) {
                return Err(format!("corrupt mark for block {b} on {dn} without a replica"));
            }
        }
        Ok(())
    }

    /// A DataNode's capacity and free bytes, as last reported.
    pub fn datanode_space(&self, id: &str) -> Option<(u64, u64)> {
        self.datanodes.get(id).map(|d| (d.capacity, d.free))
    }

    /// (rack, capacity, free, replicas held, decommissioning) of a DataNode in the view.
    pub fn datanode_summary(&self, id: &str) -> Option<(String, u64, u64, usize, bool)> {
        self.datanodes.get(id).map(|d| (d.rack.clone(), d.capacity, d.free, d.blocks.len(), d.decommissioning))
    }

    /// Whether `id` is a DataNode in the view (for callers and tests).
    pub fn is_live_datanode(&self, id: &str) -> bool {
        self.datanodes.contains_key(id)
    }

    /// Whether the map holds `datanode`'s replica of `block` marked corrupt.
    pub fn is_corrupt(&self, block: u64, datanode: &str) -> bool {
        self.corrupt.contains(&(block, datanode.to_string()))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod random_test;
