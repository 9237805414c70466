//! Profile dumps in jemalloc's `heap_v2` format, file names, and the leak
//! report at exit.
//!
//! Owns: the text format `jeprof` reads: a header with the sampling
//! period and totals (and per thread name, `t<id>: ... <name>`), then each
//! stack (`@` and its return addresses) with its counts (`t*:` live
//! objects and bytes, `[` cumulative `]` with `prof_accum`; a `t<id>:`
//! line too if named threads sampled it: a stack sampled by threads of
//! several names appears once per name), then `MAPPED_LIBRARIES:` and a copy of
//! `/proc/self/maps`. Counts are the sampled ones: readers scale them
//! (`math::scale`). File names follow jemalloc:
//! `<prefix>.<pid>.<seq>.<kind><n>.heap` (`m` on demand, `i` interval, `u`
//! new high-water mark) and `<prefix>.<pid>.<seq>.f.heap` at exit.
//!
//! Invariants: nothing here allocates: text is formatted into a buffer on
//! the stack and written with `write(2)`; the record table's lock is held
//! while a dump reads it (a sample being recorded meanwhile waits).

use super::encode::FdSink;
use super::table::{Record, TABLE};
use super::{math, names, period, OPT_PROF_ACCUM, OPT_PROF_FINAL, OPT_PROF_PPROF, OPT_PROF_PREFIX};
use crate::os;
use crate::sync::Mutex;
use core::ffi::CStr;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Dumps written, and of each kind (jemalloc's sequence numbers).
static SEQ: AtomicU64 = AtomicU64::new(0);
static MSEQ: AtomicU64 = AtomicU64::new(0);
static ISEQ: AtomicU64 = AtomicU64::new(0);
static USEQ: AtomicU64 = AtomicU64::new(0);

/// `prof.prefix`: the prefix set at run time (empty: `prof_prefix`'s).
pub(super) struct Prefix {
    buf: [u8; 255],
    len: usize,
}

pub(super) static PREFIX: Mutex<Prefix> = Mutex::new(Prefix {
    buf: [0; 255],
    len: 0,
});

/// Sets the prefix of the dump names from now on; false if it is empty,
/// too long (255 bytes at most) or holds a NUL byte.
pub(super) fn set_prefix(p: &[u8]) -> bool {
    if p.is_empty() || p.len() > 255 || p.contains(&0) {
        return false;
    }
    let mut g = PREFIX.lock();
    g.buf[..p.len()].copy_from_slice(p);
    g.len = p.len();
    true
}

/// A buffered writer to a file descriptor; remembers whether every write
/// succeeded.
pub(super) struct Out {
    fd: i32,
    buf: [u8; 4096],
    len: usize,
    pub(super) ok: bool,
}

impl Out {
    pub(super) fn new(fd: i32) -> Out {
        Out {
            fd,
            buf: [0; 4096],
            len: 0,
            ok: true,
        }
    }

    pub(super) fn bytes(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = b.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
            self.len += n;
            b = &b[n..];
        }
    }

    pub(super) fn flush(&mut self) {
        let mut rest = &self.buf[..self.len];
        while !rest.is_empty() && self.ok {
            // SAFETY: the buffer is valid for `rest.len()` bytes.
            let n = unsafe { libc::write(self.fd, rest.as_ptr().cast(), rest.len()) };
            if n < 0 && os::errno() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                self.ok = false;
                break;
            }
            rest = &rest[n as usize..];
        }
        self.len = 0;
    }
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// Whether a record appears in dumps: it has live samples, or, with
/// `prof_accum`, ever had any.
pub(super) fn shown(r: &Record) -> bool {
    r.cur_objs.load(Relaxed) != 0
        || (OPT_PROF_ACCUM.load(Relaxed) && r.accum_objs.load(Relaxed) != 0)
}

/// Writes the `heap_v2` profile.
fn write_heap(out: &mut Out) {
    let table = TABLE.lock();
    let (mut co, mut cb, mut ao, mut ab) = (0u64, 0u64, 0u64, 0u64);
    table.for_each(|r| {
        co += r.cur_objs.load(Relaxed);
        cb += r.cur_bytes.load(Relaxed);
        ao += r.accum_objs.load(Relaxed);
        ab += r.accum_bytes.load(Relaxed);
    });
    let _ = write!(out, "heap_v2/{}\n  t*: {co}: {cb} [{ao}: {ab}]\n", period());
    // Per thread name: "t<name id>: counts name" (jemalloc writes one
    // line per thread, with its name if it has one).
    let mut per_name = [[0u64; 4]; names::MAX + 1];
    table.for_each(|r| {
        let c = &mut per_name[r.thread as usize];
        c[0] += r.cur_objs.load(Relaxed);
        c[1] += r.cur_bytes.load(Relaxed);
        c[2] += r.accum_objs.load(Relaxed);
        c[3] += r.accum_bytes.load(Relaxed);
    });
    for (id, c) in per_name.iter().enumerate().skip(1) {
        if c[0] != 0 || c[2] != 0 {
            let name = names::get(id as u16).to_str().unwrap_or("?");
            let _ = writeln!(
                out,
                "  t{id}: {}: {} [{}: {}] {name}",
                c[0], c[1], c[2], c[3]
            );
        }
    }
    table.for_each(|r| {
        if !shown(r) {
            return;
        }
        out.bytes(b"@");
        for f in r.frames() {
            let _ = write!(out, " {f:#x}");
        }
        let counts = [
            r.cur_objs.load(Relaxed),
            r.cur_bytes.load(Relaxed),
            r.accum_objs.load(Relaxed),
            r.accum_bytes.load(Relaxed),
        ];
        let [a, b, c, d] = counts;
        let _ = writeln!(out, "\n  t*: {a}: {b} [{c}: {d}]");
        if r.thread != 0 {
            let _ = writeln!(out, "  t{}: {a}: {b} [{c}: {d}]", r.thread);
        }
    });
    drop(table);
    out.bytes(b"\nMAPPED_LIBRARIES:\n");
    copy_maps(out);
}

/// Appends `/proc/self/maps`.
pub(super) fn copy_maps(out: &mut Out) {
    read_maps(|b| out.bytes(b));
}

/// Calls `f` on each line of `/proc/self/maps` (with its newline; a
/// line longer than 4 KiB is skipped).
pub(super) fn for_each_maps_line(mut f: impl FnMut(&[u8])) {
    let mut line = [0u8; 4096];
    let (mut len, mut skip) = (0usize, false);
    read_maps(|mut b| {
        while !b.is_empty() {
            let nl = b.iter().position(|&c| c == b'\n');
            let take = nl.map_or(b.len(), |i| i + 1);
            if !skip && len + take <= line.len() {
                line[len..len + take].copy_from_slice(&b[..take]);
                len += take;
            } else {
                skip = true;
            }
            if nl.is_some() {
                if !skip {
                    f(&line[..len]);
                }
                len = 0;
                skip = false;
            }
            b = &b[take..];
        }
    });
}

/// Passes the bytes of `/proc/self/maps` to `f`, a buffer at a time.
fn read_maps(mut f: impl FnMut(&[u8])) {
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && os::errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        f(&buf[..n as usize]);
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
}

/// Writes the profile to `path`: pprof's gzipped protobuf if the name
/// ends in `.pb.gz`, else `heap_v2`. False if the file cannot be written.
pub(super) fn dump_path(path: &CStr) -> bool {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return false;
    }
    let ok = if path.to_bytes().ends_with(PPROF_SUFFIX.as_bytes()) {
        super::pprof::write(&mut FdSink(fd))
    } else {
        let mut out = Out::new(fd);
        write_heap(&mut out);
        out.flush();
        out.ok
    };
    // SAFETY: fd is ours.
    let closed = unsafe { libc::close(fd) } == 0;
    ok && closed
}

/// The file name ending that selects pprof output.
pub(super) const PPROF_SUFFIX: &str = ".pb.gz";

/// Writes a profile to the next `prof_prefix`-based name of `kind` (`m`,
/// `i`, `u` or `f`).
pub(super) fn dump_seq(kind: u8) -> bool {
    let mut name = Name::new();
    {
        let g = PREFIX.lock();
        if g.len > 0 {
            name.push(&g.buf[..g.len]);
        } else {
            name.push(OPT_PROF_PREFIX.get().to_bytes());
        }
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let seq = SEQ.fetch_add(1, Relaxed);
    let ext = if OPT_PROF_PPROF.load(Relaxed) {
        PPROF_SUFFIX
    } else {
        ".heap"
    };
    let _ = match kind {
        b'f' => write!(name, ".{pid}.{seq}.f{ext}"),
        _ => {
            let v = match kind {
                b'm' => &MSEQ,
                b'i' => &ISEQ,
                _ => &USEQ,
            }
            .fetch_add(1, Relaxed);
            write!(name, ".{pid}.{seq}.{}{v}{ext}", kind as char)
        }
    };
    match name.c_str() {
        Some(p) => dump_path(p),
        None => false,
    }
}

/// A file name built without allocating.
struct Name {
    buf: [u8; 1024],
    len: usize,
}

impl Name {
    fn new() -> Name {
        Name {
            buf: [0; 1024],
            len: 0,
        }
    }

    fn push(&mut self, b: &[u8]) {
        let end = (self.len + b.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&b[..end - self.len]);
        self.len = end;
    }

    fn c_str(&mut self) -> Option<&CStr> {
        if self.len >= self.buf.len() {
            return None;
        }
        self.buf[self.len] = 0;
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).ok()
    }
}

impl Write for Name {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end >= self.buf.len() {
            self.len = self.buf.len();
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Copies `path` into a NUL-terminated buffer (for the Rust API).
pub(super) fn with_c_path<R>(path: &str, f: impl FnOnce(&CStr) -> R) -> Option<R> {
    let mut n = Name::new();
    if path.as_bytes().contains(&0) || n.write_str(path).is_err() {
        return None;
    }
    n.c_str().map(f)
}

/// Sites reported by the leak report.
const LEAK_SITES: usize = 10;
/// Frames printed per site.
const LEAK_FRAMES: usize = 8;

/// `prof_leak`: at exit, the estimated bytes and objects never freed
/// (scaled from the samples as jeprof scales them) and the stacks
/// holding the most, with symbols where the dynamic linker knows them.
pub(super) fn leak_report() -> bool {
    let table = TABLE.lock();
    let (mut objs, mut bytes, mut contexts) = (0u64, 0u64, 0usize);
    let mut top: [Option<&'static Record>; LEAK_SITES] = [None; LEAK_SITES];
    table.for_each(|r| {
        let (o, b) = (r.cur_objs.load(Relaxed), r.cur_bytes.load(Relaxed));
        if o == 0 {
            return;
        }
        objs += o;
        bytes += b;
        contexts += 1;
        // Insertion into the top list, largest first.
        let mut cand = Some(r);
        for slot in top.iter_mut() {
            let c = cand.expect("carried");
            match slot {
                Some(s) if s.cur_bytes.load(Relaxed) >= c.cur_bytes.load(Relaxed) => {}
                _ => cand = slot.replace(c),
            }
            if cand.is_none() {
                break;
            }
        }
    });
    drop(table);
    if objs == 0 {
        return false;
    }
    let (o, b) = math::scale(objs, bytes, period());
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    {
        let mut m = os::Msg::new();
        let _ = writeln!(
            m,
            "<rjem>: Leak approximation summary: ~{b} byte{}, ~{o} object{}, >= {contexts} context{}",
            plural(b),
            plural(o),
            plural(contexts as u64)
        );
    }
    for r in top.iter().flatten() {
        let (o, b) = math::scale(
            r.cur_objs.load(Relaxed),
            r.cur_bytes.load(Relaxed),
            period(),
        );
        {
            let mut m = os::Msg::new();
            let _ = writeln!(m, "<rjem>: ~{b} bytes in ~{o} objects allocated at:");
        }
        for &pc in r.frames().iter().take(LEAK_FRAMES) {
            let mut m = os::Msg::new();
            let _ = write!(m, "<rjem>:     {pc:#x}");
            symbol(&mut m, pc);
            let _ = writeln!(m);
        }
    }
    if OPT_PROF_FINAL.load(Relaxed) {
        os::write_stderr(b"<rjem>: Run jeprof (or rjem prof top) on dump output for leak detail\n");
    }
    true
}

/// Appends ` name+off (object)` for return address `pc`, as far as the
/// dynamic linker knows (exported symbols only).
fn symbol(m: &mut os::Msg, pc: usize) {
    // SAFETY: an all-zero Dl_info is a valid out-parameter.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables; `pc - 1` lies in
    // the calling instruction.
    if unsafe { libc::dladdr((pc - 1) as *const libc::c_void, &mut info) } == 0 {
        return;
    }
    if !info.dli_sname.is_null() {
        // SAFETY: a NUL-terminated name owned by the loader.
        let name = unsafe { CStr::from_ptr(info.dli_sname) };
        let _ = write!(
            m,
            " {}+{:#x}",
            name.to_str().unwrap_or("?"),
            pc - info.dli_saddr as usize
        );
    }
    if !info.dli_fname.is_null() {
        // SAFETY: as above.
        let obj = unsafe { CStr::from_ptr(info.dli_fname) };
        let _ = write!(m, " ({})", obj.to_str().unwrap_or("?"));
    }
}
