//! Shared by the dfs-client tests: real DataNode data ports (stores in temp dirs, transfer
//! servers on free loopback ports) and a small NameNode test double that speaks the real
//! control RPC but implements only what a writer and a reader need: create, addBlock (the
//! first `replication` live, non-excluded DataNodes in a fixed order), abandon, complete,
//! pipeline updates, locations, bad-block reports, file info. It records every call.
#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datanode::transfer::{TransferConfig, TransferServer};
use datanode::Store;
use dfs_client::{ClientConfig, Dfs};
use dfs_proto::client_nn::{FileKind, LocatedBlocks, ServerDefaults};
use dfs_proto::rpc::{self, Protocol, Request, Response, MAX_FRAME_LEN};
use dfs_proto::{ClientRequest, ClientResponse, DatanodeInfo, ExtendedBlock, FileStatus, LocatedBlock, RemoteError};

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Node {
    pub server: Option<TransferServer>,
    pub store: Store,
    pub info: DatanodeInfo,
    pub dir: tempfile::TempDir,
}

pub fn start_datanode(id: &str) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&[dir.path().to_path_buf()]).expect("open store");
    let config = TransferConfig {
        node_id: id.to_string(),
        max_connections: 32,
        io_timeout: TIMEOUT,
        namenode_epoch: Arc::new(AtomicI64::new(0)),
    };
    let server = TransferServer::start(store.clone(), "127.0.0.1:0".parse().expect("addr"), config).expect("start");
    let info = DatanodeInfo {
        id: id.to_string(),
        data_addr: server.local_addr().to_string(),
        http_addr: String::new(),
        rack: "/default-rack".to_string(),
    };
    Node { server: Some(server), store, info, dir }
}

impl Node {
    /// Stops the data port: its connections close, as when the process dies.
    pub fn kill(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }

    /// The replica file `blk_<id>` of this node, wherever the store keeps it.
    pub fn replica_file(&self, id: u64) -> Option<PathBuf> {
        find(self.dir.path().to_path_buf(), &format!("blk_{id}"))
    }
}

fn find(dir: PathBuf, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(&dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
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

/// A file as the double keeps it.
#[derive(Debug, Clone, Default)]
pub struct FakeFile {
    pub blocks: Vec<(ExtendedBlock, Vec<DatanodeInfo>)>,
    pub replication: u16,
    pub block_size: u64,
    pub closed: bool,
}

#[derive(Default)]
pub struct NnState {
    pub datanodes: Vec<DatanodeInfo>,
    pub files: HashMap<String, FakeFile>,
    pub next_id: u64,
    /// Every request, in order.
    pub calls: Vec<ClientRequest>,
}

/// The NameNode double: one thread per connection, state behind a std Mutex.
pub struct FakeNamenode {
    pub addr: String,
    pub state: Arc<Mutex<NnState>>,
}

impl FakeNamenode {
    pub fn start(datanodes: Vec<DatanodeInfo>) -> FakeNamenode {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(Mutex::new(NnState { datanodes, next_id: 1000, ..Default::default() }));
        let s = state.clone();
        // The accept thread ends with the test process; each connection ends with its client.
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        FakeNamenode { addr, state }
    }

    pub fn client(&self) -> Dfs {
        let config = ClientConfig {
            datanode_timeout: TIMEOUT,
            namenode_retry_for: Duration::from_secs(5),
            packet_len: 16 << 10,
            window_packets: 8,
            ..ClientConfig::default()
        };
        Dfs::connect_with(&self.addr, "tester", config).expect("client")
    }

    pub fn file(&self, path: &str) -> FakeFile {
        self.state.lock().unwrap().files.get(path).cloned().expect("file known")
    }

    pub fn calls(&self) -> Vec<ClientRequest> {
        self.state.lock().unwrap().calls.clone()
    }
}

fn serve(mut conn: TcpStream, state: &Mutex<NnState>) {
    let mut pre = [0u8; 6];
    if std::io::Read::read_exact(&mut conn, &mut pre).is_err() || Protocol::from_preamble(pre).is_err() {
        return;
    }
    loop {
        let Ok(req) = rpc::read_message::<Request<ClientRequest>>(&mut conn, MAX_FRAME_LEN) else { return };
        let result = handle(&mut state.lock().unwrap(), req.body);
        let resp = Response { call_id: req.header.call_id, result };
        if rpc::write_message(&mut conn, &resp, MAX_FRAME_LEN).is_err() {
            return;
        }
    }
}

fn not_found(path: &str) -> RemoteError {
    RemoteError::new("java.io.FileNotFoundException", format!("File does not exist: {path}"))
}

fn status(name: &str, f: &FakeFile) -> FileStatus {
    FileStatus {
        name: name.to_string(),
        kind: FileKind::File,
        length: f.blocks.iter().map(|b| b.0.len).sum(),
        owner: "tester".into(),
        group: "supergroup".into(),
        perm: 0o644,
        replication: f.replication,
        block_size: f.block_size,
        mtime_ms: 0,
        atime_ms: 0,
        file_id: 1,
        children: 0,
        under_construction: !f.closed,
    }
}

fn handle(s: &mut NnState, req: ClientRequest) -> Result<ClientResponse, RemoteError> {
    s.calls.push(req.clone());
    match req {
        ClientRequest::GetServerDefaults => Ok(ClientResponse::ServerDefaults {
            defaults: ServerDefaults {
                block_size: 1 << 20,
                replication: 3,
                bytes_per_checksum: 512,
                write_packet_size: 64 << 10,
            },
        }),
        ClientRequest::Create { path, overwrite, replication, block_size, .. } => {
            if s.files.contains_key(&path) && !overwrite {
                return Err(RemoteError::new(
                    "org.apache.hadoop.fs.FileAlreadyExistsException",
                    format!("{path} for client c already exists"),
                ));
            }
            let f = FakeFile { blocks: vec![], replication, block_size, closed: false };
            let st = status("", &f);
            s.files.insert(path, f);
            Ok(ClientResponse::Status { status: st })
        }
        ClientRequest::AddBlock { path, previous, excluded, .. } => {
            let id = s.next_id;
            s.next_id += 1;
            let nodes: Vec<DatanodeInfo> = s.datanodes.iter().filter(|d| !excluded.contains(&d.id)).cloned().collect();
            let f = s.files.get_mut(&path).ok_or_else(|| not_found(&path))?;
            match (previous, f.blocks.last_mut()) {
                (None, None) => {}
                (Some(p), Some(last)) if p.id == last.0.id && p.gs == last.0.gs => last.0.len = p.len,
                (p, l) => {
                    return Err(RemoteError::new(
                        "java.io.IOException",
                        format!("previous {p:?} is not the last {l:?}"),
                    ))
                }
            }
            let nodes: Vec<DatanodeInfo> = nodes.into_iter().take(f.replication as usize).collect();
            let block = ExtendedBlock { id, gs: id, len: 0 };
            f.blocks.push((block, nodes.clone()));
            let offset = f.blocks.iter().rev().skip(1).map(|b| b.0.len).sum();
            Ok(ClientResponse::Located { block: LocatedBlock { block, offset, locations: nodes, corrupt: false } })
        }
        ClientRequest::AbandonBlock { path, block, .. } => {
            let f = s.files.get_mut(&path).ok_or_else(|| not_found(&path))?;
            if f.blocks.last().is_some_and(|b| b.0.id == block.id) {
                f.blocks.pop();
            }
            Ok(ClientResponse::Done)
        }
        ClientRequest::Complete { path, last, .. } => {
            let f = s.files.get_mut(&path).ok_or_else(|| not_found(&path))?;
            if let (Some(l), Some(b)) = (last, f.blocks.last_mut()) {
                if l.id != b.0.id || l.gs != b.0.gs {
                    return Err(RemoteError::new("java.io.IOException", format!("complete {l:?}, last is {:?}", b.0)));
                }
                b.0.len = l.len;
            }
            f.closed = true;
            Ok(ClientResponse::Bool { value: true })
        }
        ClientRequest::UpdateBlockForPipeline { block, .. } => {
            let gs = s.next_id;
            s.next_id += 1;
            Ok(ClientResponse::Block { block: ExtendedBlock { gs, ..block } })
        }
        ClientRequest::UpdatePipeline { old_block, new_block, new_nodes, .. } => {
            let nodes: Vec<DatanodeInfo> = s.datanodes.iter().filter(|d| new_nodes.contains(&d.id)).cloned().collect();
            for f in s.files.values_mut() {
                if let Some(b) = f.blocks.iter_mut().find(|b| b.0.id == old_block.id) {
                    assert_eq!(b.0.gs, old_block.gs, "the old block's stamp is the known one");
                    b.0 = new_block;
                    b.1 = nodes.clone();
                }
            }
            Ok(ClientResponse::Done)
        }
        ClientRequest::RenewLease { .. } | ClientRequest::ReportBadBlocks { .. } => Ok(ClientResponse::Done),
        ClientRequest::GetFileInfo { path } => {
            Ok(ClientResponse::FileInfo { status: s.files.get(&path).map(|f| status("", f)) })
        }
        ClientRequest::GetBlockLocations { path, .. } => {
            let f = s.files.get(&path).ok_or_else(|| not_found(&path))?;
            let mut offset = 0;
            let mut blocks = Vec::new();
            for (b, nodes) in &f.blocks {
                blocks.push(LocatedBlock { block: *b, offset, locations: nodes.clone(), corrupt: false });
                offset += b.len;
            }
            Ok(ClientResponse::LocatedBlocks {
                blocks: LocatedBlocks {
                    file_length: offset,
                    last_block: blocks.last().cloned(),
                    blocks,
                    under_construction: !f.closed,
                    last_block_complete: f.closed,
                },
            })
        }
        other => Err(RemoteError::new("java.lang.UnsupportedOperationException", format!("{other:?}"))),
    }
}
