//! Fencing: a request carries the epoch of whoever sent it, and a stale epoch is refused.
//!
//! A master's epoch is its incarnation (the czxid of its member znode), so a master that was
//! expelled and rejoined, or replaced by another, has a higher epoch than before. A worker keeps
//! the highest master epoch it has seen — from the requests themselves and from its view of the
//! master group — in a [`Fence`], and refuses anything lower: an old master that does not yet
//! know it was replaced can no longer give orders. In the other direction a master checks a
//! worker's incarnation against its current view ([`crate::view::View::admit`]).

use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stale epoch 0x{got:x}: the current one is 0x{current:x}")]
pub struct StaleEpoch {
    pub got: i64,
    pub current: i64,
}

/// The highest epoch seen of one master group; shared by a worker's request handlers.
#[derive(Debug, Default)]
pub struct Fence {
    highest: AtomicI64,
}

impl Fence {
    pub fn new() -> Fence {
        Fence::default()
    }

    pub fn current(&self) -> i64 {
        self.highest.load(Ordering::Acquire)
    }

    /// A request at `epoch`: admitted (and remembered, if it is the newest) or refused because
    /// a newer epoch was seen. Equal epochs are the same master and are admitted.
    pub fn admit(&self, epoch: i64) -> Result<(), StaleEpoch> {
        let before = self.highest.fetch_max(epoch, Ordering::AcqRel);
        if epoch < before {
            Err(StaleEpoch { got: epoch, current: before })
        } else {
            Ok(())
        }
    }

    /// The master group's view showed a master at `epoch`: from now on nothing older is
    /// admitted, even before the new master has said anything.
    pub fn advance(&self, epoch: i64) {
        self.highest.fetch_max(epoch, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_epochs_are_refused_equal_and_newer_admitted() {
        let f = Fence::new();
        assert_eq!(f.admit(5), Ok(()));
        assert_eq!(f.admit(5), Ok(()));
        assert_eq!(f.admit(4), Err(StaleEpoch { got: 4, current: 5 }));
        assert_eq!(f.admit(9), Ok(()));
        assert_eq!(f.admit(5), Err(StaleEpoch { got: 5, current: 9 }));
        assert_eq!(f.current(), 9);
    }

    #[test]
    fn a_view_advances_the_fence_before_the_new_master_speaks() {
        let f = Fence::new();
        f.admit(3).unwrap();
        f.advance(7);
        assert!(f.admit(3).is_err());
        f.advance(6);
        assert_eq!(f.current(), 7, "an older view never lowers the fence");
        assert_eq!(f.admit(7), Ok(()));
    }
}
