//! rjem never calls the global allocator (or itself) while serving a
//! request. Dynamically: this binary's global allocator wraps rjem and
//! records any call that arrives while another is in progress on the same
//! thread. Statically: the crate is `no_std` and never links `alloc`.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Guarded;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}
static NESTED: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

fn enter() {
    CALLS.fetch_add(1, Ordering::Relaxed);
    DEPTH.with(|d| {
        if d.get() > 0 {
            NESTED.fetch_add(1, Ordering::Relaxed);
        }
        d.set(d.get() + 1);
    });
}
fn leave() {
    DEPTH.with(|d| d.set(d.get() - 1));
}

unsafe impl GlobalAlloc for Guarded {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        enter();
        let p = unsafe { rjem::Rjem.alloc(l) };
        leave();
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        enter();
        unsafe { rjem::Rjem.dealloc(p, l) };
        leave();
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        enter();
        let p = unsafe { rjem::Rjem.alloc_zeroed(l) };
        leave();
        p
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        enter();
        let q = unsafe { rjem::Rjem.realloc(p, l, n) };
        leave();
        q
    }
}

#[global_allocator]
static GLOBAL: Guarded = Guarded;

#[test]
fn no_nested_allocation_on_any_path() {
    // Start-up, thread set-up, fills, flushes, large, realloc, zeroed,
    // thread exit: all of it runs inside a guarded call at least once.
    let hs: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut v: Vec<Vec<u8>> = Vec::new();
                for i in 0..20_000 {
                    let mut b = vec![t as u8; 1 + (i * 37) % 70_000];
                    if i % 5 == 0 {
                        b.resize(b.len() * 3, 1);
                    }
                    v.push(b);
                    if v.len() > 500 {
                        v.drain(..250);
                    }
                }
                let z = vec![0u64; 1 << 20];
                z.len() + v.len()
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(CALLS.load(Ordering::Relaxed) > 100_000);
    assert_eq!(
        NESTED.load(Ordering::Relaxed),
        0,
        "rjem re-entered the global allocator"
    );
}

const FENCE_START: &str = "// -- caller-context allocation: dump_pprof's Vec --\n";
const FENCE_END: &str = "// -- end of caller-context allocation --\n";

#[test]
fn crate_cannot_reach_the_global_allocator() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let lib = std::fs::read_to_string(format!("{src}/lib.rs")).unwrap();
    assert!(lib.contains("#![no_std]"));
    let mut dirs = vec![std::path::PathBuf::from(src)];
    let mut files = Vec::new();
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 20, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // Only unit tests and comments may name the alloc crate or std's
        // collections.
        // The one exception, fenced by marker comments: `prof::dump_pprof`
        // returns a Vec, grown in its caller's context with no allocator
        // lock held (see its comment). Nothing else may be fenced.
        let text = match text.split_once(FENCE_START) {
            Some((before, rest)) => {
                assert!(path.ends_with("lib.rs"), "{} has a fence", path.display());
                let (_, after) = rest.split_once(FENCE_END).expect("fence end");
                assert!(!after.contains(FENCE_START), "one fence only");
                format!("{before}{after}")
            }
            None => text,
        };
        let non_test: String = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for banned in [
            "extern crate alloc",
            "alloc::vec",
            "alloc::boxed",
            "std::vec",
            "std::boxed",
            "Vec<",
            "Box<",
            "String",
        ] {
            assert!(
                !non_test.contains(banned),
                "{} uses {banned}",
                path.display()
            );
        }
    }
}
