//! The `rdwr` backend: a regular file or block device read and written with
//! blocking pread(2)/pwritev2(2)/fdatasync(2) on worker threads ([`worker`]),
//! like Linux tgt's backing store of the same name, but with per-shard
//! queues instead of one locked list per LU.
//!
//! Same store rules as `file` (creation, size, read-only, O_DIRECT: an
//! unaligned buffer is copied through the worker's own bounce buffer, at
//! most 1 MiB at a time). Durability: FUA → `pwritev2(RWF_DSYNC)`;
//! SYNCHRONIZE CACHE → `fdatasync`; short transfers are resumed; errors map
//! in [`crate::errno`].
//!
//! Use it where io_uring is unavailable or restricted, or to compare with
//! tgt; `file` is the faster default.
//!
//! [`worker`]: crate::worker

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use crate::aligned::AlignedBuf;
use crate::store::Store;
use crate::worker::{BlockingIo, WorkerPool};
use crate::{Backend, BackendError, BackendOp, BackendSpec, BackendStatus, IoRequest, Provisioning, ShardBackend};

/// The part the workers run: one descriptor (O_DIRECT if in effect) shared
/// by every worker, since pread/pwrite carry their own offsets.
#[derive(Debug)]
pub(crate) struct PosixIo {
    store: Arc<Store>,
    fd: OwnedFd,
}

impl BlockingIo for PosixIo {
    type Scratch = Option<AlignedBuf>;
    fn execute(&self, req: &IoRequest, buf: &mut [u8], bounce: &mut Option<AlignedBuf>) -> BackendStatus {
        self.store.execute_blocking(self.fd.as_raw_fd(), self.store.dio.is_some(), req, buf, bounce)
    }
}

/// A file or block device served by worker threads.
#[derive(Debug)]
pub struct RdwrBackend {
    pool: WorkerPool<PosixIo>,
}

impl RdwrBackend {
    /// Open the store and start `spec.workers` threads.
    pub fn open(spec: &BackendSpec) -> Result<Self, BackendError> {
        let store = Arc::new(Store::open(spec)?);
        let fd = store.open_data_fd()?;
        let name = format!("rdwr-{}", store.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into()));
        let name: String = name.chars().take(12).collect(); // thread names: 15 bytes with "-NN"
        let pool = WorkerPool::start(&name, spec.workers, Arc::new(PosixIo { store, fd }))?;
        Ok(RdwrBackend { pool })
    }

    fn store(&self) -> &Store {
        &self.pool.exec().store
    }

    /// The file or device.
    pub fn path(&self) -> &Path {
        &self.store().path
    }

    /// O_DIRECT in effect?
    pub fn direct(&self) -> bool {
        self.store().dio.is_some()
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.pool.workers()
    }

    /// I/O failures so far.
    pub fn errors(&self) -> u64 {
        self.store().log.errors()
    }
}

fn result(s: BackendStatus) -> Result<(), BackendStatus> {
    match s {
        BackendStatus::Ok => Ok(()),
        s => Err(s),
    }
}

impl Backend for RdwrBackend {
    fn kind(&self) -> &'static str {
        "rdwr"
    }
    fn size_bytes(&self) -> u64 {
        self.store().size_bytes()
    }
    fn block_size(&self) -> u32 {
        self.store().block_size
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendStatus> {
        let s = self.store();
        let req = IoRequest { op: BackendOp::Read, offset, len: buf.len() as u32, fua: false };
        result(s.execute_blocking(s.fd.as_raw_fd(), false, &req, buf, &mut None))
    }
    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> Result<(), BackendStatus> {
        let s = self.store();
        let req = IoRequest { op: BackendOp::Write, offset, len: buf.len() as u32, fua };
        result(s.execute_blocking(s.fd.as_raw_fd(), false, &req, &mut buf.to_vec(), &mut None))
    }
    fn flush(&self) -> Result<(), BackendStatus> {
        let s = self.store();
        let req = IoRequest { op: BackendOp::Flush, offset: 0, len: 0, fua: false };
        result(s.execute_blocking(s.fd.as_raw_fd(), false, &req, &mut [], &mut None))
    }
    fn read_only(&self) -> bool {
        self.store().read_only
    }
    fn open_shard(&self) -> Result<Box<dyn ShardBackend>, BackendError> {
        Ok(Box::new(self.pool.open_shard()?))
    }
    fn provisioning(&self) -> Provisioning {
        self.store().provisioning()
    }
    fn deallocate(&self, offset: u64, len: u64) -> Result<(), BackendStatus> {
        self.store().deallocate_sync(offset, len)
    }
    fn resize(&self, size_bytes: u64) -> Result<(), BackendError> {
        self.store().resize(size_bytes)
    }
}
