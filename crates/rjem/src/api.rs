//! The allocation entry points shared by the Rust and C fronts: every rule
//! about a request (rounding, placement, zeroing, resizing, sized-free
//! checking) is written here once, and both fronts are thin wrappers.
//!
//! Owns: the walk from a request to the right layer. `malloc` -> size class
//! -> thread cache (`tcache`) -> on a miss the arena's bin fills the cache
//! from slabs (`bin`, `slab`) -> slabs and large extents come from the page
//! allocator (`pages`) -> which maps memory from the OS (`os`). `free` looks
//! the pointer up in the pointer map (`emap`) unless the caller knows the
//! size, then pushes it to the thread cache or returns it to its arena.
//!
//! Invariants: a request is served at its class's usable size
//! (`nallocx`); blocks cached per thread are page-aligned or smaller-class
//! regions, so alignments above a page bypass the cache; nothing here
//! allocates through another allocator. Impossible requests return null.
//! The slow paths call `init::ensure()` before going down the layers.

use crate::arena;
use crate::background;
use crate::conf;
use crate::emap::{self, Entry};
use crate::extent;
use crate::init;
use crate::os::{self, align_up};
use crate::profiler as prof;
use crate::size_class::{self as sc, LOOKUP_MAX};
use crate::tcache::{self, Tcache, NCACHED_MAX};
use crate::tsd;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

// Every class a fast path can look up is cached when the cache is on.
const _: () = assert!(sc::size_to_index_compute(LOOKUP_MAX) < NCACHED_MAX);

/// `realloc(p, 0)` calls (`stats.zero_reallocs`).
pub(crate) static ZERO_REALLOCS: AtomicUsize = AtomicUsize::new(0);

/// Where a block is taken from, or given back to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Place {
    /// The calling thread's cache, then its arena.
    Cached,
    /// The calling thread's arena, bypassing its cache.
    Uncached,
    /// Arena `i` (created if needed), bypassing every cache.
    Arena(usize),
    /// Explicit cache `tc` (`tcache.create`), then the calling thread's
    /// arena; a cache that does not exist is bypassed.
    Tcache(usize),
}

/// The thread-cache hit path for a request whose size, already rounded up
/// to its alignment, is `r`: one table load (the stack's offset) and a pop.
/// Declines (None) for `r > LOOKUP_MAX` with a single compare, and for
/// `r == 0` by the table (offset 0, the stack that takes nothing). Callers
/// guarantee that `r` did not overflow and that a class of size >= `r`
/// satisfies their alignment (true for any alignment up to a page when `r` is a multiple
/// of it; alignments above `LOOKUP_MAX` make `r` exceed it).
#[inline(always)]
pub(crate) fn cache_alloc(r: usize) -> Option<*mut u8> {
    if r <= LOOKUP_MAX {
        // SAFETY: r <= LOOKUP_MAX, whose class is below NCACHED_MAX (0:
        // `before`, which never pops).
        unsafe { tsd::cache_pop(tcache::bin_offset(r)) }
    } else {
        None
    }
}

/// Moves small block `p` of `old_size` bytes aligned to `align` (its
/// layout, which the caller knows: Rust's `GlobalAlloc::realloc`) to a
/// block of another cached class: a pop (or, when the cache misses, the
/// allocation slow path), a copy and a sized free. None, with `p`
/// untouched, when the class stays (`realloc` keeps the block) or either
/// size is beyond the lookup table; null, with `p` untouched, when memory
/// is exhausted. `CHECK`: as in `sized_free`.
///
/// # Safety
/// `p` must be a live block allocated with exactly this size and
/// alignment; on success it must not be used again.
#[inline]
pub(crate) unsafe fn realloc_cached<const CHECK: bool>(
    p: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> Option<*mut u8> {
    let old = align_up(old_size, align)?;
    let new = align_up(new_size, align)?;
    if old.wrapping_sub(1) >= LOOKUP_MAX
        || new.wrapping_sub(1) >= LOOKUP_MAX
        || tcache::bin_offset(old) == tcache::bin_offset(new)
    {
        return None;
    }
    // Checked builds look at `p` before reading it: what is not a live
    // block goes to `realloc`, which reports it.
    if CHECK && !emap::lookup(p as usize).is_active() {
        return None;
    }
    // A miss must go on to the slow path, which takes a sampling event
    // that the miss announced (`Tcache::charge_pop`); a second pop would
    // skip it.
    let q = match cache_alloc(new) {
        Some(q) => q,
        None => alloc_slow(new_size, align, false, Place::Cached),
    };
    if q.is_null() {
        return Some(q);
    }
    // SAFETY: both blocks are live and distinct; each holds at least the
    // bytes copied.
    unsafe { ptr::copy_nonoverlapping(p, q, old_size.min(new_size)) };
    // SAFETY: forwarded contract.
    unsafe { sized_free::<CHECK>(p, old_size, align, Place::Cached) };
    Some(q)
}

/// Allocates `size` bytes aligned to `align` (a power of two), zeroed if
/// asked, from `place`. Null if the request is impossible or memory is
/// exhausted.
#[inline]
pub(crate) fn alloc(size: usize, align: usize, zero: bool, place: Place) -> *mut u8 {
    if place == Place::Cached && !zero {
        if let Some(p) = align_up(size, align).and_then(cache_alloc) {
            return p;
        }
    }
    alloc_slow(size, align, zero, place)
}

/// The allocation slow path: any size, alignment, zeroing and place. With
/// `zero:true` every block is zeroed; with `junk:alloc` (or `true`) a
/// block not zeroed is filled with `JUNK_ALLOC`, as jemalloc does.
#[cold]
#[inline(never)]
pub(crate) fn alloc_slow(size: usize, align: usize, zero: bool, place: Place) -> *mut u8 {
    let p = if conf::FILL.load(Relaxed) != 0 {
        alloc_filled(size, align, zero, place)
    } else {
        alloc_unfilled(size, align, zero, place).0
    };
    // Only here, never on a free: the C library frees with its own locks
    // held (glibc's stack cache lock, while it reclaims the stacks of
    // exited threads), and creating a thread takes them.
    background::start_if_wanted();
    p
}

/// `alloc_slow` with `junk` or `zero` on.
#[cold]
#[inline(never)]
fn alloc_filled(size: usize, align: usize, zero: bool, place: Place) -> *mut u8 {
    let fills = conf::FILL.load(Relaxed);
    let zero = zero || fills & conf::FILL_ZERO != 0;
    let (p, usize) = alloc_unfilled(size, align, zero, place);
    if !zero && !p.is_null() && fills & conf::FILL_JUNK_ALLOC != 0 {
        fill(p, usize, JUNK_ALLOC);
    }
    p
}

/// Byte `junk` writes into new blocks, and into freed ones (jemalloc's).
pub(crate) const JUNK_ALLOC: u8 = 0xa5;
pub(crate) const JUNK_FREE: u8 = 0x5a;

/// Fills `len` bytes at `p` (a block, or its part, that we own) with
/// `byte`.
#[cold]
fn fill(p: *mut u8, len: usize, byte: u8) {
    // SAFETY: the caller owns those bytes.
    unsafe { ptr::write_bytes(p, byte, len) };
}

/// `junk:free` (or `true`): fills live block `p` (entry `ent`), which is
/// being freed, with `JUNK_FREE`, after checking it is a block's start (an
/// interior pointer would be filled past the block's end). False (the free
/// must be skipped) if it is not, after `block_start` reported it.
#[cold]
fn junk_freed(p: *mut u8, ent: Entry) -> bool {
    if !block_start(p, ent, "free") {
        return false;
    }
    fill(p, sc::index_to_size(ent.szind()), JUNK_FREE);
    true
}

/// Whether `p`, with live entry `ent`, given to entry point `func`, is the
/// start of a block: a region start of its slab, or its large extent's
/// start. If not, the misuse is reported (`os::misuse`) and false returned.
#[inline]
pub(crate) fn block_start(p: *mut u8, ent: Entry, func: &'static str) -> bool {
    let Some(e) = ent.owner_in(p, func) else {
        return false;
    };
    if !ent.is_slab() {
        return true;
    }
    let info = &sc::geom().bins[ent.szind()];
    let off = (p as usize).wrapping_sub(e.addr());
    if off < info.nregs * info.size && info.region_of(off).1 {
        return true;
    }
    not_region_start(p, ent.szind(), func);
    false
}

/// Reports `p`, given to `func`, as a pointer into a small block that is
/// not its start.
#[cold]
#[inline(never)]
pub(crate) fn not_region_start(p: *mut u8, ind: usize, func: &'static str) {
    os::misuse(
        format_args!(
            "invalid {func}: pointer inside a block, not its start ({} bytes class)",
            sc::index_to_size(ind)
        ),
        p as usize,
    )
}

/// `alloc_slow` without `junk`'s fill; returns the block (or null) with
/// its usable size.
#[inline(always)]
fn alloc_unfilled(size: usize, align: usize, zero: bool, place: Place) -> (*mut u8, usize) {
    if !init::ensure() {
        return (ptr::null_mut(), 0);
    }
    let g = sc::geom();
    // Size 0 included: `usable_size` says what it becomes.
    let Some(usize) = g.usable_size(size, align) else {
        return (ptr::null_mut(), 0);
    };
    let ind = sc::size_to_index(usize);
    if prof::on() {
        let entry = alloc_slow as *const () as usize;
        if place == Place::Cached && cached_align_ok(ind, align) {
            // The thread's cache samples its classes itself
            // (`tcache::sample`): its countdown decides.
            let t = tsd::slow();
            if let Some(c) = t.cache().filter(|c| c.caches(ind)) {
                if let Some(s) = prof::should_sample_cached(c, ind, entry) {
                    return (sampled(usize, ind, align, zero, place, s), usize);
                }
                let p = c.alloc_counted(t.arena(), ind);
                return (zeroed(p, usize, zero), usize);
            }
        }
        if let Some(s) = prof::should_sample(usize, entry) {
            return (sampled(usize, ind, align, zero, place, s), usize);
        }
    }
    let mut place = place;
    if let Place::Tcache(tc) = place {
        let arena = tsd::slow().arena();
        let got = tcache::with_explicit(tc, |c| {
            (c.caches(ind) && cached_align_ok(ind, align)).then(|| c.alloc(arena, ind))
        });
        if let Some(Some(p)) = got {
            if !p.is_null() {
                tsd::note_alloc(usize);
            }
            return (zeroed(p, usize, zero), usize);
        }
        // Not a class that cache holds, or no such cache.
        place = Place::Uncached;
    }
    let (arena, cache) = match place {
        Place::Arena(i) => match arena::get_or_create(i) {
            Some(a) => (a, None),
            None => return (ptr::null_mut(), 0),
        },
        Place::Uncached | Place::Tcache(_) => (tsd::slow().arena(), None),
        Place::Cached => {
            let t = tsd::slow();
            (t.arena(), t.cache())
        }
    };
    let p = match cache {
        Some(c) if c.caches(ind) && cached_align_ok(ind, align) => c.alloc(arena, ind),
        _ if g.is_small(ind) => {
            let p = arena.small_alloc(ind, Some(tsd::guards()));
            if !p.is_null() {
                tsd::note_alloc(usize);
                tcache::clear_stale_key(p);
            }
            p
        }
        _ => {
            let target = match place {
                Place::Arena(_) => arena,
                _ => match arena::for_large(arena, usize) {
                    Some(a) => a,
                    None => return (ptr::null_mut(), 0),
                },
            };
            let p = target.large_alloc(usize, align, zero, Some(tsd::guards()));
            if !p.is_null() {
                tsd::note_alloc(usize);
                tcache::clear_stale_key(p);
            }
            return (p, usize);
        }
    };
    (zeroed(p, usize, zero), usize)
}

/// Whether a cached block of class `ind` satisfies alignment `align`:
/// small regions up to a page (callers round the size up to the
/// alignment), large blocks up to where they start (a page, or a cache
/// line with `cache_oblivious`); larger alignments bypass the caches.
#[inline]
fn cached_align_ok(ind: usize, align: usize) -> bool {
    let g = sc::geom();
    if g.is_small(ind) || extent::large_pad() == 0 {
        align <= g.page
    } else {
        align <= extent::CACHELINE
    }
}

/// A block the heap profiler samples (`prof`): small classes get an
/// extent of their own (promoted), large ones are placed as usual; either
/// way the extent carries the sample's tag, and its pointer-map entry
/// keeps its frees off the caches' hit paths (`prof::record`). Null when
/// out of memory.
#[cold]
#[inline(never)]
fn sampled(
    usize: usize,
    ind: usize,
    align: usize,
    zero: bool,
    place: Place,
    s: prof::Sample,
) -> *mut u8 {
    let bound = match place {
        Place::Arena(i) => match arena::get_or_create(i) {
            Some(a) => a,
            None => return ptr::null_mut(),
        },
        _ => tsd::slow().arena(),
    };
    let p = if sc::geom().is_small(ind) {
        bound.promoted_alloc(ind, align, zero)
    } else {
        let target = match place {
            Place::Arena(_) => Some(bound),
            _ => arena::for_large(bound, usize),
        };
        match target {
            Some(a) => a.large_alloc(usize, align, zero, None),
            None => ptr::null_mut(),
        }
    };
    if !p.is_null() {
        tsd::note_alloc(usize);
        prof::record(p, usize, s);
    }
    p
}

/// `p` (a block of `usize` bytes just handed out, or null), cleared if
/// `zero`.
#[inline]
fn zeroed(p: *mut u8, usize: usize, zero: bool) -> *mut u8 {
    if zero && !p.is_null() {
        // SAFETY: p is a block of `usize` bytes that we just handed out.
        unsafe { ptr::write_bytes(p, 0, usize) };
    }
    p
}

/// Frees `p` (from any rjem allocation function; null is ignored).
///
/// # Safety
/// `p` must be null or a live rjem allocation, not used afterwards.
#[inline]
pub(crate) unsafe fn free(p: *mut u8) {
    // Null, foreign and freed pointers have no cached class: slow path.
    if let Some(ent) = emap::lookup_below_top(p as usize) {
        let off = ent.scaled_class::<{ tcache::LG_BIN }>();
        // SAFETY: every entry's offset is a stack's (below OFFSET_LIMIT;
        // the stacks of no cached class take nothing), and the entry says
        // p's block is live and of that stack's class (the caller gives
        // it up).
        if unsafe { tsd::cache_push(off, p) } {
            return;
        }
    }
    free_slow(p);
}

/// `free` past the hit path. Looks `p` up again: passing the entry would
/// make every branch of the hit path that gives up set it.
#[cold]
#[inline(never)]
fn free_slow(p: *mut u8) {
    if p.is_null() {
        return;
    }
    let ent = emap::lookup(p as usize);
    if !ent.is_active() {
        return emap::invalid_free(p);
    }
    dalloc_freed(p, ent, Place::Cached);
}

/// Frees live block `p` (entry `ent`) given back by the program into
/// `place`, filling it first with `junk:free` (realloc's moves are not
/// filled, as in jemalloc).
#[cold]
#[inline(never)]
fn dalloc_freed(p: *mut u8, ent: Entry, place: Place) {
    dalloc_impl::<true>(p, ent, place)
}

/// Frees `p` into `place` (null is ignored): `Cached` is `free`, the
/// others return it straight to its arena.
///
/// # Safety
/// As `free`.
pub(crate) unsafe fn free_in(p: *mut u8, place: Place) {
    match place {
        // SAFETY: forwarded contract.
        Place::Cached => unsafe { free(p) },
        _ if p.is_null() => {}
        _ => {
            if let Some(ent) = emap::lookup_live(p) {
                dalloc_freed(p, ent, place)
            }
        }
    }
}

/// Frees `p`, which was allocated with (`size`, `align`) (any size between
/// the requested and the usable size is accepted).
///
/// With `CHECK` (the C library, and Rust debug builds) the size is checked
/// against the pointer map at once, and a size of another class is
/// reported (`os::misuse`; with `abort:false` the block stays allocated).
/// Without it (Rust release builds, whose sizes come from a `Layout`) the
/// cache path needs no lookup at all; a wrong size is then caught only when
/// the thread cache flushes the block (until then the block may be handed
/// out again as a block of the wrong class), and not at all for sizes above
/// `LOOKUP_MAX`, which are freed by their pointer-map entry.
///
/// # Safety
/// `p` must be a live rjem allocation, not used afterwards; `align` is a
/// power of two.
#[inline(always)]
pub(crate) unsafe fn sized_free<const CHECK: bool>(
    p: *mut u8,
    size: usize,
    align: usize,
    place: Place,
) {
    // Wrapping: an overflow (a size no block has) fails the check below.
    let r = size.wrapping_add(align - 1) & !(align - 1);
    if CHECK {
        let Some(ent) = emap::lookup_live(p) else {
            return;
        };
        // The class a cache may take (none for a block that bypasses
        // the caches): checked first, so the hit path needs no other.
        let ind = ent.cached_class();
        if !size_fits(r, size, align, ind) {
            return sized_free_checked_slow(p, r, size, align, ent, place);
        }
        let off = ent.scaled_class::<{ tcache::LG_BIN }>();
        // SAFETY: as in `free`.
        if place == Place::Cached && unsafe { tsd::cache_push(off, p) } {
            return;
        }
        dalloc_freed(p, ent, place);
    } else {
        // With the heap profiler on, the trusted push declines all but
        // blocks at 64 KiB boundaries, never samples: the entry must say
        // whether the block is one.
        if place == Place::Cached && r <= LOOKUP_MAX {
            // SAFETY: r <= LOOKUP_MAX, whose class is below NCACHED_MAX (0,
            // a wrapped size: `before`, which takes nothing); the caller
            // says p's block is of r's class.
            if unsafe { tsd::cache_push_trusted(tcache::bin_offset(r), p) } {
                return;
            }
        }
        sized_free_slow(p, place);
    }
}

/// `sized_free` with `CHECK` when the size does not fit the class a cache
/// may take: a block that bypasses the caches (a sample), or a size that
/// does not match.
#[cold]
#[inline(never)]
fn sized_free_checked_slow(
    p: *mut u8,
    r: usize,
    size: usize,
    align: usize,
    ent: Entry,
    place: Place,
) {
    if !size_fits(r, size, align, ent.szind()) {
        return size_mismatch(p, size, ent.szind());
    }
    dalloc_freed(p, ent, place);
}

/// `sized_free` without `CHECK`, past the cache: out of line, so that
/// Rust's `dealloc` stays small enough to be inlined. By the entry: for
/// the calling thread's cache as `free` (hit path included; with the heap
/// profiler on, nearly every such free comes here:
/// `CacheBin::trusted_mask`).
#[cold]
#[inline(never)]
fn sized_free_slow(p: *mut u8, place: Place) {
    if place == Place::Cached {
        // SAFETY: the caller gives up live block `p`, as `free` needs.
        return unsafe { free(p) };
    }
    if let Some(ent) = emap::lookup_live(p) {
        dalloc_freed(p, ent, place);
    }
}

/// Whether a block of class `szind` may be freed with (`size`, `align`),
/// `r` being `size` rounded up to `align` (maybe wrapped).
#[inline(always)]
fn size_fits(r: usize, size: usize, align: usize, szind: usize) -> bool {
    if r.wrapping_sub(1) < LOOKUP_MAX && r >= size {
        sc::lookup_index(r) == szind
    } else {
        size_fits_slow(size, align, szind)
    }
}

#[cold]
fn size_fits_slow(size: usize, align: usize, szind: usize) -> bool {
    sc::geom()
        .usable_size(size, align)
        .is_some_and(|u| sc::size_to_index(u) == szind)
}

#[cold]
#[inline(never)]
fn size_mismatch(p: *mut u8, size: usize, ind: usize) {
    os::misuse(
        format_args!(
            "sized free with a size that does not match the allocation (size {size}, block of {} bytes class)",
            sc::index_to_size(ind)
        ),
        p as usize,
    )
}

/// The free slow path: thread cache full or not set up, uncached classes
/// and places. Locks (futex), purging (madvise) and starting the purger
/// thread may set `errno`; `free` must leave it alone (POSIX 2024, glibc
/// >= 2.33).
#[cold]
#[inline(never)]
fn dalloc_slow(p: *mut u8, ent: Entry, place: Place) {
    dalloc_impl::<false>(p, ent, place)
}

/// `dalloc_slow`, and with `FREED` (a block the program gives back, not
/// one realloc moved) `junk:free`'s fill first.
#[inline(always)]
fn dalloc_impl<const FREED: bool>(p: *mut u8, ent: Entry, place: Place) {
    if FREED && conf::junk_free() {
        // Before the fill overwrites the free key (a double free).
        if tsd::freed_already(ent.szind(), p, "free") || !junk_freed(p, ent) {
            return;
        }
    }
    if prof::on() && dalloc_prof(p, ent) {
        return;
    }
    let saved = os::errno();
    let cached = match place {
        Place::Cached => cache_slow(p, ent),
        Place::Tcache(tc) => {
            let put = tcache::with_explicit(tc, |c| cache_into(c, p, ent)) == Some(true);
            if put {
                // An explicit cache's stacks are not the thread's.
                tsd::note_dalloc(sc::index_to_size(ent.szind()));
            }
            put
        }
        _ => false,
    };
    if !cached {
        tsd::note_dalloc(sc::index_to_size(ent.szind()));
        if ent.is_slab() {
            if !block_start(p, ent, "free") {
                // Reported; skipped with `abort:false`.
                os::set_errno(saved);
                return;
            }
            // The free key, as a cache would write it: a second free of
            // this block, by any thread, then finds it free in its slab.
            // SAFETY: a region start, 8-aligned, ours until freed below.
            unsafe { (p as *mut u64).write(tcache::free_key()) };
        }
        arena::dalloc_direct(p, ent);
    }
    os::set_errno(saved);
}

/// The free slow path's part with the heap profiler on: a sampled block
/// (never a slab region; its entry kept it off the hit path) goes
/// straight back to its arena. True if `p` was freed.
#[cold]
fn dalloc_prof(p: *mut u8, ent: Entry) -> bool {
    if ent.is_slab() {
        return false;
    }
    let saved = os::errno();
    if !prof::freed(p, ent) {
        return false;
    }
    tsd::note_dalloc(sc::index_to_size(ent.szind()));
    arena::dalloc_direct(p, ent);
    os::set_errno(saved);
    true
}

/// Caches `p` in the calling thread's cache if its class is cached there
/// (and, for large blocks, `p` is the block's start). False otherwise.
fn cache_slow(p: *mut u8, ent: Entry) -> bool {
    // A live block exists, so rjem is initialised.
    tsd::cache_for_free().is_some_and(|c| cache_into(c, p, ent))
}

/// Caches `p` (entry `ent`) in `c` if `c` holds its class (and, for large
/// blocks, `p` is the block's start). False otherwise.
fn cache_into(c: &Tcache, p: *mut u8, ent: Entry) -> bool {
    let ind = ent.szind();
    let whole = ent.is_slab() || ent.extent().is_some_and(|e| e.block() == p as usize);
    if !(c.caches(ind) && whole) {
        return false;
    }
    c.dalloc(ind, p);
    true
}

/// Usable size of live allocation `p` (its size class), asked by entry
/// point `func` (named in the report if `p` is not live).
///
/// # Safety
/// `p` must be a live rjem allocation.
#[inline]
pub(crate) unsafe fn usable_size(p: *const u8, func: &'static str) -> usize {
    emap::lookup_live_in(p as *mut u8, func).map_or(0, |e| sc::index_to_size(e.szind()))
}

/// Resizes `p` to `new_size` bytes aligned to `align`, in place when the
/// size class stays the same or a large extent can grow or shrink where it
/// is; otherwise moves it to a block from `place` and frees the old one
/// there. Grown bytes are zero if `zero` (or `zero:true`); otherwise, with
/// `junk:alloc`, the bytes beyond the old usable size are `JUNK_ALLOC`, as
/// in jemalloc. Null (and `p` untouched) on failure.
///
/// # Safety
/// `p` must be a live rjem allocation; on success it must not be used again
/// unless the result equals it.
pub(crate) unsafe fn realloc(
    p: *mut u8,
    new_size: usize,
    align: usize,
    zero: bool,
    place: Place,
) -> *mut u8 {
    let zero = zero || conf::FILL.load(Relaxed) & conf::FILL_ZERO != 0;
    let Some(ent) = emap::lookup_live_in(p, "realloc") else {
        return bad_realloc();
    };
    if tsd::freed_already(ent.szind(), p, "realloc") || !block_start(p, ent, "realloc") {
        return bad_realloc();
    }
    if let Some(q) = resize_in_place(p, ent, new_size, align, zero, "realloc") {
        let usize = sc::index_to_size(ent.szind());
        if sc::geom().usable_size(new_size, align) == Some(usize) {
            // Same class: still counted as freed and allocated, as in
            // jemalloc (a resize is counted where it happens).
            tsd::note_dalloc(usize);
            tsd::note_alloc(usize);
        }
        if prof::on() {
            return resized_sampled(q, align, place);
        }
        return q;
    }
    // With `junk:alloc`, `alloc` fills the new block: the bytes past what
    // is copied below stay filled.
    let q = alloc(new_size, align, zero, place);
    if q.is_null() {
        return q;
    }
    let old_usize = sc::index_to_size(ent.szind());
    // SAFETY: both blocks are live and distinct; copy what fits in both.
    unsafe { ptr::copy_nonoverlapping(p, q, old_usize.min(new_size)) };
    dalloc_slow(p, ent, place);
    q
}

/// `realloc` of something that is not a live block, reported and let
/// through with `abort:false`: nothing is freed or allocated, and the
/// caller gets null, as for any failed resize (C's `realloc` then sets
/// `errno` ENOMEM, the one error it may report).
#[cold]
fn bad_realloc() -> *mut u8 {
    ptr::null_mut()
}

/// After block `q` was resized in place (realloc): counted by the heap
/// profiler as an allocation of its new size; if it is the sample, it is
/// tagged where it is, or, if it cannot carry a tag there (a slab region,
/// or a block sampled already), moved into a sampled block.
#[cold]
fn resized_sampled(q: *mut u8, align: usize, place: Place) -> *mut u8 {
    let now = emap::lookup(q as usize);
    let usize = sc::index_to_size(now.szind());
    let Some(s) = prof::should_sample(usize, realloc as *const () as usize) else {
        return q;
    };
    if !now.is_slab() && !prof::is_sampled(q, now) {
        prof::record(q, usize, s);
        return q;
    }
    let r = sampled(usize, now.szind(), align, false, place, s);
    if r.is_null() {
        // The resize itself succeeded: keep it unsampled.
        return q;
    }
    // SAFETY: both blocks are live, distinct and `usize` bytes long.
    unsafe { ptr::copy_nonoverlapping(q, r, usize) };
    dalloc_slow(q, now, place);
    r
}

/// jemalloc's `xallocx`: resizes `p` in place only, towards
/// `size + extra` bytes and to at least `size` if it can, and returns the
/// usable size it then has. A size already within [`size`, `size + extra`]
/// is kept unless it can grow towards `size + extra`; above it, it shrinks
/// to `size + extra`.
///
/// # Safety
/// `p` must be a live rjem allocation.
pub(crate) unsafe fn xallocx(
    p: *mut u8,
    size: usize,
    extra: usize,
    align: usize,
    zero: bool,
) -> usize {
    let zero = zero || conf::FILL.load(Relaxed) & conf::FILL_ZERO != 0;
    let Some(ent) = emap::lookup_live_in(p, "xallocx") else {
        return 0;
    };
    if !block_start(p, ent, "xallocx") {
        return 0;
    }
    let old = sc::index_to_size(ent.szind());
    let max = size.saturating_add(extra);
    if old != max {
        let grown = resize_in_place(p, ent, max, align, zero, "xallocx").is_some();
        if !grown && old < size {
            let _ = resize_in_place(p, ent, size, align, zero, "xallocx");
        }
    }
    // SAFETY: p is still live (it never moves here).
    let now = unsafe { usable_size(p, "xallocx") };
    if prof::on() && now != old {
        // Counted as an allocation; a sample is tagged where it is.
        prof::resized(p, now, xallocx as *const () as usize);
    }
    now
}

/// Tries to give `p` a usable size fitting `new_size` without moving it.
/// Returns `Some(p)` on success. Grown bytes are zero if `zero`, or else
/// filled with `junk:alloc`. `func` is the entry point (for reports).
fn resize_in_place(
    p: *mut u8,
    ent: Entry,
    new_size: usize,
    align: usize,
    zero: bool,
    func: &'static str,
) -> Option<*mut u8> {
    if (p as usize) & (align - 1) != 0 {
        return None;
    }
    let g = sc::geom();
    let new_usize = g.usable_size(new_size, align)?;
    let old_usize = sc::index_to_size(ent.szind());
    if new_usize == old_usize {
        return Some(p);
    }
    if ent.is_slab() || new_usize < g.large_minclass {
        return None;
    }
    let e = ent.owner_in(p, func)?;
    if prof::on() && prof::is_sampled(p, ent) {
        // Its tag is for the size it was sampled at: move it.
        return None;
    }
    let a = arena::get(e.arena())?;
    if !a.large_resize(e, new_usize, zero) {
        return None;
    }
    if !zero && new_usize > old_usize && conf::FILL.load(Relaxed) & conf::FILL_JUNK_ALLOC != 0 {
        // SAFETY: p's block now has new_usize bytes.
        fill(
            unsafe { p.add(old_usize) },
            new_usize - old_usize,
            JUNK_ALLOC,
        );
    }
    // As jemalloc: the old size is freed and the new one allocated.
    tsd::note_dalloc(old_usize);
    tsd::note_alloc(new_usize);
    Some(p)
}

/// `realloc(p, 0)` as `zero_realloc` says: free `p` and return null (the
/// default, jemalloc 5.3's), resize it to a minimal block, or abort.
///
/// # Safety
/// `p` must be a live rjem allocation; unless the result equals it, it
/// must not be used again.
pub(crate) unsafe fn realloc_zero(p: *mut u8) -> *mut u8 {
    ZERO_REALLOCS.fetch_add(1, Relaxed);
    match conf::OPT_ZERO_REALLOC.load(Relaxed) {
        0 => {
            // SAFETY: forwarded contract.
            unsafe { free(p) };
            ptr::null_mut()
        }
        // SAFETY: forwarded contract.
        1 => unsafe { realloc(p, 1, 1, false, Place::Cached) },
        _ => os::fatal("realloc(p, 0) with zero_realloc:abort", p as usize),
    }
}

/// Out of memory: null, or with `xmalloc:true` a message and abort.
#[cold]
pub(crate) fn out_of_memory() {
    if conf::OPT_XMALLOC.load(Relaxed) {
        os::fatal("out of memory (xmalloc:true)", 0);
    }
}

/// jemalloc's `nallocx`: the usable size a request would get; 0 if none.
pub(crate) fn nallocx(size: usize, align: usize) -> usize {
    if !init::ensure() {
        return 0;
    }
    sc::geom().usable_size(size, align).unwrap_or(0)
}
