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
    // --lib wins over RJEM_LIB; a bad option reaches the program's rjem.
    let o = rjem(
        &[
            "run",
            "--lib",
            l.to_str().unwrap(),
            "--conf",
            "nosuch:1",
            "--",
            "true",
        ],
        None,
    );
    assert!(o.status.success());
    assert!(stderr(&o).contains("<rjem>: Invalid conf pair: nosuch:1"));
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
