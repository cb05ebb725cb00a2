//! `cargo xtask bench keeper-failover`: how long writes stop when a 3-server ensemble's leader is
//! SIGKILLed, for herd and Apache ZooKeeper 3.8 side by side.
//!
//! Each trial starts a fresh ensemble (fresh data dirs): no trial inherits an earlier one's log,
//! and none kills a leader while a restarted server is still catching up, so trials are alike
//! and independent. Once `srvr` shows a leader, one writer connects to a follower and writes
//! continuously (setData and create, alternating, one at a time), moving to the other survivor
//! with a fresh connection on any failure and resuming its session as a ZooKeeper client does.
//! The leader is then SIGKILLed; the trial's time runs from right after the signal to the
//! acknowledgement of the first write sent after it.

use crate::ensemble::{Ensemble, System};
use crate::zkwire::{Conn, Session, ZkError, ERR_NODE_EXISTS, ERR_SESSION_EXPIRED};
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Acknowledged writes before the kill: the writer is connected and writing steadily.
const WARM_ACKS: u64 = 20;
const WARM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the kill a write may take to be acknowledged before the trial fails.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the survivors may take to show their new leader in `srvr` (reported, not timed).
const NEW_LEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// The writer's requested session timeout; reads time out after two thirds of it.
const SESSION_TIMEOUT_MS: i32 = 10_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed attempt, so that a server refusing connections is not spun on.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
const BASE: &str = "/failover";

/// What the writer thread and the trial share. The mutexes guard a few words each and are held
/// for no I/O, so std's Mutex is enough.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Writes acknowledged so far.
    acks: AtomicU64,
    /// Set by the trial right after it SIGKILLs the leader.
    killed_at: Mutex<Option<Instant>>,
    /// The first write sent after `killed_at` and acknowledged: when, and by which server.
    first_after: Mutex<Option<(Instant, SocketAddr)>>,
    /// Connection attempts after the kill.
    attempts_after: AtomicU64,
    last_error: Mutex<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer thread, stopped and joined when dropped (each of its blocking calls has a
/// timeout, so the join is bounded).
struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(addrs: Vec<SocketAddr>) -> Writer {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        Writer { shared, thread: Some(std::thread::spawn(move || write_loop(&addrs, &s))) }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(addrs: &[SocketAddr], sh: &Shared) {
    let data = [b'x'; 100];
    let mut session: Option<Session> = None;
    let mut last_zxid = 0;
    let mut conn: Option<(Conn, SocketAddr)> = None;
    let mut next = 0usize;
    let mut seq = 0u64;
    let mut base_made = false;
    let fail = |e: anyhow::Error| {
        *lock(&sh.last_error) = format!("{e:#}");
        std::thread::sleep(RETRY_PAUSE);
    };
    while !sh.stop.load(Ordering::Relaxed) {
        let (c, addr) = match conn.as_mut() {
            Some(c) => c,
            None => {
                let addr = addrs[next % addrs.len()];
                next += 1;
                if lock(&sh.killed_at).is_some() {
                    sh.attempts_after.fetch_add(1, Ordering::Relaxed);
                }
                match Conn::connect(&addr, session.as_ref(), last_zxid, SESSION_TIMEOUT_MS, CONNECT_TIMEOUT) {
                    Ok(c) => {
                        session = Some(c.session.clone());
                        conn.insert((c, addr))
                    }
                    Err(e) => {
                        if matches!(e.downcast_ref::<ZkError>(), Some(ZkError(ERR_SESSION_EXPIRED))) {
                            session = None;
                        }
                        fail(e);
                        continue;
                    }
                }
            }
        };
        let sent = Instant::now();
        let r = if !base_made {
            match c.create(BASE, &data) {
                Err(e) if matches!(e.downcast_ref::<ZkError>(), Some(ZkError(ERR_NODE_EXISTS))) => Ok(0),
                r => r,
            }
        } else {
            seq += 1;
            if seq.is_multiple_of(2) {
                c.set_data(BASE, &data)
            } else {
                c.create(&format!("{BASE}/w-{seq:010}"), &data)
            }
        };
        last_zxid = last_zxid.max(c.last_zxid);
        match r {
            Ok(_) => {
                base_made = true;
                let acked = Instant::now();
                sh.acks.fetch_add(1, Ordering::Relaxed);
                if lock(&sh.killed_at).is_some_and(|k| sent >= k) {
                    lock(&sh.first_after).get_or_insert((acked, *addr));
                }
            }
            Err(e) => {
                // Connection loss, a timeout or an error reply: a fresh connection to the
                // next survivor.
                let e = e.context(format!("writing via {addr}"));
                conn = None;
                fail(e);
            }
        }
    }
}

/// One system's trials, and why it stopped being run if it could not start.
struct Trials {
    system: System,
    done: Vec<Result<Trial, String>>,
    not_run: Option<String>,
}

struct Trial {
    failover: Duration,
    old_leader: u64,
    new_leader: Option<u64>,
    acked_by: SocketAddr,
    attempts: u64,
}

/// One trial on a running ensemble whose leader is `leader`; kills that leader.
fn trial(e: &mut Ensemble, leader: usize) -> Result<Trial> {
    let survivors: Vec<usize> = e.live().into_iter().filter(|&i| i != leader).collect();
    let w = Writer::start(e.client_addrs(&survivors));
    let t0 = Instant::now();
    while w.shared.acks.load(Ordering::Relaxed) < WARM_ACKS {
        if t0.elapsed() > WARM_TIMEOUT {
            bail!(
                "the writer had {} writes acknowledged in {WARM_TIMEOUT:?} before the kill (last error: {})",
                w.shared.acks.load(Ordering::Relaxed),
                lock(&w.shared.last_error)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let old_leader = e.servers[leader].id;
    let killed_at = e.kill(leader);
    *lock(&w.shared.killed_at) = Some(killed_at);
    let (acked, acked_by) = loop {
        if let Some(first) = *lock(&w.shared.first_after) {
            break first;
        }
        if killed_at.elapsed() > ACK_TIMEOUT {
            bail!(
                "no write acknowledged within {ACK_TIMEOUT:?} of killing leader {old_leader} ({} connection attempts; last error: {})",
                w.shared.attempts_after.load(Ordering::Relaxed),
                lock(&w.shared.last_error)
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let attempts = w.shared.attempts_after.load(Ordering::Relaxed);
    drop(w);
    let new_leader = e.wait_leader(NEW_LEADER_TIMEOUT).ok().map(|i| e.servers[i].id);
    Ok(Trial { failover: acked - killed_at, old_leader, new_leader, acked_by, attempts })
}

pub fn bench_failover(args: &[String]) -> Result<()> {
    let mut trials = 10usize;
    let mut systems = vec![System::Herd, System::Zk];
    let mut herd_bin = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--trials" => trials = value()?.parse().context("--trials")?,
            "--system" => {
                systems = match value()?.as_str() {
                    "herd" => vec![System::Herd],
                    "zk" => vec![System::Zk],
                    "both" => vec![System::Herd, System::Zk],
                    v => bail!("--system {v:?}: expected herd, zk or both"),
                }
            }
            "--herd-bin" => herd_bin = Some(PathBuf::from(value()?)),
            _ => bail!(
                "unknown argument {a:?} (bench keeper-failover [--trials N] [--system herd|zk|both] [--herd-bin PATH])"
            ),
        }
    }
    crate::install_debian_clients()?;
    let herd = if systems.contains(&System::Herd) { crate::herd_binary(herd_bin)? } else { PathBuf::new() };
    crate::with_scratch_dir("herd-failover", |tmp| {
        let mut results: Vec<Trials> =
            systems.iter().map(|&system| Trials { system, done: Vec::new(), not_run: None }).collect();
        for t in 1..=trials {
            for Trials { system, done, not_run } in &mut results {
                if not_run.is_some() {
                    continue;
                }
                let dir = tmp.join(format!("trial-{t}"));
                let (mut e, leader) = match Ensemble::start_with_leader(*system, &herd, &dir, 3) {
                    Ok(x) => x,
                    Err(err) => {
                        eprintln!("xtask: {} 3-node ensemble did not start; not run further: {err:#}", system.short());
                        *not_run = Some(format!("{err:#}"));
                        continue;
                    }
                };
                let r = trial(&mut e, leader);
                drop(e);
                match &r {
                    Ok(tr) => println!(
                        "trial {t} {}: {:.1} ms (killed leader {}; first write after it acknowledged by {}; new leader {}; {} connection attempts after the kill)",
                        system.short(),
                        tr.failover.as_secs_f64() * 1e3,
                        tr.old_leader,
                        tr.acked_by,
                        tr.new_leader.map_or("unknown".to_owned(), |id| id.to_string()),
                        tr.attempts
                    ),
                    Err(err) => println!("trial {t} {}: failed: {err:#}", system.short()),
                }
                done.push(r.map_err(|e| format!("{e:#}")));
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        print_summary(trials, &results);
        let not_run: Vec<String> = results
            .iter()
            .filter_map(|r| r.not_run.as_ref().map(|w| format!("{}: not run: {w}", r.system.short())))
            .collect();
        if !not_run.is_empty() {
            bail!("{}", not_run.join("\n"));
        }
        Ok(())
    })
}

fn print_summary(trials: usize, results: &[Trials]) {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    println!("\n### leader kill -9 to first acknowledged write, 3-node ensembles, fresh per trial\n");
    let head: Vec<&str> = results.iter().map(|r| r.system.short()).collect();
    println!("| trial | {} |", head.iter().map(|h| format!("{h} ms")).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---|".repeat(results.len()));
    for t in 0..trials {
        let cells: Vec<String> = results
            .iter()
            .map(|r| match r.done.get(t) {
                Some(Ok(tr)) => ms(tr.failover),
                Some(Err(_)) => "failed".to_owned(),
                None => "-".to_owned(),
            })
            .collect();
        println!("| {} | {} |", t + 1, cells.join(" | "));
    }
    let sorted: Vec<Vec<Duration>> = results
        .iter()
        .map(|r| {
            let mut v: Vec<Duration> = r.done.iter().filter_map(|r| r.as_ref().ok().map(|t| t.failover)).collect();
            v.sort();
            v
        })
        .collect();
    let stat = |name: &str, f: &dyn Fn(&[Duration]) -> Duration| {
        let cells: Vec<String> = sorted.iter().map(|v| if v.is_empty() { "-".to_owned() } else { ms(f(v)) }).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    stat("min", &|v| v[0]);
    stat("median", &|v| if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2 });
    stat("max", &|v| v[v.len() - 1]);
}
