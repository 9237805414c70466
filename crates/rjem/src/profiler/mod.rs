//! Heap profiling: jemalloc 5.3's sampled allocation profiler.
//!
//! With `prof:true`, each thread samples its allocations as jemalloc does:
//! the bytes until the next sample are drawn from a geometric distribution
//! with mean 2^`lg_prof_sample` (512 KiB by default), and the allocation
//! during which they run out is sampled: its stack is captured
//! (`backtrace`), and the block counts for that stack's record (`table`)
//! until it is freed. Dumps (`dump`) write the records in jemalloc's
//! `heap_v2` format, which `jeprof` reads, or in pprof's (`pprof`, with
//! `encode` and `elf`).
//!
//! Owns: the `prof*` options, the profiler's run-time switches
//! (`prof.active`, `prof.thread_active_init`, `thread.prof.active`,
//! `thread.prof.name` with `names`,
//! `prof.gdump`, `prof.reset`), the sampling decision on the allocation
//! slow path, sampled blocks (their tags), dumps at exit, on demand, per
//! allocation interval and per new high-water mark, and the leak report.
//!
//! How sampling stays (almost) off the hit path: each thread cache counts
//! down, per class, the pops until that class's next sample
//! (`tcache::sample` says why that is the same sampling); the pop that
//! reaches zero leaves the hit path, and `api`'s slow path asks
//! `should_sample_cached`, which draws the countdowns (`math::sample_pops`)
//! and decides. Allocations outside a thread's cache's stacks (uncached
//! classes and places, explicit caches, resizes) are counted in bytes and
//! decided by `should_sample`, as jemalloc does. With `prof:false` the
//! countdowns never run out. A sampled block is never a slab region: a
//! small one is promoted to an extent of its own (`Arena::promoted_alloc`,
//! as jemalloc promotes it) whose pointer-map entry still reports the
//! small class, so that the extent record can carry the tag; every sampled
//! block's entry bypasses the caches (`Entry::bypassing`), so its free
//! leaves the hit path and asks `freed` (and frees that trust the
//! caller's size look the entry up while the profiler is on, unless the
//! block is at a 64 KiB boundary, where no sample is:
//! `CacheBin::trusted_mask`). A sampled block never enters a cache.
//!
//! Invariants: nothing here allocates through an allocator (records are
//! base memory; dumps are written with system calls from a stack buffer);
//! the record table's lock is taken alone, or before the base lock; no
//! lock is held while capturing a stack, and a thread capturing one is
//! marked busy, so an allocation it makes meanwhile (libgcc's, rarely) is
//! not sampled. A tag is set before the block is handed out and cleared
//! when it is freed.

mod backtrace;
mod dump;
mod elf;
mod encode;
mod math;
mod names;
mod pprof;
mod table;

use crate::emap::Entry;
use crate::os::BootStr;
use crate::size_class as sc;
use crate::tcache::{self, sample, Tcache};
use crate::tsd;
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
    Ordering::Relaxed,
};
use table::{Record, TABLE};

/// Option `prof`: sample allocations (fixed at start-up).
pub(crate) static OPT_PROF: AtomicBool = AtomicBool::new(false);
/// Option `prof_prefix`: dump file names start with it.
pub(crate) static OPT_PROF_PREFIX: BootStr = BootStr::new();
/// Option `prof_active`: `prof.active` at start-up.
pub(crate) static OPT_PROF_ACTIVE: AtomicBool = AtomicBool::new(true);
/// Option `prof_thread_active_init`: `prof.thread_active_init` at
/// start-up.
pub(crate) static OPT_PROF_THREAD_ACTIVE_INIT: AtomicBool = AtomicBool::new(true);
/// Option `lg_prof_sample`: mean bytes between samples, base-2 log.
pub(crate) static OPT_LG_PROF_SAMPLE: AtomicUsize = AtomicUsize::new(19);
/// Option `lg_prof_interval`: dump every 2^n bytes of allocation (-1:
/// never).
pub(crate) static OPT_LG_PROF_INTERVAL: AtomicI64 = AtomicI64::new(-1);
/// Option `prof_gdump`: `prof.gdump` at start-up.
pub(crate) static OPT_PROF_GDUMP: AtomicBool = AtomicBool::new(false);
/// Option `prof_final`: dump at exit.
pub(crate) static OPT_PROF_FINAL: AtomicBool = AtomicBool::new(false);
/// Option `prof_leak`: report what was never freed at exit.
pub(crate) static OPT_PROF_LEAK: AtomicBool = AtomicBool::new(false);
/// Option `prof_leak_error`: as `prof_leak`, and a leak makes the
/// process exit with status 1.
pub(crate) static OPT_PROF_LEAK_ERROR: AtomicBool = AtomicBool::new(false);
/// Option `prof_sys_thread_name`: samples take the thread's system name.
pub(crate) static OPT_PROF_SYS_THREAD_NAME: AtomicBool = AtomicBool::new(false);
/// Option `prof_pprof`: `prof_prefix`-based dumps (on demand, interval,
/// gdump, final) are pprof's gzipped protobuf (`.pb.gz`), not `heap_v2`.
pub(crate) static OPT_PROF_PPROF: AtomicBool = AtomicBool::new(false);
/// Option `prof_accum`: keep cumulative counts (freed samples too).
pub(crate) static OPT_PROF_ACCUM: AtomicBool = AtomicBool::new(false);

/// The largest `lg_prof_sample` (jemalloc's: a 64-bit byte count).
pub(crate) const LG_SAMPLE_MAX: usize = 63;

/// `prof:true` (fixed by `boot`).
static ON: AtomicBool = AtomicBool::new(false);
/// `prof.active`.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// `prof.thread_active_init`.
static THREAD_ACTIVE_INIT: AtomicBool = AtomicBool::new(true);
/// `prof.lg_sample` (changed by `prof.reset`).
static LG_SAMPLE: AtomicU32 = AtomicU32::new(19);
/// `prof.gdump`.
static GDUMP: AtomicBool = AtomicBool::new(false);
/// `prof.interval`: bytes between interval dumps, 0 for none.
static INTERVAL: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated since the last interval dump (threads add theirs in
/// steps of `INTERVAL_STEP`).
static SINCE_DUMP: AtomicU64 = AtomicU64::new(0);
const INTERVAL_STEP: u64 = 1 << 20;
/// The reset epoch tags carry (`table`'s, readable without its lock).
static EPOCH: AtomicU16 = AtomicU16::new(0);
/// The generation of the caches' per-class countdowns: a cache armed at
/// another (`Sampler::generation`; 0 is never) is armed again with fresh
/// draws at its next slow-path allocation. `prof.reset` and fork move it.
static GENERATION: AtomicU32 = AtomicU32::new(1);

/// Work for `poll`.
static DUE: AtomicU8 = AtomicU8::new(0);
const DUE_AT_EXIT: u8 = 1;
const DUE_INTERVAL: u8 = 2;
const DUE_GDUMP: u8 = 4;

/// Per-thread flags (`Sampler::flags`).
const T_INIT: u8 = 1;
const T_ACTIVE: u8 = 2;
const T_BUSY: u8 = 4;

/// Resolves the options (start-up, before any thread sets up its cache).
pub(crate) fn boot() {
    if !OPT_PROF.load(Relaxed) {
        return;
    }
    ON.store(true, Relaxed);
    sample::enable();
    ACTIVE.store(OPT_PROF_ACTIVE.load(Relaxed), Relaxed);
    THREAD_ACTIVE_INIT.store(OPT_PROF_THREAD_ACTIVE_INIT.load(Relaxed), Relaxed);
    let lg = OPT_LG_PROF_SAMPLE.load(Relaxed).min(LG_SAMPLE_MAX);
    LG_SAMPLE.store(lg as u32, Relaxed);
    GDUMP.store(OPT_PROF_GDUMP.load(Relaxed), Relaxed);
    crate::pages::track_active_high(true);
    let lgi = OPT_LG_PROF_INTERVAL.load(Relaxed);
    if lgi >= 0 {
        INTERVAL.store(1u64 << lgi.min(63), Relaxed);
    }
    if OPT_PROF_LEAK_ERROR.load(Relaxed) {
        OPT_PROF_LEAK.store(true, Relaxed);
    }
    if OPT_PROF_FINAL.load(Relaxed) || OPT_PROF_LEAK.load(Relaxed) {
        raise(DUE_AT_EXIT);
    }
}

/// Asks the fronts' slow path to run `poll`.
fn raise(what: u8) {
    DUE.fetch_or(what, Relaxed);
    tcache::REPORT_DUE.fetch_or(tcache::REPORT_PROF, Relaxed);
}

/// Whether the profiler is on (`prof:true`): the hooks below are called
/// only then.
#[inline(always)]
pub(crate) fn on() -> bool {
    ON.load(Relaxed)
}

/// The calling thread's state, with its flags set up.
fn thread() -> &'static Tcache {
    let t = &tsd::get().tcache;
    let s = &t.sampler;
    if s.flags.get() & T_INIT == 0 {
        let active = if THREAD_ACTIVE_INIT.load(Relaxed) {
            T_ACTIVE
        } else {
            0
        };
        s.flags.set(T_INIT | active);
        // jemalloc seeds with its thread data's address; mixed with the
        // clock so that forked children draw differently.
        let seed = (os_thread_id() as u64) ^ crate::os::now_ns().rotate_left(32);
        s.prng.set(seed | 1);
    }
    t
}

fn os_thread_id() -> usize {
    crate::os::thread_id()
}

/// Draws the bytes until the thread's next sample outside its stacks.
fn draw(t: &Tcache) -> u64 {
    let mut st = t.sampler.prng.get();
    let w = math::sample_wait(&mut st, LG_SAMPLE.load(Relaxed));
    t.sampler.prng.set(st);
    w
}

/// Draws, with thread `t`'s generator, the pops of cached class `ind`
/// until its next sample.
fn draw_pops(t: &Tcache, ind: usize) -> u64 {
    let mut st = t.sampler.prng.get();
    let w = math::sample_pops(&mut st, LG_SAMPLE.load(Relaxed), sc::index_to_size(ind));
    t.sampler.prng.set(st);
    w
}

/// Arms every class of cache `c` (the calling thread's, `t` its state)
/// with a fresh draw, at the current generation.
fn arm_classes(t: &Tcache, c: &Tcache) {
    for i in 0..c.nclasses() {
        c.arm_class(i, draw_pops(t, i));
    }
    c.sampler.set_generation(GENERATION.load(Relaxed));
}

/// A sample decided on: the record its block will count for.
pub(crate) struct Sample(&'static Record);

/// An allocation of cached class `ind` that the
/// calling thread's cache `c` serves, on the slow path (`c`'s hit path
/// declined it, or never saw it): counted as a pop of the class; if it is
/// the class's next sample (and the profiler and the thread are active),
/// its stack is captured and its record returned, and it is no longer
/// counted as a pop: the caller allocates it as `should_sample`'s callers
/// do. Otherwise the caller takes the block with `Tcache::alloc_counted`.
#[inline(never)]
pub(crate) fn should_sample_cached(c: &Tcache, ind: usize, entry: usize) -> Option<Sample> {
    let t = thread();
    let mut due = c.charge_pop(ind);
    if c.sampler.generation() != GENERATION.load(Relaxed) {
        // Never armed, or armed before `prof.reset` or a fork: every class
        // gets a fresh countdown (memoryless: drawing again at any time
        // is the same sampling), and this allocation is the first pop of
        // its class's.
        arm_classes(t, c);
        let w = draw_pops(t, ind);
        due = w == 1;
        c.arm_class(ind, if due { draw_pops(t, ind) } else { w - 1 });
    } else if due {
        c.arm_class(ind, draw_pops(t, ind));
    }
    note_activity(t);
    let s = capture_if_active(t, due, entry)?;
    c.uncount_pop(ind);
    Some(s)
}

/// Counts an allocation of usable size `usize` coming through the slow
/// path outside the calling thread's cache's stacks; if it is the
/// thread's next sample (and the profiler and the
/// thread are active), captures its stack and returns its record: the
/// caller then allocates the block with `sampled_small`/`sampled_large`
/// and calls `record`. `entry` is the caller's function (stack capture
/// drops the frames up to it when rjem is linked into the program).
#[inline(never)]
pub(crate) fn should_sample(usize: usize, entry: usize) -> Option<Sample> {
    let t = thread();
    if !t.sampler.armed() {
        t.arm(draw(t));
    }
    let due = t.charge(usize);
    if due {
        t.arm(draw(t));
    }
    note_activity(t);
    capture_if_active(t, due, entry)
}

/// If `due` (a sampling event) and the profiler and thread `t` (the
/// calling one) are active: the caller's stack (`entry` as for
/// `should_sample`) and its record.
fn capture_if_active(t: &Tcache, due: bool, entry: usize) -> Option<Sample> {
    let flags = t.sampler.flags.get();
    if !due || !ACTIVE.load(Relaxed) || flags & (T_ACTIVE | T_BUSY) != T_ACTIVE {
        return None;
    }
    t.sampler.flags.set(flags | T_BUSY);
    if OPT_PROF_SYS_THREAD_NAME.load(Relaxed) {
        take_system_name(t);
    }
    let mut pcs = [0usize; backtrace::MAX_DEPTH];
    let n = backtrace::capture(&mut pcs, entry);
    let rec = TABLE.lock().find_or_add(&pcs[..n], t.sampler.name.get());
    t.sampler.flags.set(flags);
    rec.map(Sample)
}

/// `prof_sys_thread_name`: the thread's name becomes its system name
/// (glibc reads its own thread's with prctl: no allocation).
fn take_system_name(t: &Tcache) {
    let mut buf = [0u8; 16];
    // SAFETY: a 16-byte buffer, the size glibc's names fit in.
    let rc = unsafe {
        libc::pthread_getname_np(libc::pthread_self(), buf.as_mut_ptr().cast(), buf.len())
    };
    if rc != 0 {
        return;
    }
    let len = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    if names::valid(&buf[..len]) {
        if let Some(id) = names::intern(&buf[..len]) {
            t.sampler.name.set(id);
        }
    }
}

/// Interval dumps and new high-water marks: checked on every slow-path
/// allocation (cheap loads; with interval dumps, the thread's allocated
/// bytes are summed). Allocations served by the hit path are seen at the
/// thread's next slow-path allocation (a refill, or a class's sampling
/// event: one per 2^`lg_prof_sample` bytes on average).
fn note_activity(t: &Tcache) {
    let every = INTERVAL.load(Relaxed);
    if every != 0 {
        let s = &t.sampler;
        let total = tsd::allocated().0;
        let delta = total.wrapping_sub(s.reported.get());
        if delta >= INTERVAL_STEP.min(every) {
            s.reported.set(total);
            let before = SINCE_DUMP.fetch_add(delta, Relaxed);
            if before + delta >= every {
                SINCE_DUMP.fetch_sub(every, Relaxed);
                raise(DUE_INTERVAL);
            }
        }
    }
    if GDUMP.load(Relaxed) && crate::pages::take_new_high() {
        raise(DUE_GDUMP);
    }
}

/// Tags sampled block `p` (null: the allocation failed) of usable size
/// `usize` with its record and counts it.
pub(crate) fn record(p: *mut u8, usize: usize, s: Sample) {
    let Some(e) = crate::emap::lookup(p as usize).extent() else {
        return;
    };
    let r = s.0;
    r.cur_objs.fetch_add(1, Relaxed);
    r.cur_bytes.fetch_add(usize as u64, Relaxed);
    if OPT_PROF_ACCUM.load(Relaxed) {
        r.accum_objs.fetch_add(1, Relaxed);
        r.accum_bytes.fetch_add(usize as u64, Relaxed);
    }
    e.set_prof_tag(table::tag(r, EPOCH.load(Relaxed)));
    // Its frees must come here (`freed`), never into a cache.
    if let Some(a) = crate::arena::get(e.arena()) {
        a.bypass_caches(e);
    }
}

/// Whether live non-slab block `p` (entry `ent`) is a sampled one.
pub(crate) fn is_sampled(p: *mut u8, ent: Entry) -> bool {
    !ent.is_slab() && large_start(p, ent).is_some_and(|e| e.prof_tag() != 0)
}

/// The large extent `p` starts (entry `ent`); None for a pointer inside it,
/// which the free path reports.
fn large_start(p: *mut u8, ent: Entry) -> Option<crate::extent::ERef> {
    ent.extent().filter(|e| e.block() == p as usize)
}

/// Before live non-slab block `p` (entry `ent`) is freed: if it was
/// sampled, its record stops counting it, and true is returned: the
/// caller must free it straight to its arena (never into a cache: a
/// promoted block's entry names a small class).
pub(crate) fn freed(p: *mut u8, ent: Entry) -> bool {
    let Some(e) = large_start(p, ent) else {
        return false;
    };
    let tag = e.prof_tag();
    if tag == 0 {
        return false;
    }
    e.set_prof_tag(0);
    if let Some(r) = table::untag(tag, EPOCH.load(Relaxed)) {
        let usize = sc::index_to_size(ent.szind()) as u64;
        // Saturating: a count zeroed by a reset of 65536 epochs ago.
        let _ = r
            .cur_objs
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
        let _ = r
            .cur_bytes
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(usize)));
    }
    true
}

/// A large block resized in place to `usize` (realloc, xallocx): counted
/// like an allocation; if it is the sample, it is recorded where it is.
pub(crate) fn resized(p: *mut u8, usize: usize, entry: usize) {
    let ent = crate::emap::lookup(p as usize);
    if let Some(s) = should_sample(usize, entry) {
        if !ent.is_slab() && !is_sampled(p, ent) {
            record(p, usize, s);
        }
    }
}

/// Runs what `raise` asked for (called by `report::poll` on the fronts'
/// slow paths, holding no lock).
#[cold]
pub(crate) fn poll() {
    let due = DUE.swap(0, Relaxed);
    if due & DUE_AT_EXIT != 0 {
        // SAFETY: `at_exit` is a plain function that neither unwinds nor
        // allocates. glibc's atexit may allocate: `DUE` is already clear.
        unsafe { libc::atexit(at_exit) };
    }
    if due & DUE_INTERVAL != 0 {
        dump::dump_seq(b'i');
    }
    if due & DUE_GDUMP != 0 {
        dump::dump_seq(b'u');
    }
}

extern "C" fn at_exit() {
    if OPT_PROF_FINAL.load(Relaxed) {
        dump::dump_seq(b'f');
    }
    if OPT_PROF_LEAK.load(Relaxed) && dump::leak_report() && OPT_PROF_LEAK_ERROR.load(Relaxed) {
        // SAFETY: _exit has no preconditions; the other exit handlers
        // are skipped, as jemalloc's prof_leak_error does.
        unsafe { libc::_exit(1) };
    }
}

/// The sampling period in bytes (jeprof's scaling uses it).
fn period() -> u64 {
    1u64 << LG_SAMPLE.load(Relaxed)
}

// ---- controls ----

/// `prof.active`: old value; sets it if `new`.
pub(crate) fn active(new: Option<bool>) -> bool {
    match new {
        Some(v) => ACTIVE.swap(v, Relaxed),
        None => ACTIVE.load(Relaxed),
    }
}

/// `prof.thread_active_init`.
pub(crate) fn thread_active_init(new: Option<bool>) -> bool {
    match new {
        Some(v) => THREAD_ACTIVE_INIT.swap(v, Relaxed),
        None => THREAD_ACTIVE_INIT.load(Relaxed),
    }
}

/// `thread.prof.active` of the calling thread.
pub(crate) fn thread_active(new: Option<bool>) -> bool {
    let s = &thread().sampler;
    let f = s.flags.get();
    if let Some(v) = new {
        s.flags.set(if v { f | T_ACTIVE } else { f & !T_ACTIVE });
    }
    f & T_ACTIVE != 0
}

/// `thread.prof.name` of the calling thread ("" if it has none).
pub(crate) fn thread_name() -> &'static core::ffi::CStr {
    names::get(thread().sampler.name.get())
}

/// Why a thread name was refused.
pub(crate) enum NameError {
    /// A character neither printable nor blank.
    Invalid,
    /// `names::MAX` distinct names are recorded already.
    Full,
    /// `prof_sys_thread_name` names threads.
    System,
}

/// Names the calling thread (its first 15 bytes; empty: no name) for the
/// samples it takes from now on; returns the old name.
pub(crate) fn set_thread_name(name: &[u8]) -> Result<&'static core::ffi::CStr, NameError> {
    if OPT_PROF_SYS_THREAD_NAME.load(Relaxed) {
        return Err(NameError::System);
    }
    if !names::valid(name) {
        return Err(NameError::Invalid);
    }
    let id = names::intern(name).ok_or(NameError::Full)?;
    let s = &thread().sampler;
    let old = names::get(s.name.get());
    s.name.set(id);
    Ok(old)
}

/// `prof.gdump`.
pub(crate) fn gdump(new: Option<bool>) -> bool {
    match new {
        Some(v) => GDUMP.swap(v, Relaxed),
        None => GDUMP.load(Relaxed),
    }
}

/// `prof.lg_sample`.
pub(crate) fn lg_sample() -> usize {
    LG_SAMPLE.load(Relaxed) as usize
}

/// `prof.interval`.
pub(crate) fn interval() -> u64 {
    INTERVAL.load(Relaxed)
}

/// `prof.reset`: every record's counts start again from zero, and blocks
/// sampled before no longer count; with `lg_sample` (clamped to 63, as
/// jemalloc does), the sampling rate changes: the calling thread's cache
/// draws every class's countdown again now, other threads' caches at
/// their next slow-path allocation (a refill or a sampling event; as in
/// jemalloc, whose threads take a new rate at their next event), and
/// allocations outside the caches at each thread's next draw.
pub(crate) fn reset(lg_sample: Option<usize>) {
    {
        let mut t = TABLE.lock();
        t.reset();
        EPOCH.store(t.epoch, Relaxed);
        if let Some(lg) = lg_sample {
            LG_SAMPLE.store(lg.min(LG_SAMPLE_MAX) as u32, Relaxed);
        }
    }
    if lg_sample.is_some() {
        new_generation();
        let t = thread();
        if let Some(c) = tsd::slow().cache() {
            arm_classes(t, c);
        }
    }
}

/// Makes every cache's countdowns stale (drawn again at its next
/// slow-path allocation).
fn new_generation() {
    // Never 0, which means "never armed".
    let _ = GENERATION.fetch_update(Relaxed, Relaxed, |g| Some(g.wrapping_add(1).max(1)));
}

/// `prof.dump`: writes the profile to `path` (pprof if it ends in
/// `.pb.gz`, else `heap_v2`), or to the next `prof_prefix`-based name.
/// False if the profiler is off or the file cannot be written.
pub(crate) fn dump_to(path: Option<&core::ffi::CStr>) -> bool {
    if !on() {
        return false;
    }
    match path {
        Some(p) => dump::dump_path(p),
        None => dump::dump_seq(b'm'),
    }
}

/// Writes the profile as gzipped pprof into `sink` (which may allocate:
/// no lock is held while it is called). False if it could not.
pub(crate) fn pprof_into<S: Sink>(sink: &mut S) -> bool {
    on() && pprof::write(sink)
}

pub(crate) use encode::Sink;

/// The profile records' lock profile (`stats.mutexes.prof`); `reset`
/// clears it.
pub(crate) fn lock_stats(reset: bool) -> crate::sync::LockStats {
    TABLE.profile(reset)
}

/// Runs `f` on `path` as a C string (at most 1023 bytes, no NUL inside);
/// None if it cannot be one.
pub(crate) fn with_c_path<R>(path: &str, f: impl FnOnce(&core::ffi::CStr) -> R) -> Option<R> {
    dump::with_c_path(path, f)
}

// ---- fork ----

pub(crate) fn fork_prepare() {
    dump::PREFIX.lock_raw();
    TABLE.lock_raw();
    names::fork_prepare();
}

pub(crate) fn fork_parent() {
    // SAFETY: `fork_prepare` took the locks and holds no guard.
    unsafe {
        TABLE.unlock_raw();
        dump::PREFIX.unlock_raw();
    }
    names::fork_parent();
}

pub(crate) fn fork_child() {
    // SAFETY: the child of a fork whose prepare handler held the locks.
    unsafe {
        TABLE.reset_in_child();
        dump::PREFIX.reset_in_child();
    }
    names::fork_child();
    if on() {
        // The child draws its own samples from now on, not the parent's
        // copies: a new seed, and countdowns drawn again.
        let s = &tsd::get().tcache.sampler;
        if s.flags.get() & T_INIT != 0 {
            s.prng
                .set(s.prng.get() ^ crate::os::now_ns().rotate_left(17) | 1);
        }
        s.disarm();
        new_generation();
    }
}

/// `prof.prefix`: the prefix of dump names from now on; false if it is
/// empty, longer than 255 bytes or holds a NUL byte.
pub(crate) fn set_prefix(p: &[u8]) -> bool {
    dump::set_prefix(p)
}
