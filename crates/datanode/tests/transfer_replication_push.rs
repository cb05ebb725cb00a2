//! Replication is pushed by the source: a WriteBlock of stage Transfer carrying the NameNode
//! epoch of the command. The target ends with the same finalized replica; a command from a
//! deposed NameNode (older epoch) is refused; CopyBlock streams the whole replica.

use std::sync::atomic::Ordering;

use datanode::transfer::client::{read_block, read_stream, transfer_block, write_block, ClientError};
use datanode::ReplicaState;
use dfs_proto::transfer::{Op, Status};
use dfs_proto::ExtendedBlock;

mod common;

use common::{bytes, start, TIMEOUT};

#[test]
fn transfer_stage_copies_a_finalized_replica() {
    let (src, dst) = (start("dn1"), start("dn2"));
    let data = bytes(200_000, 9);
    let len = data.len() as u64;
    let block = ExtendedBlock { id: 5, gs: 8, len: 0 };
    write_block(std::slice::from_ref(&src.info), block, &data, 64 << 10, TIMEOUT).expect("write");
    let block = ExtendedBlock { len, ..block };

    dst.epoch.store(3, Ordering::SeqCst);
    match transfer_block(&src.store, block, &dst.info, 2, TIMEOUT) {
        Err(ClientError::Refused { status: Status::ErrorStale, .. }) => {}
        other => panic!("transfer from a deposed namenode: {other:?}"),
    }
    assert_eq!(dst.store.get(5), None);

    assert_eq!(transfer_block(&src.store, block, &dst.info, 3, TIMEOUT).expect("transfer"), len);
    let r = dst.store.get(5).expect("replica on the target");
    assert_eq!((r.gs, r.length, r.state), (8, len, ReplicaState::Finalized));
    let got = read_block(dst.addr(), block, 0, len, TIMEOUT).expect("read the copy");
    assert!(got == data);

    let (first, copied) = read_stream(dst.addr(), &Op::CopyBlock { block }, TIMEOUT).expect("copy block");
    assert_eq!(first, 0);
    assert!(copied == data);
    // A copy of another generation stamp is refused.
    let old = ExtendedBlock { gs: 7, ..block };
    assert!(matches!(
        read_stream(dst.addr(), &Op::CopyBlock { block: old }, TIMEOUT),
        Err(ClientError::Refused { status: Status::ErrorInvalid, .. })
    ));
}
