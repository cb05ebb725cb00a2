//! Ending a dead child's session: resume it with its id and password (the capability the child
//! handed over) and send closeSession, through the member crate's session client, which already
//! tries the connect string's hosts in turn and answers `Expired` for a session that is gone.

use member::client::{ClientConfig, Error, Session, State};
use member::report::SessionReport;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Closed through the keeper at this address.
    Closed(Option<SocketAddr>),
    /// A keeper answered that the session no longer exists.
    AlreadyGone,
}

/// Ends the session within `bound`, or says why not. The resume asks for `bound` as its timeout:
/// should the close itself then fail, the session expires that much sooner.
pub async fn end_session(report: &SessionReport, bound: Duration) -> Result<Ended, String> {
    let mut cfg = ClientConfig::parse(&report.hosts).map_err(|e| format!("connect string {:?}: {e}", report.hosts))?;
    cfg.session_timeout = bound;
    cfg.connect_timeout = cfg.connect_timeout.min(bound);
    let work = async {
        let session = match Session::resume(cfg, report.session_id, report.passwd.clone()).await {
            Ok(s) => s,
            Err(Error::Expired) => return Ok(Ended::AlreadyGone),
            Err(e) => return Err(e.to_string()),
        };
        let at = match *session.state().borrow() {
            State::Connected { server } => Some(server),
            _ => None,
        };
        match session.close().await {
            Ok(()) | Err(Error::Expired) => Ok(Ended::Closed(at)),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(bound, work).await.map_err(|_| format!("gave up after {bound:?}"))?
}
