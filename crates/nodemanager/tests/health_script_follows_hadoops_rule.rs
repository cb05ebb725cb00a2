//! Guarantee: the health checker runs the operator's script and judges it by Hadoop's rule: an
//! output line starting with `ERROR`, or a script that outlives its time-out, makes the node
//! unhealthy; anything else (a non-zero exit included) leaves it healthy.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use nodemanager::health::HealthScript;

fn script(dir: &Path, name: &str, body: &str) -> HealthScript {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    HealthScript { path, args: vec![], timeout: Duration::from_secs(2) }
}

#[tokio::test]
async fn error_lines_and_time_outs_make_the_node_unhealthy() {
    let d = tempfile::tempdir().unwrap();
    let ok = script(d.path(), "ok.sh", "echo all fine; exit 1");
    assert!(ok.check().await.healthy, "a failing exit status alone is not the node's fault");
    let bad = script(d.path(), "bad.sh", "echo checking; echo 'ERROR disk full on /data'");
    let h = bad.check().await;
    assert!(!h.healthy);
    assert_eq!(h.report, "ERROR disk full on /data");
    let slow = script(d.path(), "slow.sh", "sleep 30");
    let t0 = std::time::Instant::now();
    let h = slow.check().await;
    assert!(!h.healthy && h.report.contains("timed out"), "{h:?}");
    assert!(t0.elapsed() < Duration::from_secs(10), "the time-out did not stop the wait");
}
