//! The thread-cache sizing options, as jemalloc 5.3 names them
//! (`tcache_nslots_small_max`, `lg_tcache_nslots_mul`,
//! `lg_tcache_flush_small_div`, `tcache_gc_incr_bytes`): how many freed
//! blocks a thread keeps, seen through `rjem::thread_cached`. Each case
//! runs in a child process with its own MALLOC_CONF.

mod common;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

/// No incremental GC during a case: it would flush part of what is cached.
const NO_GC: &str = "tcache_gc_incr_bytes:1000000000";

/// On a fresh thread, allocates `n` 8-byte blocks, then frees them all (the
/// vector holding them first, so that only the blocks are counted), and
/// returns the blocks the thread's cache then holds.
fn cached_after_freeing(n: usize) -> usize {
    std::thread::spawn(move || {
        let mut v: Vec<Box<u64>> = Vec::with_capacity(n);
        v.extend((0..n).map(|i| Box::new(i as u64)));
        let blocks: Vec<*mut u64> = v.into_iter().map(Box::into_raw).collect();
        let raw: Vec<usize> = blocks.iter().map(|&p| p as usize).collect();
        drop(blocks);
        rjem::flush_thread_cache();
        for p in raw {
            // SAFETY: each came from Box::into_raw above and is freed once.
            drop(unsafe { Box::from_raw(p as *mut u64) });
        }
        rjem::thread_cached().0
    })
    .join()
    .unwrap()
}

#[test]
fn sizes() {
    if !common::in_child() {
        return;
    }
    let conf = std::env::var("MALLOC_CONF").unwrap();
    let held = cached_after_freeing(6000);
    // The 8-byte class has 512 regions a slab.
    let (lo, hi) = if conf.contains("lg_tcache_flush_small_div:3") {
        // As below, keeping an eighth (500) when full: 500 + 2000.
        (2500, 2500)
    } else if conf.contains("tcache_nslots_small_max:4000") {
        // 8 x 512 = 4096, at most 4000 slots; a full stack keeps half:
        // 2000, then 2000 more of the 6000 frees (one is the one pushed).
        (3999, 4000)
    } else {
        // jemalloc's defaults: 2 x 512 regions, at most 200 slots.
        (100, 200)
    };
    assert!(
        (lo..=hi).contains(&held),
        "{conf}: {held} blocks cached, expected {lo}..={hi}"
    );
    println!("{conf}: {held} cached");
}

#[test]
fn nslots_and_flush_divisor_size_the_cache() {
    let big = "tcache_nslots_small_max:4000,lg_tcache_nslots_mul:3";
    for conf in [
        NO_GC.to_string(),
        format!("{big},{NO_GC}"),
        format!("{big},lg_tcache_flush_small_div:3,{NO_GC}"),
    ] {
        let err = common::child("sizes", &conf);
        assert!(err.is_empty(), "{conf}: {err}");
    }
}

/// Fills of the 8-byte class so far, over all arenas.
fn fills_of_8_byte_class() -> u64 {
    use rjem::ctl::{self, Value};
    ctl::write("epoch", Value::U64(1)).unwrap();
    match ctl::read("stats.arenas.4096.bins.0.nfills") {
        Ok(Value::U64(n)) => n,
        other => panic!("nfills: {other:?}"),
    }
}

#[test]
fn shrunk_fills_grow_back_on_demand() {
    if !common::in_child() {
        let err = common::child(
            "shrunk_fills_grow_back_on_demand",
            "tcache_gc_incr_bytes:8192",
        );
        assert!(err.is_empty(), "{err}");
        return;
    }
    std::thread::spawn(|| {
        // 150 blocks of 8 bytes left unused on the stack while other
        // traffic (4 KiB blocks, 40 at a time, through a stack of 20)
        // drives the GC: each of its visits to the class flushes most of
        // them and halves the class's fill (200 -> 100 ... -> 6).
        let idle: Vec<Box<u64>> = (0..150).map(Box::new).collect();
        drop(idle);
        for _ in 0..2000 {
            let v: Vec<Box<[u8; 4096]>> = (0..40).map(|_| Box::new([1; 4096])).collect();
            drop(v);
        }
        // A burst of 20,000: each fill since the GC's last visit doubles
        // the next, back to 100 (about 200 fills; 3,300 at 6 a fill).
        let before = fills_of_8_byte_class();
        let burst: Vec<Box<u64>> = (0..20_000).map(Box::new).collect();
        let fills = fills_of_8_byte_class() - before;
        drop(burst);
        assert!(
            (150..400).contains(&fills),
            "{fills} fills for 20,000 blocks"
        );
        println!("{fills} fills");
    })
    .join()
    .unwrap();
}

#[test]
fn first_fills_of_small_slab_classes_take_a_slab_or_two() {
    // 4 KiB blocks have one-region slabs and 20 slots: a thread's first
    // one took 10 slabs (9 left on the stack); now at most 2.
    let cached = std::thread::spawn(|| {
        let before = rjem::thread_cached().1;
        let b = std::hint::black_box(vec![1u8; 4096]);
        let after = rjem::thread_cached().1;
        drop(b);
        after - before
    })
    .join()
    .unwrap();
    assert!(
        cached <= 4096,
        "{cached} bytes cached by the first 4 KiB block"
    );
}
