//! The heap profiler from a Rust program (rjem as the global allocator,
//! linked in): `rjem::prof::dump` writes a heap_v2 profile whose stacks
//! hold the allocating functions, with the bytes they hold (scaled as
//! jeprof scales them) close to the truth. The options are read at
//! start-up, so the test runs itself again with `MALLOC_CONF` set.

use std::hint::black_box;
use std::process::Command;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

const CHILD: &str = "RJEM_PROF_TEST_CHILD";

// Explicit loops (an iterator chain's allocations would happen in
// library code a sibling call away, and `collect` can be a tail call that
// leaves no frame of the site).
#[inline(never)]
#[allow(clippy::vec_box)] // Boxes are the allocations under test.
fn site_boxes(out: &mut Vec<Box<[u8; 200]>>, n: usize) {
    for _ in 0..n {
        out.push(black_box(Box::new([1u8; 200])));
    }
    black_box(&out);
}

#[inline(never)]
fn site_strings(out: &mut Vec<String>, n: usize) {
    for i in 0..n {
        out.push(black_box("x".repeat(1000 + i % 7)));
    }
    black_box(&out);
}

#[inline(never)]
fn site_churn(n: usize) {
    for _ in 0..n {
        drop(black_box(vec![0u8; 64]));
    }
}

/// The site a frame (a return address) is in: the nearest site starting
/// below it, if within 4 KiB (the sites are small functions).
fn site_of(pc: u64) -> Option<&'static str> {
    let sites: [(usize, &str); 3] = [
        (site_boxes as *const () as usize, "site_boxes"),
        (site_strings as *const () as usize, "site_strings"),
        (site_churn as *const () as usize, "site_churn"),
    ];
    sites
        .iter()
        .map(|&(a, n)| (a as u64, n))
        .filter(|&(a, _)| a < pc && pc - a < 4096)
        .max_by_key(|&(a, _)| a)
        .map(|(_, n)| n)
}

fn child() {
    assert!(rjem::prof::enabled());
    let mut boxes = Vec::with_capacity(100_000);
    site_boxes(&mut boxes, 100_000); // 100,000 x 224 usable = 22.4 MB
    let mut strings = Vec::with_capacity(20_000);
    site_strings(&mut strings, 20_000); // 20,000 x 1,024 = 20.5 MB
    site_churn(1_000_000);
    let path = std::env::var("RJEM_PROF_TEST_DUMP").unwrap();
    rjem::prof::dump(&path).unwrap();
    assert_eq!(rjem::prof::dump(""), Err(rjem::prof::DumpError::BadPath));
    drop((boxes, strings));
    // Parse the dump: the sites in each stack, scaled bytes per site.
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, _maps) = text.split_once("\nMAPPED_LIBRARIES:\n").unwrap();
    let mut lines = head.lines();
    let period: f64 = lines.next().unwrap()["heap_v2/".len()..].parse().unwrap();
    lines.next();
    let mut per_site = std::collections::BTreeMap::new();
    while let Some(l) = lines.next() {
        let Some(frames) = l.strip_prefix("@ ") else {
            continue;
        };
        let counts = lines.next().unwrap().replace(['[', ']', ':', '*'], " ");
        let n: Vec<f64> = counts
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        let (objs, bytes) = (n[0], n[1]);
        let site = frames
            .split(' ')
            .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).unwrap())
            .find_map(site_of)
            .unwrap_or("other");
        let scaled = if objs == 0.0 {
            0.0
        } else {
            bytes / (1.0 - (-(bytes / objs) / period).exp())
        };
        *per_site.entry(site).or_insert(0.0) += scaled;
    }
    for (site, bytes) in per_site {
        println!("site {site} {bytes:.0}");
    }
}

#[test]
fn rust_sites_in_the_dump() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let dir = std::env::temp_dir().join(format!("rjem-prof-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("rust.heap");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rust_sites_in_the_dump",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("RJEM_PROF_TEST_DUMP", &dump)
        .env("MALLOC_CONF", "prof:true,lg_prof_sample:14")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |site: &str| -> f64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("site {site} ")))
            .map_or(0.0, |v| v.parse().unwrap())
    };
    // About 1,400 and 1,250 samples: 12% is over 4 sigma.
    let boxes = get("site_boxes");
    assert!(
        (boxes - 22.4e6).abs() < 0.12 * 22.4e6,
        "site_boxes {boxes}\n{stdout}"
    );
    let strings = get("site_strings");
    assert!(
        (strings - 20.48e6).abs() < 0.12 * 20.48e6,
        "site_strings {strings}\n{stdout}"
    );
    assert_eq!(get("site_churn"), 0.0, "freed at once\n{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
