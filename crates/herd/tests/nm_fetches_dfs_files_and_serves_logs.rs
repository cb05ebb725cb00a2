//! Guarantee: a NodeManager starts a container whose launch context names DFS files only once
//! every file is in its working directory (fetched as the caller's user, executable if the DFS
//! file is), refuses one whose file is missing, unreadable to that user or given a bad local
//! name (saying why, launching nothing, leaving no working dir), and serves containers' logs
//! over HTTP: listed per app, read whole or from `start`, with bad requests answered 400 and
//! unknown containers 404.
//!
//! Real processes: a keeper, a NameNode and a DataNode (`DfsCluster`) and `herd nodemanager`;
//! the RM is a fake one on the test side that answers registrations and heartbeats.

mod common;

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::dfs::{Daemon, DfsCluster};
use compute_proto::records::{ContainerLaunchContext, ContainerState, ContainerStatus, LocalResource, Resource};
use compute_proto::{
    ApplicationAttemptId, ApplicationId, ContainerId, ContainerManagementRequest as CQ,
    ContainerManagementResponse as CA, ContainerToken, NodeId, ResourceTrackerRequest, ResourceTrackerResponse,
};
use nodemanager::logs::{self, LogsError};
use rpc::frame::{self, Protocol, Request, Response, MAX_FRAME_LEN};
use rpc::{CallError, Caller, RetryPolicy, RpcClient};

const PATIENCE: Duration = Duration::from_secs(60);
const SECRET: &[u8] = b"the rm's secret for this test";
const EPOCH: i64 = 3;
const APP: ApplicationId = ApplicationId { cluster_ts: 1_700_000_000_000, seq: 1 };

/// A fake RM: answers every registration and heartbeat; keeps the registrations' HTTP addresses.
fn fake_rm() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let http = Arc::new(Mutex::new(Vec::new()));
    let h = http.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let h = h.clone();
            std::thread::spawn(move || serve_rm(c, h));
        }
    });
    (addr, http)
}

fn serve_rm(mut c: TcpStream, http: Arc<Mutex<Vec<String>>>) {
    let mut pre = [0u8; 6];
    if c.read_exact(&mut pre).is_err() {
        return;
    }
    while let Ok(req) = frame::read_message::<Request<ResourceTrackerRequest>>(&mut c, MAX_FRAME_LEN) {
        let body = match req.body {
            ResourceTrackerRequest::RegisterNodeManager { http_addr, .. } => {
                http.lock().unwrap().push(http_addr);
                ResourceTrackerResponse::Registered { rm_epoch: EPOCH }
            }
            ResourceTrackerRequest::NodeHeartbeat { .. } => ResourceTrackerResponse::Heartbeat {
                containers_to_kill: vec![],
                finished_apps: vec![],
                finished_attempts: vec![],
                resync: false,
                rm_epoch: EPOCH,
            },
        };
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

struct Nm {
    daemon: Daemon,
    am: RpcClient,
    node: NodeId,
    http: String,
    dir: PathBuf,
}

impl Nm {
    fn token(&self, seq: u64) -> ContainerToken {
        let attempt = ApplicationAttemptId { app: APP, attempt: 1 };
        let mut t = ContainerToken {
            container_id: ContainerId::new(attempt, 0, seq).unwrap(),
            node_id: self.node.clone(),
            resource: Resource { memory_mb: 256, vcores: 1 },
            app_attempt: attempt,
            rm_epoch: EPOCH,
            mac: [0; 32],
        };
        t.sign(SECRET);
        t
    }

    /// StartContainer of container `seq` running `command` with `files`.
    fn start(&mut self, seq: u64, command: &[&str], files: &[(&str, &str)]) -> Result<ContainerId, CallError> {
        let token = self.token(seq);
        let launch = ContainerLaunchContext {
            command: command.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            files: files
                .iter()
                .map(|(p, n)| LocalResource { path: p.to_string(), local_name: n.to_string() })
                .collect(),
        };
        match self.am.call::<_, CA>(&CQ::StartContainer { token, launch })? {
            CA::Started { container_id } => Ok(container_id),
            other => panic!("start answered {other:?}"),
        }
    }

    fn status(&mut self, id: ContainerId) -> Result<ContainerStatus, CallError> {
        match self.am.call::<_, CA>(&CQ::GetContainerStatus { container_id: id })? {
            CA::Status { status } => Ok(status),
            other => panic!("status answered {other:?}"),
        }
    }

    fn wait_done(&mut self, id: ContainerId) -> ContainerStatus {
        let s = wait_for("the container's end", || {
            Some(self.status(id).unwrap()).filter(|s| s.state == ContainerState::Complete)
        });
        assert_eq!(s.exit_status, 0, "{id}: {}\nnodemanager log:\n{}", s.diagnostics, self.daemon.log());
        s
    }

    fn work_dir(&self, id: ContainerId) -> PathBuf {
        self.dir.join("local/usercache/alice/appcache").join(APP.to_string()).join(id.to_string())
    }

    fn log(&self, id: ContainerId, file: &str) -> PathBuf {
        self.dir.join("logs").join(APP.to_string()).join(id.to_string()).join(file)
    }

    /// A refused start: the answer names `words`, and nothing of the container is left.
    fn refused(&mut self, seq: u64, files: &[(&str, &str)], words: &[&str]) {
        let e = self.start(seq, &["sh", "-c", "echo ran"], files).unwrap_err();
        assert_eq!(e.remote_class(), Some(compute_proto::errors::INVALID_CONTAINER), "{e}");
        for w in words {
            assert!(e.to_string().contains(w), "{files:?}: {e} does not say {w:?}");
        }
        let id = self.token(seq).container_id;
        assert!(!self.work_dir(id).exists(), "{files:?}: a working dir is left");
        let app_dir = self.work_dir(id).parent().unwrap().to_path_buf();
        let left: Vec<_> = std::fs::read_dir(&app_dir)
            .map(|d| {
                d.flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().contains(&id.to_string())).collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{files:?}: left {left:?}");
        assert!(!self.log(id, "stdout").exists(), "{files:?}: it was launched");
        let e = self.status(id).unwrap_err();
        assert!(e.to_string().contains("is not known"), "{e}");
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn http_status(r: Result<Vec<u8>, LogsError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(LogsError::Status { status, .. }) => status,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn nm_fetches_dfs_files_and_serves_logs() {
    let c = DfsCluster::start(1, &["--replication", "1"], &[]);
    // The files, as the superuser: one to read, one to run, one only its owner may read.
    let local = c.path().join("upload");
    std::fs::create_dir_all(&local).unwrap();
    let data = "line one\nline two\n";
    std::fs::write(local.join("data.txt"), data).unwrap();
    std::fs::write(local.join("run.sh"), "#!/bin/sh\necho \"ran $1 in $(basename \"$PWD\")\"\n").unwrap();
    std::fs::write(local.join("secret.txt"), "not for alice\n").unwrap();
    c.fs_ok(&["mkdir", "-p", "/apps"]);
    for f in ["data.txt", "run.sh", "secret.txt"] {
        c.fs_ok(&["put", local.join(f).to_str().unwrap(), "/apps"]);
    }
    c.fs_ok(&["chmod", "755", "/apps/run.sh"]);
    c.fs_ok(&["chmod", "600", "/apps/secret.txt"]);

    // The RM's secret, as the RM would write it.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let s =
            member::client::Session::connect(member::client::ClientConfig::parse(&c.keepers()).unwrap()).await.unwrap();
        member::view::ensure_path(&s, "/herd/rm").await.unwrap();
        let acl = member::client::open_acl();
        s.create(nodemanager::daemon::SECRET_PATH, SECRET, acl, keeper_proto::CreateMode::Persistent).await.unwrap();
        s.close().await.unwrap();
    });
    let (rm, registered_http) = fake_rm();

    let mut nm = start_nm(&c, rm, "nm1", Some(&c.namenode_addr));
    let told = wait_for("the registration", || registered_http.lock().unwrap().first().cloned());
    assert_eq!(told, nm.http);
    assert!(nm.http.parse::<SocketAddr>().is_ok_and(|a| a.port() != 0), "http={}", nm.http);

    // (a) A DFS file is in the working dir before the process starts, mode 0644.
    let c1 = nm.start(1, &["cat", "data.txt"], &[("/apps/data.txt", "data.txt")]).unwrap();
    nm.wait_done(c1);
    assert_eq!(std::fs::read_to_string(nm.log(c1, "stdout")).unwrap(), data);
    assert_eq!(mode(&nm.work_dir(c1).join("data.txt")), 0o644);
    // An executable DFS file runs directly, mode 0755; two files at once.
    let c2 = nm.start(2, &["./job", "with-arg"], &[("/apps/run.sh", "job"), ("/apps/data.txt", "input")]).unwrap();
    nm.wait_done(c2);
    assert_eq!(std::fs::read_to_string(nm.log(c2, "stdout")).unwrap(), format!("ran with-arg in {c2}\n"));
    assert_eq!(mode(&nm.work_dir(c2).join("job")), 0o755);
    assert_eq!(std::fs::read_to_string(nm.work_dir(c2).join("input")).unwrap(), data);

    // (b) Refusals, with the reason, and nothing launched or left behind.
    nm.refused(3, &[("/apps/nope.txt", "nope")], &["/apps/nope.txt", "FileNotFoundException"]);
    nm.refused(4, &[("/apps/data.txt", "../x")], &["bad local name", "\"../x\""]);
    nm.refused(5, &[("/apps/data.txt", "a/b")], &["bad local name", "\"a/b\""]);
    nm.refused(6, &[("/apps/data.txt", "same"), ("/apps/run.sh", "same")], &["given to two files"]);
    nm.refused(
        7,
        &[("/apps/data.txt", "ok"), ("/apps/secret.txt", "secret")],
        &["/apps/secret.txt", "AccessControlException"],
    );
    nm.refused(8, &[("/apps", "dir")], &["/apps is a directory"]);

    // (c) Logs over HTTP.
    let c9 = nm.start(9, &["sh", "-c", "printf 0123456789; printf abcdefghij >&2"], &[]).unwrap();
    nm.wait_done(c9);
    let listed = logs::list(&nm.http, APP).unwrap();
    let ids: Vec<ContainerId> = listed.iter().map(|c| c.id).collect();
    assert_eq!(ids, [c1, c2, c9], "only started containers have logs");
    let files: Vec<(&str, u64)> = listed[2].files.iter().map(|f| (f.name.as_str(), f.length)).collect();
    assert_eq!(files, [("stderr", 10), ("stdout", 10)]);
    assert_eq!(logs::fetch(&nm.http, APP, c9, "stdout", None).unwrap(), b"0123456789");
    assert_eq!(logs::fetch(&nm.http, APP, c9, "stdout", Some(-5)).unwrap(), b"56789");
    assert_eq!(logs::fetch(&nm.http, APP, c9, "stdout", Some(2)).unwrap(), b"23456789");
    assert_eq!(logs::fetch(&nm.http, APP, c9, "stderr", Some(-5)).unwrap(), b"fghij");
    assert_eq!(logs::fetch(&nm.http, APP, c9, "stderr", Some(2)).unwrap(), b"cdefghij");
    assert_eq!(logs::fetch(&nm.http, APP, c9, "stderr", Some(-50)).unwrap(), b"abcdefghij");
    assert_eq!(logs::fetch(&nm.http, APP, c9, "stderr", Some(50)).unwrap(), b"");

    let other = ApplicationId { cluster_ts: APP.cluster_ts, seq: 2 };
    let foreign = ContainerId::new(ApplicationAttemptId { app: other, attempt: 1 }, 0, 9).unwrap();
    let unknown = nm.token(99).container_id;
    let get = |path: String| http_status(logs::http_get(&nm.http, &path, 1 << 20));
    assert_eq!(get(format!("/logs/{APP}/{c9}/stdout?start=-3")), 200);
    for bad in [
        "/logs/application_x".to_string(),
        "/logs/..".to_string(),
        "/logs/%2e%2e".to_string(),
        format!("/logs/{APP}/../stdout"),
        format!("/logs/{APP}/{c9}/.."),
        format!("/logs/{APP}/{c9}/syslog"),
        format!("/logs/{APP}/{c9}/stdout?start=abc"),
        format!("/logs/{APP}/{foreign}/stdout"),
        format!("/logs/{APP}/{c9}"),
        format!("/logs/{APP}/{c9}/stdout/more"),
    ] {
        assert_eq!(get(bad.clone()), 400, "{bad}");
    }
    assert_eq!(get(format!("/logs/{APP}/{unknown}/stdout")), 404);
    assert_eq!(get(format!("/logs/{other}")), 404);
    assert_eq!(get("/nothing".to_string()), 404);
    assert!(logs::list(&nm.http, other).unwrap().is_empty());
    let e = logs::fetch(&nm.http, APP, unknown, "stdout", None).unwrap_err();
    assert!(matches!(e, LogsError::Status { status: 404, .. }), "{e}");

    // Without a NameNode, or with one that does not answer, files are refused (and files-less
    // launch contexts still run).
    let mut none = start_nm(&c, rm, "nm2", None);
    none.refused(1, &[("/apps/data.txt", "data.txt")], &["need a NameNode", "--namenode"]);
    let ok = none.start(2, &["true"], &[]).unwrap();
    none.wait_done(ok);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut gone = start_nm(&c, rm, "nm3", Some(&closed));
    gone.refused(1, &[("/apps/data.txt", "data.txt")], &["/apps/data.txt", &format!("namenode {closed}")]);

    drop((nm, none, gone));
    drop(c);
}

/// `herd nodemanager` `id` with its own dirs, its HTTP server on a free port, and `namenode`.
fn start_nm(c: &DfsCluster, rm: SocketAddr, id: &str, namenode: Option<&str>) -> Nm {
    let dir = c.path().join(id);
    let arg = |p: &str| dir.join(p).display().to_string();
    let mut args: Vec<String> = [
        "nodemanager",
        "--id",
        id,
        "--local-dir",
        &arg("local"),
        "--log-dir",
        &arg("logs"),
        "--rm",
        &rm.to_string(),
        "--keepers",
        &c.keepers(),
        "--listen-ctl",
        "127.0.0.1:0",
        "--listen-shuffle",
        "127.0.0.1:0",
        "--listen-http",
        "127.0.0.1:0",
        "--heartbeat-ms",
        "100",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(nn) = namenode {
        args.extend(["--namenode".to_string(), nn.to_string()]);
    }
    let daemon = Daemon::start(&args, "nodemanager");
    let (ctl, http) = (daemon.addr("ctl"), daemon.addr("http"));
    let (host, port) = ctl.rsplit_once(':').unwrap();
    let node = NodeId { host: host.into(), port: port.parse().unwrap() };
    let policy = RetryPolicy { io_timeout: Duration::from_secs(30), ..RetryPolicy::default() };
    let am = RpcClient::new(ctl, Protocol::ApplicationMasterNodeManager, Caller::new("alice", vec![]), policy);
    Nm { daemon, am, node, http, dir }
}
