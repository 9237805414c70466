//! Heap profiles read from files: jemalloc's `heap_v2` text (rjem's and
//! jemalloc's dumps) and pprof's protobuf (gzipped or not), into one
//! model whose counts are estimates (already scaled from the samples).
//!
//! Owns the model (`Profile`, `Stack`, `Frame`, `Mapping`), both readers,
//! and `profile.proto`'s messages (the fields `rjem prof` reads, declared
//! by hand for prost). Frame addresses are call sites: a `heap_v2` return
//! address minus one, a pprof location's address as it is.

use super::proto;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// A heap profile.
pub struct Profile {
    /// Bytes between samples on average (0 if not known).
    pub period: u64,
    pub format: &'static str,
    pub stacks: Vec<Stack>,
    pub mappings: Vec<Mapping>,
}

/// One allocation stack with its estimated counts.
pub struct Stack {
    /// Innermost first.
    pub frames: Vec<Frame>,
    pub inuse_objects: f64,
    pub inuse_bytes: f64,
    pub alloc_objects: f64,
    pub alloc_bytes: f64,
}

#[derive(Clone)]
pub struct Frame {
    pub addr: u64,
    /// The functions at the address, innermost (inlined) first; empty
    /// until symbolized if the file had none.
    pub funcs: Vec<Func>,
}

#[derive(Clone)]
pub struct Func {
    pub name: String,
    /// Never a site: compiled from Rust's standard library sources (its
    /// DWARF file names are under /rustc/ or /rust/deps/), or in an
    /// allocator's library (jemalloc's stacks keep its own frames).
    pub std_lib: bool,
}

/// An executable file mapping of the profiled process.
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
}

/// Reads a profile, telling the formats apart by their first bytes.
pub fn read(path: &Path) -> Result<Profile, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if data.starts_with(b"heap_v2/") {
        let text = String::from_utf8_lossy(&data);
        return parse_heap_v2(&text).map_err(|e| format!("{}: {e}", path.display()));
    }
    let raw = if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: not a valid gzip stream: {e}", path.display()))?;
        out
    } else {
        data
    };
    parse_pprof(&raw).map_err(|e| {
        format!(
            "{}: neither a heap_v2 dump nor a pprof profile ({e})",
            path.display()
        )
    })
}

/// jeprof's and jemalloc's unbiasing: a sample of average size s stands
/// for 1 / (1 - e^(-s / period)) allocations.
pub fn scale(objs: u64, bytes: u64, period: u64) -> (f64, f64) {
    if objs == 0 || period <= 1 {
        return (objs as f64, bytes as f64);
    }
    let avg = bytes as f64 / objs as f64;
    let f = 1.0 / (1.0 - (-avg / period as f64).exp());
    (objs as f64 * f, bytes as f64 * f)
}

/// "t*: 12: 3456 [7: 8910]" (or a per-thread "t3: ..." line).
fn counts(line: &str) -> Option<(u64, u64, u64, u64)> {
    let (_, rest) = line.trim().split_once(':')?;
    let clean = rest.replace(['[', ']', ':'], " ");
    let n: Vec<u64> = clean
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    match n[..] {
        [a, b, c, d] => Some((a, b, c, d)),
        _ => None,
    }
}

pub fn parse_heap_v2(text: &str) -> Result<Profile, String> {
    let (head, maps) = text
        .split_once("\nMAPPED_LIBRARIES:\n")
        .unwrap_or((text, ""));
    let mut lines = head.lines();
    let period: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("heap_v2/"))
        .and_then(|p| p.trim().parse().ok())
        .ok_or("no heap_v2/<period> header")?;
    let mut stacks = Vec::new();
    let mut cur: Option<Vec<Frame>> = None;
    for l in lines {
        if let Some(addrs) = l.strip_prefix('@') {
            let frames = addrs
                .split_whitespace()
                .map(|a| {
                    u64::from_str_radix(a.trim_start_matches("0x"), 16)
                        .map(|pc| Frame {
                            addr: pc.saturating_sub(1),
                            funcs: Vec::new(),
                        })
                        .map_err(|_| format!("bad address '{a}'"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            cur = Some(frames);
        } else if l.trim_start().starts_with("t*:") {
            // The first t*: after a stack is its total; the header's has
            // no stack.
            if let Some(frames) = cur.take() {
                let (co, cb, ao, ab) = counts(l).ok_or_else(|| format!("bad counts '{l}'"))?;
                let (inuse_objects, inuse_bytes) = scale(co, cb, period);
                let (alloc_objects, alloc_bytes) = scale(ao, ab, period);
                stacks.push(Stack {
                    frames,
                    inuse_objects,
                    inuse_bytes,
                    alloc_objects,
                    alloc_bytes,
                });
            }
        }
    }
    Ok(Profile {
        period,
        format: "heap_v2",
        stacks,
        mappings: maps.lines().filter_map(parse_maps_line).collect(),
    })
}

/// An executable file mapping's line of /proc/<pid>/maps.
fn parse_maps_line(l: &str) -> Option<Mapping> {
    let f: Vec<&str> = l.splitn(6, ' ').collect();
    if f.len() < 6 || f[1].as_bytes().get(2) != Some(&b'x') {
        return None;
    }
    let path = f[5].trim();
    if !path.starts_with('/') {
        return None;
    }
    let (s, e) = f[0].split_once('-')?;
    Some(Mapping {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        offset: u64::from_str_radix(f[2], 16).ok()?,
        path: path.to_string(),
    })
}

impl proto::Profile {
    /// The string at index `i` (empty if out of range).
    pub fn str(&self, i: i64) -> &str {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.string_table.get(i))
            .map_or("", |s| s.as_str())
    }
}

pub fn parse_pprof(raw: &[u8]) -> Result<Profile, String> {
    use prost::Message;
    let p = proto::Profile::decode(raw).map_err(|e| e.to_string())?;
    if p.sample_type.is_empty() {
        return Err("no sample types".into());
    }
    let index = |name: &str| p.sample_type.iter().position(|t| p.str(t.r#type) == name);
    let (io, ib, ao, ab) = (
        index("inuse_objects"),
        index("inuse_space"),
        index("alloc_objects"),
        index("alloc_space"),
    );
    if ib.is_none() && ab.is_none() {
        return Err("no inuse_space or alloc_space sample type: not a heap profile".into());
    }
    let funcs: std::collections::HashMap<u64, &str> =
        p.function.iter().map(|f| (f.id, p.str(f.name))).collect();
    let locs: std::collections::HashMap<u64, Frame> = p
        .location
        .iter()
        .map(|l| {
            let found = l
                .line
                .iter()
                .filter_map(|ln| funcs.get(&ln.function_id))
                .filter(|n| !n.is_empty())
                .map(|n| Func {
                    name: demangle(n),
                    std_lib: false,
                })
                .collect();
            (
                l.id,
                Frame {
                    addr: l.address,
                    funcs: found,
                },
            )
        })
        .collect();
    let mut stacks = Vec::new();
    for s in &p.sample {
        let v = |i: Option<usize>| i.and_then(|i| s.value.get(i)).map_or(0.0, |&x| x as f64);
        let frames = s
            .location_id
            .iter()
            .map(|id| {
                locs.get(id)
                    .cloned()
                    .ok_or_else(|| format!("sample names unknown location {id}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        stacks.push(Stack {
            frames,
            inuse_objects: v(io),
            inuse_bytes: v(ib),
            alloc_objects: v(ao),
            alloc_bytes: v(ab),
        });
    }
    let mappings = p
        .mapping
        .iter()
        .map(|m| Mapping {
            start: m.memory_start,
            end: m.memory_limit,
            offset: m.file_offset,
            path: p.str(m.filename).to_string(),
        })
        .collect();
    Ok(Profile {
        period: p.period.max(0) as u64,
        format: "pprof",
        stacks,
        mappings,
    })
}

/// A symbol's readable name (Rust and C++ manglings; others as they are).
pub fn demangle(s: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(s) {
        return format!("{d:#}");
    }
    if s.starts_with("_Z") {
        if let Ok(d) = cpp_demangle::Symbol::new(s) {
            if let Ok(t) = d.demangle(&cpp_demangle::DemangleOptions::default()) {
                return t;
            }
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_v2_from_jemalloc_with_thread_lines() {
        let text = "heap_v2/524288\n  t*: 2: 2048 [0: 0]\n  t0: 2: 2048 [0: 0]\n\
                    @ 0x10 0x20\n  t*: 1: 1024 [0: 0]\n  t0: 1: 1024 [0: 0]\n\
                    @ 0x30\n  t*: 1: 1024 [3: 3072]\n\nMAPPED_LIBRARIES:\n\
                    5555-6666 r-xp 00001000 08:01 42   /bin/prog\n\
                    7777-8888 rw-p 00000000 00:00 0 \n";
        let p = parse_heap_v2(text).unwrap();
        assert_eq!(p.period, 524288);
        assert_eq!(p.stacks.len(), 2);
        assert_eq!(p.stacks[0].frames[0].addr, 0xf);
        let want = 1024.0 / (1.0 - (-1024.0f64 / 524288.0).exp());
        assert!((p.stacks[0].inuse_bytes - want).abs() < 1e-6);
        assert!(p.stacks[1].alloc_bytes > 3072.0);
        assert_eq!(p.mappings.len(), 1);
        assert_eq!(p.mappings[0].offset, 0x1000);
        assert!(parse_heap_v2("nope").is_err());
    }
}
