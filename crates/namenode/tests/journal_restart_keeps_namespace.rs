//! Guarantee: a journal reopened from its directory holds exactly the namespace it had (same
//! checkpoint bytes), whether it was shut down or just dropped (its process state gone without
//! a shutdown, as close to a crash as one process gets: the log store fsyncs before an entry
//! commits, so every entry a propose returned for is on disk), and whether the namespace comes
//! back from the log alone or from a snapshot plus the log after it. It then goes on working.

mod journal_common;

use journal_common::*;
use namenode::journal::Journal;

/// No snapshot during these tests.
const NEVER: u64 = 1_000_000;
/// A snapshot every 20 entries: several during the workload, and the log purged behind them.
const OFTEN: u64 = 20;

#[derive(Clone, Copy)]
enum Stop {
    Shutdown,
    Drop,
}

async fn stop(j: Journal, how: Stop) {
    match how {
        Stop::Shutdown => j.shutdown().await,
        Stop::Drop => {
            // In one process, openraft's snapshot task outlives a dropped journal and could
            // save over the reopened journal's snapshot; a real crash leaves no such task.
            assert!(j.wait_snapshot_settled(WAIT).await, "a snapshot never settled");
            drop(j)
        }
    }
}

async fn restart_keeps_namespace(snapshot_every: u64, how: Stop) {
    let tmp = tempfile::tempdir().unwrap();
    let j = open(tmp.path(), snapshot_every).await;
    for r in 0..8 {
        round(&j, r).await;
    }
    if snapshot_every == OFTEN {
        wait_snapshot_and_purge(&j).await;
    } else {
        assert_eq!(j.log_status().snapshot, None, "a snapshot was taken");
    }
    let before = state(&j).await;
    stop(j, how).await;

    let j = open(tmp.path(), snapshot_every).await;
    assert_eq!(state(&j).await, before, "namespace after the first restart");
    if snapshot_every == OFTEN {
        let s = j.log_status();
        assert!(s.snapshot.is_some() && s.purged.is_some(), "restarted without its snapshot: {s:?}");
    }

    // It goes on from there, and a second restart keeps the new entries as well.
    for r in 8..10 {
        round(&j, r).await;
    }
    let after = state(&j).await;
    assert_ne!(after, before);
    stop(j, how).await;
    let j = open(tmp.path(), snapshot_every).await;
    assert_eq!(state(&j).await, after, "namespace after the second restart");
    j.shutdown().await;
}

#[tokio::test]
async fn shutdown_and_reopen_from_the_log() {
    restart_keeps_namespace(NEVER, Stop::Shutdown).await;
}

#[tokio::test]
async fn shutdown_and_reopen_from_a_snapshot_and_the_log() {
    restart_keeps_namespace(OFTEN, Stop::Shutdown).await;
}

#[tokio::test]
async fn dropped_without_shutdown_reopens_from_the_log() {
    restart_keeps_namespace(NEVER, Stop::Drop).await;
}

#[tokio::test]
async fn dropped_without_shutdown_reopens_from_a_snapshot_and_the_log() {
    restart_keeps_namespace(OFTEN, Stop::Drop).await;
}

/// A copy of the directory taken while the journal runs is what a kill -9 would leave (the
/// page cache aside, which the fsync before commit covers): it opens to the same namespace.
/// (No snapshot here: a file-by-file copy is only a crash image while nothing else moves.)
#[tokio::test]
async fn a_copy_taken_while_running_opens_to_the_same_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let j = open(&live, NEVER).await;
    for r in 0..4 {
        round(&j, r).await;
    }
    let before = state(&j).await;
    let image = tmp.path().join("image");
    copy_dir(&live, &image);
    let copy = open(&image, NEVER).await;
    assert_eq!(state(&copy).await, before, "namespace of the crash image");
    copy.shutdown().await;
    j.shutdown().await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}
