//! Guarantee: a DataNode killed with -9 in the middle of a large `herd fs put` costs nothing:
//! the put succeeds (pipeline recovery on the survivors, the rest of the file in new blocks),
//! the file reads back identical, fsck says HEALTHY, and every block is soon back to full
//! replication.

mod common;

use common::fs::FsCluster;

/// Whether any replica being written under `dir` has bytes yet.
fn has_rbw_bytes(dir: &std::path::Path) -> bool {
    fn walk(d: &std::path::Path) -> bool {
        let Ok(entries) = std::fs::read_dir(d) else { return false };
        entries.flatten().any(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                let name = e.file_name().to_string_lossy().into_owned();
                let in_rbw = p.parent().is_some_and(|q| q.ends_with("rbw"));
                in_rbw
                    && name.starts_with("blk_")
                    && !name.ends_with(".meta")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            }
        })
    }
    walk(dir)
}

#[test]
fn a_put_survives_a_datanode_killed_mid_write() {
    let c = FsCluster::start(3);
    let local = c.path().join("big.bin");
    let bytes = common::dfs::bytes(96 << 20, 5);
    std::fs::write(&local, &bytes).unwrap();

    let mut put = std::process::Command::new(common::herd_bin())
        .args(["fs", "--cluster"])
        .arg(c.path())
        .env("HADOOP_USER_NAME", "herd")
        .env_remove("HERD_CLUSTER")
        .args(["put", "-b", "8m", local.to_str().unwrap(), "/big.bin"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = common::capture(put.stderr.take().unwrap());
    // Every block has all three DataNodes: kill DataNode 2 once it holds bytes of one.
    let dn2 = c.datanode_dir("2");
    c.wait_for("DataNode 2 to receive bytes", || has_rbw_bytes(&dn2).then_some(()));
    let pid = c.datanode_pid("2").expect("DataNode 2's pid");
    // SAFETY: a DataNode of the cluster this test started, by its pid.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let status = put.wait().unwrap();
    assert!(status.success(), "put failed: {}", err.lock().unwrap());

    let back = c.path().join("back.bin");
    c.fs_ok(&["get", "/big.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == bytes, "the file reads back identical");
    let fsck = c.fs_ok(&["fsck", "/big.bin"]);
    assert_eq!(fsck.lines().last(), Some("The filesystem under path '/big.bin' is HEALTHY"), "{fsck}");
    // Then every block is back to three live replicas: the short block ended at the failure
    // is copied by the replication monitor (the supervisor also restarts the DataNode).
    let t0 = std::time::Instant::now();
    let last = std::cell::RefCell::new(String::new());
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.wait_for("full replication", || {
            let fsck = c.fs_ok(&["fsck", "/big.bin"]);
            let ok = common::dfs::fully_replicated(&fsck);
            *last.borrow_mut() = fsck;
            ok.then_some(())
        })
    }));
    let log = |name: &str| std::fs::read_to_string(c.path().join(name)).unwrap_or_default();
    assert!(
        done.is_ok(),
        "not fully replicated; last fsck:\n{}\nnamenode log:\n{}\ndatanode 2 log:\n{}",
        last.borrow(),
        log("namenode-1.log"),
        log("datanode-2.log")
    );
    eprintln!("fully replicated {:?} after the put returned", t0.elapsed());
}
