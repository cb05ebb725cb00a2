//! The file checksum against an independent computation from the bytes (CRC32C per 512
//! bytes, big-endian, MD5 per block, MD5 of the MD5s in Hadoop's buffer, 28-byte layout), and
//! against values published for HDFS-compatible checksums: Hadoop's own test of an empty file
//! (TestDistributedFileSystem: `MD5-of-0MD5-of-0CRC32:70bc8f4b...`) and JuiceFS's Hadoop SDK
//! test (juicedata/juicefs, sdk/java/src/test/java/io/juicefs/JuiceFileSystemTest.java,
//! `testChecksum`), whose files are "world\n", 128 MiB - 1 zero bytes and 150 * 1024000 zero
//! bytes in 128 MiB blocks.

use super::*;

/// MD5 of the big-endian CRC32Cs of each 512-byte chunk of one block.
fn block_md5(block: &[u8]) -> [u8; 16] {
    let crcs: Vec<u8> = block.chunks(512).flat_map(|c| crc32c::crc32c(c).to_be_bytes()).collect();
    Md5::digest(&crcs).into()
}

/// The same for `len` zero bytes, without holding them: every whole chunk has one CRC.
fn zero_block_md5(len: usize) -> [u8; 16] {
    let whole = crc32c::crc32c(&[0u8; 512]).to_be_bytes();
    let mut md5 = Md5::new();
    for _ in 0..len / 512 {
        md5.update(whole);
    }
    if !len.is_multiple_of(512) {
        md5.update(crc32c::crc32c(&vec![0u8; len % 512]).to_be_bytes());
    }
    md5.finalize().into()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn published_values() {
    let empty = FileChecksum::of_empty_file();
    assert_eq!(empty.algorithm, "MD5-of-0MD5-of-0CRC32");
    assert_eq!(empty.hex(), "00000000000000000000000070bc8f4b72a86921468bf8e8441dce51");
    assert_eq!(empty.length, 28);

    let small = FileChecksum::md5md5crc32c(512, 1, &[block_md5(b"world\n")]);
    assert_eq!(small.algorithm, "MD5-of-0MD5-of-512CRC32C");
    assert_eq!(small.bytes[12..], unhex("a74dcf6d5ba98e50ae0182c9d5d886fe"));
    // getFileChecksum(f, 5): the block digested as a 5-byte prefix.
    let prefix = FileChecksum::md5md5crc32c(512, 1, &[block_md5(b"world")]);
    assert_eq!(prefix.bytes[12..], unhex("05a157db1cc7549c82ec6f31f63fdb46"));

    let medium = FileChecksum::md5md5crc32c(512, 262_144, &[zero_block_md5((128 << 20) - 1)]);
    assert_eq!(medium.algorithm, "MD5-of-0MD5-of-512CRC32C");
    assert_eq!(medium.bytes[12..], unhex("1cf326bae8274fd824ec69ece3e4082f"));

    let (len, block) = (150 * 1_024_000, 128 << 20);
    let big = FileChecksum::md5md5crc32c(512, 262_144, &[zero_block_md5(block), zero_block_md5(len - block)]);
    assert_eq!(big.algorithm, "MD5-of-262144MD5-of-512CRC32C");
    assert_eq!(big.hex(), "0000020000000000000400007d04ac8132ad64988f7ba4d819cbde62");
}

#[test]
fn matches_an_independent_computation_of_the_layout() {
    let data: Vec<u8> = (0..5 * 4096 + 700u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for (block_size, blocks) in [(4096usize, 6usize), (8192, 3), (1 << 20, 1)] {
        let md5s: Vec<[u8; 16]> = data.chunks(block_size).map(block_md5).collect();
        assert_eq!(md5s.len(), blocks);
        let got = FileChecksum::md5md5crc32c(512, (block_size as u64).min(data.len() as u64).div_ceil(512), &md5s);
        // By hand: the MD5s, then zeros up to 32, 64, 128, ... bytes.
        let mut buf: Vec<u8> = md5s.iter().flatten().copied().collect();
        let padded = [32, 64, 128].into_iter().find(|&n| n >= buf.len()).unwrap();
        buf.resize(padded, 0);
        let crc_per_block: u64 = if blocks > 1 { (block_size / 512) as u64 } else { 0 };
        let mut want = 512u32.to_be_bytes().to_vec();
        want.extend_from_slice(&crc_per_block.to_be_bytes());
        want.extend_from_slice(&Md5::digest(&buf));
        assert_eq!(got.bytes, want, "block size {block_size}");
        assert_eq!(got.algorithm, format!("MD5-of-{crc_per_block}MD5-of-512CRC32C"));
        assert_eq!(got.hex().len(), 56);
    }
    // Another block size, another checksum.
    let a = FileChecksum::md5md5crc32c(512, 8, &data.chunks(4096).map(block_md5).collect::<Vec<_>>());
    let b = FileChecksum::md5md5crc32c(512, 16, &data.chunks(8192).map(block_md5).collect::<Vec<_>>());
    assert_ne!(a.bytes[12..], b.bytes[12..]);
}

#[test]
fn hadoop_buffer_doubles_from_32() {
    let lens: Vec<usize> = [16, 32, 48, 64, 80, 128, 144].into_iter().map(hadoop_buffer_len).collect();
    assert_eq!(lens, [32, 32, 64, 64, 128, 128, 256]);
}
