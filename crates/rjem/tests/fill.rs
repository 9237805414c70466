//! `junk` and `zero` from the Rust front: each check runs in a child with
//! the option set (`common::child`). The C API's side, compared with
//! jemalloc, is `c_api::fill_options_junk_and_zero`.

mod common;

use rjem::ctl::{self, Value};
use std::alloc::{GlobalAlloc, Layout};

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

/// Whether the `n` bytes at `p` are all `b` (read as bytes the allocator
/// wrote; volatile so the reads are not reasoned away).
fn all(p: *const u8, n: usize, b: u8) -> bool {
    // SAFETY: p holds n bytes that rjem wrote (block or freed block still
    // mapped: it sits in the thread cache).
    (0..n).all(|i| unsafe { p.add(i).read_volatile() } == b)
}

/// The first word of a block is rjem's while a thread cache holds it (its
/// double-free key, cleared when the block is handed out again), so the
/// checks below start after it.
const KEY: usize = 8;

/// Allocates with `layout`, writes 0x11, frees, allocates again: the
/// same block back (the cache is last in, first out). Returns (the new
/// block's byte, whether the freed block read `freed`).
fn reuse(layout: Layout, freed: u8) -> (*mut u8, bool) {
    // SAFETY: plain allocator calls with a non-zero layout; the freed
    // block is only read while the cache holds it.
    unsafe {
        let p = GLOBAL.alloc(layout);
        p.write_bytes(0x11, layout.size());
        GLOBAL.dealloc(p, layout);
        let was = all(p.add(KEY), layout.size() - KEY, freed);
        let q = GLOBAL.alloc(layout);
        assert_eq!(p, q, "the cache hands the last block out again");
        (q, was)
    }
}

fn check(junk: &str, zero: bool) {
    assert_eq!(
        ctl::read("opt.junk"),
        Ok(Value::Str(match junk {
            "true" => c"true",
            "alloc" => c"alloc",
            "free" => c"free",
            _ => c"false",
        }))
    );
    assert_eq!(ctl::read("opt.zero"), Ok(Value::Bool(zero)));
    let (ja, jf) = (
        matches!(junk, "true" | "alloc"),
        matches!(junk, "true" | "free"),
    );
    for size in [24, 700, 20_000] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let (q, freed_ok) = reuse(layout, if jf { 0x5a } else { 0x11 });
        assert!(freed_ok, "{junk}: freed block of {size}");
        let want = if zero {
            0
        } else if ja {
            0xa5
        } else if jf {
            0x5a
        } else {
            0x11
        };
        // Junk and zero fills cover the whole block, the key's word too.
        let from = if zero || ja { 0 } else { KEY };
        assert!(
            all(q.wrapping_add(from), size - from, want),
            "{junk} zero:{zero}: new block of {size}"
        );
        // SAFETY: q is live with `layout`; then grown and freed.
        unsafe {
            let r = GLOBAL.realloc(q, layout, 3 * size);
            assert!(
                all(r.wrapping_add(from), size - from, want),
                "{junk}: realloc kept"
            );
            if ja || zero {
                let u = rjem::usable_size(r);
                let old = rjem::nallocx(size, 8);
                assert!(all(r.add(old), u - old, if zero { 0 } else { 0xa5 }));
            }
            GLOBAL.dealloc(r, Layout::from_size_align(3 * size, 8).unwrap());
            // Asked-for zeroing wins over junk.
            let z = GLOBAL.alloc_zeroed(layout);
            assert!(all(z, size, 0));
            GLOBAL.dealloc(z, layout);
        }
    }
}

#[test]
fn junk_true() {
    if common::in_child() {
        return check("true", false);
    }
    common::child("junk_true", "junk:true");
}

#[test]
fn junk_alloc_only() {
    if common::in_child() {
        return check("alloc", false);
    }
    common::child("junk_alloc_only", "junk:alloc");
}

#[test]
fn junk_free_only() {
    if common::in_child() {
        return check("free", false);
    }
    common::child("junk_free_only", "junk:free");
}

#[test]
fn zero_true() {
    if common::in_child() {
        return check("false", true);
    }
    common::child("zero_true", "zero:true");
}

#[test]
fn neither() {
    if common::in_child() {
        return check("false", false);
    }
    common::child("neither", "junk:false,zero:false");
}
