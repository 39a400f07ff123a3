//! shardtgt-backends: the stores that hold a logical unit's blocks.
//!
//! A [`Backend`] is one store, shared by every shard (`Arc<dyn Backend>`). It
//! answers geometry questions and offers a synchronous `read`/`write`/`flush`
//! (used by tools, tests and the simple in-memory stores). For the data path,
//! each shard opens its own [`ShardBackend`] handle with
//! [`Backend::open_shard`] on its own thread: a handle either finishes a
//! request on the spot ([`Submit::Done`], ram and null) or pushes io_uring
//! entries onto the shard's ring through a [`SubmitQueue`] and reports the
//! result later from [`ShardBackend::complete`] ([`Submit::Pending`], the
//! future file and rbd backends).
//!
//! This crate never speaks iSCSI or SCSI: it sees byte offsets and lengths,
//! and reports failures as [`BackendStatus`], which the core maps to sense
//! data in one place.

use std::fmt;
use std::sync::Arc;

pub use shardtgt_core::scsi::{BackendOp, BackendStatus};

mod mem;
pub mod null;
pub mod ram;

pub use null::NullBackend;
pub use ram::RamBackend;

/// A backing store, shared by every shard.
///
/// All offsets and lengths are in bytes. Implementations check bounds and
/// return an error status rather than panicking.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Short kind name for logs (`"ram"`, `"null"`, ...).
    fn kind(&self) -> &'static str;
    /// Size of the store in bytes (a multiple of [`Backend::block_size`]).
    fn size_bytes(&self) -> u64;
    /// Logical block size in bytes (512 or 4096).
    fn block_size(&self) -> u32;
    /// Read `buf.len()` bytes at `offset`.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendStatus>;
    /// Write `buf` at `offset`; with `fua` the data is durable on return.
    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> Result<(), BackendStatus>;
    /// Make everything written so far durable.
    fn flush(&self) -> Result<(), BackendStatus>;
    /// Open the per-shard handle. Called once on each shard's own thread, so
    /// an implementation may open its own file descriptor or queues there.
    fn open_shard(&self) -> Result<Box<dyn ShardBackend>, BackendError>;
}

/// Identifies one backend request of a shard; the shard hands it to
/// [`ShardBackend::submit`] and gets it back on completion.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IoId(pub u32);

/// A task buffer handed to a shard backend: a raw region that stays valid
/// and is not touched by anyone else until the request completes.
#[derive(Debug)]
pub struct IoBuf {
    ptr: *mut u8,
    len: usize,
}

impl IoBuf {
    /// Wrap a raw buffer.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes, and nothing
    /// else may access that memory from this call until the request this
    /// buffer belongs to has completed (synchronously via [`Submit::Done`] or
    /// later via [`ShardBackend::complete`]).
    pub unsafe fn from_raw(ptr: *mut u8, len: usize) -> Self {
        IoBuf { ptr, len }
    }

    /// Wrap a slice; the borrow ends with the returned value, so only
    /// synchronous backends may use such a buffer safely. Used in tests.
    pub fn from_slice(buf: &mut [u8]) -> Self {
        IoBuf { ptr: buf.as_mut_ptr(), len: buf.len() }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Zero length?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Raw pointer, for handing to the kernel (io_uring read/write).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    /// The buffer as a slice.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: `from_raw`'s contract says the region is valid and
        // exclusively ours until completion; `from_slice` borrowed a live
        // slice. `&mut self` keeps this the only live view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// One backend request as a shard backend sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IoRequest {
    /// Operation.
    pub op: BackendOp,
    /// Byte offset on the LU.
    pub offset: u64,
    /// Byte length (the buffer's length; 0 for a flush).
    pub len: u32,
    /// Force unit access.
    pub fua: bool,
}

/// Result of [`ShardBackend::submit`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Submit {
    /// Finished: the buffer may be used again.
    Done(BackendStatus),
    /// Work was queued; the result arrives from [`ShardBackend::complete`].
    Pending,
}

/// The shard's submission queue, as a backend sees it.
pub trait SubmitQueue {
    /// Queue an io_uring entry. The shard overwrites its user_data; the CQE
    /// comes back to this backend's [`ShardBackend::complete`] with `cookie`
    /// (at most [`COOKIE_MAX`]).
    ///
    /// # Safety
    /// Every buffer and pointer the entry refers to must stay valid until its
    /// completion arrives.
    unsafe fn push(&mut self, entry: io_uring::squeue::Entry, cookie: u64) -> Result<(), QueueFull>;
}

/// Largest cookie a backend may attach to an io_uring entry (40 bits).
pub const COOKIE_MAX: u64 = (1 << 40) - 1;

/// The shard's submission queue is full and could not be flushed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct QueueFull;

/// A shard's own handle on a backend. Lives on one shard thread only.
pub trait ShardBackend: fmt::Debug {
    /// Start a request. A synchronous handle does the work and returns
    /// [`Submit::Done`]; an asynchronous one queues entries on `q` and
    /// returns [`Submit::Pending`].
    fn submit(&mut self, id: IoId, req: &IoRequest, buf: IoBuf, q: &mut dyn SubmitQueue) -> Submit;

    /// One of this backend's io_uring entries completed (`result` is the CQE
    /// result, a negative errno on failure). Report every request that is now
    /// finished through `done`. Synchronous handles never get here.
    fn complete(&mut self, cookie: u64, result: i32, done: &mut dyn FnMut(IoId, BackendStatus)) {
        let _ = (cookie, result, done);
    }
}

/// A backend could not be created or opened.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BackendError(pub String);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

/// Backend kinds this build knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BackendKind {
    /// Memory, one region shared by every shard; lost on exit.
    Ram,
    /// Reads zeros, drops writes.
    Null,
}

impl BackendKind {
    /// Parse a config name (`"ram"`, `"null"`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ram" => Some(BackendKind::Ram),
            "null" => Some(BackendKind::Null),
            _ => None,
        }
    }

    /// Every name [`BackendKind::from_name`] accepts.
    pub const NAMES: &'static [&'static str] = &["ram", "null"];
}

/// What to build.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BackendSpec {
    /// Kind.
    pub kind: BackendKind,
    /// Size in bytes (a positive multiple of `block_size`).
    pub size_bytes: u64,
    /// Block size: 512 or 4096.
    pub block_size: u32,
}

/// Create a backend from a spec.
pub fn create(spec: &BackendSpec) -> Result<Arc<dyn Backend>, BackendError> {
    if spec.block_size != 512 && spec.block_size != 4096 {
        return Err(BackendError(format!("block size {} is not 512 or 4096", spec.block_size)));
    }
    if spec.size_bytes == 0 || spec.size_bytes % u64::from(spec.block_size) != 0 {
        return Err(BackendError(format!(
            "size {} is not a positive multiple of the block size {}",
            spec.size_bytes, spec.block_size
        )));
    }
    Ok(match spec.kind {
        BackendKind::Ram => Arc::new(RamBackend::new(spec.size_bytes, spec.block_size)?),
        BackendKind::Null => Arc::new(NullBackend::new(spec.size_bytes, spec.block_size)),
    })
}

/// Check that `[offset, offset + len)` lies inside a store of `size` bytes.
pub fn check_bounds(offset: u64, len: usize, size: u64) -> Result<(), BackendStatus> {
    let end = offset.checked_add(len as u64).ok_or(BackendStatus::Other(libc::EINVAL))?;
    if end > size {
        return Err(BackendStatus::Other(libc::EINVAL));
    }
    Ok(())
}

/// A per-shard handle for a backend that works synchronously: `submit`
/// calls the backend's `read`/`write`/`flush` on the spot.
#[derive(Debug)]
pub struct SyncShard<B> {
    backend: B,
}

impl<B: Backend> SyncShard<B> {
    /// Wrap a backend (typically a cheap clone sharing the store).
    pub fn new(backend: B) -> Self {
        SyncShard { backend }
    }
}

/// Run one request synchronously against a backend.
pub fn execute_sync(backend: &dyn Backend, req: &IoRequest, buf: &mut [u8]) -> BackendStatus {
    let r = match req.op {
        BackendOp::Read => backend.read(req.offset, buf),
        BackendOp::Write => backend.write(req.offset, buf, req.fua),
        BackendOp::Flush => backend.flush(),
    };
    match r {
        Ok(()) => BackendStatus::Ok,
        Err(s) => s,
    }
}

impl<B: Backend> ShardBackend for SyncShard<B> {
    fn submit(&mut self, _id: IoId, req: &IoRequest, mut buf: IoBuf, _q: &mut dyn SubmitQueue) -> Submit {
        Submit::Done(execute_sync(&self.backend, req, buf.as_mut_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoQueue;
    impl SubmitQueue for NoQueue {
        unsafe fn push(&mut self, _e: io_uring::squeue::Entry, _c: u64) -> Result<(), QueueFull> {
            Err(QueueFull)
        }
    }

    #[test]
    fn create_checks_spec() {
        let ok = BackendSpec { kind: BackendKind::Ram, size_bytes: 1 << 20, block_size: 512 };
        assert_eq!(create(&ok).unwrap().size_bytes(), 1 << 20);
        let bad_bs = BackendSpec { block_size: 1000, ..ok.clone() };
        assert!(create(&bad_bs).is_err());
        let bad_size = BackendSpec { size_bytes: 1000, ..ok.clone() };
        assert!(create(&bad_size).is_err());
        let zero = BackendSpec { size_bytes: 0, ..ok };
        assert!(create(&zero).is_err());
        assert_eq!(BackendKind::from_name("null"), Some(BackendKind::Null));
        assert_eq!(BackendKind::from_name("rbd"), None);
    }

    #[test]
    fn bounds() {
        assert!(check_bounds(0, 512, 512).is_ok());
        assert!(check_bounds(512, 0, 512).is_ok());
        assert!(check_bounds(512, 1, 512).is_err());
        assert!(check_bounds(u64::MAX, 8, u64::MAX).is_err());
    }

    #[test]
    fn shard_handle_runs_synchronously() {
        let spec = BackendSpec { kind: BackendKind::Ram, size_bytes: 64 << 10, block_size: 512 };
        let b = create(&spec).unwrap();
        let mut s1 = b.open_shard().unwrap();
        let mut s2 = b.open_shard().unwrap();
        let mut data = vec![0xA5u8; 4096];
        let w = IoRequest { op: BackendOp::Write, offset: 8192, len: 4096, fua: false };
        assert_eq!(s1.submit(IoId(1), &w, IoBuf::from_slice(&mut data), &mut NoQueue), Submit::Done(BackendStatus::Ok));
        let mut out = vec![0u8; 4096];
        let r = IoRequest { op: BackendOp::Read, ..w };
        assert_eq!(s2.submit(IoId(2), &r, IoBuf::from_slice(&mut out), &mut NoQueue), Submit::Done(BackendStatus::Ok));
        assert_eq!(out, data);
        let f = IoRequest { op: BackendOp::Flush, offset: 0, len: 0, fua: false };
        assert_eq!(s2.submit(IoId(3), &f, IoBuf::from_slice(&mut []), &mut NoQueue), Submit::Done(BackendStatus::Ok));
        let oob = IoRequest { offset: 64 << 10, ..r };
        assert_eq!(
            s2.submit(IoId(4), &oob, IoBuf::from_slice(&mut out), &mut NoQueue),
            Submit::Done(BackendStatus::Other(libc::EINVAL))
        );
    }
}
