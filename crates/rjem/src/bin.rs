//! Bins: the slabs of one small size class in one arena.
//!
//! Owns: the current slab (`slabcur`), the non-full slabs in an
//! address-ordered heap (lowest address reused first, which keeps memory
//! packed), and the class's counters. Full slabs are tracked by no list:
//! they come back into view when a region in them is freed.
//!
//! Invariants (under the bin's lock): `slabcur` is `None` or a slab with a
//! free region; every other slab with free regions but not all free is in
//! `nonfull`; a slab whose regions are all free goes back to the page
//! allocator at once. Lock order: bin lock, then the arena's page lock.

use crate::emap;
use crate::extent::{ERef, ExtentHeap};
use crate::pages::{GuardSampler, Pages};
use crate::size_class::BinInfo;
use crate::slab;
use crate::sync::Mutex;
use core::ptr;

/// Counters for one bin (jemalloc's `stats.arenas.<i>.bins.<j>.*`).
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct BinStats {
    /// Regions handed out (to threads or their caches).
    pub(crate) nmalloc: u64,
    /// Regions returned.
    pub(crate) ndalloc: u64,
    /// Regions currently handed out (includes those cached by threads).
    pub(crate) curregs: usize,
    /// Cache fills and flushes served.
    pub(crate) nfills: u64,
    pub(crate) nflushes: u64,
    /// Slabs created in total, and live now.
    pub(crate) nslabs: u64,
    pub(crate) curslabs: usize,
    /// Times the current slab was replaced by a lower one.
    pub(crate) nreslabs: u64,
    /// Slabs neither full nor empty, now (filled in by `Bin::stats`).
    pub(crate) nonfull_slabs: usize,
}

impl BinStats {
    /// Adds `o` (merging arenas).
    pub(crate) fn add(&mut self, o: &BinStats) {
        self.nmalloc += o.nmalloc;
        self.ndalloc += o.ndalloc;
        self.curregs += o.curregs;
        self.nfills += o.nfills;
        self.nflushes += o.nflushes;
        self.nslabs += o.nslabs;
        self.curslabs += o.curslabs;
        self.nreslabs += o.nreslabs;
        self.nonfull_slabs += o.nonfull_slabs;
    }
}

pub(crate) struct Bin {
    slabcur: Option<ERef>,
    nonfull: ExtentHeap,
    pub(crate) stats: BinStats,
}

/// What a bin needs from its arena: the geometry of its class and the page
/// allocator to get and return slabs.
pub(crate) struct BinCtx<'a> {
    pub(crate) ind: usize,
    /// The arena's index: blocks of other arenas are not this bin's.
    pub(crate) arena: usize,
    pub(crate) info: &'a BinInfo,
    pub(crate) words: usize,
    pub(crate) pages: &'a Mutex<Pages>,
    /// The allocating thread's guard sampler (`san_guard_small`), if any.
    pub(crate) guards: Option<&'a GuardSampler>,
}

impl Default for Bin {
    fn default() -> Self {
        Self::new()
    }
}

impl Bin {
    pub(crate) const fn new() -> Bin {
        Bin {
            slabcur: None,
            nonfull: ExtentHeap::new(),
            stats: BinStats {
                nmalloc: 0,
                ndalloc: 0,
                curregs: 0,
                nfills: 0,
                nflushes: 0,
                nslabs: 0,
                curslabs: 0,
                nreslabs: 0,
                nonfull_slabs: 0,
            },
        }
    }

    fn new_slab(&mut self, cx: &BinCtx) -> Option<ERef> {
        let mut pages = cx.pages.lock();
        let guard = cx
            .guards
            .is_some_and(|g| g.small(|| pages.hooks().is_default()));
        let (e, _) = if guard {
            pages.alloc_guarded(cx.info.slab_size, cx.info.size)?
        } else {
            pages.alloc_slab(cx.info.slab_size, cx.info.size)?
        };
        pages.register_active(e, cx.ind, true);
        let Some(bitmap) = slab::init(e, cx.info, cx.words) else {
            pages.dalloc(e);
            return None;
        };
        pages.stats.bitmap_bytes += bitmap;
        self.stats.nslabs += 1;
        self.stats.curslabs += 1;
        Some(e)
    }

    /// Fills `out` with free regions, lowest addresses first. Returns how
    /// many it got (fewer only when memory is exhausted).
    pub(crate) fn fill(&mut self, cx: &BinCtx, out: &mut [*mut u8]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let s = match self.slabcur {
                Some(s) => s,
                None => match self.nonfull.remove_first() {
                    Some(s) => s,
                    None => match self.new_slab(cx) {
                        Some(s) => s,
                        None => break,
                    },
                },
            };
            n += slab::alloc_batch(s, cx.info, cx.words, &mut out[n..]);
            self.slabcur = if s.nfree.get() == 0 { None } else { Some(s) };
        }
        self.stats.nmalloc += n as u64;
        self.stats.curregs += n;
        n
    }

    /// Returns region `p` of slab `s` (a slab of this bin's class and arena).
    pub(crate) fn dalloc(&mut self, cx: &BinCtx, s: ERef, p: *mut u8) {
        let (_, freed) = slab::free_run(s, cx.info, cx.words, core::slice::from_ref(&p));
        if freed == 0 {
            // Reported misuse, skipped (`abort:false`).
            return;
        }
        self.stats.ndalloc += 1;
        self.stats.curregs -= 1;
        self.slab_freed(cx, s, 1);
    }

    /// Returns the blocks in `items` that belong to this bin's arena (all
    /// must be live blocks of its class; any other is reported and, with
    /// `abort:false`, dropped) and moves the others, in order, to the
    /// front of `items`. Returns how many were moved. Each run of blocks
    /// of one slab (the common case: a cache flush returns blocks in the
    /// order they were freed) costs one pointer-map lookup and one update
    /// of the slab's count and place.
    pub(crate) fn dalloc_batch(&mut self, cx: &BinCtx, items: &mut [*mut u8]) -> usize {
        let mut kept = 0;
        let mut i = 0;
        // Reported and skipped (`abort:false`).
        let mut skipped = 0;
        while i < items.len() {
            let p = items[i];
            let Some(s) = emap::lookup_class(p, cx.ind) else {
                i += 1;
                skipped += 1;
                continue;
            };
            if s.arena() != cx.arena {
                items[kept] = p;
                kept += 1;
                i += 1;
                continue;
            }
            let (n, freed) = slab::free_run(s, cx.info, cx.words, &items[i..]);
            i += n;
            if freed as usize != n {
                skipped += n - freed as usize;
                if freed == 0 {
                    continue;
                }
            }
            self.slab_freed(cx, s, freed);
        }
        let total = items.len() - kept - skipped;
        self.stats.ndalloc += total as u64;
        self.stats.curregs -= total;
        kept
    }

    /// `n` regions of slab `s` were just marked free: updates its count and
    /// moves it where it now belongs.
    fn slab_freed(&mut self, cx: &BinCtx, s: ERef, n: u32) {
        let before = s.nfree.get();
        let nfree = before + n;
        s.nfree.set(nfree);
        let is_cur = self.slabcur.is_some_and(|c| ptr::eq(c, s));
        if nfree as usize == cx.info.nregs {
            // Empty: back to the page allocator. It was in `nonfull` unless
            // it was current or full before these frees.
            if is_cur {
                self.slabcur = None;
            } else if before > 0 {
                self.nonfull.remove(s);
            }
            self.stats.curslabs -= 1;
            cx.pages.lock().dalloc(s);
        } else if before == 0 && !is_cur {
            // Was full: it becomes a candidate again; keep the lowest current.
            match self.slabcur {
                Some(c) if s.addr() < c.addr() => {
                    self.nonfull.insert(c);
                    self.slabcur = Some(s);
                    self.stats.nreslabs += 1;
                }
                _ => self.nonfull.insert(s),
            }
        }
    }

    /// Forgets every slab and counts every region handed out as returned
    /// (`arena.<i>.reset`; the caller gives the slabs' pages back).
    pub(crate) fn discard(&mut self) {
        self.slabcur = None;
        self.nonfull = ExtentHeap::new();
        self.stats.ndalloc += self.stats.curregs as u64;
        self.stats.curregs = 0;
        self.stats.curslabs = 0;
    }

    /// The counters, with the slabs that are neither full nor empty.
    pub(crate) fn stats(&self) -> BinStats {
        BinStats {
            nonfull_slabs: self.nonfull.len() + self.slabcur.is_some() as usize,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::PurgePolicy;
    use crate::size_class::Geometry;
    extern crate std;
    use std::boxed::Box;
    use std::vec::Vec;

    #[test]
    fn batches_of_frees_per_slab() {
        let g = Geometry::new(crate::os::page_size());
        let policy = PurgePolicy {
            dirty_decay_ms: -1,
            muzzy_decay_ms: -1,
            retain: true,
            dirty_share: 0,
            dirty_floor: 0,
            huge_blocks: false,
        };
        // Box keeps the large struct off the test thread's stack.
        let pages = Box::new(Mutex::new(Pages::new(9, g.page, 6, policy)));
        let ind = 3;
        let info = &g.bins[ind];
        let cx = BinCtx {
            ind,
            arena: 9,
            info,
            words: g.bitmap_words,
            pages: &pages,
            guards: None,
        };
        let mut bin = Bin::new();
        let n = info.nregs;
        let mut out = std::vec![ptr::null_mut(); 3 * n];
        assert_eq!(bin.fill(&cx, &mut out), 3 * n, "three full slabs");
        // A full slab emptied by one batch goes straight back (it was in
        // no list).
        assert_eq!(bin.dalloc_batch(&cx, &mut out[..n].to_vec()), 0);
        assert_eq!((bin.stats.curslabs, bin.stats.curregs), (2, 2 * n));
        // Half of the second and the third slab, alternating between them
        // (runs of one): both become non-full.
        let (second, third) = (&out[n..2 * n], &out[2 * n..]);
        let half = |k: usize| -> Vec<*mut u8> {
            second
                .iter()
                .zip(third)
                .skip(k)
                .step_by(2)
                .flat_map(|(a, b)| [*a, *b])
                .collect()
        };
        assert_eq!(bin.dalloc_batch(&cx, &mut half(0)), 0);
        assert_eq!(bin.stats().nonfull_slabs, 2);
        assert_eq!(bin.stats.curregs, 2 * n - 2 * n.div_ceil(2));
        // The other half empties both, and blocks of another arena's bin
        // mixed in are left, in order, at the front.
        let other_pages = Box::new(Mutex::new(Pages::new(10, g.page, 6, policy)));
        let other_cx = BinCtx {
            arena: 10,
            pages: &other_pages,
            ..cx
        };
        let mut other = Bin::new();
        let mut foreign = std::vec![ptr::null_mut(); 3];
        assert_eq!(other.fill(&other_cx, &mut foreign), 3);
        let mut mixed = half(1);
        mixed.insert(0, foreign[0]);
        mixed.insert(5, foreign[1]);
        mixed.push(foreign[2]);
        assert_eq!(bin.dalloc_batch(&cx, &mut mixed), 3);
        assert_eq!(mixed[..3], foreign[..]);
        assert_eq!((bin.stats.curslabs, bin.stats.curregs), (0, 0));
        assert_eq!(bin.stats.ndalloc, 3 * n as u64);
        assert!(bin.slabcur.is_none() && bin.nonfull.is_empty());
        assert_eq!(other.dalloc_batch(&other_cx, &mut foreign), 0);
        assert_eq!(other_pages.lock().stats.active_bytes, 0);
        assert_eq!(pages.lock().stats.active_bytes, 0);
    }
}
