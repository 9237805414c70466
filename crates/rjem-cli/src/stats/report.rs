//! `rjem stats report FILE... -o report.html`: one self-contained HTML page
//! (inline CSS and SVG, nothing fetched: it works offline) with the
//! charts and the diagnoses.
//!
//! Owns: the page's layout. Charts come in a fixed order with fixed sizes
//! and each chart's `<svg>` carries `data-chart`, and its section
//! `data-y`/`data-h` (page coordinates of the chart at a 1000 px wide
//! window), so a test can find the charts in a screenshot.

use super::explain::{self, bytes, Explanation, Severity};
use super::model::Snapshot;
use crate::svg::{esc, Anchor, Svg};
use std::fmt::Write as _;

const PAGE_W: f64 = 1000.0;
const CHART_W: f64 = 960.0;
const HEADER_H: f64 = 90.0;
const TITLE_H: f64 = 30.0;
const GAP: f64 = 20.0;

const C_ALLOC: &str = "#1f77b4";
const C_FRAG: &str = "#ff7f0e";
const C_DIRTY: &str = "#d62728";
const C_MUZZY: &str = "#e377c2";
const C_META: &str = "#9467bd";
const C_MAPPED: &str = "#7f7f7f";
const C_RETAINED: &str = "#c7c7c7";
const C_RESIDENT: &str = "#2ca02c";

/// One legend row at `y`.
fn legend(s: &mut Svg, x: f64, y: f64, items: &[(&str, &str)]) {
    let mut lx = x;
    for (name, color) in items {
        s.rect(lx, y - 9.0, 12.0, 10.0, color, "");
        s.text(lx + 16.0, y, name, Anchor::Start, 12.0, "#333");
        lx += 28.0 + 7.0 * name.len() as f64;
    }
}

/// A stacked horizontal bar of `parts` scaled to `total`.
fn stacked(s: &mut Svg, y: f64, h: f64, label: &str, parts: &[(&str, u64, &str)]) {
    let x0 = 150.0;
    let w = CHART_W - x0 - 20.0;
    let total: u64 = parts.iter().map(|p| p.1).sum();
    s.text(
        x0 - 8.0,
        y + h / 2.0 + 4.0,
        label,
        Anchor::End,
        12.0,
        "#333",
    );
    if total == 0 {
        s.text(
            x0,
            y + h / 2.0 + 4.0,
            "(not in the input)",
            Anchor::Start,
            12.0,
            "#999",
        );
        return;
    }
    let mut x = x0;
    for (name, v, color) in parts {
        let pw = *v as f64 / total as f64 * w;
        s.rect(x, y, pw, h, color, &format!("{name}: {}", bytes(*v)));
        if pw > 70.0 {
            s.text(
                x + pw / 2.0,
                y + h / 2.0 + 4.0,
                &bytes(*v),
                Anchor::Middle,
                11.0,
                "white",
            );
        }
        x += pw;
    }
    s.text(
        x0 + w,
        y + h + 14.0,
        &format!("total {}", bytes(total)),
        Anchor::End,
        11.0,
        "#555",
    );
}

fn breakdown(snap: &Snapshot, e: &Explanation) -> (String, f64) {
    let h = 200.0;
    let mut s = Svg::new(CHART_W, h);
    let fig = |n: &str| e.figures.iter().find(|f| f.name == n).map(|f| f.bytes);
    let t = &snap.totals;
    let alloc = t.allocated.unwrap_or(0);
    let frag = t.active.map_or(0, |a| a.saturating_sub(alloc));
    let ram = [
        ("allocated", alloc, C_ALLOC),
        ("fragmentation", frag, C_FRAG),
        ("dirty", fig("dirty").unwrap_or(0), C_DIRTY),
        ("muzzy", fig("muzzy").unwrap_or(0), C_MUZZY),
        ("metadata", t.metadata.unwrap_or(0), C_META),
    ];
    legend(&mut s, 150.0, 18.0, &ram.map(|p| (p.0, p.2)));
    stacked(&mut s, 32.0, 44.0, "memory", &ram);
    let space = [
        ("mapped", t.mapped.unwrap_or(0), C_MAPPED),
        ("retained", t.retained.unwrap_or(0), C_RETAINED),
    ];
    legend(&mut s, 150.0, 118.0, &space.map(|p| (p.0, p.2)));
    stacked(&mut s, 132.0, 44.0, "address space", &space);
    (s.finish(), h)
}

fn classes(e: &Explanation) -> (String, f64) {
    let h = 260.0;
    let mut s = Svg::new(CHART_W, h);
    let mut v: Vec<&explain::ClassUse> = e.size_classes.iter().take(36).collect();
    v.sort_by_key(|c| c.size);
    legend(
        &mut s,
        60.0,
        16.0,
        &[
            ("live", C_ALLOC),
            ("slab space not holding live data", C_FRAG),
        ],
    );
    if v.is_empty() {
        s.text(
            60.0,
            80.0,
            "no size-class statistics in the input",
            Anchor::Start,
            13.0,
            "#999",
        );
        return (s.finish(), h);
    }
    let (top, bottom) = (40.0, h - 40.0);
    let max = v.iter().map(|c| c.slab_bytes).max().unwrap_or(1).max(1) as f64;
    let slot = (CHART_W - 80.0) / v.len() as f64;
    let bw = (slot * 0.7).min(40.0);
    s.line(60.0, bottom, CHART_W - 10.0, bottom, "#444", 1.0);
    s.text(
        55.0,
        top + 4.0,
        &bytes(max as u64),
        Anchor::End,
        10.0,
        "#555",
    );
    for (i, c) in v.iter().enumerate() {
        let x = 60.0 + i as f64 * slot + (slot - bw) / 2.0;
        let full = c.slab_bytes as f64 / max * (bottom - top);
        let live = c.live_bytes.min(c.slab_bytes) as f64 / max * (bottom - top);
        let tip = format!(
            "{} B: {} live of {} ({:.0}%), {} wasted",
            c.size,
            bytes(c.live_bytes),
            bytes(c.slab_bytes),
            c.utilisation * 100.0,
            bytes(c.wasted_bytes)
        );
        s.rect(x, bottom - full, bw, full - live, C_FRAG, &tip);
        s.rect(x, bottom - live, bw, live, C_ALLOC, &tip);
        s.text(
            x + bw / 2.0,
            bottom - full - 4.0,
            &format!("{:.0}%", c.utilisation * 100.0),
            Anchor::Middle,
            9.0,
            "#333",
        );
        s.text(
            x + bw / 2.0,
            bottom + 14.0,
            &c.size.to_string(),
            Anchor::Middle,
            9.0,
            "#333",
        );
    }
    s.text(
        CHART_W / 2.0,
        h - 6.0,
        "small size class (bytes); bar: its slabs; label: utilisation",
        Anchor::Middle,
        11.0,
        "#555",
    );
    (s.finish(), h)
}

fn arenas(e: &Explanation) -> (String, f64) {
    let h = 240.0;
    let mut s = Svg::new(CHART_W, h);
    legend(
        &mut s,
        60.0,
        16.0,
        &[
            ("allocated", C_ALLOC),
            ("fragmentation", C_FRAG),
            ("dirty", C_DIRTY),
            ("thread caches (within allocated)", C_META),
        ],
    );
    let v: Vec<&explain::ArenaUse> = e.arenas.iter().take(48).collect();
    if v.is_empty() {
        s.text(
            60.0,
            80.0,
            "no per-arena statistics in the input",
            Anchor::Start,
            13.0,
            "#999",
        );
        return (s.finish(), h);
    }
    let (top, bottom) = (40.0, h - 40.0);
    let max = v
        .iter()
        .map(|a| a.active.max(a.allocated) + a.dirty)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let slot = (CHART_W - 80.0) / v.len() as f64;
    let bw = (slot * 0.7).min(50.0);
    s.line(60.0, bottom, CHART_W - 10.0, bottom, "#444", 1.0);
    s.text(
        55.0,
        top + 4.0,
        &bytes(max as u64),
        Anchor::End,
        10.0,
        "#555",
    );
    let k = (bottom - top) / max;
    for (i, a) in v.iter().enumerate() {
        let x = 60.0 + i as f64 * slot + (slot - bw) / 2.0;
        let frag = a.active.saturating_sub(a.allocated);
        let tip = format!(
            "arena {}: {} threads, {} allocated, {} fragmentation, {} dirty, {} in thread caches",
            a.arena,
            a.threads.map_or("?".into(), |t| t.to_string()),
            bytes(a.allocated),
            bytes(frag),
            bytes(a.dirty),
            bytes(a.tcache)
        );
        let mut y = bottom;
        for (v, c) in [(a.allocated, C_ALLOC), (frag, C_FRAG), (a.dirty, C_DIRTY)] {
            let hh = v as f64 * k;
            s.rect(x, y - hh, bw, hh, c, &tip);
            y -= hh;
        }
        let tc = a.tcache.min(a.allocated) as f64 * k;
        s.rect(x + bw * 0.35, bottom - tc, bw * 0.3, tc, C_META, &tip);
        s.text(
            x + bw / 2.0,
            bottom + 14.0,
            &a.arena.to_string(),
            Anchor::Middle,
            10.0,
            "#333",
        );
        if let Some(t) = a.threads {
            s.text(
                x + bw / 2.0,
                y - 4.0,
                &format!("{t}t"),
                Anchor::Middle,
                9.0,
                "#555",
            );
        }
    }
    s.text(
        CHART_W / 2.0,
        h - 6.0,
        "arena (label above: threads assigned)",
        Anchor::Middle,
        11.0,
        "#555",
    );
    (s.finish(), h)
}

/// A line of the timeline: name, colour, and the figure it draws.
type Series = (&'static str, &'static str, fn(&Snapshot) -> Option<u64>);

fn timeline(snaps: &[(String, Snapshot)]) -> (String, f64) {
    let h = 280.0;
    let mut s = Svg::new(CHART_W, h);
    let series: [Series; 5] = [
        ("allocated", C_ALLOC, |s| s.totals.allocated),
        ("active", C_FRAG, |s| s.totals.active),
        ("resident", C_RESIDENT, |s| s.totals.resident),
        ("mapped", C_MAPPED, |s| s.totals.mapped),
        ("metadata", C_META, |s| s.totals.metadata),
    ];
    legend(&mut s, 70.0, 16.0, &series.map(|x| (x.0, x.1)));
    let (left, right, top, bottom) = (70.0, CHART_W - 20.0, 36.0, h - 50.0);
    let max = snaps
        .iter()
        .flat_map(|(_, sn)| series.iter().filter_map(move |x| (x.2)(sn)))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    s.line(left, bottom, right, bottom, "#444", 1.0);
    s.line(left, top, left, bottom, "#444", 1.0);
    for q in 0..=4 {
        let y = bottom - (bottom - top) * q as f64 / 4.0;
        s.line(left, y, right, y, "#e5e5e5", 1.0);
        s.text(
            left - 5.0,
            y + 4.0,
            &bytes((max * q as f64 / 4.0) as u64),
            Anchor::End,
            10.0,
            "#555",
        );
    }
    let n = snaps.len();
    let x_of = |i: usize| {
        if n <= 1 {
            (left + right) / 2.0
        } else {
            left + (right - left) * i as f64 / (n - 1) as f64
        }
    };
    for (_, color, get) in series {
        let pts: Vec<(f64, f64)> = snaps
            .iter()
            .enumerate()
            .filter_map(|(i, (_, sn))| {
                get(sn).map(|v| (x_of(i), bottom - v as f64 / max * (bottom - top)))
            })
            .collect();
        s.polyline(&pts, color, 2.0);
    }
    let step = n.div_ceil(12).max(1);
    for (i, (label, _)) in snaps.iter().enumerate().step_by(step) {
        let short: String = label
            .chars()
            .rev()
            .take(18)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        s.text(x_of(i), bottom + 16.0, &short, Anchor::Middle, 9.0, "#333");
    }
    s.text(
        CHART_W / 2.0,
        h - 8.0,
        &if n > 1 {
            format!("{n} snapshots, in the order given")
        } else {
            "one snapshot: give several (rjem run --stats-interval) to see memory over time".into()
        },
        Anchor::Middle,
        11.0,
        "#555",
    );
    (s.finish(), h)
}

/// The page for `snaps` (in order; the last one is diagnosed).
pub fn page(snaps: &[(String, Snapshot)]) -> String {
    let Some((last_label, last)) = snaps.last() else {
        return String::new();
    };
    let e = explain::explain(last);
    let charts: [(&str, &str, (String, f64)); 4] = [
        ("breakdown", "Where the memory goes", breakdown(last, &e)),
        (
            "classes",
            "Small size classes: slab space and how much of it is live",
            classes(&e),
        ),
        ("arenas", "Arenas compared", arenas(&e)),
        ("timeline", "Memory over time", timeline(snaps)),
    ];
    let mut body = String::new();
    let mut y = HEADER_H;
    for (id, title, (svg, h)) in &charts {
        let sec_h = TITLE_H + h + GAP;
        let _ = write!(
            body,
            "<section class=\"chart\" id=\"{id}\" style=\"height:{sec_h:.0}px\" data-y=\"{:.0}\" \
             data-h=\"{h:.0}\">\n<h2>{}</h2>\n{}</section>\n",
            y + TITLE_H,
            esc(title),
            svg.replacen("<svg ", &format!("<svg data-chart=\"{id}\" "), 1)
        );
        y += sec_h;
    }
    let _ = write!(body, "<section id=\"diagnoses\">\n<h2>Diagnoses</h2>\n");
    if e.diagnoses.is_empty() {
        body.push_str("<p>Nothing out of the ordinary: no rule of docs/stats.md fired.</p>\n");
    }
    for d in &e.diagnoses {
        let (cls, sev) = match d.severity {
            Severity::Critical => ("critical", "critical"),
            Severity::Warning => ("warning", "warning"),
        };
        let _ = write!(
            body,
            "<div class=\"diag {cls}\"><h3>[{sev}] {} <small>({})</small></h3>\n<ul>",
            esc(&d.title),
            esc(d.rule)
        );
        for ev in &d.evidence {
            let _ = write!(body, "<li>{}</li>", esc(ev));
        }
        let _ = write!(
            body,
            "</ul>\n<p><b>Why.</b> {}</p>\n<p><b>What to do.</b></p><ul>",
            esc(&d.reason)
        );
        for r in &d.remedies {
            let head = if r.kind == "MALLOC_CONF" {
                format!("<code>MALLOC_CONF={}</code>", esc(&r.change))
            } else {
                format!("{}: {}", esc(r.kind), esc(&r.change))
            };
            let _ = write!(body, "<li>{head}: {}</li>", esc(&r.why));
        }
        body.push_str("</ul></div>\n");
    }
    body.push_str("<h2>Figures</h2>\n<table>");
    for f in &e.figures {
        let _ = write!(
            body,
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            esc(f.name),
            esc(&bytes(f.bytes)),
            esc(&f.meaning)
        );
    }
    body.push_str("</table>\n");
    if !e.problems.is_empty() {
        body.push_str("<h2>Could not read</h2>\n<ul>");
        for p in &e.problems {
            let _ = write!(body, "<li>line {}: {}</li>", p.line, esc(&p.reason));
        }
        body.push_str("</ul>\n");
    }
    body.push_str("</section>\n");
    let who = match e.allocator {
        super::model::Allocator::Jemalloc => "jemalloc",
        super::model::Allocator::Rjem => "rjem",
        super::model::Allocator::Unknown => "allocator",
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>rjem stats report</title>\n<style>\n\
         body{{margin:0;font-family:sans-serif;color:#222;background:white;width:{PAGE_W:.0}px}}\n\
         header{{height:{HEADER_H:.0}px;box-sizing:border-box;padding:14px 20px;overflow:hidden}}\n\
         header h1{{margin:0;font-size:22px}} header p{{margin:6px 0 0;color:#555}}\n\
         section{{padding:0 20px;box-sizing:border-box}}\n\
         section.chart{{overflow:hidden}} section.chart svg{{display:block}}\n\
         h2{{margin:0;height:{TITLE_H:.0}px;line-height:{TITLE_H:.0}px;font-size:17px}}\n\
         .diag{{border-left:5px solid #ff7f0e;padding:4px 12px;margin:10px 0}}\n\
         .diag.critical{{border-color:#d62728}} table{{border-collapse:collapse}}\n\
         td,th{{text-align:left;padding:3px 8px;vertical-align:top}}\n\
         </style></head>\n<body data-height=\"{y:.0}\">\n<header><h1>rjem stats report: {who}</h1>\
         <p>{} snapshot(s); the last ({}) is diagnosed. Generated by rjem {}.</p></header>\n\
         {body}</body></html>\n",
        snaps.len(),
        esc(last_label),
        env!("CARGO_PKG_VERSION")
    )
}
