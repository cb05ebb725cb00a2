//! Guarantee: bad input gets a clear error in the protocol's own terms and loses nothing: a
//! wrong path and a permission denial in Hadoop's shell words, a malformed RPC frame and a
//! malformed data packet refused on their own connection while the daemons keep serving, and
//! a DataNode whose disk is full failing its part of a write cleanly while the write completes
//! on the others.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::dfs::{bytes, strip_ansi, text, DfsCluster, Tmpfs};
use datanode::transfer::client::{create_op, WriteStream};
use dfs_client::{CreateOptions, Dfs};
use dfs_proto::rpc::{self, Protocol, Response, MAX_FRAME_LEN};
use dfs_proto::transfer::{Packet, Status};
use dfs_proto::{ClientResponse, ExtendedBlock};

const MIB: usize = 1 << 20;

#[test]
fn bad_input_is_refused_clearly_and_nothing_is_lost() {
    // DataNode 3 keeps its replicas on a 3 MiB tmpfs; the NameNode sends it blocks however
    // full it is (no free-space floor), so a write runs into the full disk.
    let Some(tiny) = Tmpfs::mount("3m") else { return };
    let tiny_dir = tiny.path().display().to_string();
    let c = DfsCluster::start_with(3, &["--min-free-bytes", "0"], &[], &[(3, &["--data-dir", &tiny_dir])]);
    let dfs = Dfs::connect(&c.namenode_addr, "herd").expect("connect");
    let keep = bytes(100_000, 1);
    let opts = |r| CreateOptions { replication: Some(r), block_size: Some(MIB as u64), ..Default::default() };
    let mut w = dfs.create("/keep", opts(2)).expect("create");
    w.write_all(&keep).expect("write");
    w.close().expect("close");

    // A wrong path.
    let out = c.fs(&["cat", "/nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cat: `/nope': No such file or directory"), "{}", text(&out.stderr));
    let out = c.fs(&["ls", "/keep/below"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    // A permission denial: ann may not list or write herd's private dir.
    c.fs_ok(&["mkdir", "-p", "/private"]);
    c.fs_ok(&["chmod", "700", "/private"]);
    let out = c.fs_as("ann", &["ls", "/private"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Permission denied"), "{}", text(&out.stderr));
    let local = c.path().join("local.txt");
    std::fs::write(&local, b"ann's bytes").unwrap();
    let out = c.fs_as("ann", &["put", local.to_str().unwrap(), "/private/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Permission denied"), "{}", text(&out.stderr));
    assert!(dfs.list("/private").expect("list").is_empty(), "nothing was created");

    // A malformed RPC frame: an RpcServerException for that call, and that connection closes.
    let mut s = TcpStream::connect(&c.namenode_addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&Protocol::ClientNamenode.preamble()).unwrap();
    let mut garbage = 7u64.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 40]);
    s.write_all(&(garbage.len() as u32).to_be_bytes()).unwrap();
    s.write_all(&garbage).unwrap();
    let r: Response<ClientResponse> = rpc::read_message(&mut s, MAX_FRAME_LEN).expect("an error response");
    assert_eq!(r.call_id, 7);
    let e = r.result.expect_err("refused");
    assert_eq!(e.class, "org.apache.hadoop.ipc.RpcServerException", "{e}");
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).map(|_| rest.len()).unwrap_or(0), 0, "the connection is closed");
    // An oversize frame is refused from its length prefix alone.
    let mut s = TcpStream::connect(&c.namenode_addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&Protocol::ClientNamenode.preamble()).unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).map(|_| rest.len()).unwrap_or(0), 0, "closed without reading 4 GiB");

    // A malformed data packet (its data does not match its CRCs), straight to a DataNode.
    let dn1 = c.datanodes[0].as_ref().expect("datanode 1").addr("data");
    let info = dfs_proto::DatanodeInfo {
        id: "1".into(),
        data_addr: dn1.clone(),
        http_addr: String::new(),
        rack: "/default-rack".into(),
    };
    let block = ExtendedBlock { id: 1 << 50, gs: 1 << 50, len: 0 };
    let mut ws =
        WriteStream::open(dn1.parse().unwrap(), &create_op(block, &[info], "intruder"), Duration::from_secs(10))
            .expect("op accepted");
    let mut bad = Packet::build(0, 0, vec![9; 4096], false, false);
    bad.data[100] ^= 1;
    ws.send(&bad).expect("send");
    assert_eq!(ws.recv_ack().expect("ack").statuses, vec![Status::ErrorChecksum]);

    // A full disk: a 6 MiB file with replication 3 runs DataNode 3 out of space mid-write;
    // the write completes on the other two, and DataNode 3 says why.
    let big = bytes(6 * MIB, 6);
    let mut w = dfs.create("/big", opts(3)).expect("create");
    w.write_all(&big).expect("write through a full disk");
    w.close().expect("close");
    let dn3_log = strip_ansi(&c.datanodes[2].as_ref().expect("datanode 3").log());
    assert!(
        dn3_log.contains("DiskFull")
            || dn3_log.to_lowercase().contains("disk full")
            || dn3_log.contains("No space left"),
        "datanode 3 says its disk is full:\n{dn3_log}"
    );

    // Nothing lost: everything reads back, and the daemons still serve.
    for (path, data) in [("/keep", &keep), ("/big", &big)] {
        let mut back = Vec::new();
        dfs.open(path).expect("open").read_to_end(&mut back).expect("read");
        assert!(back == *data, "{path} reads back identical");
    }
    let fsck = c.fs_ok(&["fsck", "/"]);
    assert!(fsck.ends_with("The filesystem under path '/' is HEALTHY\n"), "{fsck}");
}
