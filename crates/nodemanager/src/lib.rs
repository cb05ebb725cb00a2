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
//! The daemon (registration, heartbeats, container tokens, the shuffle port) comes with the
//! compute protocols; see ARCHITECTURE.md, "Compute".

pub mod containers;
pub mod daemon;
pub mod health;
pub mod shuffle;
