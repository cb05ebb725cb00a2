//! Shared by the datanode tests: DataNodes (a store and its transfer server) on free loopback
//! ports with their own temp dirs, deterministic test bytes, and a real tmpfs for full disks.
#![allow(dead_code)] // each test file uses a different part

use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use datanode::transfer::{TransferConfig, TransferServer};
use datanode::Store;
use dfs_proto::DatanodeInfo;

pub struct Node {
    pub server: Option<TransferServer>,
    pub store: Store,
    pub info: DatanodeInfo,
    pub epoch: Arc<AtomicI64>,
    pub _dir: tempfile::TempDir,
}

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn start(id: &str) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&[dir.path().to_path_buf()]).expect("open store");
    let (server, info, epoch) = serve(id, &store);
    Node { server: Some(server), store, info, epoch, _dir: dir }
}

/// A transfer server for `store` on a free loopback port, its DataNode info, and its epoch.
pub fn serve(id: &str, store: &Store) -> (TransferServer, DatanodeInfo, Arc<AtomicI64>) {
    let epoch = Arc::new(AtomicI64::new(0));
    let config = TransferConfig {
        node_id: id.to_string(),
        max_connections: 16,
        io_timeout: TIMEOUT,
        namenode_epoch: epoch.clone(),
    };
    let server = TransferServer::start(store.clone(), "127.0.0.1:0".parse().expect("addr"), config).expect("start");
    let info = DatanodeInfo {
        id: id.to_string(),
        data_addr: server.local_addr().to_string(),
        http_addr: String::new(),
        rack: "/default-rack".to_string(),
    };
    (server, info, epoch)
}

impl Node {
    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().expect("running").local_addr()
    }
}

pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    // xorshift: deterministic, and different chunks differ.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[path = "tmpfs.rs"]
mod tmpfs;
#[allow(unused_imports)] // only the disk-full tests use it
pub use tmpfs::Tmpfs;
