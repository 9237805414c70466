//! The workloads of `rjem bench`: what each one is, where its code lives,
//! the arguments of the quick and the full suite, and what it stresses.
//!
//! C workloads are `bench/workloads/NAME.c` (run under `LD_PRELOAD`); Rust
//! workloads are subcommands of `bench/rust-workloads` (built once per
//! allocator crate). In arguments, `{cpus}` stands for the number of CPUs
//! (the false-sharing workloads want one thread per CPU).

/// How a workload is built and run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `bench/workloads/NAME.c`, compiled with `cc`, allocator preloaded.
    C,
    /// `rust-workloads NAME SCALE`, one binary per allocator crate.
    Rust,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::C => "c",
            Kind::Rust => "rust",
        }
    }
}

/// One workload of the suite.
#[derive(Debug)]
pub struct Workload {
    pub name: &'static str,
    pub kind: Kind,
    /// Arguments for `--quick` and for the full suite.
    pub quick: &'static [&'static str],
    pub full: &'static [&'static str],
    /// One line for reports: what the workload does and stresses.
    pub stresses: &'static str,
}

impl Workload {
    /// The arguments for this suite, with `{cpus}` replaced.
    pub fn args(&self, quick: bool, cpus: usize) -> Vec<String> {
        let a = if quick { self.quick } else { self.full };
        a.iter()
            .map(|s| s.replace("{cpus}", &cpus.to_string()))
            .collect()
    }
}

const fn c(
    name: &'static str,
    quick: &'static [&'static str],
    full: &'static [&'static str],
    stresses: &'static str,
) -> Workload {
    Workload {
        name,
        kind: Kind::C,
        quick,
        full,
        stresses,
    }
}

const fn rust(
    name: &'static str,
    quick: &'static [&'static str],
    full: &'static [&'static str],
    stresses: &'static str,
) -> Workload {
    Workload {
        name,
        kind: Kind::Rust,
        quick,
        full,
        stresses,
    }
}

/// The suite, in report order. Full-suite scales are chosen so each run
/// takes roughly 0.5-1 s on jemalloc on the 2-core project machine; quick
/// ones about a fifth of that.
pub const WORKLOADS: &[Workload] = &[
    c(
        "larson",
        &["4", "5000", "50000", "15"],
        &["4", "5000", "50000", "100"],
        "Larson & Krishnan server simulation: 4 threads replace random 8-1000 B blocks in \
         arrays of 5000, handing each array to a new thread every 50,000 replacements \
         (cross-thread frees, thread turnover)",
    ),
    c(
        "threadtest",
        &["4", "150", "100000"],
        &["4", "800", "100000"],
        "Hoard threadtest: 4 threads each allocate batches of 25,000 8-byte objects and \
         free them; no sharing, pure per-thread fast-path throughput",
    ),
    c(
        "xmalloc",
        &["2", "2", "3000000"],
        &["2", "2", "15000000"],
        "xmalloc-test style producer/consumer: 2 threads allocate 8-128 B blocks in \
         batches, 2 others free them; every free is cross-thread",
    ),
    c(
        "cache-scratch",
        &["{cpus}", "1000", "100000"],
        &["{cpus}", "4000", "100000"],
        "Hoard cache-scratch (passive false sharing): each thread frees an 8-byte object \
         the main thread allocated next to the others' and then allocates, writes \
         100,000 times and frees its own objects",
    ),
    c(
        "cache-thrash",
        &["{cpus}", "1000", "100000"],
        &["{cpus}", "4000", "100000"],
        "Hoard cache-thrash (active false sharing): threads concurrently allocate an \
         8-byte object, write it 100,000 times, free it",
    ),
    c(
        "alloc-test",
        &["2", "5000000"],
        &["2", "25000000"],
        "alloc-test style: Pareto-distributed sizes (8 B to 1 KiB, shape 1.1) with random \
         lifetimes (80% short-lived pool of 64, 20% long-lived pool of 20,000), 2 threads",
    ),
    c(
        "symdiff",
        &["1500"],
        &["8000"],
        "single-threaded symbolic differentiation and simplification of random \
         expression trees (cfrac/espresso-like: millions of 24-byte nodes, short \
         lifetimes, verified by dual-number evaluation)",
    ),
    c(
        "malloc-large",
        &["30"],
        &["120"],
        "malloc-large style: 20 live blocks of 5-25 MiB replaced at random, every page \
         touched (page reuse vs. returning memory to the OS)",
    ),
    c(
        "realloc",
        &["1"],
        &["5"],
        "1000 buffers grown by realloc to exact lengths, interleaved, up to 1 MiB \
         (in-place growth, copying, size-class transitions)",
    ),
    c(
        "thread-churn",
        &["500"],
        &["2000"],
        "mleak style: threads created and destroyed by the thousand (8 at a time), each \
         leaving a quarter of its blocks to the main thread; fails if RSS grows more \
         than 32 MiB after warm-up",
    ),
    c(
        "fragment",
        &["64"],
        &["256"],
        "fill to 256 MiB with 16-128 B blocks, free a random half, refill with 256 B-1 KiB, \
         free half, refill with 1-8 KiB, free half: peak RSS against live bytes",
    ),
    rust(
        "maps",
        &["2"],
        &["8"],
        "Rust: `HashMap` and `BTreeMap` of `String` keys and values under random insert, \
         remove and append (they must end identical)",
    ),
    rust(
        "vec-growth",
        &["2"],
        &["8"],
        "Rust: 2000 `Vec<u64>` and `String` grown one push at a time, a few to megabytes \
         (realloc through the global allocator)",
    ),
    rust(
        "json",
        &["2"],
        &["8"],
        "Rust: build a `serde_json::Value` document of 6000 records, serialise, parse, \
         compare, filter and pretty-print",
    ),
    rust(
        "par-sort",
        &["1"],
        &["6"],
        "Rust: parallel merge sort of random `String`s over 16 threads; merges allocate on \
         other threads, the main thread frees everything",
    ),
    rust(
        "channels",
        &["1"],
        &["6"],
        "Rust: producers -> workers -> consumer over bounded `mpsc` channels; messages \
         (`Vec<u8>`, `Box<Digest>`) are freed on other threads",
    ),
];

/// The workload called `name`.
pub fn find(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}
