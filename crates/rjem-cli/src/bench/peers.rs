//! Current mimalloc (v3 and v2) and snmalloc, built from source for
//! `LD_PRELOAD` (Debian's packages are years old: mimalloc 2.0.9).
//!
//! The sources are the ones the crates.io crates bundle: `libmimalloc-sys`
//! (`c_src/mimalloc/v3` and `c_src/mimalloc/v2`) and `snmalloc-sys`
//! (`upstream/`), at the versions locked in `bench/rust-workloads/Cargo.lock`
//! (so the C and the Rust runs of an allocator use the same sources).
//! `cargo metadata` fetches them into Cargo's registry; each is compiled as
//! its CMake build compiles its preloadable shared library, with the flags
//! and defines below, into `target/bench/peers/lib<name>.so`, next to
//! `<name>.version` (what was built) and `<name>.build` (the command).
//! `bench/install-peers.sh` does the same with the same flags (a test keeps
//! them equal).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A peer allocator built from a crate's bundled sources.
pub struct Peer {
    /// The allocator's name in `--allocators`.
    pub name: &'static str,
    /// The crate whose sources are built.
    pub krate: &'static str,
    /// The source tree inside the crate.
    pub dir: &'static str,
    pub lang: Lang,
    /// Defines added to the language's flags (a build option).
    pub defines: &'static [&'static str],
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lang {
    /// mimalloc: `src/static.c` (every source file in one unit).
    MimallocC,
    /// snmalloc: the `snmallocshim` target, `malloc.cc` + `new.cc`.
    SnmallocCxx,
}

pub const PEERS: &[Peer] = &[
    Peer {
        name: "mimalloc3",
        krate: "libmimalloc-sys",
        dir: "c_src/mimalloc/v3",
        lang: Lang::MimallocC,
        defines: &[],
    },
    Peer {
        name: "mimalloc3-secure",
        krate: "libmimalloc-sys",
        dir: "c_src/mimalloc/v3",
        lang: Lang::MimallocC,
        defines: MIMALLOC_SECURE_DEFINES,
    },
    Peer {
        name: "mimalloc2",
        krate: "libmimalloc-sys",
        dir: "c_src/mimalloc/v2",
        lang: Lang::MimallocC,
        defines: &[],
    },
    Peer {
        name: "snmalloc",
        krate: "snmalloc-sys",
        dir: "upstream",
        lang: Lang::SnmallocCxx,
        defines: &[],
    },
];

/// mimalloc's secure build (CMake's `MI_SECURE=ON`, and the `secure`
/// feature of the `mimalloc` crate): guard pages, encoded free lists,
/// randomized allocation, double-free detection (level 4, all of them).
pub const MIMALLOC_SECURE_DEFINES: &[&str] = &["-DMI_SECURE=4"];

/// mimalloc's CMake shared library (`mimalloc` target, release build,
/// default options, MI_OVERRIDE=ON) on Linux: `-O3 -DNDEBUG`, its defines
/// (`MI_SHARED_LIB_EXPORT` makes the API visible under
/// `-fvisibility=hidden`; `MI_MALLOC_OVERRIDE` defines malloc, free, new,
/// delete, ...) and flags. CMake compiles each file; `src/static.c`
/// includes them all (it is what the crate compiles).
pub const MIMALLOC_FLAGS: &[&str] = &[
    "-O3",
    "-DNDEBUG",
    "-fPIC",
    "-shared",
    "-DMI_BUILD_RELEASE",
    "-DMI_CMAKE_BUILD_TYPE=release",
    "-DMI_MALLOC_OVERRIDE",
    "-DMI_SHARED_LIB",
    "-DMI_SHARED_LIB_EXPORT",
    "-fvisibility=hidden",
    "-ftls-model=initial-exec",
    "-fno-builtin-malloc",
    "-Wno-unknown-pragmas",
    "-pthread",
];

/// snmalloc's CMake `snmallocshim` target (release build, default options)
/// on Linux with glibc: C++20, thread cleanup through glibc's
/// `__cxa_thread_atexit_impl`, wait-on-address backoff, the functions only
/// `SNMALLOC_EXPORT`ed, and the defines its configure checks produce on
/// glibc (getentropy, pthread_atfork, linux/random.h, linux/futex.h).
pub const SNMALLOC_FLAGS: &[&str] = &[
    "-std=c++20",
    "-O3",
    "-DNDEBUG",
    "-fPIC",
    "-shared",
    "-fvisibility=hidden",
    "-fno-rtti",
    "-fomit-frame-pointer",
    "-ftls-model=initial-exec",
    "-ffunction-sections",
    "-DSNMALLOC_USE_WAIT_ON_ADDRESS=1",
    "-DSNMALLOC_USE_CXX11_THREAD_ATEXIT_DIRECT",
    "-DSNMALLOC_EXPORT=__attribute__((visibility(\"default\")))",
    "-DSNMALLOC_CHECK_LOADS=false",
    "-DSNMALLOC_PAGEID=false",
    "-DSNMALLOC_NO_REALLOCARRAY",
    "-DSNMALLOC_NO_REALLOCARR",
    "-DSNMALLOC_PLATFORM_HAS_GETENTROPY",
    "-DSNMALLOC_PTHREAD_ATFORK_WORKS",
    "-DSNMALLOC_HAS_LINUX_RANDOM_H",
    "-DSNMALLOC_HAS_LINUX_FUTEX_H",
    "-DMALLOC_USABLE_SIZE_QUALIFIER=const",
];

/// Added on x86_64, where CMake's compiler checks find them (16-byte
/// compare-and-swap, prefetchw).
pub const SNMALLOC_X86_64_FLAGS: &[&str] = &["-mcx16", "-mprfchw"];

/// How the shim links: libstdc++ statically, no undefined symbols.
pub const SNMALLOC_LINK_FLAGS: &[&str] = &["-static-libstdc++", "-Wl,--no-undefined", "-pthread"];

pub fn find(name: &str) -> Option<&'static Peer> {
    PEERS.iter().find(|p| p.name == name)
}

/// Where the libraries go.
pub fn dir(cache: &Path) -> PathBuf {
    cache.join("peers")
}

pub fn lib_path(cache: &Path, name: &str) -> PathBuf {
    dir(cache).join(format!("lib{name}.so"))
}

/// What `--install` built for `name`, e.g. "mimalloc 3.3.2 (sources of
/// libmimalloc-sys 0.1.49)", if it did.
pub fn version(cache: &Path, name: &str) -> Option<String> {
    lib_path(cache, name).is_file().then_some(())?;
    let text = std::fs::read_to_string(dir(cache).join(format!("{name}.version"))).ok()?;
    text.lines()
        .next()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

/// The preloadable library of `name`, or why there is none.
pub fn lib(cache: &Path, name: &str) -> Result<PathBuf, String> {
    let p = lib_path(cache, name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{name} is not built ({} is missing; rjem bench --install builds it from the \
             crates.io sources, no root needed)",
            p.display()
        ))
    }
}

/// The mimalloc version in `include/mimalloc.h` (`MI_MALLOC_VERSION 30302`
/// is 3.3.2).
pub fn mimalloc_version(header: &str) -> Option<String> {
    let n: u32 = header.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("#define MI_MALLOC_VERSION")?;
        rest.split_whitespace().next()?.parse().ok()
    })?;
    Some(format!("{}.{}.{}", n / 10000, n / 100 % 100, n % 100))
}

/// The commit a crate was packaged from (`.cargo_vcs_info.json`).
fn vcs_commit(crate_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(crate_dir.join(".cargo_vcs_info.json")).ok()?;
    let (_, rest) = text.split_once("\"sha1\"")?;
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    Some(rest[start..start + len].chars().take(12).collect())
}

/// The source directories of `crates` (name, version, directory) in
/// `cargo metadata`'s output: each package's `manifest_path` ends in
/// `/NAME-VERSION/Cargo.toml` in Cargo's registry.
pub fn crate_dirs(metadata: &str, krate: &str) -> Vec<(String, PathBuf)> {
    let key = "\"manifest_path\":\"";
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    let mut rest = metadata;
    while let Some(i) = rest.find(key) {
        rest = &rest[i + key.len()..];
        let Some(end) = rest.find('"') else { break };
        let path = Path::new(&rest[..end]);
        rest = &rest[end..];
        let Some(dir) = path.parent() else { continue };
        let Some(base) = dir.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(ver) = base.strip_prefix(krate).and_then(|v| v.strip_prefix('-')) else {
            continue;
        };
        if ver.starts_with(|c: char| c.is_ascii_digit()) && !out.iter().any(|o| o.1 == dir) {
            out.push((ver.to_string(), dir.to_path_buf()));
        }
    }
    out
}

/// The first line of `tool --version`, or a clear error.
fn tool_version(tool: &str, what: &str) -> Result<String, String> {
    let out = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what} '{tool}' ({e}); install it or set the variable"))?;
    if !out.status.success() {
        return Err(format!("{what} '{tool}' --version failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Tools: cargo ($CARGO), the C compiler ($CC, else cc) and the C++ one
/// ($CXX, else c++).
struct Tools {
    cargo: String,
    cc: String,
    cxx: String,
}

impl Tools {
    fn find() -> Result<Tools, String> {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        let t = Tools {
            cargo: var("CARGO", "cargo"),
            cc: var("CC", "cc"),
            cxx: var("CXX", "c++"),
        };
        tool_version(&t.cargo, "cargo ($CARGO)")?;
        tool_version(&t.cc, "the C compiler ($CC)")?;
        tool_version(&t.cxx, "the C++ compiler ($CXX)")?;
        Ok(t)
    }
}

/// One built library: its name and what it is.
pub struct Built {
    pub name: &'static str,
    pub path: PathBuf,
    pub version: String,
}

/// Fetches the crates (through cargo, from crates.io) and builds every
/// peer into `target/bench/peers`.
pub fn install(root: &Path, cache: &Path) -> Result<Vec<Built>, String> {
    let tools = Tools::find()?;
    let manifest = root.join("bench/rust-workloads/Cargo.toml");
    eprintln!(
        "rjem bench: fetching libmimalloc-sys and snmalloc-sys (cargo metadata --locked \
         --manifest-path {})",
        manifest.display()
    );
    let out = Command::new(&tools.cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--all-features",
            "--locked",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed (it fetches the crates from crates.io):\n{}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    let metadata = String::from_utf8_lossy(&out.stdout);
    let dir = dir(cache);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut built = Vec::new();
    for peer in PEERS {
        let dirs = crate_dirs(&metadata, peer.krate);
        let (crate_ver, crate_dir) = match dirs.as_slice() {
            [one] => one.clone(),
            [] => return Err(format!("cargo metadata lists no {} package", peer.krate)),
            _ => {
                return Err(format!(
                    "cargo metadata lists several {} packages",
                    peer.krate
                ))
            }
        };
        let src = crate_dir.join(peer.dir);
        let version = match peer.lang {
            Lang::MimallocC => {
                let h = std::fs::read_to_string(src.join("include/mimalloc.h"))
                    .map_err(|e| format!("{}: {e}", src.display()))?;
                let v = mimalloc_version(&h)
                    .ok_or_else(|| format!("no MI_MALLOC_VERSION in {}", src.display()))?;
                let secure = if peer.defines.is_empty() {
                    ""
                } else {
                    ", MI_SECURE=4"
                };
                format!(
                    "mimalloc {v} (sources of {} {crate_ver}{secure})",
                    peer.krate
                )
            }
            Lang::SnmallocCxx => match vcs_commit(&crate_dir) {
                Some(c) => format!(
                    "snmalloc from {} {crate_ver} (microsoft/snmalloc commit {c})",
                    peer.krate
                ),
                None => format!("snmalloc from {} {crate_ver}", peer.krate),
            },
        };
        let lib = lib_path(cache, peer.name);
        let tmp = dir.join(format!(".lib{}.so.{}", peer.name, std::process::id()));
        let mut cmd = match peer.lang {
            Lang::MimallocC => {
                let mut c = Command::new(&tools.cc);
                c.args(MIMALLOC_FLAGS)
                    .args(peer.defines)
                    .arg("-I")
                    .arg(src.join("include"))
                    .arg("-o")
                    .arg(&tmp)
                    .arg(src.join("src/static.c"));
                c
            }
            Lang::SnmallocCxx => {
                let mut c = Command::new(&tools.cxx);
                c.args(SNMALLOC_FLAGS);
                if cfg!(target_arch = "x86_64") {
                    c.args(SNMALLOC_X86_64_FLAGS);
                }
                c.arg("-I")
                    .arg(src.join("src"))
                    .arg("-o")
                    .arg(&tmp)
                    .arg(src.join("src/snmalloc/override/malloc.cc"))
                    .arg(src.join("src/snmalloc/override/new.cc"))
                    .args(SNMALLOC_LINK_FLAGS);
                c
            }
        };
        cmd.stdin(Stdio::null());
        let shown = format!("{cmd:?}")
            .replace(&format!("{}", tmp.display()), &format!("{}", lib.display()));
        eprintln!("rjem bench: building {} ({version})...", peer.name);
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run the compiler for {}: {e}", peer.name))?;
        let log = format!("{shown}\n{}", String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::write(dir.join(format!("{}.build", peer.name)), &log);
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("building {} failed:\n{log}", peer.name));
        }
        std::fs::rename(&tmp, &lib).map_err(|e| format!("{}: {e}", lib.display()))?;
        std::fs::write(
            dir.join(format!("{}.version", peer.name)),
            format!("{version}\n"),
        )
        .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
        built.push(Built {
            name: peer.name,
            path: lib,
            version,
        });
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimalloc_versions() {
        let h = "#define MI_MALLOC_H\n#define MI_MALLOC_VERSION 30302   // major + 2 digits\n";
        assert_eq!(mimalloc_version(h).as_deref(), Some("3.3.2"));
        assert_eq!(
            mimalloc_version("#define MI_MALLOC_VERSION 20009").as_deref(),
            Some("2.0.9")
        );
        assert_eq!(mimalloc_version("#define MI_MALLOC_H"), None);
    }

    #[test]
    fn crate_dirs_from_metadata() {
        let m = r#"{"packages":[{"name":"libmimalloc-sys","manifest_path":"/h/.cargo/registry/src/x/libmimalloc-sys-0.1.49/Cargo.toml"},{"name":"libmimalloc-sys2","manifest_path":"/r/libmimalloc-sys2-1.0.0/Cargo.toml"},{"name":"snmalloc-sys","manifest_path":"/r/snmalloc-sys-0.7.6/Cargo.toml"},{"name":"snmalloc-rs","manifest_path":"/r/snmalloc-rs-0.7.6/Cargo.toml"}]}"#;
        let v = crate_dirs(m, "libmimalloc-sys");
        assert_eq!(
            v.len(),
            1,
            "{:?}",
            v.iter().map(|d| &d.1).collect::<Vec<_>>()
        );
        assert_eq!(v[0].0, "0.1.49");
        assert_eq!(
            v[0].1,
            Path::new("/h/.cargo/registry/src/x/libmimalloc-sys-0.1.49")
        );
        let v = crate_dirs(m, "snmalloc-sys");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, "0.7.6");
        assert!(crate_dirs(m, "snmalloc").is_empty());
    }

    /// The words of the bash array `NAME=(...)` in `script` (single quotes
    /// group, as in the script).
    fn shell_array(script: &str, name: &str) -> Vec<String> {
        let head = format!("\n{name}=(");
        let start = script.find(&head).unwrap_or_else(|| panic!("no {name}")) + head.len();
        let (mut words, mut cur, mut quoted, mut in_word) =
            (Vec::new(), String::new(), false, false);
        for c in script[start..].chars() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    in_word = true;
                }
                ')' if !quoted => break,
                c if c.is_whitespace() && !quoted => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                c => {
                    cur.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            words.push(cur);
        }
        words
    }

    /// bench/install-peers.sh builds with the same flags and installs the
    /// same packages as `rjem bench --install`.
    #[test]
    fn install_script_matches() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/install-peers.sh");
        let script = std::fs::read_to_string(&path).unwrap();
        for (name, flags) in [
            ("MIMALLOC_FLAGS", MIMALLOC_FLAGS),
            ("SNMALLOC_FLAGS", SNMALLOC_FLAGS),
            ("SNMALLOC_X86_64_FLAGS", SNMALLOC_X86_64_FLAGS),
            ("SNMALLOC_LINK_FLAGS", SNMALLOC_LINK_FLAGS),
            ("MIMALLOC_SECURE_DEFINES", MIMALLOC_SECURE_DEFINES),
            ("pkgs", super::super::PEER_PACKAGES),
        ] {
            assert_eq!(shell_array(&script, name), flags, "{name}");
        }
        for needle in [
            "src/static.c",
            "override/malloc.cc",
            "override/new.cc",
            "c_src/mimalloc/v$v",
            "--all-features --locked",
            "target/bench/peers",
        ] {
            assert!(script.contains(needle), "{needle}");
        }
        assert_eq!(
            shell_array("\nA=(x 'a \"(b)\"' c\n  d)", "A"),
            ["x", "a \"(b)\"", "c", "d"]
        );
    }

    #[test]
    fn missing_tools_are_a_clear_error() {
        let e = tool_version("/nonexistent/cargo", "cargo ($CARGO)").unwrap_err();
        assert!(
            e.starts_with("cannot run cargo ($CARGO) '/nonexistent/cargo'"),
            "{e}"
        );
        assert!(tool_version("false", "false").is_err());
    }

    /// Every allocator built here has a Rust-workload feature of the same
    /// name (see rust_build) and its crate in the lock file.
    #[test]
    fn peers_are_known_allocators() {
        for p in PEERS {
            assert!(super::super::ALLOCATORS.contains(&p.name), "{}", p.name);
        }
    }
}
