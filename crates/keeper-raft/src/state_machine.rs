//! `RaftStateMachine` whose real state lives in an actor task (herd's DataTree actor, which also
//! serves reads). openraft's state-machine worker calls `apply` with batches of committed
//! entries; we forward the Normal ones as `(index, payload)` over a tokio mpsc channel, await the
//! actor's ack, and only then answer the `client_write` callers.
//!
//! Snapshots:
//! * `try_create_snapshot_builder` is called serially with `apply` (on the sm worker task), and
//!   it SENDS the "serialize yourself" request to the actor right there, so the actor serializes
//!   exactly the state as of `last_applied`. The returned builder only awaits the reply:
//!   openraft runs `build_snapshot` in a spawned task, concurrently with later `apply` calls.
//! * `install_snapshot` hands the bytes to the actor and awaits its ack.
//! * The current snapshot (meta + bytes) is persisted to `<dir>/snapshot` so a restart can
//!   restore the (transient) actor from it: openraft's startup calls `get_current_snapshot` +
//!   `install_snapshot`, then re-applies the log from the snapshot up to the saved `committed`.

use std::io;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::TryStreamExt;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::codec;
use crate::codec::Put;
use crate::codec::Rd;
use crate::LogId;
use crate::Snapshot;
use crate::SnapshotData;
use crate::SnapshotMeta;
use crate::StoredMembership;
use crate::TypeConfig;

/// One applied application entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedTxn {
    pub index: u64,
    pub data: Vec<u8>,
}

/// Messages from the raft state machine to the actor.
pub enum ActorMsg {
    /// Apply these committed txns in order. `last_index` is the last raft index covered by this
    /// batch (it can be > the last txn's index when the batch ends with blank/membership entries).
    /// `last_term` is that entry's term.
    Apply { txns: Vec<AppliedTxn>, last_index: u64, last_term: u64, ack: oneshot::Sender<()> },
    /// Serialize the whole state (as of everything applied so far).
    BuildSnapshot { reply: oneshot::Sender<Vec<u8>> },
    /// Replace the whole state with a snapshot.
    InstallSnapshot { data: Bytes, ack: oneshot::Sender<io::Result<()>> },
}

// ------------------------------------------------------------------------------------------
// Persisted "current snapshot"
// ------------------------------------------------------------------------------------------

struct SnapStore {
    path: PathBuf,
    current: Mutex<Option<(SnapshotMeta, Bytes)>>,
}

impl SnapStore {
    /// File: `crc32c u32 | meta_len u32 | meta | data` (crc over everything after it).
    fn load(path: PathBuf) -> io::Result<Self> {
        let current = match std::fs::read(&path) {
            Ok(buf) if buf.len() >= 8 => {
                let crc = u32::from_le_bytes(buf[0..4].try_into().unwrap());
                if crc32c::crc32c(&buf[4..]) != crc {
                    return Err(codec::bad(format!("snapshot file {} corrupt", path.display())));
                }
                let mut r = Rd::new(&buf[4..]);
                let meta_bytes = r.bytes()?;
                let meta = codec::get_snapshot_meta(&mut Rd::new(meta_bytes))?;
                Some((meta, Bytes::copy_from_slice(r.rest())))
            }
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Self { path, current: Mutex::new(current) })
    }

    /// Persist and make current, unless we already hold a newer one (a slow `build_snapshot`
    /// may finish after a newer snapshot was installed from the leader).
    async fn save(self: &Arc<Self>, meta: SnapshotMeta, data: Bytes) -> io::Result<()> {
        {
            let cur = self.current.lock().unwrap();
            if let Some((m, _)) = &*cur {
                if m.last_log_id >= meta.last_log_id {
                    return Ok(());
                }
            }
        }
        let this = self.clone();
        let (m2, d2) = (meta.clone(), data.clone());
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut mb = Vec::new();
            codec::put_snapshot_meta(&mut mb, &m2);
            let mut body = Vec::with_capacity(mb.len() + d2.len() + 4);
            body.put_bytes(&mb);
            body.extend_from_slice(&d2);
            let mut file = Vec::with_capacity(body.len() + 4);
            file.put_u32(crc32c::crc32c(&body));
            file.extend_from_slice(&body);
            let tmp = this.path.with_extension("tmp");
            {
                let mut f = std::fs::File::create(&tmp)?;
                io::Write::write_all(&mut f, &file)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &this.path)?;
            std::fs::File::open(this.path.parent().unwrap())?.sync_all()
        })
        .await
        .map_err(io::Error::other)??;
        let mut cur = self.current.lock().unwrap();
        if cur.as_ref().is_none_or(|(m, _)| m.last_log_id < meta.last_log_id) {
            *cur = Some((meta, data));
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// State machine
// ------------------------------------------------------------------------------------------

pub struct ActorStateMachine {
    actor: mpsc::Sender<ActorMsg>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    snap: Arc<SnapStore>,
}

impl ActorStateMachine {
    /// `dir` holds the persisted snapshot. The actor starts EMPTY on every process start: its
    /// state is rebuilt by openraft from the snapshot + log replay.
    pub fn open(dir: impl AsRef<Path>, actor: mpsc::Sender<ActorMsg>) -> io::Result<Self> {
        std::fs::create_dir_all(dir.as_ref())?;
        let snap = SnapStore::load(dir.as_ref().join("snapshot"))?;
        Ok(Self { actor, last_applied: None, last_membership: StoredMembership::default(), snap: Arc::new(snap) })
    }

    fn gone() -> io::Error {
        io::Error::other("state machine actor is gone")
    }

    async fn start_builder(&mut self) -> ActorSnapshotBuilder {
        let (reply, data_rx) = oneshot::channel();
        // Sent NOW (ordered after every applied batch), awaited later in build_snapshot.
        let sent = self.actor.send(ActorMsg::BuildSnapshot { reply }).await;
        if let Err(e) = &sent {
            tracing::warn!("cannot request snapshot from actor: {e}");
        }
        ActorSnapshotBuilder {
            meta: SnapshotMeta { last_log_id: self.last_applied, last_membership: self.last_membership.clone() },
            data_rx,
            snap: self.snap.clone(),
        }
    }
}

pub struct ActorSnapshotBuilder {
    meta: SnapshotMeta,
    data_rx: oneshot::Receiver<Vec<u8>>,
    snap: Arc<SnapStore>,
}

impl RaftSnapshotBuilder<TypeConfig> for ActorSnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (_tx, dummy) = oneshot::channel();
        let rx = std::mem::replace(&mut self.data_rx, dummy);
        let data = Bytes::from(rx.await.map_err(|_| ActorStateMachine::gone())?);
        self.snap.save(self.meta.clone(), data.clone()).await?;
        tracing::info!("built snapshot at {:?}, {} bytes", self.meta.last_log_id, data.len());
        Ok(Snapshot { meta: self.meta.clone(), snapshot: data })
    }
}

impl RaftStateMachine<TypeConfig> for ActorStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = ActorSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut txns = Vec::new();
        let mut responders = Vec::new();
        let mut last = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            match entry.payload {
                EntryPayload::Normal(txn) => txns.push(AppliedTxn { index, data: txn.0 }),
                EntryPayload::Blank => {}
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            last = Some(entry.log_id);
            if let Some(r) = responder {
                responders.push((r, index));
            }
        }
        let Some(last) = last else { return Ok(()) };
        tracing::debug!("apply batch up to {} with {} txns", last.index, txns.len());

        // One message (and one ack round trip) per batch handed to us by openraft.
        let (ack, ack_rx) = oneshot::channel();
        self.actor
            .send(ActorMsg::Apply { txns, last_index: last.index, last_term: last.leader_id.term, ack })
            .await
            .map_err(|_| Self::gone())?;
        ack_rx.await.map_err(|_| Self::gone())?;

        self.last_applied = Some(last);
        for (r, index) in responders {
            // R = applied log index. (Must be called, or client_write never returns.)
            r.send(index);
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(self.start_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.start_builder().await
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> Result<(), io::Error> {
        let (ack, ack_rx) = oneshot::channel();
        self.actor.send(ActorMsg::InstallSnapshot { data: snapshot.clone(), ack }).await.map_err(|_| Self::gone())?;
        ack_rx.await.map_err(|_| Self::gone())??;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.snap.save(meta.clone(), snapshot).await?;
        tracing::info!("installed snapshot at {:?}", meta.last_log_id);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let cur = self.snap.current.lock().unwrap();
        Ok(cur.as_ref().map(|(meta, data)| Snapshot { meta: meta.clone(), snapshot: data.clone() }))
    }
}

// ------------------------------------------------------------------------------------------
// Demo actor (stands in for herd's DataTree actor)
// ------------------------------------------------------------------------------------------

/// State of the demo actor: the ordered list of applied txns.
#[derive(Default)]
pub struct DemoState {
    pub applied: Vec<AppliedTxn>,
    pub last_index: u64,
}

/// Spawn the demo actor. Returns the sender for the state machine and a handle to inspect the
/// state (tests). herd's actor would also serve reads from its mailbox.
pub fn spawn_demo_actor() -> (mpsc::Sender<ActorMsg>, Arc<Mutex<DemoState>>) {
    let (tx, mut rx) = mpsc::channel::<ActorMsg>(1024);
    let state = Arc::new(Mutex::new(DemoState::default()));
    let st = state.clone();
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            match msg {
                ActorMsg::Apply { txns, last_index, ack, .. } => {
                    let mut s = st.lock().unwrap();
                    s.applied.extend(txns);
                    s.last_index = last_index;
                    let _ = ack.send(());
                }
                ActorMsg::BuildSnapshot { reply } => {
                    let s = st.lock().unwrap();
                    let mut b = Vec::new();
                    b.put_u64(s.last_index);
                    b.put_u64(s.applied.len() as u64);
                    for t in &s.applied {
                        b.put_u64(t.index);
                        b.put_bytes(&t.data);
                    }
                    let _ = reply.send(b);
                }
                ActorMsg::InstallSnapshot { data, ack } => {
                    let res = (|| -> io::Result<DemoState> {
                        let mut r = Rd::new(&data);
                        let last_index = r.u64()?;
                        let n = r.u64()? as usize;
                        let mut applied = Vec::with_capacity(n);
                        for _ in 0..n {
                            let index = r.u64()?;
                            applied.push(AppliedTxn { index, data: r.bytes()?.to_vec() });
                        }
                        Ok(DemoState { applied, last_index })
                    })();
                    let res = res.map(|new| *st.lock().unwrap() = new);
                    let _ = ack.send(res);
                }
            }
        }
    });
    (tx, state)
}
