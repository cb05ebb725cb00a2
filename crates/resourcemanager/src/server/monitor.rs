//! The RM's loops: its own epoch, the `nodemanager` view, AM expiry, and the AM launcher.
//! Each ends when the RM stops (its task is aborted).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use compute_proto::{ContainerManagementRequest, ContainerManagementResponse};
use member::membership::Status;
use member::view::Watcher;
use rpc::client::{Caller, RetryPolicy, RpcClient};
use rpc::frame::Protocol;
use tokio::sync::watch;

use super::{exits, nm, start_request, Launch, Shared};

/// The RM epoch follows its own membership: its incarnation while a member, else 0.
pub(super) async fn watch_epoch(shared: Arc<Shared>, mut status: watch::Receiver<Status>) {
    loop {
        let epoch = match &*status.borrow_and_update() {
            Status::Member { incarnation, .. } => *incarnation,
            _ => 0,
        };
        if shared.epoch.swap(epoch, Ordering::SeqCst) != epoch {
            tracing::info!(epoch = format_args!("{epoch:#x}"), "resourcemanager epoch");
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// Follows the `nodemanager` group: a NodeManager whose incarnation left the view is lost at
/// once.
pub(super) async fn watch_nodemanagers(shared: Arc<Shared>, kick: watch::Sender<()>) {
    let mut watcher = match Watcher::new(shared.config.keeper.clone(), "nodemanager") {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot watch the nodemanager group: {e}");
            return;
        }
    };
    loop {
        let view = watcher.next().await;
        {
            let mut core = shared.core();
            let gone: Vec<String> = core
                .nodes
                .iter()
                .filter(|(id, n)| view.members.get(*id).map(|m| m.incarnation) != Some(n.incarnation))
                .map(|(id, _)| id.clone())
                .collect();
            for id in gone {
                nm::lose_node(&shared, &mut core, &id);
            }
            core.view = Some(view);
        }
        shared.flush_or_log().await;
        let _ = kick.send(());
    }
}

/// AM expiry, checked every `expiry_check`.
pub(super) async fn expiry(shared: Arc<Shared>, kick: watch::Sender<()>) {
    let mut tick = tokio::time::interval(shared.config.expiry_check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let changed = {
            let mut core = shared.core();
            let d = core.attempts.check_expiry(shared.now_ms());
            let changed = !d.is_empty();
            shared.apply(&mut core, d);
            changed
        };
        if changed {
            shared.flush_or_log().await;
            let _ = kick.send(());
        }
    }
}

/// Starts allocated AM containers on their NodeManagers (YARN's AMLauncher), after their
/// attempt's allocation is stored.
pub(super) async fn launcher(shared: Arc<Shared>, mut kick: watch::Receiver<()>) {
    loop {
        if kick.changed().await.is_err() {
            return;
        }
        let launches: Vec<Launch> = std::mem::take(&mut shared.core().launches);
        if launches.is_empty() {
            continue;
        }
        shared.flush_or_log().await;
        for l in launches {
            let s = shared.clone();
            tokio::spawn(async move { launch(s, l).await });
        }
    }
}

async fn launch(shared: Arc<Shared>, l: Launch) {
    let req: ContainerManagementRequest = start_request(&l);
    let addr = l.ctl_addr.clone();
    let user = l.user.clone();
    let policy = RetryPolicy {
        io_timeout: Duration::from_secs(5),
        retry_for: Duration::from_secs(5),
        first_pause: Duration::from_millis(50),
    };
    let result = tokio::task::spawn_blocking(move || {
        let mut c = RpcClient::new(addr, Protocol::ApplicationMasterNodeManager, Caller::new(user, Vec::new()), policy);
        c.call::<_, ContainerManagementResponse>(&req)
    })
    .await;
    let now = shared.now_ms();
    {
        let mut core = shared.core();
        match result {
            Ok(Ok(_)) => {
                tracing::info!(attempt = %l.attempt, nm = %l.ctl_addr, "AM container started");
                let _ = core.attempts.am_launched(l.attempt, now);
            }
            Ok(Err(e)) => {
                tracing::warn!(attempt = %l.attempt, nm = %l.ctl_addr, "AM launch failed: {e}");
                let d = core.attempts.am_container_exited(l.attempt, exits::INVALID);
                shared.apply(&mut core, d);
            }
            Err(e) => tracing::error!("AM launch task: {e}"),
        }
    }
    shared.flush_or_log().await;
}
