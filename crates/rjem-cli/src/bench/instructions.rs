//! `rjem bench --instructions`: instructions per operation on each
//! allocator's hot paths, counted by callgrind (deterministic, so stable
//! from run to run unlike times).
//!
//! `bench/fastpath/fastpath.c` runs a loop of N operations; each mode is
//! run under `valgrind --tool=callgrind` with N = 0 and with N, and the
//! report is (Ir(N) - Ir(0)) / N: the loop's own few instructions
//! included, start-up and exit excluded.

use super::report::{to_json, versions_json, versions_markdown, versions_text};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// The modes of `fastpath` and what one operation is.
pub const MODES: &[(&str, &str)] = &[
    ("pair", "malloc(32) + write + free, same thread"),
    ("batch", "malloc(32) x 1000, then free x 1000, same thread"),
    (
        "batches",
        "as batch, in batches of 1000 to 1099 (the cache's phase varies)",
    ),
    (
        "remote",
        "malloc(32) x 1000 on one thread, free x 1000 on another",
    ),
];

/// Instructions counted by callgrind for one run.
fn collected(program: &Path, mode: &str, n: u64, preload: Option<&Path>) -> Result<u64, String> {
    let mut c = Command::new("valgrind");
    c.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(program)
        .args([mode, &n.to_string()])
        .env_remove("LD_PRELOAD")
        .env_remove("MALLOC_CONF")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(lib) = preload {
        c.env("LD_PRELOAD", lib);
    }
    let out = c
        .output()
        .map_err(|e| format!("cannot run valgrind: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // The program's own messages (valgrind prefixes its lines with
        // "==PID==") say why; valgrind's tail otherwise.
        let own: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("==") && !l.trim().is_empty())
            .collect();
        let lines = if own.is_empty() {
            err.lines().collect()
        } else {
            own
        };
        let tail: Vec<&str> = lines.into_iter().rev().take(5).collect();
        return Err(format!(
            "{} {mode} {n} failed under callgrind: {}",
            program.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    err.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("Collected :")?;
            rest.trim().parse::<u64>().ok()
        })
        .ok_or_else(|| "no 'Collected :' line in callgrind's output".to_string())
}

/// Instructions per operation of `mode` on one allocator.
pub fn per_op(program: &Path, mode: &str, n: u64, preload: Option<&Path>) -> Result<f64, String> {
    let base = collected(program, mode, 0, preload)?;
    let full = collected(program, mode, n, preload)?;
    Ok((full as f64 - base as f64) / n as f64)
}

/// The modes of the Rust fast-path program
/// (`bench/rust-default-profile`).
pub const RUST_MODES: &[(&str, &str)] = &[
    (
        "pair",
        "alloc + write + dealloc of an opaque 32-byte Layout",
    ),
    ("box", "Box::new of a 32-byte value, dropped"),
];

/// `cells[a][m]`: allocator (or build) `a`, mode `modes[m]`.
pub struct Counts {
    pub allocators: Vec<&'static str>,
    pub modes: &'static [(&'static str, &'static str)],
    pub cells: Vec<Vec<Result<f64, String>>>,
    pub n: u64,
    /// (allocator, version and origin), shown above the table when not
    /// empty.
    pub versions: Vec<(String, String)>,
}

impl Counts {
    pub fn terminal(&self) -> String {
        let w = self
            .allocators
            .iter()
            .map(|a| a.len())
            .max()
            .unwrap_or(0)
            .max(10);
        let mut s = String::new();
        if !self.versions.is_empty() {
            let _ = write!(s, "\n{}", versions_text(&self.versions));
        }
        let _ = write!(
            s,
            "\ninstructions per operation (callgrind, N = {}):\n{:<w$}",
            self.n, "allocator"
        );
        for (m, _) in self.modes {
            let _ = write!(s, "  {m:>8}");
        }
        s.push('\n');
        for (a, name) in self.allocators.iter().enumerate() {
            let _ = write!(s, "{name:<w$}");
            for c in &self.cells[a] {
                match c {
                    Ok(v) => {
                        let _ = write!(s, "  {v:>8.1}");
                    }
                    Err(_) => {
                        let _ = write!(s, "  {:>8}", "FAILED");
                    }
                }
            }
            s.push('\n');
        }
        for (a, name) in self.allocators.iter().enumerate() {
            for (m, c) in self.cells[a].iter().enumerate() {
                if let Err(e) = c {
                    let _ = writeln!(s, "FAILED: {name} {}: {e}", self.modes[m].0);
                }
            }
        }
        s
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        if !self.versions.is_empty() {
            let _ = writeln!(s, "{}", versions_markdown(&self.versions));
        }
        let _ = write!(
            s,
            "| allocator | {} |\n|---|{}\n",
            self.modes
                .iter()
                .map(|(m, what)| format!("{m}: {what}"))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(self.modes.len())
        );
        for (a, name) in self.allocators.iter().enumerate() {
            let cells: Vec<String> = self.cells[a]
                .iter()
                .map(|c| match c {
                    Ok(v) => format!("{v:.1}"),
                    Err(_) => "FAILED".into(),
                })
                .collect();
            let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
        }
        s
    }

    pub fn json(&self) -> String {
        document(self.n, &self.versions, &self.rows())
    }

    /// One row of JSON per (allocator, mode).
    fn rows(&self) -> Vec<Value> {
        let mut rows = Vec::new();
        for (a, name) in self.allocators.iter().enumerate() {
            for (m, c) in self.cells[a].iter().enumerate() {
                let v = match c {
                    Ok(v) => Value::from((v * 100.0).round() / 100.0),
                    Err(_) => Value::Null,
                };
                rows.push(json!({
                    "allocator": name,
                    "mode": self.modes[m].0,
                    "instructions_per_op": v,
                }));
            }
        }
        rows
    }

    pub fn ok(&self) -> bool {
        self.cells.iter().flatten().all(Result::is_ok)
    }
}

/// The rows of both tables (C, then Rust builds) in one JSON document.
pub fn merge_json(c: &Counts, rust: &Counts) -> String {
    let mut rows = c.rows();
    rows.extend(rust.rows());
    document(c.n, &c.versions, &rows)
}

fn document(n: u64, versions: &[(String, String)], rows: &[Value]) -> String {
    to_json(&json!({
        "n": n,
        "versions": versions_json(versions),
        "instructions": rows,
    }))
}
