//! Where `herd up`'s roles listen: all on loopback, or (`--netns`) each role in a network
//! namespace of its own with its own address on a bridge, so that `herd chaos partition` can
//! cut one off with real packet drops.
//!
//! Names come from a prefix unique to the cluster dir, `herd-` and six hex digits of a hash of
//! its canonical path: the switch `<p>-sw`, one namespace per role (`<p>-keeper1`,
//! `<p>-namenode1`, `<p>-datanode2`, `<p>-resourcemanager1`, `<p>-nm1`) and `<p>-client`,
//! where `herd up` itself and the client commands run. Namespaces are private, so every
//! cluster can use the same subnet, [`SUBNET`]: the client is .1, the roles .2 on in start
//! order. The same dir always gets the same names: the next `herd up --netns` there deletes
//! what an interrupted run (kill -9) left behind.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

/// The first three octets of every `--netns` cluster's /24.
pub const SUBNET: [u8; 3] = [10, 88, 0];
/// How long a new `herd up --netns` waits for the processes of an interrupted run to leave its
/// namespaces (they got SIGTERM by PDEATHSIG and may still be stopping).
const STALE_WAIT: Duration = Duration::from_secs(15);

/// The top-level `"netns"` of cluster.json.
#[derive(Serialize, Clone, Debug)]
pub struct NetnsInfo {
    pub prefix: String,
    pub switch: String,
    /// The namespace client commands enter, and its address.
    pub client: String,
    pub client_ip: String,
}

/// A role's namespace and address.
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
}

/// The namespaces of a `--netns` cluster, deleted when this drops (after the children stopped).
pub struct Netns {
    /// Held for its drop, which deletes every namespace.
    _net: netns::Net,
    pub info: NetnsInfo,
    hosts: BTreeMap<(String, String), Host>,
}

/// Loopback (None) or the cluster's namespaces.
pub struct Network(pub Option<Netns>);

impl Network {
    /// The address a role listens on.
    pub fn ip(&self, role: &str, id: &str) -> String {
        match self.host(role, id) {
            Some(h) => h.ip.to_string(),
            None => "127.0.0.1".to_owned(),
        }
    }

    /// The namespace a role runs in (None on loopback).
    pub fn netns(&self, role: &str, id: &str) -> Option<String> {
        self.host(role, id).map(|h| h.ns.clone())
    }

    pub fn host(&self, role: &str, id: &str) -> Option<&Host> {
        self.0.as_ref().and_then(|n| n.hosts.get(&(role.to_owned(), id.to_owned())))
    }

    pub fn info(&self) -> Option<&NetnsInfo> {
        self.0.as_ref().map(|n| &n.info)
    }
}

/// `herd-` and six hex digits of a hash (FNV-1a, stable across builds) of the dir's canonical
/// path.
pub fn prefix_for(dir: &Path) -> anyhow::Result<String> {
    let canonical = dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(format!("herd-{:06x}", h & 0xff_ffff))
}

/// A role's namespace name: `<p>-<role><id>`, or `<p>-<id>` for NodeManagers (ids `nm1`..).
pub fn ns_name(prefix: &str, role: &str, id: &str) -> String {
    if role == "nodemanager" {
        format!("{prefix}-{id}")
    } else {
        format!("{prefix}-{role}{id}")
    }
}

/// Makes the namespaces for `roles` (role, id), in order, after deleting those an interrupted
/// run on this dir left, and moves the calling thread into the client namespace. Call it
/// before any other thread exists: threads started later are born there, so that `herd up`'s
/// supervisors reach the keepers over the bridge.
pub fn setup(dir: &Path, roles: &[(String, String)]) -> anyhow::Result<Netns> {
    if let Some(why) = netns::why_unavailable() {
        bail!("herd up --netns: {why}; it needs root, iproute2 (ip) and nftables (nft)");
    }
    let prefix = prefix_for(dir)?;
    remove_stale(&prefix, dir)?;
    if roles.len() + 1 > 253 {
        bail!("herd up --netns gives each role an address on one /24: at most 252 roles, not {}", roles.len());
    }
    let [a, b, c] = SUBNET;
    let client = Host { ns: format!("{prefix}-client"), ip: Ipv4Addr::new(a, b, c, 1) };
    let mut hosts = BTreeMap::new();
    let mut list = vec![(client.ns.clone(), client.ip)];
    for (i, (role, id)) in roles.iter().enumerate() {
        let host = Host { ns: ns_name(&prefix, role, id), ip: Ipv4Addr::new(a, b, c, i as u8 + 2) };
        list.push((host.ns.clone(), host.ip));
        hosts.insert((role.clone(), id.clone()), host);
    }
    let switch = format!("{prefix}-sw");
    let net = netns::Net::named(&switch, &list).map_err(|e| anyhow::anyhow!("herd up --netns: {e}"))?;
    netns::join(&client.ns).map_err(|e| anyhow::anyhow!("herd up --netns: {e}"))?;
    let info = NetnsInfo { prefix, switch, client: client.ns, client_ip: client.ip.to_string() };
    Ok(Netns { _net: net, info, hosts })
}

/// Deletes the namespaces named `<prefix>-*`: what a `herd up --netns` on this dir that was
/// killed with kill -9 left (its children died of PDEATHSIG). Refuses while a process is still
/// in one after [`STALE_WAIT`]: another `herd up` may be running on the dir.
fn remove_stale(prefix: &str, dir: &Path) -> anyhow::Result<()> {
    let mine = format!("{prefix}-");
    let stale: Vec<String> =
        netns::list().map_err(|e| anyhow::anyhow!(e))?.into_iter().filter(|n| n.starts_with(&mine)).collect();
    if stale.is_empty() {
        return Ok(());
    }
    let t0 = Instant::now();
    loop {
        let mut busy = Vec::new();
        for ns in &stale {
            let pids = netns::pids(ns).map_err(|e| anyhow::anyhow!(e))?;
            for pid in pids {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                busy.push(format!("pid {pid} in {ns} ({})", cmd.trim()));
            }
        }
        if busy.is_empty() {
            break;
        }
        if t0.elapsed() > STALE_WAIT {
            bail!(
                "herd up --netns: processes still run in the namespaces of {}: {}; is another `herd up` \
                 running on this dir?",
                dir.display(),
                busy.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for ns in &stale {
        netns::delete(ns).map_err(|e| anyhow::anyhow!(e))?;
    }
    eprintln!("deleted {} network namespaces an interrupted run left: {}", stale.len(), stale.join(" "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_per_dir_and_per_role() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let (pa, pb) = (prefix_for(&a).unwrap(), prefix_for(&b).unwrap());
        assert!(pa.starts_with("herd-") && pa.len() == 11, "{pa}");
        assert_ne!(pa, pb);
        // The same dir, however it is spelled, gets the same prefix.
        assert_eq!(prefix_for(&b.join("..").join("a")).unwrap(), pa);
        assert_eq!(ns_name("herd-abc123", "datanode", "2"), "herd-abc123-datanode2");
        assert_eq!(ns_name("herd-abc123", "nodemanager", "nm1"), "herd-abc123-nm1");
    }
}
