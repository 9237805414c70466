//! Arenas: independent heaps that isolate lock contention.
//!
//! Owns: the table of arenas, each with one locked bin per small class, one
//! page allocator (for slabs and large extents) and large-allocation
//! counters; and thread binding: a thread is bound at first use to the arena
//! with the fewest bound threads (an arena not yet created counts as empty),
//! among `narenas` (default 4 x CPUs).
//!
//! Invariants: arenas are created once, never destroyed, and live in base
//! memory (`&'static Arena`); an extent belongs to one arena for life, and
//! memory is always returned to the arena that owns it, whichever thread
//! frees it. Arena `i` is published in `ARENAS[i]` only when fully built.

use crate::base;
use crate::bin::{Bin, BinCtx};
use crate::conf::BackgroundMode;
use crate::emap::Entry;
use crate::extent::ERef;
use crate::global;
use crate::pages::{Pages, PurgePolicy};
use crate::size_class::{self as sc, NBINS_MAX, NSIZES};
use crate::sync::Mutex;
use core::ptr;
use core::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Arena indices stay below this (jemalloc's `MALLCTL_ARENAS_ALL`).
pub const MAX_ARENAS: usize = 4096;

static ARENAS: [AtomicPtr<Arena>; MAX_ARENAS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_ARENAS];
/// Serialises arena creation and thread binding.
static ARENAS_LOCK: Mutex<()> = Mutex::new(());

/// Decay times given to arenas created from now on (`arenas.dirty_decay_ms`,
/// `arenas.muzzy_decay_ms`); set from the options at start-up.
pub static DEFAULT_DIRTY_MS: AtomicI64 = AtomicI64::new(10_000);
pub static DEFAULT_MUZZY_MS: AtomicI64 = AtomicI64::new(0);

/// A bin lock on its own cache line, so neighbouring bins do not false-share.
#[repr(align(64))]
pub struct PaddedBin(pub Mutex<Bin>);

/// Counters for large allocations of one arena, per size class.
pub struct LargeStats {
    pub nmalloc: [AtomicU64; NSIZES],
    pub ndalloc: [AtomicU64; NSIZES],
}

pub struct Arena {
    pub ind: usize,
    /// Threads currently bound.
    pub nthreads: AtomicUsize,
    pub bins: [PaddedBin; NBINS_MAX],
    pub pages: Mutex<Pages>,
    pub large: LargeStats,
}

impl Arena {
    /// Builds arena `ind` in base memory. None when out of memory.
    fn create(ind: usize) -> Option<&'static Arena> {
        let g = global::geom();
        let p = base::alloc(core::mem::size_of::<Arena>(), 64) as *mut Arena;
        if p.is_null() {
            return None;
        }
        let c = global::conf();
        let lg_fit = c.lg_extent_max_active_fit;
        // The huge arena (just past the automatic ones) purges at once.
        let huge = ind == global::narenas();
        let policy = PurgePolicy {
            dirty_decay_ms: if huge {
                0
            } else {
                DEFAULT_DIRTY_MS.load(Ordering::Relaxed)
            },
            muzzy_decay_ms: if huge {
                0
            } else {
                DEFAULT_MUZZY_MS.load(Ordering::Relaxed)
            },
            retain: c.retain,
            inline: c.background_thread != BackgroundMode::On,
        };
        // SAFETY: base memory is zeroed and exclusively ours. A zeroed Arena
        // is a valid value (unlocked mutexes, empty bins and heaps, zero
        // counters); we then overwrite the fields that need other values
        // before publishing it. Base memory lives forever.
        unsafe {
            ptr::addr_of_mut!((*p).ind).write(ind);
            ptr::addr_of_mut!((*p).pages)
                .write(Mutex::new(Pages::new(ind, g.page, lg_fit, policy)));
            Some(&*p)
        }
    }

    #[inline]
    fn bin_ctx(&self, ind: usize) -> BinCtx<'_> {
        let g = global::geom();
        BinCtx {
            ind,
            info: &g.bins[ind],
            words: g.bitmap_words,
            page: g.page,
            pages: &self.pages,
        }
    }

    /// Fills `out` with regions of small class `ind`; returns how many.
    pub fn fill(&self, ind: usize, out: &mut [*mut u8]) -> usize {
        let cx = self.bin_ctx(ind);
        let mut bin = self.bins[ind].0.lock();
        bin.stats.nfills += 1;
        bin.fill(&cx, out)
    }

    /// One region of small class `ind`, or null.
    pub fn small_alloc(&self, ind: usize) -> *mut u8 {
        let mut one = [ptr::null_mut(); 1];
        let cx = self.bin_ctx(ind);
        self.bins[ind].0.lock().fill(&cx, &mut one);
        one[0]
    }

    /// Returns region `p` of slab `s` (owned by this arena, class `ind`).
    pub fn small_dalloc(&self, s: ERef, ind: usize, p: *mut u8) {
        let cx = self.bin_ctx(ind);
        self.bins[ind].0.lock().dalloc(&cx, s, p);
    }

    /// Returns several regions of class `ind` under one lock acquisition.
    /// Each item is (pointer, its slab) and must belong to this arena.
    pub fn small_dalloc_batch(&self, ind: usize, items: impl Iterator<Item = (*mut u8, ERef)>) {
        let cx = self.bin_ctx(ind);
        let mut bin = self.bins[ind].0.lock();
        bin.stats.nflushes += 1;
        for (p, s) in items {
            bin.dalloc(&cx, s, p);
        }
    }

    /// A large allocation of usable size `usize` (a large class) aligned to
    /// `align`; zeroed if asked. Null when out of memory.
    pub fn large_alloc(&self, usize: usize, align: usize, zero: bool) -> *mut u8 {
        let g = global::geom();
        let ind = sc::size_to_index(usize);
        let (e, zeroed) = {
            let mut pages = self.pages.lock();
            let Some((e, z)) = pages.alloc(usize, align.max(g.page)) else {
                return ptr::null_mut();
            };
            pages.register_active(e, ind, false);
            (e, z)
        };
        self.large.nmalloc[ind].fetch_add(1, Ordering::Relaxed);
        let p = e.addr() as *mut u8;
        if zero && !zeroed {
            // SAFETY: the extent is ours, `usize` bytes long.
            unsafe { ptr::write_bytes(p, 0, usize) };
        }
        p
    }

    /// Frees large extent `e` (owned by this arena).
    pub fn large_dalloc(&self, e: ERef) {
        self.large.ndalloc[e.szind()].fetch_add(1, Ordering::Relaxed);
        self.pages.lock().dalloc(e);
    }

    /// Purges all of this arena's freed pages now (`arena.<i>.purge`).
    pub fn purge(&self) -> usize {
        self.pages.lock().purge_all()
    }

    /// Runs decay now (`arena.<i>.decay`).
    pub fn decay(&self) -> usize {
        self.pages.lock().decay(crate::os::now_ns())
    }

    /// Resizes large extent `e` in place to usable size `new_usize` (a large
    /// class). Returns false if the neighbouring pages are not free.
    pub fn large_resize(&self, e: ERef, new_usize: usize, zero: bool) -> bool {
        let old = e.size();
        let old_ind = e.szind();
        let new_ind = sc::size_to_index(new_usize);
        let mut pages = self.pages.lock();
        if new_usize < old {
            if !pages.shrink(e, new_usize) {
                return false;
            }
        } else if new_usize > old {
            match pages.expand(e, new_usize) {
                None => return false,
                Some(zeroed) => {
                    if zero && !zeroed {
                        // SAFETY: the grown tail now belongs to `e`.
                        unsafe {
                            ptr::write_bytes((e.addr() + old) as *mut u8, 0, new_usize - old)
                        };
                    }
                }
            }
        }
        pages.register_active(e, new_ind, false);
        drop(pages);
        self.large.ndalloc[old_ind].fetch_add(1, Ordering::Relaxed);
        self.large.nmalloc[new_ind].fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Frees memory described by pointer-map entry `ent` (an active
    /// allocation of this arena's) without any thread cache.
    pub fn dalloc(&self, p: *mut u8, ent: Entry, e: ERef) {
        if ent.is_slab() {
            self.small_dalloc(e, ent.szind(), p);
        } else {
            self.large_dalloc(e);
        }
    }
}

/// The huge arena (requests of `oversize_threshold` bytes and more), created
/// on first use just past the automatic arenas.
pub fn huge() -> Option<&'static Arena> {
    get_or_create(global::narenas())
}

/// Arena `i`, if created.
#[inline]
pub fn get(i: usize) -> Option<&'static Arena> {
    let p = ARENAS.get(i)?.load(Ordering::Acquire);
    // SAFETY: published arenas live in base memory forever.
    unsafe { p.as_ref() }
}

/// Arena `i`, creating it if needed (for `MALLOCX_ARENA` and arena 0).
pub fn get_or_create(i: usize) -> Option<&'static Arena> {
    if let Some(a) = get(i) {
        return Some(a);
    }
    if i >= MAX_ARENAS {
        return None;
    }
    let _g = ARENAS_LOCK.lock();
    if let Some(a) = get(i) {
        return Some(a);
    }
    let a = Arena::create(i)?;
    ARENAS[i].store(a as *const Arena as *mut Arena, Ordering::Release);
    Some(a)
}

/// Binds the calling thread: the least-loaded of the automatic arenas. An
/// idle arena that exists is reused before a new one is created; a new one
/// is created before two threads share one.
pub fn choose() -> Option<&'static Arena> {
    let n = global::narenas();
    let _g = ARENAS_LOCK.lock();
    let mut best: Option<&'static Arena> = None;
    let mut first_free: Option<usize> = None;
    for i in 0..n {
        match get(i) {
            None => {
                first_free.get_or_insert(i);
            }
            Some(a) => {
                let load = a.nthreads.load(Ordering::Relaxed);
                if best.is_none_or(|b| load < b.nthreads.load(Ordering::Relaxed)) {
                    best = Some(a);
                }
            }
        }
    }
    let busy = best.is_none_or(|b| b.nthreads.load(Ordering::Relaxed) > 0);
    if let (true, Some(i)) = (busy, first_free) {
        if let Some(a) = Arena::create(i) {
            ARENAS[i].store(a as *const Arena as *mut Arena, Ordering::Release);
            best = Some(a);
        }
    }
    let a = best?;
    a.nthreads.fetch_add(1, Ordering::Relaxed);
    Some(a)
}

/// Unbinds a thread from `a`.
pub fn release(a: &Arena) {
    a.nthreads.fetch_sub(1, Ordering::Relaxed);
}

/// Number of arena slots in use (highest created index + 1).
pub fn count() -> usize {
    ARENAS
        .iter()
        .rposition(|a| !a.load(Ordering::Acquire).is_null())
        .map_or(0, |i| i + 1)
}

/// Fork: take every arena lock (bins before pages, as everywhere).
pub(crate) fn fork_prepare() {
    ARENAS_LOCK.lock_raw();
    for i in 0..count() {
        if let Some(a) = get(i) {
            for b in &a.bins {
                b.0.lock_raw();
            }
            a.pages.lock_raw();
        }
    }
}

pub(crate) fn fork_parent() {
    for i in 0..count() {
        if let Some(a) = get(i) {
            a.pages.unlock_raw();
            for b in &a.bins {
                b.0.unlock_raw();
            }
        }
    }
    ARENAS_LOCK.unlock_raw();
}

pub(crate) fn fork_child() {
    for i in 0..count() {
        if let Some(a) = get(i) {
            a.pages.reset_in_child();
            for b in &a.bins {
                b.0.reset_in_child();
            }
            // Only the forking thread survives in the child.
            a.nthreads.store(0, Ordering::Relaxed);
        }
    }
    ARENAS_LOCK.reset_in_child();
}
