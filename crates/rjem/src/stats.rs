//! Statistics: a consistent-enough snapshot of what rjem holds.
//!
//! Owns: aggregation of the counters that the bins, page allocators and base
//! keep under their own locks. Nothing here is on an allocation path; a
//! snapshot takes each lock briefly, one at a time.
//!
//! Meanings follow jemalloc's `stats.*`: `allocated` is the bytes of live
//! blocks at their usable size (including blocks cached by threads);
//! `active` the bytes of pages in active extents; `metadata` the allocator's
//! own bookkeeping; `mapped` the bytes of extents mapped and not retained;
//! `retained` the virtual memory kept for reuse; `dirty`/`muzzy` free pages
//! not yet purged.

use crate::arena;
use crate::base;
use crate::init;
use crate::size_class as sc;
use core::sync::atomic::Ordering;

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
        for (ind, b) in a.bins[..g.nbins].iter().enumerate() {
            s.allocated += b.0.lock().stats.curregs * g.bins[ind].size;
        }
        for ind in g.nbins..sc::NSIZES {
            let n = a.large.nmalloc[ind].load(Ordering::Relaxed);
            let d = a.large.ndalloc[ind].load(Ordering::Relaxed);
            s.allocated += n.saturating_sub(d) as usize * sc::index_to_size(ind);
        }
        let p = a.pages.lock();
        s.active += p.stats.active_bytes;
        s.dirty += p.dirty.bytes;
        s.muzzy += p.muzzy.bytes;
        s.retained += p.retained.bytes;
        s.mapped += p.stats.mapped - p.retained.bytes;
        s.nmadvise += p.stats.nmadvise_lazy + p.stats.nmadvise_forced;
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
