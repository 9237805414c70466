//! Counted mode of the thread caches: the exact count of the bytes each
//! thread allocates, for the heap profiler's sampling (`prof`), without a
//! byte counter on the hit path.
//!
//! Owns: `Sampler`, a thread's count of bytes left before its next
//! sampling event, and counted mode itself. Only `prof` turns it on
//! (`enable`, at start-up with `prof:true`); without it nothing here runs
//! and the stacks are exactly as `tcache` describes.
//!
//! Why every cached allocation and free leaves the hit path in counted
//! mode: the hit path compares `head` for equality with one barrier each
//! way (`low_water` for pops, `full` for pushes). Any setting that lets a
//! single pop through also lets an allocate/free loop run on it forever
//! (a pop at x and a push at x + 1 meet neither barrier unless both sit at
//! `head`), so no grant of hit-path pops can be bounded by the bytes left
//! before a sample. In counted mode both barriers sit at `head`: every pop
//! and push of a cached class goes to the slow path, which counts the
//! bytes (`charge`, called by the profiler before the block is taken) and
//! pops or pushes by hand (`take`, `put`), with no lock and no lookup
//! beyond the caller's. The cost is a function call or two per
//! allocation and free, with `prof:true` only.
//!
//! Invariants in counted mode: `full == low_water == lo(head)` after
//! every operation; the stack's real limit is `slots` below `empty`. The
//! cache GC sees the true low-water mark, kept in `BinCtl::counted_low`.

use super::{lo, Tcache};
use crate::arena::Arena;
use crate::os;
use crate::size_class as sc;
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Counted mode for thread caches set up from now on (`prof:true`).
static COUNTED: AtomicBool = AtomicBool::new(false);

/// Puts thread caches in counted mode (start-up, before any thread sets up
/// its cache).
pub(crate) fn enable() {
    COUNTED.store(true, Relaxed);
}

/// Whether thread caches run in counted mode.
pub(crate) fn enabled() -> bool {
    COUNTED.load(Relaxed)
}

/// A thread's sampling state. All zero is the initial state (unarmed, not
/// counted).
pub(crate) struct Sampler {
    /// Bytes the thread may allocate before its next event; 0 when
    /// unarmed.
    left: Cell<u64>,
    armed: Cell<bool>,
    /// This cache's stacks are in counted mode.
    counted: Cell<bool>,
    /// Bytes counted so far, for the profiler's interval dumps.
    total: Cell<u64>,
    /// The profiler's per-thread state (`prof` owns the meaning): its
    /// random number generator, flags, and the part of `total` it has
    /// passed on.
    pub(crate) prng: Cell<u64>,
    pub(crate) flags: Cell<u8>,
    pub(crate) reported: Cell<u64>,
    /// The thread's name id (`thread.prof.name`; 0: none).
    pub(crate) name: Cell<u16>,
}

impl Sampler {
    pub(crate) const fn new() -> Sampler {
        Sampler {
            left: Cell::new(0),
            armed: Cell::new(false),
            counted: Cell::new(false),
            total: Cell::new(0),
            prng: Cell::new(0),
            flags: Cell::new(0),
            reported: Cell::new(0),
            name: Cell::new(0),
        }
    }

    /// Whether an event is scheduled.
    #[inline]
    pub(crate) fn armed(&self) -> bool {
        self.armed.get()
    }

    /// Bytes counted so far.
    pub(crate) fn total(&self) -> u64 {
        self.total.get()
    }
}

impl Tcache {
    /// Whether this cache's stacks are in counted mode.
    #[inline]
    pub(crate) fn counted(&self) -> bool {
        self.sampler.counted.get()
    }

    /// Counted mode for freshly set-up stacks `0..n`.
    pub(super) fn setup_counted(&self, n: usize) {
        for b in &self.bins[..n] {
            let h = lo(b.head.load(Relaxed));
            b.limit.set(b.full.get());
            b.full.set(h);
            b.low_water.set(h);
        }
        for c in &self.ctl[..n] {
            let mut ctl = c.get();
            ctl.counted_low = 0;
            c.set(ctl);
        }
        self.sampler.counted.set(true);
    }

    /// Leaves counted mode (the stacks are going away).
    pub(super) fn forget_counted(&self) {
        self.sampler.counted.set(false);
    }

    /// The stack capacity of class `ind`.
    pub(super) fn cap(&self, ind: usize) -> usize {
        let b = &self.bins[ind];
        if self.counted() {
            (b.empty.load(Relaxed).wrapping_sub(b.limit.get()) / 8) as usize
        } else {
            b.capacity()
        }
    }

    /// After the slow path moved `head` of class `ind` in counted mode:
    /// both barriers follow it, and the GC's low-water mark notes the
    /// items left.
    #[inline]
    pub(super) fn rebar(&self, ind: usize) {
        let b = &self.bins[ind];
        let h = lo(b.head.load(Relaxed));
        b.full.set(h);
        b.low_water.set(h);
        self.note_counted_low(ind);
    }

    /// Lowers the GC's low-water mark of class `ind` to the items left.
    fn note_counted_low(&self, ind: usize) {
        let mut ctl = self.ctl[ind].get();
        ctl.counted_low = ctl.counted_low.min(self.bins[ind].count() as u16);
        self.ctl[ind].set(ctl);
    }

    /// Schedules the next event `wait` bytes of allocation from now (at
    /// least 1).
    pub(crate) fn arm(&self, wait: u64) {
        self.sampler.left.set(wait.max(1));
        self.sampler.armed.set(true);
    }

    /// The profiler's fast path in counted mode: a block of cached class
    /// `ind` (`index_to_size(ind) == usize`) from the stack, charged, if
    /// the stack has one and the allocation is not the next sample; None
    /// otherwise (nothing charged: the caller takes the slow path).
    #[inline]
    pub(crate) fn take_charged(&self, ind: usize, usize: usize) -> Option<*mut u8> {
        let s = &self.sampler;
        let left = s.left.get();
        if !(self.counted() && ind < self.nbins.get() && left > usize as u64) {
            return None;
        }
        let b = &self.bins[ind];
        let h = b.head.load(Relaxed);
        if lo(h) == b.empty.load(Relaxed) {
            return None;
        }
        // `left` is non-zero only while armed.
        s.left.set(left - usize as u64);
        s.total.set(s.total.get().wrapping_add(usize as u64));
        b.npop.set(b.npop.get().wrapping_add(1));
        // SAFETY: the stack is not empty, so head points at a cached item.
        let p = unsafe {
            b.head.store(h.add(1), Relaxed);
            super::unmark(*h)
        };
        let h = lo(b.head.load(Relaxed));
        b.full.set(h);
        b.low_water.set(h);
        self.note_counted_low(ind);
        Some(p)
    }

    /// Counts an allocation of `bytes`. True if it reaches the event: the
    /// allocation is the sample, and the counter is unarmed until the
    /// caller arms it again.
    #[inline]
    pub(crate) fn charge(&self, bytes: usize) -> bool {
        let s = &self.sampler;
        let bytes = bytes as u64;
        s.total.set(s.total.get().wrapping_add(bytes));
        let left = s.left.get();
        if left > bytes {
            s.left.set(left - bytes);
            return false;
        }
        s.left.set(0);
        s.armed.set(false);
        true
    }

    /// Counted mode: a block of cached class `ind` (`caches(ind)`) from
    /// its stack, already charged; None if the stack is empty (the caller
    /// refills through `alloc`) or the cache is not counted.
    #[inline]
    pub(crate) fn take(&self, ind: usize) -> Option<*mut u8> {
        if !self.counted() {
            return None;
        }
        let b = &self.bins[ind];
        let h = b.head.load(Relaxed);
        if lo(h) == b.empty.load(Relaxed) {
            return None;
        }
        b.npop.set(b.npop.get().wrapping_add(1));
        // SAFETY: the stack is not empty, so head points at a cached item.
        let p = unsafe {
            b.head.store(h.add(1), Relaxed);
            super::unmark(*h)
        };
        self.rebar(ind);
        Some(p)
    }

    /// Counted mode: a block of cached class `ind` (`caches(ind)`),
    /// already charged: the stack's top one, or one from a refill from
    /// `arena`. Null when out of memory.
    pub(crate) fn alloc_counted(&self, arena: &Arena, ind: usize) -> *mut u8 {
        if let Some(p) = self.take(ind) {
            return p;
        }
        let p = self.alloc(arena, ind);
        self.rebar(ind);
        p
    }

    /// Incremental GC of class `ind` in counted mode: as `gc_one`, with the
    /// low-water mark kept by `rebar`.
    #[cold]
    pub(super) fn gc_one_counted(&self, ind: usize) {
        let b = &self.bins[ind];
        let lw = (self.ctl[ind].get().counted_low as usize).min(b.count());
        if lw > 0 {
            self.flush(ind, lw - lw / 4);
        }
        let mut ctl = self.ctl[ind].get();
        if lw > 0 {
            if self.cap(ind) >> (ctl.fill_shift + 2) >= 1 {
                ctl.fill_shift += 1;
            }
        } else if ctl.refilled && ctl.fill_shift > 0 {
            ctl.fill_shift -= 1;
        }
        ctl.refilled = false;
        ctl.counted_low = b.count() as u16;
        self.ctl[ind].set(ctl);
    }

    /// Counted mode: caches freed block `p` of cached class `ind`
    /// (`caches(ind)`), flushing half of a full stack first. False if the
    /// cache is not counted.
    #[inline]
    pub(crate) fn put(&self, ind: usize, p: *mut u8) -> bool {
        if !self.counted() {
            return false;
        }
        let b = &self.bins[ind];
        if !b.starts_block(p) && !super::block_start(ind, p) {
            // An interior pointer, reported; skipped with `abort:false`.
            return true;
        }
        // The double-free key, as `CacheBin::push` keeps it.
        // SAFETY: a live block of a cached class, as in `push`.
        if unsafe { os::first_word_is(p, self.key()) }
            && super::report_if_freed(self, ind, p, "free")
        {
            // abort:false: the block stays freed once.
            return true;
        }
        if lo(b.head.load(Relaxed)) == b.limit.get() {
            self.flush_full_counted(ind);
        }
        // SAFETY: as above.
        unsafe { (p as *mut u64).write(self.key()) };
        // SAFETY: the stack is below its capacity, so the slot under head
        // is inside its storage.
        let h = unsafe { b.head.load(Relaxed).sub(1) };
        // SAFETY: as above.
        unsafe { *h = p };
        b.head.store(h, Relaxed);
        // More items: the GC's low-water mark stays.
        b.full.set(lo(h));
        b.low_water.set(lo(h));
        self.publish();
        true
    }

    #[cold]
    fn flush_full_counted(&self, ind: usize) {
        let n = super::flush_count(ind, self.cap(ind));
        self.flush(ind, n);
        self.gc_tick(sc::index_to_size(ind) * n);
    }
}
