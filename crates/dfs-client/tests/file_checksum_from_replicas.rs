//! `Dfs::file_checksum` end to end against real data ports: a one-block file gives the value
//! published for HDFS ("world\n"), an empty file Hadoop's magic value, and a multi-block file
//! the same checksum whichever replicas answer, also after DataNodes stop.

use std::io::Write;

use dfs_client::{CreateOptions, DfsError};

mod common;
use common::{bytes, start_datanode, FakeNamenode};

#[test]
fn file_checksum_from_replicas() {
    let mut nodes = [start_datanode("dn1"), start_datanode("dn2"), start_datanode("dn3")];
    let nn = FakeNamenode::start(nodes.iter().map(|n| n.info.clone()).collect());
    let dfs = nn.client();
    let put = |path: &str, data: &[u8], block_size: u64| {
        let opts = CreateOptions { replication: Some(3), block_size: Some(block_size), ..CreateOptions::default() };
        let mut w = dfs.create(path, opts).expect("create");
        w.write_all(data).expect("write");
        w.close().expect("close");
    };

    put("/small", b"world\n", 1 << 20);
    let small = dfs.file_checksum("/small").expect("checksum");
    assert_eq!(small.algorithm, "MD5-of-0MD5-of-512CRC32C");
    // bytes_per_crc 512 | crc_per_block 0 | the file MD5.
    assert_eq!(small.hex(), "00000200".to_owned() + "0000000000000000" + "a74dcf6d5ba98e50ae0182c9d5d886fe");
    put("/empty", b"", 1 << 20);
    let empty = dfs.file_checksum("/empty").expect("checksum");
    assert_eq!((empty.algorithm.as_str(), empty.length), ("MD5-of-0MD5-of-0CRC32", 28));

    let data = bytes(3 * (64 << 10) + 1000, 9);
    put("/multi", &data, 64 << 10);
    let multi = dfs.file_checksum("/multi").expect("checksum");
    assert_eq!(multi.algorithm, "MD5-of-128MD5-of-512CRC32C");
    // The first replica of every block gone, then the second: the third answers alike.
    nodes[0].kill();
    assert_eq!(dfs.file_checksum("/multi").expect("checksum without dn1"), multi);
    nodes[1].kill();
    assert_eq!(dfs.file_checksum("/multi").expect("checksum with dn3 only"), multi);
    nodes[2].kill();
    match dfs.file_checksum("/multi") {
        Err(DfsError::ChecksumFailed { reason, .. }) => assert!(reason.contains("block"), "{reason}"),
        other => panic!("no replica left: {other:?}"),
    }
}
