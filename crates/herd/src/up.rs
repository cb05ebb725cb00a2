//! `herd up`: a whole cluster on one machine as supervised child processes on loopback, or
//! (`--netns`) each role in a network namespace of its own (`up::network`).
//!
//! The cluster is keepers (one standalone keeper, or an ensemble of 3 or 5: `--keepers`), a
//! file system: one NameNode and `--datanodes` DataNodes (default 3; 0 for none), and compute:
//! one ResourceManager and `--nodemanagers` NodeManagers (default 3; 0 for none). Every child
//! has a supervisor of its own (`crate::supervise`) that restarts it with back-off when it dies
//! (a restarted ensemble member rejoins with its own data dir), so one child's restart never
//! delays noticing another's death. A child that dies too often within the window is given up
//! on: it is marked failed, with its error, and the others keep running. The main loop alone
//! writes `cluster.json`, from the statuses the supervisors send. Roles stop in tiers (see
//! [`Role::stop_tier`]): compute, then the file system, keepers last.

mod network;

use crate::supervise::{self, ChildSpec, Incarnation, RestartArgs, State, Status};
use anyhow::Context;
use clap::Args;
use network::NetnsInfo;
pub use network::Network;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Default ports before `--port-base` is added. Keeper I (1-based) uses these plus I - 1.
pub const KEEPER_CLIENT_PORT: u16 = 2181;
pub const KEEPER_PEER_PORT: u16 = 2888;
/// The NameNode's RPC and HTTP ports (HDFS's), plus the base.
pub const NAMENODE_RPC_PORT: u16 = 8020;
pub const NAMENODE_HTTP_PORT: u16 = 9870;
/// The ResourceManager's RPC port (YARN's `yarn.resourcemanager.address`), plus the base.
pub const RESOURCEMANAGER_PORT: u16 = 8032;
/// What each NodeManager offers containers by default. A developer laptop runs all N of them
/// (3 by default) on one machine, so each offers a share of it rather than YARN's 8 GiB and 8
/// vcores per node: 4 GiB and 4 vcores fit an AM and a few 1 GiB, 1-vcore tasks (MapReduce's
/// default container) on every node, and the whole default cluster offers 12 GiB and 12 vcores,
/// about a laptop's memory and hardware threads. It is a ceiling on what is scheduled, not a
/// reservation: containers use what they use, and one over its allocation is killed.
pub const NM_MEMORY_MB_DEFAULT: u64 = 4096;
pub const NM_VCORES_DEFAULT: u32 = 4;
/// Ensemble sizes `--keepers` accepts: odd, so a majority survives the loss of a minority.
const KEEPERS_ALLOWED: [u8; 3] = [1, 3, 5];
/// The smallest `--disk-mb`: room for two default blocks.
const DISK_MB_MIN: u64 = 256;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

// Keeper I's ports are the defaults plus I - 1: with at most five keepers the client ports span
// 2181..=2185 and the peer ports 2888..=2892 (plus the same base), so the two ranges never meet.
const _: () =
    assert!(KEEPER_CLIENT_PORT as u32 + KEEPERS_ALLOWED[KEEPERS_ALLOWED.len() - 1] as u32 <= KEEPER_PEER_PORT as u32);

#[derive(Args)]
pub struct UpArgs {
    /// Cluster directory: every process's data and log, and cluster.json.
    #[arg(long, default_value = ".herd")]
    dir: PathBuf,
    /// Added to every default port, so clusters can run side by side. Keeper I (1..=N) serves
    /// clients on 2181 + B + I - 1 and its peers (replication) on 2888 + B + I - 1: the client
    /// ports (2181..=2185 + B) and the peer ports (2888..=2892 + B) never overlap.
    #[arg(long, value_name = "B", default_value_t = 0)]
    port_base: u16,
    /// Keepers to run: 1 (standalone) or an ensemble of 3 or 5.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_keepers)]
    keepers: u8,
    /// DataNodes to run, with one NameNode (RPC on 8020 + B, HTTP on 9870 + B); 0 runs no file
    /// system. DataNodes take free data ports, listed in cluster.json.
    #[arg(long, value_name = "N", default_value_t = 3)]
    datanodes: u16,
    /// NodeManagers to run, with one ResourceManager (RPC on 8032 + B); 0 runs no compute.
    /// NodeManagers `nm1..nmN` take free control, shuffle and HTTP ports, listed in
    /// cluster.json; their containers' dirs and logs are under DIR/nodemanager-<id>/.
    #[arg(long, value_name = "N", default_value_t = 3)]
    nodemanagers: u16,
    /// Memory each NodeManager offers containers, MiB.
    #[arg(long, value_name = "MIB", default_value_t = NM_MEMORY_MB_DEFAULT)]
    nm_memory_mb: u64,
    /// Virtual cores each NodeManager offers containers.
    #[arg(long, value_name = "N", default_value_t = NM_VCORES_DEFAULT)]
    nm_vcores: u32,
    /// Give each DataNode a disk of its own: a tmpfs of this many MiB at its data dir (in
    /// memory), which `herd chaos fill-disk` can fill. Needs root.
    #[arg(long, value_name = "MIB")]
    disk_mb: Option<u64>,
    /// Run each role in a network namespace of its own, with its own address on a bridge, so
    /// that `herd chaos partition` cuts real links (root, iproute2 and nftables needed). Client
    /// commands given the cluster dir enter its client namespace themselves.
    #[arg(long)]
    netns: bool,
    #[command(flatten)]
    restart: RestartArgs,
}

fn parse_keepers(s: &str) -> Result<u8, String> {
    let n: u8 = s.parse().map_err(|_| format!("{s:?} is not a number of keepers"))?;
    if KEEPERS_ALLOWED.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} keepers: run 1 (standalone), or an ensemble of 3 or 5 (an odd size, so that a majority \
             outlives a minority's failure)"
        ))
    }
}

#[derive(Serialize, Clone)]
struct ProcessEntry {
    role: String,
    id: String,
    /// "running", "restarting" or "failed".
    state: &'static str,
    /// The pid of the role's current process (while restarting, the latest one: the dead one
    /// until the next is started).
    pid: u32,
    /// Processes started after the first.
    restarts: u32,
    addrs: BTreeMap<String, String>,
    /// Why the role was given up on (state "failed").
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The role's network namespace and address (`--netns`).
    #[serde(skip_serializing_if = "Option::is_none")]
    netns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
}

#[derive(Serialize)]
struct ClusterFile {
    processes: Vec<ProcessEntry>,
    /// The cluster's namespaces (`--netns`): prefix, switch, and the client namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    netns: Option<NetnsInfo>,
}

/// One role's child: what it is in cluster.json, and how to start it.
struct Role {
    role: &'static str,
    id: String,
    spec: ChildSpec,
    /// A keeper's client address (the other roles' connect string).
    client_addr: Option<String>,
}

impl Role {
    /// When the role stops, in order: 0 first. NodeManagers stop their containers (tasks that
    /// may be writing to the file system) and leave the view while the ResourceManager still
    /// answers their last heartbeats; the ResourceManager next, before the file system its
    /// jobs use; keepers last, so that every other role can still leave the views (and end its
    /// keeper session) while it stops. Roles of one tier stop in parallel.
    fn stop_tier(&self) -> usize {
        match self.role {
            "nodemanager" => 0,
            "resourcemanager" => 1,
            "keeper" => 3,
            _ => 2,
        }
    }
}

/// The number of stop tiers of [`Role::stop_tier`].
const STOP_TIERS: usize = 4;

/// One keeper per id 1..=N. A standalone keeper gets exactly the flags it always had; ensemble
/// members also get their id and every member's peer address, themselves included.
fn keeper_specs(
    dir: &Path,
    keepers: u8,
    port_base: u16,
    net: &Network,
    restart: &RestartArgs,
) -> anyhow::Result<Vec<Role>> {
    let port = |default: u16, id: u8| {
        default
            .checked_add(port_base)
            .and_then(|p| p.checked_add(u16::from(id) - 1))
            .with_context(|| format!("--port-base {port_base} pushes keeper {id}'s ports past 65535"))
    };
    let program = std::env::current_exe().context("locating the herd binary")?;
    let mut peers = Vec::new();
    for id in 1..=keepers {
        peers.push(format!("{id}={}:{}", net.ip("keeper", &id.to_string()), port(KEEPER_PEER_PORT, id)?));
    }
    let mut clients = Vec::new();
    for id in 1..=keepers {
        clients.push(format!("{}:{}", net.ip("keeper", &id.to_string()), port(KEEPER_CLIENT_PORT, id)?));
    }
    let mut roles = Vec::new();
    for id in 1..=keepers {
        let data_dir = dir.join(format!("keeper-{id}"));
        let client_addr = clients[usize::from(id) - 1].clone();
        let mut args = vec!["keeper".to_owned(), "--data-dir".to_owned(), data_dir.display().to_string()];
        args.extend(["--client-addr".to_owned(), client_addr.clone()]);
        // Every daemon joins the views with its role as group and its cluster.json id; a
        // keeper's membership session prefers its own client port, then the others.
        let mut member_keepers = vec![client_addr.clone()];
        member_keepers.extend(clients.iter().filter(|c| **c != client_addr).cloned());
        args.extend(["--join-as".to_owned(), format!("keeper/{id}")]);
        args.extend(["--member-keepers".to_owned(), member_keepers.join(",")]);
        let mut known_addrs = BTreeMap::new();
        if keepers > 1 {
            args.extend(["--id".to_owned(), id.to_string()]);
            for p in &peers {
                args.extend(["--peer".to_owned(), p.clone()]);
            }
            let ip = net.ip("keeper", &id.to_string());
            known_addrs.insert("peer".to_owned(), format!("{ip}:{}", port(KEEPER_PEER_PORT, id)?));
        }
        let spec = ChildSpec {
            name: format!("keeper {id}"),
            program: program.clone(),
            args: args.into_iter().map(Into::into).collect(),
            log: Some(dir.join(format!("keeper-{id}.log"))),
            ready_prefix: Some("herd keeper ready ".to_owned()),
            known_addrs,
            ready_timeout: READY_TIMEOUT,
            stop_timeout: supervise::STOP_TIMEOUT,
            policy: restart.policy(),
            netns: net.netns("keeper", &id.to_string()),
        };
        roles.push(Role { role: "keeper", id: id.to_string(), spec, client_addr: Some(client_addr) });
    }
    Ok(roles)
}

/// The NameNode's RPC address under `--port-base`.
fn namenode_rpc(port_base: u16, net: &Network) -> anyhow::Result<String> {
    let port = NAMENODE_RPC_PORT
        .checked_add(port_base)
        .with_context(|| format!("--port-base {port_base} pushes the namenode's port past 65535"))?;
    Ok(format!("{}:{port}", net.ip("namenode", "1")))
}

/// The file system: a NameNode on its fixed port and `datanodes` DataNodes on free ports, all
/// members of the keepers' views.
fn dfs_specs(
    dir: &Path,
    datanodes: u16,
    port_base: u16,
    keepers: &str,
    net: &Network,
    restart: &RestartArgs,
) -> anyhow::Result<Vec<Role>> {
    let program = std::env::current_exe().context("locating the herd binary")?;
    let rpc = namenode_rpc(port_base, net)?;
    let http_port = NAMENODE_HTTP_PORT
        .checked_add(port_base)
        .with_context(|| format!("--port-base {port_base} pushes the namenode's HTTP port past 65535"))?;
    let spec = |(role, id): (&str, &str), args: Vec<String>, log: &str, ready: &str| ChildSpec {
        name: format!("{role} {id}"),
        program: program.clone(),
        args: args.into_iter().map(Into::into).collect(),
        log: Some(dir.join(log)),
        ready_prefix: Some(ready.to_owned()),
        known_addrs: BTreeMap::new(),
        ready_timeout: READY_TIMEOUT,
        stop_timeout: supervise::STOP_TIMEOUT,
        policy: restart.policy(),
        netns: net.netns(role, id),
    };
    let d = |sub: &str| dir.join(sub).display().to_string();
    let nn_args = vec![
        "namenode".to_owned(),
        "--data-dir".to_owned(),
        d("namenode"),
        "--listen".to_owned(),
        rpc.clone(),
        "--http".to_owned(),
        format!("{}:{http_port}", net.ip("namenode", "1")),
        "--keepers".to_owned(),
        keepers.to_owned(),
    ];
    let mut roles = vec![Role {
        role: "namenode",
        id: "1".to_owned(),
        spec: spec(("namenode", "1"), nn_args, "namenode-1.log", "herd namenode ready "),
        client_addr: None,
    }];
    for id in 1..=datanodes {
        let args = vec![
            "datanode".to_owned(),
            "--id".to_owned(),
            id.to_string(),
            "--data-dir".to_owned(),
            d(&format!("datanode-{id}")),
            "--namenode".to_owned(),
            rpc.clone(),
            "--keepers".to_owned(),
            keepers.to_owned(),
            "--listen-data".to_owned(),
            format!("{}:0", net.ip("datanode", &id.to_string())),
            "--listen-http".to_owned(),
            format!("{}:0", net.ip("datanode", &id.to_string())),
        ];
        let s = spec(("datanode", &id.to_string()), args, &format!("datanode-{id}.log"), "herd datanode ready ");
        roles.push(Role { role: "datanode", id: id.to_string(), spec: s, client_addr: None });
    }
    Ok(roles)
}

/// What each NodeManager offers containers (`--nm-memory-mb`, `--nm-vcores`).
struct NmResources {
    memory_mb: u64,
    vcores: u32,
}

/// Compute: a ResourceManager on its fixed port and `nodemanagers` NodeManagers (`nm1`..) on
/// free ports, all members of the keepers' views. `namenode` is the file system's RPC address,
/// when one runs, for containers' files from it.
// Each argument is one of `herd up`'s settings, passed as the file system's specs get theirs;
// a struct for this one caller would only rename them.
#[allow(clippy::too_many_arguments)]
fn compute_specs(
    dir: &Path,
    nodemanagers: u16,
    port_base: u16,
    keepers: &str,
    namenode: Option<&str>,
    resources: &NmResources,
    net: &Network,
    restart: &RestartArgs,
) -> anyhow::Result<Vec<Role>> {
    let program = std::env::current_exe().context("locating the herd binary")?;
    let rm_port = RESOURCEMANAGER_PORT
        .checked_add(port_base)
        .with_context(|| format!("--port-base {port_base} pushes the resourcemanager's port past 65535"))?;
    let rm = format!("{}:{rm_port}", net.ip("resourcemanager", "1"));
    let spec = |(role, id): (&str, &str), args: Vec<String>, log: String, ready: &str| ChildSpec {
        name: format!("{role} {id}"),
        program: program.clone(),
        args: args.into_iter().map(Into::into).collect(),
        log: Some(dir.join(log)),
        ready_prefix: Some(ready.to_owned()),
        known_addrs: BTreeMap::new(),
        ready_timeout: READY_TIMEOUT,
        stop_timeout: supervise::STOP_TIMEOUT,
        policy: restart.policy(),
        netns: net.netns(role, id),
    };
    let rm_args = vec![
        "resourcemanager".to_owned(),
        "--id".to_owned(),
        "1".to_owned(),
        "--listen".to_owned(),
        rm.clone(),
        "--keepers".to_owned(),
        keepers.to_owned(),
    ];
    let mut roles = vec![Role {
        role: "resourcemanager",
        id: "1".to_owned(),
        spec: spec(("resourcemanager", "1"), rm_args, "resourcemanager-1.log".into(), "herd resourcemanager ready "),
        client_addr: None,
    }];
    for n in 1..=nodemanagers {
        let id = format!("nm{n}");
        let home = dir.join(format!("nodemanager-{id}"));
        let listen = format!("{}:0", net.ip("nodemanager", &id));
        let mut args = vec![
            "nodemanager".to_owned(),
            "--id".to_owned(),
            id.clone(),
            "--rm".to_owned(),
            rm.clone(),
            "--keepers".to_owned(),
            keepers.to_owned(),
            "--listen-ctl".to_owned(),
            listen.clone(),
            "--listen-shuffle".to_owned(),
            listen.clone(),
            "--listen-http".to_owned(),
            listen,
            "--local-dir".to_owned(),
            home.join("local").display().to_string(),
            "--log-dir".to_owned(),
            home.join("logs").display().to_string(),
            "--memory-mb".to_owned(),
            resources.memory_mb.to_string(),
            "--vcores".to_owned(),
            resources.vcores.to_string(),
        ];
        if let Some(nn) = namenode {
            args.extend(["--namenode".to_owned(), nn.to_owned()]);
        }
        let s = spec(("nodemanager", &id), args, format!("nodemanager-{id}.log"), "herd nodemanager ready ");
        roles.push(Role { role: "nodemanager", id, spec: s, client_addr: None });
    }
    Ok(roles)
}

/// Writes cluster.json whole (temp file, then rename), so a reader never sees half of it.
fn write_cluster_file(dir: &Path, entries: &[ProcessEntry], netns: Option<&NetnsInfo>) -> anyhow::Result<()> {
    let file = ClusterFile { processes: entries.to_vec(), netns: netns.cloned() };
    let path = dir.join("cluster.json");
    let tmp = dir.join("cluster.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&file)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

fn show_addrs(addrs: &BTreeMap<String, String>) -> String {
    addrs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// The (role, id) of every process `herd up` starts, in start order.
fn role_ids(a: &UpArgs) -> Vec<(String, String)> {
    let mut ids: Vec<(String, String)> = (1..=a.keepers).map(|i| ("keeper".to_owned(), i.to_string())).collect();
    if a.datanodes > 0 {
        ids.push(("namenode".to_owned(), "1".to_owned()));
        ids.extend((1..=a.datanodes).map(|i| ("datanode".to_owned(), i.to_string())));
    }
    if a.nodemanagers > 0 {
        ids.push(("resourcemanager".to_owned(), "1".to_owned()));
        ids.extend((1..=a.nodemanagers).map(|i| ("nodemanager".to_owned(), format!("nm{i}"))));
    }
    ids
}

/// Where the roles will listen: loopback, or with `--netns` their namespaces, made now. Runs
/// before `herd up`'s runtime starts: the calling (main) thread moves into the client
/// namespace, and every thread started after it is born there.
pub fn network(a: &UpArgs) -> anyhow::Result<Network> {
    if !a.netns {
        return Ok(Network(None));
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    // An interrupted run's cluster.json would send clients into the namespaces about to go.
    let _ = std::fs::remove_file(a.dir.join("cluster.json"));
    Ok(Network(Some(network::setup(&a.dir, &role_ids(a))?)))
}

pub async fn run(a: UpArgs, net: Network) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    // Partitions recorded by `herd chaos` were of an earlier run's namespaces.
    let _ = std::fs::remove_file(a.dir.join(crate::netcluster::RECORD));
    let mut roles = keeper_specs(&a.dir, a.keepers, a.port_base, &net, &a.restart)?;
    let keepers: Vec<String> = roles.iter().filter_map(|r| r.client_addr.clone()).collect();
    let keepers = keepers.join(",");
    if a.datanodes > 0 {
        roles.extend(dfs_specs(&a.dir, a.datanodes, a.port_base, &keepers, &net, &a.restart)?);
    }
    if a.nodemanagers > 0 {
        let namenode = if a.datanodes > 0 { Some(namenode_rpc(a.port_base, &net)?) } else { None };
        let resources = NmResources { memory_mb: a.nm_memory_mb, vcores: a.nm_vcores };
        let compute = compute_specs(
            &a.dir,
            a.nodemanagers,
            a.port_base,
            &keepers,
            namenode.as_deref(),
            &resources,
            &net,
            &a.restart,
        )?;
        roles.extend(compute);
    }

    let small_disks: Vec<PathBuf> = match a.disk_mb {
        Some(_) => (1..=a.datanodes).map(|id| a.dir.join(format!("datanode-{id}"))).collect(),
        None => Vec::new(),
    };
    if let Some(mb) = a.disk_mb {
        anyhow::ensure!(
            mb >= DISK_MB_MIN,
            "--disk-mb {mb}: a DataNode's disk needs at least {DISK_MB_MIN} MiB (the NameNode places a block only \
             on a node with room for a whole 128 MiB block; 512 leaves room for several)"
        );
        crate::disks::mount(&small_disks, mb)?;
    }
    let result = run_roles(&a, roles, net).await;
    crate::disks::unmount(&small_disks);
    result
}

/// Starts the roles, supervises them until a stop signal, and stops them in tiers.
async fn run_roles(a: &UpArgs, roles: Vec<Role>, net: Network) -> anyhow::Result<()> {
    // Every child is spawned before any is waited for, so a member that waits for its peers
    // before it reports ready cannot hold up the others' start. A first start that fails stops
    // `herd up` at once with its error (a busy port, a bad flag: restarting would not help);
    // dropping the rest kills them (kill_on_drop). A signal now has its default effect: this
    // process ends, and PDEATHSIG sends the children SIGTERM.
    let mut started = Vec::new();
    for r in &roles {
        started.push(Incarnation::spawn(&r.spec)?);
    }
    for (r, inc) in roles.iter().zip(&mut started) {
        if let Err(e) = inc.wait_ready(&r.spec).await {
            anyhow::bail!("{e:#}{}", r.spec.see_log());
        }
    }

    let mut entries: Vec<ProcessEntry> = roles
        .iter()
        .zip(&started)
        .map(|(r, inc)| ProcessEntry {
            role: r.role.to_owned(),
            id: r.id.clone(),
            state: State::Running.name(),
            pid: inc.pid,
            restarts: 0,
            addrs: inc.addrs.clone(),
            error: None,
            netns: net.netns(r.role, &r.id),
            ip: net.host(r.role, &r.id).map(|h| h.ip.to_string()),
        })
        .collect();
    write_cluster_file(&a.dir, &entries, net.info())?;
    for (r, inc) in roles.iter().zip(&started) {
        let log = r.spec.log.as_deref().unwrap_or(Path::new("-")).display();
        println!("{} {} up: pid {} {} (log {log})", r.role, r.id, inc.pid, show_addrs(&inc.addrs));
    }
    let connect: Vec<&str> = entries.iter().filter_map(|e| e.addrs.get("client").map(String::as_str)).collect();
    println!("ZooKeeper connect string: {}", connect.join(","));
    if let Some(rm) = entries.iter().find(|e| e.role == "resourcemanager").and_then(|e| e.addrs.get("rpc")) {
        println!("ResourceManager (yarn.resourcemanager.address): {rm}");
    }
    if let Some(n) = net.info() {
        println!(
            "network namespaces {}-* (switch {}); herd fs, job, status, dfsadmin and chaos given --cluster {} \
             enter the client namespace {} ({}) themselves; any other client runs there too, e.g. \
             `ip netns exec {} zkCli.sh -server {}` or `ip netns exec {} curl ...`",
            n.prefix,
            n.switch,
            a.dir.display(),
            n.client,
            n.client_ip,
            n.client,
            connect.first().copied().unwrap_or(""),
            n.client
        );
    }
    println!("cluster described in {}; Ctrl-C stops it", a.dir.join("cluster.json").display());

    // One listener for the whole run, so a signal that lands during a restart is not missed.
    let stop_signal = crate::stop_signal();
    tokio::pin!(stop_signal);
    // One cancellation and one set of supervisor tasks per stop tier (Role::stop_tier).
    let mut tiers: Vec<(CancellationToken, JoinSet<()>)> =
        (0..STOP_TIERS).map(|_| (CancellationToken::new(), JoinSet::new())).collect();
    let (updates_tx, mut updates) = mpsc::channel(roles.len() * 8);
    for (index, (r, inc)) in roles.into_iter().zip(started).enumerate() {
        let (cancel, tasks) = &mut tiers[r.stop_tier()];
        let cancel = cancel.clone();
        let tx = updates_tx.clone();
        // A give-up is reported through `updates` (State::Failed); the task's own result adds
        // nothing to it.
        tasks.spawn(async move {
            let _ = supervise::run(&r.spec, inc, index, &cancel, Some(&tx)).await;
        });
    }
    drop(updates_tx);

    let result = loop {
        tokio::select! {
            _ = &mut stop_signal => {
                println!("stopping cluster");
                break Ok(());
            }
            update = updates.recv() => {
                let Some((index, status)) = update else {
                    break Err(anyhow::anyhow!("every child's supervisor ended"));
                };
                apply(&mut entries[index], status);
                if let Err(err) = write_cluster_file(&a.dir, &entries, net.info()) {
                    break Err(err.context("rewriting cluster.json"));
                }
                if entries.iter().all(|e| e.error.is_some()) {
                    break Err(anyhow::anyhow!("every process of the cluster has failed"));
                }
            }
        }
    };
    // The tasks stop their children in parallel. Closing the channel first means none of them
    // can be stuck sending a status nobody reads.
    drop(updates);
    for (cancel, mut tasks) in tiers {
        cancel.cancel();
        while tasks.join_next().await.is_some() {}
    }
    let _ = std::fs::remove_file(a.dir.join("cluster.json"));
    let _ = std::fs::remove_file(a.dir.join(crate::netcluster::RECORD));
    if let Some(n) = net.info() {
        println!("deleting network namespaces {}-*", n.prefix);
    }
    // Only now that every child has stopped: the namespaces go with the network's drop.
    drop(net);
    result
}

/// Takes a supervisor's status into the role's cluster.json entry, and says what changed.
fn apply(e: &mut ProcessEntry, status: Status) {
    e.pid = status.pid;
    e.restarts = status.restarts;
    e.state = status.state.name();
    match status.state {
        State::Running => {
            e.addrs = status.addrs;
            println!("{} {} restarted: pid {} {}", e.role, e.id, e.pid, show_addrs(&e.addrs));
        }
        State::Failed(err) => {
            println!("{} {} failed: {err}", e.role, e.id);
            e.error = Some(err);
        }
        State::Restarting | State::Stopped => {}
    }
}
