//! Guarantee: a container runs in its own directory with its own environment and logs, its end
//! is reported once with the right reason (its exit, a stop, the memory limit), and a stop or
//! the leader's end takes every process of its group with it — also a child that ignores
//! SIGTERM.

use std::path::Path;
use std::time::Duration;

use nodemanager::containers::{Config, ContainerExit, ContainerSpec, Containers, Ended, LaunchError};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

fn spec(dir: &Path, id: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        id: id.to_string(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("GREETING".into(), "hello".into())],
        work_dir: dir.join("work").join(id),
        log_dir: dir.join("logs").join(id),
        memory_limit: 0,
    }
}

async fn next(rx: &mut Receiver<ContainerExit>) -> ContainerExit {
    tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a container end within 30 s").unwrap()
}

/// Processes whose process group is `pgid`.
fn group_members(pgid: u32) -> usize {
    nodemanager::containers::group_rss().get(&(pgid as i32)).map_or(0, |_| 1)
}

fn start() -> (Containers, Receiver<ContainerExit>, CancellationToken) {
    let stop = CancellationToken::new();
    let cfg = Config { monitor_interval: Duration::from_millis(100), ..Config::default() };
    let (c, rx) = Containers::start(cfg, stop.clone());
    (c, rx, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_runs_in_its_dir_with_its_env_and_logs() {
    let d = tempfile::tempdir().unwrap();
    let (c, mut rx, stop) = start();
    c.launch(spec(d.path(), "c1", "echo \"$GREETING $CONTAINER_ID\"; pwd; echo oops >&2")).unwrap();
    let e = next(&mut rx).await;
    assert_eq!((e.id.as_str(), &e.ended, e.exit_status), ("c1", &Ended::Exited(0), 0));
    let out = std::fs::read_to_string(d.path().join("logs/c1/stdout")).unwrap();
    let work = std::fs::canonicalize(d.path().join("work/c1")).unwrap();
    assert_eq!(out, format!("hello c1\n{}\n", work.display()));
    assert_eq!(std::fs::read_to_string(d.path().join("logs/c1/stderr")).unwrap(), "oops\n");
    assert!(c.running().is_empty());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_reports_its_status_and_stderr_tail() {
    let d = tempfile::tempdir().unwrap();
    let (c, mut rx, stop) = start();
    c.launch(spec(d.path(), "c2", "echo 'Traceback: boom' >&2; exit 3")).unwrap();
    let e = next(&mut rx).await;
    assert_eq!((e.ended.clone(), e.exit_status), (Ended::Exited(3), 3));
    assert!(e.diagnostics.contains("exited with status 3") && e.diagnostics.contains("Traceback: boom"), "{e:?}");
    // Bad launches are errors, never reported ends.
    assert!(matches!(
        c.launch(ContainerSpec { argv: vec![], ..spec(d.path(), "c3", "") }),
        Err(LaunchError::EmptyCommand { .. })
    ));
    c.launch(spec(d.path(), "c4", "sleep 30")).unwrap();
    assert!(matches!(c.launch(spec(d.path(), "c4", "true")), Err(LaunchError::Duplicate(_))));
    assert!(matches!(
        c.launch(ContainerSpec { argv: vec!["/no/such/program".into()], ..spec(d.path(), "c5", "") }),
        Err(LaunchError::Spawn { .. })
    ));
    assert!(c.kill("c4"));
    assert_eq!(next(&mut rx).await.id, "c4");
    assert!(tokio::time::timeout(Duration::from_millis(500), rx.recv()).await.is_err(), "a second end was reported");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_takes_the_whole_group_even_a_child_ignoring_sigterm() {
    let d = tempfile::tempdir().unwrap();
    let (c, mut rx, stop) = start();
    // A child that ignores SIGTERM keeps running after its parent; the group kill ends it.
    let pid = c.launch(spec(d.path(), "c6", "sh -c 'trap \"\" TERM; sleep 100' & sleep 100")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(group_members(pid), 1, "the group is running");
    assert!(c.kill("c6"));
    let e = next(&mut rx).await;
    assert_eq!(e.ended, Ended::Killed);
    let t0 = std::time::Instant::now();
    while group_members(pid) > 0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "processes of the group survived the stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!c.kill("c6"), "a finished container cannot be stopped again");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_over_its_memory_is_killed() {
    let d = tempfile::tempdir().unwrap();
    let (c, mut rx, stop) = start();
    let mut s = spec(d.path(), "c7", "");
    s.argv = vec![
        "python3".into(),
        "-c".into(),
        "import time; b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)".into(),
    ];
    s.memory_limit = 64 << 20;
    c.launch(s).unwrap();
    let e = next(&mut rx).await;
    match e.ended {
        Ended::OverMemory { rss, limit } => assert!(rss > limit && limit == 64 << 20, "{e:?}"),
        other => panic!("wanted OverMemory, got {other:?}: {}", e.diagnostics),
    }
    assert!(e.diagnostics.contains("beyond physical memory limits"), "{}", e.diagnostics);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_containers_stops_every_one() {
    let d = tempfile::tempdir().unwrap();
    let (c, mut rx, stop) = start();
    for i in 0..3 {
        c.launch(spec(d.path(), &format!("s{i}"), "sleep 100")).unwrap();
    }
    stop.cancel();
    let mut ended = vec![next(&mut rx).await, next(&mut rx).await, next(&mut rx).await];
    ended.sort_by(|a, b| a.id.cmp(&b.id));
    assert!(ended.iter().all(|e| e.ended == Ended::Killed), "{ended:?}");
    assert!(matches!(c.launch(spec(d.path(), "late", "true")), Err(LaunchError::Stopped)));
}
