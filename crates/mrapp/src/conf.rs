//! The job description (Hadoop's `job.xml`): written by `herd job run` as JSON into the job's
//! staging directory in the DFS, read by the ApplicationMaster and by every task. Its fields
//! are in docs/mapreduce-formats.md, "Job file".

use serde::{Deserialize, Serialize};

/// Attempts of one task before the job fails (Hadoop's `mapreduce.map.maxattempts`).
pub const MAX_TASK_ATTEMPTS_DEFAULT: u32 = 4;
/// Failed attempts on one node before the job stops using it (Hadoop's
/// `mapreduce.job.maxtaskfailures.per.tracker`).
pub const BLACKLIST_AFTER_DEFAULT: u32 = 3;
/// A task attempt silent this long is failed (Hadoop's `mapreduce.task.timeout`, 600 s).
pub const TASK_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Memory of a task's container, MiB (Hadoop's `mapreduce.map.memory.mb`).
pub const TASK_MEMORY_MB_DEFAULT: u64 = 512;
/// The map-side sort buffer, MiB (Hadoop's `mapreduce.task.io.sort.mb`).
pub const SORT_MB_DEFAULT: u64 = 100;
/// The reduce-side in-memory shuffle budget, MiB.
pub const SHUFFLE_MB_DEFAULT: u64 = 128;

/// What the map and reduce functions are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobKind {
    /// `word<TAB>count`; the reducer is also the combiner.
    Wordcount,
    /// `pattern<TAB>count` of lines holding `pattern` (a byte substring).
    Grep { pattern: String },
    /// The input's lines in byte order; with several reduces a total order (the AM samples
    /// the input for the reduces' key ranges), so the parts' concatenation is sorted.
    Sort,
    /// `rows` rows of 100 bytes (gensort's ASCII format) from `maps` map-only tasks.
    Teragen { rows: u64, maps: u32 },
    /// Checks that the input (a sort's output directory) is in order: `rows`, `checksum` and
    /// `error` lines from one reduce.
    Teravalidate,
    /// Hadoop Streaming: each command runs as `sh -c COMMAND` in the task's working directory.
    Streaming { mapper: String, reducer: Option<String>, combiner: Option<String> },
}

/// A file the job ships to every task's working directory (streaming's `-file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippedFile {
    /// Absolute DFS path (under the staging directory).
    pub path: String,
    /// Its name in the working directory.
    pub local_name: String,
}

/// Everything a job's AM and tasks need besides the cluster's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobConf {
    pub name: String,
    pub user: String,
    pub kind: JobKind,
    /// Input files or directories (a directory's files not starting with `_` or `.`).
    pub input: Vec<String>,
    /// The output directory; must not exist when the job starts.
    pub output: String,
    /// Reduce tasks (0: map-only, maps write `part-m-NNNNN`).
    pub reduces: u32,
    /// The job's staging directory (job file, shipped files, the final report).
    pub staging: String,
    pub files: Vec<ShippedFile>,
    pub max_task_attempts: u32,
    pub blacklist_after: u32,
    pub task_timeout_ms: u64,
    pub task_memory_mb: u64,
    pub sort_mb: u64,
    pub shuffle_mb: u64,
}

impl JobConf {
    /// A job with the defaults above.
    pub fn new(name: &str, user: &str, kind: JobKind, input: Vec<String>, output: &str, staging: &str) -> JobConf {
        JobConf {
            name: name.to_owned(),
            user: user.to_owned(),
            kind,
            input,
            output: output.to_owned(),
            reduces: 1,
            staging: staging.to_owned(),
            files: Vec::new(),
            max_task_attempts: MAX_TASK_ATTEMPTS_DEFAULT,
            blacklist_after: BLACKLIST_AFTER_DEFAULT,
            task_timeout_ms: TASK_TIMEOUT_MS_DEFAULT,
            task_memory_mb: TASK_MEMORY_MB_DEFAULT,
            sort_mb: SORT_MB_DEFAULT,
            shuffle_mb: SHUFFLE_MB_DEFAULT,
        }
    }

    /// The job file's DFS path.
    pub fn job_file(&self) -> String {
        format!("{}/job.json", self.staging)
    }

    /// A total-order sort's cut points (JSON list of byte strings), written by the AM.
    pub fn partitions_file(&self) -> String {
        format!("{}/partitions.json", self.staging)
    }

    /// Where the AM writes the final report before it unregisters.
    pub fn report_file(&self) -> String {
        format!("{}/report.json", self.staging)
    }

    /// Checks what a bad job file could make the AM or a task do wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.input.is_empty() != matches!(self.kind, JobKind::Teragen { .. }) {
            return Err("teragen takes no input, every other job some".into());
        }
        for p in self.input.iter().chain([&self.output, &self.staging]) {
            if !p.starts_with('/') {
                return Err(format!("{p:?} is not an absolute path"));
            }
        }
        if self.max_task_attempts == 0 || self.max_task_attempts > 100 {
            return Err(format!("max task attempts {} (1 to 100)", self.max_task_attempts));
        }
        if self.reduces > 100_000 {
            return Err(format!("{} reduces (at most 100000)", self.reduces));
        }
        if self.task_timeout_ms < 1000 {
            return Err(format!("task timeout {} ms (at least 1000)", self.task_timeout_ms));
        }
        match &self.kind {
            JobKind::Grep { pattern } if pattern.is_empty() => return Err("grep: an empty pattern".into()),
            JobKind::Teragen { maps, .. } if *maps == 0 || *maps > 100_000 => {
                return Err(format!("teragen: {maps} maps (1 to 100000)"))
            }
            JobKind::Teragen { .. } if self.reduces != 0 => return Err("teragen is map-only".into()),
            JobKind::Teravalidate if self.reduces != 1 => return Err("teravalidate has one reduce".into()),
            _ => {}
        }
        for f in &self.files {
            let n = &f.local_name;
            if n.is_empty() || n == "." || n == ".." || n.contains(['/', '\0']) {
                return Err(format!("shipped file name {n:?} is not one path component"));
            }
        }
        Ok(())
    }

    /// Whether the map output is combined before it is spilled.
    pub fn has_combiner(&self) -> bool {
        match &self.kind {
            JobKind::Wordcount | JobKind::Grep { .. } => true,
            JobKind::Sort | JobKind::Teragen { .. } | JobKind::Teravalidate => false,
            JobKind::Streaming { combiner, .. } => combiner.is_some(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a job conf serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<JobConf, String> {
        let conf: JobConf = serde_json::from_slice(bytes).map_err(|e| format!("job file: {e}"))?;
        conf.validate().map_err(|e| format!("job file: {e}"))?;
        Ok(conf)
    }
}
