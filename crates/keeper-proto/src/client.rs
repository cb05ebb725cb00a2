//! A small blocking client: enough for herd's command-line tools and tests to talk to any
//! ZooKeeper-protocol server. One request at a time; watch events that arrive in between are
//! kept in [`SyncClient::events`].

use crate::codes::{ErrorCode, OpCode};
use crate::jute::{Jute, Reader, Writer};
use crate::records::*;
use crate::xid;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("server answered {0:?} ({1})")]
    Keeper(ErrorCode, i32),
    #[error("bad reply: {0}")]
    Decode(#[from] crate::jute::DecodeError),
    #[error("session expired")]
    Expired,
}

pub struct SyncClient {
    stream: TcpStream,
    next_xid: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub timeout_ms: i32,
    pub last_zxid: i64,
    /// Watch events received while waiting for replies.
    pub events: Vec<WatcherEvent>,
}

fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > 64 << 20 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "reply frame too large"));
    }
    let mut b = vec![0u8; n];
    s.read_exact(&mut b)?;
    Ok(b)
}

impl SyncClient {
    /// Opens a new session (or resumes `resume` = (id, password)).
    pub fn connect(addr: SocketAddr, timeout_ms: i32, resume: Option<(i64, Vec<u8>)>) -> Result<Self, ClientError> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        let (session_id, passwd) = resume.unwrap_or((0, vec![0; 16]));
        let req =
            ConnectRequest { protocol_version: 0, last_zxid_seen: 0, timeout_ms, session_id, passwd, read_only: false };
        let mut w = Writer::framed();
        req.encode(&mut w);
        stream.write_all(&w.into_frame())?;
        let resp = ConnectResponse::from_bytes(&read_frame(&mut stream)?)?;
        if resp.timeout_ms <= 0 {
            return Err(ClientError::Expired);
        }
        Ok(SyncClient {
            stream,
            next_xid: 1,
            session_id: resp.session_id,
            passwd: resp.passwd.unwrap_or_default(),
            timeout_ms: resp.timeout_ms,
            last_zxid: 0,
            events: Vec::new(),
        })
    }

    /// How long a reply may take before the call fails with an i/o error (30 s from connect).
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Sends one request and returns its reply body; Err(Keeper) for a nonzero error code.
    pub fn call(&mut self, op: OpCode, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.send_and_wait(xid, op, body)
    }

    /// Adds an identity to the session (`addauth`), e.g. ("digest", "user:password").
    pub fn add_auth(&mut self, scheme: &str, auth: &[u8]) -> Result<(), ClientError> {
        let packet = AuthPacket { kind: 0, scheme: scheme.into(), auth: Some(auth.to_vec()) };
        self.send_and_wait(xid::AUTH, OpCode::Auth, &packet.to_bytes()).map(|_| ())
    }

    /// Sends a request and reads until the reply with `xid`, keeping watch events that come first.
    fn send_and_wait(&mut self, xid: i32, op: OpCode, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let mut w = Writer::framed();
        RequestHeader { xid, op: op.code() }.encode(&mut w);
        w.buf.extend_from_slice(body);
        self.stream.write_all(&w.into_frame())?;
        loop {
            let f = read_frame(&mut self.stream)?;
            let mut r = Reader::new(&f);
            let h = ReplyHeader::decode(&mut r)?;
            if h.xid == xid::NOTIFICATION {
                self.events.push(WatcherEvent::decode(&mut r)?);
                continue;
            }
            if h.xid != xid {
                continue;
            }
            if h.zxid > 0 {
                self.last_zxid = h.zxid;
            }
            if h.err != 0 {
                let code = ErrorCode::try_from(h.err).unwrap_or(ErrorCode::SystemError);
                return Err(ClientError::Keeper(code, h.err));
            }
            return Ok(r.rest().to_vec());
        }
    }

    /// Creates a node with the given ACL.
    pub fn create_with_acl(
        &mut self,
        path: &str,
        data: &[u8],
        acl: Vec<Acl>,
        flags: i32,
    ) -> Result<String, ClientError> {
        let req = CreateRequest { path: path.into(), data: Some(data.to_vec()), acl, flags };
        Ok(CreateResponse::from_bytes(&self.call(OpCode::Create, &req.to_bytes())?)?.path)
    }

    /// Waits for the next watch event.
    pub fn next_event(&mut self) -> Result<WatcherEvent, ClientError> {
        if !self.events.is_empty() {
            return Ok(self.events.remove(0));
        }
        loop {
            let f = read_frame(&mut self.stream)?;
            let mut r = Reader::new(&f);
            let h = ReplyHeader::decode(&mut r)?;
            if h.xid == xid::NOTIFICATION {
                return Ok(WatcherEvent::decode(&mut r)?);
            }
        }
    }

    pub fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Result<String, ClientError> {
        let acl = vec![Acl { perms: 31, id: Id { scheme: "world".into(), id: "anyone".into() } }];
        let req = CreateRequest { path: path.into(), data: Some(data.to_vec()), acl, flags };
        Ok(CreateResponse::from_bytes(&self.call(OpCode::Create, &req.to_bytes())?)?.path)
    }

    pub fn get(&mut self, path: &str, watch: bool) -> Result<(Vec<u8>, Stat), ClientError> {
        let b = self.call(OpCode::GetData, &PathWatchRequest { path: path.into(), watch }.to_bytes())?;
        let r = GetDataResponse::from_bytes(&b)?;
        Ok((r.data.unwrap_or_default(), r.stat))
    }

    pub fn set(&mut self, path: &str, data: &[u8], version: i32) -> Result<Stat, ClientError> {
        let req = SetDataRequest { path: path.into(), data: Some(data.to_vec()), version };
        Ok(Stat::from_bytes(&self.call(OpCode::SetData, &req.to_bytes())?)?)
    }

    pub fn delete(&mut self, path: &str, version: i32) -> Result<(), ClientError> {
        self.call(OpCode::Delete, &DeleteRequest { path: path.into(), version }.to_bytes()).map(|_| ())
    }

    pub fn exists(&mut self, path: &str, watch: bool) -> Result<Option<Stat>, ClientError> {
        match self.call(OpCode::Exists, &PathWatchRequest { path: path.into(), watch }.to_bytes()) {
            Ok(b) => Ok(Some(Stat::from_bytes(&b)?)),
            Err(ClientError::Keeper(ErrorCode::NoNode, _)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn children(&mut self, path: &str, watch: bool) -> Result<Vec<String>, ClientError> {
        let b = self.call(OpCode::GetChildren, &PathWatchRequest { path: path.into(), watch }.to_bytes())?;
        Ok(GetChildrenResponse::from_bytes(&b)?.children)
    }

    /// ZooKeeper's reconfig: servers joining (`server.N=host:peer:election[:type];clientPort`,
    /// comma-separated) and leaving (ids), or a whole new member list; `from_config` -1 for
    /// any. Returns `/zookeeper/config` after the change.
    pub fn reconfig(
        &mut self,
        joining: &str,
        leaving: &str,
        new_members: &str,
        from_config: i64,
    ) -> Result<(Vec<u8>, Stat), ClientError> {
        let req = ReconfigRequest {
            joining_servers: joining.into(),
            leaving_servers: leaving.into(),
            new_members: new_members.into(),
            cur_config_id: from_config,
        };
        let r = GetDataResponse::from_bytes(&self.call(OpCode::Reconfig, &req.to_bytes())?)?;
        Ok((r.data.unwrap_or_default(), r.stat))
    }

    /// ZooKeeper's sync: once it returns, reads through this connection see every write that
    /// was committed before it was sent.
    pub fn sync(&mut self, path: &str) -> Result<(), ClientError> {
        self.call(OpCode::Sync, &PathRequest { path: path.into() }.to_bytes()).map(|_| ())
    }

    /// Ends the session (its ephemerals go at once).
    pub fn close(mut self) -> Result<(), ClientError> {
        self.call(OpCode::CloseSession, &[]).map(|_| ())
    }
}

/// Sends a four-letter word and returns the whole answer.
pub fn four_letter_word(addr: SocketAddr, word: &str) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
