//! Profiles in pprof's format: a gzipped `profile.proto` message, the
//! same samples as the `heap_v2` dump, readable by pprof tools directly.
//!
//! Owns the pprof layout: sample types `alloc_objects`/`alloc_space`/
//! `inuse_objects`/`inuse_space` (count, bytes; the `alloc_*` values need
//! `prof_accum`, else they are 0), each record's counts scaled as jeprof
//! scales `heap_v2` (`math::scale`), period type `space`/`bytes` with
//! the sampling period; one location per distinct return address, whose
//! `address` is the return address minus one (inside the call, as pprof's
//! own converters of jemalloc profiles make it); one mapping per
//! executable file mapping of `/proc/self/maps`, with its GNU build id;
//! and functions named from the files' symbol tables (`elf`), where they
//! have one (no line numbers: pprof tools and `rjem prof` add those from
//! the mappings).
//!
//! Invariants: nothing here allocates through an allocator and no lock is
//! held while writing: the records are walked through a `Span` taken
//! under the table's lock, and the working memory (sorted addresses,
//! their symbols, the mapping list, the gzip block) is one anonymous
//! mapping, unmapped at the end. So the Rust API's sink may allocate.

use super::elf::{self, SymFile};
use super::encode::{len_bytes, len_uint, len_varint, Gzip, Pb, Sink};
use super::table::{Record, TABLE};
use super::{dump, math, names, period, OPT_PROF_ACCUM};
use crate::os;
use core::ffi::CStr;
use core::sync::atomic::Ordering::Relaxed;

/// Executable file mappings kept (the rest get no mapping).
const MAX_MAPS: usize = 512;
/// Bytes of their paths kept.
const PATHS: usize = 128 << 10;
/// Files whose symbols are read per dump.
const MAX_FILES: usize = 64;
/// The gzip writer's working memory.
const GZ_BUF: usize = super::encode::GZIP_WORK;

/// An executable file mapping from `/proc/self/maps`.
#[derive(Clone, Copy)]
struct Map {
    start: usize,
    end: usize,
    offset: u64,
    ino: u64,
    /// Offset and length of its path in the paths area (NUL follows).
    path: (u32, u32),
    /// Index in `files` + 1 (0: not symbolized).
    file: u8,
    build_id: [u8; 64],
    build_id_len: u8,
}

/// The working memory of one dump (one anonymous mapping).
struct Scratch {
    mem: *mut u8,
    size: usize,
    /// Frames (return addresses), sorted and deduplicated.
    addrs: *mut usize,
    /// Per address: its symbol as (file + 1) << 32 | name offset, or 0.
    syms: *mut u64,
    /// Per address: the start of that symbol (the innermost one wins).
    sym_lo: *mut usize,
    cap: usize,
    maps: *mut Map,
    paths: *mut u8,
    gz: *mut u8,
}

impl Scratch {
    fn new(frames: usize) -> Option<Scratch> {
        let cap = frames.max(1);
        let size = (cap * 24 + MAX_MAPS * core::mem::size_of::<Map>() + PATHS + GZ_BUF)
            .next_multiple_of(os::page_size());
        let mem = os::map(size);
        if mem.is_null() {
            return None;
        }
        // SAFETY: offsets inside the `size`-byte mapping, 8-aligned (the
        // mapping is page-aligned and each part a multiple of 8 long).
        unsafe {
            let maps = mem.add(cap * 24);
            let paths = maps.add(MAX_MAPS * core::mem::size_of::<Map>());
            Some(Scratch {
                mem,
                size,
                addrs: mem.cast(),
                syms: mem.add(cap * 8).cast(),
                sym_lo: mem.add(cap * 16).cast(),
                cap,
                maps: maps.cast(),
                paths,
                gz: paths.add(PATHS),
            })
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        os::unmap(self.mem, self.size);
    }
}

/// Writes the profile as a gzipped pprof message into `sink`; false if
/// the working memory could not be had or a write failed.
pub(super) fn write<S: Sink>(sink: &mut S) -> bool {
    let span = TABLE.lock().span();
    let mut frames = 0;
    span.walk(|r| frames += r.frames().len());
    let Some(sc) = Scratch::new(frames) else {
        return false;
    };
    // SAFETY: the scratch parts are disjoint, zeroed (valid for these
    // plain types) and live until `sc` drops at the end of this function.
    let (addrs, syms, sym_lo, maps, paths, gz) = unsafe {
        (
            core::slice::from_raw_parts_mut(sc.addrs, sc.cap),
            core::slice::from_raw_parts_mut(sc.syms, sc.cap),
            core::slice::from_raw_parts_mut(sc.sym_lo, sc.cap),
            core::slice::from_raw_parts_mut(sc.maps, MAX_MAPS),
            core::slice::from_raw_parts_mut(sc.paths, PATHS),
            core::slice::from_raw_parts_mut(sc.gz, GZ_BUF),
        )
    };
    // The distinct frames of the records shown, sorted.
    let mut n = 0;
    span.walk(|r| {
        if dump::shown(r) {
            for &pc in r.frames() {
                if n < addrs.len() {
                    addrs[n] = pc;
                    n += 1;
                }
            }
        }
    });
    let addrs = dedup(&mut addrs[..n]);
    let (syms, sym_lo) = (&mut syms[..addrs.len()], &mut sym_lo[..addrs.len()]);
    let nmaps = read_maps(maps, paths);
    let maps = &mut maps[..nmaps];
    // Symbols and build ids of the mappings that hold frames.
    let mut files: [Option<SymFile>; MAX_FILES] = [const { None }; MAX_FILES];
    let mut nfiles = 0;
    for m in maps.iter_mut() {
        let first = addrs.partition_point(|&a| a <= m.start);
        let Some(&pc) = addrs.get(first).filter(|&&a| a <= m.end) else {
            continue;
        };
        if nfiles == MAX_FILES {
            continue;
        }
        // A frame, not the mapping's start: a segment need not begin on
        // a page boundary.
        let Some(obj) = elf::object_at(pc - 1) else {
            continue;
        };
        m.build_id = obj.build_id;
        m.build_id_len = obj.build_id_len as u8;
        let (off, len) = (m.path.0 as usize, m.path.1 as usize);
        if let Ok(c) = CStr::from_bytes_with_nul(&paths[off..=off + len]) {
            files[nfiles] = SymFile::open(c, m.ino);
        }
        m.file = nfiles as u8 + 1;
        let slot = nfiles as u64 + 1;
        if let Some(f) = &files[nfiles] {
            let (lo_map, hi_map) = (m.start, m.end);
            f.for_each_function(|value, size, name| {
                let lo = obj.bias.wrapping_add(value as usize);
                let hi = lo.saturating_add(size as usize);
                if hi <= lo_map || lo >= hi_map {
                    return;
                }
                // Return address pc is in [lo, hi) when pc - 1 is.
                let mut i = addrs.partition_point(|&a| a <= lo);
                while i < addrs.len() && addrs[i] <= hi {
                    if syms[i] == 0 || lo > sym_lo[i] {
                        syms[i] = slot << 32 | name as u64;
                        sym_lo[i] = lo;
                    }
                    i += 1;
                }
            });
        }
        nfiles += 1;
    }

    let mut g = Gzip::new(sink, gz);
    let mut pb = Pb(&mut g);
    let mut strings = StrTable(0);
    strings.add(&mut pb, b"");
    let mut value_type = |pb: &mut Pb<S>, field: u32, kind: &[u8], unit: &[u8]| {
        let (k, u) = (strings.add(pb, kind), strings.add(pb, unit));
        pb.open(field, len_uint(1, k) + len_uint(2, u));
        pb.uint(1, k);
        pb.uint(2, u);
        k
    };
    value_type(&mut pb, 1, b"alloc_objects", b"count");
    value_type(&mut pb, 1, b"alloc_space", b"bytes");
    value_type(&mut pb, 1, b"inuse_objects", b"count");
    let inuse_space = value_type(&mut pb, 1, b"inuse_space", b"bytes");
    value_type(&mut pb, 11, b"space", b"bytes");
    pb.uint(12, period());
    pb.uint(14, inuse_space);
    // SAFETY: an all-zero timespec is a valid out-parameter.
    let mut ts: libc::timespec = unsafe { core::mem::zeroed() };
    // SAFETY: ts is writable.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } == 0 {
        pb.uint(9, ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
    }
    if !OPT_PROF_ACCUM.load(Relaxed) {
        let c = strings.add(
            &mut pb,
            b"alloc_objects and alloc_space need prof_accum:true",
        );
        pb.uint(13, c);
    }

    // Mappings, ids from 1 in /proc/self/maps order.
    for (i, m) in maps.iter().enumerate() {
        let file = strings.add(&mut pb, path_of(paths, m));
        let mut id = 0;
        let mut has_functions = false;
        if m.file != 0 {
            let f = m.file as usize - 1;
            let mut hex = [0u8; 128];
            let l = to_hex(&m.build_id[..m.build_id_len as usize], &mut hex);
            if l != 0 {
                id = strings.add(&mut pb, &hex[..l]);
            }
            has_functions = files[f].is_some();
        }
        let fields = [
            (1, i as u64 + 1),
            (2, m.start as u64),
            (3, m.end as u64),
            (4, m.offset),
            (5, file),
            (6, id),
            (7, has_functions as u64),
        ];
        pb.open(3, fields.iter().map(|&(f, v)| len_uint(f, v)).sum());
        for (f, v) in fields {
            pb.uint(f, v);
        }
    }

    // Functions (one per distinct symbol: its addresses are adjacent) and
    // locations (id: the address's index + 1).
    let mut fid = 0u64;
    for (i, &pc) in addrs.iter().enumerate() {
        let s = syms[i];
        if s != 0 && (i == 0 || syms[i - 1] != s) {
            let name = files[(s >> 32) as usize - 1]
                .as_ref()
                .map_or(&b""[..], |f| f.name(s as u32));
            let name = strings.add(&mut pb, name);
            fid += 1;
            pb.open(5, len_uint(1, fid) + len_uint(2, name) + len_uint(3, name));
            pb.uint(1, fid);
            pb.uint(2, name);
            pb.uint(3, name);
        }
        let mapping = maps.partition_point(|m| m.start < pc);
        let mapping = match mapping.checked_sub(1) {
            Some(k) if pc - 1 < maps[k].end => k as u64 + 1,
            _ => 0,
        };
        let line = if s != 0 { len_uint(1, fid) } else { 0 };
        let fields = [(1, i as u64 + 1), (2, mapping), (3, pc as u64 - 1)];
        let mut len: usize = fields.iter().map(|&(f, v)| len_uint(f, v)).sum();
        if s != 0 {
            len += len_bytes(4, line);
        }
        pb.open(4, len);
        for (f, v) in fields {
            pb.uint(f, v);
        }
        if s != 0 {
            pb.open(4, line);
            pb.uint(1, fid);
        }
    }

    // Thread names, for the samples' "thread_name" labels.
    let mut name_str = [0u64; names::MAX + 1];
    let mut used = [false; names::MAX + 1];
    span.walk(|r| used[r.thread as usize] |= dump::shown(r));
    if used[1..].iter().any(|&u| u) {
        name_str[0] = strings.add(&mut pb, b"thread_name");
        for id in 1..=names::MAX {
            if used[id] {
                name_str[id] = strings.add(&mut pb, names::get(id as u16).to_bytes());
            }
        }
    }

    // Samples.
    span.walk(|r| {
        if dump::shown(r) {
            let label = (r.thread != 0).then(|| (name_str[0], name_str[r.thread as usize]));
            sample(&mut pb, r, addrs, label);
        }
    });
    let ok = g.finish();
    drop(files);
    drop(sc);
    ok
}

/// One record's sample; left out if a frame is not among `addrs` (the
/// record was first shown after they were collected).
fn sample<S: Sink>(pb: &mut Pb<S>, r: &Record, addrs: &[usize], label: Option<(u64, u64)>) {
    let mut ids_len = 0;
    for pc in r.frames() {
        match addrs.binary_search(pc) {
            Ok(i) => ids_len += len_varint(i as u64 + 1),
            Err(_) => return,
        }
    }
    let p = period();
    let (co, cb) = math::scale(r.cur_objs.load(Relaxed), r.cur_bytes.load(Relaxed), p);
    let (ao, ab) = math::scale(r.accum_objs.load(Relaxed), r.accum_bytes.load(Relaxed), p);
    let values = [ao, ab, co, cb];
    let vals_len: usize = values.iter().map(|&v| len_varint(v)).sum();
    let mut len = len_bytes(2, vals_len);
    if ids_len != 0 {
        len += len_bytes(1, ids_len);
    }
    let label_len = label.map_or(0, |(k, v)| len_uint(1, k) + len_uint(2, v));
    if label.is_some() {
        len += len_bytes(3, label_len);
    }
    pb.open(2, len);
    if ids_len != 0 {
        pb.open(1, ids_len);
        for pc in r.frames() {
            let i = addrs.binary_search(pc).unwrap_or(0);
            pb.varint(i as u64 + 1);
        }
    }
    pb.open(2, vals_len);
    for v in values {
        pb.varint(v);
    }
    if let Some((k, v)) = label {
        pb.open(3, label_len);
        pb.uint(1, k);
        pb.uint(2, v);
    }
}

/// The string table, written as strings are first needed.
struct StrTable(u64);

impl StrTable {
    fn add<S: Sink>(&mut self, pb: &mut Pb<S>, s: &[u8]) -> u64 {
        pb.bytes(6, s);
        self.0 += 1;
        self.0 - 1
    }
}

/// Sorts `a` and drops repeats; returns the distinct prefix.
fn dedup(a: &mut [usize]) -> &mut [usize] {
    a.sort_unstable();
    let mut n = 0;
    for i in 0..a.len() {
        if n == 0 || a[i] != a[n - 1] {
            a[n] = a[i];
            n += 1;
        }
    }
    &mut a[..n]
}

fn to_hex(b: &[u8], out: &mut [u8; 128]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, &x) in b.iter().take(64).enumerate() {
        out[2 * i] = HEX[(x >> 4) as usize];
        out[2 * i + 1] = HEX[(x & 15) as usize];
    }
    2 * b.len().min(64)
}

fn path_of<'a>(paths: &'a [u8], m: &Map) -> &'a [u8] {
    &paths[m.path.0 as usize..(m.path.0 + m.path.1) as usize]
}

/// Fills `maps` with the executable file mappings of `/proc/self/maps`
/// (their paths in `paths`, each followed by a NUL); returns how many.
fn read_maps(maps: &mut [Map], paths: &mut [u8]) -> usize {
    let mut n = 0;
    let mut used = 0usize;
    dump::for_each_maps_line(|line| {
        let Some(m) = parse_maps_line(line) else {
            return;
        };
        let path = m.1;
        if n == maps.len() || used + path.len() + 1 > paths.len() {
            return;
        }
        paths[used..used + path.len()].copy_from_slice(path);
        paths[used + path.len()] = 0;
        maps[n] = Map {
            path: (used as u32, path.len() as u32),
            ..m.0
        };
        used += path.len() + 1;
        n += 1;
    });
    n
}

/// An executable file mapping's line: "start-end perms offset dev inode
/// path".
fn parse_maps_line(line: &[u8]) -> Option<(Map, &[u8])> {
    let mut f = line.splitn(6, |&c| c == b' ');
    let range = f.next()?;
    let perms = f.next()?;
    let offset = hex(f.next()?)?;
    let _dev = f.next()?;
    let ino = dec(f.next()?)?;
    let path = trim(f.next()?);
    if perms.get(2) != Some(&b'x') || path.first() != Some(&b'/') || path.ends_with(b" (deleted)") {
        return None;
    }
    let dash = range.iter().position(|&c| c == b'-')?;
    let (start, end) = (hex(&range[..dash])?, hex(&range[dash + 1..])?);
    Some((
        Map {
            start: start as usize,
            end: end as usize,
            offset,
            ino,
            path: (0, 0),
            file: 0,
            build_id: [0; 64],
            build_id_len: 0,
        },
        path,
    ))
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\n')
        .map_or(s, |e| e + 1);
    &b[s..e.max(s)]
}

fn hex(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    b.iter().try_fold(0u64, |v, &c| {
        let d = (c as char).to_digit(16)?;
        Some(v << 4 | d as u64)
    })
}

fn dec(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |v, &c| {
        let d = (c as char).to_digit(10)?;
        v.checked_mul(10)?.checked_add(d as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let l = b"55d0c2a1b000-55d0c2a1c000 r-xp 00002000 08:01 1234567                    /usr/bin/prog\n";
        let (m, p) = parse_maps_line(l).unwrap();
        assert_eq!(
            (m.start, m.end, m.offset, m.ino),
            (0x55d0c2a1b000, 0x55d0c2a1c000, 0x2000, 1234567)
        );
        assert_eq!(p, b"/usr/bin/prog");
        assert!(parse_maps_line(b"7ffd-7ffe r--p 00000000 00:00 0 /usr/bin/prog").is_none());
        assert!(parse_maps_line(b"7ffd-7ffe r-xp 00000000 00:00 0 [vdso]").is_none());
        assert!(parse_maps_line(b"7ffd-7ffe r-xp 00000000 00:00 0").is_none());
        assert!(parse_maps_line(b"7ffd-7ffe r-xp 00000000 00:00 9 /x (deleted)").is_none());
        assert!(parse_maps_line(b"zz-7ffe r-xp 00000000 00:00 9 /x").is_none());
    }

    #[test]
    fn dedup_sorts() {
        let mut a = [5usize, 1, 5, 3, 1];
        assert_eq!(dedup(&mut a), &[1, 3, 5]);
    }
}
