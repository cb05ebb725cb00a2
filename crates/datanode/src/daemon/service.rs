//! The service thread: the one conversation with the NameNode (see `daemon.rs`).
//!
//! Each turn of the loop: take the store's changes into the pending incremental report, reap
//! finished replication threads, then — while a member and not backing off after a failed
//! call — register if this incarnation is not registered (then a full block report), send
//! what is pending (full report, incremental report, bad blocks) and the heartbeat when due,
//! executing the commands each response carries. Then wait on the change feed until the next
//! heartbeat. A failed call backs off for one heartbeat interval; nothing is retried in a
//! tighter loop than that.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dfs_proto::dn_nn::{DatanodeCommand, HeartbeatResponse, ReplicaState as WireState, ReportedReplica};
use dfs_proto::rpc::Protocol;
use dfs_proto::rpc_client::{CallError, Caller, RetryPolicy, RpcClient};
use dfs_proto::{DatanodeInfo, DatanodeRequest, DatanodeResponse, ExtendedBlock};
use member::membership::Status;
use tokio::sync::watch;

use super::{DatanodeConfig, Shared};
use crate::store::{lock, Taken};
use crate::transfer::client::transfer_block_pipeline;
use crate::{ReplicaInfo, ReplicaState};

/// The NameNode's answer to a request from an incarnation its view does not list.
const UNREGISTERED: &str = "UnregisteredNodeException";
/// Pending incremental changes kept while the NameNode is away; past this a full report
/// replaces them.
const PENDING_MAX: usize = 1 << 16;

/// One line of an incremental report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Receiving(ReportedReplica),
    Received(ReportedReplica),
    Deleted(ExtendedBlock),
}

/// A store replica as the protocol reports it; temporary replicas are not reported.
pub(crate) fn reported(r: &ReplicaInfo) -> Option<ReportedReplica> {
    let state = match r.state {
        ReplicaState::Finalized => WireState::Finalized,
        ReplicaState::Rbw => WireState::Rbw,
        ReplicaState::Temporary => return None,
    };
    Some(ReportedReplica { id: r.id, gs: r.gs, len: r.length, state })
}

/// What a changed id (last at stamp `gs`) is now: `get` is the store's look-up.
pub(crate) fn change_of(id: u64, gs: u64, now: Option<ReplicaInfo>) -> Option<Change> {
    match now {
        None => Some(Change::Deleted(ExtendedBlock { id, gs, len: 0 })),
        Some(r) => {
            let rep = reported(&r)?;
            Some(match rep.state {
                WireState::Rbw => Change::Receiving(rep),
                WireState::Finalized => Change::Received(rep),
            })
        }
    }
}

/// The incremental report of `pending` changes.
pub(crate) fn incremental(id: &str, incarnation: i64, pending: &BTreeMap<u64, Change>) -> DatanodeRequest {
    let (mut received, mut deleted, mut receiving) = (Vec::new(), Vec::new(), Vec::new());
    for c in pending.values() {
        match *c {
            Change::Receiving(r) => receiving.push(r),
            Change::Received(r) => received.push(r),
            Change::Deleted(b) => deleted.push(b),
        }
    }
    DatanodeRequest::IncrementalBlockReport { id: id.to_owned(), incarnation, received, deleted, receiving }
}

/// Which of `blocks` an `Invalidate` deletes: a replica whose stamp is at most the one named
/// (a newer replica of the same id was written after the NameNode decided, and survives).
pub(crate) fn to_invalidate(blocks: &[ExtendedBlock], get: impl Fn(u64) -> Option<ReplicaInfo>) -> Vec<u64> {
    blocks.iter().filter(|b| get(b.id).is_some_and(|r| r.gs <= b.gs)).map(|b| b.id).collect()
}

pub(crate) struct Service {
    shared: Arc<Shared>,
    id: String,
    rack: String,
    data_addr: SocketAddr,
    http_addr: String,
    interval: Duration,
    io_timeout: Duration,
    max_replications: usize,
    client: RpcClient,
    status: watch::Receiver<Status>,
    /// The incarnation the NameNode accepted a registration of.
    registered: Option<i64>,
    /// The NameNode must get a full report before anything incremental.
    full_report_due: bool,
    /// Changes not yet accepted by the NameNode, by block id (the newest change wins).
    pending: BTreeMap<u64, Change>,
    next_heartbeat: Instant,
    /// No call before this (backing off after a failure).
    quiet_until: Instant,
    /// The last problem logged, so that an outage is logged once, not at every retry.
    problem: Option<String>,
    replications: Vec<JoinHandle<()>>,
}

impl Service {
    pub(crate) fn new(
        cfg: &DatanodeConfig,
        shared: Arc<Shared>,
        data_addr: SocketAddr,
        status: watch::Receiver<Status>,
    ) -> Service {
        // A broken connection is retried for up to one heartbeat interval (a NameNode restart
        // is absorbed); longer outages are the loop's business, one try per interval.
        let policy = RetryPolicy {
            io_timeout: cfg.rpc_timeout,
            retry_for: cfg.heartbeat_interval,
            first_pause: Duration::from_millis(50),
        };
        let client = RpcClient::new(
            cfg.namenode.clone(),
            Protocol::DatanodeNamenode,
            Caller::new(cfg.id.clone(), Vec::new()),
            policy,
        );
        let now = Instant::now();
        Service {
            shared,
            id: cfg.id.clone(),
            rack: cfg.rack.clone(),
            data_addr,
            http_addr: cfg.http_addr.clone(),
            interval: cfg.heartbeat_interval,
            io_timeout: cfg.io_timeout,
            max_replications: cfg.max_replications.max(1),
            client,
            status,
            registered: None,
            full_report_due: true,
            pending: BTreeMap::new(),
            next_heartbeat: now,
            quiet_until: now,
            problem: None,
            replications: Vec::new(),
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            if self.shared.stop.is_cancelled() {
                break;
            }
            self.collect(self.shared.store.changes().take());
            self.replications.retain(|t| !t.is_finished());
            let incarnation = match *self.status.borrow() {
                Status::Member { incarnation, .. } => Some(incarnation),
                _ => None,
            };
            let now = Instant::now();
            let deadline = match incarnation {
                None => {
                    if let Some(old) = self.registered.take() {
                        tracing::warn!(
                            id = %self.id,
                            "no longer a member as incarnation 0x{old:x}: no heartbeats or commands until it rejoins"
                        );
                    }
                    // A status change wakes the wait.
                    now + self.interval
                }
                Some(_) if now < self.quiet_until => self.quiet_until,
                Some(inc) => {
                    self.converse(inc);
                    let now = Instant::now();
                    if now < self.quiet_until {
                        self.quiet_until
                    } else if self.registered != Some(inc) {
                        // A Reregister command or an unregistered answer: at once.
                        now
                    } else if self.full_report_due || !self.pending.is_empty() || !lock(&self.shared.bad).is_empty() {
                        now
                    } else {
                        self.next_heartbeat
                    }
                }
            };
            self.shared.store.changes().wait(deadline);
        }
        for t in self.replications.drain(..) {
            let _ = t.join();
        }
    }

    /// Adds the store's changes to what the next incremental report says.
    fn collect(&mut self, taken: Taken) {
        if taken.overflow {
            self.full_report_due = true;
        }
        for (id, gs) in taken.ids {
            if let Some(c) = change_of(id, gs, self.shared.store.get(id)) {
                self.pending.insert(id, c);
            }
        }
        if self.pending.len() > PENDING_MAX {
            self.pending.clear();
            self.full_report_due = true;
        }
    }

    /// One turn as member `inc`: registration, reports, heartbeat; stops at the first failure.
    fn converse(&mut self, inc: i64) {
        if self.registered != Some(inc) {
            if !self.register(inc) {
                return;
            }
            self.full_report_due = true;
        }
        if self.full_report_due && !self.full_report(inc) {
            return;
        }
        if !self.pending.is_empty() {
            let req = incremental(&self.id, inc, &self.pending);
            match self.call(&req) {
                Some(resp) => {
                    self.pending.clear();
                    self.handle(resp);
                }
                None => return,
            }
        }
        let bad = lock(&self.shared.bad).clone();
        if !bad.is_empty() {
            let req = DatanodeRequest::ReportBadBlocks { id: self.id.clone(), incarnation: inc, blocks: bad.clone() };
            match self.call(&req) {
                Some(resp) => {
                    let ids: Vec<u64> = bad.iter().map(|b| b.id).collect();
                    tracing::info!(id = %self.id, "reported corrupt replicas {ids:?}");
                    lock(&self.shared.bad).retain(|b| !bad.contains(b));
                    self.handle(resp);
                }
                None => return,
            }
        }
        if self.registered == Some(inc) && Instant::now() >= self.next_heartbeat {
            self.next_heartbeat = Instant::now() + self.interval;
            if let Some(resp) = self.call(&self.heartbeat(inc)) {
                self.handle(resp);
            }
        }
    }

    fn register(&mut self, inc: i64) -> bool {
        let space = self.shared.store.space().unwrap_or_default();
        let req = DatanodeRequest::Register {
            id: self.id.clone(),
            incarnation: inc,
            data_addr: self.data_addr.to_string(),
            http_addr: self.http_addr.clone(),
            rack: self.rack.clone(),
            capacity: space.capacity_bytes,
            used: space.used_bytes,
        };
        match self.call(&req) {
            Some(DatanodeResponse::Registered { namenode_epoch }) => {
                self.shared.advance_epoch(namenode_epoch);
                self.registered = Some(inc);
                self.next_heartbeat = Instant::now() + self.interval;
                tracing::info!(
                    id = %self.id,
                    "registered with {} as incarnation 0x{inc:x} (namenode epoch 0x{namenode_epoch:x})",
                    self.client.addr()
                );
                true
            }
            Some(other) => {
                self.trouble(format!("Register answered with {other:?}"));
                false
            }
            None => {
                // Also after an unregistered answer (the NameNode's view may not list this
                // incarnation yet): one try per interval.
                self.quiet_until = Instant::now() + self.interval;
                false
            }
        }
    }

    fn full_report(&mut self, inc: i64) -> bool {
        // Changes taken before the snapshot are in it; later ones come incrementally.
        self.collect(self.shared.store.changes().take());
        self.pending.clear();
        let replicas: Vec<ReportedReplica> = self.shared.store.report().iter().filter_map(reported).collect();
        let n = replicas.len();
        let req = DatanodeRequest::BlockReport { id: self.id.clone(), incarnation: inc, replicas };
        match self.call(&req) {
            Some(resp) => {
                self.full_report_due = false;
                tracing::info!(id = %self.id, "sent a full block report of {n} replicas");
                self.handle(resp);
                true
            }
            None => false,
        }
    }

    fn heartbeat(&self, inc: i64) -> DatanodeRequest {
        let space = match self.shared.store.space() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(id = %self.id, "statvfs of the data dirs: {e}");
                Default::default()
            }
        };
        DatanodeRequest::Heartbeat {
            id: self.id.clone(),
            incarnation: inc,
            capacity: space.capacity_bytes,
            used: space.used_bytes,
            free: space.free_bytes,
            // The data port's connections (reads, writes, copies in and out) and this node's
            // own replication pushes.
            active_transfers: (self.shared.load.connections()
                + self.replications.iter().filter(|t| !t.is_finished()).count()) as u32,
            failed_volumes: 0,
        }
    }

    /// One call; `None` after a failure, which is logged (once per streak) and handled: an
    /// unregistered incarnation registers again, anything else backs off one interval.
    fn call(&mut self, req: &DatanodeRequest) -> Option<DatanodeResponse> {
        match self.client.call::<DatanodeRequest, DatanodeResponse>(req) {
            Ok(resp) => {
                if self.problem.take().is_some() {
                    tracing::info!(id = %self.id, "namenode {} answers again", self.client.addr());
                }
                Some(resp)
            }
            Err(CallError::Remote(e)) if e.class.ends_with(UNREGISTERED) => {
                tracing::info!(
                    id = %self.id,
                    "namenode does not list this incarnation ({}); registering again",
                    e.message
                );
                self.registered = None;
                None
            }
            Err(e) => {
                self.trouble(format!("namenode: {e}"));
                None
            }
        }
    }

    fn trouble(&mut self, what: String) {
        if self.problem.as_deref() != Some(what.as_str()) {
            tracing::warn!(id = %self.id, "{what}; trying again every {:?}", self.interval);
            self.problem = Some(what);
        }
        self.quiet_until = Instant::now() + self.interval;
    }

    fn handle(&mut self, resp: DatanodeResponse) {
        match resp {
            DatanodeResponse::Commands { response: HeartbeatResponse { namenode_epoch, commands } } => {
                self.shared.advance_epoch(namenode_epoch);
                for c in commands {
                    self.command(c);
                }
            }
            DatanodeResponse::Done => {}
            DatanodeResponse::Registered { .. } => {
                tracing::warn!(id = %self.id, "namenode answered Registered to a report; ignored");
            }
        }
    }

    fn command(&mut self, c: DatanodeCommand) {
        let epoch = c.namenode_epoch();
        if let Err(e) = self.shared.fence.admit(epoch) {
            tracing::warn!(id = %self.id, "refused a command from a deposed namenode ({e}): {c:?}");
            return;
        }
        self.shared.advance_epoch(epoch);
        match c {
            DatanodeCommand::Invalidate { blocks, .. } => {
                let store = &self.shared.store;
                let doomed = to_invalidate(&blocks, |id| store.get(id));
                for b in &blocks {
                    if !doomed.contains(&b.id) && store.get(b.id).is_none() {
                        // Already gone: say so, or the NameNode keeps asking.
                        self.pending.insert(b.id, Change::Deleted(ExtendedBlock { len: 0, ..*b }));
                    }
                }
                for b in blocks.iter().filter(|b| doomed.contains(&b.id)) {
                    // The store's change feed reports the deletion. The stamp is checked again
                    // under the replica's lock: an append may have moved it on meanwhile.
                    match store.delete_if_not_newer(b.id, b.gs) {
                        Ok(true) => tracing::info!(id = %self.id, "deleted block {} (invalidated)", b.id),
                        Ok(false) => tracing::info!(id = %self.id, "kept block {}: newer than the invalidation", b.id),
                        Err(e) => tracing::warn!(id = %self.id, "invalidating block {}: {e}", b.id),
                    }
                }
            }
            DatanodeCommand::Transfer { block, targets, .. } => self.replicate(block, targets, epoch),
            DatanodeCommand::Reregister { .. } => {
                tracing::info!(id = %self.id, "namenode asks for a new registration");
                self.registered = None;
            }
        }
    }

    /// A `Transfer` command: push the replica through `targets` in a thread of its own.
    fn replicate(&mut self, block: ExtendedBlock, targets: Vec<DatanodeInfo>, epoch: i64) {
        self.replications.retain(|t| !t.is_finished());
        if targets.is_empty() {
            tracing::warn!(id = %self.id, "transfer of block {} names no target; ignored", block.id);
            return;
        }
        if self.replications.len() >= self.max_replications {
            tracing::warn!(
                id = %self.id,
                "transfer of block {} dropped: {} replications under way already",
                block.id,
                self.replications.len()
            );
            return;
        }
        let (store, timeout, me) = (self.shared.store.clone(), self.io_timeout, self.id.clone());
        let spawned = std::thread::Builder::new().name(format!("dn-replicate-{}", block.id)).spawn(move || {
            let to: Vec<&str> = targets.iter().map(|t| t.id.as_str()).collect();
            match transfer_block_pipeline(&store, block, &targets, epoch, timeout) {
                Ok(n) => tracing::info!(id = %me, "replicated block {} ({n} bytes) to {to:?}", block.id),
                Err(e) => tracing::warn!(id = %me, "replicating block {} to {to:?}: {e}", block.id),
            }
        });
        match spawned {
            Ok(t) => self.replications.push(t),
            Err(e) => tracing::warn!(id = %self.id, "transfer of block {}: cannot start a thread: {e}", block.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u64, gs: u64, state: ReplicaState) -> ReplicaInfo {
        ReplicaInfo { id, gs, length: 10 * id, state }
    }

    #[test]
    fn changes_become_receiving_received_or_deleted() {
        let rbw = change_of(1, 3, Some(info(1, 3, ReplicaState::Rbw)));
        assert_eq!(rbw, Some(Change::Receiving(ReportedReplica { id: 1, gs: 3, len: 10, state: WireState::Rbw })));
        let fin = change_of(2, 3, Some(info(2, 4, ReplicaState::Finalized)));
        assert_eq!(fin, Some(Change::Received(ReportedReplica { id: 2, gs: 4, len: 20, state: WireState::Finalized })));
        assert_eq!(change_of(3, 7, None), Some(Change::Deleted(ExtendedBlock { id: 3, gs: 7, len: 0 })));
        assert_eq!(change_of(4, 1, Some(info(4, 1, ReplicaState::Temporary))), None, "temporary is not reported");

        let mut pending = BTreeMap::new();
        for (id, c) in [(1, rbw), (2, fin), (3, change_of(3, 7, None))] {
            pending.insert(id, c.unwrap());
        }
        match incremental("dn", 9, &pending) {
            DatanodeRequest::IncrementalBlockReport { id, incarnation, received, deleted, receiving } => {
                assert_eq!((id.as_str(), incarnation), ("dn", 9));
                assert_eq!(receiving.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1]);
                assert_eq!(received.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2]);
                assert_eq!(deleted, vec![ExtendedBlock { id: 3, gs: 7, len: 0 }]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalidate_spares_newer_replicas() {
        let store = [info(1, 5, ReplicaState::Finalized), info(2, 5, ReplicaState::Finalized)];
        let get = |id| store.iter().find(|r| r.id == id).copied();
        let blocks = [
            ExtendedBlock { id: 1, gs: 5, len: 0 }, // same stamp: deleted
            ExtendedBlock { id: 2, gs: 4, len: 0 }, // the replica is newer: kept
            ExtendedBlock { id: 3, gs: 9, len: 0 }, // not here: nothing to delete
        ];
        assert_eq!(to_invalidate(&blocks, get), vec![1]);
        assert_eq!(to_invalidate(&[ExtendedBlock { id: 2, gs: 6, len: 0 }], get), vec![2], "an older replica goes");
    }
}
