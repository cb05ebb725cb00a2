//! Membership views over the keeper: `join(group, id, payload)` and `watch(group)`.
//!
//! A member is an ephemeral znode `/herd/members/<group>/<id>` whose data is the member's
//! payload; its incarnation is the znode's czxid (unique and growing over the cluster's whole
//! history). A view of a group is `(epoch, members)`, the epoch being the group znode's pzxid,
//! which moves on every child created or deleted. The contract is in ARCHITECTURE.md
//! ("Failure detection and membership").

use crate::client::{self, ClientConfig, Session, State, WatchEvent};
use crate::fence::StaleEpoch;
use keeper_proto::codes::{CreateMode, ErrorCode, EventType, Perms};
use keeper_proto::{Acl, Id};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Where groups live.
pub const ROOT: &str = "/herd/members";
/// Longest group or member id.
pub const NAME_MAX: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error(
        "bad member or group name {0:?}: a non-empty path segment without '/', not '.' or '..', at most 255 bytes"
    )]
    BadName(String),
    #[error("member {0} is still held by another live session after {1:?}")]
    IdHeld(String, Duration),
    #[error(transparent)]
    Client(#[from] client::Error),
}

/// Checks a group or member id: one znode path segment.
pub fn validate_name(s: &str) -> Result<(), MemberError> {
    let ok = !s.is_empty()
        && s.len() <= NAME_MAX
        && s != "."
        && s != ".."
        && s != "zookeeper"
        && !s.chars().any(|c| c == '/' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(MemberError::BadName(s.to_owned()))
    }
}

pub fn group_path(group: &str) -> String {
    format!("{ROOT}/{group}")
}

pub fn member_path(group: &str, id: &str) -> String {
    format!("{ROOT}/{group}/{id}")
}

fn open_acl() -> Vec<Acl> {
    vec![Acl { perms: Perms::ALL, id: Id { scheme: "world".into(), id: "anyone".into() } }]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The czxid of the member's znode.
    pub incarnation: i64,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub group: String,
    /// The group znode's pzxid: grows with every join and every departure.
    pub epoch: i64,
    pub members: BTreeMap<String, MemberInfo>,
}

impl View {
    /// A request from member `id` at `incarnation`: admitted only if that is the member's
    /// current incarnation in this view. An expelled member (absent, or present with a newer
    /// incarnation after it rejoined) is refused.
    pub fn admit(&self, id: &str, incarnation: i64) -> Result<(), StaleEpoch> {
        match self.members.get(id) {
            Some(m) if m.incarnation == incarnation => Ok(()),
            Some(m) => Err(StaleEpoch { got: incarnation, current: m.incarnation }),
            None => Err(StaleEpoch { got: incarnation, current: 0 }),
        }
    }

    /// The newest incarnation in the group: a master group's epoch for fencing.
    pub fn newest_incarnation(&self) -> Option<i64> {
        self.members.values().map(|m| m.incarnation).max()
    }
}

/// Creates `path` and its missing ancestors as persistent nodes.
pub async fn ensure_path(session: &Session, path: &str) -> Result<(), client::Error> {
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        match session.create(&at, b"", open_acl(), CreateMode::Persistent).await {
            Ok(_) | Err(client::Error::Keeper(ErrorCode::NodeExists)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A member znode this session created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub path: String,
    pub incarnation: i64,
}

/// Registers `id` in `group` with this session. If an older incarnation still holds the id
/// (its session has not ended yet), waits up to `wait_max` for it to go: never two live
/// members with one id. Safe to retry after ConnectionLoss: a znode this session already owns
/// is taken as joined.
pub async fn join(
    session: &Session,
    group: &str,
    id: &str,
    payload: &[u8],
    wait_max: Duration,
) -> Result<Joined, MemberError> {
    validate_name(group)?;
    validate_name(id)?;
    ensure_path(session, &group_path(group)).await?;
    let path = member_path(group, id);
    let t0 = Instant::now();
    loop {
        match session.create(&path, payload, open_acl(), CreateMode::Ephemeral).await {
            Ok((_, stat)) => return Ok(Joined { path, incarnation: stat.czxid }),
            Err(client::Error::Keeper(ErrorCode::NodeExists)) => {}
            Err(e) => return Err(e.into()),
        }
        // Held: by this session (a create whose reply was lost), or by an older one.
        match session.exists(&path, false).await? {
            Some(stat) if stat.ephemeral_owner == session.id() => {
                return Ok(Joined { path, incarnation: stat.czxid });
            }
            Some(_) if t0.elapsed() >= wait_max => return Err(MemberError::IdHeld(path, wait_max)),
            Some(stat) => {
                tracing::info!("{path} is still held by session 0x{:x}; waiting for it to end", stat.ephemeral_owner);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None => {}
        }
    }
}

/// Reads a group's current view; with `watch`, also sets a child watch on the group.
pub async fn read_view(session: &Session, group: &str, watch: bool) -> Result<View, client::Error> {
    let gp = group_path(group);
    let (children, stat) = session.get_children2(&gp, watch).await?;
    let mut members = BTreeMap::new();
    for id in children {
        match session.get_data(&format!("{gp}/{id}"), false).await {
            Ok((payload, s)) => {
                members.insert(id, MemberInfo { incarnation: s.czxid, payload });
            }
            // Left between the listing and the read: the next view will not have it.
            Err(client::Error::Keeper(ErrorCode::NoNode)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(View { group: group.to_owned(), epoch: stat.pzxid, members })
}

/// Follows one group: [`Watcher::next`] returns each view whose epoch is newer than the last
/// one returned. It keeps its own session and opens a new one if that expires, so it never
/// gives up; errors are logged and retried after a short pause.
pub struct Watcher {
    cfg: ClientConfig,
    group: String,
    session: Option<(Session, mpsc::Receiver<WatchEvent>)>,
    last_epoch: i64,
}

impl Watcher {
    pub fn new(cfg: ClientConfig, group: &str) -> Result<Watcher, MemberError> {
        validate_name(group)?;
        Ok(Watcher { cfg, group: group.to_owned(), session: None, last_epoch: i64::MIN })
    }

    /// The session the watcher reads through, once it has one.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref().map(|(s, _)| s)
    }

    pub async fn next(&mut self) -> View {
        const PAUSE: Duration = Duration::from_millis(100);
        loop {
            if self.session.is_none() {
                match Session::connect(self.cfg.clone()).await {
                    Ok(s) => {
                        let Some(events) = s.take_events() else {
                            tracing::warn!("a new session had no event channel");
                            tokio::time::sleep(PAUSE).await;
                            continue;
                        };
                        if let Err(e) = ensure_path(&s, &group_path(&self.group)).await {
                            tracing::warn!("watching {}: {e}", self.group);
                        }
                        self.session = Some((s, events));
                    }
                    Err(e) => {
                        tracing::warn!("watching {}: no keeper session: {e}", self.group);
                        tokio::time::sleep(PAUSE).await;
                        continue;
                    }
                }
            }
            let Some((session, events)) = self.session.as_mut() else { continue };
            match read_view(session, &self.group, true).await {
                Ok(v) if v.epoch > self.last_epoch => {
                    self.last_epoch = v.epoch;
                    return v;
                }
                Ok(_) => {}
                Err(client::Error::Expired | client::Error::Closed) => {
                    self.session = None;
                    continue;
                }
                Err(e) => {
                    tracing::debug!("reading view of {}: {e}", self.group);
                    tokio::time::sleep(PAUSE).await;
                    continue;
                }
            }
            // Wait for the child watch, or for a reconnect (after which the group is read
            // again, whatever happened while disconnected).
            let mut state = session.state();
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Some(WatchEvent { kind: EventType::NodeChildrenChanged | EventType::NodeDeleted, .. }) => break,
                        Some(_) => continue,
                        None => {
                            self.session = None;
                            break;
                        }
                    },
                    changed = state.changed() => {
                        if changed.is_err() {
                            self.session = None;
                            break;
                        }
                        match *state.borrow_and_update() {
                            State::Connected { .. } => break,
                            State::Disconnected { .. } => continue,
                            State::Expired | State::Closed => {
                                self.session = None;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_path_segment() {
        for ok in ["datanode", "dn-1", "127.0.0.1:9866", "a.b"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "x\n", "zookeeper", &"x".repeat(256)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_view_admits_only_current_incarnations() {
        let mut members = BTreeMap::new();
        members.insert("a".to_owned(), MemberInfo { incarnation: 10, payload: vec![] });
        members.insert("b".to_owned(), MemberInfo { incarnation: 12, payload: vec![] });
        let v = View { group: "g".into(), epoch: 12, members };
        assert_eq!(v.admit("a", 10), Ok(()));
        assert_eq!(v.admit("a", 7), Err(StaleEpoch { got: 7, current: 10 }));
        assert_eq!(v.admit("c", 3), Err(StaleEpoch { got: 3, current: 0 }));
        assert_eq!(v.newest_incarnation(), Some(12));
    }
}
