//! A byte flipped in one node's block file: that node answers a read with an error status
//! naming the bad chunk, never with bad bytes; the other replicas still serve the block.

use dfs_proto::DatanodeInfo;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use datanode::transfer::client::{read_block, read_stream, write_block, ClientError};
use dfs_proto::transfer::{Op, Status};
use dfs_proto::ExtendedBlock;

mod common;

use common::{bytes, start, TIMEOUT};

#[test]
fn corrupt_replica_answers_an_error_and_the_others_serve() {
    let nodes = [start("dn1"), start("dn2"), start("dn3")];
    let pipeline: Vec<DatanodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
    let data = bytes(1 << 20, 3);
    let len = data.len() as u64;
    let block = ExtendedBlock { id: 42, gs: 5, len: 0 };
    write_block(&pipeline, block, &data, 64 << 10, TIMEOUT).expect("write");
    let block = ExtendedBlock { len, ..block };

    // Flip one byte of dn2's finalized block file, behind the store's back.
    let flipped_at: u64 = 300_000;
    let path = nodes[1].store.dirs()[0].join("current/finalized/blk_42");
    let f = OpenOptions::new().read(true).write(true).open(&path).expect("open block file");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, flipped_at).expect("read byte");
    f.write_all_at(&[b[0] ^ 0x10], flipped_at).expect("flip byte");
    drop(f);
    let bad_chunk = flipped_at - flipped_at % 512;

    match read_block(nodes[1].addr(), block, 0, len, TIMEOUT) {
        Err(ClientError::Refused { status: Status::ErrorChecksum, message }) => {
            assert!(message.contains(&bad_chunk.to_string()), "message names the offset: {message}");
        }
        other => panic!("read of a corrupt replica: {:?}", other.map(|d| d.len())),
    }
    // A range starting at the bad chunk is refused before any data.
    match read_block(nodes[1].addr(), block, bad_chunk + 10, 100, TIMEOUT) {
        Err(ClientError::Refused { status: Status::ErrorChecksum, .. }) => {}
        other => panic!("read of the bad chunk: {:?}", other.map(|d| d.len())),
    }
    // What came before the error was good bytes, and only whole chunks before the bad one.
    let op = Op::ReadBlock { block, offset: 0, len, verify: true };
    assert!(read_stream(nodes[1].addr(), &op, TIMEOUT).is_err());
    // Ranges that avoid the bad chunk are still served by the corrupt node.
    let got = read_block(nodes[1].addr(), block, 0, bad_chunk, TIMEOUT).expect("read before the bad chunk");
    assert!(got == data[..bad_chunk as usize]);

    for n in [&nodes[0], &nodes[2]] {
        let got = read_block(n.addr(), block, 0, len, TIMEOUT).expect("read from a good replica");
        assert!(got == data, "{}: bytes differ", n.info.id);
    }
}
