//! Client <-> RM (`ApplicationClientProtocol`).

use compute_proto::errors;
use compute_proto::ids::ApplicationId;
use compute_proto::records::{self as rec, NodeState};
use compute_proto::{ApplicationClientRequest as Q, ApplicationClientResponse as A};
use rpc::frame::{RemoteError, Request, RETRIABLE_EXCEPTION};

use super::{now_wall_ms, AppInfo, Shared};
use crate::types::AppId;

pub(super) async fn handle(shared: &Shared, req: Request<Q>) -> Result<A, RemoteError> {
    match req.body {
        Q::SubmitApplication { submission } => submit(shared, req.header.user, submission).await,
        Q::GetApplicationReport { app_id } => {
            let core = shared.core();
            let app = core.app_of(&app_id).ok_or_else(|| not_found(&app_id))?;
            Ok(A::Report { report: core.report(app).ok_or_else(|| not_found(&app_id))? })
        }
        Q::ListApplications { states } => {
            let core = shared.core();
            let reports = core
                .apps
                .keys()
                .filter_map(|a| core.report(*a))
                .filter(|r| states.is_empty() || states.contains(&r.state))
                .collect();
            Ok(A::Applications { reports })
        }
        Q::KillApplication { app_id } => {
            {
                let mut core = shared.core();
                let app = core.app_of(&app_id).ok_or_else(|| not_found(&app_id))?;
                let d = core.attempts.kill(app, "Application killed by user.").map_err(yarn)?;
                shared.apply(&mut core, d);
            }
            shared.flush().await.map_err(|e| RemoteError::new(RETRIABLE_EXCEPTION, format!("the RM store: {e}")))?;
            Ok(A::KillRequested { completed: true })
        }
        Q::GetClusterNodes { states } => {
            let core = shared.core();
            let nodes = core
                .nodes
                .iter()
                .map(|(id, n)| {
                    let free = core.scheduler.node_free(id).unwrap_or_default();
                    rec::NodeReport {
                        node_id: n.ctl_addr.clone(),
                        rack: n.rack.clone(),
                        http_addr: n.http_addr.clone(),
                        state: if n.health.healthy { NodeState::Running } else { NodeState::Unhealthy },
                        health_report: n.health.report.clone(),
                        capability: n.capability,
                        used: rec::Resource {
                            memory_mb: n.capability.memory_mb.saturating_sub(free.memory_mb),
                            vcores: n.capability.vcores.saturating_sub(free.vcores),
                        },
                        containers: core.scheduler.containers().filter(|c| &c.node == id).count() as u32,
                        last_health_update_ms: n.health_ms,
                    }
                })
                .filter(|r| states.is_empty() || states.contains(&r.state))
                .collect();
            Ok(A::Nodes { nodes })
        }
    }
}

fn not_found(id: &ApplicationId) -> RemoteError {
    RemoteError::new(errors::APPLICATION_NOT_FOUND, format!("Application with id '{id}' doesn't exist in RM."))
}

pub(super) fn yarn(e: impl std::fmt::Display) -> RemoteError {
    RemoteError::new(errors::YARN_EXCEPTION, e.to_string())
}

/// Numbers the app, stores it, and only then acknowledges it.
async fn submit(shared: &Shared, user: String, mut submission: rec::ApplicationSubmission) -> Result<A, RemoteError> {
    if submission.queue.is_empty() {
        submission.queue = "default".into();
    }
    if !shared.config.scheduler.queues.contains_key(&submission.queue) {
        return Err(yarn(format!("unknown queue {}", submission.queue)));
    }
    let max = shared.config.scheduler.max_allocation;
    if submission.am_resource.memory_mb > max.memory_mb
        || submission.am_resource.vcores > max.vcores
        || submission.am_resource.memory_mb == 0
    {
        return Err(RemoteError::new(
            errors::INVALID_RESOURCE_REQUEST,
            format!("AM resource {:?} is empty or over the largest container {max}", submission.am_resource),
        ));
    }
    {
        let core = shared.core();
        let live = core.attempts.apps().filter(|a| !a.state.is_final()).count();
        if live >= shared.config.max_apps {
            return Err(yarn(format!("too many unfinished applications ({live})")));
        }
    }
    let seq = {
        let mut store = shared.store.lock().await;
        match store.next("app").await {
            Ok(seq) => seq,
            // Asked once more: an expired store session was replaced by the failed call (a
            // number taken by a lost answer is skipped: ids need not be dense).
            Err(_) => store
                .next("app")
                .await
                .map_err(|e| RemoteError::new(RETRIABLE_EXCEPTION, format!("the RM store: {e}")))?,
        }
    };
    let seq = u32::try_from(seq).map_err(|_| yarn("application sequence exhausted"))?;
    let id = ApplicationId { cluster_ts: shared.cluster_ts, seq };
    let app = AppId(u64::from(seq));
    {
        let mut core = shared.core();
        let max_attempts = (submission.max_attempts > 0).then_some(submission.max_attempts);
        core.attempts.submit(app, max_attempts).map_err(yarn)?;
        core.apps.insert(
            app,
            AppInfo {
                id,
                user: user.clone(),
                submission: submission.clone(),
                start_ms: now_wall_ms(),
                finish_ms: None,
                am_host: String::new(),
                am_rpc_port: 0,
                tracking_url: String::new(),
                progress: rec::Progress::from_ppm(0),
                allocated: Vec::new(),
                completed: Vec::new(),
                updated_nodes: Vec::new(),
                response_id: 0,
            },
        );
        core.attempts.submission_stored(app).map_err(yarn)?;
        core.dirty.insert(app);
    }
    if let Err(e) = shared.flush().await {
        // Not stored: not acknowledged, and forgotten (its number is never reused).
        let mut core = shared.core();
        core.apps.remove(&app);
        let _ = core.attempts.kill(app, "not stored");
        return Err(RemoteError::new(RETRIABLE_EXCEPTION, format!("storing {id}: {e}")));
    }
    {
        let mut core = shared.core();
        core.scheduler.add_app(app, &submission.queue, &user).map_err(yarn)?;
        let d = core.attempts.accept(app).map_err(yarn)?;
        shared.apply(&mut core, d);
    }
    shared.flush_or_log().await;
    tracing::info!(app = %id, %user, queue = %submission.queue, "application submitted");
    Ok(A::Submitted { app_id: id })
}
