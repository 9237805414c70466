//! `rjem prof`: reads heap profiles (rjem's or jemalloc's `heap_v2`
//! dumps, and pprof `.pb.gz` files) and answers which code holds the
//! memory: `top` (the largest allocation sites), `flamegraph` (an SVG
//! with `inferno`), `diff` (growth per site between two dumps); and, for
//! `rjem run --prof`, the report printed when a profiled program exits.
//!
//! Owns what a "site" is: the innermost function of a stack that is not
//! part of allocating itself (allocator entry points, rjem, Rust's
//! `alloc`/`core` allocation paths, C++ `operator new`), so that bytes
//! land in the function that asked for them. Counts are the profile's
//! estimates (scaled from the samples as jeprof scales them).

pub mod profile;
mod proto;
mod symbols;

use profile::Profile;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// The allocation sites holding the most memory in a heap profile
    /// (heap_v2 dump or pprof .pb.gz), symbolized from the profiled
    /// process's files.
    Top {
        /// The profile.
        file: PathBuf,
        /// How many sites to list.
        #[arg(short = 'n', long, default_value_t = 20)]
        count: usize,
        /// Rank by all bytes ever allocated (needs prof_accum:true in the
        /// profiled program) instead of bytes in use.
        #[arg(long)]
        alloc: bool,
    },
    /// Draw a heap profile's in-use bytes as a flame graph (SVG).
    Flamegraph {
        /// The profile.
        file: PathBuf,
        /// Where to write the SVG.
        #[arg(short = 'o', long, value_name = "SVG")]
        output: PathBuf,
        /// Draw all bytes ever allocated (prof_accum:true) instead.
        #[arg(long)]
        alloc: bool,
    },
    /// Growth of in-use bytes per allocation site from profile BEFORE to
    /// profile AFTER (the leak hunter's question), largest first.
    Diff {
        before: PathBuf,
        after: PathBuf,
        /// How many sites to list.
        #[arg(short = 'n', long, default_value_t = 20)]
        count: usize,
    },
}

pub fn main(cmd: Cmd) -> ExitCode {
    let r = match cmd {
        Cmd::Top { file, count, alloc } => load(&file).map(|p| {
            let mut out = std::io::stdout().lock();
            let _ = top(&mut out, &file, &p, count, alloc);
        }),
        Cmd::Flamegraph {
            file,
            output,
            alloc,
        } => load(&file).and_then(|p| flamegraph(&p, &output, alloc)),
        Cmd::Diff {
            before,
            after,
            count,
        } => load(&before).and_then(|a| {
            let b = load(&after)?;
            let mut out = std::io::stdout().lock();
            let _ = diff(&mut out, &a, &b, count);
            Ok(())
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rjem prof: {e}");
            ExitCode::from(1)
        }
    }
}

/// Reads a profile and names its frames.
pub fn load(path: &Path) -> Result<Profile, String> {
    let mut p = profile::read(path)?;
    symbols::Symbolizer::default().fill(&mut p);
    Ok(p)
}

/// Frames that belong to allocating itself, not to the code that asked.
fn is_alloc_frame(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "rjem::",
        "<rjem::",
        "__rg_",
        "__rustc::",
        "__rust_alloc",
        "__rust_realloc",
        "__rust_dealloc",
        "__rdl_",
        "alloc::",
        "<alloc::",
        "core::",
        "<core::",
        "std::alloc::",
        "operator new",
        "__gnu_cxx::new_allocator",
        "std::__new_allocator",
        "std::allocator",
    ];
    const EXACT: &[&str] = &[
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
        "mallocx",
        "rallocx",
        "xallocx",
        "strdup",
        "strndup",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || EXACT.contains(&name)
}

/// A stack's functions, innermost first (inlined calls expanded).
fn funcs(s: &profile::Stack) -> impl Iterator<Item = &profile::Func> {
    s.frames.iter().flat_map(|f| f.funcs.iter())
}

fn names(s: &profile::Stack) -> impl Iterator<Item = &str> {
    funcs(s).map(|f| f.name.as_str())
}

/// Whether a function is part of allocating, or of the Rust standard
/// library (whose allocating paths are the caller's site).
fn not_site(f: &profile::Func) -> bool {
    f.std_lib || is_alloc_frame(&f.name)
}

/// The stack's site: its innermost frame outside allocating itself.
fn site(s: &profile::Stack) -> &str {
    funcs(s)
        .find(|f| !not_site(f))
        .map(|f| f.name.as_str())
        .or_else(|| names(s).next())
        .unwrap_or("(no stack)")
}

fn value(s: &profile::Stack, alloc: bool) -> f64 {
    if alloc {
        s.alloc_bytes
    } else {
        s.inuse_bytes
    }
}

/// Bytes and objects per site.
type Flat<'a> = HashMap<&'a str, (f64, f64)>;

/// Bytes per site (flat) and per function anywhere on the stack (cum).
fn per_site(p: &Profile, alloc: bool) -> (Flat<'_>, HashMap<&str, f64>) {
    let mut flat: HashMap<&str, (f64, f64)> = HashMap::new();
    let mut cum: HashMap<&str, f64> = HashMap::new();
    for s in &p.stacks {
        let v = value(s, alloc);
        let objs = if alloc {
            s.alloc_objects
        } else {
            s.inuse_objects
        };
        let e = flat.entry(site(s)).or_default();
        e.0 += v;
        e.1 += objs;
        let mut seen: Vec<&str> = Vec::new();
        for n in names(s) {
            if !seen.contains(&n) {
                seen.push(n);
                *cum.entry(n).or_default() += v;
            }
        }
    }
    (flat, cum)
}

fn pct(v: f64, total: f64) -> f64 {
    if total > 0.0 {
        100.0 * v / total
    } else {
        0.0
    }
}

/// `rjem prof top`.
pub fn top(
    out: &mut impl Write,
    file: &Path,
    p: &Profile,
    count: usize,
    alloc: bool,
) -> std::io::Result<()> {
    let (flat, cum) = per_site(p, alloc);
    let total: f64 = flat.values().map(|v| v.0).sum();
    let objs: f64 = flat.values().map(|v| v.1).sum();
    let what = if alloc { "allocated in all" } else { "in use" };
    writeln!(
        out,
        "{} ({}, one sample per {} bytes on average)",
        file.display(),
        p.format,
        p.period
    )?;
    writeln!(
        out,
        "{what}: {:.0} bytes in {:.0} objects (estimated), {} sites",
        total,
        objs,
        flat.values().filter(|v| v.0 >= 0.5).count()
    )?;
    if alloc && total == 0.0 {
        writeln!(
            out,
            "(no cumulative counts: run the program with prof_accum:true)"
        )?;
    }
    let mut rows: Vec<(&str, (f64, f64))> = flat.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then(a.0.cmp(b.0)));
    writeln!(
        out,
        "{:>14} {:>6} {:>14} {:>6} {:>10}  site",
        "bytes", "%", "cum bytes", "cum%", "objects"
    )?;
    for (name, (b, o)) in rows.into_iter().filter(|r| r.1 .0 >= 0.5).take(count) {
        let c = cum.get(name).copied().unwrap_or(b);
        writeln!(
            out,
            "{:>14.0} {:>5.1}% {:>14.0} {:>5.1}% {:>10.0}  {name}",
            b,
            pct(b, total),
            c,
            pct(c, total),
            o
        )?;
    }
    Ok(())
}

/// `rjem prof flamegraph`.
fn flamegraph(p: &Profile, output: &Path, alloc: bool) -> Result<(), String> {
    let mut folded: HashMap<String, f64> = HashMap::new();
    for s in &p.stacks {
        let v = value(s, alloc);
        if v < 0.5 {
            continue;
        }
        let all: Vec<&profile::Func> = funcs(s).collect();
        // Drop the allocator's frames at the leaf end: the leaf is the site.
        let keep = all.iter().position(|f| !not_site(f)).unwrap_or(0);
        let mut frames: Vec<&str> = all[keep..].iter().map(|f| f.name.as_str()).collect();
        frames.reverse();
        let line = frames
            .iter()
            .map(|n| n.replace(';', ":"))
            .collect::<Vec<_>>()
            .join(";");
        *folded.entry(line).or_default() += v;
    }
    if folded.is_empty() {
        return Err(format!(
            "the profile has no {} bytes to draw",
            if alloc { "allocated" } else { "in-use" }
        ));
    }
    let mut lines: Vec<String> = folded
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{} {}",
                if k.is_empty() { "(no stack)" } else { &k },
                v.round() as u64
            )
        })
        .collect();
    lines.sort();
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = if alloc {
        "Heap: bytes allocated (estimated)".into()
    } else {
        "Heap: bytes in use (estimated)".into()
    };
    opts.count_name = "bytes".into();
    opts.colors =
        inferno::flamegraph::Palette::Multi(inferno::flamegraph::color::MultiPalette::Rust);
    let f = std::fs::File::create(output)
        .map_err(|e| format!("cannot create {}: {e}", output.display()))?;
    let mut w = std::io::BufWriter::new(f);
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(|s| s.as_str()), &mut w)
        .map_err(|e| format!("cannot draw the flame graph: {e}"))?;
    w.flush()
        .map_err(|e| format!("cannot write {}: {e}", output.display()))
}

/// `rjem prof diff`.
pub fn diff(out: &mut impl Write, a: &Profile, b: &Profile, count: usize) -> std::io::Result<()> {
    let (fa, _) = per_site(a, false);
    let (fb, _) = per_site(b, false);
    let ta: f64 = fa.values().map(|v| v.0).sum();
    let tb: f64 = fb.values().map(|v| v.0).sum();
    writeln!(
        out,
        "in use: {ta:.0} -> {tb:.0} bytes ({:+.0}) (estimated)",
        tb - ta
    )?;
    let mut sites: Vec<&str> = fa.keys().chain(fb.keys()).copied().collect();
    sites.sort();
    sites.dedup();
    let get = |m: &Flat, s: &str| m.get(s).map_or(0.0, |v| v.0);
    let mut rows: Vec<(&str, f64, f64)> = sites
        .into_iter()
        .map(|s| (s, get(&fa, s), get(&fb, s)))
        .collect();
    rows.sort_by(|x, y| (y.2 - y.1).total_cmp(&(x.2 - x.1)).then(x.0.cmp(y.0)));
    writeln!(
        out,
        "{:>14} {:>14} {:>14}  site",
        "growth", "before", "after"
    )?;
    for (s, x, y) in rows.into_iter().take(count) {
        writeln!(out, "{:>+14.0} {x:>14.0} {y:>14.0}  {s}", y - x)?;
    }
    Ok(())
}
