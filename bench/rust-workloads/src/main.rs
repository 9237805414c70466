//! Rust workloads for `rjem bench`, run through `#[global_allocator]`.
//!
//! One program, built once per allocator crate (feature `rjem`, `jemalloc`
//! for tikv-jemallocator, `mimalloc3`, `mimalloc3-secure` (with the
//! crate's `secure` feature) or `mimalloc2` for the mimalloc crate with
//! its bundled mimalloc v3 or v2, `snmalloc` for snmalloc-rs, or
//! `system` for Rust's default, which is glibc's malloc here, or whatever
//! malloc is preloaded). Usage:
//!
//! ```text
//! rust-workloads WORKLOAD SCALE     run WORKLOAD at SCALE (1 = quick unit)
//! rust-workloads allocator          print which allocator this build uses
//! ```
//!
//! Workloads (each verifies what it computes and exits 1 on a failed check):
//!
//! - `maps`: map and string churn: the same random inserts, removals and
//!   in-place string appends applied to a `HashMap<String, String>` and a
//!   `BTreeMap<String, String>`, which must end identical.
//! - `vec-growth`: thousands of vectors grown one push at a time (so by
//!   `realloc`), a few of them to megabytes, interleaved at random.
//! - `json`: build a `serde_json::Value` document of records, serialise it,
//!   parse it back, compare, edit, repeat.
//! - `par-sort`: a parallel merge sort of random strings over 16 threads;
//!   each worker makes its own strings, merges allocate new vectors on
//!   other threads, and the main thread frees everything.
//! - `channels`: a three-stage pipeline over bounded channels: producers
//!   allocate messages, workers replace them with new ones, a consumer
//!   checks and drops them (every free is cross-thread).

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;

// Exactly one allocator feature: `mimalloc2` turns on the `mimalloc` crate
// with its `v2` feature, so it may come with `mimalloc3`'s dependency but
// not with the feature itself.
const _: () = assert!(
    (cfg!(feature = "rjem") as u8
        + cfg!(feature = "jemalloc") as u8
        + cfg!(feature = "mimalloc3") as u8
        + cfg!(feature = "mimalloc3-secure") as u8
        + cfg!(feature = "mimalloc2") as u8
        + cfg!(feature = "snmalloc") as u8
        + cfg!(feature = "system") as u8)
        == 1,
    "choose exactly one allocator feature"
);

#[cfg(feature = "rjem")]
#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;
#[cfg(feature = "rjem")]
const ALLOCATOR: &str = "rjem";

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(feature = "jemalloc")]
const ALLOCATOR: &str = "jemalloc (tikv-jemallocator)";

#[cfg(any(
    feature = "mimalloc3",
    feature = "mimalloc3-secure",
    feature = "mimalloc2"
))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(feature = "mimalloc3")]
const ALLOCATOR: &str = "mimalloc v3 (mimalloc crate)";
#[cfg(feature = "mimalloc3-secure")]
const ALLOCATOR: &str = "mimalloc v3 (mimalloc crate, feature secure)";
#[cfg(feature = "mimalloc2")]
const ALLOCATOR: &str = "mimalloc v2 (mimalloc crate, feature v2)";

#[cfg(feature = "snmalloc")]
#[global_allocator]
static GLOBAL: snmalloc_rs::SnMalloc = snmalloc_rs::SnMalloc;
#[cfg(feature = "snmalloc")]
const ALLOCATOR: &str = "snmalloc (snmalloc-rs)";

#[cfg(feature = "system")]
const ALLOCATOR: &str = "system";

/// A small deterministic generator (splitmix64): every allocator sees the
/// same sequence of requests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Outcome = Result<String, String>;

/// A workload: its scale in, its one-line result (or what failed) out.
type WorkloadFn = fn(u64) -> Outcome;

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// Map and string churn over a HashMap and a BTreeMap given the same
/// operations; they must agree at the end.
fn maps(scale: u64) -> Outcome {
    let ops = 60_000 * scale;
    let keys = 20_000 + 2_000 * scale;
    let mut rng = Rng(1);
    let mut hash: HashMap<String, String> = HashMap::new();
    let mut tree: BTreeMap<String, String> = BTreeMap::new();
    let mut bytes: usize = 0;
    for i in 0..ops {
        let key = format!("k{:x}/{}", rng.below(keys), i % 7);
        match rng.below(8) {
            0..=3 => {
                let len = 4 + rng.below(120) as usize;
                let value: String = format!("{i}:") + &"v".repeat(len);
                bytes += value.len();
                if let Some(old) = hash.insert(key.clone(), value.clone()) {
                    bytes -= old.len();
                }
                tree.insert(key, value);
            }
            4 | 5 => {
                if let Some(old) = hash.remove(&key) {
                    bytes -= old.len();
                }
                tree.remove(&key);
            }
            _ => {
                let add = format!("+{}", rng.below(1000));
                if let Some(v) = hash.get_mut(&key) {
                    v.push_str(&add);
                    bytes += add.len();
                }
                if let Some(v) = tree.get_mut(&key) {
                    v.push_str(&add);
                }
            }
        }
    }
    check(hash.len() == tree.len(), || {
        format!("maps: sizes differ: {} vs {}", hash.len(), tree.len())
    })?;
    let mut total = 0;
    for (k, v) in &tree {
        check(hash.get(k) == Some(v), || format!("maps: key {k} differs"))?;
        total += v.len();
    }
    check(total == bytes, || {
        format!("maps: {total} value bytes, expected {bytes}")
    })?;
    Ok(format!(
        "maps ok: {} keys, {} value bytes",
        tree.len(),
        total
    ))
}

/// Vectors grown one push at a time, interleaved; a few grow to megabytes.
fn vec_growth(scale: u64) -> Outcome {
    let mut rng = Rng(2);
    let rounds = 4 * scale;
    let lists = 2_000;
    let pushes = 1_000_000u64;
    let mut sum_all = 0u64;
    for _ in 0..rounds {
        let mut vs: Vec<Vec<u64>> = (0..lists).map(|_| Vec::new()).collect();
        let mut strs: Vec<String> = (0..lists).map(|_| String::new()).collect();
        for i in 0..pushes {
            let j = if rng.below(10) == 0 {
                rng.below(8)
            } else {
                rng.below(lists as u64)
            } as usize;
            vs[j].push(i);
            if i % 4 == 0 {
                strs[j].push(char::from(b'a' + (i % 26) as u8));
            }
        }
        let mut sum = 0u64;
        for v in &vs {
            check(v.windows(2).all(|w| w[0] < w[1]), || {
                "vec-growth: order lost".to_string()
            })?;
            sum += v.iter().sum::<u64>();
        }
        check(sum == pushes * (pushes - 1) / 2, || {
            format!("vec-growth: sum {sum}")
        })?;
        let chars: usize = strs.iter().map(String::len).sum();
        check(chars as u64 == pushes / 4, || {
            format!("vec-growth: {chars} chars")
        })?;
        sum_all = sum_all.wrapping_add(sum);
    }
    Ok(format!(
        "vec-growth ok: {rounds} rounds of {pushes} pushes, checksum {sum_all}"
    ))
}

/// Build, serialise, parse, compare and edit a JSON document.
fn json(scale: u64) -> Outcome {
    use serde_json::{json, Value};
    let mut rng = Rng(3);
    let records: usize = 6_000;
    let rounds = 2 * scale;
    let mut out_bytes = 0usize;
    for round in 0..rounds {
        let doc: Value = Value::Array(
            (0..records)
                .map(|i| {
                    let tags: Vec<Value> = (0..rng.below(6))
                        .map(|t| Value::String(format!("tag-{}-{t}", rng.below(100))))
                        .collect();
                    json!({
                        "id": i,
                        "name": format!("user {i} of round {round}"),
                        "score": (rng.below(4000) as f64) / 4.0,
                        "tags": tags,
                        "nested": {
                            "values": (0..rng.below(8)).collect::<Vec<u64>>(),
                            "active": i % 3 == 0,
                            "note": null,
                        },
                    })
                })
                .collect(),
        );
        let text = serde_json::to_string(&doc).map_err(|e| e.to_string())?;
        let back: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        check(back == doc, || "json: round trip differs".to_string())?;
        // Edit: keep active records, rename a field, serialise again.
        let Value::Array(items) = back else {
            return Err("json: not an array".to_string());
        };
        let kept: Vec<Value> = items
            .into_iter()
            .filter(|r| r["nested"]["active"] == Value::Bool(true))
            .map(|mut r| {
                let obj = r.as_object_mut().expect("record is an object");
                let name = obj.remove("name").expect("record has a name");
                obj.insert("label".to_string(), name);
                r
            })
            .collect();
        check(kept.len() == records.div_ceil(3), || {
            format!("json: {} records kept", kept.len())
        })?;
        let ids: u64 = kept.iter().map(|r| r["id"].as_u64().unwrap_or(0)).sum();
        let expect: u64 = (0..records as u64).filter(|i| i % 3 == 0).sum();
        check(ids == expect, || format!("json: id sum {ids}"))?;
        let pretty =
            serde_json::to_string_pretty(&Value::Array(kept)).map_err(|e| e.to_string())?;
        out_bytes += text.len() + pretty.len();
    }
    Ok(format!(
        "json ok: {rounds} rounds of {records} records, {out_bytes} bytes written"
    ))
}

/// Merge two sorted vectors into a new one.
fn merge(a: Vec<String>, b: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x <= y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.push(if take_a { a.next() } else { b.next() }.expect("peeked"));
    }
    out
}

/// Parallel merge sort of random strings over 16 threads.
fn par_sort(scale: u64) -> Outcome {
    const THREADS: u64 = 16;
    let n = 250_000 * scale;
    let per = n / THREADS;
    // Each worker makes and sorts its own strings.
    let mut runs: Vec<Vec<String>> = thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut rng = Rng(100 + t);
                    let mut v: Vec<String> = (0..per)
                        .map(|_| {
                            let len = 4 + rng.below(28) as usize;
                            (0..len)
                                .map(|_| char::from(b'a' + rng.below(26) as u8))
                                .collect()
                        })
                        .collect();
                    v.sort_unstable();
                    v
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("sort worker"))
            .collect()
    });
    let checksum = |v: &[String]| {
        v.iter().fold(0u64, |acc, s| {
            acc.wrapping_add(
                s.bytes()
                    .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
            )
        })
    };
    let before: u64 = runs.iter().map(|r| checksum(r)).fold(0, u64::wrapping_add);
    // Merge pairs in parallel until one run is left.
    while runs.len() > 1 {
        let mut pairs = Vec::new();
        while runs.len() >= 2 {
            let b = runs.pop().expect("two runs");
            let a = runs.pop().expect("two runs");
            pairs.push((a, b));
        }
        let leftover = runs.pop();
        runs = thread::scope(|s| {
            let hs: Vec<_> = pairs
                .into_iter()
                .map(|(a, b)| s.spawn(move || merge(a, b)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("merge worker"))
                .collect()
        });
        runs.extend(leftover);
    }
    let sorted = runs.pop().unwrap_or_default();
    check(sorted.len() as u64 == per * THREADS, || {
        format!("par-sort: {} strings", sorted.len())
    })?;
    check(sorted.windows(2).all(|w| w[0] <= w[1]), || {
        "par-sort: not sorted".to_string()
    })?;
    check(checksum(&sorted) == before, || {
        "par-sort: contents changed".to_string()
    })?;
    Ok(format!(
        "par-sort ok: {} strings over {THREADS} threads",
        sorted.len()
    ))
}

/// The bytes of message `id`: a length and a fill derived from the id.
fn payload(id: u64) -> Vec<u8> {
    let len = 16 + (id.wrapping_mul(2_654_435_761) % 2000) as usize;
    (0..len).map(|k| (id as usize + k) as u8).collect()
}

struct Digest {
    id: u64,
    sum: u64,
    text: String,
}

/// Producers -> workers -> consumer over bounded channels.
fn channels(scale: u64) -> Outcome {
    const PRODUCERS: u64 = 2;
    let per = 60_000 * scale;
    let (dtx, drx) = mpsc::sync_channel::<Box<Digest>>(256);
    let mut handles = Vec::new();
    for p in 0..PRODUCERS {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(256);
        handles.push(thread::spawn(move || {
            for i in 0..per {
                let id = i * PRODUCERS + p;
                let mut msg = payload(id);
                msg.extend_from_slice(&id.to_le_bytes());
                if tx.send(msg).is_err() {
                    return;
                }
            }
        }));
        let dtx = dtx.clone();
        handles.push(thread::spawn(move || {
            for msg in rx {
                let (body, tail) = msg.split_at(msg.len() - 8);
                let id = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
                let sum = body.iter().map(|&b| u64::from(b)).sum();
                let d = Box::new(Digest {
                    id,
                    sum,
                    text: format!("message {id} of {} bytes", body.len()),
                });
                drop(msg);
                if dtx.send(d).is_err() {
                    return;
                }
            }
        }));
    }
    drop(dtx);
    let mut count = 0u64;
    let mut ids = 0u64;
    let mut bad = None;
    for d in drx {
        let expect: u64 = payload(d.id).iter().map(|&b| u64::from(b)).sum();
        if d.sum != expect || !d.text.starts_with("message ") {
            bad.get_or_insert(d.id);
        }
        count += 1;
        ids = ids.wrapping_add(d.id);
    }
    for h in handles {
        h.join()
            .map_err(|_| "channels: a stage panicked".to_string())?;
    }
    let n = per * PRODUCERS;
    check(bad.is_none(), || {
        format!("channels: message {bad:?} corrupted")
    })?;
    check(count == n && ids == n * (n - 1) / 2, || {
        format!("channels: {count} messages, id sum {ids}")
    })?;
    Ok(format!("channels ok: {count} messages through 3 stages"))
}

const WORKLOADS: &[(&str, WorkloadFn)] = &[
    ("maps", maps),
    ("vec-growth", vec_growth),
    ("json", json),
    ("par-sort", par_sort),
    ("channels", channels),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("allocator") {
        println!("{ALLOCATOR}");
        return ExitCode::SUCCESS;
    }
    let usage = || {
        let names: Vec<&str> = WORKLOADS.iter().map(|w| w.0).collect();
        eprintln!(
            "usage: rust-workloads WORKLOAD SCALE | allocator\nworkloads: {}",
            names.join(", ")
        );
        ExitCode::from(2)
    };
    let (Some(name), Some(scale)) = (args.first(), args.get(1)) else {
        return usage();
    };
    let Some(&(_, f)) = WORKLOADS.iter().find(|w| w.0 == name) else {
        return usage();
    };
    let Ok(scale) = scale.parse::<u64>() else {
        return usage();
    };
    match f(scale.max(1)) {
        Ok(line) => {
            println!("{line} [{ALLOCATOR}]");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAILED: {e} [{ALLOCATOR}]");
            ExitCode::from(1)
        }
    }
}
