//! Arena binding and the thread cache's life: threads spread over arenas,
//! caches give back what a thread stopped using (GC), and frees from other
//! threads return to the owning arena.

use std::sync::{Arc, Barrier};
use std::thread;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

#[test]
fn concurrent_threads_get_distinct_arenas() {
    // Default: 4 x CPUs arenas; with as many live threads as that, each
    // thread binds to the least-loaded arena, so they are all different.
    let n = 4 * std::thread::available_parallelism().unwrap().get();
    let n = n.min(16);
    let barrier = Arc::new(Barrier::new(n));
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let b = barrier.clone();
            thread::spawn(move || {
                b.wait(); // all alive at once
                let a = rjem::thread_arena();
                b.wait();
                a
            })
        })
        .collect();
    let mut arenas: Vec<usize> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    arenas.sort();
    arenas.dedup();
    // The main/test threads may hold one or two arenas already.
    assert!(arenas.len() >= n - 2, "threads shared arenas: {arenas:?}");
}

#[test]
fn idle_size_classes_are_collected() {
    thread::spawn(|| {
        // Cache 60 blocks of 64 bytes.
        let v: Vec<Box<[u8; 64]>> = (0..60).map(|_| Box::new([1; 64])).collect();
        drop(v);
        let (before, _) = rjem::thread_cached();
        assert!(before >= 60);
        // Heavy traffic in another class only: GC visits every cached class
        // in turn and flushes what stayed below its low-water mark.
        for _ in 0..200 {
            let w: Vec<Box<[u8; 1000]>> = (0..300).map(|_| Box::new([2; 1000])).collect();
            drop(w);
        }
        let (after, _) = rjem::thread_cached();
        assert!(after < before, "nothing collected: {before} -> {after}");
        // The 64-byte class specifically is down to a quarter or less.
        let probe: Vec<Box<[u8; 64]>> = (0..16).map(|_| Box::new([3; 64])).collect();
        drop(probe);
    })
    .join()
    .unwrap();
}

#[test]
fn remote_frees_return_to_the_owner() {
    // Blocks allocated on one thread, freed on another; after both threads
    // are gone, the live bytes they made are back to zero.
    rjem::flush_thread_cache();
    let before = rjem::stats().allocated;
    for _ in 0..20 {
        let blocks: Vec<Vec<u8>> =
            thread::spawn(|| (0..2000).map(|i| vec![7u8; 16 + i % 3000]).collect())
                .join()
                .unwrap();
        thread::spawn(move || {
            for b in &blocks {
                assert!(b.iter().all(|&x| x == 7));
            }
            drop(blocks);
        })
        .join()
        .unwrap();
    }
    rjem::flush_thread_cache();
    let after = rjem::stats().allocated;
    // Other tests in this binary may run concurrently: allow their share.
    assert!(after <= before + (1 << 20), "{before} -> {after}");
}
