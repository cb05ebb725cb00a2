//! The task side of herd's MapReduce: everything a map or reduce task does between reading its
//! input and handing over its output, local (no RPC, no daemons), and the output committer.
//!
//! A map task reads its [`split`] (one per block of a file) as line records, each line exactly
//! once across all splits; sends each output record to a reduce [`partition`] (xxh3 with a
//! fixed seed); and hands it to the [`collector`], which sorts by (partition, key) under a
//! memory budget, runs the combiner, spills, and merges the spills into one `file.out` with an
//! index of per-partition segments, each with its CRC32C ([`spill`] has the format, specified
//! in docs/mapreduce-formats.md). A reduce task takes one segment from every map, [`merge`]s
//! them as a stream (bounded memory, equal keys in map order), and calls the reducer once per
//! key; [`task`] has those two loops. [`streaming`] runs a mapper or reducer command under Hadoop Streaming's contract;
//! [`builtin`] has the built-in jobs' functions; [`counters`] keeps Hadoop's counter names;
//! [`committer`] is Hadoop's FileOutputCommitter v1 over the file system (through
//! `dfs-client`), so that a job's output appears whole or not at all.
//!
//! Guarantees: no byte from disk is trusted before its checksum passes, and bad bytes are an
//! error, never a panic; every buffer has a bound (a line, the sort buffer, a merge's records,
//! fetched segments in memory, a streaming command's stderr tail); the output of a map is a
//! deterministic function of its input and its configuration.

pub mod api;
pub mod builtin;
pub mod collector;
pub mod committer;
pub mod counters;
pub mod error;
pub mod merge;
pub mod partition;
pub mod spill;
pub mod split;
pub mod streaming;
pub mod task;

pub use api::{Emit, Mapper, Reducer, Values};
pub use counters::{Counters, TaskCounter};
pub use error::{Error, Result};

#[cfg(test)]
mod test_util {
    pub(crate) use ::test_rng::Rng;
}
