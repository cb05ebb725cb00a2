//! The ApplicationMaster's job as a pure state machine: events in (containers allocated and
//! completed, nodes lost, task reports, the clock), [`Command`]s out (launch, stop, release,
//! blacklist, abort a task's output, commit or abort the job). The runtime (`am.rs`) executes
//! the commands; tests drive this alone.
//!
//! Rules (Hadoop's, faster):
//! - Every task has attempts; at most one runs at a time. A *counted* failure (non-zero exit,
//!   `FatalError`, no word within the task time-out, too many fetch failures of its output)
//!   spends one of `max_task_attempts`; the last one fails the job with its diagnostics. A
//!   *kill* (its node lost, its container aborted or preempted) spends nothing and the task is
//!   re-run.
//! - A node where `blacklist_after` attempts failed gets no more of this job's tasks.
//! - A retried task avoids the nodes it failed on when another is offered.
//! - Reduces are asked for once every map has succeeded (Hadoop's slow start at 1.0: a reducer
//!   never holds a container while a map waits for one).
//! - A succeeded map whose output is lost (its node left, or 3 fetch failures reported) while a
//!   reduce still needs it runs again; reducers learn from an `Obsolete` event.
//! - One attempt per task may commit (`CanCommit`); the job commits when every task that
//!   writes output has succeeded.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use compute_proto::ids::{ApplicationId, ContainerId, NodeId, TaskAttemptId, TaskId, TaskType};
use compute_proto::records::{exit_status, Container, ContainerStatus, Progress, Resource, ResourceRequest};
use compute_proto::umbilical::{Counter, FileSplit, MapCompletionEvent, MapEventStatus, Phase, TaskSpec, TaskStatus};

use crate::report::{AttemptReport, JobReport, TaskCounts};

/// Ask priorities (lower first), as MapReduce's RMContainerAllocator: re-runs of failed maps
/// first, then reduces, then maps.
pub const PRIORITY_MAP_RETRY: u32 = 5;
pub const PRIORITY_REDUCE: u32 = 10;
pub const PRIORITY_MAP: u32 = 20;
/// Fetch-failure reports against one map attempt that declare its output lost.
pub const FETCH_FAILURES_MAX: u32 = 3;
/// Attempt numbers of AM attempt `n` start at `(n - 1) * ATTEMPT_STRIDE`, so that a new AM never
/// reuses an old attempt's id (its output directories).
pub const ATTEMPT_STRIDE: u32 = 1000;
/// How many diagnostics lines the job keeps.
const DIAGNOSTICS_MAX: usize = 64;

pub const JOB_COUNTER_GROUP: &str = "org.apache.hadoop.mapreduce.JobCounter";

/// One map's input and the hosts that hold it.
#[derive(Debug, Clone)]
pub struct MapInput {
    pub split: FileSplit,
    pub hosts: Vec<String>,
}

/// What the job is, fixed at start.
#[derive(Debug, Clone)]
pub struct Plan {
    pub app: ApplicationId,
    /// This AM's attempt number (from 1).
    pub am_attempt: u32,
    pub maps: Vec<MapInput>,
    pub reduces: u32,
    /// Tasks a previous AM attempt committed (reduces, or maps of a map-only job).
    pub recovered: BTreeSet<TaskId>,
    pub max_task_attempts: u32,
    pub blacklist_after: u32,
    pub task_timeout_ms: u64,
    pub task_resource: Resource,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start `task` in `container` (a StartContainer to its NodeManager).
    Launch { container: Container, task: TaskSpec },
    /// Give back a container this job has no use for.
    Release(ContainerId),
    /// Stop a running container (its attempt was failed or killed here).
    Stop { container: ContainerId, node: NodeId },
    /// Ask the RM for no more containers on this node.
    Blacklist(NodeId),
    /// Delete an unsuccessful attempt's output (the committer's abortTask).
    AbortTask(TaskAttemptId),
    /// Every task succeeded: commit the job's output.
    CommitJob,
    /// The job failed: stop everything and delete its temporary output.
    AbortJob,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    /// Waiting for the runtime's `CommitJob`.
    Committing,
    Succeeded,
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskState {
    /// Has an attempt waiting for a container, or running.
    Active,
    Succeeded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptState {
    Waiting,
    Running,
    Succeeded,
    Failed,
    Killed,
}

#[derive(Debug)]
struct Attempt {
    id: TaskAttemptId,
    state: AttemptState,
    /// Its priority class while it waits.
    priority: u32,
    container: Option<ContainerId>,
    node: Option<NodeId>,
    last_heard_ms: u64,
    status: Option<TaskStatus>,
}

#[derive(Debug)]
struct Task {
    id: TaskId,
    state: TaskState,
    next_attempt: u32,
    /// Counted failures.
    failures: u32,
    failed_hosts: BTreeSet<NodeId>,
    /// The attempt now waiting or running.
    live: Option<TaskAttemptId>,
    succeeded: Option<TaskAttemptId>,
    commit_granted: Option<TaskAttemptId>,
    /// A map's output: its attempt, shuffle server and node.
    output: Option<(TaskAttemptId, String, NodeId)>,
    /// The succeeded attempt's counters.
    counters: Vec<Counter>,
    recovered: bool,
}

pub struct JobCore {
    plan: Plan,
    state: JobState,
    tasks: BTreeMap<TaskId, Task>,
    attempts: HashMap<TaskAttemptId, Attempt>,
    by_container: HashMap<ContainerId, TaskAttemptId>,
    events: Vec<MapCompletionEvent>,
    fetch_failures: HashMap<TaskAttemptId, u32>,
    node_failures: HashMap<NodeId, u32>,
    blacklisted: BTreeSet<NodeId>,
    /// Every ask key sent, so that a key whose count fell to 0 is withdrawn.
    ask_keys: BTreeSet<(u32, Vec<String>)>,
    diagnostics: Vec<String>,
    /// Job counters (launched, failed and killed attempts; data-local maps).
    job_counters: BTreeMap<&'static str, i64>,
}

impl JobCore {
    pub fn new(plan: Plan, now_ms: u64) -> JobCore {
        let mut core = JobCore {
            state: JobState::Running,
            tasks: BTreeMap::new(),
            attempts: HashMap::new(),
            by_container: HashMap::new(),
            events: Vec::new(),
            fetch_failures: HashMap::new(),
            node_failures: HashMap::new(),
            blacklisted: BTreeSet::new(),
            ask_keys: BTreeSet::new(),
            diagnostics: Vec::new(),
            job_counters: BTreeMap::new(),
            plan,
        };
        let app = core.plan.app;
        let ids: Vec<TaskId> = (0..core.plan.maps.len() as u32)
            .map(|index| TaskId { app, kind: TaskType::Map, index })
            .chain((0..core.plan.reduces).map(|index| TaskId { app, kind: TaskType::Reduce, index }))
            .collect();
        // With reduces, maps write nothing that is committed: if every reduce was recovered,
        // the maps are not needed at all.
        let all_reduces_recovered = core.plan.reduces > 0
            && ids.iter().filter(|t| t.kind == TaskType::Reduce).all(|t| core.plan.recovered.contains(t));
        for id in ids {
            let recovered = core.plan.recovered.contains(&id) || (all_reduces_recovered && id.kind == TaskType::Map);
            let first = (core.plan.am_attempt.max(1) - 1) * ATTEMPT_STRIDE;
            core.tasks.insert(
                id,
                Task {
                    id,
                    state: if recovered { TaskState::Succeeded } else { TaskState::Active },
                    next_attempt: first,
                    failures: 0,
                    failed_hosts: BTreeSet::new(),
                    live: None,
                    succeeded: None,
                    commit_granted: None,
                    output: None,
                    counters: Vec::new(),
                    recovered,
                },
            );
            if !recovered {
                let priority = if id.kind == TaskType::Map { PRIORITY_MAP } else { PRIORITY_REDUCE };
                core.new_attempt(id, priority, now_ms);
            }
        }
        core.check_all_done();
        core
    }

    pub fn state(&self) -> &JobState {
        &self.state
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn new_attempt(&mut self, task: TaskId, priority: u32, now_ms: u64) {
        let t = self.tasks.get_mut(&task).expect("a task of this job");
        let id = TaskAttemptId { task, attempt: t.next_attempt };
        t.next_attempt += 1;
        t.live = Some(id);
        t.state = TaskState::Active;
        self.attempts.insert(
            id,
            Attempt {
                id,
                state: AttemptState::Waiting,
                priority,
                container: None,
                node: None,
                last_heard_ms: now_ms,
                status: None,
            },
        );
    }

    fn maps_done(&self) -> bool {
        self.tasks.values().filter(|t| t.id.kind == TaskType::Map).all(|t| t.state == TaskState::Succeeded)
    }

    /// Whether a waiting attempt may be given a container now.
    fn may_run(&self, a: &Attempt) -> bool {
        a.state == AttemptState::Waiting && (a.id.task.kind == TaskType::Map || self.maps_done())
    }

    /// The asks for the next Allocate: per (priority, preferred hosts), how many containers.
    pub fn asks(&mut self) -> Vec<ResourceRequest> {
        let mut counts: BTreeMap<(u32, Vec<String>), u32> = BTreeMap::new();
        if self.state == JobState::Running {
            for a in self.attempts.values().filter(|a| self.may_run(a)) {
                let hosts = match a.id.task.kind {
                    TaskType::Map => {
                        let mut h = self.plan.maps[a.id.task.index as usize].hosts.clone();
                        h.sort();
                        h.dedup();
                        h
                    }
                    TaskType::Reduce => Vec::new(),
                };
                *counts.entry((a.priority, hosts)).or_default() += 1;
            }
        }
        for key in &self.ask_keys {
            counts.entry(key.clone()).or_insert(0);
        }
        self.ask_keys = counts.iter().filter(|(_, &n)| n > 0).map(|(k, _)| k.clone()).collect();
        counts
            .into_iter()
            .map(|((priority, nodes), count)| ResourceRequest {
                priority,
                resource: self.plan.task_resource,
                nodes,
                racks: Vec::new(),
                relax_locality: true,
                count,
            })
            .collect()
    }

    /// Containers from an Allocate: each goes to a waiting attempt, or back.
    pub fn allocated(&mut self, containers: Vec<Container>, now_ms: u64) -> Vec<Command> {
        let mut out = Vec::new();
        for c in containers {
            let node = c.node_id().clone();
            let pick = if self.state != JobState::Running || self.blacklisted.contains(&node) {
                None
            } else {
                self.pick_attempt(&node)
            };
            let Some(id) = pick else {
                out.push(Command::Release(c.id()));
                continue;
            };
            let data_local =
                id.task.kind == TaskType::Map && self.plan.maps[id.task.index as usize].hosts.contains(&node.host);
            let a = self.attempts.get_mut(&id).expect("a picked attempt");
            a.state = AttemptState::Running;
            a.container = Some(c.id());
            a.node = Some(node);
            a.last_heard_ms = now_ms;
            self.by_container.insert(c.id(), id);
            let (launched, local) = match id.task.kind {
                TaskType::Map => ("TOTAL_LAUNCHED_MAPS", "DATA_LOCAL_MAPS"),
                TaskType::Reduce => ("TOTAL_LAUNCHED_REDUCES", ""),
            };
            *self.job_counters.entry(launched).or_default() += 1;
            if data_local {
                *self.job_counters.entry(local).or_default() += 1;
            }
            let task = self.spec(id);
            out.push(Command::Launch { container: c, task });
        }
        out
    }

    /// The waiting attempt a container on `node` should run: the lowest priority first; among
    /// maps, one whose data is on the node; never one whose task failed there if another fits.
    fn pick_attempt(&self, node: &NodeId) -> Option<TaskAttemptId> {
        let mut best: Option<(bool, u32, bool, TaskAttemptId)> = None;
        for a in self.attempts.values().filter(|a| self.may_run(a)) {
            let failed_here = self.tasks[&a.id.task].failed_hosts.contains(node);
            let local =
                a.id.task.kind == TaskType::Map && self.plan.maps[a.id.task.index as usize].hosts.contains(&node.host);
            let key = (failed_here, a.priority, !local, a.id);
            if best.as_ref().is_none_or(|b| key < *b) {
                best = Some(key);
            }
        }
        best.map(|b| b.3)
    }

    fn spec(&self, id: TaskAttemptId) -> TaskSpec {
        match id.task.kind {
            TaskType::Map => TaskSpec::Map {
                attempt: id,
                split: self.plan.maps[id.task.index as usize].split.clone(),
                reduces: self.plan.reduces,
            },
            TaskType::Reduce => TaskSpec::Reduce { attempt: id, maps: self.plan.maps.len() as u32 },
        }
    }

    /// The task for the process in `container` (its first call).
    pub fn get_task(&mut self, container: &ContainerId, now_ms: u64) -> Option<TaskSpec> {
        let id = *self.by_container.get(container)?;
        let a = self.attempts.get_mut(&id)?;
        if a.state != AttemptState::Running {
            return None;
        }
        a.last_heard_ms = now_ms;
        Some(self.spec(id))
    }

    /// A running attempt was heard from; false: it is not running here (it must exit).
    fn heard(&mut self, id: &TaskAttemptId, now_ms: u64) -> bool {
        match self.attempts.get_mut(id) {
            Some(a) if a.state == AttemptState::Running => {
                a.last_heard_ms = now_ms;
                true
            }
            _ => false,
        }
    }

    pub fn status_update(&mut self, id: &TaskAttemptId, status: TaskStatus, now_ms: u64) -> bool {
        if !self.heard(id, now_ms) {
            return false;
        }
        self.attempts.get_mut(id).expect("heard").status = Some(status);
        true
    }

    /// One attempt per task may commit; the first to ask is it, until it fails.
    pub fn can_commit(&mut self, id: &TaskAttemptId, now_ms: u64) -> bool {
        if !self.heard(id, now_ms) || self.state != JobState::Running {
            return false;
        }
        let t = self.tasks.get_mut(&id.task).expect("a running attempt's task");
        match t.commit_granted {
            Some(g) => g == *id,
            None if t.state == TaskState::Active => {
                t.commit_granted = Some(*id);
                true
            }
            None => false,
        }
    }

    /// Map completion events from `from`, at most `max`; also a sign of life.
    pub fn map_events(&mut self, id: &TaskAttemptId, from: u32, max: u32, now_ms: u64) -> Vec<MapCompletionEvent> {
        self.heard(id, now_ms);
        self.events.iter().skip(from as usize).take(max as usize).cloned().collect()
    }

    pub fn done(&mut self, id: &TaskAttemptId, shuffle_addr: String, now_ms: u64) -> Vec<Command> {
        let mut out = Vec::new();
        if !self.heard(id, now_ms) {
            return out;
        }
        let a = self.attempts.get_mut(id).expect("heard");
        a.state = AttemptState::Succeeded;
        let node = a.node.clone().expect("a running attempt has a node");
        let counters = a.status.as_ref().map(|s| s.counters.clone()).unwrap_or_default();
        let t = self.tasks.get_mut(&id.task).expect("its task");
        t.state = TaskState::Succeeded;
        t.live = None;
        t.succeeded = Some(*id);
        t.counters = counters;
        if id.task.kind == TaskType::Map && self.plan.reduces > 0 {
            t.output = Some((*id, shuffle_addr.clone(), node));
            self.push_event(*id, MapEventStatus::Succeeded, shuffle_addr);
        }
        self.check_all_done();
        if self.state == JobState::Committing {
            out.push(Command::CommitJob);
        }
        out
    }

    fn push_event(&mut self, map_attempt: TaskAttemptId, status: MapEventStatus, shuffle_addr: String) {
        let event_id = self.events.len() as u32;
        self.events.push(MapCompletionEvent { event_id, map_attempt, status, shuffle_addr });
    }

    fn check_all_done(&mut self) {
        if self.state != JobState::Running {
            return;
        }
        if self.tasks.values().all(|t| t.state == TaskState::Succeeded) {
            self.state = JobState::Committing;
        }
    }

    pub fn fatal_error(&mut self, id: &TaskAttemptId, message: &str, stderr_tail: &str, now_ms: u64) -> Vec<Command> {
        let mut diag = format!("{id}: {message}");
        if !stderr_tail.is_empty() && !message.contains(stderr_tail.trim()) {
            diag.push_str("\nstderr tail:\n");
            diag.push_str(stderr_tail);
        }
        self.end_attempt(id, AttemptState::Failed, diag, false, now_ms)
    }

    /// A container ended (from the RM's completed statuses).
    pub fn container_completed(&mut self, status: &ContainerStatus, now_ms: u64) -> Vec<Command> {
        let Some(id) = self.by_container.remove(&status.container_id) else { return Vec::new() };
        let code = status.exit_status;
        let killed = matches!(
            code,
            exit_status::ABORTED
                | exit_status::PREEMPTED
                | exit_status::KILLED_BY_RESOURCEMANAGER
                | exit_status::KILLED_AFTER_APP_COMPLETION
                | exit_status::KILLED_BY_CONTAINER_SCHEDULER
                | exit_status::DISKS_FAILED
        );
        let what = match exit_status::name(code) {
            Some(name) if code != 0 => format!("container {} ended: {name}", status.container_id),
            _ => format!("container {} exited with code {code}", status.container_id),
        };
        let mut diag = format!("{id}: {what}");
        if !status.diagnostics.is_empty() {
            diag.push_str(": ");
            diag.push_str(&status.diagnostics);
        }
        let state = if killed { AttemptState::Killed } else { AttemptState::Failed };
        self.end_attempt(&id, state, diag, false, now_ms)
    }

    /// A container could not be started.
    pub fn launch_failed(&mut self, container: &ContainerId, why: &str, now_ms: u64) -> Vec<Command> {
        let Some(id) = self.by_container.remove(container) else { return Vec::new() };
        self.end_attempt(
            &id,
            AttemptState::Failed,
            format!("{id}: container {container} did not start: {why}"),
            false,
            now_ms,
        )
    }

    /// A node left the cluster: its running attempts are killed (re-run, not counted), and the
    /// map outputs on it are lost if a reduce still needs them.
    pub fn node_lost(&mut self, node: &NodeId, now_ms: u64) -> Vec<Command> {
        let mut out = Vec::new();
        let running: Vec<TaskAttemptId> = self
            .attempts
            .values()
            .filter(|a| a.state == AttemptState::Running && a.node.as_ref() == Some(node))
            .map(|a| a.id)
            .collect();
        for id in running {
            let diag = format!("{id}: node {node} lost");
            out.extend(self.end_attempt(&id, AttemptState::Killed, diag, false, now_ms));
        }
        let lost: Vec<TaskAttemptId> = self
            .tasks
            .values()
            .filter_map(|t| t.output.as_ref().filter(|(_, _, n)| n == node).map(|(a, _, _)| *a))
            .collect();
        for map in lost {
            out.extend(self.output_lost(map, format!("{map}: its output was on lost node {node}"), false, now_ms));
        }
        out
    }

    /// A reducer could not fetch `map`'s output.
    pub fn fetch_failure(&mut self, reducer: &TaskAttemptId, map: TaskAttemptId, now_ms: u64) -> Vec<Command> {
        self.heard(reducer, now_ms);
        let n = self.fetch_failures.entry(map).or_default();
        *n += 1;
        if *n < FETCH_FAILURES_MAX {
            return Vec::new();
        }
        self.fetch_failures.remove(&map);
        self.output_lost(map, format!("{map}: {FETCH_FAILURES_MAX} fetch failures reported"), true, now_ms)
    }

    /// A succeeded map's output is gone: while a reduce needs it, the map runs again.
    fn output_lost(&mut self, map: TaskAttemptId, diag: String, counted: bool, now_ms: u64) -> Vec<Command> {
        let mut out = Vec::new();
        let reduces_pending =
            self.tasks.values().any(|t| t.id.kind == TaskType::Reduce && t.state != TaskState::Succeeded);
        let t = self.tasks.get_mut(&map.task).expect("a map of this job");
        if t.output.as_ref().map(|o| o.0) != Some(map) {
            return out;
        }
        if !reduces_pending || self.state != JobState::Running {
            return out;
        }
        let (_, addr, node) = t.output.take().expect("checked");
        t.state = TaskState::Active;
        t.succeeded = None;
        self.push_event(map, MapEventStatus::Obsolete, addr);
        self.note(diag.clone());
        if let Some(a) = self.attempts.get_mut(&map) {
            a.state = if counted { AttemptState::Failed } else { AttemptState::Killed };
        }
        if counted {
            *self.job_counters.entry("NUM_FAILED_MAPS").or_default() += 1;
            out.extend(self.count_failure(map.task, &node, diag));
            if self.state != JobState::Running {
                return out;
            }
        } else {
            *self.job_counters.entry("NUM_KILLED_MAPS").or_default() += 1;
        }
        self.new_attempt(map.task, PRIORITY_MAP_RETRY, now_ms);
        out
    }

    /// The task time-out: a running attempt not heard from within it is failed.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Command> {
        let timeout = self.plan.task_timeout_ms;
        let silent: Vec<TaskAttemptId> = self
            .attempts
            .values()
            .filter(|a| a.state == AttemptState::Running && now_ms.saturating_sub(a.last_heard_ms) > timeout)
            .map(|a| a.id)
            .collect();
        let mut out = Vec::new();
        for id in silent {
            // Hadoop's words.
            let diag = format!("AttemptID:{id} Timed out after {} secs", timeout / 1000);
            out.extend(self.end_attempt(&id, AttemptState::Failed, diag, true, now_ms));
        }
        out
    }

    /// Ends a waiting or running attempt as failed (counted) or killed (not), stopping its
    /// container when `stop`, and starts the next attempt or fails the job.
    fn end_attempt(
        &mut self,
        id: &TaskAttemptId,
        state: AttemptState,
        diag: String,
        stop: bool,
        now_ms: u64,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(a) = self.attempts.get_mut(id) else { return out };
        if !matches!(a.state, AttemptState::Waiting | AttemptState::Running) {
            return out;
        }
        a.state = state;
        let (container, node) = (a.container, a.node.clone());
        if let Some(c) = container {
            self.by_container.remove(&c);
            if stop {
                if let Some(n) = &node {
                    out.push(Command::Stop { container: c, node: n.clone() });
                }
            }
        }
        let kind = id.task.kind;
        if kind == TaskType::Reduce || self.plan.reduces == 0 {
            out.push(Command::AbortTask(*id));
        }
        let t = self.tasks.get_mut(&id.task).expect("its task");
        if t.commit_granted == Some(*id) {
            t.commit_granted = None;
        }
        if t.live == Some(*id) {
            t.live = None;
        }
        if t.state == TaskState::Succeeded {
            return out;
        }
        self.note(diag.clone());
        let name = match (state, kind) {
            (AttemptState::Failed, TaskType::Map) => "NUM_FAILED_MAPS",
            (AttemptState::Failed, TaskType::Reduce) => "NUM_FAILED_REDUCES",
            (_, TaskType::Map) => "NUM_KILLED_MAPS",
            (_, TaskType::Reduce) => "NUM_KILLED_REDUCES",
        };
        *self.job_counters.entry(name).or_default() += 1;
        if state == AttemptState::Failed {
            let node = node.unwrap_or_else(|| NodeId { host: String::new(), port: 0 });
            out.extend(self.count_failure(id.task, &node, diag));
            if self.state != JobState::Running {
                return out;
            }
        }
        if self.state == JobState::Running {
            let priority = match kind {
                TaskType::Map => PRIORITY_MAP_RETRY,
                TaskType::Reduce => PRIORITY_REDUCE,
            };
            self.new_attempt(id.task, priority, now_ms);
        }
        out
    }

    /// A counted failure of `task` on `node`: the node's tally (blacklist) and the task's
    /// budget (the job fails when it is spent).
    fn count_failure(&mut self, task: TaskId, node: &NodeId, diag: String) -> Vec<Command> {
        let mut out = Vec::new();
        if !node.host.is_empty() {
            let n = self.node_failures.entry(node.clone()).or_default();
            *n += 1;
            let n = *n;
            if n >= self.plan.blacklist_after && self.blacklisted.insert(node.clone()) {
                self.note(format!("node {node} blacklisted for this job after {n} failed attempts"));
                out.push(Command::Blacklist(node.clone()));
            }
        }
        let t = self.tasks.get_mut(&task).expect("a task of this job");
        t.failures += 1;
        if !node.host.is_empty() {
            t.failed_hosts.insert(node.clone());
        }
        if t.failures >= self.plan.max_task_attempts {
            let failures = t.failures;
            let why = format!("Task {task} failed {failures} times. Job failed as tasks failed. Last attempt: {diag}");
            out.extend(self.fail(why));
        }
        out
    }

    /// Fails the job: every running attempt is stopped, and its output aborted.
    pub fn fail(&mut self, why: String) -> Vec<Command> {
        let mut out = Vec::new();
        if matches!(self.state, JobState::Succeeded | JobState::Failed(_)) {
            return out;
        }
        self.state = JobState::Failed(why);
        for a in self.attempts.values_mut() {
            if matches!(a.state, AttemptState::Waiting | AttemptState::Running) {
                a.state = AttemptState::Killed;
                if let (Some(c), Some(n)) = (a.container, a.node.clone()) {
                    out.push(Command::Stop { container: c, node: n });
                }
            }
        }
        self.by_container.clear();
        out.push(Command::AbortJob);
        out
    }

    /// The runtime committed the job's output.
    pub fn committed(&mut self) {
        if self.state == JobState::Committing {
            self.state = JobState::Succeeded;
        }
    }

    fn note(&mut self, line: String) {
        if self.diagnostics.len() < DIAGNOSTICS_MAX {
            self.diagnostics.push(line);
        }
    }

    /// Containers running tasks now.
    pub fn running_containers(&self) -> Vec<(ContainerId, NodeId)> {
        self.attempts
            .values()
            .filter(|a| a.state == AttemptState::Running)
            .filter_map(|a| Some((a.container?, a.node.clone()?)))
            .collect()
    }

    /// Map and reduce progress, each from 0 to 1.
    pub fn progress(&self) -> (f64, f64) {
        let of = |kind: TaskType| {
            let tasks: Vec<&Task> = self.tasks.values().filter(|t| t.id.kind == kind).collect();
            if tasks.is_empty() {
                return 1.0;
            }
            let sum: f64 = tasks
                .iter()
                .map(|t| match (t.state, t.live.and_then(|a| self.attempts.get(&a))) {
                    (TaskState::Succeeded, _) => 1.0,
                    (_, Some(a)) => a.status.as_ref().map_or(0.0, |s| s.progress.fraction()),
                    _ => 0.0,
                })
                .sum();
            sum / tasks.len() as f64
        };
        (of(TaskType::Map), of(TaskType::Reduce))
    }

    /// The whole job's progress for the RM.
    pub fn app_progress(&self) -> Progress {
        let (m, r) = self.progress();
        Progress::from_fraction(if self.plan.reduces == 0 { m } else { (m + r) / 2.0 })
    }

    pub fn report(&self, name: &str, user: &str, output: &str) -> JobReport {
        let (map_progress, reduce_progress) = self.progress();
        let counts = |kind: TaskType| {
            let mut c = TaskCounts::default();
            for t in self.tasks.values().filter(|t| t.id.kind == kind) {
                c.total += 1;
                if t.state == TaskState::Succeeded {
                    c.completed += 1;
                } else if t.live.and_then(|a| self.attempts.get(&a)).is_some_and(|a| a.state == AttemptState::Running) {
                    c.running += 1;
                }
                if t.recovered {
                    c.recovered += 1;
                }
            }
            for a in self.attempts.values().filter(|a| a.id.task.kind == kind) {
                match a.state {
                    AttemptState::Failed => c.failed_attempts += 1,
                    AttemptState::Killed => c.killed_attempts += 1,
                    _ => {}
                }
            }
            c
        };
        let mut counters: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for t in self.tasks.values() {
            for c in &t.counters {
                *counters.entry(c.group.clone()).or_default().entry(c.name.clone()).or_default() += c.value;
            }
        }
        if !self.job_counters.is_empty() {
            let g = counters.entry(JOB_COUNTER_GROUP.to_string()).or_default();
            for (name, v) in &self.job_counters {
                g.insert(name.to_string(), *v);
            }
        }
        let (state, mut diagnostics) = match &self.state {
            JobState::Running | JobState::Committing => ("RUNNING", String::new()),
            JobState::Succeeded => ("SUCCEEDED", String::new()),
            JobState::Failed(why) => ("FAILED", why.clone()),
        };
        if !self.diagnostics.is_empty() {
            if !diagnostics.is_empty() {
                diagnostics.push_str("\n\n");
            }
            diagnostics.push_str("Attempt failures and kills:\n");
            diagnostics.push_str(&self.diagnostics.join("\n"));
        }
        JobReport {
            job_id: self.plan.app.to_string(),
            am_attempt: self.plan.am_attempt,
            name: name.to_owned(),
            user: user.to_owned(),
            output: output.to_owned(),
            state: state.to_owned(),
            map_progress,
            reduce_progress,
            maps: counts(TaskType::Map),
            reduces: counts(TaskType::Reduce),
            counters,
            diagnostics,
            attempts: self.attempt_reports(),
        }
    }

    fn attempt_reports(&self) -> Vec<AttemptReport> {
        let mut out: Vec<AttemptReport> = self
            .attempts
            .values()
            .map(|a| AttemptReport {
                attempt: a.id.to_string(),
                container: a.container.map(|c| c.to_string()).unwrap_or_default(),
                node: a.node.as_ref().map(|n| format!("{}:{}", n.host, n.port)).unwrap_or_default(),
                state: match a.state {
                    AttemptState::Waiting => "WAITING",
                    AttemptState::Running => "RUNNING",
                    AttemptState::Succeeded => "SUCCEEDED",
                    AttemptState::Failed => "FAILED",
                    AttemptState::Killed => "KILLED",
                }
                .to_owned(),
            })
            .collect();
        out.sort_by(|a, b| a.attempt.cmp(&b.attempt));
        out
    }

    /// The phase of an attempt's last report (for logs).
    pub fn phase(&self, id: &TaskAttemptId) -> Option<Phase> {
        self.attempts.get(id).and_then(|a| a.status.as_ref()).map(|s| s.phase)
    }
}

#[cfg(test)]
#[path = "job_test.rs"]
mod tests;
