//! The allocation entry points shared by the Rust and C fronts.
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

use crate::arena;
use crate::emap::{self, Entry};
use crate::extent::ERef;
use crate::global;
use crate::os;
use crate::size_class::{self as sc, LOOKUP_MAX};
use crate::tsd::{self, NCACHED_MAX};
use core::ptr;

/// The thread-cache hit path for a request whose size, already rounded up to
/// its alignment, is `r`: one table load and a pop. Declines (None) for
/// `r == 0` or `r > LOOKUP_MAX` with a single compare. Callers guarantee
/// that `r` did not overflow and that a class of size >= `r` satisfies their
/// alignment (true for any alignment up to a page when `r` is a multiple
/// of it; alignments above `LOOKUP_MAX` make `r` exceed it).
#[inline(always)]
pub fn cache_alloc(r: usize) -> Option<*mut u8> {
    if r.wrapping_sub(1) < LOOKUP_MAX {
        tsd::cache_pop(sc::lookup_index(r))
    } else {
        None
    }
}

/// The thread-cache free path for a block whose rounded request was `r`
/// (see `cache_alloc`). False if the caller must take the slow path.
#[inline(always)]
pub fn cache_free(r: usize, p: *mut u8) -> bool {
    r.wrapping_sub(1) < LOOKUP_MAX && tsd::cache_push(sc::lookup_index(r), p)
}

/// Allocates `size` bytes aligned to `align` (a power of two), zeroed if
/// asked. Null if the request is impossible or memory is exhausted.
#[inline]
pub fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    if !zero {
        if let Some(r) = size.checked_add(align - 1) {
            if let Some(p) = cache_alloc(r & !(align - 1)) {
                return p;
            }
        }
    }
    alloc_slow(size, align, zero)
}

/// The allocation slow path: any size, alignment and zeroing.
#[cold]
#[inline(never)]
pub fn alloc_slow(size: usize, align: usize, zero: bool) -> *mut u8 {
    let Some(t) = tsd::slow() else {
        return ptr::null_mut();
    };
    let g = global::geom();
    // A zero-byte request is served as one byte, so that an alignment is
    // honoured (aligned_alloc(64, 0) must still be 64-aligned).
    let Some(usize) = g.usable_size(size.max(1), align) else {
        return ptr::null_mut();
    };
    let ind = sc::size_to_index(usize);
    let arena = t.arena();
    let p = match t.cache() {
        Some(c) if c.caches(ind) && align <= g.page => {
            // SAFETY: c.caches(ind) implies ind < NCACHED_MAX.
            let bin = unsafe { c.bins.get_unchecked(ind) };
            match bin.pop() {
                Some(p) => p,
                None => c.alloc_slow(arena, ind),
            }
        }
        _ if g.is_small(ind) => arena.small_alloc(ind),
        _ => {
            // Uncached large requests of oversize_threshold bytes and more
            // go to the huge arena, which purges as soon as they are freed.
            let threshold = global::conf().oversize_threshold;
            let target = if threshold != 0 && usize >= threshold {
                match arena::huge() {
                    Some(h) => h,
                    None => return ptr::null_mut(),
                }
            } else {
                arena
            };
            let p = target.large_alloc(usize, align, zero);
            crate::background::start_if_wanted();
            return p;
        }
    };
    if zero && !p.is_null() {
        // SAFETY: p is a block of `usize` bytes that we just handed out.
        unsafe { ptr::write_bytes(p, 0, usize) };
    }
    p
}

/// Allocates from arena `a` specifically, bypassing the thread cache.
pub fn alloc_in_arena(a: &arena::Arena, size: usize, align: usize, zero: bool) -> *mut u8 {
    if !global::ensure_init() {
        return ptr::null_mut();
    }
    let g = global::geom();
    let Some(usize) = g.usable_size(size.max(1), align) else {
        return ptr::null_mut();
    };
    let ind = sc::size_to_index(usize);
    if !g.is_small(ind) {
        return a.large_alloc(usize, align, zero);
    }
    let p = a.small_alloc(ind);
    if zero && !p.is_null() {
        // SAFETY: p is a fresh block of `usize` bytes.
        unsafe { ptr::write_bytes(p, 0, usize) };
    }
    p
}

/// Allocates from the calling thread's arena without its cache.
pub fn alloc_uncached(size: usize, align: usize, zero: bool) -> *mut u8 {
    match tsd::slow() {
        Some(t) => alloc_in_arena(t.arena(), size, align, zero),
        None => ptr::null_mut(),
    }
}

/// The pointer-map entry of live allocation `p`; fatal if `p` is not one.
///
/// # Safety
/// None beyond passing a pointer; invalid pointers are reported.
#[inline(always)]
pub unsafe fn entry(p: *mut u8) -> Entry {
    live_entry(p)
}

/// Frees `p` whose entry the caller already looked up.
#[inline]
pub fn free_entry(p: *mut u8, ent: Entry) {
    let ind = ent.cached_class();
    if ind < NCACHED_MAX && tsd::cache_push(ind, p) {
        return;
    }
    dalloc_slow(p, ent);
}

/// Looks up a pointer the caller claims is live; fatal if it is not.
#[inline(always)]
fn live_entry(p: *mut u8) -> Entry {
    let ent = emap::lookup(p as usize);
    if !ent.is_active() {
        invalid_free(p);
    }
    ent
}

#[cold]
#[inline(never)]
fn invalid_free(p: *mut u8) -> ! {
    os::fatal(
        "invalid free: pointer not allocated by rjem, or already freed",
        p as usize,
    )
}

/// Frees `p` (from any rjem allocation function; null is ignored).
///
/// # Safety
/// `p` must be null or a live rjem allocation, not used afterwards.
#[inline]
pub unsafe fn free(p: *mut u8) {
    // Null, foreign and freed pointers have no cached class: slow path.
    let ent = emap::lookup(p as usize);
    let ind = ent.cached_class();
    if ind < NCACHED_MAX && tsd::cache_push(ind, p) {
        return;
    }
    free_slow(p, ent);
}

#[cold]
#[inline(never)]
fn free_slow(p: *mut u8, ent: Entry) {
    if p.is_null() {
        return;
    }
    if !ent.is_active() {
        invalid_free(p);
    }
    dalloc_slow(p, ent);
}

/// Frees `p`, which was allocated with (`size`, `align`): no pointer-map
/// lookup is needed when the block goes to the thread cache.
///
/// # Safety
/// `p` must be a live rjem allocation made with this size and alignment
/// (any size between the requested and the usable size is accepted).
#[inline]
pub unsafe fn sized_free(p: *mut u8, size: usize, align: usize) {
    if let Some(r) = size.checked_add(align - 1) {
        if cache_free(r & !(align - 1), p) {
            return;
        }
    }
    dalloc_slow(p, live_entry(p));
}

/// Sized free after `cache_free` declined.
///
/// # Safety
/// As `sized_free`.
#[inline]
pub unsafe fn sized_free_slow(p: *mut u8) {
    dalloc_slow(p, live_entry(p));
}

/// The free slow path: thread cache full or not set up, uncached classes.
/// Locks (futex), purging (madvise) and starting the purger thread may set
/// `errno`; `free` must leave it alone (POSIX 2024, glibc >= 2.33).
#[cold]
#[inline(never)]
pub fn dalloc_slow(p: *mut u8, ent: Entry) {
    let saved = os::errno();
    dalloc_slow_inner(p, ent);
    // The cache is consistent again: a purger thread may be created now
    // (creating it may allocate).
    crate::background::start_if_wanted();
    os::set_errno(saved);
}

fn dalloc_slow_inner(p: *mut u8, ent: Entry) {
    let ind = ent.szind();
    if let Some(t) = tsd::slow() {
        if let Some(c) = t.cache() {
            if c.caches(ind) && (ent.is_slab() || is_start(p, ent)) {
                // SAFETY: c.caches(ind) implies ind < NCACHED_MAX.
                let bin = unsafe { c.bins.get_unchecked(ind) };
                if !bin.push(p) {
                    c.dalloc_slow(ind, p);
                }
                return;
            }
        }
    }
    dalloc_direct(p, ent);
}

fn is_start(p: *mut u8, ent: Entry) -> bool {
    ent.extent().is_some_and(|e| e.addr() == p as usize)
}

/// Returns `p` straight to its arena, bypassing every cache.
pub fn free_direct(p: *mut u8) {
    let saved = os::errno();
    dalloc_direct(p, live_entry(p));
    os::set_errno(saved);
}

fn dalloc_direct(p: *mut u8, ent: Entry) {
    let e = owner_extent(p, ent);
    match arena::get(e.arena()) {
        Some(a) => a.dalloc(p, ent, e),
        None => invalid_free(p),
    }
}

fn owner_extent(p: *mut u8, ent: Entry) -> ERef {
    match ent.extent() {
        Some(e) if ent.is_slab() || e.addr() == p as usize => e,
        _ => invalid_free(p),
    }
}

/// Usable size of live allocation `p` (its size class).
///
/// # Safety
/// `p` must be a live rjem allocation.
#[inline]
pub unsafe fn usable_size(p: *const u8) -> usize {
    sc::index_to_size(live_entry(p as *mut u8).szind())
}

/// Resizes `p` to `new_size` bytes aligned to `align`, in place when the
/// size class stays the same or a large extent can grow or shrink where it
/// is; otherwise moves it. Null (and `p` untouched) on failure.
///
/// # Safety
/// `p` must be a live rjem allocation; on success it must not be used again
/// unless the result equals it.
pub unsafe fn realloc(p: *mut u8, new_size: usize, align: usize, zero: bool) -> *mut u8 {
    let ent = live_entry(p);
    let old_usize = sc::index_to_size(ent.szind());
    if let Some(q) = resize_in_place(p, ent, new_size, align, zero) {
        return q;
    }
    let q = alloc(new_size, align, zero);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live and distinct; copy what fits in both.
    unsafe { ptr::copy_nonoverlapping(p, q, old_usize.min(new_size)) };
    dalloc_slow(p, ent);
    q
}

/// Tries to give `p` a usable size fitting `new_size` without moving it.
/// Returns `Some(p)` on success.
pub fn resize_in_place(
    p: *mut u8,
    ent: Entry,
    new_size: usize,
    align: usize,
    zero: bool,
) -> Option<*mut u8> {
    if (p as usize) & (align - 1) != 0 {
        return None;
    }
    let g = global::geom();
    let new_usize = g.usable_size(new_size, align)?;
    let old_usize = sc::index_to_size(ent.szind());
    if new_usize == old_usize {
        return Some(p);
    }
    if ent.is_slab() || new_usize < g.large_minclass {
        return None;
    }
    let e = owner_extent(p, ent);
    let a = arena::get(e.arena())?;
    if a.large_resize(e, new_usize, zero) {
        Some(p)
    } else {
        None
    }
}

/// jemalloc's `nallocx`: the usable size a request would get; 0 if none.
pub fn nallocx(size: usize, align: usize) -> usize {
    if !global::ensure_init() {
        return 0;
    }
    global::geom().usable_size(size, align).unwrap_or(0)
}
