//! Control: operations on the running allocator (jemalloc's `arena.<i>.*`
//! and `arenas.*` mallctls, as plain functions).
//!
//! Owns: nothing but the mapping from a target (one arena, or all) to the
//! arenas' own operations. Every function takes each arena's lock briefly,
//! one at a time.

use crate::arena::{self, Arena};
use crate::global;
use core::sync::atomic::Ordering;

/// Which arenas an operation applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One arena by index (`arena.<i>`).
    Arena(usize),
    /// Every arena (`arena.<MALLCTL_ARENAS_ALL>`).
    All,
}

fn each(t: Target, mut f: impl FnMut(&'static Arena)) -> bool {
    if !global::ensure_init() {
        return false;
    }
    match t {
        Target::Arena(i) => match arena::get(i) {
            Some(a) => f(a),
            None => return false,
        },
        Target::All => {
            for i in 0..arena::count() {
                if let Some(a) = arena::get(i) {
                    f(a);
                }
            }
        }
    }
    true
}

/// Purges every freed (dirty and muzzy) page now. Returns bytes purged, or
/// None for an arena that does not exist.
pub fn purge(t: Target) -> Option<usize> {
    let mut n = 0;
    each(t, |a| n += a.purge()).then_some(n)
}

/// Runs decay now: purges what the decay curves say is due.
pub fn decay(t: Target) -> Option<usize> {
    let mut n = 0;
    each(t, |a| n += a.decay()).then_some(n)
}

/// Sets the dirty and/or muzzy decay time of an arena; with `Target::All`,
/// of every automatic arena and of those created later
/// (`arenas.dirty_decay_ms`); the huge arena keeps purging at once unless
/// targeted by index. Times outside -1 ..= one year are rejected (false).
pub fn set_decay_ms(t: Target, dirty: Option<i64>, muzzy: Option<i64>) -> bool {
    const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;
    let bad = |v: Option<i64>| v.is_some_and(|x| !(-1..=YEAR_MS).contains(&x));
    if bad(dirty) || bad(muzzy) {
        return false;
    }
    if t == Target::All && global::ensure_init() {
        if let Some(d) = dirty {
            arena::DEFAULT_DIRTY_MS.store(d, Ordering::Relaxed);
        }
        if let Some(m) = muzzy {
            arena::DEFAULT_MUZZY_MS.store(m, Ordering::Relaxed);
        }
    }
    each(t, |a| {
        if t == Target::Arena(a.ind) || a.ind != global::narenas() {
            a.pages.lock().set_decay(dirty, muzzy)
        }
    })
}

/// (dirty, muzzy) decay times of arena `i`; of new arenas for `All`.
pub fn decay_ms(t: Target) -> Option<(i64, i64)> {
    if !global::ensure_init() {
        return None;
    }
    match t {
        Target::All => Some((
            arena::DEFAULT_DIRTY_MS.load(Ordering::Relaxed),
            arena::DEFAULT_MUZZY_MS.load(Ordering::Relaxed),
        )),
        Target::Arena(i) => {
            let p = arena::get(i)?.pages.lock();
            Some((p.decay_dirty.ms(), p.decay_muzzy.ms()))
        }
    }
}

/// Whether the background purger thread is running.
pub fn background_thread_running() -> bool {
    crate::background::running()
}
