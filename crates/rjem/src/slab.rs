//! Slabs: runs of pages cut into equal regions of one small size class.
//!
//! Owns: the region bitmap of a slab extent (bit set = region free) and the
//! count of free regions. Regions are handed out lowest address first, which
//! keeps live data packed at the start of slabs.
//!
//! Invariants: `nfree` equals the number of set bits among the first `nregs`
//! bits; bits at and beyond `nregs` are always clear. Freeing a pointer that
//! is not at a region boundary, or a region that is already free, is
//! reported (`os::misuse`: aborts unless `abort:false`, then the pointer is
//! skipped), never silent corruption. All functions run under the owning
//! bin's lock.

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
        } else if i == full && !info.nregs.is_multiple_of(64) {
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
    let (base, size) = (e.addr(), info.size);
    let mut n = 0;
    for (wi, w) in bitmap(e, words).iter_mut().enumerate() {
        if n == want {
            break;
        }
        let mut bits = *w;
        if bits == 0 {
            continue;
        }
        let first = base + wi * 64 * size;
        // The run of free regions at the lowest free bit (the whole word
        // in a new slab): consecutive addresses, one mask.
        let low = bits.trailing_zeros();
        let run = ((!(bits >> low)).trailing_zeros() as usize).min(want - n);
        let mut a = first + low as usize * size;
        for slot in &mut out[n..n + run] {
            *slot = a as *mut u8;
            a += size;
        }
        bits &= !(u64::MAX >> (64 - run) << low);
        n += run;
        // The word's other free regions, one at a time.
        while bits != 0 && n < want {
            out[n] = (first + bits.trailing_zeros() as usize * size) as *mut u8;
            bits &= bits - 1;
            n += 1;
        }
        *w = bits;
    }
    e.nfree.set(e.nfree.get() - n as u32);
    n
}

/// Whether `p` is a region of slab `e` (class `info`) marked free.
pub(crate) fn is_free(e: ERef, info: &BinInfo, words: usize, p: *mut u8) -> bool {
    let off = (p as usize).wrapping_sub(e.addr());
    let (idx, exact) = info.region_of(off);
    exact && idx < info.nregs && bitmap(e, words)[idx / 64] & (1 << (idx % 64)) != 0
}

/// Marks free the regions at the start of `items` that lie in slab `e`
/// (class `info`): the first item must be in the slab, and the run ends
/// at the first item outside it. Returns the run's length and how many
/// regions it freed, leaving the free count to the caller (a bin counts a
/// run of frees once).
///
/// A pointer inside the slab that is not a region start, or a region
/// already free, is reported (`os::misuse`) and, with `abort:false`,
/// skipped: part of the run, not freed.
///
/// Region starts are checked only in slabs that `placed` says nothing
/// else can reach here: every pointer a thread cache takes passed its
/// `tcache::StartCheck`, exact in those, and the other ways in check
/// exactly before.
#[inline]
pub(crate) fn free_run(e: ERef, info: &BinInfo, words: usize, items: &[*mut u8]) -> (usize, u32) {
    if placed(e, info) {
        free_run_in::<false>(e, info, words, items)
    } else {
        free_run_in::<true>(e, info, words, items)
    }
}

/// Whether slab `e` of class `info` lies as `pages::Fit` places slabs
/// (the low 32 bits of its address a multiple of the region size, not
/// crossing a multiple of 2^32) and holds only whole regions: then the
/// only addresses in it whose low 32 bits are multiples of the region
/// size are its regions' starts.
fn placed(e: ERef, info: &BinInfo) -> bool {
    let low = e.addr() as u32;
    info.nregs * info.size == e.size() && info.divides(low) && low as usize + e.size() <= 1 << 32
}

#[inline(always)]
fn free_run_in<const CHECK_START: bool>(
    e: ERef,
    info: &BinInfo,
    words: usize,
    items: &[*mut u8],
) -> (usize, u32) {
    let base = e.addr();
    // The slab may end in a tail shorter than a region (`slab_sizes`).
    let limit = info.nregs * info.size;
    debug_assert!(info.nregs <= words * 64);
    let bm = bitmap(e, words).as_mut_ptr();
    let mut rest = items.iter();
    // Counted only on the (cold) paths that skip a pointer.
    let mut skipped = 0;
    while let Some(&p) = rest.as_slice().first() {
        let off = (p as usize).wrapping_sub(base);
        if off >= limit {
            if rest.len() == items.len() {
                // In the slab's tail, past its last region.
                not_region_start(p, info);
                rest.next();
                skipped += 1;
            }
            break;
        }
        rest.next();
        let (idx, exact) = info.region_of(off);
        if CHECK_START && !exact {
            not_region_start(p, info);
            skipped += 1;
            continue;
        }
        // SAFETY: idx < nregs <= 64 * words, so the word is in the bitmap,
        // which the bin lock lets us write.
        let word = unsafe { &mut *bm.add(idx / 64) };
        let old = *word;
        let new = old | 1u64 << (idx % 64);
        if new == old {
            os::misuse(
                format_args!(
                    "double free: free of a block already freed ({} bytes class)",
                    info.size
                ),
                p as usize,
            );
            skipped += 1;
            continue;
        }
        *word = new;
    }
    let n = items.len() - rest.len();
    (n, (n - skipped) as u32)
}

#[cold]
#[inline(never)]
fn not_region_start(p: *mut u8, info: &BinInfo) {
    os::misuse(
        format_args!(
            "invalid free: pointer inside a block, not its start ({} bytes class)",
            info.size
        ),
        p as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extent::{ExtentPool, State};
    use crate::size_class::Geometry;
    extern crate std;
    use std::vec::Vec;

    /// Frees one region, counting it.
    fn free(e: ERef, info: &BinInfo, words: usize, p: *mut u8) {
        assert_eq!(free_run(e, info, words, &[p]), (1, 1));
        e.nfree.set(e.nfree.get() + 1);
    }

    #[test]
    fn runs_end_at_the_first_pointer_elsewhere() {
        let g = Geometry::new(4096);
        let info = &g.bins[2];
        let mut pool = ExtentPool::new();
        let e = pool.get().unwrap();
        e.init(1 << 30, info.slab_size, 0, State::Active, 0);
        assert!(init(e, info, g.bitmap_words).is_some());
        let mut out = std::vec![core::ptr::null_mut(); info.nregs];
        assert_eq!(alloc_batch(e, info, g.bitmap_words, &mut out), info.nregs);
        // Two of this slab's regions, one just past its end, then one more.
        let past = (1usize << 30) + info.nregs * info.size;
        let items = [out[5], out[0], past as *mut u8, out[1]];
        assert_eq!(free_run(e, info, g.bitmap_words, &items), (2, 2));
        // Refilling takes exactly the freed regions, lowest first.
        e.nfree.set(2);
        let mut two = [core::ptr::null_mut(); 3];
        assert_eq!(alloc_batch(e, info, g.bitmap_words, &mut two), 2);
        assert_eq!(two[..2], [out[0], out[5]]);
    }

    #[test]
    fn partial_words_and_whole_words() {
        // 8-byte regions: 512 per page, eight bitmap words.
        let g = Geometry::new(4096);
        let info = &g.bins[0];
        let mut pool = ExtentPool::new();
        let e = pool.get().unwrap();
        e.init(1 << 30, info.slab_size, 0, State::Active, 0);
        assert!(init(e, info, g.bitmap_words).is_some());
        let mut out = std::vec![core::ptr::null_mut(); info.nregs];
        // 70 = a whole word, then 6 of the next.
        assert_eq!(alloc_batch(e, info, g.bitmap_words, &mut out[..70]), 70);
        let rest = info.nregs - 70;
        assert_eq!(alloc_batch(e, info, g.bitmap_words, &mut out[70..]), rest);
        for (i, &p) in out.iter().enumerate() {
            assert_eq!(p as usize, (1 << 30) + i * 8);
        }
        // Free every third region; they come back in address order.
        let freed: Vec<_> = out.iter().copied().step_by(3).collect();
        for &p in freed.iter().rev() {
            free(e, info, g.bitmap_words, p);
        }
        let mut again = std::vec![core::ptr::null_mut(); info.nregs];
        let n = alloc_batch(e, info, g.bitmap_words, &mut again);
        assert_eq!(again[..n], freed[..]);
    }

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
    fn batches_take_the_lowest_free_regions_of_any_pattern() {
        // A model (the set of free regions) against random frees and
        // batches of random sizes, in classes of 1 to 512 regions a slab.
        let g = Geometry::new(4096);
        let mut pool = ExtentPool::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for ind in [0usize, 1, 2, 5, 9, 17, 30, 35] {
            let info = &g.bins[ind];
            let e = pool.get().unwrap();
            e.init(1 << 30, info.slab_size, 0, State::Active, 0);
            assert!(init(e, info, g.bitmap_words).is_some());
            let region = |i: usize| ((1usize << 30) + i * info.size) as *mut u8;
            let mut free_set = std::vec![true; info.nregs];
            for _ in 0..300 {
                // Free a random share of the live regions, in random order.
                let live: Vec<usize> = (0..info.nregs).filter(|&i| !free_set[i]).collect();
                let mut pick: Vec<usize> = live.into_iter().filter(|_| rand(3) == 0).collect();
                for k in (1..pick.len()).rev() {
                    pick.swap(k, rand(k + 1));
                }
                if !pick.is_empty() {
                    let items: Vec<*mut u8> = pick.iter().map(|&i| region(i)).collect();
                    // One run of the slab (items in any order), counted once.
                    assert_eq!(
                        free_run(e, info, g.bitmap_words, &items),
                        (pick.len(), pick.len() as u32)
                    );
                    e.nfree.set(e.nfree.get() + pick.len() as u32);
                    for &i in &pick {
                        free_set[i] = true;
                    }
                }
                let want = 1 + rand(info.nregs + 3);
                let mut out = std::vec![core::ptr::null_mut(); want];
                let n = alloc_batch(e, info, g.bitmap_words, &mut out);
                let expect: Vec<*mut u8> = (0..info.nregs)
                    .filter(|&i| free_set[i])
                    .take(want)
                    .map(region)
                    .collect();
                assert_eq!(out[..n], expect[..], "class {} want {want}", info.size);
                for &p in &out[..n] {
                    free_set[(p as usize - (1 << 30)) / info.size] = false;
                }
                let nfree = free_set.iter().filter(|&&f| f).count();
                assert_eq!(e.nfree.get() as usize, nfree);
            }
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
