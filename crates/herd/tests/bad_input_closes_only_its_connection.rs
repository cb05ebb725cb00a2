//! Guarantee: an oversize frame, garbage bytes or a malformed request close only the
//! connection that sent them; every other client's session carries on, and nothing is lost.

mod common;

use common::KeeperProc;
use keeper_proto::client::SyncClient;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn closed_by_server(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn oversize_garbage_and_malformed_frames() {
    let dir = tempfile::tempdir().unwrap();
    let k = KeeperProc::start(dir.path(), &["--zk-property", "jute.maxbuffer=4096"]);
    let mut good = SyncClient::connect(k.addr, 10_000, None).unwrap();
    good.create("/keep", b"v1", 0).unwrap();

    // An oversize connect frame.
    let mut s = TcpStream::connect(k.addr).unwrap();
    s.write_all(&(1u32 << 30).to_be_bytes()).unwrap();
    assert!(closed_by_server(s));

    // Garbage bytes instead of a connect request.
    let mut s = TcpStream::connect(k.addr).unwrap();
    s.write_all(&[0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    assert!(closed_by_server(s));

    // A session whose request frame is oversize after a valid connect.
    let bad = SyncClient::connect(k.addr, 10_000, None).unwrap();
    let mut raw = TcpStream::connect(k.addr).unwrap();
    drop(bad);
    let connect = keeper_proto::ConnectRequest { timeout_ms: 10_000, passwd: vec![0; 16], ..Default::default() };
    let mut w = keeper_proto::Writer::framed();
    keeper_proto::Jute::encode(&connect, &mut w);
    raw.write_all(&w.into_frame()).unwrap();
    raw.write_all(&8192u32.to_be_bytes()).unwrap();
    raw.write_all(&vec![7u8; 8192]).unwrap();
    assert!(closed_by_server(raw));

    // A malformed request: a create whose path length runs past the frame.
    let mut raw = TcpStream::connect(k.addr).unwrap();
    let mut w = keeper_proto::Writer::framed();
    keeper_proto::Jute::encode(&connect, &mut w);
    raw.write_all(&w.into_frame()).unwrap();
    let mut w = keeper_proto::Writer::framed();
    w.i32(1); // xid
    w.i32(1); // create
    w.i32(1000); // path length, but no bytes follow
    raw.write_all(&w.into_frame()).unwrap();
    assert!(closed_by_server(raw));

    // A data value over jute.maxbuffer from the good client's own session closes only it...
    let mut big = SyncClient::connect(k.addr, 10_000, None).unwrap();
    assert!(big.create("/big", &vec![1u8; 8192], 0).is_err());

    // ...and the first client never noticed any of it.
    assert_eq!(good.get("/keep", false).unwrap().0, b"v1");
    good.set("/keep", b"v2", -1).unwrap();
    assert!(good.exists("/big", false).unwrap().is_none());
    assert_eq!(good.get("/keep", false).unwrap().0, b"v2");
}

#[test]
fn random_bytes_never_take_the_server_down() {
    let dir = tempfile::tempdir().unwrap();
    let k = KeeperProc::start(dir.path(), &[]);
    let mut good = SyncClient::connect(k.addr, 10_000, None).unwrap();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..200 {
        let mut s = TcpStream::connect(k.addr).unwrap();
        let len = 1 + (round * 7) % 300;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = s.write_all(&bytes);
    }
    good.create("/still-here", b"", 0).unwrap();
    assert!(good.exists("/still-here", false).unwrap().is_some());
}
