//! Guarantee: `herd status` shows every role of a `herd up` cluster live, each membership
//! view with its epoch and members, the file system's block health, and the running jobs.

mod common;

use common::compute::ComputeCluster;
use common::mr::{self, put};

#[test]
fn status_lists_roles_views_health_and_jobs() {
    let c = ComputeCluster::start(1, 1, &[]);
    let out = c.herd(&["status"]);
    assert!(out.status.success(), "{}", mr::text(&out));
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    for role in ["keeper", "namenode", "datanode", "resourcemanager", "nodemanager"] {
        let line = s.lines().find(|l| l.starts_with(role)).unwrap_or_else(|| panic!("no {role} in\n{s}"));
        assert!(line.contains(" live "), "{line}");
        assert!(s.contains(&format!("group={role} epoch=0x")), "no {role} view in\n{s}");
    }
    assert!(s.contains("members=nm1@0x"), "{s}");
    assert!(s.contains("file system: HEALTHY (1 datanodes"), "{s}");
    assert!(s.contains("jobs: none running"), "{s}");

    put(&c, "/in/a.txt", &mr::corpus(200, 3), None);
    let marker = c.dir().join("never");
    let mapper = mr::script(&c, "mapper.py", &mr::slow_mapper(&marker, &c.dir().join("pid"), 0, u32::MAX));
    let m = mapper.display().to_string();
    let app = mr::submit(&c, &["streaming", "-input", "/in", "-output", "/out", "-mapper", "mapper.py", "-file", &m]);
    let s = c.wait_for("the job listed as running", || {
        let out = c.herd(&["status"]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.contains(&format!("{app} streaming RUNNING")).then_some(s)
    });
    // The input, the job file and the shipped script are blocks now.
    assert!(s.contains("file system: HEALTHY") && !s.contains("blocks 0 total"), "{s}");
    mr::herd_ok(&c, &["job", "kill", &app]);
}
