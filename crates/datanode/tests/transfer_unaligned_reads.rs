//! Reads at offsets and lengths that are not chunk-aligned return exactly the bytes asked:
//! the DataNode sends whole checksummed chunks from `first_chunk_offset`, the client trims.

use datanode::transfer::client::{read_block, read_stream, write_block, ClientError};
use dfs_proto::transfer::{Op, Status};
use dfs_proto::DatanodeInfo;
use dfs_proto::ExtendedBlock;

mod common;

use common::{bytes, start, TIMEOUT};

#[test]
fn unaligned_reads_return_exactly_the_range() {
    let nodes = [start("dn1"), start("dn2")];
    let pipeline: Vec<DatanodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
    let data = bytes(300_001, 2);
    let len = data.len() as u64;
    let block = ExtendedBlock { id: 7, gs: 3, len: 0 };
    write_block(&pipeline, block, &data, 50_000, TIMEOUT).expect("write");
    let block = ExtendedBlock { len, ..block };

    let ranges: [(u64, u64); 9] = [
        (0, 1),
        (511, 2),
        (700, 1000),
        (65_535, 65_538),
        (123_457, 100_000),
        (len - 1, 1),
        (len - 700, 700),
        (0, len),
        (4096, 0),
    ];
    for n in &nodes {
        for (offset, count) in ranges {
            let got = read_block(n.addr(), block, offset, count, TIMEOUT).expect("read");
            let want = &data[offset as usize..(offset + count) as usize];
            assert!(got == want, "{}: read {offset}+{count} returned other bytes", n.info.id);
        }
        // The packets start at the chunk boundary at or before the offset.
        let op = Op::ReadBlock { block, offset: 700, len: 10, verify: true };
        let (first, raw) = read_stream(n.addr(), &op, TIMEOUT).expect("raw read");
        assert_eq!(first, 512);
        assert_eq!(raw, data[512..1024]);
        // Past the end is refused, not truncated.
        match read_block(n.addr(), block, len - 10, 11, TIMEOUT) {
            Err(ClientError::Refused { status: Status::ErrorInvalid, .. }) => {}
            other => panic!("read past the end: {other:?}"),
        }
    }
}
