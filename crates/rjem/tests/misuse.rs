//! Misuse is detected and reported, never silent: each case runs in a child
//! process (this test binary re-executed) that must abort with rjem's
//! message on stderr.

use std::process::Command;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

fn scenario(name: &str) {
    // Unsized frees go through the C library's entry layer (`free`).
    use rjem::ffi::{free, malloc};
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
                std::process::exit(if a == b { 4 } else { 5 });
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
                std::process::exit(if a == b { 4 } else { 5 });
            }
            "realloc-freed" => {
                let p = malloc(48);
                free(p);
                std::hint::black_box(rjem::ffi::realloc(p, 40));
                std::process::exit(4);
            }
            "interior-small" => {
                let p = malloc(100).cast::<u8>();
                free(p.add(16).cast());
                rjem::flush_thread_cache();
            }
            "interior-large" => {
                let p = malloc(1 << 20).cast::<u8>();
                free(p.add(4096 * 3).cast());
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
            }
            "usable-foreign" => {
                let x = [0u8; 64];
                std::hint::black_box(rjem::usable_size(x.as_ptr()));
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
        scenario(&name);
        // Reaching here means the misuse went unnoticed.
        std::process::exit(3);
    }
}

#[test]
fn misuse_aborts_with_a_message() {
    for (name, want) in [
        ("foreign", "invalid free"),
        ("double", "double free"),
        (
            "double-now",
            "double free: free of a block already freed (48 bytes class)",
        ),
        ("double-flushed", "double free"),
        (
            "double-rust",
            "double free: free of a block already freed (48 bytes class)",
        ),
        (
            "realloc-freed",
            "use after free: realloc of a block already freed (48 bytes class)",
        ),
        ("interior-small", "not a region start"),
        ("interior-large", "invalid free"),
        ("double-large", "invalid free"),
        ("wrong-layout", "size"),
        (
            "usable-foreign",
            "invalid usable_size: pointer not allocated",
        ),
    ] {
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
