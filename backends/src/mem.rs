//! A shared anonymous memory region that several threads read and write at
//! the same time without locks and without data races.
//!
//! Soundness scheme: the region is only ever accessed through `AtomicU64`
//! relaxed loads and stores of whole, 8-byte-aligned words, never through
//! plain references. Concurrent accesses to the same word are therefore
//! atomic (no undefined behaviour); concurrent overlapping I/Os may
//! interleave at word granularity, which SCSI allows for overlapping
//! commands without ordering. On x86-64 and aarch64 a relaxed 8-byte
//! load/store is an ordinary `mov`/`ldr`/`str`. Callers must pass offsets and
//! lengths that are multiples of 8 (block I/O is in multiples of 512); the
//! backend checks that and answers `EINVAL` otherwise, since mixing access
//! sizes on racing atomics is not allowed either.
//!
//! It never touches memory through non-atomic accesses and never grows.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::BackendError;

/// Word size of every access.
pub(crate) const WORD: usize = 8;

/// An anonymous private mapping (`MAP_NORESERVE`: pages cost nothing until
/// written; untouched pages read as zeros).
#[derive(Debug)]
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is plain memory owned by this value; every access goes
// through atomic operations (see the module docs), so sharing it between
// threads cannot cause a data race.
unsafe impl Send for Region {}
// SAFETY: as above: `&Region` only allows atomic word accesses.
unsafe impl Sync for Region {}

impl Region {
    /// Map `len` bytes (len > 0).
    pub(crate) fn new(len: usize) -> Result<Self, BackendError> {
        if len == 0 {
            return Err(BackendError("memory region of size 0".into()));
        }
        // SAFETY: a fresh anonymous mapping with no address hint; the kernel
        // picks the address and the call touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            return Err(BackendError(format!("cannot map {len} bytes of memory: {e}")));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| BackendError("mmap returned NULL".into()))?;
        Ok(Region { ptr, len })
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The word at byte offset `off` (8-aligned, `off + 8 <= len`).
    ///
    /// # Safety
    /// `off` must be a multiple of [`WORD`] and `off + WORD <= self.len`.
    unsafe fn word(&self, off: usize) -> &AtomicU64 {
        // SAFETY: the caller keeps `off` in bounds and aligned; the mapping
        // is page-aligned, so the address is 8-aligned; the memory lives as
        // long as `self`, and every access to it is atomic and 8 bytes wide
        // (the requirements of `AtomicU64::from_ptr`).
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(off).cast::<u64>()) }
    }

    /// Copy `buf.len()` bytes at `offset` out of the region. The caller has
    /// checked bounds and 8-byte alignment of `offset` and `buf.len()`.
    pub(crate) fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(offset % WORD == 0 && buf.len() % WORD == 0 && offset + buf.len() <= self.len);
        for (i, chunk) in buf.chunks_exact_mut(WORD).enumerate() {
            // SAFETY: checked just above: aligned and in bounds.
            let w = unsafe { self.word(offset + i * WORD) };
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
    }

    /// Copy `buf` into the region at `offset`. Same preconditions as `read`.
    pub(crate) fn write(&self, offset: usize, buf: &[u8]) {
        assert!(offset % WORD == 0 && buf.len() % WORD == 0 && offset + buf.len() <= self.len);
        for (i, chunk) in buf.chunks_exact(WORD).enumerate() {
            let mut b = [0u8; WORD];
            b.copy_from_slice(chunk);
            // SAFETY: checked just above: aligned and in bounds.
            let w = unsafe { self.word(offset + i * WORD) };
            w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, and no
        // reference into it outlives `self` (all borrows are tied to `&self`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
