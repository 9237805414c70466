//! Shared helpers for the C-level tests: find librjem, compile C and C++
//! test programs with the system compiler, run them on rjem.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

/// The directory holding librjem_capi.so / librjem_capi.a (the build
/// tree's names for librjem). Cargo does not build a
/// cdylib for integration tests, so the first call builds the release
/// library (the one users get) into its own target directory.
pub fn lib_dir() -> PathBuf {
    static BUILD: Once = Once::new();
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/capi-tests");
    BUILD.call_once(|| {
        let st = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "rjem-capi",
                "--target-dir",
            ])
            .arg(&target)
            .status()
            .expect("cargo");
        assert!(st.success(), "building librjem failed");
    });
    let dir = target.join("release").canonicalize().unwrap();
    assert!(dir.join("librjem_capi.so").is_file());
    dir
}

pub fn lib() -> PathBuf {
    lib_dir().join("librjem_capi.so")
}

fn src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

fn include() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// Where compiled test programs go (per test binary, so tests never race).
pub fn out_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let d = exe
        .parent()
        .unwrap()
        .join("ctests")
        .join(exe.file_name().unwrap());
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(Clone, Copy, PartialEq)]
pub enum Link {
    /// Plain program; rjem comes in only through LD_PRELOAD.
    None,
    /// Linked against librjem.so (with an rpath).
    Shared,
    /// Linked against librjem.a.
    Static,
}

/// Compiles test source `name` (C or C++ by extension) into a program.
pub fn build(name: &str, link: Link) -> PathBuf {
    let cxx = name.ends_with(".cpp");
    let tag = match link {
        Link::None => "plain",
        Link::Shared => "shared",
        Link::Static => "static",
    };
    let out = out_dir().join(format!("{}-{tag}", name.split('.').next().unwrap()));
    let mut c = Command::new(if cxx { "g++" } else { "cc" });
    c.arg("-O2").arg("-g").arg("-Wall").arg("-pthread");
    if cxx {
        c.arg("-std=c++17");
    }
    c.arg("-I")
        .arg(include())
        .arg(src(name))
        .arg("-o")
        .arg(&out);
    let dir = lib_dir();
    match link {
        Link::None => {}
        Link::Shared => {
            c.arg(format!("-L{}", dir.display()))
                .arg("-lrjem_capi")
                .arg(format!("-Wl,-rpath,{}", dir.display()));
        }
        Link::Static => {
            c.arg(dir.join("librjem_capi.a")).args(["-ldl", "-lm"]);
        }
    }
    c.arg("-ldl");
    let st = c.status().expect("a C/C++ compiler (cc, g++) is needed");
    assert!(st.success(), "compiling {name} failed");
    out
}

/// Compiles test source `name` into a shared library (for dlopen).
pub fn build_shared_object(name: &str) -> PathBuf {
    let out = out_dir().join(format!("lib{}.so", name.split('.').next().unwrap()));
    let st = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-Wall"])
        .arg(src(name))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("cc");
    assert!(st.success(), "compiling {name} failed");
    out
}

/// Runs `exe` with librjem preloaded (or not), with extra environment.
pub fn run(exe: &Path, args: &[&str], preload: bool, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(exe);
    c.args(args);
    // Cargo points LD_LIBRARY_PATH at its own output directories, where a
    // debug librjem_capi.so may lie: the programs must load the one they
    // were linked against (their rpath), the tested release build.
    c.env_remove("LD_LIBRARY_PATH");
    if preload {
        c.env("LD_PRELOAD", lib());
    } else {
        c.env_remove("LD_PRELOAD");
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Debian's jemalloc 5.3, the reference the tests compare with.
pub const LIBJEMALLOC: &str = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

/// `LIBJEMALLOC` if installed. CI must have it; elsewhere a comparison is
/// skipped, with a note.
pub fn jemalloc() -> Option<&'static str> {
    if std::path::Path::new(LIBJEMALLOC).exists() {
        return Some(LIBJEMALLOC);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install libjemalloc2"
    );
    eprintln!("skipped the comparison: {LIBJEMALLOC} not installed");
    None
}
