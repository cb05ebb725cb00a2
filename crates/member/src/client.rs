//! An async ZooKeeper session: one session held across connections, with pings, reconnects,
//! re-sent auth, re-registered watches and expiry, spoken over `keeper-proto`'s wire types.
//!
//! Why herd has its own: a daemon must hand its session's id *and password* to its supervisor
//! (see [`crate::report`]), so that the supervisor can end the session the moment the daemon
//! dies; the `zookeeper-client` crate keeps the password private. herd also needs to decide
//! itself when to ping, when a connection counts as dead and where to reconnect, because its
//! failure detection is built on exactly those choices.
//!
//! What a [`Session`] promises, as ZooKeeper's own clients do:
//! - Requests are answered in the order they were sent, each by the reply with its xid. Every
//!   request future resolves: a lost connection fails what was in flight with
//!   [`Error::ConnectionLoss`] (the request may or may not have taken effect), an expired
//!   session with [`Error::Expired`], a closed one with [`Error::Closed`]. While disconnected, a
//!   new request fails at once with `ConnectionLoss` instead of waiting; callers retry.
//! - The connection is pinged when nothing was sent for a third of the negotiated timeout, and
//!   declared dead when nothing at all arrived for two thirds of it. Then the session moves to
//!   the next host of the list (round robin, a short pause after each full round) and resumes
//!   with (id, password, last zxid seen), so a server that is behind what this client has seen
//!   refuses it and the next one is tried.
//! - After every reconnect, the auth packets go out first (in the order they were added), then
//!   the one-shot watches still armed are re-registered with setWatches2 relative to the last
//!   zxid seen, so a change missed while disconnected fires at once.
//! - A resume answered with a zero timeout means the keeper ended the session: the state becomes
//!   [`State::Expired`] and the session is over; a new incarnation needs a new [`Session`].
//!   The client never declares expiry on its own: it learns it from a server, as ZooKeeper's
//!   clients do. Callers that want to give up earlier watch [`State::Disconnected`]'s `since`.
//! - Dropping every handle stops the connection task *without* closing the session: to the
//!   keeper that looks like a crash, and the session lives until its timeout (or until the
//!   supervisor ends it with the password). Only [`Session::close`] ends it.
//!
//! Layout: [`Session`] is a cheap handle; one tokio task, `SessionCore`, owns the socket, the
//! requests in flight and the watch bookkeeping, and is driven by a bounded command channel.

use keeper_proto::{
    xid, Acl, AuthPacket, Create2Response, CreateMode, CreateRequest, DecodeError, DeleteRequest, ErrorCode, EventType,
    GetChildren2Response, GetDataResponse, Id, Jute, OpCode, PathWatchRequest, Perms, Reader, ReplyHeader,
    RequestHeader, SetDataRequest, SetWatches2, Stat, StatResponse, WatcherEvent, Writer,
};
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

/// The largest reply frame accepted; a longer declared length means the stream is not a
/// ZooKeeper server's (or is corrupt), and the connection is dropped before allocating it.
pub const FRAME_MAX: usize = 64 << 20;
/// Commands queued to the connection task, and requests it keeps in flight on one connection.
const REQUESTS_MAX: usize = 1024;
/// Watch events buffered for the one events receiver before new ones are dropped.
const EVENTS_MAX: usize = 1024;
/// Requests written to the socket in one go, in bytes (a batch, not a limit on one request).
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// ZooKeeper splits setWatches at this size so that no frame nears `jute.maxbuffer`.
const SET_WATCHES_BATCH_BYTES: usize = 128 * 1024;
/// Pause after the first full round of hosts failed, and after every later one.
const ROUND_PAUSE_FIRST: Duration = Duration::from_millis(50);
const ROUND_PAUSE: Duration = Duration::from_millis(100);
/// ZooKeeper's client port, for connect-string entries that name no port.
const DEFAULT_PORT: u16 = 2181;
/// The password a new session's connect request carries (the server chooses the real one).
const NO_PASSWORD: [u8; 16] = [0; 16];

/// How to reach the keeper and what session to ask for.
#[derive(Clone)]
pub struct ClientConfig {
    /// `host:port` entries, tried in order; [`ClientConfig::parse`] makes them from a connect
    /// string `h1:p1,h2:p2`. Each is resolved again at every attempt.
    pub hosts: Vec<String>,
    /// The session timeout asked for; the server answers the one it grants
    /// ([`Session::timeout`]). A first connect gives up after this long without a server.
    pub session_timeout: Duration,
    /// `addauth` packets, (scheme, auth), sent in this order after every (re)connect before
    /// anything else.
    pub auth: Vec<(String, Vec<u8>)>,
    /// Bounds each TCP connect (and name lookup) to one server.
    pub connect_timeout: Duration,
    /// Ping at least this often when idle (never less often than a third of the timeout). A
    /// member daemon pings often so that the keeper's silence clock starts close to the moment
    /// it hung: its detection time is then the timeout plus at most this, not a third more.
    pub ping_interval: Option<Duration>,
}

impl ClientConfig {
    pub const SESSION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
    pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);

    /// A config for a connect string (`host:port,host:port`), with default timeouts and no auth.
    pub fn parse(connect_string: &str) -> Result<ClientConfig, Error> {
        Ok(ClientConfig {
            hosts: parse_connect_string(connect_string)?,
            session_timeout: Self::SESSION_TIMEOUT_DEFAULT,
            auth: Vec::new(),
            connect_timeout: Self::CONNECT_TIMEOUT_DEFAULT,
            ping_interval: None,
        })
    }

    /// The hosts as a connect string.
    pub fn connect_string(&self) -> String {
        self.hosts.join(",")
    }
}

impl fmt::Debug for ClientConfig {
    // Auth data is a secret (digest auth carries "user:password"): only schemes are printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("hosts", &self.hosts)
            .field("session_timeout", &self.session_timeout)
            .field("auth_schemes", &self.auth.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>())
            .field("connect_timeout", &self.connect_timeout)
            .field("ping_interval", &self.ping_interval)
            .finish()
    }
}

/// Splits a connect string into `host:port` entries; an entry without a port gets 2181.
/// IPv6 addresses are written in brackets (`[::1]:2181`). A chroot suffix (`/path`) is refused:
/// this client does not rewrite paths.
pub fn parse_connect_string(s: &str) -> Result<Vec<String>, Error> {
    let bad = || Error::BadConnectString(s.to_owned());
    if s.contains('/') {
        return Err(bad());
    }
    let mut hosts = Vec::new();
    for entry in s.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(bad());
        }
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match entry.split_once(':') {
                None => (entry, None),
                Some((host, port)) => (host, Some(port)),
            }
        };
        if host.is_empty() || (!entry.starts_with('[') && host.contains(':')) {
            return Err(bad());
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().map_err(|_| bad())?,
        };
        hosts.push(if entry.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") });
    }
    Ok(hosts)
}

/// Where the session stands. Watch it with [`Session::state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Connected to this server; requests flow.
    Connected { server: SocketAddr },
    /// The connection was lost at `since`; the session is looking for a server. Requests fail
    /// with [`Error::ConnectionLoss`] meanwhile.
    Disconnected { since: Instant },
    /// The keeper ended the session (its timeout passed without us, or it was closed elsewhere).
    Expired,
    /// [`Session::close`] ended the session, or the handle's task stopped.
    Closed,
}

/// A watch that fired: what happened, and to which node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventType,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server answered the request with this error code.
    #[error("keeper answered {0:?}")]
    Keeper(ErrorCode),
    /// The server answered an error code this client does not know.
    #[error("keeper answered unknown error code {0}")]
    UnknownCode(i32),
    /// The connection was lost before the reply came (the request may or may not have taken
    /// effect), or the session is disconnected right now. Retry once connected again.
    #[error("connection to the keeper lost")]
    ConnectionLoss,
    /// The keeper ended the session.
    #[error("session expired")]
    Expired,
    /// The session was closed through this client.
    #[error("session closed")]
    Closed,
    /// No server of the list could be reached within the connect budget.
    #[error("no keeper reachable: {0}")]
    NoServer(String),
    /// A reply body did not decode.
    #[error("bad reply: {0}")]
    Decode(#[from] DecodeError),
    #[error("bad connect string {0:?}")]
    BadConnectString(String),
}

impl Error {
    fn from_code(code: i32) -> Error {
        match ErrorCode::try_from(code) {
            Ok(c) => Error::Keeper(c),
            Err(_) => Error::UnknownCode(code),
        }
    }
}

/// `world:anyone` may do anything (ZooKeeper's `OPEN_ACL_UNSAFE`).
pub fn open_acl() -> Vec<Acl> {
    vec![Acl { perms: Perms::ALL, id: Id { scheme: "world".into(), id: "anyone".into() } }]
}

/// Only the identities the session authenticated with may do anything (`CREATOR_ALL_ACL`).
pub fn creator_all_acl() -> Vec<Acl> {
    vec![Acl { perms: Perms::ALL, id: Id { scheme: "auth".into(), id: String::new() } }]
}

/// A handle on one keeper session. Clones share the session; the connection belongs to one
/// background task, which stops when the last handle is dropped (leaving the session open).
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

struct Shared {
    cmds: mpsc::Sender<Cmd>,
    id: i64,
    passwd: Vec<u8>,
    hosts: String,
    /// The negotiated timeout in ms; the task updates it on each reconnect (a resume negotiates
    /// again). Its own Arc, because the task must not hold `Shared` (that would hold `cmds`
    /// open, and dropping every handle must stop the task).
    timeout_ms: Arc<AtomicU64>,
    state: watch::Receiver<State>,
    /// Taken once by [`Session::take_events`]. A std Mutex: a short critical section, never
    /// held across an await.
    events: Mutex<Option<mpsc::Receiver<WatchEvent>>>,
}

impl fmt::Debug for Session {
    // Never prints the password: it is the capability to end the session.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &format_args!("0x{:x}", self.shared.id))
            .field("hosts", &self.shared.hosts)
            .field("state", &*self.shared.state.borrow())
            .finish_non_exhaustive()
    }
}

/// What a one-shot watch was asked with; decides what it is once the reply says how it went.
#[derive(Debug, Clone, Copy)]
enum WatchReg {
    /// getData: a data watch if the node exists.
    Data,
    /// exists: a data watch if the node exists, else an exist watch (fires on creation).
    Exists,
    /// getChildren: a child watch if the node exists.
    Child,
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

enum Cmd {
    Request { op: OpCode, body: Vec<u8>, watch: Option<(WatchReg, String)>, reply: Reply<Vec<u8>> },
    Auth { scheme: String, auth: Vec<u8>, reply: Reply<()> },
    Close { reply: Reply<()> },
}

impl Session {
    /// Opens a new session, trying the hosts in order (round robin) until one answers or
    /// `session_timeout` has passed. The `cfg.auth` packets are sent and answered before this
    /// returns; one the server refuses fails the connect with `Keeper(AuthFailed)` (the session
    /// the server had just created is then left to expire).
    pub async fn connect(cfg: ClientConfig) -> Result<Session, Error> {
        Self::start(cfg, None).await
    }

    /// Resumes an existing session by id and password (a supervisor ending a dead daemon's
    /// session does this, then [`Session::close`]). `Err(Expired)` when the keeper answers that
    /// the session is gone or the password is wrong.
    pub async fn resume(cfg: ClientConfig, id: i64, passwd: Vec<u8>) -> Result<Session, Error> {
        Self::start(cfg, Some((id, passwd))).await
    }

    async fn start(cfg: ClientConfig, resume: Option<(i64, Vec<u8>)>) -> Result<Session, Error> {
        if cfg.hosts.is_empty() {
            return Err(Error::NoServer("no hosts given".into()));
        }
        let (id, passwd) = resume.unwrap_or((0, NO_PASSWORD.to_vec()));
        let hello =
            Hello { session_id: id, passwd, last_zxid: 0, timeout: cfg.session_timeout, auth: cfg.auth.clone() };
        let deadline = Instant::now() + cfg.session_timeout;
        let handshake_timeout = read_timeout(cfg.session_timeout);
        let mut last_failure: String;
        let mut rounds = 0u32;
        let (conn, host) = 'found: loop {
            for (i, host) in cfg.hosts.iter().enumerate() {
                match dial(host.clone(), hello.clone(), cfg.connect_timeout, handshake_timeout).await {
                    Ok(conn) => break 'found (conn, i),
                    Err(DialError::Expired) => return Err(Error::Expired),
                    Err(DialError::AuthFailed { code, .. }) => return Err(Error::from_code(code)),
                    Err(DialError::Failed(why)) => {
                        tracing::debug!("keeper {host} did not take the session: {why}");
                        last_failure = format!("{host}: {why}");
                    }
                }
                if Instant::now() >= deadline {
                    return Err(Error::NoServer(last_failure));
                }
            }
            rounds += 1;
            tokio::time::sleep(round_pause(rounds)).await;
        };
        let timeout_ms = Arc::new(AtomicU64::new(conn.timeout.as_millis() as u64));
        let (state_tx, state_rx) = watch::channel(State::Connected { server: conn.server });
        let (cmd_tx, cmd_rx) = mpsc::channel(REQUESTS_MAX);
        let (events_tx, events_rx) = mpsc::channel(EVENTS_MAX);
        let shared = Shared {
            cmds: cmd_tx,
            id: conn.session_id,
            passwd: conn.passwd.clone(),
            hosts: cfg.connect_string(),
            timeout_ms: timeout_ms.clone(),
            state: state_rx,
            events: Mutex::new(Some(events_rx)),
        };
        tracing::info!("keeper session 0x{:x} on {} (timeout {:?})", conn.session_id, conn.server, conn.timeout);
        let core = SessionCore {
            hosts: cfg.hosts,
            connect_timeout: cfg.connect_timeout,
            ping_interval: cfg.ping_interval,
            requested_timeout: cfg.session_timeout,
            id: conn.session_id,
            passwd: conn.passwd.clone(),
            timeout: conn.timeout,
            timeout_ms,
            last_zxid: conn.zxid_seen,
            next_xid: 1,
            auth: cfg.auth,
            watches: WatchSet::default(),
            pending: VecDeque::new(),
            auth_waiting: VecDeque::new(),
            closers: Vec::new(),
            close_deadline: None,
            host,
            state: state_tx,
            events: events_tx,
        };
        tokio::spawn(core.run(conn, cmd_rx));
        Ok(Session { shared: Arc::new(shared) })
    }

    pub fn id(&self) -> i64 {
        self.shared.id
    }

    pub fn passwd(&self) -> Vec<u8> {
        self.shared.passwd.clone()
    }

    /// The timeout the server granted (on the latest connect).
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.shared.timeout_ms.load(Ordering::Relaxed))
    }

    /// The connect string, for reports.
    pub fn hosts(&self) -> String {
        self.shared.hosts.clone()
    }

    pub fn state(&self) -> watch::Receiver<State> {
        self.shared.state.clone()
    }

    /// The one receiver of watch events; `None` once taken. Events that find the channel full
    /// (or the receiver dropped) are dropped with a warning rather than stall the connection.
    /// The channel ends when the session does.
    pub fn take_events(&self) -> Option<mpsc::Receiver<WatchEvent>> {
        self.shared.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Creates a node (create2, so the reply carries its Stat); returns its actual path
    /// (sequential nodes get a suffix) and Stat.
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        acl: Vec<Acl>,
        mode: CreateMode,
    ) -> Result<(String, Stat), Error> {
        let req = CreateRequest { path: path.into(), data: Some(data.to_vec()), acl, flags: mode.code() };
        let r = Create2Response::from_bytes(&self.call(OpCode::Create2, req.to_bytes(), None).await?)?;
        Ok((r.path, r.stat))
    }

    /// Deletes a node if its version is `version` (-1: any).
    pub async fn delete(&self, path: &str, version: i32) -> Result<(), Error> {
        let req = DeleteRequest { path: path.into(), version };
        self.call(OpCode::Delete, req.to_bytes(), None).await.map(|_| ())
    }

    /// A node's data (null reads as empty) and Stat; `watch` arms a data watch.
    pub async fn get_data(&self, path: &str, watch: bool) -> Result<(Vec<u8>, Stat), Error> {
        let reg = watch.then(|| (WatchReg::Data, path.to_owned()));
        let req = PathWatchRequest { path: path.into(), watch };
        let r = GetDataResponse::from_bytes(&self.call(OpCode::GetData, req.to_bytes(), reg).await?)?;
        Ok((r.data.unwrap_or_default(), r.stat))
    }

    /// Sets a node's data if its version is `version` (-1: any); returns the new Stat.
    pub async fn set_data(&self, path: &str, data: &[u8], version: i32) -> Result<Stat, Error> {
        let req = SetDataRequest { path: path.into(), data: Some(data.to_vec()), version };
        Ok(StatResponse::from_bytes(&self.call(OpCode::SetData, req.to_bytes(), None).await?)?.stat)
    }

    /// A node's Stat, or `None` if it does not exist; `watch` arms a watch either way (on an
    /// absent node it fires when the node is created).
    pub async fn exists(&self, path: &str, watch: bool) -> Result<Option<Stat>, Error> {
        let reg = watch.then(|| (WatchReg::Exists, path.to_owned()));
        let req = PathWatchRequest { path: path.into(), watch };
        match self.call(OpCode::Exists, req.to_bytes(), reg).await {
            Ok(b) => Ok(Some(StatResponse::from_bytes(&b)?.stat)),
            Err(Error::Keeper(ErrorCode::NoNode)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A node's children (in the server's order) and its Stat; `watch` arms a child watch.
    pub async fn get_children2(&self, path: &str, watch: bool) -> Result<(Vec<String>, Stat), Error> {
        let reg = watch.then(|| (WatchReg::Child, path.to_owned()));
        let req = PathWatchRequest { path: path.into(), watch };
        let r = GetChildren2Response::from_bytes(&self.call(OpCode::GetChildren2, req.to_bytes(), reg).await?)?;
        Ok((r.children, r.stat))
    }

    /// Adds an identity to the session (`addauth`). Once the server accepts it, it is
    /// remembered and sent again after every reconnect. A refusal is
    /// `Err(Keeper(AuthFailed))`; the server then closes the connection, and the session
    /// reconnects without the refused identity.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), Error> {
        self.ready()?;
        let (tx, rx) = oneshot::channel();
        let cmd = Cmd::Auth { scheme: scheme.into(), auth: auth.to_vec(), reply: tx };
        self.shared.cmds.send(cmd).await.map_err(|_| self.ended())?;
        rx.await.map_err(|_| self.ended())?
    }

    /// Ends the session (closeSession) and waits for the keeper's answer; its ephemeral nodes
    /// are gone when this returns Ok. If the session is disconnected, it keeps trying to reach
    /// a server for up to one session timeout first. Other handles then get [`Error::Closed`].
    pub async fn close(self) -> Result<(), Error> {
        match *self.shared.state.borrow() {
            State::Closed => return Ok(()),
            State::Expired => return Err(Error::Expired),
            State::Connected { .. } | State::Disconnected { .. } => {}
        }
        let (tx, rx) = oneshot::channel();
        self.shared.cmds.send(Cmd::Close { reply: tx }).await.map_err(|_| self.ended())?;
        rx.await.map_err(|_| self.ended())?
    }

    async fn call(&self, op: OpCode, body: Vec<u8>, watch: Option<(WatchReg, String)>) -> Result<Vec<u8>, Error> {
        self.ready()?;
        let (tx, rx) = oneshot::channel();
        let cmd = Cmd::Request { op, body, watch, reply: tx };
        self.shared.cmds.send(cmd).await.map_err(|_| self.ended())?;
        rx.await.map_err(|_| self.ended())?
    }

    /// Fails fast unless connected: requests are not queued across a disconnect.
    fn ready(&self) -> Result<(), Error> {
        match *self.shared.state.borrow() {
            State::Connected { .. } => Ok(()),
            State::Disconnected { .. } => Err(Error::ConnectionLoss),
            State::Expired => Err(Error::Expired),
            State::Closed => Err(Error::Closed),
        }
    }

    /// Why the task is gone: it only stops for good on expiry or close.
    fn ended(&self) -> Error {
        match *self.shared.state.borrow() {
            State::Expired => Error::Expired,
            _ => Error::Closed,
        }
    }
}

/// The watches armed through this session, by kind: what setWatches re-registers.
#[derive(Default)]
struct WatchSet {
    data: BTreeSet<String>,
    exist: BTreeSet<String>,
    child: BTreeSet<String>,
}

impl WatchSet {
    fn is_empty(&self) -> bool {
        self.data.is_empty() && self.exist.is_empty() && self.child.is_empty()
    }

    /// Records a watch once its reply says the server armed it.
    fn armed(&mut self, reg: WatchReg, path: String, err: i32) {
        let ok = err == ErrorCode::Ok.code();
        match reg {
            WatchReg::Data if ok => self.data.insert(path),
            WatchReg::Exists if ok => self.data.insert(path),
            WatchReg::Exists if err == ErrorCode::NoNode.code() => self.exist.insert(path),
            WatchReg::Child if ok => self.child.insert(path),
            _ => false,
        };
    }

    /// One-shot watches are used up by the event they deliver (ZooKeeper's ZKWatchManager).
    fn fired(&mut self, kind: EventType, path: &str) {
        match kind {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                self.data.remove(path);
                self.exist.remove(path);
            }
            EventType::NodeDeleted => {
                self.data.remove(path);
                self.exist.remove(path);
                self.child.remove(path);
            }
            EventType::NodeChildrenChanged => {
                self.child.remove(path);
            }
            _ => {}
        }
    }

    /// setWatches2 frames, split so that none grows past [`SET_WATCHES_BATCH_BYTES`].
    fn set_watches_frames(&self, relative_zxid: i64, out: &mut Vec<u8>) {
        let fresh = || SetWatches2 { relative_zxid, ..Default::default() };
        let mut batch = fresh();
        let mut size = 0;
        let all = self
            .data
            .iter()
            .map(|p| (WatchReg::Data, p))
            .chain(self.exist.iter().map(|p| (WatchReg::Exists, p)))
            .chain(self.child.iter().map(|p| (WatchReg::Child, p)));
        for (kind, path) in all {
            if size > 0 && size + path.len() > SET_WATCHES_BATCH_BYTES {
                push_frame(
                    out,
                    xid::SET_WATCHES,
                    OpCode::SetWatches2,
                    &std::mem::replace(&mut batch, fresh()).to_bytes(),
                );
                size = 0;
            }
            match kind {
                WatchReg::Data => batch.data_watches.push(path.clone()),
                WatchReg::Exists => batch.exist_watches.push(path.clone()),
                WatchReg::Child => batch.child_watches.push(path.clone()),
            }
            size += path.len() + 4;
        }
        if size > 0 {
            push_frame(out, xid::SET_WATCHES, OpCode::SetWatches2, &batch.to_bytes());
        }
    }
}

/// A request sent on the current connection, waiting for the reply with its xid.
struct Pending {
    xid: i32,
    waiter: Waiter,
}

enum Waiter {
    Request {
        reply: Reply<Vec<u8>>,
        watch: Option<(WatchReg, String)>,
    },
    /// closeSession; its callers wait in `SessionCore::closers`, across reconnects.
    Close,
}

/// An addauth in flight. Auth replies all carry xid -4 and the server answers them as it reads
/// them (possibly ahead of earlier writes), so they are matched in their own queue.
struct AuthWait {
    scheme: String,
    auth: Vec<u8>,
    reply: Reply<()>,
}

/// Why serving one connection ended.
enum End {
    /// The connection is gone; the session may live on.
    Lost(String),
    Stop(Stop),
}

/// Why the session task stops for good.
enum Stop {
    /// Every handle was dropped: stop, leaving the session to its timeout.
    Dropped,
    /// The keeper confirmed closeSession (or said the session is gone after we asked to close).
    Closed,
    /// The keeper said the session expired.
    Expired,
    /// close() was asked while disconnected and no server answered within a session timeout.
    CloseGaveUp,
}

/// The connection task: owns the socket, what is in flight and the watch bookkeeping.
struct SessionCore {
    hosts: Vec<String>,
    connect_timeout: Duration,
    ping_interval: Option<Duration>,
    requested_timeout: Duration,
    id: i64,
    passwd: Vec<u8>,
    /// The negotiated timeout; pings and dead-connection detection derive from it.
    timeout: Duration,
    timeout_ms: Arc<AtomicU64>,
    /// The largest zxid any reply carried; resumes send it so a server behind it refuses us.
    last_zxid: i64,
    next_xid: i32,
    /// Identities the server accepted, re-sent in order after every reconnect.
    auth: Vec<(String, Vec<u8>)>,
    watches: WatchSet,
    pending: VecDeque<Pending>,
    auth_waiting: VecDeque<AuthWait>,
    /// Callers of close(); non-empty once closing.
    closers: Vec<Reply<()>>,
    /// When a close asked while disconnected gives up.
    close_deadline: Option<Instant>,
    /// Index in `hosts` of the current (or last) server; reconnects start after it.
    host: usize,
    state: watch::Sender<State>,
    events: mpsc::Sender<WatchEvent>,
}

impl SessionCore {
    async fn run(mut self, mut conn: Connection, mut cmds: mpsc::Receiver<Cmd>) {
        let stop = loop {
            let why = match self.serve(conn, &mut cmds).await {
                End::Lost(why) => why,
                End::Stop(stop) => break stop,
            };
            tracing::warn!("keeper session 0x{:x}: connection lost ({why}); reconnecting", self.id);
            // The state first, so that a caller retrying on ConnectionLoss fails fast.
            self.set_state(State::Disconnected { since: Instant::now() });
            self.fail_in_flight();
            match self.reconnect(&mut cmds).await {
                Ok(c) => conn = c,
                Err(stop) => break stop,
            }
        };
        match stop {
            Stop::Dropped => {
                tracing::debug!(
                    "keeper session 0x{:x}: every handle dropped; the session is left to its timeout",
                    self.id
                )
            }
            Stop::Closed => {
                tracing::info!("keeper session 0x{:x} closed", self.id);
                self.finish(State::Closed, Error::Closed, Ok(()));
            }
            Stop::CloseGaveUp => {
                tracing::warn!("keeper session 0x{:x}: no server answered the close; it will expire", self.id);
                self.finish(State::Closed, Error::Closed, Err(Error::ConnectionLoss));
            }
            Stop::Expired => {
                tracing::warn!("keeper session 0x{:x} expired", self.id);
                self.finish(State::Expired, Error::Expired, Err(Error::Expired));
            }
        }
    }

    /// Serves one connection until it ends.
    async fn serve(&mut self, conn: Connection, cmds: &mut mpsc::Receiver<Cmd>) -> End {
        let Connection { mut stream, server, mut frames, timeout, zxid_seen, .. } = conn;
        self.timeout = timeout;
        self.timeout_ms.store(timeout.as_millis() as u64, Ordering::Relaxed);
        self.note_zxid(zxid_seen);
        let ping_every = match self.ping_interval {
            Some(p) => p.clamp(Duration::from_millis(10), timeout / 3),
            None => timeout / 3,
        };
        let silence_max = read_timeout(timeout);
        // Armed watches go first (auth went in the handshake), then a close asked meanwhile.
        let mut out = Vec::new();
        if !self.watches.is_empty() {
            self.watches.set_watches_frames(self.last_zxid, &mut out);
        }
        if !self.closers.is_empty() {
            self.send_close(&mut out);
        }
        if let Err(why) = write(&mut stream, &out, silence_max).await {
            return End::Lost(why);
        }
        self.set_state(State::Connected { server });
        let mut last_sent = tokio::time::Instant::now();
        let mut last_heard = tokio::time::Instant::now();
        loop {
            let room = self.pending.len() + self.auth_waiting.len() < REQUESTS_MAX;
            let take = room && self.closers.is_empty();
            tokio::select! {
                r = frames.fill(&mut stream) => {
                    if let Err(e) = r {
                        return End::Lost(e.to_string());
                    }
                    last_heard = tokio::time::Instant::now();
                    loop {
                        match frames.next_frame() {
                            Ok(Some(f)) => {
                                if let Some(end) = self.on_frame(&f) {
                                    return end;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => return End::Lost(e.to_string()),
                        }
                    }
                }
                cmd = cmds.recv(), if take => {
                    let Some(cmd) = cmd else { return End::Stop(Stop::Dropped) };
                    let mut out = Vec::new();
                    self.on_cmd(cmd, &mut out);
                    // Whatever else is queued goes out in the same write.
                    while out.len() < WRITE_BATCH_BYTES
                        && self.closers.is_empty()
                        && self.pending.len() + self.auth_waiting.len() < REQUESTS_MAX
                    {
                        match cmds.try_recv() {
                            Ok(cmd) => self.on_cmd(cmd, &mut out),
                            Err(_) => break,
                        }
                    }
                    if let Err(why) = write(&mut stream, &out, silence_max).await {
                        return End::Lost(why);
                    }
                    last_sent = tokio::time::Instant::now();
                }
                _ = tokio::time::sleep_until(last_sent + ping_every) => {
                    let mut out = Vec::new();
                    push_frame(&mut out, xid::PING, OpCode::Ping, &[]);
                    if let Err(why) = write(&mut stream, &out, silence_max).await {
                        return End::Lost(why);
                    }
                    last_sent = tokio::time::Instant::now();
                }
                _ = tokio::time::sleep_until(last_heard + silence_max) => {
                    return End::Lost(format!("nothing heard from {server} for {silence_max:?}"));
                }
            }
        }
    }

    /// Encodes a command onto `out` and records what waits for its reply.
    fn on_cmd(&mut self, cmd: Cmd, out: &mut Vec<u8>) {
        match cmd {
            Cmd::Request { op, body, watch, reply } => {
                let xid = self.take_xid();
                push_frame(out, xid, op, &body);
                self.pending.push_back(Pending { xid, waiter: Waiter::Request { reply, watch } });
            }
            Cmd::Auth { scheme, auth, reply } => {
                let packet = AuthPacket { kind: 0, scheme: scheme.clone(), auth: Some(auth.clone()) };
                push_frame(out, xid::AUTH, OpCode::Auth, &packet.to_bytes());
                self.auth_waiting.push_back(AuthWait { scheme, auth, reply });
            }
            Cmd::Close { reply } => {
                self.closers.push(reply);
                if self.close_deadline.is_none() {
                    self.close_deadline = Some(Instant::now() + self.timeout);
                }
                if !self.pending.iter().any(|p| matches!(p.waiter, Waiter::Close)) {
                    self.send_close(out);
                }
            }
        }
    }

    fn send_close(&mut self, out: &mut Vec<u8>) {
        let xid = self.take_xid();
        push_frame(out, xid, OpCode::CloseSession, &[]);
        self.pending.push_back(Pending { xid, waiter: Waiter::Close });
    }

    /// Handles one frame from the server; `Some` ends the connection.
    fn on_frame(&mut self, frame: &[u8]) -> Option<End> {
        let mut r = Reader::new(frame);
        let h = match ReplyHeader::decode(&mut r) {
            Ok(h) => h,
            Err(e) => return Some(End::Lost(format!("undecodable reply header: {e}"))),
        };
        match h.xid {
            xid::NOTIFICATION => {
                // Notifications carry zxid -1: they say nothing about what the server has.
                let ev = match WatcherEvent::from_bytes(r.rest()) {
                    Ok(ev) => ev,
                    Err(e) => return Some(End::Lost(format!("undecodable watch event: {e}"))),
                };
                self.on_event(ev);
            }
            xid::PING => self.note_zxid(h.zxid),
            xid::AUTH => {
                self.note_zxid(h.zxid);
                let Some(a) = self.auth_waiting.pop_front() else {
                    tracing::warn!("keeper session 0x{:x}: auth reply with no auth in flight", self.id);
                    return None;
                };
                if h.err == ErrorCode::Ok.code() {
                    self.auth.push((a.scheme, a.auth));
                    let _ = a.reply.send(Ok(()));
                } else {
                    // The server closes the connection after a refused auth; the EOF follows.
                    tracing::warn!("keeper session 0x{:x}: auth scheme {:?} refused", self.id, a.scheme);
                    let _ = a.reply.send(Err(Error::from_code(h.err)));
                }
            }
            xid::SET_WATCHES => {
                self.note_zxid(h.zxid);
                if h.err != ErrorCode::Ok.code() {
                    tracing::warn!(
                        "keeper session 0x{:x}: setWatches refused ({}); watches armed before the reconnect are lost",
                        self.id,
                        Error::from_code(h.err)
                    );
                }
            }
            x => {
                self.note_zxid(h.zxid);
                let Some(p) = self.pending.pop_front() else {
                    return Some(End::Lost(format!("reply with xid {x} but nothing in flight")));
                };
                if p.xid != x {
                    let expected = p.xid;
                    // Put it back so that it fails with the rest of what is in flight.
                    self.pending.push_front(p);
                    return Some(End::Lost(format!("reply with xid {x} out of order (expected {expected})")));
                }
                match p.waiter {
                    Waiter::Close => return Some(End::Stop(Stop::Closed)),
                    Waiter::Request { reply, watch } => {
                        if let Some((reg, path)) = watch {
                            self.watches.armed(reg, path, h.err);
                        }
                        let result = match h.err {
                            0 => Ok(r.rest().to_vec()),
                            code => Err(Error::from_code(code)),
                        };
                        let _ = reply.send(result);
                    }
                }
            }
        }
        None
    }

    fn on_event(&mut self, ev: WatcherEvent) {
        let kind = match EventType::try_from(ev.kind) {
            Ok(k) => k,
            Err(_) => {
                tracing::warn!("keeper session 0x{:x}: unknown watch event type {} on {}", self.id, ev.kind, ev.path);
                return;
            }
        };
        self.watches.fired(kind, &ev.path);
        match self.events.try_send(WatchEvent { kind, path: ev.path }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => tracing::warn!(
                "keeper session 0x{:x}: {EVENTS_MAX} watch events not taken; dropping {:?} on {}",
                self.id,
                ev.kind,
                ev.path
            ),
            Err(mpsc::error::TrySendError::Closed(ev)) => {
                tracing::debug!(
                    "keeper session 0x{:x}: nobody takes events; dropping {:?} on {}",
                    self.id,
                    ev.kind,
                    ev.path
                )
            }
        }
    }

    /// Finds a server that resumes the session: round robin from the host after the lost one,
    /// pausing after each full round. Commands that arrive meanwhile are refused at once.
    async fn reconnect(&mut self, cmds: &mut mpsc::Receiver<Cmd>) -> Result<Connection, Stop> {
        let n = self.hosts.len();
        let mut rounds = 0u32;
        loop {
            for step in 1..=n {
                let i = (self.host + step) % n;
                let hello = Hello {
                    session_id: self.id,
                    passwd: self.passwd.clone(),
                    last_zxid: self.last_zxid,
                    timeout: self.requested_timeout,
                    auth: self.auth.clone(),
                };
                let attempt = dial(self.hosts[i].clone(), hello, self.connect_timeout, read_timeout(self.timeout));
                tokio::pin!(attempt);
                let result = loop {
                    tokio::select! {
                        r = &mut attempt => break r,
                        cmd = cmds.recv() => match cmd {
                            None => return Err(Stop::Dropped),
                            Some(cmd) => self.refuse(cmd),
                        },
                    }
                };
                match result {
                    Ok(conn) => {
                        self.host = i;
                        tracing::info!("keeper session 0x{:x}: resumed on {}", self.id, conn.server);
                        return Ok(conn);
                    }
                    // After a close was asked, "expired" means it is done (maybe the close
                    // itself took effect and only its reply was lost).
                    Err(DialError::Expired) if !self.closers.is_empty() => return Err(Stop::Closed),
                    Err(DialError::Expired) => return Err(Stop::Expired),
                    Err(DialError::AuthFailed { index, code }) => {
                        // Keeping it would fail every reconnect; without it the session goes
                        // on, and requests that need the identity fail with NoAuth.
                        let scheme = self.auth.get(index).map(|(s, _)| s.clone()).unwrap_or_default();
                        tracing::error!(
                            "keeper session 0x{:x}: auth scheme {scheme:?} refused on reconnect ({}); no longer sending it",
                            self.id,
                            Error::from_code(code)
                        );
                        if index < self.auth.len() {
                            self.auth.remove(index);
                        }
                    }
                    Err(DialError::Failed(why)) => {
                        tracing::debug!("keeper session 0x{:x}: {} did not resume it: {why}", self.id, self.hosts[i]);
                    }
                }
                if self.close_deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Stop::CloseGaveUp);
                }
            }
            rounds += 1;
            let pause = tokio::time::sleep(round_pause(rounds));
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = &mut pause => break,
                    cmd = cmds.recv() => match cmd {
                        None => return Err(Stop::Dropped),
                        Some(cmd) => self.refuse(cmd),
                    },
                }
            }
        }
    }

    /// Answers a command that arrived while disconnected: requests fail at once (callers
    /// retry); a close waits for the next connection.
    fn refuse(&mut self, cmd: Cmd) {
        let err = if self.closers.is_empty() { Error::ConnectionLoss } else { Error::Closed };
        match cmd {
            Cmd::Request { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Cmd::Auth { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Cmd::Close { reply } => {
                self.closers.push(reply);
                if self.close_deadline.is_none() {
                    self.close_deadline = Some(Instant::now() + self.timeout);
                }
            }
        }
    }

    /// Fails what was in flight on a lost connection; callers of close() keep waiting.
    fn fail_in_flight(&mut self) {
        for p in self.pending.drain(..) {
            if let Waiter::Request { reply, .. } = p.waiter {
                let _ = reply.send(Err(Error::ConnectionLoss));
            }
        }
        for a in self.auth_waiting.drain(..) {
            let _ = a.reply.send(Err(Error::ConnectionLoss));
        }
    }

    /// The session is over: every waiter gets `err`, callers of close() get `close_result`.
    fn finish(&mut self, state: State, err: Error, close_result: Result<(), Error>) {
        self.set_state(state);
        for p in self.pending.drain(..) {
            if let Waiter::Request { reply, .. } = p.waiter {
                let _ = reply.send(Err(err.clone()));
            }
        }
        for a in self.auth_waiting.drain(..) {
            let _ = a.reply.send(Err(err.clone()));
        }
        for c in self.closers.drain(..) {
            let _ = c.send(close_result.clone());
        }
    }

    fn set_state(&self, s: State) {
        self.state.send_if_modified(|cur| {
            if *cur == s {
                return false;
            }
            *cur = s;
            true
        });
    }

    fn note_zxid(&mut self, zxid: i64) {
        self.last_zxid = self.last_zxid.max(zxid);
    }

    /// The next request xid: positive, wrapping before it could meet the reserved negatives.
    fn take_xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid = if x == i32::MAX { 1 } else { x + 1 };
        x
    }
}

/// How long silence may last before a connection counts as dead: two thirds of the session
/// timeout, leaving the last third to reach another server before the session expires.
fn read_timeout(session_timeout: Duration) -> Duration {
    session_timeout * 2 / 3
}

fn round_pause(rounds: u32) -> Duration {
    if rounds <= 1 {
        ROUND_PAUSE_FIRST
    } else {
        ROUND_PAUSE
    }
}

/// Appends one request frame: length, header, body.
fn push_frame(out: &mut Vec<u8>, xid: i32, op: OpCode, body: &[u8]) {
    let mut w = Writer::framed();
    RequestHeader { xid, op: op.code() }.encode(&mut w);
    w.buf.extend_from_slice(body);
    out.extend_from_slice(&w.into_frame());
}

/// Writes `bytes`, bounded in time: a server that stops reading counts as gone.
async fn write(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err(format!("write blocked for {limit:?}")),
    }
}

/// Reads length-prefixed frames. `fill` is cancel-safe (one `read_buf` either keeps its bytes
/// or takes none), so the connection task can wait for frames inside `select!`.
struct FrameReader {
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`; consumed bytes are dropped lazily.
    start: usize,
}

impl FrameReader {
    fn new() -> Self {
        FrameReader { buf: Vec::with_capacity(64 * 1024), start: 0 }
    }

    /// Reads whatever the socket has. EOF is an error: a connection never ends cleanly.
    async fn fill<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> io::Result<()> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(64 * 1024);
        match rd.read_buf(&mut self.buf).await? {
            0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")),
            _ => Ok(()),
        }
    }

    /// The next whole frame's body, if it has arrived.
    fn next_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        let avail = &self.buf[self.start..];
        let Some(head) = avail.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > FRAME_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("reply frame of {len} bytes is over the {FRAME_MAX} limit"),
            ));
        }
        let Some(body) = avail.get(4..4 + len) else { return Ok(None) };
        let body = body.to_vec();
        self.start += 4 + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(body))
    }

    async fn read_frame<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> io::Result<Vec<u8>> {
        loop {
            if let Some(f) = self.next_frame()? {
                return Ok(f);
            }
            self.fill(rd).await?;
        }
    }
}

/// What a connect attempt asks for.
#[derive(Clone)]
struct Hello {
    session_id: i64,
    passwd: Vec<u8>,
    last_zxid: i64,
    timeout: Duration,
    auth: Vec<(String, Vec<u8>)>,
}

/// A connection whose session is established and whose auth packets were accepted.
struct Connection {
    stream: TcpStream,
    server: SocketAddr,
    frames: FrameReader,
    session_id: i64,
    passwd: Vec<u8>,
    timeout: Duration,
    /// The largest zxid the handshake's replies carried.
    zxid_seen: i64,
}

enum DialError {
    /// The server answered that the session is gone (or the password is wrong).
    Expired,
    /// The server refused `auth[index]`.
    AuthFailed { index: usize, code: i32 },
    /// Try the next server.
    Failed(String),
}

/// Resolves `host` and tries its addresses in turn.
async fn dial(
    host: String,
    hello: Hello,
    connect_timeout: Duration,
    handshake_timeout: Duration,
) -> Result<Connection, DialError> {
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(connect_timeout, tokio::net::lookup_host(&host)).await {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => return Err(DialError::Failed(format!("cannot resolve {host}: {e}"))),
        Err(_) => return Err(DialError::Failed(format!("resolving {host} timed out"))),
    };
    let mut last = DialError::Failed(format!("{host} resolves to no address"));
    for addr in addrs {
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                last = DialError::Failed(format!("connect to {addr}: {e}"));
                continue;
            }
            Err(_) => {
                last = DialError::Failed(format!("connect to {addr} timed out"));
                continue;
            }
        };
        // Requests are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        match tokio::time::timeout(handshake_timeout, handshake(stream, addr, &hello)).await {
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(e @ (DialError::Expired | DialError::AuthFailed { .. }))) => return Err(e),
            Ok(Err(e)) => last = e,
            Err(_) => last = DialError::Failed(format!("{addr} did not answer the connect request in time")),
        }
    }
    Err(last)
}

/// Sends the connect request, reads the answer, then sends the auth packets and waits for
/// their answers, so that nothing else reaches the server before the identities are in place.
async fn handshake(mut stream: TcpStream, addr: SocketAddr, hello: &Hello) -> Result<Connection, DialError> {
    let failed = |what: &str, e: &dyn fmt::Display| DialError::Failed(format!("{addr}: {what}: {e}"));
    let req = keeper_proto::ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: hello.last_zxid,
        timeout_ms: hello.timeout.as_millis().min(i32::MAX as u128) as i32,
        session_id: hello.session_id,
        passwd: hello.passwd.clone(),
        read_only: false,
    };
    let mut w = Writer::framed();
    req.encode(&mut w);
    stream.write_all(&w.into_frame()).await.map_err(|e| failed("sending connect request", &e))?;
    let mut frames = FrameReader::new();
    // A server that closes here refuses us: it is behind our last zxid, or out of its quorum.
    let body = frames.read_frame(&mut stream).await.map_err(|e| failed("no answer to connect request", &e))?;
    let resp = decode_connect_response(&body).map_err(|e| failed("bad connect response", &e))?;
    if resp.timeout_ms <= 0 {
        return Err(DialError::Expired);
    }
    if hello.session_id != 0 && resp.session_id != hello.session_id {
        let e = format!("asked for 0x{:x}, got 0x{:x}", hello.session_id, resp.session_id);
        return Err(failed("connect response names another session", &e));
    }
    let mut zxid_seen = 0;
    if !hello.auth.is_empty() {
        let mut out = Vec::new();
        for (scheme, auth) in &hello.auth {
            let packet = AuthPacket { kind: 0, scheme: scheme.clone(), auth: Some(auth.clone()) };
            push_frame(&mut out, xid::AUTH, OpCode::Auth, &packet.to_bytes());
        }
        stream.write_all(&out).await.map_err(|e| failed("sending auth", &e))?;
        // The new connection has no watches yet, so only auth replies can come back.
        for index in 0..hello.auth.len() {
            let f = frames.read_frame(&mut stream).await.map_err(|e| failed("waiting for auth reply", &e))?;
            let h = ReplyHeader::decode(&mut Reader::new(&f)).map_err(|e| failed("bad auth reply", &e))?;
            if h.xid != xid::AUTH {
                return Err(failed("unexpected reply during auth", &h.xid));
            }
            if h.err != ErrorCode::Ok.code() {
                return Err(DialError::AuthFailed { index, code: h.err });
            }
            zxid_seen = zxid_seen.max(h.zxid);
        }
    }
    Ok(Connection {
        stream,
        server: addr,
        frames,
        session_id: resp.session_id,
        passwd: resp.passwd,
        timeout: Duration::from_millis(resp.timeout_ms as u64),
        zxid_seen,
    })
}

/// The connect response, field by field as `ConnectResponse`, except that the trailing
/// read-only flag may be absent (servers before 3.4 do not send it).
struct ConnectAnswer {
    timeout_ms: i32,
    session_id: i64,
    passwd: Vec<u8>,
}

fn decode_connect_response(b: &[u8]) -> Result<ConnectAnswer, DecodeError> {
    let mut r = Reader::new(b);
    let _protocol_version = r.i32()?;
    let timeout_ms = r.i32()?;
    let session_id = r.i64()?;
    let passwd = r.buffer()?.unwrap_or_default();
    if r.remaining() > 0 {
        let _read_only = r.bool()?;
    }
    r.finish()?;
    Ok(ConnectAnswer { timeout_ms, session_id, passwd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_strings_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_connect_string("a:1, b:2,c,[::1]:3,[::1]").unwrap(),
            vec!["a:1", "b:2", "c:2181", "[::1]:3", "[::1]:2181"]
        );
        for bad in ["", "a:1,", "a:x", "a:1/chroot", "::1", "[::1", ":5", "a:70000"] {
            assert!(parse_connect_string(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn frames_split_at_their_lengths_and_oversized_ones_are_refused() {
        let mut f = FrameReader::new();
        f.buf.extend_from_slice(&[0, 0, 0, 2, 7, 8, 0, 0, 0, 1]);
        assert_eq!(f.next_frame().unwrap(), Some(vec![7, 8]));
        assert_eq!(f.next_frame().unwrap(), None, "a frame whose body has not arrived");
        f.buf.push(9);
        assert_eq!(f.next_frame().unwrap(), Some(vec![9]));
        assert!(f.buf.is_empty() && f.start == 0);
        f.buf.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(f.next_frame().is_err());
    }

    #[test]
    fn connect_response_without_read_only_flag_decodes() {
        let mut w = Writer::new();
        w.i32(0);
        w.i32(4000);
        w.i64(0x42);
        w.buffer(Some(&[1; 16]));
        let a = decode_connect_response(&w.buf).unwrap();
        assert_eq!((a.timeout_ms, a.session_id, a.passwd), (4000, 0x42, vec![1; 16]));
        w.bool(false);
        assert!(decode_connect_response(&w.buf).is_ok());
        w.i32(1);
        assert!(decode_connect_response(&w.buf).is_err(), "trailing bytes");
    }

    #[test]
    fn watches_are_armed_by_their_reply_and_used_up_by_their_event() {
        let mut w = WatchSet::default();
        w.armed(WatchReg::Exists, "/absent".into(), ErrorCode::NoNode.code());
        w.armed(WatchReg::Data, "/absent-data".into(), ErrorCode::NoNode.code());
        w.armed(WatchReg::Data, "/d".into(), 0);
        w.armed(WatchReg::Child, "/d".into(), 0);
        assert!(w.exist.contains("/absent") && !w.data.contains("/absent-data"));
        w.fired(EventType::NodeChildrenChanged, "/d");
        assert!(w.data.contains("/d") && !w.child.contains("/d"));
        w.fired(EventType::NodeCreated, "/absent");
        w.fired(EventType::NodeDeleted, "/d");
        assert!(w.is_empty());
    }

    #[test]
    fn set_watches_split_into_bounded_frames() {
        let mut w = WatchSet::default();
        for i in 0..5000 {
            w.child.insert(format!("/{i:0>60}"));
        }
        let mut out = Vec::new();
        w.set_watches_frames(7, &mut out);
        let mut f = FrameReader::new();
        f.buf = out;
        let mut paths = 0;
        while let Some(frame) = f.next_frame().unwrap() {
            assert!(frame.len() <= SET_WATCHES_BATCH_BYTES + 1024);
            let mut r = Reader::new(&frame);
            let h = RequestHeader::decode(&mut r).unwrap();
            assert_eq!((h.xid, h.op), (xid::SET_WATCHES, OpCode::SetWatches2.code()));
            let sw = SetWatches2::from_bytes(r.rest()).unwrap();
            assert_eq!(sw.relative_zxid, 7);
            paths += sw.child_watches.len();
        }
        assert_eq!(paths, 5000);
    }
}
