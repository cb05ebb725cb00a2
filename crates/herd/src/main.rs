//! `herd`: one binary, one subcommand per role, plus client commands.

mod bench;
mod bench_detect;
mod chaos;
mod cluster;
mod datanode_cmd;
mod demo;
mod dfsadmin_cmd;
mod disks;
mod fs_cmd;
mod job_cmd;
mod job_logs;
mod member_cmd;
mod namenode_cmd;
mod netcluster;
mod nodemanager_cmd;
mod resourcemanager_cmd;
mod status_cmd;
mod supervise;
mod up;
mod zk;

use anyhow::Context;
use clap::{Parser, Subcommand};
use keeper::config::KeeperConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "herd", version, about = "A fault-tolerant data platform: coordination, files and batch compute")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a keeper: a ZooKeeper-compatible coordination server.
    Keeper(KeeperArgs),
    /// Start a whole cluster on this machine with embedded defaults.
    Up(up::UpArgs),
    /// Run any program under herd's supervisor: restarts with back-off, ends the keeper session
    /// it reports when it dies, gives up after too many deaths.
    Supervise(supervise::SuperviseArgs),
    /// ZooKeeper client commands against any keeper or ZooKeeper server.
    Zk(zk::ZkArgs),
    /// Membership views: run a member daemon, watch or list a group.
    Member(member_cmd::MemberArgs),
    /// File system shell: ls, put, get, cat, rm, mv, du, fsck, ... as Hadoop's `hadoop fs`.
    Fs(fs_cmd::FsArgs),
    /// Run a DataNode: stores block replicas and reports them to the NameNode.
    Datanode(datanode_cmd::DatanodeArgs),
    /// File system administration: the DataNode report, decommissioning.
    Dfsadmin(dfsadmin_cmd::DfsadminArgs),
    /// Run a NameNode: the file system's namespace, block map and replication monitor.
    Namenode(namenode_cmd::NamenodeArgs),
    /// Run a ResourceManager: the compute engine's scheduler and application lifecycle.
    Resourcemanager(resourcemanager_cmd::ResourcemanagerArgs),
    /// Run a NodeManager: runs containers for the ResourceManager, serves map outputs.
    Nodemanager(nodemanager_cmd::NodemanagerArgs),
    /// A `herd up` cluster at a glance: roles live or dead, membership views and their epochs,
    /// block health, running jobs; exit 0 only if all is well.
    Status(status_cmd::StatusArgs),
    /// MapReduce jobs: run (wordcount, grep, sort, streaming), status, list, kill, logs.
    Job(job_cmd::JobArgs),
    /// Faults on demand against a `herd up` cluster: kill, pause, resume, partition, heal,
    /// fill-disk, and a seeded random schedule of them.
    Chaos(chaos::ChaosArgs),
    /// See it for yourself: a cluster in a temporary dir, a wordcount job run while a
    /// DataNode, a NodeManager and a task attempt are killed and another attempt hangs; a
    /// timeline of each fault injected, detected and repaired; exit 0 only if the output is
    /// correct.
    Demo(demo::DemoArgs),
    /// A MapReduce job's ApplicationMaster (run by a NodeManager in the job's first container).
    #[command(hide = true)]
    Appmaster {
        /// The job file in the DFS.
        #[arg(long)]
        job: String,
    },
    /// One MapReduce task attempt (run by a NodeManager in a container the AM asked for).
    #[command(hide = true)]
    Task {
        /// The AM's umbilical address.
        #[arg(long)]
        am: String,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Load any ZooKeeper-protocol server with pipelined sessions; prints one JSON line.
    Keeper(bench::BenchArgs),
    /// Time from a daemon's failure (kill -9, stop, hang, partition) to a watcher's view
    /// change, herd against Apache ZooKeeper's session expiry; as root, in network namespaces.
    Detect(bench_detect::DetectArgs),
}

#[derive(clap::Args)]
struct KeeperArgs {
    /// Data directory (log, snapshots, myid). Ignored with --zoo-cfg, which names its own dataDir.
    #[arg(long, env = "HERD_KEEPER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Client port address; port 0 picks a free port (printed on the ready line).
    #[arg(long, env = "HERD_KEEPER_CLIENT_ADDR")]
    client_addr: Option<SocketAddr>,
    /// Read ZooKeeper's zoo.cfg instead of flags.
    #[arg(long)]
    zoo_cfg: Option<PathBuf>,
    /// A ZooKeeper Java system property, KEY=VALUE (e.g. zookeeper.extendedTypesEnabled=true).
    #[arg(long = "zk-property", value_name = "KEY=VALUE")]
    zk_property: Vec<String>,
    /// This server's id (myid).
    #[arg(long)]
    id: Option<u64>,
    /// An ensemble member, ID=HOST:PEERPORT (repeat for each, this one included), as zoo.cfg's
    /// server.ID=HOST:PEERPORT:ELECTIONPORT. Two or more make this keeper an ensemble member.
    #[arg(long, value_name = "ID=HOST:PORT")]
    peer: Vec<String>,
    /// Also join the membership views as GROUP/ID (`herd up` passes `keeper/<id>`), through
    /// `--member-keepers` (default: this keeper's own client address).
    #[arg(long, value_name = "GROUP/ID")]
    join_as: Option<String>,
    /// Connect string for this keeper's own membership session (all keepers' client addresses).
    #[arg(long, value_name = "HOST:PORT,...")]
    member_keepers: Option<String>,
}

fn keeper_config(a: &KeeperArgs) -> anyhow::Result<KeeperConfig> {
    let mut cfg = match &a.zoo_cfg {
        Some(path) => {
            let (cfg, warnings) = KeeperConfig::from_zoo_cfg(path)?;
            for w in warnings {
                tracing::warn!("{w}");
            }
            cfg
        }
        None => KeeperConfig::default(),
    };
    if a.zoo_cfg.is_none() {
        if let Some(d) = &a.data_dir {
            cfg.data_dir = d.clone();
        }
    }
    if let Some(addr) = a.client_addr {
        cfg.client_addr = addr;
    }
    if let Some(id) = a.id {
        cfg.server_id = id;
    }
    for p in &a.zk_property {
        let (k, v) = p.split_once('=').with_context(|| format!("--zk-property {p:?}: expected KEY=VALUE"))?;
        if !cfg.set_property(k.trim(), v.trim())? {
            tracing::warn!("--zk-property {k}: unknown to herd, ignored");
        }
    }
    for p in &a.peer {
        let (id, addr) = p.split_once('=').with_context(|| format!("--peer {p:?}: expected ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().with_context(|| format!("--peer {p:?}: the id is not a number"))?;
        anyhow::ensure!(!cfg.peers.iter().any(|s| s.id == id), "--peer {id} is given twice");
        cfg.peers.push(keeper::config::PeerSpec { id, spec: addr.trim().to_owned() });
    }
    anyhow::ensure!(cfg.server_id <= 127, "server id {} is over 127 (the top byte of session ids)", cfg.server_id);
    if cfg.peers.len() > 1 {
        for p in &cfg.peers {
            p.peer_addr()?;
        }
        anyhow::ensure!(
            cfg.peers.iter().any(|p| p.id == cfg.server_id),
            "this keeper's id {} is not among the servers {:?}: set myid in the data dir or --id",
            cfg.server_id,
            cfg.peers.iter().map(|p| p.id).collect::<Vec<_>>()
        );
    }
    Ok(cfg)
}

/// Resolves on SIGINT or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// caller that starts a child next must not die of a SIGTERM sent as soon as the child is seen.
pub fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            (Ok(mut term), Err(_)) => {
                term.recv().await;
            }
            (Err(_), Ok(mut int)) => {
                int.recv().await;
            }
            (Err(_), Err(_)) => std::future::pending().await,
        }
    }
}

async fn run_keeper(a: KeeperArgs, reporter: Option<member::report::Reporter>) -> anyhow::Result<()> {
    let cfg = keeper_config(&a)?;
    let join_as = match &a.join_as {
        Some(g) => {
            let (group, id) = g.split_once('/').with_context(|| format!("--join-as {g:?}: expected GROUP/ID"))?;
            member::view::validate_name(group)?;
            member::view::validate_name(id)?;
            Some((group.to_owned(), id.to_owned()))
        }
        None => None,
    };
    let shutdown = CancellationToken::new();
    let k = keeper::server::Keeper::start(cfg, shutdown.clone()).await?;
    let stop = stop_signal();
    // The one line on stdout: tests and `herd up` read the bound address from it.
    println!("herd keeper ready client={}", k.client_addr);
    tracing::info!("keeper serving clients on {}", k.client_addr);
    let membership = match join_as {
        Some((group, id)) => {
            let hosts = a.member_keepers.clone().unwrap_or_else(|| k.client_addr.to_string());
            let cfg = member_cmd::daemon_membership(&hosts, &group, &id, format!("client={}", k.client_addr))?;
            Some(member::membership::Membership::start(cfg, reporter)?)
        }
        None => None,
    };
    let wait = k.wait();
    tokio::pin!(wait);
    tokio::select! {
        r = &mut wait => r,
        _ = stop => {
            tracing::info!("keeper stopping on signal");
            // Leave first, while this keeper still serves: the member znode goes at once.
            if let Some(m) = membership {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), m.leave()).await;
            }
            shutdown.cancel();
            Ok(())
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo and chaos commands speak for themselves on stdout; their clients' own log
    // lines (a pipeline recovered, a keeper connection lost — the faults they cause) would
    // bury that, so they log errors only unless RUST_LOG says otherwise.
    let default_filter = if matches!(cli.cmd, Cmd::Demo(_) | Cmd::Chaos(_)) { "error" } else { "info,openraft=error" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only for a person: logs in files (daemons, containers) stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .init();
    // Taken before any other thread exists: it removes its variable from the environment.
    let reporter = member::report::Reporter::from_env();
    // A client of a `herd up --netns` cluster joins its client namespace, and `herd up
    // --netns` makes its namespaces and joins its own: on this, the only thread, so that every
    // thread started later is born there (a network namespace is per thread).
    let cluster_dir = match &cli.cmd {
        Cmd::Fs(a) => a.cluster_dir(),
        Cmd::Dfsadmin(a) => a.cluster_dir(),
        Cmd::Job(a) => a.cluster_dir(),
        Cmd::Status(a) => Some(a.cluster_dir()),
        Cmd::Chaos(a) => Some(a.cluster_dir()),
        _ => None,
    };
    if let Some(dir) = cluster_dir {
        cluster::enter_client_netns(dir)?;
    }
    let up_network = match &cli.cmd {
        Cmd::Up(a) => Some(up::network(a)?),
        _ => None,
    };
    match cli.cmd {
        Cmd::Zk(a) => zk::run(a),
        Cmd::Fs(a) => fs_cmd::run(a),
        Cmd::Dfsadmin(a) => dfsadmin_cmd::run(a),
        Cmd::Job(a) => std::process::exit(job_cmd::run(a)?),
        Cmd::Status(a) => std::process::exit(status_cmd::run(a)?),
        Cmd::Chaos(a) => std::process::exit(chaos::run(a)?),
        Cmd::Demo(a) => std::process::exit(demo::run(a)?),
        Cmd::Appmaster { job } => {
            let cfg = mrapp::am::AmConfig::from_env(&job)?;
            match mrapp::am::run(cfg) {
                Ok(report) => {
                    tracing::info!(state = %report.state, "appmaster done");
                    Ok(())
                }
                Err(e) => {
                    tracing::error!("appmaster: {e}");
                    std::process::exit(1)
                }
            }
        }
        Cmd::Task { am } => {
            let cfg = mrapp::task::TaskConfig::from_env(&am).map_err(|e| anyhow::anyhow!(e))?;
            std::process::exit(mrapp::task::run(cfg))
        }
        cmd => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async move {
                match cmd {
                    Cmd::Keeper(a) => run_keeper(a, reporter).await,
                    Cmd::Up(a) => up::run(a, up_network.expect("made above for herd up")).await,
                    Cmd::Supervise(a) => supervise::run_cli(a).await,
                    Cmd::Member(a) => member_cmd::run(a, reporter).await,
                    Cmd::Datanode(a) => datanode_cmd::run(a, reporter).await,
                    Cmd::Namenode(a) => namenode_cmd::run(a, reporter).await,
                    Cmd::Resourcemanager(a) => resourcemanager_cmd::run(a, reporter).await,
                    Cmd::Nodemanager(a) => nodemanager_cmd::run(a, reporter).await,
                    Cmd::Bench(BenchCmd::Keeper(a)) => bench::run(a).await,
                    Cmd::Bench(BenchCmd::Detect(a)) => bench_detect::run(a).await,
                    Cmd::Zk(_)
                    | Cmd::Fs(_)
                    | Cmd::Dfsadmin(_)
                    | Cmd::Job(_)
                    | Cmd::Status(_)
                    | Cmd::Chaos(_)
                    | Cmd::Demo(_) => {
                        unreachable!()
                    }
                    Cmd::Appmaster { .. } | Cmd::Task { .. } => unreachable!(),
                }
            })
        }
    }
}
