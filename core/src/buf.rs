//! [`PageBuf`]: the page-aligned, growable byte buffer behind every task.
//!
//! A task's data buffer is handed to the backend as is (Data-Out lands in
//! it, the backend writes from it; the backend reads into it, Data-In is
//! sent from it). An O_DIRECT file LUN can submit such a buffer straight to
//! the kernel only if its address is aligned to the device's DMA alignment
//! (`stx_dio_mem_align`, statx(2): 512 or 4096 in practice); a `Vec<u8>` is
//! 16-byte aligned, so every I/O used to go through the backend's bounce
//! buffers. A `PageBuf` starts on a [`PAGE`] boundary, so it never needs to.
//!
//! Reuse without per-I/O cost: a slot's buffer grows to the working size
//! once and is then reused by every task of that slot. Growing zero-fills
//! the new allocation (so every byte of the capacity is always
//! initialised and a slice over it is sound), but [`PageBuf::resize_for_overwrite`]
//! does not zero anything: the bytes it exposes hold whatever an earlier
//! task of the slot left there. Its callers must overwrite every byte
//! before any of it leaves the target (see `conn::ffp`: a READ buffer is
//! filled completely by the backend or its task ends without Data-In).
//! [`PageBuf::resize_zeroed`] is `Vec::resize(len, 0)`.

use std::alloc::{self, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Alignment of every [`PageBuf`] allocation: the x86-64 and arm64 page
/// size, and the largest DMA alignment O_DIRECT asks for on Linux.
pub const PAGE: usize = 4096;

/// A page-aligned `Vec<u8>`-like buffer; see the module documentation.
pub struct PageBuf {
    /// Start of the allocation ([`PAGE`]-aligned), or dangling when `cap == 0`.
    ptr: NonNull<u8>,
    /// Bytes in use, `<= cap`.
    len: usize,
    /// Bytes allocated (a multiple of [`PAGE`]), all initialised.
    cap: usize,
}

// SAFETY: a PageBuf owns its allocation exclusively (like a Vec<u8>); moving
// it to another thread moves the only owner, and there is no interior
// mutability.
unsafe impl Send for PageBuf {}
// SAFETY: shared references only allow reading the bytes (`&[u8]`).
unsafe impl Sync for PageBuf {}

impl PageBuf {
    /// An empty buffer; allocates nothing.
    pub const fn new() -> Self {
        PageBuf { ptr: NonNull::dangling(), len: 0, cap: 0 }
    }

    /// Bytes in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No bytes in use?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes allocated (0, or a multiple of [`PAGE`]).
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Drop the contents (keeps the allocation).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Set the length to `len` like `Vec::resize(len, 0)`: bytes added are
    /// zero, bytes kept keep their value.
    pub fn resize_zeroed(&mut self, len: usize) {
        let old = self.len;
        self.resize_for_overwrite(len);
        if let Some(added) = self.get_mut(old..) {
            added.fill(0);
        }
    }

    /// Set the length to `len` without writing anything: bytes below the old
    /// length keep their value, bytes added hold whatever this buffer held
    /// there before (zero if never written since it grew). The caller must
    /// overwrite every added byte before it is sent anywhere.
    pub fn resize_for_overwrite(&mut self, len: usize) {
        if len > self.cap {
            self.grow(len);
        }
        self.len = len;
    }

    /// Reallocate to hold at least `want` bytes (at least double the old
    /// capacity, rounded up to whole pages), keeping the bytes in use.
    fn grow(&mut self, want: usize) {
        let cap = want.max(self.cap.saturating_mul(2)).div_ceil(PAGE).saturating_mul(PAGE);
        let Ok(layout) = Layout::from_size_align(cap, PAGE) else {
            // More than isize::MAX bytes: no allocator could provide it
            // (task buffers are bounded by MaxTransferLength long before).
            alloc::handle_alloc_error(Layout::new::<[u8; PAGE]>());
        };
        // SAFETY: `layout` has a non-zero size (`want > self.cap >= 0`, so
        // `cap >= PAGE`).
        let p = unsafe { alloc::alloc_zeroed(layout) };
        let Some(p) = NonNull::new(p) else { alloc::handle_alloc_error(layout) };
        if self.cap > 0 {
            // SAFETY: the old allocation holds `self.len <= self.cap` initialised
            // bytes, the new one `cap > self.cap` bytes, and they are distinct
            // allocations; the old one was allocated with `old_layout` below.
            unsafe {
                std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), p.as_ptr(), self.len);
                alloc::dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.cap, PAGE));
            }
        }
        self.ptr = p;
        self.cap = cap;
    }
}

impl Default for PageBuf {
    fn default() -> Self {
        PageBuf::new()
    }
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `cap >= len` initialised bytes (or is
        // dangling with `len == 0`, which a slice allows), owned by self and
        // only readable through `&self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        if self.cap > 0 {
            // SAFETY: allocated in `grow` with exactly this size and alignment
            // (which `grow` checked form a valid layout).
            unsafe { alloc::dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.cap, PAGE)) }
        }
    }
}

impl std::fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBuf").field("len", &self.len).field("cap", &self.cap).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(b: &PageBuf) -> bool {
        b.as_ptr() as usize % PAGE == 0
    }

    #[test]
    fn zero_length_allocates_nothing() {
        let mut b = PageBuf::new();
        assert_eq!((b.len(), b.capacity()), (0, 0));
        assert!(b.is_empty());
        assert_eq!(&b[..], &[] as &[u8]);
        assert_eq!(&mut b[..], &mut [] as &mut [u8]);
        b.resize_for_overwrite(0);
        b.resize_zeroed(0);
        assert_eq!(b.capacity(), 0, "no allocation for an empty buffer");
        b.clear();
        assert!(b.is_empty());
        assert_eq!(format!("{b:?}"), "PageBuf { len: 0, cap: 0 }");
    }

    #[test]
    fn every_size_is_page_aligned() {
        for len in [1, 511, 512, 4095, 4096, 4097, 65536, 128 << 10, (1 << 20) + 512] {
            let mut b = PageBuf::new();
            b.resize_for_overwrite(len);
            assert!(aligned(&b), "len {len}");
            assert_eq!(b.len(), len);
            assert_eq!(b.capacity() % PAGE, 0);
            assert!(b.capacity() >= len);
            assert!(b.iter().all(|&x| x == 0), "a fresh allocation reads zeros");
        }
    }

    #[test]
    fn growth_keeps_contents_and_doubles() {
        let mut b = PageBuf::new();
        b.resize_zeroed(100);
        b.copy_from_slice(&[7u8; 100]);
        assert_eq!(b.capacity(), PAGE);
        b.resize_zeroed(PAGE + 1);
        assert_eq!(b.capacity(), 2 * PAGE);
        assert!(aligned(&b));
        assert!(b[..100].iter().all(|&x| x == 7), "kept");
        assert!(b[100..].iter().all(|&x| x == 0), "added bytes zero");
        b.resize_for_overwrite(2 * PAGE + 1);
        assert_eq!(b.capacity(), 4 * PAGE, "at least doubles");
        assert!(b[..100].iter().all(|&x| x == 7));
        // Shrinking keeps the allocation.
        b.resize_zeroed(10);
        assert_eq!((b.len(), b.capacity()), (10, 4 * PAGE));
    }

    #[test]
    fn reuse_does_not_reallocate_and_zeroes_only_on_request() {
        let mut b = PageBuf::new();
        b.resize_for_overwrite(128 << 10);
        let (ptr, cap) = (b.as_ptr(), b.capacity());
        b.fill(0xAB);
        b.clear();
        // Stale bytes are exposed by resize_for_overwrite (the caller's duty
        // to overwrite them), never by resize_zeroed.
        b.resize_for_overwrite(4096);
        assert_eq!((b.as_ptr(), b.capacity()), (ptr, cap), "same allocation");
        assert!(b.iter().all(|&x| x == 0xAB));
        b.clear();
        b.resize_zeroed(4096);
        assert_eq!(b.as_ptr(), ptr);
        assert!(b.iter().all(|&x| x == 0));
        // Only the bytes beyond the old length are zeroed.
        b[..10].fill(1);
        b.resize_zeroed(8192);
        assert!(b[..10].iter().all(|&x| x == 1));
        assert!(b[10..4096].iter().all(|&x| x == 0));
        assert!(b[4096..].iter().all(|&x| x == 0), "the 0xAB beyond the old length are zeroed");
    }

    #[test]
    fn moves_between_threads() {
        let mut b = PageBuf::new();
        b.resize_zeroed(3);
        b.copy_from_slice(b"abc");
        let b = std::thread::spawn(move || b).join().unwrap();
        assert_eq!(&b[..], b"abc");
    }
}
