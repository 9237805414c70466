//! scripts/install.sh: installs library, headers, pkg-config file and tool
//! into a prefix; a C program then builds with `pkg-config --cflags --libs
//! rjem` and runs on rjem, and the installed `rjem run` finds the library.

use std::path::Path;
use std::process::Command;

#[path = "../../rjem-capi/tests/common.rs"]
mod common;

#[test]
fn install_then_build_with_pkg_config() {
    if Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pkg-config"
        );
        eprintln!("skipped: pkg-config not installed");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The install script takes a release build; reuse the tests' one.
    let built = common::lib_dir();
    let stage = built.parent().unwrap().join("install-test");
    let _ = std::fs::remove_dir_all(&stage);
    let rel = stage.join("target/release");
    std::fs::create_dir_all(&rel).unwrap();
    for f in ["librjem_capi.so", "librjem_capi.a"] {
        std::fs::copy(built.join(f), rel.join(f)).unwrap();
    }
    std::fs::copy(env!("CARGO_BIN_EXE_rjem"), rel.join("rjem")).unwrap();
    // Run the real script against a copy of the tree layout it expects.
    for d in ["scripts", "crates/rjem-capi/include/jemalloc"] {
        std::fs::create_dir_all(stage.join(d)).unwrap();
    }
    for f in [
        "scripts/install.sh",
        "crates/rjem-capi/include/rjem.h",
        "crates/rjem-capi/include/jemalloc/jemalloc.h",
        "crates/rjem-capi/rjem.pc.in",
    ] {
        std::fs::copy(root.join(f), stage.join(f)).unwrap();
    }
    let prefix = stage.join("prefix");
    let st = Command::new("bash")
        .arg(stage.join("scripts/install.sh"))
        .arg(&prefix)
        .status()
        .unwrap();
    assert!(st.success());

    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "rjem"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .unwrap();
    assert!(flags.status.success());
    let flags = String::from_utf8(flags.stdout).unwrap();
    let src = stage.join("prog.c");
    std::fs::write(
        &src,
        "#include <jemalloc/jemalloc.h>\n#include <stdio.h>\n#include <stdlib.h>\n\
         int main(void) { void *p = mallocx(100, MALLOCX_ZERO); \
         printf(\"%zu\\n\", sallocx(p, 0)); dallocx(p, 0); return 0; }\n",
    )
    .unwrap();
    let exe = stage.join("prog");
    let mut cc = Command::new("cc");
    cc.arg(&src)
        .arg("-o")
        .arg(&exe)
        .args(flags.split_whitespace());
    cc.arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
    assert!(
        cc.status().unwrap().success(),
        "cc with pkg-config flags failed"
    );
    let out = Command::new(&exe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "112");

    // The installed tool finds PREFIX/lib/librjem.so by itself.
    let out = Command::new(prefix.join("bin/rjem"))
        .args(["run", "--", "sh", "-c", "echo $LD_PRELOAD"])
        .env_remove("RJEM_LIB")
        .output()
        .unwrap();
    let preload = String::from_utf8_lossy(&out.stdout);
    assert!(preload.contains("prefix/lib/librjem.so"), "{preload}");
}
