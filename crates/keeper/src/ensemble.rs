//! A keeper in an ensemble: openraft (`keeper-raft`) replicates the log, and this module joins
//! it to the core.
//!
//! Tasks, besides openraft's own:
//! - the **adapter** turns the raft state machine's messages (apply a committed batch, build or
//!   install a snapshot) into [`CoreMsg`]s and waits for the core, so openraft's "applied" means
//!   applied to the tree;
//! - the **proposer** takes the core's proposals in order: at the leader it appends them with
//!   `write().with_leader(term)` (refused, never appended, if the leadership changed), elsewhere
//!   it forwards them in batches to the leader's peer port ([`K_FORWARD`]), which appends them in
//!   the order sent. Whatever is refused, or whose fate is unknown, is reported as
//!   [`CoreMsg::Lost`]; nothing is proposed twice;
//! - the **role watcher** tells the core who leads, in which term, and whether this member is in
//!   touch with a quorum;
//! - the **peer handler** serves forwarded proposals and session touches at the leader.
//!
//! Peer frames (on the raft port, after openraft's kinds): `K_FORWARD` body
//! `term u64 | n u32 | n x (seq u64 | len u32 | txn)`, reply `n u32 | n x seq u64` (the seqs the
//! leader refused); `K_TOUCH` body `n u32 | n x session i64`, empty reply. Integers little-endian.

use crate::config::KeeperConfig;
use crate::core::{CoreMsg, Role, ToRaft};
use crate::txn::Txn;
use anyhow::Context;
use keeper_raft::codec::{Put, Rd};
use keeper_raft::log_store::{FileLogStore, LogStoreOptions};
use keeper_raft::network::{AppClient, AppRequest, RaftServer, ServerHooks, TcpNetworkFactory, K_APP_MIN};
use keeper_raft::state_machine::{ActorMsg, ActorStateMachine};
use keeper_raft::{CommittedLeaderId, NodeId, Raft};
use openraft::async_runtime::WatchReceiver;
use openraft::impls::ProgressResponder;
use openraft::Instant as _;
use openraft::{BasicNode, ChangeMembers, ServerState, SnapshotPolicy};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub const K_FORWARD: u8 = K_APP_MIN;
pub const K_TOUCH: u8 = K_APP_MIN + 1;
pub const K_STATUS: u8 = K_APP_MIN + 2;

/// Proposals as (seq, encoded txn).
type Batch = Vec<(u64, Vec<u8>)>;

/// Proposals sent to the leader in one frame, at most.
const FORWARD_BATCH_MAX: usize = 4096;
/// How long a forwarded batch may take to be appended and applied at the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);

/// openraft's timing for herd: loopback and LAN latencies, heartbeats well above a fsync.
pub fn raft_config(cfg: &KeeperConfig) -> anyhow::Result<Arc<openraft::Config>> {
    let mut c = keeper_raft::node::herd_config();
    c.snapshot_policy = SnapshotPolicy::LogsSinceLast(cfg.snap_count);
    // Behind the snapshot, keep half a snapshot's worth of log for followers a little behind;
    // one further behind gets the snapshot.
    c.max_in_snapshot_log_to_keep = (cfg.snap_count / 2).min(10_000);
    c.purge_batch_size = (cfg.snap_count / 10).clamp(1, 1024);
    Ok(Arc::new(c.validate().context("raft configuration")?))
}

/// The running replication side of a keeper.
pub struct Ensemble {
    pub raft: Raft,
    server: Option<RaftServer>,
}

impl Ensemble {
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let _ = self.raft.shutdown().await;
    }
}

/// The voters named by `server.N` lines (observers are not voters).
pub fn members(cfg: &KeeperConfig) -> anyhow::Result<BTreeMap<NodeId, BasicNode>> {
    let mut m = BTreeMap::new();
    for p in &cfg.peers {
        if p.is_observer() {
            tracing::warn!("server.{} is an observer: herd runs it as a voter", p.id);
        }
        m.insert(p.id, BasicNode::new(p.peer_addr()?));
    }
    anyhow::ensure!(
        m.contains_key(&cfg.server_id),
        "this keeper's id {} is not among the servers {:?} (set myid or --id)",
        cfg.server_id,
        m.keys().collect::<Vec<_>>()
    );
    Ok(m)
}

/// Starts raft for this member: opens its log, replays it into the core (through `core`, which
/// must already be running), listens on the peer port and joins the ensemble. `proposals` is
/// what the core proposes on.
pub async fn start(
    cfg: &KeeperConfig,
    core: mpsc::Sender<CoreMsg>,
    proposals: mpsc::UnboundedReceiver<ToRaft>,
    shutdown: CancellationToken,
) -> anyhow::Result<Ensemble> {
    let id = cfg.server_id;
    let members = members(cfg)?;
    let my_addr = members[&id].addr.clone();
    let listener = TcpListener::bind(&my_addr).await.with_context(|| format!("binding peer port {my_addr}"))?;
    let dir = cfg.data_dir.join("raft");
    let log = FileLogStore::open(dir.join("log"), LogStoreOptions::default())
        .with_context(|| format!("opening the raft log in {}", dir.display()))?;
    let (actor_tx, actor_rx) = mpsc::channel(64);
    tokio::spawn(adapter(actor_rx, core.clone()));
    let sm = ActorStateMachine::open(dir.join("sm"), actor_tx).context("opening the raft state machine")?;
    let config = raft_config(cfg)?;
    let raft_config = config.clone();
    // Out of touch this long, a member sends its clients elsewhere. Longer than a failover, so
    // that the clients of surviving members stay connected through one.
    let lease = Duration::from_millis(config.election_timeout_max * 2).max(Duration::from_secs(1));
    let raft = Raft::new(id, raft_config.clone(), TcpNetworkFactory { id }, log, sm).await.context("starting raft")?;
    let (app_tx, app_rx) = mpsc::channel(1024);
    let hooks = ServerHooks::new(Some(app_tx));
    let server = RaftServer::spawn_with(listener, raft.clone(), hooks.clone());
    tokio::spawn(peer_handler(app_rx, raft.clone(), core.clone()));
    if !raft.is_initialized().await.context("raft state")? {
        if let Some(peer) = initialized_peer(id, &members).await {
            // An ensemble exists: this member was (or will be) added by a reconfig, and the
            // leader sends it the log. Initializing here would start a second history.
            tracing::info!("member {peer} already runs an ensemble: joining it, waiting for its leader");
        } else {
            // Founding members all initialize with the same voters: the entries are identical,
            // so it does not matter who goes first.
            tracing::info!("initializing the ensemble with voters {:?}", members.keys().collect::<Vec<_>>());
            if let Err(e) = raft.initialize(members.clone()).await {
                tracing::info!("initialize: {e}");
            }
        }
    }
    let raft_lease = Duration::from_millis(raft_config.election_timeout_max);
    tokio::spawn(role_watcher(raft.clone(), hooks, lease, raft_lease, core.clone(), shutdown.clone()));
    let known: BTreeMap<NodeId, String> = members.iter().map(|(id, n)| (*id, n.addr.clone())).collect();
    tokio::spawn(proposer(proposals, raft.clone(), id, known, core));
    Ok(Ensemble { raft, server: Some(server) })
}

/// A peer that says it has an ensemble's log, if any answers within a short wait.
async fn initialized_peer(id: NodeId, members: &BTreeMap<NodeId, BasicNode>) -> Option<NodeId> {
    for _round in 0..3 {
        for (peer, node) in members {
            if *peer == id {
                continue;
            }
            let mut c = AppClient::new(node.addr.clone());
            if let Ok(b) = c.call(K_STATUS, &[], Duration::from_millis(300)).await {
                if b.first() == Some(&1) {
                    return Some(*peer);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Raft state machine -> core.
async fn adapter(mut rx: mpsc::Receiver<ActorMsg>, core: mpsc::Sender<CoreMsg>) {
    while let Some(msg) = rx.recv().await {
        let sent = match msg {
            ActorMsg::Apply { txns, last_term, ack, .. } => {
                let mut entries = Vec::with_capacity(txns.len());
                for t in txns {
                    match Txn::decode(&t.data) {
                        Ok(txn) => entries.push((t.index, txn)),
                        // Every member decodes the same bytes the same way, so skipping keeps
                        // them identical; it would take a bug to get here.
                        Err(e) => tracing::error!("log entry {} does not decode, skipped: {e}", t.index),
                    }
                }
                core.send(CoreMsg::Committed { entries, last_term, ack: Some(ack) }).await.is_ok()
            }
            ActorMsg::BuildSnapshot { reply } => core.send(CoreMsg::BuildSnapshot { reply }).await.is_ok(),
            ActorMsg::InstallSnapshot { data, ack } => {
                let (tx, rx) = oneshot::channel();
                let ok = core.send(CoreMsg::InstallSnapshot { data: data.to_vec(), ack: tx }).await.is_ok();
                let r = match rx.await {
                    Ok(r) => r.map_err(std::io::Error::other),
                    Err(_) => Err(std::io::Error::other("keeper core stopped")),
                };
                let _ = ack.send(r);
                ok
            }
        };
        if !sent {
            return;
        }
    }
}

/// Appends `txns` (proposed under `term`) at this node, which believes it leads `term`.
/// Returns, once they are all settled, the seqs that were refused or failed.
async fn append_here(raft: &Raft, term: u64, txns: Batch) -> impl std::future::Future<Output = Vec<u64>> {
    // A leader refuses writes until a quorum has acknowledged it (its lease); right after an
    // election that takes one heartbeat round. Waiting for it here, briefly, spares the clients
    // a needless ConnectionLoss.
    for _ in 0..40 {
        let writable = {
            let m = raft.metrics();
            let m = m.borrow_watched();
            m.state != ServerState::Leader || m.current_term != term || m.last_quorum_acked.is_some()
        };
        if writable {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut waits = Vec::with_capacity(txns.len());
    let mut refused = Vec::new();
    for (seq, txn) in txns {
        let (responder, rx) = ProgressResponder::complete_only();
        let r = raft.write(keeper_raft::Txn(txn)).with_leader(CommittedLeaderId::new(term)).responder(responder).await;
        match r {
            Ok(()) => waits.push((seq, rx)),
            Err(_) => refused.push(seq),
        }
    }
    async move {
        for (seq, rx) in waits {
            if !matches!(rx.await, Ok(Ok(_))) {
                refused.push(seq);
            }
        }
        refused
    }
}

fn encode_forward(term: u64, batch: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + batch.iter().map(|(_, t)| t.len() + 12).sum::<usize>());
    b.put_u64(term);
    b.put_u32(batch.len() as u32);
    for (seq, txn) in batch {
        b.put_u64(*seq);
        b.put_bytes(txn);
    }
    b
}

fn decode_forward(body: &[u8]) -> std::io::Result<(u64, Batch)> {
    let mut r = Rd::new(body);
    let term = r.u64()?;
    let n = r.u32()? as usize;
    let mut batch = Vec::with_capacity(n.min(FORWARD_BATCH_MAX));
    for _ in 0..n {
        let seq = r.u64()?;
        batch.push((seq, r.bytes()?.to_vec()));
    }
    Ok((term, batch))
}

fn encode_seqs(seqs: &[u64]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + seqs.len() * 8);
    b.put_u32(seqs.len() as u32);
    for s in seqs {
        b.put_u64(*s);
    }
    b
}

fn decode_seqs(body: &[u8]) -> std::io::Result<Vec<u64>> {
    let mut r = Rd::new(body);
    let n = r.u32()? as usize;
    (0..n).map(|_| r.u64()).collect()
}

/// Core proposals -> the leader, in the order the core made them.
/// Resolves when `raft` no longer names `leader` as its leader.
async fn leader_changed(raft: &Raft, leader: NodeId) {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if raft.metrics().borrow_watched().current_leader != Some(leader) {
            return;
        }
    }
}

/// `known` holds the peer addresses from this member's own configuration, for a leader that
/// raft's membership does not list yet (a member that is still catching up).
async fn proposer(
    mut rx: mpsc::UnboundedReceiver<ToRaft>,
    raft: Raft,
    id: NodeId,
    known: BTreeMap<NodeId, String>,
    core: mpsc::Sender<CoreMsg>,
) {
    let mut clients: HashMap<NodeId, AppClient> = HashMap::new();
    let (membership, wanted) = watch::channel(None);
    tokio::spawn(follow_config(raft.clone(), wanted));
    let mut pending = Vec::new();
    while let Some(first) = rx.recv().await {
        pending.push(first);
        while pending.len() < FORWARD_BATCH_MAX {
            match rx.try_recv() {
                Ok(m) => pending.push(m),
                Err(_) => break,
            }
        }
        let (leader, addr) = {
            let m = raft.metrics().borrow_watched().clone();
            let leader = m.current_leader;
            let addr = leader.and_then(|l| {
                m.membership_config.membership().get_node(&l).map(|n| n.addr.clone()).or_else(|| known.get(&l).cloned())
            });
            (leader, addr)
        };
        // Split into runs of one term (a run ends where the term changes), touches aside.
        let mut touches = Vec::new();
        let mut runs: Vec<(u64, Batch)> = Vec::new();
        for m in pending.drain(..) {
            match m {
                ToRaft::Touch(s) => touches.extend(s),
                ToRaft::Membership { voters, observers } => {
                    let _ = membership.send(Some((voters, observers)));
                }
                ToRaft::Propose { term, seq, txn } => match runs.last_mut() {
                    Some((t, run)) if *t == term => run.push((seq, txn)),
                    _ => runs.push((term, vec![(seq, txn)])),
                },
            }
        }
        for (term, run) in runs {
            let seqs: Vec<u64> = run.iter().map(|(s, _)| *s).collect();
            let lost = match (leader, &addr) {
                (Some(l), _) if l == id => {
                    // Appended in order now; the next batch need not wait for these to commit.
                    let settled = append_here(&raft, term, run).await;
                    let core = core.clone();
                    tokio::spawn(async move {
                        let lost = settled.await;
                        if !lost.is_empty() {
                            let _ = core.send(CoreMsg::Lost { seqs: lost }).await;
                        }
                    });
                    Vec::new()
                }
                (Some(l), Some(addr)) => {
                    let client = clients.entry(l).or_insert_with(|| AppClient::new(addr.clone()));
                    if client.addr() != addr {
                        *client = AppClient::new(addr.clone());
                    }
                    // A leader that stopped answering is replaced within an election; waiting for
                    // the whole time-out would hold up every later proposal of this member.
                    let frame = encode_forward(term, &run);
                    let call = tokio::select! {
                        r = client.call(K_FORWARD, &frame, FORWARD_TIMEOUT) => r.map_err(|e| e.to_string()),
                        _ = leader_changed(&raft, l) => Err("the leader changed".to_owned()),
                    };
                    match call {
                        Ok(body) => decode_seqs(&body).unwrap_or(seqs),
                        Err(e) => {
                            tracing::info!("forwarding {} proposals to leader {l} at {addr}: {e}", seqs.len());
                            // The call may have been cut mid-frame: start the next one afresh.
                            clients.remove(&l);
                            seqs
                        }
                    }
                }
                _ => {
                    tracing::info!("no leader to send {} proposals to (leader {leader:?})", seqs.len());
                    seqs
                }
            };
            if !lost.is_empty() && core.send(CoreMsg::Lost { seqs: lost }).await.is_err() {
                return;
            }
        }
        if !touches.is_empty() {
            match (leader, &addr) {
                (Some(l), _) if l == id => {
                    let _ = core.send(CoreMsg::Touch { sessions: touches }).await;
                }
                (Some(l), Some(addr)) => {
                    let client = clients.entry(l).or_insert_with(|| AppClient::new(addr.clone()));
                    let mut b = Vec::with_capacity(4 + touches.len() * 8);
                    b.put_u32(touches.len() as u32);
                    for s in touches {
                        b.put_u64(s as u64);
                    }
                    let call = tokio::select! {
                        r = client.call(K_TOUCH, &b, FORWARD_TIMEOUT) => r.map_err(|e| e.to_string()),
                        _ = leader_changed(&raft, l) => Err("the leader changed".to_owned()),
                    };
                    if let Err(e) = call {
                        tracing::debug!("touching sessions at leader {l}: {e}");
                        clients.remove(&l);
                    }
                }
                _ => {}
            }
        }
    }
}

type Members = BTreeMap<NodeId, String>;

/// At the leader: makes raft's membership follow `/zookeeper/config` (the latest wanted state;
/// a failed change is retried while this member leads).
async fn follow_config(raft: Raft, mut wanted: watch::Receiver<Option<(Members, Members)>>) {
    while wanted.changed().await.is_ok() {
        loop {
            let Some((voters, observers)) = wanted.borrow_and_update().clone() else { break };
            match change_membership(&raft, &voters, &observers).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!("changing the ensemble's membership: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if !raft.metrics().borrow_watched().state.is_leader() || wanted.has_changed().unwrap_or(true) {
                        break;
                    }
                }
            }
        }
    }
}

async fn change_membership(raft: &Raft, voters: &Members, observers: &Members) -> Result<(), String> {
    let current = |raft: &Raft| {
        let m = raft.metrics().borrow_watched().clone();
        let mem = m.membership_config.membership().clone();
        let nodes: BTreeSet<NodeId> = mem.nodes().map(|(id, _)| *id).collect();
        let voters: BTreeSet<NodeId> = mem.voter_ids().collect();
        (nodes, voters)
    };
    let want_voters: BTreeSet<NodeId> = voters.keys().copied().collect();
    if want_voters.is_empty() {
        tracing::error!("the configuration names no voters; raft's membership stays as it is");
        return Ok(());
    }
    let want_nodes: BTreeSet<NodeId> = voters.keys().chain(observers.keys()).copied().collect();
    let (nodes, cur_voters) = current(raft);
    for (id, addr) in voters.iter().chain(observers.iter()) {
        if !nodes.contains(id) {
            tracing::info!("adding member {id} at {addr} as a learner");
            raft.add_learner(*id, BasicNode::new(addr), false).await.map_err(|e| e.to_string())?;
        }
    }
    if cur_voters != want_voters {
        tracing::info!("changing voters from {cur_voters:?} to {want_voters:?}");
        raft.change_membership(ChangeMembers::ReplaceAllVoters(want_voters), false).await.map_err(|e| e.to_string())?;
    }
    let (nodes, _) = current(raft);
    let extra: BTreeSet<NodeId> = nodes.difference(&want_nodes).copied().collect();
    if !extra.is_empty() {
        tracing::info!("removing members {extra:?}");
        raft.change_membership(ChangeMembers::RemoveNodes(extra), false).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Frames other members send to this one.
async fn peer_handler(mut rx: mpsc::Receiver<AppRequest>, raft: Raft, core: mpsc::Sender<CoreMsg>) {
    while let Some(req) = rx.recv().await {
        match req.kind {
            K_FORWARD => match decode_forward(&req.body) {
                Ok((term, batch)) => {
                    // Appended here, in order; the reply waits for them to settle off this task.
                    let settled = append_here(&raft, term, batch).await;
                    tokio::spawn(async move {
                        let lost = settled.await;
                        let _ = req.reply.send(Ok(encode_seqs(&lost)));
                    });
                }
                Err(e) => {
                    let _ = req.reply.send(Err(format!("bad forward frame: {e}")));
                }
            },
            K_TOUCH => {
                let mut r = Rd::new(&req.body);
                let sessions: std::io::Result<Vec<i64>> =
                    r.u32().and_then(|n| (0..n).map(|_| r.u64().map(|s| s as i64)).collect());
                match sessions {
                    Ok(sessions) => {
                        let _ = core.send(CoreMsg::Touch { sessions }).await;
                        let _ = req.reply.send(Ok(Vec::new()));
                    }
                    Err(e) => {
                        let _ = req.reply.send(Err(format!("bad touch frame: {e}")));
                    }
                }
            }
            K_STATUS => {
                let initialized = raft.is_initialized().await.unwrap_or(false);
                let _ = req.reply.send(Ok(vec![initialized as u8]));
            }
            k => {
                let _ = req.reply.send(Err(format!("unknown peer frame kind {k}")));
            }
        }
    }
}

/// Tells the core who leads and whether this member is in touch with a quorum; and calls an
/// election as soon as the silent leader's lease has run out.
///
/// openraft's own election timer fires at a random point in the election timeout, but while the
/// leader lease (election_timeout_max since the last heartbeat) lasts, no member may vote, so a
/// timer that fires early is wasted and the next one comes a whole timeout later. Here a
/// follower that has heard nothing for the lease asks for a pre-vote election at once, the
/// members staggered by their rank so that two do not split the vote.
async fn role_watcher(
    raft: Raft,
    hooks: ServerHooks,
    lease: Duration,
    raft_lease: Duration,
    core: mpsc::Sender<CoreMsg>,
    shutdown: CancellationToken,
) {
    let mut last: Option<Role> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut last_elect: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let m = raft.metrics().borrow_watched().clone();
        let is_leader = m.state == ServerState::Leader;
        if !is_leader {
            let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
            let rank = voters.iter().filter(|v| Some(**v) != m.current_leader && **v < m.id).count() as u32;
            let due = raft_lease + Duration::from_millis(20) + Duration::from_millis(80) * rank;
            let silent = hooks.since_last_append().is_some_and(|d| d > due);
            let recently = last_elect.is_some_and(|t| t.elapsed() < raft_lease);
            if silent && !recently && voters.contains(&m.id) {
                last_elect = Some(tokio::time::Instant::now());
                let _ = raft.trigger().elect(true).await;
            }
        }
        let quorum = if is_leader {
            m.last_quorum_acked.as_ref().is_some_and(|t| t.elapsed() < lease)
        } else {
            m.current_leader.is_some() && hooks.since_last_append().is_some_and(|d| d < lease)
        };
        let behind = m.cluster_committed.as_ref().map(|c| c.index) > m.last_applied.as_ref().map(|a| a.index);
        let role = Role { term: m.current_term, leader: m.current_leader, is_leader, quorum, behind };
        if last != Some(role) {
            last = Some(role);
            if core.send(CoreMsg::Role(role)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_frames_round_trip() {
        let batch = vec![(7u64, b"abc".to_vec()), (8, Vec::new())];
        let (term, back) = decode_forward(&encode_forward(42, &batch)).unwrap();
        assert_eq!((term, back), (42, batch));
        assert_eq!(decode_seqs(&encode_seqs(&[1, u64::MAX])).unwrap(), vec![1, u64::MAX]);
        assert!(decode_forward(&[1, 2, 3]).is_err());
    }
}
