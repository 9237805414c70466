//! Slabs: runs of pages cut into equal regions of one small size class.
//!
//! Owns: the region bitmap of a slab extent (bit set = region free) and the
//! count of free regions. Regions are handed out lowest address first, which
//! keeps live data packed at the start of slabs.
//!
//! Invariants: `nfree` equals the number of set bits among the first `nregs`
//! bits; bits at and beyond `nregs` are always clear. Freeing a pointer that
//! is not at a region boundary, or a region that is already free, is fatal
//! (reported and aborted), never silent corruption. All functions run under
//! the owning bin's lock.

use crate::base;
use crate::extent::ERef;
use crate::os;
use crate::size_class::BinInfo;

#[inline]
fn bitmap(e: ERef, words: usize) -> &'static mut [u64] {
    // SAFETY: the bitmap was attached by `init` with `words` words of base
    // memory owned by this record; the bin lock gives exclusive access.
    unsafe { core::slice::from_raw_parts_mut(e.bitmap.get(), words) }
}

/// Prepares active extent `e` as an empty slab of class `info`. Returns
/// the bytes of bitmap attached to the record now (0 when it had one), or
/// None when base memory for the bitmap cannot be had.
pub(crate) fn init(e: ERef, info: &BinInfo, words: usize) -> Option<usize> {
    let mut attached = 0;
    if e.bitmap.get().is_null() {
        let p = base::alloc(words * 8, 8, base::Use::SlabBitmaps) as *mut u64;
        if p.is_null() {
            return None;
        }
        e.bitmap.set(p);
        attached = words * 8;
    }
    let bm = bitmap(e, words);
    let full = info.nregs / 64;
    for (i, w) in bm.iter_mut().enumerate() {
        *w = if i < full {
            !0
        } else if i == full && info.nregs % 64 != 0 {
            (1u64 << (info.nregs % 64)) - 1
        } else {
            0
        };
    }
    e.nfree.set(info.nregs as u32);
    Some(attached)
}

/// Takes up to `out.len()` free regions, lowest addresses first. Returns how
/// many were taken.
pub(crate) fn alloc_batch(e: ERef, info: &BinInfo, words: usize, out: &mut [*mut u8]) -> usize {
    let want = out.len().min(e.nfree.get() as usize);
    let bm = bitmap(e, words);
    let mut n = 0;
    for (wi, w) in bm.iter_mut().enumerate() {
        while *w != 0 && n < want {
            let bit = w.trailing_zeros() as usize;
            *w &= *w - 1;
            out[n] = (e.addr() + (wi * 64 + bit) * info.size) as *mut u8;
            n += 1;
        }
        if n == want {
            break;
        }
    }
    e.nfree.set(e.nfree.get() - n as u32);
    n
}

/// Returns region `p` to the slab; returns the new free count (the bins
/// count groups of frees themselves, with `mark_free`).
#[cfg(test)]
pub(crate) fn free(e: ERef, info: &BinInfo, words: usize, p: *mut u8) -> u32 {
    mark_free(e, info, words, p);
    let n = e.nfree.get() + 1;
    e.nfree.set(n);
    n
}

/// Marks region `p` free in the bitmap, leaving the free count to the
/// caller (who counts a group of frees of one slab once). Fatal for a
/// pointer that is not a region start, or a region already free.
#[inline]
pub(crate) fn mark_free(e: ERef, info: &BinInfo, words: usize, p: *mut u8) {
    let off = (p as usize).wrapping_sub(e.addr());
    // The slab may end in a tail shorter than a region (`slab_sizes`).
    if off >= info.nregs * info.size {
        os::fatal("free of a pointer that is not a region start", p as usize);
    }
    let (idx, exact) = info.region_of(off);
    if !exact {
        os::fatal("free of a pointer that is not a region start", p as usize);
    }
    let bm = bitmap(e, words);
    let (w, b) = (idx / 64, 1u64 << (idx % 64));
    if bm[w] & b != 0 {
        os::fatal("double free", p as usize);
    }
    bm[w] |= b;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extent::{ExtentPool, State};
    use crate::size_class::Geometry;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn lowest_first_and_roundtrip() {
        let g = Geometry::new(4096);
        let mut pool = ExtentPool::new();
        for ind in [0usize, 3, 7, 20, 35] {
            let info = &g.bins[ind];
            let e = pool.get().unwrap();
            e.init(1 << 30, info.slab_size, 0, State::Active, 0);
            assert!(init(e, info, g.bitmap_words).is_some());
            let mut out = std::vec![core::ptr::null_mut(); info.nregs + 5];
            let n = alloc_batch(e, info, g.bitmap_words, &mut out);
            assert_eq!(n, info.nregs);
            assert_eq!(e.nfree.get(), 0);
            for (i, &p) in out[..n].iter().enumerate() {
                assert_eq!(p as usize, (1 << 30) + i * info.size);
            }
            // Free in reverse; the next allocation takes the lowest again.
            let ptrs: Vec<_> = out[..n].to_vec();
            for &p in ptrs.iter().rev() {
                free(e, info, g.bitmap_words, p);
            }
            assert_eq!(e.nfree.get() as usize, info.nregs);
            let mut one = [core::ptr::null_mut(); 1];
            assert_eq!(alloc_batch(e, info, g.bitmap_words, &mut one), 1);
            assert_eq!(one[0] as usize, 1 << 30);
        }
    }

    #[test]
    fn slabs_with_a_tail() {
        // 3072-byte regions in 17 pages: 22 regions, then 2048 bytes unused.
        let g = Geometry::with_slab_sizes(4096, b"3072-3072:17");
        let info = &g.bins[26];
        assert_eq!((info.size, info.nregs), (3072, 22));
        let mut pool = ExtentPool::new();
        let e = pool.get().unwrap();
        e.init(1 << 30, info.slab_size, 0, State::Active, 0);
        assert!(init(e, info, g.bitmap_words).is_some());
        let mut out = std::vec![core::ptr::null_mut(); 30];
        assert_eq!(alloc_batch(e, info, g.bitmap_words, &mut out), 22);
        assert_eq!(out[21] as usize, (1 << 30) + 21 * 3072);
        assert_eq!(e.nfree.get(), 0);
        for &p in &out[..22] {
            free(e, info, g.bitmap_words, p);
        }
        assert_eq!(e.nfree.get(), 22);
    }
}
