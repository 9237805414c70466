//! Byte encoders for pprof dumps, without allocating: a gzip stream
//! (deflate with the fixed Huffman codes, or stored blocks, and its
//! CRC-32), and protobuf's wire format (varints and length-delimited
//! fields) written into it.
//!
//! Owns: `Sink` (where the bytes go: a file descriptor, or the Rust API's
//! vector), `Gzip` and `Pb`. Invariants: `Gzip` works in its caller's
//! memory (`GZIP_WORK` bytes: one block of input, the match table, the
//! output buffer) and reports whether every write reached the sink; a
//! protobuf message's length is computed before its bytes are written
//! (`len_*`), so nothing is buffered to learn it.

use crate::os;

/// Where encoded bytes go. `put` returns false once a write failed.
pub(crate) trait Sink {
    fn put(&mut self, b: &[u8]) -> bool;
}

/// Writes to a file descriptor (retrying short and interrupted writes).
pub(crate) struct FdSink(pub(crate) i32);

impl Sink for FdSink {
    fn put(&mut self, mut b: &[u8]) -> bool {
        while !b.is_empty() {
            // SAFETY: `b` is valid for `b.len()` bytes.
            let n = unsafe { libc::write(self.0, b.as_ptr().cast(), b.len()) };
            if n < 0 && os::errno() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                return false;
            }
            b = &b[n as usize..];
        }
        true
    }
}

/// CRC-32 (IEEE, reflected, as gzip's), table built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Continues CRC-32 `crc` (0 to start) over `b`.
pub(crate) fn crc32(crc: u32, b: &[u8]) -> u32 {
    let mut c = !crc;
    for &x in b {
        c = CRC_TABLE[((c ^ x as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Bytes of input per deflate block.
const BLOCK: usize = 65535;
/// Match-finder heads: one per 12-bit hash of 3 bytes, a position + 1
/// (0: none) as 2 bytes.
const HASH_BITS: u32 = 12;
const HASH: usize = 2 << HASH_BITS;
/// Compressed bytes buffered before a write.
const OUT: usize = 4096;
/// The working memory `Gzip` needs.
pub(crate) const GZIP_WORK: usize = BLOCK + HASH + OUT;

/// A gzip member (RFC 1952) of deflate data (RFC 1951): each block of up
/// to 64 KiB is compressed with the fixed Huffman codes and matches
/// within the block (one candidate per 3-byte hash), or stored if that
/// would be smaller. Protobuf profiles (repeated keys, addresses sharing
/// their high bytes) shrink several times; any reader accepts it.
pub(crate) struct Gzip<'a, S: Sink> {
    bits: Bits<'a, S>,
    buf: &'a mut [u8],
    hash: &'a mut [u8],
    len: usize,
    crc: u32,
    total: u32,
}

/// A little-endian bit stream into a sink, through `out`.
struct Bits<'a, S: Sink> {
    sink: &'a mut S,
    out: &'a mut [u8],
    len: usize,
    acc: u64,
    n: u32,
    ok: bool,
}

impl<S: Sink> Bits<'_, S> {
    /// Appends the low `n` (at most 32) bits of `v`, first bit first.
    fn put(&mut self, v: u32, n: u32) {
        self.acc |= (v as u64 & ((1u64 << n) - 1)) << self.n;
        self.n += n;
        while self.n >= 8 {
            self.byte(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, most significant bit first.
    fn code(&mut self, code: u32, n: u32) {
        self.put(code.reverse_bits() >> (32 - n), n);
    }

    fn byte(&mut self, b: u8) {
        if self.len == self.out.len() {
            self.flush();
        }
        self.out[self.len] = b;
        self.len += 1;
    }

    /// Pads to a byte boundary with zero bits.
    fn align(&mut self) {
        if self.n > 0 {
            self.put(0, 8 - self.n);
        }
    }

    fn flush(&mut self) {
        self.ok = self.ok && self.sink.put(&self.out[..self.len]);
        self.len = 0;
    }
}

/// What the match finder produces: literals and (length, distance)
/// copies.
trait Emit {
    fn lit(&mut self, b: u8);
    fn copy(&mut self, len: usize, dist: usize);
}

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// The code index of `v` in a base table (the last base at most `v`).
fn index(base: &[u16], v: usize) -> usize {
    base.partition_point(|&b| b as usize <= v) - 1
}

/// Fixed Huffman code and length of literal/length symbol `sym`.
fn fixed(sym: u32) -> (u32, u32) {
    match sym {
        0..=143 => (0x30 + sym, 8),
        144..=255 => (0x190 + sym - 144, 9),
        256..=279 => (sym - 256, 7),
        _ => (0xc0 + sym - 280, 8),
    }
}

/// Counts the bits a block's fixed-code body takes.
struct Cost(u64);

impl Emit for Cost {
    fn lit(&mut self, b: u8) {
        self.0 += fixed(b as u32).1 as u64;
    }
    fn copy(&mut self, len: usize, dist: usize) {
        let l = index(&LEN_BASE, len);
        let d = index(&DIST_BASE, dist);
        self.0 += (fixed(257 + l as u32).1 + LEN_EXTRA[l] as u32 + 5 + DIST_EXTRA[d] as u32) as u64;
    }
}

impl<S: Sink> Emit for Bits<'_, S> {
    fn lit(&mut self, b: u8) {
        let (c, n) = fixed(b as u32);
        self.code(c, n);
    }
    fn copy(&mut self, len: usize, dist: usize) {
        let l = index(&LEN_BASE, len);
        let (c, n) = fixed(257 + l as u32);
        self.code(c, n);
        self.put((len - LEN_BASE[l] as usize) as u32, LEN_EXTRA[l] as u32);
        let d = index(&DIST_BASE, dist);
        self.code(d as u32, 5);
        self.put((dist - DIST_BASE[d] as usize) as u32, DIST_EXTRA[d] as u32);
    }
}

/// Greedy matching within `data` (deterministic: the same calls for the
/// same data, so a counting pass and a writing pass agree).
fn lz77(data: &[u8], hash: &mut [u8], out: &mut impl Emit) {
    hash.fill(0);
    let key = |i: usize| {
        let v = (data[i] as u32) | (data[i + 1] as u32) << 8 | (data[i + 2] as u32) << 16;
        (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize * 2
    };
    let mut i = 0;
    while i < data.len() {
        if i + 3 <= data.len() {
            let h = key(i);
            let cand = u16::from_le_bytes([hash[h], hash[h + 1]]) as usize;
            hash[h..h + 2].copy_from_slice(&(i as u16 + 1).to_le_bytes());
            if cand != 0 && i - (cand - 1) <= 32768 {
                let c = cand - 1;
                let max = (data.len() - i).min(258);
                let mut l = 0;
                while l < max && data[c + l] == data[i + l] {
                    l += 1;
                }
                if l >= 3 {
                    out.copy(l, i - c);
                    for j in i + 1..(i + l).min(data.len().saturating_sub(2)) {
                        let h = key(j);
                        hash[h..h + 2].copy_from_slice(&(j as u16 + 1).to_le_bytes());
                    }
                    i += l;
                    continue;
                }
            }
        }
        out.lit(data[i]);
        i += 1;
    }
}

impl<'a, S: Sink> Gzip<'a, S> {
    /// Starts the member; `work` (`GZIP_WORK` bytes) holds a block of
    /// input, the match finder's table and output on its way.
    pub(crate) fn new(sink: &'a mut S, work: &'a mut [u8]) -> Self {
        debug_assert!(work.len() >= GZIP_WORK);
        let (buf, rest) = work.split_at_mut(BLOCK);
        let (hash, out) = rest.split_at_mut(HASH);
        let mut bits = Bits {
            sink,
            out: &mut out[..OUT],
            len: 0,
            acc: 0,
            n: 0,
            ok: true,
        };
        // Magic, deflate, no flags, no time, no extra flags, Unix.
        for b in [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3] {
            bits.byte(b);
        }
        Gzip {
            bits,
            buf,
            hash,
            len: 0,
            crc: 0,
            total: 0,
        }
    }

    pub(crate) fn write(&mut self, mut b: &[u8]) {
        self.crc = crc32(self.crc, b);
        self.total = self.total.wrapping_add(b.len() as u32);
        while !b.is_empty() {
            if self.len == self.buf.len() {
                self.block(false);
            }
            let n = b.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
            self.len += n;
            b = &b[n..];
        }
    }

    /// Writes the buffered input as one block, compressed or stored,
    /// whichever is smaller.
    fn block(&mut self, last: bool) {
        let data = &self.buf[..self.len];
        let mut cost = Cost(0);
        lz77(data, self.hash, &mut cost);
        let fixed_bits = 3 + cost.0 + 7;
        let stored_bits = 3 + 7 + 32 + 8 * data.len() as u64;
        let b = &mut self.bits;
        b.put(last as u32, 1);
        if fixed_bits < stored_bits {
            b.put(1, 2);
            lz77(data, self.hash, b);
            b.code(0, 7); // end of block (symbol 256)
        } else {
            b.put(0, 2);
            b.align();
            let n = data.len() as u16;
            for x in n.to_le_bytes().into_iter().chain((!n).to_le_bytes()) {
                b.byte(x);
            }
            for &x in data {
                b.byte(x);
            }
        }
        self.len = 0;
    }

    /// Ends the member (final block and trailer); true if every byte was
    /// written.
    pub(crate) fn finish(mut self) -> bool {
        self.block(true);
        self.bits.align();
        for x in self
            .crc
            .to_le_bytes()
            .into_iter()
            .chain(self.total.to_le_bytes())
        {
            self.bits.byte(x);
        }
        self.bits.flush();
        self.bits.ok
    }
}

/// Protobuf wire types.
pub(crate) const VARINT: u32 = 0;
pub(crate) const LEN: u32 = 2;

/// Bytes of `v` as a varint.
pub(crate) fn len_varint(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes of field `field` holding varint `v` (0 if `v` is 0: proto3
/// leaves default values out).
pub(crate) fn len_uint(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        len_varint((field as u64) << 3) + len_varint(v)
    }
}

/// Bytes of length-delimited field `field` with `n` bytes of contents.
pub(crate) fn len_bytes(field: u32, n: usize) -> usize {
    len_varint((field as u64) << 3 | LEN as u64) + len_varint(n as u64) + n
}

/// A protobuf writer into a gzip stream.
pub(crate) struct Pb<'g, 'a, S: Sink>(pub(crate) &'g mut Gzip<'a, S>);

impl<S: Sink> Pb<'_, '_, S> {
    pub(crate) fn varint(&mut self, mut v: u64) {
        let mut b = [0u8; 10];
        let mut n = 0;
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                b[n] = low;
                n += 1;
                break;
            }
            b[n] = low | 0x80;
            n += 1;
        }
        self.0.write(&b[..n]);
    }

    pub(crate) fn key(&mut self, field: u32, wire: u32) {
        self.varint((field as u64) << 3 | wire as u64);
    }

    /// Varint field `field` (left out when 0).
    pub(crate) fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v);
        }
    }

    /// The key and length of a length-delimited field whose `n` bytes of
    /// contents the caller writes next.
    pub(crate) fn open(&mut self, field: u32, n: usize) {
        self.key(field, LEN);
        self.varint(n as u64);
    }

    pub(crate) fn bytes(&mut self, field: u32, b: &[u8]) {
        self.open(field, b.len());
        self.0.write(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    struct V(Vec<u8>);
    impl Sink for V {
        fn put(&mut self, b: &[u8]) -> bool {
            self.0.extend_from_slice(b);
            true
        }
    }

    #[test]
    fn crc_of_the_check_string() {
        assert_eq!(crc32(0, b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(crc32(0, b"1234"), b"56789"), 0xcbf4_3926);
    }

    /// A reader of what `Gzip` writes (stored and fixed-code blocks), to
    /// check it independently of the writer's tables.
    fn gunzip(z: &[u8]) -> Vec<u8> {
        assert_eq!(&z[..4], &[0x1f, 0x8b, 8, 0]);
        let mut pos = 10 * 8; // bit position
        let bit = |pos: &mut usize| {
            let b = (z[*pos / 8] >> (*pos % 8)) & 1;
            *pos += 1;
            b as u32
        };
        let bits = |pos: &mut usize, n: u32| (0..n).fold(0, |v, i| v | bit(pos) << i);
        // A fixed-code symbol: read MSB-first, 7 to 9 bits.
        let sym = |pos: &mut usize| {
            let mut c = 0;
            for n in 1..=9 {
                c = c << 1 | bit(pos);
                match (n, c) {
                    (7, 0..=0x17) => return 256 + c,
                    (8, 0x30..=0xbf) => return c - 0x30,
                    (8, 0xc0..=0xc7) => return 280 + c - 0xc0,
                    (9, 0x190..=0x1ff) => return 144 + c - 0x190,
                    _ => {}
                }
            }
            panic!("bad code");
        };
        let mut out = Vec::new();
        loop {
            let last = bit(&mut pos);
            match bits(&mut pos, 2) {
                0 => {
                    pos = pos.next_multiple_of(8);
                    let i = pos / 8;
                    let n = u16::from_le_bytes([z[i], z[i + 1]]) as usize;
                    assert_eq!(!(n as u16), u16::from_le_bytes([z[i + 2], z[i + 3]]));
                    out.extend_from_slice(&z[i + 4..i + 4 + n]);
                    pos = (i + 4 + n) * 8;
                }
                1 => loop {
                    let s = sym(&mut pos);
                    if s < 256 {
                        out.push(s as u8);
                        continue;
                    }
                    if s == 256 {
                        break;
                    }
                    let l = (s - 257) as usize;
                    let len = LEN_BASE[l] as usize + bits(&mut pos, LEN_EXTRA[l] as u32) as usize;
                    let d = (0..5).fold(0, |v, _| v << 1 | bit(&mut pos)) as usize;
                    let dist =
                        DIST_BASE[d] as usize + bits(&mut pos, DIST_EXTRA[d] as u32) as usize;
                    for _ in 0..len {
                        out.push(out[out.len() - dist]);
                    }
                },
                t => panic!("block type {t}"),
            }
            if last == 1 {
                break;
            }
        }
        let i = pos.div_ceil(8);
        assert_eq!(z.len(), i + 8, "trailer ends the member");
        assert_eq!(crc32(0, &out).to_le_bytes(), z[i..i + 4]);
        assert_eq!((out.len() as u32).to_le_bytes(), z[i + 4..i + 8]);
        out
    }

    fn gzip(data: &[u8], pieces: usize) -> Vec<u8> {
        let mut v = V(Vec::new());
        let mut work = vec![0u8; GZIP_WORK];
        let mut g = Gzip::new(&mut v, &mut work);
        for c in data.chunks(data.len().div_ceil(pieces).max(1)) {
            g.write(c);
        }
        assert!(g.finish());
        v.0
    }

    #[test]
    fn gzip_round_trips() {
        let mut st = 7u64;
        let random: Vec<u8> = (0..100_000)
            .map(|_| super::super::math::prng_lg_range(&mut st, 8) as u8)
            .collect();
        // Profile-like: repeated keys and addresses sharing high bytes.
        let mut profile = Vec::new();
        for i in 0..40_000u64 {
            profile.extend_from_slice(&[0x22, 0x0b, 0x08]);
            profile.extend_from_slice(&(0x5555_0000_1000 + (i % 300) * 24).to_le_bytes());
        }
        for (data, pieces) in [
            (&b""[..], 1),
            (&b"a"[..], 1),
            (&b"abcabcabcabcabcabcabc"[..], 3),
            (&random[..], 7),
            (&profile[..], 5),
        ] {
            let z = gzip(data, pieces);
            assert_eq!(gunzip(&z), data, "{} bytes", data.len());
        }
        // Incompressible data is stored, not grown by more than the
        // headers; repetitive data shrinks.
        assert!(gzip(&random, 1).len() < random.len() + 64);
        let z = gzip(&profile, 1);
        assert!(
            z.len() * 4 < profile.len(),
            "{} -> {}",
            profile.len(),
            z.len()
        );
    }

    #[test]
    fn varints_and_their_lengths() {
        let mut v = V(Vec::new());
        let mut work = vec![0u8; GZIP_WORK];
        let mut g = Gzip::new(&mut v, &mut work);
        let vals = [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX];
        let mut pb = Pb(&mut g);
        for x in vals {
            pb.varint(x);
        }
        assert!(g.finish());
        let raw = gunzip(&v.0);
        let body = &raw[..];
        let want: usize = vals.iter().map(|&x| len_varint(x)).sum();
        assert_eq!(body.len(), want);
        assert_eq!(&body[..6], &[0, 1, 127, 0x80, 1, 0xac]);
        assert_eq!(len_varint(u64::MAX), 10);
        assert_eq!(len_uint(1, 0), 0);
        assert_eq!(len_bytes(6, 3), 5);
    }
}
