//! Input splits and the line record reader.
//!
//! A file is cut into one split per block (Hadoop's `FileInputFormat` with the split size equal
//! to the block size), each carrying its block's hosts as the locality hint. Records are lines,
//! read by [`LineRecordReader`] under Hadoop's rule, which makes every line of the file belong
//! to exactly one split although split boundaries fall anywhere inside lines:
//!
//! - a split that does not start at offset 0 backs up one byte and throws away everything up
//!   to and including the first `\n` at or after `start - 1`; so a line that starts exactly
//!   at `start` (the byte before it is the `\n`) is kept, and a line that started earlier is
//!   left to the split it started in;
//! - a split reads every line that *starts* before its end, reading past the end as far as
//!   needed to finish the last one.
//!
//! So a split owns the lines starting in `[start, end)` (the first split also owns the line at
//! 0). This is Hadoop 1's `LineRecordReader` (`--start; seek(start)`, then `while pos < end`).
//! Hadoop 2 and 3 write it differently for the sake of splittable compressed input (always
//! discard the first line when `start != 0`, then read `while pos <= end`): a line starting
//! exactly on a boundary goes to the earlier split there, to the later one here. Both read each
//! line exactly once; the form here reads one line fewer across the boundary, which keeps a
//! data-local map on its own block.
//!
//! Line ends are `\n` and `\r\n`, stripped from the record. Unlike Hadoop's default reader, a
//! lone `\r` is not a line end (it stays in the line). A UTF-8 byte order mark at offset 0 is
//! dropped, as Hadoop does. A line longer than `max_line_len` is an error (Hadoop skips it
//! silently); the limit bounds the one buffer a line is read into.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use crate::error::{Error, Result};

/// Hadoop's default for `mapreduce.input.linerecordreader.line.maxlength` is unbounded; ours
/// is a bound on memory: 64 MiB.
pub const MAX_LINE_LEN_DEFAULT: usize = 64 << 20;

/// One block of a file, as the NameNode reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLocation {
    pub offset: u64,
    pub length: u64,
    /// DataNode hosts holding a replica, best first.
    pub hosts: Vec<String>,
}

/// The input of one map task: a byte range of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSplit {
    pub path: String,
    pub start: u64,
    pub length: u64,
    /// Where the range's bytes are: the locality ask for the map's container.
    pub hosts: Vec<String>,
}

impl InputSplit {
    pub fn end(&self) -> u64 {
        self.start + self.length
    }
}

/// One split per block of a file of `file_len` bytes. The blocks must tile the file: in order,
/// from 0, without gaps or overlaps, empty blocks aside. An empty file gets one empty split
/// (as in Hadoop, so that a job over empty files still runs its maps).
pub fn splits_for_file(path: &str, file_len: u64, blocks: &[BlockLocation]) -> Result<Vec<InputSplit>> {
    let invalid = |detail: String| Error::InvalidBlocks { path: path.to_string(), detail };
    let mut splits = Vec::with_capacity(blocks.len());
    let mut next = 0u64;
    for block in blocks {
        if block.offset != next {
            return Err(invalid(format!("block at offset {} where {next} was expected", block.offset)));
        }
        next = block
            .offset
            .checked_add(block.length)
            .ok_or_else(|| invalid(format!("block at {} overflows", block.offset)))?;
        if block.length > 0 {
            splits.push(InputSplit {
                path: path.to_string(),
                start: block.offset,
                length: block.length,
                hosts: block.hosts.clone(),
            });
        }
    }
    if next != file_len {
        return Err(invalid(format!("blocks cover {next} bytes of a {file_len}-byte file")));
    }
    if splits.is_empty() {
        splits.push(InputSplit { path: path.to_string(), start: 0, length: 0, hosts: Vec::new() });
    }
    Ok(splits)
}

/// Reads the lines a split owns, as `(offset of the line's first byte, line without its end)`.
pub struct LineRecordReader<R> {
    input: BufReader<R>,
    /// Offset of the next unread byte.
    pos: u64,
    end: u64,
    max_line_len: usize,
    line: Vec<u8>,
}

impl<R: Read + Seek> LineRecordReader<R> {
    /// Positions `input` for the split `[start, start + length)`, discarding the partial
    /// line a non-first split starts in.
    pub fn new(input: R, start: u64, length: u64, max_line_len: usize) -> Result<LineRecordReader<R>> {
        let mut input = BufReader::with_capacity(64 << 10, input);
        let end = start
            .checked_add(length)
            .ok_or_else(|| Error::io("split", io::Error::other("start + length overflows")))?;
        let seek_to = start.saturating_sub(1);
        input.seek(SeekFrom::Start(seek_to)).map_err(|e| Error::io(format!("seek to {seek_to}"), e))?;
        let mut reader = LineRecordReader { input, pos: seek_to, end, max_line_len, line: Vec::new() };
        if start > 0 {
            reader.skip_through_newline()?;
        }
        Ok(reader)
    }

    /// The next record, or `None` past the split's last line. The slice lives until the next
    /// call.
    pub fn next_record(&mut self) -> Result<Option<(u64, &[u8])>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let offset = self.pos;
        self.line.clear();
        let read = read_line_bounded(&mut self.input, &mut self.line, self.max_line_len)
            .map_err(|e| Error::io(format!("read line at {offset}"), e))?;
        let consumed = match read {
            LineRead::Eof => return Ok(None),
            LineRead::TooLong => return Err(Error::LineTooLong { offset, max_len: self.max_line_len }),
            LineRead::Line(consumed) => consumed,
        };
        self.pos += consumed as u64;
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
        }
        let mut line = &self.line[..];
        if offset == 0 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        Ok(Some((offset, line)))
    }

    /// The offset of the next unread byte (progress: `(pos - start) / length`).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Discards bytes through the next `\n` without keeping them (so a long partial line costs
    /// no memory).
    fn skip_through_newline(&mut self) -> Result<()> {
        loop {
            let buf = self.input.fill_buf().map_err(|e| Error::io(format!("read at {}", self.pos), e))?;
            if buf.is_empty() {
                return Ok(());
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.input.consume(i + 1);
                    self.pos += i as u64 + 1;
                    return Ok(());
                }
                None => {
                    let n = buf.len();
                    self.input.consume(n);
                    self.pos += n as u64;
                }
            }
        }
    }
}

pub(crate) enum LineRead {
    Eof,
    /// Bytes consumed, the `\n` included when there was one.
    Line(usize),
    TooLong,
}

/// Appends one line (with its `\n`, if any) to `line`, refusing more than `max_len` bytes
/// before the `\n`.
pub(crate) fn read_line_bounded(input: &mut impl BufRead, line: &mut Vec<u8>, max_len: usize) -> io::Result<LineRead> {
    let mut consumed = 0usize;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(match consumed {
                0 => LineRead::Eof,
                n if n > max_len => LineRead::TooLong,
                n => LineRead::Line(n),
            });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        // Past `max_len + 1` bytes with no `\n` (one more for a `\r`), the line is too long
        // whatever follows; refuse before buffering more.
        if !done && consumed + take > max_len.saturating_add(1) {
            return Ok(LineRead::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        input.consume(take);
        consumed += take;
        if done {
            let mut content = consumed - 1;
            if line.len() >= 2 && line[line.len() - 2] == b'\r' {
                content -= 1;
            }
            if content > max_len {
                return Ok(LineRead::TooLong);
            }
            return Ok(LineRead::Line(consumed));
        }
    }
}

#[cfg(test)]
#[path = "split_test.rs"]
mod tests;
