//! Option `percpu_arena`: a thread uses the arena of the CPU it runs on.
//! Each case runs this binary again with `MALLOC_CONF` set (options are
//! read once per process); the child pins threads to each CPU in turn.

use rjem::ctl::{self, Error, Value};
mod common;
use common::{child, in_child};

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

fn u32_of(name: &str) -> usize {
    match ctl::read(name) {
        Ok(Value::U32(n)) => n as usize,
        other => panic!("{name}: {other:?}"),
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; the call writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: as above; 0 means the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

/// On a thread pinned to each allowed CPU in turn (one thread moving, and
/// a fresh thread per CPU), `thread.arena` is `arena_of(cpu)`; blocks
/// allocated there come from that arena.
fn check_binding(arena_of: impl Fn(usize) -> usize + Sync + Send + Copy) {
    let cpus = allowed_cpus();
    std::thread::scope(|s| {
        s.spawn(|| {
            for &k in &cpus {
                pin(k);
                // A slow-path allocation (large) re-checks the CPU.
                drop(std::hint::black_box(vec![0u8; 1 << 20]));
                assert_eq!(u32_of("thread.arena"), arena_of(k), "cpu {k}");
            }
        });
        for &k in &cpus {
            s.spawn(move || {
                pin(k);
                let v = std::hint::black_box(vec![1u8; 100]);
                assert_eq!(rjem::thread_arena(), arena_of(k), "cpu {k}");
                drop(v);
            });
        }
    });
}

fn cpu_limit() -> usize {
    allowed_cpus().last().unwrap() + 1
}

#[test]
fn percpu_binds_threads_to_their_cpu() {
    if in_child() {
        let n = cpu_limit();
        assert_eq!(ctl::read("opt.percpu_arena"), Ok(Value::Str(c"percpu")));
        // One automatic arena per CPU (jemalloc: narenas = ncpus).
        assert_eq!(u32_of("opt.narenas"), n);
        assert_eq!(u32_of("arenas.narenas"), n);
        check_binding(|k| k);
        // The per-CPU arenas cannot be chosen by hand; others can.
        assert_eq!(
            ctl::write("thread.arena", Value::U32(0)),
            Err(Error::Permission)
        );
        let extra = match ctl::read("arenas.create") {
            Ok(Value::U32(i)) => i,
            other => panic!("arenas.create: {other:?}"),
        };
        assert!(extra as usize > n);
        std::thread::spawn(move || {
            ctl::write("thread.arena", Value::U32(extra)).unwrap();
            // A manual binding stays, whatever the CPU.
            for k in allowed_cpus() {
                pin(k);
                drop(std::hint::black_box(vec![0u8; 1 << 20]));
                assert_eq!(u32_of("thread.arena"), extra as usize);
            }
        })
        .join()
        .unwrap();
        return;
    }
    let err = child("percpu_binds_threads_to_their_cpu", "percpu_arena:percpu");
    assert!(!err.contains("<rjem>"), "{err}");
}

#[test]
fn phycpu_shares_an_arena_between_hyperthreads() {
    if in_child() {
        let n = cpu_limit();
        assert_eq!(ctl::read("opt.percpu_arena"), Ok(Value::Str(c"phycpu")));
        let limit = if n > 1 { n.div_ceil(2) } else { 1 };
        // narenas:1 is raised to the per-core arenas.
        assert_eq!(u32_of("opt.narenas"), limit);
        check_binding(|k| if k < n / 2 { k } else { k - n / 2 } % limit);
        return;
    }
    let err = child(
        "phycpu_shares_an_arena_between_hyperthreads",
        "percpu_arena:phycpu,narenas:1",
    );
    assert!(!err.contains("<rjem>"), "{err}");
}

#[test]
fn more_arenas_than_cpus_may_be_asked_for() {
    if in_child() {
        let n = cpu_limit();
        assert_eq!(u32_of("opt.narenas"), n.max(64));
        check_binding(|k| k);
        return;
    }
    child(
        "more_arenas_than_cpus_may_be_asked_for",
        "narenas:64,percpu_arena:percpu",
    );
}

#[test]
fn disabled_by_default() {
    assert_eq!(ctl::read("opt.percpu_arena"), Ok(Value::Str(c"disabled")));
    // Any automatic arena may be chosen by hand.
    std::thread::spawn(|| {
        ctl::write("thread.arena", Value::U32(0)).unwrap();
        assert_eq!(rjem::thread_arena(), 0);
    })
    .join()
    .unwrap();
}
