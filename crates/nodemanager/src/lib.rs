//! herd's NodeManager (YARN's): it runs containers for the ResourceManager's applications and
//! tells the ResourceManager how they and the node are doing.
//!
//! What it promises, so far:
//! - [`containers`]: a container is a process group run from its own directory with its own
//!   environment and logs, held to its memory allocation, stopped as YARN stops one (SIGTERM
//!   to the group, SIGKILL 250 ms later), and its end reported exactly once, with the tail of
//!   its stderr when it failed. Its leader dies with the NodeManager.
//! - [`health`]: the operator's health script, judged by Hadoop's rule (a line starting with
//!   `ERROR`, or a time-out, makes the node unhealthy).
//!
//! - [`localize`]: a launch context's files fetched from the DFS as the container's user into
//!   its working dir, whole or not at all, before the process starts (bounded in count and bytes).
//! - [`logs`]: containers' stdout and stderr over HTTP (paths only from typed ids), and a
//!   blocking client.
//! - [`shuffle`]: the shuffle port serves a reduce partition of map outputs (bounded; paths
//!   only from typed ids, never from request text), and a blocking client to fetch them.
//! - [`daemon`]: `herd nodemanager`: joins `nodemanager/<id>`, registers with the RM and
//!   heartbeats (container statuses until acknowledged, health), follows its orders unless
//!   from an older RM epoch, and starts containers only for tokens that verify under the RM's
//!   secret from the keeper. Formats: docs/compute-formats.md; design: ARCHITECTURE.md,
//!   "Compute".

pub mod containers;
pub mod daemon;
pub mod health;
pub mod localize;
pub mod logs;
pub mod shuffle;
