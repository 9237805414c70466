//! Statistics: a consistent-enough snapshot of what rjem holds.
//!
//! Owns: aggregation of the counters that the bins, page allocators and base
//! keep under their own locks, for the whole process (`snapshot`) and per
//! arena, bin and large class (`arena`, `bin`, `lextent`, which merge all
//! arenas for `ARENAS_ALL`). Nothing here is on an allocation path; a
//! snapshot takes each lock briefly, one at a time.
//!
//! The process totals behind `stats.allocated` and the like are, as in
//! jemalloc, one snapshot taken when `epoch` is written (`refresh`), so
//! that figures read one after another agree with each other; per-arena,
//! bin and large-class counters are read live.
//!
//! Requests (`nrequests`) are counted where a block leaves an arena: a
//! thread-cache fill counts each block it takes; cache hits are counted
//! per thread (`thread.allocated`), not per arena.
//!
//! Meanings follow jemalloc's `stats.*`: `allocated` is the bytes of live
//! blocks at their usable size (including blocks cached by threads);
//! `active` the bytes of pages in active extents; `metadata` the allocator's
//! own bookkeeping; `mapped` the bytes of extents mapped and not retained;
//! `retained` the virtual memory kept for reuse; `dirty`/`muzzy` free pages
//! not yet purged.

use crate::arena::{self, Arena};
use crate::base;
use crate::bin::BinStats;
use crate::init;
use crate::os;
use crate::pages::PurgeCounts;
use crate::profiler;
use crate::size_class as sc;
use crate::sync::{LockStats, Mutex};
use crate::tcache;
use core::sync::atomic::Ordering;

/// The totals as of the last `epoch` refresh (None before the first).
static EPOCH_TOTALS: Mutex<Option<Stats>> = Mutex::new(None);

/// Takes a new snapshot of the totals (`epoch` written).
pub(crate) fn refresh() {
    // 0: fork handlers not registered, 1: being registered, 2: done.
    static FORK_HANDLERS: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
    match FORK_HANDLERS.compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            // The snapshot's lock must not be held across fork() by a
            // thread the child does not have. Registered on first use,
            // outside every rjem lock (registering may allocate); later
            // handlers run first in prepare, so this lock is taken before
            // the arenas'.
            // SAFETY: plain functions that take, release or reset one lock.
            unsafe {
                libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
            }
            FORK_HANDLERS.store(2, Ordering::Release);
        }
        Err(_) => {
            // No one takes the lock before the handlers are in place.
            while FORK_HANDLERS.load(Ordering::Acquire) != 2 {
                core::hint::spin_loop();
            }
        }
    }
    let s = snapshot();
    *EPOCH_TOTALS.lock() = Some(s);
}

extern "C" fn fork_prepare() {
    EPOCH_TOTALS.lock_raw();
}

extern "C" fn fork_parent() {
    // SAFETY: `fork_prepare` took the lock and holds no guard.
    unsafe { EPOCH_TOTALS.unlock_raw() };
}

extern "C" fn fork_child() {
    // SAFETY: the child of a fork whose prepare handler held the lock.
    unsafe { EPOCH_TOTALS.reset_in_child() };
}

/// The totals as of the last refresh (taking one if there was none).
pub(crate) fn epoch_totals() -> Stats {
    if let Some(s) = *EPOCH_TOTALS.lock() {
        return s;
    }
    refresh();
    EPOCH_TOTALS.lock().unwrap_or_default()
}

/// Arena index meaning "all arenas merged" (`MALLCTL_ARENAS_ALL`).
pub(crate) const ALL: usize = arena::MAX_ARENAS;
/// Arena index meaning "destroyed arenas merged"
/// (`MALLCTL_ARENAS_DESTROYED`): the graveyard's counters.
pub(crate) const DESTROYED: usize = arena::MAX_ARENAS + 1;

/// Process-wide totals, in bytes unless noted (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Live blocks at their usable size, including blocks held in thread
    /// caches (`stats.allocated`).
    pub allocated: usize,
    /// Pages in active extents: slabs and large blocks (`stats.active`).
    pub active: usize,
    /// The allocator's own bookkeeping (`stats.metadata`).
    pub metadata: usize,
    /// Active, metadata and dirty pages: an upper bound of what is resident
    /// (`stats.resident`).
    pub resident: usize,
    /// Mapped and not retained, metadata included (`stats.mapped`).
    pub mapped: usize,
    /// Address space kept for reuse, not resident (`stats.retained`).
    pub retained: usize,
    /// Freed pages not yet purged.
    pub dirty: usize,
    /// Freed pages purged lazily (`MADV_FREE`) and not yet released.
    pub muzzy: usize,
    /// Arenas created.
    pub narenas: usize,
    /// madvise calls made to purge pages.
    pub nmadvise: u64,
}

/// Takes a snapshot over all arenas.
pub fn snapshot() -> Stats {
    let mut s = Stats::default();
    if !init::ensure() {
        return s;
    }
    let g = sc::geom();
    for a in arena::all() {
        s.narenas += 1;
        // Active bytes are read before and after the allocated ones and the
        // larger kept: pages become active before their blocks are counted
        // allocated and stop being active after they are counted freed, so
        // another thread's frees between the reads cannot make allocated
        // exceed active (a CI run saw 32 MB against 23).
        let active_before = a.pages.lock().stats.active_bytes;
        for (ind, b) in a.bins[..g.nbins].iter().enumerate() {
            s.allocated += b.0.lock().stats.curregs * g.bins[ind].size;
        }
        for ind in g.nbins..sc::NSIZES {
            let n = a.large.nmalloc[ind].load(Ordering::Relaxed);
            let d = a.large.ndalloc[ind].load(Ordering::Relaxed);
            s.allocated += n.saturating_sub(d) as usize * sc::index_to_size(ind);
        }
        let p = a.pages.lock();
        s.active += p.stats.active_bytes.max(active_before);
        s.dirty += p.dirty_bytes();
        s.muzzy += p.muzzy.bytes;
        s.retained += p.retained.bytes;
        s.mapped += p.stats.mapped - p.retained.bytes;
        s.nmadvise += p.stats.dirty.nmadvise + p.stats.muzzy.nmadvise;
    }
    // Metadata: base memory handed out (arenas, extent records, bitmaps).
    // Pointer-map leaves are mapped sparsely and not counted here. Mapped
    // includes the base blocks, as jemalloc's does.
    let (base_allocated, base_mapped) = base::stats();
    s.metadata = base_allocated;
    s.mapped += base_mapped;
    s.resident = s.active + s.metadata + s.dirty;
    s
}

/// Counters of one kind of allocation (small or large) in an arena.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClassTotals {
    /// Bytes of live blocks at their usable size.
    pub(crate) allocated: usize,
    pub(crate) nmalloc: u64,
    pub(crate) ndalloc: u64,
    pub(crate) nrequests: u64,
    pub(crate) nfills: u64,
    pub(crate) nflushes: u64,
}

/// One arena's counters (or several merged): `stats.arenas.<i>.*`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ArenaTotals {
    pub(crate) nthreads: usize,
    /// Decay times (merged: those new arenas get).
    pub(crate) dirty_decay_ms: i64,
    pub(crate) muzzy_decay_ms: i64,
    /// Since creation (the oldest arena's, merged).
    pub(crate) uptime_ns: u64,
    /// Pages active, dirty and muzzy.
    pub(crate) pactive: usize,
    pub(crate) pdirty: usize,
    pub(crate) pmuzzy: usize,
    /// Bytes mapped (not retained) and retained.
    pub(crate) mapped: usize,
    pub(crate) retained: usize,
    pub(crate) dirty: PurgeCounts,
    pub(crate) muzzy: PurgeCounts,
    pub(crate) small: ClassTotals,
    pub(crate) large: ClassTotals,
    /// Metadata the arena holds: its structure, its extent records and
    /// their slab bitmaps (`base`).
    pub(crate) base: usize,
    /// Thread-cache stacks allocated from the arena (`internal`).
    pub(crate) internal: usize,
    /// Metadata, active and dirty pages: an upper bound of what is
    /// resident (`resident`).
    pub(crate) resident: usize,
    /// Bytes in the thread caches that fill from the arena, as of each
    /// class's last fill, flush or GC (`tcache_bytes`).
    pub(crate) tcache_bytes: usize,
    /// The arena's page lock (`mutexes.pages`, rjem's).
    pub(crate) pages_lock: LockStats,
    /// Unused extent records ready for reuse (`extent_avail`).
    pub(crate) extent_avail: usize,
}

/// The arenas index `i` stands for: one, all, or none (destroyed). None
/// if `i` names no arena.
fn arenas_of(i: usize) -> Option<impl Iterator<Item = &'static Arena>> {
    if !init::ensure() {
        return None;
    }
    let (lo, hi) = match i {
        ALL => (0, arena::count()),
        DESTROYED => (0, 0),
        _ => {
            arena::get(i)?;
            (i, i + 1)
        }
    };
    let grave = if i == DESTROYED {
        arena::graveyard()
    } else {
        None
    };
    Some((lo..hi).filter_map(arena::get).chain(grave))
}

/// `stats.arenas.<i>.*` for arena `i`, `ALL` or `DESTROYED`.
pub(crate) fn arena(i: usize) -> Option<ArenaTotals> {
    let g = sc::geom();
    let now = os::now_ns();
    let mut t = ArenaTotals::default();
    (t.dirty_decay_ms, t.muzzy_decay_ms) = arena::default_decay_ms();
    for a in arenas_of(i)? {
        t.nthreads += a.nthreads.load(Ordering::Relaxed);
        t.uptime_ns = t
            .uptime_ns
            .max(now.saturating_sub(a.created_ns.load(Ordering::Relaxed)));
        for (ind, b) in a.bins[..g.nbins].iter().enumerate() {
            let s = b.0.lock().stats;
            t.small.allocated += s.curregs * g.bins[ind].size;
            t.small.nmalloc += s.nmalloc;
            t.small.ndalloc += s.ndalloc;
            t.small.nfills += s.nfills;
            t.small.nflushes += s.nflushes;
        }
        for ind in g.nbins..sc::NSIZES {
            let (n, d) = large_counts(a, ind);
            t.large.allocated += n.saturating_sub(d) as usize * sc::index_to_size(ind);
            t.large.nmalloc += n;
            t.large.ndalloc += d;
        }
        t.large.nflushes += a.large.nflushes.load(Ordering::Relaxed);
        let p = a.pages.lock();
        if a.ind == i {
            (t.dirty_decay_ms, t.muzzy_decay_ms) = (p.decay_dirty.ms(), p.decay_muzzy.ms());
        }
        t.pages_lock.add(&p.lock_stats());
        t.base += core::mem::size_of::<Arena>() + p.metadata_bytes();
        t.internal += a.internal.load(Ordering::Relaxed);
        t.extent_avail += p.records_avail();
        t.resident += (p.stats.active_bytes + p.dirty_bytes()) / g.page * g.page;
        t.pactive += p.stats.active_bytes / g.page;
        t.pdirty += p.dirty_bytes() / g.page;
        t.pmuzzy += p.muzzy.bytes / g.page;
        t.mapped += p.stats.mapped - p.retained.bytes;
        t.retained += p.retained.bytes;
        t.dirty.add(&p.stats.dirty);
        t.muzzy.add(&p.stats.muzzy);
    }
    t.small.nrequests = t.small.nmalloc;
    t.large.nrequests = t.large.nmalloc;
    t.resident += t.base;
    t.tcache_bytes = match i {
        ALL => tcache::cached_bytes(None),
        DESTROYED => 0,
        _ => tcache::cached_bytes(Some(i)),
    };
    Some(t)
}

/// `stats.arenas.<i>.bins.<j>.mutex.*`: the lock of small class `j`.
pub(crate) fn bin_lock(i: usize, j: usize) -> Option<LockStats> {
    if j >= sc::geom().nbins {
        return None;
    }
    let mut s = LockStats::default();
    for a in arenas_of(i)? {
        s.add(&a.bins[j].0.profile(false));
    }
    Some(s)
}

/// Free extents of one page-size class: counts and bytes by state
/// (`stats.arenas.<i>.extents.<j>.*`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ExtentCounts {
    pub(crate) ndirty: usize,
    pub(crate) nmuzzy: usize,
    pub(crate) nretained: usize,
    pub(crate) dirty_bytes: usize,
    pub(crate) muzzy_bytes: usize,
    pub(crate) retained_bytes: usize,
}

/// `stats.arenas.<i>.extents.<j>.*`: free extents whose size rounds down
/// to page-size class `j` (jemalloc's `pszind`: the `j`-th size class
/// that is whole pages; None past the last).
pub(crate) fn extents(i: usize, j: usize) -> Option<ExtentCounts> {
    let page = sc::geom().page;
    // Size classes whose extents count for page class j: from its class
    // up to the next page class.
    let mut classes = (0..sc::NSIZES).filter(|&c| sc::index_to_size(c).is_multiple_of(page));
    let lo = classes.nth(j)?;
    let hi = classes.next().unwrap_or(sc::NSIZES);
    let mut t = ExtentCounts::default();
    for a in arenas_of(i)? {
        let p = a.pages.lock();
        for c in lo..hi {
            let (n, b) = p.dirty_class_counts(c);
            t.ndirty += n;
            t.dirty_bytes += b;
            let (n, b) = p.muzzy.class_counts(c);
            t.nmuzzy += n;
            t.muzzy_bytes += b;
            let (n, b) = p.retained.class_counts(c);
            t.nretained += n;
            t.retained_bytes += b;
        }
    }
    Some(t)
}

/// Process-wide locks (`stats.mutexes.<name>`): jemalloc's `ctl` (here
/// the epoch snapshot's lock) and rjem's own.
pub(crate) const GLOBAL_LOCKS: &[&str] = &["ctl", "arenas", "base", "tcaches", "prof"];

/// The profile of global lock `GLOBAL_LOCKS[k]`; `reset` clears it.
pub(crate) fn global_lock(k: usize, reset: bool) -> Option<LockStats> {
    Some(match k {
        0 => EPOCH_TOTALS.profile(reset),
        1 => arena::lock_stats(reset),
        2 => base::lock_stats(reset),
        3 => tcache::lock_stats(reset),
        4 => profiler::lock_stats(reset),
        _ => return None,
    })
}

/// `stats.mutexes.reset`: clears every lock's profile.
pub(crate) fn reset_lock_stats() {
    for k in 0..GLOBAL_LOCKS.len() {
        global_lock(k, true);
    }
    for a in arena::all() {
        for b in &a.bins {
            b.0.profile(true);
        }
        a.pages.profile(true);
    }
}

fn large_counts(a: &Arena, ind: usize) -> (u64, u64) {
    (
        a.large.nmalloc[ind].load(Ordering::Relaxed),
        a.large.ndalloc[ind].load(Ordering::Relaxed),
    )
}

/// `stats.arenas.<i>.bins.<j>.*`: small class `j` (None past the last).
pub(crate) fn bin(i: usize, j: usize) -> Option<BinStats> {
    if j >= sc::geom().nbins {
        return None;
    }
    let mut s = BinStats::default();
    for a in arenas_of(i)? {
        s.add(&a.bins[j].0.lock().stats());
    }
    Some(s)
}

/// `stats.arenas.<i>.lextents.<j>.*`: (nmalloc, ndalloc) of large class
/// `j` (None past the last).
pub(crate) fn lextent(i: usize, j: usize) -> Option<(u64, u64)> {
    let ind = sc::geom().nbins + j;
    if ind >= sc::NSIZES {
        return None;
    }
    let (mut n, mut d) = (0, 0);
    for a in arenas_of(i)? {
        let (an, ad) = large_counts(a, ind);
        n += an;
        d += ad;
    }
    Some((n, d))
}
