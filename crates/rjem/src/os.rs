//! The operating system boundary: virtual memory, page size, CPU count,
//! error output and abort.
//!
//! Owns: every system call rjem makes. Nothing here allocates, takes a lock
//! or touches allocator state, so it is safe to call from any context
//! (initialisation, fork handlers, thread-exit destructors). Also the
//! small helpers options need below `conf`: `parse_usize` and `BootStr`.
//!
//! Invariants: mappings are returned page-aligned and below 2^48 (the pointer
//! map's address space); a failed call reports failure, never panics.

use core::ptr;

/// Bits of virtual address the pointer map covers (x86_64 / aarch64 user space).
pub(crate) const VA_BITS: u32 = 48;

/// `n` rounded up to a multiple of `align` (a power of two); None if that
/// overflows. The one rounding rule for sizes and addresses alike.
#[inline(always)]
pub(crate) const fn align_up(n: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two());
    match n.checked_add(align - 1) {
        Some(x) => Some(x & !(align - 1)),
        None => None,
    }
}

/// The system page size, read from the OS (`sysconf(_SC_PAGESIZE)`).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions and does not allocate.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as usize
    }
}

/// Longest text a `BootStr` holds (without its NUL).
pub(crate) const BOOT_STR_MAX: usize = 255;

/// A NUL-terminated string fixed at start-up: a text option's value
/// (`conf` writes it, its owner reads it).
pub(crate) struct BootStr(core::cell::UnsafeCell<[u8; BOOT_STR_MAX + 1]>);

// SAFETY: written only by `set`, whose contract excludes concurrent access.
unsafe impl Sync for BootStr {}

impl BootStr {
    pub(crate) const fn new() -> BootStr {
        BootStr(core::cell::UnsafeCell::new([0; BOOT_STR_MAX + 1]))
    }

    /// The text (without its NUL).
    pub(crate) fn get(&'static self) -> &'static core::ffi::CStr {
        // SAFETY: `set` keeps a NUL within the buffer and runs only while
        // nothing reads (its contract).
        let b: &'static [u8; BOOT_STR_MAX + 1] = unsafe { &*self.0.get() };
        core::ffi::CStr::from_bytes_until_nul(b).unwrap_or(c"")
    }

    /// Replaces the text; false (unchanged) if `s` is longer than
    /// `BOOT_STR_MAX` or holds a NUL.
    ///
    /// # Safety
    /// Only during start-up, by the initialising thread, while no other
    /// thread can read the value.
    pub(crate) unsafe fn set(&self, s: &[u8]) -> bool {
        if s.len() > BOOT_STR_MAX || s.contains(&0) {
            return false;
        }
        // SAFETY: exclusive access per the contract.
        let b = unsafe { &mut *self.0.get() };
        b[..s.len()].copy_from_slice(s);
        b[s.len()] = 0;
        true
    }
}

/// Parses a decimal (or 0x hex) unsigned integer; None on overflow.
pub(crate) fn parse_usize(v: &[u8]) -> Option<usize> {
    let (digits, radix) = match v {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (v, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: usize = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)? as usize;
        n = n.checked_mul(radix as usize)?.checked_add(d)?;
    }
    Some(n)
}

/// Number of CPUs this process may run on. Uses `sched_getaffinity`, which,
/// unlike `sysconf(_SC_NPROCESSORS_ONLN)`, does not open files or allocate.
pub(crate) fn ncpus() -> usize {
    // SAFETY: cpu_set_t is plain data; the call writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        if libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let n = libc::CPU_COUNT(&set);
            if n > 0 {
                return n as usize;
            }
        }
    }
    1
}

/// One more than the highest CPU this process may run on (CPU ids run
/// from 0; with an affinity mask such as `taskset -c 2,3` this exceeds
/// `ncpus()`). No allocation, like `ncpus`.
pub(crate) fn cpu_id_limit() -> usize {
    // SAFETY: cpu_set_t is plain data; the call writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        if libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let bits = 8 * core::mem::size_of::<libc::cpu_set_t>();
            if let Some(top) = (0..bits).rev().find(|&c| libc::CPU_ISSET(c, &set)) {
                return top + 1;
            }
        }
    }
    1
}

/// The CPU the calling thread is running on, if the system says
/// (`sched_getcpu`: glibc reads it from the thread's rseq area or the
/// vDSO, without allocating).
#[inline]
pub(crate) fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).ok()
}

/// Fault injection (feature `fault-injection`, for tests; without it this
/// is not compiled and `injected` is always false): `mmap`, `madvise` and
/// `mprotect` fail at chosen rates, as the kernel fails them (ENOMEM,
/// EAGAIN), so tests can show that every failure is handled.
#[cfg(feature = "fault-injection")]
pub mod faults {
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

    /// The calls that can be made to fail.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Call {
        /// Mapping memory (arena growth, metadata, pointer-map leaves).
        Mmap = 0,
        /// Purging (`MADV_FREE`, `MADV_DONTNEED`).
        Madvise = 1,
        /// Guard pages (making them inaccessible, and lifting them).
        Mprotect = 2,
    }

    /// Per call: fail one call in this many, at random (0: never).
    static ONE_IN: [AtomicU32; 3] = [const { AtomicU32::new(0) }; 3];
    /// Failures injected so far, per call.
    static COUNT: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
    static RNG: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

    /// Makes one `call` in `one_in` fail from now on, at random; 0 stops.
    pub fn set(call: Call, one_in: u32) {
        ONE_IN[call as usize].store(one_in, Relaxed);
    }

    /// Failures injected so far into `call`.
    pub fn count(call: Call) -> u64 {
        COUNT[call as usize].load(Relaxed)
    }

    /// Whether this `call` fails (then errno is set as the kernel would).
    pub(crate) fn fail(call: Call) -> bool {
        let n = ONE_IN[call as usize].load(Relaxed);
        if n == 0 {
            return false;
        }
        // xorshift64: racing threads may draw the same number; harmless.
        let mut x = RNG.load(Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        RNG.store(x, Relaxed);
        if !x.is_multiple_of(n as u64) {
            return false;
        }
        COUNT[call as usize].fetch_add(1, Relaxed);
        super::set_errno(match call {
            Call::Madvise => libc::EAGAIN,
            _ => libc::ENOMEM,
        });
        true
    }
}

/// Whether fault injection makes this call fail (never without the
/// feature).
#[inline(always)]
fn injected(call: u8) -> bool {
    #[cfg(feature = "fault-injection")]
    {
        use faults::Call;
        let c = match call {
            0 => Call::Mmap,
            1 => Call::Madvise,
            _ => Call::Mprotect,
        };
        faults::fail(c)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = call;
        false
    }
}
const MMAP: u8 = 0;
const MADVISE: u8 = 1;
const MPROTECT: u8 = 2;

/// Maps `size` bytes of fresh, zeroed, read-write anonymous memory.
/// Returns null on failure (or if the kernel placed it above `VA_BITS`).
pub(crate) fn map(size: usize) -> *mut u8 {
    if injected(MMAP) {
        return ptr::null_mut();
    }
    // SAFETY: an anonymous private mapping at a kernel-chosen address cannot
    // alias existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    if (p as usize)
        .checked_add(size)
        .is_none_or(|end| end > (1usize << VA_BITS))
    {
        unmap(p as *mut u8, size);
        return ptr::null_mut();
    }
    p as *mut u8
}

/// Maps `size` bytes aligned to `align` (a power of two, at least a page) by
/// over-mapping and trimming.
pub(crate) fn map_aligned(size: usize, align: usize) -> *mut u8 {
    let p = map(size);
    if p.is_null() || (p as usize) & (align - 1) == 0 {
        return p;
    }
    unmap(p, size);
    let Some(big) = size.checked_add(align) else {
        return ptr::null_mut();
    };
    let q = map(big);
    if q.is_null() {
        return q;
    }
    // `q + big` did not overflow, so neither does this.
    let start = align_up(q as usize, align).unwrap_or(0);
    let lead = start - q as usize;
    let trail = big - lead - size;
    if lead > 0 {
        unmap(q, lead);
    }
    if trail > 0 {
        unmap((start + size) as *mut u8, trail);
    }
    start as *mut u8
}

/// Returns a mapping (or a page-aligned part of one) to the OS.
pub(crate) fn unmap(p: *mut u8, size: usize) {
    // SAFETY: callers pass ranges they obtained from `map` and no longer use.
    unsafe {
        libc::munmap(p as *mut libc::c_void, size);
    }
}

/// Whether `MADV_FREE` worked last time; cleared on the first EINVAL so that
/// kernels without it fall back to `MADV_DONTNEED` cleanly.
static MADV_FREE_OK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// What a lazy purge did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Purged {
    /// MADV_FREE: the kernel may take the pages; contents undefined.
    Lazy,
    /// Fell back to MADV_DONTNEED: released, reads as zeros.
    Zeroed,
    /// Nothing could be purged (e.g. locked pages): contents kept.
    Failed,
}

/// Lazy purge: the kernel may reclaim the pages when it needs memory.
/// Kernels without `MADV_FREE` (EINVAL) fall back to a forced purge, and
/// rjem stops trying it.
pub(crate) fn purge_lazy(p: *mut u8, size: usize) -> Purged {
    use core::sync::atomic::Ordering::Relaxed;
    if MADV_FREE_OK.load(Relaxed) {
        if injected(MADVISE) {
            return Purged::Failed;
        }
        // SAFETY: madvise on a range of our own mapping only changes residency.
        let r = unsafe { libc::madvise(p as *mut libc::c_void, size, libc::MADV_FREE) };
        if r == 0 {
            return Purged::Lazy;
        }
        // EINVAL means either "no MADV_FREE in this kernel" or "this range
        // cannot be freed" (locked pages): probe a fresh page to tell.
        if errno() == libc::EINVAL && !madv_free_works() {
            MADV_FREE_OK.store(false, Relaxed);
        }
    }
    if purge_forced(p, size) {
        Purged::Zeroed
    } else {
        Purged::Failed
    }
}

fn madv_free_works() -> bool {
    let ps = page_size();
    let p = map(ps);
    if p.is_null() {
        return true;
    }
    // SAFETY: a private page we just mapped.
    let ok = unsafe { libc::madvise(p as *mut libc::c_void, ps, libc::MADV_FREE) == 0 };
    unmap(p, ps);
    ok
}

/// Asks for (`on`) or refuses transparent huge pages for a range of our
/// own mapping. Advice only: a kernel without THP ignores it.
pub(crate) fn advise_huge(p: *mut u8, size: usize, on: bool) {
    let advice = if on {
        libc::MADV_HUGEPAGE
    } else {
        libc::MADV_NOHUGEPAGE
    };
    // SAFETY: madvise on a range of our own mapping only changes paging.
    unsafe { libc::madvise(p.cast(), size, advice) };
}

/// Whether a fresh transparent huge page is slow to touch here because
/// the machine is a virtual machine whose kernel reports free memory to
/// the hypervisor (virtio-balloon free page reporting) in blocks no larger
/// than a huge page. The hypervisor then drops the memory behind them, a
/// free huge page is almost always such a block (the kernel reports free
/// blocks about two seconds after they form and hands out small pages from
/// unreported ones first), and writing it faults once per host page: on a
/// Firecracker guest, 8 ms per MiB against 0.5 ms for small pages and
/// 0.17 ms for a recently freed huge page (docs/benchmarks.md). Read from
/// sysfs once, on first use (about ten system calls; `errno` is kept, as
/// the allocation that asks may succeed); false when anything is missing.
pub(crate) fn huge_pages_start_cold() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering::Relaxed};
    // 0: not read yet, 1: no, 2: yes.
    static COLD: AtomicU8 = AtomicU8::new(0);
    match COLD.load(Relaxed) {
        0 => {
            let saved = errno();
            let cold = free_huge_pages_reported();
            set_errno(saved);
            COLD.store(1 + cold as u8, Relaxed);
            cold
        }
        v => v == 2,
    }
}

/// The sysfs half of `huge_pages_start_cold`: the kernel reports free
/// blocks of at most a huge page's order, and a bound virtio balloon
/// device offers reporting.
fn free_huge_pages_reported() -> bool {
    let mut buf = [0u8; 256];
    let order = read_file(
        c"/sys/module/page_reporting/parameters/page_reporting_order",
        &mut buf,
    )
    .and_then(|t| parse_usize(t.trim_ascii()));
    let huge = read_file(
        c"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
        &mut buf,
    )
    .and_then(|t| parse_usize(t.trim_ascii()));
    let (Some(order), Some(huge)) = (order, huge) else {
        return false;
    };
    if huge < page_size() || (page_size() << order.min(40)) > huge {
        return false;
    }
    const DRIVER: &[u8] = b"/sys/bus/virtio/drivers/virtio_balloon/";
    let mut found = false;
    for_each_dir_entry(c"/sys/bus/virtio/drivers/virtio_balloon", |name| {
        if !name.starts_with(b"virtio") || found {
            return;
        }
        // "<DRIVER><name>/features" with its NUL.
        let mut path = [0u8; 128];
        let tail = b"/features\0";
        let len = DRIVER.len() + name.len() + tail.len();
        if len > path.len() {
            return;
        }
        path[..DRIVER.len()].copy_from_slice(DRIVER);
        path[DRIVER.len()..DRIVER.len() + name.len()].copy_from_slice(name);
        path[DRIVER.len() + name.len()..len].copy_from_slice(tail);
        let Ok(path) = core::ffi::CStr::from_bytes_with_nul(&path[..len]) else {
            return;
        };
        let mut features = [0u8; 256];
        found = read_file(path, &mut features).is_some_and(balloon_reports_free_pages);
    });
    found
}

/// Whether a virtio-balloon device's `features` text (one '0' or '1' per
/// feature bit, bit 0 first) offers free page reporting (bit 5,
/// `VIRTIO_BALLOON_F_REPORTING`).
fn balloon_reports_free_pages(features: &[u8]) -> bool {
    const VIRTIO_BALLOON_F_REPORTING: usize = 5;
    features.get(VIRTIO_BALLOON_F_REPORTING) == Some(&b'1')
}

/// Reads file `path` into `buf` (one `read`, enough for sysfs), or None.
fn read_file<'a>(path: &core::ffi::CStr, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    // SAFETY: open and close have no memory preconditions; read writes at
    // most buf.len() bytes into buf.
    let n = unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    (n >= 0).then(|| &buf[..n as usize])
}

/// Calls `f` with the name of each entry of directory `path` (raw
/// `getdents64` into a stack buffer: `opendir` would allocate).
fn for_each_dir_entry(path: &core::ffi::CStr, mut f: impl FnMut(&[u8])) {
    // SAFETY: open has no memory preconditions.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    let mut buf = [0u8; 2048];
    loop {
        // SAFETY: getdents64 writes at most buf.len() bytes into buf.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            break;
        }
        dir_entry_names(&buf[..n as usize], &mut f);
    }
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
}

/// The names in a buffer of `linux_dirent64` records: inode (8 bytes),
/// offset (8), record length (2), type (1), then the NUL-terminated name.
fn dir_entry_names(mut records: &[u8], f: &mut impl FnMut(&[u8])) {
    const NAME: usize = 19;
    while records.len() > NAME {
        let reclen = u16::from_ne_bytes([records[16], records[17]]) as usize;
        if reclen <= NAME || reclen > records.len() {
            return;
        }
        let name = &records[NAME..reclen];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        f(&name[..end]);
        records = &records[reclen..];
    }
}

/// Whether at least half of the pages of a page-aligned range are resident
/// (`mincore`), which says whether a program writes the blocks it
/// allocates. False if the kernel cannot tell (a range no longer mapped).
pub(crate) fn mostly_resident(p: *mut u8, size: usize) -> bool {
    let page = page_size();
    let mut vec = [0u8; 4096];
    let (mut at, mut resident, mut pages) = (p as usize, 0, 0);
    let end = p as usize + size;
    while at < end {
        let n = ((end - at) / page).min(vec.len());
        // SAFETY: mincore only reads the page tables (an unmapped range
        // fails with ENOMEM), and `vec` holds one byte for each of the `n`
        // pages asked about.
        if n == 0
            || unsafe { libc::mincore(at as *mut libc::c_void, n * page, vec.as_mut_ptr()) } != 0
        {
            return false;
        }
        resident += vec[..n].iter().filter(|&&b| b & 1 != 0).count();
        pages += n;
        at += n * page;
    }
    resident * 2 >= pages
}

/// Makes a range of our own mapping inaccessible (`inaccessible`: a guard
/// page, any access faults) or readable and writable again. False if the
/// OS refused (for example at its limit of mappings, which each guard
/// splits).
pub(crate) fn protect(p: *mut u8, size: usize, inaccessible: bool) -> bool {
    if injected(MPROTECT) {
        return false;
    }
    let prot = if inaccessible {
        libc::PROT_NONE
    } else {
        libc::PROT_READ | libc::PROT_WRITE
    };
    // SAFETY: mprotect on a range of our own mapping; callers make the
    // range inaccessible only when nothing is stored there.
    unsafe { libc::mprotect(p.cast(), size, prot) == 0 }
}

/// Forced purge: the pages are released now and read back as zeros.
pub(crate) fn purge_forced(p: *mut u8, size: usize) -> bool {
    if injected(MADVISE) {
        return false;
    }
    // SAFETY: madvise on a range of our own mapping only changes residency.
    unsafe { libc::madvise(p as *mut libc::c_void, size, libc::MADV_DONTNEED) == 0 }
}

/// A number that identifies the calling thread while it lives (never 0):
/// its thread pointer, one register read on x86_64.
#[inline(always)]
pub(crate) fn thread_id() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: usize;
        // SAFETY: reads the thread control block's self pointer at %fs:0,
        // which the C library sets up for every thread; no memory is written.
        unsafe {
            core::arch::asm!(
                "mov {tp}, qword ptr fs:[0]",
                tp = out(reg) tp,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        tp
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: pthread_self has no preconditions and does not allocate.
        unsafe { libc::pthread_self() as usize }
    }
}

/// Writes a message to standard error without allocating.
pub(crate) fn write_stderr(msg: &[u8]) {
    write_fd(2, msg)
}

/// Writes all of `msg` to file descriptor `fd`, retrying short writes and
/// interruptions; gives up silently on any other error (a closed or bad
/// descriptor).
pub(crate) fn write_fd(fd: i32, msg: &[u8]) {
    let mut rest = msg;
    while !rest.is_empty() {
        // SAFETY: the buffer is valid for `rest.len()` bytes.
        let n = unsafe { libc::write(fd, rest.as_ptr() as *const libc::c_void, rest.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// A line for standard error, formatted without allocating (`core::fmt`
/// into a fixed buffer; a longer line is cut). Written when dropped.
pub(crate) struct Msg {
    buf: [u8; 512],
    len: usize,
}

impl Msg {
    pub(crate) const fn new() -> Msg {
        Msg {
            buf: [0; 512],
            len: 0,
        }
    }
}

impl core::fmt::Write for Msg {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl Drop for Msg {
    fn drop(&mut self) {
        write_stderr(&self.buf[..self.len]);
    }
}

/// Option `abort` (a tri-state, stored as `ABORT_UNSET`, `ABORT_ON`,
/// `ABORT_OFF`): whether heap misuse reported by `misuse` aborts. Unset
/// (the default) and `true` abort; an explicit `false` only reports, and
/// the caller skips the bad operation. `conf` owns the parsing (and makes
/// `abort:true` abort on invalid options too, as jemalloc's `abort`).
pub(crate) static OPT_ABORT: core::sync::atomic::AtomicU8 =
    core::sync::atomic::AtomicU8::new(ABORT_UNSET);
pub(crate) const ABORT_UNSET: u8 = 0;
pub(crate) const ABORT_ON: u8 = 1;
pub(crate) const ABORT_OFF: u8 = 2;

/// Whether heap misuse aborts (`abort` unset or true).
pub(crate) fn misuse_aborts() -> bool {
    OPT_ABORT.load(core::sync::atomic::Ordering::Relaxed) != ABORT_OFF
}

/// Reports heap misuse by the program (an invalid, double or wrongly sized
/// free, `realloc` of freed memory): one line naming the error, the size
/// class where known (in `what`) and the pointer. Aborts unless `abort:false`
/// is in force; then it returns, and the caller must skip the operation
/// (leave the memory as it is). The one place that decides.
#[cold]
#[inline(never)]
pub(crate) fn misuse(what: core::fmt::Arguments, addr: usize) {
    if misuse_aborts() {
        fatal_fmt(what, addr);
    }
    use core::fmt::Write;
    let mut m = Msg::new();
    let _ = writeln!(
        m,
        "<rjem>: {what} (pointer {addr:#x}); ignored (abort:false)"
    );
}

/// Reports a fatal error that cannot be skipped (corrupted metadata, an
/// option asking to abort) and aborts the process. Never unwinds.
#[cold]
#[inline(never)]
pub(crate) fn fatal(what: &str, addr: usize) -> ! {
    fatal_fmt(format_args!("{what}"), addr)
}

/// `fatal` with a formatted description.
#[cold]
#[inline(never)]
pub(crate) fn fatal_fmt(what: core::fmt::Arguments, addr: usize) -> ! {
    {
        use core::fmt::Write;
        let mut m = Msg::new();
        let _ = writeln!(m, "<rjem>: {what} (pointer {addr:#x})");
    }
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// Reads an environment variable without allocating. The returned bytes
/// live as long as the environment entry (until the program changes it).
pub(crate) fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv returns null or a NUL-terminated string owned by libc.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(core::ffi::CStr::from_ptr(p).to_bytes())
        }
    }
}

/// The target of symbolic link `path` (jemalloc reads options from the
/// name `/etc/malloc.conf` links to), if it fits in `buf`.
pub(crate) fn readlink<'a>(path: &core::ffi::CStr, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    // SAFETY: buf is valid for buf.len() bytes; readlink writes at most that.
    let n = unsafe { libc::readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 || n as usize >= buf.len() {
        return None;
    }
    Some(&buf[..n as usize])
}

/// The options string of the program's `malloc_conf` symbol, if it defines
/// one (linked programs; an executable exports it when linked against
/// librjem).
pub(crate) fn program_conf() -> Option<&'static [u8]> {
    #[cfg(target_arch = "x86_64")]
    {
        let addr: *const *const core::ffi::c_char;
        // SAFETY: a weak reference to `malloc_conf`, the `const char *` a
        // program may define to build options in (as with jemalloc); the
        // directive sits in the same object as the reference, so the
        // linker resolves it to address 0 when nothing defines it. This
        // loads that address from its GOT slot; no memory is written.
        unsafe {
            core::arch::asm!(
                ".weak malloc_conf",
                "mov {p}, qword ptr [rip + malloc_conf@GOTPCREL]",
                p = out(reg) addr,
                options(pure, readonly, nostack),
            );
        }
        if addr.is_null() {
            return None;
        }
        // SAFETY: a defined `malloc_conf` is a `const char *` holding null
        // or a NUL-terminated string that lives for the whole program.
        unsafe {
            let s = *addr;
            (!s.is_null()).then(|| core::ffi::CStr::from_ptr(s).to_bytes())
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Whether the first word of the memory at `p` equals `key`, read as the
/// machine reads it: the block may hold bytes Rust would call
/// uninitialised (a block allocated and freed without being written),
/// which this comparison does not care about.
///
/// # Safety
/// `p` must be 8-aligned and point to at least 8 readable bytes.
#[inline(always)]
pub(crate) unsafe fn first_word_is(p: *const u8, key: u64) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the caller guarantees 8 readable, aligned bytes; the asm
        // only compares them with `key`.
        unsafe {
            core::arch::asm!(
                "cmp qword ptr [{p}], {k}",
                "je {same}",
                p = in(reg) p,
                k = in(reg) key,
                same = label { return true; },
                options(nostack, readonly)
            )
        };
        false
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above. A volatile load is never reasoned about: it
    // returns whatever the bytes are.
    unsafe {
        (p as *const u64).read_volatile() == key
    }
}

/// `n * m` (mod 2^64) for the u64 `m` at byte offset `index + OFF` of
/// `base`, with the multiplication reading `m` from memory itself,
/// addressed as base + index + OFF: the compiler would load it into a
/// register first when the caller reads it again, or add the index to the
/// base (an instruction more each on `free`'s hit path).
///
/// # Safety
/// `base + index + OFF` must hold an aligned, initialised u64.
#[inline(always)]
pub(crate) unsafe fn mul_by_indexed_field<const OFF: usize>(
    n: u64,
    base: *const u8,
    index: usize,
) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut r = n;
        // SAFETY: the caller guarantees the u64 there; the asm reads it and
        // writes only `r` and the flags.
        unsafe {
            core::arch::asm!(
                "imul {r}, qword ptr [{b} + {i} + {off}]",
                r = inout(reg) r,
                b = in(reg) base,
                i = in(reg) index,
                off = const OFF,
                options(pure, readonly, nostack)
            )
        };
        r
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above.
    n.wrapping_mul(unsafe { (base.add(index + OFF) as *const u64).read() })
}

/// Gives the CPU to another runnable thread, if any.
pub(crate) fn yield_now() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

/// Monotonic time in nanoseconds (vDSO: no system call on Linux).
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps while `*word == expected`, until woken or `timeout_ns` passes
/// (None: no timeout). Spurious returns are possible; callers re-check.
pub(crate) fn futex_wait(
    word: &core::sync::atomic::AtomicU32,
    expected: u32,
    timeout_ns: Option<u64>,
) {
    let ts = timeout_ns.map(|ns| libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    });
    let tp = ts
        .as_ref()
        .map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT only reads the word; tp is null or a valid
    // relative timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word as *const core::sync::atomic::AtomicU32,
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            tp,
        );
    }
}

/// Wakes one thread sleeping in `futex_wait` on `word`.
pub(crate) fn futex_wake(word: &core::sync::atomic::AtomicU32) {
    // SAFETY: FUTEX_WAKE only wakes waiters on this address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word as *const core::sync::atomic::AtomicU32,
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// The calling thread's `errno`.
pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
pub(crate) fn set_errno(e: i32) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_is_zeroed_and_aligned() {
        let ps = page_size();
        assert!(ps.is_power_of_two() && ps >= 4096);
        let p = map_aligned(1 << 21, 1 << 21);
        assert!(!p.is_null());
        assert_eq!(p as usize % (1 << 21), 0);
        // SAFETY: freshly mapped and writable.
        unsafe {
            assert_eq!(*p.add(12345), 0);
            *p.add(12345) = 7;
        }
        assert!(purge_forced(p, 1 << 21));
        // SAFETY: still mapped; MADV_DONTNEED makes it read as zero.
        unsafe { assert_eq!(*p.add(12345), 0) };
        unmap(p, 1 << 21);
    }

    #[test]
    fn messages_are_cut_not_overflowed() {
        use core::fmt::Write;
        let mut m = Msg::new();
        for _ in 0..100 {
            let _ = write!(m, "0123456789");
        }
        assert_eq!(m.len, 512);
        m.len = 0; // nothing to print
    }

    #[test]
    fn rounding() {
        assert_eq!(align_up(0, 8), Some(0));
        assert_eq!(align_up(1, 8), Some(8));
        assert_eq!(align_up(4096, 4096), Some(4096));
        assert_eq!(align_up(usize::MAX - 2, 8), None);
    }

    #[test]
    fn balloon_features_are_read_by_bit() {
        assert!(balloon_reports_free_pages(b"01100101000"));
        assert!(!balloon_reports_free_pages(b"01100001000"));
        assert!(!balloon_reports_free_pages(b"0110"));
        assert!(!balloon_reports_free_pages(b""));
    }

    /// A `linux_dirent64` record as the kernel lays it out, padded to 8.
    fn record(name: &[u8]) -> std::vec::Vec<u8> {
        let len = (19 + name.len() + 1).next_multiple_of(8);
        let mut r = std::vec![0u8; len];
        r[16..18].copy_from_slice(&(len as u16).to_ne_bytes());
        r[19..19 + name.len()].copy_from_slice(name);
        r
    }

    #[test]
    fn dir_records_give_their_names_and_stop_at_a_bad_length() {
        let mut buf = record(b".");
        buf.extend(record(b"virtio0"));
        buf.extend(record(b"a_name_long_enough_to_take_two_words"));
        let mut names = std::vec::Vec::new();
        dir_entry_names(&buf, &mut |n: &[u8]| names.push(n.to_vec()));
        assert_eq!(
            names,
            [
                &b"."[..],
                b"virtio0",
                b"a_name_long_enough_to_take_two_words"
            ]
        );
        // A record length past the buffer ends the walk without reading it.
        let mut bad = record(b"x");
        bad[16..18].copy_from_slice(&500u16.to_ne_bytes());
        buf.extend(bad);
        names.clear();
        dir_entry_names(&buf, &mut |n: &[u8]| names.push(n.to_vec()));
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn directories_and_files_are_read_without_libc_buffers() {
        let mut seen = false;
        for_each_dir_entry(c"/proc/self", |n| seen |= n == b"status");
        assert!(seen, "/proc/self lists status");
        let mut buf = [0u8; 64];
        let text = read_file(c"/proc/self/status", &mut buf).expect("readable");
        assert!(text.starts_with(b"Name:"));
        assert!(read_file(c"/no/such/file", &mut buf).is_none());
        // Whatever this machine is, the answer is stable.
        assert_eq!(huge_pages_start_cold(), huge_pages_start_cold());
    }

    #[test]
    fn cpus_positive() {
        assert!(ncpus() >= 1);
    }
}
