//! Shared helpers for tests that run real `herd` processes on loopback.
#![allow(dead_code)]

pub mod ensemble;
pub mod netns;
pub mod register;

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

impl Drop for KeeperProc {
    fn drop(&mut self) {
        self.kill9();
    }
}
