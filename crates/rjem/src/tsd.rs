//! Thread-specific data: the thread cache, the arena binding, and the
//! thread's lifecycle.
//!
//! Owns: the one thread-local `Tsd` (constant-initialised and without a
//! destructor, so access compiles to a plain TLS address with no lazy-init
//! check and registers nothing with the C runtime), and a `pthread` key whose
//! destructor flushes the cache when the thread exits (glibc runs key
//! destructors after C++ and Rust thread-local destructors).
//!
//! Lifecycle: `UNINIT` (all stacks zero-capacity, so the first allocation or
//! free lands in the slow path) -> set-up -> `ACTIVE` (cache on; or
//! `ACTIVE_OFF_PATH`, see below) or `NOCACHE`
//! (`tcache:false`, or no memory for stacks) -> `DEAD` after the thread-exit
//! destructor. A dead thread, or one re-entering the allocator while its
//! own set-up runs, is served directly by its arena (no cache, no leak).
//!
//! When an option fills blocks (`junk`, `zero`), the thread's cache is kept
//! off the hit path: it lives in a block of its own (`off_path`), used by
//! the slow paths only, and the stacks the hit path reads stay
//! zero-capacity, so the hit path is the same code with or without the
//! option and costs nothing when it is off.
//!
//! Where the `Tsd` lives: by default a `thread_local!` (in an executable a
//! plain `fs:`-relative access). With the `initial-exec-tls` feature (the C
//! library turns it on) it is a block in the initial-exec TLS model, declared
//! in assembly because stable Rust cannot choose a TLS model: a shared
//! library then reaches it with two instructions instead of a call to
//! `__tls_get_addr` (which may also allocate for `dlopen`ed libraries). Both
//! start all-zero, which is a valid `UNINIT` state (checked by a test).
//!
//! This is the only module that names `std`, and only for `thread_local!`.

#[cfg(not(all(feature = "initial-exec-tls", target_arch = "x86_64")))]
extern crate std;

use crate::arena::{self, Arena};
use crate::pages::GuardSampler;
use crate::tcache::{self, Tcache, NCACHED_MAX};
use core::cell::Cell;
use core::sync::atomic::{AtomicU32, Ordering};

const UNINIT: u8 = 0;
const ACTIVE: u8 = 1;
const NOCACHE: u8 = 2;
const DEAD: u8 = 3;
/// As `ACTIVE`, with the cache off the hit path (`off_path`).
const ACTIVE_OFF_PATH: u8 = 4;

pub(crate) struct Tsd {
    /// The stacks the hit path reads, and the thread's cache unless caches
    /// are off the hit path (`off_path`).
    pub(crate) tcache: Tcache,
    state: Cell<u8>,
    /// Inside thread set-up (reentrancy guard).
    busy: Cell<bool>,
    arena: Cell<Option<&'static Arena>>,
    /// With caches off the hit path (`tcache::off_hit_path`: `junk`,
    /// `zero`), the thread's cache and counters, from its set-up to its
    /// exit; `tcache` then stays zero-capacity.
    off_path: Cell<Option<&'static Tcache>>,
    /// Frees before the thread was set up (`cache_for_free`).
    early_frees: Cell<u8>,
}

/// A thread that has not allocated yet frees this many blocks straight to
/// their arenas before it sets up a cache for its frees. Its first
/// allocations then come from its own arena, not from the blocks other
/// threads handed it: those share cache lines with the other threads'
/// blocks (cache-scratch's passive false sharing, 1.7x jemalloc's time
/// without this). A thread that only frees (a consumer) caches from the
/// 65th free on.
const EARLY_FREES: u8 = 64;

impl Tsd {
    /// The initial state (equal to all-zero memory; the initial-exec block
    /// relies on that).
    #[cfg_attr(
        all(feature = "initial-exec-tls", target_arch = "x86_64"),
        allow(dead_code)
    )]
    const fn new() -> Tsd {
        Tsd {
            tcache: Tcache::new(),
            state: Cell::new(UNINIT),
            busy: Cell::new(false),
            arena: Cell::new(None),
            off_path: Cell::new(None),
            early_frees: Cell::new(0),
        }
    }

    /// The cache holding this thread's stacks and counters.
    #[inline]
    fn tc(&self) -> &Tcache {
        match self.off_path.get() {
            Some(c) => c,
            None => &self.tcache,
        }
    }

    /// The thread's cache, when it has a working one.
    #[inline]
    pub(crate) fn cache(&self) -> Option<&Tcache> {
        match self.state.get() {
            ACTIVE => Some(&self.tcache),
            ACTIVE_OFF_PATH => self.off_path.get(),
            _ => None,
        }
    }

    /// The arena this thread allocates from (arena 0 before binding).
    #[inline]
    pub(crate) fn arena(&self) -> &'static Arena {
        match self.arena.get() {
            Some(a) => a,
            None => arena::get(0).expect("arena 0 exists after init"),
        }
    }
}

#[cfg(not(all(feature = "initial-exec-tls", target_arch = "x86_64")))]
std::thread_local! {
    static TSD: Tsd = const { Tsd::new() };
}

/// This thread's `Tsd`.
#[cfg(not(all(feature = "initial-exec-tls", target_arch = "x86_64")))]
#[inline(always)]
pub(crate) fn get() -> &'static Tsd {
    // SAFETY: the thread-local has no destructor, so its storage is valid
    // for as long as the thread runs; `Tsd` is !Sync, so the reference
    // cannot reach another thread. 'static stands for "this thread's life".
    TSD.with(|t| unsafe { &*(t as *const Tsd) })
}

#[cfg(all(feature = "initial-exec-tls", target_arch = "x86_64"))]
core::arch::global_asm!(
    ".pushsection .tbss.rjem_tsd,\"awT\",@nobits",
    ".p2align 6",
    // Global so every codegen unit can reach it, hidden so no other module
    // binds to it.
    ".globl rjem_tsd_block",
    ".hidden rjem_tsd_block",
    ".type rjem_tsd_block,@object",
    ".size rjem_tsd_block, {size}",
    "rjem_tsd_block:",
    ".zero {size}",
    ".popsection",
    size = const core::mem::size_of::<Tsd>(),
);

/// This thread's `Tsd`, in the initial-exec TLS block.
#[cfg(all(feature = "initial-exec-tls", target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn get() -> &'static Tsd {
    let p: *const Tsd;
    // SAFETY: the GOT slot holds the block's offset from the thread pointer
    // (fs:0 holds the thread pointer itself); the block is zero-initialised
    // per thread by the loader, a valid `Tsd`, and lives as long as the
    // thread. See the non-asm `get` for why 'static is acceptable.
    unsafe {
        core::arch::asm!(
            "mov {p}, qword ptr [rip + rjem_tsd_block@GOTTPOFF]",
            "add {p}, qword ptr fs:0",
            p = out(reg) p,
            options(pure, readonly, nostack),
        );
        &*p
    }
}

/// Fast-path pop from the cached class at `off` (`tcache::BinOffset`).
///
/// # Safety
/// `off` is a `BinOffset` of a class below `NCACHED_MAX` (the bound is not
/// checked, to keep the hit path to a compare, a load and a store).
#[inline(always)]
pub(crate) unsafe fn cache_pop(off: tcache::BinOffset) -> Option<*mut u8> {
    // SAFETY: forwarded.
    unsafe { get().tcache.bin_at(off) }.pop()
}

/// Fast-path push to the stack at `off` by a free that trusts the
/// caller's size and looked nothing up (`CacheBin::push_trusted`). False
/// if the caller must take the slow path.
///
/// # Safety
/// As `cache_pop`, and `p` is a live block of that stack's class that the
/// caller gives up.
#[inline(always)]
pub(crate) unsafe fn cache_push_trusted(off: tcache::BinOffset, p: *mut u8) -> bool {
    let c = &get().tcache;
    // SAFETY: forwarded.
    unsafe { c.bin_at(off) }.push_trusted(p, c.key())
}

/// Fast-path push to the cached class at `off`. False if the caller must
/// take the slow path.
///
/// # Safety
/// As `cache_pop`, and `p` is a live block of that class that the caller
/// gives up.
#[inline(always)]
pub(crate) unsafe fn cache_push(off: tcache::BinOffset, p: *mut u8) -> bool {
    // SAFETY: forwarded.
    unsafe { get().tcache.push_at(off, p) }
}

/// Slow-path entry: makes sure this thread is set up (bound to an arena,
/// with a cache when enabled) and, with `percpu_arena`, bound to the arena
/// of the CPU it runs on now (jemalloc also re-checks on slow paths only).
/// Call only once rjem is initialised.
pub(crate) fn slow() -> &'static Tsd {
    let t = get();
    if t.state.get() == UNINIT && !t.busy.get() {
        t.busy.set(true);
        setup(t);
        t.busy.set(false);
    } else if arena::percpu_limit() != 0 {
        follow_cpu(t);
    }
    t
}

/// The cache a free on this thread should use: as `slow().cache()`, except
/// for a thread not set up yet, whose first `EARLY_FREES` frees use none.
/// Call only once rjem is initialised.
pub(crate) fn cache_for_free() -> Option<&'static Tcache> {
    let t = get();
    if t.state.get() == UNINIT && !t.busy.get() {
        let n = t.early_frees.get();
        if n < EARLY_FREES {
            t.early_frees.set(n + 1);
            return None;
        }
    }
    slow().cache()
}

/// With `percpu_arena`: moves the binding to the current CPU's arena,
/// unless the thread was bound outside the per-CPU arenas on purpose.
fn follow_cpu(t: &Tsd) {
    let (Some(cur), Some(i)) = (t.arena.get(), arena::percpu_index()) else {
        return;
    };
    if cur.ind == i
        || cur.ind >= arena::percpu_limit()
        || !matches!(t.state.get(), ACTIVE | ACTIVE_OFF_PATH | NOCACHE)
    {
        return;
    }
    if let Some(a) = arena::get_or_create(i) {
        arena::bind(a);
        t.arena.set(Some(a));
        arena::release(cur);
    }
}

#[cold]
fn setup(t: &Tsd) {
    let Some(a) = arena::choose() else {
        return;
    };
    t.arena.set(Some(a));
    // Without a thread-exit key the cache is never destroyed, so it must
    // not join the registry of caches.
    let exits = KEY.load(Ordering::Relaxed) != NO_KEY;
    let state = if tcache::enabled() {
        attach_cache(t, a, exits)
    } else {
        NOCACHE
    };
    t.state.set(state);
    // A non-null value makes the key's destructor run at thread exit.
    let k = KEY.load(Ordering::Relaxed);
    if k != NO_KEY {
        // SAFETY: k was created by pthread_key_create during initialisation.
        unsafe {
            libc::pthread_setspecific(k, core::ptr::dangling::<libc::c_void>());
        }
    }
}

/// Sets up the thread's cache to fill from `a`: its own `tcache`, or with
/// caches off the hit path the `off_path` one (made now if needed, kept
/// after `set_cache_enabled(false)` for its counters). Returns the
/// thread's state: `ACTIVE` or `ACTIVE_OFF_PATH`, or `NOCACHE` when out of
/// memory.
fn attach_cache(t: &Tsd, a: &Arena, register: bool) -> u8 {
    let ok = if !tcache::off_hit_path() {
        t.tcache.setup(a, register)
    } else if let Some(c) = t.off_path.get() {
        c.setup(a, register)
    } else if let Some(c) = tcache::create_off_path(a, register) {
        t.off_path.set(Some(c));
        true
    } else {
        false
    };
    match (ok, t.off_path.get()) {
        (false, _) => NOCACHE,
        (true, None) => ACTIVE,
        (true, Some(_)) => ACTIVE_OFF_PATH,
    }
}

/// Sentinel for "no key could be created" (caches are then not flushed at
/// thread exit, but no other library's key is touched).
const NO_KEY: u32 = u32::MAX;
static KEY: AtomicU32 = AtomicU32::new(NO_KEY);

/// Creates the thread-exit key (start-up).
pub(crate) fn boot() {
    let mut k: libc::pthread_key_t = 0;
    // SAFETY: k is a valid out-parameter; the destructor is a plain function.
    if unsafe { libc::pthread_key_create(&mut k, Some(thread_exit)) } == 0 && k != NO_KEY {
        KEY.store(k, Ordering::Relaxed);
    }
}

extern "C" fn thread_exit(_: *mut libc::c_void) {
    let t = get();
    match t.state.get() {
        ACTIVE | ACTIVE_OFF_PATH => {
            t.state.set(DEAD);
            t.tc().destroy();
        }
        NOCACHE => t.state.set(DEAD),
        _ => return,
    }
    if let Some(c) = t.off_path.take() {
        // SAFETY: made by `attach_cache` for this thread, which is done
        // with it (`tc()` is the thread's own `tcache` from now on).
        unsafe { tcache::retire_off_path(c) };
    }
    if let Some(a) = t.arena.get() {
        arena::release(a);
    }
}

/// Rebinds the calling thread to arena `a` (`thread.arena`). Its cached
/// blocks stay cached: every block goes back to the arena that owns it.
pub(crate) fn rebind(a: &'static Arena) {
    let t = slow();
    if !matches!(t.state.get(), ACTIVE | ACTIVE_OFF_PATH | NOCACHE) {
        return;
    }
    arena::bind(a);
    if let Some(old) = t.arena.replace(Some(a)) {
        arena::release(old);
    }
    t.tc().set_arena(a);
}

/// Whether the calling thread has a working cache (`thread.tcache.enabled`).
pub(crate) fn cache_enabled() -> bool {
    // A thread that has not allocated yet gets its cache now, as it would.
    matches!(slow().state.get(), ACTIVE | ACTIVE_OFF_PATH)
}

/// Turns the calling thread's cache off (flushing it) or back on. On
/// stays off when `tcache:false` or out of memory.
pub(crate) fn set_cache_enabled(on: bool) {
    let t = slow();
    match (t.state.get(), on) {
        (ACTIVE | ACTIVE_OFF_PATH, false) => {
            // An off-path cache stays attached, for its counters.
            t.tc().destroy();
            t.state.set(NOCACHE);
        }
        (NOCACHE, true) if tcache::enabled() => {
            let exits = KEY.load(Ordering::Relaxed) != NO_KEY;
            t.state.set(attach_cache(t, t.arena(), exits));
        }
        _ => {}
    }
}

/// Counts `bytes` (a usable size) allocated by this thread outside its
/// cache's stacks (`thread.allocated`).
#[inline]
pub(crate) fn note_alloc(bytes: usize) {
    get().tc().note_alloc(bytes)
}

/// Counts `bytes` freed by this thread outside its cache's stacks.
#[inline]
pub(crate) fn note_dalloc(bytes: usize) {
    get().tc().note_dalloc(bytes)
}

/// This thread's guard sampler (`san_guard_small`, `san_guard_large`).
pub(crate) fn guards() -> &'static GuardSampler {
    &get().tc().guards
}

/// Bytes this thread allocated and freed so far (exact).
pub(crate) fn allocated() -> (u64, u64) {
    let t = get().tc();
    t.publish();
    t.allocated()
}

/// `thread.allocatedp` / `deallocatedp`: pointers to this thread's
/// published counters, valid for the thread's life.
pub(crate) fn published_counters() -> (*mut u64, *mut u64) {
    get().tc().published_counters()
}

/// `thread.peak.read`.
pub(crate) fn peak() -> u64 {
    get().tc().peak()
}

/// `thread.peak.reset`.
pub(crate) fn reset_peak() {
    get().tc().reset_peak()
}

/// Whether `p`, a live-looking block of class `ind` given to entry point
/// `func`, was freed already (`realloc` of freed memory, a double free
/// seen before `junk:free` fills): reported (`os::misuse`); true means
/// the caller skips the operation.
#[inline]
pub(crate) fn freed_already(ind: usize, p: *mut u8, func: &'static str) -> bool {
    get().cache().is_some_and(|c| c.freed_already(ind, p, func))
}

/// Bytes and blocks this thread's cache holds (stats, tests).
pub(crate) fn cached() -> (usize, usize) {
    get().tc().cached()
}

/// Flushes this thread's cache back to the arenas (`thread.tcache.flush`).
pub(crate) fn flush() {
    let t = get();
    if let Some(c) = t.cache() {
        for i in 0..NCACHED_MAX {
            c.flush(i, usize::MAX);
        }
    }
}

/// Child side of `fork()`: the forking thread is the only one left; its
/// binding is counted again.
pub(crate) fn fork_child() {
    let t = get();
    if matches!(t.state.get(), ACTIVE | ACTIVE_OFF_PATH | NOCACHE) {
        if let Some(a) = t.arena.get() {
            arena::bind(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_zero_is_the_initial_state() {
        // SAFETY: only inspected, through the same accessors the allocator
        // uses; this is exactly what the loader gives each thread.
        let z: Tsd = unsafe { core::mem::zeroed() };
        let n = Tsd::new();
        assert_eq!(z.state.get(), n.state.get());
        assert_eq!(z.busy.get(), n.busy.get());
        assert!(z.arena.get().is_none());
        assert!(z.cache().is_none());
        for (a, b) in z.tcache.bins.iter().zip(n.tcache.bins.iter()) {
            assert_eq!(a.count(), 0);
            assert_eq!(b.count(), 0);
            assert!(a.pop().is_none() && b.pop().is_none());
            assert!(!a.push(core::ptr::null_mut(), 0) && !b.push(core::ptr::null_mut(), 0));
        }
        assert!(z.tcache.same_as_new());
    }
}
