//! client_write throughput: `cargo run --release --example bench -- [voters] [writers] [secs] [payload]`
//! defaults: 1 voter, 64 concurrent writers, 3 s, 128-byte payload. Data in a temp dir under
//! the system temp dir unless BENCH_DIR is set.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use keeper_raft::log_store::LogStoreOptions;
use keeper_raft::log_store::APPENDED_ENTRIES;
use keeper_raft::log_store::FSYNC_BATCHES;
use keeper_raft::node::herd_config;
use keeper_raft::node::members;
use keeper_raft::node::start_node;
use keeper_raft::node::wait_for_leader;
use keeper_raft::Txn;
use openraft::Config;
use tokio::net::TcpListener;

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numeric args")).collect();
    let voters = *args.first().unwrap_or(&1);
    let writers = *args.get(1).unwrap_or(&64);
    let secs = *args.get(2).unwrap_or(&3);
    let payload = *args.get(3).unwrap_or(&128) as usize;
    let threads = std::env::var("BENCH_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    rt.block_on(run(voters, writers, secs, payload));
}

/// Baseline: how many small write+fdatasync per second this disk does (single thread).
fn fsync_baseline(dir: &std::path::Path) -> f64 {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_secs(1) {
        f.write_all(&[0u8; 128]).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

async fn run(voters: u64, writers: u64, secs: u64, payload: usize) {
    let base = std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let tmp = tempfile::Builder::new().prefix("raftbench").tempdir_in(base).unwrap();
    println!("fsync baseline (write 128B + fdatasync, 1 thread): {:.0}/s", fsync_baseline(tmp.path()));

    let config = Arc::new(Config { ..herd_config() }.validate().unwrap());
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for id in 1..=voters {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push((id, l.local_addr().unwrap().to_string()));
        listeners.push(l);
    }
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let id = i as u64 + 1;
        nodes.push(
            start_node(id, &tmp.path().join(format!("n{id}")), l, config.clone(), LogStoreOptions::default())
                .await
                .unwrap(),
        );
    }
    nodes[0].raft.initialize(members(&addrs)).await.unwrap();
    let rafts: Vec<_> = nodes.iter().map(|n| &n.raft).collect();
    let leader = wait_for_leader(&rafts, Duration::from_secs(10)).await.expect("leader");
    let raft = nodes[(leader - 1) as usize].raft.clone();

    let done = Arc::new(AtomicU64::new(0));
    let lat_sum_us = Arc::new(AtomicU64::new(0));
    let f0 = FSYNC_BATCHES.load(Relaxed);
    let a0 = APPENDED_ENTRIES.load(Relaxed);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..writers {
        let raft = raft.clone();
        let done = done.clone();
        let lat = lat_sum_us.clone();
        set.spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                let mut data = vec![0u8; payload];
                data[..8].copy_from_slice(&(w << 32 | i).to_le_bytes());
                let t = Instant::now();
                raft.client_write(Txn(data)).await.expect("write");
                lat.fetch_add(t.elapsed().as_micros() as u64, Relaxed);
                done.fetch_add(1, Relaxed);
                i += 1;
            }
        });
    }
    while set.join_next().await.is_some() {}
    let el = start.elapsed().as_secs_f64();
    let n = done.load(Relaxed);
    let fsyncs = FSYNC_BATCHES.load(Relaxed) - f0;
    let appended = APPENDED_ENTRIES.load(Relaxed) - a0;
    println!(
        "voters={voters} writers={writers} payload={payload}B: {n} writes in {el:.2}s = {:.0} ops/s, mean latency {:.2} ms",
        n as f64 / el,
        lat_sum_us.load(Relaxed) as f64 / n as f64 / 1000.0
    );
    println!(
        "log fsync batches (all nodes): {fsyncs} = {:.0}/s, entries appended (all nodes): {appended}, {:.1} entries/fsync",
        fsyncs as f64 / el,
        appended as f64 / fsyncs.max(1) as f64
    );
    for mut n in nodes {
        n.stop().await;
    }
}
