//! Guarantee: a DataNode daemon registers as its membership incarnation and reports every
//! replica it holds (a full report after each registration, an incremental one as soon as a
//! replica starts being written, is finalized or is deleted, without waiting for a
//! heartbeat); it executes the NameNode's commands (invalidate only what is not newer,
//! replicate through a pipeline of targets, register again) unless they come from an epoch
//! older than the newest it has seen; its scanner reports a replica rotting on disk without
//! anyone reading it; and an expelled DataNode registers again as its new incarnation.
//!
//! The NameNode here is a minimal one written for the test: a TCP listener speaking the
//! DataNode protocol (dfs_proto rpc framing) that records every request and hands out the
//! commands the test queues. The keeper is a real one, in process.

mod common;

use std::io::Read as _;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use datanode::daemon::{Datanode, DatanodeConfig};
use datanode::transfer::client::{create_op, read_block, send_all, write_block, WriteStream};
use datanode::{ReplicaState, Store};
use dfs_proto::dn_nn::{DatanodeCommand, HeartbeatResponse, ReplicaState as WireState, ReportedReplica};
use dfs_proto::rpc::{self, Protocol, MAX_FRAME_LEN};
use dfs_proto::{DatanodeInfo, DatanodeRequest, DatanodeResponse, ExtendedBlock, RemoteError, Request, Response};
use member::client::{ClientConfig, Session};
use member::membership::{HerdOptions, MembershipConfig};

use common::{bytes, TIMEOUT};

/// Bound for anything a test waits for: reaching it means the behaviour is missing, not that
/// the machine is slow.
const PATIENCE: Duration = Duration::from_secs(60);
/// The test NameNode's epoch.
const EPOCH: i64 = 5;
const UNREGISTERED: &str = "org.apache.hadoop.hdfs.server.protocol.UnregisteredNodeException";

// ---------------------------------------------------------------------------------------------
// A minimal NameNode.

#[derive(Default)]
struct NnState {
    /// Every request received, in order.
    log: Vec<DatanodeRequest>,
    /// Handed out with the next response that carries commands.
    commands: Vec<DatanodeCommand>,
    /// Answer the next request after a registration with UnregisteredNodeException.
    unregister_next: bool,
}

struct TestNamenode {
    addr: SocketAddr,
    state: Arc<(Mutex<NnState>, Condvar)>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl TestNamenode {
    fn start() -> TestNamenode {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test namenode");
        let addr = listener.local_addr().expect("its address");
        let state = Arc::new((Mutex::new(NnState::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (st, sp, cs) = (state.clone(), stop.clone(), conns.clone());
        let accept = std::thread::spawn(move || {
            for s in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = s else { continue };
                cs.lock().unwrap().push(s.try_clone().expect("clone a socket"));
                let st = st.clone();
                std::thread::spawn(move || serve(s, st));
            }
        });
        TestNamenode { addr, state, stop, conns, accept: Some(accept) }
    }

    fn queue(&self, commands: Vec<DatanodeCommand>) {
        self.state.0.lock().unwrap().commands.extend(commands);
    }

    fn unregister_next(&self) {
        self.state.0.lock().unwrap().unregister_next = true;
    }

    fn log_len(&self) -> usize {
        self.state.0.lock().unwrap().log.len()
    }

    /// Waits until `f` finds something in the requests received from index `from` on.
    fn wait_for<T>(&self, what: &str, from: usize, f: impl Fn(&DatanodeRequest) -> Option<T>) -> (usize, T) {
        let deadline = Instant::now() + PATIENCE;
        let (lock, cond) = &*self.state;
        let mut s = lock.lock().unwrap();
        loop {
            if let Some((i, t)) = s.log.iter().enumerate().skip(from).find_map(|(i, r)| f(r).map(|t| (i, t))) {
                return (i, t);
            }
            let now = Instant::now();
            if now >= deadline {
                let tail: Vec<String> = s.log.iter().rev().take(10).map(|r| format!("{r:?}")).collect();
                panic!("the namenode never received {what} (last requests, newest first: {tail:#?})");
            }
            s = cond.wait_timeout(s, deadline - now).unwrap().0;
        }
    }
}

impl Drop for TestNamenode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().iter() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn serve(mut s: TcpStream, state: Arc<(Mutex<NnState>, Condvar)>) {
    let mut preamble = [0u8; 6];
    if s.read_exact(&mut preamble).is_err() {
        return;
    }
    assert_eq!(Protocol::from_preamble(preamble).expect("a herd preamble"), Protocol::DatanodeNamenode);
    loop {
        let Ok(req) = rpc::read_message::<Request<DatanodeRequest>>(&mut s, MAX_FRAME_LEN) else { return };
        let result = {
            let (lock, cond) = &*state;
            let mut st = lock.lock().unwrap();
            let commands = |st: &mut NnState| {
                let commands = std::mem::take(&mut st.commands);
                Ok(DatanodeResponse::Commands { response: HeartbeatResponse { namenode_epoch: EPOCH, commands } })
            };
            let result = match &req.body {
                DatanodeRequest::Register { .. } => Ok(DatanodeResponse::Registered { namenode_epoch: EPOCH }),
                _ if std::mem::take(&mut st.unregister_next) => {
                    Err(RemoteError::new(UNREGISTERED, "this incarnation is not in the view"))
                }
                DatanodeRequest::ReportBadBlocks { .. } => Ok(DatanodeResponse::Done),
                _ => commands(&mut st),
            };
            st.log.push(req.body.clone());
            cond.notify_all();
            result
        };
        let resp = Response { call_id: req.header.call_id, result };
        if rpc::write_message(&mut s, &resp, MAX_FRAME_LEN).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A keeper, and DataNodes.

/// The member tests' in-process keeper (one copy of it, shared).
#[path = "../../member/tests/common/mod.rs"]
mod member_common;
use member_common::TestKeeper;

/// A session config for the keeper as a member daemon has it.
fn keeper_client(k: &TestKeeper) -> ClientConfig {
    ClientConfig {
        hosts: vec![k.addr.to_string()],
        session_timeout: Duration::from_secs(4),
        auth: Vec::new(),
        connect_timeout: Duration::from_secs(2),
        ping_interval: Some(Duration::from_millis(100)),
    }
}

fn config(k: &TestKeeper, nn: &TestNamenode, id: &str, dir: &Path, heartbeat: Duration) -> DatanodeConfig {
    let membership = MembershipConfig {
        client: keeper_client(k),
        group: String::new(),
        id: String::new(),
        payload: Vec::new(),
        herd_options: Some(HerdOptions { fast_expiry: Some(Duration::from_secs(1)), declare_heartbeat: true }),
        join_wait_max: Duration::from_secs(30),
    };
    let mut cfg = DatanodeConfig::new(id, vec![dir.to_path_buf()], &nn.addr.to_string(), membership);
    cfg.listen_data = "127.0.0.1:0".parse().expect("literal address");
    cfg.heartbeat_interval = heartbeat;
    cfg.scan_period = Duration::from_millis(200);
    cfg.io_timeout = TIMEOUT;
    cfg
}

fn info(id: &str, addr: SocketAddr) -> DatanodeInfo {
    DatanodeInfo { id: id.into(), data_addr: addr.to_string(), http_addr: String::new(), rack: "/default-rack".into() }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime")
}

fn finalized(id: u64, gs: u64, len: u64) -> ReportedReplica {
    ReportedReplica { id, gs, len, state: WireState::Finalized }
}

fn incremental(r: &DatanodeRequest) -> Option<(&[ReportedReplica], &[ExtendedBlock], &[ReportedReplica])> {
    match r {
        DatanodeRequest::IncrementalBlockReport { received, deleted, receiving, .. } => {
            Some((received, deleted, receiving))
        }
        _ => None,
    }
}

/// Polls `f` (state outside the test NameNode: another DataNode's store) until it holds;
/// `detail` says what else the failure message should show.
fn eventually(what: &str, f: impl Fn() -> bool, detail: impl Fn() -> String) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "{what} never happened ({})", detail());
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn reports_promptly_obeys_fenced_commands_and_scans() {
    let rt = runtime();
    let keeper = rt.block_on(TestKeeper::start());
    let nn = TestNamenode::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let old = bytes(3000, 1);
    {
        // A replica from before the daemon started: the first full report must list it.
        let store = Store::open(&[dir.path().to_path_buf()]).expect("open");
        let mut w = store.create_rbw(1, 10).expect("create");
        w.write_packet(0, &old).expect("write");
        w.finalize().expect("finalize");
    }
    // Heartbeats an hour apart: every report below that arrives did not wait for one.
    let cfg = config(&keeper, &nn, "dn1", dir.path(), Duration::from_secs(3600));
    let dn = rt.block_on(Datanode::start(cfg, None)).expect("datanode starts");
    let me = info("dn1", dn.data_addr());

    // Registration as the membership incarnation, then the full report.
    let (at, (inc, data_addr)) = nn.wait_for("a Register", 0, |r| match r {
        DatanodeRequest::Register { id, incarnation, data_addr, .. } if id == "dn1" => {
            Some((*incarnation, data_addr.clone()))
        }
        _ => None,
    });
    assert!(inc > 0);
    assert_eq!(data_addr, dn.data_addr().to_string());
    let (_, replicas) = nn.wait_for("a full block report", at, |r| match r {
        DatanodeRequest::BlockReport { incarnation, replicas, .. } if *incarnation == inc => Some(replicas.clone()),
        _ => None,
    });
    assert_eq!(replicas, vec![finalized(1, 10, 3000)]);
    assert_eq!(dn.namenode_epoch(), EPOCH, "the registration's epoch is the fence");

    // A client write: receiving as soon as the pipeline is set up, received once finalized.
    let data = bytes(100_000, 2);
    let b2 = ExtendedBlock { id: 2, gs: 11, len: 0 };
    let mut w = WriteStream::open(dn.data_addr(), &create_op(b2, std::slice::from_ref(&me), "test"), TIMEOUT)
        .expect("pipeline set up");
    let (at, _) = nn.wait_for("block 2 as receiving", 0, |r| {
        incremental(r)
            .filter(|(_, _, receiving)| receiving.iter().any(|x| x.id == 2 && x.state == WireState::Rbw))
            .map(|_| ())
    });
    assert_eq!(send_all(&mut w, 0, &data, 64 << 10).expect("write"), data.len() as u64);
    nn.wait_for("block 2 as received", at, |r| {
        incremental(r).filter(|(received, _, _)| received.contains(&finalized(2, 11, data.len() as u64))).map(|_| ())
    });
    let heartbeats =
        nn.state.0.lock().unwrap().log.iter().filter(|r| matches!(r, DatanodeRequest::Heartbeat { .. })).count();
    assert_eq!(heartbeats, 0, "the incremental reports went out without waiting for a heartbeat");

    // Commands, handed out with the next report: invalidate block 1 at an older stamp (the
    // replica is newer and stays) and block 2; invalidate block 1 from a deposed namenode
    // (refused); replicate block 1 through two other DataNodes.
    let (t1, t2) = (common::start("t1"), common::start("t2"));
    nn.queue(vec![
        DatanodeCommand::Invalidate {
            namenode_epoch: EPOCH,
            blocks: vec![ExtendedBlock { id: 1, gs: 9, len: 3000 }, ExtendedBlock { id: 2, gs: 11, len: 0 }],
        },
        DatanodeCommand::Invalidate {
            namenode_epoch: EPOCH - 1,
            blocks: vec![ExtendedBlock { id: 1, gs: 10, len: 0 }],
        },
        DatanodeCommand::Transfer {
            namenode_epoch: EPOCH,
            block: ExtendedBlock { id: 1, gs: 10, len: 3000 },
            targets: vec![t1.info.clone(), t2.info.clone()],
        },
    ]);
    let from = nn.log_len();
    write_block(std::slice::from_ref(&me), ExtendedBlock { id: 3, gs: 12, len: 0 }, &bytes(700, 3), 64 << 10, TIMEOUT)
        .expect("write block 3");
    nn.wait_for("block 2 as deleted", from, |r| {
        incremental(r).filter(|(_, deleted, _)| deleted.iter().any(|b| b.id == 2 && b.gs == 11)).map(|_| ())
    });
    assert_eq!(dn.store().get(2), None);
    for t in [&t1, &t2] {
        eventually(
            &format!("block 1 finalized on {}", t.info.id),
            || t.store.get(1).is_some_and(|r| r.state == ReplicaState::Finalized),
            || format!("the source holds {:?}; None = a stale or wrong invalidation deleted it", dn.store().get(1)),
        );
    }
    assert!(read_block(t2.addr(), ExtendedBlock { id: 1, gs: 10, len: 3000 }, 0, 3000, TIMEOUT).expect("read") == old);
    let kept = dn.store().get(1).expect("block 1 survives the older-stamp and the stale-epoch invalidations");
    assert_eq!((kept.gs, kept.state), (10, ReplicaState::Finalized));

    // A byte flipped on disk: the scanner finds it, nobody reads it, it is not deleted.
    let path = dir.path().join("current/finalized/blk_1");
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("blk_1");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 1000).expect("read a byte");
    f.write_all_at(&[b[0] ^ 0x01], 1000).expect("flip it");
    drop(f);
    nn.wait_for("block 1 reported bad", 0, |r| match r {
        DatanodeRequest::ReportBadBlocks { incarnation, blocks, .. } if *incarnation == inc => {
            blocks.iter().any(|b| b.id == 1 && b.gs == 10).then_some(())
        }
        _ => None,
    });
    assert!(dn.store().get(1).is_some(), "a corrupt replica waits for the namenode to delete it");

    // The namenode forgot this incarnation: the DataNode registers again, then a full report.
    let from = nn.log_len();
    nn.unregister_next();
    write_block(std::slice::from_ref(&me), ExtendedBlock { id: 4, gs: 13, len: 0 }, &bytes(10, 4), 64 << 10, TIMEOUT)
        .expect("write block 4");
    let (at, _) = nn.wait_for("a second Register", from, |r| {
        matches!(r, DatanodeRequest::Register { incarnation, .. } if *incarnation == inc).then_some(())
    });
    let (_, replicas) = nn.wait_for("a second full report", at, |r| match r {
        DatanodeRequest::BlockReport { replicas, .. } => Some(replicas.clone()),
        _ => None,
    });
    let ids: Vec<u64> = replicas.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![1, 3, 4]);

    rt.block_on(dn.shutdown());
}

#[test]
fn heartbeats_carry_space_and_an_expelled_datanode_registers_anew() {
    let rt = runtime();
    let keeper = rt.block_on(TestKeeper::start());
    let nn = TestNamenode::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&keeper, &nn, "dn2", dir.path(), Duration::from_millis(100));
    let dn = rt.block_on(Datanode::start(cfg, None)).expect("datanode starts");

    let (at, inc) = nn.wait_for("a Register", 0, |r| match r {
        DatanodeRequest::Register { incarnation, capacity, .. } => {
            assert!(*capacity > 0, "{r:?}");
            Some(*incarnation)
        }
        _ => None,
    });
    nn.wait_for("a heartbeat with space", at, |r| match r {
        DatanodeRequest::Heartbeat { incarnation, capacity, free, failed_volumes, .. } if *incarnation == inc => {
            assert!(*capacity >= *free && *free > 0 && *failed_volumes == 0, "{r:?}");
            Some(())
        }
        _ => None,
    });

    // Reregister: the same incarnation registers again and sends a full report.
    nn.queue(vec![DatanodeCommand::Reregister { namenode_epoch: EPOCH }]);
    let from = nn.log_len();
    let (at, _) = nn.wait_for("a Register after Reregister", from, |r| {
        matches!(r, DatanodeRequest::Register { incarnation, .. } if *incarnation == inc).then_some(())
    });
    nn.wait_for("a full report after Reregister", at, |r| {
        matches!(r, DatanodeRequest::BlockReport { .. }).then_some(())
    });

    // Expelled (its member znode deleted): it rejoins as a new incarnation and registers that.
    let from = nn.log_len();
    rt.block_on(async {
        let s = Session::connect(keeper_client(&keeper)).await.expect("a keeper session");
        s.delete("/herd/members/datanode/dn2", -1).await.expect("delete the member znode");
        let _ = s.close().await;
    });
    let (at, inc2) = nn.wait_for("a Register of a new incarnation", from, |r| match r {
        DatanodeRequest::Register { incarnation, .. } if *incarnation != inc => Some(*incarnation),
        _ => None,
    });
    assert!(inc2 > inc, "a new incarnation is newer: 0x{inc2:x} after 0x{inc:x}");
    nn.wait_for("a full report of the new incarnation", at, |r| {
        matches!(r, DatanodeRequest::BlockReport { incarnation, .. } if *incarnation == inc2).then_some(())
    });
    let (stale_after, _) = nn.wait_for("a heartbeat of the new incarnation", at, |r| {
        matches!(r, DatanodeRequest::Heartbeat { incarnation, .. } if *incarnation == inc2).then_some(())
    });
    let log = nn.state.0.lock().unwrap().log.clone();
    let stale = log[stale_after..].iter().any(|r| match r {
        DatanodeRequest::Heartbeat { incarnation, .. } => *incarnation == inc,
        _ => false,
    });
    assert!(!stale, "no heartbeat of the old incarnation after the new one's");

    rt.block_on(dn.shutdown());
}
