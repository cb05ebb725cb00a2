//! Guarantee: a NodeManager registers with the RM as its membership incarnation; it starts a
//! container only with a token that verifies under the RM's secret from the keeper and names
//! this node; a completed container's exit reaches the RM in a heartbeat; and a container the
//! RM's heartbeat answer orders killed is killed.
//!
//! The RM is a minimal one written for the test (a TCP listener speaking ResourceTracker); the
//! keeper is a real one, in process.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compute_proto::am_nm::{ContainerManagementRequest, ContainerManagementResponse};
use compute_proto::nm_rm::{ResourceTrackerRequest, ResourceTrackerResponse};
use compute_proto::records::{ContainerLaunchContext, ContainerState, ContainerStatus, Resource};
use compute_proto::{exit_status, ApplicationAttemptId, ApplicationId, ContainerId, ContainerToken, NodeId};
use member::membership::{HerdOptions, MembershipConfig};
use nodemanager::daemon::{Nodemanager, NodemanagerConfig, SECRET_PATH};
use rpc::frame::{self, MAX_FRAME_LEN};
use rpc::{Caller, Protocol, Request, Response, RetryPolicy, RpcClient};

#[path = "../../member/tests/common/mod.rs"]
mod member_common;
use member_common::TestKeeper;

const PATIENCE: Duration = Duration::from_secs(60);
const SECRET: &[u8] = b"the rm's secret";
const EPOCH: i64 = 7;

#[derive(Default)]
struct RmState {
    requests: Vec<ResourceTrackerRequest>,
    kill: Vec<ContainerId>,
}

/// A fake RM: answers every registration and heartbeat, records them, hands out kills.
fn fake_rm() -> (SocketAddr, Arc<Mutex<RmState>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let state = Arc::new(Mutex::new(RmState::default()));
    let st = state.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(c) = conn else { continue };
            let st = st.clone();
            std::thread::spawn(move || serve_rm(c, st));
        }
    });
    (addr, state)
}

fn serve_rm(mut c: TcpStream, st: Arc<Mutex<RmState>>) {
    let mut pre = [0u8; 6];
    if c.read_exact(&mut pre).is_err() {
        return;
    }
    assert_eq!(Protocol::from_preamble(pre).unwrap(), Protocol::NodeManagerResourceManager);
    while let Ok(req) = frame::read_message::<Request<ResourceTrackerRequest>>(&mut c, MAX_FRAME_LEN) {
        let mut s = st.lock().unwrap();
        let body = match &req.body {
            ResourceTrackerRequest::RegisterNodeManager { .. } => {
                ResourceTrackerResponse::Registered { rm_epoch: EPOCH }
            }
            ResourceTrackerRequest::NodeHeartbeat { .. } => ResourceTrackerResponse::Heartbeat {
                containers_to_kill: std::mem::take(&mut s.kill),
                finished_apps: vec![],
                finished_attempts: vec![],
                resync: false,
                rm_epoch: EPOCH,
            },
        };
        s.requests.push(req.body);
        drop(s);
        let r = Response { call_id: req.header.call_id, result: Ok(body) };
        if frame::write_message(&mut c, &r, MAX_FRAME_LEN).is_err() {
            return;
        }
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(start.elapsed() < PATIENCE, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The completed status of `id` from any heartbeat so far.
fn reported(st: &Mutex<RmState>, id: ContainerId) -> Option<ContainerStatus> {
    st.lock().unwrap().requests.iter().find_map(|r| match r {
        ResourceTrackerRequest::NodeHeartbeat { statuses, .. } => {
            statuses.iter().find(|s| s.container_id == id && s.state == ContainerState::Complete).cloned()
        }
        _ => None,
    })
}

fn token(node: &NodeId, seq: u64) -> ContainerToken {
    let attempt = ApplicationAttemptId { app: ApplicationId { cluster_ts: 1_700_000_000_000, seq: 1 }, attempt: 1 };
    let mut t = ContainerToken {
        container_id: ContainerId::new(attempt, 0, seq).unwrap(),
        node_id: node.clone(),
        resource: Resource { memory_mb: 512, vcores: 1 },
        app_attempt: attempt,
        rm_epoch: EPOCH,
        mac: [0; 32],
    };
    t.sign(SECRET);
    t
}

fn launch(cmd: &str) -> ContainerLaunchContext {
    ContainerLaunchContext { command: vec!["sh".into(), "-c".into(), cmd.into()], env: vec![], files: vec![] }
}

#[test]
fn registers_runs_reports_refuses_and_kills() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let keeper = rt.block_on(TestKeeper::start());
    let client = member::client::ClientConfig {
        hosts: vec![keeper.addr.to_string()],
        session_timeout: Duration::from_secs(4),
        auth: Vec::new(),
        connect_timeout: Duration::from_secs(2),
        ping_interval: Some(Duration::from_millis(100)),
    };
    // The RM makes the secret; here the test does.
    rt.block_on(async {
        let s = member::client::Session::connect(client.clone()).await.unwrap();
        member::view::ensure_path(&s, "/herd/rm").await.unwrap();
        s.create(SECRET_PATH, SECRET, member::client::open_acl(), keeper_proto::CreateMode::Persistent).await.unwrap();
        s.close().await.unwrap();
    });
    let (rm_addr, rm) = fake_rm();
    let dir = tempfile::tempdir().unwrap();
    let membership = MembershipConfig {
        client,
        group: String::new(),
        id: String::new(),
        payload: Vec::new(),
        herd_options: Some(HerdOptions { fast_expiry: Some(Duration::from_secs(1)), declare_heartbeat: true }),
        join_wait_max: Duration::from_secs(30),
    };
    let mut cfg = NodemanagerConfig::new(
        "nm1",
        vec![dir.path().join("local")],
        dir.path().join("logs"),
        &rm_addr.to_string(),
        membership,
    );
    cfg.listen_ctl = "127.0.0.1:0".parse().unwrap();
    cfg.listen_shuffle = "127.0.0.1:0".parse().unwrap();
    cfg.heartbeat_interval = Duration::from_millis(100);
    let nm = rt.block_on(Nodemanager::start(cfg, None)).unwrap();
    let node = nm.node_id();

    // It registers as its incarnation.
    let inc = wait_for("registration", || {
        rm.lock().unwrap().requests.iter().find_map(|r| match r {
            ResourceTrackerRequest::RegisterNodeManager { id, incarnation, ctl_addr, .. } => {
                assert_eq!(id, "nm1");
                assert_eq!(ctl_addr, &node);
                Some(*incarnation)
            }
            _ => None,
        })
    });
    assert!(inc > 0);

    let policy = RetryPolicy { io_timeout: Duration::from_secs(20), ..RetryPolicy::default() };
    let mut am = RpcClient::new(
        nm.ctl_addr().to_string(),
        Protocol::ApplicationMasterNodeManager,
        Caller::new("ann", vec![]),
        policy,
    );
    let start = |am: &mut RpcClient, token: ContainerToken, cmd: &str| {
        am.call::<_, ContainerManagementResponse>(&ContainerManagementRequest::StartContainer {
            token,
            launch: launch(cmd),
        })
    };

    // A valid token runs the command; its exit 0 reaches the RM.
    let t1 = token(&node, 1);
    let got = start(&mut am, t1.clone(), "echo hi").unwrap();
    assert_eq!(got, ContainerManagementResponse::Started { container_id: t1.container_id });
    let done = wait_for("the completion in a heartbeat", || reported(&rm, t1.container_id));
    assert_eq!(done.exit_status, 0, "{}", done.diagnostics);
    let app = t1.container_id.app().to_string();
    let out = dir.path().join("logs").join(&app).join(t1.container_id.to_string()).join("stdout");
    assert_eq!(std::fs::read_to_string(out).unwrap(), "hi\n");
    assert!(dir.path().join("local/usercache/ann/appcache").join(&app).join(t1.container_id.to_string()).is_dir());
    // The same token again is refused.
    let e = start(&mut am, t1, "echo again").unwrap_err();
    assert!(e.to_string().contains("started already"), "{e}");

    // A tampered token, another node's token, and one signed under another secret are refused.
    let mut tampered = token(&node, 2);
    tampered.resource.memory_mb = 1 << 20;
    let e = start(&mut am, tampered, "echo no").unwrap_err();
    assert_eq!(e.remote_class(), Some(compute_proto::errors::INVALID_CONTAINER));
    assert!(e.to_string().contains("does not verify under the RM's secret"), "{e}");
    let other = NodeId { host: "10.9.9.9".into(), port: 8042 };
    let e = start(&mut am, token(&other, 3), "echo no").unwrap_err();
    assert!(e.to_string().contains("is for node 10.9.9.9:8042"), "{e}");
    let mut forged = token(&node, 4);
    forged.sign(b"not the secret");
    let e = start(&mut am, forged, "echo no").unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");

    // A running container the RM orders killed is killed, and reported so.
    let t5 = token(&node, 5);
    start(&mut am, t5.clone(), "sleep 600").unwrap();
    wait_for("the running container in a heartbeat", || {
        rm.lock().unwrap().requests.iter().rev().find_map(|r| match r {
            ResourceTrackerRequest::NodeHeartbeat { statuses, .. } => statuses
                .iter()
                .any(|s| s.container_id == t5.container_id && s.state == ContainerState::Running)
                .then_some(()),
            _ => None,
        })
    });
    rm.lock().unwrap().kill.push(t5.container_id);
    let killed = wait_for("the killed container's completion", || reported(&rm, t5.container_id));
    assert_eq!(killed.exit_status, exit_status::KILLED_BY_RESOURCEMANAGER, "{}", killed.diagnostics);

    rt.block_on(nm.shutdown());
}
