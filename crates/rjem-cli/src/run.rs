//! `rjem run`: runs a program with librjem preloaded.
//!
//! Owns: finding the library (`candidates`), the command line of `rjem
//! run`, and replacing this process with the program (`exec`), so the
//! program's exit status is the tool's. With `--stats` the tool stays to
//! read the program's statistics instead (`stats::live`).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The status `rjem run` exits with when it fails itself (library not
/// found, bad usage), as `env`, `nice` and friends do.
pub const FAILED: u8 = 125;

/// Run COMMAND on the rjem allocator (LD_PRELOAD=librjem.so) and exit with
/// its status.
///
/// Exit status: COMMAND's, or 125 if rjem itself failed (library not found,
/// bad usage), 126 if COMMAND cannot be executed, 127 if it was not found.
#[derive(clap::Args)]
pub struct Args {
    /// MALLOC_CONF for the program (e.g. narenas:4,tcache_max:65536).
    #[arg(long, value_name = "MALLOC_CONF")]
    conf: Option<OsString>,
    /// The library to preload (default: $RJEM_LIB, or librjem_capi.so next
    /// to this program as cargo builds it, or librjem.so in ../lib as
    /// installed).
    #[arg(long, value_name = "PATH")]
    lib: Option<PathBuf>,
    /// When the program exits, explain its allocator statistics (on
    /// stderr; see `rjem stats explain`).
    #[arg(long)]
    stats: bool,
    /// While it runs, write snapshots of its statistics into DIR at most
    /// every SECONDS (stats-0001.json, ...; for `rjem stats report`);
    /// implies --stats.
    #[arg(long, num_args = 2, value_names = ["SECONDS", "DIR"])]
    stats_interval: Option<Vec<String>>,
    /// Profile the program's heap (MALLOC_CONF prof:true, prof_final:true):
    /// when it exits, its profile is in --prof-dir and its largest
    /// allocation sites are printed on stderr (see `rjem prof`).
    #[arg(long, conflicts_with_all = ["stats", "stats_interval"])]
    prof: bool,
    /// Where --prof writes the profile, as rjem-prof.<pid>.<seq>.f.heap
    /// (.f.pb.gz with --conf prof_pprof:true; default: the current
    /// directory).
    #[arg(long, value_name = "DIR", requires = "prof")]
    prof_dir: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

fn fail(msg: &str, code: u8) -> ExitCode {
    eprintln!("rjem: {msg}");
    ExitCode::from(code)
}

/// Where librjem is looked for, in order: the build tree names it after its
/// crate, `scripts/install.sh` installs it as librjem.so.
pub fn candidates(explicit: Option<PathBuf>) -> Vec<PathBuf> {
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

/// The library to preload, or why there is none.
fn find_lib(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    let tried = candidates(explicit);
    let Some(found) = tried.iter().find(|p| p.is_file()) else {
        let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "cannot find librjem.so (looked in: {}). Build it with \
             `cargo build --release -p rjem-capi`, or pass --lib PATH or set RJEM_LIB.",
            list.join(", ")
        ));
    };
    Ok(found.canonicalize().unwrap_or_else(|_| found.clone()))
}

/// The command to run, with the library preloaded and MALLOC_CONF set.
fn command(lib: &Path, conf: Option<&OsString>, cmd: &[OsString]) -> Command {
    let mut preload = OsString::from(lib.as_os_str());
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
    c
}

/// The status for a program that could not be started.
fn spawn_failure(prog: &OsString, err: &std::io::Error) -> ExitCode {
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    fail(
        &format!("cannot run '{}': {err}", Path::new(prog).display()),
        code,
    )
}

pub fn main(args: Args) -> ExitCode {
    if args.command.is_empty() {
        return fail(
            "no command given (usage: rjem run [OPTIONS] -- COMMAND [ARGS...])",
            FAILED,
        );
    }
    // Checked with the library's own parser; warnings are left to the
    // program's rjem, which prints them.
    let bad: Vec<String> = args
        .conf
        .iter()
        .flat_map(|c| rjem::check_conf(c.as_encoded_bytes()))
        .filter(|p| p.is_error())
        .map(|p| format!("--conf: {p}"))
        .collect();
    if !bad.is_empty() {
        return fail(&bad.join("\nrjem: "), FAILED);
    }
    let lib = match find_lib(args.lib) {
        Ok(l) => l,
        Err(e) => return fail(&e, FAILED),
    };
    let mut c = command(&lib, args.conf.as_ref(), &args.command);
    if args.stats || args.stats_interval.is_some() {
        let interval = match args
            .stats_interval
            .as_deref()
            .map(crate::stats::live::interval)
        {
            Some(Err(e)) => return fail(&e, FAILED),
            Some(Ok(i)) => Some(i),
            None => None,
        };
        return crate::stats::live::run(c, args.conf, interval);
    }
    if args.prof {
        let dir = args.prof_dir.unwrap_or_else(|| PathBuf::from("."));
        return prof_run(c, args.conf, &dir);
    }
    // exec only returns on failure.
    let err = c.exec();
    spawn_failure(&args.command[0], &err)
}

/// `--prof`: runs the program with the profiler on and a final dump in
/// `dir`, then prints its top sites; exits with the program's status.
/// The program's options (`--conf`, else its MALLOC_CONF), then the
/// tool's `ours`: later settings win, so the tool's come last.
pub(crate) fn malloc_conf_then(conf: Option<OsString>, ours: &str) -> OsString {
    let mut mc = conf
        .or_else(|| std::env::var_os("MALLOC_CONF"))
        .unwrap_or_default();
    if !mc.is_empty() {
        mc.push(",");
    }
    mc.push(ours);
    mc
}

fn prof_run(mut c: Command, conf: Option<OsString>, dir: &Path) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(&format!("--prof-dir {}: {e}", dir.display()), FAILED);
    }
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let prefix = dir.join("rjem-prof");
    let Some(prefix_str) = prefix.to_str().filter(|p| !p.contains(',')) else {
        return fail(
            &format!(
                "--prof-dir {}: the path must be UTF-8 without commas (it goes into MALLOC_CONF)",
                dir.display()
            ),
            FAILED,
        );
    };
    let mc = malloc_conf_then(
        conf,
        &format!("prof:true,prof_final:true,prof_prefix:{prefix_str}"),
    );
    c.env("MALLOC_CONF", &mc);
    let prog = c.get_program().to_os_string();
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => return spawn_failure(&prog, &e),
    };
    let pid = child.id();
    // The terminal's ^C is for the program; the tool stays to report.
    // SAFETY: setting a signal's disposition to ignore is always sound.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let code: u8 = match child.wait() {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c as u8,
            (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
            _ => 1,
        },
        Err(_) => 1,
    };
    let start = format!("rjem-prof.{pid}.");
    let dump = std::fs::read_dir(&dir).ok().and_then(|d| {
        d.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&start) && (n.ends_with(".f.heap") || n.ends_with(".f.pb.gz"))
            })
        })
    });
    let mut err = std::io::stderr().lock();
    match dump {
        None => {
            let _ = writeln!(
                err,
                "rjem: no heap profile in {} (the program did not exit normally, or did not run on rjem)",
                dir.display()
            );
        }
        Some(path) => match crate::prof::load(&path) {
            Ok(p) => {
                let _ = writeln!(err, "rjem run --prof: heap in use at exit, largest sites:");
                let _ = crate::prof::top(&mut err, &path, &p, 10, false);
                let _ = writeln!(
                    err,
                    "rjem: profile: {} (rjem prof top|flamegraph|diff, or jeprof)",
                    path.display()
                );
            }
            Err(e) => {
                let _ = writeln!(err, "rjem: profile {}: {e}", path.display());
            }
        },
    }
    ExitCode::from(code)
}
