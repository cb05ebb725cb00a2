//! `herd namenode`: the file system's metadata server (see ARCHITECTURE.md, "File system").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use member::report::Reporter;
use namenode::blockmap;
use namenode::journal::JournalOptions;
use namenode::server::{Namenode, NamenodeConfig};
use tokio_util::sync::CancellationToken;

use crate::member_cmd;

#[derive(Args)]
pub struct NamenodeArgs {
    /// Its member id (`namenode/<id>` in the keeper's views).
    #[arg(long, default_value = "1")]
    id: String,
    /// The journal's directory (log and checkpoints); created if missing.
    #[arg(long)]
    data_dir: PathBuf,
    /// The control RPC address (HDFS's 8020).
    #[arg(long, default_value = "127.0.0.1:8020")]
    listen: SocketAddr,
    /// The HTTP address (HDFS's 9870): WebHDFS (`/webhdfs/v1/...`) and `GET /status` (JSON).
    #[arg(long, default_value = "127.0.0.1:9870")]
    http: SocketAddr,
    /// Keepers, `host:port,...`: membership and the DataNode view.
    #[arg(long)]
    keepers: String,
    /// A topology map: lines `DATANODE-ID-OR-HOST /rack` (`#` comments). DataNodes it does not
    /// list keep the rack they report.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Replication of files created without one.
    #[arg(long, default_value_t = NamenodeConfig::REPLICATION_DEFAULT)]
    replication: u16,
    /// Block size of files created without one, in bytes.
    #[arg(long, default_value_t = NamenodeConfig::BLOCK_SIZE_DEFAULT)]
    block_size: u64,
    /// A writer silent this long loses its file to another writer.
    #[arg(long, default_value_t = NamenodeConfig::LEASE_SOFT_DEFAULT.as_millis() as u64)]
    lease_soft_ms: u64,
    /// A writer silent this long has its files recovered by the NameNode.
    #[arg(long, default_value_t = NamenodeConfig::LEASE_HARD_DEFAULT.as_millis() as u64)]
    lease_hard_ms: u64,
    /// How often the replication monitor runs.
    #[arg(long, default_value_t = NamenodeConfig::MONITOR_INTERVAL_DEFAULT.as_millis() as u64)]
    monitor_interval_ms: u64,
    /// A copy not confirmed within this is rescheduled.
    #[arg(long, default_value_t = blockmap::Config::default().pending_timeout.as_millis() as u64)]
    pending_timeout_ms: u64,
    /// DataNode ids to decommission, one per line (HDFS's dfs.hosts.exclude); read at start
    /// and at every `herd dfsadmin refresh-nodes`. Default: DATA_DIR/exclude.
    #[arg(long)]
    exclude_file: Option<PathBuf>,
    /// A DataNode with less free space than this receives no new replicas.
    #[arg(long, default_value_t = blockmap::Config::default().min_free_bytes)]
    min_free_bytes: u64,
}

fn read_topology(p: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading --topology {}", p.display()))?;
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(rack), None) if rack.starts_with('/') => {
                map.insert(k.to_string(), rack.to_string());
            }
            _ => anyhow::bail!("{}:{}: expected `DATANODE-OR-HOST /rack`, got {line:?}", p.display(), n + 1),
        }
    }
    Ok(map)
}

pub async fn run(a: NamenodeArgs, reporter: Option<Reporter>) -> anyhow::Result<()> {
    member::view::validate_name(&a.id)?;
    let topology = a.topology.as_deref().map(read_topology).transpose()?.unwrap_or_default();
    let membership = member_cmd::daemon_membership(&a.keepers, "namenode", &a.id, format!("rpc={}", a.listen))?;
    let watch_client = membership.client.clone();
    let config = NamenodeConfig {
        id: a.id.clone(),
        data_dir: a.data_dir.clone(),
        rpc_listen: a.listen,
        membership,
        watch_client,
        topology,
        block_size: a.block_size,
        replication: a.replication,
        lease_soft: Duration::from_millis(a.lease_soft_ms),
        lease_hard: Duration::from_millis(a.lease_hard_ms),
        monitor_interval: Duration::from_millis(a.monitor_interval_ms.max(10)),
        blockmap: blockmap::Config {
            pending_timeout: Duration::from_millis(a.pending_timeout_ms),
            min_free_bytes: a.min_free_bytes,
            ..blockmap::Config::default()
        },
        journal: JournalOptions::default(),
        max_connections: 1024,
        exclude_file: Some(a.exclude_file.clone().unwrap_or_else(|| a.data_dir.join("exclude"))),
    };
    std::fs::create_dir_all(&a.data_dir).with_context(|| format!("creating {}", a.data_dir.display()))?;
    let http = tokio::net::TcpListener::bind(a.http).await.with_context(|| format!("binding --http {}", a.http))?;
    let http_addr = http.local_addr()?;
    let nn = Namenode::start(config, reporter).await.context("starting the namenode")?;
    let page = nn.status_page();
    let status: webhdfs::namenode::StatusFn = Arc::new(move || {
        let page = page.clone();
        Box::pin(async move { page.json().await.unwrap_or_else(|| "{\"error\":\"the namenode is stopping\"}".into()) })
    });
    let router = webhdfs::namenode::router(&nn.rpc_addr().to_string(), Some(status));
    let stop_http = CancellationToken::new();
    let http_task = tokio::spawn(webhdfs::serve(http, router, stop_http.clone()));
    // The one line on stdout: `herd up` and tests read the bound address from it.
    // Before the ready line: a SIGTERM sent on seeing it must find the handler installed.
    let stop = crate::stop_signal();
    println!("herd namenode ready rpc={} http={http_addr}", nn.rpc_addr());
    stop.await;
    tracing::info!("namenode stopping on signal");
    stop_http.cancel();
    let _ = http_task.await;
    nn.shutdown().await;
    Ok(())
}
