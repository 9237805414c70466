//! The operating system boundary: virtual memory, page size, CPU count,
//! error output and abort.
//!
//! Owns: every system call rjem makes. Nothing here allocates, takes a lock
//! or touches allocator state, so it is safe to call from any context
//! (initialisation, fork handlers, thread-exit destructors).
//!
//! Invariants: mappings are returned page-aligned and below 2^48 (the pointer
//! map's address space); a failed call reports failure, never panics.

use core::ptr;

/// Bits of virtual address the pointer map covers (x86_64 / aarch64 user space).
pub const VA_BITS: u32 = 48;

/// The system page size, read from the OS (`sysconf(_SC_PAGESIZE)`).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions and does not allocate.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as usize
    }
}

/// Number of CPUs this process may run on. Uses `sched_getaffinity`, which,
/// unlike `sysconf(_SC_NPROCESSORS_ONLN)`, does not open files or allocate.
pub fn ncpus() -> usize {
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

/// Maps `size` bytes of fresh, zeroed, read-write anonymous memory.
/// Returns null on failure (or if the kernel placed it above `VA_BITS`).
pub fn map(size: usize) -> *mut u8 {
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
pub fn map_aligned(size: usize, align: usize) -> *mut u8 {
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
    let start = (q as usize + align - 1) & !(align - 1);
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
pub fn unmap(p: *mut u8, size: usize) {
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
pub enum Purged {
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
pub fn purge_lazy(p: *mut u8, size: usize) -> Purged {
    use core::sync::atomic::Ordering::Relaxed;
    if MADV_FREE_OK.load(Relaxed) {
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

/// Forced purge: the pages are released now and read back as zeros.
pub fn purge_forced(p: *mut u8, size: usize) -> bool {
    // SAFETY: madvise on a range of our own mapping only changes residency.
    unsafe { libc::madvise(p as *mut libc::c_void, size, libc::MADV_DONTNEED) == 0 }
}

/// Writes a message to standard error without allocating.
pub fn write_stderr(msg: &[u8]) {
    let mut rest = msg;
    while !rest.is_empty() {
        // SAFETY: the buffer is valid for `rest.len()` bytes.
        let n = unsafe { libc::write(2, rest.as_ptr() as *const libc::c_void, rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// Formats `v` as `0x...` hexadecimal into `buf`, returning the used part.
pub fn hex(v: usize, buf: &mut [u8; 18]) -> &[u8] {
    buf[0] = b'0';
    buf[1] = b'x';
    let digits = b"0123456789abcdef";
    let mut n = 0;
    let mut x = v;
    let mut tmp = [0u8; 16];
    loop {
        tmp[n] = digits[x & 15];
        n += 1;
        x >>= 4;
        if x == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[2 + i] = tmp[n - 1 - i];
    }
    &buf[..2 + n]
}

/// Reports a fatal misuse (invalid or double free, corrupted metadata) and
/// aborts the process. Never unwinds.
#[cold]
#[inline(never)]
pub fn fatal(what: &str, addr: usize) -> ! {
    let mut buf = [0u8; 18];
    write_stderr(b"<rjem>: ");
    write_stderr(what.as_bytes());
    write_stderr(b" (pointer ");
    write_stderr(hex(addr, &mut buf));
    write_stderr(b")\n");
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// Reads an environment variable without allocating. The returned bytes
/// live as long as the environment entry (until the program changes it).
pub fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
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

/// Monotonic time in nanoseconds (vDSO: no system call on Linux).
pub fn now_ns() -> u64 {
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
pub fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32, timeout_ns: Option<u64>) {
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
pub fn futex_wake(word: &core::sync::atomic::AtomicU32) {
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
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
pub fn set_errno(e: i32) {
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
    fn hex_formats() {
        let mut b = [0u8; 18];
        assert_eq!(hex(0, &mut b), b"0x0");
        assert_eq!(hex(0xdead_beef, &mut b), b"0xdeadbeef");
        assert_eq!(hex(usize::MAX, &mut b), b"0xffffffffffffffff");
    }

    #[test]
    fn cpus_positive() {
        assert!(ncpus() >= 1);
    }
}
