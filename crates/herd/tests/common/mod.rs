//! Shared helpers for tests that run real `herd` processes on loopback.
#![allow(dead_code)]

pub mod compute;
pub mod dfs;
pub mod ensemble;
pub mod fs;
pub mod mr;
pub mod netns;
pub mod python;
pub mod register;
pub mod up;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn herd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_herd"))
}

/// A keeper process; killed with SIGKILL (and reaped) when dropped, so a failing test leaves
/// nothing running.
pub struct KeeperProc {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Everything the process wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl KeeperProc {
    /// Starts a keeper on a free loopback port with `extra` flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> KeeperProc {
        Self::start_at(data_dir, "127.0.0.1:0", extra)
    }

    pub fn start_at(data_dir: &Path, addr: &str, extra: &[&str]) -> KeeperProc {
        Self::start_with_env(data_dir, addr, extra, &[])
    }

    /// As [`KeeperProc::start_at`], with more environment variables for the process.
    pub fn start_with_env(data_dir: &Path, addr: &str, extra: &[&str], env: &[(&str, &str)]) -> KeeperProc {
        let mut child = Command::new(herd_bin())
            .args(["keeper", "--data-dir"])
            .arg(data_dir)
            .args(["--client-addr", addr])
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herd keeper");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read ready line");
        let Some(addr) = line.trim().strip_prefix("herd keeper ready client=") else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!("keeper did not start: {line:?}; stderr: {}", stderr.lock().unwrap());
        };
        let addr = addr.parse().expect("address on ready line");
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        KeeperProc { child, addr, data_dir: data_dir.to_owned(), stderr }
    }

    /// SIGKILL: no chance to flush or clean up, as in a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// A `--port-base` B under which every port of a `herd up --keepers N` is free now (client ports
/// 2181 + B + i, peer ports 2888 + B + i). The base comes from a port the kernel hands out, so
/// tests running in parallel land on different ports; the others are checked by binding them
/// (all at once), and another base is tried if one is taken.
pub fn free_port_base(keepers: u16) -> u16 {
    const CLIENT_PORT: u16 = 2181;
    const PEER_PORT: u16 = 2888;
    for _ in 0..100 {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = free.checked_sub(CLIENT_PORT).expect("ephemeral ports lie above 2181");
        let Some(top) = base.checked_add(PEER_PORT + keepers - 1) else { continue };
        assert!(top > free);
        let held: Vec<_> = (0..keepers)
            .flat_map(|i| [CLIENT_PORT + base + i, PEER_PORT + base + i])
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == 2 * keepers as usize {
            return base;
        }
    }
    panic!("found no port base with {} free ports", 2 * keepers);
}

/// A `--port-base` B under which every one of `ports` (the defaults of a `herd up`'s fixed
/// ports) is free now. B comes from a port the kernel hands out, taken as the highest of
/// `ports` plus B, so tests running in parallel land on different ports; the others are
/// checked by binding them (all at once), and another base is tried if one is taken.
pub fn free_port_base_for(ports: &[u16]) -> u16 {
    let highest = *ports.iter().max().expect("some ports");
    for _ in 0..100 {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let Some(base) = free.checked_sub(highest) else { continue };
        let wanted: Vec<u16> = ports.iter().filter_map(|p| p.checked_add(base)).collect();
        let held: Vec<_> = wanted.iter().map_while(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).ok()).collect();
        if wanted.len() == ports.len() && held.len() == ports.len() {
            return base;
        }
    }
    panic!("found no port base with {ports:?} free");
}

/// Whether network namespaces and nft are here; without them a fault test skips, unless
/// `HERD_EXTERNAL_CLIENTS=required` (CI) says they must be.
pub fn netns_or_skip() -> bool {
    if netns::available() {
        return true;
    }
    assert!(
        std::env::var("HERD_EXTERNAL_CLIENTS").as_deref() != Ok("required"),
        "network namespaces or nft unavailable; `cargo xtask test` must run as root with nftables"
    );
    eprintln!("skipping: no network namespaces or nft here");
    false
}

/// Collects everything a pipe yields, on a thread of its own.
pub fn capture(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Stops a child this test started and reaps it: SIGTERM (so a supervisor can stop what it
/// runs), SIGKILL if it has not exited within `grace`.
pub fn terminate(child: &mut Child, grace: Duration) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // SAFETY: a signal to our own child, not yet reaped, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t0 = std::time::Instant::now();
    while child.try_wait().ok().flatten().is_none() && t0.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for KeeperProc {
    fn drop(&mut self) {
        self.kill9();
    }
}
