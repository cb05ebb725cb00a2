//! The last node of a pipeline dies mid-write: the ack names it as the failed node, and what
//! was acknowledged before stays readable on the survivors.

use datanode::transfer::client::{create_op, read_block, WriteStream};
use dfs_proto::transfer::{Packet, Status};
use dfs_proto::DatanodeInfo;
use dfs_proto::ExtendedBlock;

mod common;

use common::{bytes, start, TIMEOUT};

#[test]
fn downstream_death_is_named_in_the_ack_and_acked_data_survives() {
    let mut nodes = [start("dn1"), start("dn2"), start("dn3")];
    let pipeline: Vec<DatanodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
    let block = ExtendedBlock { id: 77, gs: 4, len: 0 };
    let mut w = WriteStream::open(nodes[0].addr(), &create_op(block, &pipeline, "test"), TIMEOUT).expect("open");
    let packet = 64 << 10;
    let data = bytes(6 * packet, 6);
    let pieces: Vec<&[u8]> = data.chunks(packet).collect();
    let mut acked = 0u64;
    for (i, piece) in pieces.iter().take(4).enumerate() {
        w.send(&Packet::build(i as u64, acked, piece.to_vec(), false, false)).expect("send");
        let ack = w.recv_ack().expect("ack");
        assert!(ack.is_success() && ack.statuses.len() == 3, "{ack:?}");
        acked += piece.len() as u64;
    }

    // dn3 dies: its server closes every connection it has.
    nodes[2].server.take().expect("running").shutdown();

    w.send(&Packet::build(4, acked, pieces[4].to_vec(), false, false)).expect("send after the death");
    let ack = w.recv_ack().expect("ack after the death");
    assert_eq!(ack.seqno, 4);
    assert_eq!(ack.statuses, vec![Status::Success, Status::Success, Status::Error]);
    assert_eq!(ack.first_failed(), Some(2), "the third node is named");

    // The survivors serve everything acknowledged before (their replicas are still rbw).
    let b = ExtendedBlock { len: acked, ..block };
    for n in &nodes[..2] {
        let got = read_block(n.addr(), b, 0, acked, TIMEOUT).expect("read acknowledged bytes");
        assert!(got == data[..acked as usize], "{}: bytes differ", n.info.id);
        assert!(n.store.get(77).expect("replica").length >= acked);
    }
}
