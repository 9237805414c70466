//! `rjem run --stats` and `--stats-interval`: a real program's statistics
//! reach the tool through rjem's `stats_fd` (never the program's stderr),
//! are explained at exit, and are written as snapshots while it runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../rjem-capi/tests/common.rs"]
mod common;
use common::{lib, out_dir, text};

/// Compiles one of the statistics programs (tests/data/stats/programs).
fn program(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/stats/programs")
        .join(format!("{name}.c"));
    let exe = out_dir().join(format!("stats-{name}"));
    let st = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success());
    exe
}

fn rjem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rjem"))
        .args(args)
        .env("RJEM_LIB", lib())
        .env_remove("LD_PRELOAD")
        .env_remove("MALLOC_CONF")
        .output()
        .unwrap()
}

#[test]
fn explains_at_exit() {
    let exe = program("fragmentation");
    let o = rjem(&["run", "--stats", "--", exe.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("rjem run --stats: rjem JSON report"), "{err}");
    assert!(
        err.contains("High fragmentation concentrated in size classes"),
        "{err}"
    );
    // The user's configuration still applies (later settings win, the
    // tool's come last).
    let o = rjem(&[
        "run",
        "--stats",
        "--conf",
        "dirty_decay_ms:-1,muzzy_decay_ms:-1",
        "--",
        program("dirty").to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert!(err.contains("Dirty memory is not being purged"), "{err}");
}

#[test]
fn program_output_and_status_pass_through() {
    let script = "import sys; sys.stderr.write('own stderr\\n'); print('own stdout'); sys.exit(3)";
    let o = rjem(&["run", "--stats", "--", "python3", "-c", script]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(text(&o.stdout), "own stdout\n");
    let err = text(&o.stderr);
    assert!(err.starts_with("own stderr\n"), "{err}");
    // The report itself came through the pipe, not stderr.
    assert!(!err.contains("{\"jemalloc\"") && !err.contains("Begin jemalloc"));
    assert!(err.contains("Where the memory is:"), "{err}");
    let o = rjem(&["run", "--stats", "--", "/no/such/program"]);
    assert_eq!(o.status.code(), Some(127));
    let o = rjem(&["run", "--stats-interval", "soon", "/tmp", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o.stderr).contains("positive number of seconds, not 'soon'"));
}

#[test]
fn snapshots_while_running() {
    let dir = out_dir().join("snapshots");
    let _ = std::fs::remove_dir_all(&dir);
    let exe = program("fragmentation");
    let o = rjem(&[
        "run",
        "--stats-interval",
        "0.01",
        dir.to_str().unwrap(),
        "--",
        exe.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // 160 MiB allocated at 16 MiB per report: several interval reports,
    // then the one at exit.
    assert!(files.len() >= 3, "{files:?}");
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            f.file_name().unwrap().to_str().unwrap(),
            format!("stats-{:04}.json", i + 1)
        );
        let o = rjem(&["stats", "explain", "--json", f.to_str().unwrap()]);
        assert!(o.status.success(), "{}: {}", f.display(), text(&o.stderr));
    }
    // The last is the report at exit: the survivors' fragmentation.
    let last = files.last().unwrap().to_str().unwrap();
    let o = rjem(&["stats", "explain", last]);
    assert!(text(&o.stdout).contains("fragmentation"));
}
