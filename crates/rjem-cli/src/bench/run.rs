//! Running one measured process: wall time around spawn and `wait4`, CPU
//! time (user + system) and peak RSS from `wait4`'s rusage (`ru_maxrss` is
//! the maximum over the process and its waited-for descendants), a time
//! limit, and the program's output kept in files so a chatty child can
//! never block on a full pipe.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_kib: u64,
}

/// Runs that end with at least this peak RSS leave the next run memory it
/// would not find on a quiet machine (see `settle_time`): four huge pages.
/// Measured here, the Rust workloads (14-40 MiB) already decide a huge-page
/// allocator's time: mimalloc 2.3.2's json took 0.071 s right after
/// another run and 0.130 s after 4 s of quiet (docs/benchmarks.md).
pub const SETTLE_AFTER_KIB: u64 = 8 << 10;

/// How long to wait after a run of `SETTLE_AFTER_KIB` or more, if this
/// machine needs it: where fresh huge pages start cold
/// (`rjem::huge_pages_start_cold`: the kernel reports free blocks to the
/// hypervisor one to three seconds after they form, and the hypervisor
/// drops what backs them). Until then, a program that asks for huge pages
/// gets the blocks the last run freed, 20-50x faster to write than
/// reported ones (docs/benchmarks.md: 0.17 against 4-8 ms per MiB).
/// Without the wait, an allocator's time in a big workload would depend on
/// which allocator ran before it; with it, every run meets memory as a
/// program started on a quiet machine does. None elsewhere.
pub fn settle_time() -> Option<Duration> {
    rjem::huge_pages_start_cold().then_some(Duration::from_secs(3))
}

/// A command to measure: program, arguments and an optional preload.
pub struct Job<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub preload: Option<&'a Path>,
    /// `MALLOC_CONF` for the run (cleared otherwise).
    pub conf: Option<&'a str>,
    pub timeout: Duration,
}

/// Where run output goes: a private scratch directory, removed on drop.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn new() -> std::io::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("rjem-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch { dir })
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Environment variables that would change an allocator's behaviour from
/// its defaults; every run starts without them.
const CLEARED_ENV: &[&str] = &["LD_PRELOAD", "MALLOC_CONF", "_RJEM_MALLOC_CONF"];

fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = text.trim_end();
    let start = text.len().saturating_sub(max);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// Runs `job` once. Ok: the measurements and the program's last line of
/// output; Err: why the run failed (exit status or signal, stderr's tail).
pub fn run(job: &Job, scratch: &Scratch) -> Result<(Sample, String), String> {
    let out_path = scratch.path("stdout");
    let err_path = scratch.path("stderr");
    let out = File::create(&out_path).map_err(|e| format!("scratch file: {e}"))?;
    let err = File::create(&err_path).map_err(|e| format!("scratch file: {e}"))?;
    let mut cmd = Command::new(job.program);
    cmd.args(job.args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for v in CLEARED_ENV {
        cmd.env_remove(v);
    }
    if let Some(lib) = job.preload {
        cmd.env("LD_PRELOAD", OsString::from(lib.as_os_str()));
    }
    if let Some(conf) = job.conf {
        cmd.env("MALLOC_CONF", conf);
    }
    let t0 = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", job.program.display()))?;
    let pid = child.id() as libc::pid_t;
    let timed_out = !wait_exit(pid, job.timeout);
    if timed_out {
        // SAFETY: pid is our unreaped child, so it cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; pid is our child.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall_s = t0.elapsed().as_secs_f64();
    if r != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    if timed_out {
        return Err(format!("timed out after {} s", job.timeout.as_secs()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let how = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("exit status {}", libc::WEXITSTATUS(status))
        };
        return Err(format!("{how}: {}", tail(&err_path, 400)));
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let sample = Sample {
        wall_s,
        cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
        peak_rss_kib: ru.ru_maxrss.max(0) as u64,
    };
    let line = tail(&out_path, 1000)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    Ok((sample, line))
}

/// Waits until `pid` has exited (without reaping it) or `timeout` passes;
/// false on time-out. Uses a pidfd; where there is none (kernels before
/// 5.3), waits without a limit.
fn wait_exit(pid: libc::pid_t, timeout: Duration) -> bool {
    // SAFETY: plain syscall; returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if fd < 0 {
        return true;
    }
    let deadline = Instant::now() + timeout;
    let exited = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms.max(1)) };
        if n > 0 {
            break true;
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break true; // cannot poll: fall back to a blocking wait
        }
    };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    exited
}
