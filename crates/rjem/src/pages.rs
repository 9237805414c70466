//! The page allocator (jemalloc's PAC): extents of whole pages for slabs and
//! large allocations, one per arena, under the arena's page lock.
//!
//! Owns: the free extents of the arena in three sets by state (dirty, muzzy,
//! retained), the records pool, OS growth and the counters behind `mapped`,
//! `retained`, `dirty`, `muzzy` and purge statistics.
//!
//! Policy:
//! - Reuse before mapping: dirty first (already resident), then muzzy, then
//!   retained; each set is searched address-ordered first fit over size
//!   classes, preferring dirty and muzzy extents at most
//!   `2^lg_extent_max_active_fit` times the request. Unlike jemalloc, a
//!   larger dirty or muzzy extent is still split before retained memory is
//!   touched: without that, a big merged dirty extent sits unused while RSS
//!   grows elsewhere until decay purges it.
//! - Growth maps geometrically larger regions (2 MiB, doubling up to 1 GiB);
//!   what the request does not use becomes retained address space. If the
//!   OS refuses the geometric step, the exact need is tried.
//! - A freed extent merges with free neighbours of the same state and
//!   arena; never past the start of an OS mapping (HEAD flag). (With
//!   `retain:false` the kernel may place a new mapping of the same arena in
//!   an unmapped hole; merging across that seam is harmless.) Then it joins
//!   its set.
//! - Purging takes the oldest extents of a set and advises the kernel once
//!   per extent (contiguous runs, never a page at a time).
//!
//! - Decay (see `decay`) runs inline when a free leaves pages dirty, unless
//!   the purger thread does it. The page allocator never calls that thread:
//!   it raises `SIGNAL`, which the purger (in `background`, above) reads.
//!
//! Invariants: every free extent is in exactly one set, in that set's heap
//! for its floor size class and in its FIFO; set page counts equal the sum of
//! their extents; the pointer map boundary entries follow `emap`'s rules.

use crate::decay::Decay;
use crate::ehooks::{Ehooks, Purged};
use crate::emap::{self, Entry};
use crate::extent::{
    ERef, ExtentHeap, ExtentList, ExtentPool, State, GUARDED, HEAD, HUGE_PAGES, SLAB, ZEROED,
};
use crate::os;
use crate::size_class::{self as sc, LARGE_MAXCLASS, NSIZES};
use core::cell::Cell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering::Relaxed};

/// Option `retain`: keep purged address space for reuse (true) or unmap it.
/// Like every `OPT_*` static, written by `conf::boot` (defaults live in its
/// table) before anything reads it.
pub(crate) static OPT_RETAIN: AtomicBool = AtomicBool::new(false);
/// Option `lg_extent_max_active_fit`: a reused dirty or muzzy extent is at
/// most 2^this times the request, while a closer fit exists.
pub(crate) static OPT_LG_EXTENT_MAX_ACTIVE_FIT: AtomicUsize = AtomicUsize::new(0);

/// Option `thp`: an index into `THP_NAMES`. `always` and `never` advise
/// the kernel on every mapping the page allocators make; `default` leaves
/// the system's setting, as jemalloc; `huge` (rjem's) asks for huge pages
/// only where `PurgePolicy::huge_blocks` says so (the huge arena); `auto`
/// (rjem's default) asks where the memory will be written
/// (`Pages::wants_huge_pages`), unless a fresh huge page costs more to
/// write than the small pages it replaces (`os::huge_pages_start_cold`).
pub(crate) static OPT_THP: AtomicU8 = AtomicU8::new(0);
pub(crate) static THP_NAMES: &[&CStr] = &[c"default", c"always", c"never", c"huge", c"auto"];
const THP_HUGE: u8 = 3;
pub(crate) const THP_AUTO: u8 = 4;

/// Under `thp:auto`, an arena's growth mappings may ask for huge pages once
/// it has this many bytes active (`Pages::wants_huge_pages`): one partly
/// written 2 MiB page at the edge of such a heap is little beside it.
/// Smaller heaps keep 4 KiB pages, so a small program stays small.
const THP_AUTO_ACTIVE: usize = 16 << 20;

/// Where a new active extent may start: at a multiple of `align` (a power
/// of two, at least a page) such that, `lead` bytes further, the low 32
/// bits of the address are a multiple of `period` and the extent does not
/// cross a multiple of 2^32 there. Slabs use it with their region size as
/// the period: every region then starts at an address whose low 32 bits
/// are a multiple of the region size, and nothing else in the slab does,
/// which the thread cache checks on free with one multiplication
/// (`tcache::StartCheck`).
#[derive(Clone, Copy, Debug)]
struct Fit {
    align: usize,
    /// Multiple of `align` (1: no constraint beyond it).
    period: usize,
    lead: usize,
}

impl Fit {
    fn aligned(align: usize) -> Fit {
        Fit {
            align,
            period: 1,
            lead: 0,
        }
    }

    /// For a slab of regions of `region` bytes starting `lead` bytes into
    /// the extent (0 for no constraint: a large extent).
    fn slab(page: usize, region: usize, lead: usize) -> Fit {
        if region <= 1 {
            return Fit::aligned(page);
        }
        // The least common multiple of the page and the region size. The
        // page is a power of two, so their greatest common divisor is the
        // region's largest power-of-two factor, capped at the page: no
        // division (this runs for every slab).
        debug_assert!(page.is_power_of_two());
        let g = page.min(1 << region.trailing_zeros());
        debug_assert_eq!(g, sc::gcd(page, region));
        Fit {
            align: page,
            period: (page >> g.trailing_zeros()) * region,
            lead,
        }
    }

    /// Extra bytes a free extent needs so that `start` finds a place in it
    /// (sizing the search; the exact fit is checked when carving).
    fn slack(&self, page: usize) -> usize {
        self.align.max(self.period) - page
    }

    /// The first start at or after `addr` for an extent of `size` bytes.
    fn start(&self, addr: usize, size: usize) -> Option<usize> {
        let start = os::align_up(addr, self.align)?;
        if self.period == 1 {
            return Some(start);
        }
        const WINDOW: usize = 1 << 32;
        let at = start.checked_add(self.lead)?;
        let base = at & !(WINDOW - 1);
        // A power-of-two period (every power-of-two region size) rounds
        // with a mask; others divide.
        let off = if self.period.is_power_of_two() {
            os::align_up(at - base, self.period)?
        } else {
            (at - base).div_ceil(self.period) * self.period
        };
        let at = if off + (size - self.lead) <= WINDOW {
            base + off
        } else {
            base + WINDOW
        };
        Some(at - self.lead)
    }
}

/// Options `san_guard_small` and `san_guard_large`: every Nth slab, and
/// every Nth large extent, a thread allocates lies between two
/// inaccessible guard pages (`alloc_guarded`); 0 (the default): never.
/// jemalloc 5.3's sampling, counted per thread by a `GuardSampler`.
pub(crate) static OPT_SAN_GUARD_SMALL: AtomicUsize = AtomicUsize::new(0);
pub(crate) static OPT_SAN_GUARD_LARGE: AtomicUsize = AtomicUsize::new(0);

/// One thread's countdowns to its next guarded slab and large extent
/// (jemalloc's `san_extents_until_guard_*`; a thread's cache record holds
/// its sampler). All-zero is the initial state: a count of 0 stands for N,
/// so the Nth extent is the first guarded. Extents of arenas with custom
/// extent hooks are neither guarded nor counted.
pub(crate) struct GuardSampler {
    small: Cell<usize>,
    large: Cell<usize>,
}

impl GuardSampler {
    pub(crate) const fn new() -> GuardSampler {
        GuardSampler {
            small: Cell::new(0),
            large: Cell::new(0),
        }
    }

    /// Counts a new slab; whether to guard it. `default_hooks` says whether
    /// its arena has the default hooks (asked only when guards are on).
    pub(crate) fn small(&self, default_hooks: impl FnOnce() -> bool) -> bool {
        let every = OPT_SAN_GUARD_SMALL.load(Relaxed);
        every != 0 && default_hooks() && Self::tick(&self.small, every, true)
    }

    /// Counts a new large extent; whether to guard it. One that cannot be
    /// guarded (`eligible` false: aligned above a page, or too large with
    /// its guards) passes its turn to the next one that can, as in
    /// jemalloc.
    pub(crate) fn large(&self, eligible: bool, default_hooks: impl FnOnce() -> bool) -> bool {
        let every = OPT_SAN_GUARD_LARGE.load(Relaxed);
        every != 0 && default_hooks() && Self::tick(&self.large, every, eligible)
    }

    fn tick(count: &Cell<usize>, every: usize, eligible: bool) -> bool {
        let n = match count.get() {
            0 => every,
            n => n,
        };
        if n > 1 {
            count.set(n - 1);
            false
        } else if eligible {
            count.set(every);
            true
        } else {
            count.set(1);
            false
        }
    }
}

/// Active bytes over all arenas and their highest value so far, kept only
/// for the heap profiler's `prof_gdump` (`track_active_high`): a new high
/// raises `NEW_HIGH`, which the profiler takes (`take_new_high`).
static TRACK_ACTIVE: AtomicBool = AtomicBool::new(false);
static ACTIVE_TOTAL: AtomicUsize = AtomicUsize::new(0);
static ACTIVE_HIGH: AtomicUsize = AtomicUsize::new(0);
static NEW_HIGH: AtomicBool = AtomicBool::new(false);

/// Starts keeping the total of active bytes (start-up, `prof:true`).
pub(crate) fn track_active_high(on: bool) {
    TRACK_ACTIVE.store(on, Relaxed);
}

/// Whether active bytes reached a new high since the last call.
pub(crate) fn take_new_high() -> bool {
    NEW_HIGH.load(Relaxed) && NEW_HIGH.swap(false, Relaxed)
}

#[inline]
fn note_active(delta: isize) {
    if !TRACK_ACTIVE.load(Relaxed) {
        return;
    }
    let now = (ACTIVE_TOTAL.fetch_add(delta as usize, Relaxed) as isize + delta) as usize;
    if now > ACTIVE_HIGH.load(Relaxed) && ACTIVE_HIGH.fetch_max(now, Relaxed) < now {
        NEW_HIGH.store(true, Relaxed);
    }
}

/// How the page allocators report "purge work pending" to the purger thread
/// without calling it: the purger configures and reads these flags.
pub(crate) struct PurgeSignal {
    /// 1 while the purger sleeps with nothing to do (a futex word): a free
    /// that leaves dirty pages wakes it.
    pub(crate) idle: AtomicU32,
    /// Freed (or mapped) bytes in one arena at which a free (or a mapping)
    /// asks for the purger to be started (`usize::MAX`: never, e.g. once it
    /// runs).
    pub(crate) start_at: AtomicUsize,
    /// A free or a mapping asked for the purger; the next allocation slow
    /// path starts it.
    pub(crate) wanted: AtomicBool,
    /// The purger does all decay that is not immediate, so frees skip it
    /// (`background_thread:true` with a thread that can run).
    pub(crate) purger_decays: AtomicBool,
}

pub(crate) static SIGNAL: PurgeSignal = PurgeSignal {
    idle: AtomicU32::new(0),
    start_at: AtomicUsize::new(usize::MAX),
    wanted: AtomicBool::new(false),
    purger_decays: AtomicBool::new(false),
};

impl PurgeSignal {
    /// A free left `dirty` bytes in an arena.
    #[inline]
    fn note_dirty(&self, dirty: usize) {
        if self.idle.load(Relaxed) == 1 && self.idle.swap(0, Relaxed) == 1 {
            os::futex_wake(&self.idle);
        }
        self.want_at(dirty);
    }

    /// An arena mapped memory and now has `mapped` bytes: a program that
    /// holds that much gets its purger before it frees it, so that memory
    /// it frees and never allocates after still decays.
    #[inline]
    fn note_mapped(&self, mapped: usize) {
        self.want_at(mapped);
    }

    fn want_at(&self, bytes: usize) {
        if bytes >= self.start_at.load(Relaxed) && !self.wanted.load(Relaxed) {
            self.wanted.store(true, Relaxed);
        }
    }
}

/// The hot cache (`Hot`): the bytes it holds at most, and the largest
/// extent it takes (in bytes, and in pages at 4 KiB pages: one list per
/// page count). Every slab fits (the largest is 7 pages), and so do large
/// blocks up to 64 KiB, while the cache holds at most `HOT_MAX_LARGE`. 2
/// MiB holds the slabs a short-lived thread leaves behind for the next one
/// on its arena (thread-churn: 16% fewer instructions than with 512 KiB,
/// peak RSS unchanged; Rust vec-growth, whose slabs of growing classes
/// wait there for the next decay pass, +0.5 MiB). Large blocks keep the
/// 512 KiB they had: the larger cache pays off for slabs only.
const HOT_MAX_BYTES: usize = 2 << 20;
const HOT_MAX_LARGE: usize = 512 << 10;
const HOT_MAX_EXTENT: usize = 64 << 10;
const HOT_LISTS: usize = 16;

/// Small extents just freed, kept whole for the next request of their
/// exact size (jemalloc's small extent cache, `sec`): a thread cache that
/// fills and flushes a class in turn empties and needs a slab every few
/// hundred blocks, and without this each one costs a search of the free
/// sets, a split and, on free, merges with its neighbours (about 780
/// instructions a slab, 270 through this cache).
///
/// A hot extent keeps the `Active` state, so that no free neighbour merges
/// with it, and its pointer-map entries are those of a free extent, so that
/// a free of a pointer into it is reported. Its bytes count as dirty
/// (`Pages::dirty_bytes`). Every decay pass (inline or the purger's),
/// `purge_all` (`arena.<i>.purge`, and running out of memory) and arena
/// destruction first return the hot extents to the dirty set, so they are
/// purged as any dirty page would be; in between the cache holds at most
/// `HOT_MAX_BYTES`, and takes nothing that would raise the arena's dirty
/// bytes above its cap (`Pages::dirty_cap`). A request that no free
/// resident extent fits drains the unguarded hot extents before it takes
/// pages that are not resident (`Pages::find`).
struct Hot {
    /// By size in pages (index: pages - 1), oldest first, through the
    /// records' list links (free while they are in no other list).
    lists: [ExtentList; HOT_LISTS],
    bytes: usize,
}

impl Hot {
    const fn new() -> Hot {
        Hot {
            lists: [const { ExtentList::new() }; HOT_LISTS],
            bytes: 0,
        }
    }

    /// The list for extents of `size` bytes, if they are small enough.
    fn list(size: usize, page: usize) -> Option<usize> {
        // A shift: the page is a power of two.
        let i = (size >> page.trailing_zeros()).wrapping_sub(1);
        (size <= HOT_MAX_EXTENT && i < HOT_LISTS).then_some(i)
    }

    /// Takes the most recently freed extent of exactly `size` bytes that
    /// `fit` would place where it lies (the likeliest to be in the CPU's
    /// caches), between guard pages or not as `guarded` says.
    fn take(&mut self, size: usize, page: usize, fit: Fit, guarded: bool) -> Option<ERef> {
        let list = &mut self.lists[Self::list(size, page)?];
        let mut at = list.last();
        while let Some(e) = at {
            // Every extent in the list is `size` bytes long.
            if e.has(GUARDED) == guarded && fit.start(e.addr(), size) == Some(e.addr()) {
                list.remove(e);
                self.bytes -= size;
                return Some(e);
            }
            at = list.before(e);
        }
        None
    }

    /// Takes the first extent after `at` (from the start of list `i` if
    /// None), or None at the list's end; with `guarded_too` false, the
    /// first without guard pages. Returns it and where to go on from.
    fn take_next(
        &mut self,
        i: usize,
        mut at: Option<ERef>,
        guarded_too: bool,
    ) -> Option<(ERef, Option<ERef>)> {
        let list = &mut self.lists[i];
        let mut e = match at {
            None => list.first(),
            Some(a) => list.after(a),
        };
        while let Some(c) = e {
            let next = list.after(c);
            if guarded_too || !c.has(GUARDED) {
                list.remove(c);
                self.bytes -= c.size();
                return Some((c, at));
            }
            at = Some(c);
            e = next;
        }
        None
    }
}

const GROW_MIN: usize = 2 << 20;
/// A transparent huge page (x86-64, arm64 with 4 KiB pages).
const HUGE_PAGE: usize = 2 << 20;
const GROW_MAX: usize = 1 << 30;
const NWORDS: usize = NSIZES.div_ceil(64);

/// A set of free extents of one state.
pub(crate) struct Eset {
    heaps: [ExtentHeap; NSIZES],
    nonempty: [u64; NWORDS],
    /// Oldest first.
    fifo: ExtentList,
    /// Bytes in this set.
    pub(crate) bytes: usize,
    pub(crate) count: usize,
    /// Bytes per heap (extents whose floor size class is the index).
    heap_bytes: [usize; NSIZES],
}

impl Eset {
    const fn new() -> Self {
        Eset {
            heaps: [const { ExtentHeap::new() }; NSIZES],
            nonempty: [0; NWORDS],
            fifo: ExtentList::new(),
            bytes: 0,
            count: 0,
            heap_bytes: [0; NSIZES],
        }
    }

    /// Extents and bytes whose floor size class is `ind`.
    pub(crate) fn class_counts(&self, ind: usize) -> (usize, usize) {
        (self.heaps[ind].len(), self.heap_bytes[ind])
    }

    fn insert(&mut self, e: ERef) {
        let i = sc::floor_index(e.size());
        self.heaps[i].insert(e);
        self.heap_bytes[i] += e.size();
        self.nonempty[i / 64] |= 1 << (i % 64);
        self.fifo.push_back(e);
        self.bytes += e.size();
        self.count += 1;
    }

    fn remove(&mut self, e: ERef) {
        let i = sc::floor_index(e.size());
        self.heaps[i].remove(e);
        self.heap_bytes[i] -= e.size();
        if self.heaps[i].is_empty() {
            self.nonempty[i / 64] &= !(1 << (i % 64));
        }
        self.fifo.remove(e);
        self.bytes -= e.size();
        self.count -= 1;
    }

    /// Lowest-addressed extent of at least `need` bytes and at most
    /// `need << lg_max_fit` bytes (by size class).
    fn first_fit(&self, need: usize, lg_max_fit: u32) -> Option<ERef> {
        if need > LARGE_MAXCLASS {
            return None;
        }
        let start = sc::size_to_index(need);
        let end = match need.checked_shl(lg_max_fit) {
            Some(m) if lg_max_fit < usize::BITS && m >> lg_max_fit == need => {
                sc::size_to_index(m.min(LARGE_MAXCLASS))
            }
            _ => NSIZES - 1,
        };
        let mut best: Option<ERef> = None;
        let mut w = start / 64;
        let mut bits = self.nonempty[w] & (!0u64 << (start % 64));
        loop {
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                if i > end {
                    return best;
                }
                bits &= bits - 1;
                let cand = self.heaps[i].first().expect("nonempty bit without extent");
                if best.is_none_or(|b| cand.addr() < b.addr()) {
                    best = Some(cand);
                }
            }
            w += 1;
            if w == NWORDS {
                return best;
            }
            bits = self.nonempty[w];
        }
    }

    pub(crate) fn oldest(&self) -> Option<ERef> {
        self.fifo.first()
    }

    /// An extent of the largest size class present.
    fn largest(&self) -> Option<ERef> {
        let w = self.nonempty.iter().rposition(|&b| b != 0)?;
        let i = w * 64 + 63 - self.nonempty[w].leading_zeros() as usize;
        self.heaps[i].first()
    }
}

/// Which free extents a purge takes first.
#[derive(Clone, Copy)]
enum Order {
    /// Least recently freed (decay: what has stayed unused longest).
    Oldest,
    /// Largest size class (the dirty cap: fewest calls for the bytes).
    Largest,
}

/// Purging counters of one state (jemalloc's `dirty_*` and `muzzy_*`).
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct PurgeCounts {
    /// Purge passes that purged something.
    pub(crate) npurge: u64,
    /// madvise calls.
    pub(crate) nmadvise: u64,
    /// Pages purged.
    pub(crate) purged: u64,
}

impl PurgeCounts {
    pub(crate) fn add(&mut self, o: &PurgeCounts) {
        self.npurge += o.npurge;
        self.nmadvise += o.nmadvise;
        self.purged += o.purged;
    }
}

/// Cumulative page-allocator counters.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct PageStats {
    /// Bytes mapped from the OS by this arena, less what was unmapped.
    pub(crate) mapped: usize,
    /// Bytes in active extents.
    pub(crate) active_bytes: usize,
    /// Slab bitmaps attached to this page allocator's records (kept for
    /// the records' life).
    pub(crate) bitmap_bytes: usize,
    /// Purging of dirty pages (to muzzy, or straight to retained).
    pub(crate) dirty: PurgeCounts,
    /// Purging of muzzy pages (to retained).
    pub(crate) muzzy: PurgeCounts,
}

/// How this page allocator purges.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PurgePolicy {
    pub(crate) dirty_decay_ms: i64,
    pub(crate) muzzy_decay_ms: i64,
    /// Keep purged address space (true) or unmap it (false).
    pub(crate) retain: bool,
    /// Dirty pages are kept to at most 1/`dirty_share` of the active ones,
    /// or `dirty_floor` bytes, or the extent just freed, whichever is
    /// largest; a free that crosses that cap purges the oldest down to half
    /// of it (0: no cap, the decay curve alone decides). Not applied while
    /// either decay time is -1 (never purge). The block just freed always
    /// stays.
    pub(crate) dirty_share: usize,
    pub(crate) dirty_floor: usize,
    /// This page allocator serves blocks of `oversize_threshold` and more
    /// (the huge arena). Under `thp:huge` its growth mappings ask for
    /// transparent huge pages (blocks of several MiB fault in 2 MiB at a
    /// time instead of 4 KiB), and under `thp:auto` they may whatever the
    /// arena's size (`wants_huge_pages`). And before it faults in new
    /// pages for a block that no resident free extent fits, it purges as
    /// many bytes of old dirty ones (`find`).
    pub(crate) huge_blocks: bool,
}

pub(crate) struct Pages {
    arena: usize,
    page: usize,
    pub(crate) lg_max_fit: u32,
    next_grow: usize,
    /// The largest growth step (`arena.<i>.retain_grow_limit`).
    grow_limit: usize,
    pub(crate) dirty: Eset,
    pub(crate) muzzy: Eset,
    pub(crate) retained: Eset,
    pool: ExtentPool,
    pub(crate) stats: PageStats,
    pub(crate) decay_dirty: Decay,
    pub(crate) decay_muzzy: Decay,
    retain: bool,
    dirty_share: usize,
    dirty_floor: usize,
    /// A `dirty_floor` that takes effect once the clock reaches the time
    /// given (`lower_dirty_floor_at`).
    floor_change: Option<(usize, u64)>,
    huge_blocks: bool,
    /// Where the last mapping made through the default hooks starts, and
    /// its size (`wants_huge_pages` looks at how much of it was written).
    last_map: (usize, usize),
    /// Next time an inline decay pass is due.
    next_decay_ns: u64,
    /// How pages are obtained, purged and given back.
    hooks: Ehooks,
    /// Every active extent (slabs and large), through the FIFO links that
    /// free extents use: what `arena.<i>.reset` discards.
    active: ExtentList,
    /// Small extents just freed, kept whole for reuse (`Hot`).
    hot: Hot,
}

impl Pages {
    pub(crate) const fn new(
        arena: usize,
        page: usize,
        lg_max_fit: u32,
        policy: PurgePolicy,
    ) -> Pages {
        Pages {
            arena,
            page,
            lg_max_fit,
            decay_dirty: Decay::new(policy.dirty_decay_ms),
            decay_muzzy: Decay::new(policy.muzzy_decay_ms),
            retain: policy.retain,
            dirty_share: policy.dirty_share,
            dirty_floor: policy.dirty_floor,
            floor_change: None,
            huge_blocks: policy.huge_blocks,
            last_map: (0, 0),
            next_decay_ns: 0,
            hooks: Ehooks::default_for(arena),
            active: ExtentList::new(),
            hot: Hot::new(),
            next_grow: GROW_MIN,
            grow_limit: GROW_MAX,
            dirty: Eset::new(),
            muzzy: Eset::new(),
            retained: Eset::new(),
            pool: ExtentPool::new(),
            stats: PageStats {
                mapped: 0,
                active_bytes: 0,
                bitmap_bytes: 0,
                dirty: PurgeCounts {
                    npurge: 0,
                    nmadvise: 0,
                    purged: 0,
                },
                muzzy: PurgeCounts {
                    npurge: 0,
                    nmadvise: 0,
                    purged: 0,
                },
            },
        }
    }

    fn set(&mut self, s: State) -> &mut Eset {
        match s {
            State::Dirty => &mut self.dirty,
            State::Muzzy => &mut self.muzzy,
            State::Retained => &mut self.retained,
            State::Active => unreachable!("active extents are in no set"),
        }
    }

    /// Points the boundary pages of free extent `e` at it.
    fn register_free(&self, e: ERef) {
        emap::set_range(e.addr(), self.page, Entry::free(e));
        emap::set_range(e.end() - self.page, self.page, Entry::free(e));
    }

    /// The hooks this page allocator calls (`arena.<i>.extent_hooks`).
    pub(crate) fn hooks(&self) -> Ehooks {
        self.hooks
    }

    /// Replaces the hooks: later growth, purging, splits and merges use
    /// `hooks`, whichever hooks obtained the memory.
    pub(crate) fn set_hooks(&mut self, hooks: Ehooks) {
        self.hooks = hooks;
    }

    /// The largest step by which growth maps address space.
    pub(crate) fn grow_limit(&self) -> usize {
        self.grow_limit
    }

    /// Sets the growth limit to `n` rounded down to pages; false (nothing
    /// changed) if that is less than a page.
    pub(crate) fn set_grow_limit(&mut self, n: usize) -> bool {
        let n = n / self.page * self.page;
        if n == 0 {
            return false;
        }
        self.grow_limit = n;
        true
    }

    /// Base memory this page allocator holds: extent records and their
    /// slab bitmaps.
    pub(crate) fn metadata_bytes(&self) -> usize {
        self.pool.bytes + self.stats.bitmap_bytes
    }

    /// Unused extent records this page allocator holds
    /// (`stats.arenas.<i>.extent_avail`).
    pub(crate) fn records_avail(&self) -> usize {
        self.pool.avail
    }

    /// The oldest active extent (slab or large), if any.
    pub(crate) fn first_active(&self) -> Option<ERef> {
        self.active.first()
    }

    /// Gives every free extent back through the hooks' `destroy` and
    /// starts over with `policy` (arena destruction; there must be no
    /// active extent left). Records return to the pool, which is kept.
    /// Returns the purge counters of the life that ended.
    pub(crate) fn destroy_all(&mut self, lg_max_fit: u32, policy: PurgePolicy) -> PageStats {
        debug_assert!(self.active.first().is_none());
        self.drain_hot();
        for state in [State::Dirty, State::Muzzy, State::Retained] {
            while let Some(e) = self.set(state).oldest() {
                self.set(state).remove(e);
                emap::set_range(e.addr(), self.page, Entry::EMPTY);
                emap::set_range(e.end() - self.page, self.page, Entry::EMPTY);
                self.hooks.destroy(e.addr() as *mut u8, e.size());
                self.stats.mapped -= e.size();
                self.pool.put(e);
            }
        }
        let pool = core::mem::take(&mut self.pool);
        let old = self.stats;
        *self = Pages::new(self.arena, self.page, lg_max_fit, policy);
        // The records, with their bitmaps, stay this page allocator's.
        self.pool = pool;
        self.stats.bitmap_bytes = old.bitmap_bytes;
        old
    }

    /// Registers an active extent: all pages for a slab, boundaries for large.
    pub(crate) fn register_active(&self, e: ERef, szind: usize, slab: bool) {
        e.set_szind(szind);
        // A block becoming active is not sampled (yet).
        e.set_prof_tag(0);
        e.set_flag(SLAB, slab);
        let entry = Entry::new(e, szind, slab);
        if slab {
            emap::set_range(e.addr(), e.size(), entry);
        } else {
            // The last page maps to the record without a class: enough for
            // neighbours to find it, while `free` of a pointer into that
            // page is recognised as invalid.
            emap::set_range(e.end() - self.page, self.page, Entry::free(e));
            emap::set_range(e.addr(), self.page, entry);
        }
    }

    /// An active extent of `size` bytes (a page multiple) aligned to `align`
    /// (at least a page). Returns it with whether its memory is all zero.
    /// The caller registers it with `register_active`.
    pub(crate) fn alloc(&mut self, size: usize, align: usize) -> Option<(ERef, bool)> {
        self.alloc_fit(size, Fit::aligned(align))
    }

    /// A slab of `size` bytes for regions of `region` bytes, placed where
    /// `Fit::slab` says (so that its regions start at addresses whose low
    /// 32 bits are multiples of `region`), or anywhere page-aligned if the
    /// extent hooks refuse to split what they mapped. Custom extent hooks
    /// get no placement at all: their memory is the program's to budget
    /// (a pool that fits its blocks must not grow for placement's sake),
    /// and frees into such slabs are checked exactly off the hit path.
    pub(crate) fn alloc_slab(&mut self, size: usize, region: usize) -> Option<(ERef, bool)> {
        let fit = if self.hooks.is_default() {
            Fit::slab(self.page, region, 0)
        } else {
            Fit::aligned(self.page)
        };
        self.alloc_fit(size, fit)
    }

    fn alloc_fit(&mut self, size: usize, fit: Fit) -> Option<(ERef, bool)> {
        if let Some(e) = self.hot.take(size, self.page, fit, false) {
            self.stats.active_bytes += size;
            note_active(size as isize);
            self.active.push_back(e);
            return Some((e, false));
        }
        let need = size.checked_add(fit.slack(self.page))?;
        // Resident memory first, within the fit cap; then resident memory
        // beyond the cap (splitting a big free extent beats faulting in new
        // pages); then retained address space; then the OS.
        let got = self.find(need, size, fit).or_else(|| {
            // The OS refused more address space (RLIMIT_AS, overcommit):
            // purge every freed page, which merges them into retained
            // extents (or unmaps them with retain:false), and try once more.
            if self.dirty_bytes() + self.muzzy.bytes == 0 {
                return None;
            }
            self.purge_all();
            self.find(need, size, fit)
        });
        if let Some((e, _)) = got {
            self.active.push_back(e);
        }
        got
    }

    /// As `alloc` (page-aligned), with two guard pages around the extent
    /// (jemalloc's `san_guard_pages`): `size` plus two pages are taken as
    /// usual and the outer pages made inaccessible, so an access just past
    /// either end faults at once. The guard pages stay out of the extent's
    /// range and map to nothing, so no neighbour merges with it while it
    /// lives; `dalloc` lifts them (`GUARDED`). They count as active pages.
    /// If the OS refuses to protect the first page, an ordinary extent is
    /// returned; if it refuses the second only, the second stays
    /// accessible but out of the extent all the same (nothing to undo, so
    /// no inaccessible page can be handed out).
    /// `region`: as `alloc_slab`'s, for a slab (the placement applies to
    /// the range inside the guards); 0 for a large extent.
    pub(crate) fn alloc_guarded(&mut self, size: usize, region: usize) -> Option<(ERef, bool)> {
        let page = self.page;
        // A hot extent freed with its guards keeps them: no system call.
        if let Some(e) = self.hot.take(size, page, Fit::slab(page, region, 0), true) {
            self.stats.active_bytes += size;
            note_active(size as isize);
            self.active.push_back(e);
            return Some((e, false));
        }
        let fit = Fit::slab(page, region, page);
        let (e, zeroed) = self.alloc_fit(size.checked_add(2 * page)?, fit)?;
        let (lo, hi) = (e.addr(), e.end() - page);
        if !os::protect(lo as *mut u8, page, true) {
            self.dalloc(e);
            return self.alloc_fit(size, Fit::slab(page, region, 0));
        }
        os::protect(hi as *mut u8, page, true);
        // The free extent `e` was cut from may have left its boundary
        // entries on what are now guard pages.
        emap::set_range(lo, page, Entry::EMPTY);
        emap::set_range(hi, page, Entry::EMPTY);
        e.set_range(lo + page, size);
        e.set_flag(GUARDED, true);
        Some((e, zeroed))
    }

    /// Lifts the guard pages of active extent `e` (`GUARDED`) and takes them
    /// back into its range. If the OS refuses, they stay inaccessible and
    /// out of every extent (two pages of address space lost).
    #[cold]
    #[inline(never)]
    fn unguard(&mut self, e: ERef) {
        let page = self.page;
        e.set_flag(GUARDED, false);
        // The inner boundary pages become interior (or stay the boundary,
        // registered again when `e` is freed).
        emap::set_range(e.addr(), page, Entry::EMPTY);
        emap::set_range(e.end() - page, page, Entry::EMPTY);
        let (lo, hi) = (e.addr() - page, e.end());
        if os::protect(lo as *mut u8, page, false) && os::protect(hi as *mut u8, page, false) {
            e.set_range(lo, e.size() + 2 * page);
        } else {
            self.stats.active_bytes -= 2 * page;
        }
    }

    /// One pass of `alloc`'s search: free extents by state, then growth.
    fn find(&mut self, need: usize, size: usize, place: Fit) -> Option<(ERef, bool)> {
        let fit = self.lg_max_fit;
        let tiers = [
            (State::Dirty, fit),
            (State::Muzzy, fit),
            (State::Dirty, 64),
            (State::Muzzy, 64),
            (State::Retained, 64),
        ];
        if let Some(got) = self.find_in(&tiers[..4], need, size, place) {
            return Some(got);
        }
        // Before taking pages that are not resident, the hot cache's go
        // back to the dirty set, where they merge and fit any request
        // (guarded ones stay for the next guarded request).
        if self.hot.bytes > 0 {
            self.drain_hot_where(false);
            if let Some(got) = self.find_in(&tiers[..4], need, size, place) {
                return Some(got);
            }
        }
        // No resident extent fits. For huge blocks, before faulting in new
        // pages, purge as many of the oldest dirty ones, which could not
        // serve this request: resident memory then stays where it was
        // instead of growing by `need` (several MiB a block), and purged
        // neighbours may merge into an extent that fits. Not for smaller
        // blocks: a program growing buffers by realloc reuses the ones it
        // leaves behind soon, and would fault them in again (realloc:
        // 32,000 -> 52,000 page faults for 26% less peak RSS).
        let purged = self.huge_blocks
            && self.dirty.bytes > 0
            && self.dirty_cap(0).is_some()
            && self.purge(State::Dirty, self.dirty_target(), need) > 0;
        // Purged pages land in the muzzy or the retained set.
        let rest = if purged { &tiers[3..] } else { &tiers[4..] };
        if let Some(got) = self.find_in(rest, need, size, place) {
            return Some(got);
        }
        let e = self.grow(need)?;
        if let Some(got) = self.carve(e, size, place) {
            return Some(got);
        }
        // Hooks that refuse to split: map exactly what is asked, and take
        // it wherever it lies (a slab there is only slower to free into).
        let e = self.map_new(size, place.align)?;
        self.carve(e, size, Fit::aligned(place.align))
    }

    /// The first extent of the first of `tiers` (state, lg of the fit cap)
    /// that fits, carved.
    fn find_in(
        &mut self,
        tiers: &[(State, u32)],
        need: usize,
        size: usize,
        fit: Fit,
    ) -> Option<(ERef, bool)> {
        for &(state, lg) in tiers {
            // A placed request (`need > size`) first tries the extents of
            // its own size, which fit when placed right already (a slab's
            // freed predecessor), then those that fit wherever they lie.
            let exact = (need > size).then_some(size);
            for n in exact.into_iter().chain([need]) {
                if let Some(e) = self.set(state).first_fit(n, lg) {
                    self.set(state).remove(e);
                    // No place in `e`, or a refused split (custom hooks),
                    // leaves `e` where it was.
                    if let Some(got) = self.carve(e, size, fit) {
                        return Some(got);
                    }
                }
            }
        }
        None
    }

    /// Cuts `[start, + size)` out of free extent `e` (already out of its
    /// set), at the first start `fit` allows, returning lead and trail to
    /// the set `e` came from. None (and `e` back in its set) if no start in
    /// `e` fits, or a split is refused.
    fn carve(&mut self, e: ERef, size: usize, fit: Fit) -> Option<(ERef, bool)> {
        let state = e.state();
        let Some(start) = fit.start(e.addr(), size).filter(|&s| s + size <= e.end()) else {
            self.set(state).insert(e);
            return None;
        };
        let lead = start - e.addr();
        let trail = e.size() - lead - size;
        let lead_rec = if lead > 0 { self.pool.get() } else { None };
        let trail_rec = if trail > 0 { self.pool.get() } else { None };
        if (lead > 0 && lead_rec.is_none())
            || (trail > 0 && trail_rec.is_none())
            || (lead > 0 && !self.hooks.split(e.addr(), lead, e.size() - lead))
            || (trail > 0 && !self.hooks.split(start, size, trail))
        {
            // Out of metadata, or the hooks refused a split: undo.
            if let Some(r) = lead_rec {
                self.pool.put(r);
            }
            if let Some(r) = trail_rec {
                self.pool.put(r);
            }
            self.set(state).insert(e);
            return None;
        }
        let flags = (e.has(ZEROED) as u8 * ZEROED) | (e.has(HUGE_PAGES) as u8 * HUGE_PAGES);
        if let Some(l) = lead_rec {
            l.init(
                e.addr(),
                lead,
                self.arena,
                state,
                flags | (e.has(HEAD) as u8 * HEAD),
            );
            self.register_free(l);
            self.set(state).insert(l);
            e.set_flag(HEAD, false);
        }
        if let Some(t) = trail_rec {
            t.init(start + size, trail, self.arena, state, flags);
            self.register_free(t);
            self.set(state).insert(t);
        }
        // Only the flag counts: a retained extent whose purge failed (locked
        // pages) still holds old data.
        let zeroed = e.has(ZEROED);
        e.set_range(start, size);
        e.set_state(State::Active);
        e.set_flag(ZEROED, false);
        self.stats.active_bytes += size;
        note_active(size as isize);
        Some((e, zeroed))
    }

    /// Maps a new region of at least `need` bytes as a retained extent,
    /// already removed from the retained set, ready to carve.
    fn grow(&mut self, need: usize) -> Option<ERef> {
        let need = os::align_up(need, self.page)?;
        // Without retain, map only what is needed: it is unmapped when purged.
        let size = if self.retain {
            need.max(self.next_grow.min(self.grow_limit))
        } else {
            need
        };
        // Whole growth steps start on a 2 MiB boundary (huge-page
        // friendly); smaller exact mappings need only page alignment.
        let align = if size >= GROW_MIN {
            GROW_MIN
        } else {
            self.page
        };
        let e = match self.map_new(size, align) {
            None if size > need => self.map_new(need, self.page)?,
            e => e?,
        };
        if e.size() >= self.next_grow {
            self.next_grow = (self.next_grow * 2).min(self.grow_limit.max(GROW_MIN));
        }
        Some(e)
    }

    /// `thp:auto`'s rule for a new mapping: when the program wrote at
    /// least half of the mapping before it (the page allocator grows when
    /// that one is used up) and, outside the huge arena, the arena holds
    /// `THP_AUTO_ACTIVE` bytes. A program that leaves big blocks
    /// mostly unwritten (a sparse table) keeps 4 KiB pages: 2 MiB ones
    /// would make every page it touches cost 2 MiB. With huge pages,
    /// writing fresh memory takes one fault per 2 MiB instead of 512
    /// (malloc-large: 91,000 page faults -> 4,300).
    fn wants_huge_pages(&self) -> bool {
        let (at, size) = self.last_map;
        (self.huge_blocks || self.stats.active_bytes >= THP_AUTO_ACTIVE)
            && size > 0
            // Unmapped since (`retain:false`), it reads as not resident.
            && os::mostly_resident(at as *mut u8, size)
    }

    /// Maps exactly `size` bytes aligned to `align` (both page multiples)
    /// through the hooks, as a retained extent in no set, or None.
    fn map_new(&mut self, size: usize, align: usize) -> Option<ERef> {
        let rec = self.pool.get()?;
        let got = self.hooks.alloc(size, align);
        let Some((p, zeroed)) = got.filter(|&(p, _)| emap::ensure_range(p as usize, size)) else {
            if let Some((p, _)) = got {
                if !self.hooks.dalloc(p, size) {
                    self.hooks.destroy(p, size);
                }
            }
            self.pool.put(rec);
            return None;
        };
        let mut huge = false;
        if self.hooks.is_default() {
            let thp = OPT_THP.load(Relaxed);
            huge = match thp {
                1 => true,
                THP_HUGE => self.huge_blocks && size >= GROW_MIN,
                THP_AUTO => {
                    size >= GROW_MIN && self.wants_huge_pages() && !os::huge_pages_start_cold()
                }
                _ => false,
            };
            if huge || thp == 2 {
                os::advise_huge(p, size, huge);
            }
            self.last_map = (p as usize, size);
        }
        self.stats.mapped += size;
        SIGNAL.note_mapped(self.stats.mapped);
        let flags = HEAD | (zeroed as u8 * ZEROED) | (huge as u8 * HUGE_PAGES);
        rec.init(p as usize, size, self.arena, State::Retained, flags);
        self.register_free(rec);
        Some(rec)
    }

    /// Returns active extent `e` to the hot cache (`Hot`) or the dirty set,
    /// merging with neighbours.
    #[inline]
    pub(crate) fn dalloc(&mut self, e: ERef) {
        self.active.remove(e);
        if self.keep_hot(e) {
            return;
        }
        if e.has(GUARDED) {
            self.unguard(e);
        }
        self.release(e);
    }

    /// Puts freed extent `e` (active, in no list) in the hot cache if it
    /// takes it: an extent of at most `HOT_MAX_EXTENT` bytes that fits in
    /// it, with the default hooks (custom hooks see every split and merge)
    /// and decay that is not immediate. A guarded extent keeps its guard
    /// pages (still counted active) for the next guarded request of its
    /// size: `secure:true` made two `mprotect` calls per guarded slab and
    /// two more per free (thread-churn: 38,500 calls, 7.7x the time).
    fn keep_hot(&mut self, e: ERef) -> bool {
        let size = e.size();
        let Some(list) = Hot::list(size, self.page) else {
            return false;
        };
        let limit = if e.has(SLAB) {
            HOT_MAX_BYTES
        } else {
            HOT_MAX_LARGE
        };
        if self.hot.bytes + size > limit
            || self.decay_dirty.ms() == 0
            || !self.hooks.is_default()
            || self.over_dirty_cap(size)
        {
            return false;
        }
        self.deactivate(e);
        // Pointers into it are now invalid frees; it stays `Active`, so
        // that free neighbours leave it alone.
        emap::set_range(e.addr(), self.page, Entry::free(e));
        emap::set_range(e.end() - self.page, self.page, Entry::free(e));
        self.hot.lists[list].push_back(e);
        self.hot.bytes += size;
        true
    }

    /// Returns every hot extent to the dirty set (before any purge).
    fn drain_hot(&mut self) {
        self.drain_hot_where(true);
    }

    /// Returns the hot extents to the dirty set, those with guard pages
    /// only if `guarded_too` (lifting guards costs two system calls, which
    /// the cache saves for the next guarded request).
    fn drain_hot_where(&mut self, guarded_too: bool) {
        for i in 0..HOT_LISTS {
            let mut at = None;
            while let Some((e, kept)) = self.hot.take_next(i, at, guarded_too) {
                at = kept;
                self.unhot(e);
            }
        }
    }

    /// Hot extent `e`, out of the cache, into the dirty set.
    fn unhot(&mut self, e: ERef) {
        if e.has(GUARDED) {
            // Its guard pages leave the active count with it (if the OS
            // refuses to lift them, `unguard` has counted them out).
            let inner = e.size();
            self.unguard(e);
            if e.size() > inner {
                self.stats.active_bytes -= 2 * self.page;
                note_active(-2 * self.page as isize);
            }
        }
        e.set_state(State::Dirty);
        self.insert_free(e);
    }

    /// Dirty bytes: the dirty set's, and the hot cache's.
    pub(crate) fn dirty_bytes(&self) -> usize {
        self.dirty.bytes + self.hot.bytes
    }

    /// Dirty extents and bytes whose floor size class is `ind`, the hot
    /// cache's included (`stats.arenas.<i>.extents.<j>`).
    pub(crate) fn dirty_class_counts(&self, ind: usize) -> (usize, usize) {
        let (mut n, mut bytes) = self.dirty.class_counts(ind);
        for list in &self.hot.lists {
            let mut at = list.first();
            while let Some(e) = at {
                if sc::floor_index(e.size()) == ind {
                    n += 1;
                    bytes += e.size();
                }
                at = list.after(e);
            }
        }
        (n, bytes)
    }

    /// Active extent `e` (in no list) stops being active: counters, and
    /// the interior entries and flags of a slab.
    fn deactivate(&mut self, e: ERef) {
        debug_assert_eq!(e.state(), State::Active);
        self.stats.active_bytes -= e.size();
        note_active(-(e.size() as isize));
        if e.has(SLAB) && e.size() > 2 * self.page {
            // Interior pages of a slab stop pointing at the record.
            emap::set_range(e.addr() + self.page, e.size() - 2 * self.page, Entry::EMPTY);
        }
        e.set_flag(SLAB, false);
        e.set_flag(ZEROED, false);
    }

    /// `dalloc` of an active extent that is in no list, into the dirty set.
    fn release(&mut self, e: ERef) {
        self.deactivate(e);
        e.set_state(State::Dirty);
        let freed = e.size();
        self.insert_free(e);
        if self.floor_change.is_some() {
            self.apply_floor_change(os::now_ns());
        }
        // `e` is now a dirty extent (merged with its free neighbours)
        // until the decay below, which may purge and recycle it.
        if let Some(cap) = self.dirty_cap(freed) {
            if self.dirty.bytes > cap {
                // Down to half the cap, so that the next frees do not each
                // purge. The largest go first (the fewest madvise calls for
                // the bytes; crumbs between live slabs stay for reuse and
                // decay), the extent just freed (merged with its free
                // neighbours) last, and of it only what exceeds `freed`.
                let keep = (cap / 2).max(freed);
                let target = self.dirty_target();
                self.dirty.remove(e);
                let others = self
                    .dirty
                    .bytes
                    .saturating_sub(keep.saturating_sub(e.size()));
                self.purge_in(State::Dirty, target, others, Order::Largest);
                self.dirty.insert(e);
                if self.dirty.bytes > keep {
                    self.purge_in(State::Dirty, target, self.dirty.bytes - keep, Order::Oldest);
                }
            }
        }
        self.maybe_decay();
        SIGNAL.note_dirty(self.dirty.bytes);
    }

    /// The most dirty bytes kept after a free of `freed` bytes (see
    /// `PurgePolicy::dirty_share`), or None when uncapped. The block just
    /// freed always fits (a program reusing one big buffer keeps it hot).
    fn dirty_cap(&self, freed: usize) -> Option<usize> {
        if self.decay_dirty.ms() < 0 || self.decay_muzzy.ms() < 0 {
            return None;
        }
        let share = self.stats.active_bytes.checked_div(self.dirty_share)?;
        Some(share.max(self.dirty_floor).max(freed))
    }

    /// Whether `more` dirty bytes would lift the dirty bytes (the hot
    /// cache's included) over `dirty_cap`; no division while they stay
    /// within the floor, which the cap never goes below.
    fn over_dirty_cap(&self, more: usize) -> bool {
        let dirty = self.dirty_bytes() + more;
        dirty > self.dirty_floor && self.dirty_cap(0).is_some_and(|cap| dirty > cap)
    }

    /// Inline decay after a free: purges what the decay curves say is due,
    /// checking the clock at most once per epoch. Decay times of 0 purge
    /// everything here, whoever else purges.
    fn maybe_decay(&mut self) {
        let immediate =
            self.decay_dirty.ms() == 0 || (self.decay_muzzy.ms() == 0 && self.muzzy.bytes > 0);
        if !immediate && SIGNAL.purger_decays.load(Relaxed) {
            return;
        }
        let now = os::now_ns();
        if immediate || now >= self.next_decay_ns {
            self.decay(now);
        }
    }

    /// Runs both decay curves to `now_ns` and purges what they say is due.
    /// Returns the bytes purged.
    pub(crate) fn decay(&mut self, now_ns: u64) -> usize {
        self.drain_hot();
        let page = self.page;
        let mut purged = 0;
        // A floor lowered since the last free: down to half the new cap,
        // largest extents first, as a free crossing it would.
        if self.floor_change.is_some() && self.apply_floor_change(now_ns) {
            if let Some(cap) = self.dirty_cap(0) {
                let excess = self.dirty.bytes.saturating_sub(cap / 2);
                if self.dirty.bytes > cap {
                    let target = self.dirty_target();
                    purged += self.purge_in(State::Dirty, target, excess, Order::Largest);
                }
            }
        }
        let n = self.dirty.bytes / page;
        let limit = self.decay_dirty.limit(now_ns, n);
        if n > limit {
            purged += self.purge(State::Dirty, self.dirty_target(), (n - limit) * page);
        }
        let n = self.muzzy.bytes / page;
        let limit = self.decay_muzzy.limit(now_ns, n);
        if n > limit {
            purged += self.purge(State::Muzzy, State::Retained, (n - limit) * page);
        }
        self.next_decay_ns =
            now_ns.saturating_add(self.decay_interval_ns().unwrap_or(u64::MAX / 2));
        purged
    }

    /// How often decay has something new to do: the shorter epoch of the
    /// two curves; None when neither decays over time (-1 or 0).
    pub(crate) fn decay_interval_ns(&self) -> Option<u64> {
        [
            self.decay_dirty.interval_ns(),
            self.decay_muzzy.interval_ns(),
        ]
        .into_iter()
        .filter(|&i| i > 0)
        .min()
    }

    /// Where purged dirty pages go: muzzy (`MADV_FREE`), or straight to
    /// retained (one `MADV_DONTNEED` instead of two) when muzzy pages would
    /// be purged at once anyway (`muzzy_decay_ms:0`).
    fn dirty_target(&self) -> State {
        if self.decay_muzzy.ms() == 0 {
            State::Retained
        } else {
            State::Muzzy
        }
    }

    /// Purges every dirty and muzzy page now (`arena.<i>.purge`).
    pub(crate) fn purge_all(&mut self) -> usize {
        self.drain_hot();
        let mut n = self.purge(State::Dirty, self.dirty_target(), usize::MAX);
        n += self.purge(State::Muzzy, State::Retained, usize::MAX);
        n
    }

    /// Out of memory somewhere: purges every dirty and muzzy page, and gives
    /// retained address space back through the hooks too (even with
    /// `retain:true`; hooks that opt out keep theirs), so that any arena,
    /// or metadata, can map it again. Returns the bytes given back.
    pub(crate) fn release_all(&mut self) -> usize {
        let held = self.free_bytes();
        self.purge_all();
        let mut kept = ExtentList::new();
        while let Some(e) = self.retained.oldest() {
            self.retained.remove(e);
            if !self.forget(e) {
                kept.push_back(e);
            }
        }
        while let Some(e) = kept.first() {
            kept.remove(e);
            self.retained.insert(e);
        }
        // Grow again from small steps: they fit where address space is short.
        self.next_grow = GROW_MIN;
        held - self.free_bytes()
    }

    /// Bytes in free extents (dirty, muzzy and retained).
    pub(crate) fn free_bytes(&self) -> usize {
        self.dirty_bytes() + self.muzzy.bytes + self.retained.bytes
    }

    /// Whether decay still has pages to purge later (finite decay times).
    pub(crate) fn decay_pending(&self) -> bool {
        (self.dirty_bytes() > 0 && self.decay_dirty.ms() >= 0)
            || (self.muzzy.bytes > 0 && self.decay_muzzy.ms() >= 0)
    }

    /// Purges dirty extent `e` (`[p, p + n)`, in a mapping with huge
    /// pages) into retained, together with the rest of the 2 MiB pages at
    /// its two ends that its retained neighbours hold, in one call. Those
    /// pages were never handed out (or were purged before) but may have
    /// come in with the huge page a fault next to them brought, and
    /// nothing else would purge them (an idle program after a 1 GiB peak:
    /// 12.1 -> 6.4 MiB resident). Only the ends: a 2 MiB page wholly
    /// inside a free run was not faulted in since its last purge (purging
    /// whole merged runs madvised hundreds of MiB of untouched address
    /// space).
    fn purge_with_huge_edges(&mut self, e: ERef, p: usize, n: usize) {
        // Merged first, as if purged: the run is zero if its neighbours
        // were, and the purge's outcome corrects that below.
        e.set_flag(ZEROED, true);
        e.set_state(State::Retained);
        self.insert_free(e);
        let lo = e.addr().max(p & !(HUGE_PAGE - 1));
        let hi = e.end().min((p + n).next_multiple_of(HUGE_PAGE));
        // Pages that could not be purged (mlocked) keep their data.
        if self.hooks.purge_forced(lo as *mut u8, hi - lo) != Purged::Zeroed {
            e.set_flag(ZEROED, false);
        }
    }

    /// Sets `PurgePolicy::dirty_floor` now, dropping a pending change.
    pub(crate) fn set_dirty_floor(&mut self, bytes: usize) {
        self.dirty_floor = bytes;
        self.floor_change = None;
    }

    /// Sets `PurgePolicy::dirty_floor` to `bytes` once the clock reaches
    /// `at_ns`: the next free or decay pass after it applies the new cap.
    pub(crate) fn lower_dirty_floor_at(&mut self, bytes: usize, at_ns: u64) {
        self.floor_change = Some((bytes, at_ns));
    }

    /// Applies a pending floor change that is due at `now_ns`; true if it
    /// did.
    fn apply_floor_change(&mut self, now_ns: u64) -> bool {
        match self.floor_change {
            Some((bytes, at)) if now_ns >= at => {
                self.set_dirty_floor(bytes);
                true
            }
            _ => false,
        }
    }

    /// Sets the decay times (`arena.<i>.dirty_decay_ms` and muzzy); None
    /// leaves one unchanged.
    pub(crate) fn set_decay(&mut self, dirty_ms: Option<i64>, muzzy_ms: Option<i64>) {
        let now = os::now_ns();
        if let Some(ms) = dirty_ms {
            self.decay_dirty
                .set_ms(ms, now, self.dirty.bytes / self.page);
        }
        if let Some(ms) = muzzy_ms {
            self.decay_muzzy
                .set_ms(ms, now, self.muzzy.bytes / self.page);
        }
        self.next_decay_ns = 0;
    }

    /// Merges free `e` (state already set, in no set) with free neighbours of
    /// the same state and inserts the result into its set.
    fn insert_free(&mut self, e: ERef) {
        let state = e.state();
        let page = self.page;
        // Left neighbour: same mapping unless `e` starts one.
        if !e.has(HEAD) {
            if let Some(l) = emap::lookup(e.addr() - page).extent() {
                if l.arena() == self.arena
                    && l.state() == state
                    && l.end() == e.addr()
                    && self.hooks.merge(l.addr(), l.size(), e.addr(), e.size())
                {
                    self.set(state).remove(l);
                    // Both pages at the seam become interior.
                    emap::set_range(l.end() - page, page, Entry::EMPTY);
                    emap::set_range(e.addr(), page, Entry::EMPTY);
                    let zero = l.has(ZEROED) && e.has(ZEROED);
                    e.set_range(l.addr(), l.size() + e.size());
                    e.set_flag(HEAD, l.has(HEAD));
                    e.set_flag(ZEROED, zero);
                    self.pool.put(l);
                }
            }
        }
        // Right neighbour: same mapping unless it starts one.
        if let Some(r) = emap::lookup(e.end()).extent() {
            if r.arena() == self.arena
                && r.state() == state
                && r.addr() == e.end()
                && !r.has(HEAD)
                && self.hooks.merge(e.addr(), e.size(), r.addr(), r.size())
            {
                self.set(state).remove(r);
                emap::set_range(e.end() - page, page, Entry::EMPTY);
                emap::set_range(r.addr(), page, Entry::EMPTY);
                let zero = r.has(ZEROED) && e.has(ZEROED);
                e.set_range(e.addr(), e.size() + r.size());
                e.set_flag(ZEROED, zero);
                self.pool.put(r);
            }
        }
        e.set_szind(crate::extent::NO_CLASS as usize);
        self.register_free(e);
        self.set(state).insert(e);
    }

    /// Shrinks active large extent `e` to `new_size` bytes in place, freeing
    /// the tail. False only when out of metadata.
    pub(crate) fn shrink(&mut self, e: ERef, new_size: usize) -> bool {
        let tail = e.size() - new_size;
        if !self.hooks.split(e.addr(), new_size, tail) {
            return false;
        }
        let Some(t) = self.pool.get() else {
            return false;
        };
        let flags = e.has(HUGE_PAGES) as u8 * HUGE_PAGES;
        t.init(e.addr() + new_size, tail, self.arena, State::Active, flags);
        e.set_range(e.addr(), new_size);
        self.register_active(e, e.szind(), false);
        // `release` subtracts the tail from the active bytes.
        self.release(t);
        true
    }

    /// Grows active large extent `e` in place to `new_size` bytes by taking
    /// the free extent right after it. Returns whether the new tail is zero,
    /// or None when the neighbour is not free or too small.
    pub(crate) fn expand(&mut self, e: ERef, new_size: usize) -> Option<bool> {
        let extra = new_size - e.size();
        let r = emap::lookup(e.end()).extent()?;
        if r.arena() != self.arena
            || r.state() == State::Active
            || r.addr() != e.end()
            || r.has(HEAD)
            || r.size() < extra
        {
            return None;
        }
        let state = r.state();
        self.set(state).remove(r);
        let (mid, zeroed) = self.carve(r, extra, Fit::aligned(self.page))?;
        if !self.hooks.merge(e.addr(), e.size(), mid.addr(), mid.size()) {
            // Refused (custom hooks): `mid` goes back where it came from.
            self.stats.active_bytes -= mid.size();
            note_active(-(mid.size() as isize));
            mid.set_state(state);
            mid.set_flag(ZEROED, zeroed);
            self.insert_free(mid);
            return None;
        }
        // Absorb `mid` into `e`: the seam's pages become interior.
        emap::set_range(e.end() - self.page, self.page, Entry::EMPTY);
        emap::set_range(mid.addr(), self.page, Entry::EMPTY);
        e.set_range(e.addr(), new_size);
        self.register_active(e, e.szind(), false);
        // `carve` already counted the extra bytes as active.
        self.pool.put(mid);
        Some(zeroed)
    }

    /// The purge counters of pages leaving state `from`.
    fn counts(&mut self, from: State) -> &mut PurgeCounts {
        if from == State::Dirty {
            &mut self.stats.dirty
        } else {
            &mut self.stats.muzzy
        }
    }

    /// Gives free extent `e` (in no set) back through the hooks' `dalloc`;
    /// false if they opted out (it stays the caller's).
    fn forget(&mut self, e: ERef) -> bool {
        // Its map entries go first: once unmapped, the range may be mapped
        // again at once by another arena, whose entries must not be erased.
        emap::set_range(e.addr(), self.page, Entry::EMPTY);
        emap::set_range(e.end() - self.page, self.page, Entry::EMPTY);
        if !self.hooks.dalloc(e.addr() as *mut u8, e.size()) {
            self.register_free(e);
            return false;
        }
        self.stats.mapped -= e.size();
        self.pool.put(e);
        true
    }

    /// Purges up to `limit` bytes of the oldest extents of `from`, moving
    /// them to `to` (Muzzy with MADV_FREE, or Retained with MADV_DONTNEED).
    /// Returns bytes purged.
    pub(crate) fn purge(&mut self, from: State, to: State, limit: usize) -> usize {
        self.purge_in(from, to, limit, Order::Oldest)
    }

    /// Purges dirty extents, largest first, until at most `floor` dirty
    /// bytes are left (the hot cache not counted, nor purged) or `limit`
    /// bytes are purged; returns the bytes purged (`arena::reclaim_idle`).
    pub(crate) fn purge_dirty_over(&mut self, floor: usize, limit: usize) -> usize {
        let excess = self.dirty.bytes.saturating_sub(floor).min(limit);
        if excess == 0 || self.dirty_cap(0).is_none() {
            return 0;
        }
        let target = self.dirty_target();
        self.purge_in(State::Dirty, target, excess, Order::Largest)
    }

    /// `purge`, taking extents in `order`.
    fn purge_in(&mut self, from: State, to: State, limit: usize, order: Order) -> usize {
        let mut done = 0;
        while done < limit {
            let next = match order {
                Order::Oldest => self.set(from).oldest(),
                Order::Largest => self.set(from).largest(),
            };
            let Some(e) = next else {
                break;
            };
            self.set(from).remove(e);
            // Purge only what is needed: a large coalesced extent is split,
            // its low part (reused first) staying in `from`.
            let want = (limit - done).saturating_add(self.page - 1) / self.page * self.page;
            if want < e.size() && self.hooks.split(e.addr(), e.size() - want, want) {
                if let Some(t) = self.pool.get() {
                    let keep = e.size() - want;
                    // The kept low part inherits the mapping start.
                    let flags = (e.has(HEAD) as u8 * HEAD)
                        | (e.has(ZEROED) as u8 * ZEROED)
                        | (e.has(HUGE_PAGES) as u8 * HUGE_PAGES);
                    t.init(e.addr(), keep, self.arena, from, flags);
                    e.set_range(e.addr() + keep, want);
                    e.set_flag(HEAD, false);
                    self.register_free(t);
                    self.register_free(e);
                    // Straight into the set: merging would undo the split.
                    self.set(from).insert(t);
                }
            }
            let (p, n) = (e.addr() as *mut u8, e.size());
            let pages = (n / self.page) as u64;
            done += n;
            self.counts(from).purged += pages;
            // Pages bound for retained go back instead, if the hooks take
            // them (retain:false, or custom hooks with a `dalloc`).
            let gives_back = self.hooks.gives_back(self.retain);
            if to == State::Retained && gives_back && self.forget(e) {
                continue;
            }
            self.counts(from).nmadvise += 1;
            if to == State::Retained && e.has(HUGE_PAGES) {
                self.purge_with_huge_edges(e, p as usize, n);
                continue;
            }
            let outcome = if to == State::Muzzy {
                self.hooks.purge_lazy(p, n)
            } else {
                self.hooks.purge_forced(p, n)
            };
            let now = if outcome == Purged::Lazy {
                State::Muzzy
            } else {
                // Pages that could not be purged (mlocked) keep their data.
                e.set_flag(ZEROED, outcome == Purged::Zeroed);
                State::Retained
            };
            // A lazy purge that fell back to a forced one.
            if now == State::Retained && to == State::Muzzy && gives_back && self.forget(e) {
                continue;
            }
            e.set_state(now);
            self.insert_free(e);
        }
        if done > 0 {
            match from {
                State::Dirty => self.stats.dirty.npurge += 1,
                _ => self.stats.muzzy.npurge += 1,
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::boxed::Box;

    const KEEP: PurgePolicy = PurgePolicy {
        dirty_decay_ms: -1,
        muzzy_decay_ms: -1,
        retain: true,
        dirty_share: 0,
        dirty_floor: 0,
        huge_blocks: false,
    };

    /// Frees `e` into the dirty set, past the hot cache (these tests are
    /// about the sets; `hot_cache_*` about the cache).
    fn free_cold(p: &mut Pages, e: ERef) {
        p.dalloc(e);
        p.drain_hot();
    }

    fn pages() -> Box<Pages> {
        // Box keeps the large struct off the test thread's stack.
        Box::new(Pages::new(7, os::page_size(), 6, KEEP))
    }

    #[test]
    fn alloc_split_merge_reuse() {
        let mut p = pages();
        let ps = p.page;
        let (a, z) = p.alloc(4 * ps, ps).unwrap();
        assert!(z, "fresh memory is zero");
        p.register_active(a, 36, false);
        let (b, _) = p.alloc(8 * ps, ps).unwrap();
        p.register_active(b, 40, false);
        assert_eq!(b.addr(), a.end(), "address-ordered first fit packs");
        assert_eq!(emap::lookup(a.addr()).szind(), 36);
        assert_eq!(emap::lookup(b.addr() + 100).szind(), 40);
        // The last page finds the record but is not a valid free target.
        let last = emap::lookup(b.end() - 1);
        assert!(!last.is_active() && std::ptr::eq(last.extent().unwrap(), b));
        let (base, mapped) = (a.addr(), p.stats.mapped);
        assert_eq!(p.stats.active_bytes, 12 * ps);
        free_cold(&mut p, a);
        free_cold(&mut p, b);
        assert_eq!(p.stats.active_bytes, 0);
        // a and b merged into one dirty extent of 12 pages.
        assert_eq!(p.dirty.count, 1);
        assert_eq!(p.dirty.bytes, 12 * ps);
        let d = emap::lookup(base).extent().unwrap();
        assert_eq!(
            (d.addr(), d.size(), d.state()),
            (base, 12 * ps, State::Dirty)
        );
        // Reuse takes the dirty extent, lowest address first.
        let (c, z) = p.alloc(2 * ps, ps).unwrap();
        assert!(!z);
        assert_eq!(c.addr(), base);
        assert_eq!(p.stats.mapped, mapped, "no new mapping");
        p.register_active(c, 32, false);
        free_cold(&mut p, c);
        assert_eq!(p.dirty.count, 1);
    }

    /// Every page of `[a, b)` that is not the first or last page of the
    /// free extent covering it must map to nothing.
    fn assert_interior_clear(p: &Pages, e: ERef) {
        let ps = p.page;
        let mut a = e.addr() + ps;
        while a + ps < e.end() {
            assert_eq!(
                emap::lookup(a),
                Entry::EMPTY,
                "stale entry at page {:#x}",
                a
            );
            a += ps;
        }
        assert!(std::ptr::eq(emap::lookup(e.addr()).extent().unwrap(), e));
        assert!(std::ptr::eq(emap::lookup(e.end() - 1).extent().unwrap(), e));
    }

    #[test]
    fn merged_slabs_leave_no_stale_entries() {
        let mut p = pages();
        let ps = p.page;
        let (a, _) = p.alloc(5 * ps, ps).unwrap();
        p.register_active(a, 5, true);
        let (b, _) = p.alloc(5 * ps, ps).unwrap();
        p.register_active(b, 5, true);
        let (c, _) = p.alloc(5 * ps, ps).unwrap();
        p.register_active(c, 5, true);
        let (base, b_first, b_last) = (a.addr(), b.addr(), b.end() - ps);
        // Free the outer two, then the middle: it merges both ways.
        free_cold(&mut p, a);
        free_cold(&mut p, c);
        free_cold(&mut p, b);
        let m = emap::lookup(base).extent().unwrap();
        assert!(m.size() >= 15 * ps);
        assert_interior_clear(&p, m);
        // The middle slab's old boundary pages no longer look live.
        assert!(!emap::lookup(b_first).is_active());
        assert!(!emap::lookup(b_last).is_active());
        // Grow in place: the seam between the extents becomes interior too.
        let (l, _) = p.alloc(4 * ps, ps).unwrap();
        p.register_active(l, 36, false);
        let old_last = l.end() - ps;
        assert!(p.expand(l, 8 * ps).is_some());
        assert_eq!(emap::lookup(old_last), Entry::EMPTY);
        free_cold(&mut p, l);
    }

    #[test]
    fn purge_takes_only_what_is_asked() {
        let mut p = pages();
        let ps = p.page;
        let (a, _) = p.alloc(16 * ps, ps).unwrap();
        p.register_active(a, 40, false);
        let base = a.addr();
        free_cold(&mut p, a);
        let dirty = p.dirty.bytes;
        // A little over two pages: three purged, the rest stays dirty.
        assert_eq!(p.purge(State::Dirty, State::Retained, 2 * ps + 1), 3 * ps);
        assert_eq!(p.dirty.bytes, dirty - 3 * ps);
        // The low part stays dirty (it is reused first).
        let low = emap::lookup(base).extent().unwrap();
        assert_eq!(low.state(), State::Dirty);
        assert_interior_clear(&p, low);
    }

    #[test]
    fn release_all_gives_back_everything_free() {
        // retain:true, as by default: only release_all unmaps.
        let mut p = pages();
        let ps = p.page;
        let (a, _) = p.alloc(16 * ps, ps).unwrap();
        p.register_active(a, 40, false);
        let (b, _) = p.alloc(4 * ps, ps).unwrap();
        p.register_active(b, 36, false);
        free_cold(&mut p, a);
        assert!(p.free_bytes() > 0 && p.dirty.bytes >= 16 * ps);
        let (mapped, held) = (p.stats.mapped, p.free_bytes());
        assert_eq!(p.release_all(), held);
        assert_eq!((p.free_bytes(), p.dirty.count, p.retained.count), (0, 0, 0));
        assert_eq!(
            p.stats.mapped,
            mapped - held,
            "only the live block stays mapped"
        );
        assert_eq!(emap::lookup(b.addr()).szind(), 36);
        // The arena maps again from small growth steps.
        let (c, z) = p.alloc(8 * ps, ps).unwrap();
        assert!(z);
        p.register_active(c, 38, false);
        free_cold(&mut p, c);
        free_cold(&mut p, b);
    }

    #[test]
    fn aligned_and_purge() {
        let mut p = pages();
        let ps = p.page;
        let (a, _) = p.alloc(5 * ps, 64 * ps).unwrap();
        assert_eq!(a.addr() % (64 * ps), 0);
        p.register_active(a, 37, false);
        free_cold(&mut p, a);
        let dirty = p.dirty.bytes;
        assert!(dirty >= 5 * ps);
        assert_eq!(p.purge(State::Dirty, State::Muzzy, usize::MAX), dirty);
        assert_eq!(p.dirty.bytes, 0);
        let purged = p.purge(State::Muzzy, State::Retained, usize::MAX);
        assert!(purged >= dirty);
        assert_eq!(p.muzzy.bytes, 0);
        assert!(p.stats.dirty.nmadvise >= 1);
        // Everything merged back into retained address space, zeroed.
        let (b, z) = p.alloc(5 * ps, ps).unwrap();
        assert!(z);
        p.register_active(b, 37, false);
        free_cold(&mut p, b);
    }

    #[test]
    fn slabs_are_placed_so_regions_start_at_multiples_of_their_size() {
        let mut p = pages();
        let ps = p.page;
        let mut live = std::vec::Vec::new();
        // Region sizes with odd factors 3, 5 and 7, a power of two above a
        // page, and slabs of several sizes, interleaved with large extents
        // that misalign what follows.
        for round in 0..4 {
            for (region, pages) in [(48, 3), (80, 5), (14336, 7), (8192, 2), (96, 17), (16, 1)] {
                let (e, _) = p.alloc_slab(pages * ps, region).unwrap();
                assert_eq!(e.size(), pages * ps);
                assert_eq!(e.addr() % ps, 0);
                assert_eq!(
                    e.addr() as u32 as usize % region,
                    0,
                    "{region} B: {:#x}",
                    e.addr()
                );
                assert!((e.addr() as u32 as usize) + e.size() <= 1 << 32);
                p.register_active(e, 3, true);
                live.push(e);
            }
            let (l, _) = p.alloc((round + 1) * ps, ps).unwrap();
            p.register_active(l, 40, false);
            live.push(l);
        }
        // Guarded: the placement holds inside the guards.
        let (g, _) = p.alloc_guarded(3 * ps, 48).unwrap();
        assert_eq!(g.addr() as u32 as usize % 48, 0);
        assert_eq!(g.size(), 3 * ps);
        p.register_active(g, 3, true);
        live.push(g);
        for e in live {
            free_cold(&mut p, e);
        }
    }

    #[test]
    fn slab_placement_skips_a_4_gib_boundary() {
        let fit = Fit::slab(4096, 48, 0);
        assert_eq!(fit.period, 12288);
        let w = 7usize << 32;
        // Room before the boundary: the next multiple of the period.
        assert_eq!(fit.start(w + 4096, 3 * 4096), Some(w + 12288));
        // A slab that would cross it starts at the boundary instead.
        let last = w + (1 << 32) - 12288 + 4096;
        assert_eq!(fit.start(last, 3 * 4096), Some(w + (1 << 32)));
        // With guards, the constraint applies one page in.
        let guarded = Fit::slab(4096, 48, 4096);
        assert_eq!(
            guarded.start(w, 5 * 4096).map(|s| s + 4096),
            Some(w + 12288)
        );
        assert_eq!(Fit::slab(4096, 0, 0).start(w + 1, 4096), Some(w + 4096));
    }

    /// Six 64-page blocks allocated from pages with `policy`.
    fn six_blocks(policy: PurgePolicy) -> (Box<Pages>, std::vec::Vec<ERef>) {
        let mut p = Box::new(Pages::new(7, os::page_size(), 6, policy));
        let blocks = (0..6)
            .map(|_| {
                let (e, _) = p.alloc(64 * p.page, p.page).unwrap();
                p.register_active(e, 60, false);
                e
            })
            .collect();
        (p, blocks)
    }

    #[test]
    fn dirty_share_caps_dirty_pages_but_keeps_the_last_free() {
        let capped = PurgePolicy {
            dirty_decay_ms: 10_000,
            muzzy_decay_ms: 0,
            dirty_share: 1,
            ..KEEP
        };
        let (mut p, blocks) = six_blocks(capped);
        let ps = p.page;
        // Free four of six, one at a time: dirty never exceeds active
        // (2 x 64 pages at the end) or the block just freed.
        for &e in &blocks[..4] {
            p.dalloc(e);
            assert!(p.dirty.bytes <= p.stats.active_bytes.max(64 * ps));
        }
        assert!(p.dirty.bytes >= 64 * ps, "the last free stays");
        p.dalloc(blocks[4]);
        p.dalloc(blocks[5]);
        // All freed: the last block stays dirty, for reuse.
        assert_eq!(p.stats.active_bytes, 0);
        assert!(p.dirty.bytes >= 64 * ps);
        let before = p.stats.mapped;
        let (e, zeroed) = p.alloc(64 * ps, ps).unwrap();
        assert!(!zeroed, "reused a dirty (resident) extent");
        assert_eq!(p.stats.mapped, before);
        p.register_active(e, 60, false);
        p.dalloc(e);

        // With a floor of 256 pages, four blocks stay dirty; the fifth
        // crosses the floor and purges down to half of it.
        let (mut p, blocks) = six_blocks(PurgePolicy {
            dirty_floor: 256 * ps,
            ..capped
        });
        for &e in &blocks[..4] {
            p.dalloc(e);
        }
        assert_eq!(p.dirty.bytes, 256 * ps);
        p.dalloc(blocks[4]);
        assert_eq!(p.dirty.bytes, 128 * ps);
        p.dalloc(blocks[5]);
        assert_eq!(p.dirty.bytes, 192 * ps, "below the floor again: kept");

        // A decay time of -1 (never purge) lifts the cap.
        let (mut p, blocks) = six_blocks(PurgePolicy {
            dirty_decay_ms: -1,
            ..capped
        });
        for e in blocks {
            p.dalloc(e);
        }
        assert_eq!(p.dirty.bytes, 6 * 64 * ps);
    }

    #[test]
    fn guarded_extents_stay_apart_until_freed() {
        let mut p = pages();
        let ps = p.page;
        let (a, _) = p.alloc(4 * ps, ps).unwrap();
        p.register_active(a, 36, false);
        let (g, z) = p.alloc_guarded(4 * ps, 0).unwrap();
        p.register_active(g, 36, false);
        assert!(z && g.has(GUARDED));
        assert_eq!(g.size(), 4 * ps);
        assert_eq!(g.addr(), a.end() + ps, "the left guard page lies between");
        assert_eq!(p.stats.active_bytes, 10 * ps, "guard pages count as active");
        // Guard pages map to nothing; the block's own pages to it.
        assert_eq!(emap::lookup(g.addr() - ps), Entry::EMPTY);
        assert_eq!(emap::lookup(g.end()), Entry::EMPTY);
        assert_eq!(emap::lookup(g.addr()).szind(), 36);
        // A freed neighbour does not merge across the guard.
        let base = a.addr();
        free_cold(&mut p, a);
        let d = emap::lookup(base).extent().unwrap();
        assert_eq!((d.state(), d.end()), (State::Dirty, base + 4 * ps));
        // Freed: the guards are lifted and taken back, and it all merges.
        let (lo, hi) = (g.addr() - ps, g.end());
        free_cold(&mut p, g);
        assert!(!g.has(GUARDED));
        // SAFETY: the former guard pages are free pages of `p`, writable.
        unsafe {
            (lo as *mut u8).write(1);
            (hi as *mut u8).write(1);
        }
        let m = emap::lookup(base).extent().unwrap();
        assert!(m.end() > hi, "one free extent from {base:#x}");
        assert_eq!(p.stats.active_bytes, 0);
        assert_interior_clear(&p, m);
    }

    #[test]
    fn guard_sampling_as_jemalloc() {
        OPT_SAN_GUARD_LARGE.store(3, Relaxed);
        let s = GuardSampler::new();
        let yes = || true;
        // Every third; an ineligible turn passes to the next eligible one.
        let got: std::vec::Vec<bool> = [true, true, true, true, true, false, true, true]
            .iter()
            .map(|&e| s.large(e, yes))
            .collect();
        assert_eq!(got, [false, false, true, false, false, false, true, false]);
        // Custom hooks: neither guarded nor counted.
        let t = GuardSampler::new();
        assert!(!t.large(true, || false) && !t.large(true, || false));
        assert!(!t.large(true, yes) && !t.large(true, yes) && t.large(true, yes));
        OPT_SAN_GUARD_LARGE.store(0, Relaxed);
        assert!(!GuardSampler::new().large(true, yes));
    }

    #[test]
    fn shrink_and_expand_in_place() {
        let mut p = pages();
        let ps = p.page;
        let (a, _) = p.alloc(8 * ps, ps).unwrap();
        p.register_active(a, 40, false);
        assert!(p.shrink(a, 4 * ps));
        assert_eq!(a.size(), 4 * ps);
        assert_eq!(p.stats.active_bytes, 4 * ps);
        // The freed tail is a 4-page dirty extent (the retained rest of the
        // mapping is in another state): growing past it fails, into it works.
        assert!(p.expand(a, 10 * ps).is_none());
        assert_eq!(p.expand(a, 7 * ps), Some(false));
        assert_eq!(a.size(), 7 * ps);
        assert_eq!(p.stats.active_bytes, 7 * ps);
        assert_eq!(p.dirty.bytes, ps);
        assert!(std::ptr::eq(emap::lookup(a.end() - 1).extent().unwrap(), a));
        free_cold(&mut p, a);
    }

    /// Pages with finite decay times (so frees go to the hot cache) and
    /// no inline decay pass until a test asks for one.
    fn hot_pages() -> Box<Pages> {
        let decaying = PurgePolicy {
            dirty_decay_ms: 10_000,
            muzzy_decay_ms: 10_000,
            ..KEEP
        };
        let mut p = Box::new(Pages::new(7, os::page_size(), 6, decaying));
        p.next_decay_ns = u64::MAX;
        p
    }

    /// A one-page slab of 64-byte regions, registered active.
    fn page_slab(p: &mut Pages) -> ERef {
        let (s, _) = p.alloc_slab(p.page, 64).unwrap();
        p.register_active(s, 4, true);
        s
    }

    #[test]
    fn hot_cache_reuses_small_extents_whole_until_decay() {
        let mut p = hot_pages();
        let ps = p.page;
        let a = page_slab(&mut p);
        let b = page_slab(&mut p);
        let (big, _) = p.alloc(32 * ps, ps).unwrap();
        p.register_active(big, 40, false);
        let (a_addr, active) = (a.addr(), p.stats.active_bytes);
        p.dalloc(a);
        // Hot: not active, counted dirty, not in the dirty set, not live.
        assert_eq!(p.stats.active_bytes, active - ps);
        assert_eq!((p.dirty_bytes(), p.dirty.bytes), (ps, 0));
        assert!(!emap::lookup(a_addr).is_active());
        assert_eq!(p.dirty_class_counts(sc::floor_index(ps)), (1, ps));
        // Its neighbour, freed past the cache, does not merge with it.
        assert_eq!(b.addr(), a.end());
        p.active.remove(b);
        p.release(b);
        assert_eq!((p.dirty.count, p.dirty.bytes), (1, ps));
        assert_eq!(p.hot.bytes, ps);
        // A slab of the same size and placement takes the hot extent,
        // whole, and the dirty one stays.
        let (d, z) = p.alloc_slab(ps, 64).unwrap();
        assert!(!z);
        assert_eq!(d.addr(), a_addr);
        assert_eq!((p.hot.bytes, p.dirty.bytes), (0, ps));
        assert_eq!(p.stats.active_bytes, active - ps);
        p.register_active(d, 4, true);
        // Too big for the cache: straight to the dirty set.
        let before = p.dirty.bytes;
        p.dalloc(big);
        assert_eq!(p.dirty.bytes, before + 32 * ps);
        // A decay pass returns hot extents to the dirty set first.
        p.dalloc(d);
        assert_eq!(p.hot.bytes, ps);
        p.decay(os::now_ns());
        assert_eq!(p.hot.bytes, 0);
        assert!(p.hot.lists.iter().all(|l| l.first().is_none()));
        assert_eq!(p.dirty_bytes(), p.dirty.bytes);
        assert_eq!(p.stats.active_bytes, 0);
    }

    #[test]
    fn hot_cache_stays_within_the_dirty_cap() {
        let ps = os::page_size();
        let free_eight = |policy: PurgePolicy| {
            let mut p = Box::new(Pages::new(7, ps, 6, policy));
            p.next_decay_ns = u64::MAX;
            let slabs: std::vec::Vec<ERef> = (0..8).map(|_| page_slab(&mut p)).collect();
            for s in slabs {
                p.dalloc(s);
            }
            (p.hot.bytes, p.dirty.bytes)
        };
        let decaying = PurgePolicy {
            dirty_decay_ms: 10_000,
            muzzy_decay_ms: 10_000,
            ..KEEP
        };
        // Uncapped, the cache takes all eight.
        assert_eq!(free_eight(decaying), (8 * ps, 0));
        // Capped at 4 pages (no active bytes left), it keeps no more; the
        // rest goes to the dirty set, which keeps its own cap.
        let (hot, dirty) = free_eight(PurgePolicy {
            dirty_share: 1,
            dirty_floor: 4 * ps,
            ..decaying
        });
        assert!(hot <= 4 * ps && dirty <= 4 * ps, "hot {hot}, dirty {dirty}");
    }

    #[test]
    fn hot_extents_serve_other_sizes_before_the_pages_grow() {
        let mut p = hot_pages();
        let ps = p.page;
        let a = page_slab(&mut p);
        let b = page_slab(&mut p);
        let (g, _) = p.alloc_guarded(ps, 64).unwrap();
        p.register_active(g, 4, true);
        // Use up the rest of the mapping, so that only the hot cache holds
        // free resident pages.
        let rest = p.dirty.bytes;
        let (filler, _) = p.alloc(rest, ps).unwrap();
        p.register_active(filler, 40, false);
        assert_eq!(p.dirty.bytes, 0);
        let (a_addr, mapped) = (a.addr(), p.stats.mapped);
        assert_eq!(b.addr(), a.end());
        p.dalloc(a);
        p.dalloc(b);
        p.dalloc(g);
        assert_eq!(p.hot.bytes, 3 * ps);
        // Two pages: the two hot slabs merge and serve it; no new mapping,
        // and the guarded slab stays hot with its guards.
        let (two, _) = p.alloc(2 * ps, ps).unwrap();
        assert_eq!((two.addr(), p.stats.mapped), (a_addr, mapped));
        assert_eq!(p.hot.bytes, ps);
        assert!(g.has(GUARDED));
    }

    #[test]
    fn hot_cache_keeps_guard_pages() {
        let mut p = hot_pages();
        let ps = p.page;
        let (g, _) = p.alloc_guarded(ps, 64).unwrap();
        p.register_active(g, 4, true);
        let (addr, active) = (g.addr(), p.stats.active_bytes);
        assert_eq!(active, 3 * ps, "the slab and its two guard pages");
        p.dalloc(g);
        // Hot with its guards, which stay counted active.
        assert!(g.has(GUARDED));
        assert_eq!((p.hot.bytes, p.stats.active_bytes), (ps, 2 * ps));
        assert_eq!(emap::lookup(addr - ps), Entry::EMPTY);
        // An unguarded request leaves it; a guarded one takes it as it is.
        let (u, _) = p.alloc_slab(ps, 64).unwrap();
        assert_ne!(u.addr(), addr);
        p.register_active(u, 4, true);
        let (h, _) = p.alloc_guarded(ps, 64).unwrap();
        assert_eq!((h.addr(), h.size()), (addr, ps));
        assert!(h.has(GUARDED));
        p.register_active(h, 4, true);
        assert_eq!(p.stats.active_bytes, active + ps);
        // Drained, it loses its guards and merges like any free extent.
        p.dalloc(h);
        p.dalloc(u);
        p.decay(os::now_ns());
        assert!(!h.has(GUARDED));
        assert_eq!((p.hot.bytes, p.stats.active_bytes), (0, 0));
        assert!(p.dirty.bytes >= 3 * ps, "the slab and its guard pages");
        // The guard pages are accessible again (this faults otherwise).
        // SAFETY: both pages belong to this page allocator's free memory.
        unsafe {
            core::ptr::write_volatile((addr - ps) as *mut u8, 1);
            core::ptr::write_volatile((addr + ps) as *mut u8, 1);
        }
    }
}
