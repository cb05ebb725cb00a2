//! `ReadBlock` and `CopyBlock`: stream a replica's checked chunks with their stored CRCs.
//!
//! ```text
//! -> op      ReadBlock { block, offset, len } | CopyBlock { block }
//! <- op response   status | message | first_chunk_offset = offset rounded down to 512
//! <- packets       seqno 0, 1, ... at chunk-aligned offsets from first_chunk_offset, each at
//!                  most 256 KiB, CRCs = the meta file's (one per 512-byte chunk)
//! <- last packet   empty, `last` set, at the offset where the data stopped
//! <- trailer       only if that offset is short of the range's chunk-aligned end: an op
//!                  response frame whose status says why (ErrorChecksum for a chunk that
//!                  fails its checksum, naming its offset; Error for an I/O error)
//! ```
//!
//! With `verify` (and always for `CopyBlock`) every chunk is checked against its CRC by the
//! store before it is sent; without it the chunks go out with their stored CRCs unchecked,
//! as HDFS's DataNode sends them, and the reader checks them on arrival (the file system
//! client always does, and reports a corrupt replica). Either way a byte flipped on disk or
//! on the wire is never taken as data. `CopyBlock` is a read of a whole
//! finalized replica whose generation stamp is exactly `block.gs`.

use std::io::Write as _;
use std::net::TcpStream;

use dfs_proto::transfer::{Packet, PacketHeader, Status};
use dfs_proto::ExtendedBlock;

use super::{respond, status_of, Shared};
use crate::ReplicaState;

/// A read at least this long is announced to the kernel as sequential (more read-ahead).
const SEQUENTIAL_READ: u64 = 1 << 20;

/// Serves one read (`whole`: a `CopyBlock` of the finalized replica).
pub(super) fn serve(
    shared: &Shared,
    s: &TcpStream,
    block: ExtendedBlock,
    offset: u64,
    len: u64,
    whole: bool,
    verify: bool,
) -> Result<(), String> {
    let id = block.id;
    let refuse = |status: Status, why: String| {
        let _ = respond(&mut &*s, status, &why, 0);
        Err(why)
    };
    if whole {
        match shared.store.get(id) {
            Some(r) if r.state == ReplicaState::Finalized && r.gs == block.gs => {}
            Some(r) => {
                let why = format!("block {id}: copy of gs {} asked, replica is {:?} at gs {}", block.gs, r.state, r.gs);
                return refuse(Status::ErrorInvalid, why);
            }
            None => return refuse(Status::ErrorInvalid, format!("no replica of block {id}")),
        }
    }
    let reader = match shared.store.open_reader(id, block.gs) {
        Ok(r) => r,
        Err(e) => return refuse(status_of(&e), e.to_string()),
    };
    let length = match reader.length() {
        Ok(l) => l,
        Err(e) => return refuse(status_of(&e), e.to_string()),
    };
    let (offset, len) = if whole { (0, length) } else { (offset, len) };
    if len >= SEQUENTIAL_READ {
        reader.advise_sequential();
    }
    let end = match offset.checked_add(len) {
        Some(end) if end <= length => end,
        _ => {
            return refuse(Status::ErrorInvalid, format!("block {id}: range {offset}+{len} beyond its length {length}"))
        }
    };
    let first = offset - offset % 512;
    // The chunk-aligned end of the range (the replica's end if that is sooner).
    let aligned_end = if len == 0 { first } else { end.div_ceil(512).saturating_mul(512).min(length) };
    respond(&mut &*s, Status::Success, "", first).map_err(|e| format!("block {id}: op response: {e}"))?;

    let mut seqno = 0;
    let mut at = first;
    let mut failure = None;
    let stream = if verify || whole { reader.chunks(offset, len) } else { reader.chunks_unverified(offset, len) };
    for piece in stream {
        let c = match piece {
            Ok(c) => c,
            Err(e) => {
                failure = Some((status_of(&e), e.to_string()));
                break;
            }
        };
        if c.data.is_empty() {
            continue;
        }
        debug_assert_eq!(c.offset, at, "chunk stream is contiguous");
        let header =
            PacketHeader { seqno, offset_in_block: c.offset, last: false, sync: false, data_len: c.data.len() as u32 };
        at = c.end();
        let p = Packet { header, crcs: c.crcs, data: c.data };
        p.write_to(&mut &*s).map_err(|e| format!("block {id}: sending packet {seqno}: {e}"))?;
        seqno += 1;
    }
    if failure.is_none() && at < aligned_end {
        failure = Some((Status::Error, format!("block {id}: replica ended at {at}, before {aligned_end}")));
    }
    let last = Packet::build(seqno, at, Vec::new(), true, false);
    last.write_to(&mut &*s).map_err(|e| format!("block {id}: sending the last packet: {e}"))?;
    if let Some((status, why)) = failure {
        let _ = respond(&mut &*s, status, &why, first);
        return Err(why);
    }
    (&*s).flush().map_err(|e| format!("block {id}: flush: {e}"))?;
    Ok(())
}
