//! The data tree: the keeper's deterministic state machine.
//!
//! [`DataTree::apply`] takes a log entry and its index and changes the tree exactly as ZooKeeper
//! 3.8 would (stat fields, sequential names, cversion/pzxid, error precedence, multi rollback).
//! It reads nothing but its arguments: no clock, no randomness, no I/O. Reads that need no log
//! entry (getData, getChildren, ...) are plain methods that take the caller's identities.

use crate::acl;
use crate::path;
use crate::reconfig::{EnsembleConfig, CONFIG_NODE};
use crate::txn::{Txn, TxnKind};
use imbl::{HashMap as PersistentMap, OrdSet};
use keeper_proto::{
    Acl, CheckVersionRequest, Create2Response, CreateMode, CreateRequest, CreateResponse, CreateTtlRequest,
    DecodeError, DeleteRequest, ErrorCode, ErrorResponse, EventType, GetDataResponse, Id, Jute, MultiHeader, OpCode,
    PathRequest, Perms, Reader, Request, SetAclRequest, SetDataRequest, Stat, SyncResponse, Writer,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// `ephemeralOwner` of a container node.
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// High byte of `ephemeralOwner` that marks a TTL node; the low 40 bits hold the TTL.
const TTL_MASK: u64 = 0xFF00_0000_0000_0000;
/// The largest TTL ZooKeeper accepts (`EphemeralType.TTL` max), in milliseconds.
pub const TTL_MAX_MS: i64 = 0xFF_FFFF_FFFF;

/// An ACL shared by every node that has it (most nodes of a tree have one of a few ACLs).
pub type AclList = Arc<Vec<Acl>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub data: Option<Vec<u8>>,
    pub acl: AclList,
    pub stat: Stat,
    pub children: OrdSet<String>,
}

/// What kind of node an `ephemeralOwner` value marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    Ephemeral(i64),
    Container,
    Ttl(i64),
}

pub fn node_kind(owner: i64) -> NodeKind {
    if owner == 0 {
        NodeKind::Persistent
    } else if owner == CONTAINER_OWNER {
        NodeKind::Container
    } else if (owner as u64) & TTL_MASK == TTL_MASK {
        NodeKind::Ttl(((owner as u64) & !TTL_MASK) as i64)
    } else {
        NodeKind::Ephemeral(owner)
    }
}

/// A session as the replicated state knows it; liveness is tracked outside, by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub timeout_ms: i32,
    pub passwd: Vec<u8>,
    /// The member the session's client is connected to: the one whose writes for it count.
    pub owner: u64,
    /// Socket-close fast expiry (opted in by the session, 0 = off): when its connection breaks
    /// abnormally, it is expired after this grace unless it attached to a connection again.
    pub fast_grace_ms: u32,
    /// The heartbeat interval the session's client promises (0 = none): the session timeout
    /// then counts from the first heartbeat that did not come, i.e. the session expires after
    /// a silence of timeout + heartbeat, never sooner than the timeout after its client stopped.
    pub heartbeat_ms: u32,
    /// The zxid of the entry that last attached the session to a connection (its creation, or
    /// a resume logged as MoveSession): the session's connection epoch. A fast expiry names the
    /// epoch it saw break, and applies only if the session is still at that epoch.
    pub attached: i64,
}

/// A change that fires watches, with the ACL of the node it concerns: as in ZooKeeper 3.8.4+,
/// an event reaches only connections that may READ that node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTrigger {
    pub path: String,
    pub event: EventType,
    pub acl: AclList,
}

/// What applying one entry did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub err: i32,
    /// The encoded response record that follows the reply header (empty for none).
    pub body: Vec<u8>,
    /// Watch triggers in the order ZooKeeper fires them.
    pub events: Vec<WatchTrigger>,
    pub created_session: Option<i64>,
    pub closed_session: Option<i64>,
    /// (session, its new owner).
    pub moved_session: Option<(i64, u64)>,
    /// The entry broke its member's stream and changed nothing (see [`Txn::prev`]).
    pub skipped: bool,
}

impl Outcome {
    fn error(err: ErrorCode) -> Self {
        Outcome { err: err.code(), ..Default::default() }
    }
}

/// The part of the state a snapshot holds, cloned in O(1): the maps are persistent
/// (structurally shared, copy-on-write), so a snapshot is serialized on its own thread while the
/// tree goes on changing.
#[derive(Clone)]
pub struct TreeView {
    nodes: PersistentMap<String, Node>,
    sessions: BTreeMap<i64, Session>,
    last_zxid: i64,
    streams: BTreeMap<u64, u64>,
}

pub struct DataTree {
    nodes: PersistentMap<String, Node>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    /// Container and TTL nodes, the reaper's candidates.
    reapable: BTreeSet<String>,
    sessions: BTreeMap<i64, Session>,
    last_zxid: i64,
    /// Per proposing member, the last proposal of its that was applied (see [`Txn::prev`]).
    streams: BTreeMap<u64, u64>,
    /// Recently used ACLs, shared between nodes (see [`DataTree::intern`]).
    acls: Vec<AclList>,
    /// Whether TTL nodes may be created (`zookeeper.extendedTypesEnabled`).
    pub extended_types: bool,
    /// Prior states of the nodes a multi touched, to undo it if an op fails.
    journal: Option<Vec<(String, Option<Node>)>>,
    events: Vec<WatchTrigger>,
}

type OpResult<T> = Result<T, ErrorCode>;

/// Distinct ACLs kept for sharing.
const ACL_CACHE: usize = 32;

fn open_acl() -> Vec<Acl> {
    vec![Acl { perms: Perms::ALL, id: acl::world_anyone() }]
}

fn check_version(expected: i32, actual: i32) -> OpResult<()> {
    if expected == -1 || expected == actual {
        Ok(())
    } else {
        Err(ErrorCode::BadVersion)
    }
}

fn valid(p: &str) -> OpResult<()> {
    path::validate(p).map_err(|_| ErrorCode::BadArguments)
}

/// Paths that may not be deleted (ZooKeeper's `isSpecialPath`).
fn is_special(p: &str) -> bool {
    matches!(p, "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config")
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    pub fn new() -> Self {
        let mut t = DataTree {
            nodes: PersistentMap::new(),
            ephemerals: HashMap::new(),
            reapable: BTreeSet::new(),
            sessions: BTreeMap::new(),
            last_zxid: 0,
            streams: BTreeMap::new(),
            acls: Vec::new(),
            extended_types: false,
            journal: None,
            events: Vec::new(),
        };
        let empty =
            |acl: Vec<Acl>| Node { data: None, acl: Arc::new(acl), stat: Stat::default(), children: OrdSet::new() };
        t.nodes.insert("/".into(), empty(open_acl()));
        t.nodes.insert("/zookeeper".into(), empty(open_acl()));
        t.nodes.insert("/zookeeper/quota".into(), empty(open_acl()));
        let read_only = vec![Acl { perms: Perms::READ, id: acl::world_anyone() }];
        t.nodes.insert("/zookeeper/config".into(), empty(read_only));
        t.rebuild_children();
        t
    }

    /// The shared copy of `acl`: a few recently seen ACLs are kept and reused, so a million
    /// nodes with the same ACL hold one copy of it (as ZooKeeper's ACL cache does).
    fn intern(&mut self, acl: Vec<Acl>) -> AclList {
        if let Some(a) = self.acls.iter().find(|a| ***a == acl) {
            return a.clone();
        }
        let a = Arc::new(acl);
        if self.acls.len() >= ACL_CACHE {
            self.acls.remove(0);
        }
        self.acls.push(a.clone());
        a
    }

    /// The ensemble's configuration, once its first leader has set it.
    pub fn ensemble_config(&self) -> Option<EnsembleConfig> {
        let data = self.nodes.get(CONFIG_NODE)?.data.as_deref()?;
        EnsembleConfig::parse(std::str::from_utf8(data).ok()?)
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn get(&self, p: &str) -> Option<&Node> {
        self.nodes.get(p)
    }

    pub fn sessions(&self) -> &BTreeMap<i64, Session> {
        &self.sessions
    }

    pub fn ephemerals(&self) -> &HashMap<i64, BTreeSet<String>> {
        &self.ephemerals
    }

    pub fn approximate_data_size(&self) -> usize {
        self.nodes.iter().map(|(k, n)| k.len() + n.data.as_ref().map_or(0, |d| d.len())).sum()
    }

    /// Container and TTL nodes due for deletion at `now_ms`, for the reaper to propose.
    pub fn reap_candidates(&self, now_ms: i64) -> Vec<String> {
        self.reapable.iter().filter(|p| self.reapable_now(p, now_ms)).cloned().collect()
    }

    fn reapable_now(&self, p: &str, now_ms: i64) -> bool {
        let Some(n) = self.nodes.get(p) else { return false };
        if !n.children.is_empty() {
            return false;
        }
        match node_kind(n.stat.ephemeral_owner) {
            NodeKind::Container => n.stat.cversion > 0,
            NodeKind::Ttl(ttl) => now_ms.saturating_sub(n.stat.mtime) > ttl,
            _ => false,
        }
    }

    /// Node stat as a client sees it: numChildren and dataLength are derived.
    fn stat_of(n: &Node) -> Stat {
        let mut s = n.stat.clone();
        s.num_children = n.children.len() as i32;
        s.data_length = n.data.as_ref().map_or(0, |d| d.len() as i32);
        s
    }

    // ---- reads -------------------------------------------------------------------------------

    pub fn exists(&self, p: &str) -> Option<Stat> {
        self.nodes.get(p).map(Self::stat_of)
    }

    /// exists as a client asks it: NUL in the path is refused, and (as in 3.8.6) an existing
    /// node needs READ.
    pub fn exists_checked(&self, p: &str, ids: &[Id]) -> OpResult<Stat> {
        if p.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let n = self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
        if !acl::allowed(&n.acl, ids, Perms::READ) {
            return Err(ErrorCode::NoAuth);
        }
        Ok(Self::stat_of(n))
    }

    pub fn get_data(&self, p: &str, ids: &[Id]) -> OpResult<(Option<Vec<u8>>, Stat)> {
        let n = self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
        if !acl::allowed(&n.acl, ids, Perms::READ) {
            return Err(ErrorCode::NoAuth);
        }
        Ok((n.data.clone(), Self::stat_of(n)))
    }

    pub fn get_children(&self, p: &str, ids: &[Id]) -> OpResult<(Vec<String>, Stat)> {
        let n = self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
        if !acl::allowed(&n.acl, ids, Perms::READ) {
            return Err(ErrorCode::NoAuth);
        }
        Ok((n.children.iter().cloned().collect(), Self::stat_of(n)))
    }

    /// getACL; without ADMIN, digest hashes are masked as ZooKeeper 3.8 does.
    pub fn get_acl(&self, p: &str, ids: &[Id]) -> OpResult<(Vec<Acl>, Stat)> {
        let n = self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
        if !acl::allowed(&n.acl, ids, Perms::READ | Perms::ADMIN) {
            return Err(ErrorCode::NoAuth);
        }
        let mut out = n.acl.to_vec();
        if !acl::allowed(&n.acl, ids, Perms::ADMIN) {
            for a in out.iter_mut().filter(|a| a.id.scheme == "digest") {
                let user = a.id.id.split(':').next().unwrap_or("").to_owned();
                a.id.id = format!("{user}:x");
            }
        }
        Ok((out, Self::stat_of(n)))
    }

    pub fn all_children_number(&self, p: &str, ids: &[Id]) -> OpResult<i32> {
        let n = self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
        if !acl::allowed(&n.acl, ids, Perms::READ) {
            return Err(ErrorCode::NoAuth);
        }
        let mut count = 0i32;
        let mut stack: Vec<String> = n.children.iter().map(|c| path::join(p, c)).collect();
        while let Some(c) = stack.pop() {
            count += 1;
            if let Some(cn) = self.nodes.get(&c) {
                stack.extend(cn.children.iter().map(|g| path::join(&c, g)));
            }
        }
        Ok(count)
    }

    /// The session's ephemerals whose path starts with `prefix` (a string prefix, as ZooKeeper).
    pub fn session_ephemerals(&self, session: i64, prefix: &str) -> Vec<String> {
        let all = self.ephemerals.get(&session).into_iter().flatten();
        if prefix.trim().is_empty() || prefix.trim() == "/" {
            all.cloned().collect()
        } else {
            all.filter(|e| e.starts_with(prefix)).cloned().collect()
        }
    }

    // ---- writes ------------------------------------------------------------------------------

    /// Applies the entry at log `index`. The zxid of the change is the index.
    pub fn apply(&mut self, index: u64, txn: &Txn) -> Outcome {
        let zxid = index as i64;
        assert!(zxid > self.last_zxid, "log index {index} applied out of order (last {})", self.last_zxid);
        self.last_zxid = zxid;
        self.events.clear();
        // A member's proposals apply as a gap-free prefix of what it sent: once one of them is
        // lost (rejected by a leader, or dropped with a deposed leader's log), every later one
        // of the same stream is skipped, so a client never sees a later write of its take effect
        // without an earlier one. The member then starts a new stream (prev = 0).
        if txn.prev != 0 && self.streams.get(&txn.member) != Some(&txn.prev) {
            return Outcome { skipped: true, ..Default::default() };
        }
        self.streams.insert(txn.member, txn.seq);
        let mut out = match &txn.kind {
            TxnKind::CreateSession { timeout_ms, passwd } => {
                // The proposer's id keeps ids readable per member; the index alone is unique.
                let sid = ((txn.member as i64) << 56) | (zxid & 0x00FF_FFFF_FFFF_FFFF);
                let session = Session {
                    timeout_ms: *timeout_ms,
                    passwd: passwd.clone(),
                    owner: txn.member,
                    fast_grace_ms: 0,
                    heartbeat_ms: 0,
                    attached: zxid,
                };
                self.sessions.insert(sid, session);
                Outcome { created_session: Some(sid), ..Default::default() }
            }
            TxnKind::CloseSession => self.close_session(zxid, txn.session),
            TxnKind::MoveSession => match self.sessions.get_mut(&txn.session) {
                Some(s) => {
                    s.owner = txn.member;
                    s.attached = zxid;
                    Outcome { moved_session: Some((txn.session, txn.member)), ..Default::default() }
                }
                None => Outcome::error(ErrorCode::SessionExpired),
            },
            TxnKind::SessionOptions { fast_grace_ms, heartbeat_ms } => match self.sessions.get_mut(&txn.session) {
                Some(s) => {
                    s.fast_grace_ms = *fast_grace_ms;
                    s.heartbeat_ms = *heartbeat_ms;
                    Outcome::default()
                }
                None => Outcome::error(ErrorCode::SessionExpired),
            },
            // Decided here, against the replicated connection epoch, not by the member that saw
            // the connection break: a client that resumed anywhere in the meantime has a newer
            // epoch (its MoveSession is earlier in the log), and is never expired by the old
            // connection's notice.
            TxnKind::ExpireDetached { attached } => match self.sessions.get(&txn.session) {
                Some(s) if s.attached == *attached => self.close_session(zxid, txn.session),
                _ => Outcome::default(),
            },
            TxnKind::InitConfig { servers } => {
                if self.ensemble_config().is_none() {
                    let mut c = EnsembleConfig::from_static(servers);
                    c.version = zxid;
                    if let Some(n) = self.nodes.get_mut(CONFIG_NODE) {
                        n.data = Some(c.render().into_bytes());
                        n.stat.mzxid = zxid;
                        n.stat.mtime = txn.time_ms;
                        n.stat.version = n.stat.version.wrapping_add(1);
                    }
                }
                Outcome::default()
            }
            TxnKind::Reap { path } => {
                if self.reapable_now(path, txn.time_ms) {
                    let r = self.delete_node(zxid, path);
                    debug_assert!(r.is_ok());
                }
                Outcome::default()
            }
            // A write through a member that no longer holds the session (its client moved to
            // another member since): ZooKeeper's SessionMoved.
            TxnKind::Request { .. } if self.sessions.get(&txn.session).is_some_and(|s| s.owner != txn.member) => {
                Outcome::error(ErrorCode::SessionMoved)
            }
            TxnKind::Request { op, body } => match Request::decode(*op, body) {
                Ok(req) => self.apply_request(zxid, txn, &req),
                Err(_) => Outcome::error(ErrorCode::MarshallingError),
            },
        };
        out.events = std::mem::take(&mut self.events);
        out
    }

    fn apply_request(&mut self, zxid: i64, txn: &Txn, req: &Request) -> Outcome {
        let mut w = Writer::new();
        let r = match req {
            Request::Multi(ops) => return self.apply_multi(zxid, txn, ops),
            _ => self.apply_op(zxid, txn, req, &mut w),
        };
        match r {
            Ok(_) => Outcome { body: w.buf, ..Default::default() },
            Err(e) => Outcome::error(e),
        }
    }

    /// One write op; encodes its response into `w` and returns the op type its result reports.
    fn apply_op(&mut self, zxid: i64, txn: &Txn, req: &Request, w: &mut Writer) -> OpResult<OpCode> {
        match req {
            Request::Create(c) => {
                let (p, _) = self.create(zxid, txn, c, -1)?;
                CreateResponse { path: p }.encode(w);
                Ok(OpCode::Create)
            }
            Request::Create2(c) | Request::CreateContainer(c) => {
                let mut c = c.clone();
                if matches!(req, Request::CreateContainer(_)) {
                    c.flags = CreateMode::Container.code();
                }
                let (path, stat) = self.create(zxid, txn, &c, -1)?;
                Create2Response { path, stat }.encode(w);
                Ok(OpCode::Create2)
            }
            Request::CreateTtl(c) => {
                let CreateTtlRequest { path, data, acl, flags, ttl } = c.clone();
                let (path, stat) = self.create(zxid, txn, &CreateRequest { path, data, acl, flags }, ttl)?;
                Create2Response { path, stat }.encode(w);
                Ok(OpCode::Create2)
            }
            Request::Delete(DeleteRequest { path, version }) => {
                self.delete(zxid, txn, path, *version)?;
                Ok(OpCode::Delete)
            }
            Request::SetData(SetDataRequest { path, data, version }) => {
                let stat = self.set_data(zxid, txn, path, data.clone(), *version)?;
                stat.encode(w);
                Ok(OpCode::SetData)
            }
            Request::SetAcl(SetAclRequest { path, acl, version }) => {
                let stat = self.set_acl(txn, path, acl, *version)?;
                stat.encode(w);
                Ok(OpCode::SetAcl)
            }
            // ZooKeeper's order: version and shape of the change first, then WRITE on the node
            // (only a super user has it by default).
            Request::Reconfig(r) => {
                let mut next = self.ensemble_config().unwrap_or_default().next(r)?;
                next.version = zxid;
                let text = next.render().into_bytes();
                let stat = self.set_data(zxid, txn, CONFIG_NODE, Some(text.clone()), -1)?;
                GetDataResponse { data: Some(text), stat }.encode(w);
                Ok(OpCode::Reconfig)
            }
            // In an ensemble, sync is a log entry: its reply, sent after it is applied here,
            // means every write committed before it has been applied here too.
            Request::Sync(PathRequest { path }) => {
                SyncResponse { path: path.clone() }.encode(w);
                Ok(OpCode::Sync)
            }
            Request::Check(CheckVersionRequest { path, version }) => {
                valid(path)?;
                let n = self.nodes.get(path.as_str()).ok_or(ErrorCode::NoNode)?;
                if !acl::allowed(&n.acl, &txn.auth, Perms::READ) {
                    return Err(ErrorCode::NoAuth);
                }
                check_version(*version, n.stat.version)?;
                Ok(OpCode::Check)
            }
            _ => Err(ErrorCode::Unimplemented),
        }
    }

    /// A multi: every op applies, or none does. Results as ZooKeeper encodes them: on failure,
    /// ops before the failing one report 0, the failing one its error, later ones -2.
    fn apply_multi(&mut self, zxid: i64, txn: &Txn, ops: &[Request]) -> Outcome {
        self.journal = Some(Vec::new());
        let mut results: Vec<(OpCode, Vec<u8>)> = Vec::with_capacity(ops.len());
        let mut failed: Option<(usize, ErrorCode)> = None;
        for (i, op) in ops.iter().enumerate() {
            let mut w = Writer::new();
            match self.apply_op(zxid, txn, op, &mut w) {
                Ok(kind) => results.push((kind, w.buf)),
                Err(e) => {
                    failed = Some((i, e));
                    break;
                }
            }
        }
        let journal = self.journal.take().unwrap_or_default();
        let mut w = Writer::new();
        match failed {
            None => {
                for (kind, body) in results {
                    MultiHeader { op: kind.code(), done: false, err: 0 }.encode(&mut w);
                    w.buf.extend_from_slice(&body);
                }
            }
            Some((at, err)) => {
                for (p, prior) in journal.into_iter().rev() {
                    self.replace_node(&p, prior);
                }
                self.events.clear();
                for i in 0..ops.len() {
                    let code = match i.cmp(&at) {
                        std::cmp::Ordering::Less => ErrorCode::Ok,
                        std::cmp::Ordering::Equal => err,
                        std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                    };
                    MultiHeader { op: OpCode::Error.code(), done: false, err: code.code() }.encode(&mut w);
                    ErrorResponse { err: code.code() }.encode(&mut w);
                }
            }
        }
        MultiHeader::end().encode(&mut w);
        Outcome { body: w.buf, ..Default::default() }
    }

    fn create(&mut self, zxid: i64, txn: &Txn, c: &CreateRequest, ttl: i64) -> OpResult<(String, Stat)> {
        let mode = CreateMode::try_from(c.flags).map_err(|_| ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.extended_types {
            return Err(ErrorCode::Unimplemented);
        }
        if mode.is_ttl() {
            if ttl <= 0 || ttl > TTL_MAX_MS {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl >= 0 {
            return Err(ErrorCode::BadArguments);
        }
        // ZooKeeper's validatePathForCreate: only the slash and NUL here; the full check comes
        // after the sequence suffix is known.
        if !c.path.contains('/') || c.path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = match c.path.rfind('/') {
            Some(0) | None => "/".to_owned(),
            Some(i) => c.path[..i].to_owned(),
        };
        let acl = self.intern(acl::fixup(&c.acl, &txn.auth)?);
        let parent = self.nodes.get(&parent_path).ok_or(ErrorCode::NoNode)?;
        if !acl::allowed(&parent.acl, &txn.auth, Perms::CREATE) {
            return Err(ErrorCode::NoAuth);
        }
        let mut p = c.path.clone();
        if mode.is_sequential() {
            p.push_str(&format!("{:010}", parent.stat.cversion));
        }
        valid(&p)?;
        if p == "/" || self.nodes.contains_key(&p) {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(node_kind(parent.stat.ephemeral_owner), NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let owner = if mode.is_ephemeral() {
            txn.session
        } else if mode.is_container() {
            CONTAINER_OWNER
        } else if mode.is_ttl() {
            (TTL_MASK | ttl as u64) as i64
        } else {
            0
        };
        let stat = Stat {
            czxid: zxid,
            mzxid: zxid,
            ctime: txn.time_ms,
            mtime: txn.time_ms,
            ephemeral_owner: owner,
            pzxid: zxid,
            ..Default::default()
        };
        let created = WatchTrigger { path: p.clone(), event: EventType::NodeCreated, acl: acl.clone() };
        let node = Node { data: c.data.clone(), acl, stat, children: OrdSet::new() };
        self.touch(&parent_path);
        let parent = self.nodes.get_mut(&parent_path).ok_or(ErrorCode::NoNode)?;
        parent.children.insert(path::name(&p).to_owned());
        parent.stat.cversion = parent.stat.cversion.wrapping_add(1);
        parent.stat.pzxid = zxid;
        let parent_acl = parent.acl.clone();
        self.touch(&p);
        self.replace_node(&p, Some(node));
        self.events.push(created);
        self.events.push(WatchTrigger { path: parent_path, event: EventType::NodeChildrenChanged, acl: parent_acl });
        let stat = self.exists(&p).ok_or(ErrorCode::SystemError)?;
        Ok((p, stat))
    }

    fn delete(&mut self, zxid: i64, txn: &Txn, p: &str, version: i32) -> OpResult<()> {
        valid(p)?;
        if is_special(p) {
            return Err(ErrorCode::BadArguments);
        }
        let parent = self.nodes.get(path::parent(p)).ok_or(ErrorCode::NoNode)?;
        if !acl::allowed(&parent.acl, &txn.auth, Perms::DELETE) {
            return Err(ErrorCode::NoAuth);
        }
        let n = self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
        check_version(version, n.stat.version)?;
        if !n.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        self.delete_node(zxid, p)
    }

    /// Removes a childless node and updates its parent; no checks beyond existence. As in
    /// ZooKeeper 3.8, a delete moves the parent's pzxid but not its cversion.
    fn delete_node(&mut self, zxid: i64, p: &str) -> OpResult<()> {
        let parent_path = path::parent(p).to_owned();
        let acl = self.nodes.get(p).ok_or(ErrorCode::NoNode)?.acl.clone();
        self.touch(&parent_path);
        self.touch(p);
        let mut parent_acl = AclList::default();
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.children.remove(path::name(p));
            parent.stat.pzxid = parent.stat.pzxid.max(zxid);
            parent_acl = parent.acl.clone();
        }
        self.replace_node(p, None);
        self.events.push(WatchTrigger { path: p.to_owned(), event: EventType::NodeDeleted, acl });
        self.events.push(WatchTrigger { path: parent_path, event: EventType::NodeChildrenChanged, acl: parent_acl });
        Ok(())
    }

    fn set_data(&mut self, zxid: i64, txn: &Txn, p: &str, data: Option<Vec<u8>>, version: i32) -> OpResult<Stat> {
        valid(p)?;
        let n = self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
        if !acl::allowed(&n.acl, &txn.auth, Perms::WRITE) {
            return Err(ErrorCode::NoAuth);
        }
        check_version(version, n.stat.version)?;
        self.touch(p);
        let n = self.nodes.get_mut(p).ok_or(ErrorCode::NoNode)?;
        n.data = data;
        n.stat.mzxid = zxid;
        n.stat.mtime = txn.time_ms;
        n.stat.version = n.stat.version.wrapping_add(1);
        let stat = Self::stat_of(n);
        let acl = n.acl.clone();
        self.events.push(WatchTrigger { path: p.to_owned(), event: EventType::NodeDataChanged, acl });
        Ok(stat)
    }

    fn set_acl(&mut self, txn: &Txn, p: &str, acl_in: &[Acl], version: i32) -> OpResult<Stat> {
        valid(p)?;
        let fixed = self.intern(acl::fixup(acl_in, &txn.auth)?);
        let n = self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
        if !acl::allowed(&n.acl, &txn.auth, Perms::ADMIN) {
            return Err(ErrorCode::NoAuth);
        }
        check_version(version, n.stat.aversion)?;
        self.touch(p);
        let n = self.nodes.get_mut(p).ok_or(ErrorCode::NoNode)?;
        n.acl = fixed;
        n.stat.aversion = n.stat.aversion.wrapping_add(1);
        Ok(Self::stat_of(n))
    }

    /// Records a node's prior state the first time a multi touches it.
    fn touch(&mut self, p: &str) {
        if let Some(j) = self.journal.as_mut() {
            if !j.iter().any(|(q, _)| q == p) {
                j.push((p.to_owned(), self.nodes.get(p).cloned()));
            }
        }
    }

    /// Puts `node` at `p` (or removes it), keeping the ephemeral and reapable indexes true.
    fn replace_node(&mut self, p: &str, node: Option<Node>) {
        if let Some(old) = self.nodes.remove(p) {
            self.unindex(p, &old);
        }
        if let Some(n) = node {
            self.index(p, &n);
            self.nodes.insert(p.to_owned(), n);
        }
    }

    fn index(&mut self, p: &str, n: &Node) {
        match node_kind(n.stat.ephemeral_owner) {
            NodeKind::Ephemeral(s) => {
                self.ephemerals.entry(s).or_default().insert(p.to_owned());
            }
            NodeKind::Container | NodeKind::Ttl(_) => {
                self.reapable.insert(p.to_owned());
            }
            NodeKind::Persistent => {}
        }
    }

    fn unindex(&mut self, p: &str, n: &Node) {
        match node_kind(n.stat.ephemeral_owner) {
            NodeKind::Ephemeral(s) => {
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(p);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
            NodeKind::Container | NodeKind::Ttl(_) => {
                self.reapable.remove(p);
            }
            NodeKind::Persistent => {}
        }
    }

    fn rebuild_children(&mut self) {
        let paths: Vec<String> = self.nodes.keys().filter(|p| p.as_str() != "/").cloned().collect();
        for (_, n) in self.nodes.iter_mut() {
            n.children = OrdSet::new();
        }
        for p in paths {
            if let Some(parent) = self.nodes.get_mut(path::parent(&p)) {
                parent.children.insert(path::name(&p).to_owned());
            }
        }
    }

    /// Ends a session: its ephemerals go (firing their watches).
    fn close_session(&mut self, zxid: i64, sid: i64) -> Outcome {
        if self.sessions.remove(&sid).is_none() {
            return Outcome::error(ErrorCode::SessionExpired);
        }
        let paths = self.ephemerals.remove(&sid).unwrap_or_default();
        for p in paths {
            // Parents of ephemerals are never ephemeral, and children of ephemerals cannot
            // exist, so each delete succeeds.
            let r = self.delete_node(zxid, &p);
            debug_assert!(r.is_ok(), "{p}: {r:?}");
        }
        Outcome { closed_session: Some(sid), ..Default::default() }
    }

    // ---- snapshots ---------------------------------------------------------------------------

    /// An O(1) copy of what a snapshot holds.
    pub fn view(&self) -> TreeView {
        TreeView {
            nodes: self.nodes.clone(),
            sessions: self.sessions.clone(),
            last_zxid: self.last_zxid,
            streams: self.streams.clone(),
        }
    }

    /// Serializes the whole state (sessions, nodes, last zxid).
    pub fn serialize(&self) -> Vec<u8> {
        self.view().serialize()
    }

    /// Inverse of [`DataTree::serialize`]; refuses a state that is not a tree.
    pub fn deserialize(b: &[u8]) -> Result<DataTree, DecodeError> {
        let mut r = Reader::new(b);
        let mut t = DataTree::new();
        t.nodes.clear();
        t.last_zxid = r.i64()?;
        let n = r.vec_len(16)?.unwrap_or(0);
        for _ in 0..n {
            let sid = r.i64()?;
            let timeout_ms = r.i32()?;
            let passwd = r.buffer()?.unwrap_or_default();
            let owner = r.i64()? as u64;
            let fast_grace_ms = r.i32()? as u32;
            let heartbeat_ms = r.i32()? as u32;
            let attached = r.i64()?;
            t.sessions.insert(sid, Session { timeout_ms, passwd, owner, fast_grace_ms, heartbeat_ms, attached });
        }
        let n = r.vec_len(80)?.unwrap_or(0);
        for _ in 0..n {
            let p = String::decode(&mut r)?;
            let data = Option::<Vec<u8>>::decode(&mut r)?;
            let acl = t.intern(Vec::<Acl>::decode(&mut r)?);
            let stat = Stat::decode(&mut r)?;
            if path::validate(&p).is_err() {
                return Err(DecodeError::BadValue { what: "snapshot path", value: p.len() as i64 });
            }
            t.replace_node(&p, Some(Node { data, acl, stat, children: OrdSet::new() }));
        }
        let n = r.vec_len(16)?.unwrap_or(0);
        for _ in 0..n {
            let member = r.i64()? as u64;
            t.streams.insert(member, r.i64()? as u64);
        }
        r.finish()?;
        let orphan = t.nodes.keys().any(|p| p != "/" && !t.nodes.contains_key(path::parent(p)));
        if orphan || !t.nodes.contains_key("/") {
            return Err(DecodeError::BadValue { what: "snapshot tree shape", value: 0 });
        }
        t.rebuild_children();
        Ok(t)
    }
}

impl TreeView {
    /// The snapshot state; see [`DataTree::deserialize`] for the inverse.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.nodes.len() * 128);
        self.write_to(&mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Streams the state to `out` in chunks, so a snapshot of a large tree is never held whole
    /// in memory.
    pub fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        const CHUNK: usize = 256 * 1024;
        let mut w = Writer::new();
        w.i64(self.last_zxid);
        w.i32(self.sessions.len() as i32);
        for (sid, s) in &self.sessions {
            w.i64(*sid);
            w.i32(s.timeout_ms);
            w.buffer(Some(&s.passwd));
            w.i64(s.owner as i64);
            w.i32(s.fast_grace_ms as i32);
            w.i32(s.heartbeat_ms as i32);
            w.i64(s.attached);
        }
        w.i32(self.nodes.len() as i32);
        // Any order will do: loading inserts every node, then links children.
        for (p, n) in &self.nodes {
            w.ustring(p);
            n.data.encode(&mut w);
            n.acl.encode(&mut w);
            n.stat.encode(&mut w);
            if w.buf.len() >= CHUNK {
                out.write_all(&w.buf)?;
                w.buf.clear();
            }
        }
        w.i32(self.streams.len() as i32);
        for (member, seq) in &self.streams {
            w.i64(*member as i64);
            w.i64(*seq as i64);
        }
        out.write_all(&w.buf)
    }
}

#[cfg(test)]
#[path = "tree_test.rs"]
mod tests;
