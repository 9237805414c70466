//! The control name space from Rust: names and MIBs, types and errors, and
//! the purge, decay and thread-cache controls doing what they say.

use rjem::ctl::{self, Error, Mib, Target, Type, Value};

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

// The tests share one process (and its arenas): each restores what it
// changes, and this lock keeps the ones that change decay times apart.
static DECAY: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    let _g = DECAY.lock().unwrap();
    let (d0, m0) = ctl::decay_ms(Target::Arena(0)).unwrap();
    ctl::set_decay_ms(Target::Arena(0), Some(1234), None).unwrap();
    assert_eq!(ctl::decay_ms(Target::Arena(0)), Ok((1234, m0)));
    assert_eq!(
        ctl::write("arena.0.dirty_decay_ms", Value::Isize(-2)),
        Err(Error::Invalid),
        "below -1"
    );
    assert_eq!(
        ctl::write(
            "arena.0.muzzy_decay_ms",
            Value::Isize(366 * 24 * 3600 * 1000)
        ),
        Err(Error::Invalid),
        "above a year"
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
    let _g = DECAY.lock().unwrap();
    // Keep freed pages dirty, then purge them on demand.
    let (d0, _) = ctl::decay_ms(Target::Arena(0)).unwrap();
    ctl::set_decay_ms(Target::All, Some(-1), None).unwrap();
    let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 256 << 10]).collect();
    drop(blocks);
    rjem::flush_thread_cache();
    let before = rjem::stats().dirty;
    assert!(before >= 8 << 20, "dirty {before}");
    ctl::purge(Target::All).unwrap();
    let after = rjem::stats().dirty;
    assert!(after < before / 4, "dirty {before} -> {after}");
    ctl::set_decay_ms(Target::All, Some(d0), None).unwrap();
}

#[test]
fn thread_cache_flush() {
    let v: Vec<Box<[u8; 64]>> = (0..100).map(|_| Box::new([7; 64])).collect();
    drop(v);
    assert!(rjem::thread_cached().0 > 0);
    ctl::run("thread.tcache.flush").unwrap();
    assert_eq!(rjem::thread_cached(), (0, 0));
}
