//! Guarantee: Python's WebHDFS clients, unmodified from PyPI — HdfsCLI (`hdfs`) and fsspec's
//! `webhdfs` filesystem — work against `herd up`: upload (one body and chunked), list, status
//! fields, ranged reads across blocks, append, rename (old semantics, into a directory),
//! permissions for other users, owner/replication/times, content summary, Hadoop's exception
//! names for errors, delete; and, after a DataNode is killed with SIGKILL between operations,
//! reads and writes go on through the survivors, a request to the dead one fails plainly, and
//! once the view drops it the NameNode redirects no one there (`excludedatanodes` too).
//! The checks themselves are tests/webhdfs/clients.py; `cargo xtask test` installs the clients.

mod common;

use common::fs::FsCluster;
use common::python;
use std::process::Command;
use std::time::Duration;

#[test]
fn hdfscli_and_fsspec_work_against_herd_also_after_a_datanode_kill() {
    let Some(py) = python::venv_with(&["hdfs", "fsspec", "requests"]) else { return };
    let c = FsCluster::start(3);
    let script = python::repo().join("tests/webhdfs/clients.py");
    let mut cmd = Command::new(py);
    cmd.arg(&script).arg("--cluster").arg(c.path());
    let (ok, out) = python::run_bounded(&mut cmd, Duration::from_secs(300));
    println!("{out}");
    assert!(ok, "tests/webhdfs/clients.py failed:\n{out}");
    assert!(out.contains("all WebHDFS client checks passed"), "{out}");
}
