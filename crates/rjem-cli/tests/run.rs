//! `rjem run`: runs a program on rjem, passes the configuration, exits with
//! the program's status, and explains clearly when it cannot.

use std::path::Path;
use std::process::{Command, Output};

// The C library's test helpers build librjem.so once (cargo does not build
// a cdylib for another package's tests).
#[path = "../../rjem-capi/tests/common.rs"]
mod common;
use common::lib;

fn rjem(args: &[&str], lib_env: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rjem"));
    c.args(args)
        .env_remove("LD_PRELOAD")
        .env_remove("MALLOC_CONF");
    match lib_env {
        Some(l) => c.env("RJEM_LIB", l),
        None => c.env_remove("RJEM_LIB"),
    };
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn runs_a_program_on_rjem() {
    let probe = "import ctypes; c = ctypes.CDLL(None); c.malloc.restype = ctypes.c_void_p; \
                 print(c.malloc_usable_size(ctypes.c_void_p(c.malloc(100))))";
    let o = rjem(&["run", "--", "python3", "-c", probe], Some(&lib()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "112", "not served by rjem");
}

#[test]
fn exit_status_and_environment_pass_through() {
    let l = lib();
    let o = rjem(&["run", "--", "sh", "-c", "exit 7"], Some(&l));
    assert_eq!(o.status.code(), Some(7));
    let o = rjem(
        &[
            "run",
            "--conf",
            "narenas:2",
            "--",
            "sh",
            "-c",
            "echo \"$MALLOC_CONF|$LD_PRELOAD\"",
        ],
        Some(&l),
    );
    let out = stdout(&o);
    assert!(
        out.starts_with("narenas:2|") && out.contains("librjem_capi.so"),
        "{out}"
    );
    // --lib wins over RJEM_LIB; the options reach the program's rjem.
    let o = rjem(
        &[
            "run",
            "--lib",
            l.to_str().unwrap(),
            "--conf",
            "narenas: 3,confirm_conf:true",
            "--",
            "true",
        ],
        None,
    );
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("<rjem>: -- narenas:3"),
        "{}",
        stderr(&o)
    );
}

/// Issue 11, bug 3: `--conf` values are checked with the library's own
/// parser before the program starts; a missing value is named as such.
#[test]
fn conf_is_checked_before_the_program_starts() {
    let l = lib();
    for (conf, want) in [
        ("nosuch:1", "rjem: --conf: Invalid conf pair: nosuch:1"),
        (
            "tcache:false,narenas:lots",
            "rjem: --conf: Invalid conf value: narenas:lots",
        ),
        (
            "narenas:0",
            "rjem: --conf: Out-of-range conf value: narenas:0",
        ),
        (
            ",,,,",
            "rjem: --conf: Malformed conf string, ignored from: ,,,,",
        ),
    ] {
        // The program would say "started" if it ran.
        let o = rjem(&["run", "--conf", conf, "--", "echo", "started"], Some(&l));
        assert_eq!(o.status.code(), Some(125), "{conf}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{conf}: {}", stderr(&o));
        assert!(!stdout(&o).contains("started"), "{conf}");
    }
    // Warnings do not stop it: the program's rjem reports them.
    let o = rjem(
        &["run", "--conf", "tcache_max:1000000000", "--", "true"],
        Some(&l),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("<rjem>: Out-of-range conf value, clamped to 8388608"));
    for args in [&["run", "--conf"][..], &["run", "--lib", "x", "--conf"]] {
        let o = rjem(args, Some(&l));
        assert_eq!(o.status.code(), Some(125));
        let err = stderr(&o);
        assert!(err.contains("a value is required for '--conf"), "{err}");
        assert!(!err.contains("unknown option"), "{err}");
    }
}

#[test]
fn clear_errors() {
    let o = rjem(
        &["run", "--lib", "/nonexistent/librjem.so", "--", "true"],
        None,
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("cannot find librjem.so"),
        "{}",
        stderr(&o)
    );
    let o = rjem(&["run", "--", "/no/such/program"], Some(&lib()));
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("cannot run '/no/such/program'"));
    let o = rjem(&["run"], Some(&lib()));
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("no command given"));
    let o = rjem(&["frobnicate"], None);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("unknown command"));
}
