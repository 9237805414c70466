//! Byte encoders for pprof dumps, without allocating: a gzip stream of
//! stored (uncompressed) deflate blocks with its CRC-32, and protobuf's
//! wire format (varints and length-delimited fields) written into it.
//!
//! Owns: `Sink` (where the bytes go: a file descriptor, or the Rust API's
//! vector), `Gzip` and `Pb`. Invariants: `Gzip` buffers at most one
//! block (its caller's buffer, at most 65535 bytes) and reports through
//! `ok` whether every write reached the sink; a protobuf message's length
//! is computed before its bytes are written (`len_*`), so nothing is
//! buffered to learn it.

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

/// A gzip member (RFC 1952) whose deflate data (RFC 1951) is stored
/// blocks: valid gzip that every reader accepts, at the size of its
/// contents plus 5 bytes per block.
pub(crate) struct Gzip<'a, S: Sink> {
    sink: &'a mut S,
    buf: &'a mut [u8],
    len: usize,
    crc: u32,
    total: u32,
    pub(crate) ok: bool,
}

impl<'a, S: Sink> Gzip<'a, S> {
    /// Starts the member; `buf` (at most 65535 bytes used) holds a block.
    pub(crate) fn new(sink: &'a mut S, buf: &'a mut [u8]) -> Self {
        // Magic, deflate, no flags, no time, no extra flags, Unix.
        let ok = sink.put(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        let cap = buf.len().min(65535);
        Gzip {
            sink,
            buf: &mut buf[..cap],
            len: 0,
            crc: 0,
            total: 0,
            ok,
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

    fn block(&mut self, last: bool) {
        let n = self.len as u16;
        let mut head = [0u8; 5];
        head[0] = last as u8; // BFINAL, BTYPE 00 (stored), then byte-aligned
        head[1..3].copy_from_slice(&n.to_le_bytes());
        head[3..5].copy_from_slice(&(!n).to_le_bytes());
        self.ok = self.ok && self.sink.put(&head) && self.sink.put(&self.buf[..self.len]);
        self.len = 0;
    }

    /// Ends the member (final block and trailer); true if every byte was
    /// written.
    pub(crate) fn finish(mut self) -> bool {
        self.block(true);
        let mut tail = [0u8; 8];
        tail[..4].copy_from_slice(&self.crc.to_le_bytes());
        tail[4..].copy_from_slice(&self.total.to_le_bytes());
        self.ok && self.sink.put(&tail)
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

    #[test]
    fn stored_blocks_split_at_the_buffer() {
        let mut v = V(Vec::new());
        let mut buf = [0u8; 7];
        let mut g = Gzip::new(&mut v, &mut buf);
        g.write(b"hello, stored deflate");
        assert!(g.finish());
        let o = &v.0;
        assert_eq!(&o[..3], &[0x1f, 0x8b, 8]);
        // 21 bytes in blocks of 7, 7 and a final 7.
        assert_eq!(o.len(), 10 + 3 * 5 + 21 + 8);
        assert_eq!(&o[10..15], &[0, 7, 0, !7u8, 0xff]);
        assert_eq!(o[10 + 12], 0, "not final");
        assert_eq!(o[10 + 2 * 12], 1, "final block");
        let n = o.len();
        assert_eq!(&o[n - 4..], &21u32.to_le_bytes());
    }

    #[test]
    fn varints_and_their_lengths() {
        let mut v = V(Vec::new());
        let mut buf = [0u8; 64];
        let mut g = Gzip::new(&mut v, &mut buf);
        let vals = [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX];
        let mut pb = Pb(&mut g);
        for x in vals {
            pb.varint(x);
        }
        assert!(g.finish());
        let body = &v.0[15..v.0.len() - 8];
        let want: usize = vals.iter().map(|&x| len_varint(x)).sum();
        assert_eq!(body.len(), want);
        assert_eq!(&body[..6], &[0, 1, 127, 0x80, 1, 0xac]);
        assert_eq!(len_varint(u64::MAX), 10);
        assert_eq!(len_uint(1, 0), 0);
        assert_eq!(len_bytes(6, 3), 5);
    }
}
