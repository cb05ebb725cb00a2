//! Answers DataNodes: registration against the membership view, heartbeats (which carry the
//! queued commands back), block reports and corruption reports.

use std::sync::Arc;
use std::time::Duration;

use dfs_proto::dn_nn::{HeartbeatResponse, ReplicaState as WireState, ReportedReplica as WireReplica};
use dfs_proto::rpc::RemoteError;
use dfs_proto::{DatanodeInfo, DatanodeRequest, DatanodeResponse};

use super::{Registered, Shared, UNREGISTERED};
use crate::blockmap::{self, ReplicaState, ReportedReplica};

type Answer = Result<DatanodeResponse, RemoteError>;

/// How long `Register` waits for the view to list the DataNode's incarnation (the DataNode
/// learns it from its own session before the NameNode's watch fires).
const VIEW_WAIT: Duration = Duration::from_secs(3);

pub async fn handle(shared: &Arc<Shared>, req: DatanodeRequest) -> Answer {
    match req {
        DatanodeRequest::Register { id, incarnation, data_addr, http_addr, rack, capacity, used } => {
            wait_for_view(shared, &id, incarnation).await?;
            let epoch = shared.epoch();
            if epoch == 0 {
                return Err(RemoteError::new(
                    "org.apache.hadoop.ipc.RetriableException",
                    "the NameNode is not a member of the views yet; register again shortly",
                ));
            }
            let host = data_addr.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default();
            let topo = &shared.config.topology;
            let rack = topo.get(&id).or_else(|| topo.get(&host)).cloned().unwrap_or(if rack.is_empty() {
                "/default-rack".to_string()
            } else {
                rack
            });
            let mut st = shared.state();
            st.blocks.datanode_joined(&id, incarnation, &rack, capacity, capacity.saturating_sub(used));
            if st.excluded.contains(&id) {
                let _ = st.blocks.decommission(&id);
                tracing::info!(datanode = %id, "datanode is in the exclude file: decommissioning");
            }
            let info = DatanodeInfo { id: id.clone(), data_addr, http_addr, rack };
            tracing::info!(datanode = %id, incarnation, addr = %info.data_addr, rack = %info.rack, "datanode registered");
            st.datanodes.insert(id.clone(), Registered { info, incarnation });
            st.commands.remove(&id);
            Ok(DatanodeResponse::Registered { namenode_epoch: epoch })
        }
        DatanodeRequest::Heartbeat {
            id,
            incarnation,
            capacity: _,
            used: _,
            free,
            active_transfers,
            failed_volumes: _,
        } => {
            let mut st = shared.state();
            admitted(&st.datanodes, &id, incarnation)?;
            st.blocks.heartbeat(&id, incarnation, free, active_transfers).map_err(stale)?;
            let epoch = shared.epoch();
            // Commands wait in the queue while the NameNode is not a member: they would carry
            // no epoch a DataNode could check.
            let commands = if epoch == 0 {
                Vec::new()
            } else {
                st.commands.get_mut(&id).map(|q| q.drain(..).collect()).unwrap_or_default()
            };
            Ok(DatanodeResponse::Commands { response: HeartbeatResponse { namenode_epoch: epoch, commands } })
        }
        DatanodeRequest::BlockReport { id, incarnation, replicas } => {
            let mut st = shared.state();
            admitted(&st.datanodes, &id, incarnation)?;
            let replicas: Vec<ReportedReplica> = replicas.iter().map(replica).collect();
            st.blocks.block_report(&id, incarnation, &replicas).map_err(stale)?;
            tracing::info!(datanode = %id, replicas = replicas.len(), "block report");
            Ok(DatanodeResponse::Done)
        }
        DatanodeRequest::IncrementalBlockReport { id, incarnation, received, deleted, receiving } => {
            let mut st = shared.state();
            admitted(&st.datanodes, &id, incarnation)?;
            let got: Vec<ReportedReplica> = receiving.iter().chain(received.iter()).map(replica).collect();
            let gone: Vec<u64> = deleted.iter().map(|b| b.id).collect();
            st.blocks.incremental(&id, incarnation, &got, &gone).map_err(stale)?;
            Ok(DatanodeResponse::Done)
        }
        DatanodeRequest::ReportBadBlocks { id, incarnation, blocks } => {
            {
                let st = shared.state();
                admitted(&st.datanodes, &id, incarnation)?;
            }
            let bad: Vec<_> = blocks
                .into_iter()
                .map(|block| dfs_proto::client_nn::BadReplica { block, datanode: id.clone() })
                .collect();
            super::client::report_bad(shared, &bad);
            Ok(DatanodeResponse::Done)
        }
    }
}

fn replica(r: &WireReplica) -> ReportedReplica {
    let state = match r.state {
        WireState::Finalized => ReplicaState::Finalized,
        WireState::Rbw => ReplicaState::Rbw,
    };
    ReportedReplica { id: r.id, gs: r.gs, len: r.len, state }
}

fn unregistered(msg: String) -> RemoteError {
    RemoteError::new(UNREGISTERED, msg)
}

fn stale(e: blockmap::Error) -> RemoteError {
    unregistered(e.to_string())
}

/// The DataNode registered with this incarnation (and the view still lists it).
fn admitted(
    datanodes: &std::collections::BTreeMap<String, Registered>,
    id: &str,
    incarnation: i64,
) -> Result<(), RemoteError> {
    match datanodes.get(id) {
        Some(r) if r.incarnation == incarnation => Ok(()),
        Some(r) => Err(unregistered(format!(
            "Data node {id} incarnation {incarnation:#x} is not the registered one ({:#x}); register again",
            r.incarnation
        ))),
        None => Err(unregistered(format!("Data node {id} is not registered; register again"))),
    }
}

/// Waits until the view lists `id` at `incarnation` (or something newer: then it is refused).
async fn wait_for_view(shared: &Shared, id: &str, incarnation: i64) -> Result<(), RemoteError> {
    let mut view = shared.view.clone();
    let deadline = tokio::time::sleep(VIEW_WAIT);
    tokio::pin!(deadline);
    loop {
        let listed = view.borrow_and_update().as_ref().and_then(|v| v.members.get(id).map(|m| m.incarnation));
        match listed {
            Some(i) if i == incarnation => return Ok(()),
            Some(i) if i > incarnation => {
                return Err(unregistered(format!(
                    "Data node {id} incarnation {incarnation:#x} was replaced by {i:#x} in the membership view"
                )))
            }
            _ => {}
        }
        tokio::select! {
            _ = &mut deadline => {
                return Err(unregistered(format!(
                    "Data node {id} incarnation {incarnation:#x} is not in the membership view (it lists {listed:?})"
                )))
            }
            changed = view.changed() => {
                if changed.is_err() {
                    return Err(unregistered("the NameNode is stopping".into()));
                }
            }
        }
    }
}
