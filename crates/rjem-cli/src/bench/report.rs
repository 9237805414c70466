//! The results of a suite and their reports: medians, ratios to the
//! baseline allocator (jemalloc) and their geometric means; a table for the
//! terminal, a Markdown report, an SVG chart and a JSON file (serde_json).

use super::run::Sample;
use super::workloads::{Kind, Workload};
use crate::svg::{Anchor, Svg};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// One workload on one allocator.
#[derive(Default)]
pub struct Cell {
    pub samples: Vec<Sample>,
    /// The program's last line of output (from the first successful run).
    pub output: String,
    /// Why a run failed; the pair is then left out of every ratio.
    pub error: Option<String>,
    /// Why the pair was not run at all.
    pub skipped: Option<String>,
}

/// Medians over the runs of one cell.
#[derive(Clone, Copy, Debug)]
pub struct Median {
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_kib: f64,
}

/// Which measurement a ratio is about.
#[derive(Clone, Copy)]
pub enum Metric {
    Wall,
    Cpu,
    Rss,
}

impl Median {
    fn get(&self, m: Metric) -> f64 {
        match m {
            Metric::Wall => self.wall_s,
            Metric::Cpu => self.cpu_s,
            Metric::Rss => self.peak_rss_kib,
        }
    }
}

/// Geometric means of one allocator's ratios to the baseline.
#[derive(Clone, Copy, Debug)]
pub struct Geomean {
    pub time: f64,
    pub cpu: f64,
    pub rss: f64,
    pub workloads: usize,
}

/// Where and when the suite ran.
#[derive(Default)]
pub struct Meta {
    pub date: String,
    pub suite: &'static str,
    pub runs: usize,
    /// (label, value) pairs describing the machine and software.
    pub machine: Vec<(String, String)>,
    /// (allocator, what it is: version and origin), in report order.
    pub versions: Vec<(String, String)>,
}

/// The allocators' versions as indented lines for the terminal.
pub fn versions_text(versions: &[(String, String)]) -> String {
    let w = versions.iter().map(|v| v.0.len()).max().unwrap_or(0);
    let mut s = String::from("allocators:\n");
    for (a, v) in versions {
        let _ = writeln!(s, "  {a:<w$}  {v}");
    }
    s
}

/// The allocators' versions as a Markdown list.
pub fn versions_markdown(versions: &[(String, String)]) -> String {
    let mut s = String::from("Allocators:\n\n");
    for (a, v) in versions {
        let _ = writeln!(s, "- {a}: {v}");
    }
    s
}

/// The allocators' versions as a JSON object, in report order.
pub fn versions_json(versions: &[(String, String)]) -> Value {
    Value::Object(
        versions
            .iter()
            .map(|(a, v)| (a.clone(), Value::from(v.as_str())))
            .collect(),
    )
}

pub struct Results {
    pub workloads: Vec<&'static Workload>,
    pub allocators: Vec<&'static str>,
    /// `cells[w][a]` for workload `w` and allocator `a`.
    pub cells: Vec<Vec<Cell>>,
    pub baseline: &'static str,
    pub meta: Meta,
    pub notes: Vec<String>,
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Results {
    pub fn median(&self, w: usize, a: usize) -> Option<Median> {
        let c = &self.cells[w][a];
        if c.error.is_some() || c.skipped.is_some() || c.samples.is_empty() {
            return None;
        }
        Some(Median {
            wall_s: median(c.samples.iter().map(|s| s.wall_s).collect()),
            cpu_s: median(c.samples.iter().map(|s| s.cpu_s).collect()),
            peak_rss_kib: median(c.samples.iter().map(|s| s.peak_rss_kib as f64).collect()),
        })
    }

    fn baseline_index(&self) -> Option<usize> {
        self.allocators.iter().position(|&a| a == self.baseline)
    }

    /// Allocator `a`'s `m` on workload `w` divided by the baseline's.
    pub fn ratio(&self, w: usize, a: usize, m: Metric) -> Option<f64> {
        let b = self.median(w, self.baseline_index()?)?.get(m);
        let x = self.median(w, a)?.get(m);
        (b > 0.0 && x > 0.0).then(|| x / b)
    }

    /// Geometric means of allocator `a`'s ratios over the workloads of
    /// `kind` (all when None) where both it and the baseline succeeded.
    pub fn geomean(&self, a: usize, kind: Option<Kind>) -> Option<Geomean> {
        let mut sums = [0.0f64; 3];
        let mut n = 0;
        for (w, wl) in self.workloads.iter().enumerate() {
            if kind.is_some_and(|k| k != wl.kind) {
                continue;
            }
            let (Some(t), Some(c), Some(r)) = (
                self.ratio(w, a, Metric::Wall),
                self.ratio(w, a, Metric::Cpu),
                self.ratio(w, a, Metric::Rss),
            ) else {
                continue;
            };
            sums[0] += t.ln();
            sums[1] += c.ln();
            sums[2] += r.ln();
            n += 1;
        }
        (n > 0).then(|| Geomean {
            time: (sums[0] / n as f64).exp(),
            cpu: (sums[1] / n as f64).exp(),
            rss: (sums[2] / n as f64).exp(),
            workloads: n,
        })
    }

    pub fn failures(&self) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for w in 0..self.workloads.len() {
            for a in 0..self.allocators.len() {
                if self.cells[w][a].error.is_some() {
                    v.push((w, a));
                }
            }
        }
        v
    }

    /// `failures` of rjem's own builds (`rjem`, `rjem-secure`).
    pub fn rjem_failures(&self) -> Vec<(usize, usize)> {
        self.failures()
            .into_iter()
            .filter(|&(_, a)| self.allocators[a].starts_with("rjem"))
            .collect()
    }

    fn kinds(&self) -> Vec<Kind> {
        [Kind::C, Kind::Rust]
            .into_iter()
            .filter(|k| self.workloads.iter().any(|w| w.kind == *k))
            .collect()
    }

    /// The text of one table cell for `m` ("0.812 (0.93)", "FAILED", "-").
    fn cell_text(&self, w: usize, a: usize, m: Metric) -> String {
        let c = &self.cells[w][a];
        if c.error.is_some() {
            return "FAILED".into();
        }
        let Some(med) = self.median(w, a) else {
            return "-".into();
        };
        let v = match m {
            Metric::Wall => format!("{:.3}", med.wall_s),
            Metric::Cpu => format!("{:.3}", med.cpu_s),
            Metric::Rss => format!("{:.1}", med.peak_rss_kib / 1024.0),
        };
        match self.ratio(w, a, m) {
            Some(r) => format!("{v} ({r:.2})"),
            None => v,
        }
    }

    fn geomean_text(&self, a: usize, kind: Option<Kind>, m: Metric) -> String {
        match self.geomean(a, kind) {
            Some(g) => format!(
                "{:.2}",
                match m {
                    Metric::Wall => g.time,
                    Metric::Cpu => g.cpu,
                    Metric::Rss => g.rss,
                }
            ),
            None => "-".into(),
        }
    }

    fn geomean_label(kind: Option<Kind>) -> &'static str {
        match kind {
            None => "geomean (all)",
            Some(Kind::C) => "geomean (C)",
            Some(Kind::Rust) => "geomean (Rust)",
        }
    }

    /// Rows of (first column, cells) for one metric, with geomean rows.
    fn rows(&self, m: Metric) -> Vec<(String, Vec<String>)> {
        let mut rows = Vec::new();
        for (w, wl) in self.workloads.iter().enumerate() {
            let cells = (0..self.allocators.len())
                .map(|a| self.cell_text(w, a, m))
                .collect();
            rows.push((wl.name.to_string(), cells));
        }
        let mut kinds: Vec<Option<Kind>> = vec![None];
        if self.kinds().len() > 1 {
            kinds.extend(self.kinds().into_iter().map(Some));
        }
        for k in kinds {
            let cells = (0..self.allocators.len())
                .map(|a| self.geomean_text(a, k, m))
                .collect();
            rows.push((Self::geomean_label(k).to_string(), cells));
        }
        rows
    }

    const TABLES: [(Metric, &'static str); 3] = [
        (Metric::Wall, "median wall time, s"),
        (Metric::Cpu, "median CPU time (user + sys), s"),
        (Metric::Rss, "median peak RSS, MiB"),
    ];

    /// Plain-text tables for the terminal.
    pub fn terminal(&self) -> String {
        let mut s = format!("\n{}", versions_text(&self.meta.versions));
        for (m, title) in Self::TABLES {
            let _ = writeln!(s, "\n{title} (ratio to {}):", self.baseline);
            let rows = self.rows(m);
            let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(8).max(8);
            let widths: Vec<usize> = (0..self.allocators.len())
                .map(|a| {
                    rows.iter()
                        .map(|r| r.1[a].len())
                        .chain([self.allocators[a].len()])
                        .max()
                        .unwrap_or(8)
                })
                .collect();
            let _ = write!(s, "{:<w0$}", "workload");
            for (a, name) in self.allocators.iter().enumerate() {
                let _ = write!(s, "  {:>w$}", name, w = widths[a]);
            }
            s.push('\n');
            for (name, cells) in rows {
                let _ = write!(s, "{name:<w0$}");
                for (a, c) in cells.iter().enumerate() {
                    let _ = write!(s, "  {:>w$}", c, w = widths[a]);
                }
                s.push('\n');
            }
        }
        for (w, a) in self.failures() {
            let _ = writeln!(
                s,
                "FAILED: {} on {}: {}",
                self.workloads[w].name,
                self.allocators[a],
                self.cells[w][a].error.as_deref().unwrap_or("")
            );
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }

    /// A Markdown report: setup, the three tables, failures, notes and
    /// what each workload stresses.
    pub fn markdown(&self, chart: Option<&str>) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# rjem bench: {} suite, {}\n",
            self.meta.suite, self.meta.date
        );
        let _ = writeln!(
            s,
            "Median of {} interleaved runs per workload and allocator; ratios \
             (in parentheses) are to {}, lower is better.\n",
            self.meta.runs, self.baseline
        );
        for (k, v) in &self.meta.machine {
            let _ = writeln!(s, "- {k}: {v}");
        }
        s.push('\n');
        let _ = writeln!(s, "{}", versions_markdown(&self.meta.versions));
        if let Some(path) = chart {
            let _ = writeln!(
                s,
                "![time and memory ratios to {}]({path})\n",
                self.baseline
            );
        }
        let header = |s: &mut String| {
            let _ = writeln!(s, "| workload | {} |", self.allocators.join(" | "));
            let _ = writeln!(s, "|---|{}", "---|".repeat(self.allocators.len()));
        };
        for (m, title) in Self::TABLES {
            let _ = writeln!(s, "## {} (ratio to {})\n", capitalise(title), self.baseline);
            header(&mut s);
            for (name, cells) in self.rows(m) {
                let name = if name.starts_with("geomean") {
                    format!("**{name}**")
                } else {
                    name
                };
                let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
            }
            s.push('\n');
        }
        let failures = self.failures();
        if !failures.is_empty() {
            let _ = writeln!(s, "## Failures\n");
            for (w, a) in failures {
                let _ = writeln!(
                    s,
                    "- {} on {}: `{}`",
                    self.workloads[w].name,
                    self.allocators[a],
                    self.cells[w][a]
                        .error
                        .as_deref()
                        .unwrap_or("")
                        .replace('`', "'")
                );
            }
            s.push('\n');
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "## Notes\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
            s.push('\n');
        }
        let _ = writeln!(s, "## Workloads\n");
        let _ = writeln!(s, "| workload | kind | what it does and stresses |");
        let _ = writeln!(s, "|---|---|---|");
        for w in &self.workloads {
            let _ = writeln!(s, "| {} | {} | {} |", w.name, w.kind.as_str(), w.stresses);
        }
        s
    }

    /// JSON with every median and ratio.
    pub fn json(&self) -> String {
        let b = self.baseline;
        let mut results = Vec::new();
        for (w, wl) in self.workloads.iter().enumerate() {
            for (a, alloc) in self.allocators.iter().enumerate() {
                let c = &self.cells[w][a];
                if c.skipped.is_some() {
                    continue;
                }
                let med = self.median(w, a);
                let ratio = |m| num(self.ratio(w, a, m));
                let mut e = Map::new();
                e.insert("workload".into(), wl.name.into());
                e.insert("kind".into(), wl.kind.as_str().into());
                e.insert("allocator".into(), (*alloc).into());
                e.insert("ok".into(), c.error.is_none().into());
                e.insert("runs".into(), c.samples.len().into());
                e.insert("wall_s".into(), num(med.map(|m| m.wall_s)));
                e.insert("cpu_s".into(), num(med.map(|m| m.cpu_s)));
                e.insert("peak_rss_kib".into(), num(med.map(|m| m.peak_rss_kib)));
                e.insert(format!("time_ratio_to_{b}"), ratio(Metric::Wall));
                e.insert(format!("cpu_ratio_to_{b}"), ratio(Metric::Cpu));
                e.insert(format!("rss_ratio_to_{b}"), ratio(Metric::Rss));
                e.insert("output".into(), c.output.as_str().into());
                if let Some(err) = &c.error {
                    e.insert("error".into(), err.as_str().into());
                }
                results.push(Value::Object(e));
            }
        }
        let geo = |kind: Option<Kind>| {
            let mut m = Map::new();
            for (a, alloc) in self.allocators.iter().enumerate() {
                if let Some(g) = self.geomean(a, kind) {
                    let mut e = Map::new();
                    e.insert(format!("time_ratio_to_{b}"), num(Some(g.time)));
                    e.insert(format!("cpu_ratio_to_{b}"), num(Some(g.cpu)));
                    e.insert(format!("rss_ratio_to_{b}"), num(Some(g.rss)));
                    e.insert("workloads".into(), g.workloads.into());
                    m.insert(alloc.to_string(), Value::Object(e));
                }
            }
            Value::Object(m)
        };
        let machine: Map<String, Value> = self
            .meta
            .machine
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let doc = json!({
            "suite": self.meta.suite,
            "date": self.meta.date,
            "runs": self.meta.runs,
            "baseline": b,
            "machine": machine,
            "allocators": self.allocators,
            "versions": versions_json(&self.meta.versions),
            "notes": self.notes,
            "results": results,
            "geomean": geo(None),
            "geomean_c": geo(Some(Kind::C)),
            "geomean_rust": geo(Some(Kind::Rust)),
        });
        to_json(&doc)
    }

    /// An SVG chart: per workload, each allocator's time ratio (left panel)
    /// and peak-RSS ratio (right panel) to the baseline, on a log scale
    /// centred on 1, bars growing from 1 (left of it is better).
    pub fn svg(&self) -> String {
        let na = self.allocators.len();
        let bar = 7.0;
        let row_h = bar * na as f64 + 8.0;
        let label_w = 120.0;
        let panel_w = 330.0;
        let gap = 40.0;
        let top = 78.0;
        let nrows = self.workloads.len() + 1;
        let height = top + row_h * nrows as f64 + 40.0;
        let width = label_w + 2.0 * panel_w + gap + 20.0;
        // The axis: powers of two spanning every ratio, at least 1/2..2,
        // at most 1/16..16.
        let mut lo: f64 = 0.5;
        let mut hi: f64 = 2.0;
        for w in 0..self.workloads.len() {
            for a in 0..na {
                for m in [Metric::Wall, Metric::Rss] {
                    if let Some(r) = self.ratio(w, a, m) {
                        lo = lo.min(r);
                        hi = hi.max(r);
                    }
                }
            }
        }
        let lo_e = lo.log2().floor().max(-4.0);
        let hi_e = hi.log2().ceil().min(4.0);
        let x_of = |panel: usize, r: f64| {
            let e = r.log2().clamp(lo_e, hi_e);
            label_w + panel as f64 * (panel_w + gap) + (e - lo_e) / (hi_e - lo_e) * panel_w
        };
        let mut s = Svg::new(width, height);
        let (fs, ink) = (11.0, "#000");
        s.bold_text(
            10.0,
            18.0,
            &format!(
                "rjem bench ({} suite, {}): ratio to {}, log scale, lower is better",
                self.meta.suite, self.meta.date, self.baseline
            ),
            Anchor::Start,
            14.0,
            ink,
        );
        // Legend.
        let mut lx = 10.0;
        for (a, name) in self.allocators.iter().enumerate() {
            s.rect(lx, 28.0, 12.0, 10.0, color(name, a), "");
            s.text(lx + 16.0, 37.0, name, Anchor::Start, fs, ink);
            lx += 30.0 + 7.0 * name.len() as f64;
        }
        let axis_bottom = top + row_h * nrows as f64;
        for (panel, title) in ["wall time", "peak RSS"].iter().enumerate() {
            let x0 = x_of(panel, 2f64.powf(lo_e));
            let title = format!("{title} / {}", self.baseline);
            s.bold_text(x0, 58.0, &title, Anchor::Start, fs, ink);
            let mut e = lo_e;
            while e <= hi_e {
                let x = x_of(panel, 2f64.powf(e));
                let stroke = if e == 0.0 { "#444" } else { "#ddd" };
                s.line(x, top - 6.0, x, axis_bottom, stroke, 1.0);
                s.text(
                    x,
                    axis_bottom + 14.0,
                    &axis_label(e),
                    Anchor::Middle,
                    fs,
                    "#555",
                );
                e += 1.0;
            }
        }
        for row in 0..nrows {
            let y0 = top + row as f64 * row_h;
            let geo_row = row == self.workloads.len();
            let name = if geo_row {
                "geomean"
            } else {
                self.workloads[row].name
            };
            if row % 2 == 1 {
                s.rect(0.0, y0, width, row_h, "#f2f2f2", "");
            }
            let (lx, ly) = (label_w - 8.0, y0 + row_h / 2.0 + 4.0);
            if geo_row {
                s.bold_text(lx, ly, name, Anchor::End, fs, ink);
            } else {
                s.text(lx, ly, name, Anchor::End, fs, ink);
            }
            for a in 0..na {
                let y = y0 + 4.0 + a as f64 * bar;
                for (panel, m) in [Metric::Wall, Metric::Rss].into_iter().enumerate() {
                    let r = if geo_row {
                        self.geomean(a, None).map(|g| match m {
                            Metric::Rss => g.rss,
                            _ => g.time,
                        })
                    } else {
                        self.ratio(row, a, m)
                    };
                    let Some(r) = r else { continue };
                    let (x1, x2) = (x_of(panel, 1.0), x_of(panel, r));
                    let what = if panel == 0 { "time" } else { "RSS" };
                    s.rect(
                        x1.min(x2) - 1.0,
                        y,
                        (x2 - x1).abs().max(2.0),
                        bar - 1.0,
                        color(self.allocators[a], a),
                        &format!("{name} {} {what}: {r:.2}", self.allocators[a]),
                    );
                    if geo_row {
                        let v = format!("{r:.2}");
                        s.text(x1.max(x2) + 3.0, y + bar - 1.5, &v, Anchor::Start, 8.0, ink);
                    }
                }
            }
        }
        s.finish()
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn axis_label(e: f64) -> String {
    if e >= 0.0 {
        format!("{}", 2f64.powf(e))
    } else {
        format!("1/{}", 2f64.powf(-e))
    }
}

fn color(name: &str, index: usize) -> &'static str {
    match name {
        "rjem" => "#d62728",
        "jemalloc" => "#1f77b4",
        "glibc" => "#7f7f7f",
        "mimalloc" => "#98df8a",
        "mimalloc3" => "#2ca02c",
        "mimalloc2" => "#17becf",
        "snmalloc" => "#ff7f0e",
        "tcmalloc" => "#9467bd",
        _ => ["#8c564b", "#e377c2", "#bcbd22"][index % 3],
    }
}

/// A JSON number, rounded to six decimals (null when absent or not finite).
fn num(v: Option<f64>) -> Value {
    match v {
        Some(x) if x.is_finite() => Value::from((x * 1e6).round() / 1e6),
        _ => Value::Null,
    }
}

/// A JSON document, pretty-printed, with a final newline.
pub fn to_json(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}
