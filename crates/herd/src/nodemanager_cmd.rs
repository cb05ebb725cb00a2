//! `herd nodemanager`: a NodeManager daemon (`nodemanager::daemon`): runs containers for the
//! ResourceManager's applications, serves the control and shuffle ports, holds its membership
//! in group `nodemanager`. Prints `herd nodemanager ready ctl=<addr> shuffle=<addr> http=<addr>`
//! once its ports are bound (`http=` empty without `--listen-http`); SIGTERM or ctrl-c stops it
//! and its containers.

use anyhow::Context;
use clap::Args;
use compute_proto::Resource;
use member::report::Reporter;
use nodemanager::daemon::{self, Nodemanager, NodemanagerConfig};
use nodemanager::health::HealthScript;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct NodemanagerArgs {
    /// This NodeManager's id (its member id in group `nodemanager`).
    #[arg(long)]
    id: String,
    /// A local dir for containers' working dirs and map outputs (repeat for several disks).
    #[arg(long = "local-dir", required = true)]
    local_dir: Vec<PathBuf>,
    /// Where containers' stdout and stderr go.
    #[arg(long)]
    log_dir: PathBuf,
    /// The ResourceManager's address (host:port).
    #[arg(long, value_name = "HOST:PORT")]
    rm: String,
    /// The keeper connect string (host:port,...).
    #[arg(long, value_name = "HOST:PORT,...")]
    keepers: String,
    /// Memory offered to containers, MiB.
    #[arg(long, default_value_t = 8192)]
    memory_mb: u64,
    /// Virtual cores offered to containers.
    #[arg(long, default_value_t = 8)]
    vcores: u32,
    /// The control port (container start/stop); port 0 picks a free one.
    #[arg(long, default_value = daemon::LISTEN_CTL_DEFAULT)]
    listen_ctl: SocketAddr,
    /// The shuffle port; port 0 picks a free one.
    #[arg(long, default_value = daemon::LISTEN_SHUFFLE_DEFAULT)]
    listen_shuffle: SocketAddr,
    /// Where the HTTP server (container logs) listens; port 0 picks a free one.
    #[arg(long)]
    listen_http: Option<SocketAddr>,
    /// The NameNode's RPC address (host:port), for containers' files from the DFS.
    #[arg(long, value_name = "HOST:PORT")]
    namenode: Option<String>,
    /// This NodeManager's rack path.
    #[arg(long, default_value = daemon::RACK_DEFAULT)]
    rack: String,
    /// Heartbeat interval.
    #[arg(long, default_value_t = daemon::HEARTBEAT_INTERVAL_DEFAULT.as_millis() as u64)]
    heartbeat_ms: u64,
    /// The health script (a line starting with ERROR marks the node unhealthy).
    #[arg(long)]
    health_script: Option<PathBuf>,
    /// The health script's time-out.
    #[arg(long, default_value_t = 60_000)]
    health_timeout_ms: u64,
    /// The keeper is Apache ZooKeeper: send none of herd's session options.
    #[arg(long)]
    plain_zookeeper: bool,
}

pub async fn run(a: NodemanagerArgs, reporter: Option<Reporter>) -> anyhow::Result<()> {
    anyhow::ensure!(a.heartbeat_ms > 0, "--heartbeat-ms must be positive");
    let mut membership = crate::member_cmd::daemon_membership(&a.keepers, daemon::GROUP, &a.id, String::new())
        .with_context(|| format!("--keepers {:?}", a.keepers))?;
    if a.plain_zookeeper {
        membership.herd_options = None;
    }
    let mut cfg = NodemanagerConfig::new(&a.id, a.local_dir.clone(), a.log_dir.clone(), &a.rm, membership);
    cfg.resource = Resource { memory_mb: a.memory_mb, vcores: a.vcores };
    cfg.listen_ctl = a.listen_ctl;
    cfg.listen_shuffle = a.listen_shuffle;
    cfg.rack = a.rack.clone();
    cfg.listen_http = a.listen_http;
    cfg.namenode = a.namenode.clone();
    cfg.heartbeat_interval = Duration::from_millis(a.heartbeat_ms);
    cfg.health_script = a.health_script.clone().map(|path| HealthScript {
        path,
        args: Vec::new(),
        timeout: Duration::from_millis(a.health_timeout_ms),
    });
    let nm = Nodemanager::start(cfg, reporter).await.context("starting the nodemanager")?;
    // The one line on stdout: tests and the supervisor read the bound addresses from it.
    let http = nm.http_addr().map(|a| a.to_string()).unwrap_or_default();
    // Before the ready line: a SIGTERM sent on seeing it must find the handler installed.
    let stop = crate::stop_signal();
    println!("herd nodemanager ready ctl={} shuffle={} http={http}", nm.ctl_addr(), nm.shuffle_addr());
    stop.await;
    tracing::info!("nodemanager stopping on signal");
    nm.shutdown().await;
    Ok(())
}
