//! A reader never returns a byte that fails its checksum: a replica flipped on disk is
//! reported to the NameNode and the read fails over to the next replica; when every replica
//! is bad the read fails naming the block.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

use dfs_client::{CreateOptions, DfsError};
use dfs_proto::ClientRequest;

mod common;
use common::{bytes, start_datanode, FakeNamenode};

fn flip(path: &std::path::Path, at: u64) {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).expect("open replica");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read");
    f.write_all_at(&[b[0] ^ 0x40], at).expect("flip");
}

#[test]
fn a_corrupt_replica_is_reported_and_skipped() {
    let nodes = [start_datanode("dn1"), start_datanode("dn2")];
    let nn = FakeNamenode::start(nodes.iter().map(|n| n.info.clone()).collect());
    let dfs = nn.client();
    let data = bytes(300_000, 5);
    let opts = CreateOptions { replication: Some(2), block_size: Some(1 << 20), ..CreateOptions::default() };
    let mut w = dfs.create("/c", opts).expect("create");
    w.write_all(&data).expect("write");
    w.close().expect("close");
    let block = nn.file("/c").blocks[0].0;

    // dn1 is the first location: a byte in the middle of its replica goes bad.
    flip(&nodes[0].replica_file(block.id).expect("dn1's replica"), 200_000);
    let mut back = Vec::new();
    dfs.open("/c").expect("open").read_to_end(&mut back).expect("read");
    assert!(back == data, "the read is served from dn2");
    let reported: Vec<(u64, String)> = nn
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            ClientRequest::ReportBadBlocks { blocks } => Some(blocks),
            _ => None,
        })
        .flatten()
        .map(|b| (b.block.id, b.datanode))
        .collect();
    assert_eq!(reported, vec![(block.id, "dn1".to_string())]);

    // Both bad: the read fails, naming the block, and never hands out the bad bytes.
    flip(&nodes[1].replica_file(block.id).expect("dn2's replica"), 200_100);
    let mut r = dfs.open("/c").expect("open");
    let mut buf = vec![0u8; 1024];
    let err = r.read_at(199_900, &mut buf).expect_err("no good replica");
    match err {
        DfsError::AllReplicasFailed { block: b, .. } => assert_eq!(b, block.id),
        other => panic!("{other}"),
    }
}
