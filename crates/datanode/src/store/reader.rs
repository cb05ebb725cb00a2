//! `ReplicaReader`: verified reads of whole chunks, and a stream of them.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use super::{lock, read_full_at, read_span, Inner, MAX_READ_LEN};
use crate::error::{Result, StoreError};
use crate::meta;

/// Whole chunks of a replica with their checksums, as a DataNode sends them: `data` starts at
/// `offset`, a chunk boundary, and `crcs[i]` is the CRC32C of its `i`-th 512-byte chunk (the
/// last one is shorter at the end of the replica). Every chunk was checked before it was
/// returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunks {
    pub offset: u64,
    pub data: Vec<u8>,
    pub crcs: Vec<u32>,
}

impl Chunks {
    /// The offset just past `data`.
    pub fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }

    /// The bytes `[offset, offset + len)` of the replica, if these chunks hold all of them.
    pub fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        if len == 0 {
            return Some(&[]);
        }
        let start = offset.checked_sub(self.offset)?;
        let end = start.checked_add(len)?;
        self.data.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
    }
}

/// Reads one replica. Every read takes the replica's I/O lock and its current length, so a
/// replica being written can be read up to what has been written, and a replica deleted since
/// `open_reader` answers `NoSuchReplica`.
pub struct ReplicaReader {
    pub(crate) inner: Arc<Inner>,
    pub(crate) id: u64,
    pub(crate) incarnation: u64,
    pub(crate) io: Arc<Mutex<()>>,
    pub(crate) dir: usize,
    pub(crate) data: File,
    pub(crate) meta: File,
}

impl ReplicaReader {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Tells the kernel the replica will be read from start to end (a whole-block read, a
    /// copy): it reads ahead further, so a cold read streams from the disk instead of waiting
    /// on each piece. Advice only; an error changes nothing.
    pub fn advise_sequential(&self) {
        for f in [&self.data, &self.meta] {
            // SAFETY: posix_fadvise on a file descriptor this reader owns; it only sets the
            // kernel's read-ahead policy for it.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
        }
    }

    /// The replica's length now (it grows while the replica is being written).
    pub fn length(&self) -> Result<u64> {
        Ok(self.inner.current(self.id, self.incarnation)?.length)
    }

    /// The whole chunks covering `[offset, offset + len)`, checked against the meta file.
    /// A chunk that does not match, or that the data or meta file lacks, is
    /// `Corrupt { offset }` at the chunk's start; no byte of a bad chunk is ever returned.
    pub fn read(&self, offset: u64, len: u64) -> Result<Chunks> {
        self.read_with(offset, len, true)
    }

    /// [`Self::read`], checking the chunks against their CRCs only if `verify` (a reader that
    /// checks them itself, as every file system client does, spares the DataNode a pass).
    /// The sizes are checked either way.
    fn read_with(&self, offset: u64, len: u64, verify: bool) -> Result<Chunks> {
        let id = self.id;
        if len > MAX_READ_LEN {
            return Err(StoreError::TooLarge { id, what: "read", len, limit: MAX_READ_LEN });
        }
        let _io = lock(&self.io);
        let length = self.inner.current(id, self.incarnation)?.length;
        let end = offset.checked_add(len).filter(|e| *e <= length).ok_or(StoreError::OutOfRange {
            id,
            offset,
            len,
            length,
        })?;
        let start = offset - offset % meta::CHUNK;
        if len == 0 {
            return Ok(Chunks { offset: start, data: Vec::new(), crcs: Vec::new() });
        }
        let end = (meta::chunks(end) * meta::CHUNK).min(length);
        let (data, crcs) = read_span(id, &self.data, &self.meta, start, end, &self.inner.dirs[self.dir])?;
        let want = meta::chunks(end) - start / meta::CHUNK;
        if let Some(bad) = verify.then(|| meta::first_mismatch(&data, &crcs)).flatten() {
            return Err(StoreError::Corrupt { id, offset: start + bad as u64 * meta::CHUNK });
        }
        // Every chunk present matched; a file that ended early lacks the chunk after them.
        if data.len() as u64 != end - start || crcs.len() as u64 != want {
            let good = (data.len() as u64 / meta::CHUNK).min(crcs.len() as u64);
            return Err(StoreError::Corrupt { id, offset: start + good * meta::CHUNK });
        }
        Ok(Chunks { offset: start, data, crcs })
    }

    /// The stored checksums of chunks `[first, first + count)` as the meta file holds them
    /// (big-endian CRC32Cs, 4 bytes each), unchecked against the data: what HDFS's block
    /// checksum digests. Chunks past the replica's length are `OutOfRange`; a meta file that
    /// ends early is `Corrupt` at the first chunk it lacks.
    pub fn stored_crc_bytes(&self, first: u64, count: u64) -> Result<Vec<u8>> {
        let id = self.id;
        let len = count.saturating_mul(meta::CRC_LEN);
        if len > MAX_READ_LEN {
            return Err(StoreError::TooLarge { id, what: "checksum read", len, limit: MAX_READ_LEN });
        }
        let _io = lock(&self.io);
        let length = self.inner.current(id, self.incarnation)?.length;
        if first.saturating_add(count) > meta::chunks(length) {
            let (offset, len) = (first.saturating_mul(meta::CHUNK), count.saturating_mul(meta::CHUNK));
            return Err(StoreError::OutOfRange { id, offset, len, length });
        }
        let mut raw = vec![0u8; len as usize];
        let d = &self.inner.dirs[self.dir];
        let n = read_full_at(&self.meta, &mut raw, meta::crc_offset(first))
            .map_err(|e| d.io_err(e, || format!("reading meta of block {id}")))?;
        if n < raw.len() {
            return Err(StoreError::Corrupt { id, offset: (first + n as u64 / meta::CRC_LEN) * meta::CHUNK });
        }
        Ok(raw)
    }

    /// The bytes `[offset, offset + len)`, checked.
    pub fn read_bytes(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut c = self.read(offset, len)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let skip = (offset - c.offset) as usize;
        // `read` returned whole chunks covering the range, or an error.
        assert!(
            c.data.len() >= skip + len as usize,
            "read({offset}, {len}) returned {} bytes at {}",
            c.data.len(),
            c.offset
        );
        c.data.truncate(skip + len as usize);
        c.data.drain(..skip);
        Ok(c.data)
    }

    /// Streams the chunks covering `[offset, offset + len)` in pieces of at most one packet's
    /// data (256 KiB, aligned to that in the replica), so a whole block is never in memory at
    /// once.
    /// The stream ends after the first error.
    pub fn chunks(&self, offset: u64, len: u64) -> ChunkStream<'_> {
        ChunkStream { reader: self, next: offset, end: offset.saturating_add(len), failed: false, verify: true }
    }

    /// [`Self::chunks`] without checking the CRCs (the receiver checks them).
    pub fn chunks_unverified(&self, offset: u64, len: u64) -> ChunkStream<'_> {
        ChunkStream { verify: false, ..self.chunks(offset, len) }
    }

    /// Checks that the data file is as long as the replica and the meta file exactly as long
    /// as its length implies. A data file that is longer, or a meta file that holds more
    /// checksums than the data has chunks, is `Corrupt` at the replica's length: bytes were
    /// lost or added behind the store's back. A shorter one is `Corrupt` at the first chunk it
    /// lacks.
    pub fn check_sizes(&self) -> Result<()> {
        let id = self.id;
        let _io = lock(&self.io);
        let length = self.inner.current(id, self.incarnation)?.length;
        let d = &self.inner.dirs[self.dir];
        let size = |f: &File| f.metadata().map(|m| m.len()).map_err(|e| d.io_err(e, || format!("stat of block {id}")));
        let (data_len, meta_len) = (size(&self.data)?, size(&self.meta)?);
        let expected_meta = meta::meta_len(length);
        if data_len < length {
            return Err(StoreError::Corrupt { id, offset: data_len - data_len % meta::CHUNK });
        }
        if meta_len < expected_meta {
            let crcs = meta_len.saturating_sub(meta::HEADER_LEN) / meta::CRC_LEN;
            return Err(StoreError::Corrupt { id, offset: crcs * meta::CHUNK });
        }
        if data_len > length || meta_len > expected_meta {
            return Err(StoreError::Corrupt { id, offset: length });
        }
        Ok(())
    }
}

/// See [`ReplicaReader::chunks`].
pub struct ChunkStream<'a> {
    reader: &'a ReplicaReader,
    next: u64,
    end: u64,
    failed: bool,
    verify: bool,
}

/// The size of one piece of a chunk stream.
const PIECE: u64 = dfs_proto::transfer::MAX_PACKET_DATA_LEN as u64;

impl Iterator for ChunkStream<'_> {
    type Item = Result<Chunks>;

    fn next(&mut self) -> Option<Result<Chunks>> {
        if self.failed || self.next >= self.end {
            return None;
        }
        let piece_end = (self.next - self.next % PIECE + PIECE).min(self.end);
        match self.reader.read_with(self.next, piece_end - self.next, self.verify) {
            Ok(c) => {
                self.next = c.end().max(piece_end);
                Some(Ok(c))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
