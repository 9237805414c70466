//! `rjem stats diff A B`: what changed between two snapshots, largest
//! growth first.
//!
//! Owns: pairing the figures of two snapshots (totals, metadata parts,
//! small and large size classes of the merged arenas, per-arena totals)
//! and ordering the changes. Figures present in only one snapshot count as
//! zero in the other; figures unknown in both are left out.

use super::explain::bytes;
use super::model::{Arena, ArenaId, Snapshot};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One figure's change, in bytes.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// "totals", "metadata", "size class", "large class" or "arena".
    pub group: &'static str,
    pub what: String,
    pub before: u64,
    pub after: u64,
    pub delta: i128,
}

fn add(v: &mut Vec<Change>, group: &'static str, what: String, a: Option<u64>, b: Option<u64>) {
    if a.is_none() && b.is_none() {
        return;
    }
    let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
    v.push(Change {
        group,
        what,
        before: a,
        after: b,
        delta: b as i128 - a as i128,
    });
}

/// Small classes by size: (live bytes, slab bytes).
fn classes(s: &Snapshot) -> BTreeMap<u64, (Option<u64>, Option<u64>)> {
    let page = s.page();
    s.merged()
        .map(|m| {
            m.bins
                .iter()
                .map(|b| (b.size, (b.live_bytes(), b.slab_bytes(page))))
                .collect()
        })
        .unwrap_or_default()
}

fn large(s: &Snapshot) -> BTreeMap<u64, Option<u64>> {
    s.merged()
        .map(|m| {
            m.large_classes
                .iter()
                .map(|l| (l.size, l.allocated))
                .collect()
        })
        .unwrap_or_default()
}

fn arenas(s: &Snapshot) -> BTreeMap<u64, &Arena> {
    s.arenas
        .iter()
        .filter_map(|a| match a.id {
            ArenaId::Index(i) => Some((i, a)),
            _ => None,
        })
        .collect()
}

/// Every change from `a` to `b`, largest growth first, unchanged left out.
pub fn diff(a: &Snapshot, b: &Snapshot) -> Vec<Change> {
    let mut v = Vec::new();
    let (ta, tb) = (&a.totals, &b.totals);
    for (name, x, y) in [
        ("allocated", ta.allocated, tb.allocated),
        ("active", ta.active, tb.active),
        ("metadata", ta.metadata, tb.metadata),
        ("resident", ta.resident, tb.resident),
        ("mapped", ta.mapped, tb.mapped),
        ("retained", ta.retained, tb.retained),
        ("base", ta.base, tb.base),
    ] {
        add(&mut v, "totals", name.into(), x, y);
    }
    let (pa, pb) = (a.page(), b.page());
    let pages = |s: &Snapshot, p: u64, f: fn(&Arena) -> Option<u64>| {
        s.merged().and_then(f).map(|n| n.saturating_mul(p))
    };
    add(
        &mut v,
        "totals",
        "dirty".into(),
        pages(a, pa, |m| m.pdirty),
        pages(b, pb, |m| m.pdirty),
    );
    add(
        &mut v,
        "totals",
        "muzzy".into(),
        pages(a, pa, |m| m.pmuzzy),
        pages(b, pb, |m| m.pmuzzy),
    );
    add(
        &mut v,
        "totals",
        "thread caches".into(),
        a.merged().and_then(|m| m.tcache_bytes),
        b.merged().and_then(|m| m.tcache_bytes),
    );
    for (name, x, y) in [
        (
            "base (arenas)",
            a.merged().and_then(|m| m.base),
            b.merged().and_then(|m| m.base),
        ),
        (
            "internal",
            a.merged().and_then(|m| m.internal),
            b.merged().and_then(|m| m.internal),
        ),
    ] {
        add(&mut v, "metadata", name.into(), x, y);
    }
    let parts =
        |s: &Snapshot| -> BTreeMap<String, u64> { s.metadata_parts.iter().cloned().collect() };
    let (ma, mb) = (parts(a), parts(b));
    for k in ma
        .keys()
        .chain(mb.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        add(
            &mut v,
            "metadata",
            k.clone(),
            ma.get(k).copied(),
            mb.get(k).copied(),
        );
    }
    let (ca, cb) = (classes(a), classes(b));
    for size in ca
        .keys()
        .chain(cb.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (x, y) = (ca.get(size), cb.get(size));
        add(
            &mut v,
            "size class",
            format!("{size} B live"),
            x.and_then(|c| c.0),
            y.and_then(|c| c.0),
        );
        add(
            &mut v,
            "size class",
            format!("{size} B slabs"),
            x.and_then(|c| c.1),
            y.and_then(|c| c.1),
        );
    }
    let (la, lb) = (large(a), large(b));
    for size in la
        .keys()
        .chain(lb.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        add(
            &mut v,
            "large class",
            format!("{} live", bytes(*size)),
            la.get(size).copied().flatten(),
            lb.get(size).copied().flatten(),
        );
    }
    let (aa, ab) = (arenas(a), arenas(b));
    for i in aa
        .keys()
        .chain(ab.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (x, y) = (aa.get(i), ab.get(i));
        add(
            &mut v,
            "arena",
            format!("arena {i} allocated"),
            x.and_then(|a| a.allocated()),
            y.and_then(|a| a.allocated()),
        );
        add(
            &mut v,
            "arena",
            format!("arena {i} dirty"),
            x.and_then(|a| a.pdirty).map(|p| p.saturating_mul(pa)),
            y.and_then(|a| a.pdirty).map(|p| p.saturating_mul(pb)),
        );
    }
    v.retain(|c| c.delta != 0);
    v.sort_by(|x, y| y.delta.cmp(&x.delta).then_with(|| x.what.cmp(&y.what)));
    v
}

fn signed(d: i128) -> String {
    let s = bytes(d.unsigned_abs().min(u64::MAX as u128) as u64);
    if d >= 0 {
        format!("+{s}")
    } else {
        format!("-{s}")
    }
}

/// The changes as a table.
pub fn render(changes: &[Change], a: &str, b: &str, limit: usize) -> String {
    let mut s = format!(
        "{a} -> {b}: {} figures changed, largest growth first\n\n",
        changes.len()
    );
    if changes.is_empty() {
        s.push_str("nothing changed\n");
        return s;
    }
    let _ = writeln!(
        s,
        "  {:<11} {:<26} {:>11} {:>11} {:>12}",
        "group", "figure", "before", "after", "change"
    );
    let shown: Vec<&Change> = if changes.len() > limit {
        // The largest growths and the largest shrinkages.
        let half = limit / 2;
        changes[..half]
            .iter()
            .chain(&changes[changes.len() - (limit - half)..])
            .collect()
    } else {
        changes.iter().collect()
    };
    for (k, c) in shown.iter().enumerate() {
        if changes.len() > limit && k == limit / 2 {
            let _ = writeln!(s, "  ... {} smaller changes ...", changes.len() - limit);
        }
        let pct = if c.before > 0 {
            format!(" ({:+.0}%)", c.delta as f64 * 100.0 / c.before as f64)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "  {:<11} {:<26} {:>11} {:>11} {:>12}{pct}",
            c.group,
            c.what,
            bytes(c.before),
            bytes(c.after),
            signed(c.delta)
        );
    }
    s
}
