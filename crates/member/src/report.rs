//! How a daemon hands its keeper session to its supervisor, so that the supervisor can end the
//! session the moment the daemon dies (fail-stop notice), instead of the keeper waiting out the
//! session timeout.
//!
//! The supervisor starts the daemon with one end of a pipe inherited as a file descriptor and
//! names it in [`ENV_FD`]. Whenever the daemon's session changes (first connect, a new
//! incarnation after expiry) it writes one [`SessionReport`] line. The password travels only
//! over that private pipe: proving knowledge of it is what authorizes the supervisor to end the
//! session (it resumes the session with id and password and sends closeSession, the ZooKeeper
//! protocol's own way to end a session, which any ZooKeeper server accepts). Nobody else holds
//! the password, so nobody else can end that session.
//!
//! Line format (ASCII): `session 0x<id hex> <password hex> <connect string>` and
//! `closed 0x<id hex>` when the daemon ended the session itself.

use std::io::Write;
use std::os::fd::FromRawFd;

/// The environment variable that names the inherited pipe's file descriptor.
pub const ENV_FD: &str = "HERD_SUPERVISOR_FD";
/// A line longer than this is not a report (bounds what the supervisor reads).
pub const LINE_MAX: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The daemon holds this session now.
    Session(SessionReport),
    /// The daemon closed this session itself; nothing is left to end.
    Closed { session_id: i64 },
}

#[derive(Clone, PartialEq, Eq)]
pub struct SessionReport {
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// The keeper connect string the session lives on (`host:port,host:port`).
    pub hosts: String,
}

impl std::fmt::Debug for SessionReport {
    // Never prints the password: it is the capability to end the session.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionReport")
            .field("session_id", &format_args!("0x{:x}", self.session_id))
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad supervisor report line: {0}")]
pub struct ReportError(pub &'static str);

impl Report {
    pub fn to_line(&self) -> String {
        match self {
            Report::Session(s) => {
                let hex: String = s.passwd.iter().map(|b| format!("{b:02x}")).collect();
                format!("session 0x{:x} {hex} {}\n", s.session_id, s.hosts)
            }
            Report::Closed { session_id } => format!("closed 0x{session_id:x}\n"),
        }
    }

    pub fn parse(line: &str) -> Result<Report, ReportError> {
        if line.len() > LINE_MAX {
            return Err(ReportError("line too long"));
        }
        let mut words = line.split_ascii_whitespace();
        let kind = words.next().ok_or(ReportError("empty line"))?;
        let sid = words.next().ok_or(ReportError("no session id"))?;
        let sid = sid.strip_prefix("0x").ok_or(ReportError("session id is not 0x-prefixed"))?;
        let session_id = u64::from_str_radix(sid, 16).map_err(|_| ReportError("session id is not hex"))? as i64;
        let report = match kind {
            "session" => {
                let hex = words.next().ok_or(ReportError("no password"))?;
                if hex.len() % 2 != 0 || hex.len() > 128 {
                    return Err(ReportError("password is not whole bytes of hex"));
                }
                let passwd = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| ReportError("password is not hex"))?;
                let hosts = words.next().ok_or(ReportError("no connect string"))?.to_owned();
                Report::Session(SessionReport { session_id, passwd, hosts })
            }
            "closed" => Report::Closed { session_id },
            _ => return Err(ReportError("unknown kind")),
        };
        if words.next().is_some() {
            return Err(ReportError("trailing words"));
        }
        Ok(report)
    }
}

/// The daemon's end of the pipe, if it runs under a supervisor.
pub struct Reporter {
    pipe: std::fs::File,
}

impl Reporter {
    /// Takes the pipe named by [`ENV_FD`], once per process: the descriptor is marked
    /// close-on-exec so that the daemon's own children never inherit the capability, and the
    /// variable is removed.
    pub fn from_env() -> Option<Reporter> {
        let fd: i32 = std::env::var(ENV_FD).ok()?.parse().ok()?;
        // SAFETY: the supervisor leaves this descriptor open for us and nothing else in the
        // process uses it; fcntl on a bad descriptor just fails.
        unsafe {
            if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) != 0 {
                return None;
            }
            // Safe at start-up only (no other thread reads the environment yet); a second
            // call finds nothing.
            std::env::remove_var(ENV_FD);
            Some(Reporter { pipe: std::fs::File::from_raw_fd(fd) })
        }
    }

    /// Writes one report; an error is logged and otherwise ignored (the session then ends by
    /// its timeout, as it would without a supervisor).
    pub fn send(&mut self, report: &Report) {
        if let Err(e) = self.pipe.write_all(report.to_line().as_bytes()) {
            tracing::warn!("could not report the session to the supervisor: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let s = Report::Session(SessionReport {
            session_id: -0x0100_0000_0000_0001,
            passwd: (0..16).collect(),
            hosts: "127.0.0.1:2181,127.0.0.1:2182".into(),
        });
        assert_eq!(Report::parse(&s.to_line()).unwrap(), s);
        let c = Report::Closed { session_id: 0x42 };
        assert_eq!(Report::parse(&c.to_line()).unwrap(), c);
    }

    #[test]
    fn bad_lines_are_refused() {
        for bad in [
            "",
            "session",
            "session 42 00 h:1",
            "session 0xzz 00 h:1",
            "session 0x1 0 h:1",
            "session 0x1 0g h:1",
            "session 0x1 00",
            "session 0x1 00 h:1 extra",
            "opened 0x1",
        ] {
            assert!(Report::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let s = SessionReport { session_id: 1, passwd: vec![0xab; 16], hosts: "h:1".into() };
        assert!(!format!("{s:?}").contains("ab"));
    }
}
