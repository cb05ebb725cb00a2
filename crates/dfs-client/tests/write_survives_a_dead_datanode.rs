//! A write goes on when a DataNode dies: mid-block, the block ends on the survivors under a new
//! generation stamp at what they acknowledged plus what the client resent, and the file
//! continues in a new block whose pipeline leaves the dead node out; at pipeline set-up, the
//! block is abandoned and allocated again without it. The file reads back identical.

use std::io::{Read, Write};

use datanode::ReplicaState;
use dfs_client::CreateOptions;
use dfs_proto::ClientRequest;

mod common;
use common::{bytes, start_datanode, FakeNamenode, Node};

const BLOCK: usize = 512 << 10;

fn write_killing(kill: usize) {
    let mut nodes: Vec<Node> = (1..=4).map(|i| start_datanode(&format!("dn{i}"))).collect();
    let nn = FakeNamenode::start(nodes.iter().map(|n| n.info.clone()).collect());
    let dfs = nn.client();
    let data = bytes(3 * BLOCK, 7);
    let opts = CreateOptions { replication: Some(3), block_size: Some(BLOCK as u64), ..CreateOptions::default() };
    let mut w = dfs.create("/f", opts).expect("create");
    // 200 KiB acknowledged by dn1..dn3, then one of them dies.
    let first = 200 << 10;
    w.write_all(&data[..first]).expect("write");
    w.hflush().expect("hflush");
    nodes[kill].kill();
    w.write_all(&data[first..]).expect("the write goes on");
    w.close().expect("close");

    let dead = format!("dn{}", kill + 1);
    let f = nn.file("/f");
    let (b0, p0) = &f.blocks[0];
    // The first block ended early on the two survivors, under a newer stamp.
    assert!(b0.gs > b0.id, "a new generation stamp: {b0:?}");
    assert!(b0.len >= first as u64 && b0.len < BLOCK as u64, "{b0:?}");
    assert_eq!(p0.len(), 2);
    assert!(p0.iter().all(|n| n.id != dead));
    for n in nodes.iter().filter(|n| n.info.id != dead && n.info.id != "dn4") {
        let r = n.store.get(b0.id).expect("a survivor's replica");
        assert_eq!((r.gs, r.length, r.state), (b0.gs, b0.len, ReplicaState::Finalized), "{}", n.info.id);
    }
    // Later blocks: full replication without the dead node.
    for (b, p) in &f.blocks[1..] {
        assert_eq!(p.len(), 3, "{b:?}");
        assert!(p.iter().all(|n| n.id != dead));
    }
    assert_eq!(f.blocks.iter().map(|b| b.0.len).sum::<u64>(), data.len() as u64);
    let calls = nn.calls();
    assert!(calls.iter().any(|c| matches!(c, ClientRequest::UpdatePipeline { .. })));
    assert!(calls.iter().any(|c| matches!(c, ClientRequest::AddBlock { excluded, .. } if excluded.contains(&dead))));

    let mut back = Vec::new();
    dfs.open("/f").expect("open").read_to_end(&mut back).expect("read");
    assert!(back == data, "the file reads back identical");
}

#[test]
fn a_middle_node_dying_mid_block_is_recovered() {
    write_killing(1);
}

#[test]
fn the_first_node_dying_mid_block_is_recovered() {
    write_killing(0);
}

#[test]
fn the_last_node_dying_mid_block_is_recovered() {
    write_killing(2);
}

#[test]
fn a_dead_node_at_set_up_is_excluded_and_the_block_allocated_again() {
    let mut nodes: Vec<Node> = (1..=3).map(|i| start_datanode(&format!("dn{i}"))).collect();
    nodes[1].kill();
    let nn = FakeNamenode::start(nodes.iter().map(|n| n.info.clone()).collect());
    let dfs = nn.client();
    let data = bytes(100_000, 3);
    let opts = CreateOptions { replication: Some(3), block_size: Some(BLOCK as u64), ..CreateOptions::default() };
    let mut w = dfs.create("/g", opts).expect("create");
    w.write_all(&data).expect("write");
    w.close().expect("close");
    let f = nn.file("/g");
    assert_eq!(f.blocks.len(), 1);
    let ids: Vec<&str> = f.blocks[0].1.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["dn1", "dn3"]);
    assert!(nn.calls().iter().any(|c| matches!(c, ClientRequest::AbandonBlock { .. })));
    let mut back = Vec::new();
    dfs.open("/g").expect("open").read_to_end(&mut back).expect("read");
    assert!(back == data);
}

#[test]
fn the_only_node_dying_with_data_acknowledged_fails_the_write() {
    let mut nodes = [start_datanode("dn1")];
    let nn = FakeNamenode::start(nodes.iter().map(|n| n.info.clone()).collect());
    let dfs = nn.client();
    let opts = CreateOptions { replication: Some(1), block_size: Some(BLOCK as u64), ..CreateOptions::default() };
    let mut w = dfs.create("/h", opts).expect("create");
    w.write_all(&bytes(50_000, 1)).expect("write");
    w.hflush().expect("hflush");
    nodes[0].kill();
    let r =
        w.write_all(&bytes(300_000, 2)).map_err(|e| e.to_string()).and_then(|()| w.close().map_err(|e| e.to_string()));
    let err = r.expect_err("no node left to hold the acknowledged bytes");
    assert!(err.contains("write of /h failed"), "{err}");
}
