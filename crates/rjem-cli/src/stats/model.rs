//! What a statistics snapshot holds, whatever it was read from: the
//! headline totals, the run-time options that matter for diagnosis, and
//! per arena the page states, bins (small size classes) and large classes.
//!
//! Every figure is an `Option`: a summary line alone fills only the
//! totals, and reports from other jemalloc versions leave out columns.
//! Consumers treat `None` as "not known", never as zero.

use serde::Serialize;

/// Who wrote the statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Allocator {
    Jemalloc,
    Rjem,
    /// Only a summary line was given: it could be either.
    Unknown,
}

/// The form the statistics came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `malloc_stats_print` text.
    Text,
    /// `malloc_stats_print` with option `J`.
    Json,
    /// A line of totals alone ("allocated 4.2 GB, active 5.3 GB, ...").
    Summary,
    /// Redis `MEMORY MALLOC-STATS` (jemalloc's text report, possibly quoted
    /// by an older `redis-cli`).
    Redis,
}

/// The process-wide totals (`stats.*`), in bytes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub allocated: Option<u64>,
    pub active: Option<u64>,
    pub metadata: Option<u64>,
    pub resident: Option<u64>,
    pub mapped: Option<u64>,
    pub retained: Option<u64>,
    /// `base` from the merged arena statistics (or a summary that names it).
    pub base: Option<u64>,
    pub metadata_thp: Option<u64>,
}

/// The run-time options that diagnoses use.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Options {
    pub narenas: Option<u64>,
    pub dirty_decay_ms: Option<i64>,
    pub muzzy_decay_ms: Option<i64>,
    pub background_thread: Option<bool>,
    pub retain: Option<bool>,
    pub tcache: Option<bool>,
    pub tcache_max: Option<u64>,
    pub percpu_arena: Option<String>,
    pub metadata_thp: Option<String>,
    pub page: Option<u64>,
}

/// One small size class in one arena (a row of the `bins:` table).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Bin {
    pub size: u64,
    pub index: Option<u64>,
    /// Bytes in live regions (curregs × size).
    pub allocated: Option<u64>,
    pub nmalloc: Option<u64>,
    pub ndalloc: Option<u64>,
    pub nrequests: Option<u64>,
    pub curregs: Option<u64>,
    pub curslabs: Option<u64>,
    pub nonfull_slabs: Option<u64>,
    /// Regions per slab.
    pub regs: Option<u64>,
    /// Pages per slab.
    pub pages: Option<u64>,
    pub nslabs: Option<u64>,
    pub nreslabs: Option<u64>,
}

impl Bin {
    /// Bytes of slabs this class holds (curslabs × pages × page size).
    pub fn slab_bytes(&self, page: u64) -> Option<u64> {
        self.curslabs?.checked_mul(self.pages?)?.checked_mul(page)
    }
    /// Bytes live in regions.
    pub fn live_bytes(&self) -> Option<u64> {
        self.allocated
            .or_else(|| self.curregs?.checked_mul(self.size))
    }
    /// Live regions over the regions its slabs have (0..1).
    pub fn utilisation(&self) -> Option<f64> {
        let regs = self.curslabs?.checked_mul(self.regs?)?;
        (regs > 0).then(|| self.curregs.unwrap_or(0) as f64 / regs as f64)
    }
}

/// One large size class in one arena.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Large {
    pub size: u64,
    pub index: Option<u64>,
    pub allocated: Option<u64>,
    pub nmalloc: Option<u64>,
    pub ndalloc: Option<u64>,
    pub curlextents: Option<u64>,
}

/// Counts of one allocation kind (the small/large rows of an arena).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub allocated: Option<u64>,
    pub nmalloc: Option<u64>,
    pub ndalloc: Option<u64>,
    pub nrequests: Option<u64>,
}

/// Which arena statistics these are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArenaId {
    Merged,
    Destroyed,
    Index(u64),
}

impl std::fmt::Display for ArenaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArenaId::Merged => f.write_str("all arenas (merged)"),
            ArenaId::Destroyed => f.write_str("destroyed arenas"),
            ArenaId::Index(i) => write!(f, "arena {i}"),
        }
    }
}

/// One arena's statistics (or the merged or destroyed arenas').
#[derive(Clone, Debug, Serialize)]
pub struct Arena {
    pub id: ArenaId,
    pub nthreads: Option<u64>,
    pub uptime_ns: Option<u64>,
    pub dirty_decay_ms: Option<i64>,
    pub muzzy_decay_ms: Option<i64>,
    /// Pages in active extents, dirty (freed, not purged) and muzzy.
    pub pactive: Option<u64>,
    pub pdirty: Option<u64>,
    pub pmuzzy: Option<u64>,
    pub dirty_npurge: Option<u64>,
    pub dirty_nmadvise: Option<u64>,
    pub dirty_purged: Option<u64>,
    pub muzzy_npurge: Option<u64>,
    pub muzzy_nmadvise: Option<u64>,
    pub muzzy_purged: Option<u64>,
    pub small: Counts,
    pub large: Counts,
    pub active: Option<u64>,
    pub mapped: Option<u64>,
    pub retained: Option<u64>,
    pub base: Option<u64>,
    pub internal: Option<u64>,
    pub metadata_thp: Option<u64>,
    pub tcache_bytes: Option<u64>,
    pub resident: Option<u64>,
    pub bins: Vec<Bin>,
    pub large_classes: Vec<Large>,
}

impl Arena {
    pub fn new(id: ArenaId) -> Arena {
        Arena {
            id,
            nthreads: None,
            uptime_ns: None,
            dirty_decay_ms: None,
            muzzy_decay_ms: None,
            pactive: None,
            pdirty: None,
            pmuzzy: None,
            dirty_npurge: None,
            dirty_nmadvise: None,
            dirty_purged: None,
            muzzy_npurge: None,
            muzzy_nmadvise: None,
            muzzy_purged: None,
            small: Counts::default(),
            large: Counts::default(),
            active: None,
            mapped: None,
            retained: None,
            base: None,
            internal: None,
            metadata_thp: None,
            tcache_bytes: None,
            resident: None,
            bins: Vec::new(),
            large_classes: Vec::new(),
        }
    }

    /// Bytes allocated (small + large).
    pub fn allocated(&self) -> Option<u64> {
        match (self.small.allocated, self.large.allocated) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        }
    }
}

/// Something in the input that could not be read.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// 1-based line number in the input (0 when not tied to a line).
    pub line: usize,
    pub reason: String,
}

/// One statistics report.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub allocator: Allocator,
    pub format: Format,
    pub version: Option<String>,
    pub totals: Totals,
    pub options: Options,
    /// Background purging threads running, and their passes.
    pub background_threads: Option<u64>,
    pub background_runs: Option<u64>,
    /// rjem's breakdown of metadata, (part, bytes).
    pub metadata_parts: Vec<(String, u64)>,
    /// Merged, destroyed and per-arena statistics, as present.
    pub arenas: Vec<Arena>,
    /// What could not be read.
    pub problems: Vec<Problem>,
    /// The line the report starts on in its input (1-based).
    pub first_line: usize,
}

impl Snapshot {
    pub fn new(format: Format) -> Snapshot {
        Snapshot {
            allocator: Allocator::Unknown,
            format,
            version: None,
            totals: Totals::default(),
            options: Options::default(),
            background_threads: None,
            background_runs: None,
            metadata_parts: Vec::new(),
            arenas: Vec::new(),
            problems: Vec::new(),
            first_line: 1,
        }
    }

    /// The page size (4 KiB when the report does not say).
    pub fn page(&self) -> u64 {
        self.options.page.filter(|&p| p > 0).unwrap_or(4096)
    }

    /// The per-arena statistics (numbered arenas only).
    pub fn numbered(&self) -> impl Iterator<Item = &Arena> {
        self.arenas
            .iter()
            .filter(|a| matches!(a.id, ArenaId::Index(_)))
    }

    /// Statistics summed over every arena: the merged section when there is
    /// one, else the only arena, else none.
    pub fn merged(&self) -> Option<&Arena> {
        self.arenas
            .iter()
            .find(|a| a.id == ArenaId::Merged)
            .or_else(|| {
                let mut n = self.numbered();
                let first = n.next()?;
                n.next().is_none().then_some(first)
            })
    }

    /// Whether the report has any figure at all.
    pub fn has_totals(&self) -> bool {
        let t = &self.totals;
        [t.allocated, t.active, t.resident, t.mapped, t.metadata]
            .iter()
            .any(Option::is_some)
    }
}
