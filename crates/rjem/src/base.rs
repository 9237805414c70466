//! Base: the allocator's own metadata memory.
//!
//! Owns: blocks mapped from the OS and carved, bump-pointer style, into
//! metadata (arenas, extent records, slab bitmaps, pointer-map leaves are
//! mapped separately). Base memory is never freed; records that fall out of
//! use are recycled by their owners' free lists instead.
//!
//! Blocks are 2 MiB of address space (pages become resident as used). When
//! the OS refuses that (address-space limit, strict overcommit), smaller
//! blocks are tried, down to the request rounded up to a page, so metadata
//! degrades gracefully; the arenas give their free pages back to the OS
//! before an allocation fails (`arena::reclaim`), which lets base map again.
//!
//! Invariants: every byte handed out is zero on first hand-out (it comes from
//! fresh anonymous mappings); nothing here calls any other allocator.

use crate::os;
use crate::sync::Mutex;
use core::ffi::CStr;
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// Option `metadata_thp`: an index into `METADATA_THP_NAMES`. `always`
/// asks for transparent huge pages on every metadata block, `auto` on
/// every block after the first (small programs keep small metadata).
pub(crate) static OPT_METADATA_THP: AtomicU8 = AtomicU8::new(0);
pub(crate) static METADATA_THP_NAMES: &[&CStr] = &[c"disabled", c"auto", c"always"];

/// Size of each block mapped for metadata. Virtual: pages become resident
/// only as the bump pointer reaches them.
const BLOCK: usize = 2 << 20;

/// What a piece of metadata is for (`stats.metadata_detail.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    Arenas = 0,
    ExtentRecords = 1,
    SlabBitmaps = 2,
    ExplicitTcaches = 3,
    /// The heap profiler's records (`prof`).
    Prof = 4,
}

const NUSES: usize = 5;

struct BaseInner {
    cur: usize,
    end: usize,
    /// Bytes handed out, in total and by use.
    allocated: usize,
    by_use: [usize; NUSES],
    /// Bytes mapped for metadata blocks.
    mapped: usize,
}

static BASE: Mutex<BaseInner> = Mutex::new(BaseInner {
    cur: 0,
    end: 0,
    allocated: 0,
    by_use: [0; NUSES],
    mapped: 0,
});

/// Bytes handed out for `u`.
pub(crate) fn allocated_for(u: Use) -> usize {
    BASE.lock().by_use[u as usize]
}

/// Allocates `size` zeroed bytes aligned to `align` (a power of two, at most
/// a page) for use `u`. Returns null when the OS refuses memory.
pub(crate) fn alloc(size: usize, align: usize, u: Use) -> *mut u8 {
    let mut b = BASE.lock();
    let mut start = os::align_up(b.cur, align).unwrap_or(usize::MAX);
    if b.cur == 0 || start.saturating_add(size) > b.end {
        let Some((p, len)) = map_block(size) else {
            return core::ptr::null_mut();
        };
        let huge = match OPT_METADATA_THP.load(Relaxed) {
            2 => true,
            1 => b.mapped > 0,
            _ => false,
        };
        if huge {
            os::advise_huge(p, len, true);
        }
        b.cur = p as usize;
        b.end = p as usize + len;
        b.mapped += len;
        start = b.cur;
    }
    b.cur = start + size;
    b.allocated += size;
    b.by_use[u as usize] += size;
    start as *mut u8
}

/// Maps a block for a request of `size` bytes: 2 MiB (or `size` rounded
/// up to 2 MiB), else the largest of halving sizes the OS grants, down to
/// `size` rounded up to a page. Returns it with its length.
fn map_block(size: usize) -> Option<(*mut u8, usize)> {
    let min = os::align_up(size.max(1), os::page_size())?;
    let mut len = os::align_up(size.max(BLOCK), BLOCK)?;
    loop {
        let p = os::map(len);
        if !p.is_null() {
            return Some((p, len));
        }
        if len == min {
            return None;
        }
        len = os::align_up(len / 2, os::page_size())?.max(min);
    }
}

/// The base lock's profile (`stats.mutexes.base`); `reset` clears it.
pub(crate) fn lock_stats(reset: bool) -> crate::sync::LockStats {
    BASE.profile(reset)
}

/// (allocated, mapped) bytes of metadata.
pub(crate) fn stats() -> (usize, usize) {
    let b = BASE.lock();
    (b.allocated, b.mapped)
}

pub(crate) fn fork_prepare() {
    BASE.lock_raw();
}
pub(crate) fn fork_parent() {
    // SAFETY: `fork_prepare` took the lock and holds no guard.
    unsafe { BASE.unlock_raw() };
}
pub(crate) fn fork_child() {
    // SAFETY: the child of a fork whose prepare handler held the lock.
    unsafe { BASE.reset_in_child() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_distinct() {
        let a = alloc(24, 8, Use::Arenas);
        let b = alloc(100, 64, Use::Arenas);
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(b as usize % 64, 0);
        assert!(b as usize >= a as usize + 24 || (b as usize) + 100 <= a as usize);
        // SAFETY: fresh base memory, 100 bytes.
        unsafe {
            for i in 0..100 {
                assert_eq!(*b.add(i), 0);
            }
        }
        let big = alloc(3 << 20, 4096, Use::Arenas);
        assert!(!big.is_null());
        let (allocated, mapped) = stats();
        assert!(allocated >= 24 + 100 + (3 << 20) && mapped >= allocated);
    }
}
