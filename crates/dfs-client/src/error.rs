//! The client's one error type, and how Hadoop's shell words a NameNode's errors.

use dfs_proto::rpc_client::CallError;
use dfs_proto::RemoteError;

/// Why a file system call failed.
#[derive(Debug, thiserror::Error)]
pub enum DfsError {
    /// The NameNode refused the call (Hadoop's exception class and message).
    #[error("{0}")]
    Remote(#[from] RemoteError),
    /// The NameNode could not be reached (or answered garbage) and retries ran out.
    #[error("namenode {addr}: {message}")]
    Namenode { addr: String, message: String },
    /// A local I/O error (a DataNode connection, a local file).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No pipeline could be built for a new block: every DataNode offered failed.
    #[error("could not write a block of {path}: no DataNode took it (excluded: {})", .excluded.join(", "))]
    NoDatanodes { path: String, excluded: Vec<String> },
    /// Every replica of a block failed to read (after one refetch of the locations).
    #[error("could not read block {block} of {path} from any replica: {detail}")]
    AllReplicasFailed { path: String, block: u64, detail: String },
    /// A file checksum could not be computed (a block no replica answered for).
    #[error("could not compute the checksum of {path}: {reason}")]
    ChecksumFailed { path: String, reason: String },
    /// A write could not go on (a pipeline with no survivor, too many recoveries).
    #[error("write of {path} failed: {reason}")]
    WriteFailed { path: String, reason: String },
    /// The file was written but the NameNode did not report it closed in time.
    #[error("file {path} could not be closed: the NameNode kept answering that its last block is not yet replicated")]
    NotClosed { path: String },
    /// A truncate's block recovery did not close the file in the time waited.
    #[error("truncate of {path} to {new_length} bytes is not done: its last block is still being recovered")]
    TruncateNotDone { path: String, new_length: u64 },
    /// The NameNode answered with a response of another kind than the call's.
    #[error("unexpected answer from the NameNode to {call}: {answer}")]
    Unexpected { call: &'static str, answer: String },
    /// cluster.json is missing, unreadable or names no NameNode.
    #[error("{0}")]
    Cluster(String),
    /// A bad argument given by the caller (a relative path, a bad offset).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = DfsError> = std::result::Result<T, E>;

impl From<CallError> for DfsError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Remote(r) => DfsError::Remote(r),
            CallError::Io { addr, source } => DfsError::Namenode { addr, message: source.to_string() },
            CallError::Protocol { addr, source } => {
                DfsError::Namenode { addr, message: format!("bad response: {source}") }
            }
        }
    }
}

impl DfsError {
    /// The remote error, if the NameNode refused the call.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            DfsError::Remote(r) => Some(r),
            _ => None,
        }
    }

    /// The simple Java class name of a remote error (`FileNotFoundException`).
    pub fn exception_name(&self) -> Option<&str> {
        self.remote().map(|r| r.exception_name())
    }

    /// Nothing at the path (`FileNotFoundException`).
    pub fn is_not_found(&self) -> bool {
        self.exception_name() == Some("FileNotFoundException")
    }

    /// How Hadoop's shell words this error after `cmd: `path': ` (see [`shell_reason`]).
    pub fn shell_reason(&self) -> ShellReason {
        match self {
            DfsError::Remote(r) => shell_reason(r),
            other => ShellReason { text: other.to_string(), about_path: false },
        }
    }
}

/// An error as Hadoop's shell prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellReason {
    pub text: String,
    /// The shell prints it after the path (`ls: `/x': No such file or directory`); otherwise
    /// alone (`mkdir: Permission denied: user=...`).
    pub about_path: bool,
}

/// Hadoop's shell wording of a NameNode error: its `PathIOException` subclasses name the path
/// and a fixed phrase; an `AccessControlException` is printed with its own message (which
/// starts `Permission denied`); anything else with its message.
pub fn shell_reason(e: &RemoteError) -> ShellReason {
    let fixed = |t: &str| ShellReason { text: t.to_string(), about_path: true };
    match e.exception_name() {
        "FileNotFoundException" => fixed("No such file or directory"),
        "FileAlreadyExistsException" if e.message.starts_with("Path is not a directory") => fixed("Not a directory"),
        "FileAlreadyExistsException" if e.message.contains("as a directory") => fixed("Is a directory"),
        "FileAlreadyExistsException" => fixed("File exists"),
        "ParentNotDirectoryException" => fixed("Not a directory"),
        "PathIsNotEmptyDirectoryException" => fixed("Directory is not empty"),
        "PathIsDirectoryException" => fixed("Is a directory"),
        "PathIsNotDirectoryException" => fixed("Not a directory"),
        "AccessControlException" => {
            let m = &e.message;
            let text = if m.starts_with("Permission denied") { m.clone() } else { format!("Permission denied: {m}") };
            ShellReason { text, about_path: false }
        }
        _ => ShellReason { text: e.message.clone(), about_path: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(class: &str, msg: &str) -> ShellReason {
        shell_reason(&RemoteError::new(class, msg))
    }

    #[test]
    fn hadoop_shell_wording() {
        assert_eq!(
            reason("java.io.FileNotFoundException", "File /x does not exist.").text,
            "No such file or directory"
        );
        assert_eq!(
            reason("org.apache.hadoop.fs.FileAlreadyExistsException", "/a for client c already exists").text,
            "File exists"
        );
        assert_eq!(
            reason("org.apache.hadoop.fs.FileAlreadyExistsException", "/a already exists as a directory").text,
            "Is a directory"
        );
        assert_eq!(
            reason("org.apache.hadoop.fs.ParentNotDirectoryException", "/a (is not a directory)").text,
            "Not a directory"
        );
        assert_eq!(
            reason("org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", "`/d' is non empty").text,
            "Directory is not empty"
        );
        let denied =
            reason("org.apache.hadoop.security.AccessControlException", "Permission denied: user=bob, access=WRITE");
        assert_eq!(denied, ShellReason { text: "Permission denied: user=bob, access=WRITE".into(), about_path: false });
        let other = reason("java.io.IOException", "rename destination cannot be the root");
        assert_eq!(other.text, "rename destination cannot be the root");
        assert!(!other.about_path);
    }
}
