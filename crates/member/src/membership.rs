//! A daemon's own membership: join, notice being expelled, rejoin as a new incarnation.
//!
//! [`Membership::start`] runs one task that holds a keeper session and the daemon's member
//! znode. Its [`Status`] tells the daemon whether it may act: only while `Member`. The task
//! declares the daemon expelled when its znode is deleted, its session expires or is closed
//! by someone else (its supervisor, an operator), or it has been disconnected from every keeper
//! for longer than the session timeout (by then the keeper will have expired it; acting on
//! would be acting as a dead member). It then drops that session and joins again with a new
//! one: a new incarnation, which fencing tells apart from the old.

use crate::client::{ClientConfig, Session, State};
use crate::report::{Report, Reporter, SessionReport};
use crate::view::{self, MemberError};
use keeper_proto::codes::EventType;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct MembershipConfig {
    pub client: ClientConfig,
    pub group: String,
    pub id: String,
    pub payload: Vec<u8>,
    /// herd's session options, sent as `addAuth("herd", ...)` after connecting; None for
    /// Apache ZooKeeper, which refuses the `herd` scheme.
    pub herd_options: Option<HerdOptions>,
    /// How long a join waits for an older incarnation of the same id to end.
    pub join_wait_max: Duration,
}

/// What a herd keeper is told about the session (see ARCHITECTURE.md, "How each failure is
/// noticed").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HerdOptions {
    /// Socket-close fast expiry with this grace (None: off).
    pub fast_expiry: Option<Duration>,
    /// Declare the client's ping interval (`ClientConfig::ping_interval`) as its heartbeat, so
    /// that the session timeout counts from the first ping that did not come.
    pub declare_heartbeat: bool,
}

impl HerdOptions {
    /// The auth text, e.g. `fast-expiry=1000,heartbeat=100`; None when there is nothing to say.
    pub fn auth_text(&self, ping_interval: Option<Duration>) -> Option<String> {
        let mut opts = Vec::new();
        if let Some(g) = self.fast_expiry {
            opts.push(format!("fast-expiry={}", g.as_millis().max(1)));
        }
        if let (true, Some(p)) = (self.declare_heartbeat, ping_interval) {
            opts.push(format!("heartbeat={}", p.as_millis()));
        }
        (!opts.is_empty()).then(|| opts.join(","))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not a member yet (the first join).
    Joining,
    /// Declared dead as `incarnation`, and not a member again yet (it is rejoining).
    Member {
        incarnation: i64,
        session: i64,
    },
    Expelled {
        incarnation: i64,
        why: String,
    },
    Left,
}

pub struct Membership {
    status: watch::Receiver<Status>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Membership {
    /// Starts joining; `reporter` hands each new session to the supervisor, if there is one.
    pub fn start(cfg: MembershipConfig, reporter: Option<Reporter>) -> Result<Membership, MemberError> {
        view::validate_name(&cfg.group)?;
        view::validate_name(&cfg.id)?;
        let (tx, status) = watch::channel(Status::Joining);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(cfg, reporter, tx, stop.clone()));
        Ok(Membership { status, stop, task })
    }

    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The current incarnation, while a member.
    pub fn incarnation(&self) -> Option<i64> {
        match *self.status.borrow() {
            Status::Member { incarnation, .. } => Some(incarnation),
            _ => None,
        }
    }

    /// Leaves cleanly: the session is closed, so the member znode goes at once.
    pub async fn leave(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

struct Ctx {
    cfg: MembershipConfig,
    reporter: Option<Reporter>,
    status: watch::Sender<Status>,
    stop: CancellationToken,
}

impl Ctx {
    fn report(&mut self, r: Report) {
        if let Some(rep) = self.reporter.as_mut() {
            rep.send(&r);
        }
    }

    /// Closes the session (a clean leave) and tells the supervisor there is nothing to end.
    async fn close(&mut self, session: Session) {
        let id = session.id();
        match tokio::time::timeout(Duration::from_secs(5), session.close()).await {
            Ok(Ok(())) => self.report(Report::Closed { session_id: id }),
            Ok(Err(e)) => tracing::warn!("closing session 0x{id:x}: {e}"),
            Err(_) => tracing::warn!("closing session 0x{id:x}: no answer within 5 s"),
        }
    }

    /// Sleeps unless stopped; false when stopped.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}

async fn run(
    cfg: MembershipConfig,
    reporter: Option<Reporter>,
    status: watch::Sender<Status>,
    stop: CancellationToken,
) {
    let mut cx = Ctx { cfg, reporter, status, stop };
    let mut backoff = Duration::from_millis(100);
    loop {
        // An expelled daemon stays `Expelled` (with the reason) until it is a member again, so
        // that whoever looks at the status sees why it is not acting.
        cx.status.send_if_modified(|s| {
            let joining = !matches!(s, Status::Expelled { .. } | Status::Joining);
            if joining {
                *s = Status::Joining;
            }
            joining
        });
        let session = tokio::select! {
            _ = cx.stop.cancelled() => break,
            s = Session::connect(cx.cfg.client.clone()) => s,
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("{}/{}: no keeper session: {e}", cx.cfg.group, cx.cfg.id);
                if !cx.pause(backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        cx.report(Report::Session(SessionReport {
            session_id: session.id(),
            passwd: session.passwd(),
            hosts: session.hosts(),
        }));
        match serve(&mut cx, &session).await {
            Served::Stopped => {
                cx.close(session).await;
                break;
            }
            Served::Failed(e) => {
                tracing::warn!("{}/{}: joining failed: {e}", cx.cfg.group, cx.cfg.id);
                cx.close(session).await;
                if !cx.pause(backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Served::Expelled { incarnation, why } => {
                tracing::warn!(
                    "{}/{}: expelled as incarnation 0x{incarnation:x}: {why}; rejoining as a new incarnation",
                    cx.cfg.group,
                    cx.cfg.id
                );
                let _ = cx.status.send(Status::Expelled { incarnation, why });
                backoff = Duration::from_millis(100);
                // The session is dropped, not closed: it is gone already, or unreachable.
                drop(session);
            }
        }
    }
    let _ = cx.status.send(Status::Left);
}

enum Served {
    Stopped,
    Failed(MemberError),
    Expelled { incarnation: i64, why: String },
}

/// Joins with `session` and holds the membership until it ends.
async fn serve(cx: &mut Ctx, session: &Session) -> Served {
    let Some(mut events) = session.take_events() else {
        return Served::Failed(MemberError::Client(crate::client::Error::Closed));
    };
    let opts = cx.cfg.herd_options.and_then(|o| o.auth_text(cx.cfg.client.ping_interval));
    if let Some(opts) = opts {
        if let Err(e) = session.add_auth("herd", opts.as_bytes()).await {
            return Served::Failed(e.into());
        }
    }
    let joined = tokio::select! {
        _ = cx.stop.cancelled() => return Served::Stopped,
        j = view::join(session, &cx.cfg.group, &cx.cfg.id, &cx.cfg.payload, cx.cfg.join_wait_max) => j,
    };
    let joined = match joined {
        Ok(j) => j,
        Err(e) => return Served::Failed(e),
    };
    let incarnation = joined.incarnation;
    tracing::info!("{}/{}: member as incarnation 0x{incarnation:x}", cx.cfg.group, cx.cfg.id);
    let _ = cx.status.send(Status::Member { incarnation, session: session.id() });
    let expelled = |why: &str| Served::Expelled { incarnation, why: why.to_owned() };
    // Watch our own znode: a delete by anyone ends the membership.
    match session.exists(&joined.path, true).await {
        Ok(Some(_)) => {}
        Ok(None) => return expelled("its member znode is gone"),
        Err(e) => return Served::Failed(e.into()),
    }
    let mut state = session.state();
    let mut deadline: Option<Instant> = None;
    loop {
        let wait_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cx.stop.cancelled() => return Served::Stopped,
            ev = events.recv() => match ev {
                Some(ev) if ev.path == joined.path && ev.kind == EventType::NodeDeleted => {
                    return expelled("its member znode was deleted");
                }
                Some(_) => {}
                None => return expelled("its session ended"),
            },
            changed = state.changed() => {
                if changed.is_err() {
                    return expelled("its session ended");
                }
                let now = state.borrow_and_update().clone();
                match now {
                    State::Connected { .. } => {
                        deadline = None;
                        // Re-check (and re-watch) after a reconnect: the znode may have gone
                        // while we were away.
                        match session.exists(&joined.path, true).await {
                            Ok(Some(s)) if s.czxid == incarnation => {}
                            Ok(_) => return expelled("its member znode is gone"),
                            Err(_) => {}
                        }
                    }
                    State::Disconnected { since } => {
                        deadline = Some(Instant::from_std(since) + session.timeout());
                    }
                    State::Expired => return expelled("its session expired"),
                    State::Closed => return expelled("its session was closed"),
                }
            }
            _ = wait_deadline => {
                return expelled("it was disconnected from every keeper for longer than its session timeout");
            }
        }
    }
}
