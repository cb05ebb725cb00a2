//! The namespace: the NameNode's deterministic state machine.
//!
//! [`Namespace::apply`] takes a log entry and its index and changes the namespace as Hadoop 3's
//! FSNamesystem would (path rules, permission checks, error precedence, leases), reading nothing
//! but its arguments. Ids come from the index: the inodes an entry creates get
//! `index << 10 | k` (an entry creates at most [`path::MAX_DEPTH`] of them), a new block gets the
//! index as its id and generation stamp. Times come from [`Entry::time_ms`]. Reads
//! ([`Namespace::get_file_info`], [`Namespace::list`], ...) take the caller's identity and need
//! no log entry.
//!
//! At-most-once: a successful non-idempotent op (create, append, rename, delete, addBlock,
//! complete, truncate, concat) is remembered under its (client id, call id) for [`Limits::retry_ttl_ms`] of entry
//! time; the same key again returns the remembered reply and changes nothing. Failures are not
//! remembered, as in Hadoop's RetryCache: a retry runs again.
//!
//! Replica locations are not here: the block map (fed by DataNode reports) owns them, and learns
//! from [`Outcome::removed_blocks`] which blocks no file refers to any more.

mod codec;
mod error;
pub mod path;
pub mod perm;

pub use codec::CheckpointError;
pub use error::Error;
pub use perm::Caller;

use perm::{ALL, EXECUTE, MODE_MASK, READ, WRITE};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

/// The file system's owner: every permission check passes for it.
pub const SUPERUSER: &str = "herd";
/// Members of this group are superusers too (`dfs.permissions.superusergroup`).
pub const SUPERGROUP: &str = "supergroup";
/// The root directory's inode id.
pub const ROOT_ID: u64 = 1;
/// The holder of leases the NameNode took over to recover them (Hadoop's `HDFS_NameNode`).
pub const RECOVERY_HOLDER: &str = "HDFS_NameNode";
/// Inode ids per entry: an entry at index i creates ids `i << ID_SHIFT | k`.
const ID_SHIFT: u32 = 10;
const _: () = assert!(path::MAX_DEPTH < 1 << ID_SHIFT);
/// The client id of entries that are not client calls (no retry cache).
pub const NO_CLIENT: [u8; 16] = [0; 16];

/// Rules every replica must agree on, so they are part of the state (and of checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A writer silent this long may lose its file to another client's create/append
    /// (HDFS `LEASE_SOFTLIMIT_PERIOD`, 60 s).
    pub lease_soft_ms: u64,
    /// Retry-cache entries older than this (entry time) are dropped (Hadoop: 10 minutes).
    pub retry_ttl_ms: u64,
    /// At most this many retry-cache entries; the oldest go first.
    pub retry_max: u64,
    /// Smallest block size a file may have (`dfs.namenode.fs-limits.min-block-size`, 1 MiB).
    pub min_block_size: u64,
    /// Largest replication (`dfs.replication.max`, 512).
    pub max_replication: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            lease_soft_ms: 60_000,
            retry_ttl_ms: 600_000,
            retry_max: 1 << 20,
            min_block_size: 1 << 20,
            max_replication: 512,
        }
    }
}

/// A block of a file. Its replicas' locations live in the block map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block {
    pub id: u64,
    /// Generation stamp: grows at every pipeline update or recovery, fencing stale replicas.
    pub gs: u64,
    pub len: u64,
}

/// A file open for writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnderConstruction {
    /// The lease holder: the writing client's name.
    pub holder: String,
    pub machine: String,
    /// Whether the last block is being written (its length is not final).
    pub open_block: bool,
    /// Set while a truncate waits for the block recovery that cuts the last block's replicas:
    /// the length that block will have (HDFS's truncate block). The block keeps its old
    /// length until the recovery commits the new one, as in HDFS.
    pub truncate_to: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub replication: u16,
    pub block_size: u64,
    pub blocks: Vec<Block>,
    pub uc: Option<UnderConstruction>,
}

impl FileInfo {
    pub fn len(&self) -> u64 {
        self.blocks.iter().map(|b| b.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InodeKind {
    Dir { children: BTreeMap<String, u64> },
    File(FileInfo),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub id: u64,
    /// The parent directory's id (0 for the root).
    pub parent: u64,
    pub name: String,
    pub owner: String,
    pub group: String,
    /// Permission bits, sticky bit included (0o1777 at most).
    pub perm: u16,
    pub mtime_ms: u64,
    pub atime_ms: u64,
    pub kind: InodeKind,
}

impl Inode {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, InodeKind::Dir { .. })
    }

    pub fn file(&self) -> Option<&FileInfo> {
        match &self.kind {
            InodeKind::File(f) => Some(f),
            InodeKind::Dir { .. } => None,
        }
    }

    fn file_mut(&mut self) -> Option<&mut FileInfo> {
        match &mut self.kind {
            InodeKind::File(f) => Some(f),
            InodeKind::Dir { .. } => None,
        }
    }

    pub fn children(&self) -> Option<&BTreeMap<String, u64>> {
        match &self.kind {
            InodeKind::Dir { children } => Some(children),
            InodeKind::File(_) => None,
        }
    }

    fn children_mut(&mut self) -> Option<&mut BTreeMap<String, u64>> {
        match &mut self.kind {
            InodeKind::Dir { children } => Some(children),
            InodeKind::File(_) => None,
        }
    }

    pub fn status(&self) -> FileStatus {
        let (length, replication, block_size, children) = match &self.kind {
            InodeKind::Dir { children } => (0, 0, 0, children.len() as u64),
            InodeKind::File(f) => (f.len(), f.replication, f.block_size, 0),
        };
        FileStatus {
            id: self.id,
            is_dir: self.is_dir(),
            length,
            owner: self.owner.clone(),
            group: self.group.clone(),
            perm: self.perm,
            mtime_ms: self.mtime_ms,
            atime_ms: self.atime_ms,
            replication,
            block_size,
            children,
            under_construction: self.file().is_some_and(|f| f.uc.is_some()),
        }
    }
}

/// What `getFileInfo` tells about an inode (HDFS's `HdfsFileStatus`, without the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    pub id: u64,
    pub is_dir: bool,
    pub length: u64,
    pub owner: String,
    pub group: String,
    pub perm: u16,
    pub mtime_ms: u64,
    pub atime_ms: u64,
    pub replication: u16,
    pub block_size: u64,
    /// Number of children (directories).
    pub children: u64,
    pub under_construction: bool,
}

/// One log entry: who asks for what, and when (the proposer's clock, read once, outside the
/// state machine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time_ms: u64,
    pub user: String,
    pub groups: Vec<String>,
    /// The RPC client's id, with `call_id` the retry-cache key ([`NO_CLIENT`]: none).
    pub client_id: [u8; 16],
    pub call_id: u64,
    pub op: Op,
}

/// The namespace's write operations: one per HDFS ClientProtocol write (and the NameNode's own
/// lease-recovery steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Mkdirs {
        path: String,
        perm: u16,
        create_parent: bool,
    },
    Create {
        path: String,
        perm: u16,
        overwrite: bool,
        create_parent: bool,
        replication: u16,
        block_size: u64,
        client_name: String,
        client_machine: String,
    },
    /// Allocates the next block of a file open for writing; `previous` is the client's last
    /// block (final length), `None` for the first block.
    AddBlock {
        path: String,
        client_name: String,
        previous: Option<Block>,
    },
    AbandonBlock {
        path: String,
        client_name: String,
        block_id: u64,
    },
    /// Closes a file; `last` is the client's last block with its final length.
    Complete {
        path: String,
        client_name: String,
        last: Option<Block>,
    },
    /// Reopens a file for writing: its last block if that is partial (and `new_block` is
    /// false), else the next AddBlock starts a new block.
    Append {
        path: String,
        client_name: String,
        client_machine: String,
        new_block: bool,
    },
    /// Pipeline recovery: the last block of an open file gets a new generation stamp and
    /// length. `new_gs` must exceed the old one and not exceed this entry's index (the caller
    /// takes it from the log, e.g. the index of the entry that carries it), so later
    /// allocations from the index stay above it.
    UpdateBlock {
        block_id: u64,
        client_name: String,
        new_gs: u64,
        new_len: u64,
    },
    /// HDFS `rename2`: `dst` is the new name (never "into" a directory).
    Rename {
        src: String,
        dst: String,
        overwrite: bool,
    },
    Delete {
        path: String,
        recursive: bool,
    },
    SetPermission {
        path: String,
        perm: u16,
    },
    SetOwner {
        path: String,
        owner: Option<String>,
        group: Option<String>,
    },
    SetReplication {
        path: String,
        replication: u16,
    },
    SetTimes {
        path: String,
        mtime_ms: Option<u64>,
        atime_ms: Option<u64>,
    },
    RenewLease {
        client_name: String,
    },
    /// Starts lease recovery of one file now (HDFS `recoverLease`, or the NameNode after the
    /// hard limit): closes it at once if no block is being written, else hands its lease to
    /// [`RECOVERY_HOLDER`] and orders block recovery ([`Outcome::recovery`]). Replies whether
    /// the file is closed.
    BeginRecovery {
        path: String,
    },
    /// Ends lease recovery (HDFS `commitBlockSynchronization`): closes the file with its last
    /// block as recovered (`None`: drop the block being written, no replica had data).
    /// Superuser only: the NameNode proposes it.
    RecoverLease {
        path: String,
        last: Option<Block>,
    },
    /// HDFS `truncate`: cuts a closed file to `new_length`. Blocks wholly past it go at once.
    /// Replies true if that is all (the cut falls on a block boundary); false if the new last
    /// block must be cut on the DataNodes first: the file stays open under `client_name`'s
    /// lease and the entry orders a block recovery ([`Outcome::recovery`]) whose
    /// [`Op::RecoverLease`] closes it.
    Truncate {
        path: String,
        new_length: u64,
        client_name: String,
        client_machine: String,
    },
    /// HDFS `concat`: appends the blocks of `srcs`, in order, to `target` and removes `srcs`.
    Concat {
        target: String,
        srcs: Vec<String>,
    },
}

impl Op {
    /// The lease holder an op names, if any.
    fn client_name(&self) -> Option<&str> {
        match self {
            Op::Create { client_name, .. }
            | Op::AddBlock { client_name, .. }
            | Op::AbandonBlock { client_name, .. }
            | Op::Complete { client_name, .. }
            | Op::Append { client_name, .. }
            | Op::UpdateBlock { client_name, .. }
            | Op::Truncate { client_name, .. }
            | Op::RenewLease { client_name } => Some(client_name),
            _ => None,
        }
    }

    /// Ops whose success is remembered in the retry cache.
    fn at_most_once(&self) -> bool {
        matches!(
            self,
            Op::Create { .. }
                | Op::Append { .. }
                | Op::Rename { .. }
                | Op::Delete { .. }
                | Op::AddBlock { .. }
                | Op::Complete { .. }
                | Op::Truncate { .. }
                | Op::Concat { .. }
        )
    }
}

/// A successful op's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Done,
    Bool(bool),
    Status(FileStatus),
    Block(Block),
    Appended { status: FileStatus, last: Option<Block> },
}

/// A block recovery the NameNode must run: sync the replicas of `block` to a common length
/// under generation stamp `recovery_id`, then propose [`Op::RecoverLease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryOrder {
    pub path: String,
    pub file_id: u64,
    pub block: Block,
    pub recovery_id: u64,
    /// A truncate's recovery: the common length is at most this.
    pub truncate_to: Option<u64>,
}

/// What applying one entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: Result<Reply, Error>,
    /// Blocks no file refers to any more (deleted, overwritten, abandoned, dropped by
    /// recovery): the block map invalidates their replicas.
    pub removed_blocks: Vec<Block>,
    /// Set when the entry started a lease recovery (even if it failed, as a create of a file
    /// whose writer passed the soft limit does: RecoveryInProgress).
    pub recovery: Option<RecoveryOrder>,
    /// The reply came from the retry cache; nothing changed.
    pub retried: bool,
    /// The entry's log index. It exceeds every block id and generation stamp allocated
    /// before it, so a caller may hand it out as a new generation stamp.
    pub index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Entry time of the last renewal.
    pub last_renewed_ms: u64,
    /// Inode ids of the files it holds open.
    pub files: BTreeSet<u64>,
}

/// A lease past the soft limit, as [`Namespace::expired_leases`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredLease {
    pub holder: String,
    pub last_renewed_ms: u64,
    pub paths: Vec<String>,
    /// Past the hard limit too: the NameNode recovers its files (BeginRecovery).
    pub past_hard: bool,
}

/// A page of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// (name, status), sorted by name; a file lists itself under the name "".
    pub entries: Vec<(String, FileStatus)>,
    /// Entries after this page.
    pub remaining: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContentSummary {
    pub length: u64,
    pub files: u64,
    /// Directories, the summarized one included.
    pub dirs: u64,
    /// Bytes stored on DataNodes: length × replication, per file.
    pub space_consumed: u64,
}

/// The blocks of a file, for `getBlockLocations` (locations come from the block map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBlocks {
    pub length: u64,
    pub blocks: Vec<Block>,
    pub under_construction: bool,
    /// The last block is being written: its length may grow.
    pub last_open: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RetryKey {
    client_id: [u8; 16],
    call_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cached {
    time_ms: u64,
    reply: Reply,
}

/// The namespace. Equal states answer every read and every later entry identically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    limits: Limits,
    last_index: u64,
    inodes: HashMap<u64, Inode>,
    /// Block id -> the id of the file that holds it (derived from the inodes).
    block_files: HashMap<u64, u64>,
    leases: BTreeMap<String, Lease>,
    retry: BTreeMap<RetryKey, Cached>,
    retry_by_time: BTreeSet<(u64, RetryKey)>,
}

type Res<T> = Result<T, Error>;

/// The context of one entry's application.
struct Cx<'a> {
    index: u64,
    time: u64,
    caller: Caller<'a>,
    /// Inode ids handed out so far by this entry.
    ids: u64,
    removed: Vec<Block>,
    recovery: Option<RecoveryOrder>,
}

impl Cx<'_> {
    fn new_id(&mut self) -> u64 {
        assert!(self.ids < 1 << ID_SHIFT, "one entry created more than {} inodes", 1u64 << ID_SHIFT);
        let id = self.index << ID_SHIFT | self.ids;
        self.ids += 1;
        id
    }
}

/// A path resolved against the tree: `ids[0]` is the root, `ids[i]` the inode of the first i
/// components, or `None` from the first missing one (or below a file) on.
struct Iip {
    comps: Vec<String>,
    ids: Vec<Option<u64>>,
}

impl Iip {
    fn path(&self) -> String {
        self.prefix(self.comps.len())
    }

    /// The path of the first `n` components.
    fn prefix(&self, n: usize) -> String {
        let c: Vec<&str> = self.comps[..n].iter().map(String::as_str).collect();
        path::join(&c)
    }

    fn last(&self) -> Option<u64> {
        *self.ids.last().expect("ids holds the root")
    }

    fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    fn name(&self) -> &str {
        self.comps.last().map_or("", String::as_str)
    }

    /// The parent's position in `ids` (not for the root).
    fn parent_pos(&self) -> usize {
        self.comps.len() - 1
    }

    fn parent(&self) -> Option<u64> {
        if self.is_root() {
            None
        } else {
            self.ids[self.parent_pos()]
        }
    }

    /// The deepest existing proper ancestor: (position, id). The root always exists.
    fn ancestor(&self) -> (usize, u64) {
        let end = self.comps.len().max(1);
        (0..end).rev().find_map(|i| self.ids[i].map(|id| (i, id))).expect("the root exists")
    }

    /// The position of the first missing component, if any.
    fn first_missing(&self) -> Option<usize> {
        self.ids.iter().position(Option::is_none)
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Namespace {
    /// An empty namespace: `/` owned by the superuser, group supergroup, 0o755.
    pub fn new(limits: Limits) -> Self {
        let root = Inode {
            id: ROOT_ID,
            parent: 0,
            name: String::new(),
            owner: SUPERUSER.into(),
            group: SUPERGROUP.into(),
            perm: 0o755,
            mtime_ms: 0,
            atime_ms: 0,
            kind: InodeKind::Dir { children: BTreeMap::new() },
        };
        Namespace {
            limits,
            last_index: 0,
            inodes: HashMap::from([(ROOT_ID, root)]),
            block_files: HashMap::new(),
            leases: BTreeMap::new(),
            retry: BTreeMap::new(),
            retry_by_time: BTreeSet::new(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The index of the last entry applied (0: none).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    pub fn inode(&self, id: u64) -> Option<&Inode> {
        self.inodes.get(&id)
    }

    /// Every file, in no particular order (the NameNode loads their blocks into its block map
    /// at start).
    pub fn files(&self) -> impl Iterator<Item = (u64, &FileInfo)> {
        self.inodes.values().filter_map(|i| i.file().map(|f| (i.id, f)))
    }

    /// The inode at `path`, without permission checks (for the NameNode's own use).
    pub fn lookup(&self, p: &str) -> Option<&Inode> {
        let iip = self.resolve(p).ok()?;
        iip.last().and_then(|id| self.inodes.get(&id))
    }

    /// The full path of an inode.
    pub fn path_of(&self, id: u64) -> Option<String> {
        let mut names = Vec::new();
        let mut cur = self.inodes.get(&id)?;
        while cur.id != ROOT_ID {
            names.push(cur.name.as_str());
            cur = self.inodes.get(&cur.parent)?;
        }
        names.reverse();
        Some(path::join(&names))
    }

    /// The file that holds a block, and the block as the namespace knows it.
    pub fn file_of_block(&self, block_id: u64) -> Option<(u64, Block)> {
        let file_id = *self.block_files.get(&block_id)?;
        let b = self.inodes.get(&file_id)?.file()?.blocks.iter().find(|b| b.id == block_id)?;
        Some((file_id, *b))
    }

    pub fn leases(&self) -> &BTreeMap<String, Lease> {
        &self.leases
    }

    /// Leases not renewed within `soft_ms` of `now_ms` (the caller's clock, outside the state
    /// machine), oldest first; `past_hard` marks those whose files the NameNode must recover.
    pub fn expired_leases(&self, now_ms: u64, soft_ms: u64, hard_ms: u64) -> Vec<ExpiredLease> {
        let mut v: Vec<ExpiredLease> = self
            .leases
            .iter()
            .filter(|(_, l)| now_ms.saturating_sub(l.last_renewed_ms) > soft_ms)
            .map(|(holder, l)| ExpiredLease {
                holder: holder.clone(),
                last_renewed_ms: l.last_renewed_ms,
                paths: l.files.iter().filter_map(|id| self.path_of(*id)).collect(),
                past_hard: now_ms.saturating_sub(l.last_renewed_ms) > hard_ms,
            })
            .collect();
        v.sort_by(|a, b| (a.last_renewed_ms, &a.holder).cmp(&(b.last_renewed_ms, &b.holder)));
        v
    }

    /// Entries in the retry cache.
    pub fn retry_cache_len(&self) -> usize {
        self.retry.len()
    }

    // ---- reads ---------------------------------------------------------------------------------

    /// HDFS `getFileInfo`: `None` if nothing is there. Needs EXECUTE on every ancestor.
    pub fn get_file_info(&self, p: &str, caller: &Caller) -> Res<Option<FileStatus>> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, caller)?;
        Ok(iip.last().map(|id| self.inodes[&id].status()))
    }

    /// HDFS `getListing`: up to `limit` children after `start_after`, sorted by name. Needs
    /// READ and EXECUTE on a directory; a file lists itself.
    pub fn list(&self, p: &str, caller: &Caller, start_after: &str, limit: usize) -> Res<Listing> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, caller)?;
        let Some(id) = iip.last() else {
            return Err(Error::FileNotFound(format!("File {} does not exist.", iip.path())));
        };
        let inode = &self.inodes[&id];
        let Some(children) = inode.children() else {
            return Ok(Listing { entries: vec![(String::new(), inode.status())], remaining: 0 });
        };
        caller.check(inode, &iip.path(), READ | EXECUTE)?;
        let mut it = children.range::<str, _>((Bound::Excluded(start_after), Bound::Unbounded));
        let entries = it.by_ref().take(limit).map(|(n, c)| (n.clone(), self.inodes[c].status())).collect();
        Ok(Listing { entries, remaining: it.count() as u64 })
    }

    /// HDFS `getContentSummary`: needs READ and EXECUTE on every directory of the subtree.
    pub fn content_summary(&self, p: &str, caller: &Caller) -> Res<ContentSummary> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, caller)?;
        let Some(id) = iip.last() else {
            return Err(Error::FileNotFound(format!("File does not exist: {}", iip.path())));
        };
        let mut sum = ContentSummary::default();
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let inode = &self.inodes[&id];
            match &inode.kind {
                InodeKind::Dir { children } => {
                    if !caller.allows(inode, READ | EXECUTE) {
                        let path = self.path_of(id).unwrap_or_default();
                        caller.check(inode, &path, READ | EXECUTE)?;
                    }
                    sum.dirs += 1;
                    stack.extend(children.values().copied());
                }
                InodeKind::File(f) => {
                    let len = f.len();
                    sum.files += 1;
                    sum.length += len;
                    sum.space_consumed += len * u64::from(f.replication);
                }
            }
        }
        Ok(sum)
    }

    /// The blocks of a file, for HDFS `getBlockLocations`. Needs READ on the file.
    pub fn block_locations_of(&self, p: &str, caller: &Caller) -> Res<FileBlocks> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, caller)?;
        let path = iip.path();
        let Some(id) = iip.last() else {
            return Err(Error::FileNotFound(format!("File does not exist: {path}")));
        };
        let inode = &self.inodes[&id];
        let Some(f) = inode.file() else {
            return Err(Error::FileNotFound(format!("Path is not a file: {path}")));
        };
        caller.check(inode, &path, READ)?;
        Ok(FileBlocks {
            length: f.len(),
            blocks: f.blocks.clone(),
            under_construction: f.uc.is_some(),
            last_open: f.uc.as_ref().is_some_and(|u| u.open_block),
        })
    }

    // ---- resolution and checks ---------------------------------------------------------------

    fn resolve(&self, p: &str) -> Res<Iip> {
        let comps = path::components(p)?;
        let mut ids = Vec::with_capacity(comps.len() + 1);
        let mut cur = Some(ROOT_ID);
        ids.push(cur);
        for c in &comps {
            cur = cur.and_then(|id| self.inodes[&id].children().and_then(|ch| ch.get(*c).copied()));
            ids.push(cur);
        }
        Ok(Iip { comps: comps.into_iter().map(String::from).collect(), ids })
    }

    /// Every existing proper ancestor must be a directory (ParentNotDirectory, even for the
    /// superuser) that the caller may EXECUTE, as HDFS's `checkTraverse`.
    fn traverse(&self, iip: &Iip, caller: &Caller) -> Res<()> {
        for i in 0..iip.comps.len() {
            let Some(id) = iip.ids[i] else { break };
            let inode = &self.inodes[&id];
            if !inode.is_dir() {
                return Err(Error::ParentNotDirectory(format!("{} (is not a directory)", iip.prefix(i))));
            }
            if !caller.allows(inode, EXECUTE) {
                caller.check(inode, &iip.prefix(i), EXECUTE)?;
            }
        }
        Ok(())
    }

    fn check_at(&self, iip: &Iip, pos: usize, caller: &Caller, access: u16) -> Res<()> {
        match iip.ids[pos] {
            Some(id) => caller.check(&self.inodes[&id], &iip.prefix(pos), access),
            None => Ok(()),
        }
    }

    /// HDFS's `ancestorAccess`: on the deepest existing proper ancestor (none for the root).
    fn check_ancestor(&self, iip: &Iip, caller: &Caller, access: u16) -> Res<()> {
        if iip.is_root() {
            return Ok(());
        }
        let (pos, _) = iip.ancestor();
        self.check_at(iip, pos, caller, access)
    }

    /// HDFS's `parentAccess`: the sticky bit (when the entry exists), then `access` on the
    /// parent.
    fn check_parent(&self, iip: &Iip, caller: &Caller, access: u16) -> Res<()> {
        if iip.is_root() {
            return Ok(());
        }
        let pos = iip.parent_pos();
        if let (Some(parent), Some(last)) = (iip.ids[pos], iip.last()) {
            caller.check_sticky(&self.inodes[&parent], &iip.prefix(pos), &self.inodes[&last], &iip.path())?;
        }
        self.check_at(iip, pos, caller, access)
    }

    fn check_path(&self, iip: &Iip, caller: &Caller, access: u16) -> Res<()> {
        self.check_at(iip, iip.comps.len(), caller, access)
    }

    /// HDFS's `verifyParentDir`, for ops without create-parent.
    fn verify_parent_dir(&self, iip: &Iip) -> Res<()> {
        if iip.is_root() {
            return Ok(());
        }
        let pos = iip.parent_pos();
        match iip.ids[pos] {
            None => Err(Error::FileNotFound(format!("Parent directory doesn't exist: {}", iip.prefix(pos)))),
            Some(id) if !self.inodes[&id].is_dir() => {
                Err(Error::ParentNotDirectory(format!("Parent path is not a directory: {}", iip.prefix(pos))))
            }
            Some(_) => Ok(()),
        }
    }

    /// For a recursive delete: ALL on every non-empty directory of the subtree, and the sticky
    /// bit of each for its children (HDFS `checkSubAccess` with `ignoreEmptyDir`).
    fn check_sub_access(&self, id: u64, caller: &Caller) -> Res<()> {
        if caller.is_superuser() {
            return Ok(());
        }
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let inode = &self.inodes[&id];
            let Some(children) = inode.children() else { continue };
            if children.is_empty() {
                continue;
            }
            let path = || self.path_of(id).unwrap_or_default();
            if !caller.allows(inode, ALL) {
                caller.check(inode, &path(), ALL)?;
            }
            for (name, c) in children {
                let child = &self.inodes[c];
                if caller.check_sticky(inode, "", child, "").is_err() {
                    let p = path();
                    let cp = if p == "/" { format!("/{name}") } else { format!("{p}/{name}") };
                    caller.check_sticky(inode, &p, child, &cp)?;
                }
                if child.is_dir() {
                    stack.push(*c);
                }
            }
        }
        Ok(())
    }

    // ---- writes --------------------------------------------------------------------------------

    /// Applies the entry at log `index` (indexes must grow).
    pub fn apply(&mut self, index: u64, e: &Entry) -> Outcome {
        assert!(index > self.last_index, "log index {index} applied out of order (last {})", self.last_index);
        assert!(index < 1 << (64 - ID_SHIFT), "log index {index} too large for inode ids");
        self.last_index = index;
        self.expire_retry(e.time_ms);
        let key = (e.client_id != NO_CLIENT && e.op.at_most_once())
            .then_some(RetryKey { client_id: e.client_id, call_id: e.call_id });
        if let Some(c) = key.and_then(|k| self.retry.get(&k)) {
            return Outcome {
                result: Ok(c.reply.clone()),
                removed_blocks: Vec::new(),
                recovery: None,
                retried: true,
                index,
            };
        }
        let mut cx = Cx {
            index,
            time: e.time_ms,
            caller: Caller::new(&e.user, &e.groups),
            ids: 0,
            removed: Vec::new(),
            recovery: None,
        };
        let result = self.dispatch(&mut cx, &e.op);
        if let (Some(k), Ok(reply)) = (key, &result) {
            self.remember(k, e.time_ms, reply.clone());
        }
        Outcome { result, removed_blocks: cx.removed, recovery: cx.recovery, retried: false, index }
    }

    fn dispatch(&mut self, cx: &mut Cx, op: &Op) -> Res<Reply> {
        if let Some(name) = op.client_name() {
            // A client must not pass for the NameNode's recovery holder and take over the
            // files it is recovering.
            if name.is_empty() || name == RECOVERY_HOLDER {
                return Err(Error::InvalidArgument(format!("Invalid client name \"{name}\"")));
            }
        }
        match op {
            Op::Mkdirs { path, perm, create_parent } => self.mkdirs(cx, path, *perm, *create_parent),
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
                let spec = NewFile { perm: *perm, replication: *replication, block_size: *block_size };
                self.create(cx, path, spec, *overwrite, *create_parent, client_name, client_machine)
            }
            Op::AddBlock { path, client_name, previous } => self.add_block(cx, path, client_name, *previous),
            Op::AbandonBlock { path, client_name, block_id } => self.abandon_block(cx, path, client_name, *block_id),
            Op::Complete { path, client_name, last } => self.complete(cx, path, client_name, *last),
            Op::Append { path, client_name, client_machine, new_block } => {
                self.append(cx, path, client_name, client_machine, *new_block)
            }
            Op::UpdateBlock { block_id, client_name, new_gs, new_len } => {
                self.update_block(cx, *block_id, client_name, *new_gs, *new_len)
            }
            Op::Rename { src, dst, overwrite } => self.rename(cx, src, dst, *overwrite),
            Op::Delete { path, recursive } => self.delete(cx, path, *recursive),
            Op::SetPermission { path, perm } => self.set_permission(cx, path, *perm),
            Op::SetOwner { path, owner, group } => self.set_owner(cx, path, owner.as_deref(), group.as_deref()),
            Op::SetReplication { path, replication } => self.set_replication(cx, path, *replication),
            Op::SetTimes { path, mtime_ms, atime_ms } => self.set_times(cx, path, *mtime_ms, *atime_ms),
            Op::RenewLease { client_name } => {
                if let Some(l) = self.leases.get_mut(client_name) {
                    l.last_renewed_ms = cx.time;
                }
                Ok(Reply::Done)
            }
            Op::BeginRecovery { path } => self.begin_recovery(cx, path),
            Op::RecoverLease { path, last } => self.recover_lease(cx, path, *last),
            Op::Truncate { path, new_length, client_name, client_machine } => {
                self.truncate(cx, path, *new_length, client_name, client_machine)
            }
            Op::Concat { target, srcs } => self.concat(cx, target, srcs),
        }
    }

    fn mkdirs(&mut self, cx: &mut Cx, p: &str, perm: u16, create_parent: bool) -> Res<Reply> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, &cx.caller)?;
        if let Some(id) = iip.last() {
            if !self.inodes[&id].is_dir() {
                return Err(Error::FileAlreadyExists(format!("Path is not a directory: {}", iip.path())));
            }
            return Ok(Reply::Bool(true));
        }
        self.check_ancestor(&iip, &cx.caller, WRITE)?;
        if !create_parent {
            self.verify_parent_dir(&iip)?;
        }
        let last = self.create_ancestors(cx, &iip, perm);
        self.add_child(cx, last, iip.name(), perm & MODE_MASK, InodeKind::Dir { children: BTreeMap::new() });
        Ok(Reply::Bool(true))
    }

    /// Creates the missing directories above the last component, with the permission of the
    /// new entry plus u+wx (HDFS `addImplicitUwx`); returns the parent's id.
    fn create_ancestors(&mut self, cx: &mut Cx, iip: &Iip, perm: u16) -> u64 {
        let parent_pos = iip.parent_pos();
        let mut parent = iip.ancestor().1;
        if let Some(first) = iip.first_missing() {
            for i in first..=parent_pos {
                let kind = InodeKind::Dir { children: BTreeMap::new() };
                parent = self.add_child(cx, parent, &iip.comps[i - 1], (perm & 0o777) | 0o300, kind);
            }
        }
        parent
    }

    /// Adds a new inode under `parent` (which must be a directory without that name): owned
    /// by the caller, with the parent's group (HDFS's BSD rule).
    fn add_child(&mut self, cx: &mut Cx, parent: u64, name: &str, perm: u16, kind: InodeKind) -> u64 {
        let id = cx.new_id();
        let is_dir = matches!(kind, InodeKind::Dir { .. });
        let p = self.inodes.get_mut(&parent).expect("parent exists");
        p.mtime_ms = cx.time;
        let group = p.group.clone();
        let prev = p.children_mut().expect("parent is a directory").insert(name.to_string(), id);
        assert!(prev.is_none(), "{name} already in {parent}");
        let inode = Inode {
            id,
            parent,
            name: name.to_string(),
            owner: cx.caller.user.to_string(),
            group,
            perm,
            mtime_ms: cx.time,
            atime_ms: if is_dir { 0 } else { cx.time },
            kind,
        };
        self.inodes.insert(id, inode);
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        cx: &mut Cx,
        p: &str,
        spec: NewFile,
        overwrite: bool,
        create_parent: bool,
        client: &str,
        machine: &str,
    ) -> Res<Reply> {
        let iip = self.resolve(p)?;
        let path = iip.path();
        self.verify_replication(spec.replication)?;
        if spec.block_size < self.limits.min_block_size {
            return Err(Error::InvalidArgument(format!(
                "Specified block size is less than configured minimum value \
                 (dfs.namenode.fs-limits.min-block-size): {} < {}",
                spec.block_size, self.limits.min_block_size
            )));
        }
        self.traverse(&iip, &cx.caller)?;
        self.check_ancestor(&iip, &cx.caller, WRITE)?;
        match iip.last() {
            Some(id) if self.inodes[&id].is_dir() => {
                return Err(Error::FileAlreadyExists(format!("{path} already exists as a directory")));
            }
            Some(_) if overwrite => self.check_path(&iip, &cx.caller, WRITE)?,
            Some(_) => {}
            None if !create_parent => self.verify_parent_dir(&iip)?,
            None => {}
        }
        if let Some(id) = iip.last() {
            if !overwrite {
                // A writer past the soft limit loses its lease here (the create still fails).
                self.recover_lease_internal(cx, id, &path, client, false, "create")?;
                return Err(Error::FileAlreadyExists(format!("{path} for client {machine} already exists")));
            }
            self.remove_subtree(cx, id);
        }
        let parent = self.create_ancestors(cx, &iip, spec.perm);
        let uc = UnderConstruction {
            holder: client.to_string(),
            machine: machine.to_string(),
            open_block: false,
            truncate_to: None,
        };
        let file =
            FileInfo { replication: spec.replication, block_size: spec.block_size, blocks: Vec::new(), uc: Some(uc) };
        let id = self.add_child(cx, parent, iip.name(), spec.perm & MODE_MASK, InodeKind::File(file));
        self.lease_add(client, id, cx.time);
        Ok(Reply::Status(self.inodes[&id].status()))
    }

    fn verify_replication(&self, r: u16) -> Res<()> {
        if r == 0 || r > self.limits.max_replication {
            return Err(Error::InvalidArgument(format!(
                "Requested replication factor of {r} is outside the allowed range [1, {}]",
                self.limits.max_replication
            )));
        }
        Ok(())
    }

    /// HDFS `recoverLeaseInternal`: Ok(true) if the file is (now) closed; Ok(false) if a
    /// forced recovery started; errors say why another client may not take the file yet.
    fn recover_lease_internal(
        &mut self,
        cx: &mut Cx,
        id: u64,
        path: &str,
        requester: &str,
        force: bool,
        op: &str,
    ) -> Res<bool> {
        let Some(uc) = self.inodes[&id].file().and_then(|f| f.uc.clone()) else { return Ok(true) };
        let refuse = |why: String| format!("Failed to {op} {path} for {requester}: {why}");
        if !force && uc.holder == requester {
            return Err(Error::AlreadyBeingCreated(refuse(format!(
                "{requester} is already the current lease holder."
            ))));
        }
        if force {
            return Ok(self.release_lease(cx, id, path));
        }
        if uc.holder == RECOVERY_HOLDER {
            return Err(Error::RecoveryInProgress(refuse(format!(
                "another recovery is in progress by {RECOVERY_HOLDER}"
            ))));
        }
        let renewed = self.leases.get(&uc.holder).map_or(0, |l| l.last_renewed_ms);
        if cx.time.saturating_sub(renewed) > self.limits.lease_soft_ms {
            if self.release_lease(cx, id, path) {
                return Ok(true);
            }
            return Err(Error::RecoveryInProgress(refuse("lease recovery is in progress. Try again later.".into())));
        }
        if uc.truncate_to.is_some() {
            // HDFS: the last block is UNDER_RECOVERY.
            return Err(Error::RecoveryInProgress(refuse(format!(
                "another recovery is in progress by {} on {}",
                uc.holder, uc.machine
            ))));
        }
        Err(Error::AlreadyBeingCreated(refuse(format!(
            "this file lease is currently owned by {} on {}",
            uc.holder, uc.machine
        ))))
    }

    /// HDFS `internalReleaseLease`: closes the file if no block is being written (true), else
    /// gives the lease to the NameNode and orders block recovery (false).
    fn release_lease(&mut self, cx: &mut Cx, id: u64, path: &str) -> bool {
        let f = self.inodes[&id].file().expect("a file");
        let uc = f.uc.clone().expect("under construction");
        match f.blocks.last().copied() {
            Some(block) if uc.open_block => {
                self.lease_remove(&uc.holder, id);
                self.lease_add(RECOVERY_HOLDER, id, cx.time);
                let f = self.file_mut(id);
                f.uc.as_mut().expect("under construction").holder = RECOVERY_HOLDER.into();
                cx.recovery = Some(RecoveryOrder {
                    path: path.to_string(),
                    file_id: id,
                    block,
                    recovery_id: cx.index,
                    truncate_to: uc.truncate_to,
                });
                false
            }
            _ => {
                self.close(cx, id);
                true
            }
        }
    }

    /// Closes an open file: no lease holds it any more.
    fn close(&mut self, cx: &Cx, id: u64) {
        let inode = self.inodes.get_mut(&id).expect("file exists");
        inode.mtime_ms = cx.time;
        let f = inode.file_mut().expect("a file");
        let uc = f.uc.take().expect("under construction");
        self.lease_remove(&uc.holder, id);
    }

    fn file_mut(&mut self, id: u64) -> &mut FileInfo {
        self.inodes.get_mut(&id).and_then(Inode::file_mut).expect("a file")
    }

    fn lease_add(&mut self, holder: &str, file: u64, time: u64) {
        let l = self
            .leases
            .entry(holder.to_string())
            .or_insert_with(|| Lease { last_renewed_ms: time, files: BTreeSet::new() });
        l.last_renewed_ms = time;
        l.files.insert(file);
    }

    fn lease_remove(&mut self, holder: &str, file: u64) {
        if let Some(l) = self.leases.get_mut(holder) {
            l.files.remove(&file);
            if l.files.is_empty() {
                self.leases.remove(holder);
            }
        }
    }

    /// HDFS `checkLease`: the file exists, is open, and `client` holds its lease.
    fn check_lease(&self, iip: &Iip, client: &str) -> Res<u64> {
        let path = iip.path();
        let Some(id) = iip.last() else {
            return Err(Error::FileNotFound(format!("File does not exist: {path} (holder {client})")));
        };
        let Some(f) = self.inodes[&id].file() else {
            return Err(Error::LeaseExpired(format!("INode is not a regular file: {path} (holder {client})")));
        };
        let Some(uc) = &f.uc else {
            return Err(Error::LeaseExpired(format!("File is not open for writing: {path} (holder {client})")));
        };
        if uc.holder != client {
            return Err(Error::LeaseExpired(format!(
                "Client (={client}) is not the lease owner (={}): {path}",
                uc.holder
            )));
        }
        if uc.truncate_to.is_some() {
            // Its last block belongs to the truncate's recovery, not to a writer.
            return Err(Error::RecoveryInProgress(format!("{path} is being truncated.")));
        }
        Ok(id)
    }

    fn add_block(&mut self, cx: &mut Cx, p: &str, client: &str, previous: Option<Block>) -> Res<Reply> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, &cx.caller)?;
        let id = self.check_lease(&iip, client)?;
        let f = self.inodes[&id].file().expect("a file");
        let last = f.blocks.last().copied();
        if !same_block(previous, last) {
            return Err(Error::InvalidBlock(format!(
                "Cannot allocate block in {}: passed 'previous' block {previous:?} does not match actual last block in file {last:?}",
                iip.path()
            )));
        }
        let block = Block { id: cx.index, gs: cx.index, len: 0 };
        let f = self.file_mut(id);
        let uc = f.uc.as_mut().expect("under construction");
        if let (Some(prev), true) = (previous, uc.open_block) {
            f.blocks.last_mut().expect("a last block").len = prev.len;
        }
        f.uc.as_mut().expect("under construction").open_block = true;
        f.blocks.push(block);
        self.block_files.insert(block.id, id);
        Ok(Reply::Block(block))
    }

    fn abandon_block(&mut self, cx: &mut Cx, p: &str, client: &str, block_id: u64) -> Res<Reply> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, &cx.caller)?;
        let id = self.check_lease(&iip, client)?;
        let f = self.file_mut(id);
        let open = f.uc.as_ref().is_some_and(|u| u.open_block);
        // Abandoning anything but the block being written is a no-op, as in HDFS.
        if open && f.blocks.last().is_some_and(|b| b.id == block_id) {
            let b = f.blocks.pop().expect("a last block");
            f.uc.as_mut().expect("under construction").open_block = false;
            self.block_files.remove(&b.id);
            cx.removed.push(b);
        }
        Ok(Reply::Done)
    }

    fn complete(&mut self, cx: &mut Cx, p: &str, client: &str, last: Option<Block>) -> Res<Reply> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, &cx.caller)?;
        let id = match self.check_lease(&iip, client) {
            Ok(id) => id,
            Err(e @ Error::LeaseExpired(_)) => {
                // A retried complete of a file already closed with that last block succeeds
                // (HDFS-3031).
                let closed = iip.last().and_then(|id| self.inodes[&id].file()).filter(|f| f.uc.is_none());
                return match closed {
                    Some(f) if same_block(last, f.blocks.last().copied()) => Ok(Reply::Bool(true)),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let f = self.inodes[&id].file().expect("a file");
        if !same_block(last, f.blocks.last().copied()) {
            return Err(Error::InvalidBlock(format!(
                "Trying to commit inconsistent block {last:?} of {}: last block is {:?}",
                iip.path(),
                f.blocks.last()
            )));
        }
        let f = self.file_mut(id);
        if let (Some(b), true) = (last, f.uc.as_ref().is_some_and(|u| u.open_block)) {
            f.blocks.last_mut().expect("a last block").len = b.len;
        }
        self.close(cx, id);
        Ok(Reply::Bool(true))
    }

    fn append(&mut self, cx: &mut Cx, p: &str, client: &str, machine: &str, new_block: bool) -> Res<Reply> {
        let iip = self.resolve(p)?;
        let path = iip.path();
        self.traverse(&iip, &cx.caller)?;
        let id = match iip.last() {
            Some(id) if self.inodes[&id].is_dir() => {
                return Err(Error::FileAlreadyExists(format!(
                    "Cannot append to directory {path}; already exists as a directory."
                )));
            }
            Some(id) => id,
            None => {
                return Err(Error::FileNotFound(format!(
                    "Failed to append to non-existent file {path} for client {machine}"
                )));
            }
        };
        self.check_path(&iip, &cx.caller, WRITE)?;
        // Unforced, this either finds the file closed (or closes it) or refuses.
        self.recover_lease_internal(cx, id, &path, client, false, "append")?;
        let f = self.file_mut(id);
        let block_size = f.block_size;
        let reopen = !new_block && f.blocks.last().is_some_and(|b| b.len < block_size);
        f.uc = Some(UnderConstruction {
            holder: client.to_string(),
            machine: machine.to_string(),
            open_block: reopen,
            truncate_to: None,
        });
        let last = if reopen { f.blocks.last().copied() } else { None };
        self.lease_add(client, id, cx.time);
        Ok(Reply::Appended { status: self.inodes[&id].status(), last })
    }

    fn update_block(&mut self, cx: &mut Cx, block_id: u64, client: &str, new_gs: u64, new_len: u64) -> Res<Reply> {
        let Some(&id) = self.block_files.get(&block_id) else {
            return Err(Error::InvalidBlock(format!("Block {block_id} does not exist.")));
        };
        let path = self.path_of(id).expect("a live inode has a path");
        let iip = self.resolve(&path)?;
        self.check_lease(&iip, client)?;
        let f = self.inodes[&id].file().expect("a file");
        let open = f.uc.as_ref().is_some_and(|u| u.open_block);
        let last = *f.blocks.last().expect("the file holds the block");
        if !open || last.id != block_id {
            return Err(Error::InvalidBlock(format!("Block {block_id} of {path} is not being written")));
        }
        if new_gs <= last.gs || new_gs > cx.index || new_len < last.len {
            return Err(Error::InvalidBlock(format!(
                "Update of {last:?} to gs {new_gs}, length {new_len} is not valid: \
                 the generation stamp must grow (up to the log index {}) and the length must not shrink",
                cx.index
            )));
        }
        let b = self.file_mut(id).blocks.last_mut().expect("a last block");
        b.gs = new_gs;
        b.len = new_len;
        Ok(Reply::Done)
    }

    fn rename(&mut self, cx: &mut Cx, src: &str, dst: &str, overwrite: bool) -> Res<Reply> {
        // HDFS checks the destination's name before resolving either path.
        path::components(dst).map_err(|_| Error::InvalidPath(format!("Invalid name: {dst}")))?;
        let s = self.resolve(src)?;
        let d = self.resolve(dst)?;
        self.traverse(&s, &cx.caller)?;
        self.traverse(&d, &cx.caller)?;
        let caller = cx.caller;
        self.check_parent(&s, &caller, WRITE)?;
        self.check_ancestor(&d, &caller, WRITE)?;
        let (sp, dp) = (s.path(), d.path());
        let Some(src_id) = s.last() else {
            return Err(Error::FileNotFound(format!("rename source {sp} is not found.")));
        };
        if s.is_root() {
            return Err(Error::InvalidRename("rename source cannot be the root".into()));
        }
        if sp == dp {
            return Err(Error::FileAlreadyExists(format!("The source {sp} and destination {dp} are the same")));
        }
        if dp.starts_with(&sp) && dp.as_bytes().get(sp.len()) == Some(&b'/') {
            return Err(Error::InvalidRename(format!(
                "Rename destination {dp} is a directory or file under source {sp}"
            )));
        }
        if d.is_root() {
            return Err(Error::InvalidRename("rename destination cannot be the root".into()));
        }
        if let Some(dst_id) = d.last() {
            let (si, di) = (&self.inodes[&src_id], &self.inodes[&dst_id]);
            if si.is_dir() != di.is_dir() {
                return Err(Error::InvalidRename(format!("Source {sp} and destination {dp} must both be directories")));
            }
            if !overwrite {
                return Err(Error::FileAlreadyExists(format!("rename destination {dp} already exists")));
            }
            if di.children().is_some_and(|c| !c.is_empty()) {
                return Err(Error::InvalidRename(format!("rename destination directory is not empty: {dp}")));
            }
            // Replacing dst removes it: in a sticky directory only its owner or the
            // directory's may (POSIX rename(2); Hadoop checks only the source's parent).
            let dpos = d.parent_pos();
            let dparent = &self.inodes[&d.ids[dpos].expect("dst exists, so its parent does")];
            caller.check_sticky(dparent, &d.prefix(dpos), di, &dp)?;
        }
        let dst_parent = match d.parent() {
            None => return Err(Error::FileNotFound(format!("rename destination parent {dp} not found."))),
            Some(id) if !self.inodes[&id].is_dir() => {
                return Err(Error::ParentNotDirectory(format!("rename destination parent {dp} is a file.")));
            }
            Some(id) => id,
        };
        if let Some(dst_id) = d.last() {
            self.remove_subtree(cx, dst_id);
        }
        let src_parent = s.parent().expect("a non-root source has a parent");
        self.unlink(src_parent, s.name(), cx.time);
        let name = d.name().to_string();
        let dp_inode = self.inodes.get_mut(&dst_parent).expect("dst parent exists");
        dp_inode.mtime_ms = cx.time;
        dp_inode.children_mut().expect("a directory").insert(name.clone(), src_id);
        let moved = self.inodes.get_mut(&src_id).expect("src exists");
        moved.parent = dst_parent;
        moved.name = name;
        Ok(Reply::Done)
    }

    fn unlink(&mut self, parent: u64, name: &str, time: u64) {
        let p = self.inodes.get_mut(&parent).expect("parent exists");
        p.mtime_ms = time;
        p.children_mut().expect("a directory").remove(name);
    }

    /// Removes an inode and everything under it: its blocks go to `cx.removed`, its open
    /// files' leases are released.
    fn remove_subtree(&mut self, cx: &mut Cx, id: u64) {
        let inode = &self.inodes[&id];
        let (parent, name) = (inode.parent, inode.name.clone());
        self.unlink(parent, &name, cx.time);
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let inode = self.inodes.remove(&id).expect("subtree inode exists");
            match inode.kind {
                InodeKind::Dir { children } => stack.extend(children.into_values()),
                InodeKind::File(f) => {
                    if let Some(uc) = f.uc {
                        self.lease_remove(&uc.holder, id);
                    }
                    for b in f.blocks {
                        self.block_files.remove(&b.id);
                        cx.removed.push(b);
                    }
                }
            }
        }
    }

    fn delete(&mut self, cx: &mut Cx, p: &str, recursive: bool) -> Res<Reply> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, &cx.caller)?;
        let last = iip.last();
        if let Some(id) = last {
            if !recursive && self.inodes[&id].children().is_some_and(|c| !c.is_empty()) {
                return Err(Error::PathIsNotEmptyDirectory(format!("`{}' is non empty", iip.path())));
            }
        }
        let caller = cx.caller;
        self.check_parent(&iip, &caller, WRITE)?;
        if let Some(id) = last {
            self.check_sub_access(id, &caller)?;
        }
        match last {
            // HDFS answers false, not an error, for a missing path and for the root.
            None => Ok(Reply::Bool(false)),
            Some(_) if iip.is_root() => Ok(Reply::Bool(false)),
            Some(id) => {
                self.remove_subtree(cx, id);
                Ok(Reply::Bool(true))
            }
        }
    }

    /// Resolves a path that must exist, for the attribute setters.
    fn existing(&self, cx: &Cx, p: &str) -> Res<(Iip, u64)> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, &cx.caller)?;
        match iip.last() {
            Some(id) => Ok((iip, id)),
            None => Err(Error::FileNotFound(format!("File does not exist: {}", iip.path()))),
        }
    }

    fn set_permission(&mut self, cx: &mut Cx, p: &str, perm: u16) -> Res<Reply> {
        let (iip, id) = self.existing(cx, p)?;
        cx.caller.check_owner(&self.inodes[&id], &iip.path())?;
        self.inodes.get_mut(&id).expect("exists").perm = perm & MODE_MASK;
        Ok(Reply::Done)
    }

    fn set_owner(&mut self, cx: &mut Cx, p: &str, owner: Option<&str>, group: Option<&str>) -> Res<Reply> {
        if owner.is_none() && group.is_none() {
            return Err(Error::InvalidArgument("username == null && group == null".into()));
        }
        let (iip, id) = self.existing(cx, p)?;
        let c = cx.caller;
        c.check_owner(&self.inodes[&id], &iip.path())?;
        if !c.is_superuser() {
            if owner.is_some_and(|o| o != c.user) {
                return Err(Error::AccessControl(format!(
                    "User {} is not a super user (non-super user cannot change owner).",
                    c.user
                )));
            }
            if let Some(g) = group.filter(|g| !c.in_group(g)) {
                return Err(Error::AccessControl(format!("User {} does not belong to {g}", c.user)));
            }
        }
        let inode = self.inodes.get_mut(&id).expect("exists");
        if let Some(o) = owner {
            inode.owner = o.to_string();
        }
        if let Some(g) = group {
            inode.group = g.to_string();
        }
        Ok(Reply::Done)
    }

    fn set_replication(&mut self, cx: &mut Cx, p: &str, replication: u16) -> Res<Reply> {
        self.verify_replication(replication)?;
        let iip = self.resolve(p)?;
        self.traverse(&iip, &cx.caller)?;
        self.check_path(&iip, &cx.caller, WRITE)?;
        // HDFS answers false for a directory or a missing path.
        match iip.last().and_then(|id| self.inodes.get_mut(&id)).and_then(Inode::file_mut) {
            Some(f) => {
                f.replication = replication;
                Ok(Reply::Bool(true))
            }
            None => Ok(Reply::Bool(false)),
        }
    }

    fn set_times(&mut self, cx: &mut Cx, p: &str, mtime: Option<u64>, atime: Option<u64>) -> Res<Reply> {
        let iip = self.resolve(p)?;
        self.traverse(&iip, &cx.caller)?;
        self.check_path(&iip, &cx.caller, WRITE)?;
        let Some(id) = iip.last() else {
            return Err(Error::FileNotFound(format!("File/Directory {} does not exist.", iip.path())));
        };
        let inode = self.inodes.get_mut(&id).expect("exists");
        if let Some(m) = mtime {
            inode.mtime_ms = m;
        }
        if let Some(a) = atime {
            inode.atime_ms = a;
        }
        Ok(Reply::Done)
    }

    fn begin_recovery(&mut self, cx: &mut Cx, p: &str) -> Res<Reply> {
        let iip = self.resolve(p)?;
        let path = iip.path();
        self.traverse(&iip, &cx.caller)?;
        let id = self.file_at(&iip)?;
        if self.inodes[&id].file().is_some_and(|f| f.uc.is_none()) {
            return Ok(Reply::Bool(true));
        }
        self.check_path(&iip, &cx.caller, WRITE)?;
        let user = cx.caller.user;
        let closed = self.recover_lease_internal(cx, id, &path, user, true, "recover lease")?;
        Ok(Reply::Bool(closed))
    }

    fn recover_lease(&mut self, cx: &mut Cx, p: &str, last: Option<Block>) -> Res<Reply> {
        if !cx.caller.is_superuser() {
            return Err(Error::AccessControl(format!(
                "Access denied for user {}. Superuser privilege is required",
                cx.caller.user
            )));
        }
        let iip = self.resolve(p)?;
        let path = iip.path();
        let Some(id) = iip.last().filter(|id| !self.inodes[id].is_dir()) else {
            return Err(Error::FileNotFound(format!("File does not exist: {path}")));
        };
        let f = self.inodes[&id].file().expect("a file");
        let Some(uc) = &f.uc else { return Ok(Reply::Done) };
        let current = f.blocks.last().copied();
        if let (Some(b), Some(t)) = (last, uc.truncate_to) {
            if b.len > t {
                return Err(Error::InvalidBlock(format!(
                    "Recovered block {b:?} of {path} is longer than the truncate's {t} bytes"
                )));
            }
        }
        match (last, current) {
            (Some(b), Some(c)) if uc.open_block && b.id == c.id && b.gs >= c.gs => {
                *self.file_mut(id).blocks.last_mut().expect("a last block") = b;
            }
            (None, Some(c)) if uc.open_block => {
                self.file_mut(id).blocks.pop();
                self.block_files.remove(&c.id);
                cx.removed.push(c);
            }
            (None, _) => {}
            (Some(b), c) => {
                return Err(Error::InvalidBlock(format!(
                    "Recovered block {b:?} of {path} does not match the block being written {c:?}"
                )));
            }
        }
        self.close(cx, id);
        Ok(Reply::Done)
    }

    /// The file an existing path names (HDFS `INodeFile.valueOf`): FileNotFound if nothing is
    /// there or it is a directory.
    fn file_at(&self, iip: &Iip) -> Res<u64> {
        match iip.last() {
            None => Err(Error::FileNotFound(format!("File does not exist: {}", iip.path()))),
            Some(id) if self.inodes[&id].is_dir() => {
                Err(Error::FileNotFound(format!("Path is not a file: {}", iip.path())))
            }
            Some(id) => Ok(id),
        }
    }

    /// HDFS `FSDirTruncateOp.truncate`, in its order of checks.
    fn truncate(&mut self, cx: &mut Cx, p: &str, new_length: u64, client: &str, machine: &str) -> Res<Reply> {
        let iip = self.resolve(p)?;
        let path = iip.path();
        self.traverse(&iip, &cx.caller)?;
        self.check_path(&iip, &cx.caller, WRITE)?;
        let id = self.file_at(&iip)?;
        let f = self.inodes[&id].file().expect("a file");
        if let (Some(t), Some(last)) = (f.uc.as_ref().and_then(|u| u.truncate_to), f.blocks.last()) {
            // The same truncate again waits with the first; another length must wait for it.
            if new_length == f.len() - last.len + t {
                return Ok(Reply::Bool(false));
            }
            return Err(Error::AlreadyBeingCreated(format!(
                "Failed to truncate {path} for {client} on {machine}: {path} is being truncated."
            )));
        }
        // Unforced, this either finds the file closed (or closes it) or refuses.
        self.recover_lease_internal(cx, id, &path, client, false, "truncate")?;
        let old = self.inodes[&id].file().expect("a file").len();
        if new_length == old {
            return Ok(Reply::Bool(true));
        }
        if new_length > old {
            return Err(Error::HadoopIllegalArgument(format!(
                "Cannot truncate to a larger file size. Current size: {old}, truncate size: {new_length}."
            )));
        }
        self.inodes.get_mut(&id).expect("file exists").mtime_ms = cx.time;
        let f = self.file_mut(id);
        // Keep the blocks that start before the new end; the others go now.
        let (mut kept, mut end) = (0, 0);
        for b in &f.blocks {
            if end >= new_length {
                break;
            }
            end += b.len;
            kept += 1;
        }
        let dropped = f.blocks.split_off(kept);
        let last = f.blocks.last().copied();
        for b in dropped {
            self.block_files.remove(&b.id);
            cx.removed.push(b);
        }
        let Some(last) = last.filter(|_| end != new_length) else { return Ok(Reply::Bool(true)) };
        let t = last.len - (end - new_length);
        self.file_mut(id).uc = Some(UnderConstruction {
            holder: client.to_string(),
            machine: machine.to_string(),
            open_block: true,
            truncate_to: Some(t),
        });
        self.lease_add(client, id, cx.time);
        cx.recovery =
            Some(RecoveryOrder { path, file_id: id, block: last, recovery_id: cx.index, truncate_to: Some(t) });
        Ok(Reply::Bool(false))
    }

    /// HDFS `FSDirConcatOp.concat` (Hadoop 3: sources in the target's directory, closed and
    /// not empty, with a preferred block size no larger than the target's; partial blocks
    /// anywhere are fine, as every block carries its own length).
    fn concat(&mut self, cx: &mut Cx, target: &str, srcs: &[String]) -> Res<Reply> {
        if target.is_empty() {
            return Err(Error::IllegalArgument("Target file name is empty".into()));
        }
        if srcs.is_empty() {
            return Err(Error::IllegalArgument("No sources given".into()));
        }
        let caller = cx.caller;
        let t = self.resolve(target)?;
        let tpath = t.path();
        self.traverse(&t, &caller)?;
        self.check_path(&t, &caller, WRITE)?;
        let tid = self.file_at(&t)?;
        let (tparent, tfile) = (self.inodes[&tid].parent, self.inodes[&tid].file().expect("a file"));
        if tfile.uc.is_some() {
            return Err(Error::HadoopIllegalArgument(format!("concat: target file {tpath} is under construction")));
        }
        let bad = |m: String| Err(Error::HadoopIllegalArgument(m));
        let mut ids = Vec::with_capacity(srcs.len());
        for src in srcs {
            let s = self.resolve(src)?;
            let spath = s.path();
            self.traverse(&s, &caller)?;
            self.check_path(&s, &caller, READ)?;
            // Removing the source needs what a delete needs.
            self.check_parent(&s, &caller, WRITE)?;
            let sid = self.file_at(&s)?;
            let (sinode, sfile) = (&self.inodes[&sid], self.inodes[&sid].file().expect("a file"));
            if sinode.parent != tparent {
                return bad(format!("Source file {spath} is not in the same directory with the target {tpath}"));
            }
            if sid == tid {
                return bad(format!("concat: the src file {spath} is the same with the target file {tpath}"));
            }
            if sfile.uc.is_some() || sfile.blocks.is_empty() {
                return bad(format!("concat: source file {spath} is invalid or empty or underConstruction"));
            }
            if sfile.block_size > tfile.block_size {
                return bad(format!(
                    "concat: source file {spath} has preferred block size {} which is greater than the target file's preferred block size {}",
                    sfile.block_size, tfile.block_size
                ));
            }
            ids.push(sid);
        }
        if ids.iter().collect::<BTreeSet<_>>().len() < ids.len() {
            return bad("concat: at least two of the source files are the same".into());
        }
        let mut moved = Vec::new();
        for sid in ids {
            let inode = self.inodes.remove(&sid).expect("a source exists");
            self.unlink(inode.parent, &inode.name, cx.time);
            let InodeKind::File(f) = inode.kind else { unreachable!("a source is a file") };
            moved.extend(f.blocks);
        }
        for b in &moved {
            self.block_files.insert(b.id, tid);
        }
        self.inodes.get_mut(&tid).expect("target exists").mtime_ms = cx.time;
        self.file_mut(tid).blocks.extend(moved);
        Ok(Reply::Done)
    }

    // ---- retry cache ---------------------------------------------------------------------------

    fn expire_retry(&mut self, now: u64) {
        let ttl = self.limits.retry_ttl_ms;
        while let Some(&(t, k)) = self.retry_by_time.first() {
            if now.saturating_sub(t) <= ttl && self.retry.len() as u64 <= self.limits.retry_max {
                break;
            }
            self.retry_by_time.pop_first();
            self.retry.remove(&k);
        }
    }

    fn remember(&mut self, key: RetryKey, time_ms: u64, reply: Reply) {
        self.retry.insert(key, Cached { time_ms, reply });
        self.retry_by_time.insert((time_ms, key));
        if self.retry.len() as u64 > self.limits.retry_max {
            if let Some((_, k)) = self.retry_by_time.pop_first() {
                self.retry.remove(&k);
            }
        }
    }

    // ---- invariants ----------------------------------------------------------------------------

    /// Checks the structural invariants (tree shape, derived maps, leases); checkpoints loaded
    /// from disk go through it, and debug builds run it after every entry.
    pub fn check_invariants(&self) -> Result<(), String> {
        let root = self.inodes.get(&ROOT_ID).ok_or("no root")?;
        if !root.is_dir() || root.parent != 0 {
            return Err("bad root".into());
        }
        let mut seen = 0usize;
        let mut blocks = 0usize;
        let mut open: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
        let mut stack = vec![ROOT_ID];
        while let Some(id) = stack.pop() {
            seen += 1;
            if seen > self.inodes.len() {
                return Err("cycle".into());
            }
            let inode = self.inodes.get(&id).ok_or_else(|| format!("dangling child {id}"))?;
            if inode.perm & !MODE_MASK != 0 {
                return Err(format!("inode {id}: bad permission {:o}", inode.perm));
            }
            match &inode.kind {
                InodeKind::Dir { children } => {
                    for (name, c) in children {
                        let child = self.inodes.get(c).ok_or_else(|| format!("dangling child {c}"))?;
                        if child.parent != id || &child.name != name || !path::valid_name(name) || *c == ROOT_ID {
                            return Err(format!("inode {c}: bad link {name} under {id}"));
                        }
                        stack.push(*c);
                    }
                }
                InodeKind::File(f) => {
                    for b in &f.blocks {
                        blocks += 1;
                        if self.block_files.get(&b.id) != Some(&id) {
                            return Err(format!("block {} of {id} not in the block index", b.id));
                        }
                    }
                    if let Some(uc) = &f.uc {
                        open.entry(uc.holder.as_str()).or_default().insert(id);
                        if uc.open_block && f.blocks.is_empty() {
                            return Err(format!("inode {id}: open block but no blocks"));
                        }
                        // A truncate cuts the last block, strictly inside it.
                        let last_len = f.blocks.last().map_or(0, |b| b.len);
                        if uc.truncate_to.is_some_and(|t| !uc.open_block || t == 0 || t >= last_len) {
                            return Err(format!("inode {id}: bad truncate target {:?}", uc.truncate_to));
                        }
                    }
                }
            }
        }
        if seen != self.inodes.len() {
            return Err(format!("{} inodes unreachable", self.inodes.len() - seen));
        }
        if blocks != self.block_files.len() {
            return Err("block index out of step".into());
        }
        let leases: BTreeMap<&str, BTreeSet<u64>> =
            self.leases.iter().map(|(h, l)| (h.as_str(), l.files.clone())).collect();
        if leases != open {
            return Err("leases do not match the open files".into());
        }
        if self.retry.len() != self.retry_by_time.len()
            || self.retry_by_time.iter().any(|(t, k)| self.retry.get(k).map(|c| c.time_ms) != Some(*t))
        {
            return Err("retry cache index out of step".into());
        }
        Ok(())
    }
}

/// The attributes of a file to create.
struct NewFile {
    perm: u16,
    replication: u16,
    block_size: u64,
}

/// Hadoop's `Block.matchingIdAndGenStamp`: same id and generation stamp, or both absent.
fn same_block(a: Option<Block>, b: Option<Block>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.id == b.id && a.gs == b.gs,
        _ => false,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod random_test;
