//! The block store against real files in temp dirs: format, round trips, corruption,
//! recovery at open, generation stamps, and the data dir lock.

mod common;

use common::bytes;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use datanode::meta;
use datanode::{ReplicaState, Store, StoreError};

fn open(dir: &Path) -> Store {
    Store::open(&[dir.to_path_buf()]).expect("open store")
}

fn finalized(dir: &Path, name: &str) -> PathBuf {
    dir.join("current/finalized").join(name)
}

fn rbw(dir: &Path, name: &str) -> PathBuf {
    dir.join("current/rbw").join(name)
}

fn flip(path: &Path, offset: u64) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, offset).unwrap();
}

fn append_to(path: &Path, extra: &[u8]) {
    OpenOptions::new().append(true).open(path).unwrap().write_all(extra).unwrap();
}

fn corrupt_at(r: Result<impl std::fmt::Debug, StoreError>) -> u64 {
    match r {
        Err(StoreError::Corrupt { offset, .. }) => offset,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Writes `sizes` as packets to a new replica and returns the bytes.
fn write_replica(store: &Store, id: u64, gs: u64, sizes: &[usize]) -> (Vec<u8>, datanode::ReplicaWriter) {
    let total: usize = sizes.iter().sum();
    let data = bytes(total, id);
    let mut w = store.create_rbw(id, gs).unwrap();
    let mut off = 0;
    for &s in sizes {
        w.write_packet(off as u64, &data[off..off + s]).unwrap();
        off += s;
        assert_eq!(w.length(), off as u64);
    }
    (data, w)
}

#[test]
fn meta_file_is_hdfs_format() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (data, w) = write_replica(&store, 7, 1001, &[1000]);
    w.finalize().unwrap();
    let m = fs::read(finalized(dir.path(), "blk_7_1001.meta")).unwrap();
    // BlockMetadataHeader: version 1 (u16 BE); DataChecksum: CRC32C = 2 (u8), 512 (u32 BE).
    assert_eq!(m[..7], [0, 1, 2, 0, 0, 2, 0]);
    assert_eq!(m.len(), 7 + 4 * 2);
    assert_eq!(m[7..11], crc32c::crc32c(&data[..512]).to_be_bytes());
    assert_eq!(m[11..15], crc32c::crc32c(&data[512..]).to_be_bytes());
    assert_eq!(fs::read(finalized(dir.path(), "blk_7")).unwrap(), data);
}

#[test]
fn round_trip_packet_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&[usize]] = &[
        &[1],
        &[511],
        &[512],
        &[513],
        &[65536],
        &[1, 1, 510, 1, 511, 512, 513],
        &[100, 412, 100, 65536, 7],
        &[511, 2, 1023, 1, 1, 1],
        &[300, 300, 300, 300, 65536, 513],
        &[0, 5, 0, 507],
    ];
    let store = open(dir.path());
    let mut expected = Vec::new();
    for (i, sizes) in cases.iter().enumerate() {
        let id = 100 + i as u64;
        let (data, mut w) = write_replica(&store, id, 1, sizes);
        w.flush(true).unwrap();
        // Readable while rbw, and the meta file is exactly the checksums of the whole data
        // (so every rewritten partial-chunk checksum is right).
        assert_eq!(store.open_reader(id, 1).unwrap().read_bytes(0, data.len() as u64).unwrap(), data);
        let info = w.finalize().unwrap();
        assert_eq!((info.length, info.state), (data.len() as u64, ReplicaState::Finalized));
        let m = fs::read(finalized(dir.path(), &format!("blk_{id}_1.meta"))).unwrap();
        assert_eq!(m[7..], meta::encode_crcs(&meta::chunk_crcs(&data)), "case {sizes:?}");
        expected.push((id, data));
    }
    drop(store);
    let store = open(dir.path());
    for (id, data) in expected {
        let r = store.open_reader(id, 1).unwrap();
        assert_eq!(r.read_bytes(0, data.len() as u64).unwrap(), data);
        store.verify(id).unwrap();
    }
}

#[test]
fn reads_at_arbitrary_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (data, w) = write_replica(&store, 1, 1, &[5000]);
    w.finalize().unwrap();
    let r = store.open_reader(1, 1).unwrap();
    let n = data.len() as u64;
    for offset in [0u64, 1, 100, 511, 512, 513, 1023, 1024, 2500, 4607, 4608, 4999, 5000] {
        for len in [0u64, 1, 2, 511, 512, 513, 1000, 5000] {
            if offset + len > n {
                assert!(matches!(r.read(offset, len), Err(StoreError::OutOfRange { .. })));
                continue;
            }
            let c = r.read(offset, len).unwrap();
            assert_eq!(c.offset % 512, 0);
            assert!(c.offset <= offset && (len == 0 || c.end() >= offset + len));
            assert_eq!(c.data, data[c.offset as usize..c.end() as usize]);
            assert_eq!(c.crcs, meta::chunk_crcs(&c.data));
            assert_eq!(c.slice(offset, len).unwrap(), &data[offset as usize..(offset + len) as usize]);
            assert_eq!(r.read_bytes(offset, len).unwrap(), &data[offset as usize..(offset + len) as usize]);
        }
    }
    assert!(matches!(r.read(u64::MAX, 2), Err(StoreError::OutOfRange { .. })));
    // Streaming: chunk-aligned pieces that together are the range.
    for (offset, len) in [(0u64, n), (700, 3000), (4999, 1), (1, 0)] {
        let mut got = Vec::new();
        let mut next = None;
        for piece in r.chunks(offset, len) {
            let piece = piece.unwrap();
            assert_eq!(piece.offset % 512, 0);
            if let Some(next) = next {
                assert_eq!(piece.offset, next);
            }
            next = Some(piece.end());
            got.extend_from_slice(&piece.data);
        }
        let start = (offset - offset % 512) as usize;
        if len > 0 {
            assert_eq!(got, data[start..start + got.len()]);
            assert!(start + got.len() >= (offset + len) as usize);
        } else {
            assert!(got.is_empty());
        }
    }
}

#[test]
fn stream_does_not_load_the_whole_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let piece = dfs_proto::transfer::MAX_PACKET_DATA_LEN;
    let (data, w) = write_replica(&store, 1, 1, &[piece, piece, piece, 1000]);
    w.finalize().unwrap();
    let r = store.open_reader(1, 1).unwrap();
    let pieces: Vec<_> = r.chunks(0, data.len() as u64).map(|p| p.unwrap()).collect();
    assert_eq!(pieces.len(), 4);
    assert!(pieces.iter().all(|p| p.data.len() <= piece));
    assert_eq!(pieces.concat_data(), data);
}

trait Concat {
    fn concat_data(&self) -> Vec<u8>;
}

impl Concat for Vec<datanode::Chunks> {
    fn concat_data(&self) -> Vec<u8> {
        self.iter().flat_map(|c| c.data.iter().copied()).collect()
    }
}

#[test]
fn flipped_data_byte_is_found_at_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (data, w) = write_replica(&store, 3, 1, &[3000]);
    w.finalize().unwrap();
    flip(&finalized(dir.path(), "blk_3"), 1300);
    let r = store.open_reader(3, 1).unwrap();
    assert_eq!(corrupt_at(r.read(0, 3000)), 1024);
    assert_eq!(corrupt_at(r.read_bytes(1500, 10)), 1024);
    assert_eq!(corrupt_at(r.read(1023, 2)), 1024);
    // Chunks around the bad one are still served.
    assert_eq!(r.read_bytes(0, 1024).unwrap(), data[..1024]);
    assert_eq!(r.read_bytes(1536, 1464).unwrap(), data[1536..]);
    assert_eq!(corrupt_at(store.verify(3)), 1024);
    // The stream stops at the bad chunk, after the good pieces.
    let mut results: Vec<_> = r.chunks(0, 3000).collect();
    assert_eq!(results.len(), 1);
    assert_eq!(corrupt_at(results.pop().unwrap()), 1024);
}

#[test]
fn flipped_meta_byte_is_found_at_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (_, w) = write_replica(&store, 4, 9, &[3000]);
    w.finalize().unwrap();
    let m = finalized(dir.path(), "blk_4_9.meta");
    flip(&m, 7 + 4 * 4 + 2); // chunk 4's checksum
    let r = store.open_reader(4, 9).unwrap();
    assert_eq!(corrupt_at(r.read(0, 3000)), 2048);
    assert_eq!(corrupt_at(r.read(2100, 1)), 2048);
    r.read(0, 2048).unwrap();
    assert_eq!(corrupt_at(store.verify(4)), 2048);
    // A damaged header: nothing in the file can be trusted.
    flip(&m, 4);
    assert_eq!(corrupt_at(store.open_reader(4, 9).map(|_| ())), 0);
    assert_eq!(corrupt_at(store.verify(4)), 0);
}

#[test]
fn meta_of_the_wrong_size_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for id in [1, 2, 3] {
        write_replica(&store, id, 1, &[1500]).1.finalize().unwrap();
    }
    // A checksum missing: the last chunk (1024..1500) is unverifiable.
    let m1 = finalized(dir.path(), "blk_1_1.meta");
    let len = fs::metadata(&m1).unwrap().len();
    OpenOptions::new().write(true).open(&m1).unwrap().set_len(len - 4).unwrap();
    assert_eq!(corrupt_at(store.verify(1)), 1024);
    assert_eq!(corrupt_at(store.open_reader(1, 1).unwrap().read(1400, 10)), 1024);
    // Checksums for data that is not there.
    append_to(&finalized(dir.path(), "blk_2_1.meta"), &[1, 2, 3, 4]);
    assert_eq!(corrupt_at(store.verify(2)), 1500);
    // A data file cut behind the store's back.
    OpenOptions::new().write(true).open(finalized(dir.path(), "blk_3")).unwrap().set_len(700).unwrap();
    assert_eq!(corrupt_at(store.open_reader(3, 1).unwrap().read(0, 1500)), 512);
    assert_eq!(corrupt_at(store.verify(3)), 512);
    // And a store opened over all that does not panic, and still finds it.
    drop(store);
    let store = open(dir.path());
    assert_eq!(corrupt_at(store.verify(1)), 1024);
    assert_eq!(corrupt_at(store.verify(2)), 1500);
    // Taken at its data file's length; its second chunk's checksum covers bytes that are gone.
    assert_eq!(store.get(3).unwrap().length, 700);
    assert_eq!(corrupt_at(store.verify(3)), 512);
}

#[test]
fn garbage_files_do_not_break_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let fin = dir.path().join("current/finalized");
    let rbw_dir = dir.path().join("current/rbw");
    fs::write(fin.join("blk_5"), b"data without meta").unwrap();
    fs::write(fin.join("blk_6_1.meta"), meta::header()).unwrap(); // meta without data
    fs::write(fin.join("README"), b"not a replica").unwrap();
    fs::write(rbw_dir.join("blk_8"), b"x").unwrap();
    fs::write(rbw_dir.join("blk_8_1.meta"), [9u8; 40]).unwrap(); // foreign header
    let store = open(dir.path());
    assert!(store.report().is_empty());
}

#[test]
fn torn_rbw_tail_is_recovered_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // a: data past the checksums. b: a partial chunk extended without its checksum rewritten.
    // c: a checksum past the data. d: a bad last full chunk. e: a meta torn in its header.
    let (a, mut wa) = write_replica(&store, 1, 1, &[1000]);
    let (b, mut wb) = write_replica(&store, 2, 1, &[700]);
    let (c, mut wc) = write_replica(&store, 3, 1, &[1024]);
    let (d, mut wd) = write_replica(&store, 4, 1, &[1536]);
    let wz = store.create_rbw(5, 1).unwrap();
    for w in [&mut wa, &mut wb, &mut wc, &mut wd] {
        w.flush(true).unwrap();
    }
    drop((wa, wb, wc, wd, wz));
    drop(store);
    append_to(&rbw(dir.path(), "blk_1"), &[7; 300]);
    append_to(&rbw(dir.path(), "blk_2"), &[7; 100]);
    append_to(&rbw(dir.path(), "blk_3"), &[7; 10]);
    append_to(&rbw(dir.path(), "blk_3_1.meta"), &crc32c::crc32c(b"something else").to_be_bytes());
    flip(&rbw(dir.path(), "blk_4"), 1535);
    OpenOptions::new().write(true).open(rbw(dir.path(), "blk_5_1.meta")).unwrap().set_len(3).unwrap();

    let store = open(dir.path());
    for (id, data, len) in [(1, &a, 1000), (2, &b, 700), (3, &c, 1024), (4, &d, 1024)] {
        let info = store.get(id).unwrap();
        assert_eq!((info.state, info.length), (ReplicaState::Rbw, len), "block {id}");
        assert_eq!(fs::metadata(rbw(dir.path(), &format!("blk_{id}"))).unwrap().len(), len);
        assert_eq!(fs::metadata(rbw(dir.path(), &format!("blk_{id}_1.meta"))).unwrap().len(), meta::meta_len(len));
        assert_eq!(store.open_reader(id, 1).unwrap().read_bytes(0, len).unwrap(), data[..len as usize]);
        store.verify(id).unwrap();
    }
    assert_eq!(store.get(5).unwrap().length, 0);
    assert_eq!(fs::read(rbw(dir.path(), "blk_5_1.meta")).unwrap(), meta::header());
    // A recovered replica continues after a pipeline recovery, and finalizes.
    let mut w = store.recover_rbw(2, 2, 700).unwrap();
    w.write_packet(700, &[1; 100]).unwrap();
    w.finalize().unwrap();
    store.verify(2).unwrap();
}

#[test]
fn an_interrupted_finalize_is_completed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (data, mut w) = write_replica(&store, 1, 3, &[2000]);
    w.flush(true).unwrap();
    drop(w);
    drop(store);
    // The crash came between the two renames: meta moved, data not yet.
    fs::rename(rbw(dir.path(), "blk_1_3.meta"), finalized(dir.path(), "blk_1_3.meta")).unwrap();
    let store = open(dir.path());
    let info = store.get(1).unwrap();
    assert_eq!((info.state, info.length, info.gs), (ReplicaState::Finalized, 2000, 3));
    assert!(finalized(dir.path(), "blk_1").exists());
    assert!(!rbw(dir.path(), "blk_1").exists());
    assert_eq!(store.open_reader(1, 3).unwrap().read_bytes(0, 2000).unwrap(), data);
}

#[test]
fn append_bumps_the_generation_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (mut data, w) = write_replica(&store, 1, 1, &[700]);
    w.finalize().unwrap();
    assert!(matches!(store.append(1, 2, 3), Err(StoreError::StaleGenStamp { on_disk: 1, wanted: 2, .. })));
    assert!(matches!(store.append(1, 1, 1), Err(StoreError::GenStampNotNewer { .. })));
    let mut w = store.append(1, 1, 2).unwrap();
    assert_eq!((w.length(), w.gs()), (700, 2));
    assert!(rbw(dir.path(), "blk_1_2.meta").exists() && rbw(dir.path(), "blk_1").exists());
    assert!(!finalized(dir.path(), "blk_1_1.meta").exists());
    // While appending: rbw in the report, and readable at the new stamp only.
    assert_eq!(store.get(1).unwrap().state, ReplicaState::Rbw);
    assert!(matches!(store.append(1, 2, 3), Err(StoreError::WrongState { .. })));
    let more = bytes(400, 99);
    w.write_packet(700, &more).unwrap();
    data.extend_from_slice(&more);
    let info = w.finalize().unwrap();
    assert_eq!((info.gs, info.length), (2, 1100));
    assert!(finalized(dir.path(), "blk_1_2.meta").exists());
    assert!(matches!(store.append(1, 1, 3), Err(StoreError::GenStampMismatch { on_disk: 2, wanted: 1, .. })));
    assert!(matches!(store.open_reader(1, 3), Err(StoreError::StaleGenStamp { on_disk: 2, wanted: 3, .. })));
    assert_eq!(store.open_reader(1, 2).unwrap().read_bytes(0, 1100).unwrap(), data);
    store.verify(1).unwrap();

    // An append to a replica whose last partial chunk is bad is refused, and changes nothing.
    flip(&finalized(dir.path(), "blk_1"), 1050);
    assert_eq!(corrupt_at(store.append(1, 2, 3).map(|_| ())), 1024);
    assert_eq!(store.get(1).unwrap().state, ReplicaState::Finalized);
    assert!(finalized(dir.path(), "blk_1_2.meta").exists());

    // An append that crashed is a rbw replica at the new stamp after restart.
    let (_, w) = write_replica(&store, 2, 5, &[100]);
    w.finalize().unwrap();
    let mut w = store.append(2, 5, 6).unwrap();
    w.write_packet(100, &[3; 50]).unwrap();
    w.flush(true).unwrap();
    drop(w);
    drop(store);
    let store = open(dir.path());
    let info = store.get(2).unwrap();
    assert_eq!((info.state, info.gs, info.length), (ReplicaState::Rbw, 6, 150));
}

#[test]
fn recover_rbw_truncates_and_fences_the_old_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (data, mut w1) = write_replica(&store, 1, 1, &[1500]);
    assert!(matches!(store.recover_rbw(1, 2, 1600), Err(StoreError::TooShort { on_disk: 1500, wanted: 1600, .. })));
    assert!(matches!(store.recover_rbw(1, 1, 1000), Err(StoreError::GenStampNotNewer { .. })));
    let mut w2 = store.recover_rbw(1, 2, 1000).unwrap();
    assert_eq!((w2.length(), w2.gs()), (1000, 2));
    assert!(matches!(w1.write_packet(1500, &[0; 10]), Err(StoreError::WriterFenced { .. })));
    assert!(matches!(w1.flush(true), Err(StoreError::WriterFenced { .. })));
    assert_eq!(fs::metadata(rbw(dir.path(), "blk_1")).unwrap().len(), 1000);
    assert_eq!(fs::metadata(rbw(dir.path(), "blk_1_2.meta")).unwrap().len(), meta::meta_len(1000));
    assert!(!rbw(dir.path(), "blk_1_1.meta").exists());
    assert!(matches!(store.open_reader(1, 3), Err(StoreError::StaleGenStamp { .. })));
    store.verify(1).unwrap();
    let more = bytes(300, 5);
    w2.write_packet(1000, &more).unwrap();
    let info = w2.finalize().unwrap();
    assert_eq!((info.gs, info.length), (2, 1300));
    // The fenced writer cannot finalize over the recovered replica either.
    assert!(matches!(w1.finalize(), Err(StoreError::WriterFenced { .. })));
    let got = store.open_reader(1, 2).unwrap().read_bytes(0, 1300).unwrap();
    assert_eq!(got[..1000], data[..1000]);
    assert_eq!(got[1000..], more);
    assert!(matches!(store.recover_rbw(1, 3, 100), Err(StoreError::WrongState { .. })));

    // Down to a chunk boundary, and to nothing.
    for (id, len) in [(2u64, 1024u64), (3, 0)] {
        let (_, _w) = write_replica(&store, id, 1, &[1500]);
        let w = store.recover_rbw(id, 2, len).unwrap();
        assert_eq!(w.length(), len);
        drop(w);
        store.verify(id).unwrap();
    }
}

#[test]
fn checked_packets_are_verified_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = bytes(2000, 1);
    let mut w = store.create_rbw(1, 1).unwrap();
    // Pieces cut at the replica's chunk boundaries: [0,300) then [300,512),[512,1024),[1024,1100).
    w.write_packet_checked(0, &data[..300], &[crc32c::crc32c(&data[..300])]).unwrap();
    let pieces = [&data[300..512], &data[512..1024], &data[1024..1100]];
    let crcs: Vec<u32> = pieces.iter().map(|p| crc32c::crc32c(p)).collect();
    let mut bad = crcs.clone();
    bad[1] ^= 1;
    assert_eq!(corrupt_at(w.write_packet_checked(300, &data[300..1100], &bad)), 512);
    assert!(matches!(w.write_packet_checked(300, &data[300..1100], &crcs[..2]), Err(StoreError::BadPacket { .. })));
    assert_eq!(w.length(), 300);
    w.write_packet_checked(300, &data[300..1100], &crcs).unwrap();
    assert!(matches!(w.write_packet(1000, &data[1000..1100]), Err(StoreError::OutOfOrder { expected: 1100, .. })));
    w.finalize().unwrap();
    assert_eq!(store.open_reader(1, 1).unwrap().read_bytes(0, 1100).unwrap(), data[..1100]);
}

#[test]
fn stale_generation_stamp_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    write_replica(&store, 1, 5, &[10]).1.finalize().unwrap();
    assert!(matches!(store.open_reader(1, 6), Err(StoreError::StaleGenStamp { id: 1, on_disk: 5, wanted: 6 })));
    store.open_reader(1, 5).unwrap();
    store.open_reader(1, 4).unwrap();
    assert!(matches!(store.create_rbw(1, 7), Err(StoreError::AlreadyExists { id: 1 })));
}

#[test]
fn delete_removes_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    write_replica(&store, 1, 1, &[600]).1.finalize().unwrap();
    let r = store.open_reader(1, 1).unwrap();
    store.delete(1).unwrap();
    assert!(!finalized(dir.path(), "blk_1").exists() && !finalized(dir.path(), "blk_1_1.meta").exists());
    assert!(store.get(1).is_none());
    assert!(matches!(store.open_reader(1, 1), Err(StoreError::NoSuchReplica { id: 1 })));
    assert!(matches!(r.read(0, 1), Err(StoreError::NoSuchReplica { .. })));
    assert!(matches!(store.delete(1), Err(StoreError::NoSuchReplica { id: 1 })));
    // A replica being written: its writer fails from then on, even after the id is reused.
    let (_, mut w) = write_replica(&store, 2, 1, &[100]);
    store.delete(2).unwrap();
    assert!(!rbw(dir.path(), "blk_2").exists());
    let (_, w_new) = write_replica(&store, 2, 1, &[50]);
    assert!(matches!(w.write_packet(100, &[0; 10]), Err(StoreError::NoSuchReplica { .. })));
    drop(w);
    assert_eq!(store.get(2).unwrap().length, 50);
    w_new.finalize().unwrap();
}

#[test]
fn report_lists_finalized_and_rbw_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    write_replica(&store, 30, 3, &[1]).1.finalize().unwrap();
    let (_, mut w) = write_replica(&store, 10, 1, &[513]);
    w.flush(true).unwrap();
    let (_, t) = {
        let mut t = store.create_temporary(20, 2).unwrap();
        t.write_packet(0, &[1; 5]).unwrap();
        ((), t)
    };
    let report = store.report();
    let expected = vec![
        datanode::ReplicaInfo { id: 10, gs: 1, length: 513, state: ReplicaState::Rbw },
        datanode::ReplicaInfo { id: 30, gs: 3, length: 1, state: ReplicaState::Finalized },
    ];
    assert_eq!(report, expected);
    // A dropped temporary replica is gone; a dropped rbw one stays.
    drop(t);
    assert!(store.get(20).is_none());
    assert!(!dir.path().join("tmp/blk_20").exists());
    drop(w);
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.report(), expected);
    let space = store.space().unwrap();
    assert!(space.capacity_bytes > 0 && space.free_bytes <= space.capacity_bytes);
    assert_eq!(space.used_bytes, 513 + meta::meta_len(513) + 1 + meta::meta_len(1));
}

#[test]
fn temporary_replicas_finalize_or_vanish() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut t = store.create_temporary(1, 4).unwrap();
    assert!(dir.path().join("tmp/blk_1_4.meta").exists());
    t.write_packet(0, &[9; 1000]).unwrap();
    assert!(matches!(store.open_reader(1, 4), Err(StoreError::NoSuchReplica { .. })));
    let info = t.finalize().unwrap();
    assert_eq!(info.state, ReplicaState::Finalized);
    assert!(finalized(dir.path(), "blk_1").exists());
    store.verify(1).unwrap();
    // One left in tmp/ by a crash is dropped at open.
    drop(store);
    fs::write(dir.path().join("tmp/blk_2"), [1; 10]).unwrap();
    fs::write(dir.path().join("tmp/blk_2_1.meta"), meta::header()).unwrap();
    let store = open(dir.path());
    assert!(store.get(2).is_none());
    assert!(!dir.path().join("tmp/blk_2").exists());
}

#[test]
fn two_data_dirs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // A replica already on b, and the same block newer on a than on b.
    {
        let store = open(b.path());
        write_replica(&store, 1, 1, &[700]).1.finalize().unwrap();
        write_replica(&store, 2, 1, &[100]).1.finalize().unwrap();
    }
    {
        let store = open(a.path());
        write_replica(&store, 2, 2, &[200]).1.finalize().unwrap();
    }
    let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
    let store = Store::open(&dirs).unwrap();
    assert_eq!(store.dirs(), dirs);
    assert_eq!(store.get(1).unwrap().length, 700);
    assert_eq!((store.get(2).unwrap().gs, store.get(2).unwrap().length), (2, 200));
    store.verify(1).unwrap();
    store.verify(2).unwrap();
    for id in 10..20 {
        write_replica(&store, id, 1, &[1000]).1.finalize().unwrap();
    }
    for id in 10..20 {
        let on_a = finalized(a.path(), &format!("blk_{id}")).exists();
        let on_b = finalized(b.path(), &format!("blk_{id}")).exists();
        assert!(on_a != on_b, "block {id} is in exactly one dir");
        store.verify(id).unwrap();
    }
    assert_eq!(store.report().len(), 12);
}

#[test]
fn a_locked_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(matches!(Store::open(&[dir.path().to_path_buf()]), Err(StoreError::DirInUse { .. })));
    let other = tempfile::tempdir().unwrap();
    let twice = [other.path().to_path_buf(), other.path().to_path_buf()];
    assert!(matches!(Store::open(&twice), Err(StoreError::DirInUse { .. })));
    assert!(matches!(Store::open(&[]), Err(StoreError::NoDataDirs)));
    drop(store);
    open(dir.path());
}

#[test]
fn a_reader_follows_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = bytes(40_000, 3);
    let mut w = store.create_rbw(1, 1).unwrap();
    let reader_store = store.clone();
    let expected = data.clone();
    let reader = std::thread::spawn(move || {
        let r = reader_store.open_reader(1, 1).unwrap();
        let mut reads = 0;
        loop {
            let len = r.length().unwrap();
            // The whole replica as it is now: every partial last chunk must check out.
            let got = r.read_bytes(0, len).unwrap();
            assert_eq!(got, expected[..len as usize]);
            reads += 1;
            if len == expected.len() as u64 {
                return reads;
            }
        }
    });
    let mut off = 0;
    let mut size = 1;
    while off < data.len() {
        let n = size.min(data.len() - off);
        w.write_packet(off as u64, &data[off..off + n]).unwrap();
        off += n;
        size = size * 7 % 997 + 1;
    }
    assert!(reader.join().unwrap() >= 1);
    w.finalize().unwrap();
}

#[test]
fn delete_if_not_newer_keeps_a_replica_that_moved_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (_, w) = write_replica(&store, 1, 3, &[1000]);
    w.finalize().unwrap();
    // An append moved the replica to stamp 4 after the NameNode named stamp 3.
    let w = store.append(1, 3, 4).unwrap();
    w.finalize().unwrap();
    assert!(!store.delete_if_not_newer(1, 3).unwrap(), "a newer replica is kept");
    assert_eq!(store.get(1).map(|r| r.gs), Some(4));
    assert!(store.delete_if_not_newer(1, 4).unwrap());
    assert_eq!(store.get(1), None);
    assert!(matches!(store.delete_if_not_newer(1, 4), Err(StoreError::NoSuchReplica { .. })));
}
