//! Background purging: one thread that runs decay for every arena, so that
//! a process that goes idle still gives memory back.
//!
//! Owns: the purger thread's life (lazy start, idle sleep, wake-up, fork).
//!
//! Why one lazily started thread: jemalloc only decays when the program
//! calls into it, unless `background_thread:true` starts threads up front.
//! rjem's default (`BackgroundMode::Auto`) keeps jemalloc's inline decay and
//! adds a single purger thread started the first time an arena holds more
//! than `AUTO_THRESHOLD` bytes of freed pages: programs that never free much
//! never get a thread, and an idle program's freed pages still decay on
//! time. One thread suffices because purging is a few madvise calls per
//! epoch; it never allocates. When nothing is left to purge it sleeps on a
//! futex until a free makes pages dirty again.
//!
//! Invariants: the thread is started at most once per process image (the
//! child of `fork()` has none and starts its own when needed); it takes one
//! arena page lock at a time and is never inside a lock across a sleep, so
//! the fork handlers can always take every lock.

use crate::arena;
use crate::conf::BackgroundMode;
use crate::global;
use crate::os;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Freed bytes in one arena that make the Auto mode start the purger.
pub const AUTO_THRESHOLD: usize = 8 << 20;

static STARTED: AtomicBool = AtomicBool::new(false);
/// pthread_create failed: stop trying, and let threads decay inline.
static FAILED: AtomicBool = AtomicBool::new(false);
static WANTED: AtomicBool = AtomicBool::new(false);
/// 1 while the purger sleeps with nothing to do (a futex word).
static IDLE: AtomicU32 = AtomicU32::new(0);
/// Passes the purger made (stats, tests).
static PASSES: AtomicU64 = AtomicU64::new(0);

/// Called (under a page lock) when a free left `dirty` bytes in an arena:
/// wakes an idle purger, or asks for one to be started.
#[inline]
pub fn note_dirty(dirty: usize) {
    if IDLE.load(Ordering::Relaxed) == 1 && IDLE.swap(0, Ordering::Relaxed) == 1 {
        os::futex_wake(&IDLE);
    }
    if !STARTED.load(Ordering::Relaxed)
        && !WANTED.load(Ordering::Relaxed)
        && !FAILED.load(Ordering::Relaxed)
    {
        let c = global::conf();
        let want = match c.background_thread {
            BackgroundMode::On => true,
            BackgroundMode::Auto => dirty >= AUTO_THRESHOLD,
            BackgroundMode::Off => false,
        };
        if want {
            if c.max_background_threads > 0 {
                WANTED.store(true, Ordering::Relaxed);
            } else {
                FAILED.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Whether decay must run inline although `background_thread:true` was
/// asked for: no thread is allowed (`max_background_threads:0`) or none
/// could be created.
pub fn unavailable() -> bool {
    FAILED.load(Ordering::Relaxed)
}

/// Starts the purger if a free asked for it. Call only where no lock is
/// held and the calling thread's cache is consistent: creating a thread
/// allocates (glibc's `calloc` for its thread-local tables).
#[inline]
pub fn start_if_wanted() {
    if WANTED.load(Ordering::Relaxed) {
        start();
    }
}

/// Whether the purger thread runs (in this process).
pub fn running() -> bool {
    STARTED.load(Ordering::Relaxed)
}

/// Purger passes so far.
pub fn passes() -> u64 {
    PASSES.load(Ordering::Relaxed)
}

/// Starts the purger thread unless it runs already. False if it cannot.
pub fn start() -> bool {
    WANTED.store(false, Ordering::Relaxed);
    if STARTED.swap(true, Ordering::AcqRel) {
        return true;
    }
    // SAFETY: plain pthread calls with valid out-parameters; the thread
    // function takes no argument. All signals are blocked while creating
    // it, so the purger inherits a full mask and never runs handlers that
    // belong to the application.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut t: libc::pthread_t = 0;
        let r = libc::pthread_create(
            &mut t,
            core::ptr::null(),
            purger_main,
            core::ptr::null_mut(),
        );
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        if r != 0 {
            FAILED.store(true, Ordering::Relaxed);
            return false;
        }
        libc::pthread_setname_np(t, c"rjem-purger".as_ptr());
        libc::pthread_detach(t);
    }
    true
}

extern "C" fn purger_main(_: *mut libc::c_void) -> *mut libc::c_void {
    loop {
        let now = os::now_ns();
        let mut pending = false;
        let mut next = u64::MAX;
        for i in 0..arena::count() {
            let Some(a) = arena::get(i) else { continue };
            let mut p = a.pages.lock();
            p.decay(now);
            if p.decay_pending() {
                pending = true;
                let step = [p.decay_dirty.interval_ns(), p.decay_muzzy.interval_ns()]
                    .into_iter()
                    .filter(|&s| s > 0)
                    .min()
                    .unwrap_or(1_000_000_000);
                next = next.min(step);
            }
        }
        PASSES.fetch_add(1, Ordering::Relaxed);
        if pending {
            // At least 10 ms between passes: decay epochs are finer than
            // that for short decay times, and purging in batches is cheaper.
            sleep_ns(next.clamp(10_000_000, 1_000_000_000));
        } else {
            // Nothing to purge: sleep until a free makes pages dirty (the
            // timeout covers a wake-up that raced with going idle).
            IDLE.store(1, Ordering::Relaxed);
            os::futex_wait(&IDLE, 1, Some(5_000_000_000));
            IDLE.store(0, Ordering::Relaxed);
        }
    }
}

fn sleep_ns(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: ts is valid; an interrupted sleep just ends early.
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}

/// Child side of `fork()`: the purger thread did not come along.
pub(crate) fn fork_child() {
    let was = STARTED.swap(false, Ordering::Relaxed);
    IDLE.store(0, Ordering::Relaxed);
    // Start a new one on the next free that wants it.
    WANTED.store(
        was && global::conf().background_thread == BackgroundMode::On,
        Ordering::Relaxed,
    );
}
