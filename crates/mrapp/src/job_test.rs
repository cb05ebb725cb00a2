use super::*;
use compute_proto::ids::ApplicationAttemptId;
use compute_proto::records::ContainerState;
use compute_proto::token::ContainerToken;

const APP: ApplicationId = ApplicationId { cluster_ts: 1700, seq: 3 };

fn plan(maps: usize, reduces: u32) -> Plan {
    Plan {
        app: APP,
        am_attempt: 1,
        maps: (0..maps)
            .map(|i| MapInput {
                split: FileSplit { path: "/in/a".into(), start: i as u64 * 100, length: 100 },
                hosts: vec![format!("h{}", i % 3)],
            })
            .collect(),
        reduces,
        recovered: BTreeSet::new(),
        max_task_attempts: 4,
        blacklist_after: 3,
        task_timeout_ms: 10_000,
        task_resource: Resource { memory_mb: 512, vcores: 1 },
    }
}

struct Fixture {
    next: u64,
}

impl Fixture {
    fn container(&mut self, host: &str) -> Container {
        self.next += 1;
        let attempt = ApplicationAttemptId { app: APP, attempt: 1 };
        Container {
            token: ContainerToken {
                container_id: ContainerId::new(attempt, 0, self.next).unwrap(),
                node_id: NodeId { host: host.into(), port: 1 },
                resource: Resource { memory_mb: 512, vcores: 1 },
                app_attempt: attempt,
                rm_epoch: 1,
                mac: [0; 32],
            },
            priority: PRIORITY_MAP,
            node_http_addr: String::new(),
        }
    }
}

fn launched(cmds: &[Command]) -> Vec<(ContainerId, TaskAttemptId)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Launch { container, task } => Some((container.id(), task.attempt())),
            _ => None,
        })
        .collect()
}

fn asked(core: &mut JobCore) -> u32 {
    core.asks().iter().map(|a| a.count).sum()
}

fn exit(container: ContainerId, code: i32) -> ContainerStatus {
    ContainerStatus {
        container_id: container,
        state: ContainerState::Complete,
        exit_status: code,
        diagnostics: String::new(),
    }
}

/// Runs one attempt on a fresh container on `host` and returns it.
fn run_one(core: &mut JobCore, f: &mut Fixture, host: &str) -> (ContainerId, TaskAttemptId) {
    let cmds = core.allocated(vec![f.container(host)], 0);
    let l = launched(&cmds);
    assert_eq!(l.len(), 1, "{cmds:?}");
    l[0]
}

#[test]
fn maps_then_reduces_then_one_commit() {
    let mut core = JobCore::new(plan(2, 1), 0);
    let mut f = Fixture { next: 0 };
    // Only maps are asked for while maps run.
    assert_eq!(asked(&mut core), 2);
    let cmds = core.allocated(vec![f.container("h0"), f.container("h1"), f.container("h2")], 0);
    let l = launched(&cmds);
    assert_eq!(l.len(), 2);
    assert!(cmds.iter().any(|c| matches!(c, Command::Release(_))), "the third container goes back");
    assert_eq!(asked(&mut core), 0);
    // The container on h0 got the map whose data is on h0.
    assert_eq!(l[0].1.task.index, 0);
    assert_eq!(core.get_task(&l[0].0, 1), Some(core.spec(l[0].1)));
    for (_, a) in &l {
        assert!(core.done(a, "nm:1".into(), 2).is_empty());
    }
    let events = core.map_events(&l[0].1, 0, 10, 2);
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.status == MapEventStatus::Succeeded));
    assert_eq!(asked(&mut core), 1, "the reduce is asked for once the maps are done");
    let (_, r) = run_one(&mut core, &mut f, "h1");
    assert_eq!(r.task.kind, TaskType::Reduce);
    assert!(core.can_commit(&r, 3));
    assert!(core.can_commit(&r, 3), "asking again is still yes");
    assert_eq!(core.done(&r, String::new(), 4), vec![Command::CommitJob]);
    assert_eq!(core.state(), &JobState::Committing);
    core.committed();
    assert_eq!(core.state(), &JobState::Succeeded);
    let rep = core.report("wc", "ann", "/out");
    assert_eq!(rep.state, "SUCCEEDED");
    assert_eq!(rep.counter(JOB_COUNTER_GROUP, "TOTAL_LAUNCHED_MAPS"), 2);
    assert_eq!(rep.counter(JOB_COUNTER_GROUP, "DATA_LOCAL_MAPS"), 2);
}

#[test]
fn a_task_failing_twice_then_succeeding_counts_its_failures() {
    let mut core = JobCore::new(plan(1, 0), 0);
    let mut f = Fixture { next: 0 };
    let (c1, a1) = run_one(&mut core, &mut f, "h0");
    let cmds = core.fatal_error(&a1, "exit 1", "boom\n", 5);
    assert!(cmds.contains(&Command::AbortTask(a1)));
    // The late container exit of the same attempt changes nothing.
    assert!(core.container_completed(&exit(c1, 1), 6).is_empty());
    let (c2, a2) = run_one(&mut core, &mut f, "h1");
    assert_eq!(a2.attempt, 1);
    core.container_completed(&exit(c2, 3), 7);
    let (_, a3) = run_one(&mut core, &mut f, "h2");
    assert!(core.can_commit(&a3, 8));
    assert_eq!(core.done(&a3, String::new(), 9), vec![Command::CommitJob]);
    core.committed();
    let rep = core.report("j", "ann", "/out");
    assert_eq!(rep.counter(JOB_COUNTER_GROUP, "NUM_FAILED_MAPS"), 2);
    assert_eq!(rep.maps.failed_attempts, 2);
    assert!(rep.diagnostics.contains("boom"), "{}", rep.diagnostics);
}

#[test]
fn a_task_that_always_fails_fails_the_job_after_its_attempts() {
    let mut core = JobCore::new(plan(2, 1), 0);
    let mut f = Fixture { next: 0 };
    let mut last = Vec::new();
    for i in 0..4 {
        assert_eq!(core.state(), &JobState::Running);
        // A retried task avoids the hosts it failed on: these are all different.
        let cmds = core.allocated(vec![f.container(&format!("n{i}"))], 0);
        let (_, a) = launched(&cmds).into_iter().find(|(_, a)| a.task.index == 0).unwrap_or_else(|| {
            // The other map took it: finish that one and ask again.
            let (_, other) = launched(&cmds)[0];
            core.done(&other, "nm:1".into(), 1);
            run_one(&mut core, &mut f, &format!("m{i}"))
        });
        last = core.fatal_error(&a, "Traceback: ValueError", "Traceback: ValueError\n", 2);
    }
    let JobState::Failed(why) = core.state().clone() else { panic!("{:?}", core.state()) };
    assert!(why.contains("failed 4 times") && why.contains("ValueError"), "{why}");
    assert!(last.contains(&Command::AbortJob));
    assert_eq!(asked(&mut core), 0, "a failed job asks for nothing");
}

#[test]
fn a_silent_attempt_times_out_and_is_stopped_and_rerun() {
    let mut core = JobCore::new(plan(1, 1), 0);
    let mut f = Fixture { next: 0 };
    let (c, a) = run_one(&mut core, &mut f, "h0");
    assert!(core.status_update(&a, status(0.5), 5_000));
    assert!(core.tick(14_000).is_empty(), "heard 9 s ago");
    let cmds = core.tick(15_001);
    assert!(cmds.iter().any(|x| matches!(x, Command::Stop { container, .. } if *container == c)), "{cmds:?}");
    assert!(!core.status_update(&a, status(0.6), 15_002), "the stopped attempt is told to exit");
    assert_eq!(asked(&mut core), 1);
    let (_, a2) = run_one(&mut core, &mut f, "h1");
    assert_eq!(a2.attempt, 1);
    assert!(core.report("j", "u", "/o").diagnostics.contains("Timed out after 10 secs"));
}

fn status(p: f64) -> TaskStatus {
    TaskStatus {
        progress: Progress::from_fraction(p),
        phase: Phase::Map,
        counters: Vec::new(),
        state_text: String::new(),
    }
}

#[test]
fn a_lost_node_reruns_its_maps_while_a_reduce_needs_them() {
    let mut core = JobCore::new(plan(2, 1), 0);
    let mut f = Fixture { next: 0 };
    let (_, m0) = run_one(&mut core, &mut f, "h0");
    let (_, m1) = run_one(&mut core, &mut f, "h1");
    core.done(&m0, "h0:9".into(), 1);
    core.done(&m1, "h1:9".into(), 1);
    let (rc, r) = run_one(&mut core, &mut f, "h1");
    let h0 = NodeId { host: "h0".into(), port: 1 };
    core.node_lost(&h0, 2);
    let events = core.map_events(&r, 0, 10, 2);
    assert_eq!(events.last().map(|e| (e.map_attempt, e.status)), Some((m0, MapEventStatus::Obsolete)));
    let (_, again) = run_one(&mut core, &mut f, "h2");
    assert_eq!((again.task, again.attempt), (m0.task, 1));
    let rep = core.report("j", "u", "/o");
    assert_eq!(rep.counter(JOB_COUNTER_GROUP, "NUM_KILLED_MAPS"), 1);
    assert_eq!(rep.counter(JOB_COUNTER_GROUP, "NUM_FAILED_MAPS"), 0, "a lost node is not the task's fault");
    core.done(&again, "h2:9".into(), 3);
    assert_eq!(core.map_events(&r, 3, 10, 3).len(), 1, "the re-run's output is announced");
    // The reduce's node is lost too: the reduce is re-run, its container's late exit ignored.
    let h1 = NodeId { host: "h1".into(), port: 1 };
    let cmds = core.node_lost(&h1, 4);
    assert!(cmds.contains(&Command::AbortTask(r)));
    assert!(core.container_completed(&exit(rc, exit_status::ABORTED), 5).is_empty());
    assert_eq!(asked(&mut core), 1, "the map that was on h1 (the reduce waits for the maps)");
    let (_, m1again) = run_one(&mut core, &mut f, "h2");
    assert_eq!(m1again.task, m1.task);
    core.done(&m1again, "h2:9".into(), 6);
    assert_eq!(asked(&mut core), 1, "now the reduce");
    let (_, r2) = run_one(&mut core, &mut f, "h2");
    assert_eq!((r2.task, r2.attempt), (r.task, 1));
}

#[test]
fn three_fetch_failures_rerun_the_map_and_count() {
    let mut core = JobCore::new(plan(1, 1), 0);
    let mut f = Fixture { next: 0 };
    let (_, m) = run_one(&mut core, &mut f, "h0");
    core.done(&m, "h0:9".into(), 1);
    let (_, r) = run_one(&mut core, &mut f, "h1");
    assert!(core.fetch_failure(&r, m, 2).is_empty());
    assert!(core.fetch_failure(&r, m, 3).is_empty());
    core.fetch_failure(&r, m, 4);
    assert_eq!(core.map_events(&r, 0, 10, 4).last().map(|e| e.status), Some(MapEventStatus::Obsolete));
    assert_eq!(core.report("j", "u", "/o").counter(JOB_COUNTER_GROUP, "NUM_FAILED_MAPS"), 1);
}

#[test]
fn a_node_with_three_failures_is_blacklisted() {
    let mut core = JobCore::new(plan(3, 0), 0);
    let mut f = Fixture { next: 0 };
    let mut cmds = Vec::new();
    for _ in 0..3 {
        let (_, a) = run_one(&mut core, &mut f, "bad");
        cmds = core.fatal_error(&a, "x", "", 1);
    }
    let bad = NodeId { host: "bad".into(), port: 1 };
    assert!(cmds.contains(&Command::Blacklist(bad)), "{cmds:?}");
    let cmds = core.allocated(vec![f.container("bad")], 2);
    assert!(matches!(cmds.as_slice(), [Command::Release(_)]), "{cmds:?}");
}

#[test]
fn only_one_attempt_of_a_task_may_commit() {
    let mut core = JobCore::new(plan(1, 1), 0);
    let mut f = Fixture { next: 0 };
    let (_, m) = run_one(&mut core, &mut f, "h0");
    core.done(&m, "h0:9".into(), 1);
    let (_, r1) = run_one(&mut core, &mut f, "h1");
    assert!(core.can_commit(&r1, 2));
    // r1 dies after it was allowed to commit: the next attempt may.
    core.fatal_error(&r1, "died", "", 3);
    let (_, r2) = run_one(&mut core, &mut f, "h2");
    assert!(!core.can_commit(&r1, 4), "a dead attempt may not");
    assert!(core.can_commit(&r2, 4));
}

#[test]
fn a_new_am_attempt_skips_committed_reduces_and_numbers_attempts_apart() {
    let mut p = plan(2, 2);
    p.am_attempt = 2;
    p.recovered.insert(TaskId { app: APP, kind: TaskType::Reduce, index: 0 });
    let mut core = JobCore::new(p.clone(), 0);
    let mut f = Fixture { next: 0 };
    let (_, m) = run_one(&mut core, &mut f, "h0");
    assert_eq!(m.attempt, ATTEMPT_STRIDE);
    assert_eq!(core.report("j", "u", "/o").reduces.recovered, 1);
    // Every reduce committed before: nothing runs at all.
    p.recovered.insert(TaskId { app: APP, kind: TaskType::Reduce, index: 1 });
    let mut core = JobCore::new(p, 0);
    assert_eq!(core.state(), &JobState::Committing);
    assert_eq!(asked(&mut core), 0);
}
