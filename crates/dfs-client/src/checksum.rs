//! [`FileChecksum`]: HDFS's file checksum (`getFileChecksum`, WebHDFS `GETFILECHECKSUM`,
//! `hadoop fs -checksum`) in Hadoop's default combine mode, MD5MD5CRC, for CRC32C replicas
//! with 512 bytes per checksum (`MD5MD5CRC32CastagnoliFileChecksum`).
//!
//! ```text
//! GetBlockLocations(whole file)
//! per block in order: BlockChecksum { block } at its replicas in order, the first that answers
//!                     (any error: the next) -> the MD5 of the block's stored CRCs
//! file MD5   = MD5(the block MD5s concatenated, zero-padded to Hadoop's buffer, see below)
//! bytes      = bytes_per_crc u32 BE | crc_per_block u64 BE | file MD5        (28 bytes)
//! algorithm  = "MD5-of-<crc_per_block>MD5-of-<bytes_per_crc>CRC32C"
//! ```
//!
//! What Hadoop does and herd follows (FileChecksumHelper.ReplicatedFileChecksumComputer,
//! MD5MD5CRC32FileChecksum):
//! - `crc_per_block` is the first block's CRC count (its meta file's), and only for a file of
//!   more than one block; a one-block file says 0.
//! - The file MD5 digests Hadoop's whole `DataOutputBuffer` array (`getData()`, not
//!   `getLength()` bytes): it starts at 32 bytes and doubles, so the block MD5s are followed
//!   by zeros up to the smallest `32 * 2^k` that holds them (one block: 16 zero bytes).
//! - An empty file (no blocks) is `MD5MD5CRC32GzipFileChecksum(0, 0, MD5(32 zero bytes))`,
//!   named `MD5-of-0MD5-of-0CRC32`: the "magic" value older HDFS versions returned.
//! - The same bytes in blocks of another size give another checksum.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use dfs_proto::transfer::{request_block_checksum, BlockChecksumResponse};
use dfs_proto::{DatanodeInfo, ExtendedBlock};
use md5::{Digest, Md5};

use crate::client::Inner;
use crate::error::{DfsError, Result};

/// Bytes of Hadoop's serialized `MD5MD5CRC32FileChecksum`: int, long, MD5.
pub const MD5MD5CRC_LEN: u32 = 28;

/// A file checksum as Hadoop's `FileChecksum` presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChecksum {
    /// `getAlgorithmName()`, e.g. `MD5-of-262144MD5-of-512CRC32C`.
    pub algorithm: String,
    /// `getBytes()`: Hadoop's `write` layout (see the module doc).
    pub bytes: Vec<u8>,
    /// `getLength()`: 28.
    pub length: u32,
}

impl FileChecksum {
    /// `bytes` in lowercase hex, as `hadoop fs -checksum` and WebHDFS print them.
    pub fn hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The checksum of a file whose blocks' MD5s (in file order) are `block_md5s`, the first
    /// block's meta file holding `first_block_crcs` CRCs.
    pub fn md5md5crc32c(bytes_per_crc: u32, first_block_crcs: u64, block_md5s: &[[u8; 16]]) -> FileChecksum {
        let crc_per_block = if block_md5s.len() > 1 { first_block_crcs } else { 0 };
        let mut buf: Vec<u8> = block_md5s.concat();
        buf.resize(hadoop_buffer_len(buf.len()), 0);
        FileChecksum::new(bytes_per_crc, crc_per_block, Md5::digest(&buf).into(), "CRC32C")
    }

    /// The checksum of a file with no blocks.
    pub fn of_empty_file() -> FileChecksum {
        FileChecksum::new(0, 0, Md5::digest([0u8; 32]).into(), "CRC32")
    }

    fn new(bytes_per_crc: u32, crc_per_block: u64, md5: [u8; 16], crc_type: &str) -> FileChecksum {
        let mut bytes = Vec::with_capacity(MD5MD5CRC_LEN as usize);
        bytes.extend_from_slice(&bytes_per_crc.to_be_bytes());
        bytes.extend_from_slice(&crc_per_block.to_be_bytes());
        bytes.extend_from_slice(&md5);
        assert_eq!(bytes.len(), MD5MD5CRC_LEN as usize, "MD5MD5CRC32FileChecksum layout");
        let algorithm = format!("MD5-of-{crc_per_block}MD5-of-{bytes_per_crc}{crc_type}");
        FileChecksum { algorithm, bytes, length: MD5MD5CRC_LEN }
    }
}

/// The size of Hadoop's `DataOutputBuffer` array after `n` bytes were written 16 at a time:
/// a `ByteArrayOutputStream` of 32 bytes that doubles when full.
fn hadoop_buffer_len(n: usize) -> usize {
    let mut cap = 32;
    while cap < n {
        cap *= 2;
    }
    cap
}

/// [`crate::Dfs::file_checksum`].
pub(crate) fn file_checksum(inner: &Inner, path: &str) -> Result<FileChecksum> {
    let (blocks, _) = crate::reader::blocks_in_order(inner.block_locations(path, 0, u64::MAX >> 1)?);
    if blocks.is_empty() {
        return Ok(FileChecksum::of_empty_file());
    }
    let timeout = inner.config.datanode_timeout;
    let mut md5s = Vec::with_capacity(blocks.len());
    let mut first: Option<BlockChecksumResponse> = None;
    for lb in &blocks {
        let answer = block_checksum(path, lb.block, &lb.locations, timeout)?;
        if let Some(f) = &first {
            if f.bytes_per_crc != answer.bytes_per_crc {
                let reason = format!(
                    "block {} has {} bytes per CRC, the first block {}",
                    lb.block.id, answer.bytes_per_crc, f.bytes_per_crc
                );
                return Err(DfsError::ChecksumFailed { path: path.to_string(), reason });
            }
        }
        md5s.push(answer.md5);
        first.get_or_insert(answer);
    }
    let first = first.expect("at least one block");
    Ok(FileChecksum::md5md5crc32c(first.bytes_per_crc, first.crc_per_block, &md5s))
}

/// The first answer of `block`'s replicas, tried in order.
fn block_checksum(
    path: &str,
    block: ExtendedBlock,
    locations: &[DatanodeInfo],
    timeout: Duration,
) -> Result<BlockChecksumResponse> {
    let mut errors = Vec::new();
    for node in locations {
        match ask(node, block, timeout) {
            Ok(answer) => return Ok(answer),
            Err(why) => {
                tracing::warn!(path, block = block.id, node = %node.data_addr, "block checksum: {why}");
                errors.push(format!("{}: {why}", node.data_addr));
            }
        }
    }
    let detail = if errors.is_empty() { "no locations".to_string() } else { errors.join("; ") };
    Err(DfsError::ChecksumFailed { path: path.to_string(), reason: format!("block {}: {detail}", block.id) })
}

fn ask(node: &DatanodeInfo, block: ExtendedBlock, timeout: Duration) -> Result<BlockChecksumResponse, String> {
    let addr = node
        .data_addr
        .to_socket_addrs()
        .map_err(|e| format!("resolving: {e}"))?
        .next()
        .ok_or_else(|| "no address".to_string())?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connecting: {e}"))?;
    s.set_read_timeout(Some(timeout)).and_then(|()| s.set_write_timeout(Some(timeout))).map_err(|e| e.to_string())?;
    let answer = request_block_checksum(&mut s, block).map_err(|e| format!("request: {e}"))?;
    answer.map_err(|r| format!("refused with {:?}: {}", r.status, r.message))
}

#[cfg(test)]
#[path = "checksum_test.rs"]
mod tests;
