//! `malloc_stats_print`: jemalloc 5.3's statistics report, as text or JSON.
//!
//! Owns: the layout of the report. Every number comes from the control
//! tree by name (`ctl`), as jemalloc's own printer reads its `mallctl`s,
//! so the report and the controls can never disagree. Nothing allocates:
//! text is formatted into a fixed buffer that is handed to the caller's
//! sink in pieces.
//!
//! Options (jemalloc's letters): `J` JSON instead of text; `g` leaves out
//! the general information (version, build and run-time settings, size
//! classes), `m` the merged arena statistics, `d` the destroyed arenas'
//! statistics, `a` the per-arena statistics, `b` the bins, `l` the large
//! classes, `x` the lock statistics, `e` the free extents per size. `h`
//! (HPA) leaves out a section rjem has no use for.
//!
//! Also the options that print it unasked: `stats_print` (at exit) and
//! `stats_interval` (every so many bytes a thread allocates), written to
//! option `stats_fd`'s descriptor. The thread
//! layer counts the bytes and raises `tcache::REPORT_DUE`; the fronts call
//! `poll` on their allocation slow paths (never on a hit), which prints
//! there, on the allocating thread, holding no allocator lock.

use crate::conf;
use crate::ctl::{self, Value, ARENAS_ALL};
use crate::os;
use crate::profiler as prof;
use crate::tcache::{REPORT_AT_EXIT, REPORT_DUE, REPORT_INTERVAL, REPORT_PROF};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Does what `tcache::REPORT_DUE` asks, if anything: registers the exit
/// report (`stats_print`), prints an interval report (`stats_interval`).
/// For the fronts' allocation slow paths: one load when there is nothing.
#[inline]
pub(crate) fn poll() {
    if REPORT_DUE.load(Relaxed) != 0 {
        poll_due();
    }
}

/// An interval report is being printed (another one due meanwhile is
/// skipped rather than interleaved).
static PRINTING: AtomicBool = AtomicBool::new(false);

#[cold]
#[inline(never)]
fn poll_due() {
    let due = REPORT_DUE.swap(0, Relaxed);
    if due & REPORT_AT_EXIT != 0 {
        // SAFETY: `at_exit` is a plain function that neither unwinds nor
        // allocates. glibc's atexit may allocate: `REPORT_DUE` is already
        // clear, so that allocation's own poll does nothing.
        unsafe { libc::atexit(at_exit) };
    }
    if due & REPORT_PROF != 0 {
        prof::poll();
    }
    if due & REPORT_INTERVAL != 0 && !PRINTING.swap(true, Relaxed) {
        to_stats_fd(conf::OPT_STATS_INTERVAL_OPTS.get());
        PRINTING.store(false, Relaxed);
    }
}

extern "C" fn at_exit() {
    to_stats_fd(conf::OPT_STATS_PRINT_OPTS.get());
}

/// Prints the report with option letters `opts` on the descriptor of
/// option `stats_fd` (stderr by default, as jemalloc's
/// `malloc_stats_print(NULL, NULL, opts)` without a `malloc_message`).
fn to_stats_fd(opts: &core::ffi::CStr) {
    let fd = conf::OPT_STATS_FD.load(Relaxed);
    let fd = i32::try_from(fd).unwrap_or(2);
    print(opts.to_str().unwrap_or(""), &mut |s| {
        os::write_fd(fd, s.as_bytes())
    });
}

/// Which sections to print.
#[derive(Clone, Copy)]
struct Opts {
    json: bool,
    general: bool,
    merged: bool,
    arenas: bool,
    bins: bool,
    large: bool,
    destroyed: bool,
    mutex: bool,
    extents: bool,
}

impl Opts {
    fn parse(s: &str) -> Opts {
        let has = |c| s.contains(c);
        Opts {
            json: has('J'),
            general: !has('g'),
            merged: !has('m'),
            arenas: !has('a'),
            bins: !has('b'),
            large: !has('l'),
            destroyed: !has('d'),
            mutex: !has('x'),
            extents: !has('e'),
        }
    }
}

/// Text formatted into a fixed buffer and passed to `sink` when full (and
/// at the end), never cut inside a UTF-8 character.
struct Out<'a> {
    buf: [u8; 4096],
    len: usize,
    sink: &'a mut dyn FnMut(&str),
}

impl Out<'_> {
    fn flush(&mut self) {
        if self.len > 0 {
            // Only whole `str`s are ever copied in, so this is UTF-8.
            if let Ok(s) = core::str::from_utf8(&self.buf[..self.len]) {
                (self.sink)(s);
            }
            self.len = 0;
        }
    }
}

impl Write for Out<'_> {
    fn write_str(&mut self, mut s: &str) -> fmt::Result {
        while !s.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let room = self.buf.len() - self.len;
            let mut n = s.len().min(room);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            if n == 0 {
                self.flush();
                continue;
            }
            self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            s = &s[n..];
        }
        Ok(())
    }
}

/// A control name built on the stack.
struct Name {
    buf: [u8; 96],
    len: usize,
}

impl Write for Name {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Reads the control named by `args` (Void if it cannot be read).
fn get(args: fmt::Arguments) -> Value {
    let mut n = Name {
        buf: [0; 96],
        len: 0,
    };
    if n.write_fmt(args).is_err() {
        return Value::Void;
    }
    // Only `str`s were written.
    match core::str::from_utf8(&n.buf[..n.len]) {
        Ok(name) => ctl::read(name).unwrap_or(Value::Void),
        Err(_) => Value::Void,
    }
}

/// A number from a control (0 if it has none).
fn num(args: fmt::Arguments) -> u64 {
    match get(args) {
        Value::Bool(b) => b as u64,
        Value::U32(n) => n as u64,
        Value::U64(n) => n,
        Value::Usize(n) => n as u64,
        Value::Isize(n) => n as u64,
        _ => 0,
    }
}

/// A value as JSON (and, strings unquoted aside, as text).
struct Json(Value);

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Void => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::U32(n) => write!(f, "{n}"),
            Value::U64(n) => write!(f, "{n}"),
            Value::Usize(n) => write!(f, "{n}"),
            Value::Isize(n) => write!(f, "{n}"),
            Value::Ptr(p) => write!(f, "\"{p:p}\""),
            Value::Str(s) => {
                f.write_char('"')?;
                for c in s.to_str().unwrap_or("").chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                        c => f.write_char(c)?,
                    }
                }
                f.write_char('"')
            }
        }
    }
}

/// A JSON writer that places the commas: one flag per open level.
struct Emitter<'o, 'a> {
    out: &'o mut Out<'a>,
    first: [bool; 16],
    depth: usize,
}

impl Emitter<'_, '_> {
    fn sep(&mut self) -> fmt::Result {
        if self.first[self.depth] {
            self.first[self.depth] = false;
            Ok(())
        } else {
            self.out.write_char(',')
        }
    }
    fn open(&mut self, key: Option<&str>, bracket: char) -> fmt::Result {
        self.sep()?;
        if let Some(k) = key {
            write!(self.out, "\"{k}\":")?;
        }
        self.out.write_char(bracket)?;
        self.depth += 1;
        self.first[self.depth] = true;
        Ok(())
    }
    fn obj(&mut self, key: &str) -> fmt::Result {
        self.open(Some(key), '{')
    }
    fn item_obj(&mut self) -> fmt::Result {
        self.open(None, '{')
    }
    fn arr(&mut self, key: &str) -> fmt::Result {
        self.open(Some(key), '[')
    }
    fn close(&mut self, bracket: char) -> fmt::Result {
        self.depth -= 1;
        self.out.write_char(bracket)
    }
    fn kv(&mut self, key: &str, v: Value) -> fmt::Result {
        self.sep()?;
        write!(self.out, "\"{key}\":{}", Json(v))
    }
}

/// Writes the report for `opts` to `sink`, in pieces.
pub(crate) fn print(opts: &str, sink: &mut dyn FnMut(&str)) {
    let o = Opts::parse(opts);
    // As jemalloc's report: fresh totals first.
    let _ = ctl::write("epoch", Value::U64(1));
    let mut out = Out {
        buf: [0; 4096],
        len: 0,
        sink,
    };
    // A formatting error only means a value could not be written: the rest
    // of the report is still useful.
    let _ = if o.json {
        json(&o, &mut out)
    } else {
        text(&o, &mut out)
    };
    out.flush();
}

const CONFIG: &[&str] = &[
    "cache_oblivious",
    "debug",
    "fill",
    "lazy_lock",
    "malloc_conf",
    "opt_safety_checks",
    "prof",
    "prof_libgcc",
    "prof_libunwind",
    "stats",
    "utrace",
    "xmalloc",
];

/// Totals and arena-independent facts under `stats`.
const TOTALS: &[&str] = &[
    "allocated",
    "active",
    "metadata",
    "metadata_thp",
    "resident",
    "mapped",
    "retained",
];

/// Per-arena counters printed as plain numbers.
const ARENA_FIELDS: &[&str] = &[
    "nthreads",
    "uptime",
    "dss",
    "dirty_decay_ms",
    "muzzy_decay_ms",
    "pactive",
    "pdirty",
    "pmuzzy",
    "dirty_npurge",
    "dirty_nmadvise",
    "dirty_purged",
    "muzzy_npurge",
    "muzzy_nmadvise",
    "muzzy_purged",
];

/// Per-arena memory figures, in bytes (text: one line each).
const ARENA_MEMORY: &[&str] = &[
    "mapped",
    "retained",
    "extent_avail",
    "base",
    "internal",
    "metadata_thp",
    "tcache_bytes",
    "tcache_stashed_bytes",
    "resident",
    "abandoned_vm",
];

/// A lock's profile, in jemalloc's order.
const LOCK_FIELDS: &[&str] = &[
    "num_ops",
    "num_wait",
    "num_spin_acq",
    "num_owner_switch",
    "total_wait_time",
    "max_wait_time",
    "max_num_thds",
];

/// Process-wide locks (`stats.mutexes.*`).
const GLOBAL_LOCKS: &[&str] = &["ctl", "prof", "arenas", "base", "tcaches"];

/// Options that can change at run time, and the control that holds the
/// value in force (the text report prints both, as jemalloc does).
const MUTABLE: &[(&str, &str)] = &[
    ("background_thread", "background_thread"),
    ("dirty_decay_ms", "arenas.dirty_decay_ms"),
    ("muzzy_decay_ms", "arenas.muzzy_decay_ms"),
    ("prof_active", "prof.active"),
    ("prof_thread_active_init", "prof.thread_active_init"),
    ("lg_prof_sample", "prof.lg_sample"),
];

/// The profiler's settings in force (`prof.*`), under "prof".
const PROF: &[&str] = &[
    "thread_active_init",
    "active",
    "gdump",
    "interval",
    "lg_sample",
];

/// Free extents of one page-size class, by state.
const EXTENT_FIELDS: &[&str] = &[
    "ndirty",
    "nmuzzy",
    "nretained",
    "dirty_bytes",
    "muzzy_bytes",
    "retained_bytes",
];

/// rjem's breakdown of `metadata` (and the pointer map's address space).
const METADATA_DETAIL: &[&str] = &[
    "arenas",
    "extent_records",
    "slab_bitmaps",
    "explicit_tcaches",
    "pointer_map",
];

const CLASS_FIELDS: &[&str] = &[
    "allocated",
    "nmalloc",
    "ndalloc",
    "nrequests",
    "nfills",
    "nflushes",
];

const BIN_FIELDS: &[&str] = &[
    "nmalloc",
    "ndalloc",
    "curregs",
    "nrequests",
    "nfills",
    "nflushes",
    "nslabs",
    "nreslabs",
    "curslabs",
    "nonfull_slabs",
];

const LEXTENT_FIELDS: &[&str] = &["nmalloc", "ndalloc", "nrequests", "curlextents"];

/// Whether any arena was destroyed (its counters are in the graveyard).
fn any_destroyed() -> bool {
    let n = |k: &str| num(format_args!("stats.arenas.{}.{k}.nmalloc", ARENAS_ALL + 1));
    n("small") + n("large") > 0
}

/// Page-size classes: the size classes that are whole pages, in order.
fn page_classes() -> impl Iterator<Item = u64> {
    let page = num(format_args!("arenas.page"));
    let nbins = num(format_args!("arenas.nbins"));
    let nl = num(format_args!("arenas.nlextents"));
    (0..nbins)
        .map(|j| num(format_args!("arenas.bin.{j}.size")))
        .chain((0..nl).map(|j| num(format_args!("arenas.lextent.{j}.size"))))
        .filter(move |s| s % page == 0)
}

/// Writes a lock's profile as a JSON object named `key`.
fn json_lock(e: &mut Emitter, key: &str, prefix: fmt::Arguments) -> fmt::Result {
    e.obj(key)?;
    for k in LOCK_FIELDS {
        e.kv(k, get(format_args!("{prefix}.{k}")))?;
    }
    e.close('}')
}

/// Arena indices to report one by one: those created.
fn initialized(i: usize) -> bool {
    get(format_args!("arena.{i}.initialized")) == Value::Bool(true)
}

/// Whether a merged section says more than the one arena's (jemalloc
/// prints it when more than one arena is in use).
fn merge_worth_it(narenas: usize) -> bool {
    (0..narenas).filter(|&i| initialized(i)).nth(1).is_some()
}

fn json(o: &Opts, out: &mut Out) -> fmt::Result {
    let mut e = Emitter {
        out,
        first: [true; 16],
        depth: 0,
    };
    e.out.write_char('{')?;
    e.obj("jemalloc")?;
    e.kv("version", get(format_args!("version")))?;
    let narenas = num(format_args!("arenas.narenas")) as usize;
    if o.general {
        e.obj("config")?;
        for c in CONFIG {
            e.kv(c, get(format_args!("config.{c}")))?;
        }
        e.close('}')?;
        e.obj("opt")?;
        for opt in ctl::options().filter(|x| x.value.is_some()) {
            e.kv(opt.name, get(format_args!("opt.{}", opt.name)))?;
        }
        e.close('}')?;
        e.obj("prof")?;
        for k in PROF {
            e.kv(k, get(format_args!("prof.{k}")))?;
        }
        e.close('}')?;
        e.obj("arenas")?;
        for k in [
            "narenas",
            "dirty_decay_ms",
            "muzzy_decay_ms",
            "quantum",
            "page",
            "tcache_max",
            "nbins",
            "nhbins",
        ] {
            e.kv(k, get(format_args!("arenas.{k}")))?;
        }
        e.arr("bin")?;
        for j in 0..num(format_args!("arenas.nbins")) {
            e.item_obj()?;
            for k in ["size", "nregs", "slab_size", "nshards"] {
                e.kv(k, get(format_args!("arenas.bin.{j}.{k}")))?;
            }
            e.close('}')?;
        }
        e.close(']')?;
        e.kv("nlextents", get(format_args!("arenas.nlextents")))?;
        e.arr("lextent")?;
        for j in 0..num(format_args!("arenas.nlextents")) {
            e.item_obj()?;
            e.kv("size", get(format_args!("arenas.lextent.{j}.size")))?;
            e.close('}')?;
        }
        e.close(']')?;
        e.close('}')?;
    }
    e.obj("stats")?;
    for k in TOTALS {
        e.kv(k, get(format_args!("stats.{k}")))?;
    }
    e.kv("zero_reallocs", get(format_args!("stats.zero_reallocs")))?;
    e.obj("metadata_detail")?;
    for k in METADATA_DETAIL {
        e.kv(k, get(format_args!("stats.metadata_detail.{k}")))?;
    }
    e.close('}')?;
    e.obj("background_thread")?;
    for k in ["num_threads", "num_runs", "run_interval"] {
        e.kv(k, get(format_args!("stats.background_thread.{k}")))?;
    }
    e.close('}')?;
    if o.mutex {
        e.obj("mutexes")?;
        for l in GLOBAL_LOCKS {
            json_lock(&mut e, l, format_args!("stats.mutexes.{l}"))?;
        }
        e.close('}')?;
    }
    e.close('}')?;
    e.obj("stats.arenas")?;
    if o.merged && merge_worth_it(narenas) {
        e.obj("merged")?;
        json_arena(o, &mut e, ARENAS_ALL)?;
        e.close('}')?;
    }
    if o.destroyed && any_destroyed() {
        e.obj("destroyed")?;
        json_arena(o, &mut e, ARENAS_ALL + 1)?;
        e.close('}')?;
    }
    if o.arenas {
        for i in (0..narenas).filter(|&i| initialized(i)) {
            let mut key = Name {
                buf: [0; 96],
                len: 0,
            };
            write!(key, "{i}")?;
            e.obj(core::str::from_utf8(&key.buf[..key.len]).unwrap_or("?"))?;
            json_arena(o, &mut e, i)?;
            e.close('}')?;
        }
    }
    e.close('}')?;
    e.close('}')?;
    e.out.write_str("}\n")
}

fn json_arena(o: &Opts, e: &mut Emitter, i: usize) -> fmt::Result {
    for k in ARENA_FIELDS.iter().chain(ARENA_MEMORY) {
        let key = if *k == "uptime" { "uptime_ns" } else { k };
        e.kv(key, get(format_args!("stats.arenas.{i}.{k}")))?;
    }
    for class in ["small", "large"] {
        e.obj(class)?;
        for k in CLASS_FIELDS {
            e.kv(k, get(format_args!("stats.arenas.{i}.{class}.{k}")))?;
        }
        e.close('}')?;
    }
    if o.mutex {
        e.obj("mutexes")?;
        json_lock(e, "pages", format_args!("stats.arenas.{i}.mutexes.pages"))?;
        e.close('}')?;
    }
    if o.bins {
        e.arr("bins")?;
        for j in 0..num(format_args!("arenas.nbins")) {
            e.item_obj()?;
            for k in BIN_FIELDS {
                e.kv(k, get(format_args!("stats.arenas.{i}.bins.{j}.{k}")))?;
            }
            if o.mutex {
                json_lock(e, "mutex", format_args!("stats.arenas.{i}.bins.{j}.mutex"))?;
            }
            e.close('}')?;
        }
        e.close(']')?;
    }
    if o.extents {
        e.arr("extents")?;
        for j in 0..page_classes().count() {
            e.item_obj()?;
            for k in EXTENT_FIELDS {
                e.kv(k, get(format_args!("stats.arenas.{i}.extents.{j}.{k}")))?;
            }
            e.close('}')?;
        }
        e.close(']')?;
    }
    if o.large {
        e.arr("lextents")?;
        for j in 0..num(format_args!("arenas.nlextents")) {
            e.item_obj()?;
            for k in LEXTENT_FIELDS {
                e.kv(k, get(format_args!("stats.arenas.{i}.lextents.{j}.{k}")))?;
            }
            e.close('}')?;
        }
        e.close(']')?;
    }
    Ok(())
}

fn text(o: &Opts, out: &mut Out) -> fmt::Result {
    writeln!(out, "___ Begin jemalloc statistics ___")?;
    let narenas = num(format_args!("arenas.narenas")) as usize;
    if o.general {
        writeln!(out, "Version: {}", Json(get(format_args!("version"))))?;
        writeln!(out, "Build-time option settings")?;
        for c in CONFIG {
            writeln!(
                out,
                "  config.{c}: {}",
                Json(get(format_args!("config.{c}")))
            )?;
        }
        writeln!(out, "Run-time option settings")?;
        for opt in ctl::options().filter(|x| x.value.is_some()) {
            let v = get(format_args!("opt.{}", opt.name));
            write!(out, "  opt.{}: {}", opt.name, Json(v))?;
            match MUTABLE.iter().find(|m| m.0 == opt.name) {
                Some((_, now)) => writeln!(out, " ({now}: {})", Json(get(format_args!("{now}"))))?,
                None => writeln!(out)?,
            }
        }
        writeln!(out, "Profiling settings")?;
        for k in PROF {
            writeln!(out, "  prof.{k}: {}", Json(get(format_args!("prof.{k}"))))?;
        }
        writeln!(out, "Arenas: {narenas}")?;
        writeln!(out, "Quantum size: {}", num(format_args!("arenas.quantum")))?;
        writeln!(out, "Page size: {}", num(format_args!("arenas.page")))?;
        writeln!(
            out,
            "Maximum thread-cached size class: {}",
            num(format_args!("arenas.tcache_max"))
        )?;
        writeln!(
            out,
            "Number of bin size classes: {}",
            num(format_args!("arenas.nbins"))
        )?;
        writeln!(
            out,
            "Number of thread-cache bin size classes: {}",
            num(format_args!("arenas.nhbins"))
        )?;
        writeln!(
            out,
            "Number of large size classes: {}",
            num(format_args!("arenas.nlextents"))
        )?;
    }
    let s = |k: &str| num(format_args!("stats.{k}"));
    writeln!(
        out,
        "Allocated: {}, active: {}, metadata: {} (n_thp {}), resident: {}, mapped: {}, retained: {}",
        s("allocated"),
        s("active"),
        s("metadata"),
        s("metadata_thp"),
        s("resident"),
        s("mapped"),
        s("retained"),
    )?;
    writeln!(
        out,
        "Metadata: arenas: {}, extent records: {}, slab bitmaps: {}, explicit tcaches: {}; pointer map: {} mapped",
        s("metadata_detail.arenas"),
        s("metadata_detail.extent_records"),
        s("metadata_detail.slab_bitmaps"),
        s("metadata_detail.explicit_tcaches"),
        s("metadata_detail.pointer_map"),
    )?;
    writeln!(
        out,
        "Count of realloc(non-null-ptr, 0) calls: {}",
        s("zero_reallocs")
    )?;
    writeln!(
        out,
        "Background threads: {}, num_runs: {}, run_interval: {} ns",
        s("background_thread.num_threads"),
        s("background_thread.num_runs"),
        s("background_thread.run_interval"),
    )?;
    if o.mutex {
        lock_header(out)?;
        for l in GLOBAL_LOCKS {
            lock_row(out, l, format_args!("stats.mutexes.{l}"), 0)?;
        }
    }
    if o.merged && merge_worth_it(narenas) {
        writeln!(out, "Merged arenas stats:")?;
        text_arena(o, out, ARENAS_ALL)?;
    }
    if o.destroyed && any_destroyed() {
        writeln!(out, "Destroyed arenas stats:")?;
        text_arena(o, out, ARENAS_ALL + 1)?;
    }
    if o.arenas {
        for i in (0..narenas).filter(|&i| initialized(i)) {
            writeln!(out, "arenas[{i}]:")?;
            text_arena(o, out, i)?;
        }
    }
    writeln!(out, "--- End jemalloc statistics ---")
}

/// Events per second over an arena's uptime, as jemalloc prints them.
fn rate(n: u64, uptime_ns: u64) -> u64 {
    if uptime_ns < 1_000_000_000 {
        0
    } else {
        n / (uptime_ns / 1_000_000_000)
    }
}

fn text_arena(o: &Opts, out: &mut Out, i: usize) -> fmt::Result {
    let a = |k: &str| num(format_args!("stats.arenas.{i}.{k}"));
    let up = a("uptime");
    let page = num(format_args!("arenas.page"));
    writeln!(out, "assigned threads: {}", a("nthreads"))?;
    writeln!(out, "uptime: {up}")?;
    writeln!(
        out,
        "dss allocation precedence: {}",
        Json(get(format_args!("stats.arenas.{i}.dss")))
    )?;
    writeln!(
        out,
        "decaying:  time       npages       sweeps     madvises       purged"
    )?;
    for (state, pages) in [("dirty", "pdirty"), ("muzzy", "pmuzzy")] {
        let ms = match get(format_args!("stats.arenas.{i}.{state}_decay_ms")) {
            Value::Isize(ms) => ms,
            _ => 0,
        };
        write!(out, "   {state}: ")?;
        if ms < 0 {
            write!(out, "{:>5}", "N/A")?;
        } else {
            write!(out, "{ms:>5}")?;
        }
        writeln!(
            out,
            " {:>12} {:>12} {:>12} {:>12}",
            a(pages),
            num(format_args!("stats.arenas.{i}.{state}_npurge")),
            num(format_args!("stats.arenas.{i}.{state}_nmadvise")),
            num(format_args!("stats.arenas.{i}.{state}_purged")),
        )?;
    }
    writeln!(
        out,
        "                            allocated         nmalloc (#/sec)         ndalloc (#/sec)       nrequests   (#/sec)           nfill   (#/sec)          nflush   (#/sec)"
    )?;
    let mut total = [0u64; 6];
    for class in ["small", "large"] {
        let v: [u64; 6] = core::array::from_fn(|k| {
            num(format_args!("stats.arenas.{i}.{class}.{}", CLASS_FIELDS[k]))
        });
        for (t, x) in total.iter_mut().zip(v) {
            *t += x;
        }
        class_row(out, class, &v, up)?;
    }
    class_row(out, "total", &total, up)?;
    writeln!(out, "active: {:>28}", a("pactive") * page)?;
    for k in ARENA_MEMORY {
        writeln!(out, "{k}: {:>1$}", a(k), 34 - k.len())?;
    }
    if o.mutex {
        lock_header(out)?;
        lock_row(
            out,
            "pages",
            format_args!("stats.arenas.{i}.mutexes.pages"),
            up,
        )?;
    }
    if o.bins {
        text_bins(out, i, up)?;
    }
    if o.large {
        text_large(out, i, up)?;
    }
    if o.extents {
        text_extents(out, i)?;
    }
    Ok(())
}

fn lock_header(out: &mut Out) -> fmt::Result {
    writeln!(
        out,
        "mutexes:             n_lock_ops (#/sec)     n_waiting (#/sec)    n_spin_acq (#/sec)  n_owner_switch (#/sec)  total_wait_ns (#/sec)    max_wait_ns  max_n_thds"
    )
}

/// One lock's row; rates over `up` ns (0: the process's locks, no rate).
fn lock_row(out: &mut Out, name: &str, prefix: fmt::Arguments, up: u64) -> fmt::Result {
    let v: [u64; 7] = core::array::from_fn(|k| num(format_args!("{prefix}.{}", LOCK_FIELDS[k])));
    writeln!(
        out,
        "{name:<20} {:>12} {:>7} {:>12} {:>7} {:>12} {:>7} {:>14} {:>7} {:>14} {:>7} {:>14} {:>11}",
        v[0],
        rate(v[0], up),
        v[1],
        rate(v[1], up),
        v[2],
        rate(v[2], up),
        v[3],
        rate(v[3], up),
        v[4],
        rate(v[4], up),
        v[5],
        v[6],
    )
}

fn text_extents(out: &mut Out, i: usize) -> fmt::Result {
    writeln!(
        out,
        "extents:        size ind       ndirty        dirty       nmuzzy        muzzy    nretained     retained       ntotal        total"
    )?;
    let mut gap = Gap::default();
    for (j, size) in page_classes().enumerate() {
        let x = |k: &str| num(format_args!("stats.arenas.{i}.extents.{j}.{k}"));
        let (nd, nm, nr) = (x("ndirty"), x("nmuzzy"), x("nretained"));
        if nd + nm + nr == 0 {
            gap.skip();
            continue;
        }
        gap.close(out)?;
        let (bd, bm, br) = (x("dirty_bytes"), x("muzzy_bytes"), x("retained_bytes"));
        writeln!(
            out,
            "{size:>20} {j:>3} {nd:>12} {bd:>12} {nm:>12} {bm:>12} {nr:>12} {br:>12} {:>12} {:>12}",
            nd + nm + nr,
            bd + bm + br,
        )?;
    }
    gap.close(out)
}

fn class_row(out: &mut Out, name: &str, v: &[u64; 6], up: u64) -> fmt::Result {
    // The label, padded to 9 columns.
    write!(out, "{name}:{:1$}", "", 8usize.saturating_sub(name.len()))?;
    writeln!(
        out,
        "{:>21} {:>15} {:>7} {:>15} {:>7} {:>15} {:>9} {:>15} {:>9} {:>15} {:>9}",
        v[0],
        v[1],
        rate(v[1], up),
        v[2],
        rate(v[2], up),
        v[3],
        rate(v[3], up),
        v[4],
        rate(v[4], up),
        v[5],
        rate(v[5], up),
    )
}

/// jemalloc's `---` line where table rows were left out (classes never
/// used).
#[derive(Default)]
struct Gap(bool);

impl Gap {
    fn skip(&mut self) {
        self.0 = true;
    }
    /// Before a printed row, and once after the last one.
    fn close(&mut self, out: &mut Out) -> fmt::Result {
        if core::mem::take(&mut self.0) {
            writeln!(out, "                     ---")?;
        }
        Ok(())
    }
}

fn text_bins(out: &mut Out, i: usize, up: u64) -> fmt::Result {
    writeln!(
        out,
        "bins:           size ind    allocated      nmalloc (#/sec)      ndalloc (#/sec)    nrequests   (#/sec)  nshards      curregs     curslabs  nonfull_slabs regs pgs   util       nfills (#/sec)     nflushes (#/sec)       nslabs     nreslabs (#/sec)"
    )?;
    let page = num(format_args!("arenas.page"));
    let mut gap = Gap::default();
    for j in 0..num(format_args!("arenas.nbins")) {
        let b = |k: &str| num(format_args!("stats.arenas.{i}.bins.{j}.{k}"));
        let nslabs = b("nslabs");
        if nslabs == 0 {
            gap.skip();
            continue;
        }
        gap.close(out)?;
        let size = num(format_args!("arenas.bin.{j}.size"));
        let nregs = num(format_args!("arenas.bin.{j}.nregs"));
        let slab = num(format_args!("arenas.bin.{j}.slab_size"));
        let (curregs, curslabs) = (b("curregs"), b("curslabs"));
        // Utilisation: live regions over the regions of live slabs.
        let util_milli = (curregs * 1000).checked_div(curslabs * nregs).unwrap_or(0);
        writeln!(
            out,
            "{:>20} {:>3} {:>12} {:>12} {:>7} {:>12} {:>7} {:>12} {:>7} {:>8} {:>12} {:>12} {:>14} {:>4} {:>3} {:>2}.{:03} {:>12} {:>7} {:>12} {:>7} {:>12} {:>12} {:>7}",
            size,
            j,
            curregs * size,
            b("nmalloc"),
            rate(b("nmalloc"), up),
            b("ndalloc"),
            rate(b("ndalloc"), up),
            b("nrequests"),
            rate(b("nrequests"), up),
            num(format_args!("arenas.bin.{j}.nshards")),
            curregs,
            curslabs,
            b("nonfull_slabs"),
            nregs,
            slab / page,
            util_milli / 1000,
            util_milli % 1000,
            b("nfills"),
            rate(b("nfills"), up),
            b("nflushes"),
            rate(b("nflushes"), up),
            nslabs,
            b("nreslabs"),
            rate(b("nreslabs"), up),
        )?;
    }
    gap.close(out)
}

fn text_large(out: &mut Out, i: usize, up: u64) -> fmt::Result {
    writeln!(
        out,
        "large:          size ind    allocated      nmalloc (#/sec)      ndalloc (#/sec)    nrequests (#/sec)  curlextents"
    )?;
    let nbins = num(format_args!("arenas.nbins"));
    let mut gap = Gap::default();
    for j in 0..num(format_args!("arenas.nlextents")) {
        let l = |k: &str| num(format_args!("stats.arenas.{i}.lextents.{j}.{k}"));
        let nmalloc = l("nmalloc");
        if nmalloc == 0 {
            gap.skip();
            continue;
        }
        gap.close(out)?;
        let size = num(format_args!("arenas.lextent.{j}.size"));
        let cur = l("curlextents");
        writeln!(
            out,
            "{:>20} {:>3} {:>12} {:>12} {:>7} {:>12} {:>7} {:>12} {:>7} {:>12}",
            size,
            nbins + j,
            cur * size,
            nmalloc,
            rate(nmalloc, up),
            l("ndalloc"),
            rate(l("ndalloc"), up),
            l("nrequests"),
            rate(l("nrequests"), up),
            cur,
        )?;
    }
    gap.close(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::String;

    fn report(opts: &str) -> String {
        let mut s = String::new();
        let mut pieces = 0;
        print(opts, &mut |p| {
            pieces += 1;
            s.push_str(p)
        });
        assert!(pieces >= 1);
        s
    }

    #[test]
    fn text_has_jemallocs_frame() {
        let s = report("");
        assert!(s.starts_with("___ Begin jemalloc statistics ___\n"));
        assert!(s.ends_with("--- End jemalloc statistics ---\n"));
        assert!(s.contains("Version: \"5.3.0-"));
        assert!(s.contains("  opt.narenas: "));
        assert!(s.contains("Allocated: "));
        assert!(s.contains("arenas[0]:"));
        let g = report("g");
        assert!(!g.contains("Version:") && g.contains("Allocated: "));
    }

    #[test]
    fn long_reports_come_in_pieces_of_whole_characters() {
        let mut out_s = String::new();
        let mut sink = |p: &str| out_s.push_str(p);
        let mut out = Out {
            buf: [0; 4096],
            len: 0,
            sink: &mut sink,
        };
        for _ in 0..3000 {
            out.write_str("é-").unwrap();
        }
        out.flush();
        assert_eq!(out_s.chars().count(), 6000);
    }
}
