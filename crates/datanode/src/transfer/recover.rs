//! The DataNode side of lease recovery: `InitRecovery` and `FinishRecovery`, one op and one
//! op response each, sent by the NameNode (see `Store::init_recovery` and
//! `Store::finish_recovery` for what they do to the replica).

use std::net::TcpStream;
use std::sync::atomic::Ordering;

use dfs_proto::transfer::Status;

use super::{respond, status_of, Shared};
use crate::store::ReplicaInfo;
use crate::StoreError;

/// Checks the op's NameNode epoch (a recovery always comes from a NameNode, so 0 is refused
/// too), runs `step` and answers with the replica's length. `Err` is the log line's reason.
pub(super) fn serve(
    shared: &Shared,
    stream: &TcpStream,
    namenode_epoch: i64,
    id: u64,
    step: impl FnOnce() -> Result<ReplicaInfo, StoreError>,
) -> Result<(), String> {
    let ours = &shared.config.namenode_epoch;
    if namenode_epoch <= 0 || namenode_epoch < ours.load(Ordering::SeqCst) {
        let why = format!(
            "recovery of block {id}: namenode epoch {namenode_epoch} is older than {}",
            ours.load(Ordering::SeqCst)
        );
        let _ = respond(&mut &*stream, Status::ErrorStale, &why, 0);
        return Err(why);
    }
    ours.fetch_max(namenode_epoch, Ordering::SeqCst);
    match step() {
        Ok(r) => {
            tracing::info!(node = %shared.config.node_id, block = id, gs = r.gs, len = r.length, state = ?r.state, "replica recovery step");
            respond(&mut &*stream, Status::Success, "", r.length).map_err(|e| format!("answering: {e}"))
        }
        Err(e) => {
            let why = format!("recovery of block {id}: {e}");
            let _ = respond(&mut &*stream, status_of(&e), &why, 0);
            Err(why)
        }
    }
}
