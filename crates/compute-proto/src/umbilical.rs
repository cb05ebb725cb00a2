//! Task <-> ApplicationMaster (MapReduce's `TaskUmbilicalProtocol`), preamble id 7.
//!
//! ```text
//! GetTask                -> Task (None: nothing for this container, exit)
//! StatusUpdate           -> Feedback (task_found false: the attempt was killed, exit)
//! Done, FatalError, ReportFetchFailure -> Ack
//! CanCommit              -> CommitAllowed
//! GetMapCompletionEvents -> MapCompletionEvents
//! GetJobReport           -> JobReport (for `herd job`, as MapReduce's MRClientProtocol)
//! ```
//!
//! The job's configuration (mapper, reducer, formats) is not here: it travels as a job file in
//! the DFS, named in the container's files, as Hadoop's `job.xml`.

use crate::ids::{ContainerId, TaskAttemptId};
use crate::records::Progress;
use rpc::{wire_enum, wire_struct};

wire_enum! {
    /// Hadoop's `TaskStatus.Phase`.
    #[derive(Copy, Hash)]
    pub enum Phase {
        Starting = 0,
        Map = 1,
        Shuffle = 2,
        Sort = 3,
        Reduce = 4,
        Cleanup = 5,
    }
}

wire_struct! {
    /// One counter: `group | name | value i64` (Hadoop's counter group and name, e.g.
    /// `org.apache.hadoop.mapreduce.TaskCounter` / `MAP_INPUT_RECORDS`, or a streaming
    /// job's own).
    pub struct Counter {
        pub group: String,
        pub name: String,
        pub value: i64,
    }
}

wire_struct! {
    /// A task attempt's report.
    pub struct TaskStatus {
        pub progress: Progress,
        pub phase: Phase,
        /// Every counter's current value (not increments).
        pub counters: Vec<Counter>,
        /// Hadoop's status string (streaming's `reporter:status:<msg>`).
        pub state_text: String,
    }
}

wire_struct! {
    /// A byte range of a DFS file that one map reads (lines that start in it).
    pub struct FileSplit {
        pub path: String,
        pub start: u64,
        pub length: u64,
    }
}

wire_enum! {
    /// The task a container runs.
    pub enum TaskSpec {
        Map { attempt: TaskAttemptId, split: FileSplit, reduces: u32 } = 0,
        /// Reduce partition `attempt.task.index` of every map's output.
        Reduce { attempt: TaskAttemptId, maps: u32 } = 1,
    }
}

impl TaskSpec {
    /// The attempt this task is.
    pub fn attempt(&self) -> TaskAttemptId {
        match self {
            TaskSpec::Map { attempt, .. } | TaskSpec::Reduce { attempt, .. } => *attempt,
        }
    }
}

wire_enum! {
    /// Hadoop's `TaskCompletionEvent.Status`, as a reducer needs it.
    #[derive(Copy, Hash)]
    pub enum MapEventStatus {
        /// Fetch the output from `shuffle_addr`.
        Succeeded = 0,
        Failed = 1,
        Killed = 2,
        /// The output was lost (its node, or repeated fetch failures): forget this attempt's
        /// output; a later event names the re-run.
        Obsolete = 3,
    }
}

wire_struct! {
    /// Hadoop's `TaskCompletionEvent` for a map.
    pub struct MapCompletionEvent {
        /// Its index in the job's event list (reducers ask from the next one).
        pub event_id: u32,
        pub map_attempt: TaskAttemptId,
        pub status: MapEventStatus,
        /// `host:port` of the shuffle server holding its output.
        pub shuffle_addr: String,
    }
}

wire_enum! {
    pub enum UmbilicalRequest {
        /// The task for the container the caller runs in.
        GetTask { container_id: ContainerId } = 0,
        StatusUpdate { attempt: TaskAttemptId, status: TaskStatus } = 1,
        /// The attempt's work is done (and committed, if it asked). A map names the shuffle
        /// server (`host:port`) of its node, where its output now is ("" for a reduce).
        Done { attempt: TaskAttemptId, shuffle_addr: String } = 2,
        /// May this attempt commit its output? One attempt per task is allowed.
        CanCommit { attempt: TaskAttemptId } = 3,
        /// The attempt failed; it exits after this.
        FatalError { attempt: TaskAttemptId, message: String, stderr_tail: String } = 4,
        /// A reducer could not fetch `map_attempt`'s output.
        ReportFetchFailure { attempt: TaskAttemptId, map_attempt: TaskAttemptId } = 5,
        /// Map completion events from `from_event_id`, at most `max`.
        GetMapCompletionEvents { attempt: TaskAttemptId, from_event_id: u32, max: u32 } = 6,
        /// The job's progress, counters and state (any caller; read-only).
        GetJobReport = 7,
    }
}

wire_enum! {
    pub enum UmbilicalResponse {
        Ack = 0,
        Task { task: Option<TaskSpec> } = 1,
        /// `task_found` false: the AM no longer runs this attempt; the task exits.
        Feedback { task_found: bool } = 2,
        CommitAllowed { allowed: bool } = 3,
        MapCompletionEvents { events: Vec<MapCompletionEvent> } = 4,
        /// The job's report as JSON (its fields: docs/mapreduce-formats.md, "Job report").
        JobReport { json: String } = 5,
    }
}
