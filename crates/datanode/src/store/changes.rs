//! `Changes`: the store's change feed, what the DataNode daemon turns into incremental block
//! reports.
//!
//! The store records the id (and generation stamp) of every replica that was created in
//! `rbw/`, reopened for append, finalized or deleted; the daemon takes the whole set at once
//! and asks the store what each replica is now (`Store::get`: rbw = receiving, finalized =
//! received, none = deleted, at the recorded stamp). A set and not a log: a replica that
//! changed twice before the daemon looked is reported once, as it is now, which is all the
//! NameNode needs.
//!
//! Recording never blocks on the daemon (a writer only takes a short lock), and the set is
//! bounded: past [`MAX_PENDING`] ids it is dropped and marked `overflow`, and the daemon sends
//! a full block report instead. It has one consumer, the daemon's service thread:
//! [`Changes::wait`] consumes a [`Changes::wake`], which the daemon uses to wake that thread
//! for other reasons (a scanner finding, a membership change, shutdown).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::lock;

/// Most changed ids kept before the feed gives up on them and asks for a full report.
pub const MAX_PENDING: usize = 1 << 16;

#[derive(Debug, Default)]
struct Pending {
    /// id -> generation stamp of the replica when it last changed (a deleted one's last stamp).
    ids: HashMap<u64, u64>,
    overflow: bool,
    woken: bool,
}

/// What [`Changes::take`] hands over.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Taken {
    /// (id, generation stamp at the change), sorted by id.
    pub ids: Vec<(u64, u64)>,
    /// Changes were dropped: only a full block report says what the store holds.
    pub overflow: bool,
}

impl Taken {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && !self.overflow
    }
}

/// The change feed of one store (see the module comment).
#[derive(Debug, Default)]
pub struct Changes {
    /// std Mutex: held for a map insert or a swap, never across I/O.
    pending: Mutex<Pending>,
    cond: Condvar,
}

impl Changes {
    /// Replica `id`, now or last at stamp `gs`, changed.
    pub(crate) fn record(&self, id: u64, gs: u64) {
        let mut p = lock(&self.pending);
        if !p.overflow {
            if p.ids.len() >= MAX_PENDING && !p.ids.contains_key(&id) {
                p.ids = HashMap::new();
                p.overflow = true;
            } else {
                p.ids.insert(id, gs);
            }
        }
        drop(p);
        self.cond.notify_all();
    }

    /// Wakes a [`Changes::wait`] even though nothing changed.
    pub fn wake(&self) {
        lock(&self.pending).woken = true;
        self.cond.notify_all();
    }

    /// Waits until a change is pending, [`Changes::wake`] was called since the last wait, or
    /// `deadline` passes. Returns at once if any of these already holds.
    pub fn wait(&self, deadline: Instant) {
        let mut p = lock(&self.pending);
        loop {
            if p.woken || p.overflow || !p.ids.is_empty() {
                p.woken = false;
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            p = match self.cond.wait_timeout(p, deadline - now) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Takes every pending change (and clears the overflow mark).
    pub fn take(&self) -> Taken {
        let mut p = lock(&self.pending);
        let ids = std::mem::take(&mut p.ids);
        let overflow = std::mem::replace(&mut p.overflow, false);
        drop(p);
        let mut ids: Vec<(u64, u64)> = ids.into_iter().collect();
        ids.sort_unstable();
        Taken { ids, overflow }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn changes_are_taken_once_and_deduplicated() {
        let c = Changes::default();
        assert!(c.take().is_empty());
        c.record(7, 1);
        c.record(3, 2);
        c.record(7, 4);
        assert_eq!(c.take(), Taken { ids: vec![(3, 2), (7, 4)], overflow: false });
        assert!(c.take().is_empty(), "a take empties the feed");
    }

    #[test]
    fn too_many_changes_turn_into_overflow() {
        let c = Changes::default();
        for id in 0..MAX_PENDING as u64 {
            c.record(id, 1);
        }
        c.record(0, 2); // an id already pending still fits
        assert!(!c.take().overflow);
        for id in 0..=MAX_PENDING as u64 {
            c.record(id, 1);
        }
        let t = c.take();
        assert!(t.overflow && t.ids.is_empty(), "{} ids kept", t.ids.len());
        assert!(c.take().is_empty(), "overflow is cleared by the take that reports it");
    }

    #[test]
    fn a_waiter_wakes_for_a_change_and_for_wake() {
        let c = Arc::new(Changes::default());
        // Nothing pending and a deadline in the past: returns at once.
        c.wait(Instant::now());
        let far = Instant::now() + Duration::from_secs(600);
        let waiter = {
            let c = c.clone();
            std::thread::spawn(move || {
                c.wait(far);
                c.take()
            })
        };
        c.record(9, 3);
        // Returns long before `far` (a hang here would time the test out, not pass it).
        assert_eq!(waiter.join().expect("waiter").ids, vec![(9, 3)]);

        let waiter = {
            let c = c.clone();
            std::thread::spawn(move || c.wait(far))
        };
        c.wake();
        waiter.join().expect("woken waiter");
        // The wake was consumed by that wait, so a wait with a past deadline finds nothing.
        c.wait(Instant::now());
        assert!(c.take().is_empty());
    }
}
