//! Misuse is detected and reported, never silent: each case runs in a child
//! process (this test binary re-executed) that must abort with rjem's
//! message on stderr; under `abort:false` it must report, skip the bad
//! operation and go on allocating sanely.

use std::process::Command;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

/// Exits with 4 if two live blocks are the same pointer.
fn distinct(a: *mut u8, b: *mut u8) {
    if a == b {
        std::process::exit(4);
    }
}

/// Runs misuse case `name`; returns the blocks it still holds live
/// (pointer, bytes), for `sanity`.
fn scenario(name: &str) -> Vec<(usize, usize)> {
    // Unsized frees go through the C library's entry layer (`free`).
    use rjem::ffi::{free, malloc};
    let mut live = Vec::new();
    unsafe {
        match name {
            "foreign" => {
                let x = [0u8; 64];
                free(x.as_ptr() as *mut _);
            }
            "double" => {
                let p = malloc(48);
                free(p);
                free(p);
                rjem::flush_thread_cache();
            }
            "double-now" => {
                // Caught at the second free: without that, the next two
                // mallocs would both return p.
                let p = malloc(48);
                free(p);
                free(p);
                let (a, b) = (malloc(48), malloc(48));
                distinct(a.cast(), b.cast());
                live.extend([(a as usize, 48), (b as usize, 48)]);
            }
            "double-flushed" => {
                // The block went back to its slab (a neighbour keeps the
                // slab alive): caught at the second free too.
                let keep = malloc(48);
                let p = malloc(48);
                free(p);
                rjem::flush_thread_cache();
                free(p);
                free(keep);
            }
            "double-rust" => {
                use std::alloc::{GlobalAlloc, Layout};
                let l = Layout::from_size_align(40, 8).unwrap();
                let p = rjem::Rjem.alloc(l);
                rjem::Rjem.dealloc(p, l);
                rjem::Rjem.dealloc(p, l);
                let (a, b) = (rjem::Rjem.alloc(l), rjem::Rjem.alloc(l));
                distinct(a, b);
                live.extend([(a as usize, 40), (b as usize, 40)]);
            }
            "realloc-freed" => {
                let p = malloc(48);
                free(p);
                let q = std::hint::black_box(rjem::ffi::realloc(p, 40));
                if !q.is_null() {
                    std::process::exit(4);
                }
            }
            "realloc-interior" => {
                let p = malloc(100).cast::<u8>();
                let q = rjem::ffi::realloc(p.add(16).cast(), 200);
                if !q.is_null() {
                    std::process::exit(4);
                }
                live.push((p as usize, 100));
            }
            "double-cross-thread" | "double-cross-thread-direct" => {
                // Freed by another thread, then here: caught at the second
                // free, not when a cache flushes. That thread has used its
                // cache (the block is on its stack, which stays alive: the
                // thread waits), or not (its first frees go straight to
                // the arena).
                let cached = name == "double-cross-thread";
                let p = malloc(48) as usize;
                // Atomics, not channels: nothing may allocate a 48-byte
                // block (and get p back) between the two frees.
                use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
                static STEP: AtomicU8 = AtomicU8::new(0);
                let t = std::thread::spawn(move || {
                    if cached {
                        free(malloc(48));
                    }
                    free(p as *mut _);
                    STEP.store(1, SeqCst);
                    while STEP.load(SeqCst) != 2 {
                        std::thread::yield_now();
                    }
                });
                while STEP.load(SeqCst) != 1 {
                    std::thread::yield_now();
                }
                free(p as *mut _);
                let (a, b) = (malloc(48), malloc(48));
                distinct(a.cast(), b.cast());
                live.extend([(a as usize, 48), (b as usize, 48)]);
                STEP.store(2, SeqCst);
                t.join().unwrap();
            }
            "interior-now" | "interior-now-48" => {
                // Caught at the free (not aligned as the class's blocks
                // are): without that, the next malloc would return p + 8,
                // inside the live block p.
                let size = if name == "interior-now" { 64 } else { 48 };
                let p = malloc(size).cast::<u8>();
                free(p.add(8).cast());
                let q = malloc(size);
                distinct(q.cast(), p.add(8));
                live.extend([(p as usize, size), (q as usize, size)]);
            }
            "interior-aligned" => {
                // Interior pointers aligned as the class's blocks are (a
                // multiple of the size's power-of-two part), which only
                // the exact start check catches at the free: else the next
                // malloc returns them, inside the live block.
                for &(size, off) in INTERIOR_ALIGNED {
                    let p = malloc(size).cast::<u8>();
                    free(p.add(off).cast());
                    let q = malloc(size).cast::<u8>();
                    distinct(q, p.add(off));
                    live.extend([(p as usize, size), (q as usize, size)]);
                }
            }
            "interior-small" => {
                let p = malloc(100).cast::<u8>();
                free(p.add(16).cast());
                rjem::flush_thread_cache();
                live.push((p as usize, 100));
            }
            "interior-large" => {
                let p = malloc(1 << 20).cast::<u8>();
                free(p.add(4096 * 3).cast());
                live.push((p as usize, 1 << 20));
            }
            "wrong-size" => {
                let p = malloc(100);
                rjem::ffi::sdallocx(p, 1000, 0);
                live.push((p as usize, 100));
            }
            "double-large" => {
                let p = malloc(1 << 20);
                free(p);
                free(p);
            }
            "wrong-layout" => {
                // Rust's dealloc with a size of another class: caught at
                // once in debug builds, else when the cache flushes it.
                use std::alloc::{GlobalAlloc, Layout};
                let p = rjem::Rjem.alloc(Layout::from_size_align(100, 8).unwrap());
                rjem::Rjem.dealloc(p, Layout::from_size_align(1000, 8).unwrap());
                rjem::flush_thread_cache();
                live.push((p as usize, 100));
            }
            "usable-foreign" => {
                let x = [0u8; 64];
                if std::hint::black_box(rjem::usable_size(x.as_ptr())) != 0 {
                    std::process::exit(4);
                }
            }
            "bad-conf" => {
                // MALLOC_CONF is set by the parent; the allocator warns.
                let v: Vec<u8> = std::hint::black_box(vec![1u8; 10]);
                assert_eq!(v.len(), 10);
                std::process::exit(0);
            }
            _ => unreachable!(),
        }
    }
    live
}

/// After a misuse was skipped (`abort:false`): thousands of blocks of the
/// classes involved (more than a thread cache holds) must be distinct from
/// each other and from the blocks still live, and keep their contents.
fn sanity(mut live: Vec<(usize, usize)>) {
    use rjem::ffi::{free, malloc, malloc_usable_size};
    let mut mine = Vec::new();
    for round in 0..3 {
        for &(size, n) in &[(40, 700), (48, 700), (100, 700), (1000, 300), (1 << 20, 12)] {
            for i in 0..n {
                let p = malloc(size).cast::<u8>();
                assert!(!p.is_null());
                let u = unsafe { malloc_usable_size(p.cast()) };
                unsafe { std::ptr::write_bytes(p, (i + round) as u8, u) };
                mine.push((p as usize, u, (i + round) as u8));
            }
        }
        // Free every other block, so caches cycle.
        let mut kept = Vec::new();
        for (k, b) in mine.drain(..).enumerate() {
            if k % 2 == 0 {
                unsafe { free(b.0 as *mut _) };
            } else {
                kept.push(b);
            }
        }
        mine = kept;
    }
    for &(p, u, byte) in &mine {
        let s = unsafe { std::slice::from_raw_parts(p as *const u8, u) };
        assert!(s.iter().all(|&x| x == byte), "block {p:#x} overwritten");
        live.push((p, u));
    }
    live.sort();
    for w in live.windows(2) {
        assert!(
            w[0].0 + w[0].1 <= w[1].0,
            "blocks overlap: {:#x}+{} and {:#x}",
            w[0].0,
            w[0].1,
            w[1].0
        );
    }
}

fn run(name: &str, envs: &[(&str, &str)]) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe);
    c.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("RJEM_MISUSE", name);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn child() {
    if let Ok(name) = std::env::var("RJEM_MISUSE") {
        let live = scenario(&name);
        if std::env::var_os("RJEM_REPORT_ONLY").is_some() {
            sanity(live);
            std::process::exit(0);
        }
        // Reaching here means the misuse went unnoticed.
        std::process::exit(3);
    }
}

/// (class size, offset) of the `interior-aligned` case: classes with odd
/// factors 3, 5 and 7, and a power of two above the page.
const INTERIOR_ALIGNED: &[(usize, usize)] = &[
    (48, 16),
    (48, 32),
    (80, 16),
    (112, 48),
    (3072, 1024),
    (10240, 2048),
    (12288, 4096),
    (14336, 2048),
    (8192, 4096),
];

#[test]
fn interior_pointers_aligned_as_blocks_are_caught_at_the_free() {
    let out = run(
        "interior-aligned",
        &[("MALLOC_CONF", "abort:false"), ("RJEM_REPORT_ONLY", "1")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for &(size, _) in INTERIOR_ALIGNED {
        let want = format!("not its start ({size} bytes class)");
        assert!(err.contains(&want), "{want}: stderr was {err}");
    }
    let n = err.matches("invalid free: pointer inside a block").count();
    assert_eq!(n, INTERIOR_ALIGNED.len(), "{err}");
}

/// The misuse cases both tests run, with the message each must print.
const CASES: &[(&str, &str)] = &[
    ("foreign", "invalid free: pointer not allocated by rjem"),
    ("double", "double free"),
    (
        "double-now",
        "double free: free of a block already freed (48 bytes class)",
    ),
    ("double-flushed", "double free"),
    (
        "double-cross-thread",
        "double free: free of a block already freed (48 bytes class)",
    ),
    (
        "double-cross-thread-direct",
        "double free: free of a block already freed (48 bytes class)",
    ),
    (
        "interior-now",
        "invalid free: pointer inside a block, not its start (64 bytes class)",
    ),
    (
        "interior-now-48",
        "invalid free: pointer inside a block, not its start (48 bytes class)",
    ),
    (
        "double-rust",
        "double free: free of a block already freed (48 bytes class)",
    ),
    (
        "realloc-freed",
        "use after free: realloc of a block already freed (48 bytes class)",
    ),
    (
        "realloc-interior",
        "invalid realloc: pointer inside a block, not its start (112 bytes class)",
    ),
    (
        "interior-aligned",
        "invalid free: pointer inside a block, not its start (48 bytes class)",
    ),
    (
        "interior-small",
        "invalid free: pointer inside a block, not its start (112 bytes class)",
    ),
    (
        "interior-large",
        "invalid free: pointer not allocated by rjem",
    ),
    ("double-large", "invalid free"),
    ("wrong-size", "sized free with a size that does not match the allocation (size 1000, block of 112 bytes class)"),
    ("wrong-layout", "size"),
    (
        "usable-foreign",
        "invalid usable_size: pointer not allocated",
    ),
];

#[test]
fn abort_false_reports_skips_and_goes_on() {
    for &(name, want) in CASES {
        let out = run(
            name,
            &[("MALLOC_CONF", "abort:false"), ("RJEM_REPORT_ONLY", "1")],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");
        assert!(
            err.contains("<rjem>: ") && err.contains(want) && err.contains("ignored (abort:false)"),
            "{name}: stderr was {err}"
        );
    }
    // junk:free checks the key before filling, and skips the free too.
    let out = run(
        "double-now",
        &[
            ("MALLOC_CONF", "abort:false,junk:true"),
            ("RJEM_REPORT_ONLY", "1"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "junk: {err}");
    assert!(
        err.contains("double free: free of a block already freed"),
        "{err}"
    );
}

#[test]
fn interior_pointer_caught_at_free_off_the_hit_path() {
    // With the caches off the hit path (junk, zero), frees take the slow
    // paths, which check too: junk:free exactly before filling, zero:true
    // by the class's alignment in the cache's slow path.
    for conf in ["junk:free", "zero:true"] {
        let out = run("interior-now", &[("MALLOC_CONF", conf)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), None, "{conf}: {err}");
        assert!(
            err.contains("invalid free: pointer inside a block, not its start (64 bytes class)"),
            "{conf}: {err}"
        );
        let conf = format!("{conf},abort:false");
        let out = run(
            "interior-now",
            &[("MALLOC_CONF", &conf), ("RJEM_REPORT_ONLY", "1")],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{conf}: {err}");
        assert!(
            err.contains("not its start (64 bytes class)"),
            "{conf}: {err}"
        );
    }
}

#[test]
fn abort_reads_back_what_is_in_force() {
    let read = |conf: Option<&str>| {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", "abort_child", "--nocapture", "--test-threads=1"])
            .env("RJEM_ABORT_CHILD", "1");
        if let Some(conf) = conf {
            c.env("MALLOC_CONF", conf);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).contains("opt.abort=true")
    };
    assert!(read(None), "unset: misuse aborts");
    assert!(read(Some("abort:true")));
    assert!(!read(Some("abort:false")));
}

#[test]
fn abort_child() {
    if std::env::var_os("RJEM_ABORT_CHILD").is_some() {
        let mut v = false;
        let mut len = std::mem::size_of::<bool>();
        let r = unsafe {
            rjem::ffi::mallctl(
                c"opt.abort".as_ptr(),
                (&mut v as *mut bool).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(r, 0);
        println!("opt.abort={v}");
    }
}

#[test]
fn misuse_aborts_with_a_message() {
    for &(name, want) in CASES {
        let out = run(name, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: child exited normally");
        assert_eq!(
            out.status.code(),
            None,
            "{name}: expected a signal (abort): {err}"
        );
        assert!(
            err.contains("<rjem>: ") && err.contains(want),
            "{name}: stderr was {err}"
        );
    }
}

#[test]
fn double_free_caught_with_junk_filling_too() {
    // junk:free fills freed blocks: the check must come first.
    for conf in ["junk:true", "junk:free", "zero:true"] {
        let out = run("double-now", &[("MALLOC_CONF", conf)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), None, "{conf}: {err}");
        assert!(
            err.contains("double free: free of a block already freed"),
            "{conf}: {err}"
        );
    }
}

#[test]
fn bad_malloc_conf_names_the_option() {
    let out = run(
        "bad-conf",
        &[("MALLOC_CONF", "narenas:lots,tcache:true,nosuch:1")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("<rjem>: Invalid conf value: narenas:lots"),
        "{err}"
    );
    assert!(err.contains("<rjem>: Invalid conf pair: nosuch:1"), "{err}");
    let out = run(
        "bad-conf",
        &[("MALLOC_CONF", "abort_conf:true,narenas:lots")],
    );
    assert_eq!(out.status.code(), None, "abort_conf must abort");
}
