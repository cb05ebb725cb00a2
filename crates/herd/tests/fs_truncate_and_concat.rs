//! Guarantee: truncate and concat keep Hadoop's semantics on real processes. A truncate inside
//! a block is finished by the NameNode's block recovery — every replica of the new last block
//! cut to the new length under a new stamp — also when the NameNode is killed with -9 before
//! the recovery could run; one on a block boundary is done at once. A concat reads back as the
//! concatenation, its sources are gone and its blocks take the target's replication. Refusals
//! carry Hadoop's exception names.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::dfs::{bytes, finalized_blocks, text, wait_for, DfsCluster};
use dfs_client::{CreateOptions, Dfs};

const MIB: usize = 1 << 20;

fn write_file(dfs: &Dfs, path: &str, data: &[u8], replication: u16) {
    let opts = CreateOptions { replication: Some(replication), block_size: Some(MIB as u64), ..Default::default() };
    let mut w = dfs.create(path, opts).expect("create");
    w.write_all(data).expect("write");
    w.close().expect("close");
}

fn read_all(dfs: &Dfs, path: &str) -> Vec<u8> {
    let mut back = Vec::new();
    dfs.open(path).expect("open").read_to_end(&mut back).expect("read");
    back
}

/// Waits until the file is closed at `len` bytes (the pattern `hadoop fs -truncate -w` uses).
fn wait_closed_at(c: &DfsCluster, dfs: &Dfs, path: &str, len: u64) {
    wait_for(
        Duration::from_secs(60),
        || dfs.status(path).ok().flatten().is_some_and(|s| !s.under_construction && s.length == len),
        || format!("{path} closed at {len} bytes; namenode log:\n{}", c.namenode_log_tail()),
    );
}

/// The on-disk sizes of every finalized replica of block `id`, over the cluster's DataNodes.
fn replica_sizes(c: &DfsCluster, id: u64) -> Vec<u64> {
    let name = format!("blk_{id}");
    (1..=3)
        .flat_map(|i| finalized_blocks(&c.datanode_dir(i)))
        .filter(|p| p.file_name().and_then(|n| n.to_str()) == Some(name.as_str()))
        .map(|p| std::fs::metadata(&p).map(|m| m.len()).unwrap_or(u64::MAX))
        .collect()
}

#[test]
fn truncate_cuts_inside_a_block_by_recovery_and_survives_a_namenode_kill9() {
    let mut c = DfsCluster::start(3, &[], &[]);
    let dfs = Dfs::connect(&c.namenode_addr, "herd").expect("connect");

    // Inside the second of three blocks: the file waits for the block recovery.
    let data = bytes(2 * MIB + MIB / 2, 1);
    write_file(&dfs, "/t/mid", &data, 3);
    let n = MIB + MIB / 2 + 100;
    assert!(!dfs.truncate("/t/mid", n as u64).expect("truncate"), "a cut inside a block needs a recovery");
    wait_closed_at(&c, &dfs, "/t/mid", n as u64);
    assert!(read_all(&dfs, "/t/mid") == data[..n], "reads back the first {n} bytes");
    c.wait_healthy("/t", Duration::from_secs(60));
    let health = dfs.block_health("/t/mid").expect("health");
    assert_eq!(health.len(), 2);
    let last = health[1].block;
    assert_eq!(last.len, (n - MIB) as u64);
    assert!(last.gs > last.id, "the cut block has a new stamp");
    wait_for(
        Duration::from_secs(30),
        || replica_sizes(&c, last.id) == vec![last.len; 3],
        || format!("every replica of block {} is {} bytes: {:?}", last.id, last.len, replica_sizes(&c, last.id)),
    );
    let log = common::dfs::strip_ansi(&c.namenode.as_ref().expect("namenode").log());
    assert!(log.contains("truncate recovery closed the file path=/t/mid"), "closed by a truncate recovery:\n{log}");

    // On a block boundary: done at once, the blocks past it deleted on the DataNodes.
    write_file(&dfs, "/t/edge", &data, 3);
    let dropped: Vec<u64> = dfs.block_health("/t/edge").expect("health").iter().skip(1).map(|b| b.block.id).collect();
    assert!(dfs.truncate("/t/edge", MIB as u64).expect("truncate"), "a cut on a boundary is done at once");
    let s = dfs.status("/t/edge").expect("status").expect("exists");
    assert_eq!((s.length, s.under_construction), (MIB as u64, false));
    assert!(read_all(&dfs, "/t/edge") == data[..MIB]);
    wait_for(
        Duration::from_secs(30),
        || dropped.iter().all(|id| replica_sizes(&c, *id).is_empty()),
        || format!("the replicas of blocks {dropped:?} deleted"),
    );

    // The shell's -w waits for the recovery.
    write_file(&dfs, "/t/shell", &data[..3000], 3);
    let out = c.fs_ok(&["truncate", "-w", "1234", "/t/shell"]);
    assert!(out.contains("Waiting for /t/shell ...") && out.contains("Truncated /t/shell to length: 1234"), "{out}");
    assert!(read_all(&dfs, "/t/shell") == data[..1234]);

    // A truncate the NameNode could not finish (no DataNode up) is finished after a kill -9
    // and restart, from the journal: the lease monitor starts the recovery again.
    write_file(&dfs, "/t/restart", &data, 3);
    for i in 1..=3 {
        c.kill9_datanode(i);
    }
    let k = 2 * MIB + 7;
    assert!(!dfs.truncate("/t/restart", k as u64).expect("truncate"));
    c.namenode.as_mut().expect("namenode").kill9();
    c.start_namenode();
    let s = Dfs::connect(&c.namenode_addr, "herd").expect("reconnect").status("/t/restart").expect("status");
    assert!(s.is_some_and(|s| s.under_construction), "the truncate is still pending after the restart");
    for i in 1..=3 {
        c.restart_datanode(i);
    }
    c.wait_datanodes(3);
    let dfs = Dfs::connect(&c.namenode_addr, "herd").expect("reconnect");
    wait_closed_at(&c, &dfs, "/t/restart", k as u64);
    assert!(read_all(&dfs, "/t/restart") == data[..k], "reads back the first {k} bytes after the restart");
    let log = common::dfs::strip_ansi(&c.namenode.as_ref().expect("namenode").log());
    assert!(
        log.contains("lease recovery started by the lease monitor path=/t/restart"),
        "the restarted NameNode's lease monitor took the truncate up again:\n{log}"
    );
    assert!(read_all(&dfs, "/t/mid") == data[..n], "the earlier truncate is kept");
    c.wait_healthy("/t", Duration::from_secs(60));
}

#[test]
fn concat_reads_back_as_the_concatenation_and_refusals_name_hadoop_exceptions() {
    let c = DfsCluster::start(3, &[], &[]);
    let dfs = Dfs::connect(&c.namenode_addr, "herd").expect("connect");
    let parts = [bytes(MIB + MIB / 2, 10), bytes(700_000, 11), bytes(MIB + 3, 12)];
    // A source at replication 2: its blocks take the target's 3.
    for (i, (p, repl)) in ["/c/t", "/c/s1", "/c/s2"].iter().zip([3, 2, 3]).enumerate() {
        write_file(&dfs, p, &parts[i], repl);
    }
    c.fs_ok(&["concat", "/c/t", "/c/s1", "/c/s2"]);
    let whole: Vec<u8> = parts.concat();
    let s = dfs.status("/c/t").expect("status").expect("exists");
    assert_eq!(s.length, whole.len() as u64);
    assert!(read_all(&dfs, "/c/t") == whole, "reads back as the concatenation");
    assert!(dfs.status("/c/s1").expect("status").is_none() && dfs.status("/c/s2").expect("status").is_none());
    let health = dfs.block_health("/c/t").expect("health");
    assert_eq!(health.len(), 5, "2 + 1 + 2 blocks, partial ones kept as they are");
    assert!(health.iter().all(|b| b.expected_replication == 3));
    c.wait_healthy("/c", Duration::from_secs(60));

    // Refusals, with Hadoop's exception names.
    let name = |r: dfs_client::Result<()>| r.expect_err("refused").exception_name().map(str::to_string);
    let truncated = dfs.truncate("/c/t", whole.len() as u64 + 1).map(|_| ());
    assert_eq!(name(truncated).as_deref(), Some("HadoopIllegalArgumentException"));
    dfs.mkdirs("/c/dir", 0o755, true).expect("mkdirs");
    write_file(&dfs, "/c/u", &parts[1], 3);
    assert_eq!(name(dfs.concat("/c/t", &["/c/dir"])).as_deref(), Some("FileNotFoundException"));
    assert_eq!(name(dfs.concat("/c/t", &["/c/none"])).as_deref(), Some("FileNotFoundException"));
    write_file(&dfs, "/d/elsewhere", &parts[1], 3);
    let elsewhere = dfs.concat("/c/t", &["/c/u", "/d/elsewhere"]);
    assert_eq!(name(elsewhere).as_deref(), Some("HadoopIllegalArgumentException"), "not in the target's directory");
    let mut open = dfs.create("/c/open", CreateOptions::default()).expect("create");
    open.write_all(b"still being written").expect("write");
    open.hflush().expect("hflush");
    assert_eq!(name(dfs.concat("/c/t", &["/c/open"])).as_deref(), Some("HadoopIllegalArgumentException"));
    assert_eq!(name(dfs.concat("/c/open", &["/c/u"])).as_deref(), Some("HadoopIllegalArgumentException"));
    let other = Dfs::connect(&c.namenode_addr, "herd").expect("connect");
    assert_eq!(name(other.truncate("/c/open", 1).map(|_| ())).as_deref(), Some("AlreadyBeingCreatedException"));
    open.close().expect("close");
    let out = c.fs(&["truncate", "99999999", "/c/u"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("truncate: Cannot truncate to a larger file size. Current size: 700000"),
        "{}",
        text(&out.stderr)
    );
    let out = c.fs(&["concat", "/c/t", "/c/dir", "/c/u"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("concat: /c/dir does not exist or is not file."), "{}", text(&out.stderr));
    assert!(read_all(&dfs, "/c/t") == whole && read_all(&dfs, "/c/u") == parts[1], "refusals changed nothing");
}
