//! `rjem stats explain`: headline figures in plain words, derived ratios,
//! and diagnoses (evidence, reason, remedies).
//!
//! Owns: the diagnosis rules and their thresholds (`RULES`, the `T_*`
//! constants); docs/stats.md documents each one and must change with
//! them. Invariant: a rule only fires on figures the snapshot has; a figure
//! it does not have makes the rule stay silent, never guess.

use super::model::{Allocator, Arena, ArenaId, Format, Snapshot};
use serde::Serialize;
use std::fmt::Write as _;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// metadata-overhead: metadata at least this share of allocated, and at
/// least `T_META_MIN` bytes (a small process's fixed metadata is no
/// problem).
pub const T_META_SHARE: f64 = 0.25;
pub const T_META_MIN: u64 = 16 * MIB;
/// fragmentation: 1 - allocated/active at least this, wasting at least
/// `T_FRAG_MIN` bytes; "concentrated" when the worst `T_FRAG_TOP` classes
/// hold at least `T_FRAG_CONC` of the bins' waste.
pub const T_FRAG: f64 = 0.25;
pub const T_FRAG_MIN: u64 = 16 * MIB;
pub const T_FRAG_TOP: usize = 3;
pub const T_FRAG_CONC: f64 = 0.5;
/// dirty-not-purged: dirty pages at least this share of active + dirty, and
/// at least `T_DIRTY_MIN` bytes.
pub const T_DIRTY_SHARE: f64 = 0.2;
pub const T_DIRTY_MIN: u64 = 32 * MIB;
/// dirty_decay_ms above this counts as "purging is (nearly) off".
pub const T_DECAY_LONG_MS: i64 = 60_000;
/// too-many-arenas: automatic arenas holding memory beyond twice the
/// threads, with idle arenas (no thread) holding at least
/// `T_IDLE_ARENA_MIN` bytes of free space and dirty pages (their live data
/// is no waste, nor are dirty pages a running purger is decaying).
pub const T_ARENAS_PER_THREAD: u64 = 2;
pub const T_IDLE_ARENA_MIN: u64 = 16 * MIB;
/// tcache-heavy: thread caches at least this share of allocated and at
/// least `T_TCACHE_MIN` bytes.
pub const T_TCACHE_SHARE: f64 = 0.10;
pub const T_TCACHE_MIN: u64 = 8 * MIB;
/// retained-address-space: retained at least this many times mapped, and
/// at least `T_RETAINED_MIN` bytes.
pub const T_RETAINED_RATIO: f64 = 4.0;
pub const T_RETAINED_MIN: u64 = GIB;
/// Metadata below this share of retained has not grown with the address
/// space (jemalloc's page map alone is 0.2% of it).
pub const T_META_GREW: f64 = 0.001;
/// madvise-storm: at least `T_MADVISE_MIN` purge calls, and either more
/// than `T_MADVISE_RATE` per second of uptime or fewer than
/// `T_MADVISE_PAGES` pages per call.
pub const T_MADVISE_MIN: u64 = 10_000;
pub const T_MADVISE_RATE: f64 = 1_000.0;
pub const T_MADVISE_PAGES: f64 = 8.0;

/// How serious a diagnosis is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
}

/// One thing to change.
#[derive(Clone, Debug, Serialize)]
pub struct Remedy {
    /// "MALLOC_CONF", "code" or "operations".
    pub kind: &'static str,
    pub change: String,
    pub why: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    /// The rule's name (docs/stats.md has a section per rule).
    pub rule: &'static str,
    pub title: String,
    pub severity: Severity,
    /// Bytes the problem costs (for ordering).
    pub bytes: u64,
    pub evidence: Vec<String>,
    pub reason: String,
    pub remedies: Vec<Remedy>,
}

/// One headline figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub name: &'static str,
    pub bytes: u64,
    pub meaning: String,
}

/// One derived ratio.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub name: &'static str,
    pub value: f64,
    pub meaning: String,
}

/// One small size class's use of its slabs (merged over arenas).
#[derive(Clone, Debug, Serialize)]
pub struct ClassUse {
    pub size: u64,
    pub utilisation: f64,
    pub live_bytes: u64,
    pub slab_bytes: u64,
    pub wasted_bytes: u64,
}

/// One arena's holdings.
#[derive(Clone, Debug, Serialize)]
pub struct ArenaUse {
    pub arena: u64,
    pub threads: Option<u64>,
    pub allocated: u64,
    pub active: u64,
    pub dirty: u64,
    pub tcache: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub allocator: Allocator,
    pub format: Format,
    pub version: Option<String>,
    pub figures: Vec<Figure>,
    pub ratios: Vec<Ratio>,
    pub size_classes: Vec<ClassUse>,
    pub arenas: Vec<ArenaUse>,
    pub diagnoses: Vec<Diagnosis>,
    pub problems: Vec<super::model::Problem>,
}

/// A byte count in words: "4.2 GiB".
pub fn bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", units[u])
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// A share in words: "6.5%", "85%"; "<0.1%" for a sliver; "9800x" from
/// 10 times on, where a percentage is hard to read.
fn pct(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0}x")
    } else if x > 0.0 && x < 0.001 {
        "<0.1%".into()
    } else if x > 0.0 && x < 0.1 {
        format!("{:.1}%", x * 100.0)
    } else {
        format!("{:.0}%", x * 100.0)
    }
}

/// The allocator's name for the reasons' wording.
fn who(s: &Snapshot) -> &'static str {
    match s.allocator {
        Allocator::Jemalloc => "jemalloc",
        Allocator::Rjem => "rjem",
        Allocator::Unknown => "the allocator",
    }
}

/// Numbered arenas that threads are spread over: below `narenas` (the
/// huge arena, index `narenas`, and manual arenas from `arenas.create`
/// have no threads by design). All numbered arenas when narenas is unknown.
fn automatic(s: &Snapshot, arenas: &[ArenaUse]) -> Vec<ArenaUse> {
    arenas
        .iter()
        .filter(|a| s.options.narenas.is_none_or(|n| a.arena < n))
        .cloned()
        .collect()
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Page-derived figures summed over the arenas: (dirty, muzzy) bytes.
fn dirty_muzzy(s: &Snapshot) -> (Option<u64>, Option<u64>) {
    let page = s.page();
    let m = s.merged();
    (
        m.and_then(|a| a.pdirty).map(|p| p.saturating_mul(page)),
        m.and_then(|a| a.pmuzzy).map(|p| p.saturating_mul(page)),
    )
}

/// Whether an arena is one of the numbered ones.
fn index(a: &Arena) -> Option<u64> {
    match a.id {
        ArenaId::Index(i) => Some(i),
        _ => None,
    }
}

/// The small size classes of the merged statistics, worst waste first.
pub fn class_use(s: &Snapshot) -> Vec<ClassUse> {
    let page = s.page();
    let Some(m) = s.merged() else {
        return Vec::new();
    };
    let mut v: Vec<ClassUse> = m
        .bins
        .iter()
        .filter_map(|b| {
            let slab = b.slab_bytes(page)?;
            let live = b.live_bytes()?;
            (slab > 0).then(|| ClassUse {
                size: b.size,
                utilisation: b.utilisation().unwrap_or(live as f64 / slab as f64),
                live_bytes: live,
                slab_bytes: slab,
                wasted_bytes: slab.saturating_sub(live),
            })
        })
        .collect();
    v.sort_by(|a, b| {
        b.wasted_bytes
            .cmp(&a.wasted_bytes)
            .then(a.size.cmp(&b.size))
    });
    v
}

/// Per-arena holdings, by arena number.
pub fn arena_use(s: &Snapshot) -> Vec<ArenaUse> {
    let page = s.page();
    let mut v: Vec<ArenaUse> = s
        .numbered()
        .filter_map(|a| {
            Some(ArenaUse {
                arena: index(a)?,
                threads: a.nthreads,
                allocated: a.allocated().unwrap_or(0),
                active: a
                    .active
                    .or_else(|| a.pactive.map(|p| p.saturating_mul(page)))
                    .unwrap_or(0),
                dirty: a.pdirty.unwrap_or(0).saturating_mul(page),
                tcache: a.tcache_bytes.unwrap_or(0),
            })
        })
        .collect();
    v.sort_by_key(|a| a.arena);
    v
}

pub fn explain(s: &Snapshot) -> Explanation {
    let t = &s.totals;
    let (dirty, muzzy) = dirty_muzzy(s);
    let merged = s.merged();
    let tcache = merged.and_then(|a| a.tcache_bytes);
    let mut figures = Vec::new();
    let mut fig = |name, v: Option<u64>, meaning: String| {
        if let Some(b) = v {
            figures.push(Figure {
                name,
                bytes: b,
                meaning,
            });
        }
    };
    fig(
        "allocated",
        t.allocated,
        match tcache {
            Some(tc) if tc > 0 => format!(
                "bytes in blocks handed out by malloc and not given back to the arenas: the \
                 program's live data plus {} of freed blocks parked in thread caches (counted \
                 as allocated until a cache flushes them)",
                bytes(tc)
            ),
            _ => "bytes in blocks handed out by malloc and not yet freed: the program's live data"
                .into(),
        },
    );
    fig(
        "active",
        t.active,
        "bytes of pages holding at least one allocation: allocated plus the free space inside \
         those pages (free slots of slabs, rounding of large blocks)"
            .into(),
    );
    fig(
        "dirty",
        dirty,
        "freed pages the allocator keeps, still in RAM, for reuse; given back to the kernel \
         gradually over dirty_decay_ms"
            .into(),
    );
    fig(
        "muzzy",
        muzzy,
        "freed pages handed back lazily (MADV_FREE): the kernel may reclaim them under pressure"
            .into(),
    );
    fig(
        "metadata",
        t.metadata,
        "the allocator's own bookkeeping: extent descriptors, the page map (radix tree), arena \
         and bin structures (base, never given back), plus internal allocations"
            .into(),
    );
    fig(
        "resident",
        t.resident,
        "physical memory in the allocator's pages (an upper bound: data pages, dirty pages and \
         metadata the kernel has not reclaimed)"
            .into(),
    );
    fig(
        "mapped",
        t.mapped,
        "address space the allocator has mapped and in use: active, dirty and muzzy pages and \
         metadata"
            .into(),
    );
    fig(
        "retained",
        t.retained,
        "address space kept after purging (not in RAM, but still part of the process's virtual \
         size) so later allocations can reuse it without mmap"
            .into(),
    );
    if t.base.is_some() && t.base != t.metadata {
        fig(
            "base",
            t.base,
            "metadata allocated by the base allocator (descriptors, page map); never freed".into(),
        );
    }

    let mut ratios = Vec::new();
    let mut r = |name, v: Option<f64>, meaning: String| {
        if let Some(value) = v.filter(|x| x.is_finite()) {
            ratios.push(Ratio {
                name,
                value,
                meaning,
            });
        }
    };
    let frag = match (t.allocated, t.active) {
        (Some(a), Some(act)) if act > 0 => Some(1.0 - a.min(act) as f64 / act as f64),
        _ => None,
    };
    r(
        "external_fragmentation",
        frag,
        frag.map_or(String::new(), |f| {
            format!(
                "1 - allocated/active: {} of active memory is free space (free slots in slabs, \
                 rounding of large blocks)",
                pct(f)
            )
        }),
    );
    let dirty_share = match (dirty, t.active) {
        (Some(d), Some(a)) if a + d > 0 => Some(d as f64 / (a + d) as f64),
        _ => None,
    };
    r(
        "dirty_share",
        dirty_share,
        "dirty / (active + dirty): freed memory still held in RAM".into(),
    );
    let meta = t.metadata.and_then(|m| ratio(m, t.allocated?));
    r(
        "metadata_overhead",
        meta,
        "metadata / allocated: bookkeeping bytes per byte of live data".into(),
    );
    let ret = t.retained.and_then(|x| ratio(x, t.mapped?));
    r(
        "retained_to_mapped",
        ret,
        "retained / mapped: unused address space per byte of used address space".into(),
    );
    // Blocks parked in thread caches count as allocated but are not live.
    let live = t.allocated.map(|a| a.saturating_sub(tcache.unwrap_or(0)));
    let res = live.and_then(|a| ratio(a, t.resident?));
    r(
        "live_share_of_resident",
        res,
        if tcache.is_some() {
            "(allocated - tcache_bytes) / resident: how much of the allocator's RAM is live data"
        } else {
            "allocated / resident: how much of the allocator's RAM is live data"
        }
        .into(),
    );
    let tc = tcache.and_then(|x| ratio(x, t.allocated?));
    r(
        "tcache_share",
        tc,
        "tcache_bytes / allocated: freed blocks thread caches keep for reuse".into(),
    );
    let arenas = arena_use(s);
    if arenas.len() > 1 {
        let total: u64 = arenas.iter().map(|a| a.allocated).sum();
        let max = arenas.iter().map(|a| a.allocated).max().unwrap_or(0);
        let mean = total as f64 / arenas.len() as f64;
        r(
            "arena_spread",
            (mean > 0.0).then(|| max as f64 / mean),
            format!(
                "largest arena's allocated / the mean over {} arenas (1 = even)",
                arenas.len()
            ),
        );
    }
    let classes = class_use(s);
    let mut diagnoses: Vec<Diagnosis> = RULES.iter().filter_map(|rule| rule(s)).collect();
    diagnoses.sort_by(|a, b| a.severity.cmp(&b.severity).then(b.bytes.cmp(&a.bytes)));
    Explanation {
        allocator: s.allocator,
        format: s.format,
        version: s.version.clone(),
        figures,
        ratios,
        size_classes: classes,
        arenas,
        diagnoses,
        problems: s.problems.clone(),
    }
}

type Rule = fn(&Snapshot) -> Option<Diagnosis>;

/// Every rule, in the order docs/stats.md documents them.
pub const RULES: &[Rule] = &[
    metadata_overhead,
    fragmentation,
    dirty_not_purged,
    too_many_arenas,
    tcache_heavy,
    retained_address_space,
    madvise_storm,
];

fn conf(change: &str, why: &str) -> Remedy {
    Remedy {
        kind: "MALLOC_CONF",
        change: change.into(),
        why: why.into(),
    }
}
fn code(change: &str, why: &str) -> Remedy {
    Remedy {
        kind: "code",
        change: change.into(),
        why: why.into(),
    }
}
fn ops(change: &str, why: &str) -> Remedy {
    Remedy {
        kind: "operations",
        change: change.into(),
        why: why.into(),
    }
}

fn metadata_overhead(s: &Snapshot) -> Option<Diagnosis> {
    let t = &s.totals;
    let meta = t.metadata?;
    let alloc = t.allocated?;
    if meta < T_META_MIN || (meta as f64) < T_META_SHARE * alloc as f64 {
        return None;
    }
    let mut evidence = vec![format!(
        "metadata {} / allocated {} = {} (threshold {})",
        bytes(meta),
        bytes(alloc),
        pct(meta as f64 / alloc.max(1) as f64),
        pct(T_META_SHARE)
    )];
    if let Some(b) = t.base {
        evidence.push(format!(
            "base (descriptors and page map) {} of it",
            bytes(b.min(meta))
        ));
    }
    if let Some(res) = t.resident {
        evidence.push(format!(
            "metadata is {} of resident {}: RAM the program's data does not use",
            pct(meta as f64 / res.max(1) as f64),
            bytes(res)
        ));
    }
    // rjem's pointer map is address space, not part of its metadata total.
    let (map, parts): (Vec<_>, Vec<_>) =
        s.metadata_parts.iter().partition(|p| p.0 == "pointer map");
    if let Some(part) = parts.iter().max_by_key(|p| p.1) {
        evidence.push(format!("largest part: {} {}", part.0, bytes(part.1)));
    }
    if let Some(p) = map.first() {
        evidence.push(format!(
            "pointer map: {} of address space mapped, resident only where entries were \
             written (not counted in metadata)",
            bytes(p.1)
        ));
    }
    let retained_big = t
        .retained
        .zip(t.mapped)
        .is_some_and(|(r, m)| r as f64 >= T_RETAINED_RATIO * m as f64);
    let mut reason = String::from(
        "Metadata is the allocator's bookkeeping, and most of it (base) is never freed: \
         every extent (a run of pages: in use, dirty, muzzy or retained) has a descriptor, \
         and the page map (a radix tree from address to extent) gains leaf nodes for each \
         region of address space ever used, about 2 MiB per GiB. Neither shrinks when the \
         memory is freed, so metadata follows the largest address space the process ever \
         spanned, not what it holds now.",
    );
    if let (true, Some(r)) = (retained_big, t.retained) {
        let _ = write!(
            reason,
            " Here the address space is the problem: {} retained (purged but kept \
             reserved), {} the mapped memory, so base grows with retained address \
             space while the live data ({}) is small; metadata is {} of the retained \
             address space.",
            bytes(r),
            format_args!("{:.0}x", r as f64 / t.mapped.unwrap_or(1).max(1) as f64),
            bytes(alloc),
            pct(meta as f64 / r.max(1) as f64)
        );
    }
    Some(Diagnosis {
        rule: "metadata-overhead",
        title: "Metadata out of proportion to live data".into(),
        severity: if meta > alloc {
            Severity::Critical
        } else {
            Severity::Warning
        },
        bytes: meta,
        evidence,
        reason,
        remedies: vec![
            conf(
                "retain:false",
                "freed address space is unmapped instead of retained, so descriptors are \
                 reused and the address space (and with it new page-map nodes) stops \
                 growing; costs more mmap/munmap calls",
            ),
            conf(
                "narenas:<number of busy threads or CPUs>",
                "each arena reserves and retains its own address space; fewer arenas, less \
                 address space",
            ),
            code(
                "look for very large transient buffers (allocated, grown with realloc, freed) \
                 in many threads, and allocations of ever-new large sizes",
                "each new large size or peak spreads the address space; reuse buffers or \
                 cap their size",
            ),
            ops(
                "restart the process to reset metadata after a one-off peak",
                "base memory is never returned while the process lives",
            ),
        ],
    })
}

fn fragmentation(s: &Snapshot) -> Option<Diagnosis> {
    let t = &s.totals;
    let (alloc, active) = (t.allocated?, t.active?);
    let gap = active.saturating_sub(alloc);
    let frag = ratio(gap, active)?;
    if frag < T_FRAG || gap < T_FRAG_MIN {
        return None;
    }
    let classes = class_use(s);
    let total_waste: u64 = classes.iter().map(|c| c.wasted_bytes).sum();
    let top: Vec<&super::explain::ClassUse> = classes.iter().take(T_FRAG_TOP).collect();
    let top_waste: u64 = top.iter().map(|c| c.wasted_bytes).sum();
    let concentrated = total_waste > 0 && top_waste as f64 >= T_FRAG_CONC * total_waste as f64;
    let mut evidence = vec![format!(
        "external fragmentation {} (1 - allocated {} / active {}): {} of free space inside \
         pages in use (threshold {})",
        pct(frag),
        bytes(alloc),
        bytes(active),
        bytes(gap),
        pct(T_FRAG)
    )];
    for c in &top {
        evidence.push(format!(
            "size class {} B: {} of its slab space live, {} wasted",
            c.size,
            pct(c.utilisation),
            bytes(c.wasted_bytes)
        ));
    }
    if concentrated {
        evidence.push(format!(
            "these {} classes hold {} of the waste in small-object slabs",
            top.len(),
            pct(top_waste as f64 / total_waste as f64)
        ));
    }
    let names: Vec<String> = top.iter().map(|c| format!("{} B", c.size)).collect();
    let reason = if concentrated {
        format!(
            "Objects of the same size class share slabs (runs of pages), and a slab can only \
             be given back when every slot in it is free. Many objects of {} were freed but a \
             few survivors are scattered over nearly every slab, so the pages stay active \
             though mostly empty. This is typical of a cache or index that allocated many \
             objects and then evicted most of them while keeping some.",
            names.join(", ")
        )
    } else {
        "Free space is spread over the pages in use: slabs kept alive by a few survivors, \
         and large blocks rounded up to their size class. Memory that was freed cannot be \
         reused for other sizes while its pages hold live objects."
            .into()
    };
    let mut remedies = vec![
        code(
            "allocate long-lived objects apart from short-lived ones of the same size (a pool, \
             or a dedicated arena: mallocx(size, MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE) with \
             an arena from mallctl(\"arenas.create\"); without MALLOCX_TCACHE_NONE the \
             thread cache may hand out blocks of another arena)",
            "survivors then do not pin the slabs that short-lived objects empty",
        ),
        code(
            "free in bulk what was allocated together (rebuild an evicted cache instead of \
             thinning it)",
            "whole slabs become empty and go back to the page allocator",
        ),
    ];
    // Fewer arenas help only where several hold slabs.
    let holding = automatic(s, &arena_use(s))
        .iter()
        .filter(|a| a.active > 0)
        .count();
    if holding != 1 {
        remedies.push(conf(
            "narenas:<fewer>",
            "fewer arenas, fewer partly-filled slabs per size class",
        ));
    }
    remedies.push(ops(
        "if this is Redis (or Valkey): CONFIG SET activedefrag yes",
        "it moves live values out of sparse slabs (needs a server built with its bundled \
         jemalloc, which tells it which slabs are sparse)",
    ));
    Some(Diagnosis {
        rule: "fragmentation",
        title: if concentrated {
            format!(
                "High fragmentation concentrated in size classes {}",
                names.join(", ")
            )
        } else {
            "High fragmentation".into()
        },
        severity: if frag >= 0.5 {
            Severity::Critical
        } else {
            Severity::Warning
        },
        bytes: gap,
        evidence,
        reason,
        remedies,
    })
}

/// How dirty pages leave: the decay time in force, whether background
/// purging threads are running (None: not reported), and whether
/// `background_thread` is set.
fn purging(s: &Snapshot) -> (Option<i64>, Option<bool>, Option<bool>) {
    let decay = s
        .merged()
        .and_then(|a| a.dirty_decay_ms)
        .or(s.options.dirty_decay_ms);
    (
        decay,
        s.background_threads.map(|n| n > 0),
        s.options.background_thread,
    )
}

/// Whether dirty pages are known to be on their way out: decay on (at most
/// `T_DECAY_LONG_MS`) and a purger running, so what was freed within the
/// last dirty_decay_ms is expected to be there.
fn purged_in_time(s: &Snapshot) -> bool {
    let (decay, bg_running, bg_opt) = purging(s);
    decay.is_some_and(|d| (0..=T_DECAY_LONG_MS).contains(&d))
        && (bg_running == Some(true) || bg_opt == Some(true))
}

fn dirty_not_purged(s: &Snapshot) -> Option<Diagnosis> {
    let (dirty, _) = dirty_muzzy(s);
    let dirty = dirty?;
    let active = s.totals.active?;
    let share = ratio(dirty, active + dirty)?;
    if dirty < T_DIRTY_MIN || share < T_DIRTY_SHARE {
        return None;
    }
    let (decay, bg_running, bg_opt) = purging(s);
    let sweeps = s.merged().and_then(|a| a.dirty_npurge);
    // Silent when the dirty pages are on their way out, or when decay is
    // on and it cannot tell whether a purger runs.
    let decay_on = decay.is_some_and(|d| (0..=T_DECAY_LONG_MS).contains(&d));
    if purged_in_time(s) || (decay_on && bg_running.is_none()) {
        return None;
    }
    let mut evidence = vec![format!(
        "{} dirty (freed, still in RAM): {} of active + dirty (threshold {})",
        bytes(dirty),
        pct(share),
        pct(T_DIRTY_SHARE)
    )];
    if let Some(d) = decay {
        evidence.push(format!(
            "dirty_decay_ms {}",
            if d < 0 {
                "-1 (never purge)".to_string()
            } else {
                d.to_string()
            }
        ));
    }
    if let Some(b) = bg_running {
        evidence.push(format!(
            "background purging threads running: {}",
            if b { "yes" } else { "none" }
        ));
    }
    if let Some(n) = sweeps {
        evidence.push(format!("purge sweeps so far: {n}"));
    }
    let (reason, mut remedies) = match decay {
        Some(d) if d < 0 => (
            "Decay is off (dirty_decay_ms:-1): freed pages are never given back to the kernel, \
             so RSS stays at the peak."
                .to_string(),
            vec![conf(
                "dirty_decay_ms:10000",
                "purge freed pages gradually over 10 s (the default); lower for a tighter RSS",
            )],
        ),
        Some(d) if d > T_DECAY_LONG_MS => (
            format!(
                "dirty_decay_ms is {d} ms: freed pages are purged gradually over {} s, so \
                 RSS lags far behind use.",
                d / 1000
            ),
            vec![conf(
                "dirty_decay_ms:10000",
                "purge gradually over 10 s instead",
            )],
        ),
        _ => (
            format!(
                "Decay is on, but without a background thread {} only purges when the \
                 program calls malloc or free: a process that goes idle after a burst keeps \
                 its dirty pages indefinitely.",
                who(s)
            ),
            Vec::new(),
        ),
    };
    if bg_running != Some(true) && bg_opt != Some(true) {
        remedies.push(conf(
            "background_thread:true",
            "a background thread purges on time even when the program is idle",
        ));
    }
    remedies.push(code(
        "after a burst of work, call mallctl(\"arena.<i>.purge\") (or \
         \"arena.4096.purge\" for all arenas) when going idle",
        "gives the pages back at once",
    ));
    Some(Diagnosis {
        rule: "dirty-not-purged",
        title: "Dirty memory is not being purged".into(),
        severity: if share >= 0.5 {
            Severity::Critical
        } else {
            Severity::Warning
        },
        bytes: dirty,
        evidence,
        reason,
        remedies,
    })
}

fn too_many_arenas(s: &Snapshot) -> Option<Diagnosis> {
    let all = arena_use(s);
    // Threads bound to manual arenas count as threads too.
    let threads: u64 = all.iter().filter_map(|a| a.threads).sum();
    let arenas = automatic(s, &all);
    let holding: Vec<&ArenaUse> = arenas
        .iter()
        .filter(|a| a.allocated > 0 || a.dirty > 0 || a.active > 0)
        .collect();
    let idle: Vec<&&ArenaUse> = holding.iter().filter(|a| a.threads == Some(0)).collect();
    let idle_bytes: u64 = idle.iter().map(|a| a.active + a.dirty).sum();
    let idle_live: u64 = idle.iter().map(|a| a.allocated.min(a.active)).sum();
    let idle_dirty: u64 = idle.iter().map(|a| a.dirty).sum();
    // Dirty pages a running purger is decaying leave by themselves; the
    // free slots in slabs stay.
    let decaying = purged_in_time(s);
    let idle_spare = idle_bytes
        .saturating_sub(idle_live)
        .saturating_sub(if decaying { idle_dirty } else { 0 });
    let n = holding.len() as u64;
    if n < 4 || n <= T_ARENAS_PER_THREAD * threads.max(1) || idle_spare < T_IDLE_ARENA_MIN {
        return None;
    }
    let evidence = vec![
        format!(
            "{n} automatic arenas hold memory for {threads} thread(s) now assigned \
             (threshold: more than {T_ARENAS_PER_THREAD} per thread)"
        ),
        if decaying {
            format!(
                "{} arenas with no thread hold {} (active + dirty): {} live data, {} dirty \
                 pages a background thread is purging, and {} of free space that only \
                 threads bound to those arenas can reuse",
                idle.len(),
                bytes(idle_bytes),
                bytes(idle_live),
                bytes(idle_dirty),
                bytes(idle_spare)
            )
        } else {
            format!(
                "{} arenas with no thread hold {} (active + dirty): {} live data, {} free \
                 space and dirty pages that only threads bound to those arenas can reuse",
                idle.len(),
                bytes(idle_bytes),
                bytes(idle_live),
                bytes(idle_spare)
            )
        },
        format!(
            "narenas {}",
            s.options
                .narenas
                .map_or("unknown".to_string(), |x| x.to_string())
        ),
    ];
    Some(Diagnosis {
        rule: "too-many-arenas",
        title: "Too many arenas for the thread count".into(),
        severity: Severity::Warning,
        bytes: idle_spare,
        evidence,
        reason: "Each thread is tied to one arena and frees go back to the arena the block \
                 came from. Threads that came and went (or a past peak of threads) left \
                 memory in arenas no thread allocates from now. Their live data is not the \
                 waste; the free space and dirty pages beside it are, since they cannot serve \
                 the remaining threads, and each arena keeps its own partly-filled slabs, \
                 dirty pages and address-space reserve. Without allocation activity there, \
                 those arenas are purged only by a background thread."
            .into(),
        remedies: vec![
            conf(
                "narenas:<threads that allocate at the same time, at most the CPU count>",
                &format!(
                    "threads share fewer arenas and reuse each other's free space (the default \
                     is 4 arenas per CPU; {threads} thread(s) are assigned now)"
                ),
            ),
            conf(
                "percpu_arena:percpu",
                "one arena per CPU, shared by whatever threads run there",
            ),
            code(
                "reuse threads (a pool) instead of starting short-lived ones",
                "new threads are spread over more arenas",
            ),
        ],
    })
}

fn tcache_heavy(s: &Snapshot) -> Option<Diagnosis> {
    let m = s.merged()?;
    let tc = m.tcache_bytes?;
    let alloc = s.totals.allocated?;
    if tc < T_TCACHE_MIN || (tc as f64) < T_TCACHE_SHARE * alloc as f64 {
        return None;
    }
    let mut evidence = vec![format!(
        "thread caches hold {} of free blocks: {} of allocated {} (threshold {})",
        bytes(tc),
        pct(tc as f64 / alloc.max(1) as f64),
        bytes(alloc),
        pct(T_TCACHE_SHARE)
    )];
    if let Some(x) = s.options.tcache_max {
        evidence.push(format!("tcache_max {} (largest size cached)", bytes(x)));
    }
    if let Some(th) = s.numbered().filter_map(|a| a.nthreads).reduce(|a, b| a + b) {
        evidence.push(format!("{th} threads assigned to arenas"));
    }
    let mut remedies = Vec::new();
    // Only worth saying when the limit is above the default.
    if s.options.tcache_max.is_none_or(|x| x > 32768) {
        remedies.push(conf(
            "tcache_max:32768",
            "cache blocks of at most 32 KiB (the default); larger values let every thread \
             keep large blocks",
        ));
    }
    remedies.push(code(
        "call mallctl(\"thread.tcache.flush\", NULL, NULL, NULL, 0) in worker threads before \
         they idle or block",
        "returns a thread's cached blocks to the arenas",
    ));
    remedies.push(conf(
        "tcache:false",
        "no thread caches at all (costs speed; for diagnosis or very many threads)",
    ));
    Some(Diagnosis {
        rule: "tcache-heavy",
        title: "Thread caches hold much memory".into(),
        severity: Severity::Warning,
        bytes: tc,
        evidence,
        reason: "Each thread keeps freed blocks in its own cache so its next malloc of that \
                 size needs no lock. The cache is flushed gradually while the thread keeps \
                 allocating; a thread that goes idle (or blocks) keeps its cache, and with a \
                 large tcache_max it caches large blocks too. The memory counts as allocated \
                 but nobody uses it."
            .into(),
        remedies,
    })
}

fn retained_address_space(s: &Snapshot) -> Option<Diagnosis> {
    let t = &s.totals;
    let r = t.retained?;
    let m = t.mapped?;
    if r < T_RETAINED_MIN || (r as f64) < T_RETAINED_RATIO * m as f64 {
        return None;
    }
    let mut evidence = vec![format!(
        "retained {} is {:.0}x mapped {} (threshold {:.0}x and {})",
        bytes(r),
        r as f64 / m.max(1) as f64,
        bytes(m),
        T_RETAINED_RATIO,
        bytes(T_RETAINED_MIN)
    )];
    if let Some(meta) = t.metadata {
        evidence.push(format!(
            "metadata {} ({} of retained)",
            bytes(meta),
            pct(meta as f64 / r.max(1) as f64)
        ));
    }
    Some(Diagnosis {
        rule: "retained-address-space",
        title: "Huge retained address space".into(),
        severity: if r >= 64 * GIB {
            Severity::Critical
        } else {
            Severity::Warning
        },
        // Address space, not RAM: it orders after problems that cost RAM.
        bytes: 0,
        evidence,
        reason: format!(
            "Retained memory is address space the allocator purged but keeps reserved so it \
             can reuse it without mmap (opt.retain, on by default on Linux). It costs no RAM, \
             but it is part of the process's virtual size: a limit on address space \
             (ulimit -v / RLIMIT_AS, some container and batch schedulers) makes malloc fail \
             long before RAM runs out, with vm.overcommit_memory=2 the reserved space may be \
             charged against the commit limit, and tools that watch VSZ raise alarms. {}",
            match t.metadata {
                Some(meta) if (meta as f64) < T_META_GREW * r as f64 =>
                    format!("Metadata has not grown with it here ({}).", bytes(meta)),
                _ => format!(
                    "It also drives metadata: the page map and extent descriptors grow with \
                     the address space ({} retained here), and are never freed.",
                    bytes(r)
                ),
            }
        ),
        remedies: vec![
            conf(
                "retain:false",
                "unmap freed address space instead of keeping it (more mmap/munmap calls)",
            ),
            conf(
                "narenas:<fewer>",
                "each arena grows its own reserve geometrically",
            ),
            code(
                "look for peaks of huge allocations (buffers of hundreds of MiB and more, \
                 ever-larger realloc) and reuse or cap them",
                "each peak leaves its address space retained",
            ),
            ops(
                "check ulimit -v and /proc/sys/vm/overcommit_memory where this process runs",
                "those turn retained address space into allocation failures",
            ),
        ],
    })
}

fn madvise_storm(s: &Snapshot) -> Option<Diagnosis> {
    let m = s.merged()?;
    let calls = m
        .dirty_nmadvise?
        .saturating_add(m.muzzy_nmadvise.unwrap_or(0));
    let pages = m.dirty_purged?.saturating_add(m.muzzy_purged.unwrap_or(0));
    if calls < T_MADVISE_MIN {
        return None;
    }
    let per_call = pages as f64 / calls as f64;
    let uptime_s = m
        .uptime_ns
        .or_else(|| s.numbered().filter_map(|a| a.uptime_ns).max())
        .map(|ns| ns as f64 / 1e9)
        .filter(|&u| u > 0.0);
    let rate = uptime_s.map(|u| calls as f64 / u);
    let fast = rate.is_some_and(|r| r > T_MADVISE_RATE);
    if !fast && per_call >= T_MADVISE_PAGES {
        return None;
    }
    let mut evidence = vec![format!(
        "{calls} purge calls (madvise) gave back {pages} pages, {}: {per_call:.1} pages per \
         call (fires below {T_MADVISE_PAGES})",
        bytes(pages.saturating_mul(s.page()))
    )];
    if let (Some(r), Some(u)) = (rate, uptime_s) {
        evidence.push(format!(
            "{r:.0} calls per second over {u:.1} s of uptime (fires above {T_MADVISE_RATE:.0})"
        ));
    }
    let decay = m.dirty_decay_ms.or(s.options.dirty_decay_ms);
    if let Some(d) = decay {
        evidence.push(format!(
            "dirty_decay_ms {d}{}",
            match d {
                0 => " (purge at once)",
                d if d < 0 => " (never purge)",
                _ => "",
            }
        ));
    }
    Some(Diagnosis {
        rule: "madvise-storm",
        title: "madvise storm: pages purged and faulted back again and again".into(),
        severity: Severity::Warning,
        bytes: pages.saturating_mul(s.page()),
        evidence,
        reason: "Each purge is a madvise system call, and each purged page that is used again \
                 costs a page fault and zeroing. Many small purges mean the program frees and \
                 re-allocates the same memory while the decay time is too short to keep it: \
                 the kernel work can cost more than the allocation itself."
            .into(),
        remedies: vec![
            conf(
                "dirty_decay_ms:10000",
                "keep freed pages for reuse, purging them gradually over 10 s (0 or a few ms \
                 purges at once)",
            ),
            conf(
                "background_thread:true",
                "with a decay time above 0, purging moves off the application threads and is \
                 batched (with dirty_decay_ms:0 every free still purges at once)",
            ),
            code(
                "reuse large buffers instead of freeing and re-allocating them in a loop",
                "no purge, no page faults",
            ),
        ],
    })
}

// ---- text rendering ----

fn wrap(s: &str, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for w in s.split_whitespace() {
        if line > 0 && line + 1 + w.len() > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(w);
        line += w.len();
    }
    out
}

/// The explanation as text for a terminal.
pub fn render(e: &Explanation, label: &str) -> String {
    let mut s = String::new();
    let who = match e.allocator {
        Allocator::Jemalloc => "jemalloc",
        Allocator::Rjem => "rjem",
        Allocator::Unknown => "allocator",
    };
    let form = match e.format {
        Format::Text => "text report",
        Format::Json => "JSON report",
        Format::Summary => "summary line",
        Format::Redis => "Redis MEMORY MALLOC-STATS",
    };
    let _ = writeln!(
        s,
        "{label}: {who} {form}{}",
        e.version
            .as_ref()
            .map_or(String::new(), |v| format!(" (version {v})"))
    );
    let _ = writeln!(s, "\nWhere the memory is:");
    for f in &e.figures {
        let _ = writeln!(
            s,
            "  {:<10} {:>10}  {}",
            f.name,
            bytes(f.bytes),
            wrap(&f.meaning, 25, 62)
        );
    }
    if !e.ratios.is_empty() {
        let _ = writeln!(s, "\nRatios:");
        for r in &e.ratios {
            let v = if r.name == "arena_spread" || r.name == "retained_to_mapped" {
                format!("{:.1}x", r.value)
            } else {
                pct(r.value)
            };
            let _ = writeln!(
                s,
                "  {:<24} {:>6}  {}",
                r.name.replace('_', " "),
                v,
                wrap(&r.meaning, 36, 52)
            );
        }
    }
    if !e.size_classes.is_empty() {
        let _ = writeln!(
            s,
            "\nSmall size classes, most wasted first (slab space not holding live data):"
        );
        let _ = writeln!(
            s,
            "  {:>8} {:>6} {:>10} {:>10} {:>10}",
            "size", "util", "live", "slabs", "wasted"
        );
        for c in e.size_classes.iter().take(8) {
            let _ = writeln!(
                s,
                "  {:>8} {:>6} {:>10} {:>10} {:>10}",
                c.size,
                pct(c.utilisation),
                bytes(c.live_bytes),
                bytes(c.slab_bytes),
                bytes(c.wasted_bytes)
            );
        }
    }
    if e.arenas.len() > 1 {
        let _ = writeln!(s, "\nArenas:");
        let _ = writeln!(
            s,
            "  {:>6} {:>7} {:>10} {:>10} {:>10} {:>10}",
            "arena", "threads", "allocated", "active", "dirty", "tcache"
        );
        for a in e.arenas.iter().take(16) {
            let _ = writeln!(
                s,
                "  {:>6} {:>7} {:>10} {:>10} {:>10} {:>10}",
                a.arena,
                a.threads.map_or("-".into(), |t| t.to_string()),
                bytes(a.allocated),
                bytes(a.active),
                bytes(a.dirty),
                bytes(a.tcache)
            );
        }
        if e.arenas.len() > 16 {
            let _ = writeln!(s, "  ... {} more", e.arenas.len() - 16);
        }
    }
    if e.diagnoses.is_empty() {
        let _ = writeln!(
            s,
            "\nDiagnosis: nothing out of the ordinary (every rule in docs/stats.md checked)."
        );
    } else {
        let _ = writeln!(s, "\nDiagnoses, most serious first:");
        for (i, d) in e.diagnoses.iter().enumerate() {
            let sev = match d.severity {
                Severity::Critical => "CRITICAL",
                Severity::Warning => "warning",
            };
            let _ = writeln!(s, "\n{}. [{sev}] {} ({})", i + 1, d.title, d.rule);
            for ev in &d.evidence {
                let _ = writeln!(s, "   - {}", wrap(ev, 5, 74));
            }
            let _ = writeln!(s, "   Why: {}", wrap(&d.reason, 8, 71));
            let _ = writeln!(s, "   What to do:");
            for r in &d.remedies {
                let head = match r.kind {
                    "MALLOC_CONF" => format!("MALLOC_CONF={}", r.change),
                    k => format!("{k}: {}", r.change),
                };
                let _ = writeln!(s, "   * {}", wrap(&head, 5, 74));
                let _ = writeln!(s, "       {}", wrap(&r.why, 7, 72));
            }
        }
    }
    if !e.problems.is_empty() {
        let _ = writeln!(s, "\nCould not read:");
        for p in e.problems.iter().take(20) {
            if p.line > 0 {
                let _ = writeln!(s, "  line {}: {}", p.line, p.reason);
            } else {
                let _ = writeln!(s, "  {}", p.reason);
            }
        }
        if e.problems.len() > 20 {
            let _ = writeln!(s, "  ... {} more", e.problems.len() - 20);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arena `i` with `threads` bound, `alloc` bytes live, `active` bytes of
    /// pages in use and `dirty` bytes of dirty pages.
    fn arena(i: u64, threads: u64, alloc: u64, active: u64, dirty: u64) -> Arena {
        let mut a = Arena::new(ArenaId::Index(i));
        a.nthreads = Some(threads);
        a.large.allocated = Some(alloc);
        a.active = Some(active);
        a.pdirty = Some(dirty / 4096);
        a
    }

    fn snapshot(narenas: u64, arenas: Vec<Arena>) -> Snapshot {
        let mut s = Snapshot::new(Format::Json);
        s.allocator = Allocator::Jemalloc;
        s.options.narenas = Some(narenas);
        s.totals.allocated = Some(arenas.iter().filter_map(Arena::allocated).sum());
        s.totals.active = Some(arenas.iter().filter_map(|a| a.active).sum());
        s.arenas = arenas;
        s
    }

    fn fired(s: &Snapshot) -> Vec<&'static str> {
        explain(s).diagnoses.iter().map(|d| d.rule).collect()
    }

    #[test]
    fn idle_arenas_count_their_spare_space_not_their_live_data() {
        // Five threadless arenas full of live data: nothing is wasted.
        let mut v = vec![arena(0, 1, MIB, MIB, 0)];
        v.extend((1..6).map(|i| arena(i, 0, 20 * MIB, 20 * MIB, 0)));
        assert_eq!(fired(&snapshot(8, v.clone())), Vec::<&str>::new());
        // The same with 4 MiB of dirty pages each beside the live data.
        for a in &mut v[1..] {
            a.pdirty = Some(4 * MIB / 4096);
        }
        let s = snapshot(8, v);
        assert_eq!(fired(&s), ["too-many-arenas"]);
        let d = &explain(&s).diagnoses[0];
        assert_eq!(d.bytes, 20 * MIB, "the cost is the spare space");
        assert!(d.evidence[1].contains("100 MiB live data, 20.0 MiB free space"));
    }

    #[test]
    fn idle_arenas_dirty_pages_count_unless_a_purger_decays_them() {
        let mut v = vec![arena(0, 1, MIB, MIB, 0)];
        v.extend((1..6).map(|i| arena(i, 0, 0, 0, 6 * MIB)));
        let mut s = snapshot(8, v);
        s.options.dirty_decay_ms = Some(10_000);
        s.background_threads = Some(0);
        assert_eq!(fired(&s), ["too-many-arenas"]);
        // A purger runs: the dirty pages leave within the decay time.
        s.background_threads = Some(1);
        assert_eq!(fired(&s), Vec::<&str>::new());
        // Decay off: they stay, whatever runs.
        s.options.dirty_decay_ms = Some(-1);
        assert_eq!(fired(&s), ["too-many-arenas"]);
    }

    #[test]
    fn huge_and_manual_arenas_are_not_idle_arenas() {
        // Index 8 (narenas) is the huge arena, 9 a manual one: no threads
        // by design, whatever they hold.
        let mut v = vec![arena(0, 1, MIB, MIB, 0)];
        v.extend((1..4).map(|i| arena(i, 0, MIB, 2 * MIB, 0)));
        v.push(arena(8, 0, 0, 0, 100 * MIB));
        v.push(arena(9, 0, 64 * MIB, 64 * MIB, 30 * MIB));
        assert_eq!(fired(&snapshot(8, v.clone())), Vec::<&str>::new());
        // Counted as automatic they would fire: the test can tell.
        assert_eq!(fired(&snapshot(16, v)), ["too-many-arenas"]);
    }

    #[test]
    fn remedies_that_would_change_nothing_are_left_out() {
        let mut s = snapshot(8, vec![arena(0, 4, 100 * MIB, 100 * MIB, 0)]);
        let mut m = Arena::new(ArenaId::Merged);
        m.tcache_bytes = Some(50 * MIB);
        s.arenas.push(m);
        let changes = |s: &Snapshot| -> Vec<String> {
            explain(s).diagnoses[0]
                .remedies
                .iter()
                .map(|r| r.change.clone())
                .collect()
        };
        s.options.tcache_max = Some(1 << 20);
        assert!(changes(&s).contains(&"tcache_max:32768".to_string()));
        s.options.tcache_max = Some(32768);
        assert!(!changes(&s).iter().any(|c| c.starts_with("tcache_max")));
        // Blocks in thread caches are not live data.
        let e = explain(&s);
        let live = e.ratios.iter().find(|r| r.name == "live_share_of_resident");
        assert!(live.is_none(), "no resident figure, no ratio");
        s.totals.resident = Some(100 * MIB);
        let e = explain(&s);
        let live = e.ratios.iter().find(|r| r.name == "live_share_of_resident");
        assert_eq!(live.map(|r| r.value), Some(0.5));

        // One arena holds the fragmented slabs: fewer arenas would not help.
        let frag = snapshot(8, vec![arena(0, 1, 10 * MIB, 100 * MIB, 0)]);
        let has_narenas = |s: &Snapshot| changes(s).iter().any(|c| c.starts_with("narenas"));
        assert!(!has_narenas(&frag));
        let frag = snapshot(
            8,
            vec![
                arena(0, 1, 10 * MIB, 50 * MIB, 0),
                arena(1, 1, 10 * MIB, 50 * MIB, 0),
            ],
        );
        assert_eq!(fired(&frag), ["fragmentation"]);
        assert!(has_narenas(&frag));
    }

    #[test]
    fn shares_read_well() {
        assert_eq!(pct(0.25), "25%");
        assert_eq!(pct(0.065), "6.5%");
        assert_eq!(pct(0.00001), "<0.1%");
        assert_eq!(pct(0.0), "0%");
        assert_eq!(pct(3.02), "302%");
        assert_eq!(pct(9802.4), "9802x");
    }

    #[test]
    fn retained_reason_says_whether_metadata_grew() {
        let mut s = Snapshot::new(Format::Summary);
        s.totals.retained = Some(100 * GIB);
        s.totals.mapped = Some(GIB);
        s.totals.metadata = Some(MIB);
        let reason = |s: &Snapshot| explain(s).diagnoses[0].reason.clone();
        assert!(reason(&s).contains("Metadata has not grown with it here (1.0 MiB)"));
        s.totals.metadata = Some(200 * MIB);
        assert!(reason(&s).contains("It also drives metadata"));
    }
}
