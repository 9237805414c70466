//! Names for a profile's frames: each address is turned into an address
//! in its mapping's file (the profile's mapping list) and looked up in
//! that file's DWARF (with inlined calls) or, failing that, its symbol
//! table, with `addr2line` and `object`.
//!
//! Owns `Symbolizer`: one loaded file per path, kept for the run. A frame
//! whose file cannot be read (gone, rebuilt, no symbols) is named by its
//! file and offset, so a report still tells the frames apart.

use super::profile::{demangle, Mapping, Profile};
use object::{Object, ObjectSegment};
use std::collections::HashMap;

struct File {
    loader: addr2line::Loader,
    /// (file offset, size, address) of each loadable segment.
    segments: Vec<(u64, u64, u64)>,
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
                let loader = addr2line::Loader::new(path).ok()?;
                Some(File { loader, segments })
            })
            .as_ref()
    }

    /// The names of the code at call site `addr` (innermost inlined
    /// first), given the process's mappings.
    pub fn names(&mut self, maps: &[Mapping], addr: u64) -> Vec<String> {
        let Some(m) = maps.iter().find(|m| (m.start..m.end).contains(&addr)) else {
            return vec![format!("{addr:#x}")];
        };
        let off = addr - m.start + m.offset;
        let short = m.path.rsplit('/').next().unwrap_or(&m.path).to_string();
        let fallback = || vec![format!("{short}+{off:#x}")];
        let Some(f) = self.file(&m.path) else {
            return fallback();
        };
        let Some(vaddr) = f
            .segments
            .iter()
            .find(|&&(o, size, _)| (o..o + size).contains(&off))
            .map(|&(o, _, a)| a + (off - o))
        else {
            return fallback();
        };
        let mut names = Vec::new();
        if let Ok(mut frames) = f.loader.find_frames(vaddr) {
            while let Ok(Some(fr)) = frames.next() {
                if let Some(func) = fr.function {
                    if let Ok(n) = func.demangle() {
                        names.push(n.into_owned());
                    }
                }
            }
        }
        if names.is_empty() {
            if let Some(s) = f.loader.find_symbol(vaddr) {
                names.push(demangle(s));
            }
        }
        if names.is_empty() {
            return fallback();
        }
        names
    }

    /// Names every frame that has none.
    pub fn fill(&mut self, p: &mut Profile) {
        let mut cache: HashMap<u64, Vec<String>> = HashMap::new();
        for s in &mut p.stacks {
            for f in &mut s.frames {
                if f.names.is_empty() {
                    f.names = cache
                        .entry(f.addr)
                        .or_insert_with(|| self.names(&p.mappings, f.addr))
                        .clone();
                }
            }
        }
    }
}
