//! Options: the one table of every option rjem knows (jemalloc 5.3's
//! names), and the reading of `MALLOC_CONF` (jemalloc's syntax:
//! `name:value,name:value`).
//!
//! Owns: `OPTIONS`, one row per option with its name, type and valid range,
//! default, one-line doc and the control that changes it at run time, if
//! any. `MALLOC_CONF` parsing, the `opt.*` controls, `confirm_conf` output
//! and the option list in the README are all derived from it. The value of
//! each option lives with the module that owns the behaviour (for example
//! `arena::OPT_NARENAS`): this module writes it at start-up, before any
//! other thread can run in the allocator, and the owner reads it (an owner
//! may resolve a default in its own `boot`, as `arena` turns `narenas:0`
//! into 4 x CPUs, like jemalloc). So a new option is one row here plus its
//! static and its use in the owner.
//!
//! Reading (`Reader`) follows jemalloc 5.3's grammar and messages, and
//! never allocates: names are ASCII letters, digits and `_`; a malformed
//! pair (`,,`) is reported and ends the reading of that string; numbers
//! are read as C's `strtoumax` reads them (white space, sign, `0x`, octal);
//! a value out of range is reported, or clamped where jemalloc clamps. A
//! bad pair is reported on stderr naming it
//! (`<rjem>: Invalid conf value: narenas:abc`) and skipped, keeping the
//! default; with `abort_conf:true` a bad pair aborts instead, as in
//! jemalloc. jemalloc options rjem does not implement are accepted with a
//! warning. `crate::check_conf` gives the same reports without applying
//! anything.

use crate::arena;
use crate::background;
use crate::base;
use crate::decay;
use crate::os::{self, BootStr, BOOT_STR_MAX};
use crate::pages;
use crate::profiler as prof;
use crate::size_class as sc;
use crate::sync;
use crate::tcache;
use core::ffi::CStr;
use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicUsize, Ordering::Relaxed};

// `abort` is a tri-state stored as the others (`Kind::Tristate`).
const _: () = assert!(
    os::ABORT_UNSET == background::UNSET
        && os::ABORT_ON == background::ON
        && os::ABORT_OFF == background::OFF
);

/// Option `abort_conf`: abort on an invalid option instead of warning.
static OPT_ABORT_CONF: AtomicBool = AtomicBool::new(false);
/// Option `confirm_conf`: print the settings in force at start-up.
static OPT_CONFIRM_CONF: AtomicBool = AtomicBool::new(false);

// Options whose behaviour belongs to the entry points (`api`, `ffi`),
// which sit above this module: their values live here, and those modules
// read them.

/// Option `xmalloc`: running out of memory aborts instead of returning null.
pub(crate) static OPT_XMALLOC: AtomicBool = AtomicBool::new(false);
/// Option `zero_realloc`: an index into `ZERO_REALLOC_NAMES`.
pub(crate) static OPT_ZERO_REALLOC: AtomicU8 = AtomicU8::new(0);
static ZERO_REALLOC_NAMES: &[&CStr] = &[c"free", c"alloc", c"abort"];
/// Option `experimental_infallible_new`: C++ `new` aborts instead of
/// throwing.
pub(crate) static OPT_INFALLIBLE_NEW: AtomicBool = AtomicBool::new(false);
/// Option `junk`: an index into `JUNK_NAMES` (jemalloc's words): fill
/// new blocks with 0xa5 (`alloc`), freed ones with 0x5a (`free`), both
/// (`true`) or neither.
pub(crate) static OPT_JUNK: AtomicU8 = AtomicU8::new(0);
static JUNK_NAMES: &[&CStr] = &[c"false", c"true", c"alloc", c"free"];
/// Option `zero`: every allocation is zeroed, as if asked.
pub(crate) static OPT_ZERO: AtomicBool = AtomicBool::new(false);
/// What `junk` and `zero` ask for, as `FILL_*` bits (derived by `boot`),
/// so that a slow path knows with one load whether it has filling to do.
pub(crate) static FILL: AtomicU8 = AtomicU8::new(0);
pub(crate) const FILL_JUNK_ALLOC: u8 = 1;
pub(crate) const FILL_JUNK_FREE: u8 = 2;
pub(crate) const FILL_ZERO: u8 = 4;

/// `junk:true` or `junk:free`.
#[inline]
pub(crate) fn junk_free() -> bool {
    FILL.load(Relaxed) & FILL_JUNK_FREE != 0
}

/// Whether an option fills blocks (`junk`, `zero`): then every allocation
/// and free must take the slow path, where the filling is done, so the
/// threads' caches are kept off the hit path (`tcache::set_off_hit_path`).
pub(crate) fn fills_blocks() -> bool {
    FILL.load(Relaxed) != 0
}

/// Option `stats_print`: the report (`report`) is printed at exit.
pub(crate) static OPT_STATS_PRINT: AtomicBool = AtomicBool::new(false);
/// Options `stats_print_opts` and `stats_interval_opts`: the report's
/// letters for the exit and interval reports (`stats_interval` itself is
/// `tcache`'s, which counts the bytes).
pub(crate) static OPT_STATS_PRINT_OPTS: BootStr = BootStr::new();
pub(crate) static OPT_STATS_INTERVAL_OPTS: BootStr = BootStr::new();
/// Option `stats_fd` (rjem's): the file descriptor those reports are
/// written to (jemalloc always writes them to stderr).
pub(crate) static OPT_STATS_FD: AtomicI64 = AtomicI64::new(2);
/// The letters `malloc_stats_print` knows (jemalloc's); others are dropped.
const STATS_LETTERS: &[u8] = b"Jgmdablxeh";

fn any_text(_: &[u8]) -> bool {
    true
}

fn non_empty(v: &[u8]) -> bool {
    !v.is_empty()
}

/// One option: what it is called, what it takes, where its value lives.
pub(crate) struct Opt {
    pub(crate) name: &'static str,
    /// One line, for `confirm_conf`, the README and the docs.
    pub(crate) doc: &'static str,
    pub(crate) kind: Kind,
    /// The control that changes the setting while the program runs (the
    /// option itself, `opt.<name>`, is read-only).
    pub(crate) runtime: Option<&'static str>,
}

/// The type, range and storage of an option's value.
pub(crate) enum Kind {
    /// `true` or `false`.
    Bool {
        cell: &'static AtomicBool,
        default: bool,
    },
    /// `true` or `false`, or left unset (the default, which may mean
    /// something of its own); stored as `background::{UNSET, ON, OFF}`.
    /// `unset` is what the option reads (`opt.*`, `confirm_conf`) when
    /// left unset: `Setting::Unset`, or the behaviour unset stands for.
    Tristate {
        cell: &'static AtomicU8,
        unset: Setting,
    },
    /// An unsigned number, decimal or `0x` hexadecimal, in `min..=max`;
    /// above `max` it is clamped or rejected. `unsigned`: C `unsigned`
    /// rather than `size_t` in `opt.*`.
    Size {
        cell: &'static AtomicUsize,
        default: usize,
        min: usize,
        max: usize,
        over: Over,
        unsigned: bool,
    },
    /// A decay time in milliseconds (see `decay::valid_ms`).
    Ms {
        cell: &'static AtomicI64,
        default: i64,
    },
    /// A signed 64-bit number (decimal, or 0x hex) in `min..=max`.
    I64 {
        cell: &'static AtomicI64,
        default: i64,
        min: i64,
        max: i64,
    },
    /// Text that `valid` accepts (`default` when unset); a later pair
    /// adds to what earlier ones set, or replaces it, as `join` says.
    Text {
        cell: &'static BootStr,
        default: &'static CStr,
        valid: fn(&[u8]) -> bool,
        join: Join,
    },
    /// One of a few words; the cell holds the word's index.
    Choice {
        cell: &'static AtomicU8,
        names: &'static [&'static CStr],
        default: u8,
    },
    /// `lg_tcache_max`-style: a base-2 logarithm (at most `max_lg`) stored
    /// as the power of two in another option's cell. It has no value of
    /// its own (no `opt.*` name): the option it sets shows it.
    Lg {
        cell: &'static AtomicUsize,
        max_lg: u32,
    },
    /// A jemalloc 5.3 option whose setting rjem cannot change: it reads
    /// back as `value` (what rjem does), a pair asking for that is
    /// accepted silently, any other value with a warning saying `instead`.
    Fixed {
        value: Setting,
        instead: &'static str,
    },
    /// A jemalloc 5.3 option this version does not implement: accepted
    /// with a warning saying what rjem does instead, and otherwise ignored.
    Ignored { instead: &'static str },
}

/// How a text option's later pair combines with the earlier ones.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Join {
    /// `|`-separated segments, appended in order (later ones win);
    /// `default` forgets the earlier ones.
    Segments,
    /// Letters among these, each kept once; others are dropped.
    Letters(&'static [u8]),
    /// The later pair's text replaces the earlier one.
    Replace,
}

/// What a number above an option's maximum does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Over {
    Clamp,
    Reject,
}

/// The value of an option (what `opt.<name>` reads, what `confirm_conf`
/// prints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// `true` or `false`.
    Bool(bool),
    /// A tri-state option left at its default (see the option's doc).
    Unset,
    /// A C `unsigned`.
    Unsigned(u32),
    /// A `size_t`.
    Size(usize),
    /// A decay time in milliseconds (an `ssize_t`; -1 = never).
    Ms(isize),
    /// An `int64_t`.
    I64(i64),
    /// One of the option's words (a `const char *`).
    Str(&'static CStr),
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Setting::Bool(b) => write!(f, "{b}"),
            Setting::Unset => f.write_str("unset"),
            Setting::Unsigned(n) => write!(f, "{n}"),
            Setting::Size(n) => write!(f, "{n}"),
            Setting::Ms(n) => write!(f, "{n}"),
            Setting::I64(n) => write!(f, "{n}"),
            Setting::Str(w) => f.write_str(w.to_str().unwrap_or("?")),
        }
    }
}

/// Every option rjem knows, in the order `confirm_conf` prints them.
pub(crate) static OPTIONS: &[Opt] = &[
    Opt {
        name: "abort",
        doc: "Heap misuse (invalid or double free, realloc of freed memory) is reported and aborts unless false, which only reports and skips the operation; true also aborts on an invalid option.",
        kind: Kind::Tristate {
            cell: &os::OPT_ABORT,
            unset: Setting::Bool(true),
        },
        runtime: None,
    },
    Opt {
        name: "abort_conf",
        doc: "Abort at start-up on an invalid option instead of warning.",
        kind: Kind::Bool {
            cell: &OPT_ABORT_CONF,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "confirm_conf",
        doc: "Print the options in force at start-up, on stderr.",
        kind: Kind::Bool {
            cell: &OPT_CONFIRM_CONF,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "narenas",
        doc: "Automatic arenas threads are spread over; 0 (the default) means 4 x CPUs; with percpu_arena at least one per CPU (or core); larger values are clamped to 4095.",
        kind: Kind::Size {
            cell: &arena::OPT_NARENAS,
            default: 0,
            min: 1,
            max: arena::NARENAS_MAX,
            over: Over::Clamp,
            unsigned: true,
        },
        runtime: None,
    },
    Opt {
        name: "tcache",
        doc: "Per-thread caches of small and medium blocks.",
        kind: Kind::Bool {
            cell: &tcache::OPT_TCACHE,
            default: true,
        },
        runtime: None,
    },
    Opt {
        name: "tcache_max",
        doc: "Largest block size kept in thread caches (at most 8 MiB; larger values are clamped).",
        kind: Kind::Size {
            cell: &tcache::OPT_TCACHE_MAX,
            default: 32 << 10,
            min: 0,
            max: tcache::MAX_LIMIT,
            over: Over::Clamp,
            unsigned: false,
        },
        runtime: None,
    },
    Opt {
        name: "dirty_decay_ms",
        doc: "Time over which freed pages are purged (-1: never, 0: at once).",
        kind: Kind::Ms {
            cell: &arena::OPT_DIRTY_DECAY_MS,
            default: 10_000,
        },
        runtime: Some("arenas.dirty_decay_ms"),
    },
    Opt {
        name: "muzzy_decay_ms",
        doc: "Time over which lazily purged (MADV_FREE) pages are released; 0 releases dirty pages directly.",
        kind: Kind::Ms {
            cell: &arena::OPT_MUZZY_DECAY_MS,
            default: 0,
        },
        runtime: Some("arenas.muzzy_decay_ms"),
    },
    Opt {
        name: "retain",
        doc: "Keep purged address space for reuse instead of unmapping it.",
        kind: Kind::Bool {
            cell: &pages::OPT_RETAIN,
            default: true,
        },
        runtime: None,
    },
    Opt {
        name: "cache_oblivious",
        doc: "Pad every large block with a page and start it at a random cache line within it, so that large blocks do not share cache sets.",
        kind: Kind::Bool {
            cell: &crate::extent::OPT_CACHE_OBLIVIOUS,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "lg_extent_max_active_fit",
        doc: "Prefer reusing free extents at most 2^this times the request.",
        kind: Kind::Size {
            cell: &pages::OPT_LG_EXTENT_MAX_ACTIVE_FIT,
            default: 6,
            min: 0,
            max: 63,
            over: Over::Reject,
            unsigned: false,
        },
        runtime: None,
    },
    Opt {
        name: "background_thread",
        doc: "Unset: a purger thread starts once an arena has mapped (or holds freed) 8 MiB; true: it starts at the first allocation and does all decay; false: never.",
        kind: Kind::Tristate {
            cell: &background::OPT_BACKGROUND_THREAD,
            unset: Setting::Unset,
        },
        runtime: None,
    },
    Opt {
        name: "max_background_threads",
        doc: "0 forbids the purger thread (rjem runs at most one).",
        kind: Kind::Size {
            cell: &background::OPT_MAX_BACKGROUND_THREADS,
            default: 4,
            min: 0,
            max: usize::MAX,
            over: Over::Reject,
            unsigned: false,
        },
        runtime: None,
    },
    Opt {
        name: "oversize_threshold",
        doc: "Uncached requests of at least this many bytes go to a separate huge arena; 0: never.",
        kind: Kind::Size {
            cell: &arena::OPT_OVERSIZE_THRESHOLD,
            default: 8 << 20,
            min: 0,
            max: sc::LARGE_MAXCLASS,
            over: Over::Reject,
            unsigned: false,
        },
        runtime: None,
    },
    Opt {
        name: "lg_tcache_max",
        doc: "tcache_max as a base-2 logarithm (jemalloc's older name for it).",
        kind: Kind::Lg {
            cell: &tcache::OPT_TCACHE_MAX,
            max_lg: 23,
        },
        runtime: None,
    },
    Opt {
        name: "xmalloc",
        doc: "Abort with a message instead of returning NULL when memory runs out.",
        kind: Kind::Bool {
            cell: &OPT_XMALLOC,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "zero_realloc",
        doc: "realloc(p, 0): free frees p and returns NULL; alloc returns a minimal block; abort aborts.",
        kind: Kind::Choice {
            cell: &OPT_ZERO_REALLOC,
            names: ZERO_REALLOC_NAMES,
            default: 0,
        },
        runtime: None,
    },
    Opt {
        name: "thp",
        doc: "Transparent huge pages for heap memory: default leaves the system's setting, always asks for them, never refuses them; huge (rjem) asks for them for blocks of oversize_threshold and more only; auto (rjem, the default) asks for them where memory gets written: for a new mapping when the program wrote at least half of the one before, in an arena that holds 16 MiB or serves blocks of oversize_threshold and more; but never on a virtual machine that reports free memory to its hypervisor (virtio-balloon free page reporting), where a fresh huge page takes 20-50x longer to write than a reused one.",
        kind: Kind::Choice {
            cell: &pages::OPT_THP,
            names: pages::THP_NAMES,
            default: pages::THP_AUTO,
        },
        runtime: None,
    },
    Opt {
        name: "metadata_thp",
        doc: "Transparent huge pages for metadata: disabled, always, or auto (as always, for metadata blocks after the first).",
        kind: Kind::Choice {
            cell: &base::OPT_METADATA_THP,
            names: base::METADATA_THP_NAMES,
            default: 0,
        },
        runtime: None,
    },
    Opt {
        name: "experimental_infallible_new",
        doc: "C++ operator new aborts with a message instead of throwing std::bad_alloc.",
        kind: Kind::Bool {
            cell: &OPT_INFALLIBLE_NEW,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "stats_print",
        doc: "Print the statistics (malloc_stats_print) on stderr at exit.",
        kind: Kind::Bool {
            cell: &OPT_STATS_PRINT,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "stats_print_opts",
        doc: "malloc_stats_print's option letters for stats_print (for example J: JSON).",
        kind: Kind::Text {
            cell: &OPT_STATS_PRINT_OPTS,
            default: c"",
            valid: any_text,
            join: Join::Letters(STATS_LETTERS),
        },
        runtime: None,
    },
    Opt {
        name: "stats_interval",
        doc: "Print the statistics on stderr each time a thread has allocated about this many bytes (-1: never).",
        kind: Kind::I64 {
            cell: &tcache::OPT_STATS_INTERVAL,
            default: -1,
            min: -1,
            max: i64::MAX,
        },
        runtime: None,
    },
    Opt {
        name: "stats_interval_opts",
        doc: "malloc_stats_print's option letters for stats_interval.",
        kind: Kind::Text {
            cell: &OPT_STATS_INTERVAL_OPTS,
            default: c"",
            valid: any_text,
            join: Join::Letters(STATS_LETTERS),
        },
        runtime: None,
    },
    Opt {
        name: "stats_fd",
        doc: "File descriptor the stats_print and stats_interval reports are written to (rjem's; jemalloc always writes them to stderr).",
        kind: Kind::I64 {
            cell: &OPT_STATS_FD,
            default: 2,
            min: 0,
            max: i64::MAX,
        },
        runtime: None,
    },
    Opt {
        name: "percpu_arena",
        doc: "percpu: one arena per CPU, each thread using its current CPU's; phycpu: one per physical core (CPUs c and c + n/2 share); disabled: threads spread over narenas arenas.",
        kind: Kind::Choice {
            cell: &arena::OPT_PERCPU_ARENA,
            names: arena::PERCPU_NAMES,
            default: 0,
        },
        runtime: None,
    },
    Opt {
        name: "slab_sizes",
        doc: "Slab pages of small classes: begin-end:pages segments, separated by a vertical bar, later ones winning; clamped to hold 1 to page/8 regions.",
        kind: Kind::Text {
            cell: &sc::OPT_SLAB_SIZES,
            default: c"",
            valid: sc::valid_slab_sizes,
            join: Join::Segments,
        },
        runtime: None,
    },
    Opt {
        name: "prof",
        doc: "Heap profiling: sample allocations (about one per 2^lg_prof_sample bytes) with their stacks, for prof.dump, prof_final and prof_leak (see docs/profiling.md).",
        kind: Kind::Bool {
            cell: &prof::OPT_PROF,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "prof_prefix",
        doc: "Start of the names of profile dumps: <prefix>.<pid>.<seq>.<kind>.heap.",
        kind: Kind::Text {
            cell: &prof::OPT_PROF_PREFIX,
            default: c"jeprof",
            valid: non_empty,
            join: Join::Replace,
        },
        runtime: None,
    },
    Opt {
        name: "prof_active",
        doc: "Whether sampled allocations are recorded from the start (with prof:true).",
        kind: Kind::Bool {
            cell: &prof::OPT_PROF_ACTIVE,
            default: true,
        },
        runtime: Some("prof.active"),
    },
    Opt {
        name: "prof_thread_active_init",
        doc: "Whether new threads record their sampled allocations (thread.prof.active's initial value).",
        kind: Kind::Bool {
            cell: &prof::OPT_PROF_THREAD_ACTIVE_INIT,
            default: true,
        },
        runtime: Some("prof.thread_active_init"),
    },
    Opt {
        name: "lg_prof_sample",
        doc: "Mean bytes of allocation between samples, as a base-2 logarithm (19: 512 KiB; 0: every allocation); prof.reset changes it at run time.",
        kind: Kind::Size {
            cell: &prof::OPT_LG_PROF_SAMPLE,
            default: 19,
            min: 0,
            max: prof::LG_SAMPLE_MAX,
            over: Over::Clamp,
            unsigned: false,
        },
        runtime: None,
    },
    Opt {
        name: "lg_prof_interval",
        doc: "Dump a profile every 2^n bytes of allocation, as <prefix>.<pid>.<seq>.i<n>.heap (-1: never).",
        kind: Kind::I64 {
            cell: &prof::OPT_LG_PROF_INTERVAL,
            default: -1,
            min: -1,
            max: i64::MAX,
        },
        runtime: None,
    },
    Opt {
        name: "prof_gdump",
        doc: "Dump a profile each time the active memory reaches a new high, as <prefix>.<pid>.<seq>.u<n>.heap.",
        kind: Kind::Bool {
            cell: &prof::OPT_PROF_GDUMP,
            default: false,
        },
        runtime: Some("prof.gdump"),
    },
    Opt {
        name: "prof_final",
        doc: "Dump a profile at exit, as <prefix>.<pid>.<seq>.f.heap.",
        kind: Kind::Bool {
            cell: &prof::OPT_PROF_FINAL,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "prof_leak",
        doc: "At exit, report on stderr the memory never freed (estimated from the samples) and the stacks holding most of it.",
        kind: Kind::Bool {
            cell: &prof::OPT_PROF_LEAK,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "prof_leak_error",
        doc: "As prof_leak, and a leak found at exit makes the process exit with status 1.",
        kind: Kind::Bool {
            cell: &prof::OPT_PROF_LEAK_ERROR,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "prof_accum",
        doc: "Also keep cumulative counts (freed samples included) per stack, for the dumps' [objects: bytes] columns.",
        kind: Kind::Bool {
            cell: &prof::OPT_PROF_ACCUM,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "prof_sys_thread_name",
        doc: "Name each sampling thread after its system name (pthread_getname_np, read at each sample) in profiles; thread.prof.name writes then answer ENOENT.",
        kind: Kind::Bool {
            cell: &prof::OPT_PROF_SYS_THREAD_NAME,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "prof_pprof",
        doc: "Write prof_prefix-named dumps (prof.dump without a name, prof_final, lg_prof_interval, prof_gdump) as gzipped pprof protobuf, <prefix>.<pid>.<seq>.<kind>.pb.gz, instead of heap_v2; prof.dump to a name ending in .pb.gz always does.",
        kind: Kind::Bool {
            cell: &prof::OPT_PROF_PPROF,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "secure",
        doc: "rjem's hardened mode: regions handed out in random order, and every 8th slab and large extent between guard pages unless san_guard_small/san_guard_large say otherwise.",
        kind: Kind::Bool {
            cell: &tcache::OPT_SECURE,
            default: false,
        },
        runtime: None,
    },
    Opt {
        name: "san_guard_small",
        doc: "Every Nth slab (run of small blocks) a thread allocates lies between two inaccessible guard pages, so an overflow past it faults at once; 0: never.",
        kind: Kind::Size {
            cell: &pages::OPT_SAN_GUARD_SMALL,
            default: 0,
            min: 0,
            max: usize::MAX,
            over: Over::Reject,
            unsigned: false,
        },
        runtime: None,
    },
    Opt {
        name: "san_guard_large",
        doc: "Every Nth large extent a thread allocates (aligned to at most a page) lies between two inaccessible guard pages; 0: never.",
        kind: Kind::Size {
            cell: &pages::OPT_SAN_GUARD_LARGE,
            default: 0,
            min: 0,
            max: usize::MAX,
            over: Over::Reject,
            unsigned: false,
        },
        runtime: None,
    },
    fixed("dss", Setting::Str(c"disabled"), "maps with mmap only"),
    Opt {
        name: "junk",
        doc: "Fill new blocks with 0xa5 (alloc), freed blocks with 0x5a (free), both (true) or neither (false); calloc and MALLOCX_ZERO still zero. A debugging aid: allocations and frees skip the thread cache's fast path.",
        kind: Kind::Choice {
            cell: &OPT_JUNK,
            names: JUNK_NAMES,
            default: 0,
        },
        runtime: None,
    },
    Opt {
        name: "zero",
        doc: "Zero every new block (realloc: the bytes it adds), as calloc does. A debugging aid: allocations and frees skip the thread cache's fast path.",
        kind: Kind::Bool {
            cell: &OPT_ZERO,
            default: false,
        },
        runtime: None,
    },
    ignored("utrace", "does not trace"),
    nslots(
        "tcache_nslots_small_min",
        "Fewest items a small class's thread-cache stack holds.",
        &tcache::OPT_NSLOTS_SMALL_MIN,
        20,
    ),
    nslots(
        "tcache_nslots_small_max",
        "Most items a small class's thread-cache stack holds.",
        &tcache::OPT_NSLOTS_SMALL_MAX,
        200,
    ),
    nslots(
        "tcache_nslots_large",
        "Items a large class's thread-cache stack holds.",
        &tcache::OPT_NSLOTS_LARGE,
        20,
    ),
    Opt {
        name: "lg_tcache_nslots_mul",
        doc: "A small class's thread-cache stack holds its regions per slab times 2^this (within the two bounds above).",
        kind: Kind::I64 {
            cell: &tcache::OPT_LG_NSLOTS_MUL,
            default: 1,
            min: -16,
            max: 16,
        },
        runtime: None,
    },
    Opt {
        name: "tcache_gc_incr_bytes",
        doc: "Bytes through a thread cache's slow paths between two steps of its incremental GC.",
        kind: Kind::Size {
            cell: &tcache::OPT_GC_INCR_BYTES,
            default: 64 << 10,
            min: 1,
            max: usize::MAX,
            over: Over::Clamp,
            unsigned: false,
        },
        runtime: None,
    },
    fixed(
        "tcache_gc_delay_bytes",
        Setting::Size(0),
        "GCs a class whatever its last fill",
    ),
    flush_div(
        "lg_tcache_flush_small_div",
        "A full small-class stack keeps capacity >> this items and returns the rest.",
        &tcache::OPT_LG_FLUSH_SMALL_DIV,
    ),
    flush_div(
        "lg_tcache_flush_large_div",
        "A full large-class stack keeps capacity >> this items and returns the rest.",
        &tcache::OPT_LG_FLUSH_LARGE_DIV,
    ),
    fixed("hpa", Setting::Bool(false), "uses its page allocator"),
    fixed("trust_madvise", Setting::Bool(false), "checks madvise results"),
    Opt {
        name: "mutex_max_spin",
        doc: "Times a thread polls a busy lock before it sleeps on it (-1: polls until it is free).",
        kind: Kind::I64 {
            cell: &sync::OPT_MUTEX_MAX_SPIN,
            default: 100,
            min: -1,
            max: i64::MAX,
        },
        runtime: None,
    },
    ignored("prof_time_resolution", "does not record allocation times"),
    ignored("prof_recent_alloc_max", "does not keep recent allocations"),
    ignored("prof_stats", "does not keep per-class sampling statistics"),
    ignored("hpa_slab_max_alloc", "uses its page allocator (as hpa:false)"),
    ignored("hpa_hugification_threshold", "uses its page allocator (as hpa:false)"),
    ignored("hpa_hugify_delay_ms", "uses its page allocator (as hpa:false)"),
    ignored("hpa_min_purge_interval_ms", "uses its page allocator (as hpa:false)"),
    ignored("hpa_dirty_mult", "uses its page allocator (as hpa:false)"),
    ignored("hpa_sec_nshards", "uses its page allocator (as hpa:false)"),
    ignored("hpa_sec_max_alloc", "uses its page allocator (as hpa:false)"),
    ignored("hpa_sec_max_bytes", "uses its page allocator (as hpa:false)"),
    ignored("hpa_sec_bytes_after_flush", "uses its page allocator (as hpa:false)"),
    ignored("hpa_sec_batch_fill_extra", "uses its page allocator (as hpa:false)"),
    ignored("lg_san_uaf_align", "has no use-after-free sanitiser yet"),
    ignored("debug_double_free_max_scan", "checks double frees when the cache flushes"),
];

/// A jemalloc option whose setting is what rjem does (`value`); `instead`
/// completes "rjem ..." in the warning for any other value.
const fn fixed(name: &'static str, value: Setting, instead: &'static str) -> Opt {
    Opt {
        name,
        doc: "Fixed in rjem (a jemalloc 5.3 option): other values are accepted with a warning.",
        kind: Kind::Fixed { value, instead },
        runtime: None,
    }
}

/// A thread-cache stack size (jemalloc's `unsigned`, clamped to
/// `tcache::NSLOTS_LIMIT`).
const fn nslots(
    name: &'static str,
    doc: &'static str,
    cell: &'static AtomicUsize,
    default: usize,
) -> Opt {
    Opt {
        name,
        doc,
        kind: Kind::Size {
            cell,
            default,
            min: 1,
            max: tcache::NSLOTS_LIMIT,
            over: Over::Clamp,
            unsigned: true,
        },
        runtime: None,
    }
}

/// A thread-cache flush divisor (jemalloc's `unsigned`, 1 to 16).
const fn flush_div(name: &'static str, doc: &'static str, cell: &'static AtomicUsize) -> Opt {
    Opt {
        name,
        doc,
        kind: Kind::Size {
            cell,
            default: 1,
            min: 1,
            max: 16,
            over: Over::Clamp,
            unsigned: true,
        },
        runtime: None,
    }
}

/// A jemalloc option rjem accepts and ignores; `instead` completes "rjem
/// ..." in the warning.
const fn ignored(name: &'static str, instead: &'static str) -> Opt {
    Opt {
        name,
        doc: "A jemalloc 5.3 option this version does not implement (accepted with a warning).",
        kind: Kind::Ignored { instead },
        runtime: None,
    }
}

/// What is wrong with (part of) an option string: what rjem reports at
/// start-up, and [`check_conf`](crate::check_conf) returns.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum ConfProblemKind {
    /// Not `name:value`: a name with characters other than ASCII letters,
    /// digits and `_`, or an empty pair (`,,`). As in jemalloc, the rest
    /// of that string is ignored.
    Malformed,
    /// The string ends with a name and no `:value`.
    EndsWithKey,
    /// The string ends with a comma (the pairs before it apply).
    EndsWithComma,
    /// No option has that name.
    UnknownOption,
    /// A known option with a value it cannot read.
    InvalidValue,
    /// A number outside the option's range; the option keeps its value.
    OutOfRange,
    /// A warning: a number above the option's maximum, which the option
    /// was given instead (as jemalloc clamps `tcache_max`, `narenas`,
    /// `lg_tcache_max`).
    Clamped(usize),
    /// A warning: a jemalloc 5.3 option or setting this rjem does not
    /// implement, ignored; says what rjem does instead.
    Unsupported(&'static str),
}

pub(crate) use ConfProblemKind as Problem;

/// A problem in an option string, with the text it is about.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct ConfProblem<'a> {
    /// What is wrong.
    pub kind: ConfProblemKind,
    /// The pair as written (`narenas:abc`); for `Malformed`, the string
    /// from where reading stopped; for `EndsWithKey`, the name; empty for
    /// `EndsWithComma`.
    pub text: &'a [u8],
}

impl ConfProblem<'_> {
    /// Whether this is an error (`abort_conf:true` aborts on it), rather
    /// than a warning (`Clamped`, `Unsupported`).
    pub fn is_error(&self) -> bool {
        !matches!(self.kind, Problem::Clamped(_) | Problem::Unsupported(_))
    }

    /// The option the problem is about, if it names a known one.
    pub fn option(&self) -> Option<&'static str> {
        let colon = self.text.iter().position(|&c| c == b':')?;
        find(&self.text[..colon]).map(|o| o.name)
    }
}

/// The line rjem prints (after `<rjem>: `), for example
/// `Invalid conf value: narenas:abc`. Control characters and bytes that
/// are not UTF-8 are shown as `\xNN`, so that it is one line.
impl fmt::Display for ConfProblem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Problem::Malformed => f.write_str("Malformed conf string, ignored from: ")?,
            Problem::EndsWithKey => f.write_str("Conf string ends with key: ")?,
            Problem::EndsWithComma => f.write_str("Conf string ends with comma")?,
            Problem::UnknownOption => f.write_str("Invalid conf pair: ")?,
            Problem::InvalidValue => f.write_str("Invalid conf value: ")?,
            Problem::OutOfRange => f.write_str("Out-of-range conf value: ")?,
            Problem::Clamped(n) => write!(f, "Out-of-range conf value, clamped to {n}: ")?,
            Problem::Unsupported(instead) => write!(
                f,
                "Option not supported by this rjem (rjem {instead}), ignored: "
            )?,
        }
        for chunk in self.text.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_ascii_control() {
                    write!(f, "\\x{:02x}", c as u8)?;
                } else {
                    f.write_char(c)?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"true" => Some(true),
        b"false" => Some(false),
        _ => None,
    }
}

/// A value read from an option string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    Set(Setting),
    /// A text option's value, as written (`Kind::Text`).
    Text(&'a [u8]),
}

/// A number as jemalloc reads one (C's `strtoumax` with base 0): white
/// space, an optional sign, then decimal digits, or `0x` and hexadecimal
/// ones, or `0` and octal ones, and nothing after. Returns whether it was
/// negative and its magnitude; None if malformed or above 64 bits.
fn parse_number(v: &[u8]) -> Option<(bool, u64)> {
    let start = v
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let (neg, v) = match &v[start..] {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        rest => (false, rest),
    };
    let (digits, radix) = match v {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        [b'0', rest @ ..] if !rest.is_empty() => (rest, 8),
        _ => (v, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)?;
        n = n.checked_mul(radix as u64)?.checked_add(d as u64)?;
    }
    Some((neg, n))
}

/// An unsigned number: a negative one wraps around, as in C (`-1` is the
/// largest), so it is above any maximum.
fn parse_unsigned(v: &[u8]) -> Option<usize> {
    let (neg, n) = parse_number(v)?;
    let n = n as usize;
    Some(if neg { n.wrapping_neg() } else { n })
}

/// A signed 64-bit number; None if malformed or out of `i64`'s range.
fn parse_i64(v: &[u8]) -> Option<i64> {
    let (neg, n) = parse_number(v)?;
    if neg {
        0i64.checked_sub_unsigned(n)
    } else {
        i64::try_from(n).ok()
    }
}

/// `old` combined with a later `new` as `join` says, into `out`; its
/// length, or None if it does not fit.
fn join_text(join: Join, old: &[u8], new: &[u8], out: &mut [u8]) -> Option<usize> {
    fn put(out: &mut [u8], n: &mut usize, bytes: &[u8]) -> Option<()> {
        out.get_mut(*n..*n + bytes.len())?.copy_from_slice(bytes);
        *n += bytes.len();
        Some(())
    }
    let mut n = 0;
    match join {
        Join::Segments if new == b"default" => {}
        Join::Segments => {
            put(out, &mut n, old)?;
            if !old.is_empty() {
                put(out, &mut n, b"|")?;
            }
            put(out, &mut n, new)?;
        }
        Join::Replace => put(out, &mut n, new)?,
        Join::Letters(allowed) => {
            put(out, &mut n, old)?;
            for c in new {
                if allowed.contains(c) && !out[..n].contains(c) {
                    put(out, &mut n, &[*c])?;
                }
            }
        }
    }
    Some(n)
}

impl Opt {
    /// The value `v` means for this option, if valid, and the maximum it
    /// was clamped to, if it was.
    fn parse<'v>(&self, v: &'v [u8]) -> Result<(Parsed<'v>, Option<usize>), Problem> {
        match self.kind {
            Kind::Text { valid, join, .. } => {
                if v.len() <= BOOT_STR_MAX
                    && (valid(v) || (join == Join::Segments && v == b"default"))
                {
                    Ok((Parsed::Text(v), None))
                } else {
                    Err(Problem::InvalidValue)
                }
            }
            _ => self
                .parse_setting(v)
                .map(|(s, clamped)| (Parsed::Set(s), clamped)),
        }
    }

    /// `parse` for options that are not text. Numbers are read as
    /// `parse_number` says; one that cannot be read is invalid, one
    /// outside the option's range out of range (or clamped to the
    /// maximum, as the option says), as in jemalloc.
    fn parse_setting(&self, v: &[u8]) -> Result<(Setting, Option<usize>), Problem> {
        let bad = Problem::InvalidValue;
        let exact = |s: Setting| Ok((s, None));
        match self.kind {
            Kind::Bool { .. } => exact(parse_bool(v).map(Setting::Bool).ok_or(bad)?),
            Kind::Tristate { .. } => exact(parse_bool(v).map(Setting::Bool).ok_or(bad)?),
            Kind::Size {
                min,
                max,
                over,
                unsigned,
                ..
            } => {
                let n = parse_unsigned(v).ok_or(bad)?;
                if n < min {
                    return Err(Problem::OutOfRange);
                }
                match over {
                    _ if n <= max => exact(size_setting(n, unsigned)),
                    Over::Clamp => Ok((size_setting(max, unsigned), Some(max))),
                    Over::Reject => Err(Problem::OutOfRange),
                }
            }
            Kind::Ms { .. } => {
                let ms = parse_i64(v).ok_or(bad)?;
                if decay::valid_ms(ms) {
                    exact(Setting::Ms(ms as isize))
                } else {
                    Err(Problem::OutOfRange)
                }
            }
            Kind::I64 { min, max, .. } => match parse_i64(v) {
                Some(n) if (min..=max).contains(&n) => exact(Setting::I64(n)),
                Some(_) => Err(Problem::OutOfRange),
                None => Err(bad),
            },
            Kind::Choice { names, .. } => exact(
                names
                    .iter()
                    .find(|n| n.to_bytes() == v)
                    .map(|n| Setting::Str(n))
                    .ok_or(bad)?,
            ),
            Kind::Lg { max_lg, .. } => match parse_unsigned(v).ok_or(bad)? {
                n if n <= max_lg as usize => exact(Setting::Size(1 << n)),
                _ => Ok((Setting::Size(1 << max_lg), Some(max_lg as usize))),
            },
            Kind::Fixed { value, instead } => {
                let same = match value {
                    Setting::Bool(b) => parse_bool(v) == Some(b),
                    Setting::Str(w) => w.to_bytes() == v,
                    Setting::Ms(n) => parse_i64(v) == Some(n as i64),
                    Setting::Size(n) => parse_unsigned(v) == Some(n),
                    _ => false,
                };
                if same {
                    exact(value)
                } else {
                    Err(Problem::Unsupported(instead))
                }
            }
            Kind::Ignored { instead } => Err(Problem::Unsupported(instead)),
            Kind::Text { .. } => Err(bad),
        }
    }

    /// The value the option has when nothing sets it.
    pub(crate) fn default(&self) -> Option<Setting> {
        match self.kind {
            Kind::Bool { default, .. } => Some(Setting::Bool(default)),
            Kind::Tristate { .. } => Some(Setting::Unset),
            Kind::Size {
                default, unsigned, ..
            } => Some(size_setting(default, unsigned)),
            Kind::Ms { default, .. } => Some(Setting::Ms(default as isize)),
            Kind::I64 { default, .. } => Some(Setting::I64(default)),
            Kind::Text { default, .. } => Some(Setting::Str(default)),
            Kind::Choice { names, default, .. } => Some(Setting::Str(names[default as usize])),
            Kind::Fixed { value, .. } => Some(value),
            Kind::Lg { .. } | Kind::Ignored { .. } => None,
        }
    }

    /// Stores `v` (a value `parse` produced, or the default) where the
    /// owner reads it; a text value is joined to what earlier pairs set.
    /// Start-up only (`boot`). Fails when joined text is too long.
    fn store(&self, v: Parsed) -> Result<(), Problem> {
        let s = match (&self.kind, v) {
            (Kind::Text { cell, join, .. }, Parsed::Text(t)) => {
                let mut buf = [0u8; BOOT_STR_MAX];
                let n = join_text(*join, cell.get().to_bytes(), t, &mut buf)
                    .ok_or(Problem::InvalidValue)?;
                // SAFETY: `boot` runs on the initialising thread before any
                // other can read options.
                return match unsafe { cell.set(&buf[..n]) } {
                    true => Ok(()),
                    false => Err(Problem::InvalidValue),
                };
            }
            (Kind::Text { cell, default, .. }, _) => {
                // SAFETY: as above (the default).
                unsafe { cell.set(default.to_bytes()) };
                return Ok(());
            }
            (_, Parsed::Text(_)) => return Err(Problem::InvalidValue),
            (_, Parsed::Set(s)) => s,
        };
        match (&self.kind, s) {
            (Kind::Bool { cell, .. }, Setting::Bool(b)) => cell.store(b, Relaxed),
            (Kind::Tristate { cell, .. }, s) => cell.store(
                match s {
                    Setting::Bool(true) => background::ON,
                    Setting::Bool(false) => background::OFF,
                    _ => background::UNSET,
                },
                Relaxed,
            ),
            (Kind::Size { cell, .. }, Setting::Size(n)) => cell.store(n, Relaxed),
            (Kind::Size { cell, .. }, Setting::Unsigned(n)) => cell.store(n as usize, Relaxed),
            (Kind::Ms { cell, .. }, Setting::Ms(ms)) => cell.store(ms as i64, Relaxed),
            (Kind::I64 { cell, .. }, Setting::I64(n)) => cell.store(n, Relaxed),
            (Kind::Choice { cell, names, .. }, Setting::Str(w)) => {
                let i = names.iter().position(|n| *n == w).unwrap_or(0);
                cell.store(i as u8, Relaxed)
            }
            (Kind::Lg { cell, .. }, Setting::Size(n)) => cell.store(n, Relaxed),
            // It already is what was asked.
            (Kind::Fixed { .. }, _) => {}
            _ => debug_assert!(false, "option {} given a value of another type", self.name),
        }
        Ok(())
    }

    /// The value in force (None for ignored options).
    pub(crate) fn current(&self) -> Option<Setting> {
        Some(match self.kind {
            Kind::Bool { cell, .. } => Setting::Bool(cell.load(Relaxed)),
            Kind::Tristate { cell, unset } => match cell.load(Relaxed) {
                background::ON => Setting::Bool(true),
                background::OFF => Setting::Bool(false),
                _ => unset,
            },
            Kind::Size { cell, unsigned, .. } => size_setting(cell.load(Relaxed), unsigned),
            Kind::Ms { cell, .. } => Setting::Ms(cell.load(Relaxed) as isize),
            Kind::I64 { cell, .. } => Setting::I64(cell.load(Relaxed)),
            Kind::Text { cell, .. } => Setting::Str(cell.get()),
            Kind::Choice { cell, names, .. } => {
                Setting::Str(names[(cell.load(Relaxed) as usize).min(names.len() - 1)])
            }
            Kind::Fixed { value, .. } => value,
            Kind::Lg { .. } | Kind::Ignored { .. } => return None,
        })
    }
}

fn size_setting(n: usize, unsigned: bool) -> Setting {
    if unsigned {
        Setting::Unsigned(n.min(u32::MAX as usize) as u32)
    } else {
        Setting::Size(n)
    }
}

/// The row of option `name`.
pub(crate) fn find(name: &[u8]) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.name.as_bytes() == name)
}

/// One step of reading an option string.
pub(crate) enum Step<'a> {
    /// A good pair (`text`): its option and value, to apply in order (a
    /// later pair wins).
    Pair {
        opt: &'static Opt,
        value: Parsed<'a>,
        text: &'a [u8],
    },
    /// Something to report.
    Problem(ConfProblem<'a>),
}

/// Reads an option string with jemalloc 5.3's grammar, step by step:
/// pairs `name:value` separated by commas, a name being ASCII letters,
/// digits and `_`, a value anything up to the next comma. Reading stops at
/// the first malformed pair. Never allocates.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    /// Problems found with the last pair, yielded after it.
    queued: [Option<ConfProblem<'a>>; 2],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Reader<'a> {
        Reader {
            rest: s,
            queued: [None, None],
        }
    }

    fn problem(kind: Problem, text: &'a [u8]) -> Step<'a> {
        Step::Problem(ConfProblem { kind, text })
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Step<'a>;

    fn next(&mut self) -> Option<Step<'a>> {
        for q in &mut self.queued {
            if let Some(p) = q.take() {
                return Some(Step::Problem(p));
            }
        }
        let s = self.rest;
        if s.is_empty() {
            return None;
        }
        let klen = s
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
            .unwrap_or(s.len());
        self.rest = &[];
        match s.get(klen) {
            Some(b':') => {}
            None => return Some(Self::problem(Problem::EndsWithKey, s)),
            Some(_) => return Some(Self::problem(Problem::Malformed, s)),
        }
        let end = s.iter().position(|&c| c == b',').unwrap_or(s.len());
        let text = &s[..end];
        if end < s.len() {
            self.rest = &s[end + 1..];
            if self.rest.is_empty() {
                self.queued[1] = Some(ConfProblem {
                    kind: Problem::EndsWithComma,
                    text: &[],
                });
            }
        }
        let Some(opt) = find(&s[..klen]) else {
            return Some(Self::problem(Problem::UnknownOption, text));
        };
        Some(match opt.parse(&s[klen + 1..end]) {
            Ok((value, clamped)) => {
                if let Some(max) = clamped {
                    self.queued[0] = Some(ConfProblem {
                        kind: Problem::Clamped(max),
                        text,
                    });
                }
                Step::Pair { opt, value, text }
            }
            Err(p) => Self::problem(p, text),
        })
    }
}

/// The problems in option string `s`, in order, as start-up would report
/// them (see [`check_conf`](crate::check_conf)).
pub(crate) fn problems(s: &[u8]) -> impl Iterator<Item = ConfProblem<'_>> {
    Reader::new(s).filter_map(|step| match step {
        Step::Problem(p) => Some(p),
        Step::Pair { .. } => None,
    })
}

/// The option strings, in jemalloc's order (a later setting wins): the
/// program's `malloc_conf` symbol, the name `/etc/malloc.conf` links to,
/// and the `MALLOC_CONF` environment variable. `f(label, string)` for each
/// present.
fn sources(f: &mut dyn FnMut(&str, &[u8])) {
    if let Some(s) = os::program_conf() {
        f("malloc_conf symbol", s);
    }
    let mut buf = [0u8; 256];
    if let Some(s) = os::readlink(c"/etc/malloc.conf", &mut buf) {
        f("/etc/malloc.conf", s);
    }
    if let Some(s) = os::getenv(c"MALLOC_CONF") {
        f("MALLOC_CONF", s);
    }
}

/// Sets every option from its default and the option strings (start-up,
/// before the owners read them). A bad pair is reported and skipped; with
/// `abort_conf:true` or `abort:true` it aborts.
pub(crate) fn boot() {
    for o in OPTIONS {
        if let Some(d) = o.default() {
            let _ = o.store(Parsed::Set(d));
        }
    }
    let mut bad = false;
    sources(&mut |_, s| {
        for step in Reader::new(s) {
            let p = match step {
                Step::Pair { opt, value, text } => match opt.store(value) {
                    Ok(()) => continue,
                    Err(kind) => ConfProblem { kind, text },
                },
                Step::Problem(p) => p,
            };
            use fmt::Write;
            let _ = writeln!(os::Msg::new(), "<rjem>: {p}");
            bad |= p.is_error();
        }
    });
    if bad && (OPT_ABORT_CONF.load(Relaxed) || os::OPT_ABORT.load(Relaxed) == os::ABORT_ON) {
        os::write_stderr(b"<rjem>: Aborting on an invalid option (abort_conf or abort)\n");
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() }
    }
    let junk = match OPT_JUNK.load(Relaxed) {
        1 => FILL_JUNK_ALLOC | FILL_JUNK_FREE,
        2 => FILL_JUNK_ALLOC,
        3 => FILL_JUNK_FREE,
        _ => 0,
    };
    let zero = if OPT_ZERO.load(Relaxed) { FILL_ZERO } else { 0 };
    FILL.store(junk | zero, Relaxed);
}

/// With `confirm_conf:true`, prints the string read, then every option in
/// force (start-up, once the owners have resolved their values, such as
/// `narenas`).
pub(crate) fn confirm() {
    use fmt::Write;
    if !OPT_CONFIRM_CONF.load(Relaxed) {
        return;
    }
    sources(&mut |label, s| {
        let mut m = os::Msg::new();
        let s = core::str::from_utf8(s).unwrap_or("(not UTF-8)");
        let _ = writeln!(m, "<rjem>: {label}: \"{s}\"");
    });
    for o in OPTIONS {
        let (Some(v), Some(d)) = (o.current(), o.default()) else {
            continue;
        };
        let mut m = os::Msg::new();
        let _ = write!(m, "<rjem>: -- {}:{v}", o.name);
        let _ = writeln!(m, "{}", if v == d { " (default)" } else { "" });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::parse_usize;
    extern crate std;
    use std::vec::Vec;

    type Applied = Vec<(&'static str, Setting)>;
    type Reported = Vec<(Problem, Vec<u8>)>;

    fn run(s: &str) -> (Applied, Reported) {
        let mut set = Vec::new();
        let mut errs = Vec::new();
        for step in Reader::new(s.as_bytes()) {
            match step {
                Step::Pair { opt, value, .. } => set.push((opt.name, setting(value))),
                Step::Problem(p) => errs.push((p.kind, p.text.to_vec())),
            }
        }
        (set, errs)
    }

    /// A parsed value as a setting (text is leaked: tests only).
    fn setting(v: Parsed) -> Setting {
        match v {
            Parsed::Set(s) => s,
            Parsed::Text(t) => {
                let c = std::ffi::CString::new(t).unwrap();
                Setting::Str(std::boxed::Box::leak(c.into_boxed_c_str()))
            }
        }
    }

    fn one(s: &str) -> Result<Setting, Problem> {
        let (set, errs) = run(s);
        match (set.as_slice(), errs.as_slice()) {
            ([(_, v)], []) => Ok(*v),
            ([], [(p, _)]) => Err(*p),
            _ => panic!("{s}: {set:?} {errs:?}"),
        }
    }

    #[test]
    fn good_options() {
        let (set, errs) =
            run("narenas:3,tcache:false,tcache_max:0x1000,lg_extent_max_active_fit:8");
        assert!(errs.is_empty());
        assert_eq!(
            set,
            [
                ("narenas", Setting::Unsigned(3)),
                ("tcache", Setting::Bool(false)),
                ("tcache_max", Setting::Size(4096)),
                ("lg_extent_max_active_fit", Setting::Size(8)),
            ]
        );
    }

    #[test]
    fn bad_options_are_named_and_skipped() {
        let (set, errs) = run("narenas:abc,bogus:1,utrace:true,tcache_max:99999999999");
        assert_eq!(set, [("tcache_max", Setting::Size(tcache::MAX_LIMIT))]);
        assert_eq!(
            errs,
            [
                (Problem::InvalidValue, b"narenas:abc".to_vec()),
                (Problem::UnknownOption, b"bogus:1".to_vec()),
                (
                    Problem::Unsupported("does not trace"),
                    b"utrace:true".to_vec()
                ),
                (
                    Problem::Clamped(tcache::MAX_LIMIT),
                    b"tcache_max:99999999999".to_vec()
                ),
            ]
        );
        // Asking for what rjem does is not a problem.
        assert_eq!(one("junk:false"), Ok(Setting::Str(c"false")));
        assert_eq!(one("junk:alloc"), Ok(Setting::Str(c"alloc")));
        assert_eq!(one("junk:yes"), Err(Problem::InvalidValue));
        assert_eq!(one("stats_print:false"), Ok(Setting::Bool(false)));
        assert_eq!(one("dss:disabled"), Ok(Setting::Str(c"disabled")));
        assert!(matches!(one("dss:primary"), Err(Problem::Unsupported(_))));
    }

    /// The one setting `s` applies, and the maximum it was clamped to.
    fn clamped(s: &str) -> (Setting, usize) {
        match run(s) {
            (set, errs) if set.len() == 1 && errs.len() == 1 => match errs[0].0 {
                Problem::Clamped(max) => (set[0].1, max),
                _ => panic!("{s}: {errs:?}"),
            },
            r => panic!("{s}: {r:?}"),
        }
    }

    #[test]
    fn ranges() {
        // Below the minimum: out of range (jemalloc's message); above the
        // maximum: out of range, or clamped where jemalloc clamps.
        assert_eq!(one("narenas:0"), Err(Problem::OutOfRange));
        assert_eq!(one("narenas:4095"), Ok(Setting::Unsigned(4095)));
        assert_eq!(clamped("narenas:4096"), (Setting::Unsigned(4095), 4095));
        assert_eq!(one("lg_extent_max_active_fit:64"), Err(Problem::OutOfRange));
        // Too many digits for 64 bits: unreadable, as in jemalloc.
        assert_eq!(
            one("tcache_max:999999999999999999999999"),
            Err(Problem::InvalidValue)
        );
        // A negative number wraps around as C's strtoumax does.
        let max = tcache::MAX_LIMIT;
        assert_eq!(clamped("tcache_max:-1"), (Setting::Size(max), max));
        assert_eq!(one("oversize_threshold:-1"), Err(Problem::OutOfRange));
        assert_eq!(one("oversize_threshold:0"), Ok(Setting::Size(0)));
        assert_eq!(one("stats_interval:-2"), Err(Problem::OutOfRange));
        assert_eq!(one("stats_interval:-1"), Ok(Setting::I64(-1)));
        assert_eq!(one("max_background_threads:"), Err(Problem::InvalidValue));
        assert_eq!(one("retain:yes"), Err(Problem::InvalidValue));
        assert_eq!(one("narenas:2\u{0}"), Err(Problem::InvalidValue));
    }

    #[test]
    fn purging_options() {
        let (set, errs) = run(
            "dirty_decay_ms:-1,muzzy_decay_ms:500,retain:false,background_thread:true,oversize_threshold:0",
        );
        assert!(errs.is_empty());
        assert_eq!(
            set,
            [
                ("dirty_decay_ms", Setting::Ms(-1)),
                ("muzzy_decay_ms", Setting::Ms(500)),
                ("retain", Setting::Bool(false)),
                ("background_thread", Setting::Bool(true)),
                ("oversize_threshold", Setting::Size(0)),
            ]
        );
        assert_eq!(one("dirty_decay_ms:-2"), Err(Problem::OutOfRange));
        assert_eq!(one("muzzy_decay_ms:x"), Err(Problem::InvalidValue));
        assert_eq!(
            one("dirty_decay_ms:31536000001"),
            Err(Problem::OutOfRange),
            "a year and a millisecond"
        );
    }

    #[test]
    fn words_and_logarithms() {
        assert_eq!(one("zero_realloc:alloc"), Ok(Setting::Str(c"alloc")));
        assert_eq!(one("zero_realloc:Alloc"), Err(Problem::InvalidValue));
        assert_eq!(one("thp:never"), Ok(Setting::Str(c"never")));
        assert_eq!(one("metadata_thp:sometimes"), Err(Problem::InvalidValue));
        // lg_tcache_max sets tcache_max.
        assert_eq!(one("lg_tcache_max:12"), Ok(Setting::Size(4096)));
        assert_eq!(
            clamped("lg_tcache_max:24"),
            (Setting::Size(tcache::MAX_LIMIT), 23)
        );
        assert_eq!(one("lg_tcache_max:x"), Err(Problem::InvalidValue));
        assert!(find(b"lg_tcache_max").unwrap().default().is_none());
        assert_eq!(one("percpu_arena:phycpu"), Ok(Setting::Str(c"phycpu")));
        assert_eq!(one("percpu_arena:cpu"), Err(Problem::InvalidValue));
    }

    #[test]
    fn every_jemalloc_option_is_known() {
        // jemalloc 5.3's documented opt.* names, all of which rjem answers
        // (implemented, or accepted and ignored with a note).
        for name in [
            "abort",
            "confirm_conf",
            "abort_conf",
            "cache_oblivious",
            "metadata_thp",
            "trust_madvise",
            "retain",
            "dss",
            "narenas",
            "oversize_threshold",
            "percpu_arena",
            "background_thread",
            "max_background_threads",
            "dirty_decay_ms",
            "muzzy_decay_ms",
            "lg_extent_max_active_fit",
            "stats_print",
            "stats_print_opts",
            "stats_interval",
            "stats_interval_opts",
            "junk",
            "zero",
            "utrace",
            "xmalloc",
            "tcache",
            "tcache_max",
            "thp",
            "prof",
            "prof_prefix",
            "prof_active",
            "prof_thread_active_init",
            "lg_prof_sample",
            "prof_accum",
            "lg_prof_interval",
            "prof_gdump",
            "prof_final",
            "prof_leak",
            "prof_leak_error",
            "zero_realloc",
        ] {
            assert!(find(name.as_bytes()).is_some(), "{name}");
        }
    }

    #[test]
    fn text_options() {
        let s = |v: &str| {
            Setting::Str(std::boxed::Box::leak(
                std::ffi::CString::new(v).unwrap().into_boxed_c_str(),
            ))
        };
        assert_eq!(
            one("slab_sizes:1-4096:17|100-200:1"),
            Ok(s("1-4096:17|100-200:1"))
        );
        assert_eq!(one("slab_sizes:default"), Ok(s("default")));
        assert_eq!(one("slab_sizes:1-4096"), Err(Problem::InvalidValue));
        assert_eq!(one("slab_sizes:"), Err(Problem::InvalidValue));
        // Later pairs add segments; `default` forgets them.
        let mut out = [0u8; 64];
        let seg = |old: &str, new: &str| {
            let mut o = [0u8; 64];
            join_text(Join::Segments, old.as_bytes(), new.as_bytes(), &mut o)
                .map(|n| std::string::String::from_utf8(o[..n].to_vec()).unwrap())
        };
        assert_eq!(seg("", "1-8:2").as_deref(), Some("1-8:2"));
        assert_eq!(seg("1-8:2", "9-9:1").as_deref(), Some("1-8:2|9-9:1"));
        assert_eq!(seg("1-8:2", "default").as_deref(), Some(""));
        let n = join_text(Join::Letters(b"Jgmdablxeh"), b"Jg", b"gbZJa", &mut out).unwrap();
        assert_eq!(&out[..n], b"Jgba", "valid letters, each once");
        assert_eq!(
            join_text(Join::Segments, b"12345", b"678", &mut out[..8]),
            None
        );
    }

    #[test]
    fn grammar_is_jemallocs() {
        let p = |kind, text: &str| (kind, text.as_bytes().to_vec());
        // Empty pairs, and names with other characters, are malformed: the
        // rest of the string is ignored.
        let four: &[_] = &[("narenas", Setting::Unsigned(4))];
        for (s, rest, applied) in [
            (",,,,", ",,,,", &[][..]),
            (",narenas:4", ",narenas:4", &[]),
            ("narenas:4,,narenas:5", ",narenas:5", four),
            (" narenas:4", " narenas:4", &[]),
            ("nar enas:4", "nar enas:4", &[]),
            ("narenas:4,tcache,narenas:1", "tcache,narenas:1", four),
        ] {
            let (set, errs) = run(s);
            assert_eq!(errs, [p(Problem::Malformed, rest)], "{s}");
            assert_eq!(set, applied, "{s}");
        }
        assert_eq!(run("narenas").1, [p(Problem::EndsWithKey, "narenas")]);
        let (set, errs) = run("narenas:4,");
        assert_eq!(set, [("narenas", Setting::Unsigned(4))]);
        assert_eq!(errs, [p(Problem::EndsWithComma, "")]);
        assert_eq!(run(""), (Vec::new(), Vec::new()));
        // A value runs to the next comma, colons included.
        assert_eq!(one("narenas:4:5"), Err(Problem::InvalidValue));
        assert_eq!(run(":4").1, [p(Problem::UnknownOption, ":4")]);
        // Numbers as strtoumax reads them; words exactly.
        assert_eq!(one("narenas: 4"), Ok(Setting::Unsigned(4)));
        assert_eq!(one("narenas:\t+5"), Ok(Setting::Unsigned(5)));
        assert_eq!(one("narenas:010"), Ok(Setting::Unsigned(8)));
        assert_eq!(one("narenas:0x10"), Ok(Setting::Unsigned(16)));
        assert_eq!(one("narenas:08"), Err(Problem::InvalidValue));
        assert_eq!(one("narenas:4 "), Err(Problem::InvalidValue));
        assert_eq!(one("dirty_decay_ms: -1"), Ok(Setting::Ms(-1)));
        assert_eq!(one("tcache: true"), Err(Problem::InvalidValue));
        assert_eq!(one("thp: never"), Err(Problem::InvalidValue));
    }

    #[test]
    fn messages() {
        let msg = |s: &str| {
            let v: Vec<_> = problems(s.as_bytes())
                .map(|p| std::format!("{p}"))
                .collect();
            v.join("\n")
        };
        assert_eq!(msg("narenas:x"), "Invalid conf value: narenas:x");
        assert_eq!(msg("nosuch:1"), "Invalid conf pair: nosuch:1");
        assert_eq!(msg("narenas:0"), "Out-of-range conf value: narenas:0");
        assert_eq!(
            msg("narenas:5000"),
            "Out-of-range conf value, clamped to 4095: narenas:5000"
        );
        assert_eq!(msg("a,b"), "Malformed conf string, ignored from: a,b");
        assert_eq!(msg("narenas:1,"), "Conf string ends with comma");
        assert_eq!(msg("narenas"), "Conf string ends with key: narenas");
        assert_eq!(msg("narenas:\u{e9}"), "Invalid conf value: narenas:\u{e9}");
        let bytes = problems(b"narenas:\xff").next().unwrap();
        assert_eq!(std::format!("{bytes}"), "Invalid conf value: narenas:\\xff");
        let ctl = problems(b"narenas:1\n2\t").next().unwrap();
        assert_eq!(
            std::format!("{ctl}"),
            "Invalid conf value: narenas:1\\x0a2\\x09"
        );
        let p = problems(b"narenas:x").next().unwrap();
        assert_eq!((p.option(), p.is_error()), (Some("narenas"), true));
        let p = problems(b"utrace:true").next().unwrap();
        assert_eq!((p.option(), p.is_error()), (Some("utrace"), false));
        assert_eq!(problems(b"x:1").next().unwrap().option(), None);
    }

    #[test]
    fn signed_numbers() {
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"1048576"), Some(1 << 20));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"--1"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_usize(b"0"), Some(0));
        assert_eq!(parse_usize(b"18446744073709551615"), Some(usize::MAX));
        assert_eq!(parse_usize(b"18446744073709551616"), None);
        assert_eq!(parse_usize(b""), None);
        assert_eq!(parse_usize(b"-1"), None);
        assert_eq!(parse_usize(b"0x"), None);
        assert_eq!(parse_usize(b"0xFf"), Some(255));
    }

    #[test]
    fn table_is_consistent() {
        for (i, o) in OPTIONS.iter().enumerate() {
            assert!(
                OPTIONS[..i].iter().all(|p| p.name != o.name),
                "{} twice",
                o.name
            );
            assert!(!o.doc.is_empty());
            // Every implemented option's default survives its own parser.
            if let Some(d) = o.default() {
                let text = std::format!("{d}");
                let text_kind = matches!(o.kind, Kind::Text { .. });
                if d != Setting::Unset && !(o.name == "narenas" && text == "0") && !text_kind {
                    assert_eq!(
                        o.parse(text.as_bytes()),
                        Ok((Parsed::Set(d), None)),
                        "{}",
                        o.name
                    );
                }
            }
        }
    }
}
