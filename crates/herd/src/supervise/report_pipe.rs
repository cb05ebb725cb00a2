//! The supervisor's end of the report pipe: the child writes `member::report` lines into the
//! other end, inherited as file descriptor [`CHILD_FD`].
//!
//! Reads never block and every line is bounded by [`LINE_MAX`]: a child that writes garbage,
//! or an endless line, costs the supervisor a log line, never memory or a stuck task.

use member::report::{Report, LINE_MAX};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Where the child finds the write end. A fixed, single-digit number, so that even a shell
/// script can report (`>&3`; dash accepts no two-digit descriptor there).
pub const CHILD_FD: i32 = 3;

/// One line from the child: a report, or why the line is not one (never the line itself,
/// which may hold a password).
pub type Item = Result<Report, &'static str>;

/// Bytes read per `read` call.
const CHUNK: usize = 4096;
/// Reads [`ReportPipe::drain_now`] makes at most: well past a pipe's default 64 KiB.
const DRAIN_READS_MAX: usize = 64;

pub struct ReportPipe {
    file: AsyncFd<File>,
    lines: LineSplitter,
    /// The child and everyone who inherited the write end closed it (or a read failed).
    eof: bool,
}

/// Creates a pipe: the supervisor's non-blocking read end, and the write end to hand to the
/// child. Both are close-on-exec; the child's copy on [`CHILD_FD`] is made in `pre_exec`.
pub fn pair() -> io::Result<(ReportPipe, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills `fds` with two new descriptors that nothing else owns; each is
    // wrapped in an owner at once. O_NONBLOCK is set on the read end alone: the write end's
    // open file description is the child's, and a daemon's writes should simply block if ever
    // the pipe were full.
    let (read, write) = unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        let read = OwnedFd::from_raw_fd(fds[0]);
        let write = OwnedFd::from_raw_fd(fds[1]);
        let flags = libc::fcntl(fds[0], libc::F_GETFL);
        if flags < 0 || libc::fcntl(fds[0], libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
        (read, write)
    };
    // SAFETY: the File owns the read end, and it stays open (and the same descriptor) for as
    // long as the AsyncFd that owns the File.
    let file = unsafe { AsyncFd::register_with_interest(File::from(read), Interest::READABLE) }?;
    Ok((ReportPipe { file, lines: LineSplitter::default(), eof: false }, write))
}

impl ReportPipe {
    /// Waits for the next complete lines. Cancel-safe: bytes read are kept until their line
    /// ends. At end of file it never returns.
    pub async fn next(&mut self) -> Vec<Item> {
        loop {
            if self.eof {
                return std::future::pending().await;
            }
            let mut guard = match self.file.readable().await {
                Ok(guard) => guard,
                Err(_) => {
                    self.eof = true;
                    return vec![Err("the report pipe could not be polled")];
                }
            };
            let mut buf = [0u8; CHUNK];
            let mut out = Vec::new();
            match guard.try_io(|f| f.get_ref().read(&mut buf)) {
                Ok(Ok(0)) => {
                    self.eof = true;
                    self.lines.finish(&mut out);
                }
                Ok(Ok(n)) => self.lines.push(&buf[..n], &mut out),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(_)) => {
                    self.eof = true;
                    out.push(Err("reading the report pipe failed"));
                }
                // Readiness was stale; try_io cleared it, so the next readable() waits.
                Err(_would_block) => {}
            }
            if !out.is_empty() {
                return out;
            }
        }
    }

    /// Reads whatever is in the pipe now, without waiting. Called once the child is dead: it
    /// wrote everything before it died, so its last report is in the pipe even if the reactor
    /// has not said so yet.
    pub fn drain_now(&mut self) -> Vec<Item> {
        let mut out = Vec::new();
        let mut buf = [0u8; CHUNK];
        for _ in 0..DRAIN_READS_MAX {
            if self.eof {
                break;
            }
            match self.file.get_ref().read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    self.lines.finish(&mut out);
                }
                Ok(n) => self.lines.push(&buf[..n], &mut out),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.eof = true;
                    out.push(Err("reading the report pipe failed"));
                }
            }
        }
        out
    }
}

/// Splits bytes into report lines of at most [`LINE_MAX`] bytes; a longer line is dropped
/// whole (one error), however long it grows.
#[derive(Default)]
struct LineSplitter {
    buf: Vec<u8>,
    /// Inside a line already reported as too long: drop bytes up to its end.
    skipping: bool,
}

impl LineSplitter {
    fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Item>) {
        while !bytes.is_empty() {
            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                if !self.skipping {
                    if self.buf.len() + bytes.len() > LINE_MAX {
                        self.buf.clear();
                        self.skipping = true;
                        out.push(Err("line too long"));
                    } else {
                        self.buf.extend_from_slice(bytes);
                    }
                }
                return;
            };
            let line = &bytes[..end];
            bytes = &bytes[end + 1..];
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if self.buf.len() + line.len() > LINE_MAX {
                out.push(Err("line too long"));
            } else {
                self.buf.extend_from_slice(line);
                out.push(parse(&self.buf));
            }
            self.buf.clear();
        }
    }

    /// End of input: a last line without its newline is not a report.
    fn finish(&mut self, out: &mut Vec<Item>) {
        if !self.buf.is_empty() && !self.skipping {
            out.push(Err("unterminated last line"));
        }
        self.buf.clear();
        self.skipping = false;
    }
}

fn parse(line: &[u8]) -> Item {
    let line = std::str::from_utf8(line).map_err(|_| "line is not UTF-8")?;
    Report::parse(line.strip_suffix('\r').unwrap_or(line)).map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Item> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn lines_may_arrive_in_pieces() {
        let out = split(&[b"sess", b"ion 0x1 0a0b h:1\ncl", b"osed 0x1\n"]);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Ok(Report::Session(s)) if s.session_id == 1 && s.passwd == [10, 11]));
        assert_eq!(out[1], Ok(Report::Closed { session_id: 1 }));
    }

    #[test]
    fn bad_and_overlong_lines_are_errors_and_the_next_line_still_counts() {
        let long = vec![b'x'; LINE_MAX + 1];
        let out = split(&[b"opened 0x1\n", &long, &long, b"\nclosed 0x2\n\xff\n", b"closed 0x3"]);
        assert_eq!(
            out,
            vec![
                Err("unknown kind"),
                Err("line too long"),
                Ok(Report::Closed { session_id: 2 }),
                Err("line is not UTF-8"),
                Err("unterminated last line"),
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_line_max_is_read() {
        let mut line = b"closed 0x4".to_vec();
        line.resize(LINE_MAX, b' ');
        line.push(b'\n');
        assert_eq!(split(&[&line]), vec![Ok(Report::Closed { session_id: 4 })]);
    }
}
