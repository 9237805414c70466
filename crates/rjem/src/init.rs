//! Start-up and `fork()`: the top of the core, the only code that reaches
//! every layer to set it up.
//!
//! Owns: lazy, thread-safe initialisation, run once on the first slow-path
//! call of any thread (others wait for it): the options (`conf` stores
//! each into its owner), the page geometry, then each owner derives its
//! settings (`tcache`, `background`, `arena`, which also creates arena 0),
//! the thread-exit key and the fork handlers. It calls no libc function
//! that allocates.
//!
//! Invariants: entry points call `ensure()` before going down the layers,
//! so everything written here happens before any other thread reads it
//! (published with release ordering when the state becomes READY). Lower
//! modules never call up into this one.

use crate::arena;
use crate::background;
use crate::base;
use crate::conf;
use crate::os;
use crate::profiler as prof;
use crate::size_class::{self as sc, LG_MAX_PAGE, LG_MIN_PAGE};
use crate::tcache;
use crate::tsd;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

const UNINIT: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// Thread id of the initialising thread, to detect recursion.
static INIT_TID: AtomicUsize = AtomicUsize::new(0);

fn gettid() -> usize {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as usize }
}

/// Initialises rjem if needed. False if initialisation failed, or if it is
/// in progress on this very thread (a recursive call from something it
/// invoked): callers then fail the request instead of deadlocking.
#[inline]
pub(crate) fn ensure() -> bool {
    if STATE.load(Ordering::Acquire) == READY {
        return true;
    }
    init_slow()
}

#[cold]
fn init_slow() -> bool {
    loop {
        match STATE.compare_exchange(UNINIT, BUSY, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => break,
            Err(READY) => return true,
            Err(FAILED) => return false,
            Err(_) => {
                if INIT_TID.load(Ordering::Relaxed) == gettid() {
                    return false;
                }
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
    }
    INIT_TID.store(gettid(), Ordering::Relaxed);
    let ok = init_once();
    STATE.store(if ok { READY } else { FAILED }, Ordering::Release);
    ok
}

fn init_once() -> bool {
    let page = os::page_size();
    if !page.is_power_of_two() || !(1 << LG_MIN_PAGE..=1 << LG_MAX_PAGE).contains(&page) {
        os::write_stderr(b"<rjem>: unsupported page size (4 KiB to 64 KiB supported)\n");
        return false;
    }
    conf::boot();
    // SAFETY: only the initialising thread runs here, and no other thread
    // reads the geometry before READY is published. After the options:
    // `slab_sizes` shapes it.
    unsafe { sc::boot(page) };
    tcache::set_off_hit_path(conf::fills_blocks());
    tcache::boot();
    // Before any thread sets up its cache: per-class sampling.
    prof::boot();
    if conf::OPT_STATS_PRINT.load(Ordering::Relaxed) {
        // The report registers its exit handler when it next polls.
        tcache::REPORT_DUE.fetch_or(tcache::REPORT_AT_EXIT, Ordering::Relaxed);
    }
    background::boot();
    if !arena::boot() {
        return false;
    }
    tsd::boot();
    conf::confirm();
    // SAFETY: the handlers are plain functions that only take and release
    // rjem's own locks.
    unsafe {
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
    true
}

/// Whether `fork_prepare` took rjem's locks, so that the parent and child
/// handlers act exactly when it did (initialisation may finish between the
/// handlers).
static FORK_LOCKED: AtomicBool = AtomicBool::new(false);

extern "C" fn fork_prepare() {
    // Another thread initialising: wait, so the child does not inherit a
    // half-built allocator whose initialiser no longer exists.
    while STATE.load(Ordering::Acquire) == BUSY && INIT_TID.load(Ordering::Relaxed) != gettid() {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    if STATE.load(Ordering::Acquire) != READY {
        return;
    }
    // Explicit caches' locks come before the bin and page locks.
    tcache::fork_prepare();
    // The profile records' lock comes before the base lock.
    prof::fork_prepare();
    arena::fork_prepare();
    base::fork_prepare();
    FORK_LOCKED.store(true, Ordering::Relaxed);
}

extern "C" fn fork_parent() {
    if !FORK_LOCKED.swap(false, Ordering::Relaxed) {
        return;
    }
    base::fork_parent();
    arena::fork_parent();
    prof::fork_parent();
    tcache::fork_parent();
}

extern "C" fn fork_child() {
    if !FORK_LOCKED.swap(false, Ordering::Relaxed) {
        return;
    }
    base::fork_child();
    arena::fork_child();
    prof::fork_child();
    tcache::fork_child();
    tsd::fork_child();
    background::fork_child();
}
