//! `rjem-fastpath-default-profile pair|box N`: N alloc+dealloc pairs of 32
//! bytes (an opaque layout, or `Box` of a 32-byte value) on rjem, for
//! instruction counting under callgrind (run with N and with 0). Built
//! with Cargo's default release profile, or with fat LTO through
//! `CARGO_PROFILE_RELEASE_*` (`rjem bench --instructions` builds both).
use std::alloc::{alloc, dealloc, Layout};
use std::hint::black_box;

#[global_allocator]
static A: rjem::Rjem = rjem::Rjem;

fn pairs(n: usize) {
    let layout = black_box(Layout::from_size_align(32, 8).unwrap());
    for _ in 0..n {
        // SAFETY: non-zero size; the block is freed with its own layout.
        unsafe {
            let p = alloc(layout);
            std::ptr::write_volatile(p, 1);
            dealloc(p, layout);
        }
    }
}

fn box_pairs(n: usize) {
    for i in 0..n {
        drop(black_box(Box::new([i as u64; 4])));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    // Warm up so the measured loop only hits the thread cache.
    pairs(1000);
    box_pairs(1000);
    match args.get(1).map(String::as_str) {
        Some("box") => box_pairs(n),
        Some("pair") | None => pairs(n),
        Some(other) => {
            eprintln!("unknown mode {other} (pair or box)");
            std::process::exit(2);
        }
    }
}
