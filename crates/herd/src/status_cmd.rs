//! `herd status [--cluster DIR]`: one look at a `herd up` cluster — every role live or dead
//! (cluster.json's state, and whether its pid is alive), the keeper's membership views with
//! their epochs, the file system's block health (the NameNode's `/status`), and the jobs the
//! ResourceManager runs. Each part that cannot be had says why on its own line; the command
//! exits 0 only if every role runs and no block is missing or corrupt.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use compute_proto::records::ApplicationState;
use compute_proto::{ApplicationClientRequest as Q, ApplicationClientResponse as A};
use member::client::ClientConfig;
use member::view::Watcher;
use rpc::client::{Caller, RetryPolicy, RpcClient};
use rpc::frame::Protocol;

#[derive(Args)]
pub struct StatusArgs {
    /// Cluster directory of `herd up` (its cluster.json).
    #[arg(long, env = "HERD_CLUSTER", value_name = "DIR", default_value = ".herd")]
    cluster: PathBuf,
}

impl StatusArgs {
    /// The `herd up` cluster dir (--cluster, HERD_CLUSTER or the default).
    pub fn cluster_dir(&self) -> &std::path::Path {
        &self.cluster
    }
}

/// The membership groups herd's roles join.
const GROUPS: [&str; 5] = ["keeper", "namenode", "datanode", "resourcemanager", "nodemanager"];
const PART_TIMEOUT: Duration = Duration::from_secs(5);

fn alive(pid: u64) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    i32::try_from(pid).is_ok_and(|p| p > 0 && unsafe { libc::kill(p, 0) } == 0)
}

pub fn run(a: StatusArgs) -> anyhow::Result<i32> {
    let path = a.cluster.join("cluster.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("{} (is `herd up` running there?)", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| path.display().to_string())?;
    let procs = v["processes"].as_array().context("cluster.json has no \"processes\"")?;
    let mut ok = true;

    println!("{:<16} {:<5} {:<8} {:>7} {:>8}  ADDRESSES", "ROLE", "ID", "STATE", "PID", "RESTARTS");
    for p in procs {
        let pid = p["pid"].as_u64().unwrap_or(0);
        let state = p["state"].as_str().unwrap_or("?");
        let live = state == "running" && alive(pid);
        ok &= live;
        let addrs: Vec<String> = p["addrs"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
            .unwrap_or_default();
        println!(
            "{:<16} {:<5} {:<8} {:>7} {:>8}  {}",
            p["role"].as_str().unwrap_or("?"),
            p["id"].as_str().unwrap_or("?"),
            if live {
                "live"
            } else if state == "running" {
                "dead"
            } else {
                state
            },
            pid,
            p["restarts"].as_u64().unwrap_or(0),
            addrs.join(" ")
        );
    }
    let of_role = |role: &'static str| procs.iter().filter(move |p| p["role"] == role);
    let addr = |role: &'static str, key: &str| of_role(role).find_map(|p| p["addrs"][key].as_str().map(str::to_string));

    println!();
    let keepers: Vec<String> =
        of_role("keeper").filter_map(|p| p["addrs"]["client"].as_str().map(str::to_string)).collect();
    println!("membership views (keeper {}):", keepers.join(","));
    match views(&keepers.join(",")) {
        Ok(lines) => lines.iter().for_each(|l| println!("  {l}")),
        Err(e) => {
            ok = false;
            println!("  unavailable: {e:#}");
        }
    }

    if let Some(http) = addr("namenode", "http") {
        println!();
        match block_health(&http) {
            Ok((line, healthy)) => {
                ok &= healthy;
                println!("file system: {line}");
            }
            Err(e) => {
                ok = false;
                println!("file system: unavailable: {e:#}");
            }
        }
    }

    if let Some(rm) = addr("resourcemanager", "rpc") {
        println!();
        match jobs(&rm) {
            Ok(lines) if lines.is_empty() => println!("jobs: none running"),
            Ok(lines) => {
                println!("jobs running:");
                lines.iter().for_each(|l| println!("  {l}"));
            }
            Err(e) => {
                ok = false;
                println!("jobs: unavailable: {e:#}");
            }
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// Each group's view: `group=... epoch=0x.. members=id@incarnation,...`.
fn views(keepers: &str) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(!keepers.is_empty(), "cluster.json lists no keeper");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut out = Vec::new();
        for group in GROUPS {
            let mut cfg = ClientConfig::parse(keepers).with_context(|| format!("keepers {keepers:?}"))?;
            cfg.session_timeout = Duration::from_secs(10);
            let mut w = Watcher::new(cfg, group)?;
            match tokio::time::timeout(PART_TIMEOUT, w.next()).await {
                Ok(v) => out.push(crate::member_cmd::show_view(&v)),
                Err(_) => out.push(format!("group={group}: no view within {PART_TIMEOUT:?}")),
            }
        }
        Ok(out)
    })
}

/// The NameNode's `GET /status` (JSON: datanodes, block counts).
pub(crate) fn namenode_status(http: &str) -> anyhow::Result<serde_json::Value> {
    let body = nodemanager::logs::http_get(http, "/status", 16 << 20)?;
    serde_json::from_slice(&body).context("the NameNode's /status")
}

/// The NameNode's block summary and whether nothing is missing or corrupt.
fn block_health(http: &str) -> anyhow::Result<(String, bool)> {
    let v = namenode_status(http)?;
    let b = &v["blocks"];
    let n = |k: &str| b[k].as_u64().unwrap_or(0);
    let live = v["datanodes"].as_array().map_or(0, |d| d.len());
    let healthy = n("missing") == 0 && n("corrupt") == 0;
    Ok((
        format!(
            "{} ({} datanodes; blocks {} total, {} under-replicated, {} pending, {} corrupt, {} missing, {} being written)",
            if healthy { "HEALTHY" } else { "CORRUPT" },
            live,
            n("total"),
            n("under_replicated"),
            n("pending"),
            n("corrupt"),
            n("missing"),
            n("under_construction")
        ),
        healthy,
    ))
}

/// The applications not yet finished, a line each.
fn jobs(rm: &str) -> anyhow::Result<Vec<String>> {
    let mut c = RpcClient::new(
        rm.to_owned(),
        Protocol::ClientResourceManager,
        Caller::new(dfs_client::default_user(), Vec::new()),
        RetryPolicy { io_timeout: PART_TIMEOUT, retry_for: PART_TIMEOUT, ..Default::default() },
    );
    let states = vec![ApplicationState::Submitted, ApplicationState::Accepted, ApplicationState::Running];
    match c.call::<_, A>(&Q::ListApplications { states })? {
        A::Applications { reports } => Ok(reports
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {:.0}% user={} attempt={}",
                    r.app_id,
                    r.name,
                    format!("{:?}", r.state).to_uppercase(),
                    r.progress.fraction() * 100.0,
                    r.user,
                    r.current_attempt.map(|a| a.attempt).unwrap_or(0)
                )
            })
            .collect()),
        other => anyhow::bail!("unexpected answer: {other:?}"),
    }
}
