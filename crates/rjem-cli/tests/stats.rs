//! `rjem stats`: reading real reports (jemalloc 5.3 and rjem, text and
//! JSON, Redis), the diagnoses on fixtures made by the programs in
//! tests/data/stats/programs (see make-fixtures.sh), and clear errors on
//! bad input.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/stats")
        .join(name)
}

fn rjem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rjem"))
        .args(args)
        .output()
        .unwrap()
}

fn rjem_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rjem"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A closed pipe (the tool refused early) is not this test's failure.
    let _ = c.stdin.take().unwrap().write_all(input);
    c.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The rules that fire on a file, from `explain --json`.
fn rules(file: &Path) -> Vec<String> {
    let o = rjem(&["stats", "explain", "--json", file.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "{}: {}",
        file.display(),
        text(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["problems"].as_array().map(Vec::len),
        Some(0),
        "{}: every line of a real report is understood: {}",
        file.display(),
        v["problems"]
    );
    v["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["rule"].as_str().unwrap().to_string())
        .collect()
}

/// Each condition's fixture, the rule that must fire on it, and the
/// allocators it fires for.
const CASES: &[(&str, &str, &[&str])] = &[
    ("fragmentation", "fragmentation", &["jemalloc", "rjem"]),
    ("dirty", "dirty-not-purged", &["jemalloc", "rjem"]),
    ("arenas", "too-many-arenas", &["jemalloc", "rjem"]),
    ("tcache", "tcache-heavy", &["jemalloc", "rjem"]),
    ("retained", "retained-address-space", &["jemalloc", "rjem"]),
    // rjem's metadata does not grow with the address space (0.6 MiB after
    // the 1 TiB peak, against jemalloc's 2 GiB): only jemalloc's fires.
    ("metadata", "metadata-overhead", &["jemalloc"]),
    ("madvise", "madvise-storm", &["jemalloc", "rjem"]),
];

#[test]
fn each_diagnosis_fires_on_its_fixture_and_only_there() {
    for (name, rule, fires_for) in CASES {
        for alloc in ["jemalloc", "rjem"] {
            for form in ["txt", "json"] {
                let f = data(&format!("{name}.{alloc}.{form}"));
                let got = rules(&f);
                if fires_for.contains(&alloc) {
                    assert!(got.iter().any(|r| r == rule), "{}: {got:?}", f.display());
                }
                // No rule fires where its condition was not provoked
                // (retained address space comes with the metadata peak).
                for r in &got {
                    let expected = CASES.iter().any(|(n, rr, _)| n == name && rr == r)
                        || (*name == "metadata" && r == "retained-address-space");
                    assert!(expected, "{}: unexpected {r} in {got:?}", f.display());
                }
            }
        }
    }
}

#[test]
fn healthy_process_gets_no_diagnosis() {
    for alloc in ["jemalloc", "rjem"] {
        for form in ["txt", "json"] {
            let f = data(&format!("healthy.{alloc}.{form}"));
            assert_eq!(rules(&f), Vec::<String>::new(), "{}", f.display());
            let o = rjem(&["stats", "explain", f.to_str().unwrap()]);
            let out = text(&o.stdout);
            assert!(out.contains("nothing out of the ordinary"), "{out}");
            assert!(out.contains(&format!("{alloc} ")), "{out}");
        }
    }
}

#[test]
fn redis_malloc_stats() {
    let f = data("redis-fragmentation.jemalloc.txt");
    assert_eq!(rules(&f), ["fragmentation"]);
    let o = rjem(&["stats", "explain", f.to_str().unwrap()]);
    let out = text(&o.stdout);
    // 15 of 16 keys deleted: the value's size class is named.
    assert!(out.contains("concentrated in size classes 112 B"), "{out}");
}

/// The example from the project's first document, as a summary line
/// alone: metadata and retained address space are named, with why.
#[test]
fn the_documents_example() {
    let line = "allocated 4.2 GB, active 5.3 GB, metadata 12.7 GB, resident 19.6 GB, \
                mapped 21.6 GB, retained 534 GB, base 12.7 GB\n";
    let o = rjem_stdin(&["stats", "explain", "-"], line.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Words, whatever the line breaks.
    let out = text(&o.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let first = out
        .find("1. [CRITICAL] Metadata out of proportion")
        .expect(&out);
    let second = out
        .find("2. [CRITICAL] Huge retained address space")
        .expect(&out);
    assert!(first < second);
    for why in [
        "never freed",
        "534 GiB retained",
        "base grows with retained address space",
        "MALLOC_CONF=retain:false",
        "RLIMIT_AS",
        "65% of resident",
    ] {
        assert!(out.contains(why), "missing '{why}':\n{out}");
    }
    let o = rjem_stdin(&["stats", "explain", "--json", "-"], line.as_bytes());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "summary");
    assert_eq!(v["diagnoses"][0]["rule"], "metadata-overhead");
    assert_eq!(v["diagnoses"][1]["rule"], "retained-address-space");
    // jemalloc's own summary line, in bytes.
    let o = rjem_stdin(
        &["stats", "explain", "--json", "-"],
        b"Allocated: 4509715660, active: 5690831667, metadata: 13636505190 (n_thp 0), \
          resident: 21045339750, mapped: 23192823398, retained: 573384797798\n",
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["diagnoses"][0]["rule"], "metadata-overhead", "{v}");
}

#[test]
fn unreadable_lines_are_named() {
    let mut t = std::fs::read_to_string(data("healthy.rjem.txt")).unwrap();
    let at = t.find("\nresident:").unwrap();
    t.insert_str(at + 1, "resident: lots\nsomething odd here\n");
    let o = rjem_stdin(&["stats", "explain", "-"], t.as_bytes());
    assert!(o.status.success());
    let out = text(&o.stdout);
    let line = t[..at].matches('\n').count() + 2;
    assert!(
        out.contains(&format!("line {line}: 'resident' is not a number: 'lots'")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "line {}: not understood: 'something odd here'",
            line + 1
        )),
        "{out}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let exit2 = |o: &Output, what: &str| {
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains(what), "{}", text(&o.stderr));
        assert!(o.stdout.is_empty());
    };
    let exe = std::fs::read(env!("CARGO_BIN_EXE_rjem")).unwrap();
    exit2(
        &rjem_stdin(&["stats", "explain", "-"], &exe[..4096]),
        "binary input",
    );
    let full = std::fs::read(data("fragmentation.jemalloc.txt")).unwrap();
    exit2(
        &rjem_stdin(&["stats", "explain", "-"], &full[..full.len() / 2]),
        "is cut short",
    );
    let full = std::fs::read(data("fragmentation.rjem.json")).unwrap();
    exit2(
        &rjem_stdin(&["stats", "explain", "-"], &full[..full.len() / 2]),
        "JSON report that begins on line 1 is cut short",
    );
    let mut bad = full.clone();
    let at = full.len() / 3
        + full[full.len() / 3..]
            .iter()
            .position(|&b| b == b':')
            .unwrap();
    bad[at] = b';';
    exit2(
        &rjem_stdin(&["stats", "explain", "-"], &bad),
        "is malformed: expected `:`",
    );
    // A report that closes early, with JSON after it.
    let early = br#"{"jemalloc": {"version": "5.3.0", "stats": {"allocated": 5}}}, "x": 1}"#;
    exit2(
        &rjem_stdin(&["stats", "explain", "-"], early),
        "closes early",
    );
    exit2(
        &rjem_stdin(&["stats", "explain", "-"], b"just some words\n"),
        "no allocator statistics found",
    );
    exit2(&rjem_stdin(&["stats", "explain", "-"], b""), "empty");
    exit2(
        &rjem(&["stats", "explain", "/no/such/file"]),
        "/no/such/file: cannot read",
    );
    exit2(
        &rjem_stdin(
            &["stats", "explain", "-"],
            b"Stats not supported for the current allocator\n",
        ),
        "not built with jemalloc",
    );
    assert_eq!(rjem(&["stats", "explain"]).status.code(), Some(2));
}

#[test]
fn diff_orders_by_growth() {
    let a = data("healthy.jemalloc.txt");
    let b = data("fragmentation.jemalloc.json");
    let o = rjem(&[
        "stats",
        "diff",
        "--json",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let deltas: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["delta"].as_i64().unwrap())
        .collect();
    assert!(deltas.windows(2).all(|w| w[0] >= w[1]), "{deltas:?}");
    assert!(deltas[0] > 0 && *deltas.last().unwrap() < 0);
    // The two classes the program fragments grow their slabs most.
    let slabs: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["group"] == "size class")
        .take(2)
        .map(|c| c["what"].as_str().unwrap())
        .collect();
    assert_eq!(slabs, ["96 B slabs", "64 B slabs"]);
    let o = rjem(&["stats", "diff", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert!(text(&o.stdout).contains("nothing changed"));
    let o = rjem(&["stats", "diff", a.to_str().unwrap(), "/no/such"]);
    assert_eq!(o.status.code(), Some(2));
}
