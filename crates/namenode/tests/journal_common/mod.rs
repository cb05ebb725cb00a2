//! Helpers shared by the journal tests: options with small limits, entries, a workload that
//! touches every kind of state (directories, files, blocks, leases, renames, deletes, the retry
//! cache), and bounded waits.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use keeper_raft::log_store::LogStoreOptions;
use namenode::journal::{Journal, JournalOptions};
use namenode::namespace::{Block, Entry, Op, Reply, SUPERUSER};

/// Every wait in these tests ends within this.
pub const WAIT: Duration = Duration::from_secs(30);

/// A journal that snapshots every `snapshot_every` entries, with small log segments.
pub fn options(snapshot_every: u64) -> JournalOptions {
    JournalOptions {
        snapshot_every,
        start_timeout: WAIT,
        log: LogStoreOptions { segment_bytes: 16 << 10, lock_wait: WAIT, ..LogStoreOptions::default() },
        ..JournalOptions::default()
    }
}

pub async fn open(dir: &Path, snapshot_every: u64) -> Journal {
    // Logs show with a failing test's output (RUST_LOG overrides the level).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_test_writer()
        .try_init();
    tokio::time::timeout(WAIT * 2, Journal::open_with(dir, 1, options(snapshot_every)))
        .await
        .expect("open timed out")
        .expect("open")
}

pub fn client(n: u8) -> [u8; 16] {
    [n; 16]
}

/// Entry times: fixed, so that runs are comparable (apply reads no clock).
pub const T0: u64 = 1_700_000_000_000;

pub fn entry(time_ms: u64, client_id: [u8; 16], call_id: u64, op: Op) -> Entry {
    Entry { time_ms, user: SUPERUSER.into(), groups: vec![], client_id, call_id, op }
}

pub fn create(path: &str, client_name: &str) -> Op {
    Op::Create {
        path: path.into(),
        perm: 0o644,
        overwrite: false,
        create_parent: true,
        replication: 3,
        block_size: 1 << 20,
        client_name: client_name.into(),
        client_machine: "host".into(),
    }
}

/// Proposes `op` and returns its reply, which must be a success.
pub async fn ok(j: &Journal, time_ms: u64, client_id: [u8; 16], call_id: u64, op: Op) -> Reply {
    let out = tokio::time::timeout(WAIT, j.propose(entry(time_ms, client_id, call_id, op.clone())))
        .await
        .expect("propose timed out")
        .expect("propose");
    assert!(!out.retried, "{op:?} came from the retry cache");
    out.result.unwrap_or_else(|e| panic!("{op:?}: {e}"))
}

/// One round of a mixed workload (about 12 entries) under `/r<round>`.
pub async fn round(j: &Journal, round: u64) {
    let t = T0 + round * 100;
    let c = client(7);
    let call = round * 100;
    let d = format!("/r{round}");
    let name = format!("writer-{round}");
    ok(j, t, c, call, Op::Mkdirs { path: format!("{d}/sub/deep"), perm: 0o755, create_parent: true }).await;
    ok(j, t + 1, c, call + 1, create(&format!("{d}/sub/f"), &name)).await;
    let Reply::Block(b1) = ok(
        j,
        t + 2,
        c,
        call + 2,
        Op::AddBlock { path: format!("{d}/sub/f"), client_name: name.clone(), previous: None },
    )
    .await
    else {
        panic!("addBlock did not return a block")
    };
    let prev = Some(Block { len: 1 << 20, ..b1 });
    let Reply::Block(b2) = ok(
        j,
        t + 3,
        c,
        call + 3,
        Op::AddBlock { path: format!("{d}/sub/f"), client_name: name.clone(), previous: prev },
    )
    .await
    else {
        panic!("addBlock did not return a block")
    };
    let last = Some(Block { len: 12_345, ..b2 });
    assert_eq!(
        ok(j, t + 4, c, call + 4, Op::Complete { path: format!("{d}/sub/f"), client_name: name.clone(), last }).await,
        Reply::Bool(true)
    );
    ok(j, t + 5, c, call + 5, Op::Rename { src: format!("{d}/sub/f"), dst: format!("{d}/g"), overwrite: false }).await;
    // A file left open: its lease and under-construction state must survive too.
    ok(j, t + 6, c, call + 6, create(&format!("{d}/sub/open"), &name)).await;
    ok(
        j,
        t + 7,
        c,
        call + 7,
        Op::AddBlock { path: format!("{d}/sub/open"), client_name: name.clone(), previous: None },
    )
    .await;
    ok(j, t + 8, c, call + 8, create(&format!("{d}/gone/x"), &name)).await;
    ok(j, t + 9, c, call + 9, Op::Delete { path: format!("{d}/gone"), recursive: true }).await;
    ok(j, t + 10, c, call + 10, Op::SetPermission { path: d.clone(), perm: 0o700 }).await;
    // A failing entry consumes an index and changes nothing, before and after a restart.
    let out = j.propose(entry(t + 11, c, call + 11, Op::Delete { path: format!("{d}/sub"), recursive: false })).await;
    assert!(out.expect("propose").result.is_err(), "non-recursive delete of a non-empty directory succeeded");
}

/// The applied namespace, serialized.
pub async fn state(j: &Journal) -> Vec<u8> {
    j.read(|ns| {
        ns.check_invariants().expect("namespace invariants");
        ns.serialize()
    })
    .await
    .expect("read")
}

/// Waits (bounded) until the journal has taken a snapshot and purged the log behind one.
pub async fn wait_snapshot_and_purge(j: &Journal) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = j.log_status();
        if s.snapshot.is_some() && s.purged.is_some() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no snapshot and purge within {WAIT:?}: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
