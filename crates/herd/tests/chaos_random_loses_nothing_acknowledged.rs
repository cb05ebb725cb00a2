//! Guarantee: `herd chaos random --workload` against a running cluster — every role in a
//! network namespace of its own (`--netns`, where this machine allows it) and every DataNode on
//! a disk of its own (`--disk-mb`) — kills, pauses, partitions and fills disks one fault at a
//! time while files are written and read back, keeper counters are incremented and wordcount
//! jobs run, and then finds no acknowledged file lost or corrupted, a keeper history without a
//! lost or doubled increment, and every job finished with the right counts or a clear error.
//! The schedule it prints is the one the same seed gives again (`--dry-run`).

mod common;

use common::up::{text, Up};

const SEED: &str = "20261122";

/// The schedule lines (`+  12.3s kill datanode:2`) of a `herd chaos random` output.
fn schedule(out: &str) -> Vec<String> {
    out.lines().filter(|l| l.starts_with("  +")).map(|l| l.trim().to_owned()).collect()
}

#[test]
fn random_faults_with_a_workload_lose_nothing_acknowledged() {
    let netns = common::netns_or_skip();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let mut args = vec!["--disk-mb", "512", "--datanodes", "3", "--nodemanagers", "3"];
    if netns {
        args.push("--netns");
    }
    let mut c = Up::start(&dir, &args);

    let out = c.herd(&["chaos", "random", "--duration", "30s", "--seed", SEED, "--workload"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}\n{}", text(&out), c.output());
    assert!(stdout.contains("checks: PASS"), "{stdout}");
    assert!(!stdout.contains("VIOLATION"), "{stdout}");

    // Faults were injected, and of the kinds this cluster allows.
    let planned = schedule(&stdout);
    assert!(planned.len() >= 5, "{stdout}");
    let injected = stdout.lines().filter(|l| l.contains(" -> ")).count();
    assert!(injected >= 3, "{stdout}");
    assert!(stdout.contains("disks: one per DataNode"), "{stdout}");
    if netns {
        assert!(stdout.contains("network: a namespace per role"), "{stdout}");
    }

    // The workload did work, and the checkers counted it.
    let number_after = |prefix: &str| -> u64 {
        let line = stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{stdout}"));
        line[prefix.len()..].split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(number_after("files: ") > 0, "{stdout}");
    assert!(number_after("keeper: ") > 0, "{stdout}");
    let jobs = stdout.lines().find(|l| l.starts_with("jobs: ")).unwrap();
    assert!(!jobs.starts_with("jobs: 0 succeeded, 0 failed"), "{stdout}");

    // The same seed against the same cluster prints the same schedule.
    let again = c.herd_ok(&["chaos", "random", "--duration", "30s", "--seed", SEED, "--dry-run"]);
    assert_eq!(schedule(&again), planned);
    let other = c.herd_ok(&["chaos", "random", "--duration", "30s", "--seed", "7", "--dry-run"]);
    assert_ne!(schedule(&other), planned);

    // Nothing stays injected, and the cluster is whole again.
    c.wait_for("herd status all well after the faults", |c| c.herd(&["status"]).status.success().then_some(()));
    assert!(
        !dir.join("datanode-1/chaos-fill").exists()
            && !dir.join("datanode-2/chaos-fill").exists()
            && !dir.join("datanode-3/chaos-fill").exists()
    );
}
