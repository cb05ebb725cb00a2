//! In-process cluster tests over loopback TCP. Every test is bounded by a tokio timeout.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keeper_raft::log_store::LogStoreOptions;
use keeper_raft::node::herd_config;
use keeper_raft::node::members;
use keeper_raft::node::start_node;
use keeper_raft::node::wait_for_leader;
use keeper_raft::node::RunningNode;
use keeper_raft::Raft;
use keeper_raft::Txn;
use openraft::async_runtime::WatchReceiver;
use openraft::Config;
use openraft::SnapshotPolicy;
use tokio::net::TcpListener;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn test_config() -> Arc<Config> {
    let c = Config {
        heartbeat_interval: 50,
        election_timeout_min: 250,
        election_timeout_max: 500,
        // small numbers so the test exercises snapshot building, purging and snapshot shipping
        snapshot_policy: SnapshotPolicy::LogsSinceLast(300),
        max_in_snapshot_log_to_keep: 50,
        purge_batch_size: 10,
        replication_lag_threshold: 1000,
        max_payload_entries: 256,
        ..herd_config()
    };
    Arc::new(c.validate().unwrap())
}

fn small_segments() -> LogStoreOptions {
    LogStoreOptions { segment_bytes: 16 * 1024, ..Default::default() }
}

/// Compact comparison of two applied sequences (avoid dumping thousands of entries).
#[track_caller]
fn assert_same(a: &[(u64, Vec<u8>)], b: &[(u64, Vec<u8>)], what: &str) {
    if a == b {
        return;
    }
    let show = |x: &[(u64, Vec<u8>)], i: usize| -> Vec<(u64, String)> {
        x.iter().skip(i.saturating_sub(2)).take(5).map(|(k, v)| (*k, String::from_utf8_lossy(v).into_owned())).collect()
    };
    let i = a.iter().zip(b.iter()).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    panic!("{what}: len {} vs {}, first mismatch at {i}: {:?} vs {:?}", a.len(), b.len(), show(a, i), show(b, i));
}

async fn bind_any() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// client_write, retrying (bounded) while the leader reports `ForwardToLeader` without another
/// leader to go to: e.g. `reason: LeaseExpired` right after an election, before a quorum has
/// acked the new leader, or under load. That error means "rejected before append", so a retry
/// cannot duplicate. (`LogEntryDiscarded` would NOT be safe to retry blindly.)
async fn client_write_retry(raft: &Raft, txn: Txn) -> openraft::raft::ClientWriteResponse<keeper_raft::TypeConfig> {
    for _ in 0..200 {
        match raft.client_write(txn.clone()).await {
            Ok(r) => return r,
            Err(openraft::errors::RaftError::APIError(openraft::errors::ClientWriteError::ForwardToLeader(f)))
                if f.leader_id.is_none() || f.leader_id == Some(*raft.node_id()) =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("client_write: {e:?}"),
        }
    }
    panic!("client_write: leader not writable after retries");
}

/// `n` writes with `conc` concurrent writers on `raft` (must be leader). Payload = prefix-i.
/// Checks that the response (R = applied index) equals the entry's log index.
/// Returns the highest log index written (metrics lag behind client_write responses, so use
/// this, not the leader's metrics, as the "everything applied" target).
async fn write_many(raft: &Raft, prefix: &str, n: usize, conc: usize) -> u64 {
    let mut set = tokio::task::JoinSet::new();
    for w in 0..conc {
        let raft = raft.clone();
        let prefix = prefix.to_string();
        set.spawn(async move {
            let mut i = w;
            let mut max = 0;
            while i < n {
                let resp = client_write_retry(&raft, Txn(format!("{prefix}-{i}").into_bytes())).await;
                assert_eq!(resp.data, resp.log_id.index);
                max = max.max(resp.log_id.index);
                i += conc;
            }
            max
        });
    }
    let mut max = 0;
    while let Some(r) = set.join_next().await {
        max = max.max(r.unwrap());
    }
    max
}

async fn wait_applied(raft: &Raft, index: u64) {
    raft.wait(Some(Duration::from_secs(20)))
        .applied_index_at_least(Some(index), "wait applied")
        .await
        .expect("node did not apply in time");
}

async fn start(id: u64, dir: &Path, l: TcpListener) -> RunningNode {
    start_node(id, &dir.join(format!("n{id}")), l, test_config(), small_segments()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_failover() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(120), async {
        let tmp = tempfile::tempdir().unwrap();
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for id in 1..=3u64 {
            let l = bind_any().await;
            addrs.push((id, l.local_addr().unwrap().to_string()));
            listeners.push(l);
        }
        let mut nodes = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            nodes.push(start(i as u64 + 1, tmp.path(), l).await);
        }

        // Initialize on ONE node with the full membership; it campaigns and replicates.
        nodes[0].raft.initialize(members(&addrs)).await.unwrap();
        let rafts: Vec<&Raft> = nodes.iter().map(|n| &n.raft).collect();
        let leader = wait_for_leader(&rafts, Duration::from_secs(10)).await.expect("no leader");
        let li = (leader - 1) as usize;

        let idx = write_many(&nodes[li].raft, "a", 1000, 16).await;
        for n in &nodes {
            wait_applied(&n.raft, idx).await;
        }
        for n in &nodes {
            let m = n.raft.metrics().borrow_watched().clone();
            let actor_last = n.actor.lock().unwrap().last_index;
            eprintln!(
                "node {} state {:?} last_applied {:?} actor last_index {} len {}",
                n.id,
                m.state,
                m.last_applied,
                actor_last,
                n.applied().len()
            );
        }
        let seq0 = nodes[0].applied();
        assert_eq!(seq0.len(), 1000);
        for n in &nodes {
            assert_same(&n.applied(), &seq0, &format!("node {} diverged", n.id));
        }

        // Kill the leader: shutdown raft + drop listener/connections.
        nodes[li].stop().await;
        let killed_seq = nodes[li].applied();
        let survivors: Vec<usize> = (0..3).filter(|&i| i != li).collect();
        let srafts: Vec<&Raft> = survivors.iter().map(|&i| &nodes[i].raft).collect();
        let t0 = std::time::Instant::now();
        let new_leader = wait_for_leader(&srafts, Duration::from_secs(10)).await.expect("no new leader");
        eprintln!("new leader {new_leader} elected {:?} after kill", t0.elapsed());
        assert_ne!(new_leader, leader);
        let nli = (new_leader - 1) as usize;

        // Enough writes that snapshots are built and logs purged past the killed node's log.
        let idx = write_many(&nodes[nli].raft, "b", 1000, 16).await;
        for &i in &survivors {
            wait_applied(&nodes[i].raft, idx).await;
        }
        let s1 = nodes[survivors[0]].applied();
        let s2 = nodes[survivors[1]].applied();
        assert_same(&s1, &s2, "survivors diverged");
        assert_eq!(s1.len(), 2000);
        assert_same(&s1[..killed_seq.len()], &killed_seq, "killed node must hold a prefix");
        // every write applied exactly once, indexes strictly increasing
        let payloads: BTreeSet<Vec<u8>> = s1.iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(payloads.len(), 2000);
        assert!(s1.windows(2).all(|w| w[0].0 < w[1].0));

        // Snapshot building and purging run in the background: wait until the new leader has
        // purged past the dead node's log.
        let killed_last = nodes[li].raft.metrics().borrow_watched().last_log_index.unwrap_or(0);
        let m = nodes[nli]
            .raft
            .wait(Some(Duration::from_secs(20)))
            .metrics(|m| m.purged.is_some_and(|p| p.index > killed_last), "leader purged past dead node")
            .await
            .expect("test setup: leader should have purged past the dead node's log");
        eprintln!(
            "new leader metrics: snapshot={:?} purged={:?} last_applied={:?}",
            m.snapshot, m.purged, m.last_applied
        );

        // Restart the killed node on the same address from its files; it must catch up. Its log
        // ends before the leader's purge point, so it needs the snapshot (full_snapshot RPC).
        let old_addr = addrs[li].1.clone();
        let l = TcpListener::bind(&old_addr).await.unwrap();
        let restarted = start(leader, tmp.path(), l).await;
        wait_applied(&restarted.raft, idx).await;
        assert_same(&restarted.applied(), &s1, "restarted node diverged");
        let rm = restarted.raft.metrics().borrow_watched().clone();
        eprintln!("restarted node: snapshot={:?} last_applied={:?}", rm.snapshot, rm.last_applied);
        assert!(rm.snapshot.is_some_and(|s| s.index > killed_last), "restarted node should have installed a snapshot");
        nodes[li] = restarted;

        for n in nodes.iter_mut() {
            n.stop().await;
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_restart_recovers() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let tmp = tempfile::tempdir().unwrap();
        let l = bind_any().await;
        let addr = l.local_addr().unwrap().to_string();
        let mut n = start(1, tmp.path(), l).await;
        n.raft.initialize(members(&[(1, addr.clone())])).await.unwrap();
        wait_for_leader(&[&n.raft], Duration::from_secs(10)).await.expect("no leader");

        write_many(&n.raft, "s", 100, 4).await;
        // Snapshot + purge, then more writes that only live in the log.
        n.raft.trigger().snapshot().await.unwrap();
        let snap = n
            .raft
            .wait(Some(Duration::from_secs(10)))
            .metrics(|m| m.snapshot.is_some(), "snapshot built")
            .await
            .unwrap()
            .snapshot
            .unwrap();
        n.raft.trigger().purge_log(snap.index).await.unwrap();
        n.raft
            .wait(Some(Duration::from_secs(10)))
            .metrics(|m| m.purged.is_some_and(|p| p.index >= snap.index), "purged")
            .await
            .unwrap();
        let last_before = write_many(&n.raft, "t", 50, 4).await;
        let before = n.applied();
        assert_eq!(before.len(), 150);
        n.stop().await;

        // Restart from the same files with a FRESH (empty) actor.
        let l = TcpListener::bind(&addr).await.unwrap();
        let mut n = start(1, tmp.path(), l).await;
        // Raft::new already restored: snapshot installed into the actor, then the log replayed
        // up to the persisted `committed` (no leader needed for that).
        let after = n.applied();
        assert_same(&after, &before, "state not recovered at startup");
        // (metrics are published by the core task shortly after start)
        wait_applied(&n.raft, last_before).await;

        // And it keeps working: becomes leader again, accepts writes.
        wait_for_leader(&[&n.raft], Duration::from_secs(10)).await.expect("no leader after restart");
        write_many(&n.raft, "u", 10, 1).await;
        let fin = n.applied();
        assert_eq!(fin.len(), 160);
        assert_same(&fin[..150], &before, "after restart");
        n.stop().await;

        // Third start WITHOUT the committed hint: state comes back once the node re-elects
        // itself and commits (wait_for_recovery covers that).
        std::fs::remove_file(tmp.path().join("n1/log/committed")).unwrap();
        let l = TcpListener::bind(&addr).await.unwrap();
        let mut n = start(1, tmp.path(), l).await;
        n.raft.wait_for_recovery(Some(Duration::from_secs(10))).await.unwrap();
        assert_same(&n.applied(), &fin, "third start");
        n.stop().await;
    })
    .await
    .expect("test timed out");
}
