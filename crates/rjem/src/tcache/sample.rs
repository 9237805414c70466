//! The heap profiler's sampling (`prof`) in the thread caches: each cached
//! class counts down the pops until its next sampling event, so that with
//! `prof:true` an allocation's hit path pays one decrement and one branch
//! (the decrement is also the pop count `thread.allocated` derives from)
//! and frees stay on theirs.
//!
//! Why per class: jemalloc samples the allocation whose bytes contain the
//! next point of a Poisson process over the thread's allocated bytes (mean
//! 2^`lg_prof_sample`). That process restricted to the bytes of one class
//! of size s is a Poisson process of the same rate, independent of the
//! other classes' (memoryless, and superposition): the class's next
//! sample is a geometric number of its pops away, with success
//! probability 1 - exp(-s / 2^`lg_prof_sample`). The same sampling as one
//! byte counter, without a byte counter on the hit path.
//!
//! Owns: `Sampler` (the thread's byte counter for allocations that do not
//! come from its cache's stacks: uncached classes and places, explicit
//! caches, threads without a cache; and the profiler's per-thread state),
//! whether caches set up from now on sample per class (`enable`), and the
//! countdowns' bookkeeping (`charge_pop`, `arm_class`, `uncount_pop`). The
//! profiler draws the countdowns and decides (`profiler::should_sample_cached`).
//!
//! Invariants: pops = `BinCtl::pop_base` - `CacheBin::left` (wrapping), kept
//! by every re-arm. `left` is 0 only between a hit-path pop that brought
//! it there and that allocation's slow path, which re-arms it. A cache not
//! sampled per class (`prof:false`, explicit caches) is armed with `NEVER`;
//! one sampled per class is armed with 1 at set-up, generation 0, so that
//! its first allocation of any class reaches the slow path, where the
//! profiler arms every class with a draw (and again whenever the
//! profiler's generation moves: `prof.reset`, fork).

use super::Tcache;
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Caches set up from now on sample per class (`prof:true`).
static PER_CLASS: AtomicBool = AtomicBool::new(false);

/// A countdown that never runs out in practice (2^64 pops).
pub(crate) const NEVER: u64 = u64::MAX;

/// Thread caches sample per class from now on (start-up, `prof:true`,
/// before any thread sets up its cache).
pub(crate) fn enable() {
    PER_CLASS.store(true, Relaxed);
}

/// Whether thread caches sample per class.
pub(crate) fn enabled() -> bool {
    PER_CLASS.load(Relaxed)
}

/// A thread's sampling state outside its cache's stacks. All zero is the
/// initial state (unarmed).
pub(crate) struct Sampler {
    /// Bytes of allocations outside the stacks before the thread's next
    /// event; 0 when unarmed.
    left: Cell<u64>,
    armed: Cell<bool>,
    /// The profiler generation this cache's classes were armed at (0:
    /// never).
    generation: Cell<u32>,
    /// The profiler's per-thread state (`prof` owns the meaning): its
    /// random number generator, flags, and the allocated bytes it has
    /// passed on to the interval count.
    pub(crate) prng: Cell<u64>,
    pub(crate) flags: Cell<u8>,
    pub(crate) reported: Cell<u64>,
    /// The thread's name id (`thread.prof.name`; 0: none).
    pub(crate) name: Cell<u16>,
}

impl Sampler {
    pub(crate) const fn new() -> Sampler {
        Sampler {
            left: Cell::new(0),
            armed: Cell::new(false),
            generation: Cell::new(0),
            prng: Cell::new(0),
            flags: Cell::new(0),
            reported: Cell::new(0),
            name: Cell::new(0),
        }
    }

    /// Whether an event is scheduled.
    #[inline]
    pub(crate) fn armed(&self) -> bool {
        self.armed.get()
    }

    /// No event scheduled: the next allocation outside the stacks draws.
    pub(crate) fn disarm(&self) {
        self.left.set(0);
        self.armed.set(false);
    }

    /// The profiler generation the classes were armed at (0: never).
    pub(crate) fn generation(&self) -> u32 {
        self.generation.get()
    }

    pub(crate) fn set_generation(&self, g: u32) {
        self.generation.set(g);
    }
}

impl Tcache {
    /// Arms classes `0..n` at set-up: with 1 (generation 0, so that the
    /// profiler arms them at the first allocation) if `per_class`, else
    /// with `NEVER`.
    pub(super) fn arm_all(&self, n: usize, per_class: bool) {
        for i in 0..n {
            self.arm_class(i, if per_class { 1 } else { NEVER });
        }
        self.sampler.generation.set(0);
    }

    /// Classes `0..n` are cached (the profiler arms them).
    pub(crate) fn nclasses(&self) -> usize {
        self.nbins.get()
    }

    /// Counts an allocation of cached class `ind` on a slow path as a pop
    /// (unless the hit path did: `left` is 0). True if it is the class's
    /// sampling event: the caller re-arms the class (`arm_class`), and if
    /// it serves the allocation without the stack, uncounts it
    /// (`uncount_pop`).
    pub(crate) fn charge_pop(&self, ind: usize) -> bool {
        let b = &self.bins[ind];
        let left = b.left.get();
        if left == 0 {
            return true;
        }
        b.left.set(left - 1);
        left == 1
    }

    /// The class's next sampling event is `pops` (at least 1) pops from
    /// now; the pop count is kept.
    pub(crate) fn arm_class(&self, ind: usize, pops: u64) {
        let b = &self.bins[ind];
        let mut ctl = self.ctl[ind].get();
        let popped = ctl.pop_base.wrapping_sub(b.left.get());
        let pops = pops.max(1);
        b.left.set(pops);
        ctl.pop_base = popped.wrapping_add(pops);
        self.ctl[ind].set(ctl);
    }

    /// Takes back the count of a pop that `charge_pop` counted but that
    /// did not take a block from the stack.
    pub(crate) fn uncount_pop(&self, ind: usize) {
        let mut ctl = self.ctl[ind].get();
        ctl.pop_base = ctl.pop_base.wrapping_sub(1);
        self.ctl[ind].set(ctl);
    }

    /// Schedules the thread's next event outside the stacks `wait` bytes
    /// of such allocation from now (at least 1).
    pub(crate) fn arm(&self, wait: u64) {
        self.sampler.left.set(wait.max(1));
        self.sampler.armed.set(true);
    }

    /// Counts an allocation of `bytes` outside the stacks. True if it
    /// reaches the event: the allocation is the sample, and the counter is
    /// unarmed until the caller arms it again.
    #[inline]
    pub(crate) fn charge(&self, bytes: usize) -> bool {
        let s = &self.sampler;
        let bytes = bytes as u64;
        let left = s.left.get();
        if left > bytes {
            s.left.set(left - bytes);
            return false;
        }
        s.left.set(0);
        s.armed.set(false);
        true
    }
}
