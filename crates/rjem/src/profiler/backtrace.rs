//! Stack capture for sampled allocations, inside the allocator.
//!
//! Uses the system unwinder (`_Unwind_Backtrace` from libgcc_s, as
//! jemalloc's `prof-libgcc` does), which reads the DWARF call-frame
//! information every ELF object carries for exception handling: it works
//! in Rust release builds and C programs built without frame pointers,
//! where walking frame pointers would stop or go astray. Its limits: a
//! frame without unwind information (hand-written assembly, some JIT code)
//! ends the stack there; at most `MAX_DEPTH` frames are kept (jemalloc's
//! `PROF_BT_MAX`); each capture costs a few microseconds (once per sample,
//! 512 KiB of allocation by default).
//!
//! It never allocates through rjem: with glibc 2.35+ libgcc finds unwind
//! tables with `_dl_find_object` (no lock, no allocation), older ones
//! with `dl_iterate_phdr` (the loader's lock, no allocation). libgcc does
//! allocate to sort the tables of objects registered by hand
//! (`__register_frame`, JITs): the caller marks the thread busy while
//! capturing, so such a nested allocation is not sampled and cannot
//! recurse; it takes no rjem lock, so it cannot deadlock on one either.
//! Nothing here holds a lock across a fork, and capture uses only the
//! calling thread's stack.
//!
//! Frames inside rjem are dropped so that a stack starts at the caller of
//! the allocation function. When rjem is a shared library (`librjem`,
//! `LD_PRELOAD`), those are the frames whose address lies in its own
//! object: exact. When rjem is linked into the program (a Rust program),
//! the frames up to and including the outermost one whose function is the
//! entry point that asked for the capture are dropped; the front's few
//! frames above it (the global allocator's shim, `__rg_alloc`) remain, and
//! the tools hide them by name.

use core::ffi::c_void;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};

/// Most frames kept per stack (jemalloc's `PROF_BT_MAX`).
pub(crate) const MAX_DEPTH: usize = 128;

#[repr(C)]
struct UnwindContext {
    _opaque: [u8; 0],
}

const URC_NO_REASON: i32 = 0;
const URC_NORMAL_STOP: i32 = 4;

type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> i32;

#[link(name = "gcc_s")]
extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetRegionStart(ctx: *mut UnwindContext) -> usize;
}

/// Where rjem's own code is: 0 unknown, 1 being found, 2 known.
static OWN_STATE: AtomicU8 = AtomicU8::new(0);
/// rjem's executable segment when it is a shared library ([lo, hi)); both
/// 0 when it is linked into the main program.
static OWN_LO: AtomicUsize = AtomicUsize::new(0);
static OWN_HI: AtomicUsize = AtomicUsize::new(0);

struct Walk<'a> {
    pcs: &'a mut [usize; MAX_DEPTH],
    starts: &'a mut [usize; MAX_DEPTH],
    n: usize,
    own: (usize, usize),
    /// Frames seen before the first kept one (shared-library mode).
    inside: bool,
}

extern "C" fn step(ctx: *mut UnwindContext, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Walk` `capture` passed, alive for the walk.
    let w = unsafe { &mut *arg.cast::<Walk>() };
    // SAFETY: ctx is the unwinder's context for the current frame.
    let (ip, start) = unsafe { (_Unwind_GetIP(ctx), _Unwind_GetRegionStart(ctx)) };
    if ip == 0 {
        return URC_NORMAL_STOP;
    }
    if w.inside {
        if (w.own.0..w.own.1).contains(&ip) {
            return URC_NO_REASON;
        }
        w.inside = false;
    }
    if w.n == MAX_DEPTH {
        return URC_NORMAL_STOP;
    }
    w.pcs[w.n] = ip;
    w.starts[w.n] = start;
    w.n += 1;
    URC_NO_REASON
}

/// Captures the calling thread's stack into `pcs` (return addresses,
/// innermost first) without rjem's frames; returns how many. `entry` is
/// the function that asked (see the module comment).
#[inline(never)]
pub(crate) fn capture(pcs: &mut [usize; MAX_DEPTH], entry: usize) -> usize {
    let own = own_code();
    let mut starts = [0usize; MAX_DEPTH];
    let mut w = Walk {
        pcs,
        starts: &mut starts,
        n: 0,
        own,
        inside: own.1 != 0,
    };
    // SAFETY: `step` follows the unwinder's callback contract and only
    // touches `w`, which outlives the call.
    unsafe { _Unwind_Backtrace(step, (&mut w as *mut Walk).cast()) };
    let n = w.n;
    if own.1 != 0 {
        return n;
    }
    // Linked into the program: drop through the outermost frame of
    // `entry` (if it is not there, keep everything: better too much).
    let Some(cut) = (0..n).rev().find(|&i| starts[i] == entry) else {
        return n;
    };
    pcs.copy_within(cut + 1..n, 0);
    n - cut - 1
}

/// rjem's own executable segment if it is a shared library, else (0, 0).
fn own_code() -> (usize, usize) {
    if OWN_STATE.load(core::sync::atomic::Ordering::Acquire) != 2 {
        find_own_code();
    }
    (OWN_LO.load(Relaxed), OWN_HI.load(Relaxed))
}

#[cold]
fn find_own_code() {
    if OWN_STATE
        .compare_exchange(0, 1, core::sync::atomic::Ordering::Acquire, Relaxed)
        .is_err()
    {
        // Another thread is at it: capture without skipping this time.
        return;
    }
    let mut found = Found {
        target: capture as *const () as usize,
        range: (0, 0),
        main: false,
    };
    // SAFETY: the callback only reads the headers the loader passes.
    unsafe { libc::dl_iterate_phdr(Some(phdr_cb), (&mut found as *mut Found).cast()) };
    if !found.main {
        OWN_LO.store(found.range.0, Relaxed);
        OWN_HI.store(found.range.1, Relaxed);
    }
    OWN_STATE.store(2, core::sync::atomic::Ordering::Release);
}

struct Found {
    target: usize,
    range: (usize, usize),
    main: bool,
}

unsafe extern "C" fn phdr_cb(info: *mut libc::dl_phdr_info, _size: usize, arg: *mut c_void) -> i32 {
    // SAFETY: the loader passes a valid header; `arg` is our `Found`.
    let (info, f) = unsafe { (&*info, &mut *arg.cast::<Found>()) };
    // SAFETY: dlpi_phdr points to dlpi_phnum headers.
    let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    for ph in phdrs {
        if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_X == 0 {
            continue;
        }
        let lo = info.dlpi_addr as usize + ph.p_vaddr as usize;
        let hi = lo + ph.p_memsz as usize;
        if (lo..hi).contains(&f.target) {
            f.range = (lo, hi);
            // The main program is listed first, with an empty name.
            // SAFETY: dlpi_name is null or a NUL-terminated string.
            f.main = info.dlpi_name.is_null() || unsafe { *info.dlpi_name } == 0;
            return 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn leaf(pcs: &mut [usize; MAX_DEPTH]) -> usize {
        // Not a tail call: `leaf` keeps its frame, as the real callers do.
        let n = capture(pcs, leaf as *const () as usize);
        core::hint::black_box(n)
    }

    #[test]
    // Kept out of line: the harness's closure would otherwise hold the
    // return address (optimised builds).
    #[inline(never)]
    fn captures_the_callers() {
        let mut pcs = [0; MAX_DEPTH];
        let n = leaf(&mut pcs);
        // This test function and the test harness's frames remain.
        assert!(n >= 2, "{n}");
        let here = captures_the_callers as *const () as usize;
        // The innermost kept frame is a return address in this function
        // (a test function is a few KiB at most).
        assert!(
            pcs[0] > here && pcs[0] < here + 16384,
            "{:#x} vs {here:#x}",
            pcs[0]
        );
    }
}
