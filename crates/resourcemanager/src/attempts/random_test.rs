//! Random event histories over a few apps, RM restarts included: after every event the
//! lifecycle's invariants hold; an AM call from anything but the current live attempt is
//! refused; every app ends at most once, and nothing is decided for it afterwards; a started
//! attempt is always the app's newest. A failure prints its seed; rerun one seed with
//! `RM_SEED=<seed>`.

use super::*;

use crate::test_rng::Rng;

const APPS: u64 = 4;

/// Returns how many apps ended, by final state.
fn run(seed: u64) -> BTreeMap<AppState, usize> {
    let mut rng = Rng(seed);
    let config = Config { am_expiry_ms: 1000, default_max_attempts: 2, attempts_limit: 6 };
    let mut m = Attempts::new(config.clone());
    let mut ended: BTreeMap<AppId, AppState> = BTreeMap::new();
    let mut now = 0u64;
    for step in 0..300 {
        let ctx = format!("seed {seed} step {step}");
        let app = AppId(rng.below(APPS));
        let current = m.current(app).map(|a| a.number);
        // Mostly the current attempt, sometimes an older or a newer one.
        let n = match (current, rng.below(5)) {
            (Some(c), 0) => c.saturating_sub(1).max(1),
            (Some(c), 1) => c + 1,
            (Some(c), _) => c,
            (None, _) => 1,
        };
        let attempt = AttemptId { app, attempt: n };
        let node = format!("n{}", rng.below(3));
        let live_current =
            m.current(app).is_some_and(|a| a.state.is_live() && a.number == n && a.state != AttemptState::Scheduled);
        let decisions = match rng.below(13) {
            0 => {
                let _ = m.submit(app, Some(1 + rng.below(3) as u32));
                let _ = m.submission_stored(app);
                m.accept(app).unwrap_or_default()
            }
            1 => {
                let _ = m.am_allocated(attempt, ContainerId { epoch: 0, seq: step }, &node, now);
                Vec::new()
            }
            2 => {
                let _ = m.am_launched(attempt, now);
                Vec::new()
            }
            3 | 4 => {
                let r = m.am_registered(attempt, now);
                if !live_current {
                    assert!(r.is_err(), "{ctx}: {attempt} registered while not current");
                }
                Vec::new()
            }
            5 | 6 => {
                let r = m.am_heartbeat(attempt, now);
                if !live_current {
                    assert!(r.is_err(), "{ctx}: heartbeat of {attempt} accepted");
                }
                if r.is_ok() {
                    assert_eq!(m.current(app).unwrap().state, AttemptState::Running, "{ctx}");
                }
                Vec::new()
            }
            7 => {
                let status = *rng.pick(&[FinalStatus::Succeeded, FinalStatus::Failed]);
                let r = m.am_unregistered(attempt, status, "done");
                if !live_current {
                    assert!(r.is_err(), "{ctx}: unregister of {attempt} accepted");
                }
                r.unwrap_or_default()
            }
            8 => m.am_container_exited(attempt, *rng.pick(&[0, 1, -100, -102, 137])),
            9 => m.node_lost(&node),
            10 => {
                now += rng.below(800);
                m.check_expiry(now)
            }
            11 if rng.chance(20) => m.kill(app, "killed").unwrap_or_default(),
            _ if rng.chance(15) => {
                // An RM restart: every record reloaded into a new machine.
                let mut fresh = Attempts::new(config.clone());
                let mut out = Vec::new();
                for r in m.apps() {
                    out.extend(fresh.recover(r.clone(), now).unwrap());
                }
                m = fresh;
                out
            }
            _ => {
                now += rng.below(300);
                Vec::new()
            }
        };
        for d in &decisions {
            match d {
                Decision::StartAttempt(a) => {
                    assert_eq!(m.current(a.app).map(|c| c.number), Some(a.attempt), "{ctx}: {d:?} not the newest");
                    assert!(!ended.contains_key(&a.app), "{ctx}: {d:?} after the app ended");
                }
                Decision::KillAttempt(a) => {
                    assert!(!ended.contains_key(&a.app), "{ctx}: {d:?} after the app ended");
                }
                Decision::AppFinished { app, state, .. } => {
                    assert!(ended.insert(*app, *state).is_none(), "{ctx}: {app} ended twice");
                    assert_eq!(m.state(*app), Some(*state), "{ctx}");
                }
            }
        }
        if let Err(e) = m.check_invariants() {
            panic!("{ctx}: {e}");
        }
    }
    let mut by_state = BTreeMap::new();
    for s in ended.values() {
        *by_state.entry(*s).or_insert(0) += 1;
    }
    by_state
}

#[test]
fn random_histories_keep_the_lifecycle_rules() {
    if let Some(seed) = std::env::var("RM_SEED").ok().and_then(|s| s.parse().ok()) {
        run(seed);
        return;
    }
    let mut total: BTreeMap<AppState, usize> = BTreeMap::new();
    for seed in 0..300 {
        for (s, n) in run(seed) {
            *total.entry(s).or_default() += n;
        }
    }
    // Every way to end is reached.
    for s in [AppState::Finished, AppState::Failed, AppState::Killed] {
        assert!(total.get(&s).copied().unwrap_or(0) > 20, "{total:?}");
    }
}
