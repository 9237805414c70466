//! Process-wide state and start-up.
//!
//! Owns: lazy, thread-safe initialisation (page size, geometry, options,
//! arena 0, the thread-exit key and the fork handlers), and the values fixed
//! by it. Initialisation runs once, on the first slow-path call of any
//! thread; others wait for it. It calls no libc function that allocates.
//!
//! Invariants: `geom()`, `conf()`, `narenas()` and `ncached()` are read only
//! after `ensure_init()` returned true (they are written once, before the
//! state becomes READY with release ordering).

use crate::arena;
use crate::conf::{self, Conf};
use crate::os;
use crate::size_class::{self as sc, Geometry, LG_MAX_PAGE, LG_MIN_PAGE};
use crate::tsd;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const UNINIT: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// Thread id of the initialising thread, to detect recursion.
static INIT_TID: AtomicUsize = AtomicUsize::new(0);

struct Fixed {
    geom: Geometry,
    conf: Conf,
    narenas: usize,
    ncached: usize,
}

struct FixedCell(UnsafeCell<Fixed>);
// SAFETY: written once by the initialising thread before STATE becomes READY
// (release), read only after observing READY (acquire).
unsafe impl Sync for FixedCell {}

static FIXED: FixedCell = FixedCell(UnsafeCell::new(Fixed {
    geom: Geometry::new(4096),
    conf: Conf::DEFAULT,
    narenas: 1,
    ncached: 0,
}));

#[inline]
fn fixed() -> &'static Fixed {
    // SAFETY: see FixedCell; after init the value is never written again.
    unsafe { &*FIXED.0.get() }
}

#[inline]
pub fn geom() -> &'static Geometry {
    &fixed().geom
}
#[inline]
pub fn conf() -> &'static Conf {
    &fixed().conf
}
/// Automatic arenas threads are spread over.
#[inline]
pub fn narenas() -> usize {
    fixed().narenas
}
/// Size classes the thread cache holds (classes `0..ncached`).
#[inline]
pub fn ncached() -> usize {
    fixed().ncached
}

fn gettid() -> usize {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as usize }
}

/// Initialises rjem if needed. False if initialisation failed, or if it is
/// in progress on this very thread (a recursive call from something it
/// invoked): callers then fail the request instead of deadlocking.
#[inline]
pub fn ensure_init() -> bool {
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
    let conf = conf::from_env();
    let narenas = if conf.narenas > 0 {
        conf.narenas
    } else {
        (4 * os::ncpus()).min(arena::MAX_ARENAS - 1)
    };
    let ncached = if conf.tcache {
        sc::size_to_index(conf.tcache_max.max(8)) + 1
    } else {
        0
    };
    let ncached = if ncached > 0 && sc::index_to_size(ncached - 1) > conf.tcache_max {
        ncached - 1
    } else {
        ncached
    };
    // SAFETY: only the initialising thread runs here, and no reader looks at
    // FIXED before READY is published.
    unsafe {
        *FIXED.0.get() = Fixed {
            geom: Geometry::new(page),
            conf,
            narenas,
            ncached: ncached.min(tsd::NCACHED_MAX),
        };
    }
    arena::DEFAULT_DIRTY_MS.store(conf.dirty_decay_ms, Ordering::Relaxed);
    arena::DEFAULT_MUZZY_MS.store(conf.muzzy_decay_ms, Ordering::Relaxed);
    if arena::get_or_create(0).is_none() {
        return false;
    }
    tsd::init_key();
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
static FORK_LOCKED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

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
    arena::fork_prepare();
    crate::base::fork_prepare();
    FORK_LOCKED.store(true, Ordering::Relaxed);
}

extern "C" fn fork_parent() {
    if !FORK_LOCKED.swap(false, Ordering::Relaxed) {
        return;
    }
    crate::base::fork_parent();
    arena::fork_parent();
}

extern "C" fn fork_child() {
    if !FORK_LOCKED.swap(false, Ordering::Relaxed) {
        return;
    }
    crate::base::fork_child();
    arena::fork_child();
    tsd::fork_child();
    crate::background::fork_child();
}
