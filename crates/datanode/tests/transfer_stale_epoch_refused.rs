//! A WriteBlock carrying a NameNode epoch older than the newest the DataNode has seen is
//! refused with ErrorStale, and nothing is written.

use std::sync::atomic::Ordering;

use datanode::transfer::client::ClientError;
use datanode::transfer::client::{write_block, WriteStream};
use dfs_proto::transfer::{Op, Status, WriteStage};
use dfs_proto::ExtendedBlock;

mod common;

use common::{bytes, start, TIMEOUT};

#[test]
fn stale_namenode_epoch_is_refused_and_nothing_written() {
    let node = start("dn1");
    node.epoch.store(7, Ordering::SeqCst);
    let block = ExtendedBlock { id: 11, gs: 11, len: 0 };
    let op = |epoch| Op::WriteBlock {
        block,
        new_gs: 11,
        targets: Vec::new(),
        client_name: String::new(),
        stage: WriteStage::Transfer,
        namenode_epoch: epoch,
    };
    match WriteStream::open(node.addr(), &op(6), TIMEOUT) {
        Err(ClientError::Refused { status: Status::ErrorStale, .. }) => {}
        other => panic!("stale epoch: {:?}", other.map(|_| ())),
    }
    assert_eq!(node.store.get(11), None, "nothing written");
    assert!(node.store.report().is_empty());

    // The current epoch is accepted, and so is a client's write (epoch 0: no command behind it).
    WriteStream::open(node.addr(), &op(7), TIMEOUT).expect("current epoch accepted");
    let data = bytes(10_000, 5);
    let b2 = ExtendedBlock { id: 12, gs: 12, len: 0 };
    write_block(std::slice::from_ref(&node.info), b2, &data, 4096, TIMEOUT).expect("client write");
    assert_eq!(node.store.get(12).map(|r| r.length), Some(10_000));
}
