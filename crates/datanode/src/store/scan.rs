//! Loading the replicas at open: finalized ones as they are, rbw ones recovered.
//!
//! A rbw replica may end in a torn write: data written past what its checksums cover, or
//! checksums written past the data. It is recovered to the longest length its checksums
//! cover, from the end backwards: the last chunk that has both data and a checksum is kept
//! if its checksum matches it, or a prefix of it (a packet extends a partial chunk by writing
//! the data before rewriting the checksum, so the old checksum covers the old, shorter
//! chunk); otherwise it is dropped and the chunk before is tried. Data and meta file are then
//! cut to that length.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{fsync_dir, open_rw, read_full_at, DataDir, Entry, ReplicaState, MAX_REPLICA_LEN};
use crate::error::Result;
use crate::meta::{self, FileName};

/// Where the files of one block id are found in one data dir.
#[derive(Default)]
struct Found {
    data: Vec<ReplicaState>,
    metas: Vec<(u64, ReplicaState)>,
}

pub(super) fn scan(dirs: &[DataDir]) -> Result<HashMap<u64, Entry>> {
    let mut map: HashMap<u64, Entry> = HashMap::new();
    let mut incarnation = 1;
    for (i, d) in dirs.iter().enumerate() {
        clear_tmp(d)?;
        let mut found: HashMap<u64, Found> = HashMap::new();
        for state in [ReplicaState::Finalized, ReplicaState::Rbw] {
            let sub = d.state_dir(state);
            let entries = fs::read_dir(sub).map_err(|e| d.io_err(e, || format!("listing {}", sub.display())))?;
            for entry in entries {
                let entry = entry.map_err(|e| d.io_err(e, || format!("listing {}", sub.display())))?;
                let name = entry.file_name();
                match name.to_str().and_then(meta::parse_file_name) {
                    Some(FileName::Data { id }) => found.entry(id).or_default().data.push(state),
                    Some(FileName::Meta { id, gs }) => found.entry(id).or_default().metas.push((gs, state)),
                    None => tracing::warn!("{}: ignoring {:?}", sub.display(), name),
                }
            }
        }
        let mut ids: Vec<u64> = found.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(f) = found.remove(&id) else { continue };
            let Some((gs, state, length)) = load(d, id, f)? else { continue };
            if let Some(other) = map.get(&id) {
                // The same block in two data dirs: keep the newer one (a finalized one on a
                // tie), leave the other's files for the operator.
                let newer =
                    gs > other.gs || (gs == other.gs && state == ReplicaState::Finalized && other.state != state);
                tracing::warn!(
                    "block {id} is in {} and {}; using the {}",
                    dirs[other.dir].root.display(),
                    d.root.display(),
                    if newer { "second" } else { "first" }
                );
                if !newer {
                    continue;
                }
            }
            map.insert(
                id,
                Entry { gs, length, state, dir: i, incarnation, writer: None, io: Arc::new(Mutex::new(())) },
            );
            incarnation += 1;
        }
    }
    Ok(map)
}

/// Replicas that were being received by replication: their sources still have them.
fn clear_tmp(d: &DataDir) -> Result<()> {
    let entries = fs::read_dir(&d.tmp).map_err(|e| d.io_err(e, || format!("listing {}", d.tmp.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| d.io_err(e, || format!("listing {}", d.tmp.display())))?;
        let path = entry.path();
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            fs::remove_file(&path).map_err(|e| d.io_err(e, || format!("removing {}", path.display())))?;
        }
    }
    Ok(())
}

/// One block's files in one data dir -> (gs, state, length), or None if there is no usable
/// replica (logged).
fn load(d: &DataDir, id: u64, mut f: Found) -> Result<Option<(u64, ReplicaState, u64)>> {
    // The newest meta file decides; an older one cannot arise from this store's renames.
    f.metas.sort_unstable_by_key(|(gs, _)| *gs);
    let Some(&(gs, state)) = f.metas.last() else {
        tracing::warn!("{}: block {id} has no meta file; ignored", d.root.display());
        return Ok(None);
    };
    for (old, s) in &f.metas[..f.metas.len() - 1] {
        tracing::warn!("{}: block {id} has a stale meta file (gs {old}, {s:?}); ignored", d.root.display());
    }
    if !f.data.contains(&state) {
        let Some(&other) = f.data.first() else {
            tracing::warn!("{}: block {id} has no data file; ignored", d.root.display());
            return Ok(None);
        };
        // A move (finalize or append) stopped between its two renames: the meta file moved
        // first, so the data file follows it.
        let (from, to) = (d.data_path(other, id), d.data_path(state, id));
        tracing::info!("{}: completing the move of block {id} from {other:?} to {state:?}", d.root.display());
        fs::rename(&from, &to).map_err(|e| d.io_err(e, || format!("renaming {}", from.display())))?;
        fsync_dir(d.state_dir(state))
            .and_then(|()| fsync_dir(d.state_dir(other)))
            .map_err(|e| d.io_err(e, || "fsync of dirs".into()))?;
    }
    let data_path = d.data_path(state, id);
    let meta_path = d.meta_path(state, id, gs);
    let data_len =
        fs::metadata(&data_path).map_err(|e| d.io_err(e, || format!("stat of {}", data_path.display())))?.len();
    if data_len > MAX_REPLICA_LEN {
        tracing::warn!("{}: block {id} is {data_len} bytes, over the limit; ignored", d.root.display());
        return Ok(None);
    }
    match state {
        // A finalized replica is taken at its data file's length; a meta file of the wrong
        // size or a bad checksum is found by reads and by the scanner (verify), not here.
        ReplicaState::Finalized => Ok(Some((gs, state, data_len))),
        _ => {
            let length = recover_rbw(d, id, &data_path, &meta_path)?;
            Ok(length.map(|l| (gs, ReplicaState::Rbw, l)))
        }
    }
}

/// Cuts a rbw replica to the length its checksums cover (see the module comment).
fn recover_rbw(d: &DataDir, id: u64, data_path: &Path, meta_path: &Path) -> Result<Option<u64>> {
    let (data, meta) = open_rw(d, data_path, meta_path)?;
    let ctx = |what: &str| format!("recovering {} ({what})", data_path.display());
    let io = |what: &'static str| move |e: io::Error| d.io_err(e, || ctx(what));
    let data_len = data.metadata().map_err(io("stat"))?.len();
    let meta_len = meta.metadata().map_err(io("stat"))?.len();
    let length = if meta_len < meta::HEADER_LEN {
        // Torn at creation, before the header reached the disk: an empty replica.
        meta.write_all_at(&meta::header(), 0).map_err(io("writing header"))?;
        0
    } else {
        let mut header = [0u8; meta::HEADER_LEN as usize];
        read_full_at(&meta, &mut header, 0).map_err(io("reading header"))?;
        if !meta::header_ok(&header) {
            tracing::warn!("{}: block {id}: meta header {header:02x?} is not this store's; ignored", d.root.display());
            return Ok(None);
        }
        covered_length(&data, &meta, data_len, (meta_len - meta::HEADER_LEN) / meta::CRC_LEN).map_err(io("reading"))?
    };
    if length != data_len || meta::meta_len(length) != meta_len {
        tracing::info!("{}: block {id}: rbw replica of {data_len} bytes recovered to {length}", d.root.display());
        meta.set_len(meta::meta_len(length)).map_err(io("cutting meta"))?;
        data.set_len(length).map_err(io("cutting data"))?;
        data.sync_data().and_then(|()| meta.sync_data()).map_err(io("fsync"))?;
    }
    Ok(Some(length))
}

/// The longest length whose last chunk matches its checksum, trying from the end.
fn covered_length(data: &File, meta: &File, data_len: u64, crcs: u64) -> io::Result<u64> {
    let mut chunk = meta::chunks(data_len).min(crcs);
    let mut buf = vec![0u8; meta::CHUNK as usize];
    while chunk > 0 {
        chunk -= 1;
        let start = chunk * meta::CHUNK;
        let len = (data_len - start).min(meta::CHUNK) as usize;
        let n = read_full_at(data, &mut buf[..len], start)?;
        let mut raw = [0u8; meta::CRC_LEN as usize];
        if read_full_at(meta, &mut raw, meta::crc_offset(chunk))? != raw.len() {
            continue;
        }
        if let Some(p) = meta::longest_matching_prefix(&buf[..n], u32::from_be_bytes(raw)) {
            return Ok(start + p as u64);
        }
    }
    Ok(0)
}
