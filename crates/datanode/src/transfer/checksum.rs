//! `BlockChecksum`: the MD5 of a finalized replica's stored CRCs, HDFS's `OP_BLOCK_CHECKSUM`
//! with MD5CRC (`BlockChecksumHelper.ReplicatedBlockChecksumComputer`), the per-block part of
//! a file's `MD5-of-<n>MD5-of-512CRC32C` checksum (the client combines the blocks').
//!
//! ```text
//! -> op            BlockChecksum { block }     block.len = how many of the block's bytes
//! <- op response   status | message | first_chunk_offset = the replica's length
//! <- on Success    BlockChecksumResponse { bytes_per_crc = 512,
//!                                          crc_per_block = CRCs in the meta file, md5 }
//! ```
//!
//! Which bytes the MD5 covers, as in HDFS: for the whole replica (`block.len` = its length),
//! the meta file's CRCs exactly as stored (4 bytes big-endian each, the short last chunk's
//! included), header excluded. For a prefix shorter than the replica, the stored CRCs of its
//! `len / 512` whole chunks, then the CRC32C of the `len % 512` bytes after them computed from
//! the data (the stored CRC of that chunk covers more). The data is read for nothing else, so
//! a byte flipped in a data file leaves the checksum unchanged (in HDFS too): readers and the
//! block scanner find those.
//!
//! Refused: no replica (`ErrorInvalid`), a replica not finalized (`ErrorInvalid`: HDFS digests
//! what a replica being written has, herd does not answer for bytes that may still change), a
//! replica older than `block.gs` (`ErrorStale`), one shorter than `block.len` (`ErrorInvalid`;
//! HDFS would digest what is there). The client then asks the next replica.

use std::io::Write as _;
use std::net::TcpStream;

use dfs_proto::transfer::{BlockChecksumResponse, Status};
use dfs_proto::ExtendedBlock;
use md5::{Digest, Md5};

use super::{respond, status_of, Shared};
use crate::{meta, ReplicaState, Store, StoreError};

/// Stored CRCs read at a time (256 KiB of meta file): a 1 GiB block has 2 Mi of them.
const CRCS_PER_READ: u64 = 64 << 10;

/// Serves one `BlockChecksum` op. `Err` is the log line's reason.
pub(super) fn serve(shared: &Shared, s: &TcpStream, block: ExtendedBlock) -> Result<(), String> {
    let id = block.id;
    let refuse = |status: Status, why: String| {
        let _ = respond(&mut &*s, status, &why, 0);
        Err(why)
    };
    match shared.store.get(id) {
        Some(r) if r.state == ReplicaState::Finalized => {}
        Some(r) => {
            return refuse(Status::ErrorInvalid, format!("block {id}: checksum of a replica that is {:?}", r.state))
        }
        None => return refuse(Status::ErrorInvalid, format!("no replica of block {id}")),
    }
    let (length, answer) = match block_checksum(&shared.store, block) {
        Ok(x) => x,
        Err(e) => return refuse(status_of(&e), format!("checksum of block {id}: {e}")),
    };
    respond(&mut &*s, Status::Success, "", length).map_err(|e| format!("block {id}: op response: {e}"))?;
    let frame = answer.to_frame().map_err(|e| format!("block {id}: checksum frame: {e}"))?;
    (&*s).write_all(&frame).and_then(|()| (&*s).flush()).map_err(|e| format!("block {id}: sending checksum: {e}"))
}

/// The checksum of the first `block.len` bytes of replica `block.id` (at stamp `block.gs` or
/// newer), and the replica's length.
fn block_checksum(store: &Store, block: ExtendedBlock) -> Result<(u64, BlockChecksumResponse), StoreError> {
    let id = block.id;
    let reader = store.open_reader(id, block.gs)?;
    let length = reader.length()?;
    if block.len > length {
        return Err(StoreError::TooShort { id, on_disk: length, wanted: block.len });
    }
    let crc_per_block = meta::chunks(length);
    let whole = block.len == length;
    let digested = if whole { crc_per_block } else { block.len / meta::CHUNK };
    let mut md5 = Md5::new();
    let mut next = 0;
    while next < digested {
        let n = (digested - next).min(CRCS_PER_READ);
        md5.update(reader.stored_crc_bytes(next, n)?);
        next += n;
    }
    let tail = block.len % meta::CHUNK;
    if !whole && tail > 0 {
        let bytes = reader.read_bytes(block.len - tail, tail)?;
        md5.update(crc32c::crc32c(&bytes).to_be_bytes());
    }
    let answer = BlockChecksumResponse { bytes_per_crc: meta::CHUNK as u32, crc_per_block, md5: md5.finalize().into() };
    Ok((length, answer))
}
