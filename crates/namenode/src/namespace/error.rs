//! The namespace's errors, each naming the Hadoop exception a client expects on the wire.

/// Why an operation was refused. The message is what Hadoop would put in the exception.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    FileNotFound(String),
    #[error("{0}")]
    FileAlreadyExists(String),
    #[error("{0}")]
    ParentNotDirectory(String),
    #[error("{0}")]
    AccessControl(String),
    #[error("{0}")]
    PathIsNotEmptyDirectory(String),
    #[error("{0}")]
    InvalidPath(String),
    /// The caller does not hold the lease of a file it writes (or the file is not open).
    #[error("{0}")]
    LeaseExpired(String),
    /// The file is open for writing by a client whose lease is alive.
    #[error("{0}")]
    AlreadyBeingCreated(String),
    /// The file's lease is being recovered; the caller should try again later.
    #[error("{0}")]
    RecoveryInProgress(String),
    /// A rename that HDFS refuses with a plain IOException (into its own subtree, of or onto
    /// the root, directory onto file, onto a non-empty directory).
    #[error("{0}")]
    InvalidRename(String),
    /// A bad argument refused with a plain IOException (replication, block size).
    #[error("{0}")]
    InvalidArgument(String),
    /// A block that does not match the file's (previous/last block, pipeline update).
    #[error("{0}")]
    InvalidBlock(String),
    /// An argument Hadoop refuses with `HadoopIllegalArgumentException` (truncate to a larger
    /// size, the rules of concat).
    #[error("{0}")]
    HadoopIllegalArgument(String),
    /// A precondition Hadoop checks with Guava's `checkArgument` (concat without sources).
    #[error("{0}")]
    IllegalArgument(String),
}

impl Error {
    /// The fully qualified Java class of the exception Hadoop throws for this error (WebHDFS
    /// `RemoteException.javaClassName`, Hadoop RPC `exceptionClassName`).
    pub fn java_class(&self) -> &'static str {
        match self {
            Error::FileNotFound(_) => "java.io.FileNotFoundException",
            Error::FileAlreadyExists(_) => "org.apache.hadoop.fs.FileAlreadyExistsException",
            Error::ParentNotDirectory(_) => "org.apache.hadoop.fs.ParentNotDirectoryException",
            Error::AccessControl(_) => "org.apache.hadoop.security.AccessControlException",
            Error::PathIsNotEmptyDirectory(_) => "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException",
            Error::InvalidPath(_) => "org.apache.hadoop.fs.InvalidPathException",
            Error::LeaseExpired(_) => "org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException",
            Error::AlreadyBeingCreated(_) => "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException",
            Error::RecoveryInProgress(_) => "org.apache.hadoop.hdfs.protocol.RecoveryInProgressException",
            Error::InvalidRename(_) | Error::InvalidArgument(_) | Error::InvalidBlock(_) => "java.io.IOException",
            Error::HadoopIllegalArgument(_) => "org.apache.hadoop.HadoopIllegalArgumentException",
            Error::IllegalArgument(_) => "java.lang.IllegalArgumentException",
        }
    }

    /// The simple class name (WebHDFS `RemoteException.exception`).
    pub fn exception_name(&self) -> &'static str {
        let c = self.java_class();
        c.rsplit('.').next().unwrap_or(c)
    }
}
