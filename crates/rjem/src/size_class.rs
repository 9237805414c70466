//! Size classes: jemalloc 5.3's spacing, and the slab geometry of each class.
//!
//! Owns: the mapping between request sizes and size classes, and the per-page
//! size geometry (which classes are small, slab sizes, regions per slab).
//!
//! The class sizes do not depend on the page size: 8, then 16..64 in 16-byte
//! steps, then every doubling [2^k, 2^(k+1)) cut into 4 equal steps, up to
//! 2^62 + 3 * 2^60 (232 classes). So size -> class is a compile-time table
//! (sizes up to 4 KiB) or a few arithmetic instructions (above), with no loop.
//! What does depend on the page size is read at start-up: classes below
//! 4 pages are *small* (served from slabs), the rest *large* (whole pages).
//! With 4 KiB pages that gives jemalloc's 36 small classes up to 14336 bytes.
//!
//! The process's `Geometry` is fixed once at start-up (`boot`) and read
//! through `geom()` by every layer above.
//!
//! Slab sizes: by default the fewest pages holding a whole number of
//! regions (lcm(class, page)). Option `slab_sizes`
//! (`begin-end:pages|...`, later segments win) gives every small class
//! whose size is in [begin, end] slabs of `pages` pages, clamped as
//! jemalloc clamps: at least one region, at most `slab_maxregs` regions.
//! Such a slab may end in a tail shorter than a region, never handed out.
//!
//! Invariants: `index_to_size(size_to_index(s)) >= s`; a small class's
//! slab is whole pages holding `nregs = slab_size / size` regions
//! (`1 <= nregs <= slab_maxregs`); a class chosen for alignment
//! `a <= page` has a size that is a multiple of `a`.

use crate::os::{align_up, parse_usize, BootStr};
use core::cell::UnsafeCell;

/// Number of size classes (small and large), as jemalloc's `SC_NSIZES`.
pub(crate) const NSIZES: usize = 232;
/// Smallest spacing between classes above 16 bytes (jemalloc's quantum).
pub(crate) const QUANTUM: usize = 16;
/// Sizes up to this are mapped to classes by table lookup.
pub(crate) const LOOKUP_MAX: usize = 4096;
/// Smallest supported page size; the pointer map works at this granularity.
pub(crate) const LG_MIN_PAGE: u32 = 12;
/// Largest supported page size (64 KiB).
pub(crate) const LG_MAX_PAGE: u32 = 16;
/// Most small classes any supported page size produces (64 KiB pages: 52).
pub(crate) const NBINS_MAX: usize = small_count(1 << LG_MAX_PAGE);
/// The largest size class; larger requests fail.
pub(crate) const LARGE_MAXCLASS: usize = index_to_size_const(NSIZES - 1);

const fn index_to_size_const(i: usize) -> usize {
    match i {
        0 => 8,
        1..=4 => 16 * i,
        _ => {
            let g = (i - 5) / 4;
            let j = (i - 5) % 4 + 1;
            let k = 6 + g;
            (1usize << k) + j * (1usize << (k - 2))
        }
    }
}

/// Class index of a size that is at most `LARGE_MAXCLASS` (computed; also
/// usable in constants).
#[inline]
pub(crate) const fn size_to_index_compute(s: usize) -> usize {
    if s <= 8 {
        0
    } else if s <= 16 {
        1
    } else if s <= 64 {
        (s + 15) >> 4
    } else {
        let k = (usize::BITS - 1 - (s - 1).leading_zeros()) as usize;
        4 * (k - 6) + 5 + ((s - 1 - (1usize << k)) >> (k - 2))
    }
}

const fn small_count(page: usize) -> usize {
    let mut n = 0;
    while index_to_size_const(n) < 4 * page {
        n += 1;
    }
    n
}

static INDEX_TO_SIZE: [usize; NSIZES] = {
    let mut t = [0usize; NSIZES];
    let mut i = 0;
    while i < NSIZES {
        t[i] = index_to_size_const(i);
        i += 1;
    }
    t
};

/// Classes of sizes 1..=LOOKUP_MAX, indexed by `(size - 1) / 8`: the fast
/// paths already compute `size - 1` for their range check. A `const`, not
/// a `static`: inlined into a program's own crate, a constant size folds to
/// its class and a variable one indexes a local copy (docs/benchmarks.md,
/// Rust without LTO).
const SIZE_TO_INDEX: [u8; LOOKUP_MAX / 8] = {
    let mut t = [0u8; LOOKUP_MAX / 8];
    let mut i = 0;
    while i < t.len() {
        t[i] = size_to_index_compute(i * 8 + 8) as u8;
        i += 1;
    }
    t
};

/// Stack offsets (`tcache::BinOffset`: class index plus one, shifted left
/// by `lg`) of sizes 0..=LOOKUP_MAX, indexed by the size itself, so that
/// `malloc`'s hit path needs neither `size - 1` nor a shift (two
/// instructions, for a table of 8 KiB instead of 1 KiB). Size 0 maps to 0,
/// the stack that takes nothing: a zero size, with or without an
/// alignment, takes the slow path.
pub(crate) const fn lookup_table_by_size(lg: u32) -> [u16; LOOKUP_MAX + 1] {
    let mut t = [0u16; LOOKUP_MAX + 1];
    let mut s = 1;
    while s < t.len() {
        t[s] = (SIZE_TO_INDEX[(s - 1) / 8] as u16 + 1) << lg;
        s += 1;
    }
    t
}

/// Size of class `i` (`i < NSIZES`).
#[inline(always)]
pub(crate) fn index_to_size(i: usize) -> usize {
    INDEX_TO_SIZE[i]
}

/// Class index for a size from 1 to `LOOKUP_MAX` bytes: one table load
/// (callers that checked `s - 1 < LOOKUP_MAX` let the compiler reuse
/// `s - 1` and drop the index check). Panics outside that range.
#[inline(always)]
pub(crate) fn lookup_index(s: usize) -> usize {
    SIZE_TO_INDEX[s.wrapping_sub(1) >> 3] as usize
}

/// Class index for any size up to `LARGE_MAXCLASS`.
#[inline]
pub(crate) fn size_to_index(s: usize) -> usize {
    debug_assert!(s <= LARGE_MAXCLASS);
    if s <= LOOKUP_MAX {
        // Size 0 is served as size 1.
        lookup_index(s.max(1))
    } else {
        size_to_index_compute(s)
    }
}

/// Index of the largest class that is at most `s` (`s >= 8`).
#[inline]
pub(crate) fn floor_index(s: usize) -> usize {
    if s >= LARGE_MAXCLASS {
        return NSIZES - 1;
    }
    let i = size_to_index(s);
    if index_to_size(i) > s {
        i - 1
    } else {
        i
    }
}

/// Per-class slab geometry, fixed at start-up from the page size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BinInfo {
    /// Region size in bytes (the class size).
    pub(crate) size: usize,
    /// Bytes per slab: whole pages; by default lcm(size, page), the fewest
    /// pages with no waste (see `slab_sizes`).
    pub(crate) slab_size: usize,
    /// Regions per slab: `slab_size / size`.
    pub(crate) nregs: usize,
    /// `ceil(2^32 / size)`: region index = (offset * magic) >> 32, exact for
    /// offsets that are multiples of `size` below 2^32 (a slab is smaller).
    pub(crate) div_magic: u64,
    /// `multiple_magic(size)`: whether a 32-bit number is a multiple of
    /// `size`, with one multiplication (`divides`).
    pub(crate) mul_check: u64,
}

/// The multiplier that tells, with one multiplication and no division,
/// whether a number below 2^32 is a multiple of `d` (`1 < d < 2^32`): it is
/// exactly when `n * m (mod 2^64) < m` (Lemire, Kaser and Kurz, 2019).
pub(crate) const fn multiple_magic(d: usize) -> u64 {
    u64::MAX / d as u64 + 1
}

impl BinInfo {
    const EMPTY: BinInfo = BinInfo {
        size: 0,
        slab_size: 0,
        nregs: 0,
        div_magic: 0,
        mul_check: 0,
    };

    /// Whether `n` is a multiple of the region size.
    #[inline]
    pub(crate) fn divides(&self, n: u32) -> bool {
        (n as u64).wrapping_mul(self.mul_check) < self.mul_check
    }

    /// Region index of byte offset `off` into the slab, and whether `off` is
    /// exactly at a region start.
    #[inline]
    pub(crate) fn region_of(&self, off: usize) -> (usize, bool) {
        let idx = ((off as u64 * self.div_magic) >> 32) as usize;
        (idx, idx * self.size == off)
    }
}

/// Everything about size classes that depends on the page size.
#[derive(Debug)]
pub(crate) struct Geometry {
    pub(crate) page: usize,
    /// Number of small classes (bins).
    pub(crate) nbins: usize,
    /// Largest small class.
    pub(crate) small_maxclass: usize,
    /// Smallest large class (4 pages).
    pub(crate) large_minclass: usize,
    /// u64 words in a slab bitmap (`slab_maxregs(page)` bits).
    pub(crate) bitmap_words: usize,
    pub(crate) bins: [BinInfo; NBINS_MAX],
}

/// Greatest common divisor.
pub(crate) const fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Most regions in a slab: the smallest class on one page (jemalloc's
/// `SLAB_MAXREGS`, 512 with 4 KiB pages), the bits of a slab bitmap.
pub(crate) const fn slab_maxregs(page: usize) -> usize {
    page / index_to_size_const(0)
}

impl Geometry {
    /// Geometry for a page size between 4 KiB and 64 KiB (a power of two),
    /// with the default slab sizes.
    pub(crate) const fn new(page: usize) -> Geometry {
        assert!(page.is_power_of_two());
        assert!(page >= 1 << LG_MIN_PAGE && page <= 1 << LG_MAX_PAGE);
        let nbins = small_count(page);
        let mut bins = [BinInfo::EMPTY; NBINS_MAX];
        let mut i = 0;
        while i < nbins {
            let size = index_to_size_const(i);
            let slab_size = size / gcd(size, page) * page;
            let nregs = slab_size / size;
            bins[i] = BinInfo {
                size,
                slab_size,
                nregs,
                div_magic: (1u64 << 32).div_ceil(size as u64),
                mul_check: multiple_magic(size),
            };
            i += 1;
        }
        Geometry {
            page,
            nbins,
            small_maxclass: index_to_size_const(nbins - 1),
            large_minclass: index_to_size_const(nbins),
            bitmap_words: slab_maxregs(page).div_ceil(64),
            bins,
        }
    }

    /// Geometry for `page` with option `slab_sizes` applied (`spec` as
    /// `valid_slab_sizes` accepts; the empty string leaves the defaults).
    pub(crate) fn with_slab_sizes(page: usize, spec: &[u8]) -> Geometry {
        let mut g = Geometry::new(page);
        for (begin, end, pages) in segments(spec).map_while(|s| s) {
            for b in &mut g.bins[..g.nbins] {
                if (begin..=end).contains(&b.size) {
                    b.slab_size = slab_pages(b.size, page, pages) * page;
                    b.nregs = b.slab_size / b.size;
                }
            }
        }
        g
    }

    #[inline]
    pub(crate) fn is_small(&self, ind: usize) -> bool {
        ind < self.nbins
    }

    /// The usable size a request of `size` bytes aligned to `align` (a power
    /// of two; 0 means none) receives: jemalloc's `nallocx`. `None` when no
    /// class can satisfy it.
    ///
    /// The one home of what size 0 becomes: it is served as size 1, so an
    /// alignment is honoured (`aligned_alloc(64, 0)` is 64-aligned) and a
    /// sized free of 0 bytes with that alignment names the same class.
    /// (jemalloc's `nallocx(0, MALLOCX_ALIGN(a))` answers 8 whatever `a`;
    /// its allocation functions do not follow it.)
    pub(crate) fn usable_size(&self, size: usize, align: usize) -> Option<usize> {
        if size.wrapping_sub(1) < LOOKUP_MAX && align <= 8 {
            // Every class is a multiple of 8, and these are all small.
            return Some(index_to_size(lookup_index(size)));
        }
        let size = size.max(1);
        let align = if align == 0 { 1 } else { align };
        if size <= self.small_maxclass && align <= self.page {
            let u = index_to_size(size_to_index(align_up(size, align)?));
            if u < self.large_minclass {
                return Some(u);
            }
        }
        if align > LARGE_MAXCLASS {
            return None;
        }
        let u = if size <= self.large_minclass {
            self.large_minclass
        } else if size > LARGE_MAXCLASS {
            return None;
        } else {
            index_to_size(size_to_index(size))
        };
        // An alignment above a page is met by over-allocating and trimming.
        u.checked_add(align_up(align, self.page)? - self.page)?;
        Some(u)
    }
}

/// Slab pages for regions of `size` bytes when `want` are asked for:
/// clamped to hold at least one region and at most `slab_maxregs`.
fn slab_pages(size: usize, page: usize, want: usize) -> usize {
    let min = size.div_ceil(page);
    let max = slab_maxregs(page) * size / page;
    want.clamp(min, max)
}

/// Option `slab_sizes` (`begin-end:pages|...`, or empty for the defaults),
/// set by `conf::boot`; `boot` applies it.
pub(crate) static OPT_SLAB_SIZES: BootStr = BootStr::new();

/// The `(begin, end, pages)` segments of a `slab_sizes` value, in order;
/// a malformed segment yields None.
fn segments(v: &[u8]) -> impl Iterator<Item = Option<(usize, usize, usize)>> + '_ {
    v.split(|&c| c == b'|')
        .filter(move |_| !v.is_empty())
        .map(|seg| {
            let colon = seg.iter().position(|&c| c == b':')?;
            let (range, pages) = (&seg[..colon], &seg[colon + 1..]);
            let dash = range.iter().position(|&c| c == b'-')?;
            Some((
                parse_usize(&range[..dash])?,
                parse_usize(&range[dash + 1..])?,
                parse_usize(pages)?,
            ))
        })
}

/// Whether `v` is a well-formed `slab_sizes` value: one or more
/// `begin-end:pages` segments separated by `|` (numbers decimal or `0x`).
pub(crate) fn valid_slab_sizes(v: &[u8]) -> bool {
    !v.is_empty() && segments(v).all(|s| s.is_some())
}

struct GeomCell(UnsafeCell<Geometry>);
// SAFETY: written only by `boot`, whose contract excludes concurrent readers.
unsafe impl Sync for GeomCell {}

static GEOM: GeomCell = GeomCell(UnsafeCell::new(Geometry::new(4096)));

/// The geometry of this process's page size (the 4 KiB one before `boot`).
#[inline]
pub(crate) fn geom() -> &'static Geometry {
    // SAFETY: after `boot` the value never changes; `boot` runs before any
    // other thread can reach the allocator (see its contract).
    unsafe { &*GEOM.0.get() }
}

/// Fixes the geometry for the system's `page` size and option
/// `slab_sizes` (so after `conf::boot`).
///
/// # Safety
/// Only during start-up, by the initialising thread, before the allocator
/// is published as ready (so no other thread reads `geom()` meanwhile).
pub(crate) unsafe fn boot(page: usize) {
    let g = Geometry::with_slab_sizes(page, OPT_SLAB_SIZES.get().to_bytes());
    // SAFETY: the caller guarantees exclusive access.
    unsafe { *GEOM.0.get() = g }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn divides_agrees_with_the_remainder() {
        for page in [4096, 16384, 65536] {
            let g = Geometry::new(page);
            for info in &g.bins[..g.nbins] {
                let d = info.size as u32;
                let probes = (0..5000u32)
                    .chain([u32::MAX, u32::MAX - 1, 1 << 31])
                    .flat_map(|k| [k, k.wrapping_mul(d), k.wrapping_mul(d).wrapping_add(1)]);
                for n in probes {
                    assert_eq!(info.divides(n), n % d == 0, "{n} by {d}");
                }
            }
        }
    }

    #[test]
    fn small_requests_take_the_table_path_to_the_same_class() {
        let g = Geometry::new(4096);
        for size in 0..=LOOKUP_MAX + 8 {
            for align in [0, 1, 2, 4, 8, 16] {
                let general = align_up(size.max(1), align.max(1))
                    .map(|s| index_to_size(size_to_index_compute(s)));
                assert_eq!(
                    g.usable_size(size, align),
                    general,
                    "{size} aligned {align}"
                );
            }
        }
    }

    /// jemalloc 5.3 with 4 KiB pages, from `arenas.bin.<i>.*`:
    /// (size, slab pages, regions).
    const JEMALLOC_BINS: [(usize, usize, usize); 36] = [
        (8, 1, 512),
        (16, 1, 256),
        (32, 1, 128),
        (48, 3, 256),
        (64, 1, 64),
        (80, 5, 256),
        (96, 3, 128),
        (112, 7, 256),
        (128, 1, 32),
        (160, 5, 128),
        (192, 3, 64),
        (224, 7, 128),
        (256, 1, 16),
        (320, 5, 64),
        (384, 3, 32),
        (448, 7, 64),
        (512, 1, 8),
        (640, 5, 32),
        (768, 3, 16),
        (896, 7, 32),
        (1024, 1, 4),
        (1280, 5, 16),
        (1536, 3, 8),
        (1792, 7, 16),
        (2048, 1, 2),
        (2560, 5, 8),
        (3072, 3, 4),
        (3584, 7, 8),
        (4096, 1, 1),
        (5120, 5, 4),
        (6144, 3, 2),
        (7168, 7, 4),
        (8192, 2, 1),
        (10240, 5, 2),
        (12288, 3, 1),
        (14336, 7, 2),
    ];

    #[test]
    fn small_classes_match_jemalloc_4k() {
        let g = Geometry::new(4096);
        assert_eq!(g.nbins, 36);
        assert_eq!(g.small_maxclass, 14336);
        assert_eq!(g.large_minclass, 16384);
        for (i, &(size, pages, nregs)) in JEMALLOC_BINS.iter().enumerate() {
            assert_eq!(g.bins[i].size, size, "class {i}");
            assert_eq!(g.bins[i].slab_size, pages * 4096, "class {i}");
            assert_eq!(g.bins[i].nregs, nregs, "class {i}");
            assert!(nregs <= 512);
        }
        assert_eq!(g.bitmap_words, 8);
    }

    #[test]
    fn large_classes_match_jemalloc() {
        // 196 large classes from 16 KiB to 2^62 + 3 * 2^60.
        assert_eq!(NSIZES - 36, 196);
        let first = [16384, 20480, 24576, 28672, 32768, 40960, 49152, 57344];
        for (k, &s) in first.iter().enumerate() {
            assert_eq!(index_to_size(36 + k), s);
        }
        assert_eq!(LARGE_MAXCLASS, 8070450532247928832);
    }

    #[test]
    fn every_boundary_maps_to_its_class() {
        for i in 0..NSIZES {
            let s = index_to_size(i);
            assert_eq!(size_to_index(s), i, "size {s}");
            if i > 0 {
                let prev = index_to_size(i - 1);
                assert!(prev < s);
                assert_eq!(size_to_index(prev + 1), i, "size {}", prev + 1);
                assert_eq!(floor_index(s - 1), i - 1);
            }
            assert_eq!(floor_index(s), i);
        }
        assert_eq!(size_to_index(0), 0);
        assert_eq!(size_to_index(1), 0);
    }

    #[test]
    fn table_agrees_with_arithmetic() {
        for s in 1..=LOOKUP_MAX {
            assert_eq!(lookup_index(s), size_to_index_compute(s), "size {s}");
        }
    }

    #[test]
    fn four_classes_per_doubling() {
        for k in 6..62 {
            let lo = size_to_index(1 << k);
            let hi = size_to_index(1 << (k + 1));
            assert_eq!(hi - lo, 4, "doubling at 2^{k}");
        }
    }

    #[test]
    fn region_division_is_exact() {
        let g = Geometry::new(4096);
        for b in &g.bins[..g.nbins] {
            for r in 0..b.nregs {
                assert_eq!(b.region_of(r * b.size), (r, true));
                if b.size > 8 {
                    assert!(!b.region_of(r * b.size + 8).1);
                }
            }
        }
    }

    #[test]
    fn aligned_classes_are_aligned() {
        for page in [4096usize, 16384, 65536] {
            let g = Geometry::new(page);
            for lg in 0..=page.trailing_zeros() {
                let a = 1usize << lg;
                for s in (1..3 * page).step_by(7) {
                    let u = g.usable_size(s, a).unwrap();
                    assert!(u >= s);
                    if u <= g.small_maxclass {
                        assert_eq!(u % a, 0, "size {s} align {a} page {page}");
                    }
                }
            }
        }
    }

    #[test]
    fn other_page_sizes() {
        let g = Geometry::new(65536);
        assert_eq!(g.large_minclass, 4 * 65536);
        assert_eq!(g.nbins, NBINS_MAX);
        for b in &g.bins[..g.nbins] {
            assert_eq!(b.slab_size % 65536, 0);
            assert_eq!(b.slab_size % b.size, 0);
        }
        // Large classes are whole pages.
        for i in g.nbins..NSIZES {
            assert_eq!(index_to_size(i) % 65536, 0);
        }
        let g = Geometry::new(16384);
        assert_eq!(g.large_minclass, 65536);
    }

    #[test]
    fn slab_sizes_parse() {
        assert!(valid_slab_sizes(b"1-4096:17|100-200:1|128-128:2"));
        assert!(valid_slab_sizes(b"0x10-0x40:3"));
        assert!(valid_slab_sizes(b"64-8:1"), "an empty range is allowed");
        for bad in [
            &b""[..],
            b"1-4096",
            b"1:17",
            b"1-4096:",
            b"-4096:1",
            b"1-4096:17|",
            b"1-4096:17||2-3:1",
            b"a-b:c",
            b"1-2:3x",
            b"1-99999999999999999999999:1",
        ] {
            assert!(
                !valid_slab_sizes(bad),
                "{}",
                std::str::from_utf8(bad).unwrap()
            );
        }
    }

    #[test]
    fn slab_sizes_as_jemalloc_clamps_them() {
        // The example from jemalloc's sources, at 4 KiB pages.
        let g = Geometry::with_slab_sizes(4096, b"1-4096:17|100-200:1|128-128:2");
        let d = Geometry::new(4096);
        for (i, b) in g.bins[..g.nbins].iter().enumerate() {
            let pages = match b.size {
                // At most 512 regions: size * 512 / page pages.
                8 => 1,
                16 => 2,
                32 => 4,
                48 => 6,
                64 => 8,
                80 => 10,
                96 => 12,
                112 | 160 | 192 => 1,
                128 => 2,
                144..=4096 => 17,
                _ => d.bins[i].slab_size / 4096,
            };
            assert_eq!(b.slab_size, pages * 4096, "class {}", b.size);
            assert_eq!(b.nregs, b.slab_size / b.size, "class {}", b.size);
            assert!(b.nregs >= 1 && b.nregs <= slab_maxregs(4096));
            assert!(b.nregs.div_ceil(64) <= g.bitmap_words);
        }
        // 17 pages of 4096-byte regions: 17 regions, no tail; of 3072: 22
        // regions and a 2048-byte tail.
        assert_eq!(g.bins[28].nregs, 17);
        assert_eq!(g.bins[26].size, 3072);
        assert_eq!(g.bins[26].nregs, 22);
        // Too few pages for one region: rounded up. 0 pages likewise.
        let g = Geometry::with_slab_sizes(4096, b"14336-14336:1|10240-10240:0");
        assert_eq!(g.bins[35].slab_size, 4 * 4096);
        assert_eq!(g.bins[35].nregs, 1);
        assert_eq!(g.bins[33].slab_size, 3 * 4096);
        // Huge requests stop at slab_maxregs regions.
        let g = Geometry::with_slab_sizes(65536, b"1-100000:100000");
        for b in &g.bins[..g.nbins] {
            assert!(b.nregs <= slab_maxregs(65536));
            assert!(b.size > 100000 || b.nregs > slab_maxregs(65536) / 2);
            assert_eq!(b.slab_size % 65536, 0);
        }
        // Region arithmetic stays exact in long slabs.
        let g = Geometry::with_slab_sizes(4096, b"1-100000:1000");
        for b in &g.bins[..g.nbins] {
            for r in [0, 1, b.nregs / 2, b.nregs - 1] {
                assert_eq!(b.region_of(r * b.size), (r, true));
            }
        }
    }

    #[test]
    fn nallocx_rules() {
        let g = Geometry::new(4096);
        assert_eq!(g.usable_size(0, 0), Some(8));
        assert_eq!(g.usable_size(100, 0), Some(112));
        assert_eq!(g.usable_size(1, 16), Some(16));
        assert_eq!(g.usable_size(40, 32), Some(64));
        assert_eq!(g.usable_size(1, 4096), Some(4096));
        assert_eq!(g.usable_size(1, 8192), Some(16384));
        // Size 0 is size 1, with any alignment.
        for lg in 0..20 {
            assert_eq!(g.usable_size(0, 1 << lg), g.usable_size(1, 1 << lg));
        }
        assert_eq!(g.usable_size(14337, 0), Some(16384));
        assert_eq!(g.usable_size(LARGE_MAXCLASS, 0), Some(LARGE_MAXCLASS));
        assert_eq!(g.usable_size(LARGE_MAXCLASS + 1, 0), None);
        assert_eq!(g.usable_size(1, 1 << 63), None);
    }
}
