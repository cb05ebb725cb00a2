//! Local ZooKeeper-protocol servers for the benchmarks: herd keepers and Apache ZooKeeper 3.8
//! (Debian's package), standalone or as a 3-server ensemble on loopback.
//!
//! Both systems are started the same way, from a zoo.cfg per server (dataDir with a myid file,
//! clientPort, `server.N=127.0.0.1:peerPort:electionPort` lines), and both are judged ready the
//! same way: the four-letter word `srvr` answers `Mode: standalone`, or exactly one server
//! answers `Mode: leader` and the others `Mode: follower`. Every server is a child process that
//! its guard kills by pid (SIGKILL, then reaped) when dropped, so no exit path leaves one running.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Debian's Apache ZooKeeper 3.8 classpath (package `zookeeper`); zookeeper.jar's manifest
/// names the rest.
const ZK_CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:\
/usr/share/java/netty-resolver.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";
const ZK_LOG4J: &str = "/etc/zookeeper/conf/log4j.properties";

/// How long a herd keeper may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fresh ensemble may take to elect a leader (ZooKeeper's JVMs start in seconds).
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Herd,
    Zk,
}

impl System {
    /// The label in the load generator's JSON lines.
    pub fn label(self) -> &'static str {
        match self {
            System::Herd => "herd",
            System::Zk => "zookeeper-3.8",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            System::Herd => "herd",
            System::Zk => "ZK",
        }
    }
}

/// Picks `n` distinct free loopback ports: each is bound to port 0 and held until all are
/// picked, so no two are the same.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// A child process, killed by pid (SIGKILL) and reaped when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Peak resident set size (VmHWM) in KiB, while the process lives.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let v = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
        v.trim().trim_end_matches("kB").trim().parse().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion with its output captured, killing it by pid after `timeout`.
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {cmd:?}"))?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let mut p = Proc { child };
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = p.exited() {
            break Some(s);
        }
        if t0.elapsed() > timeout {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Killed here if still running, so the readers below see end of file.
    drop(p);
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    match status {
        Some(status) => Ok(Output { status, stdout, stderr }),
        None => {
            bail!("{cmd:?} did not finish within {timeout:?}; killed (stderr: {})", String::from_utf8_lossy(&stderr))
        }
    }
}

/// Sends a four-letter word and reads the answer to end of file; None if the server did not
/// answer in time.
fn four_letter_word(addr: &SocketAddr, word: &str, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.take(1 << 20).read_to_string(&mut out).ok()?;
    Some(out)
}

/// The `Mode:` line of a `srvr` answer: leader, follower, standalone; None when the server does
/// not answer or is not serving (ZooKeeper without a quorum answers "not currently serving").
fn mode(addr: &SocketAddr) -> Option<String> {
    let out = four_letter_word(addr, "srvr", Duration::from_millis(1000))?;
    out.lines().find_map(|l| l.strip_prefix("Mode:")).map(|m| m.trim().to_owned())
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if text.trim().is_empty() {
        return format!("{} is empty", path.display());
    }
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n    ");
    format!("{} (last lines):\n    {tail}", path.display())
}

pub struct Server {
    /// myid
    pub id: u64,
    pub client: SocketAddr,
    cfg: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
    /// herd only: the keeper's ready line, once it is printed.
    ready: Option<mpsc::Receiver<String>>,
}

/// One system's servers: one standalone server or a loopback ensemble.
pub struct Ensemble {
    pub system: System,
    pub servers: Vec<Server>,
    herd: PathBuf,
}

impl Ensemble {
    /// Writes a zoo.cfg and data dir per server under `dir` and starts every server; for herd,
    /// waits for each keeper's ready line. Does not wait for a leader (see `wait_leader`).
    pub fn start(system: System, herd: &Path, dir: &Path, n: usize) -> Result<Ensemble> {
        let ports = free_ports(3 * n)?;
        let quorum: String = if n > 1 {
            (0..n)
                .map(|i| format!("server.{}=127.0.0.1:{}:{}\n", i + 1, ports[n + 2 * i], ports[n + 2 * i + 1]))
                .collect()
        } else {
            String::new()
        };
        let mut e = Ensemble { system, servers: Vec::new(), herd: herd.to_owned() };
        for (i, port) in ports.iter().take(n).enumerate() {
            let id = i as u64 + 1;
            let sdir = dir.join(format!("{}-{id}", system.short()));
            let data = sdir.join("data");
            std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
            std::fs::write(data.join("myid"), format!("{id}\n"))?;
            let cfg = sdir.join("zoo.cfg");
            std::fs::write(
                &cfg,
                format!(
                    "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
                     maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n{quorum}",
                    data.display(),
                    port
                ),
            )?;
            let client = SocketAddr::from(([127, 0, 0, 1], *port));
            e.servers.push(Server { id, client, cfg, log: sdir.join("server.log"), proc: None, ready: None });
        }
        for i in 0..n {
            e.spawn(i)?;
        }
        if system == System::Herd {
            for i in 0..n {
                e.wait_herd_ready(i)?;
            }
        }
        Ok(e)
    }

    /// `start`, then `wait_leader`: returns the ensemble and its leader's index.
    pub fn start_with_leader(system: System, herd: &Path, dir: &Path, n: usize) -> Result<(Ensemble, usize)> {
        let mut e = Ensemble::start(system, herd, dir, n)?;
        let leader = e.wait_leader(LEADER_TIMEOUT)?;
        Ok((e, leader))
    }

    /// Starts server `i` from its zoo.cfg and data dir.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let s = &mut self.servers[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&s.log)?;
        let mut cmd = match self.system {
            System::Herd => {
                let mut c = Command::new(&self.herd);
                c.arg("keeper").arg("--zoo-cfg").arg(&s.cfg).stdout(Stdio::piped()).stderr(log);
                c
            }
            System::Zk => {
                let mut c = Command::new("java");
                c.args(["-cp", ZK_CLASSPATH]);
                if Path::new(ZK_LOG4J).exists() {
                    c.arg(format!("-Dlog4j.configuration=file:{ZK_LOG4J}"));
                }
                c.args(["-Dzookeeper.root.logger=WARN,CONSOLE", "org.apache.zookeeper.server.quorum.QuorumPeerMain"])
                    .arg(&s.cfg)
                    .stdout(log.try_clone()?)
                    .stderr(log);
                c
            }
        };
        let mut child = cmd.stdin(Stdio::null()).spawn().with_context(|| format!("starting {cmd:?}"))?;
        let stdout = child.stdout.take();
        let p = Proc { child };
        if let Some(out) = stdout {
            let (tx, rx) = mpsc::channel();
            // Reads the ready line, then drains stdout so the keeper never blocks on a full
            // pipe. Not joined: it ends at end of file when the keeper dies, and a join could
            // hang if something else held the pipe open.
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("herd keeper ready") {
                        let _ = tx.send(line);
                    }
                }
            });
            s.ready = Some(rx);
        }
        s.proc = Some(p);
        Ok(())
    }

    /// Waits for herd keeper `i` to print `herd keeper ready client=ADDR`, which it does once
    /// its client port is bound (with or without a leader).
    fn wait_herd_ready(&mut self, i: usize) -> Result<()> {
        let s = &mut self.servers[i];
        let Some(rx) = s.ready.take() else { return Ok(()) };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(_) => Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("herd server {} printed no ready line within {READY_TIMEOUT:?}; {}", s.id, log_tail(&s.log, 15))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Its stdout closed: it exited. Give it a moment to be reapable for the status.
                let t0 = Instant::now();
                let mut status = None;
                while status.is_none() && t0.elapsed() < Duration::from_secs(2) {
                    status = s.proc.as_mut().and_then(Proc::exited);
                    std::thread::sleep(Duration::from_millis(20));
                }
                let status = status.map_or("closed its stdout".to_owned(), |st| format!("exited ({st})"));
                bail!("herd server {} {status} before its ready line; {}", s.id, log_tail(&s.log, 15))
            }
        }
    }

    /// Indexes of the servers that are running (not killed).
    pub fn live(&self) -> Vec<usize> {
        (0..self.servers.len()).filter(|&i| self.servers[i].proc.is_some()).collect()
    }

    /// Waits until the running servers agree: one standalone server, or exactly one leader with
    /// every other running server a follower. Returns the leader's index. Fails early, with the
    /// log's tail, when a server exits.
    pub fn wait_leader(&mut self, timeout: Duration) -> Result<usize> {
        let t0 = Instant::now();
        let last = loop {
            for s in &mut self.servers {
                if let Some(st) = s.proc.as_mut().and_then(Proc::exited) {
                    bail!("{} server {} exited ({st}); {}", self.system.short(), s.id, log_tail(&s.log, 15));
                }
            }
            let live = self.live();
            let modes: Vec<(usize, Option<String>)> =
                live.iter().map(|&i| (i, mode(&self.servers[i].client))).collect();
            let is = |m: &Option<String>, want: &str| m.as_deref() == Some(want);
            if self.servers.len() == 1 && modes.first().is_some_and(|(_, m)| is(m, "standalone")) {
                return Ok(0);
            }
            let leaders: Vec<usize> = modes.iter().filter(|(_, m)| is(m, "leader")).map(|(i, _)| *i).collect();
            let followers = modes.iter().filter(|(_, m)| is(m, "follower")).count();
            if self.servers.len() > 1 && leaders.len() == 1 && followers + 1 == modes.len() {
                return Ok(leaders[0]);
            }
            if t0.elapsed() > timeout {
                break modes
                    .iter()
                    .map(|(i, m)| format!("server {}: {}", self.servers[*i].id, m.as_deref().unwrap_or("no answer")))
                    .collect::<Vec<_>>()
                    .join(", ");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        bail!(
            "{} ensemble has no leader after {timeout:?} (srvr modes: {last}); logs under {}",
            self.system.short(),
            self.dir().display()
        )
    }

    /// SIGKILLs server `i` and returns the instant right after the signal was sent (before the
    /// process is reaped).
    pub fn kill(&mut self, i: usize) -> Instant {
        let mut p = self.servers[i].proc.take().expect("killing a running server");
        let _ = p.child.kill();
        let at = Instant::now();
        drop(p);
        at
    }

    pub fn client_addrs(&self, which: &[usize]) -> Vec<SocketAddr> {
        which.iter().map(|&i| self.servers[i].client).collect()
    }

    /// Each running server's peak RSS in KiB (for ZooKeeper, the JVM's).
    pub fn peak_rss_kib(&self) -> Vec<Option<u64>> {
        self.servers.iter().map(|s| s.proc.as_ref().and_then(Proc::peak_rss_kib)).collect()
    }

    /// The directory holding the servers' directories.
    fn dir(&self) -> PathBuf {
        self.servers[0].cfg.parent().and_then(Path::parent).map(Path::to_owned).unwrap_or_default()
    }
}
