//! The crate's one error type: each variant names the condition, with enough context (a path, an
//! offset, a segment) to act on it without a debugger.

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed; `context` says which file and what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The blocks given for a file do not tile it (gaps, overlaps, wrong total).
    #[error("invalid block layout for {path}: {detail}")]
    InvalidBlocks { path: String, detail: String },
    /// A line longer than the reader's limit (a bound on the one buffer a line lives in).
    #[error("line at offset {offset} is longer than {max_len} bytes")]
    LineTooLong { offset: u64, max_len: usize },
    /// A segment's bytes do not match the CRC32C its index recorded.
    #[error("segment {segment}: CRC32C mismatch (index says {expected:#010x}, bytes give {actual:#010x})")]
    ChecksumMismatch { segment: String, expected: u32, actual: u32 },
    /// A segment or index ends before the length its header or index promised.
    #[error("{what}: truncated ({detail})")]
    Truncated { what: String, detail: String },
    /// Bytes that passed their checksum but do not decode (a bug in a writer, or a bad index).
    #[error("{what}: corrupt: {detail}")]
    Corrupt { what: String, detail: String },
    /// A combiner emitted a key other than the group's, which would break the spill's sort order.
    #[error("combiner emitted key {emitted:?} in the group of key {group:?}; a combiner must keep its group's key")]
    CombinerChangedKey { group: String, emitted: String },
    /// A streaming command exited with a failure; `stderr_tail` is the end of what it printed.
    #[error("streaming command `{command}` failed ({status}); stderr tail:\n{stderr_tail}")]
    StreamingFailed { command: String, status: String, stderr_tail: String },
    /// A streaming command closed its stdin (or exited) before reading all its input.
    #[error("streaming command `{command}` stopped reading its input ({status}); stderr tail:\n{stderr_tail}")]
    StreamingInputNotConsumed { command: String, status: String, stderr_tail: String },
    /// A user function (mapper, reducer, combiner) refused its input.
    #[error("{0}")]
    User(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    pub(crate) fn io_path(what: &str, path: &std::path::Path, source: io::Error) -> Error {
        Error::io(format!("{what} {}", path.display()), source)
    }
}
