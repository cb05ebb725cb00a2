//! The failure detector every herd heartbeat uses: silence longer than a timeout means dead, and
//! the timeout adapts — it grows after each false suspicion and decays slowly back to its floor.
//!
//! This crate promises three things. (1) **A floor:** nothing is declared dead before it has
//! been silent for the configured timeout; adapting only ever lengthens it. That is why this is
//! not phi-accrual: with very regular heartbeats, phi crosses its threshold after a silence far
//! shorter than any timeout an operator configured, and "never sooner than the timeout" is a
//! promise herd makes (a 2 s pause of a daemon must not expel it). (2) **Adaptation:** a peer
//! that was suspected (silent for more than a fraction of its timeout) and then spoke again was
//! a false suspicion — a GC pause, a slow disk, a congested link. Each one multiplies the
//! timeout (up to a maximum); the extra decays with a half-life, so a peer that was once slow
//! is not trusted less forever. (3) **Monotonic time only:** every method takes the current
//! [`Instant`] from the caller (the seam that tests drive), and `Instant` is the monotonic
//! clock, so a wall-clock jump forwards or backwards never changes a verdict.
//!
//! Layout: one type, [`AdaptiveTimeout`], a pure state machine (events in, verdicts out).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// The floor: the configured timeout.
    pub base: Duration,
    /// The timeout never grows past this.
    pub max: Duration,
    /// Silence longer than this fraction of the current timeout makes a suspicion.
    pub suspect_fraction: f64,
    /// Each false suspicion multiplies the current timeout by this.
    pub growth: f64,
    /// The growth above the floor halves every `half_life` without a new false suspicion.
    pub half_life: Duration,
}

impl AdaptiveConfig {
    /// Defaults for a timeout `base`: suspicion at half of it, growth x1.5 up to 4x, half-life
    /// 10 minutes (slow: a peer earns trust back over many minutes, not seconds).
    pub fn new(base: Duration) -> AdaptiveConfig {
        AdaptiveConfig { base, max: base * 4, suspect_fraction: 0.5, growth: 1.5, half_life: Duration::from_secs(600) }
    }

    /// A fixed timeout: never grows (ZooKeeper's own behaviour).
    pub fn fixed(base: Duration) -> AdaptiveConfig {
        AdaptiveConfig { growth: 1.0, max: base, ..AdaptiveConfig::new(base) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    /// Silent for longer than the suspicion threshold, not yet for the timeout.
    Suspected,
    /// Silent for longer than the current timeout.
    Dead,
}

#[derive(Debug, Clone)]
pub struct AdaptiveTimeout {
    cfg: AdaptiveConfig,
    last_heard: Instant,
    /// The timeout's growth above the floor when it was last set, and when.
    extra: Duration,
    extra_at: Instant,
    suspected: bool,
    false_suspicions: u64,
}

impl AdaptiveTimeout {
    pub fn new(cfg: AdaptiveConfig, now: Instant) -> AdaptiveTimeout {
        let max = cfg.max.max(cfg.base);
        let cfg = AdaptiveConfig { max, growth: cfg.growth.max(1.0), ..cfg };
        AdaptiveTimeout {
            cfg,
            last_heard: now,
            extra: Duration::ZERO,
            extra_at: now,
            suspected: false,
            false_suspicions: 0,
        }
    }

    pub fn config(&self) -> &AdaptiveConfig {
        &self.cfg
    }

    /// Changes the floor (a session renegotiated its timeout); the growth so far is kept.
    pub fn set_base(&mut self, base: Duration, max: Duration) {
        self.cfg.base = base;
        self.cfg.max = max.max(base);
    }

    /// The timeout now: the floor plus what is left of the growth, never above the maximum.
    pub fn timeout(&self, now: Instant) -> Duration {
        // The common case (never falsely suspected, or a fixed timeout): no decay to compute,
        // which matters because the keeper checks every session on every tick.
        if self.extra.is_zero() {
            return self.cfg.base;
        }
        let halvings =
            now.saturating_duration_since(self.extra_at).as_secs_f64() / self.cfg.half_life.as_secs_f64().max(1e-9);
        let extra = self.extra.mul_f64(0.5f64.powf(halvings));
        (self.cfg.base + extra).min(self.cfg.max)
    }

    /// A heartbeat (any message) arrived. Returns true when it ended a suspicion: a false one,
    /// and the timeout has grown.
    pub fn heard(&mut self, now: Instant) -> bool {
        // Monotonic instants from different threads can arrive out of order; never go back.
        self.last_heard = self.last_heard.max(now);
        if !self.suspected {
            return false;
        }
        self.suspected = false;
        self.false_suspicions += 1;
        let grown = self.timeout(now).mul_f64(self.cfg.growth).min(self.cfg.max);
        self.extra = grown.saturating_sub(self.cfg.base);
        self.extra_at = now;
        true
    }

    /// Restarts the silence from `now` without counting a heartbeat (a new leader takes over
    /// session tracking and cannot know how long anyone was silent before).
    pub fn restart(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
        self.suspected = false;
    }

    pub fn silence(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heard)
    }

    pub fn check(&mut self, now: Instant) -> Verdict {
        let silence = self.silence(now);
        let timeout = self.timeout(now);
        if silence > timeout {
            Verdict::Dead
        } else if silence > timeout.mul_f64(self.cfg.suspect_fraction) {
            self.suspected = true;
            Verdict::Suspected
        } else {
            Verdict::Alive
        }
    }

    pub fn false_suspicions(&self) -> u64 {
        self.false_suspicions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn silence_past_the_floor_is_death_and_never_sooner() {
        let t0 = Instant::now();
        let mut d = AdaptiveTimeout::new(AdaptiveConfig::new(4 * S), t0);
        assert_eq!(d.check(t0 + S), Verdict::Alive);
        assert_eq!(d.check(t0 + 3 * S), Verdict::Suspected);
        assert_eq!(d.check(t0 + 4 * S), Verdict::Suspected, "exactly the timeout is not past it");
        assert_eq!(d.check(t0 + 4 * S + Duration::from_millis(1)), Verdict::Dead);
    }

    #[test]
    fn a_false_suspicion_grows_the_timeout_and_it_decays_back() {
        let t0 = Instant::now();
        let cfg = AdaptiveConfig::new(4 * S);
        let mut d = AdaptiveTimeout::new(cfg, t0);
        assert!(!d.heard(t0 + S), "no suspicion, nothing to learn");
        assert_eq!(d.check(t0 + 4 * S), Verdict::Suspected);
        let t1 = t0 + 4 * S;
        assert!(d.heard(t1));
        assert_eq!(d.false_suspicions(), 1);
        assert_eq!(d.timeout(t1), 6 * S);
        // The same silence that was suspicious is now fine.
        assert_eq!(d.check(t1 + 2 * S), Verdict::Alive);
        assert_eq!(d.check(t1 + 5 * S), Verdict::Suspected);
        assert_eq!(d.check(t1 + 6 * S + Duration::from_millis(1)), Verdict::Dead);
        // One half-life later, half of the growth is left; many later, none.
        let later = t1 + cfg.half_life;
        assert!((d.timeout(later).as_secs_f64() - 5.0).abs() < 1e-6, "{:?}", d.timeout(later));
        assert!((d.timeout(t1 + cfg.half_life * 40).as_secs_f64() - 4.0).abs() < 1e-6);
    }

    #[test]
    fn growth_stops_at_the_maximum() {
        let t0 = Instant::now();
        let mut d = AdaptiveTimeout::new(AdaptiveConfig::new(4 * S), t0);
        let mut t = t0;
        for _ in 0..20 {
            t += d.timeout(t).mul_f64(0.9);
            assert_eq!(d.check(t), Verdict::Suspected);
            assert!(d.heard(t));
        }
        assert_eq!(d.timeout(t), 16 * S);
    }

    #[test]
    fn a_fixed_timeout_never_grows() {
        let t0 = Instant::now();
        let mut d = AdaptiveTimeout::new(AdaptiveConfig::fixed(4 * S), t0);
        assert_eq!(d.check(t0 + 3 * S), Verdict::Suspected);
        d.heard(t0 + 3 * S);
        assert_eq!(d.timeout(t0 + 3 * S), 4 * S);
    }

    #[test]
    fn instants_out_of_order_never_move_the_clock_back() {
        let t0 = Instant::now();
        let mut d = AdaptiveTimeout::new(AdaptiveConfig::new(4 * S), t0 + 2 * S);
        d.heard(t0);
        assert_eq!(d.silence(t0 + 2 * S), Duration::ZERO);
        // A check with an instant before the last heartbeat sees no silence at all.
        assert_eq!(d.check(t0), Verdict::Alive);
    }
}
