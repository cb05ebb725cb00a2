//! Guarantee: a DataNode listed in the NameNode's exclude file is drained — every block it
//! holds gets its full replication on the others — and is then reported Decommissioned; once
//! it is stopped nothing is under-replicated. Placement follows the topology map: every block
//! of replication 3 spans both racks.

mod common;

use std::io::Write;
use std::time::Duration;

use common::dfs::{bytes, wait_for, DfsCluster};
use dfs_client::{AdminState, CreateOptions, Dfs};

const MIB: usize = 1 << 20;

#[test]
fn an_excluded_datanode_is_drained_then_decommissioned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let topology = dir.path().join("topology");
    std::fs::write(&topology, "# id rack\n1 /r1\n2 /r1\n3 /r2\n4 /r2\n").unwrap();
    let exclude = dir.path().join("exclude");
    let (t, x) = (topology.display().to_string(), exclude.display().to_string());
    let mut c = DfsCluster::start(4, &["--topology", &t, "--exclude-file", &x], &[]);
    let dfs = Dfs::connect(&c.namenode_addr, "herd").expect("connect");
    let data = bytes(5 * MIB, 4);
    let opts = CreateOptions { replication: Some(3), block_size: Some(MIB as u64), ..Default::default() };
    let mut w = dfs.create("/d/f", opts).expect("create");
    w.write_all(&data).expect("write");
    w.close().expect("close");
    c.wait_healthy("/d", Duration::from_secs(60));

    let racks = |id: &str| if id == "1" || id == "2" { "/r1" } else { "/r2" };
    for lb in dfs.block_locations("/d/f", 0, u64::MAX >> 1).expect("locations").blocks {
        let on: std::collections::BTreeSet<&str> = lb.locations.iter().map(|l| racks(&l.id)).collect();
        assert_eq!(on.len(), 2, "block {} spans both racks: {:?}", lb.block.id, lb.locations);
        assert!(lb.locations.iter().all(|l| l.rack == racks(&l.id)), "racks from the topology map: {:?}", lb.locations);
    }

    // Decommission DataNode 1 (it holds replicas: 5 blocks x 3 replicas on 4 nodes).
    std::fs::write(&exclude, "1\n").unwrap();
    let refresh = std::process::Command::new(common::herd_bin())
        .args(["dfsadmin", "--namenode", &c.namenode_addr, "refresh-nodes"])
        .env("HADOOP_USER_NAME", "ann")
        .output()
        .expect("run dfsadmin");
    assert!(!refresh.status.success(), "refreshNodes is for the superuser only");
    assert!(
        String::from_utf8_lossy(&refresh.stderr).contains("AccessControlException")
            || String::from_utf8_lossy(&refresh.stderr).contains("Superuser"),
        "{}",
        String::from_utf8_lossy(&refresh.stderr)
    );
    let refresh = std::process::Command::new(common::herd_bin())
        .args(["dfsadmin", "--namenode", &c.namenode_addr, "refresh-nodes"])
        .env("HADOOP_USER_NAME", "herd")
        .output()
        .expect("run dfsadmin");
    assert!(refresh.status.success(), "{}", String::from_utf8_lossy(&refresh.stderr));

    let state =
        |id: &str| dfs.datanode_report().expect("report").into_iter().find(|d| d.datanode.id == id).map(|d| d.state);
    wait_for(
        Duration::from_secs(60),
        || state("1") == Some(AdminState::Decommissioned),
        || format!("datanode 1 decommissioned; now {:?}; namenode log:\n{}", state("1"), c.namenode_log_tail()),
    );
    let report = std::process::Command::new(common::herd_bin())
        .args(["dfsadmin", "--namenode", &c.namenode_addr, "report"])
        .output()
        .expect("run dfsadmin");
    let report = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(report.contains("Decommission Status : Decommissioned"), "{report}");
    assert!(report.contains("Live datanodes (4):"), "{report}");

    // Drained: every block has 3 live replicas without DataNode 1, so stopping it costs
    // nothing.
    for lb in dfs.block_locations("/d/f", 0, u64::MAX >> 1).expect("locations").blocks {
        let live: Vec<&str> = lb.locations.iter().map(|l| l.id.as_str()).filter(|id| *id != "1").collect();
        assert!(live.len() >= 3, "block {} is fully replicated elsewhere: {:?}", lb.block.id, lb.locations);
    }
    c.kill9_datanode(1);
    let nn = c.namenode.as_ref().expect("namenode");
    wait_for(
        Duration::from_secs(30),
        || common::dfs::strip_ansi(&nn.log()).contains("datanode left the view datanode=1 "),
        || "datanode 1 gone".into(),
    );
    let fsck = c.fs_ok(&["fsck", "/d"]);
    assert!(common::dfs::fully_replicated(&fsck), "{fsck}");
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut dfs.open("/d/f").expect("open"), &mut back).expect("read");
    assert!(back == data);
}
