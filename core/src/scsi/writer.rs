//! A Data-In builder that never allocates and never writes out of bounds.
//!
//! Commands build their parameter data as if the buffer were unlimited; the
//! writer keeps the logical length and stores only the bytes that fall
//! inside both the caller's buffer and the command's allocation length
//! (SPC-4 §4.2.5.6: the device server stops at the allocation length and
//! that is not an error). Length fields are patched after the fact.

use crate::bytes::copy_range;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct DataIn<'a> {
    buf: &'a mut [u8],
    /// min(buf.len(), allocation length): bytes at or beyond it are dropped.
    cap: usize,
    /// Logical length produced so far.
    len: usize,
    /// The allocation length.
    alloc: usize,
}

impl<'a> DataIn<'a> {
    /// A writer for a command with allocation length `alloc`. Zeroes the
    /// part of `buf` the command may return (the first min(`buf.len()`,
    /// `alloc`) bytes): the connection hands in a reused task buffer without
    /// clearing it, and whatever a command leaves unwritten must read as
    /// zero, never as an earlier task's data.
    pub(crate) fn new(buf: &'a mut [u8], alloc: usize) -> Self {
        let cap = buf.len().min(alloc);
        if let Some(b) = buf.get_mut(..cap) {
            b.fill(0);
        }
        DataIn { buf, cap, len: 0, alloc }
    }

    /// Logical position (bytes produced so far).
    pub(crate) fn pos(&self) -> usize {
        self.len
    }

    /// Store `b` at logical offset `at`, clipped to the capacity.
    pub(crate) fn patch(&mut self, at: usize, b: &[u8]) {
        if at >= self.cap {
            return;
        }
        let n = (self.cap - at).min(b.len());
        copy_range(self.buf, at, b, 0, n);
    }

    /// Append bytes.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.patch(self.len, b);
        self.len = self.len.saturating_add(b.len());
    }

    /// Append one byte.
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    /// Append a big-endian u16.
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    /// Append a big-endian u32.
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    /// Append a big-endian u64.
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }

    /// Append `n` zero bytes (reserved fields).
    pub(crate) fn zeros(&mut self, n: usize) {
        let start = self.len.min(self.cap);
        let end = self.len.saturating_add(n).min(self.cap);
        if let Some(z) = self.buf.get_mut(start..end) {
            z.fill(0);
        }
        self.len = self.len.saturating_add(n);
    }

    /// Append `s` as a fixed-width ASCII field of `width` bytes: characters
    /// outside 20h..7Eh become spaces (SPC-4 §4.3.1), the rest is padded
    /// with spaces, longer text is cut.
    pub(crate) fn ascii(&mut self, s: &str, width: usize) {
        let src = s.as_bytes();
        for i in 0..width {
            let c = match src.get(i) {
                Some(&c) if (0x20..=0x7e).contains(&c) => c,
                _ => b' ',
            };
            self.u8(c);
        }
    }

    /// Patch a big-endian u16 at `at`.
    pub(crate) fn patch_u16(&mut self, at: usize, v: u16) {
        self.patch(at, &v.to_be_bytes());
    }

    /// Patch a big-endian u32 at `at`.
    pub(crate) fn patch_u32(&mut self, at: usize, v: u32) {
        self.patch(at, &v.to_be_bytes());
    }

    /// Bytes the command transfers: min(allocation length, bytes produced).
    pub(crate) fn data_len(&self) -> u32 {
        u32::try_from(self.len.min(self.alloc)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_to_alloc_and_buffer() {
        let mut buf = [0xaau8; 6];
        let mut w = DataIn::new(&mut buf, 4);
        w.u32(0x0102_0304);
        w.u16(0x0506);
        w.zeros(100);
        w.patch_u16(3, 0xffff);
        assert_eq!(w.pos(), 106);
        assert_eq!(w.data_len(), 4);
        assert_eq!(buf, [1, 2, 3, 0xff, 0xaa, 0xaa]);

        // The part the command may return starts zeroed, whatever the
        // buffer held before; bytes beyond it are left alone.
        let mut stale = [0xaau8; 8];
        let mut w = DataIn::new(&mut stale, 5);
        w.u8(1);
        assert_eq!(w.data_len(), 1);
        assert_eq!(stale, [1, 0, 0, 0, 0, 0xaa, 0xaa, 0xaa]);

        let mut small = [0u8; 2];
        let mut w = DataIn::new(&mut small, 100);
        w.ascii("ab\u{e9}", 5);
        assert_eq!(w.data_len(), 5);
        assert_eq!(small, *b"ab");
    }
}
