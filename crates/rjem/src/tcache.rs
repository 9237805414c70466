//! The thread cache: per thread, per size class stacks of free blocks.
//!
//! Owns: `CacheBin` (the stack of one class) and `Tcache` (all of a thread's
//! stacks, their storage, fill/flush sizing and incremental GC).
//!
//! The hot path (`pop`/`push`) is a compare and a load/store on thread-local
//! memory, plus the free key's word in the block (below) and, for `pop`,
//! one decrement of the class's countdown (`left`: the pop count, and the
//! heap profiler's per-class sampling, `sample`) that leaves for the slow
//! path when it reaches zero (never in practice with `prof:false`): no
//! lock, no read-modify-write atomic (`head` is a relaxed atomic, a plain
//! load and store). Each stack lives in one block
//! of memory allocated from the thread's arena; it grows downward, so `head` points to
//! the most recently pushed item and `empty` is one past the bottom. Only the
//! low 16 bits of positions are compared (a stack spans less than 64 KiB).
//! `low_water` is the highest head seen since the last GC (fewest items):
//! `pop` compares against it only, so tracking the mark costs the hit path
//! nothing; at the mark, the slow path lowers it (or refills when empty).
//! A refill sets the mark to "empty": the stack ran dry.
//!
//! Policy (jemalloc's options and defaults, applied here): classes up to
//! `tcache_max` are cached; small classes hold 2 x regions-per-slab
//! items, clamped to [20, 200]; large cached classes 20 (`Nslots`). A
//! miss fills `slots >> (1 + fill_shift)` items from the arena in one lock
//! hold (a class's first fill in a cache takes no more than one slab's
//! regions, down to an eighth of the slots, when its slabs are small); a full stack flushes its older half (`flush_count`) back to the
//! owning arenas, grouped per arena. Every 64 KiB of traffic through the
//! slow path (`tcache_gc_incr_bytes`), one class is GC'd: 3/4 of what
//! stayed unused since its last GC (below its low-water mark) is flushed,
//! and its fill size halves (it doubles again at the class's next GC if
//! the stack ran dry meanwhile, as in jemalloc, and at once at a second
//! fill between two GC visits: a burst of allocation after a quiet spell
//! does not take thousands of fills of a few blocks).
//!
//! Double frees are caught when they happen: `push` writes a key (one
//! random value per process, `FREE_KEY`, copied into each cache) into the
//! first word of every block it caches, and frees straight to an arena
//! write it too; a block that already starts with the key goes to the
//! slow path, which reports it if it is on this thread's stack, free in
//! its slab, or on another thread's stack (`on_other_stack`, under the
//! registry's lock); otherwise the word was the program's data, or a
//! block that a cache flushed and an uncached path handed out, and the
//! free proceeds. `pop` clears the word again. Costs the hit paths two
//! loads, a compare and two stores. `push` also sends a pointer that
//! cannot be a block's start (`StartCheck`: one multiplication, exact for
//! slabs placed by the page allocator) to the slow path, which reports it
//! as an interior pointer.
//!
//! With `junk` or `zero`, threads' caches are kept off the hit path
//! (`set_off_hit_path`, `create_off_path`): the slow paths fill blocks.
//!
//! Also counts each thread's allocated bytes for `stats_interval`, on the
//! slow path with the peak sampling, and raises `REPORT_DUE` for the report
//! (which sits above and polls it).
//!
//! Invariants: items in a stack are live blocks of exactly that class,
//! owned by any arena; a stack with zero capacity (head == low_water ==
//! full == empty) always takes the slow path, which is how an uninitialised,
//! disabled or exited cache is represented.

use crate::arena::{self, Arena};
use crate::base;
use crate::emap;
use crate::os;
use crate::pages::{self, GuardSampler};
use crate::size_class::{self as sc, Geometry};
use crate::sync::Mutex;
use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU16, AtomicU64, AtomicU8, AtomicUsize,
    Ordering::Relaxed,
};

pub(crate) mod sample;
use sample::Sampler;

/// Largest `BinCtl::fill_shift` a class's first fill in a cache starts at
/// (an eighth of the stack) when its slabs are small.
const FIRST_FILL_SHIFT: u8 = 2;

/// Largest `tcache_max` (jemalloc's `TCACHE_MAXCLASS_LIMIT`).
pub(crate) const MAX_LIMIT: usize = 8 << 20;
/// Most size classes a thread cache can hold: every class up to `MAX_LIMIT`.
pub(crate) const NCACHED_MAX: usize = sc::size_to_index_compute(MAX_LIMIT) + 1;
/// Bytes allocated between two samples of a thread's peak.
const PEAK_INTERVAL: usize = 64 << 10;
/// Most items a stack can hold: it spans less than 64 KiB (positions are
/// compared in 16 bits), jemalloc's `CACHE_BIN_NCACHED_MAX`.
pub(crate) const NSLOTS_LIMIT: usize = (1 << 16) / 8 - 1;

/// Options `tcache_nslots_small_min`, `tcache_nslots_small_max`,
/// `lg_tcache_nslots_mul` and `tcache_nslots_large`: how many items each
/// class's stack holds (`slots`). Written by `conf::boot`, like every
/// `OPT_*` static (the defaults live in its table: jemalloc's 20, 200, 1
/// and 20).
pub(crate) static OPT_NSLOTS_SMALL_MIN: AtomicUsize = AtomicUsize::new(0);
pub(crate) static OPT_NSLOTS_SMALL_MAX: AtomicUsize = AtomicUsize::new(0);
pub(crate) static OPT_LG_NSLOTS_MUL: AtomicI64 = AtomicI64::new(0);
pub(crate) static OPT_NSLOTS_LARGE: AtomicUsize = AtomicUsize::new(0);
/// Options `lg_tcache_flush_small_div` and `lg_tcache_flush_large_div`: a
/// full stack keeps `capacity >> div` of its newest items and returns the
/// others (1: half).
pub(crate) static OPT_LG_FLUSH_SMALL_DIV: AtomicUsize = AtomicUsize::new(1);
pub(crate) static OPT_LG_FLUSH_LARGE_DIV: AtomicUsize = AtomicUsize::new(1);
/// Option `tcache_gc_incr_bytes`: slow-path traffic (bytes) between two
/// incremental GC steps.
pub(crate) static OPT_GC_INCR_BYTES: AtomicUsize = AtomicUsize::new(64 << 10);

/// Option `tcache`: thread caches on or off (set by `conf::boot`).
pub(crate) static OPT_TCACHE: AtomicBool = AtomicBool::new(false);
/// Option `secure` (rjem's): fills hand regions out in random order, and
/// `boot` puts every `SECURE_GUARD_EVERY`th slab and large extent between
/// guard pages where `san_guard_small`/`san_guard_large` are 0. Double
/// frees are caught either way.
pub(crate) static OPT_SECURE: AtomicBool = AtomicBool::new(false);
/// `secure`'s guard sampling. Guarding every slab costs a threadtest-like
/// workload 2.3x its time (two `mprotect` calls per new slab, and slabs
/// come and go); every 8th costs it 1.4x with the shuffle, which alone
/// costs about as much (docs/hardening.md).
const SECURE_GUARD_EVERY: usize = 8;
/// Option `tcache_max`: the largest size cached per thread (at most
/// `MAX_LIMIT`).
pub(crate) static OPT_TCACHE_MAX: AtomicUsize = AtomicUsize::new(0);
/// Classes `0..NCACHED` are cached (fixed by `boot`).
static NCACHED: AtomicUsize = AtomicUsize::new(0);
/// Option `stats_interval`: print the statistics every time a thread has
/// allocated about this many bytes; -1 never (jemalloc's int64_t).
pub(crate) static OPT_STATS_INTERVAL: AtomicI64 = AtomicI64::new(-1);
/// `stats_interval` in bytes, 0 when off (fixed by `boot`).
static STATS_INTERVAL: AtomicU64 = AtomicU64::new(0);

/// Work waiting for the statistics report (`report::poll` reads and
/// clears it on the fronts' slow paths): `REPORT_AT_EXIT` (raised by
/// `init` for `stats_print`: register the exit report), `REPORT_INTERVAL`
/// (a thread allocated `stats_interval` bytes).
pub(crate) static REPORT_DUE: AtomicU8 = AtomicU8::new(0);
pub(crate) const REPORT_AT_EXIT: u8 = 1;
pub(crate) const REPORT_INTERVAL: u8 = 2;
/// The heap profiler has work (`prof::poll`): an exit handler to
/// register, or a dump due.
pub(crate) const REPORT_PROF: u8 = 4;

/// Whether threads' caches are kept off the hit path. `init` sets it
/// (before any thread is set up) when an option fills blocks (`junk`,
/// `zero`), whose work the slow paths do: each thread's cache then lives in
/// an internal block of its own (`create_off_path`), which only the slow
/// paths use, while the stacks the hit path reads (`tsd`) stay
/// zero-capacity, so every allocation and free misses them.
static OFF_HIT_PATH: AtomicBool = AtomicBool::new(false);

/// Keeps the threads' caches off the hit path (start-up only).
pub(crate) fn set_off_hit_path(on: bool) {
    OFF_HIT_PATH.store(on, Relaxed);
}

/// Whether threads' caches are off the hit path.
pub(crate) fn off_hit_path() -> bool {
    OFF_HIT_PATH.load(Relaxed)
}

/// Derives the cached classes from the options (start-up, after the
/// geometry is fixed).
pub(crate) fn boot() {
    let n = if OPT_TCACHE.load(Relaxed) {
        let max = OPT_TCACHE_MAX.load(Relaxed).min(MAX_LIMIT);
        // Classes whose size is at most `max`.
        let i = sc::size_to_index(max.max(8));
        if sc::index_to_size(i) > max {
            i
        } else {
            i + 1
        }
    } else {
        0
    };
    NCACHED.store(n.min(NCACHED_MAX), Relaxed);
    if OPT_SECURE.load(Relaxed) {
        for guard in [&pages::OPT_SAN_GUARD_SMALL, &pages::OPT_SAN_GUARD_LARGE] {
            if guard.load(Relaxed) == 0 {
                guard.store(SECURE_GUARD_EVERY, Relaxed);
            }
        }
    }
    // As jemalloc, 0 means every allocation.
    let every = OPT_STATS_INTERVAL.load(Relaxed);
    STATS_INTERVAL.store(if every < 0 { 0 } else { every.max(1) as u64 }, Relaxed);
}

/// Classes `0..ncached()` are cached (`arenas.nhbins`).
pub(crate) fn ncached() -> usize {
    NCACHED.load(Relaxed)
}

/// Whether threads get a cache at all.
pub(crate) fn enabled() -> bool {
    OPT_TCACHE.load(Relaxed)
}

/// The stack-size options, as read once per cache set-up.
#[derive(Clone, Copy)]
struct Nslots {
    small_min: usize,
    small_max: usize,
    lg_mul: i64,
    large: usize,
}

impl Nslots {
    fn current() -> Nslots {
        Nslots {
            small_min: OPT_NSLOTS_SMALL_MIN.load(Relaxed),
            small_max: OPT_NSLOTS_SMALL_MAX.load(Relaxed),
            lg_mul: OPT_LG_NSLOTS_MUL.load(Relaxed),
            large: OPT_NSLOTS_LARGE.load(Relaxed),
        }
    }

    /// Stack slots of cached class `ind`: for a small class, its regions
    /// per slab times 2^`lg_mul`, made even and kept within [`small_min`,
    /// `small_max`]; for a large one, `large`. Every bound is made even
    /// and at least 2, and at most `NSLOTS_LIMIT` (jemalloc's rules).
    fn slots(&self, g: &Geometry, ind: usize) -> usize {
        let even = |n: usize| (n & !1).clamp(2, NSLOTS_LIMIT & !1);
        if !g.is_small(ind) {
            return even(self.large);
        }
        let max = even(self.small_max);
        let min = even(self.small_min.saturating_add(1)).min(max);
        let nregs = g.bins[ind].nregs;
        let mul = self.lg_mul.clamp(-16, 16);
        let want = if mul >= 0 {
            nregs << mul
        } else {
            nregs >> -mul
        };
        (want + (want & 1)).clamp(min, max)
    }
}

/// How many of a full stack's items of class `ind` a flush returns: all but
/// `capacity >> lg_tcache_flush_*_div` (at least one).
fn flush_count(ind: usize, capacity: usize) -> usize {
    let div = if sc::geom().is_small(ind) {
        &OPT_LG_FLUSH_SMALL_DIV
    } else {
        &OPT_LG_FLUSH_LARGE_DIV
    };
    let keep = capacity >> div.load(Relaxed).clamp(1, 16);
    (capacity - keep).max(1)
}

/// 32 bytes, so a stack's hot fields share one cache line and indexing
/// is a shift.
#[repr(C, align(32))]
pub(crate) struct CacheBin {
    /// Top of the stack. `head` and `empty` are relaxed atomics (plain
    /// loads and stores on x86_64) so that statistics readers on other
    /// threads may count the items (`cached_bytes`) without a data race.
    head: AtomicPtr<*mut u8>,
    /// Pops left until the class's next sampling event (`sample`): one
    /// decrement per block handed out, on the hit path too, which leaves
    /// for the slow path when it reaches zero. It is also the pop count
    /// (the thread's allocations of the class, for `thread.allocated`):
    /// pops = `BinCtl::pop_base` - `left`.
    left: Cell<u64>,
    /// `StartCheck` of the class: `push` sends a pointer that is not a
    /// block's start to the slow path, which reports it.
    start: StartCheck,
    low_water: Cell<u16>,
    full: Cell<u16>,
    empty: AtomicU16,
    /// The mask `push_trusted` tests instead of `start` (frees that trust
    /// the caller's size, looking nothing up: Rust's `dealloc` in release
    /// builds): the low address bits every block of the class has clear
    /// (`align_mask`), or with per-class sampling (`prof:true`) all 16
    /// bits, so that only blocks at a 64 KiB boundary, which a sampled
    /// block never is (`Arena::promoted_alloc`), skip the lookup that
    /// tells a sampled block. In the padding.
    trusted_mask: Cell<u16>,
}

/// Whether a pointer can be the start of a block of one cached class,
/// with one multiplication: the low 32 bits of every block's address are
/// a multiple of `d`, the class size for small classes (slabs are placed
/// so, `pages::Fit`) and the page (or cache line, with `cache_oblivious`)
/// for large ones. `mul` is ceil(2^64 / d): for n < 2^32, d divides n
/// exactly when n * mul (mod 2^64) < mul (Lemire, Kaser and Kurz, 2019).
///
/// Exact for small classes whose slabs hold only whole regions (every
/// class at the default slab sizes): no other address in a slab passes.
/// A `slab_sizes` setting that leaves a tail lets the tail's first byte
/// pass, and so does an interior pointer into a slab that custom extent
/// hooks placed elsewhere (valid frees there take the slow path); those
/// are caught when the cache flushes.
#[repr(transparent)]
struct StartCheck(Cell<u64>);

impl StartCheck {
    /// Always fails (zero-capacity stacks never get this far).
    const fn none() -> StartCheck {
        StartCheck(Cell::new(0))
    }

    fn set(&self, other: StartCheck) {
        self.0.set(other.0.get());
    }

    fn for_modulus(d: usize) -> StartCheck {
        debug_assert!(d > 1 && d < 1 << 32);
        StartCheck(Cell::new(sc::multiple_magic(d)))
    }
}

impl CacheBin {
    /// Whether `p` passes the class's `StartCheck`.
    #[inline(always)]
    fn starts_block(&self, p: *mut u8) -> bool {
        const OFF: usize = core::mem::offset_of!(CacheBin, start);
        // SAFETY: the field at OFF is the multiplier, a u64 (`StartCheck`
        // is a transparent `Cell<u64>`).
        let prod = unsafe {
            os::mul_by_indexed_field::<OFF>(
                p as usize as u32 as u64,
                self as *const CacheBin as *const u8,
                0,
            )
        };
        prod < self.start.0.get()
    }
}

/// log2 of a `CacheBin`'s size: a class index plus one, shifted by this,
/// is its stack's byte offset from `Tcache::before`.
pub(crate) const LG_BIN: u32 = 5;
const _: () = assert!(core::mem::size_of::<CacheBin>() == 1 << LG_BIN);

/// A cached class as the byte offset of its stack from `Tcache::before`,
/// `(index + 1) << LG_BIN`; 0 is `before` itself, a stack that takes
/// nothing. The fast paths get it from a table (`bin_offset`) or the
/// pointer map (`Entry::scaled_class`, 0 for an unknown page) and index
/// the stacks with it: no shift, and no subtraction.
pub(crate) type BinOffset = usize;

/// `bin_offset`'s table: sizes 0..=LOOKUP_MAX (`lookup_table_by_size`).
/// A `const`, as `size_class`'s table, for the same reason.
const SIZE_TO_BIN: [u16; sc::LOOKUP_MAX + 1] = sc::lookup_table_by_size(LG_BIN);

/// The `BinOffset` of the class of `s` bytes, s <= LOOKUP_MAX (its class
/// is below `NCACHED_MAX`); 0, the stack that takes nothing, for s = 0.
#[inline(always)]
pub(crate) fn bin_offset(s: usize) -> BinOffset {
    SIZE_TO_BIN[s] as usize
}

/// The `BinOffset` bound: offsets below it are `before`'s, a cached
/// class's or a spare stack's (`Tcache::spare`). Every pointer-map entry's
/// `scaled_class` is below it.
pub(crate) const OFFSET_LIMIT: BinOffset = emap::FIELD_VALUES << LG_BIN;
const _: () = assert!(NCACHED_MAX == emap::DIRECT_CLASSES);

/// Clears the free key from block `p`, handed out again, so that a later
/// free does not mistake the key, or what a partial write left of it, for
/// a double free.
#[inline(always)]
fn unmark(p: *mut u8) -> *mut u8 {
    // SAFETY: `p` comes off a stack, so it is a block of at least 8
    // aligned bytes that this cache owns until it is returned.
    unsafe { (p as *mut u64).write(0) };
    p
}

#[inline(always)]
fn lo(p: *mut *mut u8) -> u16 {
    p as usize as u16
}

impl CacheBin {
    /// A zero-capacity stack: every pop and push takes the slow path.
    const fn zero() -> CacheBin {
        CacheBin {
            head: AtomicPtr::new(ptr::null_mut()),
            left: Cell::new(0),
            low_water: Cell::new(0),
            full: Cell::new(0),
            empty: AtomicU16::new(0),
            start: StartCheck::none(),
            trusted_mask: Cell::new(0),
        }
    }

    /// Pops the most recently cached block, counting it, unless the stack
    /// is at its low-water mark or the pop is the class's next sampling
    /// event (`left` reaches zero: counted, nothing popped); then the slow
    /// path decides, and must not call `pop` again for this allocation.
    #[inline(always)]
    pub(crate) fn pop(&self) -> Option<*mut u8> {
        let h = self.head.load(Relaxed);
        if lo(h) == self.low_water.get() {
            return None;
        }
        let left = self.left.get().wrapping_sub(1);
        self.left.set(left);
        if left == 0 {
            return None;
        }
        // SAFETY: head is above the low-water mark, so it points at a cached
        // item inside this bin's stack storage.
        unsafe {
            self.head.store(h.add(1), Relaxed);
            Some(unmark(*h))
        }
    }

    /// The slow path's pop of an allocation already counted: the top
    /// block if the stack is not empty (None: the caller refills),
    /// lowering the low-water mark if the stack has fewer items than it
    /// says. Kept out of `pop` so the hit path stays minimal.
    #[inline]
    fn take(&self) -> Option<*mut u8> {
        let h = self.head.load(Relaxed);
        if lo(h) == self.empty.load(Relaxed) {
            return None;
        }
        let fewest = self.low_water_count();
        // SAFETY: not empty, so head points at a cached item; the new mark
        // (one slot up) stays within the stack.
        unsafe {
            self.head.store(h.add(1), Relaxed);
            if self.count() < fewest {
                self.low_water.set(lo(h.add(1)));
            }
            Some(unmark(*h))
        }
    }

    /// Pushes freed block `p` (a live block of this class), marking it
    /// with `key` (the cache's `key()`), unless the stack is full, `p` is
    /// not aligned as the class's blocks are, or `p` already starts with
    /// the key (then the slow path decides: maybe an interior pointer or
    /// a double free).
    #[inline(always)]
    pub(crate) fn push(&self, p: *mut u8, key: u64) -> bool {
        self.push_checked(p, key, self.starts_block(p))
    }

    /// `push` for a free that trusts the caller's size and has not looked
    /// `p` up: tests `trusted_mask` instead of the start check.
    #[inline(always)]
    pub(crate) fn push_trusted(&self, p: *mut u8, key: u64) -> bool {
        self.push_checked(p, key, p as usize as u16 & self.trusted_mask.get() == 0)
    }

    /// `push`, given the outcome of `p`'s start check.
    #[inline(always)]
    fn push_checked(&self, p: *mut u8, key: u64, starts_block: bool) -> bool {
        let h = self.head.load(Relaxed);
        if lo(h) == self.full.get() {
            return false;
        }
        if !starts_block {
            return false;
        }
        // SAFETY: a live block of a cached class is at least 8 bytes and
        // ours to write once freed; 8-aligned (every class's modulus, and
        // every trusted mask, checks the low three bits: just above).
        unsafe {
            if os::first_word_is(p, key) {
                return false;
            }
            (p as *mut u64).write(key);
        }
        // SAFETY: the stack is not full, so the slot below head is inside
        // this bin's stack storage.
        unsafe {
            let h = h.sub(1);
            *h = p;
            self.head.store(h, Relaxed);
        }
        true
    }

    /// `push` without the checks, for a stack known not to be full and a
    /// block known to be a block's start.
    fn push_after_check(&self, p: *mut u8, key: u64) {
        let h = self.head.load(Relaxed);
        debug_assert_ne!(lo(h), self.full.get());
        // SAFETY: as in `push`.
        unsafe {
            (p as *mut u64).write(key);
            let h = h.sub(1);
            *h = p;
            self.head.store(h, Relaxed);
        }
    }

    /// Whether `p` is among the cached items.
    fn holds(&self, p: *mut u8) -> bool {
        let h = self.head.load(Relaxed);
        // SAFETY: [head, head + count) are the cached items.
        unsafe { core::slice::from_raw_parts(h, self.count()) }.contains(&p)
    }

    fn is_full(&self) -> bool {
        lo(self.head.load(Relaxed)) == self.full.get()
    }

    /// Items cached.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        (self
            .empty
            .load(Relaxed)
            .wrapping_sub(lo(self.head.load(Relaxed)))
            / 8) as usize
    }
    fn low_water_count(&self) -> usize {
        (self.empty.load(Relaxed).wrapping_sub(self.low_water.get()) / 8) as usize
    }
    fn capacity(&self) -> usize {
        (self.empty.load(Relaxed).wrapping_sub(self.full.get()) / 8) as usize
    }
    /// Pointer to the empty end (one past the bottom item).
    fn empty_ptr(&self) -> *mut *mut u8 {
        // SAFETY: pure address arithmetic within the stack block.
        unsafe { self.head.load(Relaxed).add(self.count()) }
    }
    fn reset_low_water(&self) {
        self.low_water.set(lo(self.head.load(Relaxed)));
    }
}

/// Per-class adaptive state and counters, touched only on slow paths.
#[derive(Clone, Copy)]
struct BinCtl {
    /// A fill takes `capacity >> (1 + fill_shift)` items: half the stack by
    /// default (zero, so an all-zero `Tcache` is a valid initial value).
    fill_shift: u8,
    /// Went empty and was refilled since the last GC of this class.
    refilled: bool,
    /// Blocks ever put on the stack by fills (a large class's block from
    /// the arena counts as one), and taken off by flushes:
    /// with the pops and the stack's count they give the blocks pushed
    /// (freed by the thread) without counting on the free hit path.
    nfill: u64,
    nflush: u64,
    /// Pops so far plus `CacheBin::left` (wrapping): the pop count
    /// survives re-arming the countdown (`sample`).
    pop_base: u64,
}

/// The thread's allocation counters outside the stacks, and its peak
/// (`thread.allocated`, `thread.deallocated`, `thread.peak`), in bytes at
/// usable size.
#[derive(Clone, Copy)]
struct Counters {
    /// Allocated and freed without a stack: uncached classes and places,
    /// threads without a cache, blocks resized in place.
    slow_alloc: u64,
    slow_dalloc: u64,
    /// allocated - deallocated when `thread.peak.reset` last ran, and the
    /// highest value seen since, relative to it.
    net_at_reset: i64,
    peak: i64,
    /// Bytes allocated (filled into stacks, or outside them) since the
    /// peak was last sampled: it is sampled every `PEAK_INTERVAL` bytes.
    since_peak: u64,
    /// Bytes allocated (as for the peak) since the last `stats_interval`
    /// report this thread asked for.
    since_report: u64,
    /// Bytes filled into the stacks less bytes flushed from them
    /// (wrapping). allocated - deallocated is `slow_alloc - slow_dalloc +
    /// stacked` less the bytes on the stacks, so at most the first three.
    stacked: u64,
}

#[repr(C)]
pub(crate) struct Tcache {
    /// A stack that takes nothing (zero capacity, and a start check no
    /// pointer passes), right before `bins`: `BinOffset` 0, where the free
    /// path's pointer-map lookup lands for a page rjem does not know.
    before: CacheBin,
    /// Hot: first in the struct so the fast path's offsets are small.
    pub(crate) bins: [CacheBin; NCACHED_MAX],
    /// Stacks that take nothing, for the offsets of pointer-map entries
    /// that name no cached class (`emap::Entry::scaled_class`): with them,
    /// `free` indexes the stacks with any entry's offset, unchecked.
    spare: [CacheBin; emap::FIELD_VALUES - 1 - NCACHED_MAX],
    ctl: [Cell<BinCtl>; NCACHED_MAX],
    nbins: Cell<usize>,
    stack: Cell<*mut u8>,
    counters: Cell<Counters>,
    gc_bytes: Cell<usize>,
    gc_next: Cell<usize>,
    /// `thread.allocatedp` / `deallocatedp`: copies of the counters that a
    /// program may read through a pointer, kept up to date (see `publish`)
    /// once `publishing` is set by the first request for them.
    published: [Cell<u64>; 2],
    publishing: Cell<bool>,
    /// The arena the cache fills from, plus one (0: none): written by the
    /// owner, read by `stats` through the registry (`tcache_bytes`).
    arena_ind: AtomicUsize,
    /// When the slabs and large extents this cache's user allocates are
    /// guarded (`san_guard_small`, `san_guard_large`).
    pub(crate) guards: GuardSampler,
    /// Registry links (under `REGISTRY`'s lock).
    reg_next: Cell<*const Tcache>,
    reg_prev: Cell<*const Tcache>,
    registered: Cell<bool>,
    /// xorshift64* state for `secure`'s fill order (0: not seeded yet).
    rng: Cell<u64>,
    /// The free key (`FREE_KEY`), copied here by `setup` so that the hit
    /// path loads it next to the stacks (0 until then: a zero-capacity
    /// stack never compares it).
    key: Cell<u64>,
    /// The thread's allocation count for the heap profiler (`sample`).
    pub(crate) sampler: Sampler,
}

impl Default for Tcache {
    fn default() -> Self {
        Self::new()
    }
}

impl Tcache {
    /// Where `BinOffset`s count from: `before`, in memory derived from the
    /// whole cache (the offsets reach into `bins`).
    #[inline(always)]
    fn offsets_base(&self) -> *const u8 {
        // SAFETY: a field offset inside this struct.
        unsafe { (self as *const Tcache as *const u8).add(core::mem::offset_of!(Tcache, before)) }
    }

    /// Pushes freed block `p` onto the stack at `off` (`CacheBin::push`),
    /// with its start check addressed from the offsets' base, as the other
    /// fields are (one instruction less than from the stack's address).
    ///
    /// # Safety
    /// As `bin_at`.
    #[inline(always)]
    pub(crate) unsafe fn push_at(&self, off: BinOffset, p: *mut u8) -> bool {
        const START: usize = core::mem::offset_of!(CacheBin, start);
        // SAFETY: a stack's multiplier, at `off + START` from the base.
        let prod = unsafe {
            os::mul_by_indexed_field::<START>(p as usize as u32 as u64, self.offsets_base(), off)
        };
        // SAFETY: forwarded.
        let b = unsafe { self.bin_at(off) };
        b.push_checked(p, self.key(), prod < b.start.0.get())
    }

    /// The stack at `off` (`before` for 0).
    ///
    /// # Safety
    /// `off < OFFSET_LIMIT` and a multiple of the stacks' size.
    #[inline(always)]
    pub(crate) unsafe fn bin_at(&self, off: BinOffset) -> &CacheBin {
        debug_assert!(off < OFFSET_LIMIT && off.is_multiple_of(1 << LG_BIN));
        // SAFETY: `before`, `bins` and `spare` are consecutive (`repr(C)`,
        // all of 32-byte stacks), so the caller's offset names a whole
        // stack.
        unsafe { &*self.offsets_base().add(off).cast::<CacheBin>() }
    }

    pub(crate) const fn new() -> Tcache {
        Tcache {
            before: CacheBin::zero(),
            bins: [const { CacheBin::zero() }; NCACHED_MAX],
            spare: [const { CacheBin::zero() }; emap::FIELD_VALUES - 1 - NCACHED_MAX],
            ctl: [const {
                Cell::new(BinCtl {
                    fill_shift: 0,
                    refilled: false,
                    nfill: 0,
                    nflush: 0,
                    pop_base: 0,
                })
            }; NCACHED_MAX],
            nbins: Cell::new(0),
            stack: Cell::new(ptr::null_mut()),
            counters: Cell::new(Counters {
                slow_alloc: 0,
                slow_dalloc: 0,
                net_at_reset: 0,
                peak: 0,
                since_peak: 0,
                since_report: 0,
                stacked: 0,
            }),
            gc_bytes: Cell::new(0),
            gc_next: Cell::new(0),
            published: [const { Cell::new(0) }; 2],
            publishing: Cell::new(false),
            rng: Cell::new(0),
            key: Cell::new(0),
            arena_ind: AtomicUsize::new(0),
            guards: GuardSampler::new(),
            reg_next: Cell::new(ptr::null()),
            reg_prev: Cell::new(ptr::null()),
            registered: Cell::new(false),
            sampler: Sampler::new(),
        }
    }

    /// Whether this cache is in its initial state, byte for byte in effect
    /// (tests: an all-zero `Tcache` must equal `new()`).
    #[cfg(test)]
    pub(crate) fn same_as_new(&self) -> bool {
        self.nbins.get() == 0
            && self.stack.get().is_null()
            && self.gc_bytes.get() == 0
            && self.gc_next.get() == 0
            && self.counters.get().slow_alloc == 0
            && self.counters.get().peak == 0
            && self.ctl.iter().all(|c| {
                let c = c.get();
                c.fill_shift == 0 && !c.refilled && c.nfill == 0 && c.nflush == 0 && c.pop_base == 0
            })
            && self.bins.iter().all(|b| b.left.get() == 0)
    }

    /// Whether class `ind` is cached by this (set-up) cache.
    #[inline]
    pub(crate) fn caches(&self, ind: usize) -> bool {
        ind < self.nbins.get()
    }

    /// Allocates the stacks from `arena`. False when out of memory (the
    /// cache then stays disabled for this thread). With `register`, the
    /// cache joins the registry `cached_bytes` reads: only for caches that
    /// are certain to be destroyed before their memory goes away.
    pub(crate) fn setup(&self, arena: &Arena, register: bool) -> bool {
        self.setup_with(arena, register, sample::enabled())
    }

    /// `setup`, with the classes sampled per class (`sample`) if
    /// `per_class`.
    fn setup_with(&self, arena: &Arena, register: bool, per_class: bool) -> bool {
        let g = sc::geom();
        let n = NCACHED.load(Relaxed);
        let nslots = Nslots::current();
        let total: usize = (0..n).map(|i| nslots.slots(g, i)).sum();
        if total == 0 {
            return true;
        }
        let bytes = total * 8;
        let Some(u) = g.usable_size(bytes, 64) else {
            return false;
        };
        let mem = arena::alloc_internal(home(arena), u, 64);
        if mem.is_null() {
            return false;
        }
        self.key.set(free_key());
        let mut cur = mem as *mut *mut u8;
        for i in 0..n {
            // SAFETY: the block holds `total` slots; bin i gets its share.
            let empty = unsafe { cur.add(nslots.slots(g, i)) };
            let b = &self.bins[i];
            b.start.set(start_check(g, i));
            b.trusted_mask.set(if per_class {
                u16::MAX
            } else {
                align_mask(g, i)
            });
            b.head.store(empty, Relaxed);
            b.low_water.set(lo(empty));
            b.empty.store(lo(empty), Relaxed);
            b.full.set(lo(cur));
            cur = empty;
        }
        self.stack.set(mem);
        self.nbins.set(n);
        self.arm_all(n, per_class);
        self.set_arena(arena);
        if register {
            self.registered.set(true);
            join(self);
        }
        true
    }

    /// The arena this cache fills from now (for `tcache_bytes`).
    pub(crate) fn set_arena(&self, arena: &Arena) {
        self.arena_ind.store(arena.ind + 1, Relaxed);
    }

    /// Bytes of the blocks on the stacks now (`tcache_bytes`); may be read
    /// from another thread while the cache is registered, as jemalloc
    /// reads its caches: each stack's count is exact at the moment it is
    /// read. Classes beyond `NCACHED` have no stack (count 0).
    fn bytes_on_stacks(&self) -> usize {
        let n = NCACHED.load(Relaxed).min(self.bins.len());
        (0..n)
            .map(|i| self.bins[i].count() * sc::index_to_size(i))
            .sum()
    }

    /// Flushes everything and frees the stacks; the cache becomes disabled.
    pub(crate) fn destroy(&self) {
        // Out of the registry first: readers count the stacks cleared below.
        if self.registered.replace(false) {
            leave(self);
        }
        for i in 0..self.nbins.get() {
            let b = &self.bins[i];
            self.flush(i, b.count());
        }
        // The classes' counts go with the stacks (`allocated` reads only
        // the first `nbins`): fold them into the totals outside the
        // stacks, so that `thread.allocated` and the peak carry on from
        // where they are if the cache is set up again.
        let (a, d) = self.allocated();
        let mut c = self.counters.get();
        (c.slow_alloc, c.slow_dalloc, c.stacked) = (a, d, 0);
        self.counters.set(c);
        for (b, ctl) in self.bins.iter().zip(&self.ctl) {
            let mut k = ctl.get();
            (k.pop_base, k.nfill, k.nflush) = (b.left.get(), 0, 0);
            ctl.set(k);
        }
        for b in &self.bins {
            b.head.store(ptr::null_mut(), Relaxed);
            b.low_water.set(0);
            b.full.set(0);
            b.empty.store(0, Relaxed);
        }
        self.nbins.set(0);
        let mem = self.stack.replace(ptr::null_mut());
        if !mem.is_null() {
            arena::dalloc_internal(mem);
        }
    }

    /// A block of cached class `ind` (`caches(ind)`) for a slow path
    /// (after the hit path's `pop` declined, or instead of it) in a cache
    /// not sampled per class: counted, refilling from `arena` if the
    /// stack is empty. Null when out of memory.
    pub(crate) fn alloc(&self, arena: &Arena, ind: usize) -> *mut u8 {
        if self.charge_pop(ind) {
            // Such a cache is armed with `NEVER`: this is 2^64 pops later.
            self.arm_class(ind, sample::NEVER);
        }
        self.alloc_counted(arena, ind)
    }

    /// Caches freed block `p` of cached class `ind` (`caches(ind)`),
    /// flushing the older half of a full stack first; a pointer misaligned
    /// for the class is reported (`dalloc_slow`).
    pub(crate) fn dalloc(&self, ind: usize, p: *mut u8) {
        if !self.bins[ind].push(p, self.key()) {
            self.dalloc_slow(ind, p);
        }
    }

    /// The free key every block on this cache's stacks starts with.
    #[inline(always)]
    pub(crate) fn key(&self) -> u64 {
        self.key.get()
    }

    /// Puts `items` in random order (`secure`): which region the next
    /// allocation gets is not predictable from the last one.
    fn shuffle(&self, items: &mut [*mut u8]) {
        let mut x = self.rng.get();
        if x == 0 {
            x = (os::now_ns() ^ (self as *const Tcache as u64).rotate_left(29)) | 1;
        }
        for i in (1..items.len()).rev() {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
            let j = (((r >> 32) * (i as u64 + 1)) >> 32) as usize;
            items.swap(i, j);
        }
        self.rng.set(x);
    }

    /// A block of cached class `ind` (`caches(ind)`) for an allocation
    /// already counted (`charge_pop`): the stack's top one, or one from a
    /// refill from `arena`. Null when out of memory.
    pub(crate) fn alloc_counted(&self, arena: &Arena, ind: usize) -> *mut u8 {
        let b = &self.bins[ind];
        if let Some(p) = b.take() {
            return p;
        }
        let g = sc::geom();
        let size = sc::index_to_size(ind);
        self.gc_tick(size);
        if !g.is_small(ind) {
            // Large classes are not filled in batches.
            let p = arena.large_alloc(size, 1, false, Some(&self.guards));
            if p.is_null() {
                self.uncount_pop(ind);
            } else {
                // Counted as a pop of the class, and as a fill (the block
                // never sat on the stack): pushes stay exact.
                let mut ctl = self.ctl[ind].get();
                ctl.nfill += 1;
                self.ctl[ind].set(ctl);
                self.note_stacked(size, 0);
                self.peak_tick(size);
                self.publish();
            }
            return p;
        }
        let mut ctl = self.ctl[ind].get();
        if ctl.nfill == 0 {
            // The class's first fill in this cache: no more than a slab's
            // regions when the slabs are small, down to an eighth of the
            // stack (a short-lived thread that needs a few 4 KiB blocks
            // does not take ten one-region slabs).
            let nregs = g.bins[ind].nregs;
            while ctl.fill_shift < FIRST_FILL_SHIFT && b.capacity() >> (1 + ctl.fill_shift) > nregs
            {
                ctl.fill_shift += 1;
            }
        } else if ctl.refilled && ctl.fill_shift > 0 {
            // A second fill since the GC last looked at the class: it is
            // in demand now, so fill twice as much (the GC shrinks fills
            // again when their blocks go unused).
            ctl.fill_shift -= 1;
        }
        ctl.refilled = true;
        let nfill = (b.capacity() >> (1 + ctl.fill_shift)).max(1);
        let empty = b.empty_ptr();
        // SAFETY: the stack is empty, so its whole capacity (>= nfill slots
        // below `empty`) is free for the arena to write into.
        let out = unsafe { core::slice::from_raw_parts_mut(empty.sub(nfill), nfill) };
        let n = arena.fill(ind, out, Some(&self.guards));
        if OPT_SECURE.load(Relaxed) {
            self.shuffle(&mut out[..n]);
        }
        ctl.nfill += n as u64;
        self.ctl[ind].set(ctl);
        let bytes = n * sc::index_to_size(ind);
        self.note_stacked(bytes, 0);
        self.peak_tick(bytes);
        if n == 0 {
            // Not allocated after all.
            self.uncount_pop(ind);
            return ptr::null_mut();
        }
        self.publish();
        if n < nfill {
            out.copy_within(0..n, nfill - n);
        }
        // SAFETY: n items now sit just below `empty`; pop the first (lowest
        // address). The low-water mark records that the stack ran dry.
        unsafe {
            let h = empty.sub(n);
            b.head.store(h.add(1), Relaxed);
            b.low_water.set(lo(empty));
            unmark(*h)
        }
    }

    /// Whether live-looking block `p` of class `ind`, given to entry point
    /// `func` (`realloc`...), was freed already (reported; the caller
    /// skips the operation).
    pub(crate) fn freed_already(&self, ind: usize, p: *mut u8, func: &'static str) -> bool {
        if !self.caches(ind) {
            return false;
        }
        let b = &self.bins[ind];
        if !b.starts_block(p)
            && !emap::lookup(p as usize)
                .extent()
                .is_some_and(|e| is_block_start(e, ind, p))
        {
            // Not a block's start: the caller's own check reports it.
            return false;
        }
        // SAFETY: a live block of a cached class, as in `push`.
        let marked = unsafe { os::first_word_is(p, self.key()) };
        marked && report_if_freed(self, ind, p, func)
    }

    /// Slow free into cached class `ind` after `push` declined (stack full,
    /// `p` misaligned for the class, or `p` starts with the key): reports
    /// an interior pointer or a double free (and with `abort:false` skips
    /// the free), flushes the older half of a full stack, then caches `p`.
    fn dalloc_slow(&self, ind: usize, p: *mut u8) {
        let b = &self.bins[ind];
        if !b.starts_block(p) && !block_start(ind, p) {
            return;
        }
        // SAFETY: as in `push` (aligned: checked above).
        if unsafe { os::first_word_is(p, self.key()) } && report_if_freed(self, ind, p, "free") {
            // abort:false: the block stays freed once.
            return;
        }
        if b.is_full() {
            let n = flush_count(ind, b.capacity());
            self.flush(ind, n);
            self.gc_tick(sc::index_to_size(ind) * n);
        }
        b.push_after_check(p, self.key());
        self.publish();
    }

    /// Returns the `n` oldest (bottom) items of class `ind` to their arenas.
    pub(crate) fn flush(&self, ind: usize, n: usize) {
        let b = &self.bins[ind];
        let n = n.min(b.count());
        if n == 0 {
            return;
        }
        let empty = b.empty_ptr();
        // SAFETY: the bottom n items are in [empty - n, empty).
        let items = unsafe { core::slice::from_raw_parts_mut(empty.sub(n), n) };
        flush_items(ind, items);
        let mut ctl = self.ctl[ind].get();
        ctl.nflush += n as u64;
        self.ctl[ind].set(ctl);
        self.note_stacked(0, n * sc::index_to_size(ind));
        // Move the remaining (newer) items down to the bottom.
        let head = b.head.load(Relaxed);
        let keep = b.count() - n;
        // SAFETY: both ranges are inside the stack; copy handles overlap.
        unsafe {
            ptr::copy(head, head.add(n), keep);
            b.head.store(head.add(n), Relaxed);
        }
        if b.low_water_count() > keep {
            b.reset_low_water();
        }
    }

    /// Counts slow-path traffic; every `tcache_gc_incr_bytes`, GC one class.
    #[inline(always)]
    fn gc_tick(&self, bytes: usize) {
        let t = self.gc_bytes.get() + bytes;
        if t < OPT_GC_INCR_BYTES.load(Relaxed) {
            self.gc_bytes.set(t);
        } else {
            self.gc_step();
        }
    }

    /// GCs the next class (`gc_tick`).
    #[cold]
    #[inline(never)]
    fn gc_step(&self) {
        self.gc_bytes.set(0);
        let n = self.nbins.get();
        if n == 0 {
            return;
        }
        let ind = self.gc_next.get() % n;
        self.gc_next.set(ind + 1);
        self.gc_one(ind);
    }

    /// Incremental GC of one class: flush 3/4 of the items that were not
    /// used since the last GC, and adapt the fill size.
    fn gc_one(&self, ind: usize) {
        let b = &self.bins[ind];
        let lw = b.low_water_count();
        if lw > 0 {
            self.flush(ind, lw - lw / 4);
        }
        // Read after the flush, which updates the counters.
        let mut ctl = self.ctl[ind].get();
        if lw > 0 {
            // Unused items: fill less next time.
            if b.capacity() >> (ctl.fill_shift + 2) >= 1 {
                ctl.fill_shift += 1;
            }
        } else if ctl.refilled && ctl.fill_shift > 0 {
            // Ran dry: fill more.
            ctl.fill_shift -= 1;
        }
        ctl.refilled = false;
        self.ctl[ind].set(ctl);
        b.reset_low_water();
    }

    /// Counts `bytes` allocated without a stack.
    pub(crate) fn note_alloc(&self, bytes: usize) {
        let mut c = self.counters.get();
        c.slow_alloc = c.slow_alloc.wrapping_add(bytes as u64);
        self.counters.set(c);
        self.peak_tick(bytes);
        self.publish();
    }

    /// Samples the peak once per `PEAK_INTERVAL` bytes allocated (blocks
    /// filled into the stacks count when filled), as jemalloc samples it
    /// at its allocation events; counts the same bytes for
    /// `stats_interval`.
    fn peak_tick(&self, bytes: usize) {
        let mut c = self.counters.get();
        c.since_peak += bytes as u64;
        let every = STATS_INTERVAL.load(Relaxed);
        if every != 0 {
            c.since_report += bytes as u64;
            if c.since_report >= every {
                c.since_report = 0;
                REPORT_DUE.fetch_or(REPORT_INTERVAL, Relaxed);
            }
        }
        let due = c.since_peak >= PEAK_INTERVAL as u64;
        if due {
            c.since_peak = 0;
        }
        self.counters.set(c);
        // allocated - deallocated is at most `bound`: when that is no
        // higher than the peak, the sample could not raise it.
        let bound = c
            .slow_alloc
            .wrapping_sub(c.slow_dalloc)
            .wrapping_add(c.stacked);
        if due && bound as i64 - c.net_at_reset > c.peak {
            self.note_peak();
        } else if due {
            debug_assert!({
                let (a, d) = self.allocated();
                a.wrapping_sub(d) as i64 <= bound as i64
            });
        }
    }

    /// Counts `filled` bytes put on a stack by a fill and `flushed` bytes
    /// taken off one by a flush.
    #[inline(always)]
    fn note_stacked(&self, filled: usize, flushed: usize) {
        let mut c = self.counters.get();
        c.stacked = c
            .stacked
            .wrapping_add(filled as u64)
            .wrapping_sub(flushed as u64);
        self.counters.set(c);
    }

    /// Counts `bytes` freed without a stack.
    pub(crate) fn note_dalloc(&self, bytes: usize) {
        let mut c = self.counters.get();
        c.slow_dalloc = c.slow_dalloc.wrapping_add(bytes as u64);
        self.counters.set(c);
        self.publish();
    }

    /// Pointers to the published copies of (allocated, deallocated), kept
    /// up to date from now on: refreshed at every cache fill and full-stack
    /// free, every allocation and free outside the stacks, and every
    /// `thread.allocated` read. Between those, blocks served by the stacks
    /// are not counted yet: jemalloc's counters are exact at every call,
    /// and keeping them so would cost the fast path two instructions.
    pub(crate) fn published_counters(&self) -> (*mut u64, *mut u64) {
        self.publishing.set(true);
        self.publish();
        (self.published[0].as_ptr(), self.published[1].as_ptr())
    }

    /// Refreshes the published counters, if a program asked for them.
    #[inline]
    pub(crate) fn publish(&self) {
        if self.publishing.get() {
            let (a, d) = self.allocated();
            self.published[0].set(a);
            self.published[1].set(d);
        }
    }

    /// Bytes the thread allocated and freed so far (`thread.allocated`,
    /// `thread.deallocated`): exact. Per class, blocks pushed = blocks on
    /// the stack now - filled + popped + flushed.
    pub(crate) fn allocated(&self) -> (u64, u64) {
        let c = self.counters.get();
        let (mut a, mut d) = (c.slow_alloc, c.slow_dalloc);
        // Stacks past `nbins` are never used.
        let n = self.nbins.get();
        for (i, (b, ctl)) in self.bins[..n].iter().zip(&self.ctl[..n]).enumerate() {
            let ctl = ctl.get();
            let pops = ctl.pop_base.wrapping_sub(b.left.get());
            let pushes = (b.count() as u64)
                .wrapping_add(pops)
                .wrapping_add(ctl.nflush)
                .wrapping_sub(ctl.nfill);
            let size = sc::index_to_size(i) as u64;
            a = a.wrapping_add(pops.wrapping_mul(size));
            d = d.wrapping_add(pushes.wrapping_mul(size));
        }
        (a, d)
    }

    /// Records the current allocated - deallocated for the peak (at GC
    /// steps and reads: the peak is sampled, as jemalloc's is).
    #[inline(never)]
    fn note_peak(&self) {
        // allocated - deallocated is the bytes that left the arena (slow
        // paths and fills) less those that came back (slow paths and
        // flushes) and those still on the stacks: one sum of the stacks'
        // bytes, where `allocated` works out both totals class by class.
        let mut c = self.counters.get();
        let net = c
            .slow_alloc
            .wrapping_sub(c.slow_dalloc)
            .wrapping_add(c.stacked)
            .wrapping_sub(self.cached().1 as u64);
        debug_assert_eq!(net, {
            let (a, d) = self.allocated();
            a.wrapping_sub(d)
        });
        c.peak = c.peak.max(net as i64 - c.net_at_reset);
        self.counters.set(c);
    }

    /// `thread.peak.read`: the highest allocated - deallocated seen since
    /// the last reset (sampled every 64 KiB allocated and at this read).
    pub(crate) fn peak(&self) -> u64 {
        self.note_peak();
        self.counters.get().peak.max(0) as u64
    }

    /// `thread.peak.reset`.
    pub(crate) fn reset_peak(&self) {
        let (a, d) = self.allocated();
        let mut c = self.counters.get();
        c.net_at_reset = a.wrapping_sub(d) as i64;
        c.peak = 0;
        self.counters.set(c);
    }

    /// Items cached in all classes, with their bytes (stats).
    pub(crate) fn cached(&self) -> (usize, usize) {
        let mut n = 0;
        let mut bytes = 0;
        for i in 0..self.nbins.get() {
            let c = self.bins[i].count();
            n += c;
            bytes += c * sc::index_to_size(i);
        }
        (n, bytes)
    }
}

/// Where the internal blocks of a cache filling from `arena` come from:
/// `arena`, unless it is a manual arena, whose reset would discard them
/// (then arena 0).
fn home(arena: &Arena) -> &Arena {
    match arena::get(0) {
        Some(a0) if !arena::is_auto(arena.ind) => a0,
        _ => arena,
    }
}

/// A cache set up to fill from `arena`, in an internal block of its own:
/// a thread's cache when caches are off the hit path. None when out of
/// memory. `register` as for `Tcache::setup`.
pub(crate) fn create_off_path(arena: &Arena, register: bool) -> Option<&'static Tcache> {
    let u = sc::geom().usable_size(core::mem::size_of::<Tcache>(), 64)?;
    let p = arena::alloc_internal(home(arena), u, 64) as *mut Tcache;
    if p.is_null() {
        return None;
    }
    // SAFETY: a fresh block of at least `size_of::<Tcache>()` bytes,
    // 64-aligned and ours alone; it stays allocated until
    // `retire_off_path`, which its user calls last.
    let c = unsafe {
        p.write(Tcache::new());
        &*p
    };
    if !c.setup(arena, register) {
        arena::dalloc_internal(p.cast());
        return None;
    }
    Some(c)
}

/// Flushes and destroys a cache from `create_off_path` and frees its
/// block.
///
/// # Safety
/// `c` came from `create_off_path` and is not used again.
pub(crate) unsafe fn retire_off_path(c: &Tcache) {
    c.destroy();
    arena::dalloc_internal(c as *const Tcache as *mut u8);
}

/// Explicit caches (jemalloc's `tcache.create`), used by any thread through
/// `MALLOCX_TCACHE(tc)`: ids `0..NEXPLICIT` (the 12 bits of the flag, less
/// "default" and "none"). Each lives in base memory for good once created
/// (a destroyed one is reused by a later `create`) and is used under its
/// own lock, so concurrent use cannot corrupt it (jemalloc leaves that
/// undefined); its lock is taken before any bin or page lock.
pub(crate) const NEXPLICIT: usize = (1 << 12) - 2;

struct Explicit {
    /// Whether the cache is created (not destroyed); guards `cache`.
    live: Mutex<bool>,
    cache: Tcache,
}

// SAFETY: `cache` (Cells, no thread affinity) is only touched by the
// holder of `live`'s lock.
unsafe impl Sync for Explicit {}

static EXPLICIT: [AtomicPtr<Explicit>; NEXPLICIT] =
    [const { AtomicPtr::new(ptr::null_mut()) }; NEXPLICIT];
/// Serialises `create` and `destroy`.
static EXPLICIT_LOCK: Mutex<()> = Mutex::new(());

/// The explicit caches' lock profile (`stats.mutexes.tcaches`, rjem's);
/// `reset` clears it.
pub(crate) fn lock_stats(reset: bool) -> crate::sync::LockStats {
    EXPLICIT_LOCK.profile(reset)
}

fn explicit(tc: usize) -> Option<&'static Explicit> {
    let p = EXPLICIT
        .get(tc)?
        .load(core::sync::atomic::Ordering::Acquire);
    // SAFETY: published records live in base memory forever.
    unsafe { p.as_ref() }
}

/// Creates an explicit cache whose stacks come from `arena`; its id, or
/// None when all ids are taken or memory ran out.
pub(crate) fn create_explicit(arena: &Arena) -> Option<usize> {
    let _g = EXPLICIT_LOCK.lock();
    let tc = (0..NEXPLICIT).find(|&i| explicit(i).is_none_or(|e| !*e.live.lock()))?;
    let e = match explicit(tc) {
        Some(e) => e,
        None => {
            let p = base::alloc(
                core::mem::size_of::<Explicit>(),
                64,
                base::Use::ExplicitTcaches,
            ) as *mut Explicit;
            // SAFETY: zeroed base memory is a valid `Explicit` (an unlocked
            // lock holding false, an all-zero `Tcache`); it lives forever.
            let e = unsafe { p.as_ref()? };
            EXPLICIT[tc].store(p, core::sync::atomic::Ordering::Release);
            e
        }
    };
    let mut live = e.live.lock();
    // Used on slow paths only, where every allocation is counted anyway.
    if !e.cache.setup_with(arena, true, false) {
        return None;
    }
    *live = true;
    Some(tc)
}

/// Runs `f` on explicit cache `tc` under its lock; None if it does not
/// exist (never created, or destroyed).
pub(crate) fn with_explicit<R>(tc: usize, f: impl FnOnce(&Tcache) -> R) -> Option<R> {
    let e = explicit(tc)?;
    let live = e.live.lock();
    if !*live {
        return None;
    }
    Some(f(&e.cache))
}

/// Returns every block explicit cache `tc` holds (`tcache.flush`). False
/// if it does not exist.
pub(crate) fn flush_explicit(tc: usize) -> bool {
    with_explicit(tc, |c| {
        for i in 0..NCACHED_MAX {
            c.flush(i, usize::MAX);
        }
    })
    .is_some()
}

/// Flushes and retires explicit cache `tc` (`tcache.destroy`); its id may
/// be handed out again. False if it does not exist.
pub(crate) fn destroy_explicit(tc: usize) -> bool {
    let _g = EXPLICIT_LOCK.lock();
    let Some(e) = explicit(tc) else {
        return false;
    };
    let mut live = e.live.lock();
    if !*live {
        return false;
    }
    e.cache.destroy();
    *live = false;
    true
}

/// Fork: explicit caches' locks, before the arenas' (`init` calls these).
/// Every set-up cache (threads' and explicit ones), for `tcache_bytes`.
struct Registry {
    head: *const Tcache,
}

// SAFETY: the pointers are only followed under the registry's lock, to
// caches that unregister (under it) before they go away.
unsafe impl Send for Registry {}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { head: ptr::null() });

fn join(c: &Tcache) {
    let mut r = REGISTRY.lock();
    c.reg_prev.set(ptr::null());
    c.reg_next.set(r.head);
    // SAFETY: a registered cache is alive (it unregisters first).
    if let Some(h) = unsafe { r.head.as_ref() } {
        h.reg_prev.set(c);
    }
    r.head = c;
}

fn leave(c: &Tcache) {
    let mut r = REGISTRY.lock();
    let (p, n) = (c.reg_prev.get(), c.reg_next.get());
    // SAFETY: neighbours in the registry are alive, as above.
    unsafe {
        match p.as_ref() {
            Some(p) => p.reg_next.set(n),
            None => r.head = n,
        }
        if let Some(n) = n.as_ref() {
            n.reg_prev.set(p);
        }
    }
}

/// Bytes held by the caches filling from arena `ind` (`None`: all), as of
/// each class's last fill, flush or GC.
pub(crate) fn cached_bytes(ind: Option<usize>) -> usize {
    let r = REGISTRY.lock();
    let mut sum = 0;
    let mut c = r.head;
    // SAFETY: registered caches are alive while the lock is held.
    while let Some(t) = unsafe { c.as_ref() } {
        if ind.is_none_or(|i| t.arena_ind.load(Relaxed) == i + 1) {
            sum += t.bytes_on_stacks();
        }
        c = t.reg_next.get();
    }
    sum
}

pub(crate) fn fork_prepare() {
    EXPLICIT_LOCK.lock_raw();
    for tc in 0..NEXPLICIT {
        if let Some(e) = explicit(tc) {
            e.live.lock_raw();
        }
    }
    REGISTRY.lock_raw();
}

pub(crate) fn fork_parent() {
    for tc in 0..NEXPLICIT {
        if let Some(e) = explicit(tc) {
            // SAFETY: `fork_prepare` took this lock and holds no guard.
            unsafe { e.live.unlock_raw() };
        }
    }
    // SAFETY: as above.
    unsafe {
        EXPLICIT_LOCK.unlock_raw();
        REGISTRY.unlock_raw();
    }
}

pub(crate) fn fork_child() {
    for tc in 0..NEXPLICIT {
        if let Some(e) = explicit(tc) {
            // SAFETY: the child of a fork whose prepare handler held it.
            unsafe { e.live.reset_in_child() };
        }
    }
    // SAFETY: as above.
    unsafe {
        EXPLICIT_LOCK.reset_in_child();
        REGISTRY.reset_in_child();
    }
}

/// The process's free key: random, chosen once (`free_key`). A value no
/// program holds by chance: odd (never an aligned pointer), top bit set
/// (never a user-space address), 62 random bits.
static FREE_KEY: AtomicU64 = AtomicU64::new(0);

/// The free key, chosen at the first call (thread caches call it when
/// they are set up).
pub(crate) fn free_key() -> u64 {
    let k = FREE_KEY.load(Relaxed);
    if k != 0 {
        return k;
    }
    // Time, and where the loader put this library and the stack (ASLR),
    // mixed by splitmix64's finaliser.
    let here = 0u8;
    let mut z = os::now_ns()
        ^ (&FREE_KEY as *const AtomicU64 as u64).rotate_left(17)
        ^ (&here as *const u8 as u64).rotate_left(41);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let k = z | 1 << 63 | 1;
    // Whichever thread got there first wins.
    match FREE_KEY.compare_exchange(0, k, Relaxed, Relaxed) {
        Ok(_) => k,
        Err(other) => other,
    }
}

/// A block handed out without a cache may still start with the free key
/// (a cache wrote it before the block went back to its slab or extent):
/// clears it, so that its free does not look like a double free and
/// search the other threads' stacks (`on_other_stack`). Only a word that
/// holds the key is written (a fresh page is only read).
#[inline]
pub(crate) fn clear_stale_key(p: *mut u8) {
    // SAFETY: `p` is a block just allocated for the caller: at least 8
    // bytes, 8-aligned, not yet handed out.
    unsafe {
        if (p as *const u64).read() == free_key() {
            (p as *mut u64).write(0);
        }
    }
}

/// The low address bits that every block of cached class `ind` has
/// clear (`CacheBin::trusted_mask` with `prof:false`): at least the size's
/// largest power-of-two divisor, up to a page, for small classes (regions
/// start at multiples of their size from a page-aligned slab); the page,
/// or the cache line with `cache_oblivious`, for large ones.
fn align_mask(g: &Geometry, ind: usize) -> u16 {
    let size = sc::index_to_size(ind);
    let lg = if g.is_small(ind) {
        size.trailing_zeros().min(g.page.trailing_zeros())
    } else if crate::extent::large_pad() != 0 {
        crate::extent::CACHELINE.trailing_zeros()
    } else {
        g.page.trailing_zeros()
    };
    ((1usize << lg.min(16)) - 1) as u16
}

/// The `StartCheck` of cached class `ind`: small blocks start at
/// multiples of their size (in the low 32 address bits, `pages::Fit`),
/// large ones at pages, or at cache lines with `cache_oblivious`.
fn start_check(g: &Geometry, ind: usize) -> StartCheck {
    StartCheck::for_modulus(if g.is_small(ind) {
        sc::index_to_size(ind)
    } else if crate::extent::large_pad() != 0 {
        crate::extent::CACHELINE
    } else {
        g.page
    })
}

/// Whether `p`, freed as a block of cached class `ind` but not aligned as
/// those are, is a block's start after all (with the wrong class, which
/// `lookup_class` reports). Reported if not (`os::misuse`).
#[cold]
#[inline(never)]
fn block_start(ind: usize, p: *mut u8) -> bool {
    let Some(e) = emap::lookup_class(p, ind) else {
        return false;
    };
    let start = is_block_start(e, ind, p);
    if !start {
        os::misuse(
            format_args!(
                "invalid free: pointer inside a block, not its start ({} bytes class)",
                sc::index_to_size(ind)
            ),
            p as usize,
        );
    }
    start
}

/// Whether `p`, in extent `e` of class `ind`, is where one of its blocks
/// starts.
fn is_block_start(e: crate::extent::ERef, ind: usize, p: *mut u8) -> bool {
    let g = sc::geom();
    if g.is_small(ind) {
        let info = &g.bins[ind];
        let off = (p as usize).wrapping_sub(e.addr());
        off < info.nregs * info.size && info.region_of(off).1
    } else {
        e.block() == p as usize
    }
}

/// Whether `p` is on another cache's stack of class `ind` (not `mine`):
/// a double free across threads. Every registered cache's stack of that
/// class is read under the registry's lock (caches leave it before their
/// stacks go away), slot by slot with relaxed atomic loads: the owners go
/// on pushing and popping, so a view may be stale. The owners' own writes
/// are plain stores, so these reads race with them in the Rust memory
/// model's terms (on the targets rjem supports a relaxed load is the same
/// instruction as a plain one). That is why this runs only for a block
/// that starts with the free key and is neither on this thread's stack
/// nor free in its slab: with uncached allocations clearing a stale key
/// (`clear_stale_key`), such a free is a double free, which is already
/// undefined behaviour in the program, or program data equal to the
/// 62-bit random key.
fn on_other_stack(mine: *const Tcache, ind: usize, p: *mut u8) -> bool {
    let r = REGISTRY.lock();
    let mut c = r.head;
    // SAFETY: registered caches are alive while the lock is held.
    while let Some(t) = unsafe { c.as_ref() } {
        c = t.reg_next.get();
        if ptr::eq(t, mine) || ind >= NCACHED.load(Relaxed).min(t.bins.len()) {
            continue;
        }
        let b = &t.bins[ind];
        // One load of head: the items are [h, empty), at most the stack's
        // slots (fixed at set-up) even if head moved meanwhile.
        let h = b.head.load(Relaxed);
        let n = ((b.empty.load(Relaxed).wrapping_sub(lo(h)) / 8) as usize)
            .min(Nslots::current().slots(sc::geom(), ind));
        for i in 0..n {
            // SAFETY: slots [head, head + count) lie in the cache's stack
            // storage, alive while it is registered; an atomic load of a
            // pointer-sized, aligned slot.
            let q = unsafe { AtomicPtr::from_ptr(h.add(i)).load(Relaxed) };
            if q == p {
                return true;
            }
        }
    }
    false
}

/// Block `p` of class `ind`, given to entry point `func` as live, starts
/// with the free key: reported (`os::misuse`), and true returned, if it
/// is on `t`'s stack of that class (the calling thread's), free in its slab, or
/// on another thread's stack; otherwise the key was a coincidence (or a
/// block a cache flushed and an uncached path handed out) and false is
/// returned.
#[cold]
#[inline(never)]
fn report_if_freed(t: &Tcache, ind: usize, p: *mut u8, func: &str) -> bool {
    let freed = t.bins[ind].holds(p)
        || (sc::geom().is_small(ind)
            && emap::lookup(p as usize)
                .extent()
                .and_then(|e| arena::get(e.arena()).map(|a| a.small_is_free(e, ind, p)))
                .unwrap_or(false))
        || on_other_stack(t, ind, p);
    if freed {
        os::misuse(
            format_args!(
                "{}: {func} of a block already freed ({} bytes class)",
                if func == "free" {
                    "double free"
                } else {
                    "use after free"
                },
                sc::index_to_size(ind)
            ),
            p as usize,
        );
    }
    freed
}

/// Returns cached blocks of class `ind` to their owning arenas: one lock
/// acquisition per (arena, class) group.
fn flush_items(ind: usize, items: &mut [*mut u8]) {
    if !sc::geom().is_small(ind) {
        return flush_large(ind, items);
    }
    // The arena of the first block takes its blocks and moves the others
    // to the front, for the next round.
    let mut rest = items.len();
    while rest > 0 {
        let Some(e) = emap::lookup_class(items[0], ind) else {
            // Reported; with `abort:false` the block is left alone.
            items.copy_within(1..rest, 0);
            rest -= 1;
            continue;
        };
        let Some(a) = arena::get(e.arena()) else {
            os::fatal("cached block of an unknown arena", items[0] as usize)
        };
        rest = a.small_dalloc_batch(ind, &mut items[..rest]);
    }
}

/// Returns cached large blocks of class `ind` to their owning arenas,
/// counting one flush per arena.
fn flush_large(ind: usize, items: &mut [*mut u8]) {
    let mut rest = items.len();
    while rest > 0 {
        let Some(first) = emap::lookup_class(items[0], ind) else {
            // Reported; with `abort:false` the block is left alone.
            items.copy_within(1..rest, 0);
            rest -= 1;
            continue;
        };
        let owner = first.arena();
        let Some(a) = arena::get(owner) else {
            os::fatal("cached block of an unknown arena", items[0] as usize)
        };
        a.large.nflushes.fetch_add(1, Relaxed);
        let mut kept = 0;
        for i in 0..rest {
            let p = items[i];
            let Some(e) = emap::lookup_class(p, ind) else {
                continue;
            };
            if e.block() != p as usize {
                os::misuse(
                    format_args!(
                        "invalid free: pointer inside a large allocation, not its start ({} bytes class)",
                        sc::index_to_size(ind)
                    ),
                    p as usize,
                );
                continue;
            }
            if e.arena() == owner {
                a.large_dalloc(e);
            } else {
                items[kept] = p;
                kept += 1;
            }
        }
        rest = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_as_jemalloc() {
        let g = Geometry::new(4096);
        let mut n = Nslots {
            small_min: 20,
            small_max: 200,
            lg_mul: 1,
            large: 20,
        };
        assert_eq!(n.slots(&g, 0), 200); // 8 bytes: 512 regions
        assert_eq!(n.slots(&g, 8), 64); // 128 bytes: 32 regions
        assert_eq!(n.slots(&g, 28), 20); // 4096: 1 region
        assert_eq!(n.slots(&g, 36), 20); // 16 KiB, large
                                         // Odd bounds are made even, inward for the maximum; the limit
                                         // keeps a stack under 64 KiB.
        n = Nslots {
            small_min: 7,
            small_max: 101,
            lg_mul: -3,
            large: 9999,
        };
        assert_eq!(n.slots(&g, 0), 64); // 512 >> 3
        assert_eq!(n.slots(&g, 8), 8); // 32 >> 3 = 4, below the minimum
        assert_eq!(n.slots(&g, 36), 8190);
        n.lg_mul = 3;
        assert_eq!(n.slots(&g, 0), 100); // 4096, above the maximum
        assert_eq!(n.slots(&g, 28), 8); // 1 << 3
        n.small_min = 300; // above the maximum: the maximum wins
        assert_eq!(n.slots(&g, 28), 100);
    }

    #[test]
    fn full_stacks_keep_capacity_shifted_by_the_divisor() {
        // Defaults (div 1): half goes back.
        assert_eq!(flush_count(0, 200), 100);
        assert_eq!(flush_count(0, 2), 1);
    }

    #[test]
    fn bin_offsets_are_the_lookup_classes() {
        for s in 1..=sc::LOOKUP_MAX {
            let want = (sc::lookup_index(s) + 1) * core::mem::size_of::<CacheBin>();
            assert_eq!(bin_offset(s), want, "size {s}");
        }
        assert_eq!(bin_offset(0), 0);
        let t = Tcache::new();
        // SAFETY: offset 0 is `before`.
        let b = unsafe { t.bin_at(0) };
        assert!(ptr::eq(b, &t.before));
        assert!(!b.push(b as *const CacheBin as *mut u8, 0) && b.pop().is_none());
        let t = Tcache::new();
        // SAFETY: an offset from the table.
        let b = unsafe { t.bin_at(bin_offset(4096)) };
        assert!(ptr::eq(b, &t.bins[sc::lookup_index(4096)]));
    }

    #[test]
    fn every_class_up_to_the_limit_fits() {
        assert_eq!(NCACHED_MAX, 73);
        assert_eq!(sc::index_to_size(NCACHED_MAX - 1), MAX_LIMIT);
        // The stacks span every offset a pointer-map entry gives, so that
        // `free` indexes them unchecked; the spare ones take nothing.
        use core::mem::{offset_of, size_of};
        let end = offset_of!(Tcache, spare)
            + size_of::<[CacheBin; emap::FIELD_VALUES - 1 - NCACHED_MAX]>();
        assert_eq!(end - offset_of!(Tcache, before), OFFSET_LIMIT);
        let t = Tcache::new();
        for off in (((NCACHED_MAX + 1) << LG_BIN)..OFFSET_LIMIT).step_by(1 << LG_BIN) {
            // SAFETY: below OFFSET_LIMIT, a multiple of the stacks' size.
            let b = unsafe { t.bin_at(off) };
            assert!(!b.push(b as *const CacheBin as *mut u8, 0) && b.pop().is_none());
        }
    }
}
