//! Guarantee: a job finishes with byte-identical output through the failures of its workers:
//! - a NodeManager killed -9 while it holds completed map outputs (the view drops it, the RM
//!   tells the AM, the maps that ran there run again; not counted as task failures);
//! - the ApplicationMaster killed -9 after a reduce committed (the RM starts a second attempt,
//!   which recovers the committed reduce instead of running it again);
//! - a task stopped with SIGSTOP (silent past its time-out: killed and re-run).
//!
//! Each test first runs the same job without a fault, as the reference. Map 0 (or reduce 1)
//! waits for a marker file the test creates once the fault is in place, so the fault lands
//! at a known point of the job; it tells the framework it is alive meanwhile (streaming's
//! `reporter:status:`).

mod common;

use std::path::Path;

use common::compute::ComputeCluster;
use common::mr::{self, put};

const MAPS: usize = 6;

fn setup(c: &ComputeCluster) {
    for i in 0..MAPS {
        put(c, &format!("/in/part{i}.txt"), &mr::corpus(3_000, 100 + i as u64), None);
    }
}

fn streaming_args<'a>(out: &'a str, mapper: &'a str, reducer: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["streaming", "-input", "/in", "-output", out, "-mapper", "mapper.py", "-reducer", "reducer.py"];
    v.extend(["-file", mapper, "-file", reducer, "-numReduceTasks", "2"]);
    v.extend_from_slice(extra);
    v
}

/// Runs the job without faults (the marker exists) and returns its part files.
fn reference(
    c: &ComputeCluster,
    marker: &Path,
    mapper: &str,
    reducer: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::write(marker, b"").unwrap();
    let mut args = vec!["job", "run"];
    args.extend(streaming_args("/out/ref", mapper, reducer, &[]));
    mr::herd_ok(c, &args);
    std::fs::remove_file(marker).unwrap();
    let parts = mr::parts(c, "/out/ref");
    assert_eq!(parts.len(), 2);
    parts
}

fn succeeded(c: &ComputeCluster, app: &str) -> String {
    let s = mr::wait_done(c, app);
    assert!(s.contains("Final status: SUCCEEDED"), "{s}");
    s
}

/// The NodeManager running the job's AM (its working dir is under that NM's dirs).
fn am_pid_and_node(c: &ComputeCluster, app: &str) -> (u32, usize) {
    let pid = *mr::pids_with(&["appmaster", "--job"])
        .iter()
        .find(|p| mr::cwd(**p).is_some_and(|d| d.display().to_string().contains(app)))
        .unwrap_or_else(|| panic!("no appmaster of {app} running"));
    let node = mr::nodemanager_of(c, &mr::cwd(pid).unwrap()).expect("the AM runs under a NodeManager");
    (pid, node)
}

#[test]
fn nodemanager_killed_with_completed_map_outputs() {
    let c = ComputeCluster::start(2, 3, &[]);
    setup(&c);
    let marker = c.dir().join("go");
    let mapper = mr::script(&c, "mapper.py", &mr::slow_mapper(&marker, &c.dir().join("map0.pid"), 0, 1));
    let reducer = mr::script(&c, "reducer.py", &mr::summing_reducer(None, 0));
    let (m, r) = (mapper.display().to_string(), reducer.display().to_string());
    let want = reference(&c, &marker, &m, &r);

    let app = mr::submit(&c, &streaming_args("/out/faulted", &m, &r, &[]));
    mr::wait_status(&c, &app, "every map but map 0 done", |s| {
        s.contains("Maps:") && mr::status_number(s, "Maps:", "completed") == (MAPS - 1) as u64
    });
    let (_, am_node) = am_pid_and_node(&c, &app);
    let victim = (1..=3).filter(|i| *i != am_node).max_by_key(|i| mr::map_outputs_on(&c, *i, &app).len()).unwrap();
    let outputs = mr::map_outputs_on(&c, victim, &app);
    assert!(!outputs.is_empty(), "no NodeManager but the AM's holds map outputs");
    c.kill9_nodemanager(victim);
    // The maps whose output was there run again (killed, not failed).
    mr::wait_status(&c, &app, "the lost maps re-run", |s| {
        mr::status_number(s, "Maps:", "killed") >= outputs.len() as u64
    });
    std::fs::write(&marker, b"").unwrap();
    let status = succeeded(&c, &app);
    assert_eq!(mr::status_number(&status, "Maps:", "failed"), 0, "{status}");
    assert_eq!(mr::parts(&c, "/out/faulted"), want, "output differs from the fault-free run");
}

#[test]
fn appmaster_killed_after_a_reduce_committed() {
    let c = ComputeCluster::start(1, 3, &[]);
    setup(&c);
    let marker = c.dir().join("go");
    let mapper = mr::script(&c, "mapper.py", &mr::slow_mapper(&marker, &c.dir().join("unused.pid"), u32::MAX, 0));
    let reducer = mr::script(&c, "reducer.py", &mr::summing_reducer(Some(&marker), 1));
    let (m, r) = (mapper.display().to_string(), reducer.display().to_string());
    let want = reference(&c, &marker, &m, &r);

    let app = mr::submit(&c, &streaming_args("/out/faulted", &m, &r, &[]));
    mr::wait_status(&c, &app, "reduce 0 committed", |s| {
        s.contains("Reduces:") && mr::status_number(s, "Reduces:", "completed") == 1
    });
    let (am, _) = am_pid_and_node(&c, &app);
    // SAFETY: the AM process of the job this test submitted (found by its working dir).
    unsafe { libc::kill(am as i32, libc::SIGKILL) };
    mr::wait_status(&c, &app, "a second AM attempt", |s| {
        s.contains("AM attempt: appattempt_") && s.contains("_000002")
    });
    std::fs::write(&marker, b"").unwrap();
    let status = succeeded(&c, &app);
    // The second attempt took reduce 0 from the first one's commit.
    assert_eq!(mr::status_number(&status, "Reduces:", "recovered"), 1, "{status}");
    assert_eq!(mr::parts(&c, "/out/faulted"), want, "output differs from the fault-free run");
}

#[test]
fn stopped_task_times_out_and_is_rerun() {
    let c = ComputeCluster::start(1, 2, &[]);
    setup(&c);
    let marker = c.dir().join("go");
    let pid_file = c.dir().join("map0.pid");
    let mapper = mr::script(&c, "mapper.py", &mr::slow_mapper(&marker, &pid_file, 0, 1));
    let reducer = mr::script(&c, "reducer.py", &mr::summing_reducer(None, 0));
    let (m, r) = (mapper.display().to_string(), reducer.display().to_string());
    let want = reference(&c, &marker, &m, &r);
    std::fs::remove_file(&pid_file).unwrap();

    let app = mr::submit(&c, &streaming_args("/out/faulted", &m, &r, &["-D", "mapreduce.task.timeout=3000"]));
    // Map 0's first attempt is waiting: stop its task process (the container's `herd task`).
    let t0 = std::time::Instant::now();
    while !pid_file.exists() {
        assert!(t0.elapsed() < mr::WAIT_MAX, "map 0 never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let script_pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let mut task = script_pid;
    while !std::fs::read(format!("/proc/{task}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("task\0--am"))
    {
        task = mr::ppid(task).filter(|p| *p > 1).expect("the mapper runs under a herd task process");
    }
    // SAFETY: the task process of the job this test submitted (the mapper's ancestor).
    unsafe { libc::kill(task as i32, libc::SIGSTOP) };
    let status = succeeded(&c, &app);
    assert_eq!(mr::status_number(&status, "Maps:", "failed"), 1, "{status}");
    let report = mr::herd_ok(&c, &["job", "status", &app]);
    assert!(report.contains("Timed out after 3 secs"), "{report}");
    assert!(mr::cwd(task).is_none(), "the stopped task process was not killed");
    assert_eq!(mr::parts(&c, "/out/faulted"), want, "output differs from the fault-free run");
}

/// The ResourceManager killed -9 mid-job: its supervisor restarts it, it reloads the
/// application from the keeper, and the job finishes (the AM re-registers, or a new attempt
/// recovers what was committed) with byte-identical output.
#[test]
fn resourcemanager_killed_mid_job() {
    let c = ComputeCluster::start(1, 2, &[]);
    setup(&c);
    let marker = c.dir().join("go");
    let mapper = mr::script(&c, "mapper.py", &mr::slow_mapper(&marker, &c.dir().join("map0.pid"), 0, u32::MAX));
    let reducer = mr::script(&c, "reducer.py", &mr::summing_reducer(None, 0));
    let (m, r) = (mapper.display().to_string(), reducer.display().to_string());
    let want = reference(&c, &marker, &m, &r);

    let app = mr::submit(&c, &streaming_args("/out/faulted", &m, &r, &[]));
    mr::wait_status(&c, &app, "the maps running", |s| {
        s.contains("Maps:") && mr::status_number(s, "Maps:", "completed") == (MAPS - 1) as u64
    });
    let rm = c.entry("resourcemanager", "1");
    let pid = rm["pid"].as_u64().unwrap() as u32;
    // SAFETY: the ResourceManager of the cluster this test started (cluster.json's pid).
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    c.wait_for("the ResourceManager restarted", || {
        let e = c.entry("resourcemanager", "1");
        (e["pid"].as_u64() != Some(u64::from(pid)) && e["state"] == "running").then_some(())
    });
    std::fs::write(&marker, b"").unwrap();
    succeeded(&c, &app);
    assert_eq!(mr::parts(&c, "/out/faulted"), want, "output differs from the fault-free run");
}
