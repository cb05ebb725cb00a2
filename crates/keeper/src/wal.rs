//! The keeper's write-ahead log: segment files of checksummed records, fsynced before any reply.
//!
//! Record: `len u32 | crc32c u32 | index u64 | term u64 | payload[len]`, big-endian, where the
//! CRC covers index, term and payload. Segments are named `log.<first index, 20 digits>`. On open,
//! every record is verified; a torn or corrupt record in the newest segment is where the log ends
//! (the tail is truncated and the truncation logged), and corruption in an older segment, which
//! was complete and fsynced before the next segment began, is an error that stops start-up.
//! The index/term shape is Raft's, so the ensemble can replicate this same log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A record larger than this is corruption, not data (jute.maxbuffer is far smaller).
pub const RECORD_MAX: usize = 64 << 20;
const HEADER: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("log I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "log segment {path} is corrupt at offset {offset} ({why}) and is not the newest segment; refusing to start"
    )]
    CorruptMiddle { path: PathBuf, offset: u64, why: String },
    #[error("log has a gap: expected index {expected}, found {found} in {path}")]
    Gap { path: PathBuf, expected: u64, found: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io { path: path.to_owned(), source }
}

pub fn encode_record(e: &Entry, out: &mut Vec<u8>) {
    let mut crc = crc32c::crc32c(&e.index.to_be_bytes());
    crc = crc32c::crc32c_append(crc, &e.term.to_be_bytes());
    crc = crc32c::crc32c_append(crc, &e.payload);
    out.extend_from_slice(&(e.payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&e.index.to_be_bytes());
    out.extend_from_slice(&e.term.to_be_bytes());
    out.extend_from_slice(&e.payload);
}

/// Decodes the record at the start of `b`: Ok(Some((entry, bytes used))), Ok(None) at a clean
/// end, Err(why) for a torn or corrupt record.
fn decode_record(b: &[u8]) -> Result<Option<(Entry, usize)>, String> {
    if b.is_empty() {
        return Ok(None);
    }
    if b.len() < HEADER {
        return Err(format!("torn header: {} bytes", b.len()));
    }
    let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let crc = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    if len > RECORD_MAX {
        return Err(format!("record length {len} over limit"));
    }
    if b.len() < HEADER + len {
        return Err(format!("torn record: needs {} bytes, {} present", HEADER + len, b.len()));
    }
    let actual = crc32c::crc32c(&b[8..HEADER + len]);
    if actual != crc {
        return Err(format!("checksum mismatch: stored {crc:08x}, computed {actual:08x}"));
    }
    let mut ix = [0u8; 8];
    ix.copy_from_slice(&b[8..16]);
    let mut tm = [0u8; 8];
    tm.copy_from_slice(&b[16..24]);
    let e = Entry {
        index: u64::from_be_bytes(ix),
        term: u64::from_be_bytes(tm),
        payload: b[HEADER..HEADER + len].to_vec(),
    };
    Ok(Some((e, HEADER + len)))
}

pub fn fsync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

struct Segment {
    first: u64,
    path: PathBuf,
}

/// The open log. Not thread-safe: one writer thread owns it.
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    out: BufWriter<File>,
    next_index: u64,
    /// What open() had to do, for the operator's log.
    pub recovery_notes: Vec<String>,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, returning it and every valid entry after `after`.
    pub fn open(dir: &Path, after: u64) -> Result<(Wal, Vec<Entry>), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut segments: Vec<Segment> = Vec::new();
        for ent in fs::read_dir(dir).map_err(io_err(dir))? {
            let ent = ent.map_err(io_err(dir))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_prefix("log.").and_then(|n| n.parse::<u64>().ok()) {
                segments.push(Segment { first: n, path: ent.path() });
            }
        }
        segments.sort_by_key(|s| s.first);
        let mut entries = Vec::new();
        let mut notes = Vec::new();
        let mut expected: Option<u64> = None;
        let mut last_seen = after;
        let count = segments.len();
        for (i, seg) in segments.iter().enumerate() {
            let newest = i + 1 == count;
            let mut buf = Vec::new();
            File::open(&seg.path).and_then(|mut f| f.read_to_end(&mut buf)).map_err(io_err(&seg.path))?;
            let mut off = 0usize;
            loop {
                match decode_record(&buf[off..]) {
                    Ok(None) => break,
                    Ok(Some((e, used))) => {
                        if let Some(x) = expected {
                            if e.index != x {
                                return Err(WalError::Gap { path: seg.path.clone(), expected: x, found: e.index });
                            }
                        }
                        expected = Some(e.index + 1);
                        last_seen = last_seen.max(e.index);
                        if e.index > after {
                            entries.push(e);
                        }
                        off += used;
                    }
                    Err(why) if newest => {
                        let note = format!(
                            "log tail of {} is torn or corrupt at offset {off} ({why}); truncated {} bytes",
                            seg.path.display(),
                            buf.len() - off
                        );
                        let f = OpenOptions::new().write(true).open(&seg.path).map_err(io_err(&seg.path))?;
                        f.set_len(off as u64).and_then(|_| f.sync_all()).map_err(io_err(&seg.path))?;
                        notes.push(note);
                        break;
                    }
                    Err(why) => {
                        return Err(WalError::CorruptMiddle { path: seg.path.clone(), offset: off as u64, why })
                    }
                }
            }
        }
        if let Some(first) = entries.first() {
            if first.index != after + 1 {
                return Err(WalError::Gap { path: dir.to_owned(), expected: after + 1, found: first.index });
            }
        }
        let next_index = last_seen + 1;
        let (segments, out) = match segments.pop() {
            Some(seg) => {
                let mut f = OpenOptions::new().append(true).open(&seg.path).map_err(io_err(&seg.path))?;
                f.seek(SeekFrom::End(0)).map_err(io_err(&seg.path))?;
                segments.push(seg);
                (segments, BufWriter::with_capacity(1 << 20, f))
            }
            None => {
                let (seg, f) = Self::create_segment(dir, next_index)?;
                (vec![seg], BufWriter::with_capacity(1 << 20, f))
            }
        };
        let wal = Wal { dir: dir.to_owned(), segments, out, next_index, recovery_notes: notes };
        Ok((wal, entries))
    }

    fn create_segment(dir: &Path, first: u64) -> Result<(Segment, File), WalError> {
        let path = dir.join(format!("log.{first:020}"));
        let f = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
        fsync_dir(dir)?;
        Ok((Segment { first, path }, f))
    }

    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Buffers entries; they are durable only after [`Wal::sync`].
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        let mut buf = Vec::new();
        for e in entries {
            assert_eq!(e.index, self.next_index, "log append out of order");
            encode_record(e, &mut buf);
            self.next_index += 1;
        }
        let path = &self.segments.last().expect("a current segment").path;
        self.out.write_all(&buf).map_err(io_err(path))
    }

    /// Flushes and fdatasyncs everything appended so far.
    pub fn sync(&mut self) -> Result<(), WalError> {
        let path = self.segments.last().expect("a current segment").path.clone();
        self.out.flush().map_err(io_err(&path))?;
        self.out.get_ref().sync_data().map_err(io_err(&path))
    }

    /// Starts a new segment at the next index and deletes segments whose entries are all at or
    /// below `covered` (already in a durable snapshot).
    pub fn compact(&mut self, covered: u64) -> Result<(), WalError> {
        self.sync()?;
        let (seg, f) = Self::create_segment(&self.dir, self.next_index)?;
        self.out = BufWriter::with_capacity(1 << 20, f);
        self.segments.push(seg);
        let mut keep = Vec::new();
        let segs = std::mem::take(&mut self.segments);
        let firsts: Vec<u64> = segs.iter().map(|s| s.first).collect();
        for (i, s) in segs.into_iter().enumerate() {
            let last = firsts.get(i + 1).map(|n| n.saturating_sub(1));
            match last {
                Some(last) if last <= covered => {
                    fs::remove_file(&s.path).map_err(io_err(&s.path))?;
                }
                _ => keep.push(s),
            }
        }
        self.segments = keep;
        fsync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> Entry {
        Entry { index: i, term: 1, payload: format!("entry {i}").into_bytes() }
    }

    #[test]
    fn append_reopen_and_truncate_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, got) = Wal::open(dir.path(), 0).unwrap();
        assert!(got.is_empty());
        w.append(&(1..=10).map(entry).collect::<Vec<_>>()).unwrap();
        w.sync().unwrap();
        drop(w);
        let seg = dir.path().join(format!("log.{:020}", 1));
        let len = fs::metadata(&seg).unwrap().len();
        // Tear the last record in half.
        OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 5).unwrap();
        let (mut w, got) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(got.len(), 9);
        assert_eq!(w.recovery_notes.len(), 1);
        assert_eq!(w.next_index(), 10);
        w.append(&[entry(10)]).unwrap();
        w.sync().unwrap();
        drop(w);
        let (_, got) = Wal::open(dir.path(), 3).unwrap();
        assert_eq!(got.first().unwrap().index, 4);
        assert_eq!(got.last().unwrap(), &entry(10));
    }

    #[test]
    fn flipped_byte_truncates_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(dir.path(), 0).unwrap();
        w.append(&(1..=5).map(entry).collect::<Vec<_>>()).unwrap();
        w.sync().unwrap();
        drop(w);
        let seg = dir.path().join(format!("log.{:020}", 1));
        let mut b = fs::read(&seg).unwrap();
        let rec = b.len() / 5;
        b[rec * 3 + 30] ^= 0x40;
        fs::write(&seg, &b).unwrap();
        let (w, got) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(got.len(), 3);
        assert!(w.recovery_notes[0].contains("checksum"), "{:?}", w.recovery_notes);
    }

    #[test]
    fn compaction_keeps_uncovered_entries_and_refuses_old_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(dir.path(), 0).unwrap();
        w.append(&(1..=5).map(entry).collect::<Vec<_>>()).unwrap();
        w.compact(0).unwrap();
        w.append(&(6..=8).map(entry).collect::<Vec<_>>()).unwrap();
        w.compact(5).unwrap();
        w.append(&[entry(9)]).unwrap();
        w.sync().unwrap();
        drop(w);
        assert!(!dir.path().join(format!("log.{:020}", 1)).exists());
        let (_, got) = Wal::open(dir.path(), 5).unwrap();
        assert_eq!(got.iter().map(|e| e.index).collect::<Vec<_>>(), vec![6, 7, 8, 9]);
        let seg6 = dir.path().join(format!("log.{:020}", 6));
        let mut b = fs::read(&seg6).unwrap();
        b[30] ^= 1;
        fs::write(&seg6, &b).unwrap();
        assert!(matches!(Wal::open(dir.path(), 5), Err(WalError::CorruptMiddle { .. })));
    }
}
