//! The NameNode's durable metadata: the [`Namespace`] applied from a keeper-raft log with one
//! voter.
//!
//! [`Journal::open`] starts an openraft node on keeper-raft's log store in `<dir>/log` and its
//! state-machine adapter (snapshot in `<dir>/sm`). The namespace lives in one actor task
//! (`JournalCore`); the raft state machine hands it committed entries, and [`Journal`] is the
//! handle others hold.
//!
//! - **Writes.** [`Journal::propose`] encodes the entry ([`codec`]), appends it with
//!   `client_write` (the log store fsyncs before the entry counts as flushed, so before it
//!   commits), and returns the [`Outcome`] that `apply` computed for it. The index given to
//!   `apply` is the raft log index. The record carries a tag (this journal's incarnation and a
//!   proposal number) so the actor can hand the outcome to the waiting proposer: keeper-raft's
//!   responder only reports the index.
//! - **Reads.** [`Journal::read`] runs a closure on the actor against the applied state. With
//!   one voter everything applied is committed, and a propose returns only after its entry was
//!   applied, so a read sees every write that returned before it.
//! - **Snapshots.** openraft asks for one every [`JournalOptions::snapshot_every`] entries: the
//!   actor serializes the namespace ([`Namespace::serialize`]), keeper-raft persists it (CRC'd,
//!   temp + fsync + rename) and openraft purges the log behind it, keeping a little.
//! - **Restart.** The actor starts with an empty namespace; openraft installs the saved
//!   snapshot ([`Namespace::deserialize`]) and replays the log after it, then the node elects
//!   itself and commits a blank entry, which commits (and applies) whatever durable tail the
//!   last run left. `open` returns once that is done.
//!
//! **Invariant:** `apply` sees every committed entry once, in index order, before and after a
//! restart; nothing else changes the namespace.

pub mod codec;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use keeper_raft::log_store::FileLogStore;
use keeper_raft::log_store::LogStoreOptions;
use keeper_raft::network::TcpNetworkFactory;
use keeper_raft::state_machine::ActorMsg;
use keeper_raft::state_machine::ActorStateMachine;
use keeper_raft::state_machine::AppliedTxn;
use keeper_raft::NodeId;
use keeper_raft::Raft;
use keeper_raft::Txn;
use openraft::async_runtime::WatchReceiver;
use openraft::error::ClientWriteError;
use openraft::error::InitializeError;
use openraft::error::RaftError;
use openraft::BasicNode;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::namespace::Entry;
use crate::namespace::Limits;
use crate::namespace::Namespace;
use crate::namespace::Outcome;

/// How often `propose` retries a write that raft refused before appending it (no leader yet).
const WRITE_RETRIES: u32 = 80;
const WRITE_RETRY_PAUSE: Duration = Duration::from_millis(25);
/// Reads and waiters queued for the actor, at most.
const REQUEST_QUEUE: usize = 1024;

/// How a journal runs.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// Snapshot the namespace every this many log entries (the log behind it is then purged).
    pub snapshot_every: u64,
    /// The rules of a new namespace. A journal that has a snapshot takes them from it (they are
    /// replicated state), so changing them for an existing journal has no effect.
    pub limits: Limits,
    /// The address recorded for this node in raft's membership: the peer port that replicas
    /// will use. One voter never dials it.
    pub raft_addr: String,
    /// How long `open` waits for recovery and leadership.
    pub start_timeout: Duration,
    /// The log store's options (segment size, lock wait).
    pub log: LogStoreOptions,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            snapshot_every: 10_000,
            limits: Limits::default(),
            raft_addr: "127.0.0.1:0".into(),
            start_timeout: Duration::from_secs(30),
            log: LogStoreOptions::default(),
        }
    }
}

/// Why the journal could not do something.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal storage: {0}")]
    Io(#[from] io::Error),
    /// openraft refused or failed (a fatal error stops the node).
    #[error("raft: {0}")]
    Raft(String),
    /// This node does not lead the log, so it cannot append.
    #[error("this node does not lead the journal (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// `open` did not see this node recover its log and lead it.
    #[error("journal start: {0}")]
    Start(String),
    /// The entry was committed but its outcome did not reach the proposer (it did not decode at
    /// apply, which takes a bug).
    #[error("the outcome of a committed entry was lost")]
    OutcomeLost,
    /// The actor that owns the namespace has stopped.
    #[error("the journal has stopped")]
    Stopped,
}

/// What the raft node reports about the log, for tests and status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStatus {
    pub last_applied: Option<u64>,
    /// The last index covered by the current snapshot.
    pub snapshot: Option<u64>,
    /// The last index removed from the log.
    pub purged: Option<u64>,
}

/// Proposals of this incarnation waiting for their outcome, by proposal number. A
/// `std::sync::Mutex`: the critical sections are one map operation, never across an `.await`,
/// and sharing it (rather than registering through the actor's mailbox) means a waiter is in
/// place before its entry can be applied, whichever channel the actor reads first.
type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Outcome>>>>;

/// A read run on the actor.
type ReadFn = Box<dyn FnOnce(&Namespace) + Send>;

/// The handle to a running journal.
pub struct Journal {
    raft: Raft,
    snapshot_every: u64,
    incarnation: u64,
    next_seq: AtomicU64,
    waiters: Waiters,
    reads: mpsc::Sender<ReadFn>,
    core: JoinHandle<()>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir` as node `node_id`, with default options.
    pub async fn open(dir: impl AsRef<Path>, node_id: NodeId) -> Result<Journal, JournalError> {
        Self::open_with(dir, node_id, JournalOptions::default()).await
    }

    /// Opens (or creates) the journal in `dir`: recovers the namespace from the snapshot and
    /// the log, initializes the one-voter membership on first start, and returns once this
    /// node leads and has applied everything committed.
    pub async fn open_with(
        dir: impl AsRef<Path>,
        node_id: NodeId,
        opts: JournalOptions,
    ) -> Result<Journal, JournalError> {
        let dir = dir.as_ref().to_path_buf();
        let config = raft_config(&opts)?;
        // Opening waits (blocking) for the directory's lock, which a previous journal's log
        // writer thread holds until that journal's raft task has stopped: off the runtime.
        let (log_dir, log_opts) = (dir.join("log"), opts.log.clone());
        let log = tokio::task::spawn_blocking(move || FileLogStore::open(log_dir, log_opts))
            .await
            .map_err(io::Error::other)??;
        let (sm_tx, sm_rx) = mpsc::channel(64);
        let (read_tx, read_rx) = mpsc::channel(REQUEST_QUEUE);
        let waiters = Waiters::default();
        let incarnation = new_incarnation();
        let core = JournalCore { ns: Namespace::new(opts.limits), incarnation, waiters: waiters.clone() };
        let core = tokio::spawn(core.run(sm_rx, read_rx));
        let sm = ActorStateMachine::open(dir.join("sm"), sm_tx)?;
        // Raft::new installs the saved snapshot and replays the log up to the saved commit
        // point into the actor before it returns.
        let raft = Raft::new(node_id, config, TcpNetworkFactory { id: node_id }, log, sm)
            .await
            .map_err(|e| JournalError::Raft(e.to_string()))?;
        let journal = Journal {
            raft,
            snapshot_every: opts.snapshot_every.max(1),
            incarnation,
            next_seq: AtomicU64::new(1),
            waiters,
            reads: read_tx,
            core,
        };
        match journal.start(node_id, &opts).await {
            Ok(()) => Ok(journal),
            Err(e) => {
                journal.shutdown().await;
                Err(e)
            }
        }
    }

    async fn start(&self, node_id: NodeId, opts: &JournalOptions) -> Result<(), JournalError> {
        let raft_err = |e: &dyn std::fmt::Display| JournalError::Raft(e.to_string());
        if !self.raft.is_initialized().await.map_err(|e| raft_err(&e))? {
            tracing::info!("initializing the journal's log with voter {node_id}");
            let voters = BTreeMap::from([(node_id, BasicNode::new(&opts.raft_addr))]);
            match self.raft.initialize(voters).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(raft_err(&e)),
            }
        }
        // The node elects itself and commits a blank entry, which commits the durable tail the
        // last run may have left uncommitted; then the actor has applied all of it.
        self.raft
            .wait_for_recovery(Some(opts.start_timeout))
            .await
            .map_err(|e| JournalError::Start(format!("recovery (is this node a voter of its log?): {e}")))?;
        self.raft
            .wait(Some(opts.start_timeout))
            .state(ServerState::Leader, "journal leadership")
            .await
            .map_err(|e| JournalError::Start(format!("leadership: {e}")))?;
        Ok(())
    }

    /// Appends `entry` to the log, waits until it is applied, and returns what applying it did.
    /// On error the entry may or may not have been applied, except with
    /// [`JournalError::NotLeader`] (refused before it was appended).
    pub async fn propose(&self, entry: Entry) -> Result<Outcome, JournalError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let record = codec::encode(codec::Tag { incarnation: self.incarnation, seq }, &entry);
        let (tx, mut rx) = oneshot::channel();
        let _waiter = Waiter::register(&self.waiters, seq, tx);
        let mut tries = 0;
        loop {
            match self.raft.client_write(Txn(record.clone())).await {
                Ok(_) => break,
                // Refused before it was appended (no leader yet, or the lease is not yet
                // established right after an election): safe to try again.
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    tries += 1;
                    if tries > WRITE_RETRIES {
                        return Err(JournalError::NotLeader { leader: f.leader_id });
                    }
                    tokio::time::sleep(WRITE_RETRY_PAUSE).await;
                }
                Err(e) => return Err(JournalError::Raft(e.to_string())),
            }
        }
        // The actor sends the outcome before it acknowledges the batch, and client_write
        // returns only after that acknowledgement: it is there, unless the record did not
        // decode.
        rx.try_recv().map_err(|_| JournalError::OutcomeLost)
    }

    /// Runs `f` on the actor against the applied namespace.
    pub async fn read<R, F>(&self, f: F) -> Result<R, JournalError>
    where
        R: Send + 'static,
        F: FnOnce(&Namespace) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: ReadFn = Box::new(move |ns| {
            let _ = tx.send(f(ns));
        });
        self.reads.send(run).await.map_err(|_| JournalError::Stopped)?;
        rx.await.map_err(|_| JournalError::Stopped)
    }

    /// The log's state as raft reports it (metrics lag a little behind writes).
    pub fn log_status(&self) -> LogStatus {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        LogStatus {
            last_applied: m.last_applied.map(|l| l.index),
            snapshot: m.snapshot.map(|l| l.index),
            purged: m.purged.map(|l| l.index),
        }
    }

    /// Asks raft for a snapshot now (it is built in the background; see [`Self::log_status`]).
    pub async fn trigger_snapshot(&self) -> Result<(), JournalError> {
        self.raft.trigger().snapshot().await.map_err(|e| JournalError::Raft(e.to_string()))
    }

    /// Waits (at most `timeout`) until no snapshot is due or being built, and says whether that
    /// happened. openraft builds and saves snapshots in a task of its own that `Raft::shutdown`
    /// neither waits for nor stops, and a dropped journal leaves it running too: in one process,
    /// such a late save could overwrite the snapshot of the journal reopened from the same
    /// directory. No entry is appended meanwhile (`shutdown` owns the handle), so once raft's
    /// snapshot is within `snapshot_every` of its commit point, no build is due or in flight.
    pub async fn wait_snapshot_settled(&self, timeout: Duration) -> bool {
        let every = self.snapshot_every;
        let settled = |m: &openraft::RaftMetrics<keeper_raft::TypeConfig>| {
            // openraft's LogsSinceLast: a build is due once committed + 1 >= snapshot + 1 + every.
            let committed_next = m.local_committed.map_or(0, |c| c.index + 1);
            let snapshot_next = m.snapshot.map_or(0, |s| s.index + 1);
            committed_next < snapshot_next.saturating_add(every)
        };
        self.raft.wait(Some(timeout)).metrics(settled, "no snapshot due or in flight").await.is_ok()
    }

    /// Stops raft (its log store flushes and releases the directory) and the actor, after any
    /// snapshot in flight is saved.
    pub async fn shutdown(self) {
        if !self.wait_snapshot_settled(Duration::from_secs(10)).await {
            tracing::warn!("journal shutdown: a snapshot is still due or being built after 10 s");
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("journal raft shutdown: {e}");
        }
        drop(self.reads);
        // The actor ends once raft's state machine (its other sender) is gone too.
        if tokio::time::timeout(Duration::from_secs(10), self.core).await.is_err() {
            tracing::warn!("journal actor did not stop within 10 s");
        }
    }
}

/// openraft's timing is herd's (keeper-raft's); snapshots and purging follow `snapshot_every`.
fn raft_config(opts: &JournalOptions) -> Result<Arc<openraft::Config>, JournalError> {
    let every = opts.snapshot_every.max(1);
    let mut c = keeper_raft::node::herd_config();
    c.cluster_name = "herd-namenode".into();
    c.snapshot_policy = SnapshotPolicy::LogsSinceLast(every);
    // Behind a snapshot, keep half a snapshot's worth of log for replicas a little behind (there
    // are none yet); one further behind would get the snapshot.
    c.max_in_snapshot_log_to_keep = (every / 2).min(10_000);
    c.purge_batch_size = (every / 10).clamp(1, 1024);
    Ok(Arc::new(c.validate().map_err(|e| JournalError::Raft(format!("configuration: {e}")))?))
}

/// A number that no earlier open of any journal used (with overwhelming probability), so a
/// record proposed by an earlier run never finds a waiter of this one. Only routing depends on
/// it, never the namespace.
fn new_incarnation() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let h = std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    h.max(1)
}

/// A registered waiter, removed when the proposal ends however it ends (a cancelled propose
/// leaves nothing behind).
struct Waiter<'a> {
    waiters: &'a Waiters,
    seq: u64,
}

impl<'a> Waiter<'a> {
    fn register(waiters: &'a Waiters, seq: u64, tx: oneshot::Sender<Outcome>) -> Self {
        lock(waiters).insert(seq, tx);
        Waiter { waiters, seq }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        lock(self.waiters).remove(&self.seq);
    }
}

fn lock(w: &Waiters) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
    // A panic while holding the lock cannot leave the map inconsistent (one insert or remove).
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// The actor that owns the namespace.
struct JournalCore {
    ns: Namespace,
    incarnation: u64,
    waiters: Waiters,
}

impl JournalCore {
    async fn run(mut self, mut raft: mpsc::Receiver<ActorMsg>, mut reads: mpsc::Receiver<ReadFn>) {
        loop {
            tokio::select! {
                Some(msg) = raft.recv() => self.handle(msg),
                Some(read) = reads.recv() => read(&self.ns),
                else => break,
            }
        }
        tracing::debug!("journal actor stops at index {}", self.ns.last_index());
    }

    fn handle(&mut self, msg: ActorMsg) {
        match msg {
            ActorMsg::Apply { txns, ack, .. } => {
                for t in txns {
                    self.apply(t);
                }
                let _ = ack.send(());
            }
            ActorMsg::BuildSnapshot { reply } => {
                let _ = reply.send(self.ns.serialize());
            }
            ActorMsg::InstallSnapshot { data, ack } => {
                let res = match Namespace::deserialize(&data) {
                    Ok(ns) => {
                        tracing::info!("journal: namespace installed from a snapshot at index {}", ns.last_index());
                        self.ns = ns;
                        Ok(())
                    }
                    Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("namespace snapshot: {e}"))),
                };
                let _ = ack.send(res);
            }
        }
    }

    fn apply(&mut self, t: AppliedTxn) {
        match codec::decode(&t.data) {
            Ok((tag, entry)) => {
                let outcome = self.ns.apply(t.index, &entry);
                if tag.incarnation == self.incarnation {
                    if let Some(w) = lock(&self.waiters).remove(&tag.seq) {
                        let _ = w.send(outcome);
                    }
                }
            }
            // Every replay decodes the same bytes the same way, so skipping keeps every replay
            // identical; it would take a bug (or a newer writer's record) to get here.
            Err(e) => tracing::error!("journal entry {} does not decode, skipped: {e}", t.index),
        }
    }
}
