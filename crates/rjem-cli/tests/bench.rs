//! `rjem bench`: a smoke run of the quick suite on two short workloads and
//! two allocators (glibc and rjem) checks that every workload verifies its
//! results and that the JSON, Markdown and SVG reports come out in shape.
//! Speed is not asserted.

use std::process::{Command, Output};

// The C library's test helpers build librjem.so once (cargo does not build
// a cdylib for another package's tests).
#[path = "../../rjem-capi/tests/common.rs"]
mod common;
use common::{lib, text};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rjem"))
        .arg("bench")
        .args(args)
        .env("RJEM_LIB", lib())
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap()
}

/// Checks the JSON report's shape with Python's parser (a real parser,
/// not string matching); prints "ok" when it holds.
const CHECK_JSON: &str = r#"
import json, sys
d = json.load(open(sys.argv[1]))
want = {(w, a) for w in ("larson", "xmalloc") for a in ("glibc", "rjem")}
got = set()
for r in d["results"]:
    got.add((r["workload"], r["allocator"]))
    assert r["ok"] is True, r
    assert r["wall_s"] > 0 and r["cpu_s"] >= 0 and r["peak_rss_kib"] > 0, r
    assert r["time_ratio_to_glibc"] > 0 and r["rss_ratio_to_glibc"] > 0, r
    assert " ok: " in r["output"], r
assert got == want, got
assert d["baseline"] == "glibc"
assert set(d["versions"]) == {"glibc", "rjem"}, d["versions"]
assert d["versions"]["glibc"].startswith("glibc 2."), d["versions"]
assert d["versions"]["rjem"].startswith("rjem "), d["versions"]
for a in ("glibc", "rjem"):
    g = d["geomean"][a]
    assert g["time_ratio_to_glibc"] > 0 and g["rss_ratio_to_glibc"] > 0, g
    assert g["workloads"] == 2, g
assert abs(d["geomean"]["glibc"]["time_ratio_to_glibc"] - 1) < 1e-9
print("ok")
"#;

#[test]
fn quick_suite_runs_and_reports() {
    let dir = std::env::temp_dir().join(format!("rjem-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let o = bench(&[
        "--quick",
        "--runs",
        "1",
        "--only",
        "larson,xmalloc",
        "--allocators",
        "glibc,rjem",
        "--out",
        dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("median wall time") && out.contains("geomean"),
        "{out}"
    );
    // Progress went to stderr, one line per workload.
    assert!(err.contains("larson") && err.contains("xmalloc"), "{err}");

    let check = Command::new("python3")
        .args(["-c", CHECK_JSON])
        .arg(&json)
        .output()
        .expect("python3 (installed by .ci/run) checks the JSON");
    assert_eq!(
        text(&check.stdout).trim(),
        "ok",
        "{}\n{}",
        text(&check.stderr),
        std::fs::read_to_string(&json).unwrap()
    );
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("| larson |") && md.contains("![time and memory ratios"));
    assert!(
        md.contains("- glibc: glibc 2.") && md.contains("- rjem: rjem "),
        "{md}"
    );
    assert!(out.contains("allocators:\n  glibc  glibc 2."), "{out}");
    let svg = std::fs::read_to_string(dir.join("bench.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_usage_is_explained() {
    let o = bench(&["--only", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown workload 'nosuch'"));
    let o = bench(&["--allocators", "hoard"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown allocator 'hoard'"));
    let o = bench(&["--help"]);
    assert!(o.status.success());
    for a in ["mimalloc3", "mimalloc2", "snmalloc", "tcmalloc"] {
        assert!(text(&o.stdout).contains(a), "{a} not in --help");
    }
    let o = bench(&["--list"]);
    assert!(o.status.success());
    for w in [
        "larson",
        "cache-scratch",
        "thread-churn",
        "json",
        "par-sort",
    ] {
        assert!(text(&o.stdout).contains(w), "{w} not listed");
    }
}
