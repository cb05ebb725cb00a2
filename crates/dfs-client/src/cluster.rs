//! Cluster discovery: the NameNode's RPC address from the `cluster.json` that `herd up` writes.

use std::path::Path;

use crate::error::{DfsError, Result};

/// The `rpc` address of the first NameNode listed in `dir/cluster.json` (a running one if any
/// is marked running).
pub fn namenode_addr(dir: &Path) -> Result<String> {
    let path = dir.join("cluster.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| DfsError::Cluster(format!("{}: {e} (is `herd up` running there?)", path.display())))?;
    namenode_addr_in(&text).map_err(|why| DfsError::Cluster(format!("{}: {why}", path.display())))
}

/// [`namenode_addr`] of cluster.json's text.
pub fn namenode_addr_in(text: &str) -> std::result::Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let procs = v.get("processes").and_then(|p| p.as_array()).ok_or("no \"processes\" list")?;
    let namenodes: Vec<&serde_json::Value> =
        procs.iter().filter(|p| p.get("role").and_then(|r| r.as_str()) == Some("namenode")).collect();
    let rpc =
        |p: &&serde_json::Value| p.get("addrs").and_then(|a| a.get("rpc")).and_then(|a| a.as_str()).map(String::from);
    let running = |p: &&&serde_json::Value| p.get("state").and_then(|s| s.as_str()).is_none_or(|s| s == "running");
    namenodes
        .iter()
        .filter(running)
        .find_map(rpc)
        .or_else(|| namenodes.iter().find_map(rpc))
        .ok_or_else(|| "no namenode with an rpc address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_running_namenode() {
        let text = r#"{"processes": [
            {"role": "keeper", "id": "1", "addrs": {"client": "127.0.0.1:2181"}},
            {"role": "namenode", "id": "1", "state": "stopped", "addrs": {"rpc": "127.0.0.1:1"}},
            {"role": "namenode", "id": "2", "state": "running", "pid": 5, "addrs": {"rpc": "127.0.0.1:8020", "http": "x"}},
            {"role": "datanode", "id": "1", "addrs": {"data": "127.0.0.1:9866"}}]}"#;
        assert_eq!(namenode_addr_in(text).unwrap(), "127.0.0.1:8020");
        assert!(namenode_addr_in(r#"{"processes": [{"role": "keeper"}]}"#).is_err());
        assert!(namenode_addr_in("nope").is_err());
    }
}
