//! Malformed input (an op of another version, an oversize frame, packets out of order or with
//! unknown flags) is refused with an error status on that connection only: other replicas
//! and other connections are untouched.

use std::io::{Read, Write};
use std::net::TcpStream;

use datanode::transfer::client::{create_op, read_block, write_block, WriteStream};
use dfs_proto::transfer::{OpResponse, Packet, PacketHeader, Status};
use dfs_proto::{ExtendedBlock, Message};

mod common;

use common::{bytes, start, Node, TIMEOUT};

fn raw_op(node: &Node, frame: &[u8]) -> OpResponse {
    let mut s = TcpStream::connect(node.addr()).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(frame).expect("send");
    let r = OpResponse::read_from(&mut s).expect("op response");
    // Then the server closes the connection.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing after the refusal");
    r
}

#[test]
fn malformed_input_is_refused_without_touching_other_replicas() {
    let node = start("dn1");
    let me = [node.info.clone()];
    let good = bytes(5000, 7);
    let b1 = ExtendedBlock { id: 1, gs: 1, len: 0 };
    write_block(&me, b1, &good, 4096, TIMEOUT).expect("write a good replica");

    // Another protocol version.
    let mut frame = create_op(ExtendedBlock { id: 2, gs: 2, len: 0 }, &me, "t").to_frame().expect("frame");
    frame[4..6].copy_from_slice(&9u16.to_be_bytes());
    assert_eq!(raw_op(&node, &frame).status, Status::ErrorInvalid);
    // A frame over the op limit, refused from its prefix.
    assert_eq!(raw_op(&node, &(1u32 << 30).to_be_bytes()).status, Status::ErrorInvalid);
    assert_eq!(node.store.get(2), None);

    let data = bytes(3 * 1024, 8);
    let open = |id| {
        let op = create_op(ExtendedBlock { id, gs: id, len: 0 }, &me, "t");
        let mut w = WriteStream::open(node.addr(), &op, TIMEOUT).expect("open");
        w.send(&Packet::build(0, 0, data[..1024].to_vec(), false, false)).expect("send");
        assert!(w.recv_ack().expect("ack").is_success());
        w
    };
    // A seqno out of order.
    let mut w = open(3);
    w.send(&Packet::build(2, 1024, data[1024..2048].to_vec(), false, false)).expect("send");
    assert_eq!(w.recv_ack().expect("ack").statuses, vec![Status::ErrorInvalid]);
    // An offset out of order (a gap).
    let mut w = open(4);
    w.send(&Packet::build(1, 2048, data[2048..].to_vec(), false, false)).expect("send");
    assert_eq!(w.recv_ack().expect("ack").statuses, vec![Status::ErrorInvalid]);
    // Unknown flags.
    let mut w = open(5);
    let mut raw = Packet::build(1, 1024, data[1024..2048].to_vec(), false, false).to_bytes();
    raw[16] = 0x80;
    assert!(PacketHeader::from_bytes(&raw[..PacketHeader::LEN]).is_err());
    w.send_raw(&raw).expect("send");
    assert_eq!(w.recv_ack().expect("ack").statuses, vec![Status::ErrorInvalid]);

    for id in [3, 4, 5] {
        assert_eq!(node.store.get(id).map(|r| r.length), Some(1024), "block {id}: only the good packet");
    }
    // The good replica is intact and served.
    node.store.verify(1).expect("verify");
    let got = read_block(node.addr(), ExtendedBlock { len: 5000, ..b1 }, 0, 5000, TIMEOUT).expect("read");
    assert!(got == good);
}
