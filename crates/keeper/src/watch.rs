//! Watches, held per connection as ZooKeeper holds them per `ServerCnxn`: a connection's watches
//! end with it, and a reconnecting client re-registers them with setWatches.

use crate::path;
use keeper_proto::EventType;
use std::collections::{HashMap, HashSet};

pub type ConnId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchKind {
    /// getData and exists watches (one-shot).
    Data,
    /// getChildren watches (one-shot).
    Child,
    /// addWatch PERSISTENT: every event on the path, until removed.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE: every event but child-changed, on the path and below.
    Recursive,
}

const KINDS: [WatchKind; 4] = [WatchKind::Data, WatchKind::Child, WatchKind::Persistent, WatchKind::Recursive];

#[derive(Default)]
pub struct Watches {
    tables: [HashMap<String, HashSet<ConnId>>; 4],
    by_conn: HashMap<ConnId, HashSet<(WatchKind, String)>>,
}

fn slot(k: WatchKind) -> usize {
    k as usize
}

impl Watches {
    pub fn add(&mut self, conn: ConnId, kind: WatchKind, p: &str) {
        self.tables[slot(kind)].entry(p.to_owned()).or_default().insert(conn);
        self.by_conn.entry(conn).or_default().insert((kind, p.to_owned()));
    }

    pub fn has(&self, conn: ConnId, kind: WatchKind, p: &str) -> bool {
        self.tables[slot(kind)].get(p).is_some_and(|s| s.contains(&conn))
    }

    pub fn remove(&mut self, conn: ConnId, kind: WatchKind, p: &str) -> bool {
        let t = &mut self.tables[slot(kind)];
        let Some(set) = t.get_mut(p) else { return false };
        let removed = set.remove(&conn);
        if set.is_empty() {
            t.remove(p);
        }
        if let Some(mine) = self.by_conn.get_mut(&conn) {
            mine.remove(&(kind, p.to_owned()));
        }
        removed
    }

    pub fn remove_conn(&mut self, conn: ConnId) {
        for (kind, p) in self.by_conn.remove(&conn).unwrap_or_default() {
            let t = &mut self.tables[slot(kind)];
            if let Some(set) = t.get_mut(&p) {
                set.remove(&conn);
                if set.is_empty() {
                    t.remove(&p);
                }
            }
        }
    }

    /// Fires `event` on `p`: one-shot watches that match are consumed. Returns each connection
    /// to notify once, in a stable order.
    pub fn trigger(&mut self, p: &str, event: EventType) -> Vec<ConnId> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut take = |this: &mut Self, kind: WatchKind, at: &str, out: &mut Vec<ConnId>| {
            let one_shot = matches!(kind, WatchKind::Data | WatchKind::Child);
            let conns: Vec<ConnId> = match this.tables[slot(kind)].get(at) {
                Some(s) => {
                    let mut v: Vec<ConnId> = s.iter().copied().collect();
                    v.sort_unstable();
                    v
                }
                None => return,
            };
            for c in conns {
                if one_shot {
                    this.remove(c, kind, at);
                }
                if seen.insert(c) {
                    out.push(c);
                }
            }
        };
        match event {
            EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted => {
                take(self, WatchKind::Data, p, &mut out);
                if event == EventType::NodeDeleted {
                    take(self, WatchKind::Child, p, &mut out);
                }
                take(self, WatchKind::Persistent, p, &mut out);
                let mut at = p.to_owned();
                loop {
                    take(self, WatchKind::Recursive, &at, &mut out);
                    if at == "/" {
                        break;
                    }
                    at = path::parent(&at).to_owned();
                }
            }
            EventType::NodeChildrenChanged => {
                take(self, WatchKind::Child, p, &mut out);
                take(self, WatchKind::Persistent, p, &mut out);
            }
            _ => {}
        }
        out
    }

    /// Total watches and distinct watched paths, for mntr and wchs.
    pub fn counts(&self) -> (usize, usize) {
        let total = self.by_conn.values().map(|s| s.len()).sum();
        let mut paths = HashSet::new();
        for t in &self.tables {
            paths.extend(t.keys());
        }
        (total, paths.len())
    }

    pub fn connections_watching(&self) -> usize {
        self.by_conn.values().filter(|s| !s.is_empty()).count()
    }

    pub fn kinds() -> &'static [WatchKind] {
        &KINDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_persistent_and_recursive() {
        let mut w = Watches::default();
        w.add(1, WatchKind::Data, "/a");
        w.add(2, WatchKind::Persistent, "/a");
        w.add(3, WatchKind::Recursive, "/");
        w.add(1, WatchKind::Child, "/a");
        assert_eq!(w.trigger("/a", EventType::NodeDataChanged), vec![1, 2, 3]);
        assert_eq!(w.trigger("/a", EventType::NodeDataChanged), vec![2, 3]);
        // Recursive watches never see child-changed events.
        assert_eq!(w.trigger("/a", EventType::NodeChildrenChanged), vec![1, 2]);
        assert_eq!(w.trigger("/a/b", EventType::NodeCreated), vec![3]);
        w.add(1, WatchKind::Data, "/a");
        w.add(1, WatchKind::Child, "/a");
        // One event per connection even with two matching watches.
        assert_eq!(w.trigger("/a", EventType::NodeDeleted), vec![1, 2, 3]);
        assert!(!w.has(1, WatchKind::Child, "/a"));
        w.remove_conn(2);
        w.remove_conn(3);
        assert_eq!(w.counts(), (0, 0));
    }
}
