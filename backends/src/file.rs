//! The `file` backend: a regular file or a block device, read and written
//! on each shard's own io_uring.
//!
//! Every shard opens its own descriptor on the store ([`Backend::open_shard`])
//! and submits `IORING_OP_READ` / `IORING_OP_WRITE` entries through the
//! shard's ring ([`Submit::Pending`]); the shard hands the completions back to
//! [`ShardBackend::complete`]. Durability (io_uring_enter(2), pwritev2(2),
//! fdatasync(2)):
//! - FUA → the write carries `RWF_DSYNC`: its data (and the metadata needed
//!   to read it back) is on stable storage before the completion;
//! - SYNCHRONIZE CACHE → `IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC` on
//!   the shard's descriptor; fdatasync covers the whole inode, so writes
//!   completed on every shard before it started are durable when it ends;
//! - WCE off → the SCSI layer sets FUA on every write.
//!
//! Thin provisioning (rules in `store`): UNMAP becomes `IORING_OP_FALLOCATE`
//! (punch hole; on a block device without unmap-with-zeroes, zero range)
//! on the shard's ring; GET LBA STATUS runs `lseek(SEEK_DATA/SEEK_HOLE)`
//! on the shard's own descriptor, a bounded number of calls that never
//! wait for the device.
//!
//! A short read or write is resumed for the rest; a read that hits the end
//! of the file (the file was truncated behind us) and a write that makes no
//! progress are errors, never a silent success. Errors map in
//! [`crate::errno`].
//!
//! With O_DIRECT in effect (see `store`), the core's task buffers (page
//! aligned, `shardtgt_core::buf::PageBuf`) go straight to the device. A
//! buffer that is not aligned to the device's DMA alignment (ext4 on
//! virtio wants 512), or whose length is not, is copied through one of the
//! shard's bounce buffers ([`BOUNCE_BUFFERS`] × [`BOUNCE_SIZE`] per shard
//! and LU, allocated on first use, page-aligned); longer requests go through
//! in pieces. When all are in use the request waits ([`Submit::Busy`]);
//! aligned buffers go straight to the device. On tmpfs nothing needs
//! alignment. It never falls back to buffered I/O behind the
//! configuration's back.
//!
//! It never blocks the shard: the only system calls on the data path are
//! the ring's (and lseek(2) for GET LBA STATUS, answered from the
//! filesystem's extent map).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use crate::aligned::BouncePool;
use crate::errno::IoFailure;
use crate::store::Store;
use crate::{
    Backend, BackendError, BackendOp, BackendSpec, BackendStatus, Completion, IoBuf, IoId, IoRequest, Provisioning,
    QueueFull, ShardBackend, Submit, SubmitQueue,
};

/// Bounce buffers per shard and O_DIRECT LU (used only for unaligned task buffers).
pub const BOUNCE_BUFFERS: usize = 32;
/// Bytes per bounce buffer.
pub const BOUNCE_SIZE: usize = 256 << 10;
/// Requests one shard may have in flight on one LU.
const MAX_OPS: usize = 1 << 16;
/// Retries of an `EINTR`/`EAGAIN` completion before it counts as a failure.
const MAX_RETRIES: u8 = 3;

/// A file or block device served through io_uring.
#[derive(Debug)]
pub struct FileBackend {
    store: Arc<Store>,
}

impl FileBackend {
    /// Open (create, extend) the store `spec` describes (see `store` for
    /// the rules).
    pub fn open(spec: &BackendSpec) -> Result<Self, BackendError> {
        Ok(FileBackend { store: Arc::new(Store::open(spec)?) })
    }

    /// The file or device.
    pub fn path(&self) -> &Path {
        &self.store.path
    }

    /// O_DIRECT in effect?
    pub fn direct(&self) -> bool {
        self.store.dio.is_some()
    }

    /// A block device (not a regular file)?
    pub fn is_block_device(&self) -> bool {
        self.store.block_device
    }

    /// I/O failures so far (every shard).
    pub fn errors(&self) -> u64 {
        self.store.log.errors()
    }

    /// Pieces of requests copied through the shards' O_DIRECT bounce
    /// buffers so far (every shard); 0 while every task buffer is aligned.
    pub fn bounce_copies(&self) -> u64 {
        self.store.bounce_copies.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn result(s: BackendStatus) -> Result<(), BackendStatus> {
    match s {
        BackendStatus::Ok => Ok(()),
        s => Err(s),
    }
}

/// Synchronous access through the store's buffered descriptor (tools and
/// tests; coherent with the shards' O_DIRECT I/O through the page cache).
impl Backend for FileBackend {
    fn kind(&self) -> &'static str {
        "file"
    }
    fn size_bytes(&self) -> u64 {
        self.store.size_bytes()
    }
    fn block_size(&self) -> u32 {
        self.store.block_size
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendStatus> {
        let req = IoRequest { op: BackendOp::Read, offset, len: buf.len() as u32, fua: false };
        result(self.store.execute_blocking(self.store.fd.as_raw_fd(), false, &req, buf, &mut None))
    }
    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> Result<(), BackendStatus> {
        let req = IoRequest { op: BackendOp::Write, offset, len: buf.len() as u32, fua };
        if let Some(s) = self.store.precheck(&req, buf.len()) {
            return result(s);
        }
        // `transfer` takes `&mut` for both directions; a write only reads it.
        let r = crate::store::transfer(self.store.fd.as_raw_fd(), BackendOp::Write, &mut buf.to_vec(), offset, fua);
        r.map_err(|(done, f)| self.store.log.fail(BackendOp::Write, offset + done as u64, f))
    }
    fn flush(&self) -> Result<(), BackendStatus> {
        let req = IoRequest { op: BackendOp::Flush, offset: 0, len: 0, fua: false };
        result(self.store.execute_blocking(self.store.fd.as_raw_fd(), false, &req, &mut [], &mut None))
    }
    fn read_only(&self) -> bool {
        self.store.read_only
    }
    fn open_shard(&self) -> Result<Box<dyn ShardBackend>, BackendError> {
        Ok(Box::new(FileShard::new(self.store.clone())?))
    }
    fn provisioning(&self) -> Provisioning {
        self.store.provisioning()
    }
    fn deallocate(&self, offset: u64, len: u64) -> Result<(), BackendStatus> {
        self.store.deallocate_sync(offset, len)
    }
    fn resize(&self, size_bytes: u64) -> Result<(), BackendError> {
        self.store.resize(size_bytes)
    }
}

/// One request in flight on a shard.
#[derive(Debug)]
struct Op {
    id: IoId,
    op: BackendOp,
    fua: bool,
    /// The task buffer (valid until we report completion).
    buf: IoBuf,
    offset: u64,
    /// Bytes finished.
    done: usize,
    /// Bytes of the entry now in flight.
    chunk: usize,
    bounce: Option<u16>,
    retries: u8,
    /// Deallocate: bytes of the range.
    range: u64,
    /// Deallocate on a block device that cannot punch: zero range instead.
    zero_range: bool,
}

#[derive(Debug)]
struct Slot {
    gen: u16,
    op: Option<Op>,
}

/// A shard's handle: its own descriptor, its in-flight requests, its
/// bounce buffers.
#[derive(Debug)]
pub(crate) struct FileShard {
    store: Arc<Store>,
    fd: OwnedFd,
    slots: Vec<Slot>,
    free: Vec<u32>,
    in_flight: usize,
    bounce: Option<BouncePool>,
}

fn cookie(index: u32, gen: u16) -> u64 {
    u64::from(index) | (u64::from(gen) << 24)
}

impl FileShard {
    fn new(store: Arc<Store>) -> Result<Self, BackendError> {
        let fd = store.open_data_fd()?;
        let bounce = store.dio.map(|a| BouncePool::new(BOUNCE_BUFFERS, BOUNCE_SIZE, a.bounce_align()));
        Ok(FileShard { store, fd, slots: Vec::new(), free: Vec::new(), in_flight: 0, bounce })
    }

    fn alloc(&mut self, op: Op) -> Result<u32, Op> {
        if let Some(i) = self.free.pop() {
            self.slots[i as usize].op = Some(op);
            return Ok(i);
        }
        if self.slots.len() >= MAX_OPS {
            return Err(op);
        }
        self.slots.push(Slot { gen: 0, op: Some(op) });
        Ok((self.slots.len() - 1) as u32)
    }

    /// Release slot `i` (and its bounce buffer); returns its request id.
    fn release(&mut self, i: u32) -> Option<IoId> {
        let slot = &mut self.slots[i as usize];
        let op = slot.op.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(i);
        if let (Some(b), Some(pool)) = (op.bounce, self.bounce.as_mut()) {
            pool.give(b);
        }
        Some(op.id)
    }

    /// Queue the entry for what is left of request `i`.
    fn push_next(&mut self, i: u32, q: &mut dyn SubmitQueue) -> Result<(), QueueFull> {
        let fd = types::Fd(self.fd.as_raw_fd());
        let slot = &mut self.slots[i as usize];
        let ck = cookie(i, slot.gen);
        let op = slot.op.as_mut().expect("live slot");
        let entry: squeue::Entry = match op.op {
            BackendOp::Flush => opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build(),
            BackendOp::Deallocate => {
                let mode = if op.zero_range {
                    libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE
                } else {
                    self.store.punch_mode()
                };
                opcode::Fallocate::new(fd, op.range).offset(op.offset).mode(mode).build()
            }
            BackendOp::MapStatus => unreachable!("answered in submit"),
            dir => {
                let rest = op.buf.len() - op.done;
                let (ptr, len) = match op.bounce {
                    Some(b) => {
                        let bb = self.bounce.as_mut().expect("bounce pool with O_DIRECT").get(b);
                        let n = rest.min(bb.len());
                        if dir == BackendOp::Write {
                            bb.as_mut_slice()[..n].copy_from_slice(&op.buf.as_mut_slice()[op.done..op.done + n]);
                        }
                        self.store.bounce_copies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        (bb.as_mut_ptr(), n)
                    }
                    None => (op.buf.as_mut_ptr().wrapping_add(op.done), rest),
                };
                op.chunk = len;
                let off = op.offset + op.done as u64;
                if dir == BackendOp::Read {
                    opcode::Read::new(fd, ptr, len as u32).offset(off).build()
                } else {
                    let flags = if op.fua { libc::RWF_DSYNC } else { 0 };
                    opcode::Write::new(fd, ptr, len as u32).offset(off).rw_flags(flags).build()
                }
            }
        };
        // SAFETY: the entry points into either the task buffer, which the
        // reactor keeps valid and untouched until we report this request
        // done (IoBuf::from_raw's contract), or a bounce buffer owned by
        // this handle and reserved for the request until then; the handle
        // is never dropped with requests in flight (the reactor leaks its
        // backends rather than do so, and `Drop` leaks the pool). The
        // descriptor is held by the kernel for the operation's duration.
        unsafe { q.push(entry, ck) }
    }
}

impl ShardBackend for FileShard {
    fn submit(&mut self, id: IoId, req: &IoRequest, mut buf: IoBuf, q: &mut dyn SubmitQueue) -> Submit {
        if let Some(s) = self.store.precheck(req, buf.len()) {
            return Submit::Done(s);
        }
        if req.op == BackendOp::MapStatus {
            let r = self.store.map_status(self.fd.as_raw_fd(), req.offset, buf.as_mut_slice());
            return Submit::Done(r.map_or_else(|f| self.store.log.fail(req.op, req.offset, f), |()| BackendStatus::Ok));
        }
        let mut bounce = None;
        if let (Some(a), Some(pool)) = (self.store.dio, self.bounce.as_mut()) {
            let data = matches!(req.op, BackendOp::Read | BackendOp::Write);
            if data && !a.buf_ok(buf.as_mut_ptr(), buf.len()) {
                match pool.take() {
                    Some(i) => bounce = Some(i),
                    None if pool.in_use() > 0 => return Submit::Busy,
                    None => return Submit::Done(BackendStatus::Other(libc::ENOMEM)),
                }
            }
        }
        self.start(id, req, buf, bounce, q)
    }

    fn complete(&mut self, c: Completion, q: &mut dyn SubmitQueue, done: &mut dyn FnMut(IoId, BackendStatus)) {
        let i = (c.cookie & 0xFF_FFFF) as u32;
        let gen = (c.cookie >> 24) as u16;
        let log = &self.store.log;
        let Some(op) = self.slots.get_mut(i as usize).filter(|s| s.gen == gen).and_then(|s| s.op.as_mut()) else {
            tracing::warn!(store = %self.store.path.display(), cookie = c.cookie, "completion for no request");
            return;
        };
        let at = op.offset + op.done as u64;
        let outcome = if c.result < 0 {
            let e = -c.result;
            if matches!(e, libc::EINTR | libc::EAGAIN) && op.retries < MAX_RETRIES {
                op.retries += 1;
                None
            } else if e == libc::EOPNOTSUPP
                && op.op == BackendOp::Deallocate
                && self.store.block_device
                && !op.zero_range
            {
                // No unmap-with-zeroes on this device: zero the range instead.
                op.zero_range = true;
                None
            } else {
                Some(log.fail(op.op, at, IoFailure::Errno(e)))
            }
        } else if matches!(op.op, BackendOp::Flush | BackendOp::Deallocate) {
            Some(BackendStatus::Ok)
        } else if c.result == 0 {
            let f = if op.op == BackendOp::Read { IoFailure::Eof } else { IoFailure::NoProgress };
            Some(log.fail(op.op, at, f))
        } else {
            let n = (c.result as usize).min(op.chunk);
            if let (Some(b), BackendOp::Read) = (op.bounce, op.op) {
                let bb = self.bounce.as_mut().expect("bounce pool with O_DIRECT").get(b);
                op.buf.as_mut_slice()[op.done..op.done + n].copy_from_slice(&bb.as_mut_slice()[..n]);
            }
            op.done += n;
            op.retries = 0;
            (op.done >= op.buf.len()).then_some(BackendStatus::Ok)
        };
        let kind = op.op;
        let status = match outcome {
            Some(s) => s,
            // Short transfer or interrupted: go on with the rest.
            None => match self.push_next(i, q) {
                Ok(()) => return,
                Err(QueueFull) => self.store.log.fail(kind, at, IoFailure::Errno(libc::EAGAIN)),
            },
        };
        if let Some(id) = self.release(i) {
            self.in_flight -= 1;
            done(id, status);
        }
    }
}

impl FileShard {
    fn start(&mut self, id: IoId, req: &IoRequest, buf: IoBuf, bounce: Option<u16>, q: &mut dyn SubmitQueue) -> Submit {
        let op = Op {
            id,
            op: req.op,
            fua: req.fua,
            buf,
            offset: req.offset,
            done: 0,
            chunk: 0,
            bounce,
            retries: 0,
            range: u64::from(req.len),
            zero_range: false,
        };
        let i = match self.alloc(op) {
            Ok(i) => i,
            Err(op) => {
                if let (Some(b), Some(pool)) = (op.bounce, self.bounce.as_mut()) {
                    pool.give(b);
                }
                return Submit::Busy;
            }
        };
        match self.push_next(i, q) {
            Ok(()) => {
                self.in_flight += 1;
                Submit::Pending
            }
            Err(QueueFull) => {
                self.release(i);
                Submit::Busy
            }
        }
    }
}

impl Drop for FileShard {
    fn drop(&mut self) {
        if self.in_flight > 0 {
            // The kernel may still write into the bounce buffers: leak them
            // (only at a forced exit).
            tracing::warn!(store = %self.store.path.display(), in_flight = self.in_flight, "dropped with I/O in flight");
            std::mem::forget(self.bounce.take());
        }
    }
}

#[cfg(test)]
mod tests;
