//! Guarantee: the per-address connection limit and the per-connection limit on requests in
//! flight bound what one client can take, without breaking ZooKeeper's ordering: replies come
//! back in request order, and a client sees a watch event before data read after the change.

mod common;

use common::KeeperProc;
use keeper_proto::client::SyncClient;
use keeper_proto::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn connect_raw(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = ConnectRequest { timeout_ms: 10_000, passwd: vec![0; 16], ..Default::default() };
    let mut w = Writer::framed();
    req.encode(&mut w);
    s.write_all(&w.into_frame()).unwrap();
    let body = read_frame(&mut s);
    assert!(ConnectResponse::from_bytes(&body).unwrap().timeout_ms > 0);
    s
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut b = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut b).unwrap();
    b
}

fn request(xid: i32, op: OpCode, body: &impl Jute) -> Vec<u8> {
    let mut w = Writer::framed();
    RequestHeader { xid, op: op.code() }.encode(&mut w);
    body.encode(&mut w);
    w.into_frame()
}

#[test]
fn pipelined_requests_past_the_limit_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let k = KeeperProc::start(dir.path(), &["--zk-property", "globalOutstandingLimit=4"]);
    let mut s = connect_raw(k.addr);
    let open = vec![Acl { perms: Perms::ALL, id: Id { scheme: "world".into(), id: "anyone".into() } }];
    // 200 requests, writes and reads interleaved, sent without reading a single reply.
    let mut burst = Vec::new();
    for i in 0..100 {
        let c = CreateRequest { path: format!("/p{i}"), data: Some(vec![i as u8]), acl: open.clone(), flags: 0 };
        burst.extend(request(2 * i + 1, OpCode::Create, &c));
        burst.extend(request(2 * i + 2, OpCode::GetData, &PathWatchRequest { path: format!("/p{i}"), watch: false }));
    }
    s.write_all(&burst).unwrap();
    for i in 0..100 {
        let f = read_frame(&mut s);
        let mut r = Reader::new(&f);
        let h = ReplyHeader::decode(&mut r).unwrap();
        assert_eq!((h.xid, h.err), (2 * i + 1, 0));
        let f = read_frame(&mut s);
        let mut r = Reader::new(&f);
        let h = ReplyHeader::decode(&mut r).unwrap();
        assert_eq!((h.xid, h.err), (2 * i + 2, 0), "the read must see the create sent before it");
        assert_eq!(GetDataResponse::decode(&mut r).unwrap().data, Some(vec![i as u8]));
    }
}

#[test]
fn watch_event_arrives_before_the_data_read_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let k = KeeperProc::start(dir.path(), &[]);
    let mut watcher = connect_raw(k.addr);
    let mut writer = SyncClient::connect(k.addr, 10_000, None).unwrap();
    writer.create("/w", b"old", 0).unwrap();
    watcher.write_all(&request(1, OpCode::GetData, &PathWatchRequest { path: "/w".into(), watch: true })).unwrap();
    let _ = read_frame(&mut watcher);
    writer.set("/w", b"new", -1).unwrap();
    watcher.write_all(&request(2, OpCode::GetData, &PathWatchRequest { path: "/w".into(), watch: false })).unwrap();
    let f = read_frame(&mut watcher);
    let mut r = Reader::new(&f);
    let h = ReplyHeader::decode(&mut r).unwrap();
    assert_eq!(h.xid, xid::NOTIFICATION, "the event must come first");
    let ev = WatcherEvent::decode(&mut r).unwrap();
    assert_eq!((ev.kind, ev.path.as_str()), (EventType::NodeDataChanged.code(), "/w"));
    let f = read_frame(&mut watcher);
    let mut r = Reader::new(&f);
    assert_eq!(ReplyHeader::decode(&mut r).unwrap().xid, 2);
    assert_eq!(GetDataResponse::decode(&mut r).unwrap().data, Some(b"new".to_vec()));
}

#[test]
fn connections_per_address_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let k = KeeperProc::start(dir.path(), &["--zk-property", "maxClientCnxns=3"]);
    let mut held: Vec<SyncClient> = (0..3).map(|_| SyncClient::connect(k.addr, 10_000, None).unwrap()).collect();
    assert!(SyncClient::connect(k.addr, 10_000, None).is_err(), "a fourth connection from 127.0.0.1 must be refused");
    // Those already connected are unaffected, and a slot frees when one leaves.
    held[0].create("/ok", b"", 0).unwrap();
    held.pop().unwrap().close().unwrap();
    // The slot frees when the server has finished with the closed connection.
    let mut again = (0..200)
        .find_map(|_| {
            SyncClient::connect(k.addr, 10_000, None).ok().or_else(|| {
                std::thread::sleep(Duration::from_millis(50));
                None
            })
        })
        .expect("a slot frees after a client leaves");
    assert!(again.exists("/ok", false).unwrap().is_some());
}
