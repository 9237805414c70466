//! The control name space from Rust: names and MIBs, types and errors, and
//! the purge, decay and thread-cache controls doing what they say.

use rjem::ctl::{self, Error, Mib, Target, Type, Value};

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

// The tests share one process (and its arenas): each restores what it
// changes, and this lock keeps the ones that change decay times apart.
static DECAY: std::sync::Mutex<()> = std::sync::Mutex::new(());
// Tests that refresh the epoch and then read several figures of one
// snapshot hold this, so no other test refreshes it in between.
static EPOCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn constants_and_their_types() {
    match ctl::read("version") {
        Ok(Value::Str(s)) => assert!(s.to_str().unwrap().starts_with("5.3.0-")),
        other => panic!("version: {other:?}"),
    }
    let page = ctl::read("arenas.page").unwrap();
    assert!(matches!(page, Value::Usize(p) if p.is_power_of_two() && p >= 4096));
    assert_eq!(ctl::read("arenas.quantum"), Ok(Value::Usize(16)));
    let Ok(Value::U32(n)) = ctl::read("arenas.narenas") else {
        panic!("arenas.narenas")
    };
    let Ok(Value::U32(auto)) = ctl::read("opt.narenas") else {
        panic!("opt.narenas")
    };
    assert!(n >= auto && auto >= 1);
}

#[test]
fn errors_are_jemallocs() {
    assert_eq!(ctl::read("no.such.name"), Err(Error::NotFound));
    assert_eq!(ctl::read("arenas"), Err(Error::NotFound), "not a leaf");
    assert_eq!(
        ctl::read("arenas.page.x"),
        Err(Error::NotFound),
        "past a leaf"
    );
    assert_eq!(
        ctl::write("arenas.page", Value::Usize(1)),
        Err(Error::Permission)
    );
    assert_eq!(
        ctl::write("arenas.dirty_decay_ms", Value::Usize(1)),
        Err(Error::Invalid),
        "wrong type"
    );
    assert_eq!(
        ctl::read("arena.0.purge"),
        Err(Error::Permission),
        "an action is run, not read"
    );
    assert_eq!(
        ctl::run("arenas.page"),
        Err(Error::Invalid),
        "not an action"
    );
    assert_eq!(
        ctl::run("arena.4000.purge"),
        Err(Error::NotFound),
        "no such arena"
    );
    assert_eq!(
        ctl::run("arena.4098.purge"),
        Err(Error::NotFound),
        "beyond the index range"
    );
    assert_eq!(Error::NotFound.errno(), libc::ENOENT);
    assert_eq!(Error::Invalid.errno(), libc::EINVAL);
    assert_eq!(Error::Permission.errno(), libc::EPERM);
}

#[test]
fn mibs_take_other_indices() {
    let mut m = Mib::new("arena.0.decay").unwrap();
    assert_eq!(m.ty(), Ok(Type::Void));
    m.run().unwrap();
    m.set_index(1, ctl::ARENAS_ALL);
    m.run().unwrap();
    let back = Mib::from_components(m.components()).unwrap();
    assert_eq!(back, m);
    // A prefix names a node; completing it is the caller's business.
    assert_eq!(Mib::new("arena.0").unwrap().ty(), Err(Error::NotFound));
}

#[test]
fn decay_times_per_arena_and_for_new_arenas() {
    let _g = DECAY.lock().unwrap_or_else(|e| e.into_inner());
    let (d0, m0) = ctl::decay_ms(Target::Arena(0)).unwrap();
    ctl::set_decay_ms(Target::Arena(0), Some(1234), None).unwrap();
    assert_eq!(ctl::decay_ms(Target::Arena(0)), Ok((1234, m0)));
    // Out of range: EFAULT, as jemalloc; nothing changes.
    assert_eq!(
        ctl::write("arena.0.dirty_decay_ms", Value::Isize(-2)),
        Err(Error::Fault),
        "below -1"
    );
    assert_eq!(
        ctl::write(
            "arena.0.muzzy_decay_ms",
            Value::Isize(366 * 24 * 3600 * 1000)
        ),
        Err(Error::Fault),
        "above a year"
    );
    assert_eq!(
        ctl::set_decay_ms(Target::Arena(0), Some(5), Some(-3)),
        Err(Error::Fault)
    );
    assert_eq!(
        ctl::decay_ms(Target::Arena(0)),
        Ok((1234, m0)),
        "both or neither"
    );
    // The write returned the old value.
    assert_eq!(
        ctl::write("arena.0.dirty_decay_ms", Value::Isize(d0 as isize)),
        Ok(Value::Isize(1234))
    );
    assert_eq!(ctl::decay_ms(Target::Arena(0)), Ok((d0, m0)));

    // arenas.*: new arenas only, as in jemalloc.
    let old = ctl::write("arenas.dirty_decay_ms", Value::Isize(777)).unwrap();
    assert_eq!(
        ctl::decay_ms(Target::Arena(0)),
        Ok((d0, m0)),
        "existing arenas keep theirs"
    );
    assert_eq!(ctl::decay_ms(Target::All).map(|t| t.0), Ok(777));
    ctl::write("arenas.dirty_decay_ms", old).unwrap();

    // Target::All: every automatic arena and new ones.
    ctl::set_decay_ms(Target::All, Some(4321), None).unwrap();
    assert_eq!(ctl::decay_ms(Target::Arena(0)).map(|t| t.0), Ok(4321));
    ctl::set_decay_ms(Target::All, Some(d0), None).unwrap();
    assert_eq!(ctl::decay_ms(Target::Arena(0)), Ok((d0, m0)));
}

#[test]
fn purge_returns_freed_pages() {
    // A private arena that keeps freed pages dirty: other tests running in
    // parallel cannot add to (or purge) what it holds.
    let Ok(Value::U32(ind)) = ctl::read("arenas.create") else {
        panic!("arenas.create")
    };
    let ind = ind as usize;
    ctl::set_decay_ms(Target::Arena(ind), Some(-1), None).unwrap();
    let old = ctl::write("thread.arena", Value::U32(ind as u32)).unwrap();
    let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 256 << 10]).collect();
    drop(blocks);
    rjem::flush_thread_cache();
    ctl::write("thread.arena", old).unwrap();
    let page = u64_of("arenas.page");
    let pdirty = || u64_of(&format!("stats.arenas.{ind}.pdirty")) * page;
    let before = pdirty();
    assert!(before >= 16 << 20, "dirty {before}");
    ctl::purge(Target::Arena(ind)).unwrap();
    assert_eq!(pdirty(), 0, "dirty {before} -> all purged");
}

#[test]
fn thread_cache_flush() {
    let v: Vec<Box<[u8; 64]>> = (0..100).map(|_| Box::new([7; 64])).collect();
    drop(v);
    assert!(rjem::thread_cached().0 > 0);
    ctl::run("thread.tcache.flush").unwrap();
    assert_eq!(rjem::thread_cached(), (0, 0));
    // thread.idle flushes too (and runs the arena's decay).
    let v: Vec<Box<[u8; 64]>> = (0..100).map(|_| Box::new([7; 64])).collect();
    drop(v);
    assert!(rjem::thread_cached().0 > 0);
    ctl::run("thread.idle").unwrap();
    assert_eq!(rjem::thread_cached(), (0, 0));
}

#[test]
fn thread_counters_survive_the_cache_turning_off() {
    // On a thread of its own: the cache goes off and on again.
    std::thread::spawn(|| {
        let v: Vec<Box<[u8; 64]>> = (0..1000).map(|_| Box::new([7; 64])).collect();
        let kept: Vec<Box<[u8; 64]>> = (0..100).map(|_| Box::new([9; 64])).collect();
        drop(v);
        let before = (u64_of("thread.allocated"), u64_of("thread.deallocated"));
        let peak = u64_of("thread.peak.read");
        assert!(before.0 >= 1100 * 64 && before.1 >= 1000 * 64, "{before:?}");
        ctl::write("thread.tcache.enabled", Value::Bool(false)).unwrap();
        // Cumulative counters never go back, and the peak stays.
        let after = (u64_of("thread.allocated"), u64_of("thread.deallocated"));
        assert!(
            after.0 >= before.0 && after.1 >= before.1,
            "{before:?} -> {after:?}"
        );
        assert!(u64_of("thread.peak.read") >= peak);
        let b = Box::new([1u8; 64]);
        assert!(u64_of("thread.allocated") >= after.0 + 64);
        drop((b, kept));
        ctl::write("thread.tcache.enabled", Value::Bool(true)).unwrap();
        let v: Vec<Box<[u8; 64]>> = (0..1000).map(|_| Box::new([7; 64])).collect();
        drop(v);
        // b and the 1000 new; b, kept and the 1000 new.
        assert!(u64_of("thread.allocated") >= after.0 + 1001 * 64);
        assert!(u64_of("thread.deallocated") >= after.1 + 1101 * 64);
    })
    .join()
    .unwrap();
}

fn u64_of(name: &str) -> u64 {
    match ctl::read(name) {
        Ok(Value::U64(n)) => n,
        Ok(Value::Usize(n)) => n as u64,
        Ok(Value::U32(n)) => n as u64,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn size_class_tables() {
    let nbins = u64_of("arenas.nbins") as usize;
    let nlextents = u64_of("arenas.nlextents") as usize;
    assert_eq!(nbins + nlextents, 232, "jemalloc's 232 classes");
    let mut last = 0;
    for j in 0..nbins {
        let size = u64_of(&format!("arenas.bin.{j}.size")) as usize;
        let nregs = u64_of(&format!("arenas.bin.{j}.nregs")) as usize;
        let slab = u64_of(&format!("arenas.bin.{j}.slab_size")) as usize;
        assert!(size > last && rjem::nallocx(size, 0) == size);
        // Without slab_sizes, slabs hold whole regions.
        assert_eq!(slab, size * nregs, "class {size}: slabs hold whole regions");
        last = size;
    }
    assert_eq!(
        ctl::read(&format!("arenas.bin.{nbins}.size")),
        Err(Error::NotFound)
    );
    for j in [0, 1, nlextents / 2] {
        let size = u64_of(&format!("arenas.lextent.{j}.size")) as usize;
        assert!(size > last && rjem::nallocx(size, 0) == size);
        last = size;
    }
    assert_eq!(
        ctl::read(&format!("arenas.lextent.{nlextents}.size")),
        Err(Error::NotFound)
    );
    assert!(u64_of("arenas.nhbins") > 0 && u64_of("arenas.tcache_max") >= 32 << 10);
    assert_eq!(ctl::read("config.stats"), Ok(Value::Bool(true)));
    // The profiler is built in (off unless prof:true).
    assert_eq!(ctl::read("config.prof"), Ok(Value::Bool(true)));
    assert_eq!(ctl::read("opt.prof"), Ok(Value::Bool(false)));
}

#[test]
fn stats_of_a_private_arena_are_exact() {
    use rjem::ffi::{free, malloc};
    // A new arena, this thread bound to it, its cache off: every block
    // below is counted in that arena's statistics and nowhere else.
    let Ok(Value::U32(ind)) = ctl::read("arenas.create") else {
        panic!("arenas.create")
    };
    let ind = ind as usize;
    assert_eq!(
        ctl::read(&format!("arena.{ind}.initialized")),
        Ok(Value::Bool(true))
    );
    // Names made before the baseline, so that they are part of it.
    let leaves = [
        "small.allocated",
        "large.allocated",
        "small.nmalloc",
        "large.nmalloc",
        "small.ndalloc",
        "bins.7.curregs",
        "bins.7.nmalloc",
        "lextents.0.curlextents",
        "lextents.1.curlextents",
        "pactive",
        "nthreads",
    ];
    let mibs: Vec<Mib> = leaves
        .iter()
        .map(|l| Mib::new(&format!("stats.arenas.{ind}.{l}")).unwrap())
        .collect();
    let read = |leaf: &str| -> u64 {
        let i = leaves.iter().position(|l| *l == leaf).unwrap();
        match mibs[i].read() {
            Ok(Value::U64(n)) => n,
            Ok(Value::Usize(n)) => n as u64,
            Ok(Value::U32(n)) => n as u64,
            other => panic!("{leaf}: {other:?}"),
        }
    };
    let old = ctl::write("thread.arena", Value::U32(ind as u32)).unwrap();
    assert_eq!(rjem::thread_arena(), ind);
    assert_eq!(
        ctl::write("thread.tcache.enabled", Value::Bool(false)),
        Ok(Value::Bool(true))
    );
    assert_eq!(read("nthreads"), 1);
    let base = leaves.map(read);
    let delta = |leaf: &str| read(leaf) - base[leaves.iter().position(|l| *l == leaf).unwrap()];
    let sizes = [8usize, 100, 100, 3000, 14336, 20000, 100_000, 1 << 20];
    let mut blocks = [std::ptr::null_mut(); 8];
    for (b, &n) in blocks.iter_mut().zip(&sizes) {
        *b = malloc(n);
    }
    let usable = |small: bool| -> u64 {
        sizes
            .iter()
            .map(|&n| rjem::nallocx(n, 0))
            .filter(|&u| (u <= 14336) == small)
            .sum::<usize>() as u64
    };
    assert_eq!(delta("small.allocated"), usable(true));
    assert_eq!(delta("large.allocated"), usable(false));
    assert_eq!(delta("small.nmalloc"), 5);
    assert_eq!(delta("large.nmalloc"), 3);
    // Class 7 (112 bytes) holds the two 100-byte blocks.
    assert_eq!(delta("bins.7.curregs"), 2);
    assert_eq!(delta("bins.7.nmalloc"), 2);
    assert_eq!(delta("lextents.0.curlextents"), 0, "16 KiB class unused");
    assert_eq!(
        delta("lextents.1.curlextents"),
        1,
        "20000 bytes: 20 KiB class"
    );
    assert!(read("pactive") * u64_of("arenas.page") >= usable(true) + usable(false));
    for b in blocks {
        unsafe { free(b) };
    }
    assert_eq!(delta("small.allocated"), 0);
    assert_eq!(delta("large.allocated"), 0);
    assert_eq!(delta("small.ndalloc"), 5);
    assert_eq!(delta("bins.7.curregs"), 0);
    // The merged view counts this arena too.
    assert!(u64_of("stats.arenas.4096.small.nmalloc") >= 5);
    ctl::write("thread.tcache.enabled", Value::Bool(true)).unwrap();
    ctl::write("thread.arena", old).unwrap();
    assert_eq!(read("nthreads"), 0);
}

#[test]
fn process_totals_keep_jemallocs_relations() {
    let _g = EPOCH.lock().unwrap_or_else(|e| e.into_inner());
    let keep: Vec<Vec<u8>> = (0..1000).map(|i| vec![1; 10 + i * 37]).collect();
    // As jemalloc's users do: refresh, then read figures of one snapshot
    // (other tests allocate meanwhile).
    ctl::write("epoch", Value::U64(1)).unwrap();
    let allocated = u64_of("stats.allocated");
    let active = u64_of("stats.active");
    let resident = u64_of("stats.resident");
    let mapped = u64_of("stats.mapped");
    assert!(allocated >= keep.iter().map(|v| v.capacity() as u64).sum::<u64>());
    assert!(allocated <= active, "{allocated} > {active}");
    assert!(active <= resident, "{active} > {resident}");
    assert!(active <= mapped, "{active} > {mapped}");
    assert!(u64_of("stats.metadata") > 0);
    // Writing the epoch returns the new one, as in jemalloc.
    let e = u64_of("epoch");
    assert!(matches!(ctl::write("epoch", Value::U64(1)), Ok(Value::U64(n)) if n > e));
    // Between refreshes the figures stand still.
    let before = u64_of("stats.allocated");
    drop(keep);
    assert_eq!(u64_of("stats.allocated"), before);
    ctl::write("epoch", Value::U64(1)).unwrap();
    assert_ne!(u64_of("stats.allocated"), before);
}

#[test]
fn background_thread_on_and_off() {
    let _g = DECAY.lock().unwrap_or_else(|e| e.into_inner());
    assert!(u64_of("max_background_threads") >= 1);
    ctl::write("background_thread", Value::Bool(true)).unwrap();
    assert_eq!(ctl::read("background_thread"), Ok(Value::Bool(true)));
    assert_eq!(u64_of("stats.background_thread.num_threads"), 1);
    ctl::write("background_thread", Value::Bool(false)).unwrap();
    assert_eq!(ctl::read("background_thread"), Ok(Value::Bool(false)));
    assert!(!ctl::background_thread_running());
    // Decay still happens, inline, when the thread frees.
    let (d0, _) = ctl::decay_ms(Target::All).unwrap();
    ctl::set_decay_ms(Target::All, Some(0), None).unwrap();
    let before = u64_of("stats.arenas.4096.dirty_npurge");
    drop(vec![0u8; 4 << 20]);
    assert!(u64_of("stats.arenas.4096.dirty_npurge") > before);
    ctl::set_decay_ms(Target::All, Some(d0), None).unwrap();
}

#[test]
fn thread_counters_are_exact() {
    // A fresh thread, so nothing else allocates on it between reads.
    std::thread::spawn(|| {
        let read = || (u64_of("thread.allocated"), u64_of("thread.deallocated"));
        let (a0, d0) = read();
        let sizes = [
            1usize,
            24,
            100,
            1000,
            3000,
            14336,
            20000,
            40000,
            1 << 20,
            9 << 20,
        ];
        let usable: u64 = sizes.iter().map(|&n| rjem::nallocx(n, 0) as u64).sum();
        // Many rounds, so cache fills, flushes and GC all take part.
        let rounds = 300;
        for _ in 0..rounds {
            let blocks: Vec<Vec<u8>> = sizes.iter().map(|&n| Vec::with_capacity(n)).collect();
            drop(blocks);
        }
        // The reads themselves allocate nothing; the outer Vec of each
        // round (10 x 24 = 240 bytes, class 256) is counted too.
        let outer = rjem::nallocx(sizes.len() * 24, 0) as u64;
        let (a1, d1) = read();
        assert_eq!(a1 - a0, rounds * (usable + outer));
        assert_eq!(d1 - d0, rounds * (usable + outer));
        // Growing a large block in place counts the old size as freed and
        // the new one as allocated, as in jemalloc.
        let mut v: Vec<u8> = Vec::with_capacity(1 << 20);
        let (a2, d2) = read();
        v.reserve_exact((2 << 20) - v.len());
        let (a3, d3) = read();
        assert_eq!((a3 - a2, d3 - d2), (2 << 20, 1 << 20));
        drop(v);
        // The peak: about 10 MiB up, then back.
        ctl::run("thread.peak.reset").unwrap();
        let big: Vec<Vec<u8>> = (0..10).map(|_| vec![1u8; 1 << 20]).collect();
        drop(big);
        let peak = u64_of("thread.peak.read");
        assert!(peak >= 10 << 20, "peak {peak}");
        ctl::run("thread.peak.reset").unwrap();
        assert!(u64_of("thread.peak.read") < 1 << 20);
        // Small blocks too: 5 MiB of 16-byte boxes, freed before the read.
        let small: Vec<Box<[u8; 16]>> = (0..(5 << 20) / 16).map(|_| Box::new([7; 16])).collect();
        drop(small);
        let peak = u64_of("thread.peak.read");
        assert!(peak >= 5 << 20, "peak {peak}");
    })
    .join()
    .unwrap();
}

#[test]
fn explicit_tcache_shared_by_threads_stays_consistent() {
    use rjem::ffi::{dallocx, mallocx};
    let Ok(Value::U32(tc)) = ctl::read("tcache.create") else {
        panic!("tcache.create")
    };
    // MALLOCX_TCACHE(tc): the id plus 2, from bit 8.
    let flags = ((tc as i32) + 2) << 8;
    // Two threads share the cache (jemalloc leaves that undefined; rjem
    // serialises it): every block keeps its own pattern.
    let hs: Vec<_> = (0..2u8)
        .map(|t| {
            std::thread::spawn(move || {
                for round in 0..200 {
                    let blocks: Vec<(*mut u8, usize)> = (0..40)
                        .map(|i| {
                            let n = 16 + (i * 37 + round) % 3000;
                            let p = mallocx(n, flags).cast::<u8>();
                            assert!(!p.is_null());
                            unsafe { std::ptr::write_bytes(p, t ^ (i as u8), n) };
                            (p, n)
                        })
                        .collect();
                    for (i, (p, n)) in blocks.into_iter().enumerate() {
                        let s = unsafe { std::slice::from_raw_parts(p, n) };
                        assert!(s.iter().all(|&b| b == t ^ (i as u8)));
                        unsafe { dallocx(p.cast(), flags) };
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(ctl::write("tcache.flush", Value::U32(tc)), Ok(Value::Void));
    assert_eq!(ctl::read("tcache.flush"), Err(Error::Permission));
    assert_eq!(
        ctl::write("tcache.destroy", Value::U32(tc)),
        Ok(Value::Void)
    );
    assert_eq!(
        ctl::write("tcache.destroy", Value::U32(tc)),
        Err(Error::Fault)
    );
}

#[test]
fn metadata_is_explained() {
    let _g = EPOCH.lock().unwrap_or_else(|e| e.into_inner());
    let keep: Vec<Vec<u8>> = (0..200).map(|i| vec![0u8; 100 + i * 50]).collect();
    let parts = [
        "arenas",
        "extent_records",
        "slab_bitmaps",
        "explicit_tcaches",
    ];
    // Other tests run alongside: retry until a refresh and the parts agree.
    let mut last = (0, 0);
    for _ in 0..50 {
        ctl::write("epoch", Value::U64(1)).unwrap();
        let total = u64_of("stats.metadata");
        let sum: u64 = parts
            .iter()
            .map(|p| u64_of(&format!("stats.metadata_detail.{p}")))
            .sum();
        if sum == total {
            assert!(u64_of("stats.metadata_detail.arenas") > 0);
            assert!(u64_of("stats.metadata_detail.extent_records") > 0);
            assert!(u64_of("stats.metadata_detail.slab_bitmaps") > 0);
            assert!(u64_of("stats.metadata_detail.pointer_map") >= 8 << 20 >> 2);
            drop(keep);
            return;
        }
        last = (sum, total);
    }
    panic!(
        "metadata parts {} never matched the total {}",
        last.0, last.1
    );
}

#[test]
fn typed_controls() {
    use rjem::ctl::{arenas, epoch, max_background_threads, stats, thread, version, TypedMib};
    assert!(version::read()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("5.3.0-"));
    let e = epoch::advance().unwrap();
    assert!(epoch::advance().unwrap() > e);
    let allocated = stats::allocated::mib().unwrap();
    assert!(allocated.read().unwrap() > 0);
    assert!(stats::resident::read().unwrap() > 0);
    assert_eq!(arenas::page::read(), Ok(u64_of("arenas.page") as usize));
    // A private arena for this thread, then back.
    let a = arenas::create().unwrap();
    let old = thread::arena::write(a).unwrap();
    assert_eq!(thread::arena::read(), Ok(a));
    assert_eq!(thread::arena::write(old), Ok(a));
    thread::peak::reset().unwrap();
    assert!(thread::peak::read().unwrap() < 1 << 20);
    assert!(thread::allocated::read().unwrap() > 0);
    assert!(max_background_threads::read().unwrap() >= 1);
    // The type is checked.
    assert_eq!(
        TypedMib::<bool>::new("stats.allocated").unwrap().read(),
        Err(Error::Invalid)
    );
}

#[test]
fn unsafe_controls_need_unchecked_access() {
    // Reading hooks is safe; installing them, reset and destroy are not.
    let Ok(Value::Ptr(hooks)) = ctl::read("arena.0.extent_hooks") else {
        panic!("arena.0.extent_hooks")
    };
    assert!(!hooks.is_null());
    assert_eq!(
        ctl::write("arena.0.extent_hooks", Value::Ptr(hooks)),
        Err(Error::Unsafe)
    );
    assert_eq!(ctl::run("arena.0.reset"), Err(Error::Unsafe));
    assert_eq!(ctl::run("arena.0.destroy"), Err(Error::Unsafe));
    assert_eq!(
        ctl::write("arenas.create", Value::Ptr(hooks)),
        Err(Error::Unsafe)
    );
    assert_eq!(Mib::new("arenas.create").unwrap().write_ty(), Ok(Type::Ptr));
    assert_eq!(Mib::new("arenas.create").unwrap().ty(), Ok(Type::U32));
    // Automatic arenas cannot be reset or destroyed (EFAULT, as jemalloc).
    // SAFETY: refused before anything is discarded.
    unsafe {
        assert_eq!(ctl::run_unchecked("arena.0.reset"), Err(Error::Fault));
        assert_eq!(ctl::run_unchecked("arena.0.destroy"), Err(Error::Fault));
        assert_eq!(
            ctl::run_unchecked(&format!("arena.{}.destroy", ctl::ARENAS_ALL)),
            Err(Error::Fault)
        );
    }
}

#[test]
fn manual_arena_lifecycle() {
    // Frees pages while purge tests measure dirty pages.
    let _g = DECAY.lock().unwrap_or_else(|e| e.into_inner());
    use rjem::ffi::{dallocx, mallocx};
    const TCACHE_NONE: i32 = (-1 + 2) << 8;
    let arena_flag = |i: u32| ((i as i32) + 1) << 20;
    let Ok(Value::U32(ind)) = ctl::read("arenas.create") else {
        panic!("arenas.create")
    };
    // SAFETY: sizes are valid; the blocks are freed below or discarded by
    // the reset, and never used after it.
    unsafe {
        let p = mallocx(5000, arena_flag(ind) | TCACHE_NONE).cast::<u8>();
        assert!(!p.is_null());
        p.write_bytes(0x5a, 5000);
        assert_eq!(
            ctl::write("arenas.lookup", Value::Ptr(p.cast())),
            Ok(Value::U32(ind))
        );
        let q = mallocx(3 << 20, arena_flag(ind) | TCACHE_NONE);
        assert!(!q.is_null());
        dallocx(p.cast(), TCACHE_NONE);
        ctl::run_unchecked(&format!("arena.{ind}.reset")).unwrap();
    }
    ctl::epoch::advance().unwrap();
    for leaf in ["small.allocated", "large.allocated", "pactive"] {
        assert_eq!(
            ctl::read(&format!("stats.arenas.{ind}.{leaf}")),
            Ok(Value::Usize(0)),
            "{leaf} after reset"
        );
    }
    let local = 0u64;
    assert_eq!(
        ctl::write(
            "arenas.lookup",
            Value::Ptr((&local as *const u64).cast_mut().cast())
        ),
        Err(Error::Invalid),
        "not rjem's"
    );
    // SAFETY: nothing of the arena is in use any more.
    unsafe { ctl::run_unchecked(&format!("arena.{ind}.destroy")).unwrap() };
    assert_eq!(
        ctl::read(&format!("arena.{ind}.initialized")),
        Ok(Value::Bool(false))
    );
    let Ok(Value::U64(n)) = ctl::read(&format!(
        "stats.arenas.{}.large.nmalloc",
        ctl::ARENAS_ALL + 1
    )) else {
        panic!("destroyed arenas' counters")
    };
    assert!(n >= 1);
}

#[test]
fn retain_grow_limit() {
    let Ok(Value::U32(ind)) = ctl::read("arenas.create") else {
        panic!("arenas.create")
    };
    let name = format!("arena.{ind}.retain_grow_limit");
    let Ok(Value::Usize(old)) = ctl::read(&name) else {
        panic!("{name}")
    };
    assert!(old >= 2 << 20);
    assert_eq!(
        ctl::write(&name, Value::Usize((4 << 20) + 5)),
        Ok(Value::Usize(old))
    );
    assert_eq!(ctl::read(&name), Ok(Value::Usize(4 << 20)), "whole pages");
    assert_eq!(ctl::write(&name, Value::Usize(1)), Err(Error::Fault));
}

#[test]
fn published_thread_counters_follow_the_thread() {
    std::thread::spawn(|| {
        let Ok(Value::Ptr(ap)) = ctl::read("thread.allocatedp") else {
            panic!("thread.allocatedp")
        };
        let Ok(Value::Ptr(dp)) = ctl::read("thread.deallocatedp") else {
            panic!("thread.deallocatedp")
        };
        let (ap, dp) = (ap.cast::<u64>(), dp.cast::<u64>());
        // SAFETY: the pointers are this thread's counters, valid while it
        // runs; read volatile as a program polling them would.
        let read = || unsafe { (ap.read_volatile(), dp.read_volatile()) };
        let (a0, d0) = read();
        // Large blocks bypass the cache: counted at once.
        let v = vec![1u8; 4 << 20];
        assert!(read().0 >= a0 + (4 << 20));
        drop(v);
        assert!(read().1 >= d0 + (4 << 20));
        // Cached blocks are counted by the next fill or flush.
        let boxes: Vec<Box<[u8; 100]>> = (0..10_000).map(|_| Box::new([0; 100])).collect();
        drop(boxes);
        let (a1, d1) = read();
        assert!(a1 >= a0 + (4 << 20) + 9_000 * 112, "{a1} {a0}");
        assert!(d1 >= d0 + (4 << 20) + 9_000 * 112, "{d1} {d0}");
        // A read of thread.allocated brings them up to date exactly.
        let Ok(Value::U64(a)) = ctl::read("thread.allocated") else {
            panic!()
        };
        assert_eq!(read().0, a);
    })
    .join()
    .unwrap();
}

#[test]
fn thread_counters_stay_exact_when_cache_gc_flushes() {
    // Regression: a GC pass that flushed idle cached blocks used to lose
    // the flush from the counters, so thread.deallocated fell behind.
    std::thread::spawn(|| {
        let read = || (u64_of("thread.allocated"), u64_of("thread.deallocated"));
        let (a0, d0) = read();
        for round in 0..50 {
            // Blocks of one class left idle in the cache...
            let idle: Vec<Box<[u8; 100]>> = (0..300).map(|_| Box::new([round; 100])).collect();
            drop(idle);
            // ...while other classes keep the slow paths (and GC) busy.
            for _ in 0..40 {
                let v: Vec<Vec<u8>> = (0..64).map(|_| Vec::with_capacity(3000)).collect();
                drop(v);
            }
        }
        let (a1, d1) = read();
        assert!(a1 - a0 > 50 * 40 * 64 * 3000);
        assert_eq!(a1 - a0, d1 - d0, "everything allocated was freed");
    })
    .join()
    .unwrap();
}

#[test]
fn locks_extents_and_arena_metadata() {
    // Frees pages while purge tests measure dirty pages.
    let _g = DECAY.lock().unwrap_or_else(|e| e.into_inner());
    use rjem::ffi::{dallocx, mallocx};
    const TCACHE_NONE: i32 = (-1 + 2) << 8;
    let Ok(Value::U32(ind)) = ctl::read("arenas.create") else {
        panic!("arenas.create")
    };
    let flags = ((ind as i32) + 1) << 20 | TCACHE_NONE;
    // SAFETY: valid sizes; every block is freed once.
    unsafe {
        let blocks: Vec<_> = (1..200).map(|i| mallocx(i * 700, flags)).collect();
        for (n, p) in blocks.iter().enumerate() {
            if n % 3 != 0 {
                dallocx(*p, TCACHE_NONE);
            }
        }
        ctl::epoch::advance().unwrap();
        let a = |k: &str| u64_of(&format!("stats.arenas.{ind}.{k}"));
        assert!(a("mutexes.pages.num_ops") > 0);
        assert!(a("bins.7.mutex.num_ops") > 0 || a("bins.20.mutex.num_ops") > 0);
        // The free extents per size add up to the arena's page counts.
        let page = u64_of("arenas.page");
        let (mut dirty, mut muzzy, mut retained) = (0, 0, 0);
        for j in 0.. {
            let Ok(Value::Usize(d)) =
                ctl::read(&format!("stats.arenas.{ind}.extents.{j}.dirty_bytes"))
            else {
                break;
            };
            dirty += d as u64;
            muzzy += a(&format!("extents.{j}.muzzy_bytes"));
            retained += a(&format!("extents.{j}.retained_bytes"));
        }
        assert!(dirty > 0);
        assert_eq!(dirty, a("pdirty") * page);
        assert_eq!(muzzy, a("pmuzzy") * page);
        assert_eq!(retained, a("retained"));
        assert!(a("base") > 0);
        assert!(a("resident") >= a("base") + a("pactive") * page);
        for (n, p) in blocks.iter().enumerate() {
            if n % 3 == 0 {
                dallocx(*p, TCACHE_NONE);
            }
        }
    }
    // Process-wide locks, and their reset.
    assert!(u64_of("stats.mutexes.base.num_ops") > 0);
    ctl::run("stats.mutexes.reset").unwrap();
    assert!(u64_of("stats.mutexes.arenas.num_ops") <= 1);
    // Bytes a thread's cache holds count for the arena it fills from,
    // until it is flushed.
    std::thread::spawn(move || {
        ctl::write("thread.arena", Value::U32(ind)).unwrap();
        let held: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([1; 100])).collect();
        // Named once: reading allocates nothing, so it fills no cache.
        let name = format!("stats.arenas.{ind}.tcache_bytes");
        let cached = || u64_of(&name);
        assert!(cached() >= 112, "the fill's spare blocks");
        // The stacks came from the thread's first arena.
        assert!(u64_of(&format!("stats.arenas.{}.internal", ctl::ARENAS_ALL)) > 0);
        // Frees that stay in the cache count at once (no fill or flush in
        // between), to the byte.
        drop(held);
        assert_eq!(cached(), rjem::thread_cached().1 as u64);
        assert!(cached() >= 10 * 112);
        ctl::run("thread.tcache.flush").unwrap();
        assert_eq!(cached(), 0);
    })
    .join()
    .unwrap();
}

#[test]
fn typed_arena_operations_and_thread_counters() {
    use rjem::ctl::{arena, arenas, thread};
    let _g = DECAY.lock().unwrap_or_else(|e| e.into_inner());
    let b = Box::new([5u8; 300]);
    let mine = thread::arena::read().unwrap();
    assert_eq!(arenas::lookup(&*b as *const [u8; 300]), Ok(mine));
    assert_eq!(arenas::lookup(&mine as *const u32), Err(Error::Invalid));
    let i = arenas::create().unwrap();
    arena::purge(i).unwrap();
    // SAFETY: nothing was allocated from the new arena.
    unsafe {
        arena::reset(i).unwrap();
        arena::destroy(i).unwrap();
        assert_eq!(arena::destroy(i), Err(Error::Fault));
        assert_eq!(arena::reset(0), Err(Error::Fault));
    }
    std::thread::spawn(|| {
        let a = thread::allocatedp::read().unwrap();
        let d = thread::deallocatedp::read().unwrap();
        let (a0, d0) = (a.get(), d.get());
        drop(vec![0u8; 2 << 20]);
        assert!(a.get() >= a0 + (2 << 20) && d.get() >= d0 + (2 << 20));
    })
    .join()
    .unwrap();
    drop(b);
}

#[test]
fn reset_leaves_thread_caches_of_former_users_intact() {
    let _g = DECAY.lock().unwrap_or_else(|e| e.into_inner());
    let i = rjem::ctl::arenas::create().unwrap();
    std::thread::spawn(move || {
        // The cache is set up again while the thread uses the manual
        // arena: its stacks must not come from that arena.
        ctl::write("thread.tcache.enabled", Value::Bool(false)).unwrap();
        let old = ctl::write("thread.arena", Value::U32(i)).unwrap();
        ctl::write("thread.tcache.enabled", Value::Bool(true)).unwrap();
        assert_eq!(u64_of(&format!("stats.arenas.{i}.internal")), 0);
        let v: Vec<Box<[u8; 48]>> = (0..1000).map(|_| Box::new([3; 48])).collect();
        drop(v);
        ctl::write("thread.arena", old).unwrap();
        // SAFETY: this thread's blocks of arena i were flushed (by the
        // reset itself, first) and are not used again.
        unsafe { rjem::ctl::arena::reset(i).unwrap() };
        // The cache keeps working over its stacks.
        let w: Vec<Box<[u8; 48]>> = (0..5000).map(|k| Box::new([k as u8; 48])).collect();
        assert!(w.iter().enumerate().all(|(k, b)| b[47] == k as u8));
    })
    .join()
    .unwrap();
}

#[test]
fn freed_huge_blocks_stay_for_reuse() {
    let _g = DECAY.lock().unwrap_or_else(|e| e.into_inner());
    // The huge arena (index opt.narenas) decays like the others: a freed
    // 24 MiB block is not purged at once, and the next one reuses it.
    let Ok(Value::U32(huge)) = ctl::read("opt.narenas") else {
        panic!("opt.narenas")
    };
    let v = vec![1u8; 24 << 20];
    let p = v.as_ptr();
    assert_eq!(rjem::ctl::arenas::lookup(p), Ok(huge));
    drop(v);
    let pdirty = u64_of(&format!("stats.arenas.{huge}.pdirty"));
    assert!(
        pdirty * u64_of("arenas.page") >= 24 << 20,
        "pdirty {pdirty}"
    );
    let mapped = u64_of(&format!("stats.arenas.{huge}.mapped"));
    let w = vec![2u8; 24 << 20];
    assert_eq!(u64_of(&format!("stats.arenas.{huge}.mapped")), mapped);
    assert_eq!(w.as_ptr(), p, "the same pages, still resident");
}
