//! The NameNode's loops: its own epoch, the DataNode view, the replication monitor and the
//! lease monitor. Each ends when the NameNode stops.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_proto::dn_nn::DatanodeCommand;
use dfs_proto::DatanodeInfo;
use member::membership::Status;
use member::view::{View, Watcher};
use tokio::sync::watch;

use super::convert::block;
use super::{now_ms, recovery, Shared};
use crate::blockmap::Command;
use crate::namespace::{Op, RECOVERY_HOLDER};

/// How often the lease monitor looks for writers past the hard limit.
const LEASE_CHECK: Duration = Duration::from_secs(1);

/// The command epoch follows the NameNode's own membership: its incarnation while a member,
/// 0 (no commands) while joining or expelled.
pub async fn watch_epoch(shared: Arc<Shared>, mut status: watch::Receiver<Status>) {
    loop {
        let epoch = match &*status.borrow_and_update() {
            Status::Member { incarnation, .. } => *incarnation,
            _ => 0,
        };
        let old = shared.epoch.swap(epoch, std::sync::atomic::Ordering::SeqCst);
        if old != epoch {
            tracing::info!(epoch = format_args!("{epoch:#x}"), "namenode epoch");
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// Follows the `datanode` group: a DataNode whose incarnation left the view is dropped at once
/// (its replicas stop counting; the next monitor tick schedules copies).
pub async fn watch_datanodes(shared: Arc<Shared>, view_tx: watch::Sender<Option<View>>) {
    let mut watcher = match Watcher::new(shared.config.watch_client.clone(), "datanode") {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot watch the datanode group: {e}");
            return;
        }
    };
    loop {
        let view = watcher.next().await;
        {
            let mut st = shared.state();
            let gone: Vec<(String, i64)> = st
                .datanodes
                .iter()
                .filter(|(id, r)| view.members.get(*id).map(|m| m.incarnation) != Some(r.incarnation))
                .map(|(id, r)| (id.clone(), r.incarnation))
                .collect();
            for (id, incarnation) in gone {
                st.datanodes.remove(&id);
                st.commands.remove(&id);
                st.blocks.datanode_left(&id, incarnation);
                tracing::info!(datanode = %id, incarnation = format_args!("{incarnation:#x}"), view_epoch = view.epoch, "datanode left the view");
            }
        }
        view_tx.send_replace(Some(view));
    }
}

/// The replication monitor: a block-map tick every interval, its commands queued for the
/// DataNodes' next heartbeats.
pub async fn replication(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.monitor_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let epoch = shared.epoch();
        if epoch == 0 {
            continue;
        }
        let mut st = shared.state();
        let commands = st.blocks.tick(Instant::now());
        for c in commands {
            match c {
                Command::Transfer { block: b, source, targets } => {
                    let infos: Option<Vec<DatanodeInfo>> = targets.iter().map(|t| st.info(t)).collect();
                    let Some(targets) = infos else { continue };
                    tracing::info!(block = b.id, gs = b.gs, %source, targets = ?targets.iter().map(|t| &t.id).collect::<Vec<_>>(), "replication scheduled");
                    st.queue(&source, DatanodeCommand::Transfer { namenode_epoch: epoch, block: block(b), targets });
                }
                Command::Invalidate { datanode, blocks } => {
                    tracing::info!(%datanode, blocks = ?blocks.iter().map(|b| b.id).collect::<Vec<_>>(), "invalidation scheduled");
                    let blocks = blocks.into_iter().map(block).collect();
                    st.queue(&datanode, DatanodeCommand::Invalidate { namenode_epoch: epoch, blocks });
                }
            }
        }
    }
}

/// The lease monitor: files of writers silent past the hard limit are recovered, and so are
/// files whose recovery did not finish (say, across a restart): those left in the NameNode's
/// hands by a lease recovery, and those a truncate left waiting for the cut of their last
/// block. A stalled recovery is started again once two checks in a row found it not running:
/// the call that began it starts it a moment after its entry is applied.
pub async fn leases(shared: Arc<Shared>) {
    let (soft, hard) = (shared.config.lease_soft.as_millis() as u64, shared.config.lease_hard.as_millis() as u64);
    let mut stalled_before: BTreeSet<u64> = BTreeSet::new();
    loop {
        tokio::time::sleep(LEASE_CHECK).await;
        if shared.epoch() == 0 {
            continue;
        }
        let Ok(due) = shared
            .journal
            .read(move |ns| {
                let mut due = Vec::new();
                for l in ns.expired_leases(now_ms(), soft, hard) {
                    if l.past_hard && l.holder != RECOVERY_HOLDER {
                        due.extend(l.paths);
                    }
                }
                // Recoveries that should be running: the NameNode's own, and truncates'.
                let mut stalled = BTreeMap::new();
                for (holder, l) in ns.leases() {
                    for id in &l.files {
                        let truncating = ns
                            .inode(*id)
                            .and_then(|i| i.file())
                            .is_some_and(|f| f.uc.as_ref().is_some_and(|u| u.truncate_to.is_some()));
                        if holder == RECOVERY_HOLDER || truncating {
                            stalled.extend(ns.path_of(*id).map(|p| (*id, p)));
                        }
                    }
                }
                let ids: Vec<(String, u64)> =
                    due.into_iter().filter_map(|p| ns.lookup(&p).map(|i| (p.clone(), i.id))).collect();
                (ids, stalled)
            })
            .await
        else {
            return;
        };
        let (mut due, mut stalled) = due;
        {
            let recovering = shared.recovering.lock().unwrap_or_else(|p| p.into_inner());
            stalled.retain(|id, _| !recovering.contains(id));
        }
        due.extend(stalled.iter().filter(|(id, _)| stalled_before.contains(id)).map(|(id, p)| (p.clone(), *id)));
        stalled_before = stalled.into_keys().collect();
        due.sort();
        due.dedup();
        for (path, id) in due {
            if shared.recovering.lock().unwrap_or_else(|p| p.into_inner()).contains(&id) {
                continue;
            }
            tracing::info!(%path, "lease recovery started by the lease monitor");
            match shared.propose_own(Op::BeginRecovery { path: path.clone() }).await {
                Ok(out) => {
                    if let Some(order) = out.recovery {
                        recovery::spawn(shared.clone(), order);
                    } else if let Err(e) = out.result {
                        tracing::warn!(%path, "lease recovery: {e}");
                    }
                }
                Err(e) => tracing::warn!(%path, "lease recovery: {e}"),
            }
        }
    }
}
