//! rjem as the global allocator of this test binary: the standard
//! collections, every alignment, zeroing, realloc in place and usable sizes.

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap};

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

#[test]
fn collections_work() {
    let mut m: HashMap<String, Vec<u64>> = HashMap::new();
    for i in 0..20_000u64 {
        m.entry(format!("key{}", i % 1000)).or_default().push(i);
    }
    assert_eq!(m.len(), 1000);
    assert_eq!(m["key7"].len(), 20);
    let mut b = BTreeMap::new();
    for i in 0..10_000 {
        b.insert(i * 7 % 10_007, i.to_string());
    }
    assert_eq!(b.len(), 10_000);
    let s: String = (0..100_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(s.len(), 100_000);
}

#[test]
fn usable_size_is_the_class() {
    unsafe {
        for (req, want) in [
            (1, 8),
            (100, 112),
            (14336, 14336),
            (14337, 16384),
            (100_000, 114_688),
        ] {
            let l = Layout::from_size_align(req, 1).unwrap();
            let p = alloc(l);
            assert!(!p.is_null());
            assert_eq!(rjem::usable_size(p), want, "request {req}");
            assert_eq!(rjem::nallocx(req, 0), want);
            dealloc(p, l);
        }
    }
}

#[test]
fn every_alignment() {
    unsafe {
        for lg in 0..=24 {
            let a = 1usize << lg;
            for size in [1usize, 7, 8, 100, 4096, 5000, 20_000, 1 << 20] {
                let l = Layout::from_size_align(size, a).unwrap();
                let p = alloc(l);
                assert!(!p.is_null(), "size {size} align {a}");
                assert_eq!(p as usize % a, 0, "size {size} align {a}");
                assert!(rjem::usable_size(p) >= size);
                p.write_bytes(0xab, size);
                dealloc(p, l);
            }
        }
    }
}

#[test]
fn zeroed_memory_is_zero() {
    unsafe {
        for size in [8usize, 64, 3000, 16384, 100_000, 3 << 20] {
            // Dirty the memory first so reuse would show.
            for _ in 0..3 {
                let l = Layout::from_size_align(size, 8).unwrap();
                let p = alloc(l);
                p.write_bytes(0xff, size);
                dealloc(p, l);
                let z = alloc_zeroed(l);
                assert!(
                    std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0),
                    "size {size}"
                );
                z.write_bytes(0xee, size);
                dealloc(z, l);
            }
        }
    }
}

#[test]
fn realloc_keeps_content_and_grows_in_place() {
    unsafe {
        let l = Layout::from_size_align(20, 8).unwrap();
        let mut p = alloc(l);
        let mut size = 20;
        for i in 0..size {
            *p.add(i) = i as u8;
        }
        // Grow through small and large classes; content survives.
        while size < (8 << 20) {
            let new = size * 3 / 2 + 1;
            p = realloc(p, Layout::from_size_align(size, 8).unwrap(), new);
            assert!(!p.is_null());
            for i in 0..size.min(20) {
                assert_eq!(*p.add(i), i as u8);
            }
            size = new;
        }
        dealloc(p, Layout::from_size_align(size, 8).unwrap());

        // A large block followed by free pages grows without moving.
        let big = Layout::from_size_align(1 << 20, 4096).unwrap();
        let q = alloc(big);
        let q2 = realloc(q, big, 1 << 19); // shrink in place
        assert_eq!(q, q2);
        let q3 = realloc(q2, Layout::from_size_align(1 << 19, 4096).unwrap(), 1 << 20);
        assert_eq!(q2, q3, "grew back into its own freed tail");
        dealloc(q3, big);
    }
}

#[test]
fn realloc_between_small_classes_keeps_content_and_counts() {
    use rjem::ctl::{self, Value};
    // Reading a counter allocates nothing: it returns a number.
    let counter = |name: &str| match ctl::read(name) {
        Ok(Value::U64(n)) => n,
        other => panic!("{name}: {other:?}"),
    };
    // Bytes differ from step to step, so that a block handed out again
    // never holds the expected ones by chance.
    let byte = |i: usize, step: usize| (i.wrapping_mul(31) ^ step.wrapping_mul(97)) as u8;
    // A fresh thread: nothing else allocates on it between the reads.
    std::thread::spawn(move || unsafe {
        let mut step = 0;
        for align in [1, 8, 16, 64, 256] {
            let mut size = 1;
            let mut p = alloc(Layout::from_size_align(size, align).unwrap());
            // Up through the small classes into large ones (the cache's
            // hit paths, then `realloc`'s general path), and down again.
            let steps = (0..40).map(|k| if k < 28 { 1.37 } else { 0.6 });
            for f in steps {
                let new = ((size as f64 * f) as usize + usize::from(f > 1.0)).max(1);
                step += 1;
                for i in 0..size {
                    *p.add(i) = byte(i, step);
                }
                let old = Layout::from_size_align(size, align).unwrap();
                let (a0, d0) = (counter("thread.allocated"), counter("thread.deallocated"));
                let q = realloc(p, old, new);
                let (a1, d1) = (counter("thread.allocated"), counter("thread.deallocated"));
                assert!(
                    !q.is_null() && (q as usize).is_multiple_of(align),
                    "{size} -> {new}, {align}"
                );
                for i in 0..size.min(new) {
                    assert_eq!(
                        *q.add(i),
                        byte(i, step),
                        "{size} -> {new}, {align}: byte {i}"
                    );
                }
                let was = rjem::nallocx(size, align) as u64;
                let is = rjem::nallocx(new, align) as u64;
                if q != p {
                    assert_eq!((a1 - a0, d1 - d0), (is, was), "{size} -> {new}, {align}");
                }
                p = q;
                size = new;
            }
            dealloc(p, Layout::from_size_align(size, align).unwrap());
        }
    })
    .join()
    .unwrap();
}

#[test]
fn impossible_requests_return_null() {
    unsafe {
        let l = Layout::from_size_align(isize::MAX as usize - 4096, 1).unwrap();
        assert!(rjem::Rjem.alloc(l).is_null());
        let l = Layout::from_size_align(1 << 47, 1 << 30).unwrap();
        let p = rjem::Rjem.alloc(l);
        // 128 TiB is the whole user address space: null, not abort.
        assert!(p.is_null());
        assert_eq!(rjem::nallocx(usize::MAX, 0), 0);
    }
}

#[test]
fn stats_count_live_bytes() {
    let v: Vec<Box<[u8; 1000]>> = (0..1000).map(|_| Box::new([7u8; 1000])).collect();
    let big = vec![1u8; 10 << 20];
    let during = rjem::stats();
    // Our blocks are live now, whatever other tests do concurrently.
    assert!(during.allocated >= (10 << 20) + 1000 * 1024);
    assert!(during.active >= 10 << 20);
    assert!(during.mapped >= during.active);
    assert!(during.metadata > 0 && during.narenas >= 1);
    drop(v);
    drop(big);
}
