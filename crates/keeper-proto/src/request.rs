//! One enum for every request a client may send after connecting, decoded from a frame's body.

use crate::codes::OpCode;
use crate::jute::{DecodeError, Jute, Reader};
use crate::records::*;

/// The most ops one multi may carry; a bound so that a hostile frame cannot make a huge vector.
pub const MULTI_OPS_MAX: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(PathWatchRequest),
    GetData(PathWatchRequest),
    SetData(SetDataRequest),
    GetAcl(PathRequest),
    SetAcl(SetAclRequest),
    GetChildren(PathWatchRequest),
    GetChildren2(PathWatchRequest),
    Sync(PathRequest),
    Ping,
    Check(CheckVersionRequest),
    Multi(Vec<Request>),
    MultiRead(Vec<Request>),
    CheckWatches(WatchesRequest),
    RemoveWatches(WatchesRequest),
    Auth(AuthPacket),
    SetWatches(SetWatches2),
    SetWatches2(SetWatches2),
    GetEphemerals(PathRequest),
    GetAllChildrenNumber(PathRequest),
    AddWatch(AddWatchRequest),
    WhoAmI,
    CloseSession,
    Reconfig(ReconfigRequest),
    Sasl,
    DeleteContainer(PathRequest),
}

impl Request {
    /// Decodes the body that follows a [`RequestHeader`] of type `op`.
    pub fn decode(op: i32, body: &[u8]) -> Result<Request, DecodeError> {
        let mut r = Reader::new(body);
        let req = Self::decode_one(op, &mut r)?;
        // Old clients pad some requests; ZooKeeper ignores trailing bytes, and so do we.
        Ok(req)
    }

    fn decode_one(op: i32, r: &mut Reader<'_>) -> Result<Request, DecodeError> {
        let op = OpCode::try_from(op).map_err(|_| DecodeError::UnknownOpCode(op))?;
        Ok(match op {
            OpCode::Create => Request::Create(Jute::decode(r)?),
            OpCode::Create2 => Request::Create2(Jute::decode(r)?),
            OpCode::CreateContainer => Request::CreateContainer(Jute::decode(r)?),
            OpCode::CreateTtl => Request::CreateTtl(Jute::decode(r)?),
            OpCode::Delete => Request::Delete(Jute::decode(r)?),
            OpCode::Exists => Request::Exists(Jute::decode(r)?),
            OpCode::GetData => Request::GetData(Jute::decode(r)?),
            OpCode::SetData => Request::SetData(Jute::decode(r)?),
            OpCode::GetAcl => Request::GetAcl(Jute::decode(r)?),
            OpCode::SetAcl => Request::SetAcl(Jute::decode(r)?),
            OpCode::GetChildren => Request::GetChildren(Jute::decode(r)?),
            OpCode::GetChildren2 => Request::GetChildren2(Jute::decode(r)?),
            OpCode::Sync => Request::Sync(Jute::decode(r)?),
            OpCode::Ping => Request::Ping,
            OpCode::Check => Request::Check(Jute::decode(r)?),
            OpCode::Multi => Request::Multi(Self::decode_multi(r, false)?),
            OpCode::MultiRead => Request::MultiRead(Self::decode_multi(r, true)?),
            OpCode::CheckWatches => Request::CheckWatches(Jute::decode(r)?),
            OpCode::RemoveWatches => Request::RemoveWatches(Jute::decode(r)?),
            OpCode::Auth => Request::Auth(Jute::decode(r)?),
            OpCode::SetWatches => {
                let w = SetWatches::decode(r)?;
                Request::SetWatches(SetWatches2 {
                    relative_zxid: w.relative_zxid,
                    data_watches: w.data_watches,
                    exist_watches: w.exist_watches,
                    child_watches: w.child_watches,
                    ..Default::default()
                })
            }
            OpCode::SetWatches2 => Request::SetWatches2(Jute::decode(r)?),
            OpCode::GetEphemerals => Request::GetEphemerals(Jute::decode(r)?),
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(Jute::decode(r)?),
            OpCode::AddWatch => Request::AddWatch(Jute::decode(r)?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Reconfig => Request::Reconfig(Jute::decode(r)?),
            OpCode::Sasl => Request::Sasl,
            OpCode::DeleteContainer => Request::DeleteContainer(Jute::decode(r)?),
            OpCode::Notification | OpCode::CreateSession | OpCode::Error => {
                return Err(DecodeError::UnknownOpCode(op.code()))
            }
        })
    }

    fn decode_multi(r: &mut Reader<'_>, read: bool) -> Result<Vec<Request>, DecodeError> {
        let mut ops = Vec::new();
        loop {
            let h = MultiHeader::decode(r)?;
            if h.done {
                return Ok(ops);
            }
            if ops.len() >= MULTI_OPS_MAX {
                return Err(DecodeError::BadValue { what: "multi op count", value: ops.len() as i64 });
            }
            let allowed = if read { matches!(h.op, 4 | 8) } else { matches!(h.op, 1 | 2 | 5 | 13 | 15 | 19 | 21) };
            if !allowed {
                return Err(DecodeError::BadValue { what: "multi op type", value: h.op as i64 });
            }
            ops.push(Self::decode_one(h.op, r)?);
        }
    }

    /// The opcode this request was sent as.
    pub fn op(&self) -> OpCode {
        match self {
            Request::Create(_) => OpCode::Create,
            Request::Create2(_) => OpCode::Create2,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Sync(_) => OpCode::Sync,
            Request::Ping => OpCode::Ping,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CloseSession => OpCode::CloseSession,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::Sasl => OpCode::Sasl,
            Request::DeleteContainer(_) => OpCode::DeleteContainer,
        }
    }

    /// Whether the request changes the tree (and so goes through the log).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Create2(_)
                | Request::CreateContainer(_)
                | Request::CreateTtl(_)
                | Request::Delete(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Check(_)
                | Request::Multi(_)
                | Request::CloseSession
                | Request::DeleteContainer(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::Writer;

    #[test]
    fn multi_decodes_until_done() {
        let mut w = Writer::new();
        MultiHeader { op: 1, done: false, err: -1 }.encode(&mut w);
        CreateRequest { path: "/a".into(), data: Some(vec![1]), acl: vec![], flags: 0 }.encode(&mut w);
        MultiHeader { op: 13, done: false, err: -1 }.encode(&mut w);
        CheckVersionRequest { path: "/a".into(), version: 0 }.encode(&mut w);
        MultiHeader::end().encode(&mut w);
        let Request::Multi(ops) = Request::decode(14, &w.buf).unwrap() else { panic!() };
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1].op(), OpCode::Check);
    }

    #[test]
    fn multi_refuses_reads_and_nesting() {
        let mut w = Writer::new();
        MultiHeader { op: 14, done: false, err: -1 }.encode(&mut w);
        assert!(Request::decode(14, &w.buf).is_err());
    }

    /// A bounded property test: no byte sequence, for any opcode, panics the decoder.
    #[test]
    fn decoder_is_total_on_random_bytes() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let ops = [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 17, 18, 19, 21, 22, 100, 101, 103, 104, 105, 106, 107, 999,
            -5,
        ];
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Sometimes plant small plausible lengths so decoding goes deeper.
            if len >= 8 && next() % 2 == 0 {
                buf[..4].copy_from_slice(&((next() % 8) as i32).to_be_bytes());
            }
            let op = ops[(next() % ops.len() as u64) as usize];
            let _ = Request::decode(op, &buf);
            let _ = ConnectRequest::from_bytes(&buf);
        }
    }
}

#[cfg(test)]
mod mutation_tests {
    use super::*;
    use crate::jute::Writer;

    fn valid_encodings() -> Vec<(i32, Vec<u8>)> {
        let acl = vec![Acl { perms: 31, id: Id { scheme: "world".into(), id: "anyone".into() } }];
        let create = CreateRequest { path: "/a/b".into(), data: Some(b"data".to_vec()), acl: acl.clone(), flags: 3 };
        let mut multi = Writer::new();
        MultiHeader { op: 1, done: false, err: -1 }.encode(&mut multi);
        create.encode(&mut multi);
        MultiHeader { op: 2, done: false, err: -1 }.encode(&mut multi);
        DeleteRequest { path: "/a".into(), version: 4 }.encode(&mut multi);
        MultiHeader::end().encode(&mut multi);
        vec![
            (1, create.to_bytes()),
            (21, CreateTtlRequest { path: "/t".into(), data: None, acl: acl.clone(), flags: 5, ttl: 99 }.to_bytes()),
            (5, SetDataRequest { path: "/a".into(), data: Some(vec![1; 40]), version: -1 }.to_bytes()),
            (7, SetAclRequest { path: "/a".into(), acl, version: 2 }.to_bytes()),
            (14, multi.buf),
            (
                105,
                SetWatches2 { relative_zxid: 7, data_watches: vec!["/a".into(), "/b".into()], ..Default::default() }
                    .to_bytes(),
            ),
            (100, AuthPacket { kind: 0, scheme: "digest".into(), auth: Some(b"u:p".to_vec()) }.to_bytes()),
            (106, AddWatchRequest { path: "/x".into(), mode: 1 }.to_bytes()),
        ]
    }

    /// Bounded mutation fuzzing: flips, truncations, insertions and length-field overwrites of
    /// valid requests. Nothing may panic, and an unmutated request must round-trip.
    #[test]
    fn mutated_valid_requests_never_panic() {
        let mut x: u64 = 0xdead_beef_1234_5678;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (op, bytes) in valid_encodings() {
            assert!(Request::decode(op, &bytes).is_ok(), "valid op {op} must decode");
            for _ in 0..5_000 {
                let mut b = bytes.clone();
                match rnd() % 4 {
                    0 => {
                        let i = (rnd() as usize) % b.len();
                        b[i] ^= 1 << (rnd() % 8);
                    }
                    1 => b.truncate((rnd() as usize) % b.len()),
                    2 => {
                        let i = (rnd() as usize) % (b.len() + 1);
                        b.insert(i, rnd() as u8);
                    }
                    _ => {
                        let i = (rnd() as usize) % b.len().saturating_sub(4).max(1);
                        let v = [-1i32, -2, 0, 1, i32::MAX, i32::MIN, 0x7fff][(rnd() % 7) as usize];
                        if i + 4 <= b.len() {
                            b[i..i + 4].copy_from_slice(&v.to_be_bytes());
                        }
                    }
                }
                let _ = Request::decode(op, &b);
            }
        }
    }
}
