//! Names for a profile's frames: each address is turned into an address
//! in its mapping's file (the profile's mapping list) and looked up in
//! that file's DWARF (with inlined calls) or, failing that, its symbol
//! table, with `addr2line` and `object`.
//!
//! Owns `Symbolizer`: one loaded file per path, kept for the run. A frame
//! whose file cannot be read (gone, rebuilt, no symbols) is named by its
//! file and offset, so a report still tells the frames apart.

use super::profile::{demangle, Func, Mapping, Profile};
use object::{Object, ObjectSegment, ObjectSymbol};
use std::collections::HashMap;

struct File {
    loader: addr2line::Loader,
    /// (file offset, size, address) of each loadable segment.
    segments: Vec<(u64, u64, u64)>,
    /// Function symbols with a size, (address, size, name), by address.
    syms: Vec<(u64, u64, String)>,
}

#[derive(Default)]
pub struct Symbolizer {
    files: HashMap<String, Option<File>>,
}

impl Symbolizer {
    fn file(&mut self, path: &str) -> Option<&File> {
        self.files
            .entry(path.to_string())
            .or_insert_with(|| {
                let data = std::fs::read(path).ok()?;
                let obj = object::File::parse(&data[..]).ok()?;
                let segments = obj
                    .segments()
                    .map(|s| {
                        let (off, size) = s.file_range();
                        (off, size, s.address())
                    })
                    .collect();
                let mut syms: Vec<(u64, u64, String)> = obj
                    .symbols()
                    .chain(obj.dynamic_symbols())
                    .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 0)
                    .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
                    .collect();
                syms.sort();
                syms.dedup_by_key(|s| s.0);
                let loader = addr2line::Loader::new(path).ok()?;
                Some(File {
                    loader,
                    segments,
                    syms,
                })
            })
            .as_ref()
    }

    /// The names of the code at call site `addr` (innermost inlined
    /// first) from its file, given the process's mappings; None if the
    /// file cannot tell.
    fn lookup(&mut self, maps: &[Mapping], addr: u64) -> Option<Vec<Func>> {
        let m = maps.iter().find(|m| (m.start..m.end).contains(&addr))?;
        let allocator = is_allocator_library(&m.path);
        let off = addr - m.start + m.offset;
        let f = self.file(&m.path)?;
        let vaddr = f
            .segments
            .iter()
            .find(|&&(o, size, _)| (o..o + size).contains(&off))
            .map(|&(o, _, a)| a + (off - o))?;
        let mut names = Vec::new();
        if let Ok(mut frames) = f.loader.find_frames(vaddr) {
            while let Ok(Some(fr)) = frames.next() {
                let std_lib = allocator
                    || fr
                        .location
                        .and_then(|l| l.file)
                        .is_some_and(|f| f.starts_with("/rustc/") || f.starts_with("/rust/deps/"));
                if let Some(func) = fr.function {
                    if let Ok(n) = func.demangle() {
                        names.push(Func {
                            name: n.into_owned(),
                            std_lib,
                        });
                    }
                }
            }
        }
        if names.is_empty() {
            // The symbol whose extent holds the address (never merely the
            // nearest one below: a local function of a stripped library
            // is not its exported neighbour).
            let i = f.syms.partition_point(|s| s.0 <= vaddr).checked_sub(1)?;
            let (a, size, name) = &f.syms[i];
            if vaddr < a + size {
                names.push(Func {
                    name: demangle(name),
                    std_lib: allocator,
                });
            }
        }
        (!names.is_empty()).then_some(names)
    }

    /// A frame the files cannot name: its file and offset.
    fn unnamed(maps: &[Mapping], addr: u64) -> String {
        match maps.iter().find(|m| (m.start..m.end).contains(&addr)) {
            Some(m) => {
                let short = m.path.rsplit('/').next().unwrap_or(&m.path);
                format!("{short}+{:#x}", addr - m.start + m.offset)
            }
            None => format!("{addr:#x}"),
        }
    }

    /// Names the frames from the mapped files (DWARF gives inlined calls
    /// too); a frame they cannot name keeps the profile's names, or gets
    /// its file and offset.
    pub fn fill(&mut self, p: &mut Profile) {
        let mut cache: HashMap<u64, Option<Vec<Func>>> = HashMap::new();
        for s in &mut p.stacks {
            for f in &mut s.frames {
                let found = cache
                    .entry(f.addr)
                    .or_insert_with(|| self.lookup(&p.mappings, f.addr));
                match found {
                    Some(n) => f.funcs = n.clone(),
                    None if f.funcs.is_empty() => {
                        let m = p
                            .mappings
                            .iter()
                            .find(|m| (m.start..m.end).contains(&f.addr));
                        f.funcs = vec![Func {
                            name: Self::unnamed(&p.mappings, f.addr),
                            std_lib: m.is_some_and(|m| is_allocator_library(&m.path)),
                        }]
                    }
                    None => {}
                }
            }
        }
    }
}

/// Whether `path` is an allocator's shared library (its frames are the
/// allocator's own: jemalloc keeps them in its stacks).
fn is_allocator_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    ["libjemalloc", "librjem", "libtcmalloc", "libmimalloc"]
        .iter()
        .any(|p| name.starts_with(p))
}
