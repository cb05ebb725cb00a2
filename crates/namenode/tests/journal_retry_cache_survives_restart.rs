//! Guarantee: the retry cache is durable. A call recorded before a restart and retried after it
//! (same client id and call id) gets the recorded reply and changes nothing, whether the cache
//! comes back from the log or from a snapshot.

mod journal_common;

use journal_common::*;
use namenode::journal::Journal;
use namenode::namespace::{Caller, FileBlocks, Op, Reply, SUPERUSER};

async fn retry_after_restart(snapshot_every: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let j = open(tmp.path(), snapshot_every).await;
    let c = client(42);
    let created = ok(&j, T0, c, 1, create("/dir/file", "writer")).await;
    let Reply::Block(block) =
        ok(&j, T0 + 1, c, 2, Op::AddBlock { path: "/dir/file".into(), client_name: "writer".into(), previous: None })
            .await
    else {
        panic!("addBlock did not return a block")
    };
    // Enough other entries to pass a snapshot when snapshots are small.
    for r in 0..3 {
        round(&j, r).await;
    }
    if snapshot_every < 1000 {
        wait_snapshot_and_purge(&j).await;
    }
    j.shutdown().await;

    let j = open(tmp.path(), snapshot_every).await;
    let before = summary(&j).await;

    // The same calls again: the recorded replies, from the cache.
    let out = j.propose(entry(T0 + 2, c, 1, create("/dir/file", "writer"))).await.unwrap();
    assert!(out.retried, "create was not answered from the retry cache");
    assert_eq!(out.result, Ok(created));
    let out = j
        .propose(entry(
            T0 + 3,
            c,
            2,
            Op::AddBlock { path: "/dir/file".into(), client_name: "writer".into(), previous: None },
        ))
        .await
        .unwrap();
    assert!(out.retried, "addBlock was not answered from the retry cache");
    assert_eq!(out.result, Ok(Reply::Block(block)));
    assert_eq!(summary(&j).await, before, "a retried call changed the namespace");

    // The control: the same create under a new call id is a new call, and it fails.
    let out = j.propose(entry(T0 + 4, c, 3, create("/dir/file", "writer"))).await.unwrap();
    assert!(!out.retried);
    assert!(out.result.is_err(), "a second create of an open file succeeded: {:?}", out.result);
    j.shutdown().await;
}

/// What a retried call must not change: the inodes, the retry cache, the file's blocks.
async fn summary(j: &Journal) -> (usize, usize, FileBlocks) {
    j.read(|ns| {
        let groups = Vec::new();
        let caller = Caller::new(SUPERUSER, &groups);
        (ns.inode_count(), ns.retry_cache_len(), ns.block_locations_of("/dir/file", &caller).expect("the file"))
    })
    .await
    .expect("read")
}

#[tokio::test]
async fn retry_cache_comes_back_from_the_log() {
    retry_after_restart(1_000_000).await;
}

#[tokio::test]
async fn retry_cache_comes_back_from_a_snapshot() {
    retry_after_restart(10).await;
}
