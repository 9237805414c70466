//! The name tree: every control rjem answers, with its type and handler.
//! A new control is one leaf here whose handler calls its owner.
//!
//! Names, types and meanings are jemalloc 5.3's (see the mallctl section
//! of its manual). Where rjem extends one, the leaf's comment says so.

use super::{Error, Node, Type, Value, ARENAS_ALL};
use crate::api;
use crate::arena::{self, Arena};
use crate::background;
use crate::base;
use crate::decay;
use crate::ehooks::Ehooks;
use crate::emap;
use crate::profiler as prof;
use crate::size_class as sc;
use crate::stats;
use crate::tcache;
use crate::tsd;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A read-only leaf whose value is `$e` (an expression of the path's
/// indices `$idx`, or None: no such entry).
macro_rules! ro {
    ($ty:ident, |$idx:ident| $e:expr) => {
        Node::Leaf(Type::$ty, |$idx, new| {
            let v: Option<_> = $e;
            ro(new, Value::$ty(v.ok_or(Error::NotFound)?))
        })
    };
}

/// A read-only `stats.arenas.<i>.*` leaf: `$e` of arena `i`'s totals `$t`.
macro_rules! arena_stat {
    ($ty:ident, |$t:ident| $e:expr) => {
        ro!($ty, |idx| stats::arena(idx[0]).map(|$t| $e))
    };
}

/// A read-only `stats.arenas.<i>.bins.<j>.*` leaf.
macro_rules! bin_stat {
    ($ty:ident, |$s:ident| $e:expr) => {
        ro!($ty, |idx| stats::bin(idx[0], idx[1]).map(|$s| $e))
    };
}

/// A read-only `stats.arenas.<i>.lextents.<j>.*` leaf over (nmalloc,
/// ndalloc).
macro_rules! lextent_stat {
    ($ty:ident, |$n:ident, $d:ident| $e:expr) => {
        ro!($ty, |idx| stats::lextent(idx[0], idx[1]).map(|($n, $d)| $e))
    };
}

/// A lock's profile (`mutex_prof_data` leaves) from `$e`, an
/// `Option<LockStats>` of the path's indices `$idx`.
macro_rules! lock_leaves {
    (|$idx:ident| $e:expr) => {
        Node::Named(&[
            ("num_ops", ro!(U64, |$idx| $e.map(|s| s.num_ops))),
            ("num_wait", ro!(U64, |$idx| $e.map(|s| s.num_wait))),
            ("num_spin_acq", ro!(U64, |$idx| $e.map(|s| s.num_spin_acq))),
            (
                "num_owner_switch",
                ro!(U64, |$idx| $e.map(|s| s.num_owner_switch)),
            ),
            (
                "total_wait_time",
                ro!(U64, |$idx| $e.map(|s| s.total_wait_ns)),
            ),
            ("max_wait_time", ro!(U64, |$idx| $e.map(|s| s.max_wait_ns))),
            ("max_num_thds", ro!(U32, |$idx| $e.map(|s| s.max_num_thds))),
        ])
    };
}

/// A read-only `stats.arenas.<i>.extents.<j>.*` leaf.
macro_rules! extent_stat {
    (|$t:ident| $e:expr) => {
        ro!(Usize, |idx| stats::extents(idx[0], idx[1]).map(|$t| $e))
    };
}

/// A read-only process-wide `stats.*` leaf.
macro_rules! total {
    ($field:ident) => {
        ro!(Usize, |_idx| Some(crate::stats::epoch_totals().$field))
    };
}

/// Metadata bytes for one use (`stats.metadata_detail.*`, read live).
macro_rules! base_use {
    ($u:ident) => {
        ro!(Usize, |_idx| Some(base::allocated_for(base::Use::$u)))
    };
}

/// A build-time fact (`config.*`).
macro_rules! config {
    ($v:expr) => {
        ro!(Bool, |_idx| Some($v))
    };
}

/// The root of the name space.
pub(super) static ROOT: Node = Node::Named(&[
    ("version", Node::Leaf(Type::Str, version)),
    ("epoch", Node::Rw(Type::U64, epoch)),
    ("background_thread", Node::Rw(Type::Bool, background_thread)),
    (
        "max_background_threads",
        Node::Rw(Type::Usize, max_background_threads),
    ),
    (
        "config",
        Node::Named(&[
            // Built in; the option `cache_oblivious` turns it on.
            ("cache_oblivious", config!(true)),
            ("debug", config!(cfg!(debug_assertions))),
            ("fill", config!(true)),
            ("lazy_lock", config!(false)),
            ("malloc_conf", Node::Leaf(Type::Str, config_malloc_conf)),
            // Sized frees, double frees and foreign pointers are always
            // checked (docs/hardening.md).
            ("opt_safety_checks", config!(true)),
            ("prof", config!(true)),
            // Stacks come from libgcc's unwinder (`prof::backtrace`).
            ("prof_libgcc", config!(true)),
            ("prof_libunwind", config!(false)),
            ("stats", config!(true)),
            ("utrace", config!(false)),
            ("xmalloc", config!(true)),
        ]),
    ),
    ("opt", Node::Options),
    (
        "thread",
        Node::Named(&[
            ("arena", Node::Rw(Type::U32, thread_arena)),
            ("allocated", ro!(U64, |_idx| Some(tsd::allocated().0))),
            ("deallocated", ro!(U64, |_idx| Some(tsd::allocated().1))),
            // Pointers to the thread's counters, refreshed at every cache
            // fill, flush and uncached allocation or free once asked for
            // (see `tcache::Tcache::publish`).
            (
                "allocatedp",
                ro!(Ptr, |_idx| Some(tsd::published_counters().0.cast())),
            ),
            (
                "deallocatedp",
                ro!(Ptr, |_idx| Some(tsd::published_counters().1.cast())),
            ),
            (
                "peak",
                Node::Named(&[
                    ("read", ro!(U64, |_idx| Some(tsd::peak()))),
                    ("reset", Node::Leaf(Type::Void, thread_peak_reset)),
                ]),
            ),
            (
                "tcache",
                Node::Named(&[
                    ("enabled", Node::Rw(Type::Bool, thread_tcache_enabled)),
                    ("flush", Node::Leaf(Type::Void, thread_tcache_flush)),
                ]),
            ),
            ("idle", Node::Leaf(Type::Void, thread_idle)),
            (
                "prof",
                Node::Named(&[
                    ("name", Node::Rw(Type::Str, thread_prof_name)),
                    ("active", Node::Rw(Type::Bool, thread_prof_active)),
                ]),
            ),
        ]),
    ),
    (
        "prof",
        Node::Named(&[
            ("active", Node::Rw(Type::Bool, prof_active)),
            (
                "thread_active_init",
                Node::Rw(Type::Bool, prof_thread_active_init),
            ),
            ("gdump", Node::Rw(Type::Bool, prof_gdump)),
            // Written a file name (null or no value: the next
            // `prof_prefix`-based name).
            ("dump", Node::WoOpt(Type::Str, prof_dump)),
            // Written the prefix of the names dumps get from now on.
            ("prefix", Node::Wo(Type::Str, prof_prefix)),
            // Written a new lg_sample, or run without a value.
            ("reset", Node::WoOpt(Type::Usize, prof_reset)),
            ("lg_sample", ro!(Usize, |_idx| Some(prof::lg_sample()))),
            ("interval", ro!(U64, |_idx| Some(prof::interval()))),
        ]),
    ),
    (
        "tcache",
        Node::Named(&[
            ("create", Node::Leaf(Type::U32, tcache_create)),
            ("flush", Node::Wo(Type::U32, tcache_flush)),
            ("destroy", Node::Wo(Type::U32, tcache_destroy)),
        ]),
    ),
    // Indices up to ARENAS_ALL inclusive.
    ("arena", Node::Indexed(ARENAS_ALL + 1, &ARENA_I)),
    (
        "arenas",
        Node::Named(&[
            ("narenas", ro!(U32, |_idx| Some(narenas_total() as u32))),
            (
                "dirty_decay_ms",
                Node::Rw(Type::Isize, arenas_dirty_decay_ms),
            ),
            (
                "muzzy_decay_ms",
                Node::Rw(Type::Isize, arenas_muzzy_decay_ms),
            ),
            ("quantum", ro!(Usize, |_idx| Some(sc::QUANTUM))),
            ("page", ro!(Usize, |_idx| Some(sc::geom().page))),
            ("tcache_max", ro!(Usize, |_idx| Some(tcache_max()))),
            ("nbins", ro!(U32, |_idx| Some(sc::geom().nbins as u32))),
            ("nhbins", ro!(U32, |_idx| Some(tcache::ncached() as u32))),
            ("bin", Node::Indexed(sc::NBINS_MAX, &ARENAS_BIN_I)),
            (
                "nlextents",
                ro!(U32, |_idx| Some((sc::NSIZES - sc::geom().nbins) as u32)),
            ),
            ("lextent", Node::Indexed(sc::NSIZES, &ARENAS_LEXTENT_I)),
            // Written the new arena's extent hooks, if any.
            (
                "create",
                Node::Unsafe(&Node::Query(Type::U32, Type::Ptr, arenas_create)),
            ),
            ("lookup", Node::Query(Type::U32, Type::Ptr, arenas_lookup)),
        ]),
    ),
    (
        "stats",
        Node::Named(&[
            ("allocated", total!(allocated)),
            ("active", total!(active)),
            ("metadata", total!(metadata)),
            ("metadata_thp", ro!(Usize, |_idx| Some(0))),
            // rjem's own: what the metadata is (jemalloc cannot say).
            (
                "metadata_detail",
                Node::Named(&[
                    ("arenas", base_use!(Arenas)),
                    ("extent_records", base_use!(ExtentRecords)),
                    ("slab_bitmaps", base_use!(SlabBitmaps)),
                    ("explicit_tcaches", base_use!(ExplicitTcaches)),
                    // The heap profiler's records.
                    ("prof", base_use!(Prof)),
                    // Address space; resident only where entries were set.
                    ("pointer_map", ro!(Usize, |_idx| Some(emap::mapped_bytes()))),
                ]),
            ),
            ("resident", total!(resident)),
            ("mapped", total!(mapped)),
            ("retained", total!(retained)),
            (
                "zero_reallocs",
                ro!(Usize, |_idx| Some(api::ZERO_REALLOCS.load(Relaxed))),
            ),
            (
                "background_thread",
                Node::Named(&[
                    (
                        "num_threads",
                        ro!(Usize, |_idx| Some(background::running() as usize)),
                    ),
                    ("num_runs", ro!(U64, |_idx| Some(background::passes()))),
                    (
                        "run_interval",
                        ro!(U64, |_idx| Some(background::run_interval_ns())),
                    ),
                ]),
            ),
            // jemalloc's `ctl`, and rjem's own process-wide locks.
            (
                "mutexes",
                Node::Named(&[
                    ("ctl", lock_leaves!(|_idx| stats::global_lock(0, false))),
                    ("arenas", lock_leaves!(|_idx| stats::global_lock(1, false))),
                    ("base", lock_leaves!(|_idx| stats::global_lock(2, false))),
                    ("tcaches", lock_leaves!(|_idx| stats::global_lock(3, false))),
                    // The heap profiler's records.
                    ("prof", lock_leaves!(|_idx| stats::global_lock(4, false))),
                    ("reset", Node::Leaf(Type::Void, mutexes_reset)),
                ]),
            ),
            // ARENAS_ALL merges every arena; ARENAS_ALL + 1 the destroyed.
            ("arenas", Node::Indexed(ARENAS_ALL + 2, &STATS_ARENAS_I)),
        ]),
    ),
]);

/// `arenas.bin.<i>.*`.
static ARENAS_BIN_I: Node = Node::Named(&[
    ("size", ro!(Usize, |idx| bin_info(idx[0]).map(|b| b.size))),
    (
        "nregs",
        ro!(U32, |idx| bin_info(idx[0]).map(|b| b.nregs as u32)),
    ),
    (
        "slab_size",
        ro!(Usize, |idx| bin_info(idx[0]).map(|b| b.slab_size)),
    ),
    ("nshards", ro!(U32, |idx| bin_info(idx[0]).map(|_| 1))),
]);

/// `arenas.lextent.<i>.*`.
static ARENAS_LEXTENT_I: Node = Node::Named(&[(
    "size",
    ro!(Usize, |idx| {
        let ind = sc::geom().nbins + idx[0];
        (ind < sc::NSIZES).then(|| sc::index_to_size(ind))
    }),
)]);

/// `stats.arenas.<i>.*`.
static STATS_ARENAS_I: Node = Node::Named(&[
    ("nthreads", arena_stat!(U32, |t| t.nthreads as u32)),
    ("uptime", arena_stat!(U64, |t| t.uptime_ns)),
    (
        "dss",
        ro!(Str, |idx| stats::arena(idx[0]).map(|_| c"disabled")),
    ),
    (
        "dirty_decay_ms",
        arena_stat!(Isize, |t| t.dirty_decay_ms as isize),
    ),
    (
        "muzzy_decay_ms",
        arena_stat!(Isize, |t| t.muzzy_decay_ms as isize),
    ),
    ("pactive", arena_stat!(Usize, |t| t.pactive)),
    ("pdirty", arena_stat!(Usize, |t| t.pdirty)),
    ("pmuzzy", arena_stat!(Usize, |t| t.pmuzzy)),
    ("mapped", arena_stat!(Usize, |t| t.mapped)),
    ("retained", arena_stat!(Usize, |t| t.retained)),
    ("dirty_npurge", arena_stat!(U64, |t| t.dirty.npurge)),
    ("dirty_nmadvise", arena_stat!(U64, |t| t.dirty.nmadvise)),
    ("dirty_purged", arena_stat!(U64, |t| t.dirty.purged)),
    ("muzzy_npurge", arena_stat!(U64, |t| t.muzzy.npurge)),
    ("muzzy_nmadvise", arena_stat!(U64, |t| t.muzzy.nmadvise)),
    ("muzzy_purged", arena_stat!(U64, |t| t.muzzy.purged)),
    ("extent_avail", arena_stat!(Usize, |t| t.extent_avail)),
    ("base", arena_stat!(Usize, |t| t.base)),
    ("internal", arena_stat!(Usize, |t| t.internal)),
    ("metadata_thp", arena_stat!(Usize, |_t| 0)),
    ("resident", arena_stat!(Usize, |t| t.resident)),
    ("abandoned_vm", arena_stat!(Usize, |_t| 0)),
    ("tcache_bytes", arena_stat!(Usize, |t| t.tcache_bytes)),
    ("tcache_stashed_bytes", arena_stat!(Usize, |_t| 0)),
    // rjem's page lock stands for jemalloc's extent, decay and large locks.
    (
        "mutexes",
        Node::Named(&[(
            "pages",
            lock_leaves!(|idx| stats::arena(idx[0]).map(|t| t.pages_lock)),
        )]),
    ),
    (
        "extents",
        Node::Indexed(
            sc::NSIZES,
            &Node::Named(&[
                ("ndirty", extent_stat!(|t| t.ndirty)),
                ("nmuzzy", extent_stat!(|t| t.nmuzzy)),
                ("nretained", extent_stat!(|t| t.nretained)),
                ("dirty_bytes", extent_stat!(|t| t.dirty_bytes)),
                ("muzzy_bytes", extent_stat!(|t| t.muzzy_bytes)),
                ("retained_bytes", extent_stat!(|t| t.retained_bytes)),
            ]),
        ),
    ),
    (
        "small",
        Node::Named(&[
            ("allocated", arena_stat!(Usize, |t| t.small.allocated)),
            ("nmalloc", arena_stat!(U64, |t| t.small.nmalloc)),
            ("ndalloc", arena_stat!(U64, |t| t.small.ndalloc)),
            ("nrequests", arena_stat!(U64, |t| t.small.nrequests)),
            ("nfills", arena_stat!(U64, |t| t.small.nfills)),
            ("nflushes", arena_stat!(U64, |t| t.small.nflushes)),
        ]),
    ),
    (
        "large",
        Node::Named(&[
            ("allocated", arena_stat!(Usize, |t| t.large.allocated)),
            ("nmalloc", arena_stat!(U64, |t| t.large.nmalloc)),
            ("ndalloc", arena_stat!(U64, |t| t.large.ndalloc)),
            ("nrequests", arena_stat!(U64, |t| t.large.nrequests)),
            ("nfills", arena_stat!(U64, |t| t.large.nfills)),
            ("nflushes", arena_stat!(U64, |t| t.large.nflushes)),
        ]),
    ),
    (
        "bins",
        Node::Indexed(
            sc::NBINS_MAX,
            &Node::Named(&[
                ("nmalloc", bin_stat!(U64, |s| s.nmalloc)),
                ("ndalloc", bin_stat!(U64, |s| s.ndalloc)),
                ("nrequests", bin_stat!(U64, |s| s.nmalloc)),
                ("curregs", bin_stat!(Usize, |s| s.curregs)),
                ("nfills", bin_stat!(U64, |s| s.nfills)),
                ("nflushes", bin_stat!(U64, |s| s.nflushes)),
                ("nslabs", bin_stat!(U64, |s| s.nslabs)),
                ("nreslabs", bin_stat!(U64, |s| s.nreslabs)),
                ("curslabs", bin_stat!(Usize, |s| s.curslabs)),
                ("nonfull_slabs", bin_stat!(Usize, |s| s.nonfull_slabs)),
                ("mutex", lock_leaves!(|idx| stats::bin_lock(idx[0], idx[1]))),
            ]),
        ),
    ),
    (
        "lextents",
        Node::Indexed(
            sc::NSIZES,
            &Node::Named(&[
                ("nmalloc", lextent_stat!(U64, |n, _d| n)),
                ("ndalloc", lextent_stat!(U64, |_n, d| d)),
                ("nrequests", lextent_stat!(U64, |n, _d| n)),
                (
                    "curlextents",
                    lextent_stat!(Usize, |n, d| n.saturating_sub(d) as usize),
                ),
            ]),
        ),
    ),
]);

/// `arena.<i>.*`.
pub(super) static ARENA_I: Node = Node::Named(&[
    (
        "initialized",
        ro!(Bool, |idx| Some(
            idx[0] == ARENAS_ALL || arena::get(idx[0]).is_some()
        )),
    ),
    ("purge", Node::Leaf(Type::Void, arena_purge)),
    ("decay", Node::Leaf(Type::Void, arena_decay)),
    ("reset", Node::Unsafe(&Node::Leaf(Type::Void, arena_reset))),
    // Read-only in rjem: it maps with mmap only.
    (
        "dss",
        ro!(Str, |idx| (idx[0] == ARENAS_ALL
            || arena::get(idx[0]).is_some())
        .then_some(c"disabled")),
    ),
    (
        "destroy",
        Node::Unsafe(&Node::Leaf(Type::Void, arena_destroy)),
    ),
    (
        "extent_hooks",
        Node::Unsafe(&Node::Rw(Type::Ptr, arena_extent_hooks)),
    ),
    (
        "retain_grow_limit",
        Node::Rw(Type::Usize, arena_retain_grow_limit),
    ),
    (
        "dirty_decay_ms",
        Node::Rw(Type::Isize, arena_dirty_decay_ms),
    ),
    (
        "muzzy_decay_ms",
        Node::Rw(Type::Isize, arena_muzzy_decay_ms),
    ),
]);

/// A read-only control's answer.
fn ro(new: Option<Value>, v: Value) -> Result<Value, Error> {
    match new {
        Some(_) => Err(Error::Permission),
        None => Ok(v),
    }
}

/// A decay time from a written value: -1 ..= a year (else EFAULT, as
/// jemalloc).
fn decay_ms(v: Value) -> Result<i64, Error> {
    match v {
        Value::Isize(ms) if decay::valid_ms(ms as i64) => Ok(ms as i64),
        _ => Err(Error::Fault),
    }
}

fn version(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    ro(new, Value::Str(c"5.3.0-0-rjem"))
}

/// A profiler control's switch: read it (false with `prof:false`), or
/// write it (ENOENT with `prof:false`, as jemalloc).
fn prof_switch(new: Option<Value>, f: fn(Option<bool>) -> bool) -> Result<Value, Error> {
    match new {
        None if !prof::on() => Ok(Value::Bool(false)),
        None => Ok(Value::Bool(f(None))),
        Some(_) if !prof::on() => Err(Error::NotFound),
        Some(Value::Bool(b)) => Ok(Value::Bool(f(Some(b)))),
        Some(_) => Err(Error::Invalid),
    }
}

fn prof_active(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    prof_switch(new, prof::active)
}

fn prof_thread_active_init(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    prof_switch(new, prof::thread_active_init)
}

fn prof_gdump(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    prof_switch(new, prof::gdump)
}

fn thread_prof_active(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    prof_switch(new, prof::thread_active)
}

/// `thread.prof.name`: reads the calling thread's name ("" with
/// `prof:false` or none set); a write names it (first 15 bytes) for its
/// samples from then on: EINVAL for a character neither printable nor
/// blank, EAGAIN once 64 distinct names are in use, ENOENT with
/// `prof:false` or `prof_sys_thread_name:true` (as jemalloc); it returns
/// the old name.
fn thread_prof_name(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    match new {
        None if !prof::on() => Ok(Value::Str(c"")),
        None => Ok(Value::Str(prof::thread_name())),
        Some(_) if !prof::on() => Err(Error::NotFound),
        Some(Value::Str(n)) => match prof::set_thread_name(n.to_bytes()) {
            Ok(old) => Ok(Value::Str(old)),
            Err(prof::NameError::Invalid) => Err(Error::Invalid),
            Err(prof::NameError::Full) => Err(Error::Again),
            Err(prof::NameError::System) => Err(Error::NotFound),
        },
        Some(_) => Err(Error::Invalid),
    }
}

/// `prof.dump`: EFAULT if the file cannot be written, ENOENT with
/// `prof:false` (as jemalloc).
fn prof_dump(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    if !prof::on() {
        return Err(Error::NotFound);
    }
    let path = match new {
        None => None,
        Some(Value::Str(p)) => Some(p),
        Some(_) => return Err(Error::Invalid),
    };
    if !prof::dump_to(path) {
        return Err(Error::Fault);
    }
    Ok(Value::Void)
}

/// `prof.prefix`: EINVAL for an empty or too long prefix (255 bytes at
/// most), ENOENT with `prof:false`.
fn prof_prefix(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    if !prof::on() {
        return Err(Error::NotFound);
    }
    match new {
        Some(Value::Str(p)) if prof::set_prefix(p.to_bytes()) => Ok(Value::Void),
        _ => Err(Error::Invalid),
    }
}

/// `prof.reset` (a new lg_sample is clamped to 63, as jemalloc does);
/// ENOENT with `prof:false`.
fn prof_reset(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    if !prof::on() {
        return Err(Error::NotFound);
    }
    let lg = match new {
        None => None,
        Some(Value::Usize(lg)) => Some(lg),
        Some(_) => return Err(Error::Invalid),
    };
    prof::reset(lg);
    Ok(Value::Void)
}

/// `stats.mutexes.reset`: clears every lock's profile.
fn mutexes_reset(_: &[usize], _: Option<Value>) -> Result<Value, Error> {
    stats::reset_lock_stats();
    Ok(Value::Void)
}

/// `thread.idle`: the thread expects to sleep a while: its cache goes back
/// to the arenas, and the arena it uses runs decay now.
fn thread_idle(_: &[usize], _: Option<Value>) -> Result<Value, Error> {
    tsd::flush();
    tsd::slow().arena().decay();
    Ok(Value::Void)
}

fn thread_tcache_flush(_: &[usize], _: Option<Value>) -> Result<Value, Error> {
    if !tsd::cache_enabled() {
        return Err(Error::Fault);
    }
    tsd::flush();
    Ok(Value::Void)
}

/// The arenas `arena.<i>` names: one, or all for `ARENAS_ALL` and, as in
/// jemalloc (Redis's `MEMORY PURGE` relies on it), for `arenas.narenas`
/// itself. An index in use but not created yet names none; a larger one,
/// nothing (ENOENT).
fn arenas_of(i: usize, mut f: impl FnMut(&'static Arena)) -> Result<(), Error> {
    if i == ARENAS_ALL || i == narenas_total() {
        arena::all().for_each(f);
        return Ok(());
    }
    match arena::get(i) {
        Some(a) => f(a),
        None if i < narenas_total() => {}
        None => return Err(Error::NotFound),
    }
    Ok(())
}

fn arena_purge(idx: &[usize], _: Option<Value>) -> Result<Value, Error> {
    arenas_of(idx[0], |a| {
        a.purge();
    })?;
    Ok(Value::Void)
}

fn arena_decay(idx: &[usize], _: Option<Value>) -> Result<Value, Error> {
    arenas_of(idx[0], |a| {
        a.decay();
    })?;
    Ok(Value::Void)
}

/// `arena.<i>.{dirty,muzzy}_decay_ms`. For `ARENAS_ALL` (where jemalloc
/// fails with EFAULT) rjem reads the default for new arenas and writes it
/// and every automatic arena's time at once.
fn arena_decay_ms(idx: &[usize], new: Option<Value>, dirty: bool) -> Result<Value, Error> {
    let pick = |(d, m): (i64, i64)| if dirty { d } else { m };
    let (i, new) = (idx[0], new.map(decay_ms).transpose()?);
    let old = if i == ARENAS_ALL {
        let old = pick(arena::default_decay_ms());
        if let Some(ms) = new {
            let (d, m) = if dirty {
                (Some(ms), None)
            } else {
                (None, Some(ms))
            };
            arena::set_decay_ms_all(d, m);
        }
        old
    } else {
        let a = match arena::get(i) {
            Some(a) => a,
            None if i < narenas_total() => return Err(Error::Fault),
            None => return Err(Error::NotFound),
        };
        let mut pages = a.pages.lock();
        let old = pick((pages.decay_dirty.ms(), pages.decay_muzzy.ms()));
        if let Some(ms) = new {
            let (d, m) = if dirty {
                (Some(ms), None)
            } else {
                (None, Some(ms))
            };
            pages.set_decay(d, m);
        }
        old
    };
    Ok(Value::Isize(old as isize))
}

fn arena_dirty_decay_ms(idx: &[usize], new: Option<Value>) -> Result<Value, Error> {
    arena_decay_ms(idx, new, true)
}

fn arena_muzzy_decay_ms(idx: &[usize], new: Option<Value>) -> Result<Value, Error> {
    arena_decay_ms(idx, new, false)
}

/// `arenas.{dirty,muzzy}_decay_ms`: the time arenas created from now on
/// start with.
fn arenas_decay_ms(new: Option<Value>, dirty: bool) -> Result<Value, Error> {
    let (d, m) = arena::default_decay_ms();
    let old = if dirty { d } else { m };
    if let Some(v) = new {
        let ms = Some(decay_ms(v)?);
        let (d, m) = if dirty { (ms, None) } else { (None, ms) };
        arena::set_new_arena_decay_ms(d, m);
    }
    Ok(Value::Isize(old as isize))
}

fn arenas_dirty_decay_ms(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    arenas_decay_ms(new, true)
}

fn arenas_muzzy_decay_ms(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    arenas_decay_ms(new, false)
}

/// Arena indices in use: the automatic arenas, the huge arena, and any
/// created since (`arenas.narenas`).
fn narenas_total() -> usize {
    arena::count().max(arena::narenas())
}

/// The largest size the thread caches hold (`arenas.tcache_max`).
fn tcache_max() -> usize {
    match tcache::ncached() {
        0 => 0,
        n => sc::index_to_size(n - 1),
    }
}

fn bin_info(i: usize) -> Option<&'static sc::BinInfo> {
    let g = sc::geom();
    (i < g.nbins).then(|| &g.bins[i])
}

/// `epoch`: writing it refreshes the process totals (`stats.allocated`
/// and the others under `stats.`) and returns the new epoch.
fn epoch(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    static EPOCH: AtomicU64 = AtomicU64::new(1);
    if new.is_some() {
        stats::refresh();
        EPOCH.fetch_add(1, Relaxed);
    }
    Ok(Value::U64(EPOCH.load(Relaxed)))
}

fn background_thread(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    let old = Value::Bool(background::running());
    if let Some(Value::Bool(on)) = new {
        if !background::set_enabled(on) {
            return Err(Error::Again);
        }
    }
    Ok(old)
}

fn max_background_threads(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    let old = Value::Usize(background::max_threads());
    if let Some(Value::Usize(n)) = new {
        background::set_max_threads(n);
    }
    Ok(old)
}

/// `config.malloc_conf`: the configuration built into the library (none).
fn config_malloc_conf(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    ro(new, Value::Str(c""))
}

/// `thread.arena`: the calling thread's arena; writing rebinds it to an
/// existing arena or an automatic one (created if needed). With
/// `percpu_arena` the per-CPU arenas cannot be chosen (EPERM, as jemalloc).
fn thread_arena(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    let old = Value::U32(tsd::slow().arena().ind as u32);
    if let Some(Value::U32(i)) = new {
        let i = i as usize;
        if i < arena::percpu_limit() {
            return Err(Error::Permission);
        }
        let a = match arena::get(i) {
            Some(a) => a,
            None if i < arena::narenas() => arena::get_or_create(i).ok_or(Error::Again)?,
            None => return Err(Error::Fault),
        };
        tsd::rebind(a);
    }
    Ok(old)
}

/// `tcache.create`: an explicit cache for `MALLOCX_TCACHE(tc)`; reading
/// creates it and returns its id.
fn tcache_create(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    if new.is_some() {
        return Err(Error::Permission);
    }
    let tc = tcache::create_explicit(tsd::slow().arena()).ok_or(Error::Again)?;
    Ok(Value::U32(tc as u32))
}

/// The id written to `tcache.flush` or `tcache.destroy`.
fn tcache_id(new: Option<Value>) -> Result<usize, Error> {
    match new {
        Some(Value::U32(tc)) => Ok(tc as usize),
        _ => Err(Error::Fault),
    }
}

fn tcache_flush(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    if !tcache::flush_explicit(tcache_id(new)?) {
        return Err(Error::Fault);
    }
    Ok(Value::Void)
}

fn tcache_destroy(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    if !tcache::destroy_explicit(tcache_id(new)?) {
        return Err(Error::Fault);
    }
    Ok(Value::Void)
}

fn thread_peak_reset(_: &[usize], _: Option<Value>) -> Result<Value, Error> {
    tsd::reset_peak();
    Ok(Value::Void)
}

fn thread_tcache_enabled(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    let old = Value::Bool(tsd::cache_enabled());
    if let Some(Value::Bool(on)) = new {
        tsd::set_cache_enabled(on);
    }
    Ok(old)
}

/// Extent hooks from a written pointer: null or rjem's own table mean the
/// default hooks.
fn hooks_of(v: Option<Value>) -> Option<Ehooks> {
    match v {
        Some(Value::Ptr(p)) if !p.is_null() => {
            // SAFETY: only reached through `write_unchecked` or C's mallctl,
            // whose callers take on the extent-hooks contract.
            Some(unsafe { Ehooks::custom(p.cast(), 0) })
        }
        _ => None,
    }
}

/// `arenas.create`: a new manual arena, used through `MALLOCX_ARENA` or
/// `thread.arena`, with the extent hooks written, if any; reads its
/// index.
fn arenas_create(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    let a: &Arena = arena::create(hooks_of(new)).ok_or(Error::Again)?;
    Ok(Value::U32(a.ind as u32))
}

/// `arenas.lookup`: the arena that owns the pointer written (EINVAL if
/// rjem did not allocate it).
fn arenas_lookup(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    let Some(Value::Ptr(p)) = new else {
        return Err(Error::Invalid);
    };
    let e = emap::lookup(p as usize).extent().ok_or(Error::Invalid)?;
    let a = arena::get(e.arena()).ok_or(Error::Invalid)?;
    Ok(Value::U32(a.ind as u32))
}

/// An arena that `reset`/`destroy` may name: one created arena.
fn manual(i: usize) -> Result<usize, Error> {
    if i == ARENAS_ALL || i >= arena::MAX_ARENAS {
        return Err(Error::Fault);
    }
    Ok(i)
}

/// `arena.<i>.reset`: discards every allocation of manual arena `i`. The
/// calling thread's cache is flushed first (other threads' caches must not
/// hold blocks of the arena: jemalloc's contract).
fn arena_reset(idx: &[usize], _: Option<Value>) -> Result<Value, Error> {
    discard(idx, arena::reset)
}

/// `arena.<i>.destroy`: `reset`, then all of the arena's memory goes back
/// and its index is free for `arenas.create`; its counters move to
/// `stats.arenas.<MALLCTL_ARENAS_DESTROYED>`.
fn arena_destroy(idx: &[usize], _: Option<Value>) -> Result<Value, Error> {
    discard(idx, arena::destroy)
}

/// Reset or destroy (`op`) of manual arena `idx[0]`.
fn discard(idx: &[usize], op: fn(usize) -> Result<(), arena::Refusal>) -> Result<Value, Error> {
    let i = manual(idx[0])?;
    // Bound now, so that a hook that allocates does not need the arena
    // table's lock, which `op` holds while it calls hooks.
    tsd::slow();
    tsd::flush();
    op(i).map_err(refusal)?;
    Ok(Value::Void)
}

fn refusal(r: arena::Refusal) -> Error {
    match r {
        arena::Refusal::NotManual | arena::Refusal::InUse => Error::Fault,
        arena::Refusal::NoMemory => Error::Again,
    }
}

/// Arena `i` for a control of one arena: created on demand if automatic;
/// EFAULT for an index with no arena.
fn one_arena(i: usize) -> Result<&'static Arena, Error> {
    if i == ARENAS_ALL {
        return Err(Error::Fault);
    }
    arena::get(i)
        .or_else(|| arena::get_or_create(i))
        .ok_or(Error::Fault)
}

/// `arena.<i>.extent_hooks`: reads the arena's hooks table (rjem's own
/// for default hooks, which a custom hook may call); writes new ones.
fn arena_extent_hooks(idx: &[usize], new: Option<Value>) -> Result<Value, Error> {
    let a = one_arena(idx[0])?;
    let mut pages = a.pages.lock();
    let old = pages.hooks().table();
    if new.is_some() {
        let h = hooks_of(new).unwrap_or(Ehooks::default_for(0));
        pages.set_hooks(h.for_arena(a.ind));
    }
    Ok(Value::Ptr(old.cast()))
}

/// `arena.<i>.retain_grow_limit`: the largest step by which the arena
/// grows its address space (rounded down to pages; at least a page).
fn arena_retain_grow_limit(idx: &[usize], new: Option<Value>) -> Result<Value, Error> {
    let a = one_arena(idx[0])?;
    let mut pages = a.pages.lock();
    let old = pages.grow_limit();
    if let Some(Value::Usize(n)) = new {
        if !pages.set_grow_limit(n) {
            return Err(Error::Fault);
        }
    }
    Ok(Value::Usize(old))
}
