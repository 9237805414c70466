//! Thread names for profiles (`thread.prof.name`): each distinct name
//! gets a small id, which a thread's samples carry into their records, so
//! dumps can say which named threads hold a stack's memory.
//!
//! Owns the name table: at most `MAX` names of at most `LEN` bytes, in a
//! static array (no allocation). Invariants: an entry, once written under
//! the lock, never changes (so `get` hands out `&'static` names without
//! it); id 0 is "no name"; threads of the same name share an id (a pool's
//! threads count together; ids are bounded by the distinct names, not by
//! the threads a program starts).

use crate::sync::Mutex;
use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Distinct names recorded.
pub(crate) const MAX: usize = 64;
/// Bytes kept of a name (jemalloc's limit: 16 with the NUL).
pub(crate) const LEN: usize = 15;

struct Names {
    count: usize,
}

static LOCK: Mutex<Names> = Mutex::new(Names { count: 0 });
/// Entries written (readers see entries below it complete).
static PUBLISHED: AtomicUsize = AtomicUsize::new(0);
/// Entry i holds name id i + 1, NUL-terminated.
struct Table(UnsafeCell<[[u8; LEN + 1]; MAX]>);
// SAFETY: entries are written only under `LOCK` before they are
// published, and read only once published (see `intern`).
unsafe impl Sync for Table {}
static TABLE: Table = Table(UnsafeCell::new([[0; LEN + 1]; MAX]));

/// Whether `b` can be a thread name: printable or blank characters, as
/// jemalloc requires (`isgraph` or `isblank`).
pub(crate) fn valid(b: &[u8]) -> bool {
    b.iter()
        .all(|&c| c.is_ascii_graphic() || c == b' ' || c == b'\t')
}

/// The id of `name` (its first `LEN` bytes), added if new; 0 for the
/// empty name; None if the table is full.
pub(crate) fn intern(name: &[u8]) -> Option<u16> {
    let name = &name[..name.len().min(LEN)];
    if name.is_empty() {
        return Some(0);
    }
    let mut g = LOCK.lock();
    for i in 0..g.count {
        if entry(i).to_bytes() == name {
            return Some(i as u16 + 1);
        }
    }
    if g.count == MAX {
        return None;
    }
    let i = g.count;
    // SAFETY: entry `i` is not published yet, and only this lock's holder
    // writes entries; readers read only published ones.
    unsafe {
        let e = &mut (*TABLE.0.get())[i];
        e[..name.len()].copy_from_slice(name);
        e[name.len()] = 0;
    }
    g.count += 1;
    PUBLISHED.store(g.count, Ordering::Release);
    Some(i as u16 + 1)
}

fn entry(i: usize) -> &'static CStr {
    // SAFETY: published entries never change again (see `intern`).
    let e = unsafe { &(*TABLE.0.get())[i] };
    CStr::from_bytes_until_nul(e).unwrap_or(c"")
}

/// The name of id `id` ("" for 0 or an id not known).
pub(crate) fn get(id: u16) -> &'static CStr {
    let i = (id as usize).wrapping_sub(1);
    if i < PUBLISHED.load(Ordering::Acquire) {
        entry(i)
    } else {
        c""
    }
}

pub(super) fn fork_prepare() {
    LOCK.lock_raw();
}

pub(super) fn fork_parent() {
    // SAFETY: `fork_prepare` took the lock and holds no guard.
    unsafe { LOCK.unlock_raw() };
}

pub(super) fn fork_child() {
    // SAFETY: the child of a fork whose prepare handler held the lock.
    unsafe { LOCK.reset_in_child() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_stable_ids() {
        assert_eq!(intern(b""), Some(0));
        let a = intern(b"worker").unwrap();
        let b = intern(b"io-thread-with-a-long-name").unwrap();
        assert_eq!(intern(b"worker"), Some(a));
        assert_ne!(a, b);
        assert_eq!(get(a).to_bytes(), b"worker");
        assert_eq!(get(b).to_bytes(), b"io-thread-with-");
        assert_eq!(get(0).to_bytes(), b"");
        assert_eq!(get(60000).to_bytes(), b"");
        assert!(valid(b"a b\tc-1"));
        assert!(!valid(b"bad\nname"));
    }
}
