//! Guarantee: Hadoop's FileOutputCommitter v1 over herd's file system (real NameNode and
//! DataNodes): each task's output is exactly one attempt's, `_SUCCESS` appears only with the
//! whole output, an aborted job leaves nothing behind, and a second AM attempt recovers the
//! tasks the first one committed.

mod common;

use common::fs::FsCluster;
use dfs_client::{CreateOptions, Dfs, FileKind};
use mapreduce::committer::FileOutputCommitter;
use std::io::{Read, Write};

fn write(dfs: &Dfs, path: &str, bytes: &[u8]) {
    let mut w = dfs.create(path, CreateOptions { overwrite: true, ..Default::default() }).unwrap();
    w.write_all(bytes).unwrap();
    w.close().unwrap();
}

fn read(dfs: &Dfs, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    dfs.open(path).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// Names under `dir` (files and directories), recursively, relative to it.
fn tree(dfs: &Dfs, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_string()];
    while let Some(d) = todo.pop() {
        for s in dfs.list(&d).unwrap() {
            let p = format!("{d}/{}", s.name);
            out.push(p[dir.len() + 1..].to_string());
            if s.kind == FileKind::Dir {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn commits_are_whole_or_nothing_on_the_file_system() {
    let c = FsCluster::start(3);
    let dfs = Dfs::from_cluster_dir(c.path(), "herd").unwrap();

    // Job 1: two attempts of r_0 (one commits, one aborts), r_1 commits, then the job.
    let job = FileOutputCommitter::new("/out1", 0).unwrap();
    job.setup_job(&dfs).unwrap();
    for (a, body) in [("attempt_1_0001_r_000000_0", "loser\n"), ("attempt_1_0001_r_000000_1", "winner\n")] {
        write(&dfs, &format!("{}/part-r-00000", job.task_attempt_path(a).unwrap()), body.as_bytes());
    }
    write(&dfs, &format!("{}/part-r-00001", job.task_attempt_path("attempt_1_0001_r_000001_0").unwrap()), b"one\n");
    job.commit_task(&dfs, "task_1_0001_r_000000", "attempt_1_0001_r_000000_1").unwrap();
    job.abort_task(&dfs, "attempt_1_0001_r_000000_0").unwrap();
    job.commit_task(&dfs, "task_1_0001_r_000001", "attempt_1_0001_r_000001_0").unwrap();
    assert!(dfs.status("/out1/_SUCCESS").unwrap().is_none());
    job.commit_job(&dfs).unwrap();
    assert_eq!(tree(&dfs, "/out1"), ["_SUCCESS", "part-r-00000", "part-r-00001"]);
    assert_eq!(read(&dfs, "/out1/part-r-00000"), b"winner\n");

    // Job 2 fails: nothing that looks complete is left.
    let failed = FileOutputCommitter::new("/out2", 0).unwrap();
    failed.setup_job(&dfs).unwrap();
    write(&dfs, &format!("{}/part-r-00000", failed.task_attempt_path("attempt_1_0002_r_000000_0").unwrap()), b"x");
    failed.commit_task(&dfs, "task_1_0002_r_000000", "attempt_1_0002_r_000000_0").unwrap();
    failed.abort_job(&dfs).unwrap();
    assert_eq!(tree(&dfs, "/out2"), Vec::<String>::new());

    // Job 3: the AM dies after committing r_0; its second attempt recovers r_0, re-runs r_1.
    let first = FileOutputCommitter::new("/out3", 0).unwrap();
    first.setup_job(&dfs).unwrap();
    write(&dfs, &format!("{}/part-r-00000", first.task_attempt_path("attempt_1_0003_r_000000_0").unwrap()), b"kept\n");
    first.commit_task(&dfs, "task_1_0003_r_000000", "attempt_1_0003_r_000000_0").unwrap();
    write(&dfs, &format!("{}/part-r-00001", first.task_attempt_path("attempt_1_0003_r_000001_0").unwrap()), b"half");
    let second = FileOutputCommitter::new("/out3", 1).unwrap();
    second.setup_job(&dfs).unwrap();
    assert!(second.recover_task(&dfs, "task_1_0003_r_000000").unwrap());
    assert!(!second.recover_task(&dfs, "task_1_0003_r_000001").unwrap());
    write(&dfs, &format!("{}/part-r-00001", second.task_attempt_path("attempt_1_0003_r_000001_1").unwrap()), b"full\n");
    second.commit_task(&dfs, "task_1_0003_r_000001", "attempt_1_0003_r_000001_1").unwrap();
    second.commit_job(&dfs).unwrap();
    assert_eq!(tree(&dfs, "/out3"), ["_SUCCESS", "part-r-00000", "part-r-00001"]);
    assert_eq!(
        (read(&dfs, "/out3/part-r-00000"), read(&dfs, "/out3/part-r-00001")),
        (b"kept\n".to_vec(), b"full\n".to_vec())
    );
}
