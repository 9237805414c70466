//! `rjem bench`: the side-by-side allocator benchmark suite.
//!
//! Runs every workload (see [`workloads`]) under glibc, rjem and, where
//! installed, Debian's jemalloc 5.3, mimalloc 2.0.9 and tcmalloc, and
//! current mimalloc v3 and v2 and snmalloc built from the sources their
//! crates.io crates bundle ([`peers`]). C workloads
//! (`bench/workloads/*.c`) are compiled once into `target/bench/bin` and
//! run with the allocator in `LD_PRELOAD`; Rust workloads
//! (`bench/rust-workloads`) are built once per allocator crate (rjem,
//! tikv-jemallocator, mimalloc v3, mimalloc v2, snmalloc-rs, the system
//! allocator; the Rust runs of Debian's mimalloc and of tcmalloc preload
//! them into the system build). Runs are interleaved, the allocator
//! order rotating each round, so machine drift hits every allocator alike.
//! Reported per workload and allocator: the median wall time, CPU time and
//! peak RSS, each allocator's ratio to jemalloc and the geometric means of
//! the ratios, as a terminal table, Markdown, an SVG chart and JSON.
//!
//! `--instructions` instead counts instructions per hot-path operation
//! with callgrind ([`instructions`]); `--install` installs the comparison
//! allocators from Debian's packages and builds the current ones.

mod instructions;
mod peers;
mod report;
mod run;
mod workloads;

use report::{Cell, Meta, Results};
use run::{Job, Scratch};
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use workloads::{Kind, Workload, WORKLOADS};

/// The allocators, in report order.
pub const ALLOCATORS: &[&str] = &[
    "glibc",
    "rjem",
    "rjem-secure",
    "jemalloc",
    "mimalloc3",
    "mimalloc3-secure",
    "mimalloc2",
    "snmalloc",
    "mimalloc",
    "tcmalloc",
];

/// Debian's shared libraries of the comparison allocators: (allocator,
/// library, package, upstream project).
const PEER_LIBS: &[(&str, &str, &str, &str)] = &[
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2", "jemalloc"),
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0", "mimalloc"),
    (
        "tcmalloc",
        "libtcmalloc_minimal.so.4",
        "libtcmalloc-minimal4",
        "gperftools tcmalloc_minimal",
    ),
];
const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
];
pub const PEER_PACKAGES: &[&str] = &[
    "libjemalloc2",
    "libmimalloc2.0",
    "libtcmalloc-minimal4",
    "valgrind",
];

/// Benchmark allocators side by side on classic C and Rust workloads.
///
/// The suite runs under glibc, rjem, Debian's jemalloc 5.3, mimalloc 2.0.9
/// and tcmalloc, and current mimalloc v3, v2 and snmalloc built from source
/// (those installed or built; see --install).
/// Runs are interleaved; the report gives the median wall time, CPU time
/// and peak RSS per workload and allocator with ratios to jemalloc and
/// their geometric means, and each allocator's version: a table here, and
/// results.md, bench.svg and results.json in --out (default target/bench
/// in the source tree).
///
/// Exit status: 0 if every workload verified its results, 1 if any failed,
/// 2 on bad usage or missing prerequisites.
#[derive(clap::Args, Default)]
pub struct Args {
    /// Reduced scales: about 25 s of runs per allocator (plus building the
    /// Rust workloads once), about a sixth of the full suite.
    #[arg(long)]
    quick: bool,
    /// Runs per workload and allocator (default 5).
    #[arg(long, value_name = "N", value_parser = positive)]
    runs: Option<u64>,
    /// These workloads only (--list shows them).
    #[arg(long, value_name = "W,..", value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Of glibc, rjem, rjem-secure (rjem with MALLOC_CONF=secure:true),
    /// jemalloc, mimalloc3, mimalloc3-secure (built with MI_SECURE=4),
    /// mimalloc2, snmalloc, mimalloc (Debian's 2.0.9), tcmalloc.
    #[arg(long, value_name = "A,..", value_delimiter = ',')]
    allocators: Option<Vec<String>>,
    /// Ratios to A (default jemalloc, else the first selected).
    #[arg(long, value_name = "A")]
    baseline: Option<String>,
    /// Where the JSON report goes (default: in --out).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Where the Markdown report goes (default: in --out).
    #[arg(long, value_name = "FILE")]
    md: Option<PathBuf>,
    /// Where the SVG chart goes (default: in --out).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Directory for the reports (default target/bench in the source tree).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// librjem.so to preload (default: $RJEM_LIB, or next to rjem).
    #[arg(long, value_name = "PATH")]
    lib: Option<PathBuf>,
    /// A run taking longer fails (default 300).
    #[arg(long, value_name = "SECS", value_parser = positive)]
    timeout: Option<u64>,
    /// Operations for --instructions (default 1000000).
    #[arg(long, value_name = "N", value_parser = positive)]
    n: Option<u64>,
    /// Skip the Rust workloads (they need cargo and crates.io).
    #[arg(long)]
    no_rust: bool,
    /// Run workloads back to back even on a machine that reports free
    /// memory to its hypervisor (by default a run of 8 MiB or more is
    /// followed by 3 s of quiet there, so the next run does not inherit
    /// its freshly freed huge pages).
    #[arg(long)]
    no_settle: bool,
    /// List the workloads and what each stresses.
    #[arg(long)]
    list: bool,
    /// apt-get install libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4
    /// valgrind (as root; otherwise says how), then build mimalloc3,
    /// mimalloc3-secure, mimalloc2 and snmalloc from the sources of the crates libmimalloc-sys
    /// and snmalloc-sys (fetched by cargo from crates.io) into
    /// target/bench/peers (needs cargo, cc and c++, not root); same as
    /// bench/install-peers.sh.
    #[arg(long)]
    install: bool,
    /// Instructions per malloc+free pair, per batch operation and per
    /// cross-thread free, with valgrind's callgrind (--n operations).
    #[arg(long)]
    instructions: bool,
}

/// A positive number for --runs, --timeout and --n.
fn positive(v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or(format!("wants a positive number, not '{v}'"))
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("rjem bench: {msg} (rjem bench --help explains the options)");
    ExitCode::from(2)
}

fn error(msg: &str) -> ExitCode {
    eprintln!("rjem bench: {msg}");
    ExitCode::from(2)
}

pub fn main(o: Args) -> ExitCode {
    if o.list {
        for w in WORKLOADS {
            println!("{:<14} {:<5} {}", w.name, w.kind.as_str(), w.stresses);
        }
        return ExitCode::SUCCESS;
    }
    let allocators: Vec<&'static str> = match &o.allocators {
        None => ALLOCATORS.to_vec(),
        Some(v) => {
            let mut out = Vec::new();
            for name in v.iter().filter(|n| !n.is_empty()) {
                match ALLOCATORS.iter().find(|a| **a == name) {
                    Some(a) if !out.contains(a) => out.push(*a),
                    Some(_) => {}
                    None => {
                        return usage_error(&format!(
                            "unknown allocator '{name}' (known: {})",
                            ALLOCATORS.join(", ")
                        ))
                    }
                }
            }
            ALLOCATORS
                .iter()
                .copied()
                .filter(|a| out.contains(a))
                .collect()
        }
    };
    let Some(root) = source_root() else {
        return error(
            "cannot find the rjem source tree (bench/workloads); run from it or set RJEM_SRC",
        );
    };
    let cache = root.join("target/bench");
    let out_dir = o.out.clone().unwrap_or_else(|| cache.clone());
    if let Err(e) = std::fs::create_dir_all(cache.join("bin")) {
        return error(&format!("cannot create {}: {e}", cache.display()));
    }
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        return error(&format!("cannot create {}: {e}", out_dir.display()));
    }
    let env = Env {
        root,
        cache,
        rjem_lib: crate::run::candidates(o.lib.clone())
            .into_iter()
            .find(|p| p.is_file())
            .map(|p| p.canonicalize().unwrap_or(p)),
    };
    if o.install {
        return install(&env);
    }
    if o.instructions {
        return run_instructions(&env, &allocators, &o, &out_dir);
    }
    suite(&env, &allocators, &o, &out_dir)
}

/// Where the bench sources are and where builds go.
struct Env {
    root: PathBuf,
    cache: PathBuf,
    rjem_lib: Option<PathBuf>,
}

/// The source tree: $RJEM_SRC, the tree this binary was built from, or an
/// ancestor of the current directory.
fn source_root() -> Option<PathBuf> {
    let ok = |p: &Path| p.join("bench/workloads/common.h").is_file();
    let mut cands: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("RJEM_SRC") {
        cands.push(p.into());
    }
    cands.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    if let Ok(cwd) = std::env::current_dir() {
        cands.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    cands
        .into_iter()
        .find(|p| ok(p))
        .map(|p| p.canonicalize().unwrap_or(p))
}

/// Debian's library of a peer allocator, if installed.
fn peer_lib(name: &str) -> Option<PathBuf> {
    let (_, file, _, _) = PEER_LIBS.iter().find(|p| p.0 == name)?;
    LIB_DIRS
        .iter()
        .map(|d| Path::new(d).join(file))
        .find(|p| p.is_file())
}

/// The library to preload for a C program on `alloc`: Ok(None) for glibc,
/// Err(why) when it is not available.
fn c_preload(env: &Env, alloc: &str) -> Result<Option<PathBuf>, String> {
    match alloc {
        "glibc" => Ok(None),
        "rjem" | "rjem-secure" => env.rjem_lib.clone().map(Some).ok_or_else(|| {
            "librjem.so not found (build it with `cargo build --release -p rjem-capi`, or pass \
             --lib or set RJEM_LIB)"
                .to_string()
        }),
        _ if peers::find(alloc).is_some() => peers::lib(&env.cache, alloc).map(Some),
        _ => {
            let pkg = PEER_LIBS.iter().find(|p| p.0 == alloc).map_or("", |p| p.2);
            peer_lib(alloc).map(Some).ok_or_else(|| {
                format!("{alloc} is not installed (Debian package {pkg}; see rjem bench --install)")
            })
        }
    }
}

/// Compiles a C file into the cache unless an up-to-date binary is there.
fn compile_c(env: &Env, src: &Path, name: &str) -> Result<PathBuf, String> {
    let bin = env.cache.join("bin").join(name);
    let header = env.root.join("bench/workloads/common.h");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let Some(b) = mtime(&bin) {
        if mtime(src).is_some_and(|s| s <= b) && mtime(&header).is_none_or(|h| h <= b) {
            return Ok(bin);
        }
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let tmp = env
        .cache
        .join("bin")
        .join(format!(".{name}.{}", std::process::id()));
    let out = Command::new(&cc)
        .args(["-O2", "-pthread", "-I"])
        .arg(env.root.join("bench/workloads"))
        .arg("-o")
        .arg(&tmp)
        .arg(src)
        .arg("-lm")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cc}: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "{cc} failed on {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::rename(&tmp, &bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    Ok(bin)
}

/// The Rust build (cargo feature) that serves `alloc`, and whether its
/// Debian library is preloaded into it. tcmalloc has no crate here, and the
/// mimalloc crate bundles current mimalloc, not Debian's 2.0.9: for those
/// the system build runs with the library preloaded, which replaces malloc
/// underneath Rust's System.
fn rust_build(alloc: &str) -> (&'static str, bool) {
    match alloc {
        "rjem" | "rjem-secure" => ("rjem", false),
        "jemalloc" => ("jemalloc", false),
        "mimalloc3" => ("mimalloc3", false),
        "mimalloc3-secure" => ("mimalloc3-secure", false),
        "mimalloc2" => ("mimalloc2", false),
        "snmalloc" => ("snmalloc", false),
        "mimalloc" | "tcmalloc" => ("system", true),
        _ => ("system", false),
    }
}

/// Builds the Rust workloads with `feature` and copies the binary to
/// `target/bench/bin/rust-workloads-FEATURE`.
fn build_rust(env: &Env, feature: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = env.cache.join("rust");
    let log = env.cache.join(format!("rust-build-{feature}.log"));
    let out = Command::new(&cargo)
        .args(["build", "--release", "--quiet", "--features", feature])
        .arg("--manifest-path")
        .arg(env.root.join("bench/rust-workloads/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let _ = std::fs::write(&log, &out.stderr);
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = text.lines().rev().take(3).collect();
        return Err(format!(
            "cargo build --features {feature} failed ({}; full log: {})",
            last.into_iter().rev().collect::<Vec<_>>().join(" | "),
            log.display()
        ));
    }
    let bin = env
        .cache
        .join("bin")
        .join(format!("rust-workloads-{feature}"));
    let tmp = env
        .cache
        .join("bin")
        .join(format!(".rust-workloads-{feature}.{}", std::process::id()));
    std::fs::copy(target.join("release/rust-workloads"), &tmp)
        .and_then(|_| std::fs::rename(&tmp, &bin))
        .map_err(|e| format!("copying the {feature} build: {e}"))?;
    Ok(bin)
}

/// How to run one workload on one allocator.
struct Plan {
    program: PathBuf,
    args: Vec<String>,
    preload: Option<PathBuf>,
}

/// The `MALLOC_CONF` an allocator of the suite runs with: rjem-secure is
/// rjem with `secure:true`; the others run with none (the runner clears
/// it).
fn malloc_conf(alloc: &str) -> Option<&'static str> {
    (alloc == "rjem-secure").then_some("secure:true")
}

fn suite(env: &Env, allocators: &[&'static str], o: &Args, out_dir: &Path) -> ExitCode {
    let workloads: Vec<&'static Workload> = match &o.only {
        None => WORKLOADS.iter().collect(),
        Some(names) => {
            let mut v = Vec::new();
            for n in names.iter().filter(|n| !n.is_empty()) {
                match workloads::find(n) {
                    Some(w) => v.push(w),
                    None => {
                        return usage_error(&format!(
                            "unknown workload '{n}' (rjem bench --list shows them)"
                        ))
                    }
                }
            }
            v
        }
    };
    let workloads: Vec<&'static Workload> = workloads
        .into_iter()
        .filter(|w| !(o.no_rust && w.kind == Kind::Rust))
        .collect();
    if workloads.is_empty() || allocators.is_empty() {
        return usage_error("nothing to run");
    }
    let has_c = workloads.iter().any(|w| w.kind == Kind::C);
    if has_c && allocators.contains(&"rjem") {
        if let Err(e) = c_preload(env, "rjem") {
            return error(&e);
        }
    }
    let baseline: &'static str = match &o.baseline {
        Some(b) => match allocators.iter().find(|a| **a == b) {
            Some(a) => a,
            None => return usage_error(&format!("baseline '{b}' is not among the allocators")),
        },
        None if allocators.contains(&"jemalloc") => "jemalloc",
        None => allocators[0],
    };
    let runs = o.runs.unwrap_or(5) as usize;
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let timeout = Duration::from_secs(o.timeout.unwrap_or(300));
    let mut notes: Vec<String> = Vec::new();

    // Prepare: compile C workloads, build Rust ones, find libraries.
    // The C runs of a peer built from source and its Rust runs should use
    // the same crate version (--install builds from the locked one).
    let has_rust = workloads.iter().any(|w| w.kind == Kind::Rust);
    for a in allocators.iter().filter(|_| has_c && has_rust) {
        let Some(p) = peers::find(a) else { continue };
        let (Some(built), Some(locked)) =
            (peers::version(&env.cache, a), locked_version(env, p.krate))
        else {
            continue;
        };
        if !built_from(&built, p.krate, &locked) {
            notes.push(format!(
                "{a}: the C library is {built}, but the Rust workloads lock {} {locked}; \
                 rjem bench --install rebuilds it",
                p.krate
            ));
        }
    }
    let settle = run::settle_time();
    if settle.is_some() && o.no_settle {
        notes.push(
            "this machine reports free memory to its hypervisor and --no-settle ran \
             workloads back to back: an allocator that asks for huge pages ran faster when \
             the run before it had just freed memory"
                .to_string(),
        );
    }
    let settle = settle.filter(|_| !o.no_settle);
    if let Some(d) = settle {
        notes.push(format!(
            "this machine reports free memory to its hypervisor, so every run of {} MiB \
             or more was followed by {} s of quiet: a run right after it would find \
             freshly freed huge pages, 20-50x faster to write than settled ones",
            run::SETTLE_AFTER_KIB >> 10,
            d.as_secs()
        ));
    }
    let mut c_libs = Vec::new();
    for a in allocators {
        let r = c_preload(env, a);
        if has_c {
            if let Err(e) = &r {
                notes.push(format!("C workloads skipped on {a}: {e}"));
            }
        }
        c_libs.push(r);
    }
    let mut rust_bins: Vec<Result<(PathBuf, Option<PathBuf>), String>> = Vec::new();
    if workloads.iter().any(|w| w.kind == Kind::Rust) {
        let mut built: Vec<(&str, Result<PathBuf, String>)> = Vec::new();
        for a in allocators {
            let (feature, preload) = rust_build(a);
            let bin = match built.iter().find(|b| b.0 == feature) {
                Some(b) => b.1.clone(),
                None => {
                    eprintln!("rjem bench: building the Rust workloads for {feature} (cargo)...");
                    let r = build_rust(env, feature);
                    built.push((feature, r.clone()));
                    r
                }
            };
            let pre = if preload {
                peer_lib(a).ok_or_else(|| format!("{a} is not installed"))
            } else {
                Ok(PathBuf::new())
            };
            let r = match (bin, pre) {
                (Ok(b), Ok(p)) => Ok((b, preload.then_some(p))),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            if let Err(e) = &r {
                notes.push(format!("Rust workloads skipped on {a}: {e}"));
            }
            rust_bins.push(r);
        }
        for (a, r) in allocators.iter().zip(&rust_bins) {
            let why = match *a {
                "tcmalloc" => "there is no tcmalloc crate in the suite",
                "mimalloc" => "the mimalloc crate bundles current mimalloc, not Debian's",
                _ => continue,
            };
            if r.is_ok() {
                let lib = PEER_LIBS.iter().find(|p| p.0 == *a).map_or("", |p| p.1);
                notes.push(format!(
                    "Rust workloads on {a}: the system-allocator build with Debian's {lib} \
                     preloaded ({why})"
                ));
            }
        }
    }
    let mut cells: Vec<Vec<Cell>> = Vec::new();
    let mut plans: Vec<Vec<Option<Plan>>> = Vec::new();
    for w in &workloads {
        let mut row = Vec::new();
        let mut prow = Vec::new();
        let compiled = match w.kind {
            Kind::C => Some(compile_c(
                env,
                &env.root.join(format!("bench/workloads/{}.c", w.name)),
                w.name,
            )),
            Kind::Rust => None,
        };
        for (a, _) in allocators.iter().enumerate() {
            let mut cell = Cell::default();
            let mut plan = None;
            match w.kind {
                Kind::C => match (&compiled, &c_libs[a]) {
                    (Some(Err(e)), _) => cell.error = Some(e.clone()),
                    (_, Err(e)) => cell.skipped = Some(e.clone()),
                    (Some(Ok(bin)), Ok(lib)) => {
                        plan = Some(Plan {
                            program: bin.clone(),
                            args: w.args(o.quick, cpus),
                            preload: lib.clone(),
                        })
                    }
                    (None, _) => unreachable!("C workloads are compiled"),
                },
                Kind::Rust => match &rust_bins[a] {
                    Err(e) => cell.skipped = Some(e.clone()),
                    Ok((bin, pre)) => {
                        let mut args = vec![w.name.to_string()];
                        args.extend(w.args(o.quick, cpus));
                        plan = Some(Plan {
                            program: bin.clone(),
                            args,
                            preload: pre.clone(),
                        })
                    }
                },
            }
            row.push(cell);
            prow.push(plan);
        }
        cells.push(row);
        plans.push(prow);
    }

    let scratch = match Scratch::new() {
        Ok(s) => s,
        Err(e) => return error(&format!("cannot create a scratch directory: {e}")),
    };
    let total: usize = plans.iter().flatten().filter(|p| p.is_some()).count() * runs;
    let mut progress = Progress::new(total);
    let na = allocators.len();
    for (wi, w) in workloads.iter().enumerate() {
        for r in 0..runs {
            for k in 0..na {
                let a = (k + r) % na;
                let Some(plan) = &plans[wi][a] else { continue };
                let cell = &mut cells[wi][a];
                if cell.error.is_some() {
                    progress.skip();
                    continue;
                }
                progress.show(&format!(
                    "{} on {} (run {}/{runs})",
                    w.name,
                    allocators[a],
                    r + 1
                ));
                let job = Job {
                    program: &plan.program,
                    args: &plan.args,
                    preload: plan.preload.as_deref(),
                    conf: malloc_conf(allocators[a]),
                    timeout,
                };
                match run::run(&job, &scratch) {
                    Ok((sample, line)) => {
                        if let Some(d) =
                            settle.filter(|_| sample.peak_rss_kib >= run::SETTLE_AFTER_KIB)
                        {
                            std::thread::sleep(d);
                        }
                        if cell.samples.is_empty() {
                            cell.output = line;
                        }
                        cell.samples.push(sample);
                    }
                    Err(e) => cell.error = Some(e),
                }
                progress.done();
            }
        }
        progress.finished(&summary(w.name, allocators, &cells[wi]));
    }
    progress.clear();

    let results = Results {
        workloads,
        allocators: allocators.to_vec(),
        cells,
        baseline,
        meta: Meta {
            date: now_utc(),
            suite: if o.quick { "quick" } else { "full" },
            runs,
            machine: machine_info(env),
            versions: versions(env, allocators),
        },
        notes,
    };
    print!("{}", results.terminal());
    let json_path = o
        .json
        .clone()
        .unwrap_or_else(|| out_dir.join("results.json"));
    let md_path = o.md.clone().unwrap_or_else(|| out_dir.join("results.md"));
    let svg_path = o.svg.clone().unwrap_or_else(|| out_dir.join("bench.svg"));
    let chart_ref = if svg_path.parent() == md_path.parent() {
        svg_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
    } else {
        Some(svg_path.display().to_string())
    };
    for (path, text) in [
        (&json_path, results.json()),
        (&md_path, results.markdown(chart_ref.as_deref())),
        (&svg_path, results.svg()),
    ] {
        if let Err(e) = std::fs::write(path, text) {
            return error(&format!("cannot write {}: {e}", path.display()));
        }
    }
    println!(
        "\nwrote {}, {} and {}",
        md_path.display(),
        svg_path.display(),
        json_path.display()
    );
    // A peer failing its checks (mimalloc 3's RSS over thread exits, say)
    // is reported in the tables; only rjem's own failures fail the run.
    if results.rjem_failures().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One line per finished workload: each allocator's median wall time.
fn summary(name: &str, allocators: &[&str], cells: &[Cell]) -> String {
    let mut s = format!("{name:<14}");
    for (a, c) in cells.iter().enumerate() {
        let v = if c.error.is_some() {
            "FAILED".to_string()
        } else if c.samples.is_empty() {
            "-".to_string()
        } else {
            let t = report::median(c.samples.iter().map(|x| x.wall_s).collect());
            format!("{t:.3}s")
        };
        s.push_str(&format!("  {} {v}", allocators[a]));
    }
    s
}

/// Progress on stderr: a live line on a terminal, else one line per
/// finished workload.
struct Progress {
    total: usize,
    done: usize,
    start: Instant,
    tty: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            done: 0,
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        }
    }
    fn elapsed(&self) -> String {
        let s = self.start.elapsed().as_secs();
        let left = if self.done > 0 {
            let per = self.start.elapsed().as_secs_f64() / self.done as f64;
            let l = (per * (self.total - self.done) as f64) as u64;
            format!(", ~{}:{:02} left", l / 60, l % 60)
        } else {
            String::new()
        };
        format!("{}:{:02} elapsed{left}", s / 60, s % 60)
    }
    fn show(&self, what: &str) {
        if self.tty {
            eprint!(
                "\r\x1b[K[{}/{} runs, {}] {what}",
                self.done,
                self.total,
                self.elapsed()
            );
            let _ = std::io::stderr().flush();
        }
    }
    fn done(&mut self) {
        self.done += 1;
    }
    fn skip(&mut self) {
        self.done += 1;
    }
    fn finished(&self, line: &str) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
        eprintln!(
            "[{}/{} runs, {}] {line}",
            self.done,
            self.total,
            self.elapsed()
        );
    }
    fn clear(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }
}

/// The current time as "YYYY-MM-DD HH:MM UTC".
fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

/// The first line a command prints, if it runs.
fn first_line(cmd: &str, args: &[&str], dir: Option<&Path>) -> Option<String> {
    let mut c = Command::new(cmd);
    c.args(args).stdin(Stdio::null()).stderr(Stdio::null());
    if let Some(d) = dir {
        c.current_dir(d);
    }
    let out = c.output().ok().filter(|o| o.status.success())?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

/// A locked crate's version from bench/rust-workloads/Cargo.lock.
fn locked_version(env: &Env, krate: &str) -> Option<String> {
    let lock = std::fs::read_to_string(env.root.join("bench/rust-workloads/Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{krate}\"") {
            let v = lines.next()?.trim();
            return v
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_string);
        }
    }
    None
}

/// Whether a peer's version line ("mimalloc 3.3.2 (sources of
/// libmimalloc-sys 0.1.49)") names `krate` at exactly `version`.
fn built_from(built: &str, krate: &str, version: &str) -> bool {
    let key = format!("{krate} {version}");
    built.match_indices(&key).any(|(i, _)| {
        !built[i + key.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.')
    })
}

/// What each allocator is (version and origin), for every report.
fn versions(env: &Env, allocators: &[&str]) -> Vec<(String, String)> {
    allocators
        .iter()
        .map(|a| (a.to_string(), allocator_version(env, a)))
        .collect()
}

fn glibc_version() -> String {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) }
        .to_string_lossy()
        .into_owned()
}

fn allocator_version(env: &Env, alloc: &str) -> String {
    if alloc == "glibc" {
        return format!("glibc {} malloc", glibc_version());
    }
    if alloc == "rjem" || alloc == "rjem-secure" {
        let commit = first_line("git", &["rev-parse", "--short", "HEAD"], Some(&env.root));
        return format!(
            "rjem {}{}",
            env!("CARGO_PKG_VERSION"),
            commit.map_or(String::new(), |c| format!(" (this tree, commit {c})"))
        );
    }
    if peers::find(alloc).is_some() {
        return peers::version(&env.cache, alloc).unwrap_or_else(|| {
            "not built (rjem bench --install builds it; the Rust workloads use its crate)".into()
        });
    }
    let Some((_, _, pkg, project)) = PEER_LIBS.iter().find(|p| p.0 == alloc) else {
        return "unknown".into();
    };
    match first_line("dpkg-query", &["-W", "-f=${Version}", pkg], None) {
        Some(v) => format!("{project} {} (Debian {pkg} {v})", debian_upstream(&v)),
        None if peer_lib(alloc).is_some() => format!("{project} (not from a Debian package)"),
        None => format!("not installed (Debian package {pkg})"),
    }
}

/// The upstream part of a Debian version: "2.0.9+ds-2" -> "2.0.9".
fn debian_upstream(v: &str) -> &str {
    let v = v.split_once(':').map_or(v, |(_, r)| r);
    let v = v.rsplit_once('-').map_or(v, |(u, _)| u);
    v.split(['+', '~']).next().unwrap_or(v)
}

/// Machine and software facts for the reports.
fn machine_info(env: &Env) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_string(), |(_, m)| m.trim().to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    v.push(("CPU".into(), format!("{cpus} x {model}")));
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or("unknown".to_string(), |k| {
            format!("{:.1} GiB", k as f64 / 1048576.0)
        });
    v.push(("memory".into(), mem));
    // SAFETY: uname fills a zeroed struct.
    let kernel = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) == 0 {
            std::ffi::CStr::from_ptr(u.release.as_ptr())
                .to_string_lossy()
                .into_owned()
        } else {
            "unknown".into()
        }
    };
    v.push(("kernel".into(), format!("Linux {kernel}")));
    v.push(("glibc".into(), glibc_version()));
    if let Some(r) = first_line("rustc", &["--version"], None) {
        v.push(("rustc".into(), r));
    }
    if let Some(c) = first_line("cc", &["--version"], None) {
        v.push(("cc".into(), c));
    }
    let crates: Vec<String> = [
        "tikv-jemalloc-sys",
        "mimalloc",
        "libmimalloc-sys",
        "snmalloc-rs",
        "snmalloc-sys",
        "serde_json",
    ]
    .iter()
    .filter_map(|k| locked_version(env, k).map(|v| format!("{k} {v}")))
    .collect();
    if !crates.is_empty() {
        v.push(("Rust crates".into(), crates.join(", ")));
    }
    if let Some(c) = first_line("git", &["rev-parse", "--short", "HEAD"], Some(&env.root)) {
        v.push(("rjem commit".into(), c));
    }
    v
}

/// Whether a Debian package is installed.
fn dpkg_installed(pkg: &str) -> bool {
    first_line("dpkg-query", &["-W", "-f=${Status}", pkg], None)
        .is_some_and(|s| s.ends_with(" installed"))
}

/// `--install`: the comparison allocators and valgrind from Debian (as
/// root; otherwise it says how), then the current mimalloc and snmalloc
/// built from source (no root needed). Same as `bench/install-peers.sh`.
fn install(env: &Env) -> ExitCode {
    let mut ok = true;
    let missing: Vec<&str> = PEER_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    let apt = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if missing.is_empty() {
        eprintln!(
            "rjem bench: Debian packages already installed: {}",
            PEER_PACKAGES.join(" ")
        );
    // SAFETY: geteuid cannot fail.
    } else if unsafe { libc::geteuid() } == 0 {
        eprintln!("rjem bench: {apt}");
        let done = Command::new("apt-get")
            .arg("update")
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("apt-get")
                .args(["install", "-y"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success());
        if !done {
            eprintln!("rjem bench: apt-get failed");
            ok = false;
        }
    } else {
        eprintln!(
            "rjem bench: the Debian packages {} need root; run:\n  sudo sh -c '{apt}'",
            missing.join(" ")
        );
        ok = false;
    }
    match peers::install(&env.root, &env.cache) {
        Ok(built) => {
            for b in built {
                println!("{:<10} {}: {}", b.name, b.path.display(), b.version);
            }
        }
        Err(e) => {
            eprintln!("rjem bench: building the current peers: {e}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// Builds `bench/rust-default-profile` with Cargo's default release
/// profile, or with fat LTO and one codegen unit (as this workspace builds),
/// each in its own target directory.
fn build_rust_fastpath(env: &Env, lto: bool) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let tag = if lto { "lto" } else { "default" };
    let target = env.cache.join(format!("rust-fastpath-{tag}"));
    let mut c = Command::new(&cargo);
    c.args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(env.root.join("bench/rust-default-profile/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .stdin(Stdio::null());
    // Whatever the caller's environment says, each build gets its profile.
    for k in ["LTO", "CODEGEN_UNITS", "PANIC", "OPT_LEVEL"] {
        c.env_remove(format!("CARGO_PROFILE_RELEASE_{k}"));
    }
    if lto {
        c.env("CARGO_PROFILE_RELEASE_LTO", "fat")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");
    }
    let out = c.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = text.lines().rev().take(3).collect();
        return Err(format!(
            "building the Rust fast-path program ({tag}) failed: {}",
            last.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    Ok(target.join("release/rjem-fastpath-default-profile"))
}

/// `--instructions`: callgrind counts per hot-path operation.
fn run_instructions(env: &Env, allocators: &[&'static str], o: &Args, out_dir: &Path) -> ExitCode {
    if first_line("valgrind", &["--version"], None).is_none() {
        return error("valgrind is not installed (rjem bench --install installs it)");
    }
    let src = env.root.join("bench/fastpath/fastpath.c");
    let prog = match compile_c(env, &src, "fastpath") {
        Ok(p) => p,
        Err(e) => return error(&e),
    };
    let n = o.n.unwrap_or(1_000_000);
    let tty = std::io::stderr().is_terminal();
    let mut names = Vec::new();
    let mut cells = Vec::new();
    for a in allocators {
        if malloc_conf(a).is_some() {
            eprintln!("rjem bench: skipping {a}: instructions are counted without options");
            continue;
        }
        let lib = match c_preload(env, a) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rjem bench: skipping {a}: {e}");
                continue;
            }
        };
        let mut row = Vec::new();
        for (mode, _) in instructions::MODES {
            if tty {
                eprint!("\r\x1b[Krjem bench: callgrind: {a} {mode}...");
            }
            row.push(instructions::per_op(&prog, mode, n, lib.as_deref()));
        }
        if !tty {
            eprintln!("rjem bench: callgrind: {a} done");
        }
        names.push(*a);
        cells.push(row);
    }
    if tty {
        eprint!("\r\x1b[K");
    }
    let counts = instructions::Counts {
        versions: versions(env, &names),
        allocators: names,
        modes: instructions::MODES,
        cells,
        n,
    };
    print!("{}", counts.terminal());
    // rjem as a Rust program's global allocator, built as users build it:
    // Cargo's default release profile, and fat LTO.
    let rust = if o.no_rust || !allocators.contains(&"rjem") {
        None
    } else {
        let mut names = Vec::new();
        let mut cells = Vec::new();
        for (name, lto) in [
            ("rjem, no LTO (Cargo default)", false),
            ("rjem, fat LTO", true),
        ] {
            eprintln!("rjem bench: building the Rust fast-path program ({name})...");
            let row = match build_rust_fastpath(env, lto) {
                Ok(prog) => instructions::RUST_MODES
                    .iter()
                    .map(|(mode, _)| instructions::per_op(&prog, mode, n, None))
                    .collect(),
                Err(e) => vec![Err(e); instructions::RUST_MODES.len()],
            };
            names.push(name);
            cells.push(row);
        }
        let counts = instructions::Counts {
            allocators: names,
            modes: instructions::RUST_MODES,
            cells,
            n,
            versions: Vec::new(),
        };
        print!("\nRust, #[global_allocator] rjem:{}", counts.terminal());
        Some(counts)
    };
    let json_path = o
        .json
        .clone()
        .unwrap_or_else(|| out_dir.join("instructions.json"));
    let md_path =
        o.md.clone()
            .unwrap_or_else(|| out_dir.join("instructions.md"));
    let (mut json, mut md) = (counts.json(), counts.markdown());
    if let Some(r) = &rust {
        md.push_str("\nRust, `#[global_allocator] rjem`:\n\n");
        md.push_str(&r.markdown());
        // Two JSON documents would not parse as one: the Rust rows join
        // the C ones under their build's name.
        json = instructions::merge_json(&counts, r);
    }
    for (path, text) in [(&json_path, json), (&md_path, md)] {
        if let Err(e) = std::fs::write(path, text) {
            return error(&format!("cannot write {}: {e}", path.display()));
        }
    }
    println!("\nwrote {} and {}", md_path.display(), json_path.display());
    if counts.ok() && rust.as_ref().is_none_or(|r| r.ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use report::Metric;

    #[test]
    fn dates() {
        let d = now_utc();
        assert_eq!(d.len(), "2026-11-22 04:10 UTC".len(), "{d}");
        assert!(d.starts_with("20"), "{d}");
    }

    #[test]
    fn peer_crate_versions() {
        let m = "mimalloc 3.3.2 (sources of libmimalloc-sys 0.1.49)";
        assert!(built_from(m, "libmimalloc-sys", "0.1.49"));
        assert!(!built_from(m, "libmimalloc-sys", "0.1.4"));
        assert!(!built_from(m, "libmimalloc-sys", "0.1.50"));
        let s = "snmalloc from snmalloc-sys 0.7.6 (microsoft/snmalloc commit f126f1c94d62)";
        assert!(built_from(s, "snmalloc-sys", "0.7.6"));
        assert!(!built_from(s, "snmalloc-sys", "0.7"));
    }

    #[test]
    fn debian_versions() {
        assert_eq!(debian_upstream("2.0.9+ds-2"), "2.0.9");
        assert_eq!(debian_upstream("5.3.0-1"), "5.3.0");
        assert_eq!(debian_upstream("1:2.10-1~bpo12+1"), "2.10");
        assert_eq!(debian_upstream("2.10"), "2.10");
    }

    /// A peer built from source is preloaded from the cache once built, and
    /// skipped with a note saying how to build it until then; its version
    /// comes from what --install wrote.
    #[test]
    fn source_peers_come_from_the_cache() {
        let dir = std::env::temp_dir().join(format!("rjem-peers-test-{}", std::process::id()));
        let env = Env {
            root: dir.clone(),
            cache: dir.clone(),
            rjem_lib: None,
        };
        for p in peers::PEERS {
            let e = c_preload(&env, p.name).unwrap_err();
            assert!(e.contains("not built") && e.contains("--install"), "{e}");
            assert!(allocator_version(&env, p.name).starts_with("not built"));
        }
        std::fs::create_dir_all(peers::dir(&dir)).unwrap();
        let lib = peers::lib_path(&dir, "snmalloc");
        std::fs::write(&lib, "").unwrap();
        std::fs::write(peers::dir(&dir).join("snmalloc.version"), "snmalloc X\n").unwrap();
        assert_eq!(c_preload(&env, "snmalloc").unwrap(), Some(lib));
        assert_eq!(allocator_version(&env, "snmalloc"), "snmalloc X");
        assert!(c_preload(&env, "mimalloc3").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        // Debian's mimalloc runs Rust as the system build with its library
        // preloaded; the current ones through their crates.
        assert_eq!(rust_build("mimalloc"), ("system", true));
        assert_eq!(rust_build("mimalloc3"), ("mimalloc3", false));
        assert_eq!(rust_build("mimalloc2"), ("mimalloc2", false));
        assert_eq!(rust_build("snmalloc"), ("snmalloc", false));
    }

    #[test]
    fn every_workload_has_both_scales() {
        for w in WORKLOADS {
            assert!(!w.quick.is_empty() && !w.full.is_empty(), "{}", w.name);
            assert!(workloads::find(w.name).is_some());
        }
    }

    #[test]
    fn ratios_and_geomeans() {
        use run::Sample;
        let s = |t: f64, r: u64| Sample {
            wall_s: t,
            cpu_s: t,
            peak_rss_kib: r,
        };
        let cell = |v: Vec<Sample>| Cell {
            samples: v,
            ..Cell::default()
        };
        let res = Results {
            workloads: vec![&WORKLOADS[0], &WORKLOADS[1]],
            allocators: vec!["rjem", "jemalloc"],
            cells: vec![
                vec![
                    cell(vec![s(1.0, 100), s(3.0, 100), s(2.0, 100)]),
                    cell(vec![s(4.0, 200)]),
                ],
                vec![cell(vec![s(2.0, 400)]), cell(vec![s(1.0, 100)])],
            ],
            baseline: "jemalloc",
            meta: Meta {
                versions: vec![
                    ("rjem".into(), "rjem 0.1.0".into()),
                    ("jemalloc".into(), "jemalloc 5.3.0 (Debian \"x\")".into()),
                ],
                ..Meta::default()
            },
            notes: vec![],
        };
        assert_eq!(res.ratio(0, 0, Metric::Wall), Some(0.5));
        assert_eq!(res.ratio(1, 0, Metric::Rss), Some(4.0));
        let g = res.geomean(0, None).unwrap();
        assert!((g.time - 1.0).abs() < 1e-12 && (g.rss - std::f64::consts::SQRT_2).abs() < 1e-9);
        let json: serde_json::Value = serde_json::from_str(&res.json()).unwrap();
        assert_eq!(json["results"][0]["time_ratio_to_jemalloc"], 0.5, "{json}");
        assert_eq!(
            json["versions"]["jemalloc"],
            "jemalloc 5.3.0 (Debian \"x\")"
        );
        let order: Vec<&String> = json["versions"].as_object().unwrap().keys().collect();
        assert_eq!(order, ["rjem", "jemalloc"], "versions keep report order");
        let md = res.markdown(None);
        assert!(
            md.contains("- jemalloc: jemalloc 5.3.0 (Debian \"x\")"),
            "{md}"
        );
        let term = res.terminal();
        assert!(
            term.contains("allocators:\n  rjem      rjem 0.1.0\n  jemalloc  jemalloc 5.3.0"),
            "{term}"
        );
        let svg = res.svg();
        assert!(svg.starts_with("<svg"));
        // A bar per workload (and the geomean), allocator and panel, each
        // with its value as a tooltip.
        assert_eq!(svg.matches("<title>").count(), 3 * 2 * 2, "{svg}");
        assert!(
            svg.contains(&format!(
                "<title>{} rjem time: 0.50</title>",
                WORKLOADS[0].name
            )),
            "{svg}"
        );
        assert!(
            svg.contains("<title>geomean rjem RSS: 1.41</title>"),
            "{svg}"
        );
        // A peer's failure is reported but does not fail the run.
        let mut res = res;
        res.cells[1][1].error = Some("exit status 1".into());
        assert_eq!(res.failures(), [(1, 1)]);
        assert!(res.rjem_failures().is_empty());
        res.cells[0][0].error = Some("exit status 1".into());
        assert_eq!(res.rjem_failures(), [(0, 0)]);
    }
}
