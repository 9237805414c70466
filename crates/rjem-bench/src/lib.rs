//! Workloads shared by the micro-benchmark binaries. Each binary links one
//! allocator as the global allocator (rjem or the system's) and calls these,
//! so the same code measures both.

use std::alloc::{alloc, dealloc, Layout};
use std::hint::black_box;
use std::time::Instant;

/// `n` pairs of alloc + dealloc of `size` bytes; the layout is opaque to the
/// optimiser, so nothing is folded away.
pub fn pairs(n: usize, size: usize) {
    let layout = black_box(Layout::from_size_align(size, 8).unwrap());
    for _ in 0..n {
        // SAFETY: non-zero size; the block is freed with its own layout.
        unsafe {
            let p = alloc(layout);
            std::ptr::write_volatile(p, 1);
            dealloc(p, layout);
        }
    }
}

/// `n` pairs through `Box::new` of a 32-byte value: the layout is a
/// compile-time constant, as in most Rust code.
pub fn box_pairs(n: usize) {
    for i in 0..n {
        let b = black_box(Box::new([i as u64; 4]));
        drop(b);
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Mixed sizes (mostly small, some up to 64 KiB) with a working set of
/// `live` blocks replaced at random; returns a checksum.
pub fn mixed(ops: usize, live: usize, seed: u64) -> u64 {
    let mut r = Rng(seed | 1);
    let mut slots: Vec<Option<(Vec<u8>, usize)>> = (0..live).map(|_| None).collect();
    let mut sum = 0u64;
    for _ in 0..ops {
        let x = r.next();
        let i = (x % live as u64) as usize;
        let size = match (x >> 32) % 100 {
            0..=79 => 8 + ((x >> 40) % 120) as usize,
            80..=97 => 128 + ((x >> 40) % 2000) as usize,
            _ => 4096 + ((x >> 40) % 60_000) as usize,
        };
        if let Some((v, s)) = slots[i].take() {
            sum = sum.wrapping_add(v[s - 1] as u64);
        }
        let v = vec![(x & 0xff) as u8; size];
        slots[i] = Some((v, size));
    }
    sum
}

/// Runs `f` on `threads` threads and returns the wall time in seconds.
pub fn timed_threads(threads: usize, f: impl Fn(usize) + Sync) -> f64 {
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let f = &f;
            s.spawn(move || f(t));
        }
    });
    t0.elapsed().as_secs_f64()
}

/// The benchmark report for one allocator.
pub fn run(name: &str) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let n = 20_000_000;
    let t = timed_threads(1, |_| pairs(n, 32));
    println!(
        "{name:8} pairs(32)        1 thread : {:6.2} ns/pair",
        t * 1e9 / n as f64
    );
    let t = timed_threads(threads, |_| pairs(n, 32));
    println!(
        "{name:8} pairs(32) {threads:>2} threads: {:6.2} ns/pair/thread",
        t * 1e9 / n as f64
    );
    let ops = 5_000_000;
    let t = timed_threads(1, |i| {
        black_box(mixed(ops, 10_000, i as u64 + 1));
    });
    println!(
        "{name:8} mixed            1 thread : {:6.2} ns/op",
        t * 1e9 / ops as f64
    );
    let t = timed_threads(threads, |i| {
        black_box(mixed(ops, 10_000, i as u64 + 1));
    });
    println!(
        "{name:8} mixed      {threads:>2} threads: {:6.2} ns/op/thread",
        t * 1e9 / ops as f64
    );
}

/// Entry point for the instruction-count binaries: `fastpath N [box]`.
pub fn fastpath_main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    // Warm up so the measured loop only hits the thread cache.
    pairs(1000, 32);
    box_pairs(1000);
    if args.get(2).map(String::as_str) == Some("box") {
        box_pairs(n);
    } else {
        pairs(n, 32);
    }
}
