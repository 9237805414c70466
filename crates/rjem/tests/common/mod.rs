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

/// A small deterministic generator (xorshift64), for seeded tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
