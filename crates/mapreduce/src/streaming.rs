//! Hadoop Streaming's contract for a mapper, combiner or reducer command.
//!
//! The command runs as `sh -c CMD` in its own process group, in the given directory with the
//! given environment. Records go to its stdin as lines: a mapper over text input gets the line
//! alone (Hadoop's `PipeMapper` drops `TextInputFormat`'s offset key,
//! `stream.map.input.ignoreKey`), a reducer gets `key\tvalue\n` per value. Each stdout line is
//! a record: key up to the first TAB, value after it; a line with no TAB is all key, with an
//! empty value (Hadoop's `TextOutputReader`). A `\r` before the `\n` is dropped, as Hadoop's
//! line reader does. On stderr, `reporter:counter:<group>,<counter>,<amount>` adds to a
//! counter and `reporter:status:<message>` sets the status; every other line is kept in a
//! bounded tail (the last [`STDERR_TAIL_LINES`] lines, at most [`STDERR_TAIL_BYTES`]) for the
//! error report.
//!
//! stdin is written by one thread, stderr read by another, and stdout read by a third that
//! hands lines over a bounded channel to the caller's thread; so a command that writes a lot
//! before reading all its input never deadlocks, and memory stays bounded (channel depth times
//! the line limit). A non-zero exit is an error carrying the status and the stderr tail; so is
//! a command that exits without reading all its input (Hadoop fails such a task with a broken
//! pipe). A command left running by an error on our side is killed with its process group.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use crate::api::Emit;
use crate::counters::Counters;
use crate::error::{Error, Result};
use crate::split::{read_line_bounded, LineRead};

pub const STDERR_TAIL_LINES: usize = 20;
pub const STDERR_TAIL_BYTES: usize = 4096;
/// stdout lines in flight between the reader thread and the caller.
const STDOUT_CHANNEL_DEPTH: usize = 256;
const REPORTER_COUNTER: &str = "reporter:counter:";
const REPORTER_STATUS: &str = "reporter:status:";

/// A command to run under the streaming contract.
#[derive(Clone, Debug)]
pub struct StreamCommand {
    /// Run as `sh -c command`.
    pub command: String,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// The longest stdout line accepted (a bound on each buffered line).
    pub max_line_len: usize,
    /// Bumped whenever the command shows life: a write to its stdin goes through, a record
    /// comes from its stdout, a `reporter:` line from its stderr (Hadoop's progress, which the
    /// task time-out watches).
    pub activity: Option<Arc<AtomicU64>>,
}

fn bump(activity: &Option<Arc<AtomicU64>>) {
    if let Some(a) = activity {
        a.fetch_add(1, Ordering::Relaxed);
    }
}

/// A writer that bumps the activity counter on every write that goes through.
struct Active<W> {
    inner: W,
    activity: Option<Arc<AtomicU64>>,
}

impl<W: Write> Write for Active<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        bump(&self.activity);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl StreamCommand {
    pub fn new(command: &str, dir: &std::path::Path) -> StreamCommand {
        StreamCommand {
            command: command.to_string(),
            dir: dir.to_path_buf(),
            env: Vec::new(),
            max_line_len: crate::split::MAX_LINE_LEN_DEFAULT,
            activity: None,
        }
    }
}

/// What a successful run reported besides its records.
#[derive(Debug, Default)]
pub struct StreamOutcome {
    /// From `reporter:counter:` lines.
    pub counters: Counters,
    /// The last `reporter:status:` message.
    pub status: Option<String>,
    pub stderr_tail: String,
}

/// A mapper's input line: the line and `\n`.
pub fn write_map_input(out: &mut dyn Write, line: &[u8]) -> io::Result<()> {
    out.write_all(line)?;
    out.write_all(b"\n")
}

/// A reducer's input record: `key\tvalue\n`.
pub fn write_reduce_input(out: &mut dyn Write, key: &[u8], value: &[u8]) -> io::Result<()> {
    out.write_all(key)?;
    out.write_all(b"\t")?;
    out.write_all(value)?;
    out.write_all(b"\n")
}

/// Splits an output line (its end already stripped) into key and value at the first TAB.
pub fn split_output_line(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b'\t') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[]),
    }
}

/// Runs `command`: `feed` writes its stdin (on a thread of its own; a write error of kind
/// `BrokenPipe` means the command stopped reading), and `on_record` gets each stdout record on
/// the calling thread.
pub fn run<F>(command: &StreamCommand, feed: F, on_record: &mut dyn Emit) -> Result<StreamOutcome>
where
    F: FnOnce(&mut dyn Write) -> Result<()> + Send,
{
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(&command.command)
        .current_dir(&command.dir)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl(2) in the forked child before exec only sets a flag of that process; it
    // allocates nothing and is async-signal-safe. The command dies with the thread that runs
    // it here, so a killed task (its container's process group, which the command's own group
    // is not part of) leaves no command behind.
    unsafe {
        child.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = child.spawn().map_err(|e| Error::io(format!("start `{}`", command.command), e))?;
    let pid = child.id();
    let (stdin, stdout, stderr) = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
        (Some(stdin), Some(stdout), Some(stderr)) => (stdin, stdout, stderr),
        _ => unreachable!("all three were piped"),
    };
    let max_line_len = command.max_line_len;
    let activity = &command.activity;
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            let mut out = BufWriter::with_capacity(64 << 10, Active { inner: stdin, activity: activity.clone() });
            let fed = feed(&mut out);
            let flushed = out.flush().map_err(|e| Error::io("write to the command's stdin", e));
            // Dropping `out` closes stdin: the command sees the end of its input.
            fed.and(flushed)
        });
        let stderr_reader = scope.spawn(move || read_stderr(stderr, activity));
        let (tx, rx) = sync_channel::<Result<Vec<u8>>>(STDOUT_CHANNEL_DEPTH);
        scope.spawn(move || {
            let mut input = BufReader::with_capacity(64 << 10, stdout);
            loop {
                let mut line = Vec::new();
                let message = match read_line_bounded(&mut input, &mut line, max_line_len) {
                    Ok(LineRead::Eof) => return,
                    Ok(LineRead::Line(_)) => Ok(line),
                    Ok(LineRead::TooLong) => {
                        Err(Error::User(format!("an output line longer than {max_line_len} bytes")))
                    }
                    Err(e) => Err(Error::io("read the command's stdout", e)),
                };
                let stop = message.is_err();
                if tx.send(message).is_err() || stop {
                    return;
                }
            }
        });

        let mut result = Ok(());
        for message in rx {
            if result.is_err() {
                continue; // drain until the killed command's stdout closes
            }
            result = message.and_then(|mut line| {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                bump(activity);
                let (key, value) = split_output_line(&line);
                on_record.emit(key, value)
            });
            if result.is_err() {
                kill_group(pid);
            }
        }
        let status = child.wait().map_err(|e| Error::io(format!("wait for `{}`", command.command), e));
        let fed = writer.join().expect("the stdin writer does not panic");
        let (outcome, tail) = stderr_reader.join().expect("the stderr reader does not panic");
        result?;
        let status = status?;
        if !status.success() {
            return Err(Error::StreamingFailed {
                command: command.command.clone(),
                status: describe(status),
                stderr_tail: tail,
            });
        }
        match fed {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
                Err(Error::StreamingInputNotConsumed {
                    command: command.command.clone(),
                    status: describe(status),
                    stderr_tail: tail,
                })
            }
            Err(e) => Err(e),
            Ok(()) => Ok(StreamOutcome { stderr_tail: tail, ..outcome }),
        }
    })
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// SIGKILL to the command's process group (it was started as the group's leader, and is not
/// yet reaped when this is called, so the id is still its own).
fn kill_group(pid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Reads stderr to its end: reporter lines into the outcome, the others into the tail. Lines
/// longer than the tail's byte bound are cut into pieces, so memory stays bounded.
fn read_stderr(stderr: impl Read, activity: &Option<Arc<AtomicU64>>) -> (StreamOutcome, String) {
    let mut outcome = StreamOutcome::default();
    let mut tail = Tail::default();
    let mut input = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut input).take(STDERR_TAIL_BYTES as u64).read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tail.push(format!("(reading stderr failed: {e})"));
                break;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if parse_reporter(text, &mut outcome) {
            bump(activity);
        } else {
            tail.push(text.to_string());
        }
    }
    (outcome, tail.join())
}

/// Applies a `reporter:` line; false for any other line, or a malformed one (kept in the tail
/// so the user sees it; Hadoop logs it and goes on).
fn parse_reporter(line: &str, outcome: &mut StreamOutcome) -> bool {
    if let Some(rest) = line.strip_prefix(REPORTER_COUNTER) {
        let fields: Vec<&str> = rest.split(',').collect();
        if let [group, name, amount] = fields[..] {
            if let Ok(amount) = amount.trim().parse::<i64>() {
                outcome.counters.add(group, name, amount);
                return true;
            }
        }
        false
    } else if let Some(message) = line.strip_prefix(REPORTER_STATUS) {
        outcome.status = Some(message.to_string());
        true
    } else {
        false
    }
}

/// The last lines of stderr, bounded in lines and bytes.
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.lines.len() > STDERR_TAIL_LINES || (self.bytes > STDERR_TAIL_BYTES && self.lines.len() > 1) {
            let dropped = self.lines.pop_front().expect("more than one line");
            self.bytes -= dropped.len() + 1;
        }
    }

    fn join(self) -> String {
        self.lines.into_iter().collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
#[path = "streaming_test.rs"]
mod tests;
