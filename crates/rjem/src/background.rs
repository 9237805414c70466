//! Background purging: one thread that runs decay for every arena, so that
//! a process that goes idle still gives memory back.
//!
//! Owns: the options `background_thread` and `max_background_threads`, and
//! the purger thread's life (lazy start, idle sleep, wake-up, fork). The
//! page allocators below never call in here: they raise
//! `pages::SIGNAL`, which this module configures and reads.
//!
//! Why one lazily started thread: jemalloc only decays when the program
//! calls into it, unless `background_thread:true` starts threads up front.
//! rjem's default (`background_thread` unset) keeps jemalloc's inline decay
//! and adds a single purger thread, started (by the next allocation that
//! takes the slow path) once an arena has mapped, or holds freed, more than
//! `AUTO_THRESHOLD` bytes: programs that never hold
//! much never get a thread, and an idle program's freed pages still decay on
//! time. One thread suffices because purging is a few madvise calls per
//! epoch; it never allocates. When nothing is left to purge it sleeps on a
//! futex until a free makes pages dirty again.
//!
//! Invariants: the thread is started at most once per process image (the
//! child of `fork()` has none and starts its own when needed); it takes one
//! arena page lock at a time and is never inside a lock across a sleep, so
//! the fork handlers can always take every lock.

use crate::arena;
use crate::os;
use crate::pages::SIGNAL;
use core::sync::atomic::{
    AtomicBool, AtomicU64, AtomicU8, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// Mapped or freed bytes in one arena that make the default mode start the
/// purger.
pub(crate) const AUTO_THRESHOLD: usize = 8 << 20;

/// Option `background_thread`, a tri-state: `UNSET` is rjem's default (a
/// purger started lazily, threads still decay inline), `ON` is jemalloc's
/// `true` (the purger starts with the first allocation and does all
/// decay), `OFF` never starts it. Like every `OPT_*` static, written by `conf::boot`.
pub(crate) static OPT_BACKGROUND_THREAD: AtomicU8 = AtomicU8::new(UNSET);
pub(crate) const UNSET: u8 = 0;
pub(crate) const ON: u8 = 1;
pub(crate) const OFF: u8 = 2;
/// Option `max_background_threads`: 0 forbids the purger (rjem runs at most
/// one).
pub(crate) static OPT_MAX_BACKGROUND_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The mode in force: the option, then what `background_thread` writes.
static MODE: AtomicU8 = AtomicU8::new(UNSET);
/// `max_background_threads` in force.
static MAX_THREADS: AtomicUsize = AtomicUsize::new(0);
static STARTED: AtomicBool = AtomicBool::new(false);
/// Asks the purger to leave its loop (`background_thread:false` at run time).
static STOP: AtomicBool = AtomicBool::new(false);
/// Passes the purger made (stats, tests).
static PASSES: AtomicU64 = AtomicU64::new(0);
/// Time the purger spent between passes (asleep), in ns.
static SLEPT_NS: AtomicU64 = AtomicU64::new(0);

/// The free-side trigger for the mode in force.
fn start_at() -> usize {
    if MAX_THREADS.load(Relaxed) == 0 {
        return usize::MAX;
    }
    match MODE.load(Relaxed) {
        ON => 0,
        OFF => usize::MAX,
        _ => AUTO_THRESHOLD,
    }
}

/// Points the page allocators' signal at the mode in force.
fn configure() {
    let on = MODE.load(Relaxed) == ON;
    SIGNAL.start_at.store(start_at(), Relaxed);
    SIGNAL
        .purger_decays
        .store(on && start_at() != usize::MAX, Relaxed);
}

/// Takes the options (start-up).
pub(crate) fn boot() {
    MODE.store(OPT_BACKGROUND_THREAD.load(Relaxed), Relaxed);
    MAX_THREADS.store(OPT_MAX_BACKGROUND_THREADS.load(Relaxed), Relaxed);
    configure();
}

/// `background_thread` written at run time: true starts the purger now and
/// leaves all decay to it (false if it cannot run); false stops it, and
/// threads decay inline from then on.
pub(crate) fn set_enabled(on: bool) -> bool {
    if on {
        if MAX_THREADS.load(Relaxed) == 0 {
            return false;
        }
        MODE.store(ON, Relaxed);
        configure();
        start()
    } else {
        MODE.store(OFF, Relaxed);
        configure();
        SIGNAL.wanted.store(false, Relaxed);
        stop()
    }
}

/// `max_background_threads` in force.
pub(crate) fn max_threads() -> usize {
    MAX_THREADS.load(Relaxed)
}

/// `max_background_threads` written at run time: 0 stops the purger.
pub(crate) fn set_max_threads(n: usize) {
    MAX_THREADS.store(n, Relaxed);
    if n == 0 {
        stop();
    }
    configure();
}

/// Stops the purger thread, if it runs, and waits (at most about two
/// seconds: a pass sleeps at most one) for it to leave. False if it has
/// not left by then.
fn stop() -> bool {
    if !STARTED.load(Acquire) {
        return true;
    }
    STOP.store(true, Release);
    for _ in 0..200 {
        if SIGNAL.idle.swap(0, Relaxed) == 1 {
            os::futex_wake(&SIGNAL.idle);
        }
        if !STARTED.load(Acquire) {
            return true;
        }
        sleep_ns(10_000_000);
    }
    false
}

/// Starts the purger if a free or a mapping asked for it. Call only from the
/// allocation slow path, where no lock of ours is held and the calling
/// thread's cache is consistent (creating a thread allocates: glibc's
/// `calloc` for its thread-local tables), and never from a free: the C
/// library calls `free` with its own locks held, which `pthread_create`
/// takes (glibc frees exited threads' TLS under its stack cache lock: a
/// free there that started the purger hung larson).
#[inline]
pub(crate) fn start_if_wanted() {
    if SIGNAL.wanted.load(Relaxed) {
        start();
    }
}

/// Whether the purger thread runs (in this process).
pub(crate) fn running() -> bool {
    STARTED.load(Relaxed)
}

/// Purger passes so far.
pub(crate) fn passes() -> u64 {
    PASSES.load(Relaxed)
}

/// The average time between two purger passes, in ns
/// (`stats.background_thread.run_interval`); 0 before the second pass.
pub(crate) fn run_interval_ns() -> u64 {
    SLEPT_NS.load(Relaxed) / PASSES.load(Relaxed).max(1)
}

/// Starts the purger thread unless it runs already. False if it cannot;
/// threads then decay inline.
fn start() -> bool {
    SIGNAL.wanted.store(false, Relaxed);
    if STARTED.swap(true, Relaxed) {
        return true;
    }
    // Running: no free needs to ask again.
    SIGNAL.start_at.store(usize::MAX, Relaxed);
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
            // Not retried (frees no longer ask): threads decay inline.
            SIGNAL.purger_decays.store(false, Relaxed);
            STARTED.store(false, Relaxed);
            return false;
        }
        libc::pthread_setname_np(t, c"rjem-purger".as_ptr());
        libc::pthread_detach(t);
    }
    true
}

extern "C" fn purger_main(_: *mut libc::c_void) -> *mut libc::c_void {
    let mut last_end = 0;
    while !STOP.load(Acquire) {
        let now = os::now_ns();
        if last_end != 0 {
            SLEPT_NS.fetch_add(now.saturating_sub(last_end), Relaxed);
        }
        let mut pending = false;
        let mut next = u64::MAX;
        for a in arena::all() {
            let mut p = a.pages.lock();
            p.decay(now);
            if p.decay_pending() {
                pending = true;
                next = next.min(p.decay_interval_ns().unwrap_or(1_000_000_000));
            }
        }
        PASSES.fetch_add(1, Relaxed);
        last_end = os::now_ns();
        if pending {
            // At least 10 ms between passes: decay epochs are finer than
            // that for short decay times, and purging in batches is cheaper.
            sleep_ns(next.clamp(10_000_000, 1_000_000_000));
        } else {
            // Nothing to purge: sleep until a free makes pages dirty (the
            // timeout covers a wake-up that raced with going idle).
            SIGNAL.idle.store(1, Relaxed);
            if !STOP.load(Relaxed) {
                os::futex_wait(&SIGNAL.idle, 1, Some(5_000_000_000));
            }
            SIGNAL.idle.store(0, Relaxed);
        }
    }
    STOP.store(false, Relaxed);
    STARTED.store(false, Release);
    core::ptr::null_mut()
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
    let was = STARTED.swap(false, Relaxed);
    SIGNAL.idle.store(0, Relaxed);
    SIGNAL.start_at.store(start_at(), Relaxed);
    STOP.store(false, Relaxed);
    // A child that holds what made the parent start its purger starts its
    // own, at its first allocation slow path (none between fork and exec).
    SIGNAL
        .wanted
        .store(was && start_at() != usize::MAX, Relaxed);
}
