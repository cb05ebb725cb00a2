//! The node health checker: runs an operator's script every interval, with a time-out, as
//! Hadoop's NodeHealthScriptRunner does. A line of its output starting with `ERROR` marks the
//! node unhealthy, with that line as the report; so does a script that does not finish in
//! time. Its exit status is ignored (Hadoop's rule: a script that fails to run is not the
//! node's fault), except that a script that cannot be started at all is reported healthy with
//! the reason, and logged.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// The longest output read from the script.
const OUTPUT_MAX: u64 = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    /// Why not (the ERROR line, or the time-out); empty when healthy.
    pub report: String,
}

impl Health {
    pub fn healthy() -> Health {
        Health { healthy: true, report: String::new() }
    }
}

#[derive(Debug, Clone)]
pub struct HealthScript {
    pub path: PathBuf,
    pub args: Vec<String>,
    /// Hadoop's `yarn.nodemanager.health-checker.script.timeout-ms` is 20 minutes; herd's
    /// default is 60 s (the interval is 10 s).
    pub timeout: Duration,
}

/// What the script's output says.
pub fn judge(output: &str) -> Health {
    match output.lines().find(|l| l.starts_with("ERROR")) {
        Some(line) => Health { healthy: false, report: line.trim_end().to_string() },
        None => Health::healthy(),
    }
}

impl HealthScript {
    /// Runs the script once.
    pub async fn check(&self) -> Health {
        let mut cmd = Command::new(&self.path);
        cmd.args(&self.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(script = %self.path.display(), "health script: {e}");
                return Health::healthy();
            }
        };
        let mut out = Vec::new();
        let stdout = child.stdout.take();
        let run = async {
            if let Some(s) = stdout {
                let _ = s.take(OUTPUT_MAX).read_to_end(&mut out).await;
            }
            child.wait().await
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(_) => judge(&String::from_utf8_lossy(&out)),
            Err(_) => Health {
                healthy: false,
                report: format!("health script {} timed out after {:?}", self.path.display(), self.timeout),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_marks_the_node_unhealthy() {
        assert_eq!(judge(""), Health::healthy());
        assert_eq!(judge("all good\nWARN disk 80%\n"), Health::healthy());
        let h = judge("checking\nERROR disk /data1 is read-only\nERROR second\n");
        assert!(!h.healthy);
        assert_eq!(h.report, "ERROR disk /data1 is read-only");
        // Only at the start of a line, as Hadoop's rule.
        assert!(judge("an ERROR later in the line\n").healthy);
    }
}
