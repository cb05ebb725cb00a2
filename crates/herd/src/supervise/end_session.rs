//! Ending a dead child's keeper session: resume it with its id and password, then send
//! closeSession, the ZooKeeper protocol's own way to end a session. The keeper then deletes the
//! session's ephemerals (the child's member znode) at once instead of after the session timeout.
//!
//! This is a tiny async client rather than `keeper_proto::client::SyncClient` on a blocking
//! thread: every step has its own timeout here, and nothing is left running on a thread that
//! would hold up the supervisor's exit.

use keeper_proto::{ConnectRequest, ConnectResponse, Jute, OpCode, Reader, ReplyHeader, RequestHeader, Writer};
use member::report::SessionReport;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// One host's chance (resolve, connect, resume, close). Loopback answers in milliseconds; this
/// only bounds a host that accepts and then says nothing (a stopped process).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between rounds over the hosts, doubling up to [`ROUND_PAUSE_MAX`].
const ROUND_PAUSE: Duration = Duration::from_millis(50);
const ROUND_PAUSE_MAX: Duration = Duration::from_secs(1);
/// The largest reply frame accepted: the replies here are a few dozen bytes.
const FRAME_MAX: usize = 1 << 20;
/// Requested session timeout for the resume; the keeper clamps it, and it does not matter: the
/// session is closed in the next request.
const RESUME_TIMEOUT_MS: i32 = 30_000;
const CLOSE_XID: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The keeper at this address closed the session.
    Closed(SocketAddr),
    /// The keeper at this address said the session no longer exists (expired or closed).
    AlreadyGone(SocketAddr),
}

/// Ends the session, trying the hosts of its connect string in order, round after round, until
/// one answers or `bound` passes. The error never contains the password.
pub async fn end_session(report: &SessionReport, bound: Duration) -> Result<Ended, String> {
    let deadline = Instant::now() + bound;
    let hosts = connect_hosts(&report.hosts);
    if hosts.is_empty() {
        return Err(format!("connect string {:?} names no host", report.hosts));
    }
    let mut pause = ROUND_PAUSE;
    let mut last_error = String::new();
    loop {
        for host in &hosts {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("gave up after {bound:?}; last error: {last_error}"));
            }
            match timeout(ATTEMPT_TIMEOUT.min(left), end_at(host, report)).await {
                Ok(Ok(ended)) => return Ok(ended),
                Ok(Err(e)) => last_error = format!("{host}: {e}"),
                Err(_) => last_error = format!("{host}: no answer within {:?}", ATTEMPT_TIMEOUT.min(left)),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(ROUND_PAUSE_MAX);
    }
}

/// The hosts of a ZooKeeper connect string (`h1:p1,h2:p2/chroot`), in order.
fn connect_hosts(connect: &str) -> Vec<String> {
    let hosts = connect.split('/').next().unwrap_or_default();
    hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect()
}

async fn end_at(host: &str, report: &SessionReport) -> Result<Ended, String> {
    let mut last_error = format!("{host} resolves to no address");
    for addr in tokio::net::lookup_host(host).await.map_err(|e| e.to_string())? {
        match close_at(addr, report).await {
            Ok(ended) => return Ok(ended),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

async fn close_at(addr: SocketAddr, report: &SessionReport) -> Result<Ended, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: RESUME_TIMEOUT_MS,
        session_id: report.session_id,
        passwd: report.passwd.clone(),
        read_only: false,
    };
    let mut w = Writer::framed();
    req.encode(&mut w);
    s.write_all(&w.into_frame()).await.map_err(|e| e.to_string())?;
    let resp = ConnectResponse::from_bytes(&read_frame(&mut s).await?).map_err(|e| e.to_string())?;
    if resp.timeout_ms <= 0 {
        return Ok(Ended::AlreadyGone(addr));
    }
    let mut w = Writer::framed();
    RequestHeader { xid: CLOSE_XID, op: OpCode::CloseSession.code() }.encode(&mut w);
    s.write_all(&w.into_frame()).await.map_err(|e| e.to_string())?;
    // Anything before the reply (a watch notification) is skipped; the connection carries
    // nothing else, so a few frames at most.
    for _ in 0..16 {
        let frame = read_frame(&mut s).await?;
        let h = ReplyHeader::decode(&mut Reader::new(&frame)).map_err(|e| e.to_string())?;
        if h.xid == CLOSE_XID {
            return match h.err {
                0 => Ok(Ended::Closed(addr)),
                err => Err(format!("closeSession answered error {err}")),
            };
        }
    }
    Err("no reply to closeSession".into())
}

async fn read_frame(s: &mut TcpStream) -> Result<Vec<u8>, String> {
    let n = s.read_u32().await.map_err(|e| e.to_string())? as usize;
    if n > FRAME_MAX {
        return Err(format!("a {n}-byte reply frame"));
    }
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_strings_split_into_hosts_in_order() {
        assert_eq!(connect_hosts("a:1,b:2"), ["a:1", "b:2"]);
        assert_eq!(connect_hosts("127.0.0.1:2181,[::1]:2182/herd/x"), ["127.0.0.1:2181", "[::1]:2182"]);
        assert!(connect_hosts("").is_empty());
    }
}
