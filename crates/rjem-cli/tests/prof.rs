//! `rjem prof` (top, flamegraph, diff) and `rjem run --prof` against real
//! dumps of a C program with known allocation sites (the C library's
//! tests/c/prof.c, preloaded), in both formats; and pprof from a Rust
//! program (`rjem::prof::dump_pprof`, rjem as its global allocator),
//! decoded with prost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

#[path = "../../rjem-capi/tests/common.rs"]
mod common;
use common::lib_dir;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

fn capi() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rjem-capi")
}

fn work() -> PathBuf {
    let d = common::out_dir().join("prof");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// prof.c, built once, linked to librjem (its children run without
/// cargo's LD_LIBRARY_PATH, which may name an older build's library).
fn prog() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let exe = work().join("prof-c");
        let st = Command::new("cc")
            .args(["-O2", "-g", "-pthread", "-I"])
            .arg(capi().join("include"))
            .arg(capi().join("tests/c/prof.c"))
            .arg("-o")
            .arg(&exe)
            .arg(format!("-L{}", lib_dir().display()))
            .arg("-lrjem_capi")
            .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
            .status()
            .expect("cc");
        assert!(st.success());
        exe
    })
    .clone()
}

/// The C program's "sites" run at one sample per 16 KiB: a dump with
/// everything live (`live`) and one after the frees (`freed`).
fn sites_dumps(live: &str, freed: &str) -> (PathBuf, PathBuf) {
    let (l, f) = (work().join(live), work().join(freed));
    let o = Command::new(prog())
        .args(["sites", l.to_str().unwrap(), f.to_str().unwrap()])
        .env("MALLOC_CONF", "prof:true,prof_accum:true,lg_prof_sample:14")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    (l, f)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn rjem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rjem"))
        .args(args)
        .env_remove("MALLOC_CONF")
        .env_remove("LD_PRELOAD")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap()
}

/// A table's rows "<number> ... <site>": the first number per site.
fn rows(out: &str) -> BTreeMap<String, f64> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let v: f64 = f.first()?.parse().ok()?;
            Some((f.last()?.to_string(), v))
        })
        .collect()
}

fn within(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want
}

const TRUTH: [(&str, f64); 4] = [
    ("site_small", 400_000.0 * 112.0),
    ("site_large", 1_000.0 * 40960.0),
    ("site_medium", 20_000.0 * 1536.0),
    ("site_realloc", 5_000.0 * 4096.0),
];

#[test]
fn top_names_the_sites_in_both_formats() {
    let (heap, _) = sites_dumps("top.heap", "top-freed.heap");
    let (pprof, _) = sites_dumps("top.pb.gz", "top-freed.pb.gz");
    for f in [&heap, &pprof] {
        let o = rjem(&["prof", "top", f.to_str().unwrap()]);
        let out = text(&o.stdout);
        assert!(o.status.success(), "{out}{}", text(&o.stderr));
        assert!(out.contains("one sample per 16384 bytes"), "{out}");
        let got = rows(&out);
        for (site, want) in TRUTH {
            let b = got.get(site).copied().unwrap_or(0.0);
            assert!(within(b, want, 0.12), "{site}: {b} (truth {want})\n{out}");
        }
        // Largest first; the freed site is not listed as in use.
        let order: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .filter(|n| n.starts_with("site_"))
            .collect();
        assert_eq!(order.first(), Some(&"site_small"), "{out}");
        assert!(!order.contains(&"site_churn"), "{out}");
        // With --alloc (prof_accum was on) the churn site leads.
        let o = rjem(&["prof", "top", "--alloc", "-n", "3", f.to_str().unwrap()]);
        let out = text(&o.stdout);
        let churn = rows(&out).get("site_churn").copied().unwrap_or(0.0);
        assert!(within(churn, 128e6, 0.10), "{out}");
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let junk = work().join("junk.heap");
    std::fs::write(&junk, b"not a profile").unwrap();
    let o = rjem(&["prof", "top", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("neither a heap_v2 dump nor a pprof profile"),
        "{}",
        text(&o.stderr)
    );
    let o = rjem(&["prof", "top", "/nonexistent/x.heap"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("cannot read"));
}

#[test]
fn diff_shows_growth_per_site() {
    let (live, freed) = sites_dumps("diff.heap", "diff-freed.pb.gz");
    // From after the frees to before them: every site grew by its bytes.
    let o = rjem(&[
        "prof",
        "diff",
        freed.to_str().unwrap(),
        live.to_str().unwrap(),
    ]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    let got = rows(&out);
    for (site, want) in TRUTH {
        let b = got.get(site).copied().unwrap_or(0.0);
        assert!(within(b, want, 0.12), "{site}: {b}\n{out}");
    }
    let first = out.lines().nth(2).unwrap_or("");
    assert!(
        first.ends_with("site_small"),
        "largest growth first:\n{out}"
    );
    // The other way round the sites shrink.
    let o = rjem(&[
        "prof",
        "diff",
        live.to_str().unwrap(),
        freed.to_str().unwrap(),
    ]);
    let back = rows(&text(&o.stdout));
    assert!(back.get("site_small").copied().unwrap_or(0.0) < -30e6);
}

#[test]
fn flamegraph_draws_the_sites() {
    let (live, _) = sites_dumps("flame.pb.gz", "flame-freed.heap");
    let svg = work().join("heap.svg");
    let _ = std::fs::remove_file(&svg);
    let o = rjem(&[
        "prof",
        "flamegraph",
        live.to_str().unwrap(),
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<?xml") && s.contains("<svg"), "not an SVG");
    for (site, _) in TRUTH {
        assert!(s.contains(site), "{site} not drawn");
    }
    assert!(s.contains("main"), "callers drawn");
    // Nothing in use after the frees: said, not drawn.
    let (_, freed) = sites_dumps("flame2.heap", "flame2-freed.heap");
    let o = rjem(&[
        "prof",
        "flamegraph",
        freed.to_str().unwrap(),
        "-o",
        svg.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    // The C library's own start-up allocations may still be live.
    assert!(
        o.status.success() || err.contains("no in-use bytes"),
        "{err}"
    );
}

#[test]
fn run_prof_reports_the_top_sites_at_exit() {
    let dir = work().join("run-prof");
    let _ = std::fs::remove_dir_all(&dir);
    let (a, b) = (work().join("run-a.heap"), work().join("run-b.heap"));
    let o = Command::new(env!("CARGO_BIN_EXE_rjem"))
        .args(["run", "--prof", "--prof-dir"])
        .arg(&dir)
        .arg("--conf")
        .arg("lg_prof_sample:14")
        .arg("--")
        .arg(prog())
        .args(["sites", a.to_str().unwrap(), b.to_str().unwrap()])
        .env("RJEM_LIB", common::lib())
        .env_remove("MALLOC_CONF")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    // The program frees everything before it exits: the report lists
    // what is left, and says where the profile is.
    let dumps: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert!(dumps[0].starts_with("rjem-prof.") && dumps[0].ends_with(".f.heap"));
    assert!(err.contains("rjem: profile: "), "{err}");
    assert!(err.contains(&dumps[0]), "{err}");
    assert!(err.contains("one sample per 16384 bytes"), "{err}");
    // With prof_pprof the profile is pprof, found and read the same way.
    let pdir = work().join("run-prof-pprof");
    let _ = std::fs::remove_dir_all(&pdir);
    let o = Command::new(env!("CARGO_BIN_EXE_rjem"))
        .args(["run", "--prof", "--conf", "prof_pprof:true", "--prof-dir"])
        .arg(&pdir)
        .arg("--")
        .arg(prog())
        .arg("leak")
        .env("RJEM_LIB", common::lib())
        .env_remove("MALLOC_CONF")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(err.contains(".f.pb.gz (rjem prof"), "{err}");
    assert!(rows(&err).contains_key("site_leak"), "{err}");
    // The exit status is the program's.
    let o = Command::new(env!("CARGO_BIN_EXE_rjem"))
        .args(["run", "--prof", "--prof-dir"])
        .arg(&dir)
        .args(["--", "sh", "-c", "exit 3"])
        .env("RJEM_LIB", common::lib())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn run_prof_leak_is_named() {
    // A program that exits with its memory held: the report at exit
    // names the site.
    let dir = work().join("run-prof-leak");
    let _ = std::fs::remove_dir_all(&dir);
    let o = Command::new(env!("CARGO_BIN_EXE_rjem"))
        .args(["run", "--prof", "--prof-dir"])
        .arg(&dir)
        .arg("--")
        .arg(prog())
        .arg("leak")
        .env("RJEM_LIB", common::lib())
        .env_remove("MALLOC_CONF")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    let got = rows(&err);
    let leak = got.get("site_leak").copied().unwrap_or(0.0);
    // 100 MB at one sample per 512 KiB: about 200 samples.
    assert!(within(leak, 100e6, 0.4), "site_leak {leak}\n{err}");
}

// ---- a Rust program's pprof ----

/// pprof's `profile.proto` (the messages `rjem prof` reads with too).
#[path = "../src/prof/proto.rs"]
mod pb;

const CHILD: &str = "RJEM_CLI_PROF_TEST_CHILD";

#[inline(never)]
#[allow(clippy::vec_box)] // Boxes are the allocations under test.
fn rust_site_boxes(out: &mut Vec<Box<[u8; 200]>>, n: usize) {
    for _ in 0..n {
        out.push(std::hint::black_box(Box::new([1u8; 200])));
    }
    std::hint::black_box(&out);
}

#[inline(never)]
fn rust_site_strings(out: &mut Vec<String>, n: usize) {
    for i in 0..n {
        out.push(std::hint::black_box("x".repeat(1000 + i % 7)));
    }
    std::hint::black_box(&out);
}

/// In the child: allocate at the two sites, write the pprof bytes.
fn child() {
    let mut boxes = Vec::with_capacity(100_000);
    rust_site_boxes(&mut boxes, 100_000); // 100,000 x 224 usable = 22.4 MB
    let mut strings = Vec::with_capacity(20_000);
    rust_site_strings(&mut strings, 20_000); // 20,000 x 1,024 = 20.5 MB
    let bytes = rjem::prof::dump_pprof().expect("prof:true");
    std::fs::write(std::env::var("RJEM_PPROF_OUT").unwrap(), bytes).unwrap();
    drop((boxes, strings));
}

#[test]
fn rust_program_pprof_names_its_sites() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    assert_eq!(rjem::prof::dump_pprof(), Err(rjem::prof::DumpError::Off));
    let out = work().join("rust.pb.gz");
    let _ = std::fs::remove_file(&out);
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rust_program_pprof_names_its_sites",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("RJEM_PPROF_OUT", &out)
        .env("MALLOC_CONF", "prof:true,lg_prof_sample:14")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    use prost::Message;
    use std::io::Read;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(&out).unwrap()[..])
        .read_to_end(&mut raw)
        .unwrap();
    let p = pb::Profile::decode(&raw[..]).unwrap();
    let s = |i: i64| p.string_table[i as usize].as_str();
    assert_eq!(p.period, 1 << 14);
    assert_eq!(s(p.sample_type[3].r#type), "inuse_space");
    let exe = std::env::current_exe().unwrap().canonicalize().unwrap();
    let m = p
        .mapping
        .iter()
        .find(|m| Path::new(s(m.filename)) == exe)
        .expect("the test program's mapping");
    assert!(!s(m.build_id).is_empty(), "build id");
    // Bytes per site: the first frame whose function (named in the
    // allocator from the symbol table, mangled) is a site.
    let funcs: BTreeMap<u64, &str> = p.function.iter().map(|f| (f.id, s(f.name))).collect();
    let locs: BTreeMap<u64, &pb::Location> = p.location.iter().map(|l| (l.id, l)).collect();
    let mut per_site: BTreeMap<&str, f64> = BTreeMap::new();
    for smp in &p.sample {
        let site = smp
            .location_id
            .iter()
            .filter_map(|id| locs.get(id))
            .filter_map(|l| l.line.first())
            .filter_map(|ln| funcs.get(&ln.function_id))
            .find_map(|n| {
                ["rust_site_boxes", "rust_site_strings"]
                    .into_iter()
                    .find(|site| n.contains(site))
            })
            .unwrap_or("other");
        *per_site.entry(site).or_default() += smp.value[3] as f64;
    }
    let boxes = per_site.get("rust_site_boxes").copied().unwrap_or(0.0);
    let strings = per_site.get("rust_site_strings").copied().unwrap_or(0.0);
    assert!(within(boxes, 22.4e6, 0.12), "{per_site:?}");
    assert!(within(strings, 20.48e6, 0.12), "{per_site:?}");
    // And `rjem prof top` finds the same sites (demangled, past the
    // allocator's and `alloc`'s frames).
    let o = rjem(&["prof", "top", out.to_str().unwrap()]);
    let top = text(&o.stdout);
    let got: BTreeMap<String, f64> = rows(&top)
        .into_iter()
        .map(|(k, v)| (k.rsplit("::").next().unwrap_or(&k).to_string(), v))
        .collect();
    let b = got.get("rust_site_boxes").copied().unwrap_or(0.0);
    let st = got.get("rust_site_strings").copied().unwrap_or(0.0);
    assert!(within(b, 22.4e6, 0.12), "{top}");
    assert!(within(st, 20.48e6, 0.12), "{top}");
}

#[test]
fn top_reads_jemalloc_dumps() {
    // jemalloc's own heap_v2 (Debian's libjemalloc2 is built with the
    // profiler): its stacks keep jemalloc's frames, which are never sites.
    let je = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    assert!(Path::new(je).exists(), "Debian's libjemalloc2 is needed");
    let dir = work().join("jemalloc");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let o = Command::new("python3")
        .args(["-c", "x = [bytes(3000) for i in range(20000)]; import ctypes; ctypes.CDLL(None).mallctl(b'prof.dump', None, None, None, 0)"])
        .env("LD_PRELOAD", je)
        .env(
            "MALLOC_CONF",
            format!("prof:true,lg_prof_sample:12,prof_prefix:{}/je", dir.display()),
        )
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dump = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with(".m0.heap"))
        .expect("jemalloc's prof.dump");
    let o = rjem(&["prof", "top", "-n", "50", dump.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    assert!(out.contains("heap_v2, one sample per 4096 bytes"), "{out}");
    // 60 MB in bytes objects, held by the interpreter's allocation
    // functions (not jemalloc's).
    let got = rows(&out);
    let total: f64 = got.values().sum();
    assert!(total > 40e6, "{out}");
    assert!(got.keys().all(|k| !k.starts_with("libjemalloc")), "{out}");
}
