//! The JSON bodies of WebHDFS answers, field for field as Hadoop's `JsonUtil` writes them
//! (keys sorted, as its TreeMaps sort them).

use dfs_client::{ContentSummary, FileKind, FileStatus, LocatedBlocks};
use serde_json::{json, Value};

/// One `FileStatus` object (without the `{"FileStatus": ...}` wrapper).
pub fn file_status(s: &FileStatus) -> Value {
    let is_dir = s.kind == FileKind::Dir;
    json!({
        "accessTime": s.atime_ms,
        "blockSize": s.block_size,
        "childrenNum": s.children,
        "fileId": s.file_id,
        "group": s.group,
        "length": if is_dir { 0 } else { s.length },
        "modificationTime": s.mtime_ms,
        "owner": s.owner,
        "pathSuffix": s.name,
        "permission": format!("{:o}", s.perm),
        "replication": s.replication,
        "storagePolicy": 0,
        "type": if is_dir { "DIRECTORY" } else { "FILE" },
    })
}

pub fn file_statuses(entries: &[FileStatus]) -> Value {
    json!({"FileStatuses": {"FileStatus": entries.iter().map(file_status).collect::<Vec<_>>()}})
}

/// `LISTSTATUS_BATCH`: one page and how many entries follow it.
pub fn directory_listing(entries: &[FileStatus], remaining: u64) -> Value {
    json!({"DirectoryListing": {"partialListing": file_statuses(entries), "remainingEntries": remaining}})
}

/// herd keeps no quotas: -1, as Hadoop writes for "none".
pub fn content_summary(c: &ContentSummary) -> Value {
    json!({"ContentSummary": {
        "directoryCount": c.dirs,
        "ecPolicy": "",
        "fileCount": c.files,
        "length": c.length,
        "quota": -1,
        "spaceConsumed": c.space_consumed,
        "spaceQuota": -1,
        "typeQuota": {},
    }})
}

/// `GETFILEBLOCKLOCATIONS`: Hadoop's `BlockLocation[]` (hosts, `host:port` names, topology
/// paths `/rack/host:port`).
pub fn block_locations(located: &LocatedBlocks) -> Value {
    let blocks: Vec<Value> = located
        .blocks
        .iter()
        .map(|lb| {
            let names: Vec<&str> = lb.locations.iter().map(|d| d.data_addr.as_str()).collect();
            let hosts: Vec<&str> = names.iter().map(|n| host_of(n)).collect();
            let topology: Vec<String> =
                lb.locations.iter().map(|d| format!("{}/{}", d.rack.trim_end_matches('/'), d.data_addr)).collect();
            json!({
                "cachedHosts": [],
                "corrupt": lb.corrupt,
                "hosts": hosts,
                "length": lb.block.len,
                "names": names,
                "offset": lb.offset,
                "storageTypes": vec!["DISK"; names.len()],
                "topologyPaths": topology,
            })
        })
        .collect();
    json!({"BlockLocations": {"BlockLocation": blocks}})
}

/// `GETFILECHECKSUM`: the algorithm's name, the 28 bytes of Hadoop's serialization in hex.
pub fn file_checksum(c: &dfs_client::FileChecksum) -> Value {
    json!({"FileChecksum": {"algorithm": c.algorithm, "bytes": c.hex(), "length": c.length}})
}

pub fn boolean(b: bool) -> Value {
    json!({ "boolean": b })
}

pub fn path(p: &str) -> Value {
    json!({ "Path": p })
}

/// The host part of `host:port` (`[v6]:port` too).
pub fn host_of(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_status_has_every_field_hadoops_client_reads() {
        let s = FileStatus {
            name: "a.txt".into(),
            kind: FileKind::File,
            length: 12,
            owner: "alice".into(),
            group: "supergroup".into(),
            perm: 0o1644,
            replication: 3,
            block_size: 128 << 20,
            mtime_ms: 5,
            atime_ms: 4,
            file_id: 16390,
            children: 0,
            under_construction: false,
        };
        let j = file_status(&s);
        for k in [
            "accessTime",
            "blockSize",
            "childrenNum",
            "fileId",
            "group",
            "length",
            "modificationTime",
            "owner",
            "pathSuffix",
            "permission",
            "replication",
            "storagePolicy",
            "type",
        ] {
            assert!(j.get(k).is_some(), "missing {k}");
        }
        assert_eq!(j["permission"], "1644");
        assert_eq!(j["type"], "FILE");
        assert_eq!(host_of("127.0.0.1:9866"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9866"), "::1");
    }
}
