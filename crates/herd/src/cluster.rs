//! Finding a `herd up` cluster's daemons from the `cluster.json` it writes (its shape:
//! `up::ClusterFile`), for commands given `--cluster DIR` or `HERD_CLUSTER` (declare the flag
//! as `herd fs` does: `#[arg(long, env = "HERD_CLUSTER")]`). The NameNode's address is read by
//! `dfs_client::cluster::namenode_addr`, which `herd fs` shares with the client library; the
//! compute roles' addresses are read here.

use anyhow::Context;
use std::path::Path;

/// The client namespace of a `herd up --netns` cluster (cluster.json's `netns.client`), or
/// None: a cluster on loopback, or no cluster.json (the command says so itself).
pub fn client_netns(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["netns"]["client"].as_str().map(str::to_owned)
}

/// Moves the calling thread into the cluster's client namespace, if it has one, so that the
/// roles' addresses on the bridge are reachable. Call it before any other thread starts.
pub fn enter_client_netns(dir: &Path) -> anyhow::Result<()> {
    let Some(ns) = client_netns(dir) else { return Ok(()) };
    netns::join(&ns).map_err(|e| {
        anyhow::anyhow!(
            "the cluster in {} runs in network namespaces (herd up --netns); its clients run in {ns}: {e} \
             (as root, and while `herd up` runs)",
            dir.display()
        )
    })
}

/// The ResourceManager's client RPC address (YARN's `yarn.resourcemanager.address`) of the
/// `herd up` cluster in `dir`.
pub fn rm_addr_from_cluster(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("cluster.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("{} (is `herd up` running there?)", path.display()))?;
    role_addr_in(&text, "resourcemanager", "rpc")
        .map_err(|why| anyhow::anyhow!("{}: {why} (was `herd up` run with --nodemanagers 0?)", path.display()))
}

/// The `key` address of a process of `role` in cluster.json's text: of one marked running if
/// any is (a restarting one may have a stale address), else of the first that has one.
pub fn role_addr_in(text: &str, role: &str, key: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let procs = v.get("processes").and_then(|p| p.as_array()).ok_or("no \"processes\" list")?;
    let of_role: Vec<&serde_json::Value> =
        procs.iter().filter(|p| p.get("role").and_then(|r| r.as_str()) == Some(role)).collect();
    let addr = |p: &&serde_json::Value| {
        p.get("addrs").and_then(|a| a.get(key)).and_then(|a| a.as_str()).filter(|a| !a.is_empty()).map(String::from)
    };
    let running = |p: &&&serde_json::Value| p.get("state").and_then(|s| s.as_str()) == Some("running");
    of_role
        .iter()
        .filter(running)
        .find_map(addr)
        .or_else(|| of_role.iter().find_map(addr))
        .ok_or_else(|| format!("no {role} with a {key} address"))
}

/// The `key` address of the process `role`:`id` in cluster.json's text.
pub fn role_addr_of(text: &str, role: &str, id: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("processes")?
        .as_array()?
        .iter()
        .find(|p| p["role"] == role && p["id"] == id)
        .and_then(|p| p["addrs"][key].as_str())
        .filter(|a| !a.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_resourcemanager_and_prefers_a_running_one() {
        let text = r#"{"processes": [
            {"role": "keeper", "id": "1", "state": "running", "addrs": {"client": "127.0.0.1:2181"}},
            {"role": "resourcemanager", "id": "1", "state": "restarting", "addrs": {"rpc": "127.0.0.1:1"}},
            {"role": "resourcemanager", "id": "2", "state": "running", "addrs": {"rpc": "127.0.0.1:8032"}},
            {"role": "nodemanager", "id": "nm1", "state": "running", "addrs": {"ctl": "127.0.0.1:5", "http": ""}}]}"#;
        assert_eq!(role_addr_in(text, "resourcemanager", "rpc").unwrap(), "127.0.0.1:8032");
        assert_eq!(role_addr_in(text, "nodemanager", "ctl").unwrap(), "127.0.0.1:5");
        // An empty address is none: a server that does not run.
        assert!(role_addr_in(text, "nodemanager", "http").is_err());
        let restarting =
            r#"{"processes": [{"role": "resourcemanager", "state": "restarting", "addrs": {"rpc": "a:1"}}]}"#;
        assert_eq!(role_addr_in(restarting, "resourcemanager", "rpc").unwrap(), "a:1");
        assert!(role_addr_in(r#"{"processes": [{"role": "keeper"}]}"#, "resourcemanager", "rpc").is_err());
        assert!(role_addr_in("nope", "resourcemanager", "rpc").is_err());
    }
}
