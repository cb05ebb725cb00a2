//! What the keeper's log holds: one [`Txn`] per entry. Applying the same entries in the same
//! order always gives the same tree, so every input that could differ between runs (the time,
//! the session's identities, a new session's password) is in the entry itself.

use keeper_proto::{DecodeError, Id, Jute, Reader, Writer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// Wall-clock milliseconds at proposal; only for ctime/mtime and TTL expiry, never for ordering.
    pub time_ms: i64,
    /// The session the change is made for (0 for the server's own housekeeping).
    pub session: i64,
    /// The member that proposed it, and that member's number for the proposal: whoever assigns
    /// the log index, the proposer finds its waiting client by these when the entry is applied.
    pub member: u64,
    pub seq: u64,
    /// The member's previous proposal in the same stream, or 0 when this one starts a stream.
    /// An entry whose `prev` is not the last applied proposal of its member is skipped, so a
    /// member's proposals apply as a gap-free prefix of what it sent (see `DataTree::apply`).
    pub prev: u64,
    /// The session's authenticated ids when it was proposed; ACLs are checked against these.
    pub auth: Vec<Id>,
    pub kind: TxnKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnKind {
    /// Opens a session; its id is derived from the entry's index.
    CreateSession { timeout_ms: i32, passwd: Vec<u8> },
    /// Closes `Txn::session`, by the client's request or by expiry.
    CloseSession,
    /// A client's write request, as its opcode and jute body.
    Request { op: i32, body: Vec<u8> },
    /// Deletes an empty container or an expired TTL node, if it still qualifies when applied.
    Reap { path: String },
    /// The ensemble's first configuration (`server.N` lines), proposed by its first leader;
    /// applied only while `/zookeeper/config` is still empty.
    InitConfig { servers: Vec<(u64, String)> },
    /// `Txn::session`'s client reconnected to `Txn::member`: that member owns it from now on,
    /// and the session's connection epoch is this entry's zxid.
    MoveSession,
    /// `Txn::session`'s herd options, whole: socket-close fast expiry (0 = off) and the
    /// heartbeat interval its client promises (0 = none declared).
    SessionOptions { fast_grace_ms: u32, heartbeat_ms: u32 },
    /// `Txn::session`'s connection at epoch `attached` broke abnormally and the grace passed:
    /// expire the session if it is still at that epoch.
    ExpireDetached { attached: i64 },
}

impl Txn {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.i64(self.time_ms);
        w.i64(self.session);
        w.i64(self.member as i64);
        w.i64(self.seq as i64);
        w.i64(self.prev as i64);
        self.auth.encode(&mut w);
        match &self.kind {
            TxnKind::CreateSession { timeout_ms, passwd } => {
                w.i32(1);
                w.i32(*timeout_ms);
                w.buffer(Some(passwd));
            }
            TxnKind::CloseSession => w.i32(2),
            TxnKind::Request { op, body } => {
                w.i32(3);
                w.i32(*op);
                w.buffer(Some(body));
            }
            TxnKind::Reap { path } => {
                w.i32(4);
                w.ustring(path);
            }
            TxnKind::MoveSession => w.i32(6),
            TxnKind::SessionOptions { fast_grace_ms, heartbeat_ms } => {
                w.i32(7);
                w.i32(*fast_grace_ms as i32);
                w.i32(*heartbeat_ms as i32);
            }
            TxnKind::ExpireDetached { attached } => {
                w.i32(8);
                w.i64(*attached);
            }
            TxnKind::InitConfig { servers } => {
                w.i32(5);
                w.i32(servers.len() as i32);
                for (id, spec) in servers {
                    w.i64(*id as i64);
                    w.ustring(spec);
                }
            }
        }
        w.buf
    }

    pub fn decode(b: &[u8]) -> Result<Txn, DecodeError> {
        let mut r = Reader::new(b);
        let time_ms = r.i64()?;
        let session = r.i64()?;
        let member = r.i64()? as u64;
        let seq = r.i64()? as u64;
        let prev = r.i64()? as u64;
        let auth = Vec::<Id>::decode(&mut r)?;
        let kind = match r.i32()? {
            1 => TxnKind::CreateSession { timeout_ms: r.i32()?, passwd: r.buffer()?.unwrap_or_default() },
            2 => TxnKind::CloseSession,
            3 => TxnKind::Request { op: r.i32()?, body: r.buffer()?.unwrap_or_default() },
            4 => TxnKind::Reap { path: String::decode(&mut r)? },
            5 => {
                let n = r.vec_len(12)?.unwrap_or(0);
                let mut servers = Vec::with_capacity(n);
                for _ in 0..n {
                    servers.push((r.i64()? as u64, String::decode(&mut r)?));
                }
                TxnKind::InitConfig { servers }
            }
            6 => TxnKind::MoveSession,
            7 => TxnKind::SessionOptions { fast_grace_ms: r.i32()? as u32, heartbeat_ms: r.i32()? as u32 },
            8 => TxnKind::ExpireDetached { attached: r.i64()? },
            n => return Err(DecodeError::BadValue { what: "txn kind", value: n as i64 }),
        };
        r.finish()?;
        Ok(Txn { time_ms, session, member, seq, prev, auth, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let auth = vec![Id { scheme: "ip".into(), id: "127.0.0.1".into() }];
        for kind in [
            TxnKind::CreateSession { timeout_ms: 4000, passwd: vec![7; 16] },
            TxnKind::CloseSession,
            TxnKind::Request { op: 1, body: vec![1, 2, 3] },
            TxnKind::Reap { path: "/c".into() },
            TxnKind::MoveSession,
            TxnKind::SessionOptions { fast_grace_ms: 1000, heartbeat_ms: 100 },
            TxnKind::ExpireDetached { attached: 77 },
            TxnKind::InitConfig { servers: vec![(1, "h:1:2".into()), (2, "h:3:4:observer;5".into())] },
        ] {
            let t = Txn { time_ms: 12, session: 34, member: 3, seq: u64::MAX - 1, prev: 7, auth: auth.clone(), kind };
            assert_eq!(Txn::decode(&t.encode()).unwrap(), t);
        }
    }
}
