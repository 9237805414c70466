//! Locks that never allocate.
//!
//! Owns: `Mutex<T>`, a futex-based lock (three states: unlocked, locked,
//! locked with waiters) that spins briefly before sleeping. It is `const`
//! constructible, so it can live in statics and in metadata carved from base
//! pages, and it can be reset in a child after `fork()`.
//!
//! Invariants: a `MutexGuard` is the only way to reach the protected value;
//! `lock_raw` and the unsafe `unlock_raw`/`reset_in_child` exist solely for
//! the fork handlers, which take every lock before `fork()` and release
//! (parent) or reset (child) after.

use crate::os;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

pub(crate) struct Mutex<T> {
    state: AtomicU32,
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
            value: UnsafeCell::new(value),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.lock_raw();
        MutexGuard { m: self }
    }

    /// Acquires the lock without producing a guard (fork prepare handler).
    #[inline]
    pub(crate) fn lock_raw(&self) {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        // Spin a little while the holder is running (no sleepers yet).
        for _ in 0..100 {
            match self.state.load(Ordering::Relaxed) {
                UNLOCKED => {
                    if self
                        .state
                        .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return;
                    }
                }
                LOCKED => core::hint::spin_loop(),
                _ => break,
            }
        }
        // Sleep. Once a thread may have slept, it only ever acquires in the
        // CONTENDED state, so its unlock wakes the next sleeper.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            os::futex_wait(&self.state, CONTENDED, None);
        }
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
    }
}
