//! `herd resourcemanager`: the compute engine's master (see ARCHITECTURE.md, "Compute").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use member::report::Reporter;
use resourcemanager::server::{ResourceManager, RmConfig};
use resourcemanager::{attempts, scheduler};

use crate::member_cmd;

#[derive(Args)]
pub struct ResourcemanagerArgs {
    /// Its member id (`resourcemanager/<id>` in the keeper's views).
    #[arg(long, default_value = "1")]
    id: String,
    /// The RPC address for clients, AMs and NodeManagers (YARN's 8032).
    #[arg(long, default_value = RmConfig::LISTEN_DEFAULT)]
    listen: SocketAddr,
    /// Keepers, `host:port,...`: membership, the NodeManager view and the store.
    #[arg(long)]
    keepers: String,
    /// A scheduler queue and its share of the cluster, `NAME=SHARE` (repeatable; shares sum
    /// to at most 1; `default` must be one). Default: `default=1`.
    #[arg(long = "queue", value_name = "NAME=SHARE")]
    queues: Vec<String>,
    /// An AM silent this long is failed and, budget permitting, replaced.
    #[arg(long, default_value_t = attempts::Config::default().am_expiry_ms)]
    am_expiry_ms: u64,
    /// AM attempts an app gets when its submission names none.
    #[arg(long, default_value_t = attempts::Config::default().default_max_attempts)]
    max_attempts: u32,
}

fn parse_queues(specs: &[String]) -> anyhow::Result<BTreeMap<String, f64>> {
    if specs.is_empty() {
        return Ok(scheduler::Config::default().queues);
    }
    let mut queues = BTreeMap::new();
    for s in specs {
        let (name, share) = s.split_once('=').with_context(|| format!("--queue {s:?}: expected NAME=SHARE"))?;
        let share: f64 = share.parse().with_context(|| format!("--queue {s:?}: bad share"))?;
        queues.insert(name.to_string(), share);
    }
    Ok(queues)
}

pub async fn run(a: ResourcemanagerArgs, reporter: Option<Reporter>) -> anyhow::Result<()> {
    member::view::validate_name(&a.id)?;
    let membership = member_cmd::daemon_membership(&a.keepers, "resourcemanager", &a.id, format!("rpc={}", a.listen))?;
    let keeper = membership.client.clone();
    let config = RmConfig {
        rpc_listen: a.listen,
        membership,
        keeper,
        scheduler: scheduler::Config { queues: parse_queues(&a.queues)?, ..scheduler::Config::default() },
        attempts: attempts::Config {
            am_expiry_ms: a.am_expiry_ms,
            default_max_attempts: a.max_attempts.max(1),
            ..attempts::Config::default()
        },
        max_connections: RmConfig::MAX_CONNECTIONS_DEFAULT,
        max_apps: RmConfig::MAX_APPS_DEFAULT,
        expiry_check: Duration::from_secs(1),
    };
    let rm = ResourceManager::start(config, reporter).await.context("starting the resourcemanager")?;
    // The one line on stdout: `herd up` and tests read the bound address from it.
    // Before the ready line: a SIGTERM sent on seeing it must find the handler installed.
    let stop = crate::stop_signal();
    println!("herd resourcemanager ready rpc={}", rm.rpc_addr());
    stop.await;
    tracing::info!("resourcemanager stopping on signal");
    rm.shutdown().await;
    Ok(())
}
