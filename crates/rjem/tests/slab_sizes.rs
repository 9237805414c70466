//! Option `slab_sizes`: slabs of the pages asked for (clamped), seen in
//! `arenas.bin.<i>.*`, the report and `opt.slab_sizes`, and blocks that
//! stay intact in slabs with an unused tail.
//!
//! Options are read once per process, so each case runs this binary again
//! with `MALLOC_CONF` set (the child runs one test, selected by name).

use rjem::ctl::{self, Value};
mod common;
use common::{child, in_child};

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

const SEED: &str = "1-4096:17|100-200:1|128-128:2";
const ODD: &str = "1-14336:3|200-700:5|3000-3584:7|10240-10240:9";

fn num(name: &str) -> usize {
    match ctl::read(name) {
        Ok(Value::Usize(n)) => n,
        Ok(Value::U32(n)) => n as usize,
        other => panic!("{name}: {other:?}"),
    }
}

/// Expected slab pages of class `size`: the segments of `spec` in order,
/// clamped to hold from one region to page / 8 regions.
fn expected_pages(spec: &str, size: usize, page: usize, default: usize) -> usize {
    let mut pages = default;
    for seg in spec.split('|') {
        let (range, p) = seg.split_once(':').unwrap();
        let (b, e) = range.split_once('-').unwrap();
        let (b, e, p): (usize, usize, usize) =
            (b.parse().unwrap(), e.parse().unwrap(), p.parse().unwrap());
        if (b..=e).contains(&size) {
            pages = p.clamp(size.div_ceil(page), (page / 8) * size / page);
        }
    }
    pages
}

fn default_pages(size: usize, page: usize) -> usize {
    let mut p = 1;
    while !(p * page).is_multiple_of(size) {
        p += 1;
    }
    p
}

fn check_geometry(spec: &str) {
    let page = num("arenas.page");
    let nbins = num("arenas.nbins");
    let mut changed = 0;
    for j in 0..nbins {
        let size = num(&format!("arenas.bin.{j}.size"));
        let slab = num(&format!("arenas.bin.{j}.slab_size"));
        let nregs = num(&format!("arenas.bin.{j}.nregs"));
        let def = default_pages(size, page);
        let want = expected_pages(spec, size, page, def);
        assert_eq!(slab, want * page, "class {size}");
        assert_eq!(nregs, slab / size, "class {size}");
        assert!((1..=page / 8).contains(&nregs), "class {size}");
        changed += (want != def) as usize;
    }
    assert!(changed > 10, "{changed} classes changed");
    match ctl::read("opt.slab_sizes") {
        Ok(Value::Str(s)) => assert_eq!(s.to_str(), Ok(spec)),
        other => panic!("opt.slab_sizes: {other:?}"),
    }
}

#[test]
fn seed_example_geometry() {
    if in_child() {
        check_geometry(SEED);
        if num("arenas.page") == 4096 {
            // jemalloc 5.3 gives these with 4 KiB pages.
            for (j, size, pages, nregs) in [
                (0, 8, 1, 512),
                (3, 48, 6, 512),
                (7, 112, 1, 36),
                (8, 128, 2, 64),
                (9, 160, 1, 25),
                (11, 224, 17, 310),
                (26, 3072, 17, 22),
                (28, 4096, 17, 17),
                (29, 5120, 5, 4),
            ] {
                assert_eq!(num(&format!("arenas.bin.{j}.size")), size);
                assert_eq!(num(&format!("arenas.bin.{j}.slab_size")), pages * 4096);
                assert_eq!(num(&format!("arenas.bin.{j}.nregs")), nregs);
            }
        }
        // The report's bin rows show the regions and pages in force.
        let v: Vec<Box<[u8]>> = (0..2000).map(|_| vec![7u8; 3000].into()).collect();
        let mut text = String::new();
        rjem::stats_print("gl", &mut |s| text.push_str(s));
        drop(v);
        let page = num("arenas.page");
        let (regs, pgs) = (17 * page / 3072, 17);
        let row = text
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["3072", "26"]))
            .unwrap_or_else(|| panic!("no row for class 3072 in:\n{text}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[13..15], [regs.to_string(), pgs.to_string()], "{row}");
        return;
    }
    let err = child("seed_example_geometry", &format!("slab_sizes:{SEED}"));
    assert!(!err.contains("<rjem>"), "{err}");
}

#[test]
fn segments_from_several_pairs_add_up() {
    if in_child() {
        check_geometry(SEED);
        return;
    }
    // Two pairs: the second adds its segments after the first's, and
    // confirm_conf shows the value in force.
    let err = child(
        "segments_from_several_pairs_add_up",
        "slab_sizes:1-4096:17,slab_sizes:100-200:1|128-128:2,confirm_conf:true",
    );
    assert!(
        err.contains(&format!("<rjem>: -- slab_sizes:{SEED}\n")),
        "{err}"
    );
    assert!(!err.contains("Invalid"), "{err}");
}

#[test]
fn malformed_value_is_named_and_ignored() {
    if in_child() {
        let page = num("arenas.page");
        for j in 0..num("arenas.nbins") {
            let size = num(&format!("arenas.bin.{j}.size"));
            let slab = num(&format!("arenas.bin.{j}.slab_size"));
            assert_eq!(slab, default_pages(size, page) * page, "class {size}");
        }
        assert_eq!(ctl::read("opt.slab_sizes"), Ok(Value::Str(c"")));
        return;
    }
    let err = child(
        "malformed_value_is_named_and_ignored",
        "slab_sizes:1-4096|100-200:1",
    );
    assert_eq!(
        err,
        "<rjem>: Invalid conf value: slab_sizes:1-4096|100-200:1\n"
    );
}

/// The pattern a block at `p` holds: derived from its address, so a block
/// handed out twice, or overlapping another, shows.
fn pattern(p: usize, i: usize) -> u8 {
    (p.wrapping_mul(0x9E37_79B9).wrapping_add(i * 31) >> 7) as u8
}

fn stress() {
    let nbins = num("arenas.nbins");
    let sizes: Vec<usize> = (0..nbins)
        .map(|j| num(&format!("arenas.bin.{j}.size")))
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let sizes = sizes.clone();
            std::thread::spawn(move || {
                let mut seed = 0x1234_5678u64 + t;
                let mut rnd = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as usize
                };
                let mut live: Vec<(*mut u8, usize)> = Vec::new();
                let check = |(p, n): (*mut u8, usize)| {
                    // SAFETY: p is a live block of n bytes we filled.
                    let s = unsafe { std::slice::from_raw_parts(p, n) };
                    for (i, &b) in s.iter().enumerate() {
                        assert_eq!(b, pattern(p as usize, i), "block {p:?} of {n}, byte {i}");
                    }
                    // SAFETY: allocated below with this layout.
                    unsafe {
                        std::alloc::dealloc(p, std::alloc::Layout::from_size_align(n, 8).unwrap())
                    };
                };
                for _ in 0..60_000 {
                    if live.len() > 3000 || (!live.is_empty() && rnd() % 3 == 0) {
                        let k = rnd() % live.len();
                        check(live.swap_remove(k));
                        continue;
                    }
                    let class = sizes[rnd() % sizes.len()];
                    // Any size of that class.
                    let n = class - rnd() % 8;
                    let layout = std::alloc::Layout::from_size_align(n, 8).unwrap();
                    // SAFETY: n > 0.
                    let p = unsafe { std::alloc::alloc(layout) };
                    assert!(!p.is_null());
                    // SAFETY: p holds n bytes.
                    let s = unsafe { std::slice::from_raw_parts_mut(p, n) };
                    for (i, b) in s.iter_mut().enumerate() {
                        *b = pattern(p as usize, i);
                    }
                    live.push((p, n));
                }
                for b in live {
                    check(b);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn blocks_stay_intact_in_odd_slabs() {
    if in_child() {
        check_geometry(ODD);
        // Some slabs end in a tail shorter than a region.
        let tails = (0..num("arenas.nbins"))
            .filter(|j| {
                let size = num(&format!("arenas.bin.{j}.size"));
                !num(&format!("arenas.bin.{j}.slab_size")).is_multiple_of(size)
            })
            .count();
        assert!(tails > 10, "{tails} classes with a tail");
        stress();
        return;
    }
    let err = child(
        "blocks_stay_intact_in_odd_slabs",
        &format!("slab_sizes:{ODD},tcache_max:4096"),
    );
    assert!(!err.contains("<rjem>"), "{err}");
}
