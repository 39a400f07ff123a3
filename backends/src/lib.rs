//! shardtgt-backends: the stores that hold a logical unit's blocks.
//!
//! A [`Backend`] is one store, shared by every shard (`Arc<dyn Backend>`). It
//! answers geometry questions and offers a synchronous `read`/`write`/`flush`
//! (used by tools, tests and the simple in-memory stores). For the data path,
//! each shard opens its own [`ShardBackend`] handle with
//! [`Backend::open_shard`] on its own thread: a handle either finishes a
//! request on the spot ([`Submit::Done`], ram and null) or pushes io_uring
//! entries onto the shard's ring through a [`SubmitQueue`] and reports the
//! result later from [`ShardBackend::complete`] ([`Submit::Pending`]: the
//! [`file`](mod@file) backend on the shard's io_uring, the [`rdwr`] backend through
//! per-shard queues to its worker threads ([`worker`])). A handle that cannot
//! take a request right now says [`Submit::Busy`] and the shard offers it
//! again later: every queue stays bounded.
//!
//! Failures become a [`BackendStatus`] in one place, [`errno`].
//!
//! This crate never speaks iSCSI or SCSI: it sees byte offsets and lengths,
//! and reports failures as [`BackendStatus`], which the core maps to sense
//! data in one place.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use shardtgt_core::scsi::{BackendOp, BackendStatus};

mod aligned;
pub mod errno;
pub mod fault;
pub mod file;
mod mem;
pub mod null;
pub mod ram;
pub mod rdwr;
pub mod sanitize;
mod store;
pub mod worker;

pub use file::FileBackend;
pub use null::NullBackend;
pub use ram::RamBackend;
pub use rdwr::RdwrBackend;
pub use sanitize::ThreadSanitizer;

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
    /// Deallocate `len` bytes at `offset`, blocking: they read back as
    /// zeros afterwards. Only stores with [`Provisioning::deallocate`]
    /// implement it; the others refuse (`EOPNOTSUPP`).
    fn deallocate(&self, offset: u64, len: u64) -> Result<(), BackendStatus> {
        let _ = (offset, len);
        Err(BackendStatus::Other(libc::EOPNOTSUPP))
    }
    /// Writes are refused (configured read-only, or the store could not be
    /// opened for writing). The LU must then be exported read-only.
    fn read_only(&self) -> bool {
        false
    }
    /// Open the per-shard handle. Called once on each shard's own thread, so
    /// an implementation may open its own file descriptor or queues there.
    fn open_shard(&self) -> Result<Box<dyn ShardBackend>, BackendError>;
    /// The injection rules of a [`fault`] backend (`None` for every other).
    fn fault_rules(&self) -> Option<&fault::FaultRules> {
        None
    }
    /// What this store can do for logical block provisioning.
    fn provisioning(&self) -> Provisioning {
        Provisioning::default()
    }
    /// Change the size online to `size_bytes` (a positive multiple of the
    /// block size; the caller checks). Growing makes the new blocks
    /// readable (as zeros) and writable before it returns; shrinking is
    /// refused when the store cannot tell that nothing is in use past the
    /// new end. The error is one line for the administrator.
    fn resize(&self, size_bytes: u64) -> Result<(), BackendError> {
        let _ = size_bytes;
        Err(BackendError(format!("a {} LUN cannot be resized online", self.kind())))
    }
}

/// What a backend can do for logical block provisioning (SBC-4 §4.7).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Provisioning {
    /// UNMAP and WRITE SAME with UNMAP are accepted, and the blocks they
    /// unmap read back as zeros (LBPME and LBPRZ may be advertised).
    pub thin: bool,
    /// [`BackendOp::Deallocate`] really gives the space back and
    /// [`BackendOp::MapStatus`] reports mapped and deallocated ranges.
    /// Without it a thin LU unmaps by writing zeros.
    pub deallocate: bool,
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
    /// Not taken: the handle's own bounded resources (in-flight slots,
    /// bounce buffers, worker queues) or the ring are exhausted. Nothing was
    /// started and the buffer was not touched; the shard keeps the request
    /// and offers it again after a completion. A handle says `Busy` only
    /// while it has work of its own in flight or the ring was full, so a
    /// completion always follows.
    Busy,
}

/// One completion queue entry for a backend, as the shard hands it back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Completion {
    /// The cookie given to [`SubmitQueue::push`].
    pub cookie: u64,
    /// The CQE result: bytes transferred, or a negative errno.
    pub result: i32,
    /// The CQE flags (`IORING_CQE_F_MORE` for multishot entries).
    pub flags: u32,
}

impl Completion {
    /// Will this (multishot) entry post more completions?
    pub fn more(&self) -> bool {
        io_uring::cqueue::more(self.flags)
    }
}

/// The shard's submission queue, as a backend sees it.
pub trait SubmitQueue {
    /// Queue an io_uring entry. The shard overwrites its user_data; the CQE
    /// comes back to this backend's [`ShardBackend::complete`] with `cookie`
    /// (at most [`COOKIE_MAX`]). Fails only when the ring's submission queue
    /// and the shard's bounded overflow (one entry per in-flight request)
    /// are both full, so a backend that keeps at most one entry per request
    /// queued practically never sees [`QueueFull`].
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

    /// One of this backend's io_uring entries completed. Report every
    /// request that is now finished through `done` (exactly once per
    /// [`Submit::Pending`] request); `q` takes follow-up entries (the rest of
    /// a short transfer, a re-armed poll). Synchronous handles never get here.
    fn complete(&mut self, c: Completion, q: &mut dyn SubmitQueue, done: &mut dyn FnMut(IoId, BackendStatus)) {
        let _ = (c, q, done);
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
    /// A regular file or block device, on each shard's io_uring.
    File,
    /// A regular file or block device, pread/pwrite on worker threads.
    Rdwr,
}

impl BackendKind {
    /// Parse a config name (`"ram"`, `"null"`, `"file"`, `"rdwr"`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ram" => Some(BackendKind::Ram),
            "null" => Some(BackendKind::Null),
            "file" => Some(BackendKind::File),
            "rdwr" => Some(BackendKind::Rdwr),
            _ => None,
        }
    }

    /// Every name [`BackendKind::from_name`] accepts.
    pub const NAMES: &'static [&'static str] = &["ram", "null", "file", "rdwr"];

    /// Does this kind store its blocks in a file or device (`path`)?
    pub fn uses_path(self) -> bool {
        matches!(self, BackendKind::File | BackendKind::Rdwr)
    }
}

/// Worker threads of an `rdwr` LU when the configuration says nothing.
pub const DEFAULT_WORKERS: usize = 4;

/// What to build.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BackendSpec {
    /// Kind.
    pub kind: BackendKind,
    /// Size in bytes (a positive multiple of `block_size`). Required for
    /// `ram` and `null`; for `file` and `rdwr`, `None` means the existing
    /// file's or device's size.
    pub size_bytes: Option<u64>,
    /// Block size: 512 or 4096.
    pub block_size: u32,
    /// File or block device (`file`, `rdwr`).
    pub path: Option<PathBuf>,
    /// Open read-only (`file`, `rdwr`; the SCSI layer refuses writes anyway).
    pub read_only: bool,
    /// O_DIRECT where the store allows it (`file`, `rdwr`).
    pub direct: bool,
    /// Worker threads (`rdwr`).
    pub workers: usize,
    /// Wrap the store in the [`fault`] injector (config `backend = "fault"`).
    pub fault: bool,
}

impl BackendSpec {
    /// A `ram` or `null` spec.
    pub fn memory(kind: BackendKind, size_bytes: u64, block_size: u32) -> Self {
        BackendSpec {
            kind,
            size_bytes: Some(size_bytes),
            block_size,
            path: None,
            read_only: false,
            direct: false,
            workers: DEFAULT_WORKERS,
            fault: false,
        }
    }

    /// A `file` or `rdwr` spec on `path`.
    pub fn at_path(kind: BackendKind, path: impl Into<PathBuf>, size_bytes: Option<u64>, block_size: u32) -> Self {
        BackendSpec { path: Some(path.into()), ..BackendSpec::memory(kind, 0, block_size) }.with_size(size_bytes)
    }

    fn with_size(mut self, size_bytes: Option<u64>) -> Self {
        self.size_bytes = size_bytes;
        self
    }
}

/// Create a backend from a spec.
pub fn create(spec: &BackendSpec) -> Result<Arc<dyn Backend>, BackendError> {
    if spec.block_size != 512 && spec.block_size != 4096 {
        return Err(BackendError(format!("block size {} is not 512 or 4096", spec.block_size)));
    }
    match spec.size_bytes {
        Some(s) if s == 0 || s % u64::from(spec.block_size) != 0 => {
            return Err(BackendError(format!(
                "size {s} is not a positive multiple of the block size {}",
                spec.block_size
            )))
        }
        None if !spec.kind.uses_path() => return Err(BackendError("a size is required".into())),
        _ => {}
    }
    let size = spec.size_bytes.unwrap_or(0);
    let store: Arc<dyn Backend> = match spec.kind {
        BackendKind::Ram => Arc::new(RamBackend::new(size, spec.block_size)?),
        BackendKind::Null => Arc::new(NullBackend::new(size, spec.block_size)),
        BackendKind::File => Arc::new(FileBackend::open(spec)?),
        BackendKind::Rdwr => Arc::new(RdwrBackend::open(spec)?),
    };
    if spec.fault {
        let what =
            spec.path.as_ref().map_or_else(|| format!("fault over {}", store.kind()), |p| p.display().to_string());
        return Ok(Arc::new(fault::FaultBackend::new(store, what)));
    }
    Ok(store)
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
        // Never asked of a backend without `Provisioning::deallocate`; if it
        // were, a failure beats pretending.
        BackendOp::Deallocate => Err(BackendStatus::Other(libc::EOPNOTSUPP)),
        // Everything mapped, which is true of a store that never deallocates.
        BackendOp::MapStatus => {
            let rest = backend.size_bytes().saturating_sub(req.offset);
            shardtgt_core::scsi::lba_status::put(buf, 0, rest, shardtgt_core::scsi::lba_status::MAPPED);
            Ok(())
        }
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
        let ok = BackendSpec::memory(BackendKind::Ram, 1 << 20, 512);
        assert_eq!(create(&ok).unwrap().size_bytes(), 1 << 20);
        let bad_bs = BackendSpec { block_size: 1000, ..ok.clone() };
        assert!(create(&bad_bs).is_err());
        let bad_size = BackendSpec { size_bytes: Some(1000), ..ok.clone() };
        assert!(create(&bad_size).is_err());
        let zero = BackendSpec { size_bytes: Some(0), ..ok.clone() };
        assert!(create(&zero).is_err());
        let none = BackendSpec { size_bytes: None, ..ok };
        assert!(create(&none).is_err(), "ram needs a size");
        let no_path = BackendSpec { path: None, ..BackendSpec::at_path(BackendKind::File, "/x", None, 512) };
        assert!(create(&no_path).is_err());
        assert_eq!(BackendKind::from_name("null"), Some(BackendKind::Null));
        assert_eq!(BackendKind::from_name("file"), Some(BackendKind::File));
        assert_eq!(BackendKind::from_name("rdwr"), Some(BackendKind::Rdwr));
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
        let spec = BackendSpec::memory(BackendKind::Ram, 64 << 10, 512);
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

/// A real io_uring driving one or more shard handles the way a shard does,
/// for the backends' own tests.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use io_uring::IoUring;

    /// Pushes entries with the cookie as user_data; user_data's top byte
    /// says which handle they belong to.
    pub(crate) struct TestRing {
        ring: IoUring,
        owner: u64,
        /// `Submit::Busy` answers seen.
        pub(crate) busy: usize,
    }

    impl SubmitQueue for TestRing {
        unsafe fn push(&mut self, entry: io_uring::squeue::Entry, cookie: u64) -> Result<(), QueueFull> {
            let e = entry.user_data(cookie | (self.owner << 56));
            // SAFETY: forwarded from the caller's contract.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return Ok(());
            }
            self.ring.submit().map_err(|_| QueueFull)?;
            // SAFETY: as above.
            unsafe { self.ring.submission().push(&e) }.map_err(|_| QueueFull)
        }
    }

    /// One request for [`TestRing::run`]: which handle, what, into which buffer.
    pub(crate) struct Req<'a> {
        pub(crate) handle: usize,
        pub(crate) req: IoRequest,
        pub(crate) buf: &'a mut [u8],
    }

    impl TestRing {
        pub(crate) fn new() -> Self {
            TestRing { ring: IoUring::new(64).expect("io_uring"), owner: 0, busy: 0 }
        }

        /// Run one request on one handle.
        pub(crate) fn one(&mut self, h: &mut dyn ShardBackend, req: IoRequest, buf: &mut [u8]) -> BackendStatus {
            self.run(&mut [h], vec![Req { handle: 0, req, buf }])[0]
        }

        /// Start every request at once (retrying `Busy` ones after
        /// completions, like the shard) and wait for all of them.
        pub(crate) fn run(&mut self, handles: &mut [&mut dyn ShardBackend], reqs: Vec<Req<'_>>) -> Vec<BackendStatus> {
            let n = reqs.len();
            let mut out: Vec<Option<BackendStatus>> = vec![None; n];
            let mut waiting: std::collections::VecDeque<(usize, Req<'_>)> = reqs.into_iter().enumerate().collect();
            let mut live = 0usize;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                // Offer waiting requests until one is refused.
                while let Some((i, r)) = waiting.pop_front() {
                    self.owner = r.handle as u64;
                    let buf = IoBuf { ptr: r.buf.as_mut_ptr(), len: r.buf.len() };
                    match handles[r.handle].submit(IoId(i as u32), &r.req, buf, self) {
                        Submit::Done(s) => out[i] = Some(s),
                        Submit::Pending => live += 1,
                        Submit::Busy => {
                            self.busy += 1;
                            assert!(live > 0, "Busy with nothing in flight");
                            waiting.push_front((i, r));
                            break;
                        }
                    }
                }
                if out.iter().all(Option::is_some) {
                    return out.into_iter().map(Option::unwrap).collect();
                }
                assert!(std::time::Instant::now() < deadline, "requests did not complete");
                self.ring.submit_and_wait(1).expect("io_uring_enter");
                let cqes: Vec<_> = self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())).collect();
                for (ud, result, flags) in cqes {
                    let h = (ud >> 56) as usize;
                    self.owner = h as u64;
                    let c = Completion { cookie: ud & ((1 << 56) - 1), result, flags };
                    handles[h].complete(c, self, &mut |id, st| {
                        assert!(out[id.0 as usize].is_none(), "reported twice");
                        out[id.0 as usize] = Some(st);
                        live -= 1;
                    });
                }
            }
        }
    }
}
