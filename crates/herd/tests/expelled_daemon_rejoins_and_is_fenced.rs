//! Guarantee: a daemon partitioned away from the keeper is expelled (its member znode goes one
//! session timeout after it fell silent); while it does not know, the requests it still sends
//! as its old incarnation are refused by its master, and once it suspects itself it stops
//! acting; after the partition heals it learns it was expelled and rejoins as a new, higher
//! incarnation, whose requests are accepted. In the other direction, orders from a master's old
//! incarnation are refused once the worker has seen a newer one.
//!
//! Hosts (network namespaces): 0 the keeper, 1 the worker (`herd member join`), 2 this test,
//! acting as the master (it joins group `master`, watches group `worker`, and answers the
//! worker's heartbeats by its current view). The partition cuts 0 <-> 1 only, so the worker
//! still reaches its master and its stale heartbeats arrive.

mod common;

use common::netns::Net;
use member::client::ClientConfig;
use member::membership::{Membership, MembershipConfig, Status};
use member::view::{View, Watcher};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const SESSION_TIMEOUT_MS: u64 = 2000;
const PATIENCE: Duration = Duration::from_secs(60);

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the master saw: each heartbeat's incarnation and whether it was admitted.
#[derive(Default)]
struct Seen {
    heartbeats: Vec<(i64, bool)>,
}

fn client(keeper: &str) -> ClientConfig {
    let mut c = ClientConfig::parse(keeper).unwrap();
    c.session_timeout = Duration::from_millis(SESSION_TIMEOUT_MS);
    c.ping_interval = Some(Duration::from_millis(100));
    c
}

fn master_membership(keeper: &str) -> Membership {
    let cfg = MembershipConfig {
        client: client(keeper),
        group: "master".into(),
        id: "m".into(),
        payload: vec![],
        herd_options: None,
        join_wait_max: PATIENCE,
    };
    Membership::start(cfg, None).unwrap()
}

async fn incarnation(m: &Membership) -> i64 {
    let mut rx = m.status();
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Status::Member { incarnation, .. } = *rx.borrow_and_update() {
                return incarnation;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the master joined")
}

async fn wait_view(views: &mut tokio::sync::mpsc::UnboundedReceiver<View>, pred: Box<dyn Fn(&View) -> bool>) -> View {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let v = views.recv().await.unwrap();
            if pred(&v) {
                return v;
            }
        }
    })
    .await
    .expect("the awaited view within the patience bound")
}

/// Sends one order to the worker and returns its answer.
async fn order(worker: &str, epoch: i64) -> String {
    let mut s = tokio::net::TcpStream::connect(worker).await.unwrap();
    s.write_all(format!("ORDER {epoch:x} replicate\n").as_bytes()).await.unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(s).read_line(&mut line).await.unwrap();
    line.trim().to_owned()
}

/// Answers `HEARTBEAT group id incarnation` by the latest view of the worker group.
async fn serve_heartbeats(l: tokio::net::TcpListener, view: Arc<Mutex<Option<View>>>, seen: Arc<Mutex<Seen>>) {
    loop {
        let Ok((s, _)) = l.accept().await else { continue };
        let (view, seen) = (view.clone(), seen.clone());
        tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let mut lines = tokio::io::BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let parts: Vec<&str> = line.split(' ').collect();
                let (id, inc) = match parts.as_slice() {
                    ["HEARTBEAT", _group, id, inc] => (id.to_string(), i64::from_str_radix(inc, 16).unwrap_or(-1)),
                    _ => continue,
                };
                let admitted = view.lock().unwrap().as_ref().map(|v| v.admit(&id, inc));
                let ok = matches!(admitted, Some(Ok(())));
                seen.lock().unwrap().heartbeats.push((inc, ok));
                let answer = match admitted {
                    Some(Ok(())) => "OK".to_owned(),
                    Some(Err(e)) => format!("STALE_EPOCH got=0x{:x} current=0x{:x}", e.got, e.current),
                    None => "STALE_EPOCH no view yet".to_owned(),
                };
                if w.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

#[test]
fn partitioned_worker_is_expelled_fenced_and_rejoins() {
    if !common::netns_or_skip() {
        return;
    }
    let net = Net::new(3);
    let dir = tempfile::tempdir().unwrap();
    let herd = common::herd_bin();
    let keeper_addr = format!("{}:2181", net.hosts[0].ip);
    let worker_addr = format!("{}:7000", net.hosts[1].ip);
    let master_addr = format!("{}:7100", net.hosts[2].ip);

    let mut keeper = Proc(
        net.command(0, herd.to_str().unwrap())
            .args(["keeper", "--data-dir"])
            .arg(dir.path().join("keeper"))
            .args(["--client-addr", &keeper_addr, "--zk-property", "tickTime=500"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(keeper.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("herd keeper ready"), "{line}");

    // This thread becomes host 2: every socket of the runtime below is opened from it.
    let _in_host2 = net.enter(2);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let view: Arc<Mutex<Option<View>>> = Arc::default();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind(&master_addr).await.unwrap();
        tokio::spawn(serve_heartbeats(l, view.clone(), seen.clone()));
        let mut watcher = Watcher::new(client(&keeper_addr), "worker").unwrap();
        let v2 = view.clone();
        let (views_tx, mut views) = tokio::sync::mpsc::unbounded_channel::<View>();
        tokio::spawn(async move {
            loop {
                let v = watcher.next().await;
                *v2.lock().unwrap() = Some(v.clone());
                let _ = views_tx.send(v);
            }
        });
        let master = master_membership(&keeper_addr);
        let m1 = incarnation(&master).await;

        let mut worker = Proc(
            net.command(1, herd.to_str().unwrap())
                .args(["member", "join", "--keeper", &keeper_addr, "--group", "worker", "--id", "w1"])
                .args(["--session-timeout-ms", &SESSION_TIMEOUT_MS.to_string(), "--listen", &worker_addr])
                .args(["--master-group", "master", "--heartbeat-to", &master_addr])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let out = worker.0.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let v = wait_view(&mut views, Box::new(|v| v.members.contains_key("w1"))).await;
        let i1 = v.members["w1"].incarnation;
        // The worker obeys the current master once it has read its own join's answer (the view
        // can show its znode a moment before that; until then it answers NOT_MEMBER).
        let t0 = Instant::now();
        loop {
            let answer = order(&worker_addr, m1).await;
            if answer == "OK" {
                break;
            }
            assert_eq!(answer, "NOT_MEMBER", "a joining worker either obeys or says it is not a member yet");
            assert!(t0.elapsed() < PATIENCE, "the joined worker never obeyed its master");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Cut the worker off from the keeper only (both ways); it still reaches its master.
        net.cut_one_way(0, 1);
        net.cut_one_way(1, 0);
        let cut = Instant::now();
        let v = wait_view(&mut views, Box::new(|v| !v.members.contains_key("w1"))).await;
        let expelled_after = cut.elapsed();
        assert!(v.admit("w1", i1).is_err());
        // It still heartbeats as i1 for a while (it cannot know yet): those are refused.
        let t0 = Instant::now();
        loop {
            let refused = seen.lock().unwrap().heartbeats.iter().any(|(inc, ok)| *inc == i1 && !ok);
            if refused {
                break;
            }
            assert!(t0.elapsed() < PATIENCE, "the worker's stale heartbeats never arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Once it has been out of touch for its timeout it suspects itself and stops acting.
        let t0 = Instant::now();
        while order(&worker_addr, m1).await != "NOT_MEMBER" {
            assert!(t0.elapsed() < PATIENCE, "an expelled worker kept obeying orders");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        net.heal();
        let v =
            wait_view(&mut views, Box::new(move |v| v.members.get("w1").is_some_and(|m| m.incarnation != i1))).await;
        let i2 = v.members["w1"].incarnation;
        assert!(i2 > i1, "the new incarnation {i2:#x} is not above the old {i1:#x}");
        let t0 = Instant::now();
        loop {
            let ok = seen.lock().unwrap().heartbeats.iter().any(|(inc, ok)| *inc == i2 && *ok);
            if ok {
                break;
            }
            assert!(t0.elapsed() < PATIENCE, "the new incarnation's heartbeats were never admitted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Nothing of the old incarnation was admitted after the view dropped it.
        {
            let log = seen.lock().unwrap();
            let last_ok_i1 = log.heartbeats.iter().rposition(|(inc, ok)| *inc == i1 && *ok);
            let first_refused_i1 = log.heartbeats.iter().position(|(inc, ok)| *inc == i1 && !ok);
            assert!(last_ok_i1 < first_refused_i1, "an old heartbeat was admitted after a refusal");
        }
        let out = lines.lock().unwrap().join("\n");
        assert!(out.contains("herd member expelled"), "the worker never said it was expelled:\n{out}");
        assert!(out.contains("herd member rejoined"), "the worker never said it rejoined:\n{out}");

        // The master is replaced by a new incarnation: the worker refuses the old one's orders.
        master.leave().await;
        let master2 = master_membership(&keeper_addr);
        let m2 = incarnation(&master2).await;
        assert!(m2 > m1);
        assert_eq!(order(&worker_addr, m2).await, "OK");
        assert_eq!(order(&worker_addr, m1).await, format!("STALE_EPOCH got=0x{m1:x} current=0x{m2:x}"));
        master2.leave().await;
        eprintln!("worker expelled {expelled_after:?} after the cut (session timeout {SESSION_TIMEOUT_MS} ms)");
        drop(worker);
    });
    let _ = std::io::stderr().flush();
}
