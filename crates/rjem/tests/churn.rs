//! Thread churn: thousands of short-lived threads, each filling its cache;
//! their caches must be returned at exit, so live bytes and mapped memory
//! stay bounded.

use std::thread;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

fn rss_kib() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

fn work(seed: usize) -> usize {
    let mut keep = Vec::new();
    let mut sum = 0;
    for i in 0..300 {
        let size = [8, 24, 100, 500, 3000, 20_000][(i + seed) % 6];
        let v = vec![(i % 251) as u8; size];
        sum += v[size - 1] as usize;
        if i % 3 == 0 {
            keep.push(v); // freed at the end, into this thread's cache
        }
    }
    sum + keep.len()
}

#[test]
fn thousands_of_threads_stay_bounded() {
    // Warm up so the baseline includes rjem's own start-up.
    for t in 0..50 {
        thread::spawn(move || work(t)).join().unwrap();
    }
    rjem::flush_thread_cache();
    let before = rjem::stats();
    let rss_before = rss_kib();
    let mut total = 0;
    for round in 0..250 {
        let hs: Vec<_> = (0..20)
            .map(|t| thread::spawn(move || work(round * 20 + t)))
            .collect();
        for h in hs {
            total += h.join().unwrap();
        }
    }
    assert!(total > 0);
    rjem::flush_thread_cache();
    let after = rjem::stats();
    let rss_after = rss_kib();
    // 5000 threads each left ~100 blocks (about 800 KiB) in their caches; all
    // of it must have come back.
    assert!(
        after.allocated <= before.allocated + (256 << 10),
        "live bytes grew from {} to {}",
        before.allocated,
        after.allocated
    );
    assert!(
        after.mapped + after.retained <= before.mapped + before.retained + (64 << 20),
        "mapped memory grew: {before:?} -> {after:?}"
    );
    assert!(
        rss_after <= rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}
