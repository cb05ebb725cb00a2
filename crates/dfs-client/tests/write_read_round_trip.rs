//! What a writer streams is what a reader reads: a file of several blocks, written in writes
//! of odd sizes, reads back byte for byte (sequentially, after seeks, and positionally), and
//! every node of each block's pipeline holds a finalized replica of the block's length.

use std::io::{Read, Seek, SeekFrom, Write};

use datanode::ReplicaState;
use dfs_client::CreateOptions;

mod common;
use common::{bytes, start_datanode, FakeNamenode};

#[test]
fn a_multi_block_file_reads_back_identical() {
    let nodes = [start_datanode("dn1"), start_datanode("dn2"), start_datanode("dn3")];
    let nn = FakeNamenode::start(nodes.iter().map(|n| n.info.clone()).collect());
    let dfs = nn.client();
    let block_size = 256 << 10;
    let data = bytes(3 * block_size + 12_345, 1);
    let opts = CreateOptions { replication: Some(3), block_size: Some(block_size as u64), ..CreateOptions::default() };
    let mut w = dfs.create("/f", opts).expect("create");
    let mut rest = &data[..];
    let mut step = 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        w.write_all(&rest[..n]).expect("write");
        rest = &rest[n..];
        step = step * 3 % 70_001 + 1;
    }
    assert_eq!(w.bytes_written(), data.len() as u64);
    w.close().expect("close");

    let f = nn.file("/f");
    assert!(f.closed);
    assert_eq!(f.blocks.len(), 4);
    for (b, pipeline) in &f.blocks {
        assert_eq!(pipeline.len(), 3);
        for n in &nodes {
            let r = n.store.get(b.id).expect("every node holds every block");
            assert_eq!((r.gs, r.length, r.state), (b.gs, b.len, ReplicaState::Finalized), "{}", n.info.id);
        }
    }
    assert_eq!(
        f.blocks.iter().map(|b| b.0.len).collect::<Vec<_>>(),
        vec![block_size as u64, block_size as u64, block_size as u64, 12_345]
    );

    let mut r = dfs.open("/f").expect("open");
    assert_eq!(r.len(), data.len() as u64);
    let mut back = Vec::new();
    r.read_to_end(&mut back).expect("read");
    assert!(back == data, "read back differs");

    // Seek into the middle of the second block, across the boundary to the third.
    let at = block_size + 1000;
    r.seek(SeekFrom::Start(at as u64)).expect("seek");
    let mut piece = vec![0u8; block_size];
    r.read_exact(&mut piece).expect("read across a block boundary");
    assert!(piece == data[at..at + block_size]);
    // Positional reads stop at the block's end and leave the position alone.
    let pos = r.position();
    let mut small = vec![0u8; 5000];
    let n = r.read_at(block_size as u64 - 100, &mut small).expect("read_at");
    assert_eq!(n, 100);
    assert_eq!(&small[..100], &data[block_size - 100..block_size]);
    assert_eq!(r.position(), pos);
    let n = r.read_at(data.len() as u64 - 7, &mut small).expect("read_at the tail");
    assert_eq!(&small[..n], &data[data.len() - 7..]);
    assert_eq!(r.read_at(data.len() as u64, &mut small).expect("at the end"), 0);
}

#[test]
fn an_empty_file_has_no_block_and_reads_empty() {
    let nodes = [start_datanode("dn1")];
    let nn = FakeNamenode::start(nodes.iter().map(|n| n.info.clone()).collect());
    let dfs = nn.client();
    dfs.create("/empty", CreateOptions::default()).expect("create").close().expect("close");
    let f = nn.file("/empty");
    assert!(f.closed && f.blocks.is_empty());
    let mut back = Vec::new();
    dfs.open("/empty").expect("open").read_to_end(&mut back).expect("read");
    assert!(back.is_empty());
    // Create without overwrite on an existing file: Hadoop's FileAlreadyExistsException.
    let err = dfs.create("/empty", CreateOptions::default()).err().expect("exists");
    assert_eq!(err.shell_reason().text, "File exists");
}
