//! `Store`: the replicas of one DataNode, over one or more data dirs.
//!
//! ```text
//! <data dir>/in_use.lock            flock'ed while a Store has the dir open
//! <data dir>/current/finalized/     blk_<id> + blk_<id>_<gs>.meta, complete replicas
//! <data dir>/current/rbw/           replicas being written (by a client pipeline or an append)
//! <data dir>/tmp/                   replicas being received by replication; dropped at open
//! ```
//!
//! **Invariant:** the in-memory map (id -> gs, length, state, dir) describes the files on disk
//! whenever no operation on that replica is under way; every operation that touches a
//! replica's files holds that replica's I/O lock, and checks under the map lock that the
//! replica is still the one it started with (same incarnation, same writer).
//!
//! Locks: each replica has an I/O lock (`Entry::io`), held across file operations (a packet
//! write, a chunk read, a rename); the map lock is held only for short look-ups and updates,
//! never across I/O, and is always taken after the I/O lock, never before it. A reader
//! takes the I/O lock per read, so it sees a data file and a meta file that agree even while
//! a writer extends the last partial chunk.
//!
//! Moves (finalize rbw -> finalized, append finalized -> rbw) rename the meta file first and
//! the data file second, so that a crash between them leaves the data file in the other
//! directory than its meta file: `open` completes the move in the direction of the meta file.

mod changes;
mod reader;
mod scan;
mod writer;

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use changes::{Changes, Taken};
pub use reader::{ChunkStream, Chunks, ReplicaReader};
pub use writer::ReplicaWriter;

use crate::error::{io_error, Result, StoreError};
use crate::meta;

/// The largest packet `write_packet` accepts.
pub const MAX_PACKET_LEN: u64 = 16 << 20;
/// The largest range one `read` returns; longer ranges are streamed with `chunks`.
pub const MAX_READ_LEN: u64 = 16 << 20;
/// The largest replica (HDFS's default block is 128 MiB; this is a sanity bound on bytes from
/// disk and from the network, not a tuning knob).
pub const MAX_REPLICA_LEN: u64 = 1 << 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaState {
    /// Complete and immutable (until an append reopens it).
    Finalized,
    /// Being written, or was being written when the DataNode stopped.
    Rbw,
    /// Being received by replication; not reported, dropped at restart.
    Temporary,
}

/// One line of the block report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub id: u64,
    pub gs: u64,
    pub length: u64,
    pub state: ReplicaState,
}

/// Capacity of the data dirs' file systems, and what this store's replicas use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Space {
    pub capacity_bytes: u64,
    /// Bytes of replica files (data + meta) this store holds.
    pub used_bytes: u64,
    /// Bytes available to an unprivileged writer (statvfs `f_bavail`).
    pub free_bytes: u64,
}

pub(crate) struct DataDir {
    pub(crate) root: PathBuf,
    pub(crate) rbw: PathBuf,
    pub(crate) finalized: PathBuf,
    pub(crate) tmp: PathBuf,
    _lock: File,
}

impl DataDir {
    pub(crate) fn state_dir(&self, state: ReplicaState) -> &Path {
        match state {
            ReplicaState::Finalized => &self.finalized,
            ReplicaState::Rbw => &self.rbw,
            ReplicaState::Temporary => &self.tmp,
        }
    }

    pub(crate) fn data_path(&self, state: ReplicaState, id: u64) -> PathBuf {
        self.state_dir(state).join(meta::data_file_name(id))
    }

    pub(crate) fn meta_path(&self, state: ReplicaState, id: u64, gs: u64) -> PathBuf {
        self.state_dir(state).join(meta::meta_file_name(id, gs))
    }

    pub(crate) fn io_err(&self, e: io::Error, context: impl FnOnce() -> String) -> StoreError {
        io_error(e, &self.root, context)
    }
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) gs: u64,
    pub(crate) length: u64,
    pub(crate) state: ReplicaState,
    pub(crate) dir: usize,
    /// Distinguishes a replica from a later one with the same id (after a delete).
    pub(crate) incarnation: u64,
    /// The token of the one writer allowed to change the replica, if any.
    pub(crate) writer: Option<u64>,
    pub(crate) io: Arc<Mutex<()>>,
}

impl Entry {
    fn info(&self, id: u64) -> ReplicaInfo {
        ReplicaInfo { id, gs: self.gs, length: self.length, state: self.state }
    }
}

pub(crate) struct Inner {
    pub(crate) dirs: Vec<DataDir>,
    /// std Mutex: held only for map look-ups and updates, never across I/O or an await.
    pub(crate) map: Mutex<HashMap<u64, Entry>>,
    next_token: AtomicU64,
    /// The change feed: replicas created, finalized or deleted (for incremental reports).
    pub(crate) changes: Changes,
}

impl Inner {
    pub(crate) fn map(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        lock(&self.map)
    }

    pub(crate) fn token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// The entry of `id` if it is still incarnation `incarnation`.
    pub(crate) fn current(&self, id: u64, incarnation: u64) -> Result<Entry> {
        match self.map().get(&id) {
            Some(e) if e.incarnation == incarnation => Ok(e.clone()),
            _ => Err(StoreError::NoSuchReplica { id }),
        }
    }
}

/// Locks a mutex, ignoring poison: the data it guards is a map or `()`, left consistent by
/// every critical section (no section can panic half-way through an update).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The replicas of one DataNode. Cheap to clone; all methods take `&self` and are safe to call
/// from many threads (one per transfer, as a DataNode's xceivers do).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (creating if needed) and locks the data dirs, drops `tmp/` replicas, loads the
    /// finalized replicas and recovers the rbw ones to the length their checksums cover.
    pub fn open(dirs: &[PathBuf]) -> Result<Store> {
        if dirs.is_empty() {
            return Err(StoreError::NoDataDirs);
        }
        let mut opened = Vec::with_capacity(dirs.len());
        for root in dirs {
            opened.push(open_dir(root)?);
        }
        let map = scan::scan(&opened)?;
        let next_token = map.values().map(|e| e.incarnation).max().map_or(1, |m| m + 1);
        Ok(Store {
            inner: Arc::new(Inner {
                dirs: opened,
                map: Mutex::new(map),
                next_token: AtomicU64::new(next_token),
                changes: Changes::default(),
            }),
        })
    }

    /// The data dirs, in the order given to `open`.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.inner.dirs.iter().map(|d| d.root.clone()).collect()
    }

    /// The change feed: ids of replicas created, finalized or deleted since the last take.
    pub fn changes(&self) -> &Changes {
        &self.inner.changes
    }

    /// Starts a new replica in `current/rbw/` of the data dir with the most free space.
    pub fn create_rbw(&self, id: u64, gs: u64) -> Result<ReplicaWriter> {
        self.create(id, gs, ReplicaState::Rbw)
    }

    /// Starts a replica received by replication, in `tmp/`: it is not reported, and it is
    /// deleted if the writer is dropped without `finalize` or the DataNode restarts.
    pub fn create_temporary(&self, id: u64, gs: u64) -> Result<ReplicaWriter> {
        self.create(id, gs, ReplicaState::Temporary)
    }

    fn create(&self, id: u64, gs: u64, state: ReplicaState) -> Result<ReplicaWriter> {
        let dir = self.emptiest_dir();
        let token = self.inner.token();
        let io = Arc::new(Mutex::new(()));
        {
            let mut map = self.inner.map();
            if map.contains_key(&id) {
                return Err(StoreError::AlreadyExists { id });
            }
            map.insert(
                id,
                Entry { gs, length: 0, state, dir, incarnation: token, writer: Some(token), io: io.clone() },
            );
        }
        let d = &self.inner.dirs[dir];
        let (data_path, meta_path) = (d.data_path(state, id), d.meta_path(state, id, gs));
        let created = (|| {
            let create = |p: &Path| OpenOptions::new().read(true).write(true).create_new(true).open(p);
            let data = create(&data_path).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => StoreError::AlreadyExists { id },
                _ => d.io_err(e, || format!("creating {}", data_path.display())),
            })?;
            let meta = match create(&meta_path) {
                Ok(m) => m,
                Err(e) => {
                    let _ = fs::remove_file(&data_path);
                    return Err(match e.kind() {
                        io::ErrorKind::AlreadyExists => StoreError::AlreadyExists { id },
                        _ => d.io_err(e, || format!("creating {}", meta_path.display())),
                    });
                }
            };
            let header = meta.write_all_at(&meta::header(), 0).and_then(|()| fsync_dir(d.state_dir(state)));
            if let Err(e) = header {
                let _ = fs::remove_file(&data_path);
                let _ = fs::remove_file(&meta_path);
                return Err(d.io_err(e, || format!("writing {}", meta_path.display())));
            }
            Ok((data, meta))
        })();
        // Change feed: a new rbw replica is reported as receiving (a temporary one is not).
        if created.is_ok() && state == ReplicaState::Rbw {
            self.inner.changes.record(id, gs);
        }
        match created {
            Ok((data, meta)) => Ok(ReplicaWriter::new(
                self.inner.clone(),
                writer::Open {
                    id,
                    gs,
                    dir,
                    state,
                    incarnation: token,
                    token,
                    io,
                    data,
                    meta,
                    length: 0,
                    partial_crc: 0,
                },
            )),
            Err(e) => {
                self.inner.map().remove(&id);
                Err(e)
            }
        }
    }

    /// Reopens finalized replica `id` (generation stamp `gs_old`) for append, under the new
    /// generation stamp `gs_new`: it moves to `current/rbw/` and its meta file is renamed.
    /// The last partial chunk is verified first: a corrupt replica is not appended to.
    pub fn append(&self, id: u64, gs_old: u64, gs_new: u64) -> Result<ReplicaWriter> {
        let entry = self.entry(id)?;
        let _io = lock(&entry.io);
        let e = self.inner.current(id, entry.incarnation)?;
        if e.state != ReplicaState::Finalized {
            return Err(StoreError::WrongState { id, state: e.state, needed: ReplicaState::Finalized });
        }
        check_gs(id, e.gs, gs_old)?;
        if gs_new <= e.gs {
            return Err(StoreError::GenStampNotNewer { id, current: e.gs, proposed: gs_new });
        }
        let d = &self.inner.dirs[e.dir];
        let (fin_data, fin_meta) =
            (d.data_path(ReplicaState::Finalized, id), d.meta_path(ReplicaState::Finalized, id, e.gs));
        let (data, meta) = open_rw(d, &fin_data, &fin_meta)?;
        let partial_crc = last_partial_crc(id, e.length, &data, &meta, d)?;
        let (rbw_data, rbw_meta) = (d.data_path(ReplicaState::Rbw, id), d.meta_path(ReplicaState::Rbw, id, gs_new));
        rename(d, &fin_meta, &rbw_meta)?;
        if let Err(err) = rename(d, &fin_data, &rbw_data) {
            let _ = fs::rename(&rbw_meta, &fin_meta);
            return Err(err);
        }
        fsync_dir(&d.rbw)
            .and_then(|()| fsync_dir(&d.finalized))
            .map_err(|err| d.io_err(err, || "fsync of dirs".into()))?;
        let token = self.inner.token();
        if let Some(m) = self.inner.map().get_mut(&id) {
            m.state = ReplicaState::Rbw;
            m.gs = gs_new;
            m.writer = Some(token);
        }
        // Change feed: an appended replica is being written again (receiving, new stamp).
        self.inner.changes.record(id, gs_new);
        Ok(ReplicaWriter::new(
            self.inner.clone(),
            writer::Open {
                id,
                gs: gs_new,
                dir: e.dir,
                state: ReplicaState::Rbw,
                incarnation: e.incarnation,
                token,
                io: entry.io.clone(),
                data,
                meta,
                length: e.length,
                partial_crc,
            },
        ))
    }

    /// Pipeline recovery: truncates rbw replica `id` to `length` bytes (what every node of
    /// the pipeline has) and bumps its generation stamp to `gs_new`. The replica's current
    /// writer, if any, is fenced: its next call fails with `WriterFenced`. Returns the writer
    /// that continues the replica.
    pub fn recover_rbw(&self, id: u64, gs_new: u64, length: u64) -> Result<ReplicaWriter> {
        self.cut_rbw(id, gs_new, length, false)
    }

    /// Lease recovery, step one (HDFS `initReplicaRecovery`): fences any writer of replica
    /// `id` and returns it. A replica being written moves to stamp `recovery_id` at its
    /// current length, so its old writer and anyone holding the old stamp are refused; a
    /// finalized one is left as it is. The stamp must be at least `gs_min` (what the NameNode
    /// knows) and at most `recovery_id`. Repeating the call changes nothing.
    pub fn init_recovery(&self, id: u64, gs_min: u64, recovery_id: u64) -> Result<ReplicaInfo> {
        let r = self.get(id).ok_or(StoreError::NoSuchReplica { id })?;
        if r.gs < gs_min {
            return Err(StoreError::StaleGenStamp { id, on_disk: r.gs, wanted: gs_min });
        }
        if r.gs > recovery_id {
            return Err(StoreError::GenStampNotNewer { id, current: r.gs, proposed: recovery_id });
        }
        if r.state == ReplicaState::Rbw && r.gs < recovery_id {
            // The writer returned is dropped at once: the replica stays rbw, writer-less.
            self.cut_rbw(id, recovery_id, r.length, false)?;
        }
        self.get(id).ok_or(StoreError::NoSuchReplica { id })
    }

    /// Lease recovery, step two (HDFS `updateReplicaUnderRecovery`): cuts replica `id` to
    /// `length` and finalizes it under `recovery_id`. A finalized replica longer than that is
    /// cut too (a truncate's recovery); one shorter is refused. Repeating the call changes
    /// nothing.
    pub fn finish_recovery(&self, id: u64, recovery_id: u64, length: u64) -> Result<ReplicaInfo> {
        let r = self.get(id).ok_or(StoreError::NoSuchReplica { id })?;
        if r.gs > recovery_id {
            return Err(StoreError::GenStampNotNewer { id, current: r.gs, proposed: recovery_id });
        }
        match r.state {
            ReplicaState::Finalized if r.length < length => {
                Err(StoreError::TooShort { id, on_disk: r.length, wanted: length })
            }
            // Finalized under this recovery already, at another length: a cut now would need
            // a newer stamp.
            ReplicaState::Finalized if r.gs == recovery_id && r.length != length => {
                Err(StoreError::WrongState { id, state: r.state, needed: ReplicaState::Rbw })
            }
            ReplicaState::Finalized if r.gs == recovery_id => Ok(r),
            ReplicaState::Finalized if r.length == length => self.append(id, r.gs, recovery_id)?.finalize(),
            ReplicaState::Finalized => {
                // Reopened under the recovery stamp first, so that a crash between the two
                // steps leaves a replica being written that the next attempt cuts.
                drop(self.append(id, r.gs, recovery_id)?);
                self.cut_rbw(id, recovery_id, length, true)?.finalize()
            }
            ReplicaState::Rbw => self.cut_rbw(id, recovery_id, length, true)?.finalize(),
            ReplicaState::Temporary => Err(StoreError::NoSuchReplica { id }),
        }
    }

    /// [`Self::recover_rbw`], and with `same_gs_ok` also a cut that keeps the stamp (a
    /// recovery's second step, after its first moved the replica to the recovery stamp).
    fn cut_rbw(&self, id: u64, gs_new: u64, length: u64, same_gs_ok: bool) -> Result<ReplicaWriter> {
        let entry = self.entry(id)?;
        // Waits for a packet of the old writer that is being written right now.
        let _io = lock(&entry.io);
        let e = self.inner.current(id, entry.incarnation)?;
        if e.state != ReplicaState::Rbw {
            return Err(StoreError::WrongState { id, state: e.state, needed: ReplicaState::Rbw });
        }
        if gs_new < e.gs || (gs_new == e.gs && !same_gs_ok) {
            return Err(StoreError::GenStampNotNewer { id, current: e.gs, proposed: gs_new });
        }
        if length > e.length {
            return Err(StoreError::TooShort { id, on_disk: e.length, wanted: length });
        }
        // Fence the old writer before touching the files.
        let token = self.inner.token();
        if let Some(m) = self.inner.map().get_mut(&id) {
            m.writer = Some(token);
        }
        let d = &self.inner.dirs[e.dir];
        let (data_path, old_meta) = (d.data_path(ReplicaState::Rbw, id), d.meta_path(ReplicaState::Rbw, id, e.gs));
        let (data, meta) = open_rw(d, &data_path, &old_meta)?;
        let ctx = |what: &str| format!("recovering {} ({what})", data_path.display());
        let last = meta::chunks(length);
        let in_chunk = length % meta::CHUNK;
        let mut partial_crc = 0;
        if in_chunk != 0 {
            // The chunk the cut falls in: check it as it is, then checksum what is kept.
            let start = (last - 1) * meta::CHUNK;
            let end = e.length.min(start + meta::CHUNK);
            let (bytes, crcs) = read_span(id, &data, &meta, start, end, d)?;
            if meta::first_mismatch(&bytes, &crcs).is_some() {
                return Err(StoreError::Corrupt { id, offset: start });
            }
            partial_crc = crc32c::crc32c(&bytes[..in_chunk as usize]);
        }
        // Order matters for a crash half-way (see scan.rs): drop the later checksums, then
        // rewrite the cut chunk's, then cut the data. Every step leaves a replica whose
        // checksums cover at least `length` bytes.
        meta.set_len(meta::meta_len(length)).map_err(|err| d.io_err(err, || ctx("truncating meta")))?;
        if in_chunk != 0 {
            meta.write_all_at(&partial_crc.to_be_bytes(), meta::crc_offset(last - 1))
                .map_err(|err| d.io_err(err, || ctx("rewriting the last checksum")))?;
        }
        data.set_len(length).map_err(|err| d.io_err(err, || ctx("truncating data")))?;
        data.sync_data().and_then(|()| meta.sync_data()).map_err(|err| d.io_err(err, || ctx("fsync")))?;
        let new_meta = d.meta_path(ReplicaState::Rbw, id, gs_new);
        rename(d, &old_meta, &new_meta)?;
        fsync_dir(&d.rbw).map_err(|err| d.io_err(err, || ctx("fsync of rbw")))?;
        if let Some(m) = self.inner.map().get_mut(&id) {
            m.gs = gs_new;
            m.length = length;
        }
        Ok(ReplicaWriter::new(
            self.inner.clone(),
            writer::Open {
                id,
                gs: gs_new,
                dir: e.dir,
                state: ReplicaState::Rbw,
                incarnation: e.incarnation,
                token,
                io: entry.io.clone(),
                data,
                meta,
                length,
                partial_crc,
            },
        ))
    }

    /// Opens replica `id` for reading; its generation stamp must be at least `gs_min`.
    /// A replica being written is readable up to the bytes written so far.
    pub fn open_reader(&self, id: u64, gs_min: u64) -> Result<ReplicaReader> {
        let entry = self.entry(id)?;
        let _io = lock(&entry.io);
        let e = self.inner.current(id, entry.incarnation)?;
        if e.state == ReplicaState::Temporary {
            return Err(StoreError::NoSuchReplica { id });
        }
        if e.gs < gs_min {
            return Err(StoreError::StaleGenStamp { id, on_disk: e.gs, wanted: gs_min });
        }
        let d = &self.inner.dirs[e.dir];
        let (data_path, meta_path) = (d.data_path(e.state, id), d.meta_path(e.state, id, e.gs));
        let open = |p: &Path| File::open(p).map_err(|err| d.io_err(err, || format!("opening {}", p.display())));
        let (data, meta) = (open(&data_path)?, open(&meta_path)?);
        let mut header = [0u8; meta::HEADER_LEN as usize];
        if read_full_at(&meta, &mut header, 0)
            .map_err(|err| d.io_err(err, || format!("reading {}", meta_path.display())))?
            != header.len()
            || !meta::header_ok(&header)
        {
            return Err(StoreError::Corrupt { id, offset: 0 });
        }
        let (inner, io) = (self.inner.clone(), entry.io.clone());
        Ok(ReplicaReader { inner, id, incarnation: e.incarnation, io, dir: e.dir, data, meta })
    }

    /// Deletes replica `id` in any state. A writer of it fails from its next call on.
    pub fn delete(&self, id: u64) -> Result<()> {
        self.delete_if_not_newer(id, u64::MAX).map(|_| ())
    }

    /// Deletes replica `id` only if its generation stamp is at most `gs_max`, checked and
    /// deleted under the replica's lock (an invalidation names the stamp it is about: a replica
    /// an append or recovery has moved past it since must stay). Ok(false): it is newer, kept.
    pub fn delete_if_not_newer(&self, id: u64, gs_max: u64) -> Result<bool> {
        let entry = self.entry(id)?;
        let _io = lock(&entry.io);
        let e = {
            let mut map = self.inner.map();
            match map.get(&id) {
                Some(e) if e.incarnation == entry.incarnation && e.gs > gs_max => return Ok(false),
                Some(e) if e.incarnation == entry.incarnation => {
                    map.remove(&id).ok_or(StoreError::NoSuchReplica { id })?
                }
                _ => return Err(StoreError::NoSuchReplica { id }),
            }
        };
        // Change feed: the replica is gone from the map, so it is reported deleted.
        self.inner.changes.record(id, e.gs);
        let d = &self.inner.dirs[e.dir];
        for p in [d.meta_path(e.state, id, e.gs), d.data_path(e.state, id)] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(d.io_err(err, || format!("deleting {}", p.display()))),
            }
        }
        Ok(true)
    }

    /// Reads and checks every chunk of replica `id` against its checksums, and that the data
    /// and meta files are the sizes its length implies: the block scanner's check.
    pub fn verify(&self, id: u64) -> Result<()> {
        let reader = self.open_reader(id, 0)?;
        let length = reader.length()?;
        for piece in reader.chunks(0, length) {
            piece?;
        }
        reader.check_sizes()
    }

    /// The replica of `id`, if there is one.
    pub fn get(&self, id: u64) -> Option<ReplicaInfo> {
        self.inner.map().get(&id).map(|e| e.info(id))
    }

    /// The block report: every finalized and rbw replica, by id.
    pub fn report(&self) -> Vec<ReplicaInfo> {
        let mut r: Vec<ReplicaInfo> = self
            .inner
            .map()
            .iter()
            .filter(|(_, e)| e.state != ReplicaState::Temporary)
            .map(|(id, e)| e.info(*id))
            .collect();
        r.sort_by_key(|i| i.id);
        r
    }

    /// Capacity and free space of the data dirs' file systems (each counted once per dir),
    /// and the bytes this store's replicas use.
    pub fn space(&self) -> Result<Space> {
        let mut s = Space::default();
        for d in &self.inner.dirs {
            let (capacity, free) =
                statvfs(&d.root).map_err(|e| d.io_err(e, || format!("statvfs {}", d.root.display())))?;
            s.capacity_bytes += capacity;
            s.free_bytes += free;
        }
        s.used_bytes = self.inner.map().values().map(|e| e.length + meta::meta_len(e.length)).sum();
        Ok(s)
    }

    fn entry(&self, id: u64) -> Result<Entry> {
        self.inner.map().get(&id).cloned().ok_or(StoreError::NoSuchReplica { id })
    }

    /// The data dir with the most free space (the first on a tie, or if statvfs fails).
    fn emptiest_dir(&self) -> usize {
        let free = |d: &DataDir| statvfs(&d.root).map(|(_, f)| f).unwrap_or(0);
        let mut best = (0, 0);
        for (i, d) in self.inner.dirs.iter().enumerate() {
            let f = free(d);
            if i == 0 || f > best.1 {
                best = (i, f);
            }
        }
        best.0
    }
}

/// A replica asked for by generation stamp `wanted` and found with `on_disk`.
fn check_gs(id: u64, on_disk: u64, wanted: u64) -> Result<()> {
    if on_disk < wanted {
        Err(StoreError::StaleGenStamp { id, on_disk, wanted })
    } else if on_disk > wanted {
        Err(StoreError::GenStampMismatch { id, on_disk, wanted })
    } else {
        Ok(())
    }
}

fn open_dir(root: &Path) -> Result<DataDir> {
    let io = |e: io::Error, what: &str| StoreError::Io { context: format!("{what} {}", root.display()), source: e };
    let dir = DataDir {
        root: root.to_path_buf(),
        rbw: root.join("current").join("rbw"),
        finalized: root.join("current").join("finalized"),
        tmp: root.join("tmp"),
        _lock: {
            fs::create_dir_all(root).map_err(|e| io(e, "creating"))?;
            lock_dir(root)?
        },
    };
    for d in [&dir.rbw, &dir.finalized, &dir.tmp] {
        fs::create_dir_all(d).map_err(|e| io(e, "creating"))?;
    }
    Ok(dir)
}

/// Takes the data dir's `in_use.lock` (HDFS's name for it): two DataNodes never share a dir.
fn lock_dir(root: &Path) -> Result<File> {
    let path = root.join("in_use.lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Io { context: format!("creating {}", path.display()), source: e })?;
    // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => StoreError::DirInUse { dir: root.to_path_buf() },
            _ => StoreError::Io { context: format!("locking {}", path.display()), source: e },
        });
    }
    Ok(f)
}

/// (capacity, available) bytes of the file system holding `path`.
fn statvfs(path: &Path) -> io::Result<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-pointer, both live for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
}

pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn rename(d: &DataDir, from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| d.io_err(e, || format!("renaming {} to {}", from.display(), to.display())))
}

pub(super) fn open_rw(d: &DataDir, data: &Path, meta: &Path) -> Result<(File, File)> {
    let open = |p: &Path| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .map_err(|e| d.io_err(e, || format!("opening {}", p.display())))
    };
    Ok((open(data)?, open(meta)?))
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
pub(crate) fn read_full_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The bytes `[start, end)` (`start` on a chunk boundary) and the checksums of the chunks they
/// span, as far as the files hold them: either may come back short, and the caller's
/// comparison then finds the first chunk that is missing.
pub(crate) fn read_span(
    id: u64,
    data: &File,
    meta: &File,
    start: u64,
    end: u64,
    d: &DataDir,
) -> Result<(Vec<u8>, Vec<u32>)> {
    debug_assert_eq!(start % meta::CHUNK, 0);
    let len = usize::try_from(end - start).map_err(|_| StoreError::TooLarge {
        id,
        what: "read",
        len: end - start,
        limit: MAX_READ_LEN,
    })?;
    let mut bytes = vec![0u8; len];
    let n = read_full_at(data, &mut bytes, start).map_err(|e| d.io_err(e, || format!("reading block {id}")))?;
    bytes.truncate(n);
    let first = start / meta::CHUNK;
    let count = meta::chunks(end) - first;
    let mut raw = vec![0u8; (count * meta::CRC_LEN) as usize];
    let m = read_full_at(meta, &mut raw, meta::crc_offset(first))
        .map_err(|e| d.io_err(e, || format!("reading meta of block {id}")))?;
    raw.truncate(m);
    Ok((bytes, meta::decode_crcs(&raw)))
}

/// The stored checksum of the last, partial chunk of a replica of `length` bytes (0 if the
/// replica ends on a chunk boundary), after checking it against the data.
fn last_partial_crc(id: u64, length: u64, data: &File, meta: &File, d: &DataDir) -> Result<u32> {
    if length.is_multiple_of(meta::CHUNK) {
        return Ok(0);
    }
    let start = length - length % meta::CHUNK;
    let (bytes, crcs) = read_span(id, data, meta, start, length, d)?;
    if bytes.len() as u64 != length - start || meta::first_mismatch(&bytes, &crcs).is_some() {
        return Err(StoreError::Corrupt { id, offset: start });
    }
    Ok(crcs[0])
}
