//! NodeManager <-> RM (`ResourceTracker`): registration, heartbeats, allocation.

use compute_proto::errors;
use compute_proto::records::{self as rec, ContainerState};
use compute_proto::{ResourceTrackerRequest as Q, ResourceTrackerResponse as A};
use rpc::frame::RemoteError;

use super::{completed_status, Launch, NodeInfo, Shared};
use crate::types::Resources;

/// Container statuses one heartbeat may carry.
const MAX_STATUSES: usize = 100_000;

pub(super) async fn handle(shared: &Shared, req: Q) -> Result<A, RemoteError> {
    let rm_epoch = shared.epoch();
    if rm_epoch == 0 {
        // Not a member (yet, or any more): no orders from this RM.
        return Err(RemoteError::new(errors::YARN_EXCEPTION, "the ResourceManager is not a member; try again"));
    }
    let now = shared.now_ms();
    let answer = match req {
        Q::RegisterNodeManager { id, incarnation, resource, ctl_addr, http_addr, shuffle_addr: _, rack, running } => {
            if running.len() > MAX_STATUSES {
                return Err(RemoteError::new(errors::YARN_EXCEPTION, "too many containers"));
            }
            let mut core = shared.core();
            let admitted = core.view.as_ref().is_some_and(|v| v.admit(&id, incarnation).is_ok());
            if !admitted {
                return Err(RemoteError::new(
                    errors::YARN_EXCEPTION,
                    format!("nodemanager {id} at incarnation {incarnation:#x} is not in the view"),
                ));
            }
            let rack = if rack.is_empty() { "/default-rack".to_string() } else { rack };
            let cap = Resources::new(resource.memory_mb, resource.vcores);
            let older = core.nodes.get(&id).is_some_and(|n| n.incarnation != incarnation);
            if older {
                lose_node(shared, &mut core, &id);
            }
            if core.scheduler.set_node(&id, &rack, cap, true).is_err() {
                lose_node(shared, &mut core, &id);
                core.scheduler.set_node(&id, &rack, cap, true).map_err(super::client::yarn)?;
            }
            // Containers this RM run does not know (an old run's, an old attempt's) are killed.
            let mut to_kill = std::collections::BTreeSet::new();
            for s in running.iter().filter(|s| s.state != ContainerState::Complete) {
                let known = core
                    .container_of(&s.container_id, shared.container_epoch)
                    .and_then(|c| core.scheduler.container(c));
                if known.is_none() {
                    to_kill.insert(s.container_id);
                }
            }
            core.nodes.insert(
                id.clone(),
                NodeInfo {
                    incarnation,
                    ctl_addr,
                    http_addr,
                    rack,
                    capability: resource,
                    health: rec::NodeHealth { healthy: true, report: String::new() },
                    health_ms: super::now_wall_ms(),
                    to_kill,
                },
            );
            tracing::info!(nodemanager = %id, incarnation = format_args!("{incarnation:#x}"), "nodemanager registered");
            A::Registered { rm_epoch }
        }
        Q::NodeHeartbeat { id, incarnation, statuses, health, last_rm_epoch: _ } => {
            if statuses.len() > MAX_STATUSES {
                return Err(RemoteError::new(errors::YARN_EXCEPTION, "too many container statuses"));
            }
            let mut core = shared.core();
            let known = core.nodes.get(&id).is_some_and(|n| n.incarnation == incarnation);
            let in_view = core.view.as_ref().is_some_and(|v| v.admit(&id, incarnation).is_ok());
            if !known || !in_view {
                return Ok(A::Heartbeat {
                    containers_to_kill: Vec::new(),
                    finished_apps: Vec::new(),
                    finished_attempts: Vec::new(),
                    resync: true,
                    rm_epoch,
                });
            }
            if let Some(n) = core.nodes.get_mut(&id) {
                if n.health != health {
                    n.health_ms = super::now_wall_ms();
                }
                n.health = health.clone();
            }
            let rack = core.scheduler.rack_of(&id).unwrap_or("/default-rack").to_string();
            if let Some(cap) = core.nodes.get(&id).map(|n| n.capability) {
                let _ = core.scheduler.set_node(&id, &rack, Resources::new(cap.memory_mb, cap.vcores), health.healthy);
            }
            for s in statuses {
                let Some(cid) = core.container_of(&s.container_id, shared.container_epoch) else { continue };
                let Some(c) = core.scheduler.container(cid).cloned() else {
                    if s.state != ContainerState::Complete {
                        if let Some(n) = core.nodes.get_mut(&id) {
                            n.to_kill.insert(s.container_id);
                        }
                    }
                    continue;
                };
                if c.is_am && s.state == ContainerState::Running {
                    let _ = core.attempts.am_launched(c.attempt, now);
                }
                if s.state != ContainerState::Complete {
                    continue;
                }
                core.scheduler.container_completed(cid);
                if let Some(n) = core.nodes.get_mut(&id) {
                    n.to_kill.remove(&s.container_id);
                }
                if c.is_am {
                    let d = core.attempts.am_container_exited(c.attempt, s.exit_status);
                    shared.apply(&mut core, d);
                }
                core.report_completed(c.attempt.app, completed_status(s.container_id, s.exit_status, s.diagnostics));
            }
            for c in core.scheduler.on_node_heartbeat(&id, now) {
                let Some(token) = shared.token(&core, &c) else { continue };
                if c.is_am {
                    if let Err(e) = core.attempts.am_allocated(c.attempt, c.id, &id, now) {
                        tracing::warn!(attempt = %c.attempt, "AM container not wanted: {e}");
                        let _ = core.scheduler.release(c.attempt, c.id);
                        continue;
                    }
                    core.dirty.insert(c.attempt.app);
                    let Some((launch, user)) =
                        core.apps.get(&c.attempt.app).map(|i| (i.submission.am_launch.clone(), i.user.clone()))
                    else {
                        continue;
                    };
                    let ctl_addr = token.node_id.to_string();
                    tracing::info!(attempt = %c.attempt, nodemanager = %id, container = %token.container_id, "AM container allocated");
                    core.launches.push(Launch { attempt: c.attempt, ctl_addr, token, launch, user });
                } else {
                    let node_http_addr = core.nodes.get(&id).map(|n| n.http_addr.clone()).unwrap_or_default();
                    if let Some(info) = core.apps.get_mut(&c.attempt.app) {
                        info.allocated.push(rec::Container { token, priority: c.priority, node_http_addr });
                    }
                }
            }
            let containers_to_kill =
                core.nodes.get_mut(&id).map(|n| std::mem::take(&mut n.to_kill)).unwrap_or_default();
            A::Heartbeat {
                containers_to_kill: containers_to_kill.into_iter().collect(),
                finished_apps: core.finished_apps.clone(),
                finished_attempts: core.finished_attempts.clone(),
                resync: false,
                rm_epoch,
            }
        }
    };
    shared.flush_or_log().await;
    Ok(answer)
}

/// A NodeManager is gone (left the view, or came back as a new incarnation): its containers
/// are completed -100 for their AMs, and attempts whose AM was there fail.
pub(super) fn lose_node(shared: &Shared, core: &mut super::Core, id: &str) {
    // Every AM hears of it (YARN's updated nodes): map outputs there are gone too.
    if let Some(n) = core.nodes.remove(id) {
        let report = rec::NodeReport {
            node_id: n.ctl_addr.clone(),
            rack: n.rack.clone(),
            http_addr: n.http_addr.clone(),
            state: rec::NodeState::Lost,
            health_report: "left the nodemanager view".into(),
            capability: n.capability,
            used: rec::Resource::default(),
            containers: 0,
            last_health_update_ms: n.health_ms,
        };
        for info in core.apps.values_mut().filter(|i| i.finish_ms.is_none()) {
            if info.updated_nodes.len() >= super::UPDATED_NODES_MAX {
                info.updated_nodes.remove(0);
            }
            info.updated_nodes.push(report.clone());
        }
    }
    for c in core.scheduler.remove_node(id) {
        let Some(attempt) = core.wire_attempt(c.attempt) else { continue };
        let Some(cid) = compute_proto::ids::ContainerId::new(attempt, shared.container_epoch, c.id.seq) else {
            continue;
        };
        let why = format!("Container released on a *lost* node {id}");
        core.report_completed(c.attempt.app, completed_status(cid, super::exits::ABORTED, why));
    }
    let d = core.attempts.node_lost(id);
    shared.apply(core, d);
    tracing::info!(nodemanager = %id, "nodemanager lost");
}
