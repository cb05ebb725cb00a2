//! Partitions of a `herd up --netns` cluster: every role in its own network namespace, so that
//! `herd chaos partition` drops packets between them with nft rules. A cluster on loopback
//! shares one network: it can be killed, paused and have its disks filled, not partitioned.
//!
//! A cut is one direction, "packets from A to B are dropped", made of two rules (`netns::
//! cut_one_way`): an `out` rule in A's namespace and an `in` rule in B's. Every cut made is
//! kept in `DIR/partitions.json` (written whole: temp file, rename), so that healing one role
//! can remove exactly its cuts: the rules of every namespace are flushed and those of the
//! cuts that remain are added again. A lock file (`DIR/partitions.lock`, flock) keeps two
//! `herd chaos` runs from interleaving their edits. A container's process (appmaster, task)
//! has its NodeManager's namespace: cutting it cuts the NodeManager and all its containers.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::chaos::{Proc, Target, CONTAINER_ROLES};

/// The record of the cuts in place, in the cluster dir.
pub const RECORD: &str = "partitions.json";
const LOCK: &str = "partitions.lock";

/// One end of a cut: a role (`keeper:1`) or `client`, its namespace and address.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Side {
    pub name: String,
    pub ns: String,
    pub ip: std::net::Ipv4Addr,
}

/// Packets from `from` to `to` are dropped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub from: Side,
    pub to: Side,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.from.name, self.to.name)
    }
}

/// The namespaces of a `--netns` cluster, from its cluster.json: one side per role, and the
/// client namespace.
struct Hosts {
    roles: Vec<Side>,
    client: Side,
}

impl Hosts {
    /// None for a cluster on loopback.
    fn load(dir: &Path) -> anyhow::Result<Option<Hosts>> {
        let path = dir.join("cluster.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{} (is `herd up` running there?)", path.display()))?;
        hosts_in(&text).with_context(|| path.display().to_string())
    }

    fn all(&self) -> impl Iterator<Item = &Side> {
        self.roles.iter().chain(std::iter::once(&self.client))
    }

    fn by_ns(&self, ns: &str) -> Option<&Side> {
        self.all().find(|s| s.ns == ns)
    }
}

fn hosts_in(text: &str) -> anyhow::Result<Option<Hosts>> {
    let v: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let Some(n) = v.get("netns").filter(|n| !n.is_null()) else { return Ok(None) };
    let side = |name: String, ns: &serde_json::Value, ip: &serde_json::Value| -> anyhow::Result<Side> {
        let ns = ns.as_str().with_context(|| format!("{name} has no namespace"))?.to_owned();
        let ip = ip.as_str().with_context(|| format!("{name} has no ip"))?;
        Ok(Side { ip: ip.parse().with_context(|| format!("{name}'s ip {ip:?}"))?, name, ns })
    };
    let client = side("client".to_owned(), &n["client"], &n["client_ip"])?;
    let mut roles = Vec::new();
    for p in v["processes"].as_array().context("no \"processes\" list")? {
        let name = format!("{}:{}", p["role"].as_str().unwrap_or("?"), p["id"].as_str().unwrap_or("?"));
        roles.push(side(name, &p["netns"], &p["ip"])?);
    }
    Ok(Some(Hosts { roles, client }))
}

/// Holds `DIR/partitions.lock` exclusively while it lives.
struct Locked(#[allow(dead_code)] std::fs::File);

fn lock(dir: &Path) -> anyhow::Result<Locked> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| path.display().to_string())?;
    // SAFETY: flock on a descriptor we own; the lock goes with it.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("locking {}: {}", path.display(), std::io::Error::last_os_error());
    }
    Ok(Locked(f))
}

fn read_record(dir: &Path) -> anyhow::Result<Vec<Cut>> {
    let path = dir.join(RECORD);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| path.display().to_string()),
    }
}

fn write_record(dir: &Path, cuts: &[Cut]) -> anyhow::Result<()> {
    let (path, tmp) = (dir.join(RECORD), dir.join(format!("{RECORD}.tmp")));
    std::fs::write(&tmp, serde_json::to_vec_pretty(cuts)?).with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())
}

fn add(cut: &Cut) -> anyhow::Result<()> {
    netns::cut_one_way(&cut.from.ns, cut.from.ip, &cut.to.ns, cut.to.ip).map_err(|e| anyhow::anyhow!("{cut}: {e}"))
}

/// Cuts `p` off from `others` (every other role and the clients when empty): both ways, or
/// only what `p` sends when `one_way`. Returns what was cut, for the user.
pub fn partition(dir: &Path, p: &Proc, others: &[Proc], one_way: bool) -> anyhow::Result<String> {
    let Some(hosts) = Hosts::load(dir)? else {
        bail!(
            "cannot partition {p}: the cluster in {} runs on loopback, one network for all; start it with \
             `herd up --netns` to give each role a network namespace of its own",
            dir.display()
        )
    };
    let target = side_of(&hosts, p)?;
    let mut to = Vec::new();
    if others.is_empty() {
        to.extend(hosts.all().filter(|s| s.ns != target.ns).cloned());
    } else {
        for o in others {
            let s = side_of(&hosts, o)?;
            if s.ns == target.ns {
                bail!("{o} shares {}'s network namespace {}: there is no link between them to cut", target.name, s.ns);
            }
            if !to.contains(&s) {
                to.push(s);
            }
        }
    }
    let mut cuts = Vec::new();
    for o in &to {
        cuts.push(Cut { from: target.clone(), to: o.clone() });
        if !one_way {
            cuts.push(Cut { from: o.clone(), to: target.clone() });
        }
    }
    let _lock = lock(dir)?;
    let mut record = read_record(dir)?;
    let new: Vec<Cut> = cuts.into_iter().filter(|c| !record.contains(c)).collect();
    // Recorded before the rules go in: a heal after a half-made partition removes all of it.
    record.extend(new.iter().cloned());
    write_record(dir, &record)?;
    for c in &new {
        add(c)?;
    }
    let names: Vec<&str> = to.iter().map(|s| s.name.as_str()).collect();
    let mut line = String::new();
    if CONTAINER_ROLES.contains(&p.role.as_str()) {
        line.push_str(&format!(
            "{p} runs in {}'s network namespace, so the cut is {}'s, with every container on it: ",
            target.name, target.name
        ));
    }
    let how = if one_way {
        "one way: what it sends to them is dropped, what they send to it arrives".to_owned()
    } else {
        "both ways".to_owned()
    };
    line.push_str(&format!(
        "cut {} ({} {}) off from {}: {how}; `herd chaos heal {}` undoes it",
        target.name,
        target.ns,
        target.ip,
        names.join(", "),
        target.name
    ));
    Ok(line)
}

/// The side of the role `p` runs in (a container's process: its NodeManager's).
fn side_of(hosts: &Hosts, p: &Proc) -> anyhow::Result<Side> {
    let ns = p.netns.as_deref().with_context(|| format!("{p} has no network namespace in cluster.json"))?;
    hosts.by_ns(ns).cloned().with_context(|| format!("{p}'s namespace {ns} is not one of the cluster's"))
}

/// Removes the partitions of the processes `t` names (all when None); one line per cut removed.
pub fn heal(dir: &Path, t: Option<&Target>) -> anyhow::Result<Vec<String>> {
    let Some(hosts) = Hosts::load(dir)? else { return Ok(Vec::new()) };
    let _lock = lock(dir)?;
    let record = read_record(dir)?;
    let (removed, kept): (Vec<Cut>, Vec<Cut>) = match t {
        None => (record, Vec::new()),
        Some(t) => {
            let spaces = namespaces_of(dir, &record, t)?;
            record.into_iter().partition(|c| spaces.contains(&c.from.ns) || spaces.contains(&c.to.ns))
        }
    };
    if t.is_some() && removed.is_empty() {
        return Ok(Vec::new());
    }
    write_record(dir, &kept)?;
    // Every namespace is flushed (heal with no target also clears rules the record may have
    // missed), and the cuts that stay go back in.
    for s in hosts.all() {
        netns::flush(&s.ns).map_err(|e| anyhow::anyhow!(e))?;
    }
    for c in &kept {
        add(c)?;
    }
    Ok(removed.iter().map(|c| format!("healed the cut {c}: its packets flow again")).collect())
}

/// The namespaces `t` names: of the running processes it matches (a container's: its
/// NodeManager's), and of the recorded sides it matches by name (a role restarting now).
fn namespaces_of(dir: &Path, record: &[Cut], t: &Target) -> anyhow::Result<BTreeSet<String>> {
    let mut spaces: BTreeSet<String> = crate::chaos::Cluster::load(dir)?
        .procs
        .iter()
        .filter(|p| t.matches(p))
        .filter_map(|p| p.netns.clone())
        .collect();
    for s in record.iter().flat_map(|c| [&c.from, &c.to]) {
        let Some((role, id)) = s.name.split_once(':') else { continue };
        let p = Proc { role: role.to_owned(), id: id.to_owned(), pid: 0, netns: Some(s.ns.clone()) };
        if t.matches(&p) {
            spaces.insert(s.ns.clone());
        }
    }
    Ok(spaces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_cluster_has_no_hosts_and_a_netns_one_has_each_role_and_the_client() {
        let loopback = r#"{"processes": [{"role": "keeper", "id": "1", "state": "running", "pid": 1}]}"#;
        assert!(hosts_in(loopback).unwrap().is_none());
        let netns = r#"{"processes": [
            {"role": "keeper", "id": "1", "state": "running", "pid": 1, "netns": "p-keeper1", "ip": "10.88.0.2"},
            {"role": "datanode", "id": "2", "state": "restarting", "pid": 2, "netns": "p-datanode2", "ip": "10.88.0.3"}],
            "netns": {"prefix": "p", "switch": "p-sw", "client": "p-client", "client_ip": "10.88.0.1"}}"#;
        let h = hosts_in(netns).unwrap().unwrap();
        let names: Vec<&str> = h.all().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["keeper:1", "datanode:2", "client"]);
        assert_eq!(h.by_ns("p-datanode2").unwrap().ip, std::net::Ipv4Addr::new(10, 88, 0, 3));
        let broken = netns.replace(r#""ip": "10.88.0.3""#, r#""ip": "nope""#);
        assert!(hosts_in(&broken).is_err());
    }

    #[test]
    fn the_record_round_trips_and_heal_by_name_finds_recorded_sides() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_record(dir.path()).unwrap().is_empty());
        let side = |name: &str, ns: &str, last: u8| Side {
            name: name.into(),
            ns: ns.into(),
            ip: std::net::Ipv4Addr::new(10, 88, 0, last),
        };
        let cuts = vec![
            Cut { from: side("datanode:2", "p-datanode2", 3), to: side("client", "p-client", 1) },
            Cut { from: side("client", "p-client", 1), to: side("datanode:2", "p-datanode2", 3) },
        ];
        write_record(dir.path(), &cuts).unwrap();
        assert_eq!(read_record(dir.path()).unwrap(), cuts);
        assert_eq!(cuts[0].to_string(), "datanode:2 -> client");
        // No cluster.json: the running processes cannot be listed, which is an error.
        assert!(namespaces_of(dir.path(), &cuts, &Target::parse("datanode:2").unwrap()).is_err());
    }
}
