//! librjem: rjem behind the C ABI.
//!
//! Owns: the exported symbols only (the malloc family, jemalloc's
//! non-standard API with its binary flag encoding, C23 sized frees; the C++
//! operators live in `cxx.cpp`), `errno` and flag decoding. No allocation
//! logic lives here: every function forwards to `rjem::api`.
//!
//! Semantics (jemalloc 5.3's where C implementations differ): `malloc(0)`
//! returns a unique pointer; `realloc(p, 0)` frees `p` and returns NULL
//! (`zero_realloc:free`); impossible sizes give NULL with `errno = ENOMEM`;
//! bad alignments give `EINVAL`; `sdallocx`/`free_sized` verify the size
//! against the pointer map and abort with a message on a mismatch.
//!
//! Panics cannot unwind out of these functions: Rust aborts at an
//! `extern "C"` boundary, and release builds use `panic = "abort"`.

#![allow(clippy::missing_safety_doc)]

use core::ffi::{c_int, c_void};
use core::ptr;
use rjem_core::api;
use rjem_core::arena;
use rjem_core::os;

mod cxx;

// Rust code inside this library (there is little) uses rjem too, so nothing
// here can call back into `malloc` while rjem holds a lock.
#[global_allocator]
static GLOBAL: rjem_core::Rjem = rjem_core::Rjem;

// jemalloc 5.3's flag encoding.
const MALLOCX_LG_ALIGN_MASK: c_int = 0x3f;
const MALLOCX_ZERO: c_int = 0x40;
const TCACHE_SHIFT: u32 = 8;
const TCACHE_MASK: c_int = 0xfff << TCACHE_SHIFT;
const ARENA_SHIFT: u32 = 20;

/// A decoded `flags` argument.
#[derive(Clone, Copy)]
struct Flags {
    align: usize,
    zero: bool,
    /// Bypass the thread cache (MALLOCX_TCACHE_NONE, an explicit tcache, or
    /// an explicit arena, so that placement is exactly what was asked).
    no_cache: bool,
    /// Explicit arena index.
    arena: Option<usize>,
}

impl Flags {
    #[inline(always)]
    fn decode(flags: c_int) -> Flags {
        let lg = flags & MALLOCX_LG_ALIGN_MASK;
        let tc = (flags & TCACHE_MASK) >> TCACHE_SHIFT;
        let a = (flags as u32) >> ARENA_SHIFT;
        Flags {
            align: if lg == 0 { 1 } else { 1usize << lg },
            zero: flags & MALLOCX_ZERO != 0,
            no_cache: tc != 0 || a != 0,
            arena: if a == 0 { None } else { Some(a as usize - 1) },
        }
    }
}

#[cold]
fn enomem() -> *mut c_void {
    os::set_errno(libc::ENOMEM);
    ptr::null_mut()
}

#[inline(always)]
fn or_enomem(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        enomem()
    } else {
        p.cast()
    }
}

// ---- the standard family ----

#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // With alignment 1 the rounded size is the size itself.
    match api::cache_alloc(size) {
        Some(p) => p.cast(),
        None => malloc_slow(size),
    }
}

#[cold]
#[inline(never)]
fn malloc_slow(size: usize) -> *mut c_void {
    or_enomem(api::alloc_slow(size, 1, false))
}

#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: the C contract: p is null or a live allocation.
    unsafe { api::free(p.cast()) }
}

#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => or_enomem(api::alloc_slow(total, 1, true)),
        None => enomem(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        // SAFETY: plain malloc.
        return unsafe { malloc(size) };
    }
    if size == 0 {
        // jemalloc 5.3's default (zero_realloc:free).
        // SAFETY: p is live per the C contract.
        unsafe { api::free(p.cast()) };
        return ptr::null_mut();
    }
    // SAFETY: p is live per the C contract.
    or_enomem(unsafe { api::realloc(p.cast(), size, 1, false) })
}

#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(p, total) },
        None => enomem(),
    }
}

/// Aligned allocation shared by the C11/POSIX/obsolete variants.
fn aligned(align: usize, size: usize) -> *mut u8 {
    api::alloc_slow(size, align, false)
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align < core::mem::size_of::<*mut c_void>() {
        return libc::EINVAL;
    }
    let p = aligned(align, size);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: out is a valid out-pointer per the POSIX contract.
    unsafe { *out = p.cast() };
    0
}

#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    or_enomem(aligned(align, size))
}

#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { aligned_alloc(align, size) }
}

#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    or_enomem(aligned(os::page_size(), size))
}

#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = os::page_size();
    match size.max(1).checked_add(page - 1) {
        Some(s) => or_enomem(aligned(page, s & !(page - 1))),
        None => enomem(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: p is live per the contract.
    unsafe { api::usable_size(p.cast()) }
}

/// C23 `free_sized`: like `sdallocx(p, size, 0)`.
#[no_mangle]
pub unsafe extern "C" fn free_sized(p: *mut c_void, size: usize) {
    if !p.is_null() {
        // SAFETY: forwarded contract.
        unsafe { sized(p, size, 1, false) }
    }
}

/// C23 `free_aligned_sized`.
#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    if !p.is_null() {
        // SAFETY: forwarded contract.
        unsafe { sized(p, size, align.max(1), false) }
    }
}

// ---- jemalloc's non-standard API ----

fn alloc_flags(size: usize, f: Flags) -> *mut u8 {
    if !f.align.is_power_of_two() {
        return ptr::null_mut();
    }
    match f.arena {
        Some(a) => match arena::get_or_create(a) {
            Some(a) => api::alloc_in_arena(a, size, f.align, f.zero),
            None => ptr::null_mut(),
        },
        None if f.no_cache => api::alloc_uncached(size, f.align, f.zero),
        None => api::alloc(size, f.align, f.zero),
    }
}

#[no_mangle]
pub unsafe extern "C" fn mallocx(size: usize, flags: c_int) -> *mut c_void {
    if flags == 0 {
        if let Some(p) = api::cache_alloc(size) {
            return p.cast();
        }
    }
    alloc_flags(size, Flags::decode(flags)).cast()
}

#[no_mangle]
pub unsafe extern "C" fn rallocx(p: *mut c_void, size: usize, flags: c_int) -> *mut c_void {
    let f = Flags::decode(flags);
    if f.arena.is_some() || f.no_cache {
        // Move into the requested placement unless it already fits in place.
        // SAFETY: p is live per the contract.
        let ent = unsafe { api::entry(p.cast()) };
        if let Some(q) = api::resize_in_place(p.cast(), ent, size, f.align, f.zero) {
            return q.cast();
        }
        let q = alloc_flags(size, f);
        if q.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: both live and distinct.
        unsafe {
            let old = api::usable_size(p.cast());
            ptr::copy_nonoverlapping(p.cast::<u8>(), q, old.min(size));
            api::free(p.cast());
        }
        return q.cast();
    }
    // SAFETY: p is live per the contract.
    unsafe { api::realloc(p.cast(), size, f.align, f.zero).cast() }
}

#[no_mangle]
pub unsafe extern "C" fn xallocx(p: *mut c_void, size: usize, extra: usize, flags: c_int) -> usize {
    let f = Flags::decode(flags);
    // SAFETY: p is live per the contract.
    let ent = unsafe { api::entry(p.cast()) };
    // SAFETY: as above.
    let old = unsafe { api::usable_size(p.cast()) };
    let max = size.saturating_add(extra);
    // As jemalloc: a size already within [size, size + extra] is kept
    // unless it can grow towards size + extra; above it, shrink to
    // size + extra; below size, try size + extra, then size.
    if old != max {
        let grown = api::resize_in_place(p.cast(), ent, max, f.align, f.zero).is_some();
        if !grown && old < size {
            let _ = api::resize_in_place(p.cast(), ent, size, f.align, f.zero);
        }
    }
    // SAFETY: p is still live (it never moves here).
    unsafe { api::usable_size(p.cast()) }
}

#[no_mangle]
pub unsafe extern "C" fn sallocx(p: *const c_void, _flags: c_int) -> usize {
    // SAFETY: p is live per the contract.
    unsafe { api::usable_size(p.cast()) }
}

#[no_mangle]
pub unsafe extern "C" fn dallocx(p: *mut c_void, flags: c_int) {
    if Flags::decode(flags).no_cache {
        api::free_direct(p.cast());
    } else {
        // SAFETY: p is live per the contract.
        unsafe { api::free(p.cast()) }
    }
}

/// Sized free: the size (with the alignment) must map to the pointer's size
/// class; a mismatch is fatal, never a silently mis-filed block.
#[inline]
unsafe fn sized(p: *mut c_void, size: usize, align: usize, no_cache: bool) {
    // SAFETY: p is live per the contract (checked by the lookup).
    let ent = unsafe { api::entry(p.cast()) };
    let r = size.wrapping_add(align - 1) & !(align - 1);
    let ok = if r.wrapping_sub(1) < rjem_core::size_class::LOOKUP_MAX && r >= size {
        rjem_core::size_class::lookup_index(r) == ent.szind()
    } else {
        size_mismatch_slow(size, align, ent.szind())
    };
    if !ok {
        os::fatal(
            "sized free with a size that does not match the allocation",
            p as usize,
        );
    }
    if no_cache {
        api::free_direct(p.cast());
    } else {
        api::free_entry(p.cast(), ent);
    }
}

#[cold]
fn size_mismatch_slow(size: usize, align: usize, szind: usize) -> bool {
    let u = api::nallocx(size, align);
    u != 0 && rjem_core::size_class::size_to_index(u) == szind
}

#[no_mangle]
pub unsafe extern "C" fn sdallocx(p: *mut c_void, size: usize, flags: c_int) {
    let f = Flags::decode(flags);
    // SAFETY: forwarded contract.
    unsafe { sized(p, size, f.align, f.no_cache) }
}

#[no_mangle]
pub unsafe extern "C" fn nallocx(size: usize, flags: c_int) -> usize {
    api::nallocx(size, Flags::decode(flags).align)
}
