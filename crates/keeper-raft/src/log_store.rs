//! `RaftLogStorage` + `RaftLogReader` on append-only, CRC'd, segmented log files.
//!
//! Layout of a store directory:
//!
//! * `wal-<first_index:020>.log` – segments of records
//!   `len u32 | crc32c u32 | index u64 | term u64 | kind u8 | body` (see [`crate::codec`]).
//! * `vote`      – `crc32c u32 | term u64 | voted_for u64 | committed u8`, replaced atomically
//!   (write tmp, fsync, rename, fsync dir) – `save_vote` returns only after that.
//! * `purged`    – `crc32c u32 | Option<LogId>`, same atomic replace; the last purged log id.
//! * `committed` – `crc32c u32 | Option<LogId>`, overwritten in place WITHOUT fsync (a hint: a
//!   lost/torn write just yields an older/None value, which is safe).
//! * `LOCK`      – exclusive `flock` held by the writer thread for the lifetime of the store.
//!
//! Every entry is also kept in memory (a `VecDeque`) for reads; openraft purges the log after
//! each snapshot so the in-memory part is bounded by the snapshot policy.
//!
//! All write I/O is executed, in submission order, by ONE writer thread. `append` encodes the
//! records, updates the in-memory index (so the entries are readable as soon as `append`
//! returns — required by openraft) and queues the bytes; the writer drains everything queued,
//! `pwrite`s it, does ONE `fdatasync` and only then calls each `IOFlushed` callback: group commit.
//! `save_vote`, `truncate_after` and `purge` first flush pending appends, then do their own
//! durable write, and are awaited by the caller.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs;
use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::io::Read;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use tokio::sync::oneshot;

use crate::codec;
use crate::codec::Put;
use crate::codec::Rd;
use crate::codec::RecordRead;
use crate::Entry;
use crate::LogId;
use crate::TypeConfig;
use crate::Vote;

/// Process-wide counters (for the benchmark): number of log fsync batches and appended entries.
pub static FSYNC_BATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static APPENDED_ENTRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Clone, Debug)]
pub struct LogStoreOptions {
    /// Roll to a new segment file once the active one reaches this size.
    pub segment_bytes: u64,
    /// Reject records bigger than this while recovering (guards against garbage lengths).
    pub max_record_bytes: usize,
    /// How long `open` waits for a previous owner of the directory to release `LOCK`.
    pub lock_wait: Duration,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        Self { segment_bytes: 64 << 20, max_record_bytes: 64 << 20, lock_wait: Duration::from_secs(5) }
    }
}

// ------------------------------------------------------------------------------------------
// In-memory state shared by the store and its readers
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Loc {
    /// First index of the segment holding the record (the segment's file name).
    seg: u64,
    /// Offset of the record within the segment.
    off: u64,
}

#[derive(Default)]
struct MemLog {
    /// Contiguous entries; `entries[i].log_id.index == first_index() + i`.
    entries: VecDeque<Entry>,
    locs: VecDeque<Loc>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// segment first-index -> logical length (including queued, not yet written, bytes).
    segments: BTreeMap<u64, u64>,
}

impl MemLog {
    fn first_index(&self) -> u64 {
        self.entries.front().map(|e| e.log_id.index).unwrap_or_else(|| self.next_index())
    }
    fn last_log_id(&self) -> Option<LogId> {
        self.entries.back().map(|e| e.log_id).or(self.last_purged)
    }
    fn next_index(&self) -> u64 {
        match self.entries.back() {
            Some(e) => e.log_id.index + 1,
            None => self.last_purged.map(|x| x.index + 1).unwrap_or(0),
        }
    }
    fn get(&self, index: u64) -> Option<&Entry> {
        let first = self.entries.front()?.log_id.index;
        if index < first {
            return None;
        }
        self.entries.get((index - first) as usize)
    }
}

// ------------------------------------------------------------------------------------------
// Writer thread
// ------------------------------------------------------------------------------------------

enum Cmd {
    /// pwrite `data` at `off` of segment `seg` (creating it if needed). `cb` (if any) is called
    /// after the fsync that covers this write.
    Append { seg: u64, off: u64, data: Vec<u8>, cb: Option<IOFlushed<TypeConfig>> },
    /// Remove whole segments `drop_segs`, cut segment `cut.0` to length `cut.1`, fsync.
    Truncate { drop_segs: Vec<u64>, cut: Option<(u64, u64)>, done: oneshot::Sender<io::Result<()>> },
    /// Durably replace a small file.
    SmallFile { name: &'static str, data: Vec<u8>, done: oneshot::Sender<io::Result<()>> },
    /// Persist purge marker (durably), then delete segments fully covered by it.
    Purge { marker: Vec<u8>, drop_segs: Vec<u64>, done: oneshot::Sender<io::Result<()>> },
    /// Overwrite the `committed` hint file in place, no fsync.
    Committed { data: Vec<u8> },
    /// Call `cb` after the next flush.
    Barrier { cb: IOFlushed<TypeConfig> },
}

struct Writer {
    dir: PathBuf,
    files: BTreeMap<u64, File>,
    /// Segments written since the last fsync.
    dirty: BTreeSet<u64>,
    dir_dirty: bool,
    pending: Vec<IOFlushed<TypeConfig>>,
    committed_file: Option<File>,
    /// Held (flock'ed) until the thread exits.
    _lock: File,
}

fn seg_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("wal-{seg:020}.log"))
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Write tmp, fsync, rename, fsync dir.
fn atomic_replace(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        io::Write::write_all(&mut f, data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    fsync_dir(dir)
}

/// `crc32c u32 | payload`
fn with_crc(payload: Vec<u8>) -> Vec<u8> {
    let mut b = Vec::with_capacity(payload.len() + 4);
    b.put_u32(crc32c::crc32c(&payload));
    b.extend_from_slice(&payload);
    b
}

fn read_crc_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut buf)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    if buf.len() < 4 {
        return Ok(None);
    }
    let crc = u32::from_le_bytes(buf[0..4].try_into().unwrap());
    if crc32c::crc32c(&buf[4..]) != crc {
        return Ok(None);
    }
    Ok(Some(buf[4..].to_vec()))
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        while let Ok(first) = rx.recv() {
            self.handle(first);
            // Group commit: take everything that queued up meanwhile, then fsync once.
            while let Ok(next) = rx.try_recv() {
                self.handle(next);
            }
            self.flush();
        }
        self.flush();
        tracing::debug!("log writer thread exits: {}", self.dir.display());
    }

    fn file(&mut self, seg: u64) -> io::Result<&File> {
        if !self.files.contains_key(&seg) {
            let path = seg_path(&self.dir, seg);
            let existed = path.exists();
            let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
            if !existed {
                self.dir_dirty = true;
            }
            self.files.insert(seg, f);
        }
        Ok(&self.files[&seg])
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Append { seg, off, data, cb } => {
                let res = self.file(seg).and_then(|f| f.write_all_at(&data, off));
                match res {
                    Ok(()) => {
                        self.dirty.insert(seg);
                        if let Some(cb) = cb {
                            self.pending.push(cb);
                        }
                    }
                    Err(e) => {
                        tracing::error!("log append failed: {e}");
                        // Fail everything queued so far; openraft treats it as fatal.
                        for cb in self.pending.drain(..) {
                            cb.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                        }
                        if let Some(cb) = cb {
                            cb.io_completed(Err(e));
                        }
                    }
                }
            }
            Cmd::Truncate { drop_segs, cut, done } => {
                let res = self.flush_result().and_then(|_| {
                    for seg in drop_segs {
                        self.files.remove(&seg);
                        self.dirty.remove(&seg);
                        match fs::remove_file(seg_path(&self.dir, seg)) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(e),
                        }
                        self.dir_dirty = true;
                    }
                    if let Some((seg, len)) = cut {
                        let f = self.file(seg)?;
                        f.set_len(len)?;
                        f.sync_all()?;
                    }
                    if self.dir_dirty {
                        fsync_dir(&self.dir)?;
                        self.dir_dirty = false;
                    }
                    Ok(())
                });
                let _ = done.send(res);
            }
            Cmd::SmallFile { name, data, done } => {
                let res = self.flush_result().and_then(|_| atomic_replace(&self.dir, name, &data));
                let _ = done.send(res);
            }
            Cmd::Purge { marker, drop_segs, done } => {
                let res = self.flush_result().and_then(|_| {
                    atomic_replace(&self.dir, "purged", &marker)?;
                    // Deleting covered segments need not be durable: on recovery, entries
                    // <= purged are skipped and such segments are removed again.
                    for seg in drop_segs {
                        self.files.remove(&seg);
                        self.dirty.remove(&seg);
                        let _ = fs::remove_file(seg_path(&self.dir, seg));
                    }
                    Ok(())
                });
                let _ = done.send(res);
            }
            Cmd::Barrier { cb } => self.pending.push(cb),
            Cmd::Committed { data } => {
                if self.committed_file.is_none() {
                    self.committed_file = OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(self.dir.join("committed"))
                        .ok();
                }
                if let Some(f) = &self.committed_file {
                    let _ = f.write_all_at(&data, 0);
                }
            }
        }
    }

    fn flush_result(&mut self) -> io::Result<()> {
        let mut res = Ok(());
        if !self.dirty.is_empty() {
            FSYNC_BATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        for seg in std::mem::take(&mut self.dirty) {
            if let Some(f) = self.files.get(&seg) {
                // fdatasync: also covers the file size change of an append.
                if let Err(e) = f.sync_data() {
                    res = Err(e);
                    break;
                }
            }
        }
        if res.is_ok() && self.dir_dirty {
            res = fsync_dir(&self.dir);
            self.dir_dirty = false;
        }
        let cbs = std::mem::take(&mut self.pending);
        match &res {
            Ok(()) => cbs.into_iter().for_each(|cb| cb.io_completed(Ok(()))),
            Err(e) => cbs.into_iter().for_each(|cb| cb.io_completed(Err(io::Error::new(e.kind(), e.to_string())))),
        }
        res
    }

    fn flush(&mut self) {
        if let Err(e) = self.flush_result() {
            tracing::error!("log fsync failed: {e}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Store
// ------------------------------------------------------------------------------------------

/// The log store handed to `Raft::new`. Dropping it (Raft shutdown drops it) stops the writer
/// thread after it has flushed everything queued, which also releases `LOCK`.
pub struct FileLogStore {
    mem: Arc<Mutex<MemLog>>,
    tx: mpsc::Sender<Cmd>,
    opts: LogStoreOptions,
}

/// Cheap cloneable reader (openraft hands one to every replication task).
#[derive(Clone)]
pub struct FileLogReader {
    mem: Arc<Mutex<MemLog>>,
}

fn lock_dir(dir: &Path, wait: Duration) -> io::Result<File> {
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.join("LOCK"))?;
    let deadline = Instant::now() + wait;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "log dir is locked by another store"));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

impl FileLogStore {
    /// Open (or create) a store in `dir`, recovering vote, purge marker, committed hint and all
    /// segments. A torn/corrupt tail of the LAST segment is cut off; corruption elsewhere fails.
    pub fn open(dir: impl AsRef<Path>, opts: LogStoreOptions) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        let lock = lock_dir(&dir, opts.lock_wait)?;

        let mut mem = MemLog::default();

        if let Some(b) = read_crc_file(&dir.join("vote"))? {
            let mut r = Rd::new(&b);
            mem.vote = Some(codec::get_vote(&mut r)?);
        }
        if let Some(b) = read_crc_file(&dir.join("purged"))? {
            mem.last_purged = codec::get_opt_log_id(&mut Rd::new(&b))?;
        }
        let committed_hint =
            read_crc_file(&dir.join("committed"))?.and_then(|b| codec::get_opt_log_id(&mut Rd::new(&b)).ok().flatten());

        // Segments, in index order.
        let mut segs: Vec<u64> = Vec::new();
        for ent in fs::read_dir(&dir)? {
            let name = ent?.file_name().to_string_lossy().to_string();
            if let Some(n) = name.strip_prefix("wal-").and_then(|s| s.strip_suffix(".log")) {
                if let Ok(n) = n.parse::<u64>() {
                    segs.push(n);
                }
            }
        }
        segs.sort_unstable();

        let purged_idx = mem.last_purged.map(|x| x.index);
        for (i, &seg) in segs.iter().enumerate() {
            let is_last = i + 1 == segs.len();
            let path = seg_path(&dir, seg);
            let buf = fs::read(&path)?;
            let mut off = 0usize;
            let mut seg_has_live = false;
            while off < buf.len() {
                match codec::decode_record(&buf[off..], opts.max_record_bytes) {
                    RecordRead::Ok(e, n) => {
                        let idx = e.log_id.index;
                        if purged_idx.is_some_and(|p| idx <= p) {
                            // already purged, skip
                        } else {
                            let expect = mem.next_index();
                            if idx != expect {
                                return Err(codec::bad(format!(
                                    "log hole/overlap in {}: index {idx}, expected {expect}",
                                    path.display()
                                )));
                            }
                            mem.entries.push_back(e);
                            mem.locs.push_back(Loc { seg, off: off as u64 });
                            seg_has_live = true;
                        }
                        off += n;
                    }
                    RecordRead::Incomplete | RecordRead::Corrupt(_) if is_last => {
                        tracing::warn!("cutting torn tail of {} at {off} (len {})", path.display(), buf.len());
                        let f = OpenOptions::new().write(true).open(&path)?;
                        f.set_len(off as u64)?;
                        f.sync_all()?;
                        break;
                    }
                    RecordRead::Incomplete => {
                        return Err(codec::bad(format!("truncated record in {}", path.display())))
                    }
                    RecordRead::Corrupt(m) => return Err(codec::bad(format!("{m} in {}", path.display()))),
                }
            }
            if seg_has_live {
                mem.segments.insert(seg, off as u64);
            } else {
                // Fully purged (or empty) segment left over: remove it.
                let _ = fs::remove_file(&path);
            }
        }

        // committed is only a hint (written without fsync): clamp it to the durable log.
        mem.committed = match committed_hint {
            None => None,
            Some(c) => match mem.last_log_id() {
                // Saved committed beyond the durable tail (follower applied before it flushed):
                // everything we still have is a prefix of a committed log, so the tail is committed.
                Some(last) if c.index > last.index => Some(last),
                Some(_) => match mem.get(c.index) {
                    Some(e) if e.log_id == c => Some(c),
                    None if Some(c) <= mem.last_purged => Some(c),
                    _ => None,
                },
                None => None,
            },
        };

        tracing::info!(
            "log store opened {}: vote={:?} purged={:?} committed={:?} entries={} segments={}",
            dir.display(),
            mem.vote,
            mem.last_purged,
            mem.committed,
            mem.entries.len(),
            mem.segments.len()
        );

        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.clone(),
            files: BTreeMap::new(),
            dirty: BTreeSet::new(),
            dir_dirty: false,
            pending: Vec::new(),
            committed_file: None,
            _lock: lock,
        };
        std::thread::Builder::new().name("raft-log-writer".into()).spawn(move || writer.run(rx))?;

        Ok(Self { mem: Arc::new(Mutex::new(mem)), tx, opts })
    }

    fn send(&self, cmd: Cmd) -> io::Result<()> {
        self.tx.send(cmd).map_err(|_| io::Error::other("log writer thread is gone"))
    }

    async fn call(&self, make: impl FnOnce(oneshot::Sender<io::Result<()>>) -> Cmd) -> io::Result<()> {
        let (done, rx) = oneshot::channel();
        self.send(make(done))?;
        rx.await.map_err(|_| io::Error::other("log writer thread is gone"))?
    }
}

fn range_to_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(x) => x.saturating_add(1),
        Bound::Excluded(x) => *x,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

fn read_range(mem: &Mutex<MemLog>, range: impl RangeBounds<u64>) -> Vec<Entry> {
    let (start, end) = range_to_bounds(&range);
    let m = mem.lock().unwrap();
    let Some(first) = m.entries.front().map(|e| e.log_id.index) else {
        return vec![];
    };
    let next = first + m.entries.len() as u64;
    let s = start.max(first);
    let e = end.min(next);
    if s >= e {
        return vec![];
    }
    m.entries.range((s - first) as usize..(e - first) as usize).cloned().collect()
}

impl RaftLogReader<TypeConfig> for FileLogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(read_range(&self.mem, range))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.mem.lock().unwrap().vote)
    }

    /// Cap a single replication read (openraft may ask for a huge range for a lagging peer).
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, io::Error> {
        Ok(read_range(&self.mem, start..end.min(start.saturating_add(4096))))
    }
}

impl RaftLogReader<TypeConfig> for FileLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(read_range(&self.mem, range))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.mem.lock().unwrap().vote)
    }
}

impl RaftLogStorage<TypeConfig> for FileLogStore {
    type LogReader = FileLogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let m = self.mem.lock().unwrap();
        Ok(LogState { last_purged_log_id: m.last_purged, last_log_id: m.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        FileLogReader { mem: self.mem.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut b = Vec::new();
        codec::put_vote(&mut b, vote);
        let data = with_crc(b);
        // Durable before returning (the writer first flushes any queued appends).
        self.call(|done| Cmd::SmallFile { name: "vote", data, done }).await?;
        self.mem.lock().unwrap().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let mut b = Vec::new();
        codec::put_opt_log_id(&mut b, &committed);
        b.resize(17, 0); // fixed size: the file is overwritten in place
        self.send(Cmd::Committed { data: with_crc(b) })?;
        self.mem.lock().unwrap().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.mem.lock().unwrap().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut cmds: Vec<(u64, u64, Vec<u8>)> = Vec::new();
        {
            let mut m = self.mem.lock().unwrap();
            for e in entries {
                let expect = m.next_index();
                if e.log_id.index != expect {
                    return Err(codec::bad(format!("append hole: got {}, expected {expect}", e.log_id.index)));
                }
                // Pick / roll the active segment.
                let (seg, len) = match m.segments.last_key_value() {
                    Some((&s, &l)) if l < self.opts.segment_bytes => (s, l),
                    _ => {
                        m.segments.insert(e.log_id.index, 0);
                        (e.log_id.index, 0)
                    }
                };
                let need_new_cmd = !matches!(cmds.last(), Some((s, _, _)) if *s == seg);
                if need_new_cmd {
                    cmds.push((seg, len, Vec::with_capacity(4096)));
                }
                let buf = &mut cmds.last_mut().unwrap().2;
                let before = buf.len();
                codec::encode_record(buf, &e);
                let rec_len = (buf.len() - before) as u64;
                *m.segments.get_mut(&seg).unwrap() = len + rec_len;
                m.locs.push_back(Loc { seg, off: len });
                m.entries.push_back(e);
                APPENDED_ENTRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // Queue while holding the lock so queue order == index order.
            let n = cmds.len();
            let mut cb = Some(callback);
            for (i, (seg, off, data)) in cmds.into_iter().enumerate() {
                let cb = if i + 1 == n { cb.take() } else { None };
                self.send(Cmd::Append { seg, off, data, cb })?;
            }
            if let Some(cb) = cb {
                // Empty append: nothing to write, but complete only after earlier IO is flushed.
                self.send(Cmd::Barrier { cb })?;
            }
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let (drop_segs, cut) = {
            let mut m = self.mem.lock().unwrap();
            let keep_upto_next = last_log_id.map(|x| x.index + 1).unwrap_or(0);
            let first = m.first_index();
            if m.entries.is_empty() || keep_upto_next >= first + m.entries.len() as u64 {
                return Ok(());
            }
            let keep = keep_upto_next.saturating_sub(first) as usize;
            let loc = m.locs[keep];
            m.entries.truncate(keep);
            m.locs.truncate(keep);
            // Segments starting after the cut point disappear; the one holding it is cut.
            let drop_segs: Vec<u64> = m.segments.range(loc.seg + 1..).map(|(s, _)| *s).collect();
            for s in &drop_segs {
                m.segments.remove(s);
            }
            let cut = if loc.off == 0 {
                m.segments.remove(&loc.seg);
                None
            } else {
                m.segments.insert(loc.seg, loc.off);
                Some((loc.seg, loc.off))
            };
            let mut drop_segs = drop_segs;
            if cut.is_none() {
                drop_segs.push(loc.seg);
            }
            (drop_segs, cut)
        };
        self.call(|done| Cmd::Truncate { drop_segs, cut, done }).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let (marker, drop_segs) = {
            let mut m = self.mem.lock().unwrap();
            if Some(log_id) <= m.last_purged {
                return Ok(());
            }
            while let Some(e) = m.entries.front() {
                if e.log_id.index > log_id.index {
                    break;
                }
                m.entries.pop_front();
                m.locs.pop_front();
            }
            m.last_purged = Some(log_id);
            // A segment can go once every entry in it is purged: i.e. the next segment starts at
            // or before `log_id.index + 1`, or (last segment) no live entry remains.
            let keys: Vec<u64> = m.segments.keys().copied().collect();
            let mut drop_segs = Vec::new();
            for (i, s) in keys.iter().enumerate() {
                let fully = match keys.get(i + 1) {
                    Some(next) => *next <= log_id.index + 1,
                    None => m.entries.is_empty(),
                };
                if fully {
                    drop_segs.push(*s);
                    m.segments.remove(s);
                }
            }
            let mut b = Vec::new();
            codec::put_opt_log_id(&mut b, &Some(log_id));
            (with_crc(b), drop_segs)
        };
        self.call(|done| Cmd::Purge { marker, drop_segs, done }).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::type_config::TypeConfigExt;
    use openraft::EntryPayload;

    use super::*;
    use crate::log_id;
    use crate::Txn;

    fn ent(term: u64, index: u64) -> Entry {
        let payload = match index % 3 {
            0 => EntryPayload::Blank,
            1 => EntryPayload::Normal(Txn(format!("p{index}").into_bytes())),
            _ => EntryPayload::Membership(
                openraft::Membership::new(
                    vec![[1u64, 2].into()],
                    [(1u64, openraft::BasicNode::new("a")), (2, openraft::BasicNode::new("b"))]
                        .into_iter()
                        .collect::<BTreeMap<_, _>>(),
                )
                .unwrap(),
            ),
        };
        openraft::Entry { log_id: log_id(term, index), payload }
    }

    async fn append(s: &mut FileLogStore, es: Vec<Entry>) {
        let (tx, rx) = TypeConfig::oneshot();
        s.append(es, IOFlushed::signal(tx)).await.unwrap();
        rx.await.unwrap().unwrap(); // resolves only after fsync
    }

    fn opts() -> LogStoreOptions {
        LogStoreOptions { segment_bytes: 300, ..Default::default() } // tiny: many segments
    }

    #[tokio::test]
    async fn append_truncate_purge_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        {
            let mut s = FileLogStore::open(&p, opts()).unwrap();
            assert_eq!(s.get_log_state().await.unwrap().last_log_id, None);
            append(&mut s, (0..40).map(|i| ent(1, i)).collect()).await;
            let v = openraft::Vote { leader_id: crate::LeaderId { term: 3, voted_for: 2 }, committed: true };
            s.save_vote(&v).await.unwrap();
            s.save_committed(Some(log_id(1, 20))).await.unwrap();
            // conflict: drop 30.. and append term-2 entries
            s.truncate_after(Some(log_id(1, 29))).await.unwrap();
            append(&mut s, (30..50).map(|i| ent(2, i)).collect()).await;
            s.purge(log_id(1, 9)).await.unwrap();
            let got = s.try_get_log_entries(0..100).await.unwrap();
            assert_eq!(got.first().unwrap().log_id, log_id(1, 10));
            assert_eq!(got.len(), 40);
        }
        // reopen (waits for the old writer thread to release LOCK)
        let mut s = FileLogStore::open(&p, opts()).unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 9)));
        assert_eq!(st.last_log_id, Some(log_id(2, 49)));
        assert_eq!(s.read_vote().await.unwrap().unwrap().leader_id.term, 3);
        assert_eq!(s.read_committed().await.unwrap(), Some(log_id(1, 20)));
        let got = s.try_get_log_entries(10..50).await.unwrap();
        let want: Vec<Entry> = (10..30).map(|i| ent(1, i)).chain((30..50).map(|i| ent(2, i))).collect();
        assert_eq!(got, want);
        drop(s);

        // torn tail: chop some bytes off the last segment
        let mut segs: Vec<_> = std::fs::read_dir(&p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".log"))
            .collect();
        segs.sort();
        let last = segs.last().unwrap();
        let len = std::fs::metadata(last).unwrap().len();
        OpenOptions::new().write(true).open(last).unwrap().set_len(len - 3).unwrap();
        let mut s = FileLogStore::open(&p, opts()).unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(2, 48)));
        append(&mut s, vec![ent(3, 49)]).await;
        drop(s);
        let mut s = FileLogStore::open(&p, opts()).unwrap();
        assert_eq!(s.get_log_state().await.unwrap().last_log_id, Some(log_id(3, 49)));
        // truncate everything, purge beyond the end (as when installing a snapshot)
        s.truncate_after(Some(log_id(1, 15))).await.unwrap();
        s.purge(log_id(5, 100)).await.unwrap();
        append(&mut s, vec![ent(5, 101)]).await;
        drop(s);
        let mut s = FileLogStore::open(&p, opts()).unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(5, 100)));
        assert_eq!(st.last_log_id, Some(log_id(5, 101)));
        // committed hint (1,20) is purged now but still <= purged: kept
        assert_eq!(s.read_committed().await.unwrap(), Some(log_id(1, 20)));
    }
}
