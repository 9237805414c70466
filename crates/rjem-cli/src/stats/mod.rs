//! `rjem stats`: read, explain, compare and draw allocator statistics
//! (`malloc_stats_print` output of rjem and jemalloc 5.x, a summary line,
//! Redis `MEMORY MALLOC-STATS`).
//!
//! Owns: the `rjem stats` command line and loading inputs. Exit status 0
//! when the statistics were read (whatever they show), 2 when an input
//! cannot be read at all (missing, binary, cut short, no statistics) or on
//! bad usage.

pub mod diff;
pub mod explain;
pub mod live;
pub mod model;
pub mod parse;
pub mod report;

use model::Snapshot;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Read, explain, compare and draw allocator statistics (rjem's and
/// jemalloc's).
///
/// Inputs are files, or - for standard input: malloc_stats_print output
/// (text or JSON, as MALLOC_CONF=stats_print:true prints at exit, or
/// stats_print_opts:J), Redis MEMORY MALLOC-STATS, or a summary line such
/// as "allocated 4.2 GB, active 5.3 GB, metadata 12.7 GB, resident 19.6
/// GB, mapped 21.6 GB, retained 534 GB". Exit status 2 when an input cannot
/// be read.
#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Explain the statistics in plain words, then diagnose what is wrong,
    /// why, and what to change (see docs/stats.md for every rule).
    Explain {
        /// The statistics (- for standard input); with several reports in
        /// it, the last one is explained.
        file: PathBuf,
        /// Write the explanation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what changed between two snapshots (totals, metadata parts,
    /// size classes, arenas), largest growth first.
    Diff {
        /// The earlier snapshot (its last report).
        before: PathBuf,
        /// The later snapshot (its last report).
        after: PathBuf,
        /// Write the changes as JSON.
        #[arg(long)]
        json: bool,
        /// Show at most this many changes (the largest growths and
        /// shrinkages).
        #[arg(long, default_value_t = 40)]
        limit: usize,
    },
    /// Write one self-contained HTML page (works offline) with charts:
    /// where the memory goes, size-class utilisation, arenas, memory over
    /// time (from several snapshots), and the diagnoses of the last one.
    Report {
        /// Snapshots in time order (- for standard input); every report in
        /// each file counts.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The HTML file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
}

/// An input that could not be read, with its name.
pub fn input_error(name: &str, e: &impl std::fmt::Display) -> ExitCode {
    eprintln!("rjem stats: {name}: {e}");
    ExitCode::from(2)
}

/// The name to show for an input path.
pub fn display(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

/// Every report in the file (or standard input for "-").
pub fn load(path: &Path) -> Result<Vec<Snapshot>, String> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
    } else {
        bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    }
    parse::parse(&bytes).map_err(|e| e.to_string())
}

/// The last report of one input.
fn load_last(path: &Path) -> Result<(Snapshot, usize), String> {
    let mut v = load(path)?;
    let n = v.len();
    v.pop()
        .map(|s| (s, n))
        .ok_or_else(|| "no statistics".into())
}

pub fn main(cmd: Cmd) -> ExitCode {
    match cmd {
        Cmd::Explain { file, json } => {
            let name = display(&file);
            let (snap, n) = match load_last(&file) {
                Ok(x) => x,
                Err(e) => return input_error(&name, &e),
            };
            let e = explain::explain(&snap);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&e).unwrap_or_else(|_| "null".into())
                );
            } else {
                let label = if n > 1 {
                    format!(
                        "{name} (the last of {n} reports, from line {})",
                        snap.first_line
                    )
                } else {
                    name
                };
                print!("{}", explain::render(&e, &label));
            }
            ExitCode::SUCCESS
        }
        Cmd::Diff {
            before,
            after,
            json,
            limit,
        } => {
            let (na, nb) = (display(&before), display(&after));
            if before == Path::new("-") && after == Path::new("-") {
                return input_error("<stdin>", &"only one input can be standard input");
            }
            let a = match load_last(&before) {
                Ok(x) => x.0,
                Err(e) => return input_error(&na, &e),
            };
            let b = match load_last(&after) {
                Ok(x) => x.0,
                Err(e) => return input_error(&nb, &e),
            };
            let changes = diff::diff(&a, &b);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&changes).unwrap_or_else(|_| "null".into())
                );
            } else {
                print!("{}", diff::render(&changes, &na, &nb, limit.max(2)));
            }
            ExitCode::SUCCESS
        }
        Cmd::Report { files, output } => {
            let mut snaps = Vec::new();
            for f in &files {
                let name = display(f);
                let v = match load(f) {
                    Ok(v) => v,
                    Err(e) => return input_error(&name, &e),
                };
                let n = v.len();
                for (i, s) in v.into_iter().enumerate() {
                    let label = if n > 1 {
                        format!("{name}#{}", i + 1)
                    } else {
                        name.clone()
                    };
                    snaps.push((label, s));
                }
            }
            if let Err(e) = std::fs::write(&output, report::page(&snaps)) {
                eprintln!("rjem stats: cannot write {}: {e}", output.display());
                return ExitCode::from(2);
            }
            println!("wrote {} ({} snapshot(s))", output.display(), snaps.len());
            ExitCode::SUCCESS
        }
    }
}
