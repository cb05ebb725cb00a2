//! `cargo xtask bench keeper`: herd's keeper and Apache ZooKeeper 3.8 (Debian's) side by side,
//! standalone and as 3-server loopback ensembles, each on fresh data dirs on the same disk,
//! loaded in turn by `herd bench keeper` with the same workloads, in one run.

use crate::ensemble::{Ensemble, System};
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// (mix, clients, depth)
const WORKLOADS: [(&str, &str, &str); 5] = [
    ("create", "16", "16"),
    ("set", "16", "16"),
    ("get", "16", "16"),
    ("create=1,set=1,get=8,exists=1,delete=1", "16", "16"),
    ("create", "1", "1"),
];

/// The load generator's warm-up (its default), and the slack it gets past warm-up plus the
/// measured time before it is killed as hung.
const WARMUP_S: f64 = 2.0;
const LOADGEN_SLACK: Duration = Duration::from_secs(60);

/// One system's run of one workload: not run (the system did not start), failed (why), or
/// the load generator's figures.
type Run = Option<Result<Stats, String>>;

/// One load generator run: its JSON line's figures.
struct Stats {
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
}

pub fn bench_keeper(args: &[String]) -> Result<()> {
    let mut seconds = 5.0f64;
    let mut nodes = vec![1, 3];
    let mut herd_bin = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => seconds = value()?.parse().context("--seconds")?,
            "--nodes" => {
                nodes = match value()?.as_str() {
                    "1" => vec![1],
                    "3" => vec![3],
                    "both" => vec![1, 3],
                    v => bail!("--nodes {v:?}: expected 1, 3 or both"),
                }
            }
            "--herd-bin" => herd_bin = Some(PathBuf::from(value()?)),
            _ => bail!("unknown argument {a:?} (bench keeper [--seconds N] [--nodes 1|3|both] [--herd-bin PATH])"),
        }
    }
    crate::install_debian_clients()?;
    let herd = crate::herd_binary(herd_bin)?;
    crate::with_scratch_dir("herd-bench", |tmp| {
        // A system that cannot run with one node count does not stop the other node count.
        let errors: Vec<String> =
            nodes.iter().filter_map(|&n| bench_nodes(n, &herd, tmp, seconds).err()).map(|e| format!("{e:#}")).collect();
        if !errors.is_empty() {
            bail!("not every system ran: {}", errors.join("\n"));
        }
        Ok(())
    })
}

/// Starts both systems with `n` servers each, runs every workload against each in turn and
/// prints the table and peak RSS. A system that fails to start (or to elect a leader) is
/// reported and skipped while the other runs, and the result is then an error.
fn bench_nodes(n: usize, herd: &Path, tmp: &Path, seconds: f64) -> Result<()> {
    let dir = tmp.join(format!("nodes-{n}"));
    let mut running: Vec<(System, Ensemble, Vec<SocketAddr>)> = Vec::new();
    let mut not_run: Vec<String> = Vec::new();
    for system in [System::Herd, System::Zk] {
        match Ensemble::start_with_leader(system, herd, &dir, n) {
            Ok((e, leader)) => {
                // Followers first, then the leader: with one client (or fewer clients than
                // servers) the sessions land on followers, as most of a real ensemble's do.
                let mut order: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
                order.push(leader);
                let targets = e.client_addrs(&order);
                if n > 1 {
                    eprintln!(
                        "xtask: {} {n}-node ensemble ready, leader is server {}",
                        system.short(),
                        e.servers[leader].id
                    );
                }
                running.push((system, e, targets));
            }
            Err(err) => {
                eprintln!("xtask: {} {n}-node not benchmarked: {err:#}", system.short());
                not_run.push(format!("{}: not run: {err:#}", system.short()));
            }
        }
    }

    // (workload, herd, ZooKeeper)
    let mut table: Vec<(String, Run, Run)> = Vec::new();
    for (mix, clients, depth) in WORKLOADS {
        let mut row = (format!("{mix} c={clients} d={depth}"), None, None);
        for (system, _, targets) in &running {
            let r = load(herd, *system, targets, mix, clients, depth, seconds).map_err(|e| format!("{e:#}"));
            if let Err(e) = &r {
                eprintln!("xtask: {mix} c={clients} d={depth} against {} {n}-node failed: {e}", system.short());
            }
            match system {
                System::Herd => row.1 = Some(r),
                System::Zk => row.2 = Some(r),
            }
        }
        table.push(row);
    }

    let servers = if n == 1 { "standalone".to_owned() } else { format!("{n}-node ensembles, targets followers first") };
    println!("\n### {servers}, {seconds} s per run\n");
    println!("| workload | herd ops/s | ZK ops/s | herd/ZK ops/s | herd p50/p99/p99.9 us | ZK p50/p99/p99.9 us | herd/ZK p99 |");
    println!("|---|---|---|---|---|---|---|");
    let cell = |r: &Run, f: &dyn Fn(&Stats) -> String| match r {
        Some(Ok(s)) => f(s),
        Some(Err(_)) => "failed".to_owned(),
        None => "-".to_owned(),
    };
    for (name, h, z) in &table {
        let ratio = |f: &dyn Fn(&Stats) -> f64| match (h, z) {
            (Some(Ok(h)), Some(Ok(z))) if f(z) > 0.0 => format!("{:.2}x", f(h) / f(z)),
            _ => "-".to_owned(),
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            cell(h, &|s| format!("{:.0}", s.ops_per_s)),
            cell(z, &|s| format!("{:.0}", s.ops_per_s)),
            ratio(&|s| s.ops_per_s),
            cell(h, &|s| format!("{:.0}/{:.0}/{:.0}", s.p50_us, s.p99_us, s.p999_us)),
            cell(z, &|s| format!("{:.0}/{:.0}/{:.0}", s.p50_us, s.p99_us, s.p999_us)),
            ratio(&|s| s.p99_us),
        );
    }
    println!();
    for (system, e, _) in &running {
        let each = e.peak_rss_kib();
        let total: u64 = each.iter().flatten().sum();
        let parts: Vec<String> =
            each.iter().map(|kib| kib.map_or("?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))).collect();
        let what =
            if n == 1 { "".to_owned() } else { format!(", summed over {n} servers ({} MiB)", parts.join(" + ")) };
        println!("peak RSS (VmHWM) {}: {:.1} MiB{what}", system.label(), total as f64 / 1024.0);
    }
    for (name, h, z) in &table {
        for (system, r) in [(System::Herd, h), (System::Zk, z)] {
            if let Some(Err(e)) = r {
                let first = e.lines().next().unwrap_or_default();
                println!("{name} against {} failed: {first}", system.short());
            }
        }
    }
    for line in &not_run {
        println!("{line}");
    }
    if !not_run.is_empty() {
        bail!("{n} node(s): {}", not_run.join("; "));
    }
    Ok(())
}

/// One `herd bench keeper` run, killed if it outlives warm-up + measured time + slack.
fn load(
    herd: &Path,
    system: System,
    targets: &[SocketAddr],
    mix: &str,
    clients: &str,
    depth: &str,
    seconds: f64,
) -> Result<Stats> {
    let target = targets.iter().map(SocketAddr::to_string).collect::<Vec<_>>().join(",");
    let mut cmd = Command::new(herd);
    // An error is one line in the table's notes, not a backtrace.
    cmd.env("RUST_BACKTRACE", "0").env("RUST_LIB_BACKTRACE", "0");
    cmd.args(["bench", "keeper", "--target", &target, "--mix", mix, "--clients", clients, "--depth", depth]).args([
        "--warmup",
        &WARMUP_S.to_string(),
        "--seconds",
        &seconds.to_string(),
        "--label",
        system.label(),
    ]);
    let timeout = Duration::from_secs_f64(WARMUP_S + seconds) + LOADGEN_SLACK;
    let out = crate::ensemble::output_with_timeout(&mut cmd, timeout)?;
    if !out.status.success() {
        bail!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    println!("{line}");
    let field = |k: &str| -> Result<f64> {
        line.split(&format!("\"{k}\":"))
            .nth(1)
            .and_then(|r| r.split([',', '}']).next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {k} in the load generator's line {line:?}"))
    };
    Ok(Stats {
        ops_per_s: field("ops_per_s")?,
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        p999_us: field("p999_us")?,
    })
}
