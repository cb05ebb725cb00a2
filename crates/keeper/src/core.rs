//! The keeper's actor: it owns the data tree, the live sessions, the watches and the queue of
//! proposed log entries. Connection tasks and the log writer talk to it by [`CoreMsg`]; nothing
//! else touches its state, so no lock is held anywhere on the request path.
//!
//! Request path: a write becomes a [`Txn`], gets the next log index and goes to the log thread;
//! when the log thread reports the index durable, the core applies it to the tree, sends watch
//! events, then the reply. A read is answered at once unless the same connection has writes in
//! flight, in which case it waits behind them, so replies leave in request order.

use crate::acl;
use crate::config::KeeperConfig;
use crate::fourlw;
use crate::tree::{DataTree, Outcome};
use crate::txn::{Txn, TxnKind};
use crate::watch::{ConnId, WatchKind, Watches};
use detector::{AdaptiveConfig, AdaptiveTimeout, Verdict};
use keeper_proto::codes::add_watch_mode;
use keeper_proto::*;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

/// What the core sends a connection's writer task.
#[derive(Debug)]
pub enum Out {
    Frame(Vec<u8>),
    /// Flush what is queued, then close the socket.
    Close,
}

/// Frames queued for one connection's writer before the core gives up on that client.
pub const OUTBOUND_FRAMES_MAX: usize = 16_384;

/// The core's handle on a connection's writer. Bounded, and it never blocks the core: a client
/// too slow to take its replies and events is disconnected (it reconnects and re-registers its
/// watches) instead of growing the server's memory.
#[derive(Clone)]
pub struct ConnOut {
    tx: mpsc::Sender<Out>,
    stop: CancellationToken,
}

impl ConnOut {
    pub fn new(tx: mpsc::Sender<Out>, stop: CancellationToken) -> Self {
        ConnOut { tx, stop }
    }

    fn send(&self, frame: Vec<u8>) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(Out::Frame(frame)) {
            tracing::warn!("client is not reading its replies ({OUTBOUND_FRAMES_MAX} queued); disconnecting it");
            self.stop.cancel();
        }
    }

    fn close(&self) {
        if self.tx.try_send(Out::Close).is_err() {
            self.stop.cancel();
        }
    }
}

/// A request from a connection: decoded for dispatch, raw body kept for the log.
pub struct ClientRequest {
    pub xid: i32,
    pub req: Request,
    pub body: Vec<u8>,
    /// Held until the reply is sent; bounds a connection's requests in flight.
    pub permit: OwnedSemaphorePermit,
}

pub enum CoreMsg {
    Connect {
        conn: ConnId,
        addr: SocketAddr,
        req: ConnectRequest,
        out: ConnOut,
    },
    Request {
        conn: ConnId,
        request: ClientRequest,
    },
    Gone {
        conn: ConnId,
    },
    /// From the log: these entries are durable (and, in an ensemble, committed), in index order.
    /// `last_term` is the term of the last log entry they cover (1 standalone); `ack` is answered
    /// once they are applied.
    Committed {
        entries: Vec<(u64, Txn)>,
        last_term: u64,
        ack: Option<oneshot::Sender<()>>,
    },
    /// Ensemble: this member's view of the leadership changed.
    Role(Role),
    /// Ensemble: these proposals of this member were refused or may not have reached the leader.
    Lost {
        seqs: Vec<u64>,
    },
    /// Ensemble, at the leader: sessions that other members heard from.
    Touch {
        sessions: Vec<i64>,
    },
    /// Ensemble: serialize the tree as of everything applied so far.
    BuildSnapshot {
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// Ensemble: replace the tree with a leader's snapshot.
    InstallSnapshot {
        data: Vec<u8>,
        ack: oneshot::Sender<Result<(), String>>,
    },
    LogFailed(String),
    SnapshotDone {
        index: u64,
    },
    FourLetter {
        word: String,
        reply: oneshot::Sender<String>,
    },
}

/// Where the core's proposals go.
pub enum Replicator {
    /// Standalone: the local log thread, which assigns indexes and reports them durable.
    Wal(std_mpsc::Sender<LogCmd>),
    /// Ensemble: the raft task, which hands them to the leader.
    Raft(mpsc::UnboundedSender<ToRaft>),
}

/// From the core to the raft task.
pub enum ToRaft {
    /// An encoded [`Txn`] to append, only under the leader of `term`.
    Propose { term: u64, seq: u64, txn: Vec<u8> },
    /// Sessions heard from since the last batch, for the leader's expiry clock.
    Touch(Vec<i64>),
    /// At the leader: make raft's membership match the configuration (peer addresses).
    Membership { voters: BTreeMap<u64, String>, observers: BTreeMap<u64, String> },
}

/// A member's view of the ensemble's leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    pub term: u64,
    pub leader: Option<u64>,
    pub is_leader: bool,
    /// Whether this member is in touch with a quorum: the leader heard from a quorum, or a
    /// follower from the leader, within the election timeout. Without it, clients go elsewhere.
    pub quorum: bool,
    /// This member knows of committed entries it has not applied yet (it is catching up).
    pub behind: bool,
}

impl Role {
    /// A standalone keeper: its own leader, always with its quorum of one.
    pub fn standalone() -> Role {
        Role { term: 1, leader: None, is_leader: true, quorum: true, behind: false }
    }
}

/// Commands for the log thread.
pub enum LogCmd {
    /// Assign the next index, write, fsync, then report it committed.
    Append(Txn),
    /// A snapshot at `index` is durable: segments wholly at or below `covered` may go.
    Compact { covered: u64 },
}

struct Conn {
    addr: SocketAddr,
    out: ConnOut,
    session: i64,
    auth: Vec<Id>,
    /// This connection's requests in order: writes in flight and the reads waiting behind them.
    queue: VecDeque<Queued>,
    established: Instant,
    received: u64,
    sent: u64,
    last_zxid: i64,
    /// A read-only session, accepted while this member has no quorum.
    read_only: bool,
}

enum Queued {
    /// A write in flight, by its proposal number.
    Write(u64),
    Read(ClientRequest),
}

struct Waiting {
    origin: Origin,
    /// The term it was proposed under.
    term: u64,
}

struct Live {
    /// Silence since the session was last heard from, against its (possibly adaptive) floor:
    /// the negotiated timeout plus the heartbeat interval its client declared.
    det: AdaptiveTimeout,
    /// The negotiated timeout.
    timeout: Duration,
    conn: Option<ConnId>,
    closing: bool,
}

impl Live {
    fn new(cfg: &KeeperConfig, timeout: Duration, heartbeat: Duration, now: Instant) -> Live {
        let det = AdaptiveTimeout::new(detector_config(cfg, timeout + heartbeat), now);
        Live { det, timeout, conn: None, closing: false }
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A new negotiated timeout or heartbeat: the floor moves, the growth so far is kept.
    fn set_floor(&mut self, cfg: &KeeperConfig, timeout: Duration, heartbeat: Duration) {
        self.timeout = timeout;
        let floor = timeout + heartbeat;
        self.det.set_base(floor, detector_config(cfg, floor).max);
    }

    /// The session's client spoke (any request, a ping, a member's touch).
    fn heard(&mut self, sid: i64, now: Instant) {
        if self.det.heard(now) {
            tracing::info!(
                "session 0x{sid:x} was suspected and spoke again; its timeout is now {:?}",
                self.det.timeout(now)
            );
        }
    }
}

/// The session detector's settings: ZooKeeper's fixed timeout unless `herd.adaptiveSessionTimeout`.
fn detector_config(cfg: &KeeperConfig, timeout: Duration) -> AdaptiveConfig {
    if cfg.adaptive_sessions {
        let max = Duration::from_millis(cfg.max_session_timeout()).max(timeout);
        AdaptiveConfig { max: max.min(timeout * 4), ..AdaptiveConfig::new(timeout) }
    } else {
        AdaptiveConfig::fixed(timeout)
    }
}

/// A fast-expiry session whose connection broke: expired at `due` unless it attached again.
struct Suspect {
    due: Instant,
    sid: i64,
    attached: i64,
}

enum Origin {
    /// Not this member's proposal.
    Housekeeping,
    Expire {
        sid: i64,
    },
    InitConfig,
    /// `addAuth("herd", ...)`: answered once the session's options are applied.
    Auth {
        conn: ConnId,
    },
    Move {
        conn: ConnId,
        sid: i64,
    },
    Reap {
        path: String,
    },
    Connect {
        conn: ConnId,
    },
    Request {
        conn: ConnId,
        xid: i32,
        permit: OwnedSemaphorePermit,
    },
}

/// Server-wide counters for the four-letter words.
#[derive(Default)]
pub struct Counters {
    pub received: u64,
    pub sent: u64,
}

pub struct KeeperCore {
    cfg: KeeperConfig,
    tree: DataTree,
    conns: HashMap<ConnId, Conn>,
    live: HashMap<i64, Live>,
    watches: Watches,
    /// This member's proposals not yet applied, by proposal number.
    waiting: HashMap<u64, Waiting>,
    /// The last proposal sent in the current stream, 0 to start a new one (see [`Txn::prev`]).
    prev_seq: u64,
    role: Role,
    /// The term of the last entry applied; when it grows, proposals made under older terms
    /// that have not been applied never will be.
    applied_term: u64,
    /// Ensemble: sessions heard from since the last touch batch went to the leader.
    touched: HashSet<i64>,
    read_only_sessions: u64,
    /// Fast-expiry sessions whose connection to this member broke, in order of `due`.
    suspects: VecDeque<Suspect>,
    init_config_pending: bool,
    /// Proposal numbers start at a random base per process, so an entry proposed by an earlier
    /// incarnation of this member never matches a proposal of this one.
    next_seq: u64,
    /// Reap proposals in flight, so a slow log does not get the same path twice.
    reaping: HashSet<String>,
    log: Replicator,
    self_tx: mpsc::Sender<CoreMsg>,
    counters: Counters,
    last_snapshot: u64,
    snapshot_running: bool,
    started: Instant,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn frame(h: &ReplyHeader, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::framed();
    h.encode(&mut w);
    w.buf.extend_from_slice(body);
    w.into_frame()
}

impl KeeperCore {
    pub fn new(
        cfg: KeeperConfig,
        tree: DataTree,
        last_snapshot: u64,
        log: Replicator,
        self_tx: mpsc::Sender<CoreMsg>,
    ) -> Self {
        let now = Instant::now();
        // Sessions recovered from disk get a full timeout from now to reconnect, as in ZooKeeper.
        let live = live_from(&cfg, &tree, now);
        KeeperCore {
            cfg,
            tree,
            conns: HashMap::new(),
            live,
            watches: Watches::default(),
            waiting: HashMap::new(),
            next_seq: {
                let mut b = [0u8; 8];
                fill_random(&mut b);
                // Never 0: that is `prev` for "starts a stream".
                (u64::from_be_bytes(b) >> 2) | 1
            },
            prev_seq: 0,
            role: match log {
                Replicator::Wal(_) => Role::standalone(),
                Replicator::Raft(_) => Role { term: 0, leader: None, is_leader: false, quorum: false, behind: true },
            },
            applied_term: 0,
            touched: HashSet::new(),
            read_only_sessions: 0,
            suspects: VecDeque::new(),
            init_config_pending: false,
            reaping: HashSet::new(),
            log,
            self_tx,
            counters: Counters::default(),
            last_snapshot,
            snapshot_running: false,
            started: now,
        }
    }

    /// Runs until every sender is gone or the log fails.
    pub async fn run(mut self, mut rx: mpsc::Receiver<CoreMsg>) -> anyhow::Result<()> {
        let tick = Duration::from_millis((self.cfg.tick_time_ms / 4).clamp(10, 250));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reap_every = Duration::from_millis(self.cfg.container_check_interval_ms);
        let mut last_reap = Instant::now();
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { return Ok(()) };
                    if let CoreMsg::LogFailed(why) = msg {
                        anyhow::bail!("keeper log failed, stopping so that nothing unlogged is acknowledged: {why}");
                    }
                    self.handle(msg);
                }
                _ = ticker.tick() => {
                    // Whoever saw a fast-expiry session's connection break proposes its expiry;
                    // applying decides (see `TxnKind::ExpireDetached`).
                    self.fast_expire_due();
                    // Only the leader decides expiry and reaps; the others tell it whom they heard.
                    if self.role.is_leader {
                        if self.ensemble() {
                            // The leader's own clients touched their sessions directly.
                            self.touched.clear();
                            self.init_config();
                        }
                        self.expire_sessions();
                        if last_reap.elapsed() >= reap_every {
                            last_reap = Instant::now();
                            self.reap();
                        }
                    } else if !self.touched.is_empty() {
                        if let Replicator::Raft(tx) = &self.log {
                            let _ = tx.send(ToRaft::Touch(self.touched.drain().collect()));
                        }
                    }
                }
            }
        }
    }

    fn handle(&mut self, msg: CoreMsg) {
        match msg {
            CoreMsg::Connect { conn, addr, req, out } => self.connect(conn, addr, req, out),
            CoreMsg::Request { conn, request } => self.request(conn, request),
            CoreMsg::Gone { conn } => {
                self.connection_broke(conn);
                self.drop_conn(conn);
            }
            CoreMsg::Committed { entries, last_term, ack } => {
                self.committed(entries, last_term);
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
            }
            CoreMsg::Role(role) => self.set_role(role),
            CoreMsg::Lost { seqs } => {
                for seq in seqs {
                    self.lose(seq);
                }
            }
            CoreMsg::Touch { sessions } => {
                let now = Instant::now();
                for sid in sessions {
                    if let Some(l) = self.live.get_mut(&sid) {
                        l.heard(sid, now);
                    }
                }
            }
            CoreMsg::BuildSnapshot { reply } => {
                let view = self.tree.view();
                std::thread::spawn(move || {
                    let _ = reply.send(view.serialize());
                });
            }
            CoreMsg::InstallSnapshot { data, ack } => {
                let _ = ack.send(self.install_snapshot(&data));
            }
            CoreMsg::SnapshotDone { index } => {
                self.snapshot_running = false;
                self.last_snapshot = index;
            }
            CoreMsg::FourLetter { word, reply } => {
                let _ = reply.send(fourlw::answer(self, &word));
            }
            CoreMsg::LogFailed(_) => unreachable!("handled in run"),
        }
    }

    /// Sends a change to the log; returns its proposal number.
    fn propose(&mut self, session: i64, auth: Vec<Id>, kind: TxnKind, origin: Origin) -> u64 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let prev = std::mem::replace(&mut self.prev_seq, seq);
        let txn = Txn { time_ms: now_ms(), session, member: self.cfg.server_id, seq, prev, auth, kind };
        let term = self.role.term;
        match &self.log {
            // The log thread lives as long as the core; if it died, LogFailed is already queued.
            Replicator::Wal(tx) => {
                let _ = tx.send(LogCmd::Append(txn));
            }
            // The raft task reports a proposal it cannot place as Lost.
            Replicator::Raft(tx) => {
                let _ = tx.send(ToRaft::Propose { term, seq, txn: txn.encode() });
            }
        }
        self.waiting.insert(seq, Waiting { origin, term });
        seq
    }

    fn ensemble(&self) -> bool {
        matches!(self.log, Replicator::Raft(_))
    }

    /// A proposal of this member that will never be applied (or whose fate is unknown): its
    /// client gets ConnectionLoss (the connection closes), housekeeping is retried later, and
    /// the next proposal starts a new stream, so nothing proposed after it can apply without it.
    fn lose(&mut self, seq: u64) {
        let Some(w) = self.waiting.remove(&seq) else { return };
        self.prev_seq = 0;
        match w.origin {
            Origin::Request { conn, .. }
            | Origin::Connect { conn }
            | Origin::Move { conn, .. }
            | Origin::Auth { conn } => {
                tracing::info!("a write of connection {conn} was lost with a leader change; closing the connection");
                self.close_conn(conn);
            }
            Origin::Expire { sid } => {
                if let Some(l) = self.live.get_mut(&sid) {
                    l.closing = false;
                }
            }
            Origin::Reap { path } => {
                self.reaping.remove(&path);
            }
            Origin::InitConfig => self.init_config_pending = false,
            Origin::Housekeeping => {}
        }
    }

    fn set_role(&mut self, role: Role) {
        let was = std::mem::replace(&mut self.role, role);
        if (Role { behind: was.behind, ..role }) != was {
            tracing::info!(
                "role: term {}, leader {:?}{}{}",
                role.term,
                role.leader,
                if role.is_leader { " (this member)" } else { "" },
                if role.quorum { "" } else { ", no quorum" }
            );
        }
        if role.is_leader && !was.is_leader {
            // A new leader starts every session's clock afresh: no session expires because
            // there was no leader to hear from it.
            let now = Instant::now();
            for l in self.live.values_mut() {
                l.det.restart(now);
                l.closing = false;
            }
            if self.ensemble() {
                self.init_config();
                self.reconcile_membership();
            }
        }
        if role.quorum && !was.quorum {
            // Read-only clients reconnect and find a read-write member (maybe this one).
            let ro: Vec<ConnId> = self.conns.iter().filter(|(_, c)| c.read_only).map(|(id, _)| *id).collect();
            for conn in ro {
                self.close_conn(conn);
            }
        }
        if !role.quorum {
            // As a ZooKeeper server that loses its leader: clients go to a member that can serve
            // them (read-only sessions stay).
            let gone: Vec<ConnId> = self.conns.iter().filter(|(_, c)| !c.read_only).map(|(id, _)| *id).collect();
            if !gone.is_empty() {
                tracing::info!("no quorum: closing {} client connections", gone.len());
            }
            for conn in gone {
                self.close_conn(conn);
            }
        }
    }

    /// Replaces the tree with a snapshot from the leader. Every client reconnects (and
    /// re-registers its watches against the new state); pending proposals are settled as lost.
    fn install_snapshot(&mut self, data: &[u8]) -> Result<(), String> {
        let mut tree = DataTree::deserialize(data).map_err(|e| format!("snapshot from the leader: {e}"))?;
        tree.extended_types = self.cfg.extended_types;
        tracing::info!("installing a snapshot at zxid 0x{:x}", tree.last_zxid());
        self.tree = tree;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.close_conn(conn);
        }
        let seqs: Vec<u64> = self.waiting.keys().copied().collect();
        for seq in seqs {
            self.lose(seq);
        }
        self.live = live_from(&self.cfg, &self.tree, Instant::now());
        self.reaping.clear();
        Ok(())
    }

    fn send(&mut self, conn: ConnId, frame: Vec<u8>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.sent += 1;
            self.counters.sent += 1;
            c.out.send(frame);
        }
    }

    /// Closes a connection from the server's side (its queued frames are flushed first).
    fn close_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            c.out.close();
        }
        self.drop_conn(conn);
    }

    /// Forgets a connection: its watches go, and its session (if any) starts counting down.
    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(l) = self.live.get_mut(&c.session) {
                if l.conn == Some(conn) {
                    l.conn = None;
                    l.det.restart(Instant::now());
                }
            }
        }
        self.watches.remove_conn(conn);
    }

    fn connect(&mut self, conn: ConnId, addr: SocketAddr, req: ConnectRequest, out: ConnOut) {
        let mut c = Conn {
            addr,
            out,
            session: 0,
            auth: vec![Id { scheme: "ip".into(), id: addr.ip().to_string() }],
            queue: VecDeque::new(),
            established: Instant::now(),
            received: 1,
            sent: 0,
            last_zxid: 0,
            read_only: false,
        };
        self.counters.received += 1;
        if !self.role.quorum {
            if req.read_only && self.cfg.read_only_enabled {
                return self.connect_read_only(conn, c, req);
            }
            tracing::info!(%addr, "refusing client: this member is not in touch with a quorum");
            c.out.close();
            return;
        }
        if req.last_zxid_seen > self.tree.last_zxid() {
            tracing::warn!(
                %addr,
                "refusing session: client has seen zxid 0x{:x}, ours is 0x{:x}",
                req.last_zxid_seen,
                self.tree.last_zxid()
            );
            c.out.close();
            return;
        }
        let timeout = (req.timeout_ms.max(0) as u64)
            .clamp(self.cfg.min_session_timeout(), self.cfg.max_session_timeout().max(self.cfg.min_session_timeout()));
        if req.session_id == 0 {
            self.conns.insert(conn, c);
            let mut passwd = vec![0u8; 16];
            fill_random(&mut passwd);
            let kind = TxnKind::CreateSession { timeout_ms: timeout as i32, passwd };
            self.propose(0, vec![], kind, Origin::Connect { conn });
            return;
        }
        let sid = req.session_id;
        let valid = match (self.tree.sessions().get(&sid), self.live.get(&sid)) {
            (Some(s), Some(l)) => s.passwd == req.passwd && !l.closing,
            _ => false,
        };
        // A session id carries the index of the entry that created it. A member that is still
        // catching up and has not applied that far cannot tell whether the session is live: it
        // sends the client on to another member instead of declaring the session expired. (A
        // member that is caught up answers "expired", as ZooKeeper does, to an id it never saw.)
        let created_at = sid & ((1 << 55) - 1);
        let local_only = sid & (1 << 55) != 0;
        if !valid && self.ensemble() && !local_only && self.role.behind && created_at > self.tree.last_zxid() {
            tracing::info!(%addr, "session 0x{sid:x} was created after zxid 0x{:x}; refusing until caught up", self.tree.last_zxid());
            c.out.close();
            return;
        }
        if !valid {
            tracing::info!(%addr, "session 0x{sid:x} is expired or its password is wrong");
            let resp = ConnectResponse {
                protocol_version: 0,
                timeout_ms: 0,
                session_id: 0,
                passwd: Some(vec![0; 16]),
                read_only: false,
            };
            let mut w = Writer::framed();
            resp.encode(&mut w);
            c.out.send(w.into_frame());
            c.out.close();
            return;
        }
        // As ZooKeeper does, a resumed session takes the timeout negotiated on this connect.
        let s = &self.tree.sessions()[&sid];
        let owner = s.owner;
        let fast = s.fast_grace_ms > 0;
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms: timeout as i32,
            session_id: sid,
            passwd: Some(s.passwd.clone()),
            read_only: false,
        };
        let old = self.live.get(&sid).and_then(|l| l.conn);
        if let Some(old) = old {
            tracing::info!("session 0x{sid:x} moved to a new connection; closing the old one");
            self.close_conn(old);
        }
        if owner != self.cfg.server_id || fast {
            // The client came from another member: from this entry on, writes for the session
            // count only through this member, and the other one drops its connection.
            // If the move is lost (a leader change), the connection closes and the client
            // resumes again, rather than writing through a member that does not own it.
            // A fast-expiry session logs every resume, even at its owner: the entry is its new
            // connection epoch, which cancels the expiry its broken connection asked for.
            self.propose(sid, vec![], TxnKind::MoveSession, Origin::Move { conn, sid });
        }
        c.session = sid;
        let mut w = Writer::framed();
        resp.encode(&mut w);
        c.out.send(w.into_frame());
        self.conns.insert(conn, c);
        let heartbeat = Duration::from_millis(u64::from(self.tree.sessions()[&sid].heartbeat_ms));
        if let Some(l) = self.live.get_mut(&sid) {
            l.conn = Some(conn);
            l.heard(sid, Instant::now());
            l.set_floor(&self.cfg, Duration::from_millis(timeout), heartbeat);
        }
    }

    /// Without a quorum, a client that asked for it gets a read-only session: reads from this
    /// member's state, writes answered NotReadOnly. As in ZooKeeper, such a session is local to
    /// this member and is not in the log; the client moves to a read-write member when it finds one.
    fn connect_read_only(&mut self, conn: ConnId, mut c: Conn, req: ConnectRequest) {
        c.read_only = true;
        let (sid, passwd) = match self.tree.sessions().get(&req.session_id) {
            Some(s) if req.session_id != 0 && s.passwd == req.passwd => (req.session_id, s.passwd.clone()),
            _ => {
                self.read_only_sessions += 1;
                let mut passwd = vec![0u8; 16];
                fill_random(&mut passwd);
                // Top byte: this member; next bit marks a local session, never a logged one.
                let sid = ((self.cfg.server_id as i64) << 56) | (1 << 55) | self.read_only_sessions as i64;
                (sid, passwd)
            }
        };
        let timeout = (req.timeout_ms.max(0) as u64)
            .clamp(self.cfg.min_session_timeout(), self.cfg.max_session_timeout().max(self.cfg.min_session_timeout()));
        tracing::info!(addr = %c.addr, "read-only session 0x{sid:x} (no quorum)");
        c.session = sid;
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms: timeout as i32,
            session_id: sid,
            passwd: Some(passwd),
            read_only: true,
        };
        let mut w = Writer::framed();
        resp.encode(&mut w);
        c.out.send(w.into_frame());
        self.conns.insert(conn, c);
    }

    fn request(&mut self, conn: ConnId, r: ClientRequest) {
        self.counters.received += 1;
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.received += 1;
        let sid = c.session;
        if sid == 0 {
            return;
        }
        if let Some(l) = self.live.get_mut(&sid) {
            l.heard(sid, Instant::now());
            if l.closing {
                return;
            }
        }
        let ensemble = self.ensemble();
        if ensemble {
            self.touched.insert(sid);
        }
        if let Request::Auth(a) = &r.req {
            self.auth(conn, a.clone());
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else { return };
        // In an ensemble, sync goes through the log (see `DataTree::apply`).
        let write = r.req.is_write()
            || (ensemble && matches!(r.req, Request::Sync(_)))
            || (ensemble && self.cfg.reconfig_enabled && matches!(r.req, Request::Reconfig(_)));
        if write && c.read_only {
            let f = frame(
                &ReplyHeader { xid: r.xid, zxid: self.tree.last_zxid(), err: ErrorCode::NotReadOnly.code() },
                &[],
            );
            // A read-only session never has writes in flight, so nothing is queued ahead of this.
            self.send(conn, f);
            return;
        }
        if write {
            let kind = match r.req {
                Request::CloseSession => TxnKind::CloseSession,
                _ => TxnKind::Request { op: r.req.op().code(), body: r.body },
            };
            let auth = c.auth.clone();
            let xid = r.xid;
            let seq = self.propose(sid, auth, kind, Origin::Request { conn, xid, permit: r.permit });
            if let Some(c) = self.conns.get_mut(&conn) {
                c.queue.push_back(Queued::Write(seq));
            }
        } else if c.queue.is_empty() {
            self.read(conn, r);
        } else {
            c.queue.push_back(Queued::Read(r));
        }
    }

    fn auth(&mut self, conn: ConnId, a: AuthPacket) {
        let zxid = self.tree.last_zxid();
        let super_digest = self.cfg.super_digest.clone();
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let ok = match a.scheme.as_str() {
            "digest" => {
                let text = String::from_utf8_lossy(a.auth.as_deref().unwrap_or_default()).into_owned();
                let id = acl::digest_id(&text);
                if super_digest.as_deref() == Some(id.as_str()) && !c.auth.contains(&acl::super_id()) {
                    c.auth.push(acl::super_id());
                }
                let id = Id { scheme: "digest".into(), id };
                if !c.auth.contains(&id) {
                    c.auth.push(id);
                }
                true
            }
            "ip" => true,
            "herd" => {
                let text = String::from_utf8_lossy(a.auth.as_deref().unwrap_or_default()).into_owned();
                let current = self.tree.sessions().get(&c.session);
                let (fast, hb) = current.map_or((0, 0), |s| (s.fast_grace_ms, s.heartbeat_ms));
                match herd_options(&text, self.cfg.fast_expiry_grace_ms, fast, hb) {
                    Some(_) if c.read_only => {
                        // A read-only session is not in the log, so it has no options to set.
                        let f = frame(&ReplyHeader { xid: xid::AUTH, zxid, err: ErrorCode::NotReadOnly.code() }, &[]);
                        self.send(conn, f);
                        return;
                    }
                    Some((fast_grace_ms, heartbeat_ms)) => {
                        let (sid, auth) = (c.session, c.auth.clone());
                        let kind = TxnKind::SessionOptions { fast_grace_ms, heartbeat_ms };
                        self.propose(sid, auth, kind, Origin::Auth { conn });
                        return;
                    }
                    None => false,
                }
            }
            _ => false,
        };
        let err = if ok { ErrorCode::Ok } else { ErrorCode::AuthFailed };
        let f = frame(&ReplyHeader { xid: xid::AUTH, zxid, err: err.code() }, &[]);
        self.send(conn, f);
        if !ok {
            tracing::warn!("authentication failed for scheme {:?}; closing the connection", a.scheme);
            self.close_conn(conn);
        }
    }

    /// Answers a request that does not change the tree.
    fn read(&mut self, conn: ConnId, r: ClientRequest) {
        let zxid = self.tree.last_zxid();
        let (sid, ids) = match self.conns.get(&conn) {
            Some(c) => (c.session, c.auth.clone()),
            None => return,
        };
        let mut w = Writer::new();
        let mut xid = r.xid;
        let err: Result<(), ErrorCode> = (|| {
            match &r.req {
                Request::Ping => xid = xid::PING,
                Request::Exists(PathWatchRequest { path, watch }) => {
                    let stat = self.tree.exists_checked(path, &ids);
                    // A watch is left even when the node is absent: it fires on creation.
                    if *watch && !matches!(stat, Err(ErrorCode::BadArguments | ErrorCode::NoAuth)) {
                        self.watches.add(conn, WatchKind::Data, path);
                    }
                    StatResponse { stat: stat? }.encode(&mut w);
                }
                Request::GetData(PathWatchRequest { path, watch }) => {
                    let (data, stat) = self.tree.get_data(path, &ids)?;
                    if *watch {
                        self.watches.add(conn, WatchKind::Data, path);
                    }
                    GetDataResponse { data, stat }.encode(&mut w);
                }
                Request::GetChildren(PathWatchRequest { path, watch })
                | Request::GetChildren2(PathWatchRequest { path, watch }) => {
                    let (children, stat) = self.tree.get_children(path, &ids)?;
                    if *watch {
                        self.watches.add(conn, WatchKind::Child, path);
                    }
                    if matches!(r.req, Request::GetChildren(_)) {
                        GetChildrenResponse { children }.encode(&mut w);
                    } else {
                        GetChildren2Response { children, stat }.encode(&mut w);
                    }
                }
                Request::GetAcl(PathRequest { path }) => {
                    let (acl, stat) = self.tree.get_acl(path, &ids)?;
                    GetAclResponse { acl, stat }.encode(&mut w);
                }
                Request::Sync(PathRequest { path }) => SyncResponse { path: path.clone() }.encode(&mut w),
                Request::GetAllChildrenNumber(PathRequest { path }) => {
                    GetAllChildrenNumberResponse { total: self.tree.all_children_number(path, &ids)? }.encode(&mut w)
                }
                Request::GetEphemerals(PathRequest { path }) => {
                    GetEphemeralsResponse { ephemerals: self.tree.session_ephemerals(sid, path) }.encode(&mut w)
                }
                Request::WhoAmI => {
                    let client_info = ids
                        .iter()
                        .map(|i| ClientInfo {
                            auth_scheme: i.scheme.clone(),
                            user: i.id.split(':').next().unwrap_or("").to_owned(),
                        })
                        .collect();
                    WhoAmIResponse { client_info }.encode(&mut w);
                }
                Request::AddWatch(AddWatchRequest { path, mode }) => {
                    let kind = match *mode {
                        add_watch_mode::PERSISTENT => WatchKind::Persistent,
                        add_watch_mode::PERSISTENT_RECURSIVE => WatchKind::Recursive,
                        _ => return Err(ErrorCode::BadArguments),
                    };
                    self.watches.add(conn, kind, path);
                    ErrorResponse { err: 0 }.encode(&mut w);
                }
                Request::CheckWatches(WatchesRequest { path, kind }) => {
                    if !self.matching_watches(conn, path, *kind, false)? {
                        return Err(ErrorCode::NoWatcher);
                    }
                }
                Request::RemoveWatches(WatchesRequest { path, kind }) => {
                    if !self.matching_watches(conn, path, *kind, true)? {
                        return Err(ErrorCode::NoWatcher);
                    }
                }
                Request::SetWatches(sw) | Request::SetWatches2(sw) => self.set_watches(conn, sw),
                Request::MultiRead(ops) => {
                    for op in ops {
                        let one = match op {
                            Request::GetData(PathWatchRequest { path, .. }) => self
                                .tree
                                .get_data(path, &ids)
                                .map(|(data, stat)| (OpCode::GetData, GetDataResponse { data, stat }.to_bytes())),
                            Request::GetChildren(PathWatchRequest { path, .. }) => {
                                self.tree.get_children(path, &ids).map(|(children, _)| {
                                    (OpCode::GetChildren, GetChildrenResponse { children }.to_bytes())
                                })
                            }
                            _ => Err(ErrorCode::BadArguments),
                        };
                        match one {
                            Ok((op, body)) => {
                                MultiHeader { op: op.code(), done: false, err: 0 }.encode(&mut w);
                                w.buf.extend_from_slice(&body);
                            }
                            Err(e) => {
                                MultiHeader { op: OpCode::Error.code(), done: false, err: e.code() }.encode(&mut w);
                                ErrorResponse { err: e.code() }.encode(&mut w);
                            }
                        }
                    }
                    MultiHeader::end().encode(&mut w);
                }
                // Reached standalone, or with reconfig disabled: ZooKeeper's answers for both.
                Request::Reconfig(_) if self.cfg.reconfig_enabled => return Err(ErrorCode::Unimplemented),
                Request::Reconfig(_) => return Err(ErrorCode::ReconfigDisabled),
                _ => return Err(ErrorCode::Unimplemented),
            }
            Ok(())
        })();
        let (err, body) = match err {
            Ok(()) => (0, w.buf),
            Err(e) => (e.code(), Vec::new()),
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_zxid = zxid;
        }
        self.send(conn, frame(&ReplyHeader { xid, zxid, err }, &body));
        drop(r.permit);
    }

    /// checkWatches/removeWatches: whether the connection has a watch of `kind` on `path`.
    fn matching_watches(&mut self, conn: ConnId, path: &str, kind: i32, remove: bool) -> Result<bool, ErrorCode> {
        let kind = WatcherType::try_from(kind).map_err(|_| ErrorCode::BadArguments)?;
        // ZooKeeper keeps persistent watches in both its data and child tables, so a Data or
        // Children request finds (and removes) them too.
        let kinds: &[WatchKind] = match kind {
            WatcherType::Children => &[WatchKind::Child, WatchKind::Persistent, WatchKind::Recursive],
            WatcherType::Data => &[WatchKind::Data, WatchKind::Persistent, WatchKind::Recursive],
            WatcherType::Persistent => &[WatchKind::Persistent],
            WatcherType::PersistentRecursive => &[WatchKind::Recursive],
            WatcherType::Any => Watches::kinds(),
        };
        let mut found = false;
        for k in kinds {
            if self.watches.has(conn, *k, path) {
                found = true;
                if remove {
                    self.watches.remove(conn, *k, path);
                }
            }
        }
        Ok(found)
    }

    /// setWatches on reconnect: re-registers, or fires at once what changed since `relative_zxid`.
    fn set_watches(&mut self, conn: ConnId, sw: &SetWatches2) {
        let rel = sw.relative_zxid;
        let mut fire = Vec::new();
        for p in &sw.data_watches {
            match self.tree.exists(p) {
                None => fire.push((p.clone(), EventType::NodeDeleted)),
                Some(s) if s.mzxid > rel => fire.push((p.clone(), EventType::NodeDataChanged)),
                Some(_) => self.watches.add(conn, WatchKind::Data, p),
            }
        }
        for p in &sw.exist_watches {
            match self.tree.exists(p) {
                Some(_) => fire.push((p.clone(), EventType::NodeCreated)),
                None => self.watches.add(conn, WatchKind::Data, p),
            }
        }
        for p in &sw.child_watches {
            match self.tree.exists(p) {
                None => fire.push((p.clone(), EventType::NodeDeleted)),
                Some(s) if s.pzxid > rel => fire.push((p.clone(), EventType::NodeChildrenChanged)),
                Some(_) => self.watches.add(conn, WatchKind::Child, p),
            }
        }
        for p in &sw.persistent_watches {
            self.watches.add(conn, WatchKind::Persistent, p);
        }
        for p in &sw.persistent_recursive_watches {
            self.watches.add(conn, WatchKind::Recursive, p);
        }
        for (p, ev) in fire {
            self.notify(conn, &p, ev);
        }
    }

    /// Sends a watch event. Its header carries zxid -1, as ZooKeeper's does.
    fn notify(&mut self, conn: ConnId, path: &str, ev: EventType) {
        let h = ReplyHeader { xid: xid::NOTIFICATION, zxid: -1, err: 0 };
        let e = WatcherEvent { kind: ev.code(), state: KeeperState::SyncConnected.code(), path: path.to_owned() };
        self.send(conn, frame(&h, &e.to_bytes()));
    }

    /// Applies committed entries in index order; answers those this member proposed.
    fn committed(&mut self, entries: Vec<(u64, Txn)>, last_term: u64) {
        for (index, txn) in entries {
            let out = self.tree.apply(index, &txn);
            let mine = txn.member == self.cfg.server_id && self.waiting.contains_key(&txn.seq);
            if out.skipped {
                if mine {
                    self.lose(txn.seq);
                }
                continue;
            }
            let origin = if mine { self.waiting.remove(&txn.seq).map(|w| w.origin) } else { None };
            if let TxnKind::Reap { path } = &txn.kind {
                self.reaping.remove(path);
            }
            self.after_apply(index, &txn, origin.unwrap_or(Origin::Housekeeping), out);
        }
        if last_term > self.applied_term {
            // Raft commits an entry of a new term only together with every earlier entry that
            // will ever commit: what this member proposed under an older term and has not seen
            // applied by now is lost.
            self.applied_term = last_term;
            let lost: Vec<u64> = self.waiting.iter().filter(|(_, w)| w.term < last_term).map(|(s, _)| *s).collect();
            for seq in lost {
                self.lose(seq);
            }
        }
        if !self.ensemble() {
            self.maybe_snapshot();
        }
    }

    /// At the leader of a new ensemble: writes the static configuration into the log, so that
    /// every member (and every later joiner) derives `/zookeeper/config` from the log alone.
    /// Retried on every tick until it is applied.
    fn init_config(&mut self) {
        if !self.role.is_leader || self.init_config_pending || self.tree.ensemble_config().is_some() {
            return;
        }
        let servers = self.cfg.peers.iter().map(|p| (p.id, p.spec.clone())).collect();
        self.init_config_pending = true;
        self.propose(0, vec![], TxnKind::InitConfig { servers }, Origin::InitConfig);
    }

    /// At the leader: asks raft to make its membership what `/zookeeper/config` says.
    fn reconcile_membership(&self) {
        let (Replicator::Raft(tx), true) = (&self.log, self.role.is_leader) else { return };
        if let Some(c) = self.tree.ensemble_config() {
            let (voters, observers) = c.members();
            let _ = tx.send(ToRaft::Membership { voters, observers });
        }
    }

    fn after_apply(&mut self, index: u64, txn: &Txn, origin: Origin, out: Outcome) {
        let zxid = index as i64;
        let config_change = match &txn.kind {
            TxnKind::InitConfig { .. } => {
                self.init_config_pending = false;
                true
            }
            TxnKind::Request { op, .. } => *op == OpCode::Reconfig.code() && out.err == 0,
            _ => false,
        };
        if config_change {
            self.reconcile_membership();
        }
        for t in &out.events {
            for conn in self.watches.trigger(&t.path, t.event) {
                // The watch is used up either way; the event goes only to readers (3.8.4+).
                let may_read = self.conns.get(&conn).is_some_and(|c| acl::allowed(&t.acl, &c.auth, Perms::READ));
                if may_read {
                    self.notify(conn, &t.path, t.event);
                }
            }
        }
        if let Some(sid) = out.created_session {
            let timeout = match &txn.kind {
                TxnKind::CreateSession { timeout_ms, .. } => *timeout_ms,
                _ => 0,
            };
            let conn = match origin {
                Origin::Connect { conn } => Some(conn),
                _ => None,
            };
            let conn = conn.filter(|c| self.conns.contains_key(c));
            let negotiated = Duration::from_millis(timeout.max(0) as u64);
            let mut live = Live::new(&self.cfg, negotiated, Duration::ZERO, Instant::now());
            live.conn = conn;
            self.live.insert(sid, live);
            if let Some(conn) = conn {
                let passwd = self.tree.sessions().get(&sid).map(|s| s.passwd.clone());
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.session = sid;
                    let resp = ConnectResponse {
                        protocol_version: 0,
                        timeout_ms: timeout,
                        session_id: sid,
                        passwd,
                        read_only: false,
                    };
                    let mut w = Writer::framed();
                    resp.encode(&mut w);
                    c.out.send(w.into_frame());
                }
            }
            return;
        }
        if let (TxnKind::SessionOptions { fast_grace_ms, heartbeat_ms }, 0) = (&txn.kind, out.err) {
            // Every member keeps the floor current: any of them may be (or become) the leader.
            if let Some(l) = self.live.get_mut(&txn.session) {
                let timeout = l.timeout;
                l.set_floor(&self.cfg, timeout, Duration::from_millis(u64::from(*heartbeat_ms)));
            }
            tracing::info!("session 0x{:x}: fast expiry {fast_grace_ms} ms, heartbeat {heartbeat_ms} ms", txn.session);
        }
        if let Origin::Auth { conn } = origin {
            // The auth reply of ZooKeeper's protocol: AuthFailed would close the connection, so a
            // session that vanished meanwhile gets SessionExpired instead.
            let f = frame(&ReplyHeader { xid: xid::AUTH, zxid, err: out.err }, &[]);
            self.send(conn, f);
            return;
        }
        if let Origin::Request { conn, xid, permit } = origin {
            let reply = frame(&ReplyHeader { xid, zxid, err: out.err }, &out.body);
            self.send(conn, reply);
            drop(permit);
            self.drain_queue(conn, txn.seq);
        }
        if let Some((sid, owner)) = out.moved_session {
            // A move of this member's own for the session that is not applied yet comes later
            // in the log and wins: the client is here now, so its connection stays.
            let moving_here =
                self.waiting.values().any(|w| matches!(w.origin, Origin::Move { sid: s, .. } if s == sid));
            if owner != self.cfg.server_id && !moving_here {
                if let Some(conn) = self.live.get_mut(&sid).and_then(|l| l.conn.take()) {
                    tracing::info!("session 0x{sid:x} moved to member {owner}; closing its connection here");
                    self.close_conn(conn);
                }
            }
        }
        if let Some(sid) = out.closed_session {
            if let Some(l) = self.live.remove(&sid) {
                if let Some(conn) = l.conn {
                    self.close_conn(conn);
                }
            }
            tracing::debug!("session 0x{sid:x} closed");
        }
    }

    /// After write `seq` of `conn` is answered, answers the reads that waited behind it.
    fn drain_queue(&mut self, conn: ConnId, seq: u64) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        match c.queue.front() {
            Some(Queued::Write(s)) if *s == seq => {
                c.queue.pop_front();
            }
            _ => {
                debug_assert!(false, "write {seq} answered out of order");
                return;
            }
        }
        loop {
            let Some(c) = self.conns.get_mut(&conn) else { return };
            match c.queue.front() {
                Some(Queued::Read(_)) => {
                    if let Some(Queued::Read(r)) = c.queue.pop_front() {
                        self.read(conn, r);
                    }
                }
                _ => return,
            }
        }
    }

    fn expire_sessions(&mut self) {
        let now = Instant::now();
        let due: Vec<i64> = self
            .live
            .iter_mut()
            .filter_map(|(sid, l)| (!l.closing && l.det.check(now) == Verdict::Dead).then_some(*sid))
            .collect();
        for sid in due {
            tracing::info!("expiring session 0x{sid:x}");
            if let Some(l) = self.live.get_mut(&sid) {
                l.closing = true;
            }
            self.propose(sid, vec![], TxnKind::CloseSession, Origin::Expire { sid });
        }
    }

    /// A client connection ended without closeSession (EOF or a reset: the process died, or
    /// its machine's network stack gave up). For a session that opted in to fast expiry and is
    /// still attached to this connection, start its grace.
    fn connection_broke(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else { return };
        let sid = c.session;
        let Some(l) = self.live.get(&sid) else { return };
        let Some(s) = self.tree.sessions().get(&sid) else { return };
        if l.conn != Some(conn) || l.closing || s.fast_grace_ms == 0 {
            return;
        }
        let grace = Duration::from_millis(u64::from(s.fast_grace_ms));
        tracing::info!("session 0x{sid:x}: its connection broke; expiring it in {grace:?} unless it resumes");
        self.suspects.push_back(Suspect { due: Instant::now() + grace, sid, attached: s.attached });
    }

    /// Proposes the expiry of each suspect whose grace is over, if it has not attached again.
    fn fast_expire_due(&mut self) {
        let now = Instant::now();
        while self.suspects.front().is_some_and(|s| s.due <= now) {
            let Some(Suspect { sid, attached, .. }) = self.suspects.pop_front() else { break };
            // What this member already knows settles most cases; the log decides the rest.
            let still = self.tree.sessions().get(&sid).is_some_and(|s| s.attached == attached);
            if still {
                tracing::info!("session 0x{sid:x}: no resume within its grace; expiring it");
                self.propose(sid, vec![], TxnKind::ExpireDetached { attached }, Origin::Housekeeping);
            }
        }
    }

    fn reap(&mut self) {
        let now = now_ms();
        for path in self.tree.reap_candidates(now) {
            if self.reaping.insert(path.clone()) {
                self.propose(0, vec![], TxnKind::Reap { path: path.clone() }, Origin::Reap { path });
            }
        }
    }

    fn maybe_snapshot(&mut self) {
        let applied = self.tree.last_zxid() as u64;
        if self.snapshot_running || applied < self.last_snapshot + self.cfg.snap_count {
            return;
        }
        self.snapshot_running = true;
        // O(1): the tree's maps are persistent, so the copy shares everything until the core
        // changes it, and serializing happens on the snapshot thread, not here.
        let view = self.tree.view();
        let dir = self.cfg.data_dir.clone();
        let Replicator::Wal(log) = &self.log else { return };
        let log = log.clone();
        let tx = self.self_tx.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            // Streamed into the file as it is serialized: never the whole state in memory.
            let result = crate::snapshot::write_with(&dir, applied, |w| view.write_to(w));
            drop(view);
            let result = result.and_then(|path| {
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                crate::snapshot::prune(&dir).map(|c| (c, bytes))
            });
            match result {
                Ok((compact_to, bytes)) => {
                    tracing::info!(
                        "snapshot at {applied}: {bytes} bytes, serialized, written and fsynced in {:?}",
                        t0.elapsed()
                    );
                    if let Some(covered) = compact_to {
                        let _ = log.send(LogCmd::Compact { covered });
                    }
                }
                // The next attempt comes after another snapCount entries, not at once.
                Err(e) => tracing::error!("snapshot at {applied} failed: {e}; the log keeps everything"),
            }
            let _ = tx.blocking_send(CoreMsg::SnapshotDone { index: applied });
        });
    }

    // ---- views for the four-letter words ------------------------------------------------------

    pub fn tree(&self) -> &DataTree {
        &self.tree
    }
    pub fn config(&self) -> &KeeperConfig {
        &self.cfg
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn watches(&self) -> &Watches {
        &self.watches
    }
    /// ZooKeeper's server state: standalone, leader, follower, or read-only without a quorum.
    pub fn mode(&self) -> &'static str {
        match (self.ensemble(), self.role.quorum, self.role.is_leader) {
            (false, _, _) => "standalone",
            (true, false, _) => "read-only",
            (true, true, true) => "leader",
            (true, true, false) => "follower",
        }
    }
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
    pub fn outstanding(&self) -> usize {
        self.waiting.len()
    }
    pub fn live_sessions(&self) -> Vec<(i64, Duration)> {
        let mut v: Vec<(i64, Duration)> = self.live.iter().map(|(s, l)| (*s, l.timeout())).collect();
        v.sort();
        v
    }
    /// One line per connection: address, session, counters, established-for.
    pub fn connection_lines(&self) -> Vec<String> {
        let mut ids: Vec<&ConnId> = self.conns.keys().collect();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let c = &self.conns[id];
                let to = self.live.get(&c.session).map_or(0, |l| l.timeout().as_millis());
                format!(
                    " /{}[1](queued={},recved={},sent={},sid=0x{:x},lop=NA,est={},to={},lzxid=0x{:x})",
                    c.addr,
                    c.queue.len(),
                    c.received,
                    c.sent,
                    c.session,
                    c.established.elapsed().as_millis(),
                    to,
                    c.last_zxid
                )
            })
            .collect()
    }
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }
}

/// Parses the `herd` auth scheme's options, comma-separated, over the session's current ones:
/// `fast-expiry` (the server's default grace) or `fast-expiry=MS` (0 opts out; clamped to
/// 10 ms..60 s), and `heartbeat=MS` (the interval the client pings at; 0 = none; at most 60 s).
/// Returns (grace, heartbeat), or None for anything else.
fn herd_options(text: &str, default_grace_ms: u32, grace_ms: u32, heartbeat_ms: u32) -> Option<(u32, u32)> {
    let (mut grace, mut heartbeat) = (grace_ms, heartbeat_ms);
    for opt in text.split(',').map(str::trim) {
        match opt.split_once('=') {
            None if opt == "fast-expiry" => grace = default_grace_ms,
            Some(("fast-expiry", ms)) => {
                let ms: u32 = ms.parse().ok()?;
                grace = if ms == 0 { 0 } else { ms.clamp(10, 60_000) };
            }
            Some(("heartbeat", ms)) => heartbeat = ms.parse::<u32>().ok()?.min(60_000),
            _ => return None,
        }
    }
    Some((grace, heartbeat))
}

/// Every session in `tree`, heard from at `now` and on no connection yet.
fn live_from(cfg: &KeeperConfig, tree: &DataTree, now: Instant) -> HashMap<i64, Live> {
    tree.sessions()
        .iter()
        .map(|(sid, s)| {
            let timeout = Duration::from_millis(s.timeout_ms.max(0) as u64);
            (*sid, Live::new(cfg, timeout, Duration::from_millis(u64::from(s.heartbeat_ms)), now))
        })
        .collect()
}

/// Fills `buf` from the kernel's random source (session passwords).
fn fill_random(buf: &mut [u8]) {
    use std::io::Read;
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(buf).is_ok() {
            return;
        }
    }
    // /dev/urandom is always there on Linux; this fallback only keeps the function total.
    let seed = now_ms() as u64 ^ std::process::id() as u64;
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (seed.rotate_left(i as u32 * 7) >> 3) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::herd_options;

    #[test]
    fn herd_options_parse_over_the_current_ones() {
        assert_eq!(herd_options("fast-expiry", 1000, 0, 0), Some((1000, 0)));
        assert_eq!(herd_options("fast-expiry=250,heartbeat=100", 1000, 0, 0), Some((250, 100)));
        assert_eq!(herd_options("heartbeat=50", 1000, 700, 0), Some((700, 50)), "fast expiry kept");
        assert_eq!(herd_options("fast-expiry=0", 1000, 700, 50), Some((0, 50)));
        assert_eq!(herd_options("fast-expiry=1", 1000, 0, 0), Some((10, 0)), "clamped");
        for bad in ["", "fast", "heartbeat", "heartbeat=-1", "fast-expiry=soon", "fast-expiry,x=1"] {
            assert_eq!(herd_options(bad, 1000, 0, 0), None, "{bad:?}");
        }
    }
}
