//! librjem: rjem behind the C ABI.
//!
//! Owns: the exported symbols only, each a one-line call into the core's C
//! entry layer (`rjem::ffi`), which holds the C semantics (`errno`,
//! jemalloc's flags, `mallctl`'s protocol) over the same allocation API the
//! Rust front uses. The C++ operators are in `cxx.rs` and `cxx.c`.
//!
//! Built as `librjem_capi.so` and `librjem_capi.a` (Cargo names a library
//! after its crate); `scripts/install.sh` installs them as `librjem.so` and
//! `librjem.a`.
//!
//! Panics cannot unwind out of these functions: Rust aborts at an
//! `extern "C"` boundary, and release builds use `panic = "abort"`.

#![allow(clippy::missing_safety_doc)]

use core::ffi::{c_char, c_int, c_void};
use rjem::ffi;

mod cxx;

/// Runs when librjem is loaded (an ELF constructor, as jemalloc's): rjem
/// reads its options then, not at the program's first allocation, which
/// a program may never make.
extern "C" fn init_at_load() {
    ffi::init();
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT_AT_LOAD: extern "C" fn() = init_at_load;

// Rust code inside this library (there is little) uses rjem too, so nothing
// here can call back into `malloc` while rjem holds a lock.
#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

/// Exports each function under its C name, forwarding to `rjem::ffi`.
macro_rules! export {
    ($($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),*) $(-> $r:ty)?;)*) => {$(
        $(#[$m])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) $(-> $r)? {
            #[allow(unused_unsafe)]
            // SAFETY: the C contract of `$name` is the one `ffi` states.
            unsafe { ffi::$name($($a),*) }
        }
    )*};
}

export! {
    // The standard family.
    fn malloc(size: usize) -> *mut c_void;
    fn free(p: *mut c_void);
    fn calloc(n: usize, size: usize) -> *mut c_void;
    fn realloc(p: *mut c_void, size: usize) -> *mut c_void;
    fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void;
    fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int;
    fn aligned_alloc(align: usize, size: usize) -> *mut c_void;
    fn memalign(align: usize, size: usize) -> *mut c_void;
    fn valloc(size: usize) -> *mut c_void;
    fn pvalloc(size: usize) -> *mut c_void;
    fn malloc_usable_size(p: *const c_void) -> usize;
    /// C23.
    fn free_sized(p: *mut c_void, size: usize);
    /// C23.
    fn free_aligned_sized(p: *mut c_void, align: usize, size: usize);
    // jemalloc's non-standard API.
    fn mallocx(size: usize, flags: c_int) -> *mut c_void;
    fn rallocx(p: *mut c_void, size: usize, flags: c_int) -> *mut c_void;
    fn xallocx(p: *mut c_void, size: usize, extra: usize, flags: c_int) -> usize;
    fn sallocx(p: *const c_void, flags: c_int) -> usize;
    fn dallocx(p: *mut c_void, flags: c_int);
    fn sdallocx(p: *mut c_void, size: usize, flags: c_int);
    fn nallocx(size: usize, flags: c_int) -> usize;
    fn mallctl(
        name: *const c_char,
        oldp: *mut c_void,
        oldlenp: *mut usize,
        newp: *mut c_void,
        newlen: usize
    ) -> c_int;
    fn mallctlnametomib(name: *const c_char, mibp: *mut usize, miblenp: *mut usize) -> c_int;
    fn mallctlbymib(
        mibp: *const usize,
        miblen: usize,
        oldp: *mut c_void,
        oldlenp: *mut usize,
        newp: *mut c_void,
        newlen: usize
    ) -> c_int;
}

/// jemalloc's `malloc_message`: a program may point it at its own writer;
/// `malloc_stats_print` without a callback then writes there.
#[no_mangle]
pub static mut malloc_message: Option<ffi::WriteCb> = None;

#[no_mangle]
pub unsafe extern "C" fn malloc_stats_print(
    write_cb: Option<ffi::WriteCb>,
    cbopaque: *mut c_void,
    opts: *const c_char,
) {
    // SAFETY: a plain read of the pointer the program may have set (it
    // sets it before calling, on the same thread or with its own sync).
    let message = unsafe { core::ptr::addr_of!(malloc_message).read() };
    // SAFETY: the C contract of `malloc_stats_print`.
    unsafe { ffi::malloc_stats_print(write_cb, cbopaque, opts, message) }
}

/// For the C++ shim (`cxx.c`): whether `operator new` aborts instead of
/// throwing `std::bad_alloc` (`experimental_infallible_new`).
#[no_mangle]
pub extern "C" fn rjem_infallible_new() -> bool {
    ffi::infallible_new()
}
