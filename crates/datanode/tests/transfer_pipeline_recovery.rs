//! After a node of the pipeline dies, the client recovers the pipeline on the survivors
//! (stage Recovery: cut to the acknowledged length under a new generation stamp) and
//! finishes the block; later an append (stage Append) extends the finalized replicas.

use datanode::transfer::client::{create_op, read_block, send_all, WriteStream};
use datanode::ReplicaState;
use dfs_proto::transfer::{Op, Packet, Status, WriteStage};
use dfs_proto::DatanodeInfo;
use dfs_proto::ExtendedBlock;

mod common;

use common::{bytes, start, TIMEOUT};

#[test]
fn survivors_recover_under_a_new_stamp_and_complete_the_block() {
    let mut nodes = [start("dn1"), start("dn2"), start("dn3")];
    let pipeline: Vec<DatanodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
    let block = ExtendedBlock { id: 300, gs: 10, len: 0 };
    let packet = 32 << 10;
    let data = bytes(8 * packet + 123, 10);
    let mut w = WriteStream::open(nodes[0].addr(), &create_op(block, &pipeline, "c"), TIMEOUT).expect("open");
    let mut acked = 0u64;
    for (i, piece) in data.chunks(packet).take(3).enumerate() {
        w.send(&Packet::build(i as u64, acked, piece.to_vec(), false, false)).expect("send");
        assert!(w.recv_ack().expect("ack").is_success());
        acked += piece.len() as u64;
    }
    nodes[2].server.take().expect("running").shutdown();
    let piece = &data[acked as usize..acked as usize + packet];
    w.send(&Packet::build(3, acked, piece.to_vec(), false, false)).expect("send");
    assert_eq!(w.recv_ack().expect("ack").first_failed(), Some(2));
    drop(w);

    // Recovery on the two survivors: cut to what was acknowledged, stamp 11, go on from there.
    let survivors: Vec<DatanodeInfo> = pipeline[..2].to_vec();
    let op = Op::WriteBlock {
        block: ExtendedBlock { len: acked, ..block },
        new_gs: 11,
        targets: survivors[1..].to_vec(),
        client_name: "c".into(),
        stage: WriteStage::Recovery,
        namenode_epoch: 0,
    };
    // The old connection's threads may still be finishing on the survivors: the recovery
    // fences them (the store waits for a packet being written).
    let mut w = WriteStream::open(nodes[0].addr(), &op, TIMEOUT).expect("recovery");
    let end = send_all(&mut w, acked, &data[acked as usize..], packet).expect("finish the block");
    assert_eq!(end, data.len() as u64);
    let len = data.len() as u64;
    for n in &nodes[..2] {
        let r = n.store.get(300).expect("replica");
        assert_eq!((r.gs, r.length, r.state), (11, len, ReplicaState::Finalized), "{}", n.info.id);
        let b = ExtendedBlock { id: 300, gs: 11, len };
        assert!(read_block(n.addr(), b, 0, len, TIMEOUT).expect("read") == data);
        // A reader that knows of a newer stamp than the replica has is refused.
        let newer = ExtendedBlock { gs: 12, ..b };
        assert!(read_block(n.addr(), newer, 0, 1, TIMEOUT).is_err());
    }

    // Append: reopen the finalized replicas at stamp 11 under 12 and add bytes.
    let more = bytes(5000, 11);
    let op = Op::WriteBlock {
        block: ExtendedBlock { id: 300, gs: 11, len },
        new_gs: 12,
        targets: survivors[1..].to_vec(),
        client_name: "c".into(),
        stage: WriteStage::Append,
        namenode_epoch: 0,
    };
    let mut w = WriteStream::open(nodes[0].addr(), &op, TIMEOUT).expect("append");
    assert_eq!(send_all(&mut w, len, &more, 4096).expect("append bytes"), len + 5000);
    for n in &nodes[..2] {
        let r = n.store.get(300).expect("replica");
        assert_eq!((r.gs, r.length, r.state), (12, len + 5000, ReplicaState::Finalized));
        let b = ExtendedBlock { id: 300, gs: 12, len: len + 5000 };
        assert!(
            read_block(n.addr(), b, len - 10, 5010, TIMEOUT).expect("read")
                == [&data[data.len() - 10..], &more[..]].concat()
        );
    }
    // An append from a stale stamp is refused.
    let stale = Op::WriteBlock {
        block: ExtendedBlock { id: 300, gs: 11, len },
        new_gs: 13,
        targets: Vec::new(),
        client_name: "c".into(),
        stage: WriteStage::Append,
        namenode_epoch: 0,
    };
    match WriteStream::open(nodes[1].addr(), &stale, TIMEOUT) {
        Err(datanode::transfer::client::ClientError::Refused { status: Status::ErrorStale, .. }) => {}
        other => panic!("stale append: {:?}", other.map(|_| ())),
    }
}
