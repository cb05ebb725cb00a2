//! Raft RPC over plain TCP with length-prefixed frames.
//!
//! Request frame:  `len u32 | kind u8 | body`   (len = 1 + body length)
//! Response frame: `len u32 | status u8 | body` (status 0 = ok, 1 = remote error, body = utf8)
//!
//! kinds: 1 AppendEntries, 2 Vote, 3 PreVote, 4 FullSnapshot (`vote | meta (len-prefixed) | data`).
//!
//! Client side: openraft asks the factory for one `TcpNetwork` per (target, purpose): one for
//! log replication, one for heartbeats, one for snapshots. Each keeps ONE lazily (re)connected
//! TCP connection and issues its RPCs strictly one after another on it (openraft calls
//! `&mut self`), so a heartbeat never queues behind a big append. A connection that saw an
//! error/timeout, or whose RPC future was dropped mid-way, is discarded and re-dialed next time.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::errors::NetworkError;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Timeout;
use openraft::errors::Unreachable;
use openraft::network::v2::RaftNetworkV2;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::BasicNode;
use openraft::OptionalSend;
use openraft::RPCTypes;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::codec;
use crate::codec::Put;
use crate::codec::Rd;
use crate::NodeId;
use crate::Raft;
use crate::Snapshot;
use crate::SnapshotData;
use crate::TypeConfig;
use crate::Vote;

pub const K_APPEND: u8 = 1;
pub const K_VOTE: u8 = 2;
pub const K_PRE_VOTE: u8 = 3;
pub const K_SNAPSHOT: u8 = 4;
/// Frame kinds from this value up belong to the application ([`AppRequest`]).
pub const K_APP_MIN: u8 = 16;

pub const MAX_FRAME: usize = 1 << 30;

async fn write_frame(s: &mut TcpStream, tag: u8, body: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(5 + body.len());
    buf.put_u32(body.len() as u32 + 1);
    buf.put_u8(tag);
    buf.extend_from_slice(body);
    s.write_all(&buf).await
}

/// Returns `(tag, body)`; `Ok(None)` on clean EOF before a frame starts.
async fn read_frame(s: &mut TcpStream) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut hdr = [0u8; 4];
    match s.read_exact(&mut hdr).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(hdr) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(codec::bad(format!("bad frame length {len}")));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    let tag = buf[0];
    buf.drain(..1);
    Ok(Some((tag, buf)))
}

// ------------------------------------------------------------------------------------------
// Client
// ------------------------------------------------------------------------------------------

/// Creates one [`TcpNetwork`] per target; `Node = BasicNode { addr }` is the peer's raft address.
pub struct TcpNetworkFactory {
    /// This node's id (only used to fill `Timeout` errors).
    pub id: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for TcpNetworkFactory {
    type Network = TcpNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> TcpNetwork {
        TcpNetwork { id: self.id, target, client: AppClient::new(node.addr.clone()) }
    }
    // new_heartbeat_client / new_snapshot_client default to new_client => separate connections.
}

pub struct TcpNetwork {
    id: NodeId,
    target: NodeId,
    client: AppClient,
}

enum NetErr {
    Connect(io::Error),
    Io(io::Error),
    Timeout(Duration),
    Remote(String),
}

impl NetErr {
    fn into_rpc(self, net: &TcpNetwork, action: RPCTypes) -> RPCError<TypeConfig> {
        match self {
            // Unreachable => openraft backs off before retrying this peer.
            NetErr::Connect(e) => RPCError::Unreachable(Unreachable::new(&e)),
            NetErr::Remote(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            NetErr::Io(e) => RPCError::Network(NetworkError::new(&e)),
            NetErr::Timeout(timeout) => RPCError::Timeout(Timeout { action, id: net.id, target: net.target, timeout }),
        }
    }
    fn into_streaming(self, net: &TcpNetwork) -> StreamingError<TypeConfig> {
        match self.into_rpc(net, RPCTypes::InstallSnapshot) {
            RPCError::Timeout(t) => StreamingError::Timeout(t),
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Network(n) => StreamingError::Network(n),
            RPCError::RemoteError(r) => StreamingError::Unreachable(Unreachable::from_string(r.to_string())),
        }
    }
}

impl TcpNetwork {
    /// One RPC on this peer's connection (see [`AppClient::call`]: a connection that failed or
    /// timed out is dropped and re-dialed next time).
    async fn rpc(&mut self, kind: u8, body: &[u8], ttl: Duration) -> Result<Vec<u8>, NetErr> {
        self.client.call(kind, body, ttl).await.map_err(|e| match e {
            AppCallError::Connect(e) => NetErr::Connect(e),
            AppCallError::Io(e) => NetErr::Io(e),
            AppCallError::Timeout => NetErr::Timeout(ttl),
            AppCallError::Remote(m) => NetErr::Remote(m),
        })
    }

    async fn vote_like(
        &mut self,
        kind: u8,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut b = Vec::new();
        codec::put_vote_req(&mut b, &rpc);
        let resp = self.rpc(kind, &b, option.soft_ttl()).await.map_err(|e| e.into_rpc(self, RPCTypes::Vote))?;
        codec::get_vote_resp(&mut Rd::new(&resp)).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

/// openraft gives AppendEntries the heartbeat interval as its time-out. A follower's fsync on a
/// busy disk can take longer than that, and a timed-out RPC costs a reconnect and a resend, so
/// the time-out is at least [`APPEND_TTL_MIN`]. A dead follower is still noticed at once (the
/// connection fails), and a silent one by the missing acknowledgements behind the leader lease.
pub const APPEND_TTL_MIN: Duration = Duration::from_secs(1);

fn append_ttl(option: &RPCOption) -> Duration {
    option.soft_ttl().max(APPEND_TTL_MIN)
}

impl RaftNetworkV2<TypeConfig> for TcpNetwork {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut b = Vec::new();
        codec::put_append_req(&mut b, &rpc);
        let resp =
            self.rpc(K_APPEND, &b, append_ttl(&option)).await.map_err(|e| e.into_rpc(self, RPCTypes::AppendEntries))?;
        codec::get_append_resp(&mut Rd::new(&resp)).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_like(K_VOTE, rpc, option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_like(K_PRE_VOTE, rpc, option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut b = Vec::with_capacity(snapshot.snapshot.len() + 256);
        codec::put_vote(&mut b, &vote);
        let mut mb = Vec::new();
        codec::put_snapshot_meta(&mut mb, &snapshot.meta);
        b.put_bytes(&mb);
        b.extend_from_slice(&snapshot.snapshot);
        // The whole snapshot goes in one frame, bounded by install_snapshot_timeout.
        let ttl = option.hard_ttl();
        let resp = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = self.rpc(K_SNAPSHOT, &b, ttl) => r,
        };
        let resp = resp.map_err(|e| e.into_streaming(self))?;
        codec::get_snapshot_resp(&mut Rd::new(&resp)).map_err(|e| StreamingError::Network(NetworkError::new(&e)))
    }
}

// ------------------------------------------------------------------------------------------
// Server
// ------------------------------------------------------------------------------------------

/// A frame of the application's own kind (>= [`K_APP_MIN`]) that arrived on the peer port;
/// its reply goes back on the same connection, so frames of one connection are answered in order.
pub struct AppRequest {
    pub kind: u8,
    pub body: Vec<u8>,
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<u8>, String>>,
}

/// What the server tells the application besides dispatching to raft.
#[derive(Clone)]
pub struct ServerHooks {
    /// Application frames; `None` refuses them.
    pub app: Option<tokio::sync::mpsc::Sender<AppRequest>>,
    /// Set to [`ServerHooks::now_ms`] whenever this node accepts an AppendEntries (a heartbeat
    /// included): how a follower knows it still hears from a leader.
    pub last_append_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl ServerHooks {
    pub fn new(app: Option<tokio::sync::mpsc::Sender<AppRequest>>) -> Self {
        ServerHooks { app, last_append_ms: Arc::new(AtomicU64::new(0)), epoch: Instant::now() }
    }

    /// Milliseconds since these hooks were made (never 0, so 0 can mean "never").
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// How long ago this node last accepted an AppendEntries, if ever.
    pub fn since_last_append(&self) -> Option<Duration> {
        match self.last_append_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_millis(self.now_ms().saturating_sub(t))),
        }
    }
}

/// Accepts raft RPC connections and dispatches them to the local `Raft`.
pub struct RaftServer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RaftServer {
    pub fn spawn(listener: TcpListener, raft: Raft) -> Self {
        Self::spawn_with(listener, raft, ServerHooks::new(None))
    }

    pub fn spawn_with(listener: TcpListener, raft: Raft, hooks: ServerHooks) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, raft, hooks, stop_rx));
        Self { stop, task }
    }

    /// Stop accepting (the listener is dropped) and close every open connection.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, raft: Raft, hooks: ServerHooks, mut stop: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok((s, _peer)) => {
                    let _ = s.set_nodelay(true);
                    let raft = raft.clone();
                    let stop = stop.clone();
                    conns.spawn(serve_conn(s, raft, hooks.clone(), stop));
                }
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await; // aborts connection tasks => sockets closed
}

async fn serve_conn(mut s: TcpStream, raft: Raft, hooks: ServerHooks, mut stop: watch::Receiver<bool>) {
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return,
            f = read_frame(&mut s) => f,
        };
        let (kind, body) = match frame {
            Ok(Some(x)) => x,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("raft conn read: {e}");
                return;
            }
        };
        let result = if kind >= K_APP_MIN {
            app_dispatch(&hooks, kind, body).await
        } else {
            dispatch(&raft, &hooks, kind, &body).await
        };
        let (status, resp) = match result {
            Ok(b) => (0u8, b),
            Err(msg) => (1u8, msg.into_bytes()),
        };
        if let Err(e) = write_frame(&mut s, status, &resp).await {
            tracing::debug!("raft conn write: {e}");
            return;
        }
    }
}

async fn app_dispatch(hooks: &ServerHooks, kind: u8, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let Some(app) = &hooks.app else { return Err(format!("unknown rpc kind {kind}")) };
    let (reply, rx) = tokio::sync::oneshot::channel();
    app.send(AppRequest { kind, body, reply }).await.map_err(|_| "node is stopping".to_string())?;
    rx.await.map_err(|_| "node is stopping".to_string())?
}

async fn dispatch(raft: &Raft, hooks: &ServerHooks, kind: u8, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut r = Rd::new(body);
    let mut out = Vec::new();
    match kind {
        K_APPEND => {
            let req = codec::get_append_req(&mut r).map_err(|e| e.to_string())?;
            let resp = raft.append_entries(req).await.map_err(|e| e.to_string())?;
            if matches!(resp, AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)) {
                hooks.last_append_ms.store(hooks.now_ms(), Ordering::Relaxed);
            }
            codec::put_append_resp(&mut out, &resp);
        }
        K_VOTE | K_PRE_VOTE => {
            let req = codec::get_vote_req(&mut r).map_err(|e| e.to_string())?;
            let resp = if kind == K_VOTE { raft.vote(req).await } else { raft.pre_vote(req).await };
            codec::put_vote_resp(&mut out, &resp.map_err(|e| e.to_string())?);
        }
        K_SNAPSHOT => {
            let vote = codec::get_vote(&mut r).map_err(|e| e.to_string())?;
            let meta_bytes = r.bytes().map_err(|e| e.to_string())?;
            let meta = codec::get_snapshot_meta(&mut Rd::new(meta_bytes)).map_err(|e| e.to_string())?;
            let data = Bytes::copy_from_slice(r.rest());
            let snapshot = Snapshot { meta, snapshot: data };
            let resp = raft.install_full_snapshot(vote, snapshot).await.map_err(|e| e.to_string())?;
            codec::put_snapshot_resp(&mut out, &resp);
        }
        k => return Err(format!("unknown rpc kind {k}")),
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// Application client
// ------------------------------------------------------------------------------------------

/// Sends application frames (kind >= [`K_APP_MIN`]) to a peer's raft port over one lazily
/// dialed connection, one call at a time. A connection that failed or timed out is dropped and
/// the next call re-dials.
pub struct AppClient {
    addr: String,
    conn: Option<TcpStream>,
}

impl AppClient {
    pub fn new(addr: String) -> Self {
        AppClient { addr, conn: None }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// One request and its reply within `ttl`. `Err` says nothing about whether the peer acted
    /// on the request, except when the connection could not be made at all.
    pub async fn call(&mut self, kind: u8, body: &[u8], ttl: Duration) -> Result<Vec<u8>, AppCallError> {
        let conn = self.conn.take();
        let addr = self.addr.clone();
        let fut = async move {
            let mut s = match conn {
                Some(s) => s,
                None => {
                    let s = TcpStream::connect(&addr).await.map_err(AppCallError::Connect)?;
                    s.set_nodelay(true).map_err(AppCallError::Connect)?;
                    s
                }
            };
            write_frame(&mut s, kind, body).await.map_err(AppCallError::Io)?;
            match read_frame(&mut s).await.map_err(AppCallError::Io)? {
                None => Err(AppCallError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed"))),
                Some((0, resp)) => Ok((s, resp)),
                Some((_, msg)) => Err(AppCallError::Remote(String::from_utf8_lossy(&msg).into_owned())),
            }
        };
        match tokio::time::timeout(ttl, fut).await {
            Err(_) => Err(AppCallError::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok((s, resp))) => {
                self.conn = Some(s);
                Ok(resp)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppCallError {
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("i/o: {0}")]
    Io(io::Error),
    #[error("timed out")]
    Timeout,
    #[error("peer refused: {0}")]
    Remote(String),
}
