//! Guarantee: a torn or corrupt log tail is detected by checksum, truncated, reported in the
//! log, and everything before it is served; corruption inside an older segment stops start-up.

mod common;

use common::KeeperProc;
use keeper_proto::client::SyncClient;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

fn segments(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("log")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// Creates `/{prefix}0..count` on a fresh keeper, kills it with SIGKILL, and returns the newest
/// log segment (whose tail the tests then damage).
fn write_then_kill(dir: &std::path::Path, prefix: &str, count: usize) -> PathBuf {
    let mut k = KeeperProc::start(dir, &[]);
    let mut c = SyncClient::connect(k.addr, 10_000, None).unwrap();
    for i in 0..count {
        c.create(&format!("/{prefix}{i}"), b"x", 0).unwrap();
    }
    drop(c);
    k.kill9();
    segments(dir).pop().unwrap()
}

#[test]
fn flipped_byte_in_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let seg = write_then_kill(dir.path(), "n", 20);
    let mut b = fs::read(&seg).unwrap();
    let len = b.len();
    // Flip a byte inside the last record (the session close or the last create).
    b[len - 3] ^= 0xff;
    fs::write(&seg, &b).unwrap();
    let k = KeeperProc::start(dir.path(), &[]);
    let mut c = SyncClient::connect(k.addr, 10_000, None).unwrap();
    for i in 0..19 {
        c.get(&format!("/n{i}"), false).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let err = k.stderr();
    assert!(err.contains("torn or corrupt") && err.contains("truncated"), "no truncation report in: {err}");
}

#[test]
fn garbage_appended_to_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let seg = write_then_kill(dir.path(), "g", 5);
    fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]).unwrap();
    let k = KeeperProc::start(dir.path(), &[]);
    let mut c = SyncClient::connect(k.addr, 10_000, None).unwrap();
    for i in 0..5 {
        c.get(&format!("/g{i}"), false).unwrap();
    }
    // The keeper keeps writing after the truncation point.
    c.create("/after", b"y", 0).unwrap();
    drop(c);
    drop(k);
    let k = KeeperProc::start(dir.path(), &[]);
    let mut c = SyncClient::connect(k.addr, 10_000, None).unwrap();
    c.get("/after", false).unwrap();
}
