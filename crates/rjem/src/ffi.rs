//! The C library's entry layer: jemalloc 5.3's C API semantics over `api`
//! and `ctl`, for `crates/rjem-capi` to export under the C names. Hidden
//! from the documentation: Rust programs use [`crate::Rjem`] and
//! [`crate::ctl`].
//!
//! Owns: what C adds to an allocation request: `errno`, jemalloc's `flags`
//! encoding (`MALLOCX_*`), the argument rules of the standard functions
//! (`posix_memalign`, `calloc` overflow, `realloc(p, 0)`) and `mallctl`'s
//! byte-level protocol. Semantics are jemalloc 5.3's where C allocators
//! differ: `malloc(0)` returns a unique pointer; `realloc(p, 0)` frees `p`
//! and returns NULL (`zero_realloc:free`); impossible sizes give NULL with
//! `errno = ENOMEM`; bad alignments give `EINVAL`.
//!
//! Every function has the contract of the C function of the same name.

#![allow(clippy::missing_safety_doc)]

use crate::api::{self, Place};
use crate::ctl::{self, Mib, Type, Value};
use crate::os;
use crate::report;
use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr;

// jemalloc 5.3's flag encoding.
const MALLOCX_LG_ALIGN_MASK: c_int = 0x3f;
const MALLOCX_ZERO: c_int = 0x40;
const TCACHE_SHIFT: u32 = 8;
const TCACHE_MASK: c_int = 0xfff << TCACHE_SHIFT;
const ARENA_SHIFT: u32 = 20;

/// A decoded `flags` argument.
#[derive(Clone, Copy)]
struct Flags {
    /// A power of two (`MALLOCX_LG_ALIGN` takes 0 to 63).
    align: usize,
    zero: bool,
    place: Place,
}

impl Flags {
    #[inline(always)]
    fn decode(flags: c_int) -> Flags {
        let lg = flags & MALLOCX_LG_ALIGN_MASK;
        let tc = (flags & TCACHE_MASK) >> TCACHE_SHIFT;
        let a = (flags as u32) >> ARENA_SHIFT;
        Flags {
            align: 1 << lg,
            zero: flags & MALLOCX_ZERO != 0,
            // An explicit arena always bypasses the caches, so placement is
            // exactly what was asked. MALLOCX_TCACHE(tc) encodes tc + 2,
            // MALLOCX_TCACHE_NONE 1.
            place: match (a, tc) {
                (0, 0) => Place::Cached,
                (0, 1) => Place::Uncached,
                (0, tc) => Place::Tcache(tc as usize - 2),
                (a, _) => Place::Arena(a as usize - 1),
            },
        }
    }
}

#[cold]
fn enomem() -> *mut c_void {
    api::out_of_memory();
    os::set_errno(libc::ENOMEM);
    ptr::null_mut()
}

/// Null from a jemalloc-API function (which leaves `errno` alone).
#[cold]
fn null() -> *mut c_void {
    api::out_of_memory();
    ptr::null_mut()
}

/// Initialises rjem now instead of at the first allocation (librjem does
/// it when it is loaded, as jemalloc's constructor does), so that the
/// options are read, checked and confirmed (`confirm_conf`) even in a
/// program that never allocates. False if initialisation failed.
pub fn init() -> bool {
    crate::init::ensure()
}

/// With `experimental_infallible_new`, C++ `new` aborts instead of
/// throwing (the C++ shim asks before it throws).
pub fn infallible_new() -> bool {
    crate::conf::OPT_INFALLIBLE_NEW.load(core::sync::atomic::Ordering::Relaxed)
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

#[inline(always)]
pub fn malloc(size: usize) -> *mut c_void {
    // With alignment 1 the rounded size is the size itself.
    match api::cache_alloc(size) {
        Some(p) => p.cast(),
        None => malloc_slow(size),
    }
}

#[cold]
#[inline(never)]
fn malloc_slow(size: usize) -> *mut c_void {
    let p = api::alloc_slow(size, 1, false, Place::Cached);
    report::poll();
    or_enomem(p)
}

#[inline(always)]
pub unsafe fn free(p: *mut c_void) {
    // SAFETY: the C contract: p is null or a live allocation.
    unsafe { api::free(p.cast()) }
}

pub fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => {
            let p = api::alloc_slow(total, 1, true, Place::Cached);
            report::poll();
            or_enomem(p)
        }
        None => enomem(),
    }
}

pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: p is live per the C contract.
        return unsafe { api::realloc_zero(p.cast()) }.cast();
    }
    // SAFETY: p is live per the C contract.
    let q = unsafe { api::realloc(p.cast(), size, 1, false, Place::Cached) };
    report::poll();
    or_enomem(q)
}

pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(p, total) },
        None => enomem(),
    }
}

/// Aligned allocation shared by the C11/POSIX/obsolete variants.
fn aligned(align: usize, size: usize) -> *mut u8 {
    let p = api::alloc_slow(size, align, false, Place::Cached);
    report::poll();
    p
}

pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align < core::mem::size_of::<*mut c_void>() {
        return libc::EINVAL;
    }
    let p = aligned(align, size);
    if p.is_null() {
        api::out_of_memory();
        return libc::ENOMEM;
    }
    // SAFETY: out is a valid out-pointer per the POSIX contract.
    unsafe { *out = p.cast() };
    0
}

pub fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    or_enomem(aligned(align, size))
}

/// The obsolete `memalign`: `aligned_alloc` without its size rule.
pub fn memalign(align: usize, size: usize) -> *mut c_void {
    aligned_alloc(align, size)
}

pub fn valloc(size: usize) -> *mut c_void {
    or_enomem(aligned(os::page_size(), size))
}

pub fn pvalloc(size: usize) -> *mut c_void {
    let page = os::page_size();
    match os::align_up(size.max(1), page) {
        Some(s) => or_enomem(aligned(page, s)),
        None => enomem(),
    }
}

pub unsafe fn malloc_usable_size(p: *const c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: p is live per the contract.
    unsafe { api::usable_size(p.cast(), "malloc_usable_size") }
}

/// C23 `free_sized`: `free` with the size the block was allocated with.
pub unsafe fn free_sized(p: *mut c_void, size: usize) {
    if !p.is_null() {
        // SAFETY: forwarded contract.
        unsafe { api::sized_free::<true>(p.cast(), size, 1, Place::Cached) }
    }
}

/// C23 `free_aligned_sized`.
pub unsafe fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    // An alignment no allocation can have checks the size alone.
    let align = if align.is_power_of_two() { align } else { 1 };
    if !p.is_null() {
        // SAFETY: forwarded contract.
        unsafe { api::sized_free::<true>(p.cast(), size, align, Place::Cached) }
    }
}

/// C++ sized `operator delete` (with the alignment of the aligned forms,
/// 1 otherwise).
pub unsafe fn delete_sized(p: *mut c_void, size: usize, align: usize) {
    // SAFETY: forwarded contract (C++ passes null or a live block).
    unsafe { free_aligned_sized(p, align, size) }
}

// ---- jemalloc's non-standard API ----

#[inline(always)]
pub fn mallocx(size: usize, flags: c_int) -> *mut c_void {
    if flags == 0 {
        if let Some(p) = api::cache_alloc(size) {
            return p.cast();
        }
    }
    let f = Flags::decode(flags);
    let p = api::alloc(size, f.align, f.zero, f.place);
    report::poll();
    match p {
        p if p.is_null() => null(),
        p => p.cast(),
    }
}

pub unsafe fn rallocx(p: *mut c_void, size: usize, flags: c_int) -> *mut c_void {
    let f = Flags::decode(flags);
    // SAFETY: p is live per the contract.
    let q = unsafe { api::realloc(p.cast(), size, f.align, f.zero, f.place) };
    report::poll();
    match q {
        q if q.is_null() => null(),
        q => q.cast(),
    }
}

pub unsafe fn xallocx(p: *mut c_void, size: usize, extra: usize, flags: c_int) -> usize {
    let f = Flags::decode(flags);
    // SAFETY: p is live per the contract.
    unsafe { api::xallocx(p.cast(), size, extra, f.align, f.zero) }
}

pub unsafe fn sallocx(p: *const c_void, _flags: c_int) -> usize {
    // SAFETY: p is live per the contract.
    unsafe { api::usable_size(p.cast(), "sallocx") }
}

pub unsafe fn dallocx(p: *mut c_void, flags: c_int) {
    // SAFETY: p is live per the contract.
    unsafe { api::free_in(p.cast(), Flags::decode(flags).place) }
}

/// Sized free: the size (with the alignment) must map to the pointer's size
/// class, checked at once (no compiler checks C callers' sizes); a
/// mismatch is reported and aborts (`abort:false`: reported, the block
/// left allocated), never a silently mis-filed block.
pub unsafe fn sdallocx(p: *mut c_void, size: usize, flags: c_int) {
    let f = Flags::decode(flags);
    // SAFETY: forwarded contract.
    unsafe { api::sized_free::<true>(p.cast(), size, f.align, f.place) }
}

pub fn nallocx(size: usize, flags: c_int) -> usize {
    api::nallocx(size, Flags::decode(flags).align)
}

// ---- mallctl ----

fn errno_of(r: Result<(), ctl::Error>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.errno(),
    }
}

/// The name behind a C string (not UTF-8: no such name).
unsafe fn name_of<'a>(name: *const c_char) -> Result<&'a str, ctl::Error> {
    if name.is_null() {
        return Err(ctl::Error::NotFound);
    }
    // SAFETY: a NUL-terminated string per the contract.
    unsafe { CStr::from_ptr(name) }
        .to_str()
        .map_err(|_| ctl::Error::NotFound)
}

pub unsafe fn mallctl(
    name: *const c_char,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> c_int {
    // SAFETY: forwarded contract.
    let r = unsafe { name_of(name) }.and_then(Mib::new);
    match r {
        // SAFETY: forwarded contract.
        Ok(mib) => unsafe { access(&mib, oldp, oldlenp, newp, newlen) },
        Err(e) => e.errno(),
    }
}

pub unsafe fn mallctlnametomib(
    name: *const c_char,
    mibp: *mut usize,
    miblenp: *mut usize,
) -> c_int {
    errno_of((|| {
        // SAFETY: forwarded contract.
        let mib = Mib::new(unsafe { name_of(name) }?)?;
        if mibp.is_null() || miblenp.is_null() {
            return Err(ctl::Error::Invalid);
        }
        let comps = mib.components();
        // SAFETY: *miblenp is the capacity of mibp, per the contract.
        unsafe {
            let n = comps.len().min(*miblenp);
            ptr::copy_nonoverlapping(comps.as_ptr(), mibp, n);
            *miblenp = n;
        }
        Ok(())
    })())
}

pub unsafe fn mallctlbymib(
    mibp: *const usize,
    miblen: usize,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> c_int {
    if mibp.is_null() || miblen > ctl::MAX_DEPTH {
        return libc::ENOENT;
    }
    // SAFETY: mibp holds miblen numbers per the contract.
    let comps = unsafe { core::slice::from_raw_parts(mibp, miblen) };
    match Mib::from_components(comps) {
        // SAFETY: forwarded contract.
        Ok(mib) => unsafe { access(&mib, oldp, oldlenp, newp, newlen) },
        Err(e) => e.errno(),
    }
}

/// One `mallctl` access at the byte level, with jemalloc's rules, all
/// checked before anything changes (jemalloc may apply a write and then
/// fail on the old-value size; rjem changes nothing then): an action takes
/// no values
/// (EPERM); a read-only control takes no new value (EPERM); an old-value
/// buffer of another size gets what fits of the current value, and EINVAL,
/// and nothing is written; a new value must be exactly the control's size
/// (EINVAL).
unsafe fn access(
    mib: &Mib,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> c_int {
    let (ty, wty, writable) = match mib
        .ty()
        .and_then(|t| Ok((t, mib.write_ty()?, mib.writable()?)))
    {
        Ok(t) => t,
        Err(e) => return e.errno(),
    };
    let writing = !newp.is_null() || newlen != 0;
    if !writing && oldp.is_null() && oldlenp.is_null() && mib.runnable() == Ok(true) {
        // SAFETY: C callers take on jemalloc's contracts themselves.
        return errno_of(unsafe { mib.run_unchecked() });
    }
    if ty == Type::Void {
        if !oldp.is_null() || !oldlenp.is_null() || writing {
            return libc::EPERM;
        }
        // SAFETY: C callers take on jemalloc's contracts themselves.
        return errno_of(unsafe { mib.run_unchecked() });
    }
    if writing && !writable {
        return libc::EPERM;
    }
    let readable = match mib.readable() {
        Ok(r) => r,
        Err(e) => return e.errno(),
    };
    if !readable && (!oldp.is_null() || !oldlenp.is_null()) {
        return libc::EPERM;
    }
    let reading = !oldp.is_null() && !oldlenp.is_null();
    // SAFETY: oldlenp is valid when non-null, per the contract.
    if reading && unsafe { *oldlenp } != ty.size() {
        let v = match mib.read() {
            Ok(v) => v,
            Err(e) => return e.errno(),
        };
        // SAFETY: as in `copy_out`.
        unsafe { copy_out(v, oldp, oldlenp) };
        return libc::EINVAL;
    }
    let new = if newp.is_null() {
        None
    } else if newlen != wty.size() {
        return libc::EINVAL;
    } else {
        // SAFETY: newp holds newlen == size-of-type bytes per the contract.
        match unsafe { read_value(wty, newp) } {
            Some(v) => Some(v),
            // A null string: "no value" for controls that may run
            // without one (`prof.dump`).
            None if mib.runnable() == Ok(true) && oldp.is_null() && oldlenp.is_null() => {
                // SAFETY: C callers take on jemalloc's contracts themselves.
                return errno_of(unsafe { mib.run_unchecked() });
            }
            None => return libc::EINVAL,
        }
    };
    // A C caller takes on jemalloc's contracts itself: unsafe controls
    // are open to it.
    let v = match mib.access(new, false, true) {
        Ok(v) => v,
        Err(e) => return e.errno(),
    };
    if reading {
        // SAFETY: oldp holds *oldlenp bytes per the contract.
        unsafe { copy_out(v, oldp, oldlenp) };
    }
    0
}

/// Copies as much of `v`'s C bytes as fit in the `*oldlenp` bytes at
/// `oldp`, and sets `*oldlenp` to what was copied.
///
/// # Safety
/// `oldp` is valid for `*oldlenp` bytes.
unsafe fn copy_out(v: Value, oldp: *mut c_void, oldlenp: *mut usize) {
    let mut buf = [0u8; 8];
    let n = encode(v, &mut buf);
    // SAFETY: per the contract, copying at most *oldlenp bytes.
    unsafe {
        let fit = n.min(*oldlenp);
        ptr::copy_nonoverlapping(buf.as_ptr(), oldp.cast::<u8>(), fit);
        *oldlenp = fit;
    }
}

/// Reads a C value of type `ty` from `p` (unaligned); None for a null
/// string.
unsafe fn read_value(ty: Type, p: *const c_void) -> Option<Value> {
    // SAFETY: p holds a value of `ty`'s size, per the caller.
    unsafe {
        Some(match ty {
            Type::Void => Value::Void,
            Type::Bool => Value::Bool(p.cast::<u8>().read() != 0),
            Type::U32 => Value::U32(p.cast::<u32>().read_unaligned()),
            Type::U64 => Value::U64(p.cast::<u64>().read_unaligned()),
            Type::Usize => Value::Usize(p.cast::<usize>().read_unaligned()),
            Type::Isize => Value::Isize(p.cast::<isize>().read_unaligned()),
            Type::Ptr => Value::Ptr(p.cast::<*mut c_void>().read_unaligned()),
            Type::Str => {
                let s = p.cast::<*const c_char>().read_unaligned();
                if s.is_null() {
                    return None;
                }
                // The string lives for the call only: the controls that
                // take one (`prof.dump`, `prof.prefix`) copy or use it
                // before returning and keep no reference.
                Value::Str(&*(CStr::from_ptr(s) as *const CStr))
            }
        })
    }
}

/// The C bytes of `v`; returns how many.
fn encode(v: Value, buf: &mut [u8; 8]) -> usize {
    let n = v.ty().size();
    match v {
        Value::Void => {}
        Value::Bool(b) => buf[0] = b as u8,
        Value::U32(x) => buf[..4].copy_from_slice(&x.to_ne_bytes()),
        Value::U64(x) => buf.copy_from_slice(&x.to_ne_bytes()),
        Value::Usize(x) => buf.copy_from_slice(&x.to_ne_bytes()),
        Value::Isize(x) => buf.copy_from_slice(&x.to_ne_bytes()),
        Value::Str(s) => buf.copy_from_slice(&(s.as_ptr() as usize).to_ne_bytes()),
        Value::Ptr(p) => buf.copy_from_slice(&(p as usize).to_ne_bytes()),
    }
    n
}

// ---- malloc_stats_print ----

/// A `malloc_stats_print` / `malloc_message` write callback.
pub type WriteCb = unsafe extern "C" fn(*mut c_void, *const c_char);

/// `malloc_stats_print(write_cb, cbopaque, opts)`; a null `write_cb` falls
/// back to `message` (the program's `malloc_message`), then to stderr.
pub unsafe fn malloc_stats_print(
    write_cb: Option<WriteCb>,
    cbopaque: *mut c_void,
    opts: *const c_char,
    message: Option<WriteCb>,
) {
    let opts = if opts.is_null() {
        ""
    } else {
        // SAFETY: a NUL-terminated string per the contract.
        unsafe { CStr::from_ptr(opts) }.to_str().unwrap_or("")
    };
    let cb = write_cb.or(message);
    // Pieces are handed to C NUL-terminated, from a buffer on the stack.
    let mut emit = |piece: &str| {
        let Some(cb) = cb else {
            os::write_stderr(piece.as_bytes());
            return;
        };
        let mut buf = [0u8; 1025];
        for chunk in piece.as_bytes().chunks(1024) {
            buf[..chunk.len()].copy_from_slice(chunk);
            buf[chunk.len()] = 0;
            // SAFETY: the callback takes a NUL-terminated string and the
            // opaque pointer it was registered with.
            unsafe { cb(cbopaque, buf.as_ptr().cast()) };
        }
    };
    report::print(opts, &mut emit);
}
