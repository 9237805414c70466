//! For tests of options, which are read once per process: the test binary
//! runs one of its own tests again in a child with `MALLOC_CONF` set.
#![allow(dead_code)]

use std::process::Command;

/// Set in the child's environment.
const CHILD: &str = "RJEM_TEST_CHILD";

/// Runs test `name` of this binary in a child with `conf` as MALLOC_CONF;
/// returns its stderr after checking it passed.
pub fn child(name: &str, conf: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .env("MALLOC_CONF", conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{name} with {conf}: {}\n{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

/// Whether this process is such a child.
pub fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}
