//! Extent hooks: jemalloc's `extent_hooks_t`, the functions an arena calls
//! to obtain, purge and give back the pages under it.
//!
//! Owns: the C layout of the table (`ExtentHooks`), rjem's default table
//! (`DEFAULT`, what `arena.<i>.extent_hooks` reads for an arena without
//! custom hooks, so a custom hook can delegate to it), and `Ehooks`, the
//! handle the page allocator calls through.
//!
//! Conventions are jemalloc's: `alloc` returns null on failure and sets
//! `*zero` and `*commit`; every other function returns `true` for failure
//! or refusal, and a missing (null) function counts as refusal. `dalloc`
//! may opt out (the pages are then kept as retained), `destroy` may not.
//!
//! Where rjem calls them (and where it differs):
//! - `alloc` when an arena grows (geometric steps with `retain:true`, the
//!   exact need otherwise), never with a fixed address.
//! - `purge_lazy` / `purge_forced` when decay or `arena.<i>.purge` purges
//!   free pages; a failed lazy purge falls back to a forced one.
//! - `dalloc` when `retain:false` gives purged pages back; `destroy` for
//!   every free extent when the arena is destroyed.
//! - `split` before an extent is cut in two and `merge` before two free or
//!   growing extents become one; a refusal leaves them as they are.
//! - `commit` only when `alloc` returned uncommitted memory: rjem keeps
//!   every extent committed and never calls `decommit`.
//! - Extents from different `alloc` calls are never merged, so `dalloc`
//!   and `destroy` always see a range inside one range `alloc` returned.
//!
//! Custom hooks run with the arena's page lock held: a hook may allocate
//! with rjem (e.g. `printf`), as long as the calling thread's own arena is
//! not the hooked arena.

use crate::os;
use core::ffi::{c_uint, c_void};
use core::ptr;

/// `extent_alloc_t`.
pub(crate) type AllocFn = unsafe extern "C" fn(
    *mut ExtentHooks,
    *mut c_void,
    usize,
    usize,
    *mut bool,
    *mut bool,
    c_uint,
) -> *mut c_void;
/// `extent_dalloc_t`.
pub(crate) type DallocFn =
    unsafe extern "C" fn(*mut ExtentHooks, *mut c_void, usize, bool, c_uint) -> bool;
/// `extent_destroy_t`.
pub(crate) type DestroyFn =
    unsafe extern "C" fn(*mut ExtentHooks, *mut c_void, usize, bool, c_uint);
/// `extent_commit_t`, `extent_decommit_t` and `extent_purge_t`: (hooks,
/// addr, size, offset, length, arena).
pub(crate) type RangeFn =
    unsafe extern "C" fn(*mut ExtentHooks, *mut c_void, usize, usize, usize, c_uint) -> bool;
/// `extent_split_t`: (hooks, addr, size, size_a, size_b, committed, arena).
pub(crate) type SplitFn =
    unsafe extern "C" fn(*mut ExtentHooks, *mut c_void, usize, usize, usize, bool, c_uint) -> bool;
/// `extent_merge_t`: (hooks, addr_a, size_a, addr_b, size_b, committed,
/// arena).
pub(crate) type MergeFn = unsafe extern "C" fn(
    *mut ExtentHooks,
    *mut c_void,
    usize,
    *mut c_void,
    usize,
    bool,
    c_uint,
) -> bool;

/// jemalloc's `extent_hooks_t`, field for field.
#[repr(C)]
pub(crate) struct ExtentHooks {
    pub(crate) alloc: Option<AllocFn>,
    pub(crate) dalloc: Option<DallocFn>,
    pub(crate) destroy: Option<DestroyFn>,
    pub(crate) commit: Option<RangeFn>,
    pub(crate) decommit: Option<RangeFn>,
    pub(crate) purge_lazy: Option<RangeFn>,
    pub(crate) purge_forced: Option<RangeFn>,
    pub(crate) split: Option<SplitFn>,
    pub(crate) merge: Option<MergeFn>,
}

// SAFETY: a table of function pointers, never written after construction.
unsafe impl Sync for ExtentHooks {}

/// rjem's own hooks, what an arena without custom hooks does: `mmap`,
/// `munmap`, `madvise`. Memory is always committed (commit and decommit
/// fail, as jemalloc's do on Linux); split and merge always succeed.
pub(crate) static DEFAULT: ExtentHooks = ExtentHooks {
    alloc: Some(default_alloc),
    dalloc: Some(default_dalloc),
    destroy: Some(default_destroy),
    commit: Some(default_refuse),
    decommit: Some(default_refuse),
    purge_lazy: Some(default_purge_lazy),
    purge_forced: Some(default_purge_forced),
    split: Some(default_split),
    merge: Some(default_merge),
};

unsafe extern "C" fn default_alloc(
    _: *mut ExtentHooks,
    new_addr: *mut c_void,
    size: usize,
    align: usize,
    zero: *mut bool,
    commit: *mut bool,
    _: c_uint,
) -> *mut c_void {
    let page = os::page_size();
    if size == 0 || !size.is_multiple_of(page) || !align.is_power_of_two() || zero.is_null() {
        return ptr::null_mut();
    }
    let p = os::map_aligned(size, align.max(page));
    if !new_addr.is_null() && p != new_addr.cast() {
        // rjem cannot place a mapping at a given address.
        if !p.is_null() {
            os::unmap(p, size);
        }
        return ptr::null_mut();
    }
    if !p.is_null() {
        // SAFETY: the caller passes valid out-parameters (jemalloc's
        // contract); `zero` was checked above, `commit` is checked here.
        unsafe {
            *zero = true;
            if !commit.is_null() {
                *commit = true;
            }
        }
    }
    p.cast()
}

unsafe extern "C" fn default_dalloc(
    _: *mut ExtentHooks,
    addr: *mut c_void,
    size: usize,
    _: bool,
    _: c_uint,
) -> bool {
    os::unmap(addr.cast(), size);
    false
}

unsafe extern "C" fn default_destroy(
    _: *mut ExtentHooks,
    addr: *mut c_void,
    size: usize,
    _: bool,
    _: c_uint,
) {
    os::unmap(addr.cast(), size);
}

unsafe extern "C" fn default_refuse(
    _: *mut ExtentHooks,
    _: *mut c_void,
    _: usize,
    _: usize,
    _: usize,
    _: c_uint,
) -> bool {
    true
}

unsafe extern "C" fn default_purge_lazy(
    _: *mut ExtentHooks,
    addr: *mut c_void,
    _: usize,
    offset: usize,
    length: usize,
    _: c_uint,
) -> bool {
    os::purge_lazy(addr.cast::<u8>().wrapping_add(offset), length) == os::Purged::Failed
}

unsafe extern "C" fn default_purge_forced(
    _: *mut ExtentHooks,
    addr: *mut c_void,
    _: usize,
    offset: usize,
    length: usize,
    _: c_uint,
) -> bool {
    !os::purge_forced(addr.cast::<u8>().wrapping_add(offset), length)
}

unsafe extern "C" fn default_split(
    _: *mut ExtentHooks,
    _: *mut c_void,
    _: usize,
    _: usize,
    _: usize,
    _: bool,
    _: c_uint,
) -> bool {
    false
}

unsafe extern "C" fn default_merge(
    _: *mut ExtentHooks,
    _: *mut c_void,
    _: usize,
    _: *mut c_void,
    _: usize,
    _: bool,
    _: c_uint,
) -> bool {
    false
}

/// What a lazy or forced purge through the hooks did.
pub(crate) use os::Purged;

/// The hooks of one arena. The default table is recognised and bypassed
/// (rjem calls the OS directly), so arenas without custom hooks pay one
/// compare per page-level operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Ehooks {
    table: *mut ExtentHooks,
    arena: c_uint,
}

// SAFETY: the table is only read, and `Ehooks::custom`'s contract requires
// it to be usable from any thread.
unsafe impl Send for Ehooks {}

impl Ehooks {
    /// The default hooks, for arena `arena`.
    pub(crate) const fn default_for(arena: usize) -> Ehooks {
        Ehooks {
            table: ptr::addr_of!(DEFAULT) as *mut ExtentHooks,
            arena: arena as c_uint,
        }
    }

    /// Custom hooks `table` for arena `arena`.
    ///
    /// # Safety
    /// `table` points to an `extent_hooks_t` that stays valid, with
    /// functions that keep jemalloc's contracts, for as long as the arena
    /// uses it, from any thread.
    pub(crate) const unsafe fn custom(table: *mut ExtentHooks, arena: usize) -> Ehooks {
        Ehooks {
            table,
            arena: arena as c_uint,
        }
    }

    /// The same table, for arena `arena`.
    pub(crate) const fn for_arena(self, arena: usize) -> Ehooks {
        Ehooks {
            table: self.table,
            arena: arena as c_uint,
        }
    }

    /// The table, as `arena.<i>.extent_hooks` reads it.
    pub(crate) fn table(self) -> *mut ExtentHooks {
        self.table
    }

    #[inline]
    pub(crate) fn is_default(self) -> bool {
        ptr::eq(self.table, &DEFAULT)
    }

    fn hooks(&self) -> &ExtentHooks {
        // SAFETY: `custom`'s contract (or the static default table).
        unsafe { &*self.table }
    }

    /// New memory of `size` bytes aligned to `align`: (address, zeroed).
    /// Checked before use: page-aligned, aligned as asked, inside the
    /// pointer map's address space and committed; otherwise it goes back.
    pub(crate) fn alloc(self, size: usize, align: usize) -> Option<(*mut u8, bool)> {
        if self.is_default() {
            let p = os::map_aligned(size, align);
            return (!p.is_null()).then_some((p, true));
        }
        let f = self.hooks().alloc?;
        let (mut zero, mut commit) = (false, true);
        // SAFETY: `custom`'s contract; the out-parameters are live locals.
        let p = unsafe {
            f(
                self.table,
                ptr::null_mut(),
                size,
                align,
                &mut zero,
                &mut commit,
                self.arena,
            )
        };
        if p.is_null() {
            return None;
        }
        let a = p as usize;
        let page = os::page_size();
        let fits = a.is_multiple_of(align.max(page))
            && a.checked_add(size)
                .is_some_and(|end| end <= 1usize << os::VA_BITS);
        if !fits || (!commit && !self.commit(p.cast(), size)) {
            os::write_stderr(b"<rjem>: extent hook alloc returned unusable memory (misaligned, out of range or not committed); ignored\n");
            if !self.dalloc(p.cast(), size) {
                self.destroy(p.cast(), size);
            }
            return None;
        }
        Some((p.cast(), zero))
    }

    fn commit(self, p: *mut u8, size: usize) -> bool {
        let Some(f) = self.hooks().commit else {
            return false;
        };
        // SAFETY: `custom`'s contract; the range came from this table.
        !unsafe { f(self.table, p.cast(), size, 0, size, self.arena) }
    }

    /// Gives `[p, p + size)` back; false if the hook opted out (the pages
    /// stay the arena's, as retained memory).
    pub(crate) fn dalloc(self, p: *mut u8, size: usize) -> bool {
        if self.is_default() {
            os::unmap(p, size);
            return true;
        }
        let Some(f) = self.hooks().dalloc else {
            return false;
        };
        // SAFETY: `custom`'s contract; the range came from this table.
        !unsafe { f(self.table, p.cast(), size, true, self.arena) }
    }

    /// Whether pages leaving use go back through `dalloc` rather than
    /// being kept as retained: with `retain:false` for the default hooks,
    /// whenever custom hooks have a `dalloc` (as jemalloc).
    pub(crate) fn gives_back(self, retain: bool) -> bool {
        if self.is_default() {
            !retain
        } else {
            self.hooks().dalloc.is_some()
        }
    }

    /// Destroys `[p, p + size)` unconditionally (arena destruction).
    pub(crate) fn destroy(self, p: *mut u8, size: usize) {
        if self.is_default() {
            os::unmap(p, size);
            return;
        }
        if let Some(f) = self.hooks().destroy {
            // SAFETY: `custom`'s contract; the range came from this table.
            unsafe { f(self.table, p.cast(), size, true, self.arena) };
        }
    }

    /// Lazy purge (pages may be reclaimed; contents undefined), falling
    /// back to a forced one.
    pub(crate) fn purge_lazy(self, p: *mut u8, size: usize) -> Purged {
        if self.is_default() {
            return os::purge_lazy(p, size);
        }
        if let Some(f) = self.hooks().purge_lazy {
            // SAFETY: `custom`'s contract; the range came from this table.
            if !unsafe { f(self.table, p.cast(), size, 0, size, self.arena) } {
                return Purged::Lazy;
            }
        }
        self.purge_forced(p, size)
    }

    /// Forced purge: the pages read back as zeros, or `Failed`.
    pub(crate) fn purge_forced(self, p: *mut u8, size: usize) -> Purged {
        let ok = if self.is_default() {
            os::purge_forced(p, size)
        } else if let Some(f) = self.hooks().purge_forced {
            // SAFETY: `custom`'s contract; the range came from this table.
            !unsafe { f(self.table, p.cast(), size, 0, size, self.arena) }
        } else {
            false
        };
        if ok {
            Purged::Zeroed
        } else {
            Purged::Failed
        }
    }

    /// Whether the extent at `addr` of `size_a + size_b` bytes may be cut
    /// after `size_a` bytes.
    #[inline]
    pub(crate) fn split(self, addr: usize, size_a: usize, size_b: usize) -> bool {
        if self.is_default() {
            return true;
        }
        let Some(f) = self.hooks().split else {
            return false;
        };
        let size = size_a + size_b;
        // SAFETY: `custom`'s contract; the range came from this table.
        !unsafe {
            f(
                self.table,
                addr as *mut c_void,
                size,
                size_a,
                size_b,
                true,
                self.arena,
            )
        }
    }

    /// Whether adjacent extents `[a, a + size_a)` and `[b, b + size_b)`
    /// may become one.
    #[inline]
    pub(crate) fn merge(self, a: usize, size_a: usize, b: usize, size_b: usize) -> bool {
        if self.is_default() {
            return true;
        }
        let Some(f) = self.hooks().merge else {
            return false;
        };
        // SAFETY: `custom`'s contract; the ranges came from this table.
        !unsafe {
            f(
                self.table,
                a as *mut c_void,
                size_a,
                b as *mut c_void,
                size_b,
                true,
                self.arena,
            )
        }
    }
}
