//! Extent records: the metadata of one run of pages.
//!
//! Owns: `Extent` (address, size, state, owning arena, size class, slab
//! bookkeeping, intrusive links), `ExtentHeap` (an address-ordered pairing
//! heap over records) and `ExtentList` (an intrusive FIFO), and the pool that
//! recycles records. Also the one rule for where a large block starts in
//! its extent (`cache_oblivious`: `large_pad`, `Extent::block`).
//!
//! An extent is in exactly one state: `Active` (a slab or a large
//! allocation), `Dirty` (free, pages still resident), `Muzzy` (free, pages
//! lazily purged with `MADV_FREE`) or `Retained` (free, pages released with
//! `MADV_DONTNEED` but address space kept). Records live in base memory and
//! are never freed, so `&'static Extent` is a valid handle.
//!
//! Locking invariant: a record's fields are read and written only under the
//! lock of whoever holds it now: its arena's page-allocator lock for
//! geometry, state and free-set links; its bin's lock for slab fields
//! (`nfree`, bitmap, heap links while in a bin). `arena` and `szind` do not
//! change while the extent is active, so they may be read by any thread that
//! holds a live pointer into it.

use crate::base;
use crate::size_class as sc;
use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed,
};

/// Option `cache_oblivious` (jemalloc 5.3's): every large extent is one
/// page longer than its class, and the block starts at a random multiple
/// of the cache line (or of its alignment, if larger) within that first
/// page, so that page-aligned large blocks touched at the same offsets do
/// not all fall into the same cache sets. Fixed at start-up.
pub(crate) static OPT_CACHE_OBLIVIOUS: AtomicBool = AtomicBool::new(false);

/// Bytes a large extent has beyond its block's size class: a page with
/// `cache_oblivious`, else 0. Every large extent of the process has it.
#[inline]
pub(crate) fn large_pad() -> usize {
    if OPT_CACHE_OBLIVIOUS.load(Relaxed) {
        sc::geom().page
    } else {
        0
    }
}

/// The cache line the random offset is a multiple of.
pub(crate) const CACHELINE: usize = 64;

/// State of the offsets' sequence (splitmix64: lock-free, one shared
/// counter).
static LEAD_SEQ: AtomicU64 = AtomicU64::new(0x5eed_0ff5_e7c0_ffee);

/// Where a new large block aligned to `align` starts in its extent: a
/// random multiple of `max(align, CACHELINE)` below `large_pad()`; 0 when
/// there is no pad or the alignment is a page or more (as jemalloc).
pub(crate) fn choose_lead(align: usize) -> usize {
    let pad = large_pad();
    let step = align.max(CACHELINE);
    if pad == 0 || step >= pad {
        return 0;
    }
    let mut z = LEAD_SEQ.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z as usize % (pad / step)) * step
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum State {
    Active = 0,
    Dirty = 1,
    Muzzy = 2,
    Retained = 3,
}

/// Flag: the extent starts an OS mapping; it never merges with its left
/// neighbour (which belongs to another mapping, maybe another arena).
pub(crate) const HEAD: u8 = 1;
/// Flag: every byte of the extent is known to be zero.
pub(crate) const ZEROED: u8 = 2;
/// Flag: the extent is a slab of small regions.
pub(crate) const SLAB: u8 = 4;
/// Flag: the active extent lies between two inaccessible guard pages,
/// which are not part of its range (`pages::Pages::alloc_guarded`).
pub(crate) const GUARDED: u8 = 8;
/// Flag: the extent's mapping asks for transparent huge pages, so pages of
/// it that were never handed out may be resident anyway (a fault next to
/// them brought in their whole 2 MiB).
pub(crate) const HUGE_PAGES: u8 = 16;

/// `szind` of an extent that is not an active allocation.
pub(crate) const NO_CLASS: u8 = 255;

pub(crate) type ERef = &'static Extent;

#[repr(C, align(64))]
pub(crate) struct Extent {
    // Fields a neighbouring arena's page allocator may read while deciding
    // whether to merge (it sees our record through the pointer map) are
    // relaxed atomics: plain loads and stores on x86_64, and no data race.
    addr: AtomicUsize,
    size: AtomicUsize,
    arena: AtomicU32,
    szind: AtomicU8,
    state: AtomicU8,
    flags: AtomicU8,
    /// Active large extent: its block's offset from `addr`
    /// (`cache_oblivious`; set by every large allocation, read through
    /// `block`).
    lead: AtomicU16,
    /// Slab: free regions left.
    pub(crate) nfree: Cell<u32>,
    /// Slab: free-region bitmap (1 = free), `Geometry::bitmap_words` words.
    /// Attached on first use as a slab and kept for the record's life.
    pub(crate) bitmap: Cell<*mut u64>,
    /// Heap links (bin's non-full slabs or a free-extent set).
    child: Cell<Option<ERef>>,
    next: Cell<Option<ERef>>,
    prev: Cell<Option<ERef>>,
    /// FIFO links (free extents in the order they became free, for decay).
    pub(crate) lru_next: Cell<Option<ERef>>,
    pub(crate) lru_prev: Cell<Option<ERef>>,
    /// A large allocation the heap profiler sampled: its record (`prof`'s
    /// tag; 0 when not sampled). Written by the allocating thread before
    /// the block is handed out, cleared when it is freed or the extent
    /// becomes active again.
    prof: AtomicUsize,
}

// SAFETY: records are shared between threads only under the locking
// discipline in the module comment: every Cell is accessed by one lock holder
// at a time; fields other threads may peek at are atomics.
unsafe impl Sync for Extent {}

impl Extent {
    #[inline]
    pub(crate) fn addr(&self) -> usize {
        self.addr.load(Relaxed)
    }
    #[inline]
    pub(crate) fn size(&self) -> usize {
        self.size.load(Relaxed)
    }
    #[inline]
    pub(crate) fn end(&self) -> usize {
        self.addr() + self.size()
    }
    /// Active large extent: where its block starts (`addr`, plus the
    /// random offset with `cache_oblivious`). The one place that says it.
    #[inline]
    pub(crate) fn block(&self) -> usize {
        self.addr() + self.lead.load(Relaxed) as usize
    }
    /// Sets where this (active, large) extent's block starts: `lead`
    /// bytes past its address, from `choose_lead`.
    pub(crate) fn set_lead(&self, lead: usize) {
        debug_assert!(lead < u16::MAX as usize && lead < self.size());
        self.lead.store(lead as u16, Relaxed);
    }
    #[inline]
    pub(crate) fn arena(&self) -> usize {
        self.arena.load(Relaxed) as usize
    }
    #[inline]
    pub(crate) fn szind(&self) -> usize {
        self.szind.load(Relaxed) as usize
    }
    #[inline]
    pub(crate) fn state(&self) -> State {
        match self.state.load(Relaxed) {
            0 => State::Active,
            1 => State::Dirty,
            2 => State::Muzzy,
            _ => State::Retained,
        }
    }
    #[inline]
    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags.load(Relaxed) & flag != 0
    }
    #[inline]
    pub(crate) fn set_flag(&self, flag: u8, on: bool) {
        let f = self.flags.load(Relaxed);
        self.flags
            .store(if on { f | flag } else { f & !flag }, Relaxed);
    }

    /// Sets geometry, owner and state for a record that is being (re)used.
    pub(crate) fn init(&self, addr: usize, size: usize, arena: usize, state: State, flags: u8) {
        self.addr.store(addr, Relaxed);
        self.size.store(size, Relaxed);
        self.arena.store(arena as u32, Relaxed);
        self.szind.store(NO_CLASS, Relaxed);
        self.state.store(state as u8, Relaxed);
        self.flags.store(flags, Relaxed);
        self.lead.store(0, Relaxed);
        self.nfree.set(0);
        self.child.set(None);
        self.next.set(None);
        self.prev.set(None);
        self.lru_next.set(None);
        self.lru_prev.set(None);
        self.prof.store(0, Relaxed);
    }
    pub(crate) fn set_range(&self, addr: usize, size: usize) {
        self.addr.store(addr, Relaxed);
        self.size.store(size, Relaxed);
    }
    pub(crate) fn set_state(&self, s: State) {
        self.state.store(s as u8, Relaxed);
    }
    pub(crate) fn set_szind(&self, ind: usize) {
        self.szind.store(ind as u8, Relaxed);
    }
    /// The heap profiler's tag (0: not sampled).
    #[inline]
    pub(crate) fn prof_tag(&self) -> usize {
        self.prof.load(Relaxed)
    }
    pub(crate) fn set_prof_tag(&self, tag: usize) {
        self.prof.store(tag, Relaxed);
    }
}

/// Address-ordered pairing heap of extent records (min = lowest address):
/// O(1) insert and min, O(log n) amortised removal of any member.
pub(crate) struct ExtentHeap {
    root: Option<ERef>,
    len: usize,
}

impl Default for ExtentHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtentHeap {
    pub(crate) const fn new() -> Self {
        ExtentHeap { root: None, len: 0 }
    }
    #[inline]
    pub(crate) fn first(&self) -> Option<ERef> {
        self.root
    }
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.root.is_none()
    }
    /// Members (stats).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn meld(a: Option<ERef>, b: Option<ERef>) -> Option<ERef> {
        let (a, b) = match (a, b) {
            (None, x) | (x, None) => return x,
            (Some(a), Some(b)) => (a, b),
        };
        let (top, sub) = if b.addr() < a.addr() { (b, a) } else { (a, b) };
        // `sub` becomes the first child of `top`.
        sub.prev.set(Some(top));
        sub.next.set(top.child.get());
        if let Some(c) = top.child.get() {
            c.prev.set(Some(sub));
        }
        top.child.set(Some(sub));
        Some(top)
    }

    /// Two-pass pairing of a sibling list; returns the new subtree root.
    fn merge_pairs(first: Option<ERef>) -> Option<ERef> {
        let mut acc: Option<ERef> = None; // melded pairs, in reverse order
        let mut cur = first;
        while let Some(a) = cur {
            let b = a.next.get();
            let rest = b.and_then(|b| b.next.get());
            a.next.set(None);
            a.prev.set(None);
            if let Some(b) = b {
                b.next.set(None);
                b.prev.set(None);
            }
            let m = Self::meld(Some(a), b).unwrap();
            m.next.set(acc);
            acc = Some(m);
            cur = rest;
        }
        let mut result: Option<ERef> = None;
        while let Some(m) = acc {
            acc = m.next.get();
            m.next.set(None);
            result = Self::meld(result, Some(m));
        }
        if let Some(r) = result {
            r.prev.set(None);
            r.next.set(None);
        }
        result
    }

    pub(crate) fn insert(&mut self, e: ERef) {
        e.child.set(None);
        e.next.set(None);
        e.prev.set(None);
        self.root = Self::meld(self.root, Some(e));
        self.len += 1;
    }

    pub(crate) fn remove_first(&mut self) -> Option<ERef> {
        let r = self.root?;
        self.root = Self::merge_pairs(r.child.get());
        r.child.set(None);
        self.len -= 1;
        Some(r)
    }

    /// Removes `e`, which must be a member of this heap.
    pub(crate) fn remove(&mut self, e: ERef) {
        if self.root.is_some_and(|r| ptr::eq(r, e)) {
            self.remove_first();
            return;
        }
        let prev = e.prev.get().expect("heap member without prev");
        let next = e.next.get();
        if prev.child.get().is_some_and(|c| ptr::eq(c, e)) {
            prev.child.set(next);
        } else {
            prev.next.set(next);
        }
        if let Some(n) = next {
            n.prev.set(Some(prev));
        }
        e.next.set(None);
        e.prev.set(None);
        let sub = Self::merge_pairs(e.child.get());
        e.child.set(None);
        self.root = Self::meld(self.root, sub);
        self.len -= 1;
    }
}

/// Intrusive FIFO of extents through `lru_next`/`lru_prev`.
pub(crate) struct ExtentList {
    head: Option<ERef>,
    tail: Option<ERef>,
}

impl Default for ExtentList {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtentList {
    pub(crate) const fn new() -> Self {
        ExtentList {
            head: None,
            tail: None,
        }
    }
    pub(crate) fn first(&self) -> Option<ERef> {
        self.head
    }
    pub(crate) fn last(&self) -> Option<ERef> {
        self.tail
    }
    /// The extents before and after `e` (in this list).
    pub(crate) fn before(&self, e: ERef) -> Option<ERef> {
        e.lru_prev.get()
    }
    pub(crate) fn after(&self, e: ERef) -> Option<ERef> {
        e.lru_next.get()
    }
    pub(crate) fn push_back(&mut self, e: ERef) {
        e.lru_next.set(None);
        e.lru_prev.set(self.tail);
        match self.tail {
            Some(t) => t.lru_next.set(Some(e)),
            None => self.head = Some(e),
        }
        self.tail = Some(e);
    }
    pub(crate) fn remove(&mut self, e: ERef) {
        let (p, n) = (e.lru_prev.get(), e.lru_next.get());
        match p {
            Some(p) => p.lru_next.set(n),
            None => self.head = n,
        }
        match n {
            Some(n) => n.lru_prev.set(p),
            None => self.tail = p,
        }
        e.lru_next.set(None);
        e.lru_prev.set(None);
    }
}

/// Free list of unused records, refilled from base in batches.
pub(crate) struct ExtentPool {
    free: Option<ERef>,
    /// Base memory taken for records so far.
    pub(crate) bytes: usize,
    /// Records on the free list.
    pub(crate) avail: usize,
}

const POOL_BATCH: usize = 64;

impl Default for ExtentPool {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtentPool {
    pub(crate) const fn new() -> Self {
        ExtentPool {
            free: None,
            bytes: 0,
            avail: 0,
        }
    }

    pub(crate) fn get(&mut self) -> Option<ERef> {
        if self.free.is_none() {
            let sz = core::mem::size_of::<Extent>();
            let p = base::alloc(
                sz * POOL_BATCH,
                core::mem::align_of::<Extent>(),
                base::Use::ExtentRecords,
            ) as *mut Extent;
            if p.is_null() {
                return None;
            }
            self.bytes += sz * POOL_BATCH;
            for i in 0..POOL_BATCH {
                // SAFETY: base memory is zeroed, aligned and exclusively ours;
                // an all-zero Extent is a valid value (null/None links, zero
                // numbers, State::Active); base memory is never freed.
                let e: ERef = unsafe { &*p.add(i) };
                self.put(e);
            }
        }
        let e = self.free?;
        self.avail -= 1;
        self.free = e.next.get();
        e.next.set(None);
        Some(e)
    }

    pub(crate) fn put(&mut self, e: ERef) {
        self.avail += 1;
        e.next.set(self.free);
        self.free = Some(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn records(n: usize) -> Vec<ERef> {
        let mut pool = ExtentPool::new();
        (0..n).map(|_| pool.get().unwrap()).collect()
    }

    #[test]
    fn heap_orders_by_address_and_removes_any() {
        let rs = records(300);
        let mut h = ExtentHeap::new();
        // A scrambled insertion order.
        for (i, r) in rs.iter().enumerate() {
            r.init(((i * 7919) % 300 + 1) << 12, 4096, 0, State::Dirty, 0);
            h.insert(r);
        }
        assert_eq!(h.len(), 300);
        // Remove every third member from the middle of the heap.
        let mut removed = 0;
        for r in rs.iter() {
            if (r.addr() >> 12) % 3 == 0 {
                h.remove(r);
                removed += 1;
            }
        }
        let mut last = 0;
        let mut n = 0;
        while let Some(r) = h.remove_first() {
            assert!(r.addr() > last, "heap order broken");
            assert_ne!((r.addr() >> 12) % 3, 0);
            last = r.addr();
            n += 1;
        }
        assert_eq!(n + removed, 300);
        assert!(h.is_empty());
    }

    #[test]
    fn list_is_fifo() {
        let rs = records(5);
        let mut l = ExtentList::new();
        for r in &rs {
            l.push_back(r);
        }
        l.remove(rs[2]);
        l.remove(rs[0]);
        let mut got = Vec::new();
        while let Some(r) = l.first() {
            l.remove(r);
            got.push(r as *const Extent);
        }
        let want: Vec<*const Extent> = [1, 3, 4].iter().map(|&i| rs[i] as *const _).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn pool_recycles() {
        let mut p = ExtentPool::new();
        let a = p.get().unwrap();
        p.put(a);
        let b = p.get().unwrap();
        assert!(ptr::eq(a, b));
        assert_eq!(core::mem::size_of::<Extent>() % 64, 0);
    }
}
