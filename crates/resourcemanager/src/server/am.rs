//! ApplicationMaster <-> RM (`ApplicationMasterProtocol`), fenced by the attempt lifecycle.

use compute_proto::errors;
use compute_proto::ids::ApplicationAttemptId;
use compute_proto::records::{self as rec, FinalApplicationStatus};
use compute_proto::{ApplicationMasterRequest as Q, ApplicationMasterResponse as A};
use rpc::frame::{RemoteError, RETRIABLE_EXCEPTION};

use super::{completed_status, exits, Core, Shared};
use crate::attempts::{Error, FinalStatus};
use crate::scheduler::{self, ContainerRequest};
use crate::types::{AttemptId, Resources};

/// Asks, releases and blacklist entries one Allocate may carry.
const MAX_ITEMS: usize = 10_000;

pub(super) async fn handle(shared: &Shared, req: Q) -> Result<A, RemoteError> {
    let now = shared.now_ms();
    let answer = match req {
        Q::RegisterApplicationMaster { attempt, host, rpc_port, tracking_url } => {
            let mut core = shared.core();
            let a = current(&core, &attempt)?;
            match core.attempts.am_registered(a, now) {
                // A retried Register (its answer was lost, or the store could not record it
                // and the AM was told to retry): the same answer again.
                Ok(()) | Err(Error::AlreadyRegistered(_)) => {}
                Err(e) => return Err(fenced(e, &attempt)),
            }
            if let Some(info) = core.apps.get_mut(&a.app) {
                info.am_host = host;
                info.am_rpc_port = rpc_port;
                info.tracking_url = tracking_url;
            }
            core.dirty.insert(a.app);
            let m = shared.config.scheduler.max_allocation;
            A::Registered {
                max_resource: rec::Resource { memory_mb: m.memory_mb, vcores: m.vcores },
                rm_epoch: shared.epoch(),
            }
        }
        Q::Allocate {
            attempt,
            last_response_id: _,
            asks,
            releases,
            blacklist_additions,
            blacklist_removals,
            progress,
        } => {
            if asks.len() + releases.len() + blacklist_additions.len() + blacklist_removals.len() > MAX_ITEMS {
                return Err(RemoteError::new(errors::INVALID_RESOURCE_REQUEST, "too many items in one Allocate"));
            }
            let mut core = shared.core();
            let a = current(&core, &attempt)?;
            core.attempts.am_heartbeat(a, now).map_err(|e| fenced(e, &attempt))?;
            allocate(shared, &mut core, a, asks, releases, blacklist_additions, blacklist_removals)?;
            let cluster_nodes = core.nodes.len() as u32;
            let free =
                core.nodes.keys().filter_map(|n| core.scheduler.node_free(n)).fold(Resources::ZERO, |x, y| x + y);
            let Some(info) = core.apps.get_mut(&a.app) else { return Err(not_found(&attempt)) };
            info.progress = progress;
            info.response_id = info.response_id.wrapping_add(1);
            A::Allocated {
                response_id: info.response_id,
                allocated: std::mem::take(&mut info.allocated),
                completed: std::mem::take(&mut info.completed),
                updated_nodes: std::mem::take(&mut info.updated_nodes),
                available: rec::Resource { memory_mb: free.memory_mb, vcores: free.vcores },
                cluster_nodes,
                rm_epoch: shared.epoch(),
            }
        }
        Q::FinishApplicationMaster { attempt, final_status, diagnostics, tracking_url } => {
            let mut core = shared.core();
            let a = current(&core, &attempt)?;
            let status = match final_status {
                FinalApplicationStatus::Succeeded => FinalStatus::Succeeded,
                FinalApplicationStatus::Killed => FinalStatus::Killed,
                FinalApplicationStatus::Failed | FinalApplicationStatus::Undefined => FinalStatus::Failed,
            };
            let d = core.attempts.am_unregistered(a, status, &diagnostics).map_err(|e| fenced(e, &attempt))?;
            if let Some(info) = core.apps.get_mut(&a.app) {
                info.tracking_url = tracking_url;
                info.progress = rec::Progress::DONE;
            }
            shared.apply(&mut core, d);
            A::Finished { unregistered: true }
        }
    };
    // Register and Finish change the stored attempt; the write comes before the answer.
    if !matches!(answer, A::Allocated { .. }) {
        shared.flush().await.map_err(|e| RemoteError::new(RETRIABLE_EXCEPTION, format!("the RM store: {e}")))?;
    }
    Ok(answer)
}

fn not_found(attempt: &ApplicationAttemptId) -> RemoteError {
    RemoteError::new(errors::APPLICATION_NOT_FOUND, format!("no application for {attempt}"))
}

fn current(core: &Core, attempt: &ApplicationAttemptId) -> Result<AttemptId, RemoteError> {
    core.attempt_of(attempt).ok_or_else(|| not_found(attempt))
}

/// The lifecycle's refusal as YARN's exception.
fn fenced(e: Error, attempt: &ApplicationAttemptId) -> RemoteError {
    let class = match e {
        Error::AttemptNotCurrent { .. } => errors::APPLICATION_ATTEMPT_NOT_FOUND,
        Error::NotRegistered(_) => errors::APPLICATION_MASTER_NOT_REGISTERED,
        Error::AlreadyRegistered(_) => "org.apache.hadoop.yarn.exceptions.InvalidApplicationMasterRequestException",
        Error::UnknownApp(_) => errors::APPLICATION_NOT_FOUND,
        _ => errors::YARN_EXCEPTION,
    };
    RemoteError::new(class, format!("{attempt}: {e}"))
}

#[allow(clippy::too_many_arguments)]
fn allocate(
    shared: &Shared,
    core: &mut Core,
    a: AttemptId,
    asks: Vec<rec::ResourceRequest>,
    releases: Vec<compute_proto::ids::ContainerId>,
    blacklist_additions: Vec<compute_proto::ids::NodeId>,
    blacklist_removals: Vec<compute_proto::ids::NodeId>,
) -> Result<(), RemoteError> {
    let invalid = |e: scheduler::Error| RemoteError::new(errors::INVALID_RESOURCE_REQUEST, e.to_string());
    for r in releases {
        let Some(id) = core.container_of(&r, shared.container_epoch) else { continue };
        if let Ok(c) = core.scheduler.release(a, id) {
            if let Some(n) = core.nodes.get_mut(&c.node) {
                n.to_kill.insert(r);
            }
            core.report_completed(a.app, completed_status(r, exits::ABORTED, "released by the AM".into()));
        }
    }
    for (list, on) in [(blacklist_additions, true), (blacklist_removals, false)] {
        for n in list {
            if let Some(id) = node_named(core, &n) {
                core.scheduler.set_blacklisted(a.app, &id, on).map_err(invalid)?;
            }
        }
    }
    if !asks.is_empty() {
        let requests: Vec<ContainerRequest> = asks
            .iter()
            .map(|r| ContainerRequest {
                priority: r.priority,
                resources: Resources::new(r.resource.memory_mb, r.resource.vcores),
                nodes: {
                    let mut nodes: Vec<String> = r.nodes.iter().flat_map(|h| nodes_by_host(core, h)).collect();
                    nodes.sort();
                    nodes.dedup();
                    nodes
                },
                racks: r.racks.clone(),
                relax_locality: r.relax_locality,
                count: r.count,
            })
            .collect();
        let rows = scheduler::expand(&requests, |n| core.scheduler.rack_of(n).map(str::to_string));
        core.scheduler.update_asks(a, &rows).map_err(invalid)?;
    }
    Ok(())
}

/// The member id of the NodeManager at this control address.
fn node_named(core: &Core, n: &compute_proto::ids::NodeId) -> Option<String> {
    core.nodes.iter().find(|(_, i)| i.ctl_addr == *n).map(|(id, _)| id.clone())
}

/// The member ids of the NodeManagers `host` names: the one with that member id, or every
/// one on that host (YARN's host-level ask: any NodeManager of the host is node-local; several
/// run on one host in `herd up`, and an ask that named only the first of them kept the
/// others idle while that one took every map as it freed a slot).
fn nodes_by_host(core: &Core, host: &str) -> Vec<String> {
    if core.nodes.contains_key(host) {
        return vec![host.to_string()];
    }
    core.nodes.iter().filter(|(_, i)| i.ctl_addr.host == host).map(|(id, _)| id.clone()).collect()
}
