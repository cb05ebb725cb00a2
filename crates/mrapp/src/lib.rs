//! herd's MapReduce application: what `herd job run` submits and what runs in its containers.
//!
//! - [`conf`]: the job file (Hadoop's `job.xml`), JSON in the job's staging dir in the DFS.
//! - [`job`]: the ApplicationMaster's job as a pure state machine (tasks, attempts, budgets,
//!   blacklists, lost map outputs, one commit per task), tested alone.
//! - [`am`]: the ApplicationMaster process (`herd appmaster`): computes splits, registers
//!   with the ResourceManager, asks for containers, starts tasks on NodeManagers, serves the
//!   umbilical to its tasks and the job report to clients, commits or aborts the output.
//! - [`task`]: the task process (`herd task`): one map or reduce attempt, reporting to the AM.
//! - [`report`]: the job report (`herd job status`).
//! - [`tera`]: TeraGen's rows, the total-order sort's cut points, TeraValidate.
//!
//! **Boundary:** this crate reaches the ResourceManager and NodeManagers only through
//! `compute-proto` (and the shuffle client of `nodemanager`), and the file system only through
//! `dfs-client`; the ResourceManager and NodeManagers know nothing of it.
//!
//! **Invariant:** a job's output appears whole or not at all: tasks write under the
//! committer's attempt directories, one attempt per task commits, and only the AM, once every
//! task has succeeded, promotes the output and writes `_SUCCESS`.

pub mod am;
pub mod conf;
pub mod job;
pub mod report;
pub mod task;
pub mod tera;

pub use conf::{JobConf, JobKind};
pub use report::JobReport;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
