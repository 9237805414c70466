//! rjem: jemalloc 5.3's design rebuilt in Rust.
//!
//! Use it as Rust's global allocator:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: rjem::Rjem = rjem::Rjem;
//!
//! let v: Vec<u32> = (0..1000).collect();
//! assert_eq!(unsafe { rjem::usable_size(v.as_ptr().cast()) }, 4096);
//! ```
//!
//! The public surface: [`Rjem`]; a few functions about blocks and the
//! calling thread ([`usable_size`], [`nallocx`], [`flush_thread_cache`],
//! [`thread_arena`], [`thread_cached`]); [`stats()`] for totals; and
//! [`ctl`], jemalloc's `mallctl` name space with typed values (options,
//! purging, decay times). Options come from `MALLOC_CONF` as in jemalloc;
//! [`check_conf`] checks such a string.
//!
//! Inside, one module per jemalloc concept, in layers whose imports point
//! down only: the entry points (`api`, `ctl`, `stats`, and `init` for
//! start-up and fork; `conf` reads the options; `profiler` samples
//! allocations for [`prof`]) -> `tsd`/`tcache`
//! (per-thread stacks, no lock) -> `arena` (and the `background` purger
//! above it) -> `bin` (one per small class) -> `slab` (regions and bitmap)
//! -> `pages` (extents: dirty, muzzy, retained; first fit, split, merge;
//! `decay`) -> `emap` (any pointer back to its `extent` record, without a
//! lock), `base` (metadata memory) -> `size_class`, `sync`, `os`.
//! `docs/design.md` has the map.
//!
//! The crate is `no_std` and does not link `alloc`: it cannot allocate
//! through Rust's global allocator, by construction. Only `tsd` names
//! `std`, for `thread_local!`, and [`prof`], whose `dump_pprof` returns a
//! vector (allocated in its caller's context, holding no lock).

#![no_std]
#![warn(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(target_pointer_width = "64"))]
compile_error!("rjem supports 64-bit targets only (its pointer map covers 48-bit addresses)");

#[cfg(test)]
extern crate std;

mod api;
mod arena;
mod background;
mod base;
mod bin;
mod conf;
pub mod ctl;
mod decay;
mod ehooks;
mod emap;
mod extent;
#[doc(hidden)]
pub mod ffi;
mod init;
mod os;
mod pages;
mod profiler;
mod report;
mod size_class;
mod slab;
pub mod stats;
mod sync;
mod tcache;
mod tsd;

pub use conf::{ConfProblem, ConfProblemKind};
pub use stats::{snapshot as stats, Stats};

use api::Place;
use core::alloc::{GlobalAlloc, Layout};

/// Heap profiling (jemalloc's sampled profiler): dumps on demand. Turn
/// the profiler on with `MALLOC_CONF=prof:true` (it is off by default and
/// then costs nothing); its controls are the `prof.*` names in [`ctl`];
/// `docs/profiling.md` says how to read the profiles.
pub mod prof {
    // The one place outside `tsd` that names `std`: `dump_pprof` returns
    // a vector.
    extern crate std;
    use crate::{init, profiler};

    /// Why [`dump`] wrote nothing.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum DumpError {
        /// The profiler is off (`prof:false`, the default).
        Off,
        /// The path is empty, contains a NUL byte or is too long (1023 bytes
        /// at most).
        BadPath,
        /// The file could not be created or written.
        Io,
    }

    impl core::fmt::Display for DumpError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str(match self {
                DumpError::Off => "the heap profiler is off (MALLOC_CONF=prof:true turns it on)",
                DumpError::BadPath => "unusable file name (empty, NUL byte, or over 1023 bytes)",
                DumpError::Io => "the profile file could not be written",
            })
        }
    }

    /// Writes the heap profile to `path` (`prof.dump`): jemalloc's `heap_v2`
    /// text, which `jeprof` reads, or, if `path` ends in `.pb.gz`, pprof's
    /// gzipped protobuf (as [`dump_pprof`] returns it). The counts are the samples'; readers
    /// scale them by the sampling rate. Needs `prof:true` in `MALLOC_CONF`.
    ///
    /// ```
    /// // Without prof:true there is nothing to dump.
    /// assert_eq!(rjem::prof::dump("/tmp/x.heap"), Err(rjem::prof::DumpError::Off));
    /// ```
    pub fn dump(path: &str) -> Result<(), DumpError> {
        if !init::ensure() || !profiler::on() {
            return Err(DumpError::Off);
        }
        if path.is_empty() {
            return Err(DumpError::BadPath);
        }
        match profiler::with_c_path(path, |p| profiler::dump_to(Some(p))) {
            None => Err(DumpError::BadPath),
            Some(true) => Ok(()),
            Some(false) => Err(DumpError::Io),
        }
    }

    // -- caller-context allocation: dump_pprof's Vec --
    /// The heap profile as pprof's gzipped protobuf (`profile.proto`): the
    /// bytes a `.pb.gz` dump holds, for pprof tools or `rjem prof`.
    /// Sample types `alloc_objects`, `alloc_space` (0 without
    /// `prof_accum`), `inuse_objects`, `inuse_space`, scaled from the
    /// samples as jeprof scales them; locations with addresses, mappings
    /// with build ids, functions from the loaded files' symbol tables.
    /// Needs `prof:true` in `MALLOC_CONF`.
    ///
    /// Unlike the rest of the crate it allocates (the vector it returns),
    /// in the caller's context: no allocator lock is held meanwhile, and
    /// the profile is read without the record table's lock.
    ///
    /// ```
    /// assert_eq!(rjem::prof::dump_pprof(), Err(rjem::prof::DumpError::Off));
    /// ```
    pub fn dump_pprof() -> Result<std::vec::Vec<u8>, DumpError> {
        if !init::ensure() || !profiler::on() {
            return Err(DumpError::Off);
        }
        let mut v = VecSink(std::vec::Vec::new());
        if profiler::pprof_into(&mut v) {
            Ok(v.0)
        } else {
            Err(DumpError::Io)
        }
    }

    struct VecSink(std::vec::Vec<u8>);

    impl profiler::Sink for VecSink {
        fn put(&mut self, b: &[u8]) -> bool {
            self.0.extend_from_slice(b);
            true
        }
    }

    // -- end of caller-context allocation --

    /// Whether the heap profiler is on (`prof:true` at start-up).
    pub fn enabled() -> bool {
        init::ensure() && profiler::on()
    }
}

/// The rjem allocator. Zero-sized: all state is global and per thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rjem;

// SAFETY: every method honours GlobalAlloc's contract: blocks are at least
// `layout.size()` bytes, aligned to `layout.align()`, distinct while live;
// failures return null; dealloc/realloc accept exactly what alloc returned.
unsafe impl GlobalAlloc for Rjem {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // A Layout's size rounded up to its alignment cannot overflow.
        match api::cache_alloc(layout.pad_to_align().size()) {
            Some(p) => p,
            None => alloc_slow(layout.size(), layout.align(), false),
        }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a live block with the layout it was
        // allocated (or last reallocated) with.
        unsafe {
            api::sized_free::<{ cfg!(debug_assertions) }>(
                ptr,
                layout.size(),
                layout.align(),
                Place::Cached,
            )
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        alloc_slow(layout.size(), layout.align(), true)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: ptr is live with `layout` (caller's duty).
        let moved = unsafe {
            api::realloc_cached::<{ cfg!(debug_assertions) }>(
                ptr,
                layout.size(),
                layout.align(),
                new_size,
            )
        };
        // SAFETY: ptr is live with `layout`; new_size is non-zero and does
        // not overflow isize when rounded to the alignment (caller's duty).
        let p = moved.unwrap_or_else(|| unsafe {
            api::realloc(ptr, new_size, layout.align(), false, Place::Cached)
        });
        report::poll();
        p
    }
}

/// The Rust front's allocation slow path (also where the statistics
/// options get their turn, `report::poll`).
#[cold]
#[inline(never)]
fn alloc_slow(size: usize, align: usize, zero: bool) -> *mut u8 {
    let p = api::alloc_slow(size, align, zero, Place::Cached);
    report::poll();
    p
}

/// Usable size of a live allocation: at least what was asked, often more.
///
/// # Safety
/// `ptr` must be a live allocation made by rjem. A pointer rjem never
/// handed out, or one already freed, is reported and aborts the process
/// (with the option `abort:false` it is only reported, and 0 returned); a
/// pointer into the middle of a small block is not detected.
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    // SAFETY: forwarded contract.
    unsafe { api::usable_size(ptr, "usable_size") }
}

/// The usable size a request of `size` bytes aligned to `align` (a power of
/// two; 0 means none) would get: jemalloc's `nallocx`. 0 if no size class
/// can serve it.
pub fn nallocx(size: usize, align: usize) -> usize {
    api::nallocx(size, align)
}

/// Checks an option string (`MALLOC_CONF`'s syntax, jemalloc 5.3's
/// grammar) with the parser rjem reads its options with at start-up,
/// without applying it: the problems start-up would report, in order, each
/// printing as its message. An error ([`ConfProblem::is_error`]) leaves
/// the option at its earlier value (or, with `abort_conf:true`, aborts);
/// a warning says what was done instead. A malformed pair stops the
/// reading, as in jemalloc.
///
/// Borrowing from `conf`, it allocates nothing and does not start the
/// allocator. (It checks one string: at start-up a later source, such as
/// `MALLOC_CONF` after the program's `malloc_conf`, may override it.)
///
/// ```
/// let msgs: Vec<String> = rjem::check_conf(b"narenas:lots,tcache:false,,x:1")
///     .map(|p| p.to_string())
///     .collect();
/// assert_eq!(
///     msgs,
///     ["Invalid conf value: narenas:lots", "Malformed conf string, ignored from: ,x:1"]
/// );
/// assert_eq!(rjem::check_conf(b"narenas: 4,dirty_decay_ms:0").count(), 0);
/// ```
pub fn check_conf(conf: &[u8]) -> impl Iterator<Item = ConfProblem<'_>> {
    conf::problems(conf)
}

/// Fault injection for tests (feature `fault-injection`): makes `mmap`,
/// `madvise` and `mprotect` fail at chosen rates.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub use os::faults;

/// Whether this machine makes a fresh transparent huge page slow to write:
/// a virtual machine that reports free memory to its hypervisor in blocks
/// up to a huge page (virtio-balloon free page reporting). There the
/// default `thp:auto` asks for no huge pages, and `rjem bench` lets big
/// runs settle. Read from sysfs once.
pub fn huge_pages_start_cold() -> bool {
    os::huge_pages_start_cold()
}

/// Returns the calling thread's cached blocks to their arenas
/// (`thread.tcache.flush`).
pub fn flush_thread_cache() {
    tsd::flush()
}

/// Index of the arena the calling thread is bound to (binding it now if this
/// is its first call into rjem).
pub fn thread_arena() -> usize {
    if !init::ensure() {
        return 0;
    }
    tsd::slow().arena().ind
}

/// Blocks and bytes held in the calling thread's cache.
pub fn thread_cached() -> (usize, usize) {
    tsd::cached()
}

/// Writes jemalloc's statistics report (`malloc_stats_print`) to `out`, in
/// pieces: text, or JSON with `opts` containing `J`; the other letters of
/// jemalloc's `opts` leave out sections (`g` general information, `m`
/// merged arenas, `a` each arena, `b` bins, `l` large classes).
///
/// ```
/// let mut report = String::new();
/// rjem::stats_print("J", &mut |piece| report.push_str(piece));
/// assert!(report.starts_with("{\"jemalloc\":{"));
/// ```
pub fn stats_print(opts: &str, out: &mut dyn FnMut(&str)) {
    report::print(opts, out)
}
