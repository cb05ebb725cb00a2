//! `BlockChecksum` answers HDFS's per-block MD5 of the stored CRC32Cs, checked against an
//! independent computation: the whole replica (the short last chunk's CRC as stored), a
//! prefix (whole chunks' stored CRCs, then the CRC of the partial tail from the data), and
//! clear refusals for a missing, stale, short or unfinalized replica. A byte flipped in the
//! data file leaves the checksum as it was: it digests the stored CRCs, as HDFS's does.

use std::net::TcpStream;
use std::os::unix::fs::FileExt;

use datanode::transfer::client::{read_block, write_block};
use dfs_proto::transfer::{request_block_checksum, BlockChecksumResponse, OpResponse, Status};
use dfs_proto::ExtendedBlock;
use md5::{Digest, Md5};

mod common;

use common::{bytes, start, Node, TIMEOUT};

/// MD5 over the big-endian CRC32C of each 512-byte piece of `data` (the last may be short).
fn md5_of_crcs(data: &[u8]) -> [u8; 16] {
    let mut crcs = Vec::new();
    for piece in data.chunks(512) {
        crcs.extend_from_slice(&crc32c::crc32c(piece).to_be_bytes());
    }
    Md5::digest(&crcs).into()
}

fn ask(n: &Node, block: ExtendedBlock) -> Result<BlockChecksumResponse, OpResponse> {
    let mut s = TcpStream::connect(n.addr()).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    request_block_checksum(&mut s, block).expect("an answer")
}

fn refused(n: &Node, block: ExtendedBlock) -> OpResponse {
    match ask(n, block) {
        Ok(r) => panic!("{block:?} answered {r:?}"),
        Err(resp) => resp,
    }
}

#[test]
fn block_checksum_is_hdfs_md5_of_the_stored_crcs() {
    let n = start("dn1");
    let pipeline = [n.info.clone()];
    let data = bytes(5000, 3);
    let block = ExtendedBlock { id: 7, gs: 3, len: 0 };
    write_block(&pipeline, block, &data, 1500, TIMEOUT).expect("write");
    let block = ExtendedBlock { len: 5000, ..block };

    // The whole replica: ten CRCs, the last over 392 bytes.
    let whole = ask(&n, block).expect("whole block");
    assert_eq!(whole, BlockChecksumResponse { bytes_per_crc: 512, crc_per_block: 10, md5: md5_of_crcs(&data) });
    // A prefix: the same MD5 as a replica of just those bytes would have (HDFS's partial
    // block), and crc_per_block still the replica's.
    for len in [0usize, 1, 511, 512, 1300, 4608, 4999] {
        let got = ask(&n, ExtendedBlock { len: len as u64, ..block }).expect("prefix");
        assert_eq!((got.crc_per_block, got.md5), (10, md5_of_crcs(&data[..len])), "prefix of {len}");
    }
    // A newer replica than asked serves (HDFS: only an older one is stale).
    assert_eq!(ask(&n, ExtendedBlock { gs: 2, ..block }).expect("older stamp asked").md5, whole.md5);

    // A replica ending on a chunk boundary.
    let even = bytes(2048, 4);
    let b2 = ExtendedBlock { id: 8, gs: 3, len: 0 };
    write_block(&pipeline, b2, &even, 4096, TIMEOUT).expect("write");
    let got = ask(&n, ExtendedBlock { len: 2048, ..b2 }).expect("even block");
    assert_eq!((got.crc_per_block, got.md5), (4, md5_of_crcs(&even)));

    // Refusals, each with a status and a message naming the block.
    let stale = refused(&n, ExtendedBlock { gs: 4, ..block });
    assert_eq!(stale.status, Status::ErrorStale, "{stale:?}");
    let missing = refused(&n, ExtendedBlock { id: 99, ..block });
    assert_eq!(missing.status, Status::ErrorInvalid);
    assert!(missing.message.contains("block 99"), "{missing:?}");
    let short = refused(&n, ExtendedBlock { len: 5001, ..block });
    assert_eq!(short.status, Status::ErrorInvalid, "{short:?}");
    let mut w = n.store.create_rbw(9, 5).expect("rbw");
    w.write_packet(0, &data[..700]).expect("write rbw");
    w.flush(false).expect("flush");
    let rbw = refused(&n, ExtendedBlock { id: 9, gs: 5, len: 700 });
    assert_eq!(rbw.status, Status::ErrorInvalid);
    assert!(rbw.message.contains("Rbw"), "{rbw:?}");
    drop(w);

    // A flipped data byte: reads refuse the chunk, the checksum (of the stored CRCs) is
    // unchanged, as in HDFS.
    let file = n.store.dirs()[0].join("current/finalized/blk_7");
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&file).expect("replica file");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 100).expect("read");
    f.write_all_at(&[b[0] ^ 0x5a], 100).expect("flip");
    assert!(read_block(n.addr(), block, 0, 512, TIMEOUT).is_err(), "the flipped byte is there");
    assert_eq!(ask(&n, block).expect("whole block after the flip").md5, whole.md5);
    // Only a prefix whose partial tail lies in that chunk reads the data, and is refused.
    let tail = refused(&n, ExtendedBlock { len: 300, ..block });
    assert_eq!(tail.status, Status::ErrorChecksum, "{tail:?}");
}
