//! `herd datanode`: a DataNode daemon (`datanode::daemon`): stores replicas on its data dirs,
//! serves the data port, holds its membership in group `datanode`, and reports to the
//! NameNode. Prints `herd datanode ready data=<addr>` once the data port is bound (the
//! supervisor reads the address from it); SIGTERM or ctrl-c stops it cleanly.

use anyhow::Context;
use clap::Args;
use datanode::daemon::{self, Datanode, DatanodeConfig};
use member::report::Reporter;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Args)]
pub struct DatanodeArgs {
    /// This DataNode's id (its member id in group `datanode`).
    #[arg(long)]
    id: String,
    /// A data dir (repeat for several disks).
    #[arg(long = "data-dir", required = true)]
    data_dir: Vec<PathBuf>,
    /// The NameNode's address (host:port).
    #[arg(long, value_name = "HOST:PORT")]
    namenode: String,
    /// The keeper connect string (host:port,...).
    #[arg(long, value_name = "HOST:PORT,...")]
    keepers: String,
    /// The data port's address; port 0 picks a free one (printed on the ready line).
    #[arg(long, default_value = daemon::LISTEN_DATA_DEFAULT)]
    listen_data: SocketAddr,
    /// The HTTP address (HDFS's 9864): WebHDFS's data side (`/webhdfs/v1/...`); port 0 picks a
    /// free one (printed on the ready line).
    #[arg(long, default_value = "127.0.0.1:9864")]
    listen_http: SocketAddr,
    /// This DataNode's rack path.
    #[arg(long, default_value = daemon::RACK_DEFAULT)]
    rack: String,
    /// Heartbeat interval.
    #[arg(long, default_value_t = daemon::HEARTBEAT_INTERVAL_DEFAULT.as_millis() as u64)]
    heartbeat_ms: u64,
    /// The block scanner starts a full pass at most this often.
    #[arg(long, default_value_t = daemon::SCAN_PERIOD_DEFAULT.as_millis() as u64)]
    scan_period_ms: u64,
    /// The block scanner reads at most this many bytes per second.
    #[arg(long, default_value_t = daemon::SCAN_BYTES_PER_SEC_DEFAULT)]
    scan_bytes_per_sec: u64,
    /// The keeper is Apache ZooKeeper: send none of herd's session options (fast expiry, the
    /// declared heartbeat), which it would refuse.
    #[arg(long)]
    plain_zookeeper: bool,
}

pub async fn run(a: DatanodeArgs, reporter: Option<Reporter>) -> anyhow::Result<()> {
    anyhow::ensure!(a.heartbeat_ms > 0, "--heartbeat-ms must be positive");
    let mut membership = crate::member_cmd::daemon_membership(&a.keepers, daemon::GROUP, &a.id, String::new())
        .with_context(|| format!("--keepers {:?}", a.keepers))?;
    if a.plain_zookeeper {
        membership.herd_options = None;
    }
    let mut cfg = DatanodeConfig::new(&a.id, a.data_dir.clone(), &a.namenode, membership);
    cfg.listen_data = a.listen_data;
    cfg.rack = a.rack.clone();
    cfg.heartbeat_interval = Duration::from_millis(a.heartbeat_ms);
    cfg.scan_period = Duration::from_millis(a.scan_period_ms);
    cfg.scan_bytes_per_sec = a.scan_bytes_per_sec;
    let http = tokio::net::TcpListener::bind(a.listen_http)
        .await
        .with_context(|| format!("binding --listen-http {}", a.listen_http))?;
    let http_addr = http.local_addr()?;
    cfg.http_addr = http_addr.to_string();
    let dn = Datanode::start(cfg, reporter).await.context("starting the datanode")?;
    let stop_http = CancellationToken::new();
    let http_task = tokio::spawn(webhdfs::serve(http, webhdfs::datanode::router(&a.namenode), stop_http.clone()));
    // The one line on stdout: tests and the supervisor read the bound addresses from it.
    // Before the ready line: a SIGTERM sent on seeing it must find the handler installed.
    let stop = crate::stop_signal();
    println!("herd datanode ready data={} http={http_addr}", dn.data_addr());
    stop.await;
    tracing::info!("datanode stopping on signal");
    stop_http.cancel();
    let _ = http_task.await;
    dn.shutdown().await;
    Ok(())
}
