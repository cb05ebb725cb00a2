//! A full disk is an error, not damage: on a real 1 MiB tmpfs, a packet that hits ENOSPC is
//! `DiskFull`, and the replica keeps exactly the packets written before it.
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it these tests print why and pass vacuously.

mod common;

use common::Tmpfs;
use std::path::PathBuf;

use datanode::{ReplicaState, Store, StoreError};

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn disk_full_keeps_what_was_written() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let dirs = [fs.path().join("dn")];
    let store = Store::open(&dirs).unwrap();
    // 10000-byte packets: most end inside a chunk, so the failing one would rewrite a partial
    // chunk's checksum, which must be put back.
    let bytes = data(4 << 20);
    let mut w = store.create_rbw(1, 1).unwrap();
    let mut written = 0usize;
    let mut full = false;
    for _ in 0..400 {
        let packet = &bytes[written..written + 10_000];
        match w.write_packet(written as u64, packet) {
            Ok(()) => written += packet.len(),
            Err(StoreError::DiskFull { dir }) => {
                assert_eq!(dir, dirs[0]);
                full = true;
                break;
            }
            Err(e) => panic!("unexpected error after {written} bytes: {e}"),
        }
    }
    assert!(full, "a 1 MiB tmpfs took {written} bytes");
    assert!(written > 500_000, "only {written} bytes fit");
    assert_eq!(w.length(), written as u64);
    // Everything acknowledged reads back, checked, and the files are exactly that long.
    assert_eq!(store.open_reader(1, 1).unwrap().read_bytes(0, written as u64).unwrap(), bytes[..written]);
    store.verify(1).unwrap();
    // A smaller packet may fit, and a full disk does not stop the finalize (renames only).
    let small = w.write_packet(written as u64, &bytes[written..written + 100]);
    if small.is_ok() {
        written += 100;
    } else {
        assert!(matches!(small, Err(StoreError::DiskFull { .. })));
    }
    let info = w.finalize().unwrap();
    assert_eq!((info.length, info.state), (written as u64, ReplicaState::Finalized));
    store.verify(1).unwrap();
    // A new replica on the full disk fails cleanly, or is created empty.
    match store.create_rbw(2, 1) {
        Ok(mut w2) => {
            let r = w2.write_packet(0, &bytes[..100_000]);
            assert!(matches!(r, Err(StoreError::DiskFull { .. })), "{r:?}");
            assert_eq!(w2.length(), 0);
        }
        Err(e) => assert!(matches!(e, StoreError::DiskFull { .. }), "{e}"),
    }
    drop(store);
    let store = Store::open(&dirs).unwrap();
    assert_eq!(store.get(1).unwrap().length, written as u64);
    store.verify(1).unwrap();
    if let Some(r) = store.get(2) {
        assert_eq!(r.length, 0);
    }
}

#[test]
fn new_replicas_go_to_the_dir_with_most_free_space() {
    let Some(small) = Tmpfs::mount("1m") else { return };
    let big = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = vec![small.path().join("dn"), big.path().join("dn")];
    let store = Store::open(&dirs).unwrap();
    for id in 0..5 {
        let mut w = store.create_rbw(id, 1).unwrap();
        w.write_packet(0, &data(1000)).unwrap();
        w.finalize().unwrap();
        assert!(dirs[1].join(format!("current/finalized/blk_{id}")).exists(), "block {id} is not on the emptier dir");
    }
    let space = store.space().unwrap();
    assert!(space.capacity_bytes > 1 << 20);
    assert_eq!(space.used_bytes, 5 * (1000 + 7 + 4 * 2));
}

/// The packet's data fits (it stays inside a page the data file already has) but the meta
/// file needs a new page: the write of the checksums fails after it may have overwritten the
/// checksum of the partial last chunk, which must be put back.
#[test]
fn disk_full_on_the_meta_file_restores_the_last_checksum() {
    use std::io::Write;
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let dirs = [fs.path().join("dn")];
    let store = Store::open(&dirs).unwrap();
    let bytes = data(600_000);
    // 1022 chunks (the last partial): the meta file is 7 + 4 * 1022 = 4095 bytes, one page.
    let len = 1021 * 512 + 100;
    assert_eq!(datanode::meta::meta_len(len as u64), 4095);
    assert!(len % 4096 + 600 < 4096, "the next packet stays in the data file's last page");
    let mut w = store.create_rbw(1, 1).unwrap();
    w.write_packet(0, &bytes[..len]).unwrap();
    // Fill the file system.
    let mut filler = std::fs::File::create(fs.path().join("filler")).unwrap();
    let page = vec![0u8; 4096];
    while filler.write_all(&page).is_ok() {}
    let _ = filler.write_all(&page[..1]);
    // 412 bytes complete chunk 1021, 188 start chunk 1022: a 1023rd checksum, a second page.
    let r = w.write_packet(len as u64, &bytes[len..len + 600]);
    assert!(matches!(r, Err(StoreError::DiskFull { .. })), "{r:?}");
    assert_eq!(w.length(), len as u64);
    store.verify(1).unwrap();
    assert_eq!(store.open_reader(1, 1).unwrap().read_bytes(0, len as u64).unwrap(), bytes[..len]);
    // With space again, the same packet goes in.
    drop(filler);
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    w.write_packet(len as u64, &bytes[len..len + 600]).unwrap();
    w.finalize().unwrap();
    store.verify(1).unwrap();
    assert_eq!(store.open_reader(1, 1).unwrap().read_bytes(0, len as u64 + 600).unwrap(), bytes[..len + 600]);
}
