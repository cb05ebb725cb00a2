//! Glue: config, open storage, start / stop a node, wait for a leader.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::BasicNode;
use openraft::Config;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use tokio::net::TcpListener;

use crate::log_store::FileLogStore;
use crate::log_store::LogStoreOptions;
use crate::network::RaftServer;
use crate::network::TcpNetworkFactory;
use crate::state_machine::spawn_demo_actor;
use crate::state_machine::ActorStateMachine;
use crate::state_machine::DemoState;
use crate::NodeId;
use crate::Raft;

/// The Config we would start herd with (all times in ms).
pub fn herd_config() -> Config {
    Config {
        cluster_name: "herd".to_string(),
        // Leader -> follower heartbeat. openraft also passes it as the AppendEntries time-out;
        // the network raises that to `APPEND_TTL_MIN` (a busy follower's fsync can be slower).
        heartbeat_interval: 50,
        // The leader lease is election_timeout_max: a follower grants no vote while it heard
        // from a leader within it, so failover takes at least that long. Pre-vote and the lease
        // keep a follower that missed a few heartbeats (a loaded machine) from disturbing a
        // live leader.
        election_timeout_min: 300,
        election_timeout_max: 500,
        // Whole-snapshot RPC timeout (`full_snapshot` gets it as hard_ttl).
        install_snapshot_timeout: 30_000,
        // Entries per AppendEntries RPC.
        max_payload_entries: 1024,
        // Followers further behind than this get a snapshot instead of logs.
        replication_lag_threshold: 100_000,
        // Build a snapshot every N applied entries (herd could use Never + trigger().snapshot()).
        snapshot_policy: SnapshotPolicy::LogsSinceLast(100_000),
        // Keep this many already-snapshotted entries so slightly lagging followers still
        // catch up from the log.
        max_in_snapshot_log_to_keep: 10_000,
        // Purge in chunks, not after every applied entry.
        purge_batch_size: 1024,
        // Pre-vote: a rejoining/partitioned node does not bump terms and depose the leader.
        enable_pre_vote: Some(true),
        // Standard raft restart: a restarted leader must win a new election. (Default true lets
        // it resume leadership immediately, which the docs flag as unsafe unless the SM is
        // durable or `committed` is reliably persisted; ours is an fsync-less hint.)
        enable_leader_restore: Some(false),
        ..Default::default()
    }
}

pub struct RunningNode {
    pub id: NodeId,
    pub addr: String,
    pub raft: Raft,
    pub server: Option<RaftServer>,
    pub actor: Arc<Mutex<DemoState>>,
}

/// Open storage under `dir`, start the actor, the Raft and the RPC server on `listener`.
pub async fn start_node(
    id: NodeId,
    dir: &Path,
    listener: TcpListener,
    config: Arc<Config>,
    log_opts: LogStoreOptions,
) -> io::Result<RunningNode> {
    let addr = listener.local_addr()?.to_string();
    let log_store = FileLogStore::open(dir.join("log"), log_opts)?;
    let (actor_tx, actor) = spawn_demo_actor();
    let sm = ActorStateMachine::open(dir.join("sm"), actor_tx)?;
    let network = TcpNetworkFactory { id };
    // Raft::new recovers state from storage (re-applying committed logs into the actor) and
    // spawns the core task.
    let raft = Raft::new(id, config, network, log_store, sm).await.map_err(|e| io::Error::other(e.to_string()))?;
    let server = RaftServer::spawn(listener, raft.clone());
    Ok(RunningNode { id, addr, raft, server: Some(server), actor })
}

impl RunningNode {
    /// Shut the Raft down (core task joined; log store + writer thread dropped) and close the
    /// listener and all RPC connections.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let _ = self.raft.shutdown().await;
    }

    /// Snapshot of what the actor applied: (index, payload) in order.
    pub fn applied(&self) -> Vec<(u64, Vec<u8>)> {
        self.actor.lock().unwrap().applied.iter().map(|t| (t.index, t.data.clone())).collect()
    }
}

/// Members map for `Raft::initialize`.
pub fn members(nodes: &[(NodeId, String)]) -> BTreeMap<NodeId, BasicNode> {
    nodes.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect()
}

/// Wait until one of `rafts` reports itself leader and the others agree. Returns its id.
pub async fn wait_for_leader(rafts: &[&Raft], timeout: Duration) -> Option<NodeId> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        for r in rafts {
            let m = r.metrics().borrow_watched().clone();
            if m.state == ServerState::Leader && m.current_leader == Some(m.id) {
                let agreed = rafts.iter().all(|o| o.metrics().borrow_watched().current_leader == Some(m.id));
                if agreed {
                    return Some(m.id);
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
