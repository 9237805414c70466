//! The heap profiler's per-class sampling (each cached class counts down
//! the pops to its own next sample) estimates each class without bias
//! when classes far apart are allocated interleaved, as one byte counter
//! over all of them would. The options are read at start-up, so the test
//! runs itself again with `MALLOC_CONF` set.

use std::hint::black_box;
use std::process::Command;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

const CHILD: &str = "RJEM_PROF_CLASSES_CHILD";

/// One 3 KiB block after every `every` 16-byte ones, `n_big` times.
#[allow(clippy::vec_box)] // Boxes are the allocations under test.
fn mix(tiny: &mut Vec<Box<[u8; 16]>>, big: &mut Vec<Vec<u8>>, n_big: usize, every: usize) {
    for _ in 0..n_big {
        for _ in 0..every {
            tiny.push(black_box(Box::new([2u8; 16])));
        }
        big.push(black_box(vec![3u8; 3072]));
    }
}

/// Per usable size (a record's bytes / objects), the sampled objects and
/// the scaled objects and bytes, as jeprof scales them.
fn per_size(text: &str) -> Vec<(u64, f64, f64, f64)> {
    let (head, _maps) = text.split_once("\nMAPPED_LIBRARIES:\n").unwrap();
    let mut lines = head.lines();
    let period: f64 = lines.next().unwrap()["heap_v2/".len()..].parse().unwrap();
    lines.next();
    let mut out: Vec<(u64, f64, f64, f64)> = Vec::new();
    while let Some(l) = lines.next() {
        if !l.starts_with("@ ") {
            continue;
        }
        let counts = lines.next().unwrap().replace(['[', ']', ':', '*'], " ");
        let n: Vec<f64> = counts
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        let (objs, bytes) = (n[0], n[1]);
        if objs == 0.0 {
            continue;
        }
        let size = (bytes / objs).round() as u64;
        let scale = 1.0 / (1.0 - (-(bytes / objs) / period).exp());
        match out.iter_mut().find(|e| e.0 == size) {
            Some(e) => {
                e.1 += objs;
                e.2 += objs * scale;
                e.3 += bytes * scale;
            }
            None => out.push((size, objs, objs * scale, bytes * scale)),
        }
    }
    out
}

/// Runs the command `make` builds for a fresh temporary directory
/// (removed afterwards); asserts that it succeeded and returns its stdout.
fn run_in_temp_dir(name: &str, make: impl FnOnce(&std::path::Path) -> Command) -> String {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = make(&dir).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn thread_allocated() -> u64 {
    match rjem::ctl::read("thread.allocated") {
        Ok(rjem::ctl::Value::U64(n)) => n,
        other => panic!("thread.allocated: {other:?}"),
    }
}

fn child() {
    assert!(rjem::prof::enabled());
    let path = std::env::var("RJEM_PROF_CLASSES_DUMP").unwrap();
    // Blocks of both classes freed first (they must not count), then
    // 400,000 x 16 B = 6.4 MB and 2,000 x 3 KiB = 6.1 MB kept.
    let (mut tiny, mut big) = (Vec::new(), Vec::new());
    mix(&mut tiny, &mut big, 1_000, 200);
    drop((tiny, big));
    let mut tiny = Vec::with_capacity(400_000);
    let mut big = Vec::with_capacity(2_000);
    let a0 = thread_allocated();
    mix(&mut tiny, &mut big, 2_000, 200);
    // Exact with sampling on too: samples are counted once, outside the
    // stacks, and taken off the class's pop count.
    println!("\nallocated {}", thread_allocated() - a0);
    rjem::prof::dump(&path).unwrap();
    drop((tiny, big));
    let text = std::fs::read_to_string(&path).unwrap();
    for (size, samples, objs, bytes) in per_size(&text) {
        println!("size {size} {samples} {objs:.0} {bytes:.0}");
    }
}

/// 16 B (one sample per 256 blocks at `lg_prof_sample:12`) and 3 KiB
/// (more than every other block), interleaved by one thread in known
/// proportions: each class's sample count is binomial with its own
/// probability, and its estimates of objects and bytes are unbiased,
/// whatever the other class does; `thread.allocated` stays exact.
#[test]
fn interleaved_classes_are_estimated_without_bias() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let stdout = run_in_temp_dir("rjem-prof-classes", |dir| {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([
            "--exact",
            "interleaved_classes_are_estimated_without_bias",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("RJEM_PROF_CLASSES_DUMP", dir.join("mix.heap"))
        .env("MALLOC_CONF", "prof:true,lg_prof_sample:12");
        c
    });
    let get = |size: u64| -> (f64, f64, f64) {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("size {size} ")))
            .map_or((0.0, 0.0, 0.0), |v| {
                let n: Vec<f64> = v.split(' ').map(|x| x.parse().unwrap()).collect();
                (n[0], n[1], n[2])
            })
    };
    let allocated = stdout
        .lines()
        .find_map(|l| l.strip_prefix("allocated "))
        .map(|v| v.parse::<u64>().unwrap());
    assert_eq!(allocated, Some(400_000 * 16 + 2_000 * 3072), "{stdout}");
    for (n, size) in [(400_000.0, 16u64), (2_000.0, 3072)] {
        let (samples, objs, bytes) = get(size);
        let p = 1.0 - (-(size as f64) / 4096.0).exp();
        // About 1,560 and 1,060 samples: binomial (n, p), within 5 sigma
        // (a few blocks of the same size allocated elsewhere by the test
        // harness add a handful of samples at most).
        let want = n * p;
        let sd = (n * p * (1.0 - p)).sqrt();
        assert!(
            (samples - want).abs() < 5.0 * sd,
            "{size} B: {samples} samples, want {want:.0}\n{stdout}"
        );
        // The estimates' relative standard deviations are 2.5% and 2.1%:
        // 12% is over 4.5 sigma.
        let total = n * size as f64;
        assert!(
            (bytes - total).abs() < 0.12 * total,
            "{size} B: {bytes} bytes, want {total}\n{stdout}"
        );
        assert!(
            (objs - n).abs() < 0.12 * n,
            "{size} B: {objs} objects, want {n}\n{stdout}"
        );
    }
}

/// Frees that trust the caller's `Layout` (Rust's `dealloc` in a release
/// build, `tests/release-frees`) look nothing up on their hit path; with
/// the profiler on they must still never put a sampled block in a cache:
/// every allocation sampled (`lg_prof_sample:0`), every free is seen.
#[test]
fn trusted_frees_of_samples_are_seen() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("../../target/release-frees");
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("tests/release-frees/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS")
        .status()
        .expect("cargo");
    assert!(st.success(), "building tests/release-frees failed");
    let stdout = run_in_temp_dir("rjem-release-frees", |dir| {
        let mut c = Command::new(target.join("release/rjem-release-frees"));
        c.arg(dir).env("MALLOC_CONF", "prof:true,lg_prof_sample:0");
        c
    });
    let get = |k: &str| -> i64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(get("live"), get("blocks"), "every block sampled\n{stdout}");
    assert_eq!(get("after"), 0, "every free seen\n{stdout}");
}
