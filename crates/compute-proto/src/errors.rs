//! The Java exception class names the compute servers answer with (`rpc::RemoteError`'s
//! class), YARN's where YARN has one.

pub const YARN_EXCEPTION: &str = "org.apache.hadoop.yarn.exceptions.YarnException";
/// An application id the RM does not know.
pub const APPLICATION_NOT_FOUND: &str = "org.apache.hadoop.yarn.exceptions.ApplicationNotFoundException";
/// An AM request from an attempt that is not its application's current one: the AM exits.
pub const APPLICATION_ATTEMPT_NOT_FOUND: &str = "org.apache.hadoop.yarn.exceptions.ApplicationAttemptNotFoundException";
/// An Allocate from an AM the RM has no registration of: the AM registers again.
pub const APPLICATION_MASTER_NOT_REGISTERED: &str =
    "org.apache.hadoop.yarn.exceptions.ApplicationMasterNotRegisteredException";
/// An ask the scheduler can never satisfy (over the largest container, no resources).
pub const INVALID_RESOURCE_REQUEST: &str = "org.apache.hadoop.yarn.exceptions.InvalidResourceRequestException";
/// A container a NodeManager will not start: a bad token, another node's, a finished attempt's.
pub const INVALID_CONTAINER: &str = "org.apache.hadoop.yarn.exceptions.InvalidContainerException";
