//! Guarantee: a byte flipped in a replica on disk never reaches a reader. A read fails over to
//! another replica and returns correct data, the corrupt replica is reported, deleted and
//! rebuilt from a good one; the block scanner finds such a replica without any read.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::dfs::{bytes, strip_ansi, wait_for, DfsCluster};
use dfs_client::{CreateOptions, Dfs};

const MIB: usize = 1 << 20;

/// The data file of block `id` under a DataNode's dir, if it is finalized there.
fn replica_file(dn_dir: &Path, id: u64) -> Option<PathBuf> {
    common::dfs::finalized_blocks(dn_dir)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == format!("blk_{id}").as_str()))
}

fn flip_byte(p: &Path, at: u64) {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(p).expect("open replica");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read byte");
    f.write_all_at(&[b[0] ^ 0x5a], at).expect("flip byte");
    f.sync_all().expect("sync");
}

#[test]
fn a_flipped_byte_is_masked_reported_deleted_and_rebuilt() {
    // DataNode 3 scans its replicas every 300 ms; 1 and 2 only at start (an empty store).
    let c = DfsCluster::start_with(3, &[], &[], &[(3, &["--scan-period-ms", "300"])]);
    let dfs = Dfs::connect(&c.namenode_addr, "herd").expect("connect");
    let data = bytes(3 * MIB + 1000, 7);
    let opts = CreateOptions { replication: Some(3), block_size: Some(MIB as u64), ..Default::default() };
    let mut w = dfs.create("/c/f", opts).expect("create");
    w.write_all(&data).expect("write");
    w.close().expect("close");
    c.wait_healthy("/c", Duration::from_secs(60));
    let blocks = dfs.block_locations("/c/f", 0, u64::MAX >> 1).expect("locations").blocks;
    assert_eq!(blocks.len(), 4);
    let content = |i: usize| {
        let b = &blocks[i];
        data[b.offset as usize..(b.offset + b.block.len) as usize].to_vec()
    };
    let nn_log = || strip_ansi(&c.namenode.as_ref().expect("namenode").log());

    // 1. Through a read: corrupt the first replica a reader tries of block 1.
    let first = &blocks[1].locations[0].id;
    let dn: usize = first.parse().expect("numeric id");
    let id = blocks[1].block.id;
    let file = replica_file(&c.datanode_dir(dn), id).expect("replica file");
    flip_byte(&file, 700);
    let mut back = Vec::new();
    dfs.open("/c/f").expect("open").read_to_end(&mut back).expect("read");
    assert!(back == data, "the read returned correct data");
    let reported = format!("replica reported corrupt block={id} datanode={dn}");
    wait_for(Duration::from_secs(30), || nn_log().contains(&reported), || format!("{reported:?} in the namenode log"));
    // Deleted and rebuilt: the replica on that DataNode is good again, and the block has its
    // three live replicas.
    let good = content(1);
    wait_for(
        Duration::from_secs(60),
        || replica_file(&c.datanode_dir(dn), id).and_then(|p| std::fs::read(p).ok()).is_some_and(|b| b == good),
        || format!("block {id} rebuilt on datanode {dn}; namenode log:\n{}", c.namenode_log_tail()),
    );
    c.wait_healthy("/c", Duration::from_secs(60));

    // 2. Without a read: DataNode 3's scanner finds a flipped byte in its replica of block 2.
    let id = blocks[2].block.id;
    let file = replica_file(&c.datanode_dir(3), id).expect("replica of block 2 on datanode 3");
    flip_byte(&file, 10);
    let reported = format!("replica reported corrupt block={id} datanode=3");
    wait_for(Duration::from_secs(30), || nn_log().contains(&reported), || format!("{reported:?} in the namenode log"));
    let good = content(2);
    wait_for(
        Duration::from_secs(60),
        || replica_file(&c.datanode_dir(3), id).and_then(|p| std::fs::read(p).ok()).is_some_and(|b| b == good),
        || format!("block {id} rebuilt on datanode 3; namenode log:\n{}", c.namenode_log_tail()),
    );
    c.wait_healthy("/c", Duration::from_secs(60));
    let mut back = Vec::new();
    dfs.open("/c/f").expect("open").read_to_end(&mut back).expect("read");
    assert!(back == data, "the file reads back identical");
}
