//! Fuzzing within `cargo test` (issue 11): a seeded random-operation driver
//! over the whole C API (`tests/c/fuzz.c`: every allocation, resize and free
//! function, threads handing blocks to each other, every block checked
//! against a model) under every option set that changes code paths; and
//! random `MALLOC_CONF` strings, which must never crash the program and
//! must get exactly the messages `rjem::check_conf` predicts.
//!
//! The budget is a count of operations, not a time: by default 20,000
//! operations in each of 4 threads per option set (about half a minute in
//! all on 2 cores), and 20,000 option strings checked in-process, 120 of
//! them in a program. Longer runs (see docs/hardening.md):
//!
//! ```sh
//! RJEM_FUZZ_SEED=random RJEM_FUZZ_ROUNDS=20 RJEM_FUZZ_OPS=200000 \
//!     cargo test -p rjem-capi --test fuzz -- --nocapture
//! ```
//!
//! `RJEM_FUZZ_SEED` (a number, or `random`), `RJEM_FUZZ_ROUNDS` (seeds per
//! option set), `RJEM_FUZZ_OPS` (operations per thread),
//! `RJEM_FUZZ_THREADS`, `RJEM_FUZZ_CONF` (one option set only) and
//! `RJEM_FUZZ_CONFS` (option strings). A failure prints the seed and the
//! command that repeats it.

mod common;
use common::*;
use std::os::unix::ffi::OsStrExt;

/// Option sets that change code paths, one per line. (`junk:true` and the
/// secure mode join this list when rjem has them.)
const OPTION_SETS: &[&str] = &[
    "",
    "tcache:false",
    "tcache_max:0",
    "tcache_max:8388608",
    "narenas:1",
    "oversize_threshold:0",
    "retain:false",
    "dirty_decay_ms:0",
    "background_thread:true",
    "junk:true",
    "zero:true",
    "san_guard_small:1,san_guard_large:1",
    "san_guard_small:5,san_guard_large:3",
    "secure:true",
    // Thread-cache stacks at both ends: 2 slots everywhere, flushed to
    // nothing when full; 8190 slots, flushed to an eighth.
    "tcache_nslots_small_max:1,tcache_nslots_large:1,lg_tcache_flush_small_div:16,lg_tcache_flush_large_div:16,tcache_gc_incr_bytes:1",
    "tcache_nslots_small_min:8191,tcache_nslots_small_max:8191,lg_tcache_nslots_mul:16,tcache_nslots_large:8191,lg_tcache_flush_small_div:3",
    "cache_oblivious:true,tcache_max:1048576",
    "cache_oblivious:true,san_guard_large:2,junk:true,retain:false",
];

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// `RJEM_FUZZ_SEED`: a number, `random` (from the clock, printed), or 1.
fn first_seed() -> u64 {
    match std::env::var("RJEM_FUZZ_SEED").as_deref() {
        Ok("random") => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            let s = t.as_nanos() as u64 % 1_000_000_007;
            eprintln!("fuzz: RJEM_FUZZ_SEED={s}");
            s
        }
        _ => env_num("RJEM_FUZZ_SEED", 1),
    }
}

#[test]
fn api_fuzz_every_option_set() {
    let exe = build("fuzz.c", Link::Shared);
    let ops = env_num("RJEM_FUZZ_OPS", 20_000);
    let threads = env_num("RJEM_FUZZ_THREADS", 4);
    let rounds = env_num("RJEM_FUZZ_ROUNDS", 1);
    let only = std::env::var("RJEM_FUZZ_CONF").ok();
    let sets: Vec<&str> = match &only {
        Some(c) => vec![c.as_str()],
        None => OPTION_SETS.to_vec(),
    };
    let seed0 = first_seed();
    for round in 0..rounds {
        for (i, conf) in sets.iter().enumerate() {
            let seed = seed0 + round * sets.len() as u64 + i as u64;
            let args = [seed.to_string(), ops.to_string(), threads.to_string()];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = run(&exe, &args, false, &[("MALLOC_CONF", conf)]);
            let out = text(&o.stdout);
            assert!(
                o.status.success() && out.contains("fuzz ok"),
                "fuzz failed ({:?}) with MALLOC_CONF='{conf}', seed {seed}:\n{out}{}\n\
                 repeat: RJEM_FUZZ_SEED={seed} RJEM_FUZZ_CONF='{conf}' RJEM_FUZZ_OPS={ops} \
                 RJEM_FUZZ_THREADS={threads} cargo test -p rjem-capi --test fuzz api_fuzz\n\
                 or: MALLOC_CONF='{conf}' {} {seed} {ops} {threads}",
                o.status,
                text(&o.stderr),
                exe.display()
            );
        }
    }
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Options whose output or effect is not a conf message: left out.
const NOT_FUZZED: &[&str] = &[
    "abort",
    "abort_conf",
    "confirm_conf",
    "stats_print",
    "stats_print_opts",
    "stats_interval",
    "stats_interval_opts",
];

/// A random option string: mostly well-formed pairs of real options with
/// values good and bad, with malformed pieces mixed in. No NUL (the
/// environment cannot hold one), at most about 150 bytes.
fn conf_string(r: &mut Rng, names: &[&str]) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "true",
        "false",
        "TRUE",
        "free",
        "alloc",
        "abort",
        "default",
        "always",
        "never",
        "disabled",
        "auto",
        "percpu",
        "phycpu",
        "1-4096:2",
        "16-64:1|128-256:3",
        "0-0:0",
    ];
    let mut s = Vec::new();
    for k in 0..r.below(6) {
        if k > 0 {
            let sep = [",", ",", ",", ",", ",", ",", ",,", " ,"];
            s.extend_from_slice(r.pick(&sep).as_bytes());
        }
        match r.below(20) {
            0 => {}
            1 | 2 => {
                for _ in 0..1 + r.below(10) {
                    s.push(b"abcdefghijklmnopqrstuvwxyz_0123456789"[r.below(37)]);
                }
            }
            3 => {
                for _ in 0..1 + r.below(6) {
                    s.push(1 + r.below(255) as u8);
                }
            }
            _ => s.extend_from_slice(r.pick(names).as_bytes()),
        }
        s.extend_from_slice(
            r.pick(&[":", ":", ":", ":", ":", ":", ":", ":", ":", "", "::"])
                .as_bytes(),
        );
        let n = r.next() >> r.below(64);
        let value = match r.below(12) {
            0..=2 => n.to_string(),
            3 => format!("0x{n:x}"),
            4 => format!("0{n:o}"),
            5 => format!("-{}", n % 10),
            6 => format!("{}{n}", r.pick(&[" ", "\t", "+", " -"])),
            7 => format!("{n}{}", r.pick(&[" ", "x", "99999999999999999999"])),
            8 | 9 => r.pick(WORDS).to_string(),
            10 => String::new(),
            _ => {
                let bytes: Vec<u8> = (0..1 + r.below(8))
                    .map(|_| 1 + r.below(255) as u8)
                    .collect();
                s.extend_from_slice(&bytes);
                String::new()
            }
        };
        s.extend_from_slice(value.as_bytes());
    }
    if r.below(30) == 0 {
        s.push(b',');
    }
    s.retain(|&c| c != 0);
    s
}

#[test]
fn malloc_conf_fuzz() {
    let names: Vec<&str> = rjem::ctl::options()
        .map(|o| o.name)
        .filter(|n| !NOT_FUZZED.contains(n))
        .collect();
    let mut r = Rng(first_seed());
    let total = env_num("RJEM_FUZZ_CONFS", 20_000);
    // The parser, in this process: never panics; each problem is about a
    // piece of the string and prints as one line.
    let mut strings = Vec::new();
    for _ in 0..total {
        let s = conf_string(&mut r, &names);
        let range = s.as_ptr_range();
        for p in rjem::check_conf(&s) {
            let t = p.text.as_ptr_range();
            assert!(
                p.text.is_empty() || (range.start <= t.start && t.end <= range.end),
                "{s:?}"
            );
            let line = p.to_string();
            assert!(!line.is_empty() && !line.contains('\n'), "{s:?}: {line}");
        }
        strings.push(s);
    }
    // In a program: it runs, and prints exactly the predicted messages.
    let exe = build("conf_parity.c", Link::None);
    let step = (strings.len() / 120).max(1);
    for s in strings.iter().step_by(step) {
        let conf = std::ffi::OsStr::from_bytes(s);
        let o = std::process::Command::new(&exe)
            .env_remove("LD_LIBRARY_PATH")
            .env("LD_PRELOAD", lib())
            .env("MALLOC_CONF", conf)
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(s);
        assert!(
            o.status.success() && text(&o.stdout).starts_with("narenas"),
            "MALLOC_CONF={shown:?}: {:?}\n{}",
            o.status,
            text(&o.stderr)
        );
        let want: String = rjem::check_conf(s)
            .map(|p| format!("<rjem>: {p}\n"))
            .collect();
        assert_eq!(text(&o.stderr), want, "MALLOC_CONF={shown:?}");
    }
}
