//! Fault injection (feature `fault-injection`, which this crate's tests
//! turn on): `mmap`, `madvise` and `mprotect` failing at a chosen rate
//! make allocations return NULL with `errno` ENOMEM, never a crash or
//! corrupted memory, and rjem serves everything again once they stop.
//! `xmalloc:true` turns the NULL into an abort with a message.
//!
//! Allocations go through rjem's C entry layer (`rjem::ffi`, what librjem
//! exports); the test harness keeps the system allocator, so the injected
//! failures reach only the allocations under test. Each check runs in a
//! child with its options (`common::child`).

mod common;

use rjem::faults::{self, Call};
use rjem::ffi;
use std::ffi::c_void;

fn set_errno(e: i32) {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() = e }
}

fn errno() -> i32 {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

use common::Rng;

/// A size from 1 byte to 16 MiB, log-distributed.
fn size(rng: &mut Rng) -> usize {
    let bits = rng.next() % 25;
    1 + (rng.next() as usize & ((1usize << bits) - 1))
}

/// A live block and the byte its contents are made of.
struct Block {
    p: *mut u8,
    size: usize,
    tag: u8,
}

/// The offsets of a block that are written and checked: its first and
/// last 4 KiB and 16 points between.
fn offsets(size: usize) -> impl Iterator<Item = usize> {
    let ends = (0..size.min(4096)).chain(size.saturating_sub(4096).max(4096)..size);
    ends.chain((1..16).map(move |i| size / 16 * i))
}

fn write(b: &Block) {
    for o in offsets(b.size) {
        // SAFETY: o < size, inside the live block.
        unsafe { b.p.add(o).write(b.tag ^ o as u8) };
    }
}

fn check(b: &Block, what: &str) {
    for o in offsets(b.size) {
        // SAFETY: o < size, inside the live block.
        let v = unsafe { b.p.add(o).read() };
        assert_eq!(v, b.tag ^ o as u8, "{what}: block of {} at {o}", b.size);
    }
}

fn is_zero(p: *const u8, size: usize) -> bool {
    // SAFETY: inside a live block of `size` bytes.
    offsets(size).all(|o| unsafe { p.add(o).read() } == 0)
}

/// What one request did.
enum Outcome {
    New(Block),
    /// A live block grew (realloc).
    Grown,
    /// NULL (with errno ENOMEM from the standard functions).
    Failed,
}

/// One request of `size` bytes to one of the C functions (by `how`): a new
/// block, or a live one grown. A failure must have set errno to ENOMEM
/// (the jemalloc-style functions only return NULL).
fn allocate(how: u64, size: usize, live: &mut [Block]) -> Outcome {
    set_errno(0);
    let tag = how as u8 | 1;
    let p: *mut u8 = match how % 5 {
        0 => ffi::malloc(size).cast(),
        1 => {
            let p: *mut u8 = ffi::calloc(1, size).cast();
            assert!(p.is_null() || is_zero(p, size), "calloc memory not zero");
            p
        }
        2 => {
            let mut out: *mut c_void = std::ptr::null_mut();
            // SAFETY: a valid out-pointer.
            match unsafe { ffi::posix_memalign(&mut out, 4096, size) } {
                0 => out.cast(),
                e => {
                    assert_eq!(e, libc::ENOMEM);
                    return Outcome::Failed;
                }
            }
        }
        3 if !live.is_empty() => {
            // Grow a live block: on failure it stays as it was.
            let i = how as usize % live.len();
            let b = &mut live[i];
            let new = b.size + size;
            // SAFETY: b.p is live.
            let q: *mut u8 = unsafe { ffi::realloc(b.p.cast(), new) }.cast();
            if q.is_null() {
                assert_eq!(errno(), libc::ENOMEM, "realloc");
                check(b, "block realloc could not grow");
                return Outcome::Failed;
            }
            b.p = q;
            check(b, "realloc kept");
            b.size = new;
            write(b);
            return Outcome::Grown;
        }
        _ => {
            let p: *mut u8 = ffi::mallocx(size, 0).cast();
            if p.is_null() {
                return Outcome::Failed;
            }
            p
        }
    };
    if p.is_null() {
        assert_eq!(errno(), libc::ENOMEM, "NULL without ENOMEM (size {size})");
        return Outcome::Failed;
    }
    let b = Block { p, size, tag };
    write(&b);
    Outcome::New(b)
}

fn free(b: Block, what: &str) {
    check(&b, what);
    // SAFETY: a live block, not used again.
    unsafe { ffi::free(b.p.cast()) };
}

fn purge() {
    let name = c"arena.4096.purge";
    // SAFETY: a control that takes no values.
    let r = unsafe {
        ffi::mallctl(
            name.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    assert_eq!(r, 0);
}

const CALLS: [Call; 3] = [Call::Mmap, Call::Madvise, Call::Mprotect];

fn survive_faults() {
    // rjem starts before the faults.
    // SAFETY: a block just allocated.
    unsafe { ffi::free(ffi::malloc(1)) };
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut live: Vec<Block> = Vec::new();
    let mut nulls = 0;
    for c in CALLS {
        faults::set(c, 3);
    }
    for i in 0..6000u64 {
        let size = size(&mut rng);
        match allocate(rng.next(), size, &mut live) {
            Outcome::New(b) => live.push(b),
            Outcome::Grown => {}
            Outcome::Failed => nulls += 1,
        }
        if live.len() > 60 || rng.next().is_multiple_of(3) {
            if let Some(b) =
                (!live.is_empty()).then(|| live.swap_remove(rng.next() as usize % live.len()))
            {
                free(b, "freed during faults");
            }
        }
        if i % 200 == 0 {
            purge();
        }
    }
    // Guard pages call mprotect; with retain:false purging unmaps instead
    // of calling madvise.
    use rjem::ctl::{read, Value};
    let guards = read("opt.san_guard_small") != Ok(Value::Usize(0));
    let retain = read("opt.retain") == Ok(Value::Bool(true));
    for c in CALLS {
        let expected = match c {
            Call::Mmap => true,
            Call::Madvise => retain,
            Call::Mprotect => guards,
        };
        assert!(
            !expected || faults::count(c) > 0,
            "no {c:?} failure was injected"
        );
        faults::set(c, 0);
    }
    assert!(nulls > 0, "no allocation failed");
    eprintln!(
        "{nulls} failed allocations; injected: {} mmap, {} madvise, {} mprotect",
        faults::count(Call::Mmap),
        faults::count(Call::Madvise),
        faults::count(Call::Mprotect)
    );
    // Faults stopped: what lived through them is intact, and every
    // request is served again.
    for b in &live {
        check(b, "live through the faults");
    }
    for _ in 0..3000 {
        let size = size(&mut rng);
        match allocate(rng.next(), size, &mut live) {
            Outcome::New(b) => live.push(b),
            Outcome::Grown => {}
            Outcome::Failed => panic!("a request of {size} failed after the faults stopped"),
        }
        if live.len() > 60 {
            let b = live.swap_remove(rng.next() as usize % live.len());
            free(b, "after the faults");
        }
    }
    purge();
    for b in live {
        free(b, "at the end");
    }
}

#[test]
fn failures_become_enomem_and_rjem_recovers() {
    if common::in_child() {
        return survive_faults();
    }
    // Default options, then guard pages (mprotect) and immediate purging
    // (madvise at every free).
    for conf in [
        "",
        "san_guard_small:2,san_guard_large:2,dirty_decay_ms:0",
        "retain:false,junk:true,tcache_max:1048576",
    ] {
        let err = common::child("failures_become_enomem_and_rjem_recovers", conf);
        for l in err.lines().filter(|l| l.contains("injected")) {
            eprintln!("MALLOC_CONF='{conf}': {l}");
        }
    }
}

#[test]
fn xmalloc_aborts_with_a_message() {
    if common::in_child() {
        // SAFETY: starts rjem.
        unsafe { ffi::free(ffi::malloc(1)) };
        faults::set(Call::Mmap, 1);
        let p = ffi::malloc(64 << 20);
        println!("returned {p:?}");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "xmalloc_aborts_with_a_message", "--nocapture"])
        .env("RJEM_TEST_CHILD", "1")
        .env("MALLOC_CONF", "xmalloc:true")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{err}");
    assert!(
        err.contains("<rjem>: out of memory (xmalloc:true)"),
        "{err}"
    );
}
