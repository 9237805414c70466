//! `rjem run --stats` and `--stats-interval`: a program's statistics while
//! it runs and when it exits.
//!
//! Owns: the pipe the program's rjem writes its reports to (rjem's option
//! `stats_fd`, so reports never mix with the program's stderr), snapshot
//! files, and the explanation printed at exit. The program's reports are
//! JSON (`stats_print_opts:J`), one line each; the tool keeps the last one
//! and, with an interval, writes the newest to DIR at most every SECONDS.
//! Invariant: the program's exit status is the tool's (128 + the signal
//! when it was killed), whatever happens to its statistics.

use super::{explain, parse};
use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// Bytes a thread allocates between interval reports (`stats_interval`).
pub const INTERVAL_BYTES: u64 = 16 << 20;

/// What `--stats-interval` asks for.
pub struct Interval {
    pub every: Duration,
    pub dir: PathBuf,
}

/// Parses `--stats-interval SECONDS DIR`.
pub fn interval(v: &[String]) -> Result<Interval, String> {
    let (Some(s), Some(d)) = (v.first(), v.get(1)) else {
        return Err("--stats-interval wants SECONDS and DIR".into());
    };
    let secs: f64 = s
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x > 0.0 && *x < 1e9)
        .ok_or(format!(
            "--stats-interval wants a positive number of seconds, not '{s}'"
        ))?;
    let dir = PathBuf::from(d);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(Interval {
        every: Duration::from_secs_f64(secs),
        dir,
    })
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The child's copy of the write end: a descriptor without close-on-exec
/// (a duplicate, so the parent's stays close-on-exec).
fn inheritable(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: dup of an open descriptor; F_DUPFD (not _CLOEXEC) leaves the
    // new one inheritable. 10 keeps it clear of 0..2.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD, 10) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: n is a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Reads reports from `fd` until every writer has closed it (or, after
/// the program exited, until `quiet` passes without data), writing
/// snapshots as `interval` asks. Returns the last complete report and the
/// number of reports.
fn collect(
    fd: OwnedFd,
    interval: Option<&Interval>,
    exited: &std::sync::atomic::AtomicBool,
) -> (Option<Vec<u8>>, usize) {
    let mut buf: Vec<u8> = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    let mut pending = false;
    let mut count = 0usize;
    let mut written = 0usize;
    let mut last_write: Option<Instant> = None;
    let mut quiet_since: Option<Instant> = None;
    let mut chunk = vec![0u8; 1 << 16];
    let write_snapshot = |n: usize, report: &[u8]| {
        if let Some(iv) = interval {
            let path = iv.dir.join(format!("stats-{n:04}.json"));
            if let Err(e) = std::fs::write(&path, report) {
                eprintln!("rjem run: cannot write {}: {e}", path.display());
            }
        }
    };
    loop {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 200) };
        if n > 0 {
            // SAFETY: the buffer is valid for its length.
            let r = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            if r == 0 {
                break;
            }
            if r > 0 {
                quiet_since = None;
                buf.extend_from_slice(&chunk[..r as usize]);
                while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    count += 1;
                    last = Some(line);
                    pending = true;
                }
            } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
        let now = Instant::now();
        if let (Some(iv), true) = (interval, pending) {
            if last_write.is_none_or(|t| now.duration_since(t) >= iv.every) {
                written += 1;
                write_snapshot(written, last.as_deref().unwrap_or_default());
                last_write = Some(now);
                pending = false;
            }
        }
        // A descendant may keep the pipe open after the program exits: stop
        // once it has been quiet for a while.
        if exited.load(std::sync::atomic::Ordering::Relaxed) {
            let since = *quiet_since.get_or_insert(now);
            if now.duration_since(since) > Duration::from_secs(2) {
                break;
            }
        }
    }
    if pending {
        written += 1;
        write_snapshot(written, last.as_deref().unwrap_or_default());
    }
    (last, count)
}

/// Runs `cmd` (already set up to run on rjem with `conf` as its
/// configuration, if any), explains its statistics at exit, and exits
/// with its status.
pub fn run(mut cmd: Command, conf: Option<OsString>, interval: Option<Interval>) -> ExitCode {
    let (rd, wr) = match pipe() {
        Ok(p) => p,
        Err(e) => return fail(&format!("cannot create a pipe: {e}")),
    };
    let child_wr = match inheritable(&wr) {
        Ok(f) => f,
        Err(e) => return fail(&format!("cannot duplicate a descriptor: {e}")),
    };
    drop(wr);
    let mut mc = crate::run::malloc_conf_then(
        conf,
        &format!(
            "stats_print:true,stats_print_opts:J,stats_fd:{}",
            child_wr.as_raw_fd()
        ),
    );
    if interval.is_some() {
        mc.push(format!(
            ",stats_interval:{INTERVAL_BYTES},stats_interval_opts:J"
        ));
    }
    cmd.env("MALLOC_CONF", &mc);
    let prog = cmd.get_program().to_os_string();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            eprintln!("rjem: cannot run '{}': {e}", Path::new(&prog).display());
            return ExitCode::from(code);
        }
    };
    drop(child_wr);
    // The terminal's ^C and ^\ are for the program; the tool stays to
    // report (as `time` and `system()` do).
    // SAFETY: setting a signal's disposition to ignore is always sound.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let exited = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = exited.clone();
    let periodic = interval.is_some();
    let reader = std::thread::spawn(move || collect(rd, interval.as_ref(), &flag));
    let status = child.wait();
    exited.store(true, std::sync::atomic::Ordering::Relaxed);
    let (last, count) = reader.join().unwrap_or((None, 0));
    let code: u8 = match &status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c as u8,
            (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
            _ => 1,
        },
        Err(_) => 1,
    };
    let mut err = std::io::stderr().lock();
    match last.map(|r| parse::parse(&r)) {
        Some(Ok(mut v)) if !v.is_empty() => {
            let snap = v.pop().unwrap_or_else(|| unreachable!("not empty"));
            // Processes the program starts inherit MALLOC_CONF and the
            // descriptor, so their reports arrive here too (a shell script,
            // a launcher); the program's own, at its exit, normally comes last.
            let label = if count > 1 {
                format!(
                    "rjem run --stats (the last of {count} reports; {}processes the program \
                     started, such as a shell wrapper's commands, send theirs too)",
                    if periodic {
                        "interval reports come first, and "
                    } else {
                        ""
                    }
                )
            } else {
                "rjem run --stats".to_string()
            };
            let _ = write!(
                err,
                "\n{}",
                explain::render(&explain::explain(&snap), &label)
            );
        }
        Some(Ok(_)) => {
            let _ = writeln!(err, "rjem run: the program's statistics could not be read");
        }
        Some(Err(e)) => {
            let _ = writeln!(
                err,
                "rjem run: the program's statistics could not be read: {}",
                e.reason
            );
        }
        None => {
            let _ = writeln!(
                err,
                "rjem run: no statistics arrived: the program ended without running its \
                 exit handlers (_exit, killed by a signal), never allocated, is not \
                 dynamically linked, or closed the descriptor they are written to"
            );
        }
    }
    ExitCode::from(code)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("rjem: {msg}");
    ExitCode::from(crate::run::FAILED)
}
