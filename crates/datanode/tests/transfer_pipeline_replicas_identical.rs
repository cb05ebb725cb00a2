//! A write through a three-node pipeline leaves three identical, finalized replicas: every
//! node serves the same bytes, and each block report lists the replica at its full length.

use datanode::transfer::client::{read_block, write_block};
use datanode::ReplicaState;
use dfs_proto::DatanodeInfo;
use dfs_proto::ExtendedBlock;

mod common;

use common::{bytes, start, TIMEOUT};

#[test]
fn pipeline_write_leaves_identical_finalized_replicas() {
    let nodes = [start("dn1"), start("dn2"), start("dn3")];
    let pipeline: Vec<DatanodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
    // A few MiB and a partial last chunk.
    let data = bytes(3 * (1 << 20) + 1000, 1);
    let block = ExtendedBlock { id: 1001, gs: 1001, len: 0 };
    let acked = write_block(&pipeline, block, &data, 64 << 10, TIMEOUT).expect("pipeline write");
    assert_eq!(acked, data.len() as u64);

    let len = data.len() as u64;
    for n in &nodes {
        let got = read_block(n.addr(), ExtendedBlock { len, ..block }, 0, len, TIMEOUT).expect("read back");
        assert!(got == data, "{}: bytes differ from what was written", n.info.id);
        let report = n.store.report();
        assert_eq!(report.len(), 1, "{}: {report:?}", n.info.id);
        let r = report[0];
        assert_eq!((r.id, r.gs, r.length, r.state), (1001, 1001, len, ReplicaState::Finalized), "{}", n.info.id);
    }
}
