//! The job report: what `herd job status` shows, served by the AM while the job runs
//! (`GetJobReport` on the umbilical port) and written to `<staging>/report.json` before the AM
//! unregisters. Fields: docs/mapreduce-formats.md, "Job report".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One kind of task (maps or reduces).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub total: u32,
    pub completed: u32,
    pub running: u32,
    /// Of `completed`, those a previous AM attempt committed (not re-run).
    pub recovered: u32,
    pub failed_attempts: u32,
    pub killed_attempts: u32,
}

/// One task attempt: which container ran it where, and how it ended (Hadoop's
/// `mapred job -list-attempt-ids` with its TaskAttemptReport's state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptReport {
    pub attempt: String,
    /// The container (empty while it waits for one).
    pub container: String,
    /// The NodeManager's host:port (empty while it waits).
    pub node: String,
    /// WAITING, RUNNING, SUCCEEDED, FAILED or KILLED.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    /// The application id (a job is one application).
    pub job_id: String,
    pub am_attempt: u32,
    pub name: String,
    pub user: String,
    pub output: String,
    /// RUNNING, SUCCEEDED, FAILED or KILLED.
    pub state: String,
    pub map_progress: f64,
    pub reduce_progress: f64,
    pub maps: TaskCounts,
    pub reduces: TaskCounts,
    /// group -> counter -> value, Hadoop's names (TaskCounter, JobCounter, streaming's own).
    pub counters: BTreeMap<String, BTreeMap<String, i64>>,
    /// Why it failed, and each attempt that failed or was killed.
    pub diagnostics: String,
    /// Every attempt of this AM attempt's tasks, by attempt id (absent in older reports).
    #[serde(default)]
    pub attempts: Vec<AttemptReport>,
}

impl JobReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    pub fn from_json(text: &str) -> Result<JobReport, String> {
        serde_json::from_str(text).map_err(|e| format!("job report: {e}"))
    }

    /// A counter's value (0 when absent).
    pub fn counter(&self, group: &str, name: &str) -> i64 {
        self.counters.get(group).and_then(|g| g.get(name)).copied().unwrap_or(0)
    }
}
