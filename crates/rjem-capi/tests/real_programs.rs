//! Real programs under LD_PRELOAD=librjem.so: python3, perl, git and gcc.
//! Each runs once on glibc and once on rjem; the outputs must be identical,
//! the exit status zero, and rjem must really have served the process (a
//! probe option makes rjem's start-up report itself on stderr).

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const PROBE: (&str, &str) = ("MALLOC_CONF", "rjem_probe:1");

fn served_by_rjem(stderr: &[u8]) -> bool {
    text(stderr).contains("<rjem>: Invalid conf pair: rjem_probe:1")
}

/// Runs a command on glibc and on rjem; returns both stdouts.
fn both(cmd: &str, args: &[&str], dir: Option<&Path>, env: &[(&str, &str)]) -> (String, String) {
    let mut outs = Vec::new();
    for preload in [false, true] {
        let mut c = Command::new(cmd);
        c.args(args);
        if let Some(d) = dir {
            c.current_dir(d);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        if preload {
            c.env("LD_PRELOAD", lib()).env(PROBE.0, PROBE.1);
        } else {
            c.env_remove("LD_PRELOAD");
        }
        let o = c.output().unwrap();
        let out = ok(&o, &format!("{cmd} {args:?} (rjem: {preload})"));
        if preload {
            assert!(served_by_rjem(&o.stderr), "{cmd} did not run on rjem");
        }
        outs.push(out);
    }
    let rjem = outs.pop().unwrap();
    (outs.pop().unwrap(), rjem)
}

#[test]
fn python_heavy_script() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/heavy.py");
    let (glibc, rjem) = both("python3", &[script.to_str().unwrap()], None, &[]);
    assert_eq!(glibc, rjem);
    assert!(rjem.contains("json bytes"));
    // malloc_usable_size(malloc(100)) is 112 on rjem (104 or 120 on glibc).
    let probe = "import ctypes; l = ctypes.CDLL(None); l.malloc.restype = ctypes.c_void_p; \
                 print(l.malloc_usable_size(ctypes.c_void_p(l.malloc(100))))";
    let o = run(
        Path::new("/usr/bin/env"),
        &["python3", "-c", probe],
        true,
        &[],
    );
    assert_eq!(ok(&o, "python probe").trim(), "112");
}

#[test]
fn perl_script() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/heavy.pl");
    let (glibc, rjem) = both("perl", &[script.to_str().unwrap()], None, &[]);
    assert_eq!(glibc, rjem);
    assert!(rjem.contains("matches"));
}

#[test]
fn git_thousand_files() {
    let env = [
        ("GIT_AUTHOR_NAME", "rjem"),
        ("GIT_AUTHOR_EMAIL", "rjem@example.invalid"),
        ("GIT_COMMITTER_NAME", "rjem"),
        ("GIT_COMMITTER_EMAIL", "rjem@example.invalid"),
        ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
        ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("HOME", "/nonexistent"),
    ];
    let mut heads = Vec::new();
    for preload in [false, true] {
        let dir = out_dir().join(format!("git-{preload}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        for i in 0..1000 {
            let body = format!("file {i}\n{}\n", "line\n".repeat(i % 50));
            std::fs::write(dir.join("src").join(format!("f{i:04}.txt")), body).unwrap();
        }
        let git = |args: &[&str]| {
            let mut c = Command::new("git");
            c.args(args).current_dir(&dir).envs(env);
            if preload {
                c.env("LD_PRELOAD", lib()).env(PROBE.0, PROBE.1);
            }
            let o = c.output().unwrap();
            let out = ok(&o, &format!("git {args:?}"));
            if preload {
                assert!(
                    served_by_rjem(&o.stderr),
                    "git {args:?} did not run on rjem"
                );
            }
            out
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "a thousand files"]);
        std::fs::write(dir.join("src/f0001.txt"), "changed\n").unwrap();
        git(&["commit", "-q", "-a", "-m", "second"]);
        let log = git(&["log", "--stat", "--format=%H %s"]);
        git(&["gc", "-q"]);
        let fsck = git(&["fsck", "--full"]);
        heads.push((log, fsck));
    }
    assert_eq!(heads[0], heads[1]);
    assert!(heads[1].0.contains("1000 files changed"));
}

#[test]
fn gcc_compiles_the_same_object() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/prodcons.c");
    let mut objs = Vec::new();
    for preload in [false, true] {
        let obj = out_dir().join(format!("prodcons-{preload}.o"));
        let mut c = Command::new("gcc");
        c.args(["-O2", "-g", "-c"]).arg(&src).arg("-o").arg(&obj);
        if preload {
            c.env("LD_PRELOAD", lib()).env(PROBE.0, PROBE.1);
        }
        let o = c.output().unwrap();
        ok(&o, "gcc");
        if preload {
            assert!(served_by_rjem(&o.stderr), "gcc did not run on rjem");
        }
        objs.push(std::fs::read(&obj).unwrap());
    }
    assert!(
        objs[0] == objs[1],
        "gcc produced a different object on rjem"
    );
}
