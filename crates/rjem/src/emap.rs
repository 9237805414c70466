//! The pointer map (jemalloc's emap/rtree): address -> extent metadata.
//!
//! Owns: a two-level radix tree over 4 KiB keys of the 48-bit address space.
//! The root (2^16 slots, in static memory that stays untouched until used)
//! points to leaves of 2^20 entries, each covering 4 GiB (8 MiB of address
//! space, resident only where entries were written) and mapped from the
//! OS on demand; slots without a leaf point to a static leaf of zeros. A
//! leaf spans 4 GiB so that the leaf index is the low 32 bits of the
//! address shifted (one instruction less on `free` than a mask). Each
//! entry packs the extent record pointer, the size class and a slab bit
//! into one word, so `free(p)` learns everything it needs with two
//! dependent loads and no lock.
//!
//! Invariants (kept by the page allocator, which writes entries under its
//! arena's lock): the first and last page of every extent (active or free)
//! map to its record; every page of an active slab maps to it; no other page
//! maps to it. Leaves are created when memory is first mapped
//! (`ensure_range`), so registering a page inside rjem's memory never fails.
//! Readers see either the old or the new entry (single-word atomics).

use crate::extent::{ERef, Extent, NO_CLASS};
use crate::os;
use crate::size_class as sc;
use core::ptr;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const LG_KEY: u32 = 12;
const LEAF_BITS: u32 = 20;
const _: () = assert!(LG_KEY + LEAF_BITS == 32);
const ROOT_BITS: u32 = os::VA_BITS - LG_KEY - LEAF_BITS;
const LEAF_LEN: usize = 1 << LEAF_BITS;

/// The root, and a leaf of zeros that every root slot without a leaf of
/// its own stands for: a root slot holds its leaf's address minus the
/// zero leaf's (0: the zero leaf), so a lookup needs no null check (one
/// addition instead of a compare and a branch on `free`'s hit path). The
/// zero leaf is never written; reading it maps no memory of its own.
#[repr(C)]
struct Map {
    root: [AtomicUsize; 1 << ROOT_BITS],
    zeros: [AtomicU64; LEAF_LEN],
}

static MAP: Map = Map {
    root: [const { AtomicUsize::new(0) }; 1 << ROOT_BITS],
    zeros: [const { AtomicU64::new(0) }; LEAF_LEN],
};

/// The zero leaf's address, which root slots are relative to.
#[inline(always)]
fn zeros() -> usize {
    MAP.zeros.as_ptr() as usize
}
/// Leaves mapped (metadata accounting).
static NLEAVES: AtomicUsize = AtomicUsize::new(0);

/// Bytes mapped for leaves: address space, resident only where entries
/// were written (`stats.metadata_detail.pointer_map`).
pub(crate) fn mapped_bytes() -> usize {
    NLEAVES.load(Ordering::Relaxed) * LEAF_LEN * 8
}

const SLAB_BIT: u64 = 1;
/// The class field sits in bits 57..64, so that bits 48..57 are zero and
/// `scaled_class` can shift it down to any multiple up to 32.
const FIELD_SHIFT: u32 = 57;
/// Values the class field can take: with the stacks' size, what the
/// thread cache's stacks must span (`tcache::OFFSET_LIMIT`) so that
/// `free`'s hit path may index them with any entry and need no bound check.
pub(crate) const FIELD_VALUES: usize = 1 << (64 - FIELD_SHIFT);
const PTR_MASK: u64 = (1 << 48) - 64;
/// Classes whose index (plus one) the field holds: every class a thread
/// cache may hold, up to jemalloc's `TCACHE_MAXCLASS_LIMIT` of 8 MiB
/// (`tcache::NCACHED_MAX` asserts it is the same).
pub(crate) const DIRECT_CLASSES: usize = sc::size_to_index_compute(8 << 20) + 1;
/// Field values from here: a small class (by its index) whose block
/// bypasses the caches.
const FIELD_BYPASS_SMALL: usize = DIRECT_CLASSES + 1;
/// Field value: the class is the record's (`Extent::szind`): a large class
/// above `DIRECT_CLASSES`, or a large block that bypasses the caches.
const FIELD_RECORD: usize = FIELD_VALUES - 1;
const _: () = assert!(FIELD_BYPASS_SMALL + sc::NBINS_MAX <= FIELD_RECORD);

/// One pointer-map entry: record pointer, slab bit and a class field of
/// 7 bits:
/// - 0: no live block (an empty entry, or a free extent's record);
/// - 1..=DIRECT_CLASSES: a block of class field - 1 that a cache may take;
/// - `FIELD_BYPASS_SMALL` + class: a small block that bypasses the caches;
/// - `FIELD_RECORD`: a block of the record's class, never cached here.
///
/// (A promoted block, the heap profiler's sample of a small class, sits
/// in a large extent whose record has a large class: its entry holds the
/// small class itself.)
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Entry(u64);

impl Entry {
    pub(crate) const EMPTY: Entry = Entry(0);

    /// A live block of class `szind` in `e`. Classes above
    /// `DIRECT_CLASSES` are read from the record, which must have it.
    pub(crate) fn new(e: ERef, szind: usize, slab: bool) -> Entry {
        let field = if szind < DIRECT_CLASSES {
            szind + 1
        } else {
            debug_assert_eq!(e.szind(), szind);
            FIELD_RECORD
        };
        Entry::with_field(e, field, slab)
    }

    fn with_field(e: ERef, field: usize, slab: bool) -> Entry {
        let p = e as *const Extent as u64;
        debug_assert_eq!(p & !PTR_MASK, 0);
        Entry(p | (field as u64) << FIELD_SHIFT | if slab { SLAB_BIT } else { 0 })
    }

    #[inline(always)]
    fn field(self) -> usize {
        (self.0 >> FIELD_SHIFT) as usize
    }

    /// This live entry with a field no cache takes: a free of the block
    /// never takes a cache's hit path (the heap profiler's sampled blocks,
    /// which it must see freed), while `szind` still gives the class. An
    /// entry of no live block stays as it is.
    pub(crate) fn bypassing(self) -> Entry {
        if !self.is_active() {
            return self;
        }
        let ind = self.szind();
        let field = if ind < sc::NBINS_MAX {
            FIELD_BYPASS_SMALL + ind
        } else {
            // A large block: its record has its class.
            FIELD_RECORD
        };
        Entry(self.0 & !((FIELD_VALUES as u64 - 1) << FIELD_SHIFT) | (field as u64) << FIELD_SHIFT)
    }
    /// Entry for a free extent's boundary pages.
    pub(crate) fn free(e: ERef) -> Entry {
        Entry::with_field(e, 0, false)
    }
    /// Size class; `NO_CLASS` for empty entries and free extents.
    #[inline]
    pub(crate) fn szind(self) -> usize {
        match self.field() {
            0 => NO_CLASS as usize,
            f if f <= DIRECT_CLASSES => f - 1,
            FIELD_RECORD => self.extent().map_or(NO_CLASS as usize, |e| e.szind()),
            f => f - FIELD_BYPASS_SMALL,
        }
    }
    /// The size class if the entry is a live block that a cache may take
    /// (below `DIRECT_CLASSES`), otherwise `DIRECT_CLASSES` or more
    /// (`usize::MAX` for no live block): `cached_class() < n` checks "live,
    /// not bypassing, and of a class below n" with one compare, for
    /// n <= `DIRECT_CLASSES`.
    #[inline(always)]
    pub(crate) fn cached_class(self) -> usize {
        self.field().wrapping_sub(1)
    }
    /// `field << LG` (`LG <= 5`), in one shift, below `FIELD_VALUES << LG`
    /// for every entry: 0 for no live block, `(ind + 1) << LG` for a block
    /// of class ind that a cache may take, more for the others. The thread
    /// cache indexes its stacks with it (`tcache::BinOffset`, whose 0 is a
    /// stack that takes nothing, as are those past its classes).
    /// (The shift is opaque to the compiler, which would otherwise test
    /// a bound with a second shift of the entry: one instruction more.)
    #[inline(always)]
    pub(crate) fn scaled_class<const LG: u32>(self) -> usize {
        const { assert!(LG <= 5) };
        shr_opaque::<FIELD_SHIFT, LG>(self.0 as usize)
    }
    #[inline]
    pub(crate) fn is_slab(self) -> bool {
        self.0 & SLAB_BIT != 0
    }
    /// Whether this entry describes live memory (an active slab or large).
    #[inline]
    pub(crate) fn is_active(self) -> bool {
        self.field() != 0
    }
    #[inline]
    pub(crate) fn extent(self) -> Option<ERef> {
        let p = (self.0 & PTR_MASK) as *const Extent;
        // SAFETY: non-null record pointers in the map point to records in
        // base memory, which live for the whole program.
        unsafe { p.as_ref() }
    }
    /// The record owning live block `p` whose entry this is: its slab, or
    /// its large extent if `p` is that extent's start. Otherwise (a
    /// pointer into the middle of a large allocation) an invalid free is
    /// reported (`os::misuse`) and, if that returns, None.
    #[inline]
    pub(crate) fn owner(self, p: *mut u8) -> Option<ERef> {
        self.owner_in(p, "free")
    }

    /// `owner`, for a pointer passed to entry point `func` (named in the
    /// report).
    #[inline]
    pub(crate) fn owner_in(self, p: *mut u8, func: &'static str) -> Option<ERef> {
        match self.extent() {
            Some(e) if self.is_slab() || e.block() == p as usize => Some(e),
            _ => {
                inside_large(p, self, func);
                None
            }
        }
    }
}

/// Reports `p`, given to `func`, as a pointer inside a large block rather
/// than its start.
#[cold]
#[inline(never)]
fn inside_large(p: *mut u8, ent: Entry, func: &'static str) {
    os::misuse(
        format_args!(
            "invalid {func}: pointer inside a large allocation, not its start ({} bytes class)",
            sc::index_to_size(ent.szind())
        ),
        p as usize,
    )
}

/// Reports a free of something that is not a live allocation
/// (`os::misuse`: aborts unless `abort:false`).
pub(crate) fn invalid_free(p: *mut u8) {
    invalid_pointer(p, "free")
}

/// Reports that `p`, passed to entry point `func` (`free`, `realloc`,
/// `malloc_usable_size`, ...) as a live allocation, is not one
/// (`os::misuse`: aborts unless `abort:false`). No size class: the
/// pointer is not one of rjem's live blocks.
#[cold]
#[inline(never)]
pub(crate) fn invalid_pointer(p: *mut u8, func: &'static str) {
    os::misuse(
        format_args!("invalid {func}: pointer not allocated by rjem, or already freed"),
        p as usize,
    )
}

/// The record of `p`, which the caller claims is a live block of class
/// `ind` (a cached block being flushed). If it is not, the misuse is
/// reported (`os::misuse`) and, if that returns, None: the caller drops
/// `p` from what it frees.
#[inline]
pub(crate) fn lookup_class(p: *mut u8, ind: usize) -> Option<ERef> {
    let ent = lookup(p as usize);
    match ent.extent() {
        Some(e) if ent.is_active() && ent.szind() == ind => Some(e),
        _ => {
            not_of_class(p, ind);
            None
        }
    }
}

#[cold]
#[inline(never)]
fn not_of_class(p: *mut u8, ind: usize) {
    os::misuse(
        format_args!(
            "invalid free: pointer not allocated by rjem, freed twice, or freed with the wrong size (freed as {} bytes class)",
            sc::index_to_size(ind)
        ),
        p as usize,
    )
}

/// The entry of `p`, which the caller frees as a live allocation; None
/// (after `invalid_free` reported it) if it is not one.
#[inline(always)]
pub(crate) fn lookup_live(p: *mut u8) -> Option<Entry> {
    lookup_live_in(p, "free")
}

/// The entry of `p`, which the caller of entry point `func` claims is a
/// live allocation; None (after reporting it, naming `func`) if it is not.
#[inline(always)]
pub(crate) fn lookup_live_in(p: *mut u8, func: &'static str) -> Option<Entry> {
    let ent = lookup(p as usize);
    if !ent.is_active() {
        invalid_pointer(p, func);
        return None;
    }
    Some(ent)
}

/// `addr`'s root index and index in its leaf. The leaf index is taken
/// from the low 32 bits (a leaf spans 2^32 bytes): a 32-bit shift, where
/// a 64-bit index would need a shift and a mask.
#[inline(always)]
fn split(addr: usize) -> (usize, usize) {
    (addr >> 32, (addr as u32 >> LG_KEY) as usize)
}

/// `addr`'s root index, `addr >> (LG_KEY + LEAF_BITS)`, computed so that
/// the compiler bounds-checks the index itself (a compare) rather than
/// rewriting the check as a second shift of `addr`: one instruction less
/// on `free`'s hit path (docs/hardening.md).
#[inline(always)]
fn root_index(addr: usize) -> usize {
    shr_opaque::<{ LG_KEY + LEAF_BITS }, 0>(addr)
}

/// `x >> (N - M)`, in a form the compiler cannot see through: a later
/// compare of the result stays a compare of the result (the compiler
/// would turn it into a second shift of `x`, keeping both).
#[inline(always)]
fn shr_opaque<const N: u32, const M: u32>(x: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let mut r = x;
        // SAFETY: a shift of a register: no memory, no stack; the flags
        // it changes are declared clobbered (no `preserves_flags`).
        unsafe {
            core::arch::asm!(
                "shr {r}, {n}",
                r = inout(reg) r,
                n = const N - M,
                options(pure, nomem, nostack)
            )
        };
        r
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        x >> (N - M)
    }
}

/// The address of `addr`'s entry, in its leaf or in the zero leaf (which
/// must not be written); None at or above 2^48 (the root index out of
/// range). A raw pointer: an `Option` of a reference would make the
/// compiler keep a null check on `free`'s hit path.
#[inline(always)]
fn entry_ptr(addr: usize) -> Option<*const AtomicU64> {
    let rel = MAP.root.get(root_index(addr))?.load(Ordering::Acquire);
    let leaf: *const AtomicU64 = ptr::with_exposed_provenance(zeros().wrapping_add(rel));
    Some(leaf.wrapping_add(split(addr).1))
}

/// `entry_ptr` as a reference.
#[inline(always)]
fn slot(addr: usize) -> Option<&'static AtomicU64> {
    // SAFETY: `entry_ptr` gives an entry of the zero leaf or of a mapped
    // leaf (`rel` is a mapped leaf's exposed address relative to the zero
    // leaf); leaves are LEAF_LEN entries, never unmapped, and the index is
    // below LEAF_LEN.
    entry_ptr(addr).map(|p| unsafe { &*p })
}

/// The entry for the page containing `addr`; `EMPTY` if rjem never mapped it.
#[inline(always)]
pub(crate) fn lookup(addr: usize) -> Entry {
    lookup_below_top(addr).unwrap_or(Entry::EMPTY)
}

/// `lookup` for an address below 2^48 (None above): a caller that sends
/// both None and an empty entry to its slow path, separately, keeps its
/// hit path free of the join (one jump less on `free`).
#[inline(always)]
pub(crate) fn lookup_below_top(addr: usize) -> Option<Entry> {
    let p = entry_ptr(addr)?;
    // SAFETY: as in `slot`.
    Some(Entry(unsafe { (*p).load(Ordering::Acquire) }))
}

/// The entry slot of `addr` in a leaf of its own (None: not created).
fn slot_mut(addr: usize) -> Option<&'static AtomicU64> {
    let rel = MAP.root.get(root_index(addr))?.load(Ordering::Acquire);
    if rel == 0 {
        return None;
    }
    slot(addr)
}

/// Creates the leaves covering `[addr, addr + size)`. False on OOM.
pub(crate) fn ensure_range(addr: usize, size: usize) -> bool {
    if (addr + size - 1) >> os::VA_BITS != 0 {
        return false;
    }
    let first = split(addr).0;
    let last = split(addr + size - 1).0;
    for slot in &MAP.root[first..=last] {
        if slot.load(Ordering::Acquire) != 0 {
            continue;
        }
        let leaf = os::map(LEAF_LEN * 8);
        if leaf.is_null() {
            return false;
        }
        let rel = leaf.expose_provenance().wrapping_sub(zeros());
        if slot
            .compare_exchange(0, rel, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            os::unmap(leaf, LEAF_LEN * 8);
        } else {
            NLEAVES.fetch_add(1, Ordering::Relaxed);
        }
    }
    true
}

/// Writes `entry` for every 4 KiB key in `[addr, addr + size)`. The range
/// must lie in memory covered by `ensure_range`.
pub(crate) fn set_range(addr: usize, size: usize, entry: Entry) {
    let mut a = addr;
    while a < addr + size {
        match slot_mut(a) {
            Some(s) => s.store(entry.0, Ordering::Release),
            None => os::fatal("pointer map leaf missing", a),
        }
        a += 1 << LG_KEY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extent::{ExtentPool, State};

    #[test]
    fn set_lookup_clear() {
        let mem = os::map(1 << 20);
        let a = mem as usize;
        assert!(ensure_range(a, 1 << 20));
        let mut pool = ExtentPool::new();
        let e = pool.get().unwrap();
        e.init(a, 8192, 3, State::Active, 0);
        set_range(a, 8192, Entry::new(e, 7, true));
        let got = lookup(a + 5000);
        assert!(got.is_slab() && got.is_active());
        assert_eq!(got.szind(), 7);
        assert!(ptr::eq(got.extent().unwrap(), e));
        assert_eq!(lookup(a + 8192), Entry::EMPTY);
        set_range(a, 8192, Entry::free(e));
        assert!(!lookup(a).is_active());
        set_range(a, 8192, Entry::EMPTY);
        assert_eq!(lookup(a), Entry::EMPTY);
        // Addresses beyond the map's range are simply unknown.
        assert_eq!(lookup(usize::MAX - 5), Entry::EMPTY);
        assert_eq!(lookup(16), Entry::EMPTY);
        os::unmap(mem, 1 << 20);
    }

    #[test]
    fn bypassing_entries_keep_their_class_but_no_cached_one() {
        let mut pool = ExtentPool::new();
        let e = pool.get().unwrap();
        let last = sc::NSIZES - 1;
        for (ind, slab) in [
            (0, true),
            (5, false),
            (40, false),
            (72, false),
            (73, false),
            (last, false),
        ] {
            // Large classes past the direct ones are read from the record.
            e.set_szind(ind);
            let plain = Entry::new(e, ind, slab);
            assert_eq!(plain.szind(), ind);
            assert!(plain.is_active() && plain.is_slab() == slab);
            if ind < DIRECT_CLASSES {
                assert_eq!(plain.cached_class(), ind);
                assert_eq!(plain.scaled_class::<5>(), (ind + 1) << 5);
            } else {
                assert!(plain.cached_class() >= DIRECT_CLASSES);
            }
            let b = plain.bypassing();
            assert_eq!(b.szind(), ind);
            assert_eq!(b.is_slab(), slab);
            assert!(b.is_active());
            assert!(ptr::eq(b.extent().unwrap(), e));
            // Past every class a cache holds: the free hit path declines.
            assert!(b.cached_class() >= DIRECT_CLASSES);
            assert!(b.scaled_class::<5>() > DIRECT_CLASSES << 5);
            assert!(b.scaled_class::<5>() < FIELD_VALUES << 5);
        }
        // A promoted block: a small class in an extent of a large one.
        e.set_szind(sc::geom().nbins);
        let promoted = Entry::new(e, 3, false).bypassing();
        assert_eq!(promoted.szind(), 3);
        assert!(promoted.cached_class() >= DIRECT_CLASSES);
        // Free extents and empty entries hold no live block, and bypassing
        // leaves them so.
        for ent in [Entry::free(e), Entry::EMPTY] {
            assert_eq!(ent.bypassing(), ent);
            assert!(!ent.is_active());
            assert_eq!(ent.scaled_class::<5>(), 0);
            assert_eq!(ent.szind(), NO_CLASS as usize);
        }
        assert!(ptr::eq(Entry::free(e).extent().unwrap(), e));
    }
}
