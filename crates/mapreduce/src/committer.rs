//! Hadoop's FileOutputCommitter, algorithm version 1: a job's output appears whole or not at
//! all, and each task's output is the output of exactly one of its attempts.
//!
//! ```text
//! OUT/_temporary/<app attempt>/_temporary/<task attempt>/part-r-00000   a task attempt writes here
//!        commitTask: rename ──┐                                         abortTask: delete
//! OUT/_temporary/<app attempt>/<task>/part-r-00000                      committed for this AM attempt
//!        commitJob: every committed task's files merged into OUT, `_temporary` deleted,
//!        then OUT/_SUCCESS written
//! OUT/part-r-00000 ... OUT/_SUCCESS
//! ```
//!
//! A renaming is atomic in the file system (one NameNode operation), so a task is committed or
//! not; the AM lets one attempt per task commit (`CanCommit`), and a commit that finds an
//! earlier commit of the same task replaces it, as Hadoop does. A job that fails or is killed
//! has `_temporary` deleted and never gets `_SUCCESS`, so nothing looks complete. A new AM
//! attempt recovers the tasks the previous one committed by renaming their directories into
//! its own attempt directory ([`FileOutputCommitter::recover_task`]), so they are not re-run.
//!
//! The file system is a trait, [`CommitFs`], with HDFS's semantics (rename fails if the
//! destination exists); `dfs_client::Dfs` implements it in the daemon, and the tests use an
//! in-memory one.

use std::fmt;

/// What the committer needs of a file system; paths are absolute.
pub trait CommitFs {
    type Error: fmt::Display;
    /// Makes a directory and its parents; fine if it exists.
    fn mkdirs(&self, path: &str) -> Result<(), Self::Error>;
    /// Whether something is at `path`; `Some(true)` for a directory.
    fn kind(&self, path: &str) -> Result<Option<bool>, Self::Error>;
    /// The names in a directory.
    fn list(&self, dir: &str) -> Result<Vec<String>, Self::Error>;
    /// HDFS `rename2` without overwrite: fails if `dst` exists or its parent does not.
    fn rename(&self, src: &str, dst: &str) -> Result<(), Self::Error>;
    /// Deletes recursively; false if nothing was there.
    fn delete(&self, path: &str) -> Result<bool, Self::Error>;
    /// Creates (or replaces) an empty file.
    fn touch(&self, path: &str) -> Result<(), Self::Error>;
}

/// Why a commit step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("{op} {path}: {message}")]
    Fs { op: &'static str, path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The name Hadoop gives a job's success marker.
pub const SUCCESS: &str = "_SUCCESS";
/// The pending directory under the output.
pub const TEMPORARY: &str = "_temporary";

/// One job's committer for one AM attempt.
#[derive(Debug, Clone)]
pub struct FileOutputCommitter {
    out: String,
    app_attempt: u32,
}

impl FileOutputCommitter {
    /// The committer of the job writing to `out` (absolute) in AM attempt `app_attempt`.
    pub fn new(out: &str, app_attempt: u32) -> Result<FileOutputCommitter, CommitError> {
        if !out.starts_with('/') || out == "/" {
            return Err(CommitError::Invalid(format!("output {out:?}: not an absolute path below /")));
        }
        Ok(FileOutputCommitter { out: out.trim_end_matches('/').to_string(), app_attempt })
    }

    /// `OUT/_temporary/<app attempt>`: what this attempt has committed.
    pub fn job_attempt_path(&self) -> String {
        self.attempt_path(self.app_attempt)
    }

    fn attempt_path(&self, attempt: u32) -> String {
        format!("{}/{TEMPORARY}/{attempt}", self.out)
    }

    /// Where a task attempt writes its files.
    pub fn task_attempt_path(&self, task_attempt: &str) -> Result<String, CommitError> {
        Ok(format!("{}/{TEMPORARY}/{}", self.job_attempt_path(), name(task_attempt)?))
    }

    /// Where a task's committed files are for this AM attempt.
    pub fn committed_task_path(&self, task: &str) -> Result<String, CommitError> {
        Ok(format!("{}/{}", self.job_attempt_path(), name(task)?))
    }

    /// Hadoop's setupJob: the attempt's directory.
    pub fn setup_job<F: CommitFs>(&self, fs: &F) -> Result<(), CommitError> {
        let p = self.job_attempt_path();
        fs.mkdirs(&p).map_err(fs_err("mkdirs", &p))
    }

    /// Whether the task attempt wrote anything to commit.
    pub fn needs_task_commit<F: CommitFs>(&self, fs: &F, task_attempt: &str) -> Result<bool, CommitError> {
        let p = self.task_attempt_path(task_attempt)?;
        Ok(fs.kind(&p).map_err(fs_err("stat", &p))?.is_some())
    }

    /// Hadoop's commitTask: the attempt's directory becomes the task's committed directory
    /// (an earlier commit of the same task is replaced). Nothing written: nothing to do.
    pub fn commit_task<F: CommitFs>(&self, fs: &F, task: &str, task_attempt: &str) -> Result<(), CommitError> {
        let src = self.task_attempt_path(task_attempt)?;
        if fs.kind(&src).map_err(fs_err("stat", &src))?.is_none() {
            return Ok(());
        }
        let dst = self.committed_task_path(task)?;
        if fs.kind(&dst).map_err(fs_err("stat", &dst))?.is_some() {
            fs.delete(&dst).map_err(fs_err("delete", &dst))?;
        }
        fs.rename(&src, &dst).map_err(fs_err("rename", &src))
    }

    /// Hadoop's abortTask: the attempt's files are deleted.
    pub fn abort_task<F: CommitFs>(&self, fs: &F, task_attempt: &str) -> Result<(), CommitError> {
        let p = self.task_attempt_path(task_attempt)?;
        fs.delete(&p).map(drop).map_err(fs_err("delete", &p))
    }

    /// Hadoop's recoverTask (after an AM restart): a task the previous attempt committed is
    /// moved into this attempt's directory. True when it was recovered (it need not run again).
    pub fn recover_task<F: CommitFs>(&self, fs: &F, task: &str) -> Result<bool, CommitError> {
        if self.app_attempt == 0 {
            return Ok(false);
        }
        let prev = format!("{}/{}", self.attempt_path(self.app_attempt - 1), name(task)?);
        if fs.kind(&prev).map_err(fs_err("stat", &prev))?.is_none() {
            return Ok(false);
        }
        self.setup_job(fs)?;
        let dst = self.committed_task_path(task)?;
        if fs.kind(&dst).map_err(fs_err("stat", &dst))?.is_some() {
            fs.delete(&dst).map_err(fs_err("delete", &dst))?;
        }
        fs.rename(&prev, &dst).map_err(fs_err("rename", &prev))?;
        Ok(true)
    }

    /// Hadoop's commitJob: every committed task's files are merged into the output (a file
    /// already there is replaced, directories are merged), `_temporary` is deleted, and then
    /// `_SUCCESS` is written — last, so that it is there only if everything else is.
    pub fn commit_job<F: CommitFs>(&self, fs: &F) -> Result<(), CommitError> {
        let attempt = self.job_attempt_path();
        if fs.kind(&attempt).map_err(fs_err("stat", &attempt))?.is_some() {
            for task in fs.list(&attempt).map_err(fs_err("list", &attempt))? {
                if task.starts_with('_') {
                    continue; // the attempts still in progress (`_temporary`)
                }
                merge_into(fs, &format!("{attempt}/{task}"), &self.out)?;
            }
        }
        self.cleanup(fs)?;
        let success = format!("{}/{SUCCESS}", self.out);
        fs.touch(&success).map_err(fs_err("create", &success))
    }

    /// Hadoop's abortJob: the pending output is deleted; no `_SUCCESS` is written.
    pub fn abort_job<F: CommitFs>(&self, fs: &F) -> Result<(), CommitError> {
        self.cleanup(fs)
    }

    fn cleanup<F: CommitFs>(&self, fs: &F) -> Result<(), CommitError> {
        let p = format!("{}/{TEMPORARY}", self.out);
        fs.delete(&p).map(drop).map_err(fs_err("delete", &p))
    }
}

/// Moves everything in directory `from` into directory `to`, merging directories and
/// replacing files (Hadoop's mergePaths).
fn merge_into<F: CommitFs>(fs: &F, from: &str, to: &str) -> Result<(), CommitError> {
    fs.mkdirs(to).map_err(fs_err("mkdirs", to))?;
    for entry in fs.list(from).map_err(fs_err("list", from))? {
        let (src, dst) = (format!("{from}/{entry}"), format!("{to}/{entry}"));
        let src_is_dir = fs.kind(&src).map_err(fs_err("stat", &src))? == Some(true);
        match fs.kind(&dst).map_err(fs_err("stat", &dst))? {
            Some(true) if src_is_dir => merge_into(fs, &src, &dst)?,
            Some(_) => {
                fs.delete(&dst).map_err(fs_err("delete", &dst))?;
                fs.rename(&src, &dst).map_err(fs_err("rename", &src))?;
            }
            None => fs.rename(&src, &dst).map_err(fs_err("rename", &src))?,
        }
    }
    Ok(())
}

/// A task or attempt id used as a path component: no separators, no dot names.
fn name(id: &str) -> Result<&str, CommitError> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.starts_with('_') {
        return Err(CommitError::Invalid(format!("{id:?} cannot name a task or attempt")));
    }
    Ok(id)
}

fn fs_err<E: fmt::Display>(op: &'static str, path: &str) -> impl FnOnce(E) -> CommitError {
    let path = path.to_string();
    move |e| CommitError::Fs { op, path, message: e.to_string() }
}

impl CommitFs for dfs_client::Dfs {
    type Error = dfs_client::DfsError;

    fn mkdirs(&self, path: &str) -> Result<(), Self::Error> {
        dfs_client::Dfs::mkdirs(self, path, 0o755, true).map(drop)
    }

    fn kind(&self, path: &str) -> Result<Option<bool>, Self::Error> {
        Ok(self.status(path)?.map(|s| s.kind == dfs_client::FileKind::Dir))
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, Self::Error> {
        Ok(dfs_client::Dfs::list(self, dir)?.into_iter().map(|s| s.name).filter(|n| !n.is_empty()).collect())
    }

    fn rename(&self, src: &str, dst: &str) -> Result<(), Self::Error> {
        dfs_client::Dfs::rename(self, src, dst, false)
    }

    fn delete(&self, path: &str) -> Result<bool, Self::Error> {
        dfs_client::Dfs::delete(self, path, true)
    }

    fn touch(&self, path: &str) -> Result<(), Self::Error> {
        let opts = dfs_client::CreateOptions { overwrite: true, ..Default::default() };
        self.create(path, opts)?.close()
    }
}

#[cfg(test)]
#[path = "committer_test.rs"]
mod tests;
