use super::*;
use keeper_proto::{MultiHeader, PathWatchRequest};

fn anyone() -> Vec<Acl> {
    open_acl()
}

struct T {
    tree: DataTree,
    index: u64,
}

impl T {
    fn new() -> T {
        let mut tree = DataTree::new();
        tree.extended_types = true;
        T { tree, index: 0 }
    }
    fn txn(&mut self, session: i64, kind: TxnKind) -> Outcome {
        self.index += 1;
        let t =
            Txn { time_ms: 1000 + self.index as i64, session, member: 1, seq: self.index, prev: 0, auth: vec![], kind };
        self.tree.apply(self.index, &t)
    }
    fn req(&mut self, session: i64, r: Request) -> Outcome {
        let (op, body) = encode(&r);
        self.txn(session, TxnKind::Request { op, body })
    }
    fn create(&mut self, session: i64, p: &str, flags: i32) -> Outcome {
        self.req(
            session,
            Request::Create(CreateRequest { path: p.into(), data: Some(b"d".to_vec()), acl: anyone(), flags }),
        )
    }
}

fn encode(r: &Request) -> (i32, Vec<u8>) {
    let mut w = Writer::new();
    match r {
        Request::Create(c) => c.encode(&mut w),
        Request::Delete(d) => d.encode(&mut w),
        Request::SetData(s) => s.encode(&mut w),
        Request::Check(c) => c.encode(&mut w),
        Request::Multi(ops) => {
            for op in ops {
                MultiHeader { op: op.op().code(), done: false, err: -1 }.encode(&mut w);
                let (_, b) = encode(op);
                w.buf.extend_from_slice(&b);
            }
            MultiHeader::end().encode(&mut w);
        }
        _ => unreachable!(),
    }
    (r.op().code(), w.buf)
}

/// The tree's whole state in a canonical order (its maps iterate in any order).
type Canonical = (i64, Vec<(i64, Session)>, Vec<(String, Node)>);

fn canonical(t: &DataTree) -> Canonical {
    let mut nodes: Vec<(String, Node)> = t.nodes.iter().map(|(p, n)| (p.clone(), n.clone())).collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    (t.last_zxid, t.sessions.iter().map(|(k, v)| (*k, v.clone())).collect(), nodes)
}

fn created_path(o: &Outcome) -> String {
    assert_eq!(o.err, 0);
    CreateResponse::from_bytes(&o.body).unwrap().path
}

#[test]
fn sequential_names_use_parent_cversion_and_stats_follow_zookeeper() {
    let mut t = T::new();
    t.create(0, "/q", 0);
    assert_eq!(created_path(&t.create(0, "/q/n-", 2)), "/q/n-0000000000");
    t.create(0, "/q/x", 0);
    t.req(0, Request::Delete(DeleteRequest { path: "/q/x".into(), version: -1 }));
    // Creates bump cversion, deletes do not (ZooKeeper 3.8): the next sequence number is 2.
    assert_eq!(created_path(&t.create(0, "/q/n-", 2)), "/q/n-0000000002");
    let q = t.tree.exists("/q").unwrap();
    assert_eq!(q.cversion, 3);
    assert_eq!(q.num_children, 2);
    assert_eq!(q.pzxid, t.index as i64);
    assert_eq!(q.czxid, 1);
    assert_eq!(q.mzxid, 1);
}

#[test]
fn errors_in_zookeeper_order() {
    let mut t = T::new();
    assert_eq!(t.create(0, "/a/b", 0).err, ErrorCode::NoNode.code());
    assert_eq!(t.create(0, "bad", 0).err, ErrorCode::BadArguments.code());
    t.create(0, "/a", 0);
    assert_eq!(t.create(0, "/a", 0).err, ErrorCode::NodeExists.code());
    t.create(7, "/e", 1);
    assert_eq!(t.create(0, "/e/c", 0).err, ErrorCode::NoChildrenForEphemerals.code());
    t.create(0, "/a/c", 0);
    let del = |v| Request::Delete(DeleteRequest { path: "/a".into(), version: v });
    assert_eq!(t.req(0, del(5)).err, ErrorCode::BadVersion.code());
    assert_eq!(t.req(0, del(-1)).err, ErrorCode::NotEmpty.code());
    assert_eq!(t.req(0, Request::Delete(DeleteRequest { path: "/zookeeper".into(), version: -1 })).err, -8);
    let set = Request::SetData(SetDataRequest { path: "/a".into(), data: None, version: 0 });
    assert_eq!(t.req(0, set.clone()).err, 0);
    assert_eq!(t.req(0, set).err, ErrorCode::BadVersion.code());
    // A failed write still consumes its zxid, as in ZooKeeper.
    assert_eq!(t.tree.last_zxid(), t.index as i64);
}

#[test]
fn failed_multi_changes_nothing_and_reports_each_op() {
    let mut t = T::new();
    t.create(0, "/m", 0);
    let before = canonical(&t.tree);
    let ops = vec![
        Request::Create(CreateRequest { path: "/m/a".into(), data: None, acl: anyone(), flags: 0 }),
        Request::SetData(SetDataRequest { path: "/m".into(), data: Some(vec![1]), version: -1 }),
        Request::Check(CheckVersionRequest { path: "/m".into(), version: 9 }),
        Request::Delete(DeleteRequest { path: "/m/a".into(), version: -1 }),
    ];
    let o = t.req(0, Request::Multi(ops.clone()));
    assert!(o.events.is_empty());
    let mut r = Reader::new(&o.body);
    let mut codes = vec![];
    loop {
        let h = MultiHeader::decode(&mut r).unwrap();
        if h.done {
            break;
        }
        assert_eq!(h.op, -1);
        codes.push(ErrorResponse::decode(&mut r).unwrap().err);
    }
    assert_eq!(codes, vec![0, 0, -103, -2]);
    // Only last_zxid moved.
    let after = canonical(&t.tree);
    assert_eq!(before.0 + 1, after.0);
    assert_eq!((before.1, before.2), (after.1, after.2));

    let mut ok = ops;
    ok[2] = Request::Check(CheckVersionRequest { path: "/m".into(), version: 1 });
    let o = t.req(0, Request::Multi(ok));
    assert!(t.tree.exists("/m/a").is_none());
    assert_eq!(t.tree.exists("/m").unwrap().version, 1);
    assert_eq!(o.events.len(), 5);
}

#[test]
fn closing_a_session_deletes_its_ephemerals() {
    let mut t = T::new();
    let o = t.txn(0, TxnKind::CreateSession { timeout_ms: 4000, passwd: vec![1; 16] });
    let sid = o.created_session.unwrap();
    assert_eq!(sid >> 56, 1);
    t.create(sid, "/e1", 1);
    t.create(sid, "/e2", 3);
    assert_eq!(t.tree.session_ephemerals(sid, "/").len(), 2);
    let o = t.txn(sid, TxnKind::CloseSession);
    assert_eq!(o.closed_session, Some(sid));
    assert!(t.tree.exists("/e1").is_none());
    assert!(t.tree.sessions().is_empty());
    assert!(o.events.iter().any(|e| e.path == "/e1" && e.event == EventType::NodeDeleted));
}

#[test]
fn containers_and_ttls_are_reaped_only_when_due() {
    let mut t = T::new();
    t.req(0, Request::Create(CreateRequest { path: "/c".into(), data: None, acl: anyone(), flags: 4 }));
    assert!(t.tree.reap_candidates(i64::MAX).is_empty(), "a never-used container stays");
    t.create(0, "/c/x", 0);
    t.req(0, Request::Delete(DeleteRequest { path: "/c/x".into(), version: -1 }));
    assert_eq!(t.tree.reap_candidates(0), vec!["/c".to_string()]);
    t.txn(0, TxnKind::Reap { path: "/c".into() });
    assert!(t.tree.exists("/c").is_none());
    let ttl = CreateTtlRequest { path: "/t".into(), data: None, acl: anyone(), flags: 5, ttl: 100 };
    let mut w = Writer::new();
    ttl.encode(&mut w);
    assert_eq!(t.txn(0, TxnKind::Request { op: 21, body: w.buf }).err, 0);
    let mtime = t.tree.exists("/t").unwrap().mtime;
    assert!(t.tree.reap_candidates(mtime + 50).is_empty());
    assert_eq!(t.tree.reap_candidates(mtime + 101), vec!["/t".to_string()]);
}

#[test]
fn snapshot_round_trip() {
    let mut t = T::new();
    t.txn(0, TxnKind::CreateSession { timeout_ms: 4000, passwd: vec![1; 16] });
    t.create(0, "/a", 0);
    t.create(0, "/a/b", 2);
    let s = t.tree.serialize();
    let back = DataTree::deserialize(&s).unwrap();
    assert_eq!(canonical(&back), canonical(&t.tree));
    assert_eq!(back.get_children("/a", &[]).unwrap().0, vec!["b0000000000".to_string()]);
    assert!(DataTree::deserialize(&s[..s.len() - 1]).is_err());
    let _ = PathWatchRequest::default();
}

/// Bytes from disk never panic the decoders: mutated snapshots and log payloads decode to a
/// value or an error.
#[test]
fn mutated_snapshots_and_txns_never_panic() {
    let mut t = T::new();
    t.txn(0, TxnKind::CreateSession { timeout_ms: 4000, passwd: vec![1; 16] });
    for i in 0..5 {
        t.create(0, &format!("/n{i}"), 0);
    }
    let snap = t.tree.serialize();
    let txn = Txn {
        time_ms: 1,
        session: 2,
        member: 0,
        seq: 1,
        prev: 0,
        auth: vec![],
        kind: TxnKind::Reap { path: "/n1".into() },
    }
    .encode();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3_000 {
        for base in [&snap, &txn] {
            let mut b = base.clone();
            let i = (rnd() as usize) % b.len();
            if rnd() % 2 == 0 {
                b[i] ^= 1 << (rnd() % 8);
            } else {
                b.truncate(i);
            }
            let _ = DataTree::deserialize(&b);
            let _ = Txn::decode(&b);
        }
    }
}

#[test]
fn a_members_proposals_apply_as_a_gap_free_prefix() {
    let mut tree = DataTree::new();
    let mut index = 0;
    let mut apply = |member: u64, seq: u64, prev: u64, path: &str| {
        index += 1;
        let (op, body) =
            encode(&Request::Create(CreateRequest { path: path.into(), data: None, acl: anyone(), flags: 0 }));
        let t = Txn { time_ms: 1, session: 0, member, seq, prev, auth: vec![], kind: TxnKind::Request { op, body } };
        tree.apply(index, &t).skipped
    };
    assert!(!apply(1, 10, 0, "/a")); // starts member 1's stream
    assert!(!apply(1, 11, 10, "/b"));
    assert!(!apply(2, 50, 0, "/x")); // member 2's stream is its own
    assert!(apply(1, 13, 12, "/d")); // 12 never applied: 13 is skipped
    assert!(apply(1, 14, 13, "/e")); // and so is everything after it in that stream
    assert!(!apply(1, 20, 0, "/f")); // a new stream applies
    assert!(apply(1, 12, 11, "/c")); // a late entry of the old stream stays out
    assert!(!apply(1, 21, 20, "/g"));
    for (p, there) in [("/a", true), ("/b", true), ("/x", true), ("/c", false), ("/d", false), ("/e", false)] {
        assert_eq!(tree.exists(p).is_some(), there, "{p}");
    }
    let back = DataTree::deserialize(&tree.serialize()).unwrap();
    assert_eq!(back.streams, tree.streams);
}

#[test]
fn writes_count_only_through_the_member_that_owns_the_session() {
    let mut tree = DataTree::new();
    let mut index = 0;
    let mut apply = |member: u64, session: i64, kind: TxnKind| {
        index += 1;
        let t = Txn { time_ms: 1, session, member, seq: index, prev: 0, auth: vec![], kind };
        tree.apply(index, &t)
    };
    let create = |p: &str| {
        let (op, body) =
            encode(&Request::Create(CreateRequest { path: p.into(), data: None, acl: anyone(), flags: 0 }));
        TxnKind::Request { op, body }
    };
    let sid = apply(1, 0, TxnKind::CreateSession { timeout_ms: 4000, passwd: vec![1; 16] }).created_session.unwrap();
    assert_eq!(apply(1, sid, create("/a")).err, 0);
    assert_eq!(apply(2, sid, create("/b")).err, ErrorCode::SessionMoved.code());
    assert_eq!(apply(2, sid, TxnKind::MoveSession).moved_session, Some((sid, 2)));
    assert_eq!(apply(2, sid, create("/b")).err, 0);
    assert_eq!(apply(1, sid, create("/c")).err, ErrorCode::SessionMoved.code());
    let back = DataTree::deserialize(&tree.serialize()).unwrap();
    assert_eq!(back.sessions()[&sid].owner, 2);
}

#[test]
fn a_fast_expiry_applies_only_at_the_connection_epoch_it_saw_break() {
    let mut t = T::new();
    let sid = t.txn(0, TxnKind::CreateSession { timeout_ms: 4000, passwd: vec![1; 16] }).created_session.unwrap();
    assert_eq!(t.txn(sid, TxnKind::SessionOptions { fast_grace_ms: 500, heartbeat_ms: 100 }).err, 0);
    assert_eq!(t.create(sid, "/e", 1).err, 0);
    let first = t.tree.sessions()[&sid].attached;
    assert_eq!(first, (sid & 0x00FF_FFFF_FFFF_FFFF), "a new session is attached at its creation");
    assert_eq!(t.tree.sessions()[&sid].fast_grace_ms, 500);
    assert_eq!(t.tree.sessions()[&sid].heartbeat_ms, 100);
    // The client resumed (anywhere) before the old connection's expiry was applied: no-op.
    t.txn(sid, TxnKind::MoveSession);
    let second = t.tree.sessions()[&sid].attached;
    assert!(second > first);
    let out = t.txn(sid, TxnKind::ExpireDetached { attached: first });
    assert_eq!(out.closed_session, None);
    assert!(t.tree.exists("/e").is_some());
    // An expiry at the current epoch ends the session and its ephemerals, firing watches.
    let out = t.txn(sid, TxnKind::ExpireDetached { attached: second });
    assert_eq!(out.closed_session, Some(sid));
    assert!(t.tree.exists("/e").is_none());
    assert!(out.events.iter().any(|e| e.path == "/e" && e.event == EventType::NodeDeleted));
    // Options for a session that is gone are refused; the snapshot carries both new fields.
    let gone = t.txn(sid, TxnKind::SessionOptions { fast_grace_ms: 1, heartbeat_ms: 0 });
    assert_eq!(gone.err, ErrorCode::SessionExpired.code());
    let sid2 = t.txn(0, TxnKind::CreateSession { timeout_ms: 4000, passwd: vec![2; 16] }).created_session.unwrap();
    t.txn(sid2, TxnKind::SessionOptions { fast_grace_ms: 250, heartbeat_ms: 50 });
    let back = DataTree::deserialize(&t.tree.serialize()).unwrap();
    assert_eq!(back.sessions()[&sid2], t.tree.sessions()[&sid2]);
}
