//! The on-disk form of map output (spills and the final `file.out`) and its index; the format
//! is specified in docs/mapreduce-formats.md.
//!
//! A data file is a run of segments, one per reduce partition in partition order, each a run
//! of records `varint key length | varint value length | key | value`, sorted by key. The
//! index (`file.out.index`) gives each segment's offset, length and CRC32C, and ends with its
//! own CRC32C. A reader checks a segment's CRC32C *before* handing out any of its records, so
//! no record of a damaged segment ever reaches a reducer; and it decodes defensively, so bad
//! bytes are an error, never a panic or an unbounded allocation.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Largest key or value length the format carries (the varint is at most 5 bytes).
pub const MAX_FIELD_LEN: u64 = u32::MAX as u64;
/// An upper bound on partitions per job, so an index's size is bounded before it is read.
pub const MAX_PARTITIONS: u32 = 100_000;

const INDEX_MAGIC: &[u8; 4] = b"HMRI";
const INDEX_VERSION: u8 = 1;
const INDEX_HEADER_LEN: usize = 4 + 1 + 4;
const INDEX_ENTRY_LEN: usize = 8 + 8 + 4;

/// Where one partition's segment is in a data file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: u64,
    pub raw_length: u64,
    pub crc32c: u32,
}

/// Bytes a record takes on disk.
pub fn record_len(key: &[u8], value: &[u8]) -> u64 {
    (varint_len(key.len() as u64) + varint_len(value.len() as u64) + key.len() + value.len()) as u64
}

fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Writes segments one after another into `out`, keeping each one's length and CRC32C.
pub struct SegmentWriter<W: Write> {
    out: W,
    offset: u64,
    segment_start: u64,
    crc: u32,
    header: Vec<u8>,
    entries: Vec<IndexEntry>,
}

impl<W: Write> SegmentWriter<W> {
    pub fn new(out: W) -> SegmentWriter<W> {
        SegmentWriter { out, offset: 0, segment_start: 0, crc: 0, header: Vec::with_capacity(10), entries: Vec::new() }
    }

    /// Appends a record to the current segment.
    pub fn append(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        if key.len() as u64 > MAX_FIELD_LEN || value.len() as u64 > MAX_FIELD_LEN {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a key or value over 4 GiB"));
        }
        self.header.clear();
        put_varint(&mut self.header, key.len() as u64);
        put_varint(&mut self.header, value.len() as u64);
        for part in [&self.header[..], key, value] {
            self.out.write_all(part)?;
            self.crc = crc32c::crc32c_append(self.crc, part);
            self.offset += part.len() as u64;
        }
        Ok(())
    }

    /// Ends the current segment (possibly empty) and starts the next.
    pub fn end_segment(&mut self) -> IndexEntry {
        let entry =
            IndexEntry { offset: self.segment_start, raw_length: self.offset - self.segment_start, crc32c: self.crc };
        self.entries.push(entry);
        self.segment_start = self.offset;
        self.crc = 0;
        entry
    }

    /// Flushes and returns the writer and the index of the segments ended.
    pub fn finish(mut self) -> io::Result<(W, Vec<IndexEntry>)> {
        assert_eq!(self.segment_start, self.offset, "finish() with records after the last end_segment()");
        self.out.flush()?;
        Ok((self.out, self.entries))
    }
}

/// The index file's bytes for `entries`.
pub fn encode_index(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_HEADER_LEN + entries.len() * INDEX_ENTRY_LEN + 4);
    out.extend_from_slice(INDEX_MAGIC);
    out.push(INDEX_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for entry in entries {
        out.extend_from_slice(&entry.offset.to_be_bytes());
        out.extend_from_slice(&entry.raw_length.to_be_bytes());
        out.extend_from_slice(&entry.crc32c.to_be_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    debug_assert!(decode_index(&out, "encode_index").is_ok_and(|decoded| decoded == entries));
    out
}

/// Decodes and checks an index: its CRC32C, its length, and that its segments tile the data
/// file from offset 0.
pub fn decode_index(bytes: &[u8], what: &str) -> Result<Vec<IndexEntry>> {
    let corrupt = |detail: String| Error::Corrupt { what: what.to_string(), detail };
    if bytes.len() < INDEX_HEADER_LEN + 4 {
        return Err(Error::Truncated {
            what: what.to_string(),
            detail: format!("{} bytes, less than an empty index", bytes.len()),
        });
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    let expected = u32::from_be_bytes(trailer.try_into().expect("4 bytes"));
    let actual = crc32c::crc32c(body);
    if expected != actual {
        return Err(Error::ChecksumMismatch { segment: what.to_string(), expected, actual });
    }
    if &body[..4] != INDEX_MAGIC {
        return Err(corrupt("not a map output index (bad magic)".into()));
    }
    if body[4] != INDEX_VERSION {
        return Err(corrupt(format!("index version {} unknown", body[4])));
    }
    let count = u32::from_be_bytes(body[5..9].try_into().expect("4 bytes"));
    if count > MAX_PARTITIONS || body.len() != INDEX_HEADER_LEN + count as usize * INDEX_ENTRY_LEN {
        return Err(corrupt(format!("{count} partitions do not fit {} bytes", bytes.len())));
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut next = 0u64;
    for chunk in body[INDEX_HEADER_LEN..].chunks_exact(INDEX_ENTRY_LEN) {
        let entry = IndexEntry {
            offset: u64::from_be_bytes(chunk[0..8].try_into().expect("8 bytes")),
            raw_length: u64::from_be_bytes(chunk[8..16].try_into().expect("8 bytes")),
            crc32c: u32::from_be_bytes(chunk[16..20].try_into().expect("4 bytes")),
        };
        if entry.offset != next {
            return Err(corrupt(format!(
                "segment {} at offset {} where {next} was expected",
                entries.len(),
                entry.offset
            )));
        }
        next = entry.offset.checked_add(entry.raw_length).ok_or_else(|| corrupt("segment length overflows".into()))?;
        entries.push(entry);
    }
    Ok(entries)
}

pub fn write_index(path: &Path, entries: &[IndexEntry]) -> Result<()> {
    std::fs::write(path, encode_index(entries)).map_err(|e| Error::io_path("write", path, e))
}

pub fn read_index(path: &Path) -> Result<Vec<IndexEntry>> {
    let max = (INDEX_HEADER_LEN + MAX_PARTITIONS as usize * INDEX_ENTRY_LEN + 4) as u64;
    let file = File::open(path).map_err(|e| Error::io_path("open", path, e))?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| Error::io_path("read", path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::Corrupt {
            what: path.display().to_string(),
            detail: format!("longer than the largest index ({max} bytes)"),
        });
    }
    decode_index(&bytes, &path.display().to_string())
}

/// A stream of records, sorted by key: a segment, or a merge of segments.
pub trait RecordSource: Send {
    /// Reads the next record into `key` and `value` (replacing their contents); false at the
    /// end.
    fn next_record(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool>;
}

/// Reads the records of one segment whose CRC32C has been checked.
pub struct SegmentReader {
    name: String,
    input: Box<dyn BufRead + Send>,
    remaining: u64,
}

impl SegmentReader {
    /// A segment held in memory (a fetched map output), checked against `crc32c`.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>, crc32c: u32) -> Result<Self> {
        let name = name.into();
        check_crc(&name, crc32c, crc32c::crc32c(&bytes))?;
        let remaining = bytes.len() as u64;
        Ok(SegmentReader { name, input: Box::new(Cursor::new(bytes)), remaining })
    }

    /// The segment `entry` of the data file at `path`. The whole segment is read once to check
    /// its CRC32C before the first record is decoded (a second, sequential read that the page
    /// cache mostly serves).
    pub fn open_file(path: &Path, entry: IndexEntry) -> Result<Self> {
        let name = format!("{} [{}+{}]", path.display(), entry.offset, entry.raw_length);
        let mut file = File::open(path).map_err(|e| Error::io_path("open", path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io_path("stat", path, e))?.len();
        let end = entry.offset.checked_add(entry.raw_length);
        if end.is_none_or(|end| end > file_len) {
            return Err(Error::Truncated { what: name, detail: format!("the file has only {file_len} bytes") });
        }
        file.seek(SeekFrom::Start(entry.offset)).map_err(|e| Error::io_path("seek", path, e))?;
        let mut input = BufReader::with_capacity(64 << 10, file.take(entry.raw_length));
        let mut crc = 0u32;
        let mut seen = 0u64;
        loop {
            let buf = input.fill_buf().map_err(|e| Error::io_path("read", path, e))?;
            if buf.is_empty() {
                break;
            }
            crc = crc32c::crc32c_append(crc, buf);
            let n = buf.len();
            seen += n as u64;
            input.consume(n);
        }
        if seen != entry.raw_length {
            return Err(Error::Truncated { what: name, detail: format!("read {seen} of {} bytes", entry.raw_length) });
        }
        check_crc(&name, entry.crc32c, crc)?;
        let mut file = input.into_inner().into_inner();
        file.seek(SeekFrom::Start(entry.offset)).map_err(|e| Error::io_path("seek", path, e))?;
        Ok(SegmentReader {
            name,
            input: Box::new(BufReader::with_capacity(64 << 10, file.take(entry.raw_length))),
            remaining: entry.raw_length,
        })
    }

    fn truncated(&self, detail: &str) -> Error {
        Error::Truncated { what: self.name.clone(), detail: detail.to_string() }
    }

    fn read_varint(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for i in 0..5 {
            if self.remaining == 0 {
                return Err(self.truncated("a record header runs past the segment's end"));
            }
            let mut byte = [0u8];
            self.input.read_exact(&mut byte).map_err(|e| Error::io(format!("read {}", self.name), e))?;
            self.remaining -= 1;
            n |= u64::from(byte[0] & 0x7f) << (7 * i);
            if byte[0] & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Error::Corrupt { what: self.name.clone(), detail: "a length varint longer than 5 bytes".into() })
    }
}

impl RecordSource for SegmentReader {
    fn next_record(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool> {
        if self.remaining == 0 {
            return Ok(false);
        }
        let key_len = self.read_varint()?;
        let value_len = self.read_varint()?;
        // Checked against what is left before allocating, so a bad length cannot ask for more
        // memory than the segment's own size.
        if key_len.saturating_add(value_len) > self.remaining {
            return Err(self
                .truncated(&format!("a record of {key_len} + {value_len} bytes with {} bytes left", self.remaining)));
        }
        for (buf, len) in [(&mut *key, key_len), (&mut *value, value_len)] {
            buf.clear();
            buf.resize(len as usize, 0);
            self.input.read_exact(buf).map_err(|e| Error::io(format!("read {}", self.name), e))?;
        }
        self.remaining -= key_len + value_len;
        Ok(true)
    }
}

fn check_crc(name: &str, expected: u32, actual: u32) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch { segment: name.to_string(), expected, actual })
    }
}

#[cfg(test)]
#[path = "spill_test.rs"]
mod tests;
