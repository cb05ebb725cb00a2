//! Shared by the client tests: an in-process keeper on a free loopback port with its own data
//! dir, and a TCP proxy in front of it that a test can take down or freeze to make the client
//! lose its connection without stopping the keeper.

#![allow(dead_code)]

use keeper::config::KeeperConfig;
use member::client::{ClientConfig, Session, State};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Generous bound for anything a test waits for; reaching it means the behaviour is missing,
/// not that the machine is slow.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A keeper in this process. tickTime 100 ms lets sessions be as short as 200 ms; the maximum
/// is raised so that tests that do not want disconnects can ask for a long timeout.
pub struct TestKeeper {
    pub addr: SocketAddr,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl TestKeeper {
    pub async fn start() -> TestKeeper {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = KeeperConfig {
            data_dir: dir.path().join("keeper"),
            client_addr: "127.0.0.1:0".parse().expect("literal address"),
            tick_time_ms: 100,
            max_session_timeout_ms: Some(30_000),
            ..KeeperConfig::default()
        };
        let stop = CancellationToken::new();
        let k = keeper::server::Keeper::start(cfg, stop.clone()).await.expect("keeper starts");
        TestKeeper { addr: k.client_addr, stop, _dir: dir }
    }
}

impl Drop for TestKeeper {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A client config for `hosts` asking for `timeout`.
pub fn config(hosts: &[SocketAddr], timeout: Duration) -> ClientConfig {
    ClientConfig {
        hosts: hosts.iter().map(|a| a.to_string()).collect(),
        session_timeout: timeout,
        auth: Vec::new(),
        connect_timeout: Duration::from_secs(2),
        ping_interval: None,
    }
}

/// A session that should see no disconnects during the test.
pub async fn steady(k: &TestKeeper) -> Session {
    Session::connect(config(&[k.addr], Duration::from_secs(20))).await.expect("connect")
}

/// Waits until the state satisfies `f`; panics (naming `what`) if it never does.
pub async fn wait_state(rx: &mut watch::Receiver<State>, what: &str, f: impl FnMut(&State) -> bool) -> State {
    let outcome = tokio::time::timeout(PATIENCE, rx.wait_for(f)).await.map(|r| r.map(|s| s.clone()));
    match outcome {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => panic!("session task ended while waiting for {what} (state {:?})", *rx.borrow()),
        Err(_) => panic!("state never became {what}; it is {:?}", *rx.borrow()),
    }
}

/// A TCP proxy to one target. `down` cuts its connections and refuses new ones (accepting and
/// closing at once, as a server that will not take the session); `freeze` makes its current
/// connections silently stop carrying bytes, as a network that drops packets.
pub struct Proxy {
    pub addr: SocketAddr,
    inner: Arc<ProxyInner>,
    accept: tokio::task::JoinHandle<()>,
}

struct ProxyInner {
    target: SocketAddr,
    /// One lock for the flag and the list, so that a connection accepted while `down` runs is
    /// either refused or cut, never missed.
    conns: Mutex<Conns>,
    /// Connections carried, and bytes carried from clients to the target.
    accepted: AtomicU64,
    client_bytes: Arc<AtomicU64>,
}

struct Conns {
    up: bool,
    live: Vec<ConnCtl>,
}

struct ConnCtl {
    cut: CancellationToken,
    frozen: Arc<AtomicBool>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let inner = Arc::new(ProxyInner {
            target,
            conns: Mutex::new(Conns { up: true, live: Vec::new() }),
            accepted: AtomicU64::new(0),
            client_bytes: Arc::new(AtomicU64::new(0)),
        });
        let accept = tokio::spawn(accept_loop(listener, inner.clone()));
        Proxy { addr, inner, accept }
    }

    pub fn down(&self) {
        let mut conns = self.inner.conns.lock().unwrap();
        conns.up = false;
        for c in conns.live.drain(..) {
            c.cut.cancel();
        }
    }

    pub fn up(&self) {
        self.inner.conns.lock().unwrap().up = true;
    }

    /// Connections this proxy carried (refused ones not counted).
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::SeqCst)
    }

    /// Bytes clients sent through this proxy.
    pub fn client_bytes(&self) -> u64 {
        self.inner.client_bytes.load(Ordering::SeqCst)
    }

    pub fn freeze(&self) {
        for c in self.inner.conns.lock().unwrap().live.iter() {
            c.frozen.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.down();
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<ProxyInner>) {
    while let Ok((client, _)) = listener.accept().await {
        let ctl = ConnCtl { cut: CancellationToken::new(), frozen: Arc::new(AtomicBool::new(false)) };
        let (cut, frozen) = (ctl.cut.clone(), ctl.frozen.clone());
        {
            let mut conns = inner.conns.lock().unwrap();
            if !conns.up {
                drop(client);
                continue;
            }
            conns.live.push(ctl);
        }
        inner.accepted.fetch_add(1, Ordering::SeqCst);
        let counter = inner.client_bytes.clone();
        let target = inner.target;
        tokio::spawn(async move {
            let Ok(upstream) = TcpStream::connect(target).await else { return };
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            tokio::select! {
                _ = pump(cr, uw, frozen.clone(), Some(counter)) => {}
                _ = pump(ur, cw, frozen, None) => {}
                _ = cut.cancelled() => {}
            }
        });
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
    counter: Option<Arc<AtomicU64>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(c) = &counter {
            c.fetch_add(n as u64, Ordering::SeqCst);
        }
        if !frozen.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
