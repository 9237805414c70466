//! rjem: jemalloc 5.3's design rebuilt in Rust.
//!
//! Use it as Rust's global allocator:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: rjem::Rjem = rjem::Rjem;
//!
//! let v: Vec<u32> = (0..1000).collect();
//! assert_eq!(unsafe { rjem::usable_size(v.as_ptr().cast()) }, 4096);
//! ```
//!
//! The walk of one allocation, module by module: [`api`] (entry points) ->
//! [`tsd`]/[`tcache`] (per-thread stacks, no lock) -> [`arena`] -> [`bin`]
//! (one per small class) -> [`slab`] (regions and bitmap) -> [`pages`]
//! (extents: dirty, muzzy, retained; first fit, split, merge) -> [`os`]
//! (mmap). [`emap`] maps any pointer back to its [`extent`] record without
//! a lock; [`size_class`] holds jemalloc's size classes; [`base`] is the
//! metadata memory; [`global`] starts everything up; [`conf`] reads
//! `MALLOC_CONF`; [`stats`] sums the counters.
//!
//! The crate is `no_std` and does not link `alloc`: it cannot allocate
//! through Rust's global allocator, by construction. Only [`tsd`] names
//! `std`, for `thread_local!`.

#![no_std]
#![warn(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
extern crate std;

pub mod api;
pub mod arena;
pub mod background;
pub mod base;
pub mod bin;
pub mod conf;
pub mod ctl;
pub mod decay;
pub mod emap;
pub mod extent;
pub mod global;
pub mod os;
pub mod pages;
pub mod size_class;
pub mod slab;
pub mod stats;
pub mod sync;
pub mod tcache;
pub mod tsd;

use core::alloc::{GlobalAlloc, Layout};

/// The rjem allocator. Zero-sized: all state is global and per thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rjem;

// SAFETY: every method honours GlobalAlloc's contract: blocks are at least
// `layout.size()` bytes, aligned to `layout.align()`, distinct while live;
// failures return null; dealloc/realloc accept exactly what alloc returned.
unsafe impl GlobalAlloc for Rjem {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match api::cache_alloc(rounded(layout)) {
            Some(p) => p,
            None => api::alloc_slow(layout.size(), layout.align(), false),
        }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !api::cache_free(rounded(layout), ptr) {
            // SAFETY: the caller passes a live block with the layout it was
            // allocated (or last reallocated) with.
            unsafe { api::sized_free_slow(ptr) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        api::alloc_slow(layout.size(), layout.align(), true)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: ptr is live with `layout`; new_size is non-zero and does
        // not overflow isize when rounded to the alignment (caller's duty).
        unsafe { api::realloc(ptr, new_size, layout.align(), false) }
    }
}

/// The layout's size rounded up to its alignment. A `Layout` guarantees this
/// does not overflow (it is at most `isize::MAX`), so no check is needed.
#[inline(always)]
fn rounded(layout: Layout) -> usize {
    (layout.size() + layout.align() - 1) & !(layout.align() - 1)
}

/// Usable size of a live allocation: at least what was asked, often more.
///
/// # Safety
/// `ptr` must be a live allocation made by rjem.
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    // SAFETY: forwarded contract.
    unsafe { api::usable_size(ptr) }
}

/// The usable size a request of `size` bytes aligned to `align` would get
/// (jemalloc's `nallocx`); 0 if no size class can serve it.
pub fn nallocx(size: usize, align: usize) -> usize {
    api::nallocx(size, align)
}

/// Returns the calling thread's cached blocks to their arenas.
pub fn flush_thread_cache() {
    tsd::flush()
}

/// Index of the arena the calling thread is bound to (binding it now if this
/// is its first call into rjem).
pub fn thread_arena() -> usize {
    match tsd::slow() {
        Some(t) => t.arena().ind,
        None => 0,
    }
}

/// Blocks and bytes held in the calling thread's cache.
pub fn thread_cached() -> (usize, usize) {
    tsd::cached()
}

pub use stats::{snapshot as stats, Stats};
