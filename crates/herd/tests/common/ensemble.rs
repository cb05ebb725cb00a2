//! A keeper ensemble of real `herd keeper` processes, for fault tests: members on loopback (or
//! each in a network namespace of a [`Net`]), each with its own data dir and fixed ports so that a
//! restarted member comes back at the same addresses. Faults are signals sent by pid: SIGKILL,
//! SIGSTOP and SIGCONT. Every fault is noted, with its time since the start, in a schedule that
//! a failing test prints. Dropping the ensemble continues stopped members and kills them all.
#![allow(dead_code)]

use super::netns::Net;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a member may take from spawn to its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A member's captured stderr is cut to its newer half past this many bytes (long soaks).
const LOG_BYTES_MAX: usize = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    /// SIGSTOPped: alive, holds its ports, answers nothing.
    Stopped,
    /// Killed (or exited); `restart` brings it back.
    Dead,
}

pub struct Member {
    /// The raft id, 1-based; the member's index in [`Ensemble::members`] is `id - 1`.
    pub id: u64,
    pub client: SocketAddr,
    pub peer: SocketAddr,
    pub data_dir: PathBuf,
    /// The network namespace it runs in, if any.
    ns: Option<String>,
    child: Option<Child>,
    state: State,
    /// stderr of every incarnation, each headed by a line naming it.
    log: Arc<Mutex<String>>,
    incarnations: u32,
}

pub struct Ensemble {
    pub members: Vec<Member>,
    /// `--peer` arguments, the same for every member.
    peers: Vec<String>,
    /// More `herd keeper` arguments, the same for every member.
    extra: Vec<String>,
    dir: tempfile::TempDir,
    t0: Instant,
    schedule: Arc<Mutex<Vec<String>>>,
}

/// `n` distinct free loopback ports: all bound at once (so they differ), then released.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0")).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Asks `addr` for `srvr` and returns its `Mode:` (leader, follower, read-only, standalone), or
/// None if it does not answer within a second or two (dead, stopped, unreachable).
pub fn mode_at(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().find_map(|l| l.strip_prefix("Mode: ")).map(|m| m.trim().to_owned())
}

impl Ensemble {
    /// Starts `n` members on loopback, on free ports.
    pub fn start(n: usize) -> Ensemble {
        Self::start_with_args(n, &[])
    }

    /// As [`Ensemble::start`], with more `herd keeper` arguments for every member.
    pub fn start_with_args(n: usize, extra: &[&str]) -> Ensemble {
        let ports = free_ports(2 * n);
        let addrs = (0..n)
            .map(|i| {
                let client = SocketAddr::from(([127, 0, 0, 1], ports[2 * i]));
                let peer = SocketAddr::from(([127, 0, 0, 1], ports[2 * i + 1]));
                (client, peer, None)
            })
            .collect();
        Self::start_with(addrs, extra)
    }

    /// Starts member `i` in host `i` of `net` (client port 2181, peer port 2888 on the host's
    /// address). The test reaches them from another host of `net` (see [`Net::enter`]).
    pub fn start_in(net: &Net, n: usize) -> Ensemble {
        assert!(net.hosts.len() >= n, "the net has {} hosts, not {n}", net.hosts.len());
        let addrs = net.hosts[..n]
            .iter()
            .map(|h| (SocketAddr::from((h.ip, 2181)), SocketAddr::from((h.ip, 2888)), Some(h.ns.clone())))
            .collect();
        Self::start_with(addrs, &[])
    }

    fn start_with(addrs: Vec<(SocketAddr, SocketAddr, Option<String>)>, extra: &[&str]) -> Ensemble {
        let dir = tempfile::tempdir().expect("temp dir");
        let peers = addrs.iter().enumerate().map(|(i, (_, peer, _))| format!("{}={peer}", i + 1)).collect();
        let members = addrs
            .into_iter()
            .enumerate()
            .map(|(i, (client, peer, ns))| Member {
                id: i as u64 + 1,
                client,
                peer,
                data_dir: dir.path().join(format!("keeper-{}", i + 1)),
                ns,
                child: None,
                state: State::Dead,
                log: Arc::default(),
                incarnations: 0,
            })
            .collect();
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let mut e = Ensemble { members, peers, extra, dir, t0: Instant::now(), schedule: Arc::default() };
        for i in 0..e.members.len() {
            e.spawn(i);
        }
        e
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.client).collect()
    }

    pub fn state(&self, i: usize) -> State {
        self.members[i].state
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(|c| c.id())
    }

    /// Time since the ensemble started; the schedule's clock.
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Adds a line to the fault schedule (and prints it, for a live view of a run).
    pub fn note(&self, what: impl AsRef<str>) {
        let line = format!("[{:>8.3}s] {}", self.t0.elapsed().as_secs_f64(), what.as_ref());
        eprintln!("{line}");
        self.schedule.lock().unwrap().push(line);
    }

    pub fn schedule(&self) -> Vec<String> {
        self.schedule.lock().unwrap().clone()
    }

    /// A handle that adds to this ensemble's schedule from other threads.
    pub fn schedule_handle(&self) -> ScheduleHandle {
        ScheduleHandle { t0: self.t0, schedule: self.schedule.clone() }
    }

    fn spawn(&mut self, i: usize) {
        let bin = super::herd_bin();
        let peers = self.peers.clone();
        let extra = self.extra.clone();
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "member {} is already running", m.id);
        let mut cmd = match &m.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args(["keeper", "--id", &m.id.to_string(), "--data-dir"])
            .arg(&m.data_dir)
            .args(["--client-addr", &m.client.to_string()]);
        for p in &peers {
            cmd.args(["--peer", p]);
        }
        cmd.args(&extra);
        let filter = std::env::var("HERD_TEST_RUST_LOG").unwrap_or_else(|_| "info,openraft=warn".into());
        let mut child = cmd
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herd keeper");
        m.incarnations += 1;
        m.log.lock().unwrap().push_str(&format!(
            "=== member {} incarnation {} (pid {}) at +{:.3}s\n",
            m.id,
            m.incarnations,
            child.id(),
            self.t0.elapsed().as_secs_f64()
        ));
        let mut err = child.stderr.take().expect("stderr");
        let sink = m.log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&String::from_utf8_lossy(&buf[..n]));
                if log.len() > LOG_BYTES_MAX {
                    let cut = log.len() - LOG_BYTES_MAX / 2;
                    let cut = (cut..log.len()).find(|&c| log.is_char_boundary(c)).unwrap_or(log.len());
                    log.replace_range(..cut, "[... older output dropped ...]\n");
                }
            }
        });
        // The ready line, read on a thread so that a member hanging at start fails the test
        // instead of blocking it.
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            let mut out = BufReader::new(out);
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            let _ = tx.send(line);
            let mut rest = String::new();
            let _ = out.read_to_string(&mut rest);
        });
        let line = rx.recv_timeout(READY_TIMEOUT).unwrap_or_default();
        let expected = format!("herd keeper ready client={}", m.client);
        m.child = Some(child);
        m.state = State::Running;
        if line.trim() != expected {
            let id = m.id;
            self.kill9(i);
            std::thread::sleep(Duration::from_millis(200));
            panic!("member {id} did not start (ready line {line:?})\n{}", self.logs());
        }
    }

    /// SIGKILL member `i` and reap it: no chance to flush anything, as in a crash.
    pub fn kill9(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        m.state = State::Dead;
    }

    /// SIGSTOP member `i`: it keeps its sockets and memory and answers nothing until `cont`.
    pub fn stop(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.members[i].state = State::Stopped;
    }

    /// SIGCONT member `i`.
    pub fn cont(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.members[i].state = State::Running;
    }

    fn signal(&self, i: usize, sig: i32) {
        let pid = self.pid(i).unwrap_or_else(|| panic!("member {} is not running", i + 1));
        // SAFETY: a signal to a keeper process this ensemble started and has not reaped.
        let rc = unsafe { libc::kill(pid as i32, sig) };
        assert_eq!(rc, 0, "signal {sig} to member {} (pid {pid}): {}", i + 1, std::io::Error::last_os_error());
    }

    /// Starts member `i` again with the same id, data dir and addresses.
    pub fn restart(&mut self, i: usize) {
        assert_eq!(self.members[i].state, State::Dead, "restart of member {} that is not dead", i + 1);
        self.spawn(i);
    }

    /// Member `i`'s mode from `srvr`, None unless it is running and answers.
    pub fn mode(&self, i: usize) -> Option<String> {
        match self.members[i].state {
            State::Running => mode_at(self.members[i].client),
            _ => None,
        }
    }

    /// Every running member's mode, by index.
    pub fn modes(&self) -> Vec<Option<String>> {
        (0..self.len()).map(|i| self.mode(i)).collect()
    }

    /// Waits until exactly one of the members in `among` (running ones) says it leads, and
    /// returns its index.
    pub fn wait_for_leader(&self, among: &[usize], within: Duration) -> Result<usize, String> {
        let t0 = Instant::now();
        loop {
            let modes: Vec<(usize, Option<String>)> = among.iter().map(|&i| (i, self.mode(i))).collect();
            let leaders: Vec<usize> =
                modes.iter().filter(|(_, m)| m.as_deref() == Some("leader")).map(|(i, _)| *i).collect();
            if leaders.len() == 1 {
                return Ok(leaders[0]);
            }
            if t0.elapsed() > within {
                return Err(format!("no single leader among members {among:?} within {within:?}: modes {modes:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every running member answers leader or follower, with exactly one leader;
    /// returns the leader's index.
    pub fn wait_settled(&self, within: Duration) -> Result<usize, String> {
        let t0 = Instant::now();
        loop {
            let modes = self.modes();
            let running = (0..self.len()).filter(|&i| self.state(i) == State::Running);
            let settled = running.clone().all(|i| matches!(modes[i].as_deref(), Some("leader" | "follower")));
            let leaders: Vec<usize> = running.filter(|&i| modes[i].as_deref() == Some("leader")).collect();
            if settled && leaders.len() == 1 {
                return Ok(leaders[0]);
            }
            if t0.elapsed() > within {
                return Err(format!("the ensemble did not settle within {within:?}: modes {modes:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every member's captured stderr, one after the other.
    pub fn logs(&self) -> String {
        self.members.iter().map(|m| format!("--- member {} stderr\n{}\n", m.id, m.log.lock().unwrap())).collect()
    }

    /// Writes each member's stderr to `dir/keeper-N.log`.
    pub fn dump_logs(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for m in &self.members {
            std::fs::write(dir.join(format!("keeper-{}.log", m.id)), m.log.lock().unwrap().as_bytes())?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if let (State::Stopped, Some(pid)) = (self.members[i].state, self.pid(i)) {
                // SAFETY: SIGCONT to a keeper this ensemble started and stopped; not yet reaped.
                unsafe { libc::kill(pid as i32, libc::SIGCONT) };
            }
            self.kill9(i);
        }
    }
}

/// Adds to an ensemble's fault schedule from another thread.
#[derive(Clone)]
pub struct ScheduleHandle {
    t0: Instant,
    schedule: Arc<Mutex<Vec<String>>>,
}

impl ScheduleHandle {
    pub fn note(&self, what: impl AsRef<str>) {
        let line = format!("[{:>8.3}s] {}", self.t0.elapsed().as_secs_f64(), what.as_ref());
        eprintln!("{line}");
        self.schedule.lock().unwrap().push(line);
    }

    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }
}
