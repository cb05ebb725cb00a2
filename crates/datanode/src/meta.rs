//! HDFS's replica file format, pure functions only (no I/O).
//!
//! A replica of block `id` with generation stamp `gs` is two files:
//!
//! ```text
//! blk_<id>               the block's bytes, nothing else
//! blk_<id>_<gs>.meta     BlockMetadataHeader + one checksum per chunk:
//!   u16 BE  version            = 1
//!   u8      checksum type      = 2 (CRC32C)
//!   u32 BE  bytesPerChecksum   = 512
//!   u32 BE  CRC32C of chunk 0, chunk 1, ...   (the last chunk may be shorter than 512)
//! ```
//!
//! This is the layout of Hadoop's `BlockMetadataHeader.writeHeader` (`writeShort(version)`
//! then `DataChecksum.writeHeader`: `writeByte(type.id)`, `writeInt(bytesPerChecksum)`), and
//! `DataChecksum.calculateChunkedSums` (one big-endian int per chunk), so a meta file written
//! here is read by HDFS tools and the other way round. The meta file of a replica of `len`
//! bytes is exactly [`meta_len`]`(len)` bytes long.

/// `BlockMetadataHeader` version.
pub const VERSION: u16 = 1;
/// `DataChecksum.Type.CRC32C`.
pub const TYPE_CRC32C: u8 = 2;
/// Bytes per checksum (HDFS's `dfs.bytes-per-checksum` default).
pub const CHUNK: u64 = 512;
/// Version (2) + type (1) + bytesPerChecksum (4).
pub const HEADER_LEN: u64 = 7;
/// One CRC32C.
pub const CRC_LEN: u64 = 4;

/// The header every meta file starts with.
pub fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..2].copy_from_slice(&VERSION.to_be_bytes());
    h[2] = TYPE_CRC32C;
    h[3..7].copy_from_slice(&(CHUNK as u32).to_be_bytes());
    h
}

/// Whether `bytes` (at least the first [`HEADER_LEN`] bytes of a meta file) is the header this
/// store writes. Another version, checksum type or chunk size is not something it can verify.
pub fn header_ok(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN as usize && bytes[..HEADER_LEN as usize] == header()
}

/// Number of chunks (and checksums) of `len` bytes of data.
pub fn chunks(len: u64) -> u64 {
    len.div_ceil(CHUNK)
}

/// Exact size of the meta file of a replica of `len` bytes.
pub fn meta_len(len: u64) -> u64 {
    HEADER_LEN + CRC_LEN * chunks(len)
}

/// Offset of chunk `chunk`'s checksum in the meta file.
pub fn crc_offset(chunk: u64) -> u64 {
    HEADER_LEN + CRC_LEN * chunk
}

/// CRC32C of each 512-byte chunk of `data`, which starts at a chunk boundary.
pub fn chunk_crcs(data: &[u8]) -> Vec<u32> {
    data.chunks(CHUNK as usize).map(crc32c::crc32c).collect()
}

pub fn encode_crcs(crcs: &[u32]) -> Vec<u8> {
    crcs.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// Decodes whole big-endian CRCs; a trailing partial one is ignored.
pub fn decode_crcs(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(CRC_LEN as usize).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// The index of the first chunk of `data` (starting at a chunk boundary) whose CRC32C is not
/// the matching one of `crcs`, or that has no CRC at all.
pub fn first_mismatch(data: &[u8], crcs: &[u32]) -> Option<usize> {
    data.chunks(CHUNK as usize).enumerate().find(|(i, c)| crcs.get(*i) != Some(&crc32c::crc32c(c))).map(|(i, _)| i)
}

/// The longest non-empty prefix of `chunk` whose CRC32C is `crc`, by length.
///
/// Recovery uses it on the last chunk of a replica that was being written: a packet that
/// extended a partial chunk writes the data before rewriting the chunk's checksum, so after a
/// crash between the two the old checksum still covers the old, shorter prefix.
pub fn longest_matching_prefix(chunk: &[u8], crc: u32) -> Option<usize> {
    let mut running = 0u32;
    let mut best = None;
    for (i, b) in chunk.iter().enumerate() {
        running = crc32c::crc32c_append(running, std::slice::from_ref(b));
        if running == crc {
            best = Some(i + 1);
        }
    }
    best
}

/// A file name in a replica directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileName {
    Data { id: u64 },
    Meta { id: u64, gs: u64 },
}

pub fn data_file_name(id: u64) -> String {
    format!("blk_{id}")
}

pub fn meta_file_name(id: u64, gs: u64) -> String {
    format!("blk_{id}_{gs}.meta")
}

/// Parses `blk_<id>` and `blk_<id>_<gs>.meta` with canonical decimal numbers; anything else is
/// not a replica file.
pub fn parse_file_name(name: &str) -> Option<FileName> {
    fn number(s: &str) -> Option<u64> {
        let n: u64 = s.parse().ok()?;
        // Only the canonical spelling, so that a name maps to one id and back (no "+5", "05").
        (n.to_string() == s).then_some(n)
    }
    let rest = name.strip_prefix("blk_")?;
    match rest.strip_suffix(".meta") {
        Some(ids) => {
            let (id, gs) = ids.split_once('_')?;
            Some(FileName::Meta { id: number(id)?, gs: number(gs)? })
        }
        None => Some(FileName::Data { id: number(rest)? }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_hdfs_block_metadata_header() {
        // version 1 (u16 BE), CRC32C (2), bytesPerChecksum 512 (u32 BE).
        assert_eq!(header(), [0x00, 0x01, 0x02, 0x00, 0x00, 0x02, 0x00]);
        assert!(header_ok(&header()));
        assert!(!header_ok(&header()[..6]));
        let mut crc32 = header();
        crc32[2] = 1;
        assert!(!header_ok(&crc32));
    }

    #[test]
    fn sizes() {
        assert_eq!(meta_len(0), 7);
        assert_eq!(meta_len(1), 11);
        assert_eq!(meta_len(512), 11);
        assert_eq!(meta_len(513), 15);
        assert_eq!(crc_offset(3), 19);
    }

    #[test]
    fn crcs_round_trip_big_endian() {
        let crcs = chunk_crcs(&[7u8; 1100]);
        assert_eq!(crcs.len(), 3);
        let bytes = encode_crcs(&crcs);
        assert_eq!(bytes[0..4], crcs[0].to_be_bytes());
        assert_eq!(decode_crcs(&bytes), crcs);
        assert_eq!(decode_crcs(&bytes[..11]), crcs[..2]);
        // CRC32C (Castagnoli) of "123456789" is the standard check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn first_mismatch_finds_the_chunk() {
        let mut data = vec![1u8; 1500];
        let crcs = chunk_crcs(&data);
        assert_eq!(first_mismatch(&data, &crcs), None);
        data[1024] ^= 1;
        assert_eq!(first_mismatch(&data, &crcs), Some(2));
        assert_eq!(first_mismatch(&data[..1024], &crcs[..1]), Some(1));
    }

    #[test]
    fn longest_prefix() {
        let chunk: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(longest_matching_prefix(&chunk, crc32c::crc32c(&chunk[..100])), Some(100));
        assert_eq!(longest_matching_prefix(&chunk, crc32c::crc32c(&chunk)), Some(300));
        assert_eq!(longest_matching_prefix(&chunk, crc32c::crc32c(b"other")), None);
    }

    #[test]
    fn file_names() {
        assert_eq!(parse_file_name("blk_42"), Some(FileName::Data { id: 42 }));
        assert_eq!(parse_file_name("blk_42_1001.meta"), Some(FileName::Meta { id: 42, gs: 1001 }));
        assert_eq!(parse_file_name(&meta_file_name(7, 9)), Some(FileName::Meta { id: 7, gs: 9 }));
        for bad in ["blk_", "blk_x", "blk_05", "blk_+5", "blk_1_.meta", "blk_1.meta", "blk_1_2_3.meta", "in_use.lock"] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }
}
