//! Block recovery of a file whose writer is gone (HDFS's lease recovery), driven by the
//! NameNode itself over the DataNodes' data ports: `InitRecovery` at every replica of the
//! block (fences its writer, answers its length), then `FinishRecovery` at each to cut it to
//! the shortest length and finalize it under the recovery stamp, then the namespace closes the
//! file at that length (`Op::RecoverLease`). HDFS makes one DataNode the primary and waits for
//! heartbeats to carry the order; the NameNode doing it costs two round trips per replica and
//! no heartbeat.
//!
//! The shortest length is at least what the writer had acknowledged: a packet is acknowledged
//! only after every node of the pipeline wrote it.
//!
//! A truncate that cuts inside a block recovers that block the same way, its order carrying
//! the new length: every replica is cut to the shorter of the shortest and that length
//! (HDFS's in-place truncate recovery), and the namespace closes the file there.

use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use dfs_proto::transfer::{Op as DataOp, OpResponse};
use dfs_proto::{DatanodeInfo, ExtendedBlock};

use super::Shared;
use crate::blockmap::{ReplicaState, ReportedReplica};
use crate::namespace::{Block, Op, RecoveryOrder};

/// Attempts (one a second) before a recovery gives up; the lease monitor starts it again.
const ATTEMPTS: u32 = 30;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the recovery in the background, unless one of the same file is running.
pub fn spawn(shared: Arc<Shared>, order: RecoveryOrder) {
    if !shared.recovering.lock().unwrap_or_else(|p| p.into_inner()).insert(order.file_id) {
        return;
    }
    tokio::spawn(async move {
        let r = run(&shared, &order).await;
        shared.recovering.lock().unwrap_or_else(|p| p.into_inner()).remove(&order.file_id);
        let (path, block) = (&order.path, order.block.id);
        match (r, order.truncate_to) {
            (Ok(len), None) => tracing::info!(path = %path, block, len, "lease recovery closed the file"),
            (Ok(len), Some(_)) => tracing::info!(path = %path, block, len, "truncate recovery closed the file"),
            (Err(e), None) => tracing::warn!(path = %path, block, "lease recovery: {e}"),
            (Err(e), Some(_)) => tracing::warn!(path = %path, block, "truncate recovery: {e}"),
        }
    });
}

async fn run(shared: &Arc<Shared>, order: &RecoveryOrder) -> Result<u64, String> {
    let b = order.block;
    let rid = order.recovery_id;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::select! {
                _ = shared.stop.cancelled() => return Err("the NameNode is stopping".into()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        let epoch = shared.epoch();
        if epoch == 0 {
            continue;
        }
        // An order may outlive its need (a second one for the same file ran first): cutting
        // replicas of a file closed meanwhile would move them past its block's stamp.
        let file = order.file_id;
        let open = shared
            .journal
            .read(move |ns| {
                let f = ns.inode(file)?.file()?;
                f.uc.as_ref().filter(|u| u.open_block).and(f.blocks.last().map(|l| l.id))
            })
            .await
            .map_err(|e| e.to_string())?;
        if open != Some(b.id) {
            return Err("the file is no longer open with that block".into());
        }
        let replicas: Vec<DatanodeInfo> = {
            let st = shared.state();
            let Some(h) = st.blocks.health(b.id) else { return Err("the block is gone".into()) };
            h.locations.iter().filter(|l| l.gs >= b.gs).filter_map(|l| st.info(&l.datanode)).collect()
        };
        if replicas.is_empty() {
            tracing::debug!(block = b.id, attempt, "lease recovery: no replica reported yet");
            continue;
        }
        let init = DataOp::InitRecovery {
            block: ExtendedBlock { id: b.id, gs: b.gs, len: b.len },
            recovery_id: rid,
            namenode_epoch: epoch,
        };
        let answered = call_all(&replicas, init).await;
        let Some(shortest) = answered.iter().map(|(_, len)| *len).min() else {
            tracing::info!(block = b.id, attempt, "lease recovery: no replica answered");
            continue;
        };
        let len = order.truncate_to.map_or(shortest, |t| shortest.min(t));
        let finish = DataOp::FinishRecovery { block: ExtendedBlock { id: b.id, gs: rid, len }, namenode_epoch: epoch };
        let nodes: Vec<DatanodeInfo> = answered.into_iter().map(|(d, _)| d).collect();
        let done = call_all(&nodes, finish).await;
        if done.is_empty() {
            continue;
        }
        record_replicas(shared, &done, Block { id: b.id, gs: rid, len });
        let Some(path) = shared.journal.read(move |ns| ns.path_of(file)).await.map_err(|e| e.to_string())? else {
            return Err("the file is gone".into());
        };
        let last = (len > 0).then_some(Block { id: b.id, gs: rid, len });
        let out = shared.propose_own(Op::RecoverLease { path, last }).await.map_err(|e| e.to_string())?;
        out.result.map_err(|e| e.to_string())?;
        let removed = out.removed_blocks.iter().map(|b| b.id).collect();
        shared.mirror(super::MirrorOf::File(file), removed).await.map_err(|e| e.to_string())?;
        return Ok(len);
    }
    Err(format!("gave up after {ATTEMPTS} attempts"))
}

/// Records the recovered replicas in the block map at once, as HDFS's
/// `commitBlockSynchronization` does with its new targets: a reader of the file closed next
/// finds them before the DataNodes' own reports arrive.
fn record_replicas(shared: &Shared, done: &[(DatanodeInfo, u64)], b: Block) {
    let mut st = shared.state();
    for (d, len) in done {
        let Some(incarnation) = st.datanodes.get(&d.id).map(|r| r.incarnation) else { continue };
        let r = ReportedReplica { id: b.id, gs: b.gs, len: *len, state: ReplicaState::Finalized };
        if let Err(e) = st.blocks.incremental(&d.id, incarnation, &[r], &[]) {
            tracing::debug!(datanode = %d.id, "recovered replica not recorded: {e}");
        }
    }
}

/// Sends `op` to every node (in parallel, on blocking threads) and returns those that
/// answered Success, with the length they answered.
async fn call_all(nodes: &[DatanodeInfo], op: DataOp) -> Vec<(DatanodeInfo, u64)> {
    let calls: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|d| {
            let op = op.clone();
            tokio::task::spawn_blocking(move || {
                let r = call(&d.data_addr, &op);
                (d, r)
            })
        })
        .collect();
    let mut ok = Vec::new();
    for c in calls {
        match c.await {
            Ok((d, Ok(len))) => ok.push((d, len)),
            Ok((d, Err(e))) => tracing::warn!(datanode = %d.id, "lease recovery step refused: {e}"),
            Err(e) => tracing::warn!("lease recovery step: {e}"),
        }
    }
    ok
}

fn call(addr: &str, op: &DataOp) -> Result<u64, String> {
    let a = addr.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&a, IO_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.write_all(&op.to_frame().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let r = OpResponse::read_from(&mut s).map_err(|e| e.to_string())?;
    if r.status.is_success() {
        Ok(r.first_chunk_offset)
    } else {
        Err(format!("{:?}: {}", r.status, r.message))
    }
}
