//! Guarantee: `herd up --nodemanagers N` runs a ResourceManager and N NodeManagers as
//! supervised processes beside the keeper and the file system. cluster.json lists them with
//! their addresses; the ResourceManager has every NodeManager RUNNING with the resources `herd
//! up` gave it; a NodeManager killed with -9 is restarted and its new process registers in
//! place of the dead one; SIGTERM to `herd up` stops every process, compute first and keepers
//! last. Without a file system (`--datanodes 0`) compute runs all the same.

mod common;

use common::alive;
use common::compute::ComputeCluster;
use std::net::SocketAddr;
use std::path::Path;

#[test]
fn up_runs_compute_restarts_a_killed_nodemanager_and_stops_everything() {
    let mut c = ComputeCluster::start(1, 2, &["--nm-memory-mb", "2048", "--nm-vcores", "2"]);
    let base = c.port_base();

    // cluster.json: the ResourceManager on its fixed port, NodeManagers on ports of their own.
    assert_eq!(c.rm_addr(), format!("127.0.0.1:{}", 8032 + base));
    assert_eq!(c.namenode_addr(), Some(format!("127.0.0.1:{}", 8020 + base)));
    assert_eq!(c.nodemanager_ids(), ["nm1", "nm2"]);
    let mut ports = Vec::new();
    for id in ["nm1", "nm2"] {
        for key in ["ctl", "shuffle"] {
            let addr = c.addr("nodemanager", id, key).unwrap_or_else(|| panic!("{id} has no {key} address"));
            ports.push(addr.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{id} {key}={addr}: {e}")).port());
        }
        // The NodeManager's HTTP server may not run yet: then it has no http address.
        if let Some(http) = c.addr("nodemanager", id, "http") {
            http.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{id} http={http}: {e}"));
        }
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 4, "NodeManagers share a port: {ports:?}");

    // The ResourceManager has both NodeManagers RUNNING (`start` waited for it), each offering
    // what `herd up` was told.
    let nodes = c.wait_nodes_running(2);
    for n in &nodes {
        assert_eq!((n.capability.memory_mb, n.capability.vcores), (2048, 2), "{n:?}");
    }
    // With a file system, NodeManagers are told the NameNode (for containers' files).
    let args = cmdline(c.nodemanager_pid(2));
    let nn = args.iter().position(|a| a == "--namenode").map(|i| args[i + 1].clone());
    assert_eq!(nn, c.namenode_addr(), "{args:?}");

    // kill -9 of nm1: its supervisor restarts it, and the new process registers in its place.
    let (old_pid, old_ctl) = (c.nodemanager_pid(1), c.addr("nodemanager", "nm1", "ctl").unwrap());
    assert_eq!(c.kill9_nodemanager(1), old_pid);
    c.wait_for("nm1 restarted", || {
        let e = c.entry("nodemanager", "nm1");
        (e["state"] == "running" && e["pid"].as_u64() != Some(old_pid.into())).then_some(())
    });
    assert_eq!(c.entry("nodemanager", "nm1")["restarts"], 1);
    assert!(!alive(old_pid), "the killed nodemanager {old_pid} is alive");
    let new_ctl = c.addr("nodemanager", "nm1", "ctl").unwrap();
    // Exactly the current processes, by control address: the dead one is gone from the RM.
    let nodes = c.wait_nodes_running(2);
    let reported: Vec<String> = nodes.iter().map(|n| n.node_id.to_string()).collect();
    assert!(reported.contains(&new_ctl), "{reported:?}");
    if new_ctl != old_ctl {
        assert!(!reported.contains(&old_ctl), "the dead nm1 ({old_ctl}) is still RUNNING: {reported:?}");
    }

    // SIGTERM to `herd up`: it exits 0 once every process it ran has ended.
    let pids: Vec<u32> = c.processes().unwrap().iter().map(|p| p["pid"].as_u64().unwrap() as u32).collect();
    assert_eq!(pids.len(), 6, "keeper, namenode, datanode, resourcemanager, 2 nodemanagers");
    let status = c.stop();
    assert!(status.success(), "herd up exited with {status}\n{}", c.output());
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} outlived herd up");
    }
    assert!(!c.dir().join("cluster.json").exists());

    // Each tier got SIGTERM only once the one before had exited, so the logs' "stopping on
    // signal" lines are in that order.
    let stopped = |log: &str| stop_time(&c.dir().join(log));
    let nms = stopped("nodemanager-nm1.log").max(stopped("nodemanager-nm2.log"));
    let rm = stopped("resourcemanager-1.log");
    let dfs = stopped("namenode-1.log").min(stopped("datanode-1.log"));
    let dfs_last = stopped("namenode-1.log").max(stopped("datanode-1.log"));
    let keeper = stopped("keeper-1.log");
    assert!(nms < rm && rm < dfs && dfs_last < keeper, "stop order: nm {nms}, rm {rm}, dfs {dfs}, keeper {keeper}");
}

/// The timestamp (RFC 3339, UTC: ordered as text) of the last "stopping on signal" line of a
/// role's log.
fn stop_time(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let line = text
        .lines()
        .rfind(|l| l.contains("stopping on signal"))
        .unwrap_or_else(|| panic!("{} has no \"stopping on signal\" line", log.display()));
    let plain = strip_ansi(line);
    plain.split_whitespace().next().expect("a timestamp").to_string()
}

/// `s` without its ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Without a file system (`--datanodes 0`) compute still runs: the NodeManagers get no
/// `--namenode`, and offer the default resources.
#[test]
fn up_runs_compute_without_a_file_system() {
    let c = ComputeCluster::start(0, 1, &[]);
    assert_eq!(c.namenode_addr(), None);
    let roles: Vec<String> = c.processes().unwrap().iter().map(|p| p["role"].as_str().unwrap().to_string()).collect();
    assert_eq!(roles, ["keeper", "resourcemanager", "nodemanager"]);
    let nodes = c.wait_nodes_running(1);
    assert_eq!((nodes[0].capability.memory_mb, nodes[0].capability.vcores), (4096, 4), "{nodes:?}");
    let args = cmdline(c.nodemanager_pid(1));
    assert!(args.iter().any(|a| a == "nodemanager"), "{args:?}");
    assert!(!args.iter().any(|a| a == "--namenode"), "{args:?}");
}

/// A process's arguments, from /proc.
fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_else(|e| panic!("pid {pid}'s command line: {e}"));
    raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}
