//! The service thread: the one conversation with the RM (see `daemon.rs`). Each turn: follow
//! the membership (a new incarnation registers anew; an expelled one kills its containers),
//! register if not registered as this incarnation, heartbeat, follow the answer; then sleep
//! one heartbeat interval. A failed call waits for the next turn; nothing retries faster.

use std::sync::Arc;

use compute_proto::nm_rm::{ResourceTrackerRequest, ResourceTrackerResponse};
use compute_proto::records::{ContainerState, ContainerStatus, NodeHealth};
use compute_proto::{exit_status, ContainerId};
use member::membership::Status;
use rpc::{Caller, Protocol, RetryPolicy, RpcClient};
use tokio::sync::watch;

use super::{sleep_unless_stopped, Shared};

pub(super) fn run(shared: Arc<Shared>, status: watch::Receiver<Status>) {
    // Kills spawn their SIGKILL timers on the runtime.
    let _runtime = shared.runtime.enter();
    let policy = RetryPolicy {
        io_timeout: shared.cfg.rpc_timeout,
        retry_for: std::time::Duration::ZERO,
        first_pause: std::time::Duration::from_millis(50),
    };
    let mut rm = RpcClient::new(
        shared.cfg.rm.clone(),
        Protocol::NodeManagerResourceManager,
        Caller::new("nodemanager", Vec::new()),
        policy,
    );
    let mut member: Option<i64> = None;
    let mut registered: Option<i64> = None;
    let mut failing = false;
    loop {
        let now = status.borrow().clone();
        match now {
            Status::Member { incarnation, .. } => {
                if member.is_some_and(|m| m != incarnation) {
                    tracing::warn!(incarnation, "a new incarnation: the old one's containers are killed");
                    shared.containers.kill_all();
                }
                member = Some(incarnation);
            }
            Status::Expelled { .. } | Status::Left => {
                if member.take().is_some() {
                    tracing::warn!("expelled: killing the containers of the old incarnation");
                    shared.kill_where(exit_status::ABORTED, |_| true);
                }
                registered = None;
            }
            Status::Joining => {}
        }
        if let Some(inc) = member {
            let r = turn(&shared, &mut rm, inc, &mut registered);
            match r {
                Ok(()) => {
                    if failing {
                        tracing::info!(rm = %shared.cfg.rm, "the RM answers again");
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(rm = %shared.cfg.rm, "{e}");
                    }
                    failing = true;
                }
            }
        }
        if !sleep_unless_stopped(&shared.stop, shared.cfg.heartbeat_interval) {
            return;
        }
    }
}

/// One registration (if needed) and one heartbeat.
fn turn(shared: &Arc<Shared>, rm: &mut RpcClient, inc: i64, registered: &mut Option<i64>) -> Result<(), String> {
    if *registered != Some(inc) {
        let running = running_statuses(shared);
        let req = ResourceTrackerRequest::RegisterNodeManager {
            id: shared.cfg.id.clone(),
            incarnation: inc,
            resource: shared.cfg.resource,
            ctl_addr: shared.node_id.clone(),
            http_addr: shared.cfg.http_addr.clone(),
            shuffle_addr: shared.shuffle_addr.to_string(),
            rack: shared.cfg.rack.clone(),
            running,
        };
        match rm.call(&req).map_err(|e| format!("registering: {e}"))? {
            ResourceTrackerResponse::Registered { rm_epoch } => {
                shared.fence.admit(rm_epoch).map_err(|e| format!("registration answered by {e}"))?;
                tracing::info!(incarnation = inc, rm_epoch, "registered with the RM");
                *registered = Some(inc);
            }
            other => return Err(format!("registering: unexpected answer {other:?}")),
        }
    }
    let mut statuses = running_statuses(shared);
    let completed: Vec<ContainerStatus> = shared.lock().completed.values().cloned().collect();
    let sent: Vec<ContainerId> = completed.iter().map(|s| s.container_id).collect();
    statuses.extend(completed);
    let health = match shared.lock().health.clone() {
        Some(h) => NodeHealth { healthy: h.healthy, report: h.report },
        None => NodeHealth { healthy: true, report: String::new() },
    };
    let req = ResourceTrackerRequest::NodeHeartbeat {
        id: shared.cfg.id.clone(),
        incarnation: inc,
        statuses,
        health,
        last_rm_epoch: shared.fence.current(),
    };
    let answer = rm.call(&req).map_err(|e| format!("heartbeat: {e}"))?;
    let ResourceTrackerResponse::Heartbeat { containers_to_kill, finished_apps, finished_attempts, resync, rm_epoch } =
        answer
    else {
        return Err(format!("heartbeat: unexpected answer {answer:?}"));
    };
    if let Err(e) = shared.fence.admit(rm_epoch) {
        // A deposed RM: its orders are not followed and its acknowledgement does not count.
        return Err(format!("heartbeat answered by {e}; ignored"));
    }
    {
        let mut st = shared.lock();
        for id in &sent {
            st.completed.remove(id);
        }
    }
    for id in &containers_to_kill {
        shared.kill(id, exit_status::KILLED_BY_RESOURCEMANAGER);
    }
    for a in finished_attempts {
        shared.attempt_finished(a);
        shared.kill_where(exit_status::KILLED_BY_RESOURCEMANAGER, |c| c.attempt == a);
    }
    for app in finished_apps {
        shared.app_finished(app);
    }
    if resync {
        tracing::info!(rm_epoch, "the RM asks for a resync: registering again");
        *registered = None;
    }
    Ok(())
}

fn running_statuses(shared: &Shared) -> Vec<ContainerStatus> {
    shared
        .lock()
        .live
        .iter()
        .map(|id| ContainerStatus {
            container_id: *id,
            state: ContainerState::Running,
            exit_status: exit_status::INVALID,
            diagnostics: String::new(),
        })
        .collect()
}
