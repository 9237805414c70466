//! `rjem-release-frees DIR`: with `MALLOC_CONF=prof:true,lg_prof_sample:0`
//! (every allocation sampled), allocates blocks of several layouts of
//! cached classes and frees them with `dealloc`, which in a release build
//! trusts the layout and pushes to the thread cache without a lookup.
//! Prints the live sampled objects of dumps taken before, while the
//! blocks live, and after they are freed: the profiler must see every
//! free (no sampled block may enter a cache).
use std::alloc::{alloc, dealloc, Layout};

#[global_allocator]
static A: rjem::Rjem = rjem::Rjem;

/// Live objects in a heap_v2 dump (its header's totals).
fn live_objects(path: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let totals = text.lines().nth(1).unwrap();
    // "  t*: <objects>: <bytes> [...]"
    totals
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .parse()
        .unwrap()
}

fn main() {
    assert!(rjem::prof::enabled(), "run with MALLOC_CONF=prof:true");
    let dir = std::env::args().nth(1).unwrap();
    let names: Vec<String> = ["before", "live", "after"]
        .iter()
        .map(|n| format!("{dir}/{n}.heap"))
        .collect();
    let layouts = [
        (8, 8),
        (32, 8),
        (100, 8),
        (48, 16),
        (1000, 64),
        (4096, 4096),
    ];
    let per = 500;
    let mut blocks: Vec<(*mut u8, Layout)> = Vec::with_capacity(layouts.len() * per);
    rjem::prof::dump(&names[0]).unwrap();
    for _ in 0..per {
        for &(size, align) in &layouts {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(l) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            // SAFETY: a live block of at least one byte.
            unsafe { p.write(1) };
            blocks.push((p, l));
        }
    }
    rjem::prof::dump(&names[1]).unwrap();
    for &(p, l) in &blocks {
        // SAFETY: allocated above with this layout, freed once.
        unsafe { dealloc(p, l) };
    }
    rjem::flush_thread_cache();
    rjem::prof::dump(&names[2]).unwrap();
    let [b, l, a] = [0, 1, 2].map(|i| live_objects(&names[i]));
    println!("blocks {}", blocks.len());
    println!("live {}", l - b);
    println!("after {}", a as i64 - b as i64);
}
