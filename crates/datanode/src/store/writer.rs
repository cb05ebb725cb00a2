//! `ReplicaWriter`: appends packets to an rbw (or temporary) replica and finalizes it.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use super::{fsync_dir, lock, Inner, ReplicaInfo, ReplicaState, MAX_PACKET_LEN, MAX_REPLICA_LEN};
use crate::error::{Result, StoreError};
use crate::meta;

/// What a writer starts from (built by `Store`).
pub(crate) struct Open {
    pub(crate) id: u64,
    pub(crate) gs: u64,
    pub(crate) dir: usize,
    pub(crate) state: ReplicaState,
    pub(crate) incarnation: u64,
    pub(crate) token: u64,
    pub(crate) io: Arc<Mutex<()>>,
    pub(crate) data: File,
    pub(crate) meta: File,
    pub(crate) length: u64,
    /// CRC32C of the bytes of the last chunk if it is partial, else 0.
    pub(crate) partial_crc: u32,
}

/// The one writer of a replica. Packets are appended in order; each computes the checksums of
/// the chunks it touches (rewriting the last one when it extends a partial chunk).
///
/// Dropped without `finalize`, an rbw replica stays rbw (a client may recover the pipeline) and
/// a temporary replica is deleted (a failed replication is started again from its source).
pub struct ReplicaWriter {
    inner: Arc<Inner>,
    o: Open,
    /// Set after an fsync failed: the kernel may have dropped the dirty pages, so nothing this
    /// writer wrote since the last good fsync can be trusted; only a recovery continues.
    poisoned: bool,
    done: bool,
    /// The current write's CRCs were verified by the caller ([`Self::write_packet_verified`]).
    trusted: bool,
}

impl ReplicaWriter {
    pub(crate) fn new(inner: Arc<Inner>, o: Open) -> ReplicaWriter {
        ReplicaWriter { inner, o, poisoned: false, done: false, trusted: false }
    }

    pub fn id(&self) -> u64 {
        self.o.id
    }

    pub fn gs(&self) -> u64 {
        self.o.gs
    }

    /// Bytes in the replica so far (written, not necessarily synced).
    pub fn length(&self) -> u64 {
        self.o.length
    }

    /// Appends `data` at `offset`, which must be the replica's current length.
    pub fn write_packet(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.write(offset, data, None)
    }

    /// Appends `data` at `offset` after checking it against the sender's checksums: one
    /// CRC32C per piece of `data` as cut at the replica's 512-byte chunk boundaries (so the
    /// first piece completes a partial last chunk, if there is one, and stands alone in the
    /// checksum sent). On a mismatch nothing is written and the error is `Corrupt` at the
    /// piece's offset in the replica: a DataNode in a pipeline checks what it receives.
    pub fn write_packet_checked(&mut self, offset: u64, data: &[u8], crcs: &[u32]) -> Result<()> {
        self.write(offset, data, Some(crcs))
    }

    /// [`Self::write_packet_checked`] for a packet whose caller has just verified `crcs`
    /// against `data` (`Packet::verify`): the CRCs are stored as sent, and only the chunk a
    /// packet completes from the middle is checksummed again (its stored CRC covers the whole
    /// chunk). Saves the second CRC pass per node of a pipeline.
    pub fn write_packet_verified(&mut self, offset: u64, data: &[u8], crcs: &[u32]) -> Result<()> {
        self.trusted = true;
        let r = self.write(offset, data, Some(crcs));
        self.trusted = false;
        r
    }

    fn write(&mut self, offset: u64, data: &[u8], sent: Option<&[u32]>) -> Result<()> {
        let io = self.o.io.clone();
        let _io = lock(&io);
        self.check()?;
        let id = self.o.id;
        let length = self.o.length;
        if offset != length {
            return Err(StoreError::OutOfOrder { id, offset, expected: length });
        }
        let len = data.len() as u64;
        if len > MAX_PACKET_LEN {
            return Err(StoreError::TooLarge { id, what: "packet", len, limit: MAX_PACKET_LEN });
        }
        if length + len > MAX_REPLICA_LEN {
            return Err(StoreError::TooLarge { id, what: "replica", len: length + len, limit: MAX_REPLICA_LEN });
        }
        if data.is_empty() {
            return Ok(());
        }

        // The checksums of every chunk the packet touches, from the chunk `length` is in.
        let first_chunk = length / meta::CHUNK;
        let mut fill = (length % meta::CHUNK) as usize;
        let pieces = meta::chunks(fill as u64 + len) as usize;
        if let Some(sent) = sent {
            if sent.len() != pieces {
                return Err(StoreError::BadPacket {
                    id,
                    reason: format!("{} checksums for {pieces} chunk pieces", sent.len()),
                });
            }
        }
        let mut running = self.o.partial_crc;
        let mut crcs = Vec::with_capacity(pieces);
        let mut pos = 0;
        while pos < data.len() {
            let take = (meta::CHUNK as usize - fill).min(data.len() - pos);
            let piece = &data[pos..pos + take];
            let trusted = sent.and_then(|s| s.get(crcs.len()).copied()).filter(|_| self.trusted);
            let piece_crc = match trusted {
                Some(c) => c,
                None => crc32c::crc32c(piece),
            };
            if let Some(sent) = sent {
                if sent.get(crcs.len()) != Some(&piece_crc) {
                    return Err(StoreError::Corrupt { id, offset: length + pos as u64 });
                }
            }
            let chunk_crc = if fill == 0 { piece_crc } else { crc32c::crc32c_append(running, piece) };
            crcs.push(chunk_crc);
            fill += take;
            running = chunk_crc;
            if fill == meta::CHUNK as usize {
                fill = 0;
                running = 0;
            }
            pos += take;
        }
        debug_assert_eq!(crcs.len(), pieces);

        // Data first, then checksums: a crash between the two leaves checksums that cover the
        // old length, which is what recovery at open finds (scan.rs).
        if let Err(e) = self.o.data.write_all_at(data, length) {
            self.roll_back();
            return Err(self.err(e, "writing data"));
        }
        if let Err(e) = self.o.meta.write_all_at(&meta::encode_crcs(&crcs), meta::crc_offset(first_chunk)) {
            self.roll_back();
            return Err(self.err(e, "writing checksums"));
        }
        self.o.length = length + len;
        self.o.partial_crc = running;
        if let Some(e) = self.inner.map().get_mut(&id) {
            e.length = self.o.length;
        }
        Ok(())
    }

    /// Puts the files back to `self.o.length` after a failed packet: cuts the data, restores
    /// the checksum of a partial last chunk that the packet may have overwritten, and cuts the
    /// meta file. None of it needs free space. A failure here is logged: the next packet
    /// overwrites the same offsets, and `finalize` and recovery at open cut the files anyway.
    fn roll_back(&mut self) {
        let length = self.o.length;
        let mut r = self.o.data.set_len(length);
        if !length.is_multiple_of(meta::CHUNK) {
            let slot = meta::crc_offset(length / meta::CHUNK);
            r = r.and_then(|()| self.o.meta.write_all_at(&self.o.partial_crc.to_be_bytes(), slot));
        }
        r = r.and_then(|()| self.o.meta.set_len(meta::meta_len(length)));
        if let Err(e) = r {
            tracing::warn!("block {}: rolling back a failed packet: {e}", self.o.id);
        }
    }

    /// Makes the bytes written so far durable when `sync` (fsync of data, then meta).
    /// Without `sync` there is nothing to do: packets are written straight to the files, so
    /// readers already see them.
    pub fn flush(&mut self, sync: bool) -> Result<()> {
        let io = self.o.io.clone();
        let _io = lock(&io);
        self.check()?;
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        let r = self.o.data.sync_data().map_err(|e| self.err(e, "fsync of data"));
        let r = r.and_then(|()| self.o.meta.sync_data().map_err(|e| self.err(e, "fsync of meta")));
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// Syncs the replica and moves it to `current/finalized/` (meta file first, then data,
    /// then fsync of both directories). Returns the finalized replica.
    pub fn finalize(mut self) -> Result<ReplicaInfo> {
        let io = self.o.io.clone();
        let _io = lock(&io);
        self.check()?;
        let (id, gs, length) = (self.o.id, self.o.gs, self.o.length);
        // A rolled-back packet whose roll-back failed may have left bytes past the end.
        let sizes = |f: &File| f.metadata().map(|m| m.len());
        if sizes(&self.o.data).map_err(|e| self.err(e, "stat of data"))? != length {
            self.o.data.set_len(length).map_err(|e| self.err(e, "cutting data"))?;
        }
        if sizes(&self.o.meta).map_err(|e| self.err(e, "stat of meta"))? != meta::meta_len(length) {
            self.o.meta.set_len(meta::meta_len(length)).map_err(|e| self.err(e, "cutting meta"))?;
        }
        self.sync()?;
        let d = &self.inner.dirs[self.o.dir];
        let from = self.o.state;
        let to = ReplicaState::Finalized;
        let (meta_from, meta_to) = (d.meta_path(from, id, gs), d.meta_path(to, id, gs));
        let (data_from, data_to) = (d.data_path(from, id), d.data_path(to, id));
        fs::rename(&meta_from, &meta_to).map_err(|e| self.err(e, "moving meta to finalized"))?;
        if let Err(e) = fs::rename(&data_from, &data_to) {
            let _ = fs::rename(&meta_to, &meta_from);
            return Err(self.err(e, "moving data to finalized"));
        }
        fsync_dir(&d.finalized)
            .and_then(|()| fsync_dir(d.state_dir(from)))
            .map_err(|e| self.err(e, "fsync of dirs"))?;
        if let Some(e) = self.inner.map().get_mut(&id) {
            e.state = to;
            e.length = length;
            e.writer = None;
        }
        // Change feed: a finalized replica is reported as received.
        self.inner.changes.record(id, gs);
        self.done = true;
        Ok(ReplicaInfo { id, gs, length, state: to })
    }

    /// This writer may still change the replica: it exists as the same incarnation and no
    /// recovery took it over.
    fn check(&self) -> Result<()> {
        let id = self.o.id;
        if self.done {
            return Err(StoreError::WriterFenced { id });
        }
        let e = self.inner.current(id, self.o.incarnation)?;
        if e.writer != Some(self.o.token) {
            return Err(StoreError::WriterFenced { id });
        }
        if self.poisoned {
            return Err(StoreError::Io {
                context: format!("block {id}: an earlier fsync failed"),
                source: std::io::Error::other("writer poisoned"),
            });
        }
        Ok(())
    }

    fn err(&self, e: std::io::Error, what: &str) -> StoreError {
        let id = self.o.id;
        self.inner.dirs[self.o.dir].io_err(e, || format!("block {id}: {what}"))
    }
}

impl Drop for ReplicaWriter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let io = self.o.io.clone();
        let _io = lock(&io);
        let id = self.o.id;
        let mut map = self.inner.map();
        let Some(e) = map.get_mut(&id) else { return };
        if e.incarnation != self.o.incarnation || e.writer != Some(self.o.token) {
            return;
        }
        match e.state {
            ReplicaState::Temporary => {
                map.remove(&id);
                drop(map);
                let d = &self.inner.dirs[self.o.dir];
                let _ = fs::remove_file(d.meta_path(ReplicaState::Temporary, id, self.o.gs));
                let _ = fs::remove_file(d.data_path(ReplicaState::Temporary, id));
            }
            _ => e.writer = None,
        }
    }
}
