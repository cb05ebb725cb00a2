//! Connections are bounded: one over `max_connections` is answered with an Error op response
//! and closed, and a slot freed by a finished connection is served again.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datanode::transfer::client::{create_op, read_block, write_block, ClientError, WriteStream};
use datanode::transfer::{TransferConfig, TransferServer};
use datanode::Store;
use dfs_proto::transfer::Status;
use dfs_proto::{DatanodeInfo, ExtendedBlock};

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn connections_over_the_limit_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&[dir.path().to_path_buf()]).expect("open store");
    let config = TransferConfig {
        node_id: "dn1".into(),
        max_connections: 1,
        io_timeout: TIMEOUT,
        namenode_epoch: Arc::new(AtomicI64::new(0)),
    };
    let server = TransferServer::start(store.clone(), "127.0.0.1:0".parse().expect("addr"), config).expect("start");
    let me = [DatanodeInfo {
        id: "dn1".into(),
        data_addr: server.local_addr().to_string(),
        http_addr: String::new(),
        rack: "/r".into(),
    }];
    let data = vec![7u8; 3000];
    let b1 = ExtendedBlock { id: 1, gs: 1, len: 0 };
    write_block(&me, b1, &data, 1024, TIMEOUT).expect("write");

    // Holds the one slot: the server waits for its first packet. The write's connection may
    // still be finishing on the server after its last ack, so wait for the slot (bounded).
    let op = create_op(ExtendedBlock { id: 2, gs: 2, len: 0 }, &me, "c");
    let deadline = Instant::now() + TIMEOUT;
    let held = loop {
        match WriteStream::open(server.local_addr(), &op, TIMEOUT) {
            Ok(w) => break w,
            Err(ClientError::Refused { status: Status::Error, .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("first connection: {e}"),
        }
    };
    match read_block(server.local_addr(), ExtendedBlock { len: 3000, ..b1 }, 0, 3000, TIMEOUT) {
        Err(ClientError::Refused { status: Status::Error, message }) => {
            assert!(message.contains("too many connections"), "{message}")
        }
        other => panic!("a connection over the limit: {:?}", other.map(|d| d.len())),
    }
    drop(held);

    // The slot comes back once the server sees the held connection closed (bounded wait).
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match read_block(server.local_addr(), ExtendedBlock { len: 3000, ..b1 }, 0, 3000, TIMEOUT) {
            Ok(got) => {
                assert_eq!(got, data);
                break;
            }
            Err(ClientError::Refused { status: Status::Error, .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("after the slot was freed: {e}"),
        }
    }
    server.shutdown();
}
