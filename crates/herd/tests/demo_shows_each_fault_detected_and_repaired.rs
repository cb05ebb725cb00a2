//! Guarantee: `herd demo` starts a cluster of its own, runs wordcount while it kills a task
//! attempt, hangs another, kills a DataNode and a NodeManager, prints for each fault when it
//! was injected, detected and repaired, checks the output against the corpus's own counts, and
//! exits 0 — and leaves no process behind.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::herd_bin;

#[test]
fn demo_injects_detects_repairs_and_checks_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(herd_bin());
    cmd.args(["demo", "--size-mb", "16", "--seed", "11", "--keep", "--dir"])
        .arg(tmp.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    // SAFETY: prctl only; the demo (and with it its cluster) ends if this test dies.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let out = cmd.output().expect("run herd demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(stdout.contains("demo: PASS"), "{all}");
    assert!(stdout.contains("equal to the reference"), "{all}");
    for word in ["injected:", "detected:", "repaired:"] {
        assert_eq!(stdout.lines().filter(|l| l.contains(word)).count(), 4, "4 lines with {word}:\n{all}");
    }
    for fault in ["killed attempt_", "hung attempt_", "killed datanode ", "killed nodemanager "] {
        let row =
            stdout.lines().find(|l| l.trim_start().starts_with(fault)).unwrap_or_else(|| panic!("{fault}\n{all}"));
        // injected, detected, repaired: three times, in that order.
        let t: Vec<f64> = row.split_whitespace().rev().take(3).map(|x| x.parse().unwrap()).collect();
        assert!(t[2] <= t[1] && t[1] <= t[0], "{row}");
    }
    // The hung attempt was caught by its time-out: FAILED (not killed with its node).
    assert!(stdout.lines().any(|l| l.contains("detected: the AM marked") && l.contains("FAILED")), "{all}");
    // Its cluster is stopped: cluster.json goes when `herd up` ends.
    assert!(!tmp.path().join("cluster/cluster.json").exists(), "{all}");
}
