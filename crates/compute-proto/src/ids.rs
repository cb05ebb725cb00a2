//! Ids as YARN and MapReduce spell them, with their string forms and parsers:
//!
//! ```text
//! ApplicationId         application_<cluster_ts>_<seq:04>
//! ApplicationAttemptId  appattempt_<cluster_ts>_<seq:04>_<attempt:06>
//! ContainerId           container_[e<epoch:02>_]<cluster_ts>_<seq:04>_<attempt:02>_<id:06>
//! TaskId                task_<cluster_ts>_<seq:04>_<m|r>_<index:06>
//! TaskAttemptId         attempt_<cluster_ts>_<seq:04>_<m|r>_<index:06>_<attempt>
//! NodeId                <host>:<port>
//! ```
//!
//! `:04` is a minimum width (zero-padded; longer numbers print whole), as Java's
//! `NumberFormat.setMinimumIntegerDigits`. A container id's `e<epoch>_` part is left out when
//! the epoch is 0 (YARN 2.6+'s `ContainerId.toString`; the parser takes both forms). Parsers
//! take any run of ASCII digits, as Hadoop's do, so `application_1_1` parses too; what they print
//! parses back to the same id. On the wire an id is its numbers (see each struct), not its string.

use rpc::codec::{DecodeError, Message, Reader, Writer};
use rpc::{wire_enum, wire_struct};
use std::fmt;
use std::str::FromStr;

/// A string that is not the id it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {input:?}")]
pub struct ParseIdError {
    pub what: &'static str,
    pub input: String,
}

/// A run of ASCII digits as a number (no sign, no spaces; `None` on overflow).
fn number<T: TryFrom<u64>>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().and_then(|n| T::try_from(n).ok())
}

/// The `_`-separated fields after `prefix_`, if there are exactly `n` of them.
fn fields<'a>(s: &'a str, prefix: &str, n: usize) -> Option<Vec<&'a str>> {
    let rest = s.strip_prefix(prefix)?.strip_prefix('_')?;
    let v: Vec<&str> = rest.split('_').collect();
    (v.len() == n).then_some(v)
}

wire_struct! {
    /// YARN's `ApplicationId`: `cluster_ts u64 | seq u32`.
    #[derive(Copy, Hash, PartialOrd, Ord)]
    pub struct ApplicationId {
        /// When the cluster's ResourceManager first started (ms since the epoch).
        pub cluster_ts: u64,
        /// The application's number in that cluster (from 1).
        pub seq: u32,
    }
}

impl fmt::Display for ApplicationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "application_{}_{:04}", self.cluster_ts, self.seq)
    }
}

impl ApplicationId {
    fn from_fields(ts: &str, seq: &str) -> Option<ApplicationId> {
        Some(ApplicationId { cluster_ts: number(ts)?, seq: number(seq)? })
    }
}

impl FromStr for ApplicationId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        let err = || ParseIdError { what: "application id", input: s.into() };
        let f = fields(s, "application", 2).ok_or_else(err)?;
        ApplicationId::from_fields(f[0], f[1]).ok_or_else(err)
    }
}

wire_struct! {
    /// YARN's `ApplicationAttemptId`: `app | attempt u32`.
    #[derive(Copy, Hash, PartialOrd, Ord)]
    pub struct ApplicationAttemptId {
        pub app: ApplicationId,
        /// The attempt's number (from 1).
        pub attempt: u32,
    }
}

impl fmt::Display for ApplicationAttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "appattempt_{}_{:04}_{:06}", self.app.cluster_ts, self.app.seq, self.attempt)
    }
}

impl ApplicationAttemptId {
    fn from_fields(ts: &str, seq: &str, attempt: &str) -> Option<ApplicationAttemptId> {
        Some(ApplicationAttemptId { app: ApplicationId::from_fields(ts, seq)?, attempt: number(attempt)? })
    }
}

impl FromStr for ApplicationAttemptId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        let err = || ParseIdError { what: "application attempt id", input: s.into() };
        let f = fields(s, "appattempt", 3).ok_or_else(err)?;
        ApplicationAttemptId::from_fields(f[0], f[1], f[2]).ok_or_else(err)
    }
}

/// YARN's `ContainerId`: `attempt | epoch u32 | seq u64`, the epoch below 2^24 and the
/// sequence number below 2^40 (YARN packs both into one long, epoch in the upper 24 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId {
    /// The application attempt the container was allocated to.
    pub attempt: ApplicationAttemptId,
    /// The ResourceManager's epoch when it was allocated (YARN: the RM's restart count), so
    /// that ids stay unique across RM restarts.
    pub epoch: u32,
    /// The container's number within its attempt (1 is the AM's).
    pub seq: u64,
}

impl ContainerId {
    /// The largest epoch a container id holds (24 bits).
    pub const EPOCH_MAX: u32 = (1 << 24) - 1;
    /// The largest sequence number a container id holds (40 bits).
    pub const SEQ_MAX: u64 = (1 << 40) - 1;

    /// A container id, or `None` if `epoch` or `seq` is over its limit.
    pub fn new(attempt: ApplicationAttemptId, epoch: u32, seq: u64) -> Option<ContainerId> {
        (epoch <= Self::EPOCH_MAX && seq <= Self::SEQ_MAX).then_some(ContainerId { attempt, epoch, seq })
    }

    pub fn app(&self) -> ApplicationId {
        self.attempt.app
    }
}

impl Message for ContainerId {
    const MIN_WIRE: usize = ApplicationAttemptId::MIN_WIRE + 4 + 8;
    fn encode(&self, w: &mut Writer) {
        assert!(self.epoch <= Self::EPOCH_MAX && self.seq <= Self::SEQ_MAX, "{self:?} is over its limits");
        self.attempt.encode(w);
        w.u32(self.epoch);
        w.u64(self.seq);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let attempt = ApplicationAttemptId::decode(r)?;
        let epoch = r.u32()?;
        if epoch > Self::EPOCH_MAX {
            return Err(DecodeError::BadValue { what: "container id epoch", value: epoch.into() });
        }
        let seq = r.u64()?;
        if seq > Self::SEQ_MAX {
            return Err(DecodeError::BadValue { what: "container id sequence number", value: seq });
        }
        Ok(ContainerId { attempt, epoch, seq })
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("container_")?;
        if self.epoch > 0 {
            write!(f, "e{:02}_", self.epoch)?;
        }
        let a = &self.attempt;
        write!(f, "{}_{:04}_{:02}_{:06}", a.app.cluster_ts, a.app.seq, a.attempt, self.seq)
    }
}

impl FromStr for ContainerId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        let err = || ParseIdError { what: "container id", input: s.into() };
        let parsed = || -> Option<ContainerId> {
            let rest = s.strip_prefix("container_")?;
            let f: Vec<&str> = rest.split('_').collect();
            let (epoch, f) = match f.first()?.strip_prefix('e') {
                Some(e) => (number(e)?, &f[1..]),
                None => (0, &f[..]),
            };
            let [ts, seq, attempt, id] = f else { return None };
            ContainerId::new(ApplicationAttemptId::from_fields(ts, seq, attempt)?, epoch, number(id)?)
        };
        parsed().ok_or_else(err)
    }
}

wire_enum! {
    /// A MapReduce task's kind (`m` or `r` in its ids).
    #[derive(Copy, Hash, PartialOrd, Ord)]
    pub enum TaskType {
        Map = 0,
        Reduce = 1,
    }
}

impl TaskType {
    fn letter(self) -> char {
        match self {
            TaskType::Map => 'm',
            TaskType::Reduce => 'r',
        }
    }

    fn from_letter(s: &str) -> Option<TaskType> {
        match s {
            "m" => Some(TaskType::Map),
            "r" => Some(TaskType::Reduce),
            _ => None,
        }
    }
}

wire_struct! {
    /// MapReduce's `TaskID`: `app | kind | index u32`. The job is the application (Hadoop's
    /// `job_<ts>_<seq>` has the application's numbers).
    #[derive(Copy, Hash, PartialOrd, Ord)]
    pub struct TaskId {
        pub app: ApplicationId,
        pub kind: TaskType,
        /// The task's number among the job's tasks of its kind (from 0).
        pub index: u32,
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.app;
        write!(f, "task_{}_{:04}_{}_{:06}", a.cluster_ts, a.seq, self.kind.letter(), self.index)
    }
}

impl TaskId {
    fn from_fields(ts: &str, seq: &str, kind: &str, index: &str) -> Option<TaskId> {
        Some(TaskId {
            app: ApplicationId::from_fields(ts, seq)?,
            kind: TaskType::from_letter(kind)?,
            index: number(index)?,
        })
    }
}

impl FromStr for TaskId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        let err = || ParseIdError { what: "task id", input: s.into() };
        let f = fields(s, "task", 4).ok_or_else(err)?;
        TaskId::from_fields(f[0], f[1], f[2], f[3]).ok_or_else(err)
    }
}

wire_struct! {
    /// MapReduce's `TaskAttemptID`: `task | attempt u32`.
    #[derive(Copy, Hash, PartialOrd, Ord)]
    pub struct TaskAttemptId {
        pub task: TaskId,
        /// The attempt's number (from 0, as Hadoop's).
        pub attempt: u32,
    }
}

impl fmt::Display for TaskAttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.task;
        let a = &t.app;
        write!(f, "attempt_{}_{:04}_{}_{:06}_{}", a.cluster_ts, a.seq, t.kind.letter(), t.index, self.attempt)
    }
}

impl FromStr for TaskAttemptId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        let err = || ParseIdError { what: "task attempt id", input: s.into() };
        let f = fields(s, "attempt", 5).ok_or_else(err)?;
        let task = TaskId::from_fields(f[0], f[1], f[2], f[3]).ok_or_else(err)?;
        Ok(TaskAttemptId { task, attempt: number(f[4]).ok_or_else(err)? })
    }
}

wire_struct! {
    /// YARN's `NodeId`: a NodeManager by the address of its control port, `host string |
    /// port u16`.
    #[derive(Hash, PartialOrd, Ord)]
    pub struct NodeId {
        pub host: String,
        pub port: u16,
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl FromStr for NodeId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        let err = || ParseIdError { what: "node id", input: s.into() };
        let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
        if host.is_empty() {
            return Err(err());
        }
        Ok(NodeId { host: host.into(), port: number(port).ok_or_else(err)? })
    }
}
