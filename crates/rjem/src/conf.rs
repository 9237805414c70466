//! Run-time options, read once at start-up from `MALLOC_CONF` (jemalloc's
//! syntax: `name:value,name:value`).
//!
//! Owns: the option values and their parsing. Parsing never allocates. A bad
//! pair is reported on stderr naming the option (`<rjem>: Invalid conf
//! value: narenas:abc`) and skipped, keeping the default; with
//! `abort_conf:true` a bad pair aborts instead, as in jemalloc.
//!
//! Invariants: values are in range once parsed (`tcache_max` is clamped to
//! what the thread cache can hold, `narenas` to the arena table).

use crate::os;

/// Largest `tcache_max` accepted (jemalloc's `TCACHE_MAXCLASS_LIMIT`).
pub const TCACHE_MAX_LIMIT: usize = 8 << 20;

#[derive(Clone, Copy, Debug)]
pub struct Conf {
    /// Abort on an invalid option instead of warning.
    pub abort_conf: bool,
    /// Automatic arenas; 0 means 4 x CPUs.
    pub narenas: usize,
    /// Thread caches on or off.
    pub tcache: bool,
    /// Largest size class cached per thread.
    pub tcache_max: usize,
    /// A reused dirty/muzzy extent is at most 2^this times the request.
    pub lg_extent_max_active_fit: u32,
    /// Milliseconds over which freed pages decay dirty -> muzzy (or straight
    /// to released when `muzzy_decay_ms` is 0); -1 never, 0 at once.
    pub dirty_decay_ms: i64,
    /// Milliseconds over which muzzy pages decay to released.
    pub muzzy_decay_ms: i64,
    /// Keep purged address space for reuse (true) or unmap it (false).
    pub retain: bool,
    /// Background purging: see `BackgroundMode`.
    pub background_thread: BackgroundMode,
    /// Upper bound on purger threads (rjem uses one; 0 disables it).
    pub max_background_threads: usize,
    /// Requests of at least this many bytes go to the huge arena, which
    /// purges at once; 0 disables the huge arena.
    pub oversize_threshold: usize,
}

/// Who purges decayed pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackgroundMode {
    /// rjem's default: threads purge inline when they free, and one purger
    /// thread is started lazily the first time an arena holds more than a
    /// few MiB of freed pages, so an idle process still returns memory.
    Auto,
    /// `background_thread:true`: the purger thread starts at the first free
    /// that reaches a page allocator and then does all decay purging
    /// (jemalloc's semantics); if no thread can run, threads decay inline.
    On,
    /// `background_thread:false`: no thread; decay only when threads free.
    Off,
}

impl Conf {
    pub const DEFAULT: Conf = Conf {
        abort_conf: false,
        narenas: 0,
        tcache: true,
        tcache_max: 32 << 10,
        lg_extent_max_active_fit: 6,
        dirty_decay_ms: 10_000,
        muzzy_decay_ms: 0,
        retain: true,
        background_thread: BackgroundMode::Auto,
        max_background_threads: 4,
        oversize_threshold: 8 << 20,
    };
}

/// Options jemalloc 5.3 has that this version does not implement yet: they
/// are accepted with a warning rather than called invalid.
const NOT_YET: &[&str] = &[
    "dss",
    "percpu_arena",
    "metadata_thp",
    "thp",
    "junk",
    "zero",
    "zero_realloc",
    "stats_print",
    "stats_print_opts",
    "stats_interval",
    "stats_interval_opts",
    "prof",
    "prof_prefix",
    "prof_active",
    "prof_thread_active_init",
    "lg_prof_sample",
    "lg_prof_interval",
    "prof_gdump",
    "prof_final",
    "prof_leak",
    "utrace",
    "xmalloc",
    "lg_tcache_max",
    "tcache_nslots_small_min",
    "tcache_nslots_small_max",
    "tcache_nslots_large",
    "lg_tcache_nslots_mul",
    "tcache_gc_incr_bytes",
    "tcache_gc_delay_bytes",
    "lg_tcache_flush_small_div",
    "lg_tcache_flush_large_div",
    "slab_sizes",
    "confirm_conf",
    "hpa",
    "cache_oblivious",
];

fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"true" => Some(true),
        b"false" => Some(false),
        _ => None,
    }
}

/// Parses a decimal (or 0x hex) unsigned integer.
fn parse_usize(v: &[u8]) -> Option<usize> {
    let (digits, radix) = match v {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (v, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: usize = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)? as usize;
        n = n.checked_mul(radix as usize)?.checked_add(d)?;
    }
    Some(n)
}

/// Parses a decay time: -1, or 0 up to a year of milliseconds.
fn parse_decay(v: &[u8]) -> Option<i64> {
    if v == b"-1" {
        return Some(-1);
    }
    let n = parse_usize(v)?;
    (n <= 365 * 24 * 3600 * 1000).then_some(n as i64)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// A pair without `:` or with an unknown name.
    InvalidPair,
    /// A known option with a value it cannot take.
    InvalidValue,
    /// A jemalloc option this version does not implement.
    Unsupported,
}

/// Applies one `name:value` pair.
pub fn apply(conf: &mut Conf, name: &[u8], value: &[u8]) -> Result<(), Problem> {
    match name {
        b"abort_conf" => conf.abort_conf = parse_bool(value).ok_or(Problem::InvalidValue)?,
        b"tcache" => conf.tcache = parse_bool(value).ok_or(Problem::InvalidValue)?,
        b"narenas" => {
            let n = parse_usize(value).ok_or(Problem::InvalidValue)?;
            if n == 0 || n >= crate::arena::MAX_ARENAS {
                return Err(Problem::InvalidValue);
            }
            conf.narenas = n;
        }
        b"tcache_max" => {
            let n = parse_usize(value).ok_or(Problem::InvalidValue)?;
            conf.tcache_max = n.min(TCACHE_MAX_LIMIT);
        }
        b"lg_extent_max_active_fit" => {
            let n = parse_usize(value).ok_or(Problem::InvalidValue)?;
            if n > 63 {
                return Err(Problem::InvalidValue);
            }
            conf.lg_extent_max_active_fit = n as u32;
        }
        b"dirty_decay_ms" => {
            conf.dirty_decay_ms = parse_decay(value).ok_or(Problem::InvalidValue)?
        }
        b"muzzy_decay_ms" => {
            conf.muzzy_decay_ms = parse_decay(value).ok_or(Problem::InvalidValue)?
        }
        b"retain" => conf.retain = parse_bool(value).ok_or(Problem::InvalidValue)?,
        b"background_thread" => {
            conf.background_thread = match parse_bool(value).ok_or(Problem::InvalidValue)? {
                true => BackgroundMode::On,
                false => BackgroundMode::Off,
            }
        }
        b"max_background_threads" => {
            conf.max_background_threads = parse_usize(value).ok_or(Problem::InvalidValue)?
        }
        b"oversize_threshold" => {
            conf.oversize_threshold = parse_usize(value).ok_or(Problem::InvalidValue)?
        }
        _ if NOT_YET.iter().any(|k| k.as_bytes() == name) => return Err(Problem::Unsupported),
        _ => return Err(Problem::InvalidPair),
    }
    Ok(())
}

/// Parses a whole configuration string, reporting each bad pair through
/// `report(problem, pair)`.
pub fn parse(conf: &mut Conf, s: &[u8], report: &mut dyn FnMut(Problem, &[u8])) {
    for pair in s.split(|&c| c == b',') {
        if pair.is_empty() {
            continue;
        }
        let Some(colon) = pair.iter().position(|&c| c == b':') else {
            report(Problem::InvalidPair, pair);
            continue;
        };
        if let Err(p) = apply(conf, &pair[..colon], &pair[colon + 1..]) {
            report(p, pair);
        }
    }
}

/// Reads `MALLOC_CONF` from the environment into a configuration.
pub fn from_env() -> Conf {
    let mut conf = Conf::DEFAULT;
    if let Some(s) = os::getenv(c"MALLOC_CONF") {
        let mut bad = false;
        parse(&mut conf, s, &mut |p, pair| {
            let msg: &[u8] = match p {
                Problem::InvalidPair => b"<rjem>: Invalid conf pair: ",
                Problem::InvalidValue => b"<rjem>: Invalid conf value: ",
                Problem::Unsupported => b"<rjem>: Option not supported by this rjem, ignored: ",
            };
            os::write_stderr(msg);
            os::write_stderr(pair);
            os::write_stderr(b"\n");
            bad |= p != Problem::Unsupported;
        });
        if bad && conf.abort_conf {
            os::write_stderr(b"<rjem>: Aborting on invalid MALLOC_CONF (abort_conf:true)\n");
            // SAFETY: abort has no preconditions.
            unsafe { libc::abort() }
        }
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn run(s: &str) -> (Conf, Vec<(Problem, Vec<u8>)>) {
        let mut c = Conf::DEFAULT;
        let mut errs = Vec::new();
        parse(&mut c, s.as_bytes(), &mut |p, pair| {
            errs.push((p, pair.to_vec()))
        });
        (c, errs)
    }

    #[test]
    fn good_options() {
        let (c, errs) = run("narenas:3,tcache:false,tcache_max:0x1000,lg_extent_max_active_fit:8");
        assert!(errs.is_empty());
        assert_eq!(c.narenas, 3);
        assert!(!c.tcache);
        assert_eq!(c.tcache_max, 4096);
        assert_eq!(c.lg_extent_max_active_fit, 8);
    }

    #[test]
    fn bad_options_are_named_and_skipped() {
        let (c, errs) = run("narenas:abc,bogus:1,tcache,junk:true,tcache_max:99999999999");
        assert_eq!(c.narenas, 0);
        assert_eq!(c.tcache_max, TCACHE_MAX_LIMIT);
        assert_eq!(errs.len(), 4);
        assert_eq!(errs[0], (Problem::InvalidValue, b"narenas:abc".to_vec()));
        assert_eq!(errs[1], (Problem::InvalidPair, b"bogus:1".to_vec()));
        assert_eq!(errs[2], (Problem::InvalidPair, b"tcache".to_vec()));
        assert_eq!(errs[3], (Problem::Unsupported, b"junk:true".to_vec()));
    }

    #[test]
    fn purging_options() {
        let (c, errs) = run(
            "dirty_decay_ms:-1,muzzy_decay_ms:500,retain:false,background_thread:true,oversize_threshold:0",
        );
        assert!(errs.is_empty());
        assert_eq!((c.dirty_decay_ms, c.muzzy_decay_ms), (-1, 500));
        assert!(!c.retain);
        assert_eq!(c.background_thread, BackgroundMode::On);
        assert_eq!(c.oversize_threshold, 0);
        let (_, errs) = run("dirty_decay_ms:-2,muzzy_decay_ms:x");
        assert_eq!(errs.len(), 2);
        assert_eq!(Conf::DEFAULT.background_thread, BackgroundMode::Auto);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_usize(b"0"), Some(0));
        assert_eq!(parse_usize(b"18446744073709551615"), Some(usize::MAX));
        assert_eq!(parse_usize(b"18446744073709551616"), None);
        assert_eq!(parse_usize(b""), None);
        assert_eq!(parse_usize(b"-1"), None);
    }
}
