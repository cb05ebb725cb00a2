//! The identifiers and the resource vector the scheduler and the attempt lifecycle share.
//!
//! These are local, plain types: the protocol crate (`compute-proto`) is written in parallel,
//! and the daemon will map its wire ids onto these (`application_<cluster ts>_<seq>` onto
//! [`AppId`], `appattempt_..._<n>` onto [`AttemptId`], `container_e<epoch>_..._<seq>` onto
//! [`ContainerId`]). Nothing here depends on how they are spelled on the wire.

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

/// A NodeManager, by its membership id (`nodemanager/<id>`).
pub type NodeId = String;

/// A request priority: lower is served first (YARN's rule; MapReduce asks for its AM at 0,
/// failed maps at 5, reduces at 10, maps at 20).
pub type Priority = u32;

/// An application: the `seq` of `application_<cluster ts>_<seq>` (one RM cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(pub u64);

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "application_{:04}", self.0)
    }
}

/// One attempt of an application; attempts are numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId {
    pub app: AppId,
    pub attempt: u32,
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "appattempt_{:04}_{:06}", self.app.0, self.attempt)
    }
}

/// A container: the RM's epoch (its incarnation, so that a restarted RM never reuses an id, as
/// YARN's `container_e<epoch>_...`) and a sequence number the scheduler counts up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId {
    pub epoch: u64,
    pub seq: u64,
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "container_e{}_{:06}", self.epoch, self.seq)
    }
}

/// A resource vector: memory in MiB and virtual cores (YARN's two standard resources).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    pub memory_mb: u64,
    pub vcores: u32,
}

impl Resources {
    pub const ZERO: Resources = Resources { memory_mb: 0, vcores: 0 };

    pub const fn new(memory_mb: u64, vcores: u32) -> Resources {
        Resources { memory_mb, vcores }
    }

    /// Whether `self` fits within `available` in every dimension.
    pub fn fits(self, available: Resources) -> bool {
        self.memory_mb <= available.memory_mb && self.vcores <= available.vcores
    }

    pub fn is_zero(self) -> bool {
        self == Resources::ZERO
    }

    /// `self - other`, or `None` if any dimension would go below zero.
    pub fn checked_sub(self, other: Resources) -> Option<Resources> {
        Some(Resources {
            memory_mb: self.memory_mb.checked_sub(other.memory_mb)?,
            vcores: self.vcores.checked_sub(other.vcores)?,
        })
    }

    /// `self - other`, each dimension floored at zero.
    pub fn saturating_sub(self, other: Resources) -> Resources {
        Resources {
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
            vcores: self.vcores.saturating_sub(other.vcores),
        }
    }

    /// The largest fraction of `total` that `self` uses in any dimension (the dominant share of
    /// DRF, YARN's `DominantResourceCalculator`); 0 for an empty `total` dimension.
    pub fn dominant_share(self, total: Resources) -> f64 {
        let frac = |used: f64, of: f64| if of > 0.0 { used / of } else { 0.0 };
        frac(self.memory_mb as f64, total.memory_mb as f64).max(frac(self.vcores as f64, total.vcores as f64))
    }

    /// `total` scaled by `fraction`, rounded down.
    pub fn scaled(self, fraction: f64) -> Resources {
        Resources {
            memory_mb: (self.memory_mb as f64 * fraction) as u64,
            vcores: (self.vcores as f64 * fraction) as u32,
        }
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources { memory_mb: self.memory_mb + o.memory_mb, vcores: self.vcores + o.vcores }
    }
}

impl AddAssign for Resources {
    fn add_assign(&mut self, o: Resources) {
        *self = *self + o;
    }
}

/// Panics when a dimension would go below zero: subtracting more than was added is a
/// bookkeeping bug, and the scheduler asserts rather than hides it.
impl Sub for Resources {
    type Output = Resources;
    fn sub(self, o: Resources) -> Resources {
        self.checked_sub(o).unwrap_or_else(|| panic!("resources {self} - {o} below zero"))
    }
}

impl SubAssign for Resources {
    fn sub_assign(&mut self, o: Resources) {
        *self = *self - o;
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<memory:{}, vCores:{}>", self.memory_mb, self.vcores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_fits() {
        let a = Resources::new(1024, 1);
        let b = Resources::new(2048, 4);
        assert_eq!(a + b, Resources::new(3072, 5));
        assert_eq!(b - a, Resources::new(1024, 3));
        assert!(a.fits(b));
        assert!(!b.fits(a));
        // Both dimensions must fit: more memory but fewer cores does not.
        assert!(!Resources::new(512, 8).fits(b));
        assert_eq!(a.checked_sub(b), None);
        assert_eq!(a.saturating_sub(b), Resources::ZERO);
        assert_eq!(Resources::new(512, 2).dominant_share(Resources::new(4096, 4)), 0.5);
        assert_eq!(Resources::new(4096, 4).scaled(0.25), Resources::new(1024, 1));
    }

    #[test]
    #[should_panic(expected = "below zero")]
    fn subtracting_too_much_panics() {
        let _ = Resources::new(1, 1) - Resources::new(2, 1);
    }
}
