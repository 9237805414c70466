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
use crate::emap;
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
            ("cache_oblivious", config!(false)),
            ("debug", config!(cfg!(debug_assertions))),
            ("fill", config!(false)),
            ("lazy_lock", config!(false)),
            ("malloc_conf", Node::Leaf(Type::Str, config_malloc_conf)),
            ("prof", config!(false)),
            ("prof_libgcc", config!(false)),
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
            ("create", Node::Rw(Type::U32, arenas_create)),
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

/// `arenas.create`: a new arena, used through `MALLOCX_ARENA`; reading
/// returns its index.
fn arenas_create(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    if new.is_some() {
        // Custom extent hooks are not supported yet.
        return Err(Error::Invalid);
    }
    let a: &Arena = arena::create().ok_or(Error::Again)?;
    Ok(Value::U32(a.ind as u32))
}
