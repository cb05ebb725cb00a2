//! The ResourceManager as a process against a real keeper, with a fake NodeManager on the
//! test side: an app's AM container goes to the NodeManager with a token that verifies under
//! the secret in the keeper; the AM registers, allocates and finishes (FINISHED/SUCCEEDED); a
//! silent AM expires and its app FAILS after its budget; a kill -9 of the RM loses no
//! submitted app and reuses no app number.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{herd_bin, KeeperProc};
use compute_proto::records::{
    ApplicationState, ApplicationSubmission, ContainerLaunchContext, FinalApplicationStatus, NodeHealth, Progress,
    Resource,
};
use compute_proto::{
    ApplicationClientRequest as CQ, ApplicationClientResponse as CA, ApplicationMasterRequest as MQ,
    ApplicationMasterResponse as MA, ContainerManagementRequest, ContainerManagementResponse, ContainerToken, NodeId,
    ResourceTrackerRequest as NQ, ResourceTrackerResponse as NA,
};
use rpc::codec::Message;
use rpc::frame::{self, Protocol, Request, Response, MAX_FRAME_LEN};
use rpc::{Caller, RetryPolicy, RpcClient};

struct RmProc {
    child: Child,
    addr: String,
}

impl RmProc {
    fn start(keepers: &str, extra: &[&str]) -> RmProc {
        let mut child = Command::new(herd_bin())
            .args(["resourcemanager", "--listen", "127.0.0.1:0", "--keepers", keepers])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn herd resourcemanager");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("ready line");
        let addr = line.trim().strip_prefix("herd resourcemanager ready rpc=").expect("ready line").to_string();
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        RmProc { child, addr }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RmProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn client(addr: &str, p: Protocol) -> RpcClient {
    let policy = RetryPolicy {
        io_timeout: Duration::from_secs(10),
        retry_for: Duration::from_secs(10),
        first_pause: Duration::from_millis(50),
    };
    RpcClient::new(addr, p, Caller::new("alice", Vec::new()), policy)
}

/// A fake NodeManager control port: answers StartContainer and hands each token to the test.
fn fake_ctl() -> (String, mpsc::Receiver<ContainerToken>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut pre = [0u8; 6];
                if s.read_exact(&mut pre).is_err() {
                    return;
                }
                assert_eq!(Protocol::from_preamble(pre).unwrap(), Protocol::ApplicationMasterNodeManager);
                while let Ok(body) = frame::read_frame(&mut s, MAX_FRAME_LEN) {
                    let req = Request::<ContainerManagementRequest>::from_bytes(&body).expect("decodes");
                    let ContainerManagementRequest::StartContainer { token, .. } = req.body else {
                        panic!("not a start")
                    };
                    let container_id = token.container_id;
                    let _ = tx.send(token);
                    let r = Response {
                        call_id: req.header.call_id,
                        result: Ok(ContainerManagementResponse::Started { container_id }),
                    };
                    if s.write_all(&frame::encode_frame(&r, MAX_FRAME_LEN).unwrap()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn submission(name: &str, max_attempts: u32) -> ApplicationSubmission {
    ApplicationSubmission {
        name: name.into(),
        queue: "default".into(),
        am_launch: ContainerLaunchContext { command: vec!["true".into()], env: Vec::new(), files: Vec::new() },
        am_resource: Resource { memory_mb: 512, vcores: 1 },
        max_attempts,
    }
}

fn report(c: &mut RpcClient, app_id: compute_proto::ApplicationId) -> compute_proto::records::ApplicationReport {
    match c.call::<_, CA>(&CQ::GetApplicationReport { app_id }).expect("report") {
        CA::Report { report } => report,
        other => panic!("{other:?}"),
    }
}

/// Heartbeats as NodeManager `id` until a token arrives at its control port.
fn heartbeat_until_start(
    nm: &mut RpcClient,
    id: &str,
    incarnation: i64,
    starts: &mpsc::Receiver<ContainerToken>,
) -> ContainerToken {
    let t0 = Instant::now();
    loop {
        let r: NA = nm
            .call(&NQ::NodeHeartbeat {
                id: id.into(),
                incarnation,
                statuses: Vec::new(),
                health: NodeHealth { healthy: true, report: String::new() },
                last_rm_epoch: 0,
            })
            .expect("heartbeat");
        assert!(matches!(r, NA::Heartbeat { resync: false, .. }), "{r:?}");
        if let Ok(t) = starts.recv_timeout(Duration::from_millis(100)) {
            return t;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no AM container started");
    }
}

#[test]
fn rm_runs_an_app_and_recovers_it() {
    let dir = tempfile::tempdir().unwrap();
    let keeper = KeeperProc::start(dir.path(), &[]);
    let keepers = keeper.addr.to_string();
    let mut rm = RmProc::start(&keepers, &["--am-expiry-ms", "1500"]);
    let rt = tokio::runtime::Runtime::new().unwrap();

    // The fake NodeManager joins the view, then registers.
    let session =
        rt.block_on(member::client::Session::connect(member::client::ClientConfig::parse(&keepers).unwrap())).unwrap();
    let joined =
        rt.block_on(member::view::join(&session, "nodemanager", "nm1", b"", Duration::from_secs(5))).expect("join");
    let secret = rt.block_on(session.get_data("/herd/rm/secret", false)).expect("secret").0;
    assert_eq!(secret.len(), 32);
    let (ctl, starts) = fake_ctl();
    let (host, port) = ctl.rsplit_once(':').unwrap();
    let ctl_addr = NodeId { host: host.into(), port: port.parse().unwrap() };
    let mut nm = client(&rm.addr, Protocol::NodeManagerResourceManager);
    let register = NQ::RegisterNodeManager {
        id: "nm1".into(),
        incarnation: joined.incarnation,
        resource: Resource { memory_mb: 4096, vcores: 4 },
        ctl_addr: ctl_addr.clone(),
        http_addr: String::new(),
        shuffle_addr: String::new(),
        rack: String::new(),
        running: Vec::new(),
    };
    let t0 = Instant::now();
    loop {
        match nm.call::<_, NA>(&register) {
            Ok(NA::Registered { rm_epoch }) => {
                assert!(rm_epoch > 0);
                break;
            }
            r => assert!(t0.elapsed() < Duration::from_secs(20), "register: {r:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // 1. Submit; the AM container starts on nm1 with a token that verifies.
    let mut c = client(&rm.addr, Protocol::ClientResourceManager);
    let CA::Submitted { app_id } = c.call(&CQ::SubmitApplication { submission: submission("ok", 2) }).unwrap() else {
        panic!()
    };
    let token = heartbeat_until_start(&mut nm, "nm1", joined.incarnation, &starts);
    assert!(token.verify(&secret), "the token verifies under the keeper's secret");
    assert_eq!(token.node_id, ctl_addr);
    assert_eq!(token.app_attempt.app, app_id);
    let attempt = token.app_attempt;

    // 2. The AM registers, allocates and finishes.
    let mut am = client(&rm.addr, Protocol::ApplicationMasterResourceManager);
    let early = am.call::<_, MA>(&MQ::Allocate {
        attempt,
        last_response_id: 0,
        asks: Vec::new(),
        releases: Vec::new(),
        blacklist_additions: Vec::new(),
        blacklist_removals: Vec::new(),
        progress: Progress::from_ppm(0),
    });
    assert_eq!(early.unwrap_err().remote_class(), Some(compute_proto::errors::APPLICATION_MASTER_NOT_REGISTERED));
    let r: MA = am
        .call(&MQ::RegisterApplicationMaster {
            attempt,
            host: "127.0.0.1".into(),
            rpc_port: 1,
            tracking_url: String::new(),
        })
        .unwrap();
    assert!(matches!(r, MA::Registered { .. }));
    assert_eq!(report(&mut c, app_id).state, ApplicationState::Running);
    let r: MA = am
        .call(&MQ::Allocate {
            attempt,
            last_response_id: 0,
            asks: Vec::new(),
            releases: Vec::new(),
            blacklist_additions: Vec::new(),
            blacklist_removals: Vec::new(),
            progress: Progress::from_ppm(500_000),
        })
        .unwrap();
    assert!(matches!(r, MA::Allocated { .. }));
    let r: MA = am
        .call(&MQ::FinishApplicationMaster {
            attempt,
            final_status: FinalApplicationStatus::Succeeded,
            diagnostics: String::new(),
            tracking_url: String::new(),
        })
        .unwrap();
    assert!(matches!(r, MA::Finished { unregistered: true }));
    let rep = report(&mut c, app_id);
    assert_eq!((rep.state, rep.final_status), (ApplicationState::Finished, FinalApplicationStatus::Succeeded));

    // 3. An AM that never registers expires; a second attempt starts; then the app fails.
    let CA::Submitted { app_id: silent } =
        c.call(&CQ::SubmitApplication { submission: submission("silent", 2) }).unwrap()
    else {
        panic!()
    };
    let first = heartbeat_until_start(&mut nm, "nm1", joined.incarnation, &starts);
    assert_eq!((first.app_attempt.app, first.app_attempt.attempt), (silent, 1));
    let second = heartbeat_until_start(&mut nm, "nm1", joined.incarnation, &starts);
    assert_eq!((second.app_attempt.app, second.app_attempt.attempt), (silent, 2));
    // The first attempt is fenced.
    let old = am.call::<_, MA>(&MQ::RegisterApplicationMaster {
        attempt: first.app_attempt,
        host: String::new(),
        rpc_port: 0,
        tracking_url: String::new(),
    });
    assert_eq!(old.unwrap_err().remote_class(), Some(compute_proto::errors::APPLICATION_ATTEMPT_NOT_FOUND));
    let t0 = Instant::now();
    let rep = loop {
        let rep = report(&mut c, silent);
        if rep.state.is_final() {
            break rep;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never failed: {rep:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(rep.state, ApplicationState::Failed);
    assert!(rep.diagnostics.contains("timed out"), "diagnostics: {}", rep.diagnostics);

    // 4. kill -9 and restart: the apps are still there, and numbers are not reused.
    let CA::Submitted { app_id: pending } =
        c.call(&CQ::SubmitApplication { submission: submission("pending", 2) }).unwrap()
    else {
        panic!()
    };
    rm.kill9();
    let rm2 = RmProc::start(&keepers, &["--am-expiry-ms", "1500"]);
    let mut c = client(&rm2.addr, Protocol::ClientResourceManager);
    let CA::Applications { reports } = c.call(&CQ::ListApplications { states: Vec::new() }).unwrap() else { panic!() };
    let ids: Vec<_> = reports.iter().map(|r| r.app_id).collect();
    for a in [app_id, silent, pending] {
        assert!(ids.contains(&a), "{a} reloaded: {ids:?}");
    }
    assert_eq!(report(&mut c, app_id).state, ApplicationState::Finished);
    assert!(!report(&mut c, pending).state.is_final());
    let CA::Submitted { app_id: fresh } =
        c.call(&CQ::SubmitApplication { submission: submission("fresh", 2) }).unwrap()
    else {
        panic!()
    };
    assert!(fresh.seq > pending.seq, "{fresh} after {pending}");
    drop(rm2);
    drop(keeper);
}
