//! Locks that never allocate.
//!
//! Owns: `Mutex<T>`, a futex-based lock (three states: unlocked, locked,
//! locked with waiters) that spins briefly (`mutex_max_spin`) before
//! sleeping. It is `const` constructible, so it can live in statics and in
//! metadata carved from base pages, and it can be reset in a child after
//! `fork()`.
//!
//! Each lock keeps jemalloc's mutex profile (`LockStats`: acquisitions,
//! waits, spins, owner switches, wait times, most waiters), written by the
//! holder after it acquires, so counting costs a few plain instructions per
//! acquisition and a clock read only when a thread had to sleep.
//!
//! Invariants: a `MutexGuard` is the only way to reach the protected value;
//! `lock_raw` and the unsafe `unlock_raw`/`reset_in_child` exist solely for
//! the fork handlers, which take every lock before `fork()` and release
//! (parent) or reset (child) after.

use crate::os;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicI64, AtomicU32, Ordering};

/// Option `mutex_max_spin`: how many times a thread polls a busy lock
/// before it sleeps (-1: until it is free). Written by `conf::boot`, which
/// holds the default; locks taken before that do not spin.
pub(crate) static OPT_MUTEX_MAX_SPIN: AtomicI64 = AtomicI64::new(0);

/// One lock's profile (jemalloc's `mutex_prof_data_t`), or several merged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LockStats {
    /// Acquisitions.
    pub(crate) num_ops: u64,
    /// Acquisitions that had to sleep.
    pub(crate) num_wait: u64,
    /// Acquisitions that found the lock taken and got it by spinning.
    pub(crate) num_spin_acq: u64,
    /// Acquisitions by another thread than the previous one.
    pub(crate) num_owner_switch: u64,
    /// Time spent asleep waiting, in total and at most once, in ns.
    pub(crate) total_wait_ns: u64,
    pub(crate) max_wait_ns: u64,
    /// Most threads waiting at once.
    pub(crate) max_num_thds: u32,
}

impl LockStats {
    /// Adds `o` (merging locks: counts add up, maxima are the larger).
    pub(crate) fn add(&mut self, o: &LockStats) {
        self.num_ops += o.num_ops;
        self.num_wait += o.num_wait;
        self.num_spin_acq += o.num_spin_acq;
        self.num_owner_switch += o.num_owner_switch;
        self.total_wait_ns += o.total_wait_ns;
        self.max_wait_ns = self.max_wait_ns.max(o.max_wait_ns);
        self.max_num_thds = self.max_num_thds.max(o.max_num_thds);
    }
}

/// The profile and the last owner, written only by the lock's holder.
struct Prof {
    stats: LockStats,
    last_owner: usize,
}

/// How an acquisition went.
enum Acquired {
    /// At once.
    Free,
    /// After spinning.
    Spun,
    /// After sleeping `ns`, with `waiters` threads waiting (itself too).
    Waited { ns: u64, waiters: u32 },
}

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

pub(crate) struct Mutex<T> {
    state: AtomicU32,
    /// Threads asleep on the lock (for `max_num_thds`).
    sleepers: AtomicU32,
    prof: UnsafeCell<Prof>,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `value`.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the value.
unsafe impl<T: Send> Send for Mutex<T> {}

pub(crate) struct MutexGuard<'a, T> {
    m: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
            sleepers: AtomicU32::new(0),
            prof: UnsafeCell::new(Prof {
                stats: LockStats {
                    num_ops: 0,
                    num_wait: 0,
                    num_spin_acq: 0,
                    num_owner_switch: 0,
                    total_wait_ns: 0,
                    max_wait_ns: 0,
                    max_num_thds: 0,
                },
                last_owner: 0,
            }),
            value: UnsafeCell::new(value),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.lock_raw();
        MutexGuard { m: self }
    }

    /// The lock if it is free now, without waiting; None if it is held.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.note(Acquired::Free);
        Some(MutexGuard { m: self })
    }

    /// The lock, waiting (yielding the CPU) at most `ns` nanoseconds for
    /// its holder to let go; None if it stayed held, as it does when the
    /// holder is the caller.
    pub(crate) fn lock_within(&self, ns: u64) -> Option<MutexGuard<'_, T>> {
        let start = os::now_ns();
        loop {
            if let Some(g) = self.try_lock() {
                return Some(g);
            }
            if os::now_ns().saturating_sub(start) > ns {
                return None;
            }
            os::yield_now();
        }
    }

    /// Acquires the lock without producing a guard (fork prepare handler).
    #[inline]
    pub(crate) fn lock_raw(&self) {
        let how = self.acquire();
        self.note(how);
    }

    /// Counts an acquisition in the profile (the lock is held).
    #[inline]
    fn note(&self, how: Acquired) {
        // SAFETY: the lock is held: only its holder touches the profile.
        let p = unsafe { &mut *self.prof.get() };
        p.stats.num_ops += 1;
        let me = os::thread_id();
        if p.last_owner != me {
            p.stats.num_owner_switch += (p.last_owner != 0) as u64;
            p.last_owner = me;
        }
        match how {
            Acquired::Free => {}
            Acquired::Spun => p.stats.num_spin_acq += 1,
            Acquired::Waited { ns, waiters } => {
                p.stats.num_wait += 1;
                p.stats.total_wait_ns += ns;
                p.stats.max_wait_ns = p.stats.max_wait_ns.max(ns);
                p.stats.max_num_thds = p.stats.max_num_thds.max(waiters);
            }
        }
    }

    #[inline]
    fn acquire(&self) -> Acquired {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Acquired::Free;
        }
        self.lock_contended()
    }

    #[cold]
    fn lock_contended(&self) -> Acquired {
        // Spin a little while the holder is running (no sleepers yet).
        let max = OPT_MUTEX_MAX_SPIN.load(Ordering::Relaxed);
        let mut spins = 0i64;
        while max < 0 || spins < max {
            spins += 1;
            match self.state.load(Ordering::Relaxed) {
                UNLOCKED => {
                    if self
                        .state
                        .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Acquired::Spun;
                    }
                }
                LOCKED => core::hint::spin_loop(),
                _ => break,
            }
        }
        // Sleep. Once a thread may have slept, it only ever acquires in the
        // CONTENDED state, so its unlock wakes the next sleeper.
        let start = os::now_ns();
        let mut waiters = 0;
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            let n = self.sleepers.fetch_add(1, Ordering::Relaxed) + 1;
            waiters = waiters.max(n);
            os::futex_wait(&self.state, CONTENDED, None);
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
        if waiters == 0 {
            // The lock came free between the spin and the first swap.
            return Acquired::Spun;
        }
        let ns = os::now_ns().saturating_sub(start);
        Acquired::Waited { ns, waiters }
    }

    /// This lock's profile so far, taking the lock briefly (uncounted);
    /// with `reset`, also clears it (`stats.mutexes.reset`).
    pub(crate) fn profile(&self, reset: bool) -> LockStats {
        self.acquire();
        // SAFETY: the lock is held: only its holder touches the profile.
        let p = unsafe { &mut *self.prof.get() };
        let s = p.stats;
        if reset {
            p.stats = LockStats::default();
        }
        // SAFETY: taken just above, without a guard.
        unsafe { self.unlock_raw() };
        s
    }

    /// Releases a lock taken with `lock_raw` (fork parent handler).
    ///
    /// # Safety
    /// The caller took the lock with `lock_raw` and holds no guard for it.
    #[inline]
    pub(crate) unsafe fn unlock_raw(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            os::futex_wake(&self.state);
        }
    }

    /// Resets the lock to unlocked without waking anyone: for the child of
    /// `fork()`, where the threads that held or waited on it do not exist.
    ///
    /// # Safety
    /// Only in a child of `fork()` whose parent's handler held the lock with
    /// `lock_raw`: no guard for it exists in the child.
    pub(crate) unsafe fn reset_in_child(&self) {
        self.state.store(UNLOCKED, Ordering::Relaxed);
        self.sleepers.store(0, Ordering::Relaxed);
    }
}

impl<T> MutexGuard<'_, T> {
    /// The profile of the held lock (no extra acquisition).
    pub(crate) fn lock_stats(&self) -> LockStats {
        // SAFETY: the guard proves the lock is held.
        unsafe { (*self.m.prof.get()).stats }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.m.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, exclusively.
        unsafe { &mut *self.m.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard is the lock's only holder and is going away.
        unsafe { self.m.unlock_raw() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn lock_within_waits_for_a_holder_that_lets_go_soon() {
        const WAIT_NS: u64 = 50_000_000;
        static M: Mutex<u32> = Mutex::new(0);
        let (tx, rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let mut g = M.lock();
            tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
            *g += 1;
        });
        rx.recv().unwrap();
        // Held now, let go within the wait: taken, after the holder's write.
        let g = M.lock_within(WAIT_NS).expect("taken once let go");
        assert_eq!(*g, 1);
        drop(g);
        holder.join().unwrap();
        // Held by the caller itself: given up after the wait.
        let _mine = M.lock();
        let start = os::now_ns();
        assert!(M.lock_within(WAIT_NS).is_none());
        assert!(os::now_ns() - start >= WAIT_NS);
    }

    #[test]
    fn counts_under_contention() {
        static M: Mutex<u64> = Mutex::new(0);
        let hs: std::vec::Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..50_000 {
                        *M.lock() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*M.lock(), 200_000);
        let s = M.profile(false);
        assert_eq!(s.num_ops, 200_001, "the stats read is not counted");
        assert!(s.num_owner_switch >= 3, "four threads took turns");
        assert!(s.num_wait <= s.num_ops && s.max_wait_ns <= s.total_wait_ns);
        assert!(s.num_wait == 0 || s.max_num_thds >= 1);
        assert_eq!(M.profile(true), s, "reset returns what it clears");
        assert_eq!(M.profile(false), LockStats::default());
    }

    #[test]
    fn try_lock_never_waits() {
        let m = Mutex::new(1);
        let g = m.lock();
        assert!(m.try_lock().is_none(), "held");
        drop(g);
        *m.try_lock().unwrap() += 1;
        assert_eq!(*m.lock(), 2);
        assert_eq!(m.profile(false).num_ops, 3);
    }
}
