//! A blocking control-RPC client: one TCP connection to a server (the NameNode, the
//! ResourceManager, a NodeManager, an ApplicationMaster), calls made one at a time,
//! reconnecting and retrying a call whose connection broke.
//!
//! A retried call keeps its `call_id`, and the client keeps one `client_id` for its life, so
//! a server's retry cache (the NameNode's) answers a retried create, rename, delete or append
//! with the outcome of its first application instead of applying it twice (a NameNode that
//! restarted has that cache in its log). Retries are bounded by [`RetryPolicy`]: a server that
//! stays away ends the call with the I/O error, never a hang.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::codec::Message;
use crate::frame::{self as rpc, FrameError, Protocol, RemoteError, Request, RequestHeader, Response, MAX_FRAME_LEN};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error (Hadoop's exception class and message).
    #[error("{0}")]
    Remote(#[from] RemoteError),
    /// No answer: the connection could not be made or broke, and retries ran out.
    #[error("{addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    /// The server sent bytes that are not a response (or an oversize one).
    #[error("{addr}: bad response: {source}")]
    Protocol { addr: String, source: FrameError },
}

impl CallError {
    /// The Java exception class of a remote error (`None` for I/O and protocol errors).
    pub fn remote_class(&self) -> Option<&str> {
        match self {
            CallError::Remote(e) => Some(&e.class),
            _ => None,
        }
    }
}

/// How long a call keeps trying to reach the server.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Connect, read and write timeout of one attempt.
    pub io_timeout: Duration,
    /// A call that could not be answered is retried until this much time has passed since it
    /// started (0: no retry).
    pub retry_for: Duration,
    /// Pause between attempts, doubling up to 1 s.
    pub first_pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            io_timeout: Duration::from_secs(60),
            retry_for: Duration::from_secs(30),
            first_pause: Duration::from_millis(50),
        }
    }
}

/// Who calls: sent in every request header.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub groups: Vec<String>,
    /// Random per client process: with the call id, a server's retry-cache key.
    pub client_id: [u8; 16],
}

impl Caller {
    /// `user` with a fresh random client id.
    pub fn new(user: impl Into<String>, groups: Vec<String>) -> Caller {
        Caller { user: user.into(), groups, client_id: random_id() }
    }
}

/// 16 random bytes from the kernel (falls back to time and pid, which only need to differ
/// between client processes).
pub fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut id));
    if read.is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        id[..12].copy_from_slice(&nanos.to_be_bytes()[4..]);
        id[12..].copy_from_slice(&std::process::id().to_be_bytes());
    }
    id
}

/// A connection to one server address speaking one protocol.
pub struct RpcClient {
    addr: String,
    protocol: Protocol,
    caller: Caller,
    policy: RetryPolicy,
    stream: Option<TcpStream>,
    next_call: u64,
}

impl RpcClient {
    /// A client for `addr` (`host:port`) speaking `protocol`; it connects on the first call.
    /// (`impl Into`: a protocol crate may narrow [`Protocol`] to its own protocols.)
    pub fn new(
        addr: impl Into<String>,
        protocol: impl Into<Protocol>,
        caller: Caller,
        policy: RetryPolicy,
    ) -> RpcClient {
        RpcClient { addr: addr.into(), protocol: protocol.into(), caller, policy, stream: None, next_call: 1 }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Calls `req` and waits for its response, retrying on a broken connection or a
    /// `RetriableException` answer with the same call id (see the module documentation).
    pub fn call<Q: Message + Clone, A: Message>(&mut self, req: &Q) -> Result<A, CallError> {
        let call_id = self.next_call;
        self.next_call += 1;
        let started = Instant::now();
        let mut pause = self.policy.first_pause;
        loop {
            match self.attempt(call_id, req) {
                Ok(Response { result: Err(e), .. })
                    if e.class == crate::frame::RETRIABLE_EXCEPTION
                        && started.elapsed() + pause <= self.policy.retry_for =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Ok(resp) => return resp.result.map_err(CallError::Remote),
                Err(e) => {
                    self.stream = None;
                    let retryable = matches!(e, FrameError::Io(_));
                    if !retryable || started.elapsed() + pause > self.policy.retry_for {
                        return Err(match e {
                            FrameError::Io(source) => CallError::Io { addr: self.addr.clone(), source },
                            other => CallError::Protocol { addr: self.addr.clone(), source: other },
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn attempt<Q: Message + Clone, A: Message>(&mut self, call_id: u64, req: &Q) -> Result<Response<A>, FrameError> {
        if self.stream.is_none() {
            self.stream = Some(self.connect()?);
        }
        let Some(stream) = self.stream.as_mut() else { unreachable!("connected above") };
        let header = RequestHeader {
            call_id,
            client_id: self.caller.client_id,
            user: self.caller.user.clone(),
            groups: self.caller.groups.clone(),
        };
        let frame = rpc::encode_frame(&Request { header, body: req.clone() }, MAX_FRAME_LEN)?;
        stream.write_all(&frame)?;
        loop {
            let resp: Response<A> = rpc::read_message(stream, MAX_FRAME_LEN)?;
            // An answer to an older call of this connection (one whose wait timed out) is
            // skipped; calls are sequential, so nothing else is in flight.
            if resp.call_id == call_id {
                return Ok(resp);
            }
        }
    }

    fn connect(&self) -> Result<TcpStream, FrameError> {
        let addrs: Vec<SocketAddr> = self.addr.to_socket_addrs()?.collect();
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} resolves to nothing", self.addr));
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.policy.io_timeout) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(self.policy.io_timeout))?;
                    s.set_write_timeout(Some(self.policy.io_timeout))?;
                    s.set_nodelay(true)?;
                    s.write_all(&self.protocol.preamble())?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last.into())
    }
}
