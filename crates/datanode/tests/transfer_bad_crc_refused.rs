//! A packet whose data does not match its CRCs is refused with ErrorChecksum by the first
//! node that receives it; nothing from it on is written, on that node or downstream.

use datanode::transfer::client::{create_op, WriteStream};
use dfs_proto::transfer::{Packet, Status};
use dfs_proto::DatanodeInfo;
use dfs_proto::ExtendedBlock;

mod common;

use common::{bytes, start, TIMEOUT};

#[test]
fn packet_with_bad_crc_is_refused_and_not_written() {
    let nodes = [start("dn1"), start("dn2")];
    let pipeline: Vec<DatanodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
    let block = ExtendedBlock { id: 9, gs: 9, len: 0 };
    let mut w = WriteStream::open(nodes[0].addr(), &create_op(block, &pipeline, "test"), TIMEOUT).expect("open");
    let data = bytes(3 * 4096, 4);
    for (i, piece) in data.chunks(4096).take(2).enumerate() {
        w.send(&Packet::build(i as u64, i as u64 * 4096, piece.to_vec(), false, false)).expect("send");
        let ack = w.recv_ack().expect("ack");
        assert_eq!((ack.seqno, ack.statuses.as_slice()), (i as u64, &[Status::Success, Status::Success][..]));
    }
    // Packet 2: the CRCs of the right bytes, one byte flipped on the way.
    let mut bad = Packet::build(2, 8192, data[8192..].to_vec(), false, true);
    bad.data[1000] ^= 1;
    w.send(&bad).expect("send bad packet");
    let ack = w.recv_ack().expect("ack of the bad packet");
    assert_eq!(ack.seqno, 2);
    assert_eq!(ack.statuses, vec![Status::ErrorChecksum]);
    // The connection is closed after the refusal: a further packet is not acknowledged.
    let _ = w.send(&Packet::build(3, 8192, data[8192..].to_vec(), false, false));
    assert!(w.recv_ack().is_err(), "the connection should be closed after a refused packet");

    for n in &nodes {
        let r = n.store.get(9).expect("replica");
        assert_eq!(r.length, 8192, "{}: only the two good packets are written", n.info.id);
    }
}
