//! The journal's record: one namespace [`Entry`] as the opaque payload of one raft log entry.
//!
//! Compact, versioned, and decoded totally: bad bytes give a [`DecodeError`], never a panic or
//! an allocation larger than the input.
//!
//! ```text
//! version:u8 (= 1)   then LEB128 varints (v), strings as v(len) + UTF-8 bytes, bools as 0|1:
//! tag:    v(incarnation) v(seq)            who proposed it (routes the outcome; apply ignores it)
//! entry:  v(time_ms) user v(n) n × group
//!         client: 0 | 1 client_id[16]   then v(call_id)
//!         op: u8 kind, then its fields in declaration order:
//!   1 Mkdirs path v(perm) create_parent
//!   2 Create path v(perm) overwrite create_parent v(replication) v(block_size) client_name
//!            client_machine
//!   3 AddBlock path client_name opt_block(previous)
//!   4 AbandonBlock path client_name v(block_id)
//!   5 Complete path client_name opt_block(last)
//!   6 Append path client_name client_machine new_block
//!   7 UpdateBlock v(block_id) client_name v(new_gs) v(new_len)
//!   8 Rename src dst overwrite
//!   9 Delete path recursive
//!  10 SetPermission path v(perm)
//!  11 SetOwner path opt_str(owner) opt_str(group)
//!  12 SetReplication path v(replication)
//!  13 SetTimes path opt_v(mtime_ms) opt_v(atime_ms)
//!  14 RenewLease client_name
//!  15 BeginRecovery path
//!  16 RecoverLease path opt_block(last)
//!  17 Truncate path v(new_length) client_name client_machine
//!  18 Concat target v(n) n × src      (n >= 1 is the namespace's rule, not the codec's)
//! opt_x: 0 | 1 x;   block: v(id) v(gs) v(len)
//! ```
//!
//! A record must end exactly where its op ends: trailing bytes are an error. Op kinds are only
//! ever added, never changed or reused, so a new kind keeps the version: every record an older
//! build wrote still decodes (an older build refuses a newer kind as a bad op kind).

use crate::namespace::{Block, Entry, Op, NO_CLIENT};
use crate::varint::{Reader, VarintError, Writer};

/// The record version this build writes and reads.
pub const VERSION: u8 = 1;

/// Who proposed a record: a journal incarnation (one per open) and its proposal number. The
/// state machine never reads it; the proposer uses it to find its outcome. 0 means "no waiter".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    pub incarnation: u64,
    pub seq: u64,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("journal record version {0} is not supported (this build reads {VERSION})")]
    Version(u8),
    #[error("journal record truncated")]
    Truncated,
    #[error("journal record has a bad {0}")]
    BadValue(&'static str),
    #[error("journal record has {0} trailing bytes")]
    Trailing(usize),
}

type Res<T> = Result<T, DecodeError>;

impl From<VarintError> for DecodeError {
    fn from(e: VarintError) -> Self {
        match e {
            VarintError::Truncated => DecodeError::Truncated,
            VarintError::BadValue(what) => DecodeError::BadValue(what),
        }
    }
}

/// Encodes `entry` proposed under `tag`.
pub fn encode(tag: Tag, entry: &Entry) -> Vec<u8> {
    let mut w = Writer { buf: Vec::with_capacity(64) };
    w.buf.push(VERSION);
    w.u64(tag.incarnation);
    w.u64(tag.seq);
    w.u64(entry.time_ms);
    w.str(&entry.user);
    w.u64(entry.groups.len() as u64);
    for g in &entry.groups {
        w.str(g);
    }
    if entry.client_id == NO_CLIENT {
        w.buf.push(0);
    } else {
        w.buf.push(1);
        w.buf.extend_from_slice(&entry.client_id);
    }
    w.u64(entry.call_id);
    w.op(&entry.op);
    w.buf
}

/// Decodes a record written by [`encode`].
pub fn decode(b: &[u8]) -> Res<(Tag, Entry)> {
    let mut r = Reader::new(b);
    let version = r.byte()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let tag = Tag { incarnation: r.u64()?, seq: r.u64()? };
    let time_ms = r.u64()?;
    let user = r.str()?;
    let n = r.count(1)?;
    let mut groups = Vec::with_capacity(n);
    for _ in 0..n {
        groups.push(r.str()?);
    }
    let client_id = match r.byte()? {
        0 => NO_CLIENT,
        1 => {
            let id: [u8; 16] = r.bytes(16)?.try_into().map_err(|_| DecodeError::Truncated)?;
            if id == NO_CLIENT {
                // Written as 0: a second spelling of the same entry is refused.
                return Err(DecodeError::BadValue("client id"));
            }
            id
        }
        _ => return Err(DecodeError::BadValue("client flag")),
    };
    let call_id = r.u64()?;
    let op = r.op()?;
    if r.pos != b.len() {
        return Err(DecodeError::Trailing(b.len() - r.pos));
    }
    Ok((tag, Entry { time_ms, user, groups, client_id, call_id, op }))
}

impl Writer {
    fn opt_block(&mut self, b: &Option<Block>) {
        self.bool(b.is_some());
        if let Some(b) = b {
            self.block(b);
        }
    }

    fn opt_str(&mut self, s: &Option<String>) {
        self.bool(s.is_some());
        if let Some(s) = s {
            self.str(s);
        }
    }

    fn opt_u64(&mut self, v: Option<u64>) {
        self.bool(v.is_some());
        if let Some(v) = v {
            self.u64(v);
        }
    }

    fn op(&mut self, op: &Op) {
        // An exhaustive match: a new Op variant does not compile until it has an encoding.
        match op {
            Op::Mkdirs { path, perm, create_parent } => {
                self.buf.push(1);
                self.str(path);
                self.u64((*perm).into());
                self.bool(*create_parent);
            }
            Op::Create {
                path,
                perm,
                overwrite,
                create_parent,
                replication,
                block_size,
                client_name,
                client_machine,
            } => {
                self.buf.push(2);
                self.str(path);
                self.u64((*perm).into());
                self.bool(*overwrite);
                self.bool(*create_parent);
                self.u64((*replication).into());
                self.u64(*block_size);
                self.str(client_name);
                self.str(client_machine);
            }
            Op::AddBlock { path, client_name, previous } => {
                self.buf.push(3);
                self.str(path);
                self.str(client_name);
                self.opt_block(previous);
            }
            Op::AbandonBlock { path, client_name, block_id } => {
                self.buf.push(4);
                self.str(path);
                self.str(client_name);
                self.u64(*block_id);
            }
            Op::Complete { path, client_name, last } => {
                self.buf.push(5);
                self.str(path);
                self.str(client_name);
                self.opt_block(last);
            }
            Op::Append { path, client_name, client_machine, new_block } => {
                self.buf.push(6);
                self.str(path);
                self.str(client_name);
                self.str(client_machine);
                self.bool(*new_block);
            }
            Op::UpdateBlock { block_id, client_name, new_gs, new_len } => {
                self.buf.push(7);
                self.u64(*block_id);
                self.str(client_name);
                self.u64(*new_gs);
                self.u64(*new_len);
            }
            Op::Rename { src, dst, overwrite } => {
                self.buf.push(8);
                self.str(src);
                self.str(dst);
                self.bool(*overwrite);
            }
            Op::Delete { path, recursive } => {
                self.buf.push(9);
                self.str(path);
                self.bool(*recursive);
            }
            Op::SetPermission { path, perm } => {
                self.buf.push(10);
                self.str(path);
                self.u64((*perm).into());
            }
            Op::SetOwner { path, owner, group } => {
                self.buf.push(11);
                self.str(path);
                self.opt_str(owner);
                self.opt_str(group);
            }
            Op::SetReplication { path, replication } => {
                self.buf.push(12);
                self.str(path);
                self.u64((*replication).into());
            }
            Op::SetTimes { path, mtime_ms, atime_ms } => {
                self.buf.push(13);
                self.str(path);
                self.opt_u64(*mtime_ms);
                self.opt_u64(*atime_ms);
            }
            Op::RenewLease { client_name } => {
                self.buf.push(14);
                self.str(client_name);
            }
            Op::BeginRecovery { path } => {
                self.buf.push(15);
                self.str(path);
            }
            Op::RecoverLease { path, last } => {
                self.buf.push(16);
                self.str(path);
                self.opt_block(last);
            }
            Op::Truncate { path, new_length, client_name, client_machine } => {
                self.buf.push(17);
                self.str(path);
                self.u64(*new_length);
                self.str(client_name);
                self.str(client_machine);
            }
            Op::Concat { target, srcs } => {
                self.buf.push(18);
                self.str(target);
                self.u64(srcs.len() as u64);
                for src in srcs {
                    self.str(src);
                }
            }
        }
    }
}

impl<'a> Reader<'a> {
    fn opt_block(&mut self) -> Res<Option<Block>> {
        Ok(if self.bool()? { Some(self.block()?) } else { None })
    }

    fn opt_str(&mut self) -> Res<Option<String>> {
        Ok(if self.bool()? { Some(self.str()?) } else { None })
    }

    fn opt_u64(&mut self) -> Res<Option<u64>> {
        Ok(if self.bool()? { Some(self.u64()?) } else { None })
    }

    fn op(&mut self) -> Res<Op> {
        Ok(match self.byte()? {
            1 => Op::Mkdirs { path: self.str()?, perm: self.u16("perm")?, create_parent: self.bool()? },
            2 => Op::Create {
                path: self.str()?,
                perm: self.u16("perm")?,
                overwrite: self.bool()?,
                create_parent: self.bool()?,
                replication: self.u16("replication")?,
                block_size: self.u64()?,
                client_name: self.str()?,
                client_machine: self.str()?,
            },
            3 => Op::AddBlock { path: self.str()?, client_name: self.str()?, previous: self.opt_block()? },
            4 => Op::AbandonBlock { path: self.str()?, client_name: self.str()?, block_id: self.u64()? },
            5 => Op::Complete { path: self.str()?, client_name: self.str()?, last: self.opt_block()? },
            6 => Op::Append {
                path: self.str()?,
                client_name: self.str()?,
                client_machine: self.str()?,
                new_block: self.bool()?,
            },
            7 => Op::UpdateBlock {
                block_id: self.u64()?,
                client_name: self.str()?,
                new_gs: self.u64()?,
                new_len: self.u64()?,
            },
            8 => Op::Rename { src: self.str()?, dst: self.str()?, overwrite: self.bool()? },
            9 => Op::Delete { path: self.str()?, recursive: self.bool()? },
            10 => Op::SetPermission { path: self.str()?, perm: self.u16("perm")? },
            11 => Op::SetOwner { path: self.str()?, owner: self.opt_str()?, group: self.opt_str()? },
            12 => Op::SetReplication { path: self.str()?, replication: self.u16("replication")? },
            13 => Op::SetTimes { path: self.str()?, mtime_ms: self.opt_u64()?, atime_ms: self.opt_u64()? },
            14 => Op::RenewLease { client_name: self.str()? },
            15 => Op::BeginRecovery { path: self.str()? },
            16 => Op::RecoverLease { path: self.str()?, last: self.opt_block()? },
            17 => Op::Truncate {
                path: self.str()?,
                new_length: self.u64()?,
                client_name: self.str()?,
                client_machine: self.str()?,
            },
            18 => {
                let target = self.str()?;
                let n = self.count(1)?;
                let mut srcs = Vec::with_capacity(n);
                for _ in 0..n {
                    srcs.push(self.str()?);
                }
                Op::Concat { target, srcs }
            }
            _ => return Err(DecodeError::BadValue("op kind")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(i: u64) -> Block {
        Block { id: i, gs: i + 1, len: u64::MAX - i }
    }

    /// One op of every kind, with optional fields both ways.
    fn ops() -> Vec<Op> {
        vec![
            Op::Mkdirs { path: "/a/b".into(), perm: 0o755, create_parent: true },
            Op::Create {
                path: "/a/ü".into(),
                perm: 0o644,
                overwrite: false,
                create_parent: true,
                replication: 3,
                block_size: 128 << 20,
                client_name: "DFSClient_1".into(),
                client_machine: "host".into(),
            },
            Op::AddBlock { path: "/f".into(), client_name: "c".into(), previous: None },
            Op::AddBlock { path: "/f".into(), client_name: "c".into(), previous: Some(block(7)) },
            Op::AbandonBlock { path: "/f".into(), client_name: "c".into(), block_id: 1 << 60 },
            Op::Complete { path: "/f".into(), client_name: "c".into(), last: Some(block(9)) },
            Op::Complete { path: "/f".into(), client_name: "c".into(), last: None },
            Op::Append { path: "/f".into(), client_name: "c".into(), client_machine: "m".into(), new_block: true },
            Op::UpdateBlock { block_id: 5, client_name: "c".into(), new_gs: 6, new_len: 7 },
            Op::Rename { src: "/x".into(), dst: "/y".into(), overwrite: true },
            Op::Delete { path: "/x".into(), recursive: false },
            Op::SetPermission { path: "/x".into(), perm: 0o1777 },
            Op::SetOwner { path: "/x".into(), owner: Some("bob".into()), group: None },
            Op::SetOwner { path: "/x".into(), owner: None, group: Some("g".into()) },
            Op::SetReplication { path: "/x".into(), replication: u16::MAX },
            Op::SetTimes { path: "/x".into(), mtime_ms: Some(0), atime_ms: None },
            Op::SetTimes { path: "/x".into(), mtime_ms: None, atime_ms: Some(u64::MAX) },
            Op::RenewLease { client_name: "c".into() },
            Op::BeginRecovery { path: "/f".into() },
            Op::RecoverLease { path: "/f".into(), last: None },
            Op::RecoverLease { path: "/f".into(), last: Some(block(3)) },
            Op::Truncate {
                path: "/f".into(),
                new_length: u64::MAX,
                client_name: "c".into(),
                client_machine: "m".into(),
            },
            Op::Concat { target: "/t".into(), srcs: vec!["/a".into(), "/ü".into()] },
            Op::Concat { target: "/t".into(), srcs: Vec::new() },
        ]
    }

    fn entries() -> Vec<(Tag, Entry)> {
        ops()
            .into_iter()
            .enumerate()
            .map(|(i, op)| {
                let i = i as u64;
                let (client_id, call_id) =
                    if i.is_multiple_of(2) { ([i as u8 + 1; 16], i * 1000) } else { (NO_CLIENT, 0) };
                let tag = Tag { incarnation: i * 0x0123_4567_89ab, seq: i };
                let groups = (0..i % 3).map(|g| format!("g{g}")).collect();
                (tag, Entry { time_ms: 1 << (i % 64), user: format!("user{i}"), groups, client_id, call_id, op })
            })
            .collect()
    }

    #[test]
    fn every_op_round_trips() {
        for (tag, e) in entries() {
            let b = encode(tag, &e);
            assert_eq!(decode(&b), Ok((tag, e)));
        }
    }

    #[test]
    fn every_proper_prefix_is_refused() {
        for (tag, e) in entries() {
            let b = encode(tag, &e);
            for n in 0..b.len() {
                assert!(decode(&b[..n]).is_err(), "prefix of {n} bytes of {e:?} decoded");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(decode(&longer), Err(DecodeError::Trailing(1)));
        }
    }

    #[test]
    fn other_versions_are_refused() {
        let (tag, e) = entries().remove(0);
        let mut b = encode(tag, &e);
        b[0] = 2;
        assert_eq!(decode(&b), Err(DecodeError::Version(2)));
    }

    /// Random corruptions and random bytes never panic; whatever decodes re-encodes to itself.
    #[test]
    fn garbage_never_panics() {
        let mut s: u64 = 0x5eed;
        let mut next = move || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let all = entries();
        for round in 0..20_000 {
            let mut b = if round % 4 == 0 {
                (0..next() % 64).map(|_| next() as u8).collect()
            } else {
                let (tag, e) = &all[(next() % all.len() as u64) as usize];
                encode(*tag, e)
            };
            if !b.is_empty() {
                for _ in 0..=next() % 3 {
                    let i = (next() % b.len() as u64) as usize;
                    b[i] ^= 1 << (next() % 8);
                }
            }
            if let Ok((tag, e)) = decode(&b) {
                assert_eq!(encode(tag, &e), b, "a second spelling of {e:?} decoded");
            }
        }
    }
}
