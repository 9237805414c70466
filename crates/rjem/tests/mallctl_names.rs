//! Every `mallctl` name jemalloc 5.3 documents (its manual's list, in
//! `data/jemalloc-5.3-mallctl-names.tsv`) either resolves in rjem with
//! jemalloc's C type and access, or is listed below with the reason rjem
//! does not have it.

use rjem::ctl::{Error, Mib, Type};

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

/// Names (prefixes) rjem does not answer, and why. (Names that need a
/// configure option rjem's `config.*` reports as off are handled as
/// jemalloc built without it handles them: ENOENT, or an answer.)
const NOT_IN_RJEM: &[(&str, &str)] = &[
    (
        "stats.mutexes.prof_thds_data",
        "the profiler keeps no per-thread records, so has no such lock",
    ),
    (
        "stats.mutexes.prof_dump",
        "dumps hold the records' lock (mutexes.prof) while they read them",
    ),
    (
        "stats.mutexes.background_thread",
        "the purger thread runs on atomics and a futex word, without a lock",
    ),
    (
        "stats.arenas.0.mutexes.",
        "one page lock per arena (mutexes.pages) instead of jemalloc's seven",
    ),
];

/// Names rjem answers with another access than jemalloc's, and why.
const ACCESS_DIFFERS: &[(&str, &str)] = &[
    (
        "arena.0.dss",
        "read-only: rjem maps with mmap only, so the precedence is always disabled",
    ),
    (
        "thread.prof.name",
        "jemalloc's is read or written (\"r- or -w\", the list says r-); rjem's is both",
    ),
];

const COUNTERS: &[&str] = &[
    "num_ops",
    "num_wait",
    "num_spin_acq",
    "num_owner_switch",
    "total_wait_time",
    "max_wait_time",
    "max_num_thds",
];

/// (read type, written type) for a C type in the manual's notation.
fn types(c: &str, name: &str) -> (Type, Type) {
    let t = |t| (t, t);
    match c {
        "(const char *)" => t(Type::Str),
        "(bool)" => t(Type::Bool),
        "(unsigned)" | "(uint32_t)" => t(Type::U32),
        "(uint64_t)" => t(Type::U64),
        "(size_t)" => t(Type::Usize),
        // int64_t and ssize_t are the same size and signedness here.
        "(ssize_t)" | "(int64_t)" => t(Type::Isize),
        "(void)" => t(Type::Void),
        "(uint64_t *)" | "(extent_hooks_t *)" => t(Type::Ptr),
        "(unsigned, extent_hooks_t *)" | "(unsigned, void*)" => (Type::U32, Type::Ptr),
        "(counter specific type)" => {
            if name.ends_with("max_num_thds") {
                t(Type::U32)
            } else {
                t(Type::U64)
            }
        }
        other => panic!("unknown C type {other} for {name}"),
    }
}

/// The concrete names a documented pattern stands for.
fn expand(pattern: &str) -> Vec<String> {
    let p = pattern
        .trim_end_matches(';')
        .replace("<i>", "0")
        .replace("<j>", "0");
    if p.contains("{counter}") {
        COUNTERS.iter().map(|c| p.replace("{counter}", c)).collect()
    } else if p.contains("{extent_type}") {
        ["dirty", "muzzy", "retained"]
            .iter()
            .map(|t| p.replace("{extent_type}", t))
            .collect()
    } else {
        vec![p]
    }
}

#[test]
fn every_documented_name_is_answered_as_jemalloc_does() {
    let tsv = include_str!("data/jemalloc-5.3-mallctl-names.tsv");
    let (mut checked, mut skipped, mut wrong) = (0, 0, Vec::new());
    for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (pattern, ctype, access) = (f[0], f[1], f[2]);
        // `[--enable-fill]`: jemalloc built without it answers ENOENT.
        let configured = match f.get(3).and_then(|c| c.strip_prefix("[--enable-")) {
            Some(opt) => {
                let opt = opt.trim_end_matches(']');
                rjem::ctl::read(&format!("config.{opt}")) == Ok(rjem::ctl::Value::Bool(true))
            }
            None => true,
        };
        for name in expand(pattern) {
            if let Some((_, why)) = NOT_IN_RJEM.iter().find(|(p, _)| name.starts_with(p)) {
                assert!(
                    Mib::new(&name).is_err(),
                    "{name} is listed as missing ({why}) but resolves"
                );
                skipped += 1;
                continue;
            }
            let mib = match Mib::new(&name) {
                Ok(m) => m,
                Err(Error::NotFound) if !configured => {
                    skipped += 1;
                    continue;
                }
                Err(e) => {
                    wrong.push(format!("{name}: {e:?}"));
                    continue;
                }
            };
            let (ty, wty) = types(ctype, &name);
            let got = (
                mib.ty().unwrap(),
                mib.write_ty().unwrap(),
                mib.readable().unwrap(),
                mib.writable().unwrap(),
            );
            let want = match access {
                "r-" => (ty, wty, true, false),
                "rw" => (ty, wty, true, true),
                "-w" => (ty, wty, false, true),
                "--" => (Type::Void, Type::Void, true, false),
                other => panic!("access {other} of {name}"),
            };
            // An action reads as neither readable nor writable in C terms;
            // in rjem it is a Void leaf that can be run.
            let differs = ACCESS_DIFFERS.iter().any(|(n, _)| *n == name);
            if differs {
                assert_eq!((got.0, got.2), (want.0, want.2), "{name}");
            } else if got != want && !(want.0 == Type::Void && got.0 == Type::Void) {
                wrong.push(format!("{name}: rjem {got:?}, jemalloc {want:?}"));
            }
            // Readable controls can be read (actions are run elsewhere;
            // queries need a value written).
            if want.2 && ty != Type::Void && ty == wty {
                match mib.read() {
                    Ok(v) => assert_eq!(v.ty(), ty, "{name}"),
                    Err(Error::NotFound) if name.contains(".0.") => {}
                    Err(e) => wrong.push(format!("{name}: read {e:?}")),
                }
            }
            checked += 1;
        }
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked >= 150, "{checked} names checked, {skipped} skipped");
}
