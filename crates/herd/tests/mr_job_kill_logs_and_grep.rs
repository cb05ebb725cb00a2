//! Guarantee: `herd job logs` shows a job's containers' stderr (the AM's and the tasks'),
//! fetched from the NodeManagers over HTTP; `herd job kill` ends a running job — its
//! containers stop, it is KILLED, and its output has no `_SUCCESS` and no part file; the
//! built-in grep counts what a count made here counts.

mod common;

use common::compute::ComputeCluster;
use common::mr::{self, put};

#[test]
fn logs_kill_and_grep() {
    let c = ComputeCluster::start(1, 2, &[]);
    let text = mr::corpus(3_000, 11);
    put(&c, "/in/a.txt", &text, None);

    // grep: non-overlapping occurrences of a substring, summed over lines.
    let out = c.herd(&["job", "run", "grep", "/in", "/out/grep", "ee"]);
    assert!(out.status.success(), "{}", mr::text(&out));
    let want: usize = text.lines().map(|l| l.matches("ee").count()).sum();
    assert!(want > 0);
    let parts = mr::parts(&c, "/out/grep");
    assert_eq!(String::from_utf8_lossy(&parts["part-r-00000"]), format!("ee\t{want}\n"));

    // A job that waits until it is killed.
    let marker = c.dir().join("never");
    let mapper = mr::script(&c, "mapper.py", &mr::slow_mapper(&marker, &c.dir().join("map.pid"), 0, u32::MAX));
    let m = mapper.display().to_string();
    let app =
        mr::submit(&c, &["streaming", "-input", "/in", "-output", "/out/killed", "-mapper", "mapper.py", "-file", &m]);
    let pid_file = c.dir().join("map.pid");
    c.wait_for("the map to start", || pid_file.exists().then_some(()));
    let mapper_pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();

    let logs = mr::herd_ok(&c, &["job", "logs", &app, "--file", "stderr"]);
    assert!(logs.contains("LogType:stderr") && logs.contains("appmaster registered"), "{logs}");
    assert!(logs.contains("running attempt_"), "a task's stderr: {logs}");

    let out = mr::herd_ok(&c, &["job", "kill", &app]);
    assert!(out.contains(&format!("Killed job {app}")), "{out}");
    let status = mr::status(&c, &app);
    assert!(status.contains("State: KILLED"), "{status}");
    c.wait_for("the killed job's mapper to end", || (!common::alive(mapper_pid)).then_some(()));
    let left = mr::ls(&c, "/out/killed");
    assert!(!left.iter().any(|n| n == "_SUCCESS" || n.starts_with("part-")), "a killed job left {left:?}");
}
