//! Giving memory back, measured from /proc: decay at once, over a short
//! decay time, or never; an idle process returning memory through the
//! background purger; fork with the purger running; a stable workload's
//! mapped and retained memory staying bounded; and life under `ulimit -v`.
//! Each scenario runs in a child process (this binary re-executed) with its
//! own MALLOC_CONF; timing margins are generous (the machine is shared).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

const MIB: usize = 1 << 20;

fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    let Ok(rjem::ctl::Value::Usize(page)) = rjem::ctl::read("arenas.page") else {
        panic!("arenas.page")
    };
    pages * page
}

/// The `VmFlags` line of the mapping that holds `p`, from /proc/self/smaps.
fn vm_flags(p: *const u8) -> String {
    let addr = p as usize;
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((lo, hi)) = line.split_once(' ').and_then(|(r, _)| r.split_once('-')) {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
                continue;
            }
        }
        if inside && line.starts_with("VmFlags:") {
            return line.to_string();
        }
    }
    panic!("no mapping holds {addr:#x} in /proc/self/smaps")
}

/// Allocates and touches about `total` bytes in mixed sizes (half in small
/// objects, half in large ones up to 4 MiB), on two threads.
fn fill(total: usize) -> Vec<Vec<u8>> {
    let parts: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|t| {
                s.spawn(move || {
                    let mut v = Vec::new();
                    let mut bytes = 0;
                    let mut i = t * 7919;
                    while bytes < total / 2 {
                        i += 1;
                        let size = if i % 2 == 0 {
                            16 + (i * 37) % 4000
                        } else {
                            64 * 1024 + (i * 7919) % (4 * MIB)
                        };
                        v.push(vec![(i % 251) as u8 + 1; size]);
                        bytes += size;
                    }
                    rjem::flush_thread_cache();
                    v
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    parts.into_iter().flatten().collect()
}

/// Frees about a third of `v`'s bytes (blocks 0, 3, 6...: small and large
/// alike), keeping the rest live, so that the arenas stay busier than
/// their freed pages and the dirty cap (`PurgePolicy::dirty_share`) leaves
/// the decay curve alone to decide. Returns the kept blocks and the bytes
/// freed.
fn drop_a_third(v: Vec<Vec<u8>>) -> (Vec<Vec<u8>>, usize) {
    let (gone, kept): (Vec<_>, Vec<_>) = v.into_iter().enumerate().partition(|(i, _)| i % 3 == 0);
    let freed = gone.iter().map(|(_, b)| b.len()).sum();
    drop_all(gone.into_iter().map(|(_, b)| b).collect());
    (kept.into_iter().map(|(_, b)| b).collect(), freed)
}

fn drop_all(v: Vec<Vec<u8>>) {
    // Free on a thread that then exits, so no cache keeps anything.
    std::thread::spawn(move || drop(v)).join().unwrap();
    rjem::flush_thread_cache();
}

/// Waits up to `limit` for RSS to fall below `target`; returns the time.
fn wait_below(target: usize, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if rss() <= target {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn scenario(name: &str) {
    let base = rss();
    match name {
        // "burst" (default decay): everything freed at once, so arenas left
        // with far more freed pages than live ones give them back at once,
        // without waiting for the decay curve (the dirty cap), as with
        // dirty_decay_ms:0.
        "immediate" | "burst" => {
            let v = fill(1 << 30);
            assert!(rss() > base + 900 * MIB);
            drop_all(v);
            let after = rss();
            assert!(
                after < base + 64 * MIB,
                "{name}: RSS {} MiB over baseline right after freeing everything",
                (after - base) / MIB
            );
        }
        "short" => {
            let (kept, freed) = drop_a_third(fill(1 << 30));
            let full = rss();
            // Gradual: 1 s into a 4 s decay the curve has released about 10%
            // (smootherstep), so most freed pages are still resident...
            std::thread::sleep(Duration::from_millis(1000));
            let early = rss();
            assert!(
                early + freed / 2 > full,
                "purged too fast: {} of {} MiB freed left",
                (early + freed).saturating_sub(full) / MIB,
                freed / MIB
            );
            // ...but all are gone within the decay time plus a margin.
            let t = wait_below(full - freed + 64 * MIB, Duration::from_secs(9));
            assert!(
                t.is_some(),
                "RSS still {} MiB over what is live",
                (rss() + freed).saturating_sub(full) / MIB
            );
            drop(kept);
        }
        "never" => {
            let v = fill(512 * MIB);
            drop_all(v);
            std::thread::sleep(Duration::from_millis(1500));
            assert!(
                rss() > base + 400 * MIB,
                "dirty_decay_ms:-1 must keep pages"
            );
            // Explicit purge still works.
            rjem::ctl::purge(rjem::ctl::Target::All).unwrap();
            assert!(rss() < base + 64 * MIB);
        }
        "idle" => {
            let v = fill(1 << 30);
            drop_all(v);
            // Call nothing more: only the purger thread can give pages back.
            let t = wait_below(base + 64 * MIB, Duration::from_secs(8));
            assert!(rjem::ctl::background_thread_running());
            assert!(
                t.is_some(),
                "idle RSS still {} MiB over baseline",
                (rss() - base) / MIB
            );
        }
        "idle-off" => {
            let (kept, freed) = drop_a_third(fill(256 * MIB));
            let full = rss();
            std::thread::sleep(Duration::from_millis(2500));
            assert!(!rjem::ctl::background_thread_running());
            assert!(
                rss() + 16 * MIB > full,
                "no thread, no calls: nothing of the {} MiB freed may be purged",
                freed / MIB
            );
            drop(kept);
        }
        "fork" => {
            let v = fill(256 * MIB);
            drop(v.into_iter().skip(1).collect::<Vec<_>>()); // start freeing
            rjem::flush_thread_cache();
            assert!(rjem::ctl::background_thread_running());
            // SAFETY: the child allocates through rjem and leaves with _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let w = fill(64 * MIB);
                let ok = w.iter().all(|b| b.iter().all(|&x| x == b[0]));
                drop_all(w);
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            let mut st = 0;
            unsafe { libc::waitpid(pid, &mut st, 0) };
            assert!(
                libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
                "child failed: {st:#x}"
            );
            let t = wait_below(base + 64 * MIB, Duration::from_secs(6));
            assert!(t.is_some(), "parent stopped purging after fork");
        }
        "stable" => {
            // After warm-up, memory in use or not yet purged (`mapped`)
            // stays within a margin: a leak of a few MiB a cycle fails it.
            // Address space (`mapped + retained`) may still take a growth
            // step when free extents in different purge states, which do
            // not merge, leave no run long enough (how far depends on when
            // the purger ran); each step maps the arena's next geometric
            // size at once, so it is bounded by steps, not bytes.
            let mut first: Option<(usize, usize)> = None;
            let mut steps = 0;
            let mut last_vm = 0;
            for cycle in 0..40 {
                let v = fill(96 * MIB);
                drop_all(v);
                let s = rjem::stats();
                let vm = s.mapped + s.retained;
                if cycle == 4 {
                    first = Some((s.mapped, vm));
                }
                if let Some((m, f)) = first {
                    steps += (vm > last_vm) as u32;
                    assert!(
                        s.mapped <= m + 96 * MIB,
                        "cycle {cycle}: mapped grew from {m} to {}",
                        s.mapped
                    );
                    assert!(
                        steps <= 2 && vm <= 2 * f,
                        "cycle {cycle}: address space grew from {f} to {vm} ({steps} steps)"
                    );
                }
                last_vm = vm;
            }
        }
        "ulimit" => {
            // Address space: what we use now plus 1.5 GiB; the live data
            // (about 400 MiB at a time) fits, so every cycle must succeed.
            let vm: usize = std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find(|l| l.starts_with("VmSize:"))
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<usize>()
                .unwrap()
                * 1024;
            let lim = libc::rlimit {
                rlim_cur: (vm + 1536 * MIB) as u64,
                rlim_max: (vm + 1536 * MIB) as u64,
            };
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
            for cycle in 0..30 {
                let n = 400 * MIB;
                let mut v: Vec<Vec<u8>> = Vec::new();
                let mut bytes = 0;
                let mut i = cycle * 1000;
                while bytes < n {
                    i += 1;
                    // Sizes change from cycle to cycle.
                    let size = match cycle % 3 {
                        0 => 100 + i % 3000,
                        1 => 20_000 + (i * 97) % 200_000,
                        _ => MIB + (i * 7919) % (6 * MIB),
                    };
                    v.push(vec![1u8; size]);
                    bytes += size;
                }
                drop(v);
            }
        }
        "large-churn" => {
            // malloc-large's pattern: 20 live blocks of 5-25 MiB (the huge
            // arena's), one replaced at random each step, every page
            // written. Freed blocks stay for reuse (up to the dirty cap),
            // but an allocation that none fits purges as many old ones
            // before faulting in new pages, so the resident peak stays
            // near the live peak (measured 1.15x; 1.6x without that rule).
            // Large size classes round up by up to a quarter.
            let mut rng = common::Rng(11);
            let mut slots: Vec<Vec<u8>> = (0..20).map(|_| Vec::new()).collect();
            let (mut peak_live, mut peak_rss) = (0, 0);
            for step in 0..150 {
                let i = rng.below(20) as usize;
                slots[i] = Vec::new();
                let size = 5 * MIB + rng.below(20 * MIB as u64) as usize;
                let mut v = Vec::with_capacity(size);
                v.resize(size, step as u8);
                slots[i] = v;
                let live: usize = slots.iter().map(|v| v.capacity()).sum();
                peak_live = peak_live.max(live);
                peak_rss = peak_rss.max(rss().saturating_sub(base));
            }
            assert!(
                peak_rss <= peak_live / 4 * 5 + 32 * MIB,
                "resident peak {} MiB for a live peak of {} MiB",
                peak_rss / MIB,
                peak_live / MIB
            );
            assert!(slots.iter().all(|v| v.iter().all(|&b| b == v[0])));
        }
        "thp" => {
            // With thp:huge, blocks of oversize_threshold and more live in
            // mappings advised for huge pages (VmFlags "hg"); with thp:never,
            // refused ("nh"); by default (thp:auto), the first one is left
            // alone (nothing says yet that the program writes its blocks).
            let v = vec![1u8; 16 * MIB];
            let flags = vm_flags(v.as_ptr());
            let conf = std::env::var("MALLOC_CONF").unwrap();
            assert_eq!(flags.contains(" hg"), conf == "thp:huge", "{flags}");
            assert_eq!(flags.contains(" nh"), conf == "thp:never", "{flags}");
        }
        "busy-budget" => {
            // The busy automatic arenas share 32 MiB of dirty floor, at
            // least 8 MiB each. With the test harness's thread, two are
            // busy: this thread's arena keeps most of a 24 MiB round's
            // pages for the next one (an 8 MiB floor would keep 4 MiB);
            // with three more arenas busy, it keeps 8 MiB.
            use rjem::ctl::{self, Value};
            let Ok(Value::Usize(page)) = ctl::read("arenas.page") else {
                panic!("arenas.page")
            };
            let Ok(Value::U32(ind)) = ctl::read("thread.arena") else {
                panic!("thread.arena")
            };
            let pdirty = move || {
                ctl::write("epoch", Value::U64(1)).unwrap();
                match ctl::read(&format!("stats.arenas.{ind}.pdirty")) {
                    Ok(Value::Usize(n)) => n * page,
                    other => panic!("pdirty: {other:?}"),
                }
            };
            let round = || {
                let v: Vec<Box<[u8; 512]>> = (0..48_000).map(|_| Box::new([1; 512])).collect();
                drop(v);
                rjem::flush_thread_cache();
            };
            round();
            assert!(
                pdirty() >= 12 * MIB,
                "two busy arenas: dirty {} MiB",
                pdirty() / MIB
            );
            let bar = std::sync::Barrier::new(4);
            std::thread::scope(|s| {
                for _ in 0..3 {
                    s.spawn(|| {
                        // Bound to an arena of its own by its first
                        // allocation (kept: an unused one may be elided).
                        drop(std::hint::black_box(Box::new(1u8)));
                        bar.wait();
                        bar.wait();
                    });
                }
                bar.wait();
                round();
                let dirty = pdirty();
                bar.wait();
                assert!(
                    dirty <= 8 * MIB,
                    "four busy arenas: dirty {} MiB",
                    dirty / MIB
                );
            });
        }
        "thp-auto" => {
            // thp:auto: a new mapping asks for huge pages when the program
            // wrote at least half of the mapping before it, unless fresh
            // huge pages are slow to write on this machine. Blocks of
            // 16 MiB come from the huge arena, each from a new mapping.
            let written = vec![1u8; 16 * MIB];
            let unwritten: Vec<u8> = Vec::with_capacity(16 * MIB);
            assert_eq!(
                vm_flags(unwritten.as_ptr()).contains(" hg"),
                !rjem::huge_pages_start_cold(),
                "after a written block"
            );
            let next: Vec<u8> = Vec::with_capacity(16 * MIB);
            assert!(
                !vm_flags(next.as_ptr()).contains(" hg"),
                "after an unwritten block"
            );
            drop((written, unwritten, next));
        }
        "idle-arena" => {
            // An automatic arena keeps freed pages for reuse (up to the
            // 8 MiB floor) while a thread is bound to it, and through a
            // grace of 20 ms after its last thread leaves (the next
            // thread reuses them); then at most 1 MiB.
            use rjem::ctl::{self, Value};
            let ind = 3u32; // narenas:4; this thread is on arena 0
            let Ok(Value::Usize(page)) = ctl::read("arenas.page") else {
                panic!("arenas.page")
            };
            let pdirty = move || match ctl::read(&format!("stats.arenas.{ind}.pdirty")) {
                Ok(Value::Usize(n)) => n * page,
                other => panic!("pdirty: {other:?}"),
            };
            let kept = std::thread::spawn(move || {
                ctl::write("thread.arena", Value::U32(ind)).unwrap();
                let mut v: Vec<Box<[u8; 512]>> = (0..12_000).map(|_| Box::new([1; 512])).collect();
                let kept = v.split_off(6_000);
                drop(v);
                rjem::flush_thread_cache();
                assert!(pdirty() >= 2 * MIB, "bound: dirty {}", pdirty());
                kept
            })
            .join()
            .unwrap();
            let left = std::time::Instant::now();
            // Its thread gone, the arena's last blocks come back from
            // another thread.
            assert!(kept.iter().all(|b| b.iter().all(|&x| x == 1)));
            drop(kept);
            rjem::flush_thread_cache();
            let dirty = pdirty();
            if left.elapsed().as_millis() < 15 {
                assert!(dirty >= 2 * MIB, "within the grace: dirty {dirty}");
            }
            // After the grace, the next decay pass (the purger's, or this
            // one) applies the idle floor.
            std::thread::sleep(std::time::Duration::from_millis(100));
            ctl::run(&format!("arena.{ind}.decay")).unwrap();
            assert!(pdirty() <= MIB, "idle: dirty {}", pdirty());
        }
        "idle-reclaim" => {
            // A thread that faults in a new large block first takes back
            // what arenas without threads keep beyond 1 MiB, even within
            // their grace; an arena with a thread keeps its pages. No
            // purger (background_thread:false) and no frees into those
            // arenas: nothing else purges them here.
            use rjem::ctl::{self, Value};
            use std::sync::mpsc::channel;
            let Ok(Value::Usize(page)) = ctl::read("arenas.page") else {
                panic!("arenas.page")
            };
            let pdirty = move |i: u32| match ctl::read(&format!("stats.arenas.{i}.pdirty")) {
                Ok(Value::Usize(n)) => n * page,
                other => panic!("pdirty: {other:?}"),
            };
            // On arena `ind`: 8 blocks of 1 MiB, the last 4 kept.
            let work = |ind: u32| {
                ctl::write("thread.arena", Value::U32(ind)).unwrap();
                let mut v: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8 + 1; MIB]).collect();
                let kept = v.split_off(4);
                drop(v);
                rjem::flush_thread_cache();
                kept
            };
            // narenas:4; this thread is on arena 0, arena 2 stays busy.
            let (ready, is_ready) = channel();
            let (done, is_done) = channel::<()>();
            let busy = std::thread::spawn(move || {
                let kept = work(2);
                ready.send(()).unwrap();
                is_done.recv().unwrap();
                kept
            });
            is_ready.recv().unwrap();
            let idle = std::thread::spawn(move || work(3)).join().unwrap();
            let before = (pdirty(2), pdirty(3));
            assert!(
                before.0 >= 3 * MIB && before.1 >= 3 * MIB,
                "before: dirty {before:?}"
            );
            // Arena 0 has no free pages of this size: new ones.
            let big = vec![9u8; 3 * MIB];
            let after = (pdirty(2), pdirty(3));
            // Arena 3: 1 MiB, and the few slabs its hot cache holds.
            assert!(
                after.1 < MIB + MIB / 4,
                "idle arena: dirty {after:?} (was {before:?})"
            );
            assert_eq!(after.0, before.0, "busy arena");
            done.send(()).unwrap();
            let kept = busy.join().unwrap();
            // The live blocks of both arenas are intact.
            for v in [&kept, &idle] {
                assert!(v
                    .iter()
                    .enumerate()
                    .all(|(i, b)| b.iter().all(|&x| x == i as u8 + 5)));
            }
            drop((big, kept, idle));
        }
        "mlocked" => {
            // Locked pages cannot be purged: the extent keeps its data and
            // must not be handed out as zeroed memory.
            if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
                println!("skipped: mlockall not permitted");
                return;
            }
            for _ in 0..20 {
                let mut v = vec![0xffu8; 3 * MIB];
                v[12345] = 7;
                drop(v);
                let z = vec![0u8; 3 * MIB]; // alloc_zeroed: may reuse the block
                assert!(z.iter().all(|&b| b == 0), "calloc returned old data");
            }
            unsafe { libc::munlockall() };
        }
        other => panic!("unknown scenario {other}"),
    }
}

fn run(name: &str, conf: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("RJEM_PURGE_SCENARIO", name)
        .env("MALLOC_CONF", conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scenario {name} ({conf}) failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("scenario done"),
        "scenario {name} did not run"
    );
}

#[test]
fn child() {
    if let Ok(name) = std::env::var("RJEM_PURGE_SCENARIO") {
        scenario(&name);
        println!("scenario done");
    }
}

#[test]
fn purge_at_once_with_zero_decay() {
    run("immediate", "dirty_decay_ms:0");
}

#[test]
fn purge_within_a_short_decay_time() {
    run("short", "dirty_decay_ms:4000");
}

#[test]
fn burst_returns_memory_at_once() {
    run("burst", "");
}

#[test]
fn never_purge_with_minus_one() {
    run("never", "dirty_decay_ms:-1");
}

#[test]
fn idle_process_returns_memory() {
    run("idle", "dirty_decay_ms:1000");
}

#[test]
fn no_background_thread_means_no_idle_purge() {
    run("idle-off", "dirty_decay_ms:1000,background_thread:false");
}

#[test]
fn fork_with_the_purger_running() {
    run("fork", "dirty_decay_ms:500");
}

#[test]
fn stable_workload_stays_bounded() {
    run("stable", "");
}

#[test]
fn huge_blocks_are_reused_but_resident_memory_follows_live() {
    run("large-churn", "");
}

#[test]
fn huge_blocks_ask_for_transparent_huge_pages() {
    run("thp", "");
    run("thp", "thp:huge");
    run("thp", "thp:never");
}

#[test]
fn busy_arenas_share_a_dirty_floor() {
    run("busy-budget", "narenas:4");
}

#[test]
fn huge_pages_by_default_only_after_written_memory() {
    run("thp-auto", "");
}

#[test]
fn arenas_no_thread_uses_keep_little_dirty_memory() {
    run("idle-arena", "narenas:4");
}

#[test]
fn new_large_blocks_take_back_what_idle_arenas_keep() {
    run("idle-reclaim", "narenas:4,background_thread:false");
}

#[test]
fn calloc_after_failed_purge_is_zero() {
    run("mlocked", "dirty_decay_ms:0");
}

#[test]
fn works_under_ulimit_v() {
    run("ulimit", "");
    run("ulimit", "retain:false");
}
