//! `secure:true` (rjem's hardened mode), from the Rust front: regions come
//! out of a fill in random order, and guard pages are on for every 8th
//! slab and large extent unless the `san_guard_*` options say otherwise. Each
//! check runs in a child with the option set (`common::child`).

mod common;

use rjem::ctl::{self, Value};

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

/// How many of 200 fresh 48-byte blocks come at a higher address than the
/// block before them, and whether each holds what was written to it.
fn ascending_of_200() -> usize {
    let v: Vec<Box<[u64; 6]>> = (0..200).map(|i| Box::new([i as u64; 6])).collect();
    assert!(v
        .iter()
        .enumerate()
        .all(|(i, b)| b.iter().all(|&x| x == i as u64)));
    v.windows(2)
        .filter(|w| (&*w[1] as *const _ as usize) > (&*w[0] as *const _ as usize))
        .count()
}

#[test]
fn secure_mode() {
    if common::in_child() {
        assert_eq!(ctl::read("opt.secure"), Ok(Value::Bool(true)));
        // Lowest address first would give 199 of 199; random order about
        // half (a fill of 100 shuffled: fewer than 150 with overwhelming
        // probability).
        let up = ascending_of_200();
        assert!(up < 150, "{up} of 199 ascending: not shuffled");
        // Every 8th slab and large extent is guarded: it sits between
        // inaccessible pages, seen in /proc/self/maps as ---p mappings.
        let guards = || {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            maps.lines().filter(|l| l.contains(" ---p ")).count()
        };
        let before = guards();
        let big: Vec<Vec<u8>> = (0..32).map(|_| vec![7u8; 100_000]).collect();
        let after = guards();
        assert!(after >= before + 4, "{before} -> {after} guard mappings");
        drop(big);
        return;
    }
    common::child("secure_mode", "secure:true");
}

#[test]
fn default_order_is_lowest_address_first() {
    if common::in_child() {
        assert_eq!(ctl::read("opt.secure"), Ok(Value::Bool(false)));
        let up = ascending_of_200();
        assert!(up > 190, "{up} of 199 ascending");
        return;
    }
    common::child("default_order_is_lowest_address_first", "");
}
