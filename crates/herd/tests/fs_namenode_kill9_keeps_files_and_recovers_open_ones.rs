//! Guarantee: a NameNode killed with -9 and restarted comes back with its whole namespace and
//! every closed file intact, and a file whose writer died while it was open is recovered by
//! lease recovery to exactly what the writer had acknowledged (hflushed).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::dfs::{bytes, wait_for, DfsCluster};
use dfs_client::{CreateOptions, Dfs};

const MIB: usize = 1 << 20;

fn read_all(dfs: &Dfs, path: &str) -> Vec<u8> {
    let mut back = Vec::new();
    dfs.open(path).expect("open").read_to_end(&mut back).expect("read");
    back
}

#[test]
fn namespace_and_closed_files_survive_and_the_open_file_is_recovered() {
    // A short hard limit, so the NameNode recovers the dead writer's file within seconds.
    let mut c = DfsCluster::start(3, &["--lease-soft-ms", "1000", "--lease-hard-ms", "2000"], &[]);
    let dfs = Dfs::connect(&c.namenode_addr, "herd").expect("connect");
    let opts = || CreateOptions { replication: Some(3), block_size: Some(MIB as u64), ..Default::default() };
    let mut closed = Vec::new();
    for (i, len) in [0usize, 1, 5000, 2 * MIB + 17].into_iter().enumerate() {
        let path = format!("/data/closed-{i}");
        let data = bytes(len, i as u64);
        let mut w = dfs.create(&path, opts()).expect("create");
        w.write_all(&data).expect("write");
        w.close().expect("close");
        closed.push((path, data));
    }
    dfs.mkdirs("/data/empty/deep", 0o750, true).expect("mkdirs");
    dfs.set_permission("/data/closed-1", 0o600).expect("chmod");
    dfs.set_owner("/data/closed-2", Some("ann"), Some("staff")).expect("chown");
    dfs.rename("/data/closed-3", "/data/renamed", false).expect("rename");
    closed[3].0 = "/data/renamed".into();

    // A writer that acknowledged 1.5 MiB + 300 bytes (hflush), then died.
    let open = bytes(MIB + MIB / 2 + 300, 99);
    let mut w = dfs.create("/data/open", opts()).expect("create");
    w.write_all(&open).expect("write");
    w.hflush().expect("hflush");
    let listing = |dfs: &Dfs| -> Vec<(String, u64, u16, String, String)> {
        let mut out = Vec::new();
        for d in ["/data", "/data/empty"] {
            for s in dfs.list(d).expect("list") {
                out.push((
                    format!("{d}/{}", s.name),
                    if s.under_construction { 0 } else { s.length },
                    s.perm,
                    s.owner,
                    s.group,
                ));
            }
        }
        out
    };
    let before = listing(&dfs);

    c.namenode.as_mut().expect("namenode").kill9();
    drop(w); // the writer's process dies too: no close, no more lease renewals
    c.start_namenode();

    let dfs = Dfs::connect(&c.namenode_addr, "herd").expect("reconnect");
    assert_eq!(listing(&dfs), before, "the namespace came back whole");
    // Closed files read back once the DataNodes have registered again and reported.
    c.wait_healthy("/data", Duration::from_secs(60));
    for (path, data) in &closed {
        assert!(read_all(&dfs, path) == *data, "{path} reads back identical");
    }
    wait_for(
        Duration::from_secs(60),
        || dfs.status("/data/open").ok().flatten().is_some_and(|s| !s.under_construction),
        || format!("/data/open closed by lease recovery; namenode log:\n{}", c.namenode_log_tail()),
    );
    // The recovery logs its success just after the close it applied, so the line may trail
    // the status a moment.
    let log = || common::dfs::strip_ansi(&c.namenode.as_ref().expect("namenode").log());
    wait_for(
        Duration::from_secs(10),
        || log().contains("lease recovery closed the file path=/data/open"),
        || format!("closed by the NameNode's recovery:\n{}", log()),
    );
    let s = dfs.status("/data/open").expect("status").expect("exists");
    assert_eq!(s.length, open.len() as u64, "recovered to the acknowledged length");
    assert!(read_all(&dfs, "/data/open") == open, "the recovered file holds the acknowledged bytes");
    c.wait_healthy("/data", Duration::from_secs(60));
}
