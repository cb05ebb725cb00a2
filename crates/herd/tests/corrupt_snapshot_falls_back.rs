//! Guarantee: a corrupt newest snapshot is detected by checksum and skipped; the older snapshot
//! plus the log after it give back every acknowledged write.

mod common;

use common::KeeperProc;
use keeper_proto::client::SyncClient;
use std::fs;

#[test]
fn flipped_byte_in_newest_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--zk-property", "snapCount=50"];
    let mut k = KeeperProc::start(dir.path(), &extra);
    let mut c = SyncClient::connect(k.addr, 10_000, None).unwrap();
    for i in 0..400 {
        c.create(&format!("/s{i}"), format!("v{i}").as_bytes(), 0).unwrap();
    }
    drop(c);
    k.kill9();
    let mut snaps: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("snap.") && !name.ends_with(".tmp")
        })
        .collect();
    snaps.sort();
    assert!(snaps.len() >= 2, "expected two snapshots, found {snaps:?}");
    let newest = snaps.last().unwrap();
    let mut b = fs::read(newest).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    fs::write(newest, &b).unwrap();

    let k = KeeperProc::start(dir.path(), &extra);
    let mut c = SyncClient::connect(k.addr, 10_000, None).unwrap();
    for i in 0..400 {
        assert_eq!(c.get(&format!("/s{i}"), false).unwrap().0, format!("v{i}").into_bytes());
    }
    let err = k.stderr();
    assert!(err.contains("skipping unusable snapshot") && err.contains("checksum"), "{err}");
}
