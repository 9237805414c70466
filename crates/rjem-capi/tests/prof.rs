//! The heap profiler (issue 13) from C, preloaded: dumps in jemalloc's
//! `heap_v2` format read by Debian's `jeprof` (package libjemalloc-dev),
//! attribution to the right functions, the sampling statistics, run-time
//! switches, the leak report, and fork and thread churn while sampling.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The test program, built once (tests run in parallel).
fn prog() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| build("prof.c", Link::Shared)).clone()
}

/// One stack of a dump: frames (innermost first) and counts.
struct Rec {
    frames: Vec<u64>,
    cur: (u64, u64),
    accum: (u64, u64),
}

struct Dump {
    period: u64,
    recs: Vec<Rec>,
    maps: String,
}

fn counts(s: &str) -> ((u64, u64), (u64, u64)) {
    // "t*: 12: 3456 [7: 8910]"
    let s = s
        .trim()
        .strip_prefix("t*:")
        .expect("t*: line")
        .replace(['[', ']', ':'], " ");
    let n: Vec<u64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    ((n[0], n[1]), (n[2], n[3]))
}

fn parse(path: &Path) -> Dump {
    let text = std::fs::read_to_string(path).unwrap();
    let (head, maps) = text
        .split_once("\nMAPPED_LIBRARIES:\n")
        .expect("maps section");
    let mut lines = head.lines();
    let period = lines
        .next()
        .and_then(|l| l.strip_prefix("heap_v2/"))
        .expect("heap_v2 header")
        .parse()
        .unwrap();
    counts(lines.next().expect("totals"));
    let mut recs = Vec::new();
    while let Some(l) = lines.next() {
        // Per-thread-name lines ("  t3: ...") follow a stack's t*: line.
        if l.is_empty() || l.trim_start().starts_with('t') {
            continue;
        }
        let frames = l
            .strip_prefix("@ ")
            .expect("a stack")
            .split(' ')
            .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).unwrap())
            .collect();
        let (cur, accum) = counts(lines.next().expect("counts of a stack"));
        recs.push(Rec { frames, cur, accum });
    }
    Dump {
        period,
        recs,
        maps: maps.to_string(),
    }
}

/// jeprof's unbiasing (and jemalloc's): a sample of average size s stands
/// for 1 / (1 - exp(-s / period)) allocations.
fn scaled((objs, bytes): (u64, u64), period: u64) -> f64 {
    if objs == 0 {
        return 0.0;
    }
    let avg = bytes as f64 / objs as f64;
    bytes as f64 / (1.0 - (-avg / period as f64).exp())
}

/// The sites the program printed ("site NAME ADDR"), by address.
fn sites(stdout: &str) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("site "))
        .map(|l| {
            let (name, addr) = l.split_once(' ').unwrap();
            (
                u64::from_str_radix(addr.trim_start_matches("0x"), 16).unwrap(),
                name.to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The site whose code the innermost frame (a return address) is in
/// (the sites are small functions: within 4 KiB of their start).
fn site_of(sites: &[(u64, String)], pc: u64) -> &str {
    sites
        .iter()
        .rev()
        .find(|(a, _)| *a < pc)
        .filter(|(a, _)| pc - a < 4096)
        .map(|(_, n)| n.as_str())
        .unwrap_or("?")
}

/// Estimated live (cur) and cumulative (accum) bytes per site.
fn per_site(d: &Dump, sites: &[(u64, String)]) -> BTreeMap<String, (f64, f64, u64)> {
    let mut m = BTreeMap::new();
    for r in &d.recs {
        let e = m
            .entry(site_of(sites, r.frames[0]).to_string())
            .or_insert((0.0, 0.0, 0));
        e.0 += scaled(r.cur, d.period);
        e.1 += scaled(r.accum, d.period);
        e.2 += r.accum.0;
    }
    m
}

fn within(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want
}

fn jeprof() -> &'static str {
    let p = "/usr/bin/jeprof";
    assert!(
        Path::new(p).exists(),
        "jeprof is needed (Debian package libjemalloc-dev; .ci/run installs it)"
    );
    p
}

fn scratch(name: &str) -> PathBuf {
    let d = out_dir().join("prof");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// `jeprof --text --show_bytes`: cumulative bytes per function (the
/// sites' own: `kept` is inlined into them, and jeprof reports inlined
/// frames as functions of their own).
fn jeprof_flat(exe: &Path, dump: &Path) -> BTreeMap<String, f64> {
    let o = Command::new(jeprof())
        .args(["--text", "--show_bytes"])
        .arg(exe)
        .arg(dump)
        .output()
        .unwrap();
    let out = ok(&o, "jeprof");
    let mut m = BTreeMap::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 6 && f[1].ends_with('%') {
            if let Ok(b) = f[3].parse::<f64>() {
                m.insert(f[5].to_string(), b);
            }
        }
    }
    m
}

#[test]
fn dumps_attribute_bytes_to_their_sites() {
    let exe = prog();
    let (live, freed) = (scratch("sites.heap"), scratch("sites-freed.heap"));
    let o = run(
        &exe,
        &["sites", live.to_str().unwrap(), freed.to_str().unwrap()],
        true,
        &[("MALLOC_CONF", "prof:true,prof_accum:true,lg_prof_sample:14")],
    );
    let out = ok(&o, "prof sites");
    assert!(out.contains("dumped after free"), "{out}");
    let sites = sites(&out);
    let d = parse(&live);
    assert_eq!(d.period, 1 << 14);
    assert!(d.maps.contains("prof-shared"), "maps name the program");
    let got = per_site(&d, &sites);
    // The truth, at usable sizes. 16 KiB sampling gives each live site
    // 1,000-3,000 samples (1-3% standard deviation): 12% is over 4 sigma.
    let truth = [
        ("site_small", 400_000.0 * 112.0),
        ("site_medium", 20_000.0 * 1536.0),
        ("site_large", 1_000.0 * 40960.0),
        ("site_realloc", 5_000.0 * 4096.0),
    ];
    for (site, want) in truth {
        let live = got.get(site).map_or(0.0, |g| g.0);
        assert!(
            within(live, want, 0.12),
            "{site}: estimated {live:.0} live bytes, truth {want}"
        );
    }
    // Freed at once: counted (prof_accum), never live.
    let churn = got.get("site_churn").copied().unwrap_or_default();
    assert_eq!(churn.0, 0.0, "churned blocks are not live");
    assert!(
        within(churn.1, 2_000_000.0 * 64.0, 0.10),
        "site_churn: estimated {:.0} bytes allocated in all, truth 128000000",
        churn.1
    );
    // Every allocation counted: samples = sum over allocations of
    // 1 - exp(-size / period) (2.7k + 1.8k + 0.9k + 7.8k + 2.4k, plus a
    // few from the C library), within 5% (about 6 sigma).
    let p = |s: f64| 1.0 - (-s / 16384.0).exp();
    let realloc: f64 = (4..=12).map(|k| p((1u64 << k) as f64)).sum();
    let want = 400_000.0 * p(112.0)
        + 20_000.0 * p(1536.0)
        + 1_000.0 * p(40960.0)
        + 2_000_000.0 * p(64.0)
        + 5_000.0 * realloc;
    let samples: u64 = got.values().map(|g| g.2).sum();
    assert!(
        within(samples as f64, want, 0.05),
        "{samples} samples, expected about {want:.0}"
    );
    // After the frees nothing of the sites is live.
    let d = parse(&freed);
    let after = per_site(&d, &sites);
    for (site, _) in truth {
        assert_eq!(after.get(site).map_or(0.0, |g| g.0), 0.0, "{site}");
    }
    // jeprof reads the dump and puts the bytes in the same functions.
    let flat = jeprof_flat(&exe, &live);
    for (site, want) in truth {
        let b = flat.get(site).copied().unwrap_or(0.0);
        assert!(
            within(b, want, 0.12),
            "jeprof: {site} has {b} bytes, truth {want}\n{flat:?}"
        );
    }
}

#[test]
fn default_rate_dump_read_by_jeprof() {
    // The default 512 KiB rate, the default file name (prof_prefix), and
    // prof_final's dump at exit.
    let exe = prog();
    let dir = out_dir().join("prof-default");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let live = dir.join("live.heap");
    let conf = format!(
        "prof:true,prof_final:true,prof_prefix:{}/run",
        dir.display()
    );
    let o = run(
        &exe,
        &[
            "sites",
            live.to_str().unwrap(),
            dir.join("x.heap").to_str().unwrap(),
        ],
        true,
        &[("MALLOC_CONF", &conf)],
    );
    ok(&o, "prof sites at the default rate");
    let finals: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("run.") && n.ends_with(".f.heap"))
        .collect();
    assert_eq!(finals.len(), 1, "one prof_final dump: {finals:?}");
    let flat = jeprof_flat(&exe, &live);
    // 44.8 MB at one sample per 512 KiB: about 85 samples (11%); the
    // large site's 40 KB blocks are sampled one in 13.
    for (site, want) in [("site_small", 44.8e6), ("site_large", 40.96e6)] {
        let b = flat.get(site).copied().unwrap_or(0.0);
        assert!(
            within(b, want, 0.5),
            "jeprof: {site} has {b} bytes, truth {want}\n{flat:?}"
        );
    }
}

#[test]
fn switches_at_run_time() {
    let exe = prog();
    let first = scratch("toggle.heap");
    let dir = out_dir().join("prof-toggle");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = format!(
        "prof:true,lg_prof_sample:12,prof_prefix:{}/t",
        dir.display()
    );
    let o = run(
        &exe,
        &["toggle", first.to_str().unwrap()],
        true,
        &[("MALLOC_CONF", &conf)],
    );
    let out = ok(&o, "prof toggle");
    assert!(out.contains("toggled"), "{out}");
    let sites = sites(&out);
    let d = parse(&first);
    assert_eq!(d.period, 1 << 16, "prof.reset changed the rate");
    let got = per_site(&d, &sites);
    for site in ["site_small", "site_medium", "site_large"] {
        assert!(
            !got.contains_key(site),
            "{site} was not to be recorded: {:?}",
            got.keys()
        );
    }
    let r = got.get("site_realloc").map_or(0.0, |g| g.0);
    assert!(within(r, 5_000.0 * 4096.0, 0.25), "site_realloc: {r}");
    // The dump without a name went to the next prof_prefix-based name.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].starts_with("t.") && names[0].ends_with(".m0.heap"),
        "{names:?}"
    );
    let d = parse(&dir.join(&names[0]));
    assert!(d
        .recs
        .iter()
        .all(|r| r.cur.0 == 0 || site_of(&sites, r.frames[0]) != "site_realloc"));
}

/// Every block sampled (`lg_prof_sample:0`), of small and cached large
/// classes, freed by `free`, `free_sized` and `sdallocx`: each is counted
/// while live, and each free reaches the profiler (a sampled block never
/// enters a thread cache, whose hit path would hide its free).
#[test]
fn every_free_of_a_sampled_block_is_seen() {
    let exe = prog();
    let (live, freed) = (scratch("sized-live.heap"), scratch("sized-freed.heap"));
    let o = run(
        &exe,
        &["sized", live.to_str().unwrap(), freed.to_str().unwrap()],
        true,
        &[("MALLOC_CONF", "prof:true,lg_prof_sample:0")],
    );
    let out = ok(&o, "prof sized");
    assert!(out.contains("sized"), "{out}");
    let sites = sites(&out);
    let objs = |path: &Path| -> u64 {
        let d = parse(path);
        assert_eq!(d.period, 1);
        d.recs
            .iter()
            .filter(|r| site_of(&sites, r.frames[0]) == "site_sized")
            .map(|r| r.cur.0)
            .sum()
    };
    assert_eq!(objs(&live), 4000, "every allocation is a sample");
    assert_eq!(objs(&freed), 0, "every free was seen");
}

#[test]
fn leak_report_names_the_leaking_site() {
    // Exported symbols, so that the report (which asks the dynamic linker)
    // can name the function.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/prof.c");
    let exe = out_dir().join("prof-rdynamic");
    let st = Command::new("cc")
        .args(["-O2", "-g", "-rdynamic", "-pthread", "-I"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir().display()))
        .arg("-lrjem_capi")
        .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
        .status()
        .unwrap();
    assert!(st.success());
    let o = run(
        &exe,
        &["leak"],
        true,
        &[("MALLOC_CONF", "prof:true,prof_leak:true")],
    );
    ok(&o, "prof leak");
    let err = text(&o.stderr);
    assert!(
        err.contains("<rjem>: Leak approximation summary: ~"),
        "{err}"
    );
    let first_site = err
        .lines()
        .find(|l| l.contains(" bytes in ~"))
        .and_then(|_| {
            err.lines()
                .skip_while(|l| !l.contains(" bytes in ~"))
                .nth(1)
        })
        .unwrap_or("");
    assert!(first_site.contains("site_leak"), "{err}");
    // About 100 MB leaked (200 samples: within 40%).
    let bytes: f64 = err
        .split("summary: ~")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(within(bytes, 100_000.0 * 1024.0, 0.4), "{bytes}");
    // prof_leak_error: the same, and exit status 1.
    let o = run(
        &exe,
        &["leak"],
        true,
        &[("MALLOC_CONF", "prof:true,prof_leak_error:true")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
}

#[test]
fn fork_and_thread_churn_while_sampling() {
    let exe = prog();
    let (child, parent) = (scratch("child.heap"), scratch("parent.heap"));
    let o = run(
        &exe,
        &["churn", child.to_str().unwrap(), parent.to_str().unwrap()],
        true,
        &[("MALLOC_CONF", "prof:true,lg_prof_sample:10,prof_accum:true")],
    );
    let out = ok(&o, "prof churn");
    assert!(out.contains("churned"), "{out}");
    let d = parse(&parent);
    let samples: u64 = d.recs.iter().map(|r| r.accum.0).sum();
    // 20 rounds x 4 threads x 20,000 blocks of 64-764 bytes (1/3 grown
    // to 5,000 by realloc) at one sample per KiB: tens of thousands.
    assert!(samples > 20_000, "{samples} samples");
    assert!(parse(&child).recs.iter().any(|r| r.cur.0 > 0));
}

#[test]
fn interval_and_gdump_dumps() {
    let exe = prog();
    let dir = out_dir().join("prof-interval");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // One dump per 64 MiB of allocation: the sites run allocates about
    // 290 MB in all; gdump dumps on new highs of active memory.
    let conf = format!(
        "prof:true,lg_prof_interval:26,prof_gdump:true,prof_prefix:{}/i",
        dir.display()
    );
    let live = dir.join("live.heap");
    let o = run(
        &exe,
        &[
            "sites",
            live.to_str().unwrap(),
            dir.join("x.heap").to_str().unwrap(),
        ],
        true,
        &[("MALLOC_CONF", &conf)],
    );
    ok(&o, "prof interval");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let interval = names.iter().filter(|n| n.contains(".i")).count();
    let gdump = names.iter().filter(|n| n.contains(".u")).count();
    assert!(
        (2..=6).contains(&interval),
        "{interval} interval dumps: {names:?}"
    );
    assert!(gdump >= 1, "no gdump dump: {names:?}");
    for n in names.iter().filter(|n| n.starts_with("i.")) {
        parse(&dir.join(n));
    }
}

/// pprof's `profile.proto` (the messages `rjem prof` reads with too).
#[path = "../../rjem-cli/src/prof/proto.rs"]
mod pb;

/// Reads a gzipped pprof file.
fn read_pprof(path: &Path) -> pb::Profile {
    use prost::Message;
    use std::io::Read;
    let gz = std::fs::read(path).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .expect("a valid gzip stream (CRC and length checked)");
    pb::Profile::decode(&raw[..]).expect("a valid profile.proto message")
}

#[test]
fn pprof_dump_attributes_bytes_to_their_sites() {
    let exe = prog();
    let (live, freed) = (scratch("sites.pb.gz"), scratch("sites-freed.pb.gz"));
    let o = run(
        &exe,
        &["sites", live.to_str().unwrap(), freed.to_str().unwrap()],
        true,
        &[("MALLOC_CONF", "prof:true,prof_accum:true,lg_prof_sample:14")],
    );
    let out = ok(&o, "prof sites (pprof)");
    assert!(out.contains("dumped after free"), "{out}");
    let p = read_pprof(&live);
    let s = |i: i64| p.string_table[i as usize].as_str();
    assert_eq!(s(0), "");
    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes")
        ]
    );
    let pt = p.period_type.as_ref().unwrap();
    assert_eq!((s(pt.r#type), s(pt.unit)), ("space", "bytes"));
    assert_eq!(p.period, 1 << 14);
    assert_eq!(s(p.default_sample_type), "inuse_space");
    assert!(p.time_nanos > 1_600_000_000_000_000_000);
    // Mappings: the program and librjem, with the program's build id
    // (the one in its file: `readelf -n` agrees with the bytes here).
    let prog_map = p
        .mapping
        .iter()
        .find(|m| s(m.filename) == exe.to_str().unwrap())
        .expect("a mapping of the program");
    assert!(prog_map.has_functions);
    let id = s(prog_map.build_id);
    assert!(
        id.len() >= 16 && id.bytes().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    let note = Command::new("readelf")
        .args(["-n"])
        .arg(&exe)
        .output()
        .map(|o| text(&o.stdout))
        .unwrap_or_default();
    if note.contains("Build ID") {
        assert!(note.contains(id), "build id {id} not in\n{note}");
    }
    assert!(p
        .mapping
        .iter()
        .any(|m| s(m.filename).ends_with("librjem_capi.so")));
    // Every location lies in its mapping; functions are named from the
    // program's symbol table.
    let maps: BTreeMap<u64, &pb::Mapping> = p.mapping.iter().map(|m| (m.id, m)).collect();
    for l in &p.location {
        if let Some(m) = maps.get(&l.mapping_id) {
            assert!((m.memory_start..m.memory_limit).contains(&l.address));
        }
    }
    let funcs: BTreeMap<u64, &str> = p.function.iter().map(|f| (f.id, s(f.name))).collect();
    let locs: BTreeMap<u64, &pb::Location> = p.location.iter().map(|l| (l.id, l)).collect();
    // Bytes per innermost function (the values are already scaled).
    let mut live_bytes: BTreeMap<&str, f64> = BTreeMap::new();
    let mut alloc_bytes: BTreeMap<&str, f64> = BTreeMap::new();
    for smp in &p.sample {
        assert_eq!(smp.value.len(), 4);
        let leaf = smp
            .location_id
            .first()
            .and_then(|id| locs.get(id))
            .and_then(|l| l.line.first())
            .and_then(|ln| funcs.get(&ln.function_id))
            .copied()
            .unwrap_or("?");
        *live_bytes.entry(leaf).or_default() += smp.value[3] as f64;
        *alloc_bytes.entry(leaf).or_default() += smp.value[1] as f64;
    }
    for (site, want) in [
        ("site_small", 400_000.0 * 112.0),
        ("site_medium", 20_000.0 * 1536.0),
        ("site_large", 1_000.0 * 40960.0),
        ("site_realloc", 5_000.0 * 4096.0),
    ] {
        let got = live_bytes.get(site).copied().unwrap_or(0.0);
        assert!(
            within(got, want, 0.12),
            "{site}: {got:.0} live bytes in the pprof, truth {want}: {live_bytes:?}"
        );
    }
    assert_eq!(live_bytes.get("site_churn").copied().unwrap_or(0.0), 0.0);
    let churn = alloc_bytes.get("site_churn").copied().unwrap_or(0.0);
    assert!(
        within(churn, 128e6, 0.10),
        "site_churn allocated {churn:.0}"
    );
    // After the frees nothing of the sites is live.
    let p = read_pprof(&freed);
    let inuse: i64 = p.sample.iter().map(|s| s.value[3]).sum();
    assert!(inuse < 1_000_000, "{inuse} bytes still in use");
}

#[test]
fn prof_pprof_names_prefix_dumps_pb_gz() {
    let exe = prog();
    let dir = out_dir().join("prof-pprof");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = format!(
        "prof:true,prof_pprof:true,prof_final:true,lg_prof_sample:16,prof_prefix:{}/p",
        dir.display()
    );
    let o = run(
        &exe,
        &["toggle", dir.join("first.heap").to_str().unwrap()],
        true,
        &[("MALLOC_CONF", &conf)],
    );
    ok(&o, "prof toggle with prof_pprof");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // The named dump is heap_v2 (its name does not end in .pb.gz); the
    // prefix-named ones (prof.dump without a name, prof_final) are pprof.
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"first.heap".to_string()));
    let m = names.iter().find(|n| n.ends_with(".m0.pb.gz")).expect("m0");
    let f = names
        .iter()
        .find(|n| n.ends_with(".f.pb.gz"))
        .expect("final");
    parse(&dir.join("first.heap"));
    for n in [m, f] {
        let p = read_pprof(&dir.join(n));
        assert_eq!(p.period, 1 << 16);
    }
}

#[test]
fn thread_names_in_both_formats() {
    thread_names("names", "prof:true,lg_prof_sample:14", "set");
}

#[test]
fn system_thread_names() {
    // prof_sys_thread_name: the names the threads gave themselves with
    // pthread_setname_np; the main thread has the program's.
    thread_names(
        "sysnames",
        "prof:true,lg_prof_sample:14,prof_sys_thread_name:true",
        "sys",
    );
}

fn thread_names(tag: &str, conf: &str, how: &str) {
    let exe = prog();
    let (heap, pprof) = (
        scratch(&format!("{tag}.heap")),
        scratch(&format!("{tag}.pb.gz")),
    );
    let o = run(
        &exe,
        &[
            "names",
            heap.to_str().unwrap(),
            pprof.to_str().unwrap(),
            how,
        ],
        true,
        &[("MALLOC_CONF", conf)],
    );
    let sys = how == "sys";
    let out = ok(&o, "prof names");
    assert!(out.contains("named"), "{out}");
    let sites = sites(&out);
    // heap_v2: a header line per name, "t<id>: counts name", and the
    // stacks of named threads carry their "t<id>:" line.
    let text = std::fs::read_to_string(&heap).unwrap();
    let id_of = |name: &str| -> String {
        let l = text
            .lines()
            .take_while(|l| !l.starts_with('@'))
            .find(|l| l.ends_with(&format!("] {name}")))
            .unwrap_or_else(|| panic!("no header line for {name}:\n{text}"));
        l.trim().split(':').next().unwrap().to_string()
    };
    let (a, b) = (id_of("worker-a"), id_of("worker-b"));
    assert_ne!(a, b);
    let mut lines = text.lines().peekable();
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    while let Some(l) = lines.next() {
        let Some(frames) = l.strip_prefix("@ ") else {
            continue;
        };
        let pc = u64::from_str_radix(
            frames.split(' ').next().unwrap().trim_start_matches("0x"),
            16,
        )
        .unwrap();
        lines.next(); // t*:
        let thread = match lines.peek() {
            Some(t) if t.trim_start().starts_with('t') && !t.contains("t*") => {
                t.trim().split(':').next().unwrap().to_string()
            }
            _ => "-".to_string(),
        };
        let site = site_of(&sites, pc).to_string();
        if site == "?" {
            // Not one of the program's sites: the C library's own
            // allocations (stdio buffers, thread set-up), sampled now and
            // then on any thread. They are no one site, so two threads may
            // share "?" (a CI run saw it once).
            continue;
        }
        let prev = named.insert(site.clone(), thread.clone());
        assert!(prev.is_none_or(|p| p == thread), "{site}: two names");
    }
    assert_eq!(named.get("site_small"), Some(&a), "{named:?}");
    assert_eq!(named.get("site_medium"), Some(&b), "{named:?}");
    if sys {
        let main = id_of("prof-shared");
        assert_eq!(named.get("site_large"), Some(&main), "{named:?}");
    } else {
        assert_eq!(named.get("site_large").map(|s| s.as_str()), Some("-"));
    }
    // jeprof still reads it.
    let flat = jeprof_flat(&exe, &heap);
    assert!(
        within(flat.get("site_small").copied().unwrap_or(0.0), 22.4e6, 0.12),
        "{flat:?}"
    );
    // pprof: a thread_name label on the named threads' samples.
    let p = read_pprof(&pprof);
    let s = |i: i64| p.string_table[i as usize].as_str();
    let locs: BTreeMap<u64, u64> = p.location.iter().map(|l| (l.id, l.address)).collect();
    let mut by_name: BTreeMap<(String, String), f64> = BTreeMap::new();
    for smp in &p.sample {
        let pc = locs[&smp.location_id[0]] + 1;
        let label = smp
            .label
            .iter()
            .find(|l| s(l.key) == "thread_name")
            .map_or("-".to_string(), |l| s(l.str).to_string());
        *by_name
            .entry((site_of(&sites, pc).to_string(), label))
            .or_default() += smp.value[3] as f64;
    }
    let get = |site: &str, name: &str| {
        by_name
            .get(&(site.to_string(), name.to_string()))
            .copied()
            .unwrap_or(0.0)
    };
    assert!(
        within(get("site_small", "worker-a"), 22.4e6, 0.12),
        "{by_name:?}"
    );
    assert!(
        within(get("site_medium", "worker-b"), 30.72e6, 0.12),
        "{by_name:?}"
    );
    let main = if sys { "prof-shared" } else { "-" };
    assert!(
        within(get("site_large", main), 40.96e6, 0.12),
        "{by_name:?}"
    );
}
