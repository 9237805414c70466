//! Profile records: one per distinct stack, with the counts of the
//! sampled blocks it allocated, in a hash table.
//!
//! Owns: `Record` (the stack's frames, the name id of the threads that
//! sampled it (`names`; one record per stack and thread name), and its
//! counts: live objects and bytes, and, with `prof_accum`, all ever
//! sampled) and the table that
//! finds a stack's record. Records and the table's buckets are base
//! memory (`base::Use::Prof`): nothing here goes through an allocator,
//! and records are never freed (a program has a bounded set of allocation
//! stacks; `prof.reset` zeroes their counts).
//!
//! Invariants: the table is changed only under `TABLE`'s lock; a record,
//! once published, never moves and its frames never change; counts are
//! atomics, so a free updates them without the lock. A sampled block's
//! tag (in its extent record) is its record's address with the reset
//! epoch in the top 16 bits: a block sampled before the last `prof.reset`
//! no longer counts when freed.

use super::backtrace::MAX_DEPTH;
use crate::base;
use crate::sync::Mutex;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[repr(C, align(64))]
pub(crate) struct Record {
    /// Next record in the same bucket, and in insertion order (for dumps).
    chain: *mut Record,
    newer: *mut Record,
    hash: u64,
    depth: usize,
    /// The name id of the threads that sampled into it (`names`).
    pub(crate) thread: u16,
    pub(crate) cur_objs: AtomicU64,
    pub(crate) cur_bytes: AtomicU64,
    pub(crate) accum_objs: AtomicU64,
    pub(crate) accum_bytes: AtomicU64,
    // Followed by `depth` frames.
}

impl Record {
    /// The stack, innermost frame first.
    pub(crate) fn frames(&self) -> &[usize] {
        // SAFETY: a record is allocated with `depth` frames right after it.
        unsafe {
            core::slice::from_raw_parts((self as *const Record).add(1).cast::<usize>(), self.depth)
        }
    }
}

pub(crate) struct Table {
    buckets: *mut *mut Record,
    nbuckets: usize,
    count: usize,
    /// The first and last records added (`newer` links them in order).
    oldest: *mut Record,
    newest: *mut Record,
    /// `prof.reset` count (the tag's epoch).
    pub(crate) epoch: u16,
}

// SAFETY: the raw pointers point into base memory, which lives forever;
// the table is only used under its lock.
unsafe impl Send for Table {}

pub(crate) static TABLE: Mutex<Table> = Mutex::new(Table {
    buckets: ptr::null_mut(),
    nbuckets: 0,
    count: 0,
    oldest: ptr::null_mut(),
    newest: ptr::null_mut(),
    epoch: 0,
});

/// The records published up to some moment (`Table::span`): walking them
/// needs no lock, as records never move and the `newer` links up to
/// `newest` were set before the lock that `span` took was released.
#[derive(Clone, Copy)]
pub(crate) struct Span {
    oldest: *mut Record,
    newest: *mut Record,
}

impl Span {
    /// Every record of the span, oldest first.
    pub(crate) fn walk(self, mut f: impl FnMut(&'static Record)) {
        let mut r = self.oldest;
        // SAFETY: the list holds published records (base memory); links
        // up to `newest` are no longer written (records are only added
        // after it).
        while let Some(rec) = unsafe { r.as_ref() } {
            f(rec);
            if r == self.newest {
                break;
            }
            r = rec.newer;
        }
    }
}

const TAG_SHIFT: u32 = 48;

/// The tag for a block sampled into `r` now.
pub(crate) fn tag(r: &Record, epoch: u16) -> usize {
    r as *const Record as usize | (epoch as usize) << TAG_SHIFT
}

/// The record of `tag` if it is of the current `epoch`.
pub(crate) fn untag(tag: usize, epoch: u16) -> Option<&'static Record> {
    if (tag >> TAG_SHIFT) as u16 != epoch {
        return None;
    }
    let p = (tag & ((1 << TAG_SHIFT) - 1)) as *const Record;
    // SAFETY: tags are made from published records, which live forever.
    unsafe { p.as_ref() }
}

/// FNV-1a over the thread name id and the frames.
fn hash(frames: &[usize], thread: u16) -> u64 {
    let mut h = (0xcbf29ce484222325u64 ^ thread as u64).wrapping_mul(0x100000001b3);
    for &f in frames {
        h = (h ^ f as u64).wrapping_mul(0x100000001b3);
    }
    h
}

impl Table {
    /// The record of stack `frames` sampled by threads of name id
    /// `thread`, created if new. None when out of memory.
    pub(crate) fn find_or_add(&mut self, frames: &[usize], thread: u16) -> Option<&'static Record> {
        debug_assert!(frames.len() <= MAX_DEPTH);
        let h = hash(frames, thread);
        if self.nbuckets != 0 {
            let mut r = self.bucket(h);
            // SAFETY: chains hold published records (base memory).
            while let Some(rec) = unsafe { r.as_ref() } {
                if rec.hash == h && rec.thread == thread && rec.frames() == frames {
                    return Some(rec);
                }
                r = rec.chain;
            }
        }
        if self.count >= self.nbuckets * 2 && !self.grow() {
            return None;
        }
        let size = core::mem::size_of::<Record>() + frames.len() * 8;
        let p = base::alloc(size, 64, base::Use::Prof).cast::<Record>();
        if p.is_null() {
            return None;
        }
        let slot = self.slot(h);
        // SAFETY: fresh, zeroed base memory of `size` bytes (a zeroed
        // record with zero counts), 64-aligned; the frames follow it.
        unsafe {
            (*p).hash = h;
            (*p).depth = frames.len();
            (*p).thread = thread;
            (*p).chain = *slot;
            ptr::copy_nonoverlapping(frames.as_ptr(), p.add(1).cast::<usize>(), frames.len());
            *slot = p;
            // Raw field writes: other threads hold shared references to
            // records (their counts are atomics; `chain` and `newer` are
            // only touched under the lock, `newer` up to a `Span`'s end).
            if self.newest.is_null() {
                self.oldest = p;
            } else {
                (*self.newest).newer = p;
            }
        }
        self.newest = p;
        self.count += 1;
        // SAFETY: just published, in base memory.
        Some(unsafe { &*p })
    }

    fn slot(&self, h: u64) -> *mut *mut Record {
        // SAFETY: nbuckets is a power of two and buckets has that many.
        unsafe { self.buckets.add(h as usize & (self.nbuckets - 1)) }
    }

    fn bucket(&self, h: u64) -> *mut Record {
        // SAFETY: as in `slot`.
        unsafe { *self.slot(h) }
    }

    /// Doubles the buckets (the old array stays in base memory unused).
    fn grow(&mut self) -> bool {
        let n = (self.nbuckets * 2).max(1024);
        let b = base::alloc(n * 8, 64, base::Use::Prof).cast::<*mut Record>();
        if b.is_null() {
            return false;
        }
        self.buckets = b;
        self.nbuckets = n;
        let mut r = self.oldest;
        while !r.is_null() {
            // SAFETY: the records' list holds published records; re-chained
            // under the lock with raw field accesses (see `find_or_add`);
            // `slot` is inside the new array.
            unsafe {
                let slot = self.slot((*r).hash);
                (*r).chain = *slot;
                *slot = r;
                r = (*r).newer;
            }
        }
        true
    }

    /// Every record, oldest first (dumps list stacks in the order they
    /// were first seen).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&'static Record)) {
        let mut r = self.oldest;
        // SAFETY: the list holds published records (base memory).
        while let Some(rec) = unsafe { r.as_ref() } {
            f(rec);
            r = rec.newer;
        }
    }

    /// The records published so far, for `walk` without the lock.
    pub(crate) fn span(&self) -> Span {
        Span {
            oldest: self.oldest,
            newest: self.newest,
        }
    }

    /// Zeroes every record's counts and starts a new epoch
    /// (`prof.reset`).
    pub(crate) fn reset(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.for_each(|rec| {
            rec.cur_objs.store(0, Relaxed);
            rec.cur_bytes.store(0, Relaxed);
            rec.accum_objs.store(0, Relaxed);
            rec.accum_bytes.store(0, Relaxed);
        });
    }
}
