//! Guarantee: `herd fs checksum` prints HDFS's file checksum (`hadoop fs -checksum`: path,
//! algorithm, hex bytes), equal to an independent computation from the file's bytes: CRC32C
//! per 512 bytes, big-endian, MD5 per block, MD5 of the block MD5s (in Hadoop's zero-padded
//! buffer), `bytes_per_crc | crc_per_block | MD5`. The same bytes in blocks of another size
//! give another checksum (as in HDFS), and a file's checksum survives DataNodes killed with -9
//! (another replica answers).
//!
//! Not tested because it is not so: that a byte flipped in a replica's data changes the
//! checksum. The checksum digests the CRCs stored in the meta file, which a flipped data byte
//! leaves as they were (in HDFS too); readers and the block scanner catch that replica
//! (`fs_flipped_byte_is_masked_reported_and_rebuilt`).

mod common;

use std::time::Duration;

use common::dfs::{bytes, text, DfsCluster};
use md5::{Digest, Md5};

const MIB: usize = 1 << 20;

/// `algorithm` and hex bytes of HDFS's MD5MD5CRC32C checksum of `data` in `block_size` blocks,
/// computed here from the bytes.
fn expected(data: &[u8], block_size: usize) -> (String, String) {
    let mut md5s: Vec<u8> = Vec::new();
    for block in data.chunks(block_size) {
        let crcs: Vec<u8> = block.chunks(512).flat_map(|c| crc32c::crc32c(c).to_be_bytes()).collect();
        md5s.extend_from_slice(&Md5::digest(&crcs));
    }
    let blocks = md5s.len() / 16;
    // Hadoop digests its whole buffer: 32 bytes, doubled until the MD5s fit.
    let mut cap = 32;
    while cap < md5s.len() {
        cap *= 2;
    }
    md5s.resize(cap, 0);
    let crc_per_block = if blocks > 1 { block_size as u64 / 512 } else { 0 };
    let mut out = 512u32.to_be_bytes().to_vec();
    out.extend_from_slice(&crc_per_block.to_be_bytes());
    out.extend_from_slice(&Md5::digest(&md5s));
    let hex = out.iter().map(|b| format!("{b:02x}")).collect();
    (format!("MD5-of-{crc_per_block}MD5-of-512CRC32C"), hex)
}

#[test]
fn fs_checksum_is_hdfs_md5_of_md5_of_crc32c() {
    let mut c = DfsCluster::start(3, &[], &[]);
    let data = bytes(3 * MIB + 1000, 11);
    let local = c.path().join("data.bin");
    std::fs::write(&local, &data).unwrap();
    let local = local.to_str().unwrap();
    c.fs_ok(&["put", "-r", "3", "-b", "1m", local, "/f1m"]);
    c.fs_ok(&["put", "-r", "3", "-b", "2m", local, "/f2m"]);
    let empty = c.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    c.fs_ok(&["put", empty.to_str().unwrap(), "/empty"]);
    c.fs_ok(&["mkdir", "/d"]);

    let (algo1, hex1) = expected(&data, MIB);
    let (algo2, hex2) = expected(&data, 2 * MIB);
    assert_eq!(algo1, "MD5-of-2048MD5-of-512CRC32C");
    assert_ne!(hex1[24..], hex2[24..], "another block size, another MD5");
    let want = format!("/f1m\t{algo1}\t{hex1}\n/f2m\t{algo2}\t{hex2}\n");
    assert_eq!(c.fs_ok(&["checksum", "/f1m", "/f2m"]), want);
    // Hadoop's value for an empty file; a directory is an error, the other arguments go on.
    assert_eq!(
        c.fs_ok(&["checksum", "/empty"]),
        "/empty\tMD5-of-0MD5-of-0CRC32\t00000000000000000000000070bc8f4b72a86921468bf8e8441dce51\n"
    );
    let out = c.fs(&["checksum", "/d", "/nope", "/f1m"]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), format!("/f1m\t{algo1}\t{hex1}\n"));
    let err = text(&out.stderr);
    assert!(err.contains("checksum: `/d': Is a directory"), "{err}");
    assert!(err.contains("checksum: `/nope': No such file or directory"), "{err}");

    // Two of the three DataNodes killed with -9: the third answers for every block.
    c.wait_healthy("/f1m", Duration::from_secs(60));
    c.kill9_datanode(1);
    assert_eq!(c.fs_ok(&["checksum", "/f1m"]), format!("/f1m\t{algo1}\t{hex1}\n"));
    c.kill9_datanode(2);
    assert_eq!(c.fs_ok(&["checksum", "/f1m"]), format!("/f1m\t{algo1}\t{hex1}\n"));
}
