//! `cache_oblivious`: large blocks start at a random cache line within
//! their extent's first page, and every way back from a large pointer to
//! its extent (free, sized free, realloc, xallocx, usable size, interior
//! pointer reports) knows it. Runs in a child process (this test binary
//! re-executed) with the option set, and once without it.

use rjem::ffi::{
    free, malloc, malloc_usable_size, mallocx, nallocx, rallocx, realloc, sdallocx, xallocx,
};
use std::process::Command;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

/// MALLOCX_ALIGN(a) (a a power of two).
fn align_flag(a: usize) -> i32 {
    a.trailing_zeros() as i32
}

fn check(on: bool) {
    let mut offsets = std::collections::BTreeSet::new();
    let mut blocks = Vec::new();
    for i in 0..400usize {
        let size = [16 << 10, 20 << 10, 40 << 10, 100 << 10, 1 << 20][i % 5] + i;
        let p = malloc(size).cast::<u8>();
        assert!(!p.is_null());
        assert_eq!(p as usize % 64, 0, "cache-line aligned");
        offsets.insert(p as usize % 4096);
        let u = unsafe { malloc_usable_size(p.cast()) };
        assert_eq!(u, nallocx(size, 0));
        unsafe { std::ptr::write_bytes(p, i as u8, u) };
        blocks.push((p, size, u));
    }
    if on {
        assert!(offsets.len() > 20, "offsets {offsets:?}");
    } else {
        assert_eq!(offsets.len(), 1, "page-aligned without the option");
    }
    // Aligned requests get their alignment.
    for a in [128usize, 1024, 4096, 8192] {
        let p = mallocx(30 << 10, align_flag(a)).cast::<u8>();
        assert_eq!(p as usize % a, 0, "align {a}");
        let q = unsafe { rallocx(p.cast(), 90 << 10, align_flag(a)) }.cast::<u8>();
        assert_eq!(q as usize % a, 0, "realloc align {a}");
        unsafe { sdallocx(q.cast(), 90 << 10, align_flag(a)) };
    }
    // Resizes keep contents, in place or not; frees by every route.
    for (k, (p, size, u)) in blocks.into_iter().enumerate() {
        let byte = k as u8;
        unsafe {
            match k % 4 {
                0 => {
                    let q = realloc(p.cast(), size * 3).cast::<u8>();
                    let s = std::slice::from_raw_parts(q, u);
                    assert!(s.iter().all(|&b| b == byte));
                    free(q.cast());
                }
                1 => {
                    let n = xallocx(p.cast(), size + (64 << 10), 0, 0);
                    assert!(n >= u);
                    let s = std::slice::from_raw_parts(p, u);
                    assert!(s.iter().all(|&b| b == byte));
                    sdallocx(p.cast(), n, 0);
                }
                2 => {
                    let n = xallocx(p.cast(), size / 2, 0, 0);
                    assert!(n <= u && n >= size / 2);
                    free(p.cast());
                }
                _ => sdallocx(p.cast(), size, 0),
            }
        }
    }
}

#[test]
fn child() {
    match std::env::var("RJEM_CO").as_deref() {
        Ok("on") => check(true),
        Ok("off") => check(false),
        Ok("interior") => {
            // One cache line into a large block: not its start (an
            // uncached class: caught at the free).
            let p = malloc(1 << 20).cast::<u8>();
            unsafe { free(p.add(64).cast()) };
            std::process::exit(3);
        }
        Ok("interior-cached") => {
            // A cached class: caught when the cache flushes it.
            let p = malloc(20 << 10).cast::<u8>();
            unsafe { free(p.add(64).cast()) };
            rjem::flush_thread_cache();
            std::process::exit(3);
        }
        _ => {}
    }
}

fn run(mode: &str, conf: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("RJEM_CO", mode)
        .env("MALLOC_CONF", conf)
        .output()
        .unwrap()
}

#[test]
fn large_blocks_start_at_random_cache_lines() {
    for (mode, conf) in [
        ("on", "cache_oblivious:true"),
        ("on", "cache_oblivious:true,tcache_max:1048576"),
        ("on", "cache_oblivious:true,san_guard_large:1"),
        ("on", "cache_oblivious:true,junk:true"),
        ("off", "cache_oblivious:false"),
    ] {
        let out = run(mode, conf);
        assert!(
            out.status.success(),
            "{conf}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn interior_pointer_of_a_padded_block_is_reported() {
    for (mode, conf) in [
        ("interior", "cache_oblivious:true"),
        ("interior", "cache_oblivious:true,tcache_max:0"),
        ("interior-cached", "cache_oblivious:true"),
    ] {
        let out = run(mode, conf);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), None, "{conf}: {err}");
        assert!(err.contains("not its start"), "{conf}: {err}");
    }
}
