//! The lifecycle's paths, one test each, asserted through the decisions events return.

use super::*;

const APP: AppId = AppId(1);

fn att(n: u32) -> AttemptId {
    AttemptId { app: APP, attempt: n }
}

fn cid(seq: u64) -> ContainerId {
    ContainerId { epoch: 0, seq }
}

/// An app submitted, stored and accepted: attempt 1 is scheduled.
fn accepted(max_attempts: Option<u32>) -> Attempts {
    let mut m = Attempts::new(Config::default());
    m.submit(APP, max_attempts).unwrap();
    assert_eq!(m.state(APP), Some(AppState::New));
    m.submission_stored(APP).unwrap();
    assert_eq!(m.state(APP), Some(AppState::Submitted));
    assert_eq!(m.accept(APP).unwrap(), vec![Decision::StartAttempt(att(1))]);
    assert_eq!(m.state(APP), Some(AppState::Accepted));
    m
}

/// Takes attempt `n` to RUNNING at `t` with its AM container on `node`.
fn run(m: &mut Attempts, n: u32, node: &str, t: u64) {
    m.am_allocated(att(n), cid(u64::from(n) * 100), node, t).unwrap();
    m.am_launched(att(n), t).unwrap();
    m.am_registered(att(n), t).unwrap();
    assert_eq!(m.current(APP).unwrap().state, AttemptState::Running);
    assert_eq!(m.state(APP), Some(AppState::Running));
}

fn ok(m: &Attempts) {
    m.check_invariants().unwrap();
}

fn finished(d: &[Decision]) -> Option<(AppState, FinalStatus, String)> {
    d.iter().find_map(|d| match d {
        Decision::AppFinished { state, final_status, diagnostics, .. } => {
            Some((*state, *final_status, diagnostics.clone()))
        }
        _ => None,
    })
}

#[test]
fn the_happy_path_ends_finished_with_the_ams_status() {
    let mut m = accepted(None);
    assert_eq!(m.record(APP).unwrap().max_attempts, 2, "YARN's default budget");
    run(&mut m, 1, "n1", 0);
    m.am_heartbeat(att(1), 5).unwrap();
    let d = m.am_unregistered(att(1), FinalStatus::Succeeded, "all done").unwrap();
    assert_eq!(
        d,
        vec![
            Decision::KillAttempt(att(1)),
            Decision::AppFinished {
                app: APP,
                state: AppState::Finished,
                final_status: FinalStatus::Succeeded,
                diagnostics: "all done".into()
            }
        ]
    );
    assert_eq!(m.current(APP).unwrap().state, AttemptState::Finished);
    // The AM container's exit afterwards is expected, not a failure.
    assert!(m.am_container_exited(att(1), 0).is_empty());
    ok(&m);
}

#[test]
fn an_am_reporting_failure_still_finishes_the_app() {
    // YARN: the app state is FINISHED; the final status says FAILED.
    let mut m = accepted(None);
    run(&mut m, 1, "n1", 0);
    let d = m.am_unregistered(att(1), FinalStatus::Failed, "task failed 4 times").unwrap();
    assert_eq!(finished(&d), Some((AppState::Finished, FinalStatus::Failed, "task failed 4 times".into())));
}

#[test]
fn transitions_out_of_order_are_refused() {
    let mut m = Attempts::new(Config::default());
    assert_eq!(m.submission_stored(APP), Err(Error::UnknownApp(APP)));
    m.submit(APP, None).unwrap();
    assert_eq!(m.submit(APP, None), Err(Error::DuplicateApp(APP)));
    let e = m.accept(APP).unwrap_err();
    assert_eq!(e, Error::InvalidTransition { app: APP, state: AppState::New, event: "accept" });
    m.submission_stored(APP).unwrap();
    assert!(m.submission_stored(APP).is_err());
    m.accept(APP).unwrap();
    assert!(m.accept(APP).is_err());
    ok(&m);
}

#[test]
fn max_attempts_is_clamped() {
    let mut m = Attempts::new(Config::default());
    m.submit(AppId(1), Some(0)).unwrap();
    m.submit(AppId(2), Some(1000)).unwrap();
    assert_eq!(m.record(AppId(1)).unwrap().max_attempts, 1);
    assert_eq!(m.record(AppId(2)).unwrap().max_attempts, 10);
}

#[test]
fn a_crashed_am_gets_a_new_attempt_until_the_budget_is_spent() {
    let mut m = accepted(None);
    run(&mut m, 1, "n1", 0);
    let d = m.am_container_exited(att(1), 1);
    assert_eq!(d, vec![Decision::KillAttempt(att(1)), Decision::StartAttempt(att(2))]);
    let first = &m.record(APP).unwrap().attempts[0];
    assert!(first.counted && first.diagnostics.contains("exit code 1"), "{first:?}");
    // The app is ACCEPTED again until attempt 2's AM registers.
    assert_eq!(m.state(APP), Some(AppState::Accepted));
    run(&mut m, 2, "n2", 10);
    let d = m.am_container_exited(att(2), 137);
    let (state, status, diag) = finished(&d).unwrap();
    assert_eq!((state, status), (AppState::Failed, FinalStatus::Failed));
    assert!(diag.contains("failed 2 times") && diag.contains("exit code 137"), "{diag}");
    assert_eq!(d[0], Decision::KillAttempt(att(2)));
    assert!(!d.iter().any(|d| matches!(d, Decision::StartAttempt(_))));
    ok(&m);
}

#[test]
fn preemption_and_lost_nodes_do_not_count() {
    let mut m = accepted(Some(1));
    for (n, status) in [(1, -100), (2, -101), (3, -102), (4, -106)] {
        run(&mut m, n, "n1", 0);
        let d = m.am_container_exited(att(n), status);
        assert_eq!(d, vec![Decision::KillAttempt(att(n)), Decision::StartAttempt(att(n + 1))], "status {status}");
    }
    run(&mut m, 5, "n1", 0);
    assert!(finished(&m.am_container_exited(att(5), 1)).is_some(), "the first counted failure spends a budget of 1");
    ok(&m);
}

#[test]
fn a_lost_node_fails_the_attempts_whose_am_was_on_it_uncounted() {
    let mut m = accepted(Some(1));
    m.submit(AppId(2), None).unwrap();
    m.submission_stored(AppId(2)).unwrap();
    m.accept(AppId(2)).unwrap();
    run(&mut m, 1, "n1", 0);
    m.am_allocated(AttemptId { app: AppId(2), attempt: 1 }, cid(7), "n2", 0).unwrap();
    let d = m.node_lost("n1");
    assert_eq!(d, vec![Decision::KillAttempt(att(1)), Decision::StartAttempt(att(2))]);
    assert!(!m.record(APP).unwrap().attempts[0].counted);
    assert!(m.node_lost("n9").is_empty());
    assert_eq!(m.current(AppId(2)).unwrap().state, AttemptState::Allocated);
    ok(&m);
}

#[test]
fn a_silent_am_expires_and_that_counts() {
    let mut m = accepted(None);
    // Waiting for an AM container never expires: the cluster may be full.
    assert!(m.check_expiry(1_000_000).is_empty());
    run(&mut m, 1, "n1", 1_000_000);
    m.am_heartbeat(att(1), 1_008_000).unwrap();
    assert!(m.check_expiry(1_018_000).is_empty(), "exactly the expiry is not past it");
    let d = m.check_expiry(1_018_001);
    assert_eq!(d, vec![Decision::KillAttempt(att(1)), Decision::StartAttempt(att(2))]);
    let first = &m.record(APP).unwrap().attempts[0];
    assert!(first.counted && first.diagnostics.contains("timed out"));
    // An allocated but never launched AM container expires too, from its allocation.
    m.am_allocated(att(2), cid(2), "n2", 2_000_000).unwrap();
    assert!(finished(&m.check_expiry(2_010_001)).is_some());
    ok(&m);
}

#[test]
fn am_calls_from_an_old_attempt_are_fenced() {
    let mut m = accepted(None);
    run(&mut m, 1, "n1", 0);
    m.am_container_exited(att(1), 1);
    let fenced = Error::AttemptNotCurrent { attempt: att(1), current: Some(2) };
    assert_eq!(m.am_heartbeat(att(1), 1), Err(fenced.clone()));
    assert_eq!(m.am_registered(att(1), 1), Err(fenced.clone()));
    assert_eq!(m.am_unregistered(att(1), FinalStatus::Succeeded, ""), Err(fenced.clone()));
    assert_eq!(m.am_allocated(att(1), cid(9), "n1", 1), Err(fenced));
    // A stale exit report is a fact about the past: ignored.
    assert!(m.am_container_exited(att(1), 1).is_empty());
    // An attempt from the future is no better.
    assert!(matches!(m.am_registered(att(3), 1), Err(Error::AttemptNotCurrent { .. })));
    // Once the app is over there is no current attempt at all.
    run(&mut m, 2, "n1", 2);
    m.am_unregistered(att(2), FinalStatus::Succeeded, "").unwrap();
    assert_eq!(m.am_heartbeat(att(2), 3), Err(Error::AttemptNotCurrent { attempt: att(2), current: None }));
    assert!(matches!(m.am_heartbeat(AttemptId { app: AppId(9), attempt: 1 }, 3), Err(Error::UnknownApp(_))));
    ok(&m);
}

#[test]
fn registration_rules() {
    let mut m = accepted(None);
    // Not yet allocated: there is no AM to register.
    assert!(matches!(m.am_registered(att(1), 0), Err(Error::AttemptNotCurrent { .. })));
    m.am_allocated(att(1), cid(1), "n1", 0).unwrap();
    assert!(m.am_allocated(att(1), cid(2), "n1", 0).is_err(), "a second AM container is not wanted");
    assert_eq!(m.am_heartbeat(att(1), 0), Err(Error::NotRegistered(att(1))));
    assert_eq!(m.am_unregistered(att(1), FinalStatus::Succeeded, ""), Err(Error::NotRegistered(att(1))));
    // Registering before the launcher heard back from the NM is fine; a late launch report
    // does not step the attempt back.
    m.am_registered(att(1), 1).unwrap();
    m.am_launched(att(1), 2).unwrap();
    assert_eq!(m.current(APP).unwrap().state, AttemptState::Running);
    assert_eq!(m.am_registered(att(1), 3), Err(Error::AlreadyRegistered(att(1))));
    ok(&m);
}

#[test]
fn kill_ends_the_app_and_its_attempt() {
    let mut m = accepted(None);
    run(&mut m, 1, "n1", 0);
    let d = m.kill(APP, "killed by user alice").unwrap();
    assert_eq!(d[0], Decision::KillAttempt(att(1)));
    assert_eq!(finished(&d), Some((AppState::Killed, FinalStatus::Killed, "killed by user alice".into())));
    assert_eq!(m.current(APP).unwrap().state, AttemptState::Killed);
    assert!(m.kill(APP, "again").unwrap().is_empty());
    assert!(m.check_expiry(u64::MAX).is_empty());
    // An app killed before it was accepted has no attempt to kill.
    m.submit(AppId(2), None).unwrap();
    let d = m.kill(AppId(2), "no").unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(m.state(AppId(2)), Some(AppState::Killed));
    assert!(matches!(m.kill(AppId(3), ""), Err(Error::UnknownApp(_))));
    ok(&m);
}

/// The records of `m`, reloaded into a new machine at `now` (an RM restart).
fn restart(m: &Attempts, now: u64) -> (Attempts, Vec<Decision>) {
    let mut fresh = Attempts::new(Config::default());
    let mut out = Vec::new();
    for r in m.apps() {
        out.extend(fresh.recover(r.clone(), now).unwrap());
    }
    fresh.check_invariants().unwrap();
    (fresh, out)
}

#[test]
fn after_an_rm_restart_a_running_am_registers_again() {
    let mut m = accepted(Some(1));
    run(&mut m, 1, "n1", 0);
    let (mut m, d) = restart(&m, 50_000);
    assert!(d.is_empty());
    assert_eq!(m.current(APP).unwrap().state, AttemptState::Recovering);
    assert_eq!(m.state(APP), Some(AppState::Running));
    // Its next Allocate is told to register; it does, and carries on.
    assert_eq!(m.am_heartbeat(att(1), 50_100), Err(Error::NotRegistered(att(1))));
    m.am_registered(att(1), 50_200).unwrap();
    m.am_heartbeat(att(1), 50_300).unwrap();
    assert_eq!(m.current(APP).unwrap().state, AttemptState::Running);
    ok(&m);
}

#[test]
fn an_attempt_lost_to_an_rm_restart_does_not_count() {
    // A budget of one, and yet the app survives its AM not coming back after the restart.
    let mut m = accepted(Some(1));
    run(&mut m, 1, "n1", 0);
    let (mut m, _) = restart(&m, 50_000);
    assert!(m.check_expiry(60_000).is_empty());
    let d = m.check_expiry(60_001);
    assert_eq!(d, vec![Decision::KillAttempt(att(1)), Decision::StartAttempt(att(2))]);
    let first = &m.record(APP).unwrap().attempts[0];
    assert!(!first.counted && first.diagnostics.contains("RM restart"), "{first:?}");
    ok(&m);
}

#[test]
fn recovery_of_each_app_state() {
    let mut m = Attempts::new(Config::default());
    // 1: submitted, never accepted. 2: accepted, waiting for its AM container. 3: finished.
    for id in 1..=3 {
        m.submit(AppId(id), None).unwrap();
        m.submission_stored(AppId(id)).unwrap();
    }
    m.accept(AppId(2)).unwrap();
    m.accept(AppId(3)).unwrap();
    let a3 = AttemptId { app: AppId(3), attempt: 1 };
    m.am_allocated(a3, cid(1), "n1", 0).unwrap();
    m.am_registered(a3, 0).unwrap();
    m.am_unregistered(a3, FinalStatus::Succeeded, "ok").unwrap();
    let (mut r, d) = restart(&m, 100);
    // The scheduler's ask for app 2's AM died with the RM: a new attempt, uncounted.
    let a2 = |n| AttemptId { app: AppId(2), attempt: n };
    assert_eq!(d, vec![Decision::KillAttempt(a2(1)), Decision::StartAttempt(a2(2))]);
    assert!(!r.record(AppId(2)).unwrap().attempts[0].counted);
    assert_eq!(r.state(AppId(1)), Some(AppState::Submitted));
    assert_eq!(r.accept(AppId(1)).unwrap(), vec![Decision::StartAttempt(AttemptId { app: AppId(1), attempt: 1 })]);
    assert_eq!(r.record(AppId(3)), m.record(AppId(3)));
    assert_eq!(r.recover(m.record(AppId(3)).unwrap().clone(), 0), Err(Error::DuplicateApp(AppId(3))));
    ok(&r);
}

#[test]
fn uncounted_failures_stop_at_the_attempts_limit() {
    let mut m = Attempts::new(Config { attempts_limit: 3, ..Config::default() });
    m.submit(APP, None).unwrap();
    m.submission_stored(APP).unwrap();
    m.accept(APP).unwrap();
    for n in 1..=2 {
        run(&mut m, n, "n1", 0);
        assert_eq!(m.node_lost("n1").last(), Some(&Decision::StartAttempt(att(n + 1))));
    }
    run(&mut m, 3, "n1", 0);
    let (state, _, diag) = finished(&m.node_lost("n1")).unwrap();
    assert_eq!(state, AppState::Failed);
    assert!(diag.contains("3 attempts"), "{diag}");
    ok(&m);
}
