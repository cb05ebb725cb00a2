//! The checkpoint format of a [`Namespace`]: compact, versioned, and decoded totally (bad bytes
//! give a [`CheckpointError`], never a panic or a huge allocation).
//!
//! ```text
//! "HNNS" version:u16le   then LEB128 varints (v), strings as v(len) + UTF-8 bytes:
//! limits: v(lease_soft_ms) v(retry_ttl_ms) v(retry_max) v(min_block_size) v(max_replication)
//! v(last_index)
//! v(inode count), inodes in preorder (root first, children by name, a parent before its
//!   children): v(id) v(parent) name owner group v(perm) v(mtime) v(atime) kind
//!   kind 0 = directory; 1 = file: v(replication) v(block_size) v(n) n × (v(id) v(gs) v(len))
//!     then 0, or 1 holder machine open_block(0|1) truncate_to(0 | 1 v(length))
//!     (version 1 has no truncate_to: none is set)
//! v(lease count), by holder: holder v(last_renewed_ms)   (the files come from the inodes)
//! v(retry count), by key: client_id[16] v(call_id) v(time_ms) reply
//!   reply 0 Done | 1 Bool(b) | 2 Status(status) | 3 Block(block) | 4 Appended(status, 0|1 block)
//!   status: v(id) is_dir(0|1) v(length) owner group v(perm) v(mtime) v(atime) v(replication)
//!     v(block_size) v(children) under_construction(0|1)
//! ```

use super::{
    path, Cached, FileInfo, FileStatus, Inode, InodeKind, Lease, Limits, Namespace, Reply, RetryKey, UnderConstruction,
    ROOT_ID,
};
use crate::varint::{Reader, VarintError, Writer};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const MAGIC: &[u8; 4] = b"HNNS";
/// The version written. Version 1 (before truncate) is still read.
pub const VERSION: u16 = 2;

/// Why a checkpoint could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a namespace checkpoint (bad magic)")]
    BadMagic,
    #[error("checkpoint version {0} is not supported (this build reads 1 to {VERSION})")]
    Version(u16),
    #[error("checkpoint truncated")]
    Truncated,
    #[error("checkpoint has a bad {0}")]
    BadValue(&'static str),
    #[error("checkpoint is not a valid namespace: {0}")]
    Shape(String),
}

type DecodeResult<T> = Result<T, CheckpointError>;

impl From<VarintError> for CheckpointError {
    fn from(e: VarintError) -> Self {
        match e {
            VarintError::Truncated => CheckpointError::Truncated,
            VarintError::BadValue(what) => CheckpointError::BadValue(what),
        }
    }
}

impl Writer {
    fn status(&mut self, s: &FileStatus) {
        self.u64(s.id);
        self.bool(s.is_dir);
        self.u64(s.length);
        self.str(&s.owner);
        self.str(&s.group);
        self.u64(s.perm.into());
        self.u64(s.mtime_ms);
        self.u64(s.atime_ms);
        self.u64(s.replication.into());
        self.u64(s.block_size);
        self.u64(s.children);
        self.bool(s.under_construction);
    }

    fn reply(&mut self, r: &Reply) {
        match r {
            Reply::Done => self.u64(0),
            Reply::Bool(b) => {
                self.u64(1);
                self.bool(*b);
            }
            Reply::Status(s) => {
                self.u64(2);
                self.status(s);
            }
            Reply::Block(b) => {
                self.u64(3);
                self.block(b);
            }
            Reply::Appended { status, last } => {
                self.u64(4);
                self.status(status);
                self.bool(last.is_some());
                if let Some(b) = last {
                    self.block(b);
                }
            }
        }
    }
}

impl<'a> Reader<'a> {
    fn status(&mut self) -> DecodeResult<FileStatus> {
        Ok(FileStatus {
            id: self.u64()?,
            is_dir: self.bool()?,
            length: self.u64()?,
            owner: self.str()?,
            group: self.str()?,
            perm: self.u16("permission")?,
            mtime_ms: self.u64()?,
            atime_ms: self.u64()?,
            replication: self.u16("replication")?,
            block_size: self.u64()?,
            children: self.u64()?,
            under_construction: self.bool()?,
        })
    }

    fn reply(&mut self) -> DecodeResult<Reply> {
        Ok(match self.u64()? {
            0 => Reply::Done,
            1 => Reply::Bool(self.bool()?),
            2 => Reply::Status(self.status()?),
            3 => Reply::Block(self.block()?),
            4 => {
                let status = self.status()?;
                let last = if self.bool()? { Some(self.block()?) } else { None };
                Reply::Appended { status, last }
            }
            _ => return Err(CheckpointError::BadValue("reply kind")),
        })
    }
}

impl Namespace {
    /// The whole state as a checkpoint; [`Namespace::deserialize`] is its inverse.
    pub fn serialize(&self) -> Vec<u8> {
        let mut w = Writer { buf: Vec::with_capacity(64 + self.inodes.len() * 64) };
        w.buf.extend_from_slice(MAGIC);
        w.buf.extend_from_slice(&VERSION.to_le_bytes());
        let l = &self.limits;
        for v in [l.lease_soft_ms, l.retry_ttl_ms, l.retry_max, l.min_block_size, l.max_replication.into()] {
            w.u64(v);
        }
        w.u64(self.last_index);
        w.u64(self.inodes.len() as u64);
        let mut stack = vec![ROOT_ID];
        let mut written = 0;
        while let Some(id) = stack.pop() {
            let n = &self.inodes[&id];
            written += 1;
            w.u64(n.id);
            w.u64(n.parent);
            w.str(&n.name);
            w.str(&n.owner);
            w.str(&n.group);
            w.u64(n.perm.into());
            w.u64(n.mtime_ms);
            w.u64(n.atime_ms);
            match &n.kind {
                InodeKind::Dir { children } => {
                    w.u64(0);
                    // Reversed, so that children pop (and are written) in name order.
                    stack.extend(children.values().rev().copied());
                }
                InodeKind::File(f) => {
                    w.u64(1);
                    w.u64(f.replication.into());
                    w.u64(f.block_size);
                    w.u64(f.blocks.len() as u64);
                    for b in &f.blocks {
                        w.block(b);
                    }
                    w.bool(f.uc.is_some());
                    if let Some(uc) = &f.uc {
                        w.str(&uc.holder);
                        w.str(&uc.machine);
                        w.bool(uc.open_block);
                        w.bool(uc.truncate_to.is_some());
                        if let Some(t) = uc.truncate_to {
                            w.u64(t);
                        }
                    }
                }
            }
        }
        assert_eq!(written, self.inodes.len(), "every inode is reachable from the root");
        w.u64(self.leases.len() as u64);
        for (holder, l) in &self.leases {
            w.str(holder);
            w.u64(l.last_renewed_ms);
        }
        w.u64(self.retry.len() as u64);
        for (k, c) in &self.retry {
            w.buf.extend_from_slice(&k.client_id);
            w.u64(k.call_id);
            w.u64(c.time_ms);
            w.reply(&c.reply);
        }
        w.buf
    }

    /// Loads a checkpoint, checking its format and that it describes a valid namespace (one
    /// tree under the root, unique names and ids, leases matching the open files).
    pub fn deserialize(b: &[u8]) -> Result<Namespace, CheckpointError> {
        let mut r = Reader::new(b);
        if r.bytes(4).map_err(|_| CheckpointError::BadMagic)? != MAGIC {
            return Err(CheckpointError::BadMagic);
        }
        let v = r.bytes(2)?;
        let version = u16::from_le_bytes([v[0], v[1]]);
        if !(1..=VERSION).contains(&version) {
            return Err(CheckpointError::Version(version));
        }
        let limits = Limits {
            lease_soft_ms: r.u64()?,
            retry_ttl_ms: r.u64()?,
            retry_max: r.u64()?,
            min_block_size: r.u64()?,
            max_replication: r.u16("max replication")?,
        };
        let last_index = r.u64()?;
        let n = r.count(12)?;
        let shape = |s: String| CheckpointError::Shape(s);
        let mut inodes: HashMap<u64, Inode> = HashMap::with_capacity(n);
        let mut block_files = HashMap::new();
        let mut open: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for i in 0..n {
            let id = r.u64()?;
            let parent = r.u64()?;
            let name = r.str()?;
            let owner = r.str()?;
            let group = r.str()?;
            let perm = r.u16("permission")?;
            let mtime_ms = r.u64()?;
            let atime_ms = r.u64()?;
            let kind = match r.u64()? {
                0 => InodeKind::Dir { children: BTreeMap::new() },
                1 => {
                    let replication = r.u16("replication")?;
                    let block_size = r.u64()?;
                    let nb = r.count(3)?;
                    let mut blocks = Vec::with_capacity(nb);
                    for _ in 0..nb {
                        let b = r.block()?;
                        if block_files.insert(b.id, id).is_some() {
                            return Err(shape(format!("block {} in two places", b.id)));
                        }
                        blocks.push(b);
                    }
                    let uc = if r.bool()? {
                        let (holder, machine, open_block) = (r.str()?, r.str()?, r.bool()?);
                        let truncate_to = if version >= 2 && r.bool()? { Some(r.u64()?) } else { None };
                        let uc = UnderConstruction { holder, machine, open_block, truncate_to };
                        open.entry(uc.holder.clone()).or_default().insert(id);
                        Some(uc)
                    } else {
                        None
                    };
                    InodeKind::File(FileInfo { replication, block_size, blocks, uc })
                }
                _ => return Err(CheckpointError::BadValue("inode kind")),
            };
            if i == 0 {
                if id != ROOT_ID || parent != 0 || !name.is_empty() || !matches!(kind, InodeKind::Dir { .. }) {
                    return Err(shape("the first inode is not the root".into()));
                }
            } else {
                if id == ROOT_ID || inodes.contains_key(&id) {
                    return Err(shape(format!("inode id {id} twice")));
                }
                if !path::valid_name(&name) {
                    return Err(shape(format!("inode {id} has a bad name")));
                }
                // Preorder: the parent came first, so the links cannot form a cycle.
                let p =
                    inodes.get_mut(&parent).ok_or_else(|| shape(format!("inode {id}: parent {parent} not seen")))?;
                let children = match &mut p.kind {
                    InodeKind::Dir { children } => children,
                    InodeKind::File(_) => return Err(shape(format!("inode {id}: parent {parent} is a file"))),
                };
                if children.insert(name.clone(), id).is_some() {
                    return Err(shape(format!("two entries named {name} in {parent}")));
                }
            }
            inodes.insert(id, Inode { id, parent, name, owner, group, perm, mtime_ms, atime_ms, kind });
        }
        let nl = r.count(2)?;
        let mut leases = BTreeMap::new();
        for _ in 0..nl {
            let holder = r.str()?;
            let last_renewed_ms = r.u64()?;
            let files = open.remove(&holder).ok_or_else(|| shape(format!("lease of {holder} holds no file")))?;
            leases.insert(holder, Lease { last_renewed_ms, files });
        }
        if let Some(holder) = open.keys().next() {
            return Err(shape(format!("files open by {holder} without a lease")));
        }
        let nr = r.count(20)?;
        let mut retry = BTreeMap::new();
        let mut retry_by_time = BTreeSet::new();
        for _ in 0..nr {
            let client_id: [u8; 16] = r.bytes(16)?.try_into().expect("16 bytes");
            let key = RetryKey { client_id, call_id: r.u64()? };
            let time_ms = r.u64()?;
            let reply = r.reply()?;
            retry_by_time.insert((time_ms, key));
            if retry.insert(key, Cached { time_ms, reply }).is_some() {
                return Err(shape("retry cache key twice".into()));
            }
        }
        if r.pos != b.len() {
            return Err(CheckpointError::BadValue("trailing bytes"));
        }
        let ns = Namespace { limits, last_index, inodes, block_files, leases, retry, retry_by_time };
        ns.check_invariants().map_err(shape)?;
        Ok(ns)
    }
}
