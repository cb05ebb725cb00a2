//! A minimal blocking ZooKeeper client for the failover trial: connect (new or resumed
//! session), create, setData, one request at a time. xtask depends on nothing of herd's, so this
//! writes the few jute records it needs by hand (docs/keeper-formats.md has the wire format).

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const OP_CREATE: i32 = 1;
const OP_SET_DATA: i32 = 5;
pub const ERR_NODE_EXISTS: i32 = -110;
pub const ERR_SESSION_EXPIRED: i32 = -112;
/// ZooKeeper's default jute.maxbuffer; no reply here comes near it.
const MAX_FRAME: usize = 0xfffff;

/// A session a client may resume on another server.
#[derive(Clone)]
pub struct Session {
    pub id: i64,
    pub passwd: Vec<u8>,
}

/// The server answered a request with a ZooKeeper error code.
#[derive(Debug)]
pub struct ZkError(pub i32);

impl std::fmt::Display for ZkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZooKeeper error {}", self.0)
    }
}

impl std::error::Error for ZkError {}

fn put_i32(b: &mut Vec<u8>, v: i32) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_buf(b: &mut Vec<u8>, v: &[u8]) {
    put_i32(b, v.len() as i32);
    b.extend_from_slice(v);
}

/// A big-endian cursor over a reply that refuses to read past its end.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            bail!("reply ends {} bytes early", n - self.0.len());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into()?))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into()?))
    }

    fn buf(&mut self) -> Result<Vec<u8>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(n as usize)?.to_vec())
    }
}

pub struct Conn {
    s: TcpStream,
    xid: i32,
    pub session: Session,
    /// The highest zxid this connection has seen, for resuming elsewhere.
    pub last_zxid: i64,
}

impl Conn {
    /// Opens a connection and a session, or resumes `resume` (as a ZooKeeper client does after a
    /// connection loss). Reads time out after two thirds of the negotiated session timeout, the
    /// Java client's rule. A resumed session that the server calls expired is the error
    /// `ZkError(ERR_SESSION_EXPIRED)`.
    pub fn connect(
        addr: &SocketAddr,
        resume: Option<&Session>,
        last_zxid: i64,
        timeout_ms: i32,
        connect_timeout: Duration,
    ) -> Result<Conn> {
        let s = TcpStream::connect_timeout(addr, connect_timeout).with_context(|| format!("connecting to {addr}"))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(connect_timeout.max(Duration::from_millis(timeout_ms as u64 * 2 / 3))))?;
        s.set_write_timeout(Some(connect_timeout))?;
        let mut c = Conn { s, xid: 0, session: Session { id: 0, passwd: vec![0; 16] }, last_zxid };
        let mut b = Vec::new();
        put_i32(&mut b, 0); // protocolVersion
        put_i64(&mut b, last_zxid);
        put_i32(&mut b, timeout_ms);
        put_i64(&mut b, resume.map_or(0, |r| r.id));
        put_buf(&mut b, resume.map_or(&[0u8; 16][..], |r| &r.passwd));
        b.push(0); // readOnly = false
        c.send(&b)?;
        let f = c.read_frame().with_context(|| format!("{addr} closed the connection before answering connect"))?;
        let mut r = Cursor(&f);
        let _protocol = r.i32()?;
        let timeout = r.i32()?;
        let id = r.i64()?;
        let passwd = r.buf()?;
        if timeout <= 0 {
            let e = anyhow::Error::new(ZkError(ERR_SESSION_EXPIRED));
            return Err(e.context(format!("{addr}: session {:#x} expired", resume.map_or(0, |r| r.id))));
        }
        c.session = Session { id, passwd };
        c.s.set_read_timeout(Some(Duration::from_millis(timeout as u64 * 2 / 3)))?;
        Ok(c)
    }

    fn send(&mut self, body: &[u8]) -> Result<()> {
        let mut f = Vec::with_capacity(4 + body.len());
        put_buf(&mut f, body);
        self.s.write_all(&f)?;
        Ok(())
    }

    fn read_frame(&mut self) -> Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len)?;
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_FRAME {
            bail!("reply frame of {n} bytes");
        }
        let mut f = vec![0u8; n];
        self.s.read_exact(&mut f)?;
        Ok(f)
    }

    /// Sends one request and waits for its reply; returns the reply's zxid. Notifications and
    /// pings in between are skipped.
    fn request(&mut self, op: i32, record: &[u8]) -> Result<i64> {
        self.xid += 1;
        let mut b = Vec::with_capacity(8 + record.len());
        put_i32(&mut b, self.xid);
        put_i32(&mut b, op);
        b.extend_from_slice(record);
        self.send(&b)?;
        loop {
            let f = self.read_frame()?;
            let mut r = Cursor(&f);
            let (xid, zxid, err) = (r.i32()?, r.i64()?, r.i32()?);
            if xid < 0 {
                continue;
            }
            if xid != self.xid {
                bail!("reply to xid {xid}, expected {}", self.xid);
            }
            if zxid > self.last_zxid {
                self.last_zxid = zxid;
            }
            if err != 0 {
                return Err(ZkError(err).into());
            }
            return Ok(zxid);
        }
    }

    /// Creates a persistent node open to everyone (world:anyone, all permissions).
    pub fn create(&mut self, path: &str, data: &[u8]) -> Result<i64> {
        let mut b = Vec::new();
        put_buf(&mut b, path.as_bytes());
        put_buf(&mut b, data);
        put_i32(&mut b, 1); // one ACL
        put_i32(&mut b, 31); // Perms::ALL
        put_buf(&mut b, b"world");
        put_buf(&mut b, b"anyone");
        put_i32(&mut b, 0); // persistent
        self.request(OP_CREATE, &b)
    }

    pub fn set_data(&mut self, path: &str, data: &[u8]) -> Result<i64> {
        let mut b = Vec::new();
        put_buf(&mut b, path.as_bytes());
        put_buf(&mut b, data);
        put_i32(&mut b, -1); // any version
        self.request(OP_SET_DATA, &b)
    }
}
