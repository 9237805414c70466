//! What pprof dumps need from the loaded ELF objects, without allocating:
//! an object's load bias and GNU build id (read from its `PT_NOTE`
//! segments in memory, which the loader mapped), and its function symbols
//! (`.symtab`, else `.dynsym`, read from the file into anonymous memory).
//!
//! Owns: `Object` (found through `dl_iterate_phdr` by an address inside
//! it) and `SymFile` (a file's symbol and string tables, unmapped when
//! dropped). Invariants: the file is read with `pread` into private
//! memory, never mapped, so a file changed or truncated meanwhile cannot
//! fault; every offset read from it is bounds-checked; the file is used
//! only if its inode is the mapping's (`/proc/self/maps`), so a binary
//! rebuilt since it was loaded is not read for symbols.

use crate::os;
use core::ffi::{c_void, CStr};

/// A loaded object: its load bias (runtime address = bias + ELF address)
/// and build id.
pub(crate) struct Object {
    pub(crate) bias: usize,
    pub(crate) build_id: [u8; 64],
    pub(crate) build_id_len: usize,
}

const NT_GNU_BUILD_ID: u32 = 3;

struct Find {
    addr: usize,
    found: Option<Object>,
}

/// The loaded object with a segment holding `addr`.
pub(crate) fn object_at(addr: usize) -> Option<Object> {
    let mut f = Find { addr, found: None };
    // SAFETY: the callback reads only what the loader passes and the
    // note segments of loaded objects, which are mapped (inside their
    // first `PT_LOAD`); `f` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(find_cb), (&mut f as *mut Find).cast()) };
    f.found
}

unsafe extern "C" fn find_cb(info: *mut libc::dl_phdr_info, _size: usize, arg: *mut c_void) -> i32 {
    // SAFETY: the loader passes a valid header; `arg` is our `Find`.
    let (info, f) = unsafe { (&*info, &mut *arg.cast::<Find>()) };
    // SAFETY: dlpi_phdr points to dlpi_phnum headers.
    let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let bias = info.dlpi_addr as usize;
    let inside = phdrs.iter().any(|ph| {
        let lo = bias.wrapping_add(ph.p_vaddr as usize);
        ph.p_type == libc::PT_LOAD && (lo..lo.wrapping_add(ph.p_memsz as usize)).contains(&f.addr)
    });
    if !inside {
        return 0;
    }
    let mut o = Object {
        bias,
        build_id: [0; 64],
        build_id_len: 0,
    };
    for ph in phdrs.iter().filter(|ph| ph.p_type == libc::PT_NOTE) {
        let at = bias.wrapping_add(ph.p_vaddr as usize) as *const u8;
        // SAFETY: a note segment of a loaded object lies in its mapped
        // read-only data, `p_memsz` bytes long.
        let notes = unsafe { core::slice::from_raw_parts(at, ph.p_memsz as usize) };
        if let Some(id) = build_id_note(notes) {
            let n = id.len().min(o.build_id.len());
            o.build_id[..n].copy_from_slice(&id[..n]);
            o.build_id_len = n;
            break;
        }
    }
    f.found = Some(o);
    1
}

/// The descriptor of the `GNU` build-id note in `notes`.
fn build_id_note(mut notes: &[u8]) -> Option<&[u8]> {
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0)? as usize;
        let descsz = u32_at(notes, 4)? as usize;
        let kind = u32_at(notes, 8)?;
        let name_end = 12usize.checked_add(namesz.checked_next_multiple_of(4)?)?;
        let desc_end = name_end.checked_add(descsz)?;
        if desc_end > notes.len() {
            return None;
        }
        if kind == NT_GNU_BUILD_ID && notes.get(12..12 + namesz)? == b"GNU\0" {
            return notes.get(name_end..desc_end);
        }
        notes = notes.get(desc_end.checked_next_multiple_of(4)?.min(notes.len())..)?;
    }
    None
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const STT_FUNC: u8 = 2;
/// Largest symbol plus string table read (larger files go unsymbolized).
const MAX_TABLES: usize = 1 << 30;

/// A file's function symbols: its symbol table and the string table
/// holding their names, in anonymous memory.
pub(crate) struct SymFile {
    mem: *mut u8,
    size: usize,
    syms: usize,
    nsyms: usize,
}

impl SymFile {
    /// Reads the symbols of `path` if it is the file of inode `ino` and
    /// an ELF64 little-endian object with a symbol table.
    pub(crate) fn open(path: &CStr, ino: u64) -> Option<SymFile> {
        // SAFETY: a NUL-terminated path; closed by `Fd`'s drop.
        let fd = Fd(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) });
        if fd.0 < 0 {
            return None;
        }
        // SAFETY: an all-zero stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: fd is open; st is writable.
        if unsafe { libc::fstat(fd.0, &mut st) } != 0 || st.st_ino != ino {
            return None;
        }
        let mut eh = [0u8; 64];
        if !fd.read_at(&mut eh, 0) || &eh[..6] != b"\x7fELF\x02\x01" {
            return None;
        }
        let shoff = u64_at(&eh, 0x28)? as usize;
        let shentsize = u16_at(&eh, 0x3a)? as usize;
        let shnum = u16_at(&eh, 0x3c)? as usize;
        if shentsize < 64 || shnum == 0 {
            return None;
        }
        // Find .symtab (else .dynsym) and its string table.
        let mut best: Option<(u32, [u8; 64])> = None;
        for i in 0..shnum {
            let mut sh = [0u8; 64];
            if !fd.read_at(&mut sh, shoff.checked_add(i.checked_mul(shentsize)?)?) {
                return None;
            }
            let kind = u32_at(&sh, 4)?;
            if kind == SHT_SYMTAB || (kind == SHT_DYNSYM && best.is_none()) {
                best = Some((kind, sh));
            }
        }
        let (_, sh) = best?;
        let (sym_off, sym_size) = (u64_at(&sh, 24)? as usize, u64_at(&sh, 32)? as usize);
        let link = u32_at(&sh, 40)? as usize;
        if link >= shnum {
            return None;
        }
        let mut strh = [0u8; 64];
        if !fd.read_at(&mut strh, shoff.checked_add(link.checked_mul(shentsize)?)?) {
            return None;
        }
        let (str_off, str_size) = (u64_at(&strh, 24)? as usize, u64_at(&strh, 32)? as usize);
        let size = sym_size.checked_add(str_size)?;
        if size == 0 || size > MAX_TABLES {
            return None;
        }
        let mem = os::map(size);
        if mem.is_null() {
            return None;
        }
        let f = SymFile {
            mem,
            size,
            syms: str_size,
            nsyms: sym_size / 24,
        };
        // SAFETY: `mem` is `size` fresh writable bytes, ours until drop.
        let all = unsafe { core::slice::from_raw_parts_mut(mem, size) };
        let (strs, syms) = all.split_at_mut(str_size);
        if !fd.read_at(strs, str_off) || !fd.read_at(syms, sym_off) {
            return None;
        }
        Some(f)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `mem` holds `size` bytes written by `open`, unmapped
        // only by drop.
        unsafe { core::slice::from_raw_parts(self.mem, self.size) }
    }

    /// Each function symbol with a size: (address in the file, size,
    /// offset of its name in the string table).
    pub(crate) fn for_each_function(&self, mut f: impl FnMut(u64, u64, u32)) {
        let syms = &self.bytes()[self.syms..];
        for i in 0..self.nsyms {
            let s = &syms[i * 24..i * 24 + 24];
            let (name, info, shndx) = (u32_at(s, 0), s[4], u16_at(s, 6));
            let (value, size) = (u64_at(s, 8), u64_at(s, 16));
            if let (Some(name), Some(shndx), Some(value), Some(size)) = (name, shndx, value, size) {
                if info & 0xf == STT_FUNC && shndx != 0 && size != 0 && name != 0 {
                    f(value, size, name);
                }
            }
        }
    }

    /// The name at `off` in the string table (empty if out of bounds).
    pub(crate) fn name(&self, off: u32) -> &[u8] {
        let strs = &self.bytes()[..self.syms];
        let rest = strs.get(off as usize..).unwrap_or(&[]);
        let end = rest.iter().position(|&c| c == 0).unwrap_or(0);
        &rest[..end]
    }
}

impl Drop for SymFile {
    fn drop(&mut self) {
        os::unmap(self.mem, self.size);
    }
}

struct Fd(i32);

impl Fd {
    /// Fills `buf` from offset `at`; false on a short read or an error.
    fn read_at(&self, buf: &mut [u8], at: usize) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let rest = &mut buf[done..];
            // SAFETY: `rest` is writable for its length.
            let n = unsafe {
                libc::pread(
                    self.0,
                    rest.as_mut_ptr().cast(),
                    rest.len(),
                    (at + done) as libc::off_t,
                )
            };
            if n < 0 && os::errno() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                return false;
            }
            done += n as usize;
        }
        true
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        if self.0 >= 0 {
            // SAFETY: the descriptor is ours.
            unsafe { libc::close(self.0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_has_a_build_id_and_symbols() {
        let here = this_test_binary_has_a_build_id_and_symbols as *const () as usize;
        let o = object_at(here).expect("the test binary is loaded");
        // Rust's linker arguments ask for a build id on Linux.
        assert!(o.build_id_len >= 8, "{}", o.build_id_len);
        let exe = std::env::current_exe().unwrap();
        let meta = std::fs::metadata(&exe).unwrap();
        use std::os::unix::fs::MetadataExt;
        let path = std::ffi::CString::new(exe.to_str().unwrap()).unwrap();
        assert!(
            SymFile::open(&path, meta.ino() + 1).is_none(),
            "wrong inode"
        );
        let f = SymFile::open(&path, meta.ino()).expect("symbols");
        let mut found = false;
        f.for_each_function(|v, size, name| {
            let lo = o.bias + v as usize;
            if (lo..lo + size as usize).contains(&here) {
                let n = std::str::from_utf8(f.name(name)).unwrap();
                found |= n.contains("this_test_binary_has_a_build_id_and_symbols");
            }
        });
        assert!(found);
    }

    #[test]
    fn notes_are_bounds_checked() {
        let mut n = std::vec::Vec::new();
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&2u32.to_le_bytes());
        n.extend_from_slice(&3u32.to_le_bytes());
        n.extend_from_slice(b"GNU\0\xab\xcd\0\0");
        assert_eq!(build_id_note(&n), Some(&[0xab, 0xcd][..]));
        n[4] = 200; // descriptor past the end
        assert_eq!(build_id_note(&n), None);
        assert_eq!(build_id_note(&[1, 2, 3]), None);
    }
}
