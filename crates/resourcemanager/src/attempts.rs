//! The application and attempt lifecycle, as a pure state machine.
//!
//! An application goes NEW -> SUBMITTED (its submission is stored) -> ACCEPTED (the scheduler
//! took it; its first attempt waits for an AM container) -> RUNNING (an AM registered) and ends
//! FINISHED (its AM unregistered, with the AM's final status), FAILED (its attempt budget is
//! spent) or KILLED. An attempt goes SCHEDULED -> ALLOCATED (AM container placed) -> LAUNCHED
//! (the NM started it) -> RUNNING (registered) and ends FINISHED, FAILED or KILLED; after an RM
//! restart a live attempt is RECOVERING until its AM registers again.
//!
//! Events come in as method calls and return [`Decision`]s for the daemon: start an attempt
//! (ask the scheduler for its AM container), kill an attempt's containers (and fence it: NMs
//! refuse to start its containers), or finish the app. Time is the caller's monotonic `now_ms`.
//!
//! **An attempt ends** when its AM unregisters, its AM container exits, its node is lost, it
//! is silent past `am_expiry_ms` (counted from allocation, launch, its last heartbeat or the
//! RM's restart), or the app is killed. A failed attempt is followed by a new one while the
//! budget lasts. **What counts** against the budget (`max_attempts`, YARN's
//! `yarn.resourcemanager.am.max-attempts`, default 2) is YARN's rule
//! (`RMAppAttemptImpl.shouldCountTowardsMaxAttemptRetry`): not an AM container that exited
//! -100 (ABORTED: released, or lost with its node), -101 (DISKS_FAILED), -102 (PREEMPTED) or
//! -106 (KILLED_BY_RESOURCEMANAGER), and not an attempt interrupted by an RM restart; every
//! other failure counts, an AM expiry included. Because uncounted failures could otherwise
//! repeat forever, herd adds a hard limit on attempts of any kind (`attempts_limit`).
//!
//! **Fencing.** Every AM event (register, heartbeat, unregister) names its attempt; one from
//! an attempt that is not the app's current live attempt is refused with
//! [`Error::AttemptNotCurrent`], which the daemon answers as YARN's
//! `ApplicationAttemptNotFoundException`, and that AM exits. Events that come from NodeManagers
//! about an old attempt (its container exited) are facts, not requests: they are ignored.

#[cfg(test)]
mod random_test;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::types::{AppId, AttemptId, ContainerId, NodeId};

/// AM container exit statuses that do not count against the budget (YARN's
/// `ContainerExitStatus`: ABORTED, DISKS_FAILED, PREEMPTED, KILLED_BY_RESOURCEMANAGER).
pub const UNCOUNTED_EXIT_STATUSES: [i32; 4] = [-100, -101, -102, -106];

/// The exit status of a container lost with its node (YARN's ABORTED).
pub const EXIT_NODE_LOST: i32 = -100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// An AM silent this long is failed (YARN `yarn.am.liveness-monitor.expiry-interval-ms`,
    /// 600 s; herd 10 s).
    pub am_expiry_ms: u64,
    /// Attempts an app gets when its submission names none.
    pub default_max_attempts: u32,
    /// No app may ask for more attempts than this, and no app gets more attempts of any kind
    /// (counted or not) than this.
    pub attempts_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config { am_expiry_ms: 10_000, default_max_attempts: 2, attempts_limit: 10 }
    }
}

/// YARN's `YarnApplicationState`, without the saving states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AppState {
    New,
    Submitted,
    Accepted,
    Running,
    Finished,
    Failed,
    Killed,
}

impl AppState {
    pub fn is_final(self) -> bool {
        matches!(self, AppState::Finished | AppState::Failed | AppState::Killed)
    }
}

/// What the app's AM said of its outcome (YARN's `FinalApplicationStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FinalStatus {
    Succeeded,
    Failed,
    Killed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttemptState {
    /// Waiting for its AM container.
    Scheduled,
    Allocated,
    Launched,
    Running,
    /// Live when the RM restarted: waiting for its AM to register again.
    Recovering,
    Finished,
    Failed,
    Killed,
}

impl AttemptState {
    pub fn is_live(self) -> bool {
        !matches!(self, AttemptState::Finished | AttemptState::Failed | AttemptState::Killed)
    }
}

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ask the scheduler for this attempt's AM container (and write the app's record).
    StartAttempt(AttemptId),
    /// Kill this attempt's containers and fence it: NodeManagers refuse to start any more of
    /// them, and its AM is refused at its next call.
    KillAttempt(AttemptId),
    /// The app reached a final state; the scheduler forgets it.
    AppFinished { app: AppId, state: AppState, final_status: FinalStatus, diagnostics: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unknown application {0}")]
    UnknownApp(AppId),
    #[error("application {0} already exists")]
    DuplicateApp(AppId),
    /// YARN's `ApplicationAttemptNotFoundException`: the AM must exit.
    #[error("{attempt} is not the current attempt of its application (current: {current:?})")]
    AttemptNotCurrent { attempt: AttemptId, current: Option<u32> },
    /// YARN's `ApplicationMasterNotRegisteredException`: the AM registers (again), as an AM
    /// does after an RM restart.
    #[error("{0}: the application master is not registered")]
    NotRegistered(AttemptId),
    /// YARN's `InvalidApplicationMasterRequestException`.
    #[error("{0}: the application master is already registered")]
    AlreadyRegistered(AttemptId),
    #[error("{app}: {event} is not valid in state {state:?}")]
    InvalidTransition { app: AppId, state: AppState, event: &'static str },
}

/// One attempt, as stored and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub number: u32,
    pub state: AttemptState,
    pub am_container: Option<(ContainerId, NodeId)>,
    /// Whether its failure counts against the budget.
    pub counted: bool,
    pub diagnostics: String,
}

/// An application's lifecycle, as stored in the keeper and reloaded after an RM restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub app: AppId,
    pub max_attempts: u32,
    pub state: AppState,
    pub final_status: Option<FinalStatus>,
    pub diagnostics: String,
    pub attempts: Vec<AttemptRecord>,
}

/// The lifecycle of every app. See the module documentation.
#[derive(Debug)]
pub struct Attempts {
    config: Config,
    apps: BTreeMap<AppId, AppRecord>,
    last_heard: BTreeMap<AttemptId, u64>,
}

impl Attempts {
    pub fn new(config: Config) -> Attempts {
        Attempts { config, apps: BTreeMap::new(), last_heard: BTreeMap::new() }
    }

    // ---- the client's side ----

    /// A new app (NEW). `max_attempts` is clamped to 1..=`attempts_limit`.
    pub fn submit(&mut self, app: AppId, max_attempts: Option<u32>) -> Result<(), Error> {
        if self.apps.contains_key(&app) {
            return Err(Error::DuplicateApp(app));
        }
        let max_attempts =
            max_attempts.unwrap_or(self.config.default_max_attempts).clamp(1, self.config.attempts_limit.max(1));
        let record = AppRecord {
            app,
            max_attempts,
            state: AppState::New,
            final_status: None,
            diagnostics: String::new(),
            attempts: Vec::new(),
        };
        self.apps.insert(app, record);
        Ok(())
    }

    /// The submission is stored (SUBMITTED): it may now be acknowledged.
    pub fn submission_stored(&mut self, app: AppId) -> Result<(), Error> {
        let a = self.app_in(app, &[AppState::New], "submission stored")?;
        a.state = AppState::Submitted;
        Ok(())
    }

    /// The scheduler took the app (ACCEPTED): its first attempt starts.
    pub fn accept(&mut self, app: AppId) -> Result<Vec<Decision>, Error> {
        let a = self.app_in(app, &[AppState::Submitted], "accept")?;
        a.state = AppState::Accepted;
        Ok(vec![self.new_attempt(app)])
    }

    /// The app is killed; killing a finished app does nothing.
    pub fn kill(&mut self, app: AppId, diagnostics: &str) -> Result<Vec<Decision>, Error> {
        let a = self.apps.get_mut(&app).ok_or(Error::UnknownApp(app))?;
        if a.state.is_final() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if let Some(at) = a.attempts.last_mut().filter(|at| at.state.is_live()) {
            at.state = AttemptState::Killed;
            at.diagnostics = diagnostics.to_string();
            out.push(Decision::KillAttempt(AttemptId { app, attempt: at.number }));
        }
        out.push(finish(a, AppState::Killed, FinalStatus::Killed, diagnostics.to_string()));
        Ok(out)
    }

    // ---- the AM container (scheduler, launcher, NodeManagers) ----

    /// The scheduler placed the attempt's AM container. An error means the attempt no longer
    /// wants it: the caller releases the container.
    pub fn am_allocated(
        &mut self,
        attempt: AttemptId,
        container: ContainerId,
        node: &str,
        now_ms: u64,
    ) -> Result<(), Error> {
        let at = self.current_live(attempt)?;
        if at.state != AttemptState::Scheduled {
            return Err(Error::AttemptNotCurrent { attempt, current: Some(at.number) });
        }
        at.state = AttemptState::Allocated;
        at.am_container = Some((container, node.to_string()));
        self.last_heard.insert(attempt, now_ms);
        Ok(())
    }

    /// The NodeManager started the AM container.
    pub fn am_launched(&mut self, attempt: AttemptId, now_ms: u64) -> Result<(), Error> {
        let at = self.current_live(attempt)?;
        if at.state == AttemptState::Allocated {
            at.state = AttemptState::Launched;
            self.last_heard.insert(attempt, now_ms);
        }
        Ok(())
    }

    /// The AM container exited (an NM's report). If the attempt was live, it failed.
    pub fn am_container_exited(&mut self, attempt: AttemptId, exit_status: i32) -> Vec<Decision> {
        if self.current_live(attempt).is_err() {
            return Vec::new();
        }
        let counted = !UNCOUNTED_EXIT_STATUSES.contains(&exit_status);
        let why = format!("AM container for {attempt} exited with exit code {exit_status}");
        self.fail_attempt(attempt, why, counted)
    }

    /// A node was lost: the live attempts whose AM container was on it fail, uncounted.
    pub fn node_lost(&mut self, node: &str) -> Vec<Decision> {
        let hit: Vec<AttemptId> = self
            .apps
            .values()
            .filter_map(|a| {
                let at = a.attempts.last()?;
                let on = at.am_container.as_ref().is_some_and(|(_, n)| n == node);
                (at.state.is_live() && on).then_some(AttemptId { app: a.app, attempt: at.number })
            })
            .collect();
        let mut out = Vec::new();
        for attempt in hit {
            let why = format!("AM container for {attempt} lost with its node {node} (exit code {EXIT_NODE_LOST})");
            out.extend(self.fail_attempt(attempt, why, false));
        }
        out
    }

    /// Fails every attempt whose AM was silent for longer than the expiry. An expiry counts,
    /// except for an attempt that was waiting to re-register after an RM restart.
    pub fn check_expiry(&mut self, now_ms: u64) -> Vec<Decision> {
        let expired: Vec<(AttemptId, AttemptState)> = self
            .apps
            .values()
            .filter_map(|a| {
                let at = a.attempts.last()?;
                let id = AttemptId { app: a.app, attempt: at.number };
                let heard = *self.last_heard.get(&id)?;
                let live = at.state.is_live() && at.state != AttemptState::Scheduled;
                (live && now_ms.saturating_sub(heard) > self.config.am_expiry_ms).then_some((id, at.state))
            })
            .collect();
        let mut out = Vec::new();
        for (attempt, state) in expired {
            let ms = self.config.am_expiry_ms;
            let (why, counted) = if state == AttemptState::Recovering {
                (
                    format!("ApplicationMaster for {attempt} did not register again within {ms} ms of an RM restart"),
                    false,
                )
            } else {
                (format!("ApplicationMaster for {attempt} timed out after {ms} ms"), true)
            };
            out.extend(self.fail_attempt(attempt, why, counted));
        }
        out
    }

    // ---- the AM's own calls (fenced) ----

    /// RegisterApplicationMaster. Allowed once per attempt, and again after an RM restart.
    pub fn am_registered(&mut self, attempt: AttemptId, now_ms: u64) -> Result<(), Error> {
        let at = self.current_live(attempt)?;
        match at.state {
            AttemptState::Running => return Err(Error::AlreadyRegistered(attempt)),
            // The AM may register before the launcher hears back from the NM.
            AttemptState::Allocated | AttemptState::Launched | AttemptState::Recovering => {}
            AttemptState::Scheduled => return Err(Error::AttemptNotCurrent { attempt, current: Some(at.number) }),
            _ => unreachable!("current_live returns live attempts"),
        }
        at.state = AttemptState::Running;
        self.last_heard.insert(attempt, now_ms);
        let a = self.apps.get_mut(&attempt.app).expect("current_live found it");
        a.state = AppState::Running;
        Ok(())
    }

    /// An Allocate call: the AM is alive.
    pub fn am_heartbeat(&mut self, attempt: AttemptId, now_ms: u64) -> Result<(), Error> {
        let at = self.current_live(attempt)?;
        if at.state != AttemptState::Running {
            return Err(Error::NotRegistered(attempt));
        }
        self.last_heard.insert(attempt, now_ms);
        Ok(())
    }

    /// FinishApplicationMaster: the app is FINISHED with the AM's final status. The attempt's
    /// remaining containers are killed (its AM container exits by itself).
    pub fn am_unregistered(
        &mut self,
        attempt: AttemptId,
        final_status: FinalStatus,
        diagnostics: &str,
    ) -> Result<Vec<Decision>, Error> {
        let at = self.current_live(attempt)?;
        if at.state != AttemptState::Running {
            return Err(Error::NotRegistered(attempt));
        }
        at.state = AttemptState::Finished;
        at.diagnostics = diagnostics.to_string();
        self.last_heard.remove(&attempt);
        let a = self.apps.get_mut(&attempt.app).expect("current_live found it");
        let done = finish(a, AppState::Finished, final_status, diagnostics.to_string());
        Ok(vec![Decision::KillAttempt(attempt), done])
    }

    // ---- RM restart ----

    /// The app's record, to store (after every event that returned decisions or changed it).
    pub fn record(&self, app: AppId) -> Option<&AppRecord> {
        self.apps.get(&app)
    }

    /// Reloads a stored app after an RM restart. A final app stays as it was; one not yet
    /// accepted is SUBMITTED again (the caller adds it to the scheduler and accepts it); a live
    /// attempt with an AM container is RECOVERING, its clock started now, until its AM
    /// registers again; an attempt that had no AM container yet (the scheduler's ask was lost
    /// with the RM) ends uncounted and a new one starts.
    pub fn recover(&mut self, mut record: AppRecord, now_ms: u64) -> Result<Vec<Decision>, Error> {
        let app = record.app;
        if self.apps.contains_key(&app) {
            return Err(Error::DuplicateApp(app));
        }
        if matches!(record.state, AppState::New | AppState::Submitted) {
            record.state = AppState::Submitted;
            self.apps.insert(app, record);
            return Ok(Vec::new());
        }
        let last = record.attempts.last().map(|at| (at.number, at.state));
        self.apps.insert(app, record);
        let mut out = Vec::new();
        match last {
            _ if self.apps[&app].state.is_final() => {}
            Some((number, AttemptState::Scheduled)) => {
                let why = format!(
                    "{} interrupted by an RM restart before its AM container was allocated",
                    AttemptId { app, attempt: number }
                );
                out.extend(self.fail_attempt(AttemptId { app, attempt: number }, why, false));
            }
            Some((number, state)) if state.is_live() => {
                let a = self.apps.get_mut(&app).expect("just inserted");
                a.attempts.last_mut().expect("has attempts").state = AttemptState::Recovering;
                self.last_heard.insert(AttemptId { app, attempt: number }, now_ms);
            }
            // Accepted with no live attempt: the RM stopped between an attempt's end and the
            // next one's start.
            _ => out.push(self.next_attempt_or_fail(app, "an attempt ended across an RM restart".into())),
        }
        Ok(out)
    }

    // ---- queries ----

    pub fn state(&self, app: AppId) -> Option<AppState> {
        self.apps.get(&app).map(|a| a.state)
    }

    /// The app's current attempt (its last one), live or not.
    pub fn current(&self, app: AppId) -> Option<&AttemptRecord> {
        self.apps.get(&app)?.attempts.last()
    }

    pub fn apps(&self) -> impl Iterator<Item = &AppRecord> {
        self.apps.values()
    }

    /// Checks the lifecycle's rules (for tests): attempts are numbered 1, 2, ...; only the last
    /// one may be live, and only while the app is ACCEPTED or RUNNING, which then has one;
    /// counted failures never exceed the budget nor attempts the limit; a final app has its
    /// final status; a RUNNING app's live attempt has registered or is recovering.
    pub fn check_invariants(&self) -> Result<(), String> {
        for a in self.apps.values() {
            let app = a.app;
            for (i, at) in a.attempts.iter().enumerate() {
                if at.number != i as u32 + 1 {
                    return Err(format!("{app}: attempt {} at position {i}", at.number));
                }
                if at.state.is_live() && i + 1 != a.attempts.len() {
                    return Err(format!("{app}: attempt {} live but not the last", at.number));
                }
            }
            let live = a.attempts.last().filter(|at| at.state.is_live());
            let active = matches!(a.state, AppState::Accepted | AppState::Running);
            if active != live.is_some() {
                return Err(format!("{app}: state {:?} with live attempt {:?}", a.state, live.map(|l| l.number)));
            }
            if a.state == AppState::Running
                && !matches!(live.map(|l| l.state), Some(AttemptState::Running | AttemptState::Recovering))
            {
                return Err(format!("{app}: RUNNING without a registered attempt"));
            }
            let counted = a.attempts.iter().filter(|at| at.state == AttemptState::Failed && at.counted).count();
            if counted as u32 > a.max_attempts || a.attempts.len() as u32 > self.config.attempts_limit {
                return Err(format!("{app}: {counted} counted failures, {} attempts", a.attempts.len()));
            }
            if a.state.is_final() != a.final_status.is_some() {
                return Err(format!("{app}: state {:?}, final status {:?}", a.state, a.final_status));
            }
        }
        Ok(())
    }

    // ---- inside ----

    fn app_in(&mut self, app: AppId, states: &[AppState], event: &'static str) -> Result<&mut AppRecord, Error> {
        let a = self.apps.get_mut(&app).ok_or(Error::UnknownApp(app))?;
        if !states.contains(&a.state) {
            return Err(Error::InvalidTransition { app, state: a.state, event });
        }
        Ok(a)
    }

    /// The attempt, if it is its app's current live attempt: the fencing check.
    fn current_live(&mut self, attempt: AttemptId) -> Result<&mut AttemptRecord, Error> {
        let a = self.apps.get_mut(&attempt.app).ok_or(Error::UnknownApp(attempt.app))?;
        let current = a.attempts.last().filter(|at| at.state.is_live()).map(|at| at.number);
        if current != Some(attempt.attempt) {
            return Err(Error::AttemptNotCurrent { attempt, current });
        }
        Ok(a.attempts.last_mut().expect("current attempt exists"))
    }

    fn new_attempt(&mut self, app: AppId) -> Decision {
        let a = self.apps.get_mut(&app).expect("app exists");
        // Until the new attempt's AM registers, the app is ACCEPTED again (YARN's RMApp goes
        // RUNNING -> ACCEPTED when it retries).
        a.state = AppState::Accepted;
        let number = a.attempts.len() as u32 + 1;
        a.attempts.push(AttemptRecord {
            number,
            state: AttemptState::Scheduled,
            am_container: None,
            counted: false,
            diagnostics: String::new(),
        });
        Decision::StartAttempt(AttemptId { app, attempt: number })
    }

    /// Ends a live attempt as failed, kills its containers, and starts the next attempt or
    /// fails the app.
    fn fail_attempt(&mut self, attempt: AttemptId, why: String, counted: bool) -> Vec<Decision> {
        let Ok(at) = self.current_live(attempt) else { return Vec::new() };
        at.state = AttemptState::Failed;
        at.counted = counted;
        at.diagnostics = why.clone();
        self.last_heard.remove(&attempt);
        let mut out = vec![Decision::KillAttempt(attempt)];
        out.push(self.next_attempt_or_fail(attempt.app, why));
        out
    }

    fn next_attempt_or_fail(&mut self, app: AppId, why: String) -> Decision {
        let limit = self.config.attempts_limit;
        let a = self.apps.get_mut(&app).expect("app exists");
        let counted = a.attempts.iter().filter(|at| at.state == AttemptState::Failed && at.counted).count() as u32;
        let tried = a.attempts.len() as u32;
        if counted >= a.max_attempts {
            let msg = format!("Application {app} failed {counted} times due to: {why}. Failing the application.");
            finish(a, AppState::Failed, FinalStatus::Failed, msg)
        } else if tried >= limit {
            let msg = format!("Application {app} ended {tried} attempts, the limit, the last due to: {why}.");
            finish(a, AppState::Failed, FinalStatus::Failed, msg)
        } else {
            self.new_attempt(app)
        }
    }
}

fn finish(a: &mut AppRecord, state: AppState, final_status: FinalStatus, diagnostics: String) -> Decision {
    a.state = state;
    a.final_status = Some(final_status);
    a.diagnostics = diagnostics.clone();
    Decision::AppFinished { app: a.app, state, final_status, diagnostics }
}
