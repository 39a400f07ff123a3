//! Page-aligned heap buffers for O_DIRECT, and a small bounded pool of them.
//!
//! O_DIRECT needs the user buffer aligned to the device's DMA alignment
//! (`stx_dio_mem_align`, statx(2)); the core's task buffers are page
//! aligned (`shardtgt_core::buf::PageBuf`), but a buffer that is not (tools,
//! tests, lengths that are not a multiple of the alignment) is copied
//! through these ("bounce buffers"). A pool never holds more than its fixed count of
//! fixed-size buffers, allocates them lazily, and never frees one while an
//! I/O may use it.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// One zero-initialised heap buffer with a chosen alignment.
#[derive(Debug)]
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer is plain owned memory; moving it to another thread
// moves its only owner.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// `len` bytes (> 0) aligned to `align` (a power of two); `None` when
    /// the layout is invalid or memory is exhausted.
    pub(crate) fn new(len: usize, align: usize) -> Option<Self> {
        let layout = Layout::from_size_align(len.max(1), align).ok()?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(layout) };
        Some(AlignedBuf { ptr: NonNull::new(p)?, layout })
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is `len()` initialised bytes owned by self;
        // `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// At most `count` buffers of `size` bytes, created on first use.
#[derive(Debug)]
pub(crate) struct BouncePool {
    bufs: Vec<AlignedBuf>,
    free: Vec<u16>,
    count: usize,
    size: usize,
    align: usize,
}

impl BouncePool {
    pub(crate) fn new(count: usize, size: usize, align: usize) -> Self {
        assert!(count <= usize::from(u16::MAX) && size > 0 && align.is_power_of_two());
        BouncePool { bufs: Vec::new(), free: Vec::new(), count, size, align }
    }

    /// Buffers handed out and not yet given back.
    pub(crate) fn in_use(&self) -> usize {
        self.bufs.len() - self.free.len()
    }

    /// A free buffer's index, or `None` when all `count` are in use (or
    /// memory is exhausted).
    pub(crate) fn take(&mut self) -> Option<u16> {
        if let Some(i) = self.free.pop() {
            return Some(i);
        }
        if self.bufs.len() >= self.count {
            return None;
        }
        self.bufs.push(AlignedBuf::new(self.size, self.align)?);
        Some((self.bufs.len() - 1) as u16)
    }

    pub(crate) fn give(&mut self, i: u16) {
        debug_assert!(!self.free.contains(&i));
        self.free.push(i);
    }

    pub(crate) fn get(&mut self, i: u16) -> &mut AlignedBuf {
        &mut self.bufs[usize::from(i)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_bounded() {
        let mut b = AlignedBuf::new(8192, 4096).unwrap();
        assert_eq!(b.as_mut_ptr() as usize % 4096, 0);
        assert!(b.as_mut_slice().iter().all(|&x| x == 0));
        let mut p = BouncePool::new(2, 4096, 4096);
        let a = p.take().unwrap();
        let c = p.take().unwrap();
        assert_ne!(a, c);
        assert_eq!(p.take(), None, "bounded");
        assert_eq!(p.in_use(), 2);
        p.give(a);
        assert_eq!(p.take(), Some(a), "reused");
        assert_eq!(p.get(c).len(), 4096);
        assert!(AlignedBuf::new(16, 3).is_none(), "bad alignment is None, not a panic");
    }
}
