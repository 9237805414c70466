//! Decay: how many freed pages may stay unpurged, as a function of time.
//!
//! Owns: one `Decay` per (arena, state) pair: the decay time, the current
//! epoch, and a backlog of how many pages became dirty (or muzzy) in each of
//! the last `STEPS` epochs. As in jemalloc, the decay time is cut into 200
//! epochs; pages freed `k` epochs ago may remain unpurged in proportion
//! `1 - smootherstep(k / 200)`, so a burst of frees is released along a
//! smooth curve over the decay time instead of at once or never.
//!
//! Invariants: `ms < 0` never purges, `ms == 0` purges everything at once;
//! the limit never exceeds the pages added over the window; time only moves
//! forward (a clock that goes back is ignored).

/// Longest decay time accepted: a year, in milliseconds.
pub(crate) const MS_MAX: i64 = 365 * 24 * 3600 * 1000;

/// Whether `ms` is a decay time rjem accepts: -1 (never), or 0 (at once) up
/// to `MS_MAX`. The one range check for options and controls alike.
pub(crate) const fn valid_ms(ms: i64) -> bool {
    ms >= -1 && ms <= MS_MAX
}

/// Epochs per decay time (jemalloc's SMOOTHSTEP_NSTEPS).
pub(crate) const STEPS: usize = 200;
const FRAC_BITS: u32 = 24;

/// smootherstep((i + 1) / STEPS) in 24-bit fixed point, rising from ~0 to 1:
/// the weight of pages freed in epoch slot `i` (0 = oldest, STEPS-1 = now).
static WEIGHTS: [u64; STEPS] = {
    let mut t = [0u64; STEPS];
    let mut i = 0;
    while i < STEPS {
        let x = (i + 1) as f64 / STEPS as f64;
        let s = x * x * x * (x * (x * 6.0 - 15.0) + 10.0);
        t[i] = (s * (1u64 << FRAC_BITS) as f64) as u64;
        i += 1;
    }
    t
};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Decay {
    /// Decay time in milliseconds; -1 = never purge, 0 = purge at once.
    ms: i64,
    interval_ns: u64,
    epoch_ns: u64,
    backlog: [usize; STEPS],
    /// Unpurged pages when the current epoch began (or the limit, if
    /// higher): pages above it are new and enter the backlog when the epoch
    /// ends.
    nunpurged: usize,
    limit: usize,
}

impl Decay {
    pub(crate) const fn new(ms: i64) -> Decay {
        debug_assert!(valid_ms(ms));
        Decay {
            ms,
            interval_ns: interval(ms),
            epoch_ns: 0,
            backlog: [0; STEPS],
            nunpurged: 0,
            limit: 0,
        }
    }

    pub(crate) fn ms(&self) -> i64 {
        self.ms
    }

    /// Changes the decay time, restarting the curve from `npages` now.
    pub(crate) fn set_ms(&mut self, ms: i64, now_ns: u64, npages: usize) {
        *self = Decay::new(ms);
        self.epoch_ns = now_ns;
        self.nunpurged = npages;
        self.limit = npages;
    }

    /// Epoch length, for callers deciding how often to come back.
    pub(crate) fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// Advances to `now_ns` with `npages` currently unpurged, and returns
    /// how many may stay; callers purge down to it.
    pub(crate) fn limit(&mut self, now_ns: u64, npages: usize) -> usize {
        match self.ms {
            ms if ms < 0 => return usize::MAX,
            0 => return 0,
            _ => {}
        }
        if self.epoch_ns == 0 {
            self.epoch_ns = now_ns;
        }
        // A time before the epoch (another thread read the clock earlier)
        // counts as the current epoch.
        let elapsed = now_ns.saturating_sub(self.epoch_ns) / self.interval_ns;
        if elapsed == 0 {
            // Same epoch: pages freed since are not yet in the backlog and
            // may all stay until the epoch ends.
            return self.limit + npages.saturating_sub(self.nunpurged);
        }
        self.epoch_ns += elapsed * self.interval_ns;
        let shift = (elapsed as usize).min(STEPS);
        self.backlog.copy_within(shift.., 0);
        self.backlog[STEPS - shift..].fill(0);
        self.backlog[STEPS - 1] += npages.saturating_sub(self.nunpurged);
        // Pages freed `age` epochs ago (slot STEPS-1-age) may stay in
        // proportion to their slot's weight: ~1 for the newest, ~0 for the
        // oldest.
        let keep: u128 = self
            .backlog
            .iter()
            .zip(WEIGHTS.iter())
            .map(|(&n, &w)| n as u128 * w as u128)
            .sum();
        self.limit = (keep >> FRAC_BITS) as usize;
        // As jemalloc: the next epoch counts as freed only growth beyond
        // what is here now (or the limit, if more may stay). Pages reused
        // and freed again within an epoch are churn, not new frees.
        self.nunpurged = self.limit.max(npages);
        self.limit
    }
}

const fn interval(ms: i64) -> u64 {
    if ms <= 0 {
        0
    } else {
        let ns = ms as u64 * 1_000_000 / STEPS as u64;
        if ns == 0 {
            1
        } else {
            ns
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn weights_rise_smoothly_to_one() {
        assert!(WEIGHTS[0] < 1 << 10);
        assert_eq!(WEIGHTS[STEPS - 1], 1 << FRAC_BITS);
        assert!(WEIGHTS.windows(2).all(|w| w[0] <= w[1]));
        // Half way, half the weight.
        let mid = WEIGHTS[STEPS / 2 - 1] as f64 / (1 << FRAC_BITS) as f64;
        assert!((mid - 0.5).abs() < 0.02);
    }

    #[test]
    fn burst_decays_gradually_then_fully() {
        let mut d = Decay::new(1000); // 1 s, 5 ms epochs
        let t0 = 1_000 * MS;
        assert_eq!(d.limit(t0, 0), 0);
        // 10,000 pages freed now.
        let l = d.limit(t0 + 1, 10_000);
        assert_eq!(l, 10_000, "same epoch: nothing purged yet");
        let mut last = usize::MAX;
        let mut samples = std::vec::Vec::new();
        for step in 1..=210u64 {
            let now = t0 + step * 5 * MS;
            let npages = last.min(10_000);
            let l = d.limit(now, npages);
            assert!(l <= last, "limit must not rise without new frees");
            last = l;
            samples.push(l);
        }
        // Gradual: after a quarter of the time most pages remain, after
        // three quarters few, after the full time none.
        assert!(samples[49] > 8_000, "{}", samples[49]);
        assert!(samples[149] < 2_000, "{}", samples[149]);
        assert_eq!(*samples.last().unwrap(), 0);
    }

    #[test]
    fn frees_within_an_epoch_all_count() {
        // Many small updates inside one epoch (as inline decay does on
        // every free) must not hide the pages from the backlog.
        let mut d = Decay::new(1000);
        let t0 = 1_000 * MS;
        d.limit(t0, 0);
        for k in 1..=100 {
            let l = d.limit(t0 + k * 10_000, k as usize * 100);
            assert_eq!(l, k as usize * 100);
        }
        // One epoch later almost everything may still stay.
        let l = d.limit(t0 + 5 * MS, 10_000);
        assert!(l > 9_900, "{l}");
    }

    #[test]
    fn churn_does_not_hold_a_burst_forever() {
        // A burst of 100k pages, then 1k pages reused and freed again every
        // epoch: the burst must still decay away (churn is not new frees).
        let mut d = Decay::new(1000);
        let t0 = 1_000 * MS;
        d.limit(t0, 0);
        let mut npages = 100_000;
        for step in 1..=400u64 {
            let now = t0 + step * 5 * MS;
            // Reuse 1k, free 1k: same count at the epoch boundary.
            let l = d.limit(now, npages);
            npages = npages.min(l).max(1_000);
        }
        assert!(npages <= 1_000, "{npages} pages never purged");
    }

    #[test]
    fn never_and_immediately() {
        let mut never = Decay::new(-1);
        assert_eq!(never.limit(5, 100), usize::MAX);
        let mut now = Decay::new(0);
        assert_eq!(now.limit(5, 100), 0);
    }

    #[test]
    fn accepted_times() {
        assert!(valid_ms(-1) && valid_ms(0) && valid_ms(MS_MAX));
        assert!(!valid_ms(-2) && !valid_ms(MS_MAX + 1));
    }

    #[test]
    fn clock_going_back_is_ignored() {
        let mut d = Decay::new(100);
        d.limit(1_000 * MS, 50);
        let l = d.limit(10 * MS, 50);
        assert!(l >= 50);
    }
}
