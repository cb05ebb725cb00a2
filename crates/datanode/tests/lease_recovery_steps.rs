//! Lease recovery over the data port: `InitRecovery` fences the writer of each replica and
//! reports its length; `FinishRecovery` cuts every replica to the shortest and finalizes it
//! under the recovery stamp; a finalized replica changes stamp, and is cut if longer (a
//! truncate), never lengthened; a stale NameNode epoch and a client (epoch 0) are refused;
//! repeating a step changes nothing.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;

use datanode::ReplicaState;
use dfs_proto::transfer::{Op, OpResponse, Status};
use dfs_proto::ExtendedBlock;

mod common;

use common::{bytes, start, TIMEOUT};

/// Sends one op and returns its response.
fn call(addr: SocketAddr, op: &Op) -> OpResponse {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(&op.to_frame().expect("frame")).expect("send");
    OpResponse::read_from(&mut s).expect("op response")
}

#[test]
fn replicas_are_cut_to_the_shortest_and_finalized_under_the_recovery_stamp() {
    let nodes = [start("dn1"), start("dn2"), start("dn3")];
    let data = bytes(5000, 9);
    // A pipeline that died mid-block: the replicas hold different amounts, and the first
    // still has its writer open.
    let mut writer = nodes[0].store.create_rbw(7, 3).expect("rbw");
    writer.write_packet(0, &data[..5000]).expect("write");
    for (node, len) in [(&nodes[1], 4000), (&nodes[2], 4600)] {
        let mut w = node.store.create_rbw(7, 3).expect("rbw");
        w.write_packet(0, &data[..len]).expect("write");
        drop(w);
    }
    for n in &nodes {
        n.epoch.store(5, Ordering::SeqCst);
    }
    let block = ExtendedBlock { id: 7, gs: 3, len: 0 };

    // Refused: an older NameNode, and a client.
    for epoch in [4, 0] {
        let r = call(nodes[0].addr(), &Op::InitRecovery { block, recovery_id: 10, namenode_epoch: epoch });
        assert_eq!(r.status, Status::ErrorStale, "epoch {epoch}: {}", r.message);
    }
    assert_eq!(nodes[0].store.get(7).map(|r| r.gs), Some(3), "a refused step changes nothing");

    let mut lengths = Vec::new();
    for n in &nodes {
        for _ in 0..2 {
            let r = call(n.addr(), &Op::InitRecovery { block, recovery_id: 10, namenode_epoch: 5 });
            assert_eq!(r.status, Status::Success, "{}", r.message);
            lengths.push(r.first_chunk_offset);
        }
        let info = n.store.get(7).expect("replica");
        assert_eq!((info.state, info.gs), (ReplicaState::Rbw, 10));
    }
    assert_eq!(lengths, vec![5000, 5000, 4000, 4000, 4600, 4600]);
    // The old writer is fenced: nothing more reaches the replica through it.
    assert!(writer.write_packet(5000, &[1; 10]).is_err());

    let shortest = *lengths.iter().min().expect("lengths");
    let done = ExtendedBlock { id: 7, gs: 10, len: shortest };
    for n in &nodes {
        for _ in 0..2 {
            let r = call(n.addr(), &Op::FinishRecovery { block: done, namenode_epoch: 5 });
            assert_eq!((r.status, r.first_chunk_offset), (Status::Success, shortest), "{}", r.message);
        }
        let info = n.store.get(7).expect("replica");
        assert_eq!((info.state, info.gs, info.length), (ReplicaState::Finalized, 10, shortest));
        let got = n.store.open_reader(7, 10).expect("reader").read_bytes(0, shortest).expect("read");
        assert_eq!(got, data[..shortest as usize]);
        n.store.verify(7).expect("checksums match the cut replica");
    }

    // A finalized replica of the right length only moves to the new stamp; a longer one is
    // cut (a truncate's recovery, as HDFS's updateReplicaUnderRecovery does); a shorter one
    // is refused.
    let r = call(nodes[0].addr(), &Op::FinishRecovery { block: ExtendedBlock { gs: 11, ..done }, namenode_epoch: 5 });
    assert_eq!(r.status, Status::Success, "{}", r.message);
    assert_eq!(nodes[0].store.get(7).map(|r| (r.state, r.gs)), Some((ReplicaState::Finalized, 11)));
    let r = call(
        nodes[1].addr(),
        &Op::FinishRecovery { block: ExtendedBlock { gs: 12, len: shortest + 1, ..done }, namenode_epoch: 5 },
    );
    assert_ne!(r.status, Status::Success);
    assert_eq!(nodes[1].store.get(7).map(|r| (r.gs, r.length)), Some((10, shortest)));
    let r = call(
        nodes[1].addr(),
        &Op::FinishRecovery { block: ExtendedBlock { gs: 12, len: 700, ..done }, namenode_epoch: 5 },
    );
    assert_eq!((r.status, r.first_chunk_offset), (Status::Success, 700), "{}", r.message);
    assert_eq!(nodes[1].store.get(7).map(|r| (r.state, r.gs, r.length)), Some((ReplicaState::Finalized, 12, 700)));
    let got = nodes[1].store.open_reader(7, 12).expect("reader").read_bytes(0, 700).expect("read");
    assert_eq!(got, data[..700]);
    nodes[1].store.verify(7).expect("checksums match the truncated replica");
    // A replica the NameNode knows at a newer stamp than the recovery's is stale.
    let r = call(
        nodes[2].addr(),
        &Op::InitRecovery { block: ExtendedBlock { gs: 11, ..block }, recovery_id: 12, namenode_epoch: 5 },
    );
    assert_eq!(r.status, Status::ErrorStale, "{}", r.message);
}
