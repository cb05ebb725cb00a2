//! Snapshots of the data tree, so that restart replays only the log written since.
//!
//! File `snap.<index, 20 digits>`: `"HERDSNAP" | version u32 | index u64 | state[len] | len u64 |
//! crc32c u32` (CRC over everything before it). The state is streamed to the file as it is
//! serialized (the length and checksum come last), so the whole snapshot is never in memory. Written to a temporary name, fsynced, renamed and
//! the directory fsynced, so a crash leaves either the old set of snapshots or the new one.
//! The two newest are kept: if the newest is found corrupt, the older one and the log since it
//! still give the whole state.

use crate::wal::fsync_dir;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"HERDSNAP";
/// 2: sessions carry their owner member; the state ends with each member's last applied proposal.
/// 3: the state's length follows it (streamed writing).
/// 4: sessions carry their fast-expiry grace, heartbeat interval and connection epoch.
const VERSION: u32 = 4;
pub const KEEP: usize = 2;

/// Counts and checksums what passes through to the file.
struct Summing<W> {
    inner: W,
    crc: u32,
    len: u64,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.crc = crc32c::crc32c_append(self.crc, &b[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub fn write(dir: &Path, index: u64, state: &[u8]) -> io::Result<PathBuf> {
    write_with(dir, index, |w| w.write_all(state))
}

/// Writes snapshot `index`, its state produced by `fill` straight into the file.
pub fn write_with(dir: &Path, index: u64, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<PathBuf> {
    let path = dir.join(format!("snap.{index:020}"));
    let tmp = dir.join(format!("snap.{index:020}.tmp"));
    let f = File::create(&tmp)?;
    let mut w = Summing { inner: io::BufWriter::with_capacity(1 << 20, f), crc: 0, len: 0 };
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_be_bytes())?;
    w.write_all(&index.to_be_bytes())?;
    let start = w.len;
    fill(&mut w)?;
    let state_len = w.len - start;
    w.write_all(&state_len.to_be_bytes())?;
    let crc = w.crc;
    let mut f = w.inner;
    f.write_all(&crc.to_be_bytes())?;
    let f = f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    fsync_dir(dir).map_err(io::Error::other)?;
    Ok(path)
}

/// Removes snapshots a crash left half-written (they were never renamed into place).
pub fn remove_partial(dir: &Path) -> io::Result<()> {
    for ent in fs::read_dir(dir)? {
        let ent = ent?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if name.starts_with("snap.") && name.ends_with(".tmp") {
            fs::remove_file(ent.path())?;
        }
    }
    Ok(())
}

/// Snapshot indexes present in `dir`, newest first.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut v = Vec::new();
    if !dir.exists() {
        return Ok(v);
    }
    for ent in fs::read_dir(dir)? {
        let name = ent?.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix("snap.").and_then(|n| n.parse::<u64>().ok()) {
            v.push(n);
        }
    }
    v.sort_unstable_by(|a, b| b.cmp(a));
    Ok(v)
}

/// Reads and verifies one snapshot: Ok(state) or Err(why).
pub fn read(dir: &Path, index: u64) -> Result<Vec<u8>, String> {
    let path = dir.join(format!("snap.{index:020}"));
    let b = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if b.len() < 32 || &b[..8] != MAGIC {
        return Err(format!("{}: not a snapshot", path.display()));
    }
    let (body, tail) = b.split_at(b.len() - 4);
    let crc = u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if crc32c::crc32c(body) != crc {
        return Err(format!("{}: checksum mismatch", path.display()));
    }
    let mut n = [0u8; 8];
    let mut v = [0u8; 4];
    v.copy_from_slice(&body[8..12]);
    if u32::from_be_bytes(v) != VERSION {
        return Err(format!(
            "{}: snapshot format {} (this keeper reads {VERSION})",
            path.display(),
            u32::from_be_bytes(v)
        ));
    }
    n.copy_from_slice(&body[12..20]);
    if u64::from_be_bytes(n) != index {
        return Err(format!("{}: index does not match its name", path.display()));
    }
    n.copy_from_slice(&body[body.len() - 8..]);
    let len = u64::from_be_bytes(n) as usize;
    if len != body.len() - 28 {
        return Err(format!("{}: length mismatch", path.display()));
    }
    Ok(body[20..body.len() - 8].to_vec())
}

/// Removes all but the newest [`KEEP`] snapshots. Returns the index the log may be compacted
/// up to: the oldest kept snapshot, once [`KEEP`] exist (with fewer, a corrupt snapshot would
/// have nothing to fall back on but the whole log, so the log is kept whole).
pub fn prune(dir: &Path) -> io::Result<Option<u64>> {
    let all = list(dir)?;
    for old in all.iter().skip(KEEP) {
        fs::remove_file(dir.join(format!("snap.{old:020}")))?;
    }
    Ok(if all.len() >= KEEP { Some(all[KEEP - 1]) } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_corrupt_prune() {
        let dir = tempfile::tempdir().unwrap();
        for i in [3u64, 7, 9] {
            write(dir.path(), i, format!("state {i}").as_bytes()).unwrap();
        }
        assert_eq!(list(dir.path()).unwrap(), vec![9, 7, 3]);
        assert_eq!(read(dir.path(), 7).unwrap(), b"state 7");
        let p = dir.path().join(format!("snap.{:020}", 9));
        let mut b = fs::read(&p).unwrap();
        b[22] ^= 1;
        fs::write(&p, b).unwrap();
        assert!(read(dir.path(), 9).unwrap_err().contains("checksum"));
        assert_eq!(prune(dir.path()).unwrap(), Some(7));
        fs::remove_file(dir.path().join(format!("snap.{:020}", 7))).unwrap();
        assert_eq!(prune(dir.path()).unwrap(), None, "one snapshot alone never allows compaction");
        write(dir.path(), 7, b"state 7").unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![9, 7]);
    }
}
