//! A full disk on one node of a pipeline: the ack names that node with ErrorDiskFull (the
//! others succeeded), and its replica keeps exactly the packets acknowledged before, checked
//! and readable, so the client can recover the pipeline elsewhere.
//!
//! The full disk is a real 1 MiB tmpfs; mounting needs root (CAP_SYS_ADMIN), and without it
//! the test prints why and passes vacuously (as `disk_full.rs` does).

mod common;

use common::Tmpfs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use datanode::transfer::client::{create_op, read_block, WriteStream};
use datanode::transfer::TransferServer;
use datanode::Store;
use dfs_proto::transfer::{Packet, Status};
use dfs_proto::{DatanodeInfo, ExtendedBlock};

struct Node {
    server: TransferServer,
    store: Store,
    info: DatanodeInfo,
    _dir: Option<tempfile::TempDir>,
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn start(id: &str, data_dir: Option<PathBuf>) -> Node {
    let (tmp, path) = match data_dir {
        Some(p) => (None, p),
        None => {
            let t = tempfile::tempdir().expect("temp dir");
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let store = Store::open(&[path]).expect("open store");
    let (server, info, _) = common::serve(id, &store);
    Node { server, store, info, _dir: tmp }
}

impl Node {
    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

#[test]
fn full_disk_is_named_in_the_ack_and_leaves_a_consistent_replica() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    // Declared after the mount: the nodes (and their open files) go before the unmount.
    let nodes = [start("dn1", None), start("dn2", Some(fs.path().join("dn2"))), start("dn3", None)];
    let pipeline: Vec<DatanodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
    let block = ExtendedBlock { id: 1, gs: 1, len: 0 };
    let mut w = WriteStream::open(nodes[0].addr(), &create_op(block, &pipeline, "c"), TIMEOUT).expect("open");
    // 10000-byte packets: most end inside a chunk, so the failing one touches a partial chunk.
    let data: Vec<u8> = (0..4 << 20).map(|i: usize| (i * 31 % 251) as u8).collect();
    let mut acked = 0u64;
    let mut refused = None;
    for (seqno, piece) in data.chunks(10_000).enumerate() {
        w.send(&Packet::build(seqno as u64, acked, piece.to_vec(), false, false)).expect("send");
        let ack = w.recv_ack().expect("ack");
        if !ack.is_success() {
            refused = Some(ack);
            break;
        }
        acked += piece.len() as u64;
    }
    let ack = refused.expect("a 1 MiB tmpfs took 4 MiB");
    assert_eq!(ack.statuses, vec![Status::Success, Status::ErrorDiskFull, Status::Success]);
    assert_eq!(ack.first_failed(), Some(1));
    assert!(acked > 500_000, "only {acked} bytes fit");
    drop(w);

    // dn2 holds exactly what was acknowledged, every chunk checked.
    let r = nodes[1].store.get(1).expect("replica on the full node");
    assert_eq!(r.length, acked);
    nodes[1].store.verify(1).expect("the replica on the full disk is consistent");
    let b = ExtendedBlock { len: acked, ..block };
    for n in &nodes {
        let got = read_block(n.addr(), b, 0, acked, TIMEOUT).expect("read what was acknowledged");
        assert!(got == data[..acked as usize], "{}: bytes differ", n.info.id);
    }
}
