//! `rjem`: the command-line tool.
//!
//! `rjem run [--conf STR] [--lib PATH] -- CMD [ARGS...]` runs CMD with
//! librjem preloaded (and `MALLOC_CONF` set to STR when given) and exits
//! with CMD's status, since it replaces itself with CMD.
//!
//! `rjem bench [OPTIONS]` runs the side-by-side allocator benchmark suite
//! (see the `bench` module).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

const USAGE: &str = "\
usage: rjem run [--conf MALLOC_CONF] [--lib PATH] -- COMMAND [ARGS...]
       rjem bench [--quick] [OPTIONS]    (rjem bench --help for more)

Runs COMMAND on the rjem allocator (LD_PRELOAD=librjem.so) and exits with its
status. --conf sets MALLOC_CONF (e.g. narenas:4,tcache_max:65536); --lib
names the library explicitly (default: $RJEM_LIB, or librjem_capi.so next to
this program as cargo builds it, or librjem.so in ../lib as installed).

Exit status: COMMAND's, or 125 if rjem itself failed (library not found,
bad usage), 126 if COMMAND cannot be executed, 127 if it was not found.

rjem bench runs the benchmark suite under glibc, rjem, jemalloc, mimalloc and
tcmalloc side by side and writes a table, Markdown, an SVG chart and JSON.";

fn fail(msg: &str, code: u8) -> ExitCode {
    eprintln!("rjem: {msg}");
    ExitCode::from(code)
}

/// Where librjem is looked for, in order: the build tree names it after its
/// crate, `scripts/install.sh` installs it as librjem.so.
fn candidates(explicit: Option<PathBuf>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p];
    }
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("RJEM_LIB") {
        v.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            v.push(dir.join("librjem_capi.so"));
            v.push(dir.join("../lib/librjem.so"));
            v.push(dir.join("../lib/rjem/librjem.so"));
        }
    }
    v
}

fn run(args: &[OsString]) -> ExitCode {
    let mut conf: Option<OsString> = None;
    let mut lib: Option<PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].to_str() {
            Some("--") => {
                i += 1;
                break;
            }
            Some("--conf") if i + 1 < args.len() => {
                conf = Some(args[i + 1].clone());
                i += 2;
            }
            Some("--conf") => return fail("--conf needs a value (a MALLOC_CONF string)", 125),
            Some("--lib") if i + 1 < args.len() => {
                lib = Some(PathBuf::from(&args[i + 1]));
                i += 2;
            }
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some(s) if s.starts_with('-') => {
                return fail(&format!("unknown option '{s}'\n{USAGE}"), 125)
            }
            _ => break,
        }
    }
    // Checked with the library's own parser; warnings are left to it.
    let bad = conf.iter().flat_map(|c| rjem::check_conf(c.as_bytes()));
    let bad: Vec<String> = bad
        .filter(|p| p.is_error())
        .map(|p| format!("--conf: {p}"))
        .collect();
    if !bad.is_empty() {
        return fail(&bad.join("\nrjem: "), 125);
    }
    let cmd = &args[i..];
    if cmd.is_empty() {
        return fail(&format!("no command given\n{USAGE}"), 125);
    }
    let tried = candidates(lib);
    let Some(found) = tried.iter().find(|p| p.is_file()) else {
        let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        return fail(
            &format!(
                "cannot find librjem.so (looked in: {}). Build it with \
                 `cargo build --release -p rjem-capi`, or pass --lib PATH or set RJEM_LIB.",
                list.join(", ")
            ),
            125,
        );
    };
    let found = found.canonicalize().unwrap_or_else(|_| found.clone());
    let mut preload = OsString::from(found.as_os_str());
    if let Some(old) = std::env::var_os("LD_PRELOAD") {
        if !old.is_empty() {
            preload.push(":");
            preload.push(old);
        }
    }
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]).env("LD_PRELOAD", preload);
    if let Some(conf) = conf {
        c.env("MALLOC_CONF", conf);
    }
    // exec only returns on failure.
    let err = c.exec();
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    fail(
        &format!("cannot run '{}': {err}", Path::new(&cmd[0]).display()),
        code,
    )
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("run") => run(&args[1..]),
        Some("bench") => bench::main(&args[1..]),
        Some("-V" | "--version") => {
            println!("rjem {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => fail(&format!("unknown command '{other}'\n{USAGE}"), 125),
    }
}
