//! Arenas: independent heaps that isolate lock contention.
//!
//! Owns: the table of arenas, each with one locked bin per small class, one
//! page allocator (for slabs and large extents) and large-allocation
//! counters; and thread binding: a thread is bound at first use to the arena
//! with the fewest bound threads (an arena not yet created counts as empty),
//! among `narenas` (default 4 x CPUs). With `percpu_arena`, a thread uses
//! instead the arena of the CPU it runs on (`percpu`: arena = CPU;
//! `phycpu`: the two hyperthreads of a core, CPUs c and c + n/2, share
//! one), and `narenas` is at least the number of those arenas; the
//! binding follows the thread's CPU on slow paths (`percpu_index`).
//!
//! Also owns the huge arena: requests of `oversize_threshold` bytes and more
//! that bypass the thread cache are placed in one arena (index `narenas`),
//! so that huge blocks do not fragment the others. It decays like every
//! arena: a freed huge block stays for reuse while hot (jemalloc purges it
//! at once, and every reuse faults its pages in again) and goes back over
//! the decay time.
//!
//! Also owns manual arenas (`arenas.create`, above the huge arena's index),
//! optionally with custom extent hooks, and their reset and destruction.
//!
//! Invariants: arenas live in base memory (`&'static Arena`); automatic
//! arenas are never destroyed. A destroyed manual arena's structure stays
//! valid and is kept for the next arena created at its index; its counters
//! are added to the graveyard (`MALLCTL_ARENAS_DESTROYED`). An extent
//! belongs to one arena for life, and memory is always returned to the
//! arena that owns it, whichever thread frees it. Arena `i` is published in
//! `ARENAS[i]` only when fully built.

use crate::base;
use crate::bin::{Bin, BinCtx};
use crate::ehooks::Ehooks;
use crate::emap::Entry;
use crate::extent::{ERef, GUARDED, SLAB};
use crate::os;
use crate::pages::{self, GuardSampler, Pages, PurgePolicy};
use crate::size_class::{self as sc, NBINS_MAX, NSIZES};
use crate::sync::Mutex;
use core::ffi::CStr;
use core::ptr;
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

/// Arena indices stay below this (jemalloc's `MALLCTL_ARENAS_ALL`).
pub(crate) const MAX_ARENAS: usize = 4096;
/// Most automatic arenas: one index above them is left for the huge arena.
pub(crate) const NARENAS_MAX: usize = MAX_ARENAS - 1;

/// Option `narenas`: automatic arenas threads are spread over. Like every
/// `OPT_*` static, written by `conf::boot` (defaults live in its table);
/// `boot` below then replaces 0 with 4 x CPUs, as jemalloc does.
pub(crate) static OPT_NARENAS: AtomicUsize = AtomicUsize::new(0);
/// Options `dirty_decay_ms` and `muzzy_decay_ms`: the decay times arenas
/// start with (`boot` copies them into the run-time defaults).
pub(crate) static OPT_DIRTY_DECAY_MS: AtomicI64 = AtomicI64::new(0);
pub(crate) static OPT_MUZZY_DECAY_MS: AtomicI64 = AtomicI64::new(0);
/// Option `oversize_threshold`: uncached large requests of at least this
/// many bytes go to the huge arena; 0 disables it.
pub(crate) static OPT_OVERSIZE_THRESHOLD: AtomicUsize = AtomicUsize::new(0);

/// Option `percpu_arena`: an index into `PERCPU_NAMES` (`boot` turns it
/// back to disabled where the CPU cannot be read).
pub(crate) static OPT_PERCPU_ARENA: AtomicU8 = AtomicU8::new(PERCPU_DISABLED);
pub(crate) static PERCPU_NAMES: &[&CStr] = &[c"disabled", c"percpu", c"phycpu"];
const PERCPU_DISABLED: u8 = 0;
const PHYCPU: u8 = 2;
/// With `percpu_arena`: CPU ids are below this (`os::cpu_id_limit`), and
/// arenas `0..PERCPU_LIMIT` are the per-CPU ones (set by `boot`).
static NCPU_IDS: AtomicUsize = AtomicUsize::new(0);
static PERCPU_LIMIT: AtomicUsize = AtomicUsize::new(0);

static ARENAS: [AtomicPtr<Arena>; MAX_ARENAS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_ARENAS];
/// Destroyed manual arenas, by index, kept for reuse (under `ARENAS_LOCK`).
static SPARE: [AtomicPtr<Arena>; MAX_ARENAS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_ARENAS];
/// An arena that never allocates: the sum of destroyed arenas' counters.
static GRAVE: AtomicPtr<Arena> = AtomicPtr::new(ptr::null_mut());
/// Serialises arena creation and thread binding.
static ARENAS_LOCK: Mutex<()> = Mutex::new(());

/// Decay times given to arenas created from now on (`arenas.dirty_decay_ms`,
/// `arenas.muzzy_decay_ms`); set from the options by `boot`.
static DEFAULT_DIRTY_MS: AtomicI64 = AtomicI64::new(0);
static DEFAULT_MUZZY_MS: AtomicI64 = AtomicI64::new(0);

/// A bin lock on its own cache line, so neighbouring bins do not false-share.
#[repr(align(64))]
pub(crate) struct PaddedBin(pub Mutex<Bin>);

/// Counters for large allocations of one arena, per size class.
pub(crate) struct LargeStats {
    pub(crate) nmalloc: [AtomicU64; NSIZES],
    pub(crate) ndalloc: [AtomicU64; NSIZES],
    /// Thread-cache flushes that returned large blocks here.
    pub(crate) nflushes: AtomicU64,
}

pub(crate) struct Arena {
    pub(crate) ind: usize,
    /// Threads currently bound.
    pub(crate) nthreads: AtomicUsize,
    /// Automatic arena counted in `BUSY` (changed under the page lock).
    busy: AtomicBool,
    pub(crate) bins: [PaddedBin; NBINS_MAX],
    pub(crate) pages: Mutex<Pages>,
    pub(crate) large: LargeStats,
    /// When the arena was created (`os::now_ns`), for its uptime.
    pub(crate) created_ns: AtomicU64,
    /// Bytes of blocks rjem allocated here for itself: thread-cache stacks
    /// (`stats.arenas.<i>.internal`; also counted as allocated).
    pub(crate) internal: AtomicUsize,
}

impl Arena {
    /// Builds arena `ind` in base memory (or takes the spare structure a
    /// destroyed arena `ind` left), with `hooks` if given. None when out
    /// of memory.
    fn create(ind: usize, hooks: Option<Ehooks>) -> Option<&'static Arena> {
        let spare = SPARE[ind].swap(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: spare arenas live in base memory forever.
        let a = match unsafe { spare.as_ref() } {
            Some(a) => a,
            None => Self::build(ind).or_else(|| {
                reclaim(core::mem::size_of::<Arena>())
                    .then(|| Self::build(ind))
                    .flatten()
            })?,
        };
        a.created_ns.store(os::now_ns(), Ordering::Relaxed);
        if let Some(h) = hooks {
            a.pages.lock().set_hooks(h.for_arena(ind));
        }
        Some(a)
    }

    /// A new arena structure in base memory.
    fn build(ind: usize) -> Option<&'static Arena> {
        let g = sc::geom();
        let p = base::alloc(core::mem::size_of::<Arena>(), 64, base::Use::Arenas) as *mut Arena;
        if p.is_null() {
            return None;
        }
        let (lg_fit, policy) = page_policy(ind);
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
    fn bin_ctx<'a>(&'a self, ind: usize, guards: Option<&'a GuardSampler>) -> BinCtx<'a> {
        let g = sc::geom();
        BinCtx {
            ind,
            arena: self.ind,
            info: &g.bins[ind],
            words: g.bitmap_words,
            pages: &self.pages,
            guards,
        }
    }

    /// Fills `out` with regions of small class `ind`; returns how many.
    /// New slabs count towards `guards` (the allocating thread's sampler;
    /// None: never guarded).
    pub(crate) fn fill(
        &self,
        ind: usize,
        out: &mut [*mut u8],
        guards: Option<&GuardSampler>,
    ) -> usize {
        let cx = self.bin_ctx(ind, guards);
        let mut bin = self.bins[ind].0.lock();
        bin.stats.nfills += 1;
        let n = bin.fill(&cx, out);
        drop(bin);
        if n == 0 && self.reclaim_for(cx.info.slab_size) {
            return self.bins[ind].0.lock().fill(&cx, out);
        }
        n
    }

    /// One region of small class `ind`, or null (`guards` as for `fill`).
    pub(crate) fn small_alloc(&self, ind: usize, guards: Option<&GuardSampler>) -> *mut u8 {
        let mut one = [ptr::null_mut(); 1];
        let cx = self.bin_ctx(ind, guards);
        let n = self.bins[ind].0.lock().fill(&cx, &mut one);
        if n == 0 && self.reclaim_for(cx.info.slab_size) {
            self.bins[ind].0.lock().fill(&cx, &mut one);
        }
        one[0]
    }

    /// Out of memory for a request of `size` bytes in this arena (for a
    /// slab, or the slab's metadata): gives every arena's free pages back
    /// (`reclaim`) if that can help, and says whether to try again. Not for
    /// arenas with custom hooks, whose memory does not come from the OS.
    #[cold]
    fn reclaim_for(&self, size: usize) -> bool {
        self.pages.lock().hooks().is_default() && reclaim(size)
    }

    /// This arena just took `need` bytes of pages that were not resident
    /// for a large block: the automatic arenas that no thread is bound to
    /// (within their `IDLE_GRACE_NS` too) purge as many bytes of what they
    /// keep beyond `DIRTY_FLOOR_IDLE`, largest extents first, so that
    /// resident memory does not grow by `need` while memory that no thread
    /// uses waits for one. Busy arenas keep theirs. A program whose rounds
    /// of threads shrink allocates its next round's buffers right after
    /// the last round's threads left their arenas (Rust par-sort).
    fn reclaim_idle(&self, need: usize) {
        let mut left = need;
        for a in (0..narenas()).filter_map(get) {
            if left == 0 {
                break;
            }
            if a.ind != self.ind && !a.busy.load(Ordering::Relaxed) {
                let purged = a.pages.lock().purge_dirty_over(DIRTY_FLOOR_IDLE, left);
                left = left.saturating_sub(purged);
            }
        }
    }

    /// Whether `p` is a free region of slab `s` (this arena's, class `ind`
    /// when `p` was live): a double-free check, under the bin's lock.
    pub(crate) fn small_is_free(&self, s: ERef, ind: usize, p: *mut u8) -> bool {
        let cx = self.bin_ctx(ind, None);
        let _bin = self.bins[ind].0.lock();
        s.has(SLAB) && s.szind() == ind && crate::slab::is_free(s, cx.info, cx.words, p)
    }

    /// Returns region `p` of slab `s` (owned by this arena, class `ind`).
    pub(crate) fn small_dalloc(&self, s: ERef, ind: usize, p: *mut u8) {
        let cx = self.bin_ctx(ind, None);
        self.bins[ind].0.lock().dalloc(&cx, s, p);
    }

    /// Returns the blocks of class `ind` in `items` that are this arena's,
    /// under one lock acquisition, and moves the others to the front of
    /// `items`; returns how many those are (`Bin::dalloc_batch`).
    pub(crate) fn small_dalloc_batch(&self, ind: usize, items: &mut [*mut u8]) -> usize {
        let cx = self.bin_ctx(ind, None);
        let mut bin = self.bins[ind].0.lock();
        bin.stats.nflushes += 1;
        bin.dalloc_batch(&cx, items)
    }

    /// A large allocation of usable size `usize` (a large class) aligned to
    /// `align`; zeroed if asked. Null when out of memory. The extent counts
    /// towards `guards` (the allocating thread's sampler; None: never
    /// guarded).
    pub(crate) fn large_alloc(
        &self,
        usize: usize,
        align: usize,
        zero: bool,
        guards: Option<&GuardSampler>,
    ) -> *mut u8 {
        let g = sc::geom();
        let ind = sc::size_to_index(usize);
        // The extent's size: the class, and `cache_oblivious`'s page.
        let Some(esize) = usize.checked_add(crate::extent::large_pad()) else {
            return ptr::null_mut();
        };
        let eligible = align <= g.page
            && esize
                .checked_add(2 * g.page)
                .is_some_and(|s| s <= sc::LARGE_MAXCLASS);
        let guard =
            guards.is_some_and(|s| s.large(eligible, || self.pages.lock().hooks().is_default()));
        let try_alloc = || {
            let mut pages = self.pages.lock();
            let (e, z) = if guard {
                pages.alloc_guarded(esize, 0)?
            } else {
                pages.alloc(esize, align.max(g.page))?
            };
            pages.register_active(e, ind, false);
            Some((e, z))
        };
        let got = try_alloc().or_else(|| {
            let need = esize.saturating_add(align);
            self.reclaim_for(need).then(try_alloc).flatten()
        });
        let Some((e, zeroed)) = got else {
            return ptr::null_mut();
        };
        if zeroed {
            // Pages that were not resident: the block will fault them in.
            self.reclaim_idle(esize);
        }
        self.large.nmalloc[ind].fetch_add(1, Ordering::Relaxed);
        e.set_lead(crate::extent::choose_lead(align));
        let p = e.block() as *mut u8;
        if zero && !zeroed {
            // SAFETY: the extent is ours, `usize` bytes long.
            unsafe { ptr::write_bytes(p, 0, usize) };
        }
        p
    }

    /// A small block of class `ind` that the heap profiler samples: an
    /// extent of the smallest large class whose pointer-map entry reports
    /// class `ind` (not a slab), so usable sizes and frees see the small
    /// class while the extent record carries the profiler's tag
    /// (jemalloc's promotion). Counted as the large allocation it is.
    /// Null when out of memory. The profiler then makes its entry bypass
    /// the caches (`bypass_caches`).
    ///
    /// A promoted block of a class up to `LOOKUP_MAX` never starts at a
    /// 64 KiB boundary: frees that trust the caller's size push such
    /// blocks to a thread cache without looking them up
    /// (`tcache::CacheBin::trusted_mask`). An extent that would put it
    /// there gets another lead: the requested alignment (at least 16)
    /// within the first page, or, if that is a page, the extent's last
    /// page (which maps to the record, as the first does; the block fits
    /// in it, being at most `LOOKUP_MAX` bytes).
    pub(crate) fn promoted_alloc(&self, ind: usize, align: usize, zero: bool) -> *mut u8 {
        let g = sc::geom();
        let p = self.large_alloc(g.large_minclass, align, zero, None);
        let Some(e) = crate::emap::lookup(p as usize).extent() else {
            return p;
        };
        let size = sc::index_to_size(ind);
        if p as usize & 0xffff == 0 && size <= sc::LOOKUP_MAX {
            let step = align.max(16);
            e.set_lead(if step < g.page {
                step
            } else {
                e.size() - g.page
            });
            if zero {
                // SAFETY: the block moved inside the extent, which is ours;
                // only the old place was cleared.
                unsafe { ptr::write_bytes(e.block() as *mut u8, 0, size) };
            }
        }
        let p = e.block() as *mut u8;
        let at = e.block() & !(g.page - 1);
        // Entries are written under the page lock, as the page allocator
        // writes them.
        let _pages = self.pages.lock();
        crate::emap::set_range(at, g.page, Entry::new(e, ind, false));
        p
    }

    /// Live large extent `e` of this arena (a sampled block) bypasses the
    /// thread caches from now on (`Entry::bypassing`): the entry of the
    /// page its block starts in, which frees look up. Large extents are
    /// never resized in place while sampled (`api::resize_in_place`), so
    /// the entry stays until the extent is freed.
    pub(crate) fn bypass_caches(&self, e: ERef) {
        let page = sc::geom().page;
        let at = e.block() & !(page - 1);
        let _pages = self.pages.lock();
        let ent = crate::emap::lookup(at);
        if ent.extent().is_some_and(|x| ptr::eq(x, e)) {
            crate::emap::set_range(at, page, ent.bypassing());
        }
    }

    /// Frees large extent `e` (owned by this arena).
    pub(crate) fn large_dalloc(&self, e: ERef) {
        self.large.ndalloc[e.szind()].fetch_add(1, Ordering::Relaxed);
        self.pages.lock().dalloc(e);
    }

    /// Its first thread bound, or its last gone: sets the dirty floor of an
    /// automatic arena, its share of `DIRTY_BUDGET` at once (`busy_floor`,
    /// and the other busy arenas' shares change), or `DIRTY_FLOOR_IDLE`
    /// after `IDLE_GRACE_NS` (a manual arena keeps `DIRTY_FLOOR`: programs
    /// use those through `MALLOCX_ARENA` without binding). Reads the count
    /// under the page lock, so that of two racing changes the later one
    /// decides.
    fn note_binding(&self) {
        if !is_auto(self.ind) {
            return;
        }
        let mut pages = self.pages.lock();
        let busy = self.nthreads.load(Ordering::Relaxed) > 0;
        if self.busy.swap(busy, Ordering::Relaxed) == busy {
            return;
        }
        if busy {
            let n = BUSY.fetch_add(1, Ordering::Relaxed) + 1;
            pages.set_dirty_floor(busy_floor(n));
        } else {
            BUSY.fetch_sub(1, Ordering::Relaxed);
            pages.lower_dirty_floor_at(DIRTY_FLOOR_IDLE, os::now_ns() + IDLE_GRACE_NS);
        }
        drop(pages);
        // The other busy arenas' shares of `DIRTY_BUDGET` changed.
        for a in (0..narenas()).filter_map(get).filter(|a| a.ind != self.ind) {
            let mut pages = a.pages.lock();
            if a.busy.load(Ordering::Relaxed) {
                pages.set_dirty_floor(busy_floor(BUSY.load(Ordering::Relaxed)));
            }
        }
    }

    /// Purges all of this arena's freed pages now (`arena.<i>.purge`).
    pub(crate) fn purge(&self) -> usize {
        self.pages.lock().purge_all()
    }

    /// Runs decay now (`arena.<i>.decay`).
    pub(crate) fn decay(&self) -> usize {
        self.pages.lock().decay(os::now_ns())
    }

    /// Resizes large extent `e` in place to usable size `new_usize` (a large
    /// class). Returns false if the neighbouring pages are not free.
    pub(crate) fn large_resize(&self, e: ERef, new_usize: usize, zero: bool) -> bool {
        // Extent sizes include `cache_oblivious`'s page; the block starts
        // at `e.block()` and keeps its place.
        let pad = crate::extent::large_pad();
        let old = e.size() - pad;
        let Some(new_esize) = new_usize.checked_add(pad) else {
            return false;
        };
        let old_ind = e.szind();
        let new_ind = sc::size_to_index(new_usize);
        let mut pages = self.pages.lock();
        if e.has(GUARDED) {
            // Its guard pages are in the way, as in jemalloc.
            return false;
        }
        if new_usize < old {
            if !pages.shrink(e, new_esize) {
                return false;
            }
        } else if new_usize > old {
            match pages.expand(e, new_esize) {
                None => return false,
                Some(zeroed) => {
                    // With a pad, the block's new bytes start in the old
                    // extent's slack, which is not known to be zero.
                    if zero && (!zeroed || pad != 0) {
                        // SAFETY: the grown tail now belongs to `e`.
                        unsafe {
                            ptr::write_bytes((e.block() + old) as *mut u8, 0, new_usize - old)
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
    pub(crate) fn dalloc(&self, p: *mut u8, ent: Entry, e: ERef) {
        if ent.is_slab() {
            self.small_dalloc(e, ent.szind(), p);
        } else {
            self.large_dalloc(e);
        }
    }
}

/// Every arena keeps at most as many dirty pages as active ones
/// (`PurgePolicy::dirty_share`), or a floor if more: `busy_floor` while
/// threads are bound to it, or `DIRTY_FLOOR_IDLE` for an automatic arena
/// no thread has been bound to for `IDLE_GRACE_NS` (the huge arena
/// included). Freed memory stays hot for reuse while the arena
/// is busy, but a program that frees far more than it keeps (the end of a
/// burst of many threads, a phase that shrinks) gets it back at once
/// instead of over the decay time, and arenas left by exited threads hold
/// little between them. jemalloc 5.3 has a rule to the same end: a freed
/// large extent that merges with free neighbours into
/// `oversize_threshold` bytes or more is purged at once. Measured
/// (docs/benchmarks.md): after 64 threads free 1.3 GB, RSS falls to under
/// 100 MiB at once instead of over 10 s, and to about 20 MiB once the
/// idle floor applies. `DIRTY_FLOOR` is the least share of
/// `DIRTY_BUDGET` a busy arena gets.
const DIRTY_SHARE: usize = 1;
const DIRTY_FLOOR: usize = 8 << 20;
const DIRTY_FLOOR_IDLE: usize = 1 << 20;

/// The dirty memory the busy automatic arenas may keep whatever their
/// size, shared among them (`busy_floor`). A program with one or two busy
/// arenas that frees everything at the end of each round keeps the pages
/// for the next round instead of faulting them in again (Rust json:
/// 15,500 -> 5,800 page faults a run, vec-growth 9,700 -> 2,900); 64
/// threads ending a burst on 8 arenas keep 8 MiB each, as before.
const DIRTY_BUDGET: usize = 32 << 20;

/// Automatic arenas with a thread bound (`Arena::busy`).
static BUSY: AtomicUsize = AtomicUsize::new(0);

/// The dirty floor of each of `busy` busy automatic arenas.
fn busy_floor(busy: usize) -> usize {
    (DIRTY_BUDGET / busy.max(1)).max(DIRTY_FLOOR)
}

/// How long an automatic arena stays without threads before its floor
/// falls to `DIRTY_FLOOR_IDLE`. Programs that start threads in waves
/// bind the next one to the arena within milliseconds, and it reuses the
/// pages its predecessor left; purging them at once cost thread-churn
/// 5,464 madvise calls instead of 502 and three times the time
/// (docs/benchmarks.md). 20 ms covers that (thread-churn: same time and
/// madvise calls as with 200 ms), while a program whose rounds of threads
/// shrink leaves less behind on the arenas they stop using (Rust par-sort:
/// peak RSS 38.6 -> 34.7 MiB). The cost: a thread bound to an arena idle
/// for longer faults in again what was purged (at most the busy floor).
const IDLE_GRACE_NS: u64 = 20_000_000;

/// The page allocator's settings for new arena `ind`: (lg of the fit cap,
/// purge policy). The huge arena purges before growing (see
/// `PurgePolicy::huge_blocks`). Under `thp:huge` it also asks for transparent
/// huge pages on all its mappings: its blocks of `oversize_threshold`
/// (8 MiB) and more are written in 2 MiB faults instead of 4 KiB ones, as
/// with current mimalloc, which advises huge pages on all its memory, but
/// a sparsely written block holds 2 MiB per page touched (64 blocks of
/// 8 MiB with 20 KiB written each: 1 -> 128 MiB). The default, `thp:auto`,
/// asks only after written memory (`Pages::wants_huge_pages`).
fn page_policy(ind: usize) -> (u32, PurgePolicy) {
    let lg_fit = pages::OPT_LG_EXTENT_MAX_ACTIVE_FIT.load(Ordering::Relaxed) as u32;
    let (dirty_decay_ms, muzzy_decay_ms) = default_decay_ms();
    let policy = PurgePolicy {
        dirty_decay_ms,
        muzzy_decay_ms,
        retain: pages::OPT_RETAIN.load(Ordering::Relaxed),
        dirty_share: DIRTY_SHARE,
        // Automatic arenas: no thread is bound yet (`Arena::note_binding`).
        dirty_floor: if is_auto(ind) {
            DIRTY_FLOOR_IDLE
        } else {
            DIRTY_FLOOR
        },
        huge_blocks: ind == narenas(),
    };
    (lg_fit, policy)
}

/// Resolves the options and creates arena 0 (start-up). False when out of
/// memory.
pub(crate) fn boot() -> bool {
    let mode = OPT_PERCPU_ARENA.load(Ordering::Relaxed);
    if mode != PERCPU_DISABLED && os::current_cpu().is_none() {
        os::write_stderr(b"<rjem>: percpu_arena: the current CPU cannot be read; disabled\n");
        OPT_PERCPU_ARENA.store(PERCPU_DISABLED, Ordering::Relaxed);
    } else if mode != PERCPU_DISABLED {
        // As jemalloc: one arena per CPU, or per pair of hyperthreads; an
        // explicit `narenas` may only add arenas (used by no CPU).
        let n = os::cpu_id_limit().min(NARENAS_MAX);
        let limit = if mode == PHYCPU && n > 1 {
            n.div_ceil(2)
        } else {
            n
        };
        NCPU_IDS.store(n, Ordering::Relaxed);
        PERCPU_LIMIT.store(limit, Ordering::Relaxed);
        OPT_NARENAS.fetch_max(limit, Ordering::Relaxed);
    }
    if OPT_NARENAS.load(Ordering::Relaxed) == 0 {
        OPT_NARENAS.store((4 * os::ncpus()).min(NARENAS_MAX), Ordering::Relaxed);
    }
    set_new_arena_decay_ms(
        Some(OPT_DIRTY_DECAY_MS.load(Ordering::Relaxed)),
        Some(OPT_MUZZY_DECAY_MS.load(Ordering::Relaxed)),
    );
    get_or_create(0).is_some()
}

/// Automatic arenas threads are spread over.
pub(crate) fn narenas() -> usize {
    OPT_NARENAS.load(Ordering::Relaxed)
}

/// The arena an uncached large request of usable size `usize` goes to: the
/// huge arena from `oversize_threshold` on, otherwise `bound` (the calling
/// thread's). None when the huge arena cannot be created.
pub(crate) fn for_large(bound: &'static Arena, usize: usize) -> Option<&'static Arena> {
    let threshold = OPT_OVERSIZE_THRESHOLD.load(Ordering::Relaxed);
    if threshold != 0 && usize >= threshold {
        get_or_create(narenas())
    } else {
        Some(bound)
    }
}

/// Decay times (dirty, muzzy) new arenas get (`arenas.dirty_decay_ms`).
pub(crate) fn default_decay_ms() -> (i64, i64) {
    (
        DEFAULT_DIRTY_MS.load(Ordering::Relaxed),
        DEFAULT_MUZZY_MS.load(Ordering::Relaxed),
    )
}

/// Sets the decay times arenas created from now on start with
/// (`arenas.dirty_decay_ms`); None leaves one unchanged. Times must satisfy
/// `decay::valid_ms`.
pub(crate) fn set_new_arena_decay_ms(dirty: Option<i64>, muzzy: Option<i64>) {
    if let Some(d) = dirty {
        DEFAULT_DIRTY_MS.store(d, Ordering::Relaxed);
    }
    if let Some(m) = muzzy {
        DEFAULT_MUZZY_MS.store(m, Ordering::Relaxed);
    }
}

/// Sets the decay times of arenas created from now on and of every existing
/// automatic arena (the huge arena included).
pub(crate) fn set_decay_ms_all(dirty: Option<i64>, muzzy: Option<i64>) {
    set_new_arena_decay_ms(dirty, muzzy);
    for a in all().filter(|a| is_auto(a.ind)) {
        a.pages.lock().set_decay(dirty, muzzy);
    }
}

/// The last step before an allocation fails: every arena purges its freed
/// pages and gives its address space back to the OS (`Pages::release_all`),
/// so the failing arena, or metadata (`base`), can map it again. Skipped
/// when the arenas hold less than `need` bytes of free pages (a request no
/// reclaim can serve keeps them). An arena whose page lock is held is
/// waited for a little (`RECLAIM_WAIT_NS`: another thread, the purger
/// say, lets go soon), then skipped (its holder may be the caller: a
/// custom hook that allocates). Returns whether anything was given back.
/// Takes one page lock at a time; the caller holds none of the others.
#[cold]
#[inline(never)]
pub(crate) fn reclaim(need: usize) -> bool {
    let free: usize = all()
        .filter_map(|a| a.pages.lock_within(RECLAIM_WAIT_NS).map(|p| p.free_bytes()))
        .sum();
    if free < need {
        return false;
    }
    let mut released = 0;
    for a in all() {
        if let Some(mut p) = a.pages.lock_within(RECLAIM_WAIT_NS) {
            released += p.release_all();
        }
    }
    released > 0
}

/// How long `reclaim` waits for a page lock that is held: a purge pass of
/// the purger takes well under this.
const RECLAIM_WAIT_NS: u64 = 50_000_000;

/// Allocates an internal block of usable size `usize` (a class, at least
/// `align`-aligned) from `a`, counted as its `internal` bytes. Null when
/// out of memory.
pub(crate) fn alloc_internal(a: &Arena, usize: usize, align: usize) -> *mut u8 {
    let ind = sc::size_to_index(usize);
    let p = if sc::geom().is_small(ind) {
        a.small_alloc(ind, None)
    } else {
        a.large_alloc(usize, align, false, None)
    };
    if !p.is_null() {
        a.internal.fetch_add(usize, Ordering::Relaxed);
    }
    p
}

/// Frees an internal block from `alloc_internal`. One that is not live
/// is corrupted metadata: fatal.
pub(crate) fn dalloc_internal(p: *mut u8) {
    let ent = crate::emap::lookup(p as usize);
    let Some(e) = ent.extent().filter(|_| ent.is_active()) else {
        crate::os::fatal("internal block not live", p as usize)
    };
    if let Some(a) = get(e.arena()) {
        let usize = sc::index_to_size(ent.szind());
        a.internal.fetch_sub(usize, Ordering::Relaxed);
    }
    dalloc_direct(p, ent);
}

/// Frees live block `p` (pointer-map entry `ent`) straight to the arena
/// that owns it, bypassing every cache. If `p` is not a block start (or
/// names no arena), the misuse is reported and, with `abort:false`,
/// nothing freed.
pub(crate) fn dalloc_direct(p: *mut u8, ent: Entry) {
    let Some(e) = ent.owner(p) else {
        return;
    };
    match get(e.arena()) {
        Some(a) => a.dalloc(p, ent, e),
        None => crate::emap::invalid_free(p),
    }
}

/// Arena `i`, if created.
#[inline]
pub(crate) fn get(i: usize) -> Option<&'static Arena> {
    let p = ARENAS.get(i)?.load(Ordering::Acquire);
    // SAFETY: published arenas live in base memory forever.
    unsafe { p.as_ref() }
}

/// Arena `i`, creating it (with default hooks) if needed, as jemalloc
/// does for `MALLOCX_ARENA` (and for arena 0 at start-up). Above the huge
/// arena's index, that is a manual arena.
pub(crate) fn get_or_create(i: usize) -> Option<&'static Arena> {
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
    let a = Arena::create(i, None)?;
    ARENAS[i].store(a as *const Arena as *mut Arena, Ordering::Release);
    Some(a)
}

/// With `percpu_arena`, the arenas `0..percpu_limit()` belong to CPUs
/// (0 when disabled): a thread bound to one follows its CPU, a thread
/// bound elsewhere (`thread.arena`) stays.
pub(crate) fn percpu_limit() -> usize {
    PERCPU_LIMIT.load(Ordering::Relaxed)
}

/// With `percpu_arena`, the arena of the CPU the calling thread runs on
/// (jemalloc's `percpu_arena_choose`); None when disabled.
#[inline]
pub(crate) fn percpu_index() -> Option<usize> {
    let limit = percpu_limit();
    if limit == 0 {
        return None;
    }
    let cpu = os::current_cpu()?;
    let half = NCPU_IDS.load(Ordering::Relaxed) / 2;
    let i = if OPT_PERCPU_ARENA.load(Ordering::Relaxed) == PHYCPU && cpu >= half {
        cpu - half
    } else {
        cpu
    };
    // A CPU outside the affinity mask seen at start-up still gets one.
    Some(i % limit)
}

/// Binds the calling thread: with `percpu_arena` its CPU's arena;
/// otherwise the least-loaded of the automatic arenas. An idle arena that
/// exists is reused before a new one is created; a new one is created
/// before two threads share one.
pub(crate) fn choose() -> Option<&'static Arena> {
    if let Some(i) = percpu_index() {
        let a = get_or_create(i)?;
        bind(a);
        return Some(a);
    }
    let n = narenas();
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
        if let Some(a) = Arena::create(i, None) {
            ARENAS[i].store(a as *const Arena as *mut Arena, Ordering::Release);
            best = Some(a);
        }
    }
    let a = best?;
    let first = a.nthreads.fetch_add(1, Ordering::Relaxed) == 0;
    drop(_g);
    if first {
        a.note_binding();
    }
    Some(a)
}

/// The arena table lock's profile (`stats.mutexes.arenas`, rjem's);
/// `reset` clears it.
pub(crate) fn lock_stats(reset: bool) -> crate::sync::LockStats {
    ARENAS_LOCK.profile(reset)
}

/// Binds one more thread to `a`.
pub(crate) fn bind(a: &Arena) {
    if a.nthreads.fetch_add(1, Ordering::Relaxed) == 0 {
        a.note_binding();
    }
}

/// Creates a manual arena at the lowest free index above the automatic
/// arenas and the huge arena (`arenas.create`), with custom `hooks` if
/// given. None when no index is free or memory ran out.
pub(crate) fn create(hooks: Option<Ehooks>) -> Option<&'static Arena> {
    let _g = ARENAS_LOCK.lock();
    let i = (narenas() + 1..MAX_ARENAS).find(|&i| get(i).is_none())?;
    let a = Arena::create(i, hooks)?;
    ARENAS[i].store(a as *const Arena as *mut Arena, Ordering::Release);
    Some(a)
}

/// Whether `i` is an automatic arena's index or the huge arena's (those
/// are never reset nor destroyed).
pub(crate) fn is_auto(i: usize) -> bool {
    i <= narenas()
}

/// Why a manual arena cannot be reset or destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No such arena, or an automatic one.
    NotManual,
    /// Threads are bound to it (`thread.arena`); destroy only.
    InUse,
    /// Out of memory for the graveyard's counters; destroy only.
    NoMemory,
}

/// Discards every allocation of manual arena `i` (`arena.<i>.reset`):
/// its slabs and large extents become free pages, counted as freed.
/// Blocks of the arena that thread caches still hold must have been
/// flushed by the caller, and nothing may use the arena meanwhile.
pub(crate) fn reset(i: usize) -> Result<(), Refusal> {
    let _g = ARENAS_LOCK.lock();
    let a = get(i).filter(|_| !is_auto(i)).ok_or(Refusal::NotManual)?;
    discard_all(a);
    Ok(())
}

fn discard_all(a: &Arena) {
    let nbins = sc::geom().nbins;
    for b in &a.bins[..nbins] {
        b.0.lock().discard();
    }
    let mut pages = a.pages.lock();
    while let Some(e) = pages.first_active() {
        if !e.has(SLAB) {
            a.large.ndalloc[e.szind()].fetch_add(1, Ordering::Relaxed);
        }
        pages.dalloc(e);
    }
}

/// Destroys manual arena `i` (`arena.<i>.destroy`): discards its
/// allocations as `reset` does, gives all its memory back (through its
/// hooks' `destroy`), adds its counters to the graveyard, and frees its
/// index for `create`. Refused while threads are bound to it.
pub(crate) fn destroy(i: usize) -> Result<(), Refusal> {
    let _g = ARENAS_LOCK.lock();
    let a = get(i).filter(|_| !is_auto(i)).ok_or(Refusal::NotManual)?;
    if a.nthreads.load(Ordering::Relaxed) > 0 {
        return Err(Refusal::InUse);
    }
    let grave = graveyard_or_build().ok_or(Refusal::NoMemory)?;
    discard_all(a);
    let nbins = sc::geom().nbins;
    for (b, gb) in a.bins[..nbins].iter().zip(&grave.bins) {
        let mut b = b.0.lock();
        gb.0.lock().stats.add(&b.stats);
        *b = Bin::new();
    }
    for ind in 0..NSIZES {
        for (c, gc) in [
            (&a.large.nmalloc[ind], &grave.large.nmalloc[ind]),
            (&a.large.ndalloc[ind], &grave.large.ndalloc[ind]),
        ] {
            gc.fetch_add(c.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
    }
    let n = a.large.nflushes.swap(0, Ordering::Relaxed);
    grave.large.nflushes.fetch_add(n, Ordering::Relaxed);
    let (lg_fit, policy) = page_policy(i);
    let old = a.pages.lock().destroy_all(lg_fit, policy);
    let mut gp = grave.pages.lock();
    gp.stats.dirty.add(&old.dirty);
    gp.stats.muzzy.add(&old.muzzy);
    drop(gp);
    ARENAS[i].store(ptr::null_mut(), Ordering::Release);
    SPARE[i].store(a as *const Arena as *mut Arena, Ordering::Relaxed);
    Ok(())
}

/// The graveyard: destroyed arenas' counters (`MALLCTL_ARENAS_DESTROYED`);
/// None until an arena has been destroyed.
pub(crate) fn graveyard() -> Option<&'static Arena> {
    // SAFETY: the graveyard lives in base memory forever.
    unsafe { GRAVE.load(Ordering::Acquire).as_ref() }
}

fn graveyard_or_build() -> Option<&'static Arena> {
    if let Some(g) = graveyard() {
        return Some(g);
    }
    // Built under ARENAS_LOCK (held by `destroy`); index MAX_ARENAS names no
    // arena, so nothing can reach its pages.
    let g = Arena::build(MAX_ARENAS)?;
    g.created_ns.store(os::now_ns(), Ordering::Relaxed);
    GRAVE.store(g as *const Arena as *mut Arena, Ordering::Release);
    Some(g)
}

/// Unbinds a thread from `a`.
pub(crate) fn release(a: &Arena) {
    if a.nthreads.fetch_sub(1, Ordering::Relaxed) == 1 {
        a.note_binding();
    }
}

/// Number of arena slots in use (highest created index + 1).
pub(crate) fn count() -> usize {
    ARENAS
        .iter()
        .rposition(|a| !a.load(Ordering::Acquire).is_null())
        .map_or(0, |i| i + 1)
}

/// Every arena created so far, in index order.
pub(crate) fn all() -> impl Iterator<Item = &'static Arena> {
    (0..count()).filter_map(get)
}

/// Fork: take every arena lock (bins before pages, as everywhere).
pub(crate) fn fork_prepare() {
    ARENAS_LOCK.lock_raw();
    for a in all().chain(graveyard()) {
        for b in &a.bins {
            b.0.lock_raw();
        }
        a.pages.lock_raw();
    }
}

pub(crate) fn fork_parent() {
    for a in all().chain(graveyard()) {
        // SAFETY: `fork_prepare` took these locks and holds no guard.
        unsafe {
            a.pages.unlock_raw();
            for b in &a.bins {
                b.0.unlock_raw();
            }
        }
    }
    // SAFETY: as above.
    unsafe { ARENAS_LOCK.unlock_raw() };
}

pub(crate) fn fork_child() {
    BUSY.store(0, Ordering::Relaxed);
    for a in all().chain(graveyard()) {
        // SAFETY: the child of a fork whose prepare handler held these.
        unsafe {
            a.pages.reset_in_child();
            for b in &a.bins {
                b.0.reset_in_child();
            }
        }
        // Only the forking thread survives in the child (bound again by
        // `tsd::fork_child`).
        a.nthreads.store(0, Ordering::Relaxed);
        a.busy.store(false, Ordering::Relaxed);
        if is_auto(a.ind) {
            a.pages.lock().set_dirty_floor(DIRTY_FLOOR_IDLE);
        }
    }
    // SAFETY: as above.
    unsafe { ARENAS_LOCK.reset_in_child() };
}
