//! Hand-written little-endian binary encoding of the openraft types we persist or send.
//!
//! openraft is compiled WITHOUT its `serde` feature; every type we need has public fields or
//! public constructors, so no serde is required:
//!
//! | type                         | encoding                                                      |
//! |------------------------------|---------------------------------------------------------------|
//! | `LogId` (std leader id)      | `term u64 | index u64`                                        |
//! | `Option<LogId>`              | `0u8` or `1u8 LogId`                                          |
//! | `Vote` (std leader id)       | `term u64 | voted_for u64 | committed u8`                     |
//! | `Membership`                 | `nconf u32 {n u32 id u64*n}*nconf | nnodes u32 {id u64 str}*` |
//! | `str` / bytes                | `len u32 | bytes`                                             |
//! | `Entry` payload              | `kind u8 (0 blank,1 normal,2 membership) | body`              |
//! | `Entry` on the wire          | `index u64 | term u64 | payload-len u32 | payload`            |
//! | log-file record              | `len u32 | crc32c u32 | index u64 | term u64 | payload`       |
//!
//! In the log record `len` is the byte length of `index|term|payload` and the CRC (crc32c,
//! Castagnoli) covers exactly those bytes.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io;

use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::EntryPayload;

use crate::log_id;
use crate::Entry;
use crate::LeaderId;
use crate::LogId;
use crate::Membership;
use crate::Node;
use crate::NodeId;
use crate::SnapshotMeta;
use crate::StoredMembership;
use crate::Txn;
use crate::TypeConfig;
use crate::Vote;

pub const KIND_BLANK: u8 = 0;
pub const KIND_NORMAL: u8 = 1;
pub const KIND_MEMBERSHIP: u8 = 2;

/// Size of the record header before the CRC'd body: `len u32 | crc u32`.
pub const REC_HDR: usize = 8;
/// Fixed part of the CRC'd body: `index u64 | term u64`.
pub const REC_FIXED: usize = 16;

pub fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

// ------------------------------------------------------------------------------------------
// Primitive writer / reader
// ------------------------------------------------------------------------------------------

pub trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_bytes(&mut self, b: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v)
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    /// Length-prefixed (u32) byte string.
    fn put_bytes(&mut self, b: &[u8]) {
        self.put_u32(b.len() as u32);
        self.extend_from_slice(b)
    }
}

/// Cursor over a byte slice; every read is bounds checked and returns `InvalidData`.
pub struct Rd<'a> {
    pub buf: &'a [u8],
}

impl<'a> Rd<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    pub fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(bad(format!("short buffer: need {n}, have {}", self.buf.len())));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub fn bool(&mut self) -> io::Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            x => Err(bad(format!("bad bool {x}"))),
        }
    }
    pub fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|e| bad(e.to_string()))
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    pub fn finish(&self) -> io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(bad(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

// ------------------------------------------------------------------------------------------
// LogId / Vote / Membership
// ------------------------------------------------------------------------------------------

pub fn put_log_id(b: &mut Vec<u8>, id: &LogId) {
    b.put_u64(id.leader_id.term);
    b.put_u64(id.index);
}

pub fn get_log_id(r: &mut Rd) -> io::Result<LogId> {
    let term = r.u64()?;
    let index = r.u64()?;
    Ok(log_id(term, index))
}

pub fn put_opt_log_id(b: &mut Vec<u8>, id: &Option<LogId>) {
    match id {
        None => b.put_u8(0),
        Some(id) => {
            b.put_u8(1);
            put_log_id(b, id)
        }
    }
}

pub fn get_opt_log_id(r: &mut Rd) -> io::Result<Option<LogId>> {
    Ok(if r.bool()? { Some(get_log_id(r)?) } else { None })
}

pub fn put_vote(b: &mut Vec<u8>, v: &Vote) {
    b.put_u64(v.leader_id.term);
    b.put_u64(v.leader_id.voted_for);
    b.put_u8(v.committed as u8);
}

pub fn get_vote(r: &mut Rd) -> io::Result<Vote> {
    let term = r.u64()?;
    let node = r.u64()?;
    let committed = r.bool()?;
    Ok(openraft::Vote { leader_id: LeaderId { term, voted_for: node }, committed })
}

pub fn put_membership(b: &mut Vec<u8>, m: &Membership) {
    let configs = m.get_joint_config();
    b.put_u32(configs.len() as u32);
    for c in configs {
        b.put_u32(c.len() as u32);
        for id in c {
            b.put_u64(*id);
        }
    }
    let nodes: Vec<(&NodeId, &Node)> = m.nodes().collect();
    b.put_u32(nodes.len() as u32);
    for (id, n) in nodes {
        b.put_u64(*id);
        b.put_bytes(n.addr.as_bytes());
    }
}

pub fn get_membership(r: &mut Rd) -> io::Result<Membership> {
    let nconf = r.u32()? as usize;
    let mut configs = Vec::with_capacity(nconf.min(16));
    for _ in 0..nconf {
        let n = r.u32()? as usize;
        let mut set = BTreeSet::new();
        for _ in 0..n {
            set.insert(r.u64()?);
        }
        configs.push(set);
    }
    let nnodes = r.u32()? as usize;
    let mut nodes = BTreeMap::new();
    for _ in 0..nnodes {
        let id = r.u64()?;
        let addr = r.string()?;
        nodes.insert(id, openraft::BasicNode { addr });
    }
    // `Membership::new` validates that every voter has a node entry.
    openraft::Membership::new(configs, nodes).map_err(|e| bad(e.to_string()))
}

pub fn put_stored_membership(b: &mut Vec<u8>, m: &StoredMembership) {
    put_opt_log_id(b, m.log_id());
    put_membership(b, m.membership());
}

pub fn get_stored_membership(r: &mut Rd) -> io::Result<StoredMembership> {
    let id = get_opt_log_id(r)?;
    let m = get_membership(r)?;
    Ok(openraft::StoredMembership::new(id, m))
}

pub fn put_snapshot_meta(b: &mut Vec<u8>, m: &SnapshotMeta) {
    put_opt_log_id(b, &m.last_log_id);
    put_stored_membership(b, &m.last_membership);
}

pub fn get_snapshot_meta(r: &mut Rd) -> io::Result<SnapshotMeta> {
    Ok(openraft::SnapshotMeta { last_log_id: get_opt_log_id(r)?, last_membership: get_stored_membership(r)? })
}

// ------------------------------------------------------------------------------------------
// Entry
// ------------------------------------------------------------------------------------------

/// Encode the payload part: `kind u8 | body`. For Normal the body is the raw txn bytes
/// (no inner length: the outer record/frame carries the length).
pub fn put_payload(b: &mut Vec<u8>, p: &EntryPayload<Txn, NodeId, Node>) {
    match p {
        EntryPayload::Blank => b.put_u8(KIND_BLANK),
        EntryPayload::Normal(t) => {
            b.put_u8(KIND_NORMAL);
            b.extend_from_slice(&t.0);
        }
        EntryPayload::Membership(m) => {
            b.put_u8(KIND_MEMBERSHIP);
            put_membership(b, m);
        }
    }
}

/// Decode `kind u8 | body` where `buf` is exactly the payload bytes.
pub fn get_payload(buf: &[u8]) -> io::Result<EntryPayload<Txn, NodeId, Node>> {
    let mut r = Rd::new(buf);
    match r.u8()? {
        KIND_BLANK => {
            r.finish()?;
            Ok(EntryPayload::Blank)
        }
        KIND_NORMAL => Ok(EntryPayload::Normal(Txn(r.rest().to_vec()))),
        KIND_MEMBERSHIP => {
            let m = get_membership(&mut r)?;
            r.finish()?;
            Ok(EntryPayload::Membership(m))
        }
        k => Err(bad(format!("unknown entry kind {k}"))),
    }
}

/// Append one log-file record for `e` to `out`:
/// `len u32 | crc32c u32 | index u64 | term u64 | kind u8 | body`.
pub fn encode_record(out: &mut Vec<u8>, e: &Entry) {
    let start = out.len();
    out.put_u32(0); // len placeholder
    out.put_u32(0); // crc placeholder
    let body = out.len();
    out.put_u64(e.log_id.index);
    out.put_u64(e.log_id.leader_id.term);
    put_payload(out, &e.payload);
    let len = (out.len() - body) as u32;
    let crc = crc32c::crc32c(&out[body..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Result of trying to decode one record at the head of `buf`.
pub enum RecordRead {
    /// A valid record and its total size (header + body).
    Ok(Entry, usize),
    /// `buf` ends in the middle of a record (a torn tail after a crash).
    Incomplete,
    /// Length or CRC mismatch.
    Corrupt(String),
}

pub fn decode_record(buf: &[u8], max_len: usize) -> RecordRead {
    if buf.len() < REC_HDR {
        return RecordRead::Incomplete;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    if len < REC_FIXED + 1 || len > max_len {
        return RecordRead::Corrupt(format!("bad record len {len}"));
    }
    if buf.len() < REC_HDR + len {
        return RecordRead::Incomplete;
    }
    let body = &buf[REC_HDR..REC_HDR + len];
    if crc32c::crc32c(body) != crc {
        return RecordRead::Corrupt("crc mismatch".into());
    }
    let index = u64::from_le_bytes(body[0..8].try_into().unwrap());
    let term = u64::from_le_bytes(body[8..16].try_into().unwrap());
    match get_payload(&body[REC_FIXED..]) {
        Ok(payload) => RecordRead::Ok(openraft::Entry { log_id: log_id(term, index), payload }, REC_HDR + len),
        Err(e) => RecordRead::Corrupt(e.to_string()),
    }
}

/// Entry on the wire: `index u64 | term u64 | len u32 | kind u8 | body`.
pub fn put_entry(b: &mut Vec<u8>, e: &Entry) {
    b.put_u64(e.log_id.index);
    b.put_u64(e.log_id.leader_id.term);
    let at = b.len();
    b.put_u32(0);
    put_payload(b, &e.payload);
    let len = (b.len() - at - 4) as u32;
    b[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

pub fn get_entry(r: &mut Rd) -> io::Result<Entry> {
    let index = r.u64()?;
    let term = r.u64()?;
    let payload = get_payload(r.bytes()?)?;
    Ok(openraft::Entry { log_id: log_id(term, index), payload })
}

// ------------------------------------------------------------------------------------------
// RPC messages
// ------------------------------------------------------------------------------------------

pub fn put_append_req(b: &mut Vec<u8>, req: &AppendEntriesRequest<TypeConfig>) {
    put_vote(b, &req.vote);
    put_opt_log_id(b, &req.prev_log_id);
    put_opt_log_id(b, &req.leader_commit);
    b.put_u32(req.entries.len() as u32);
    for e in &req.entries {
        put_entry(b, e);
    }
}

pub fn get_append_req(r: &mut Rd) -> io::Result<AppendEntriesRequest<TypeConfig>> {
    let vote = get_vote(r)?;
    let prev_log_id = get_opt_log_id(r)?;
    let leader_commit = get_opt_log_id(r)?;
    let n = r.u32()? as usize;
    let mut entries = Vec::with_capacity(n.min(65536));
    for _ in 0..n {
        entries.push(get_entry(r)?);
    }
    Ok(AppendEntriesRequest { vote, prev_log_id, entries, leader_commit })
}

pub fn put_append_resp(b: &mut Vec<u8>, resp: &AppendEntriesResponse<TypeConfig>) {
    match resp {
        AppendEntriesResponse::Success => b.put_u8(0),
        AppendEntriesResponse::PartialSuccess(id) => {
            b.put_u8(1);
            put_opt_log_id(b, id)
        }
        AppendEntriesResponse::Conflict => b.put_u8(2),
        AppendEntriesResponse::HigherVote(v) => {
            b.put_u8(3);
            put_vote(b, v)
        }
    }
}

pub fn get_append_resp(r: &mut Rd) -> io::Result<AppendEntriesResponse<TypeConfig>> {
    Ok(match r.u8()? {
        0 => AppendEntriesResponse::Success,
        1 => AppendEntriesResponse::PartialSuccess(get_opt_log_id(r)?),
        2 => AppendEntriesResponse::Conflict,
        3 => AppendEntriesResponse::HigherVote(get_vote(r)?),
        x => return Err(bad(format!("bad AppendEntriesResponse tag {x}"))),
    })
}

pub fn put_vote_req(b: &mut Vec<u8>, req: &VoteRequest<TypeConfig>) {
    put_vote(b, &req.vote);
    put_opt_log_id(b, &req.last_log_id);
    b.put_u8(req.leadership_transfer as u8);
}

pub fn get_vote_req(r: &mut Rd) -> io::Result<VoteRequest<TypeConfig>> {
    let vote = get_vote(r)?;
    let last_log_id = get_opt_log_id(r)?;
    let leadership_transfer = r.bool()?;
    Ok(VoteRequest { vote, last_log_id, leadership_transfer })
}

pub fn put_vote_resp(b: &mut Vec<u8>, resp: &VoteResponse<TypeConfig>) {
    put_vote(b, &resp.vote);
    b.put_u8(resp.vote_granted as u8);
    put_opt_log_id(b, &resp.last_log_id);
}

pub fn get_vote_resp(r: &mut Rd) -> io::Result<VoteResponse<TypeConfig>> {
    let vote = get_vote(r)?;
    let vote_granted = r.bool()?;
    let last_log_id = get_opt_log_id(r)?;
    Ok(VoteResponse { vote, vote_granted, last_log_id })
}

pub fn put_snapshot_resp(b: &mut Vec<u8>, resp: &SnapshotResponse<TypeConfig>) {
    put_vote(b, &resp.vote);
}

pub fn get_snapshot_resp(r: &mut Rd) -> io::Result<SnapshotResponse<TypeConfig>> {
    Ok(SnapshotResponse::new(get_vote(r)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership() -> Membership {
        let nodes: BTreeMap<u64, Node> = [(1, "a:1"), (2, "b:2"), (3, "c:3"), (4, "learner:4")]
            .into_iter()
            .map(|(i, a)| (i, openraft::BasicNode::new(a)))
            .collect();
        openraft::Membership::new(vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([1, 2])], nodes).unwrap()
    }

    #[test]
    fn record_roundtrip_all_payload_kinds() {
        let entries = vec![
            openraft::Entry { log_id: log_id(1, 1), payload: EntryPayload::Blank },
            openraft::Entry { log_id: log_id(1, 2), payload: EntryPayload::Membership(membership()) },
            openraft::Entry { log_id: log_id(2, 3), payload: EntryPayload::Normal(Txn(b"hello".to_vec())) },
            openraft::Entry { log_id: log_id(2, 4), payload: EntryPayload::Normal(Txn(vec![])) },
        ];
        let mut buf = Vec::new();
        for e in &entries {
            encode_record(&mut buf, e);
        }
        let mut off = 0;
        for e in &entries {
            match decode_record(&buf[off..], 1 << 20) {
                RecordRead::Ok(d, n) => {
                    assert_eq!(&d, e);
                    off += n;
                }
                _ => panic!("decode failed"),
            }
        }
        assert_eq!(off, buf.len());
        // torn tail
        assert!(matches!(
            decode_record(&buf[..buf.len() - 1][off - 10..], 1 << 20),
            RecordRead::Incomplete | RecordRead::Corrupt(_)
        ));
        // flipped bit
        let mut b2 = buf.clone();
        b2[REC_HDR + 3] ^= 1;
        assert!(matches!(decode_record(&b2, 1 << 20), RecordRead::Corrupt(_)));
    }

    #[test]
    fn rpc_roundtrip() {
        let vote = openraft::Vote { leader_id: LeaderId { term: 7, voted_for: 2 }, committed: true };
        let req = AppendEntriesRequest::<TypeConfig> {
            vote,
            prev_log_id: Some(log_id(6, 10)),
            entries: vec![
                openraft::Entry { log_id: log_id(7, 11), payload: EntryPayload::Blank },
                openraft::Entry { log_id: log_id(7, 12), payload: EntryPayload::Normal(Txn(b"x".to_vec())) },
            ],
            leader_commit: None,
        };
        let mut b = Vec::new();
        put_append_req(&mut b, &req);
        let d = get_append_req(&mut Rd::new(&b)).unwrap();
        assert_eq!(d.vote, req.vote);
        assert_eq!(d.prev_log_id, req.prev_log_id);
        assert_eq!(d.entries, req.entries);
        assert_eq!(d.leader_commit, req.leader_commit);

        let vr = VoteRequest::<TypeConfig> { vote, last_log_id: Some(log_id(3, 4)), leadership_transfer: true };
        let mut b = Vec::new();
        put_vote_req(&mut b, &vr);
        assert_eq!(get_vote_req(&mut Rd::new(&b)).unwrap(), vr);

        let sm = openraft::StoredMembership::new(Some(log_id(1, 2)), membership());
        let meta = openraft::SnapshotMeta { last_log_id: Some(log_id(5, 100)), last_membership: sm };
        let mut b = Vec::new();
        put_snapshot_meta(&mut b, &meta);
        assert_eq!(get_snapshot_meta(&mut Rd::new(&b)).unwrap(), meta);
    }
}
