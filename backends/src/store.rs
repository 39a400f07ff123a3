//! Opening the backing store of a `file` or `rdwr` LU (a regular file or a
//! block device), its geometry, O_DIRECT alignment, and the blocking
//! read/write/flush both backends share (tools, tests, the `rdwr` workers).
//!
//! Rules (see `deploy/shardtgt.example.toml`):
//! - A missing regular file is created sparse with the configured size
//!   (ftruncate(2), mode 0600); a read-only LU never creates one.
//! - An existing file smaller than the configured size is extended (sparse);
//!   a larger one is used up to the configured size; without a size, the
//!   file's size (rounded down to the block size) is the LU's size.
//! - A block device's size comes from `BLKGETSIZE64`; a configured size may
//!   be smaller, never larger.
//! - If the store cannot be opened for writing (`EACCES`, `EPERM`, `EROFS`)
//!   it is opened read-only and the LU becomes read-only, with a warning
//!   (what Linux tgt's `bs_rdwr` does too).
//! - `direct = true` opens the data descriptors with O_DIRECT when the
//!   filesystem supports it and the LU's block size is a multiple of the
//!   O_DIRECT offset alignment (statx(2) `STATX_DIOALIGN`; tmpfs, which
//!   accepts O_DIRECT since Linux 6.6 without alignment rules, is detected by
//!   its magic; block devices without statx support use their logical block
//!   size; anything else 4096). Otherwise the LU runs buffered, with a warning.
//!
//! - Thin provisioning ([`Store::provisioning`]): a writable regular file
//!   on a filesystem that punches holes (probed at open with a punch past
//!   the end, which changes nothing) deallocates with
//!   `fallocate(PUNCH_HOLE | KEEP_SIZE)` — partial filesystem blocks at
//!   the edges of the range are zeroed by the kernel, whole ones freed — and
//!   reports provisioning from `lseek(SEEK_DATA / SEEK_HOLE)`. A writable
//!   block device deallocates with `fallocate(PUNCH_HOLE | KEEP_SIZE)`
//!   (the kernel's zero-out with unmap, which guarantees zeros), falling
//!   back to `fallocate(ZERO_RANGE | KEEP_SIZE)` (zeros written if the
//!   device cannot unmap them) where the device has no such command; it
//!   reports every block mapped (a device does not say).
//! - Online resize ([`Store::resize`]): a regular file grows with
//!   ftruncate(2) (sparse); it shrinks only when `lseek(SEEK_DATA)` finds
//!   no data past the new end. A block device grows up to its own size
//!   and never shrinks (whether its blocks are in use cannot be told).
//!
//! It never keeps a lock and never caches data.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use shardtgt_core::scsi::lba_status;

use crate::aligned::AlignedBuf;
use crate::errno::{ErrnoLog, IoFailure};
use crate::{check_bounds, BackendError, BackendOp, BackendSpec, BackendStatus, IoRequest, Provisioning};

/// `BLKGETSIZE64` = `_IOR(0x12, 114, size_t)` (linux/fs.h) on the generic
/// ioctl encoding (x86-64, aarch64, riscv64).
const BLKGETSIZE64: u64 = 0x8008_1272;

/// Largest bounce buffer a blocking (worker) request grows to; longer
/// unaligned O_DIRECT requests are copied through it in pieces.
pub(crate) const BLOCKING_BOUNCE_MAX: usize = 1 << 20;

/// Alignment O_DIRECT needs on this store.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct DioAlign {
    /// Memory alignment of user buffers (`stx_dio_mem_align`).
    pub(crate) mem: usize,
    /// File offset and length alignment (`stx_dio_offset_align`).
    pub(crate) offset: u64,
}

impl DioAlign {
    /// Can `len` bytes at `ptr` go straight to the O_DIRECT descriptor?
    pub(crate) fn buf_ok(&self, ptr: *const u8, len: usize) -> bool {
        (ptr as usize | len) % self.mem == 0
    }

    /// Alignment for bounce buffers: at least a page.
    pub(crate) fn bounce_align(&self) -> usize {
        self.mem.max(4096)
    }
}

/// An opened backing store.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) path: PathBuf,
    /// Buffered descriptor for geometry, flushes and synchronous I/O.
    pub(crate) fd: OwnedFd,
    /// Bytes exported; changed by an online resize ([`Store::resize`]).
    size_bytes: AtomicU64,
    pub(crate) block_size: u32,
    /// Effective: configured, or forced because writing was refused.
    pub(crate) read_only: bool,
    pub(crate) block_device: bool,
    /// O_DIRECT in effect, with its alignment.
    pub(crate) dio: Option<DioAlign>,
    pub(crate) log: ErrnoLog,
    /// Deallocation works here (see the module docs).
    pub(crate) punch: bool,
    /// Copies through a shard's O_DIRECT bounce buffers so far, every shard
    /// (one per piece copied in or out; task buffers are page aligned, so
    /// this stays 0 unless a request's buffer or length is not aligned).
    pub(crate) bounce_copies: AtomicU64,
}

fn cpath(p: &Path) -> Result<CString, BackendError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| BackendError(format!("{}: path contains a NUL byte", p.display())))
}

fn open_raw(p: &CString, flags: i32, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: `p` is a valid NUL-terminated string; open(2) reads it only.
    let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: zeroed is a valid `stat`; fstat writes at most its size.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live, writable `stat`.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn block_device_size(fd: RawFd) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 into `size`, which is live.
    if unsafe { libc::ioctl(fd, BLKGETSIZE64 as _, &mut size as *mut u64) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

fn logical_block_size(fd: RawFd) -> io::Result<u64> {
    let mut lbs: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int into `lbs`, which is live.
    if unsafe { libc::ioctl(fd, libc::BLKSSZGET, &mut lbs as *mut libc::c_int) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lbs.max(512) as u64)
}

/// O_DIRECT alignment of the file behind `fd`, or why O_DIRECT is not
/// possible (statx(2) `STATX_DIOALIGN`, Linux 6.1+).
fn dio_align(fd: RawFd, block_device: bool) -> Result<DioAlign, String> {
    // SAFETY: zeroed is a valid `statx`; the kernel fills at most its size.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    let empty = c"";
    // SAFETY: an empty path with AT_EMPTY_PATH names `fd` itself; `sx` is live.
    let r = unsafe { libc::statx(fd, empty.as_ptr(), libc::AT_EMPTY_PATH, libc::STATX_DIOALIGN, &mut sx) };
    if r == 0 && sx.stx_mask & libc::STATX_DIOALIGN != 0 {
        if sx.stx_dio_offset_align == 0 {
            return Err("the filesystem does not support O_DIRECT".into());
        }
        return Ok(DioAlign {
            mem: (sx.stx_dio_mem_align as usize).max(1),
            offset: u64::from(sx.stx_dio_offset_align),
        });
    }
    // SAFETY: zeroed is a valid `statfs`; fstatfs writes at most its size.
    let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `sf` is live and writable.
    if unsafe { libc::fstatfs(fd, &mut sf) } == 0 && sf.f_type == libc::TMPFS_MAGIC {
        // shmem's O_DIRECT goes through the page cache: no alignment rules.
        return Ok(DioAlign { mem: 1, offset: 1 });
    }
    if block_device {
        let lbs = logical_block_size(fd).map_err(|e| format!("BLKSSZGET: {e}"))?;
        return Ok(DioAlign { mem: lbs as usize, offset: lbs });
    }
    Ok(DioAlign { mem: 4096, offset: 4096 })
}

impl Store {
    /// Open (and if needed create or extend) the store `spec` describes.
    pub(crate) fn open(spec: &BackendSpec) -> Result<Store, BackendError> {
        let path = spec.path.clone().ok_or_else(|| BackendError("no path given".into()))?;
        let name = path.display().to_string();
        let err = |m: String| BackendError(format!("{name}: {m}"));
        let c = cpath(&path)?;
        let meta = match std::fs::metadata(&path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(e.to_string())),
        };
        let mut created = false;
        if let Some(m) = &meta {
            let ft = m.file_type();
            if ft.is_dir() {
                return Err(err("is a directory".into()));
            }
            if !ft.is_file() && !ft.is_block_device() {
                return Err(err("is neither a regular file nor a block device".into()));
            }
        } else {
            if spec.read_only {
                return Err(err("does not exist (a read-only LU never creates its file)".into()));
            }
            let size = spec.size_bytes.ok_or_else(|| err("does not exist and no size is given to create it".into()))?;
            let fd = open_raw(&c, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600)
                .map_err(|e| err(format!("cannot create: {e}")))?;
            // SAFETY: plain syscall on our own descriptor.
            if unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) } != 0 {
                let e = io::Error::last_os_error();
                let _ = std::fs::remove_file(&path);
                return Err(err(format!("cannot size the new file to {size} bytes: {e}")));
            }
            created = true;
            tracing::info!(store = %name, size, "created sparse backing file");
        }

        let mut read_only = spec.read_only;
        let fd = if read_only {
            open_raw(&c, libc::O_RDONLY, 0).map_err(|e| err(format!("cannot open: {e}")))?
        } else {
            match open_raw(&c, libc::O_RDWR, 0) {
                Ok(fd) => fd,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM | libc::EROFS)) => {
                    let fd = open_raw(&c, libc::O_RDONLY, 0)
                        .map_err(|e2| err(format!("cannot open for writing ({e}) nor for reading ({e2})")))?;
                    tracing::warn!(store = %name, "cannot open for writing ({e}): serving the LU read-only");
                    read_only = true;
                    fd
                }
                Err(e) => return Err(err(format!("cannot open: {e}"))),
            }
        };
        let st = fstat(fd.as_raw_fd()).map_err(|e| err(format!("fstat: {e}")))?;
        let block_device = st.st_mode & libc::S_IFMT == libc::S_IFBLK;
        let bs = u64::from(spec.block_size);
        let size_bytes = if block_device {
            let dev = block_device_size(fd.as_raw_fd()).map_err(|e| err(format!("BLKGETSIZE64: {e}")))?;
            match spec.size_bytes {
                Some(s) if s > dev => {
                    return Err(err(format!("size {s} is larger than the block device ({dev} bytes)")));
                }
                Some(s) => s,
                None => dev - dev % bs,
            }
        } else {
            let file = st.st_size as u64;
            match spec.size_bytes {
                Some(s) if s > file && !created => {
                    if read_only {
                        return Err(err(format!(
                            "file has {file} bytes, fewer than the configured size {s}, and the LU is read-only"
                        )));
                    }
                    // SAFETY: plain syscall on our own descriptor.
                    if unsafe { libc::ftruncate(fd.as_raw_fd(), s as libc::off_t) } != 0 {
                        let e = io::Error::last_os_error();
                        return Err(err(format!("cannot extend from {file} to {s} bytes: {e}")));
                    }
                    tracing::info!(store = %name, from = file, to = s, "extended backing file (sparse)");
                    s
                }
                Some(s) => s,
                None => file - file % bs,
            }
        };
        if size_bytes == 0 {
            return Err(err("is empty: give a size to grow it".into()));
        }
        if size_bytes % bs != 0 {
            // Only reachable with an explicit size; the config checks it too.
            return Err(err(format!("size {size_bytes} is not a multiple of the block size {bs}")));
        }
        if spec.size_bytes.is_none() {
            let raw = if block_device { size_bytes } else { st.st_size as u64 };
            if raw != size_bytes {
                tracing::warn!(store = %name, bytes = raw, lu_bytes = size_bytes, "size is not a multiple of the block size: the tail is not exported");
            }
        }

        let punch = !read_only && (block_device || probe_punch(fd.as_raw_fd(), size_bytes.max(st.st_size as u64)));
        let mut store = Store {
            path,
            fd,
            size_bytes: AtomicU64::new(size_bytes),
            block_size: spec.block_size,
            read_only,
            block_device,
            dio: None,
            log: ErrnoLog::new(name.clone()),
            punch,
            bounce_copies: AtomicU64::new(0),
        };
        if spec.direct {
            match dio_align(store.fd.as_raw_fd(), block_device) {
                Ok(a) if bs % a.offset != 0 => tracing::warn!(
                    store = %name,
                    "direct I/O off: block size {bs} is not a multiple of the O_DIRECT alignment {}",
                    a.offset
                ),
                Ok(a) => {
                    store.dio = Some(a);
                    match store.open_data_fd() {
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(store = %name, "direct I/O off: {e}");
                            store.dio = None;
                        }
                    }
                }
                Err(why) => tracing::warn!(store = %name, "direct I/O off: {why}"),
            }
        }
        Ok(store)
    }

    /// A new open file description on the same file (O_DIRECT if in
    /// effect), for one shard or worker set. Reopened through
    /// `/proc/self/fd`, so it is the same inode even if the path was renamed
    /// or replaced since.
    pub(crate) fn open_data_fd(&self) -> Result<OwnedFd, BackendError> {
        let mut flags = if self.read_only { libc::O_RDONLY } else { libc::O_RDWR };
        if self.dio.is_some() {
            flags |= libc::O_DIRECT;
        }
        let proc = CString::new(format!("/proc/self/fd/{}", self.fd.as_raw_fd())).expect("no NUL in a number");
        open_raw(&proc, flags, 0)
            .or_else(|_| open_raw(&cpath(&self.path)?, flags, 0).map_err(|e| BackendError(e.to_string())))
            .map_err(|e| BackendError(format!("{}: cannot open: {e}", self.path.display())))
    }

    /// Check a request against the LU before doing anything: bounds and
    /// read-only. `Some(status)` finishes it on the spot.
    pub(crate) fn precheck(&self, req: &IoRequest, buf_len: usize) -> Option<BackendStatus> {
        if req.op == BackendOp::Flush {
            // Nothing of ours to make durable on a read-only store.
            return self.read_only.then_some(BackendStatus::Ok);
        }
        let size = self.size_bytes();
        match req.op {
            BackendOp::Deallocate => {
                if let Err(s) = check_bounds(req.offset, req.len as usize, size) {
                    return Some(s);
                }
                if self.read_only {
                    return Some(BackendStatus::ReadOnly);
                }
                if !self.punch {
                    return Some(BackendStatus::Other(libc::EOPNOTSUPP));
                }
                return (req.len == 0).then_some(BackendStatus::Ok);
            }
            BackendOp::MapStatus => {
                return (buf_len != req.len as usize || req.offset > size)
                    .then_some(BackendStatus::Other(libc::EINVAL));
            }
            _ => {}
        }
        if buf_len != req.len as usize {
            return Some(BackendStatus::Other(libc::EINVAL));
        }
        if let Err(s) = check_bounds(req.offset, buf_len, size) {
            return Some(s);
        }
        if req.op == BackendOp::Write && self.read_only {
            return Some(BackendStatus::ReadOnly);
        }
        if buf_len == 0 {
            return Some(BackendStatus::Ok);
        }
        None
    }

    /// Run one request with blocking system calls on `fd` (this store's
    /// buffered descriptor or an O_DIRECT one from [`Store::open_data_fd`],
    /// as `direct` says). Unaligned buffers on O_DIRECT go through `bounce`,
    /// which grows to at most [`BLOCKING_BOUNCE_MAX`]. Failures are logged
    /// and mapped in [`crate::errno`].
    pub(crate) fn execute_blocking(
        &self,
        fd: RawFd,
        direct: bool,
        req: &IoRequest,
        buf: &mut [u8],
        bounce: &mut Option<AlignedBuf>,
    ) -> BackendStatus {
        if let Some(s) = self.precheck(req, buf.len()) {
            return s;
        }
        let r = match req.op {
            BackendOp::Flush => datasync(self.fd.as_raw_fd()).map_err(|f| (0, f)),
            BackendOp::Deallocate => self.deallocate_blocking(fd, req.offset, u64::from(req.len)).map_err(|f| (0, f)),
            BackendOp::MapStatus => self.map_status(fd, req.offset, buf).map_err(|f| (0, f)),
            op => match self.dio.filter(|a| direct && !a.buf_ok(buf.as_ptr(), buf.len())) {
                None => transfer(fd, op, buf, req.offset, req.fua),
                Some(a) => {
                    let want = buf.len().min(BLOCKING_BOUNCE_MAX).next_multiple_of(a.bounce_align());
                    if bounce.as_ref().is_none_or(|b| b.len() < want) {
                        *bounce = None;
                        *bounce = AlignedBuf::new(want, a.bounce_align());
                    }
                    match bounce.as_mut() {
                        None => Err((0, IoFailure::Errno(libc::ENOMEM))),
                        Some(b) => bounced(fd, op, buf, req.offset, req.fua, b.as_mut_slice()),
                    }
                }
            },
        };
        match r {
            Ok(()) => BackendStatus::Ok,
            Err((done, f)) => self.log.fail(req.op, req.offset + done as u64, f),
        }
    }
}

impl Store {
    /// Bytes exported now.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    /// What this store offers for thin provisioning (module docs).
    pub(crate) fn provisioning(&self) -> Provisioning {
        Provisioning { thin: self.punch, deallocate: self.punch }
    }

    /// The fallocate(2) mode that deallocates here first.
    pub(crate) fn punch_mode(&self) -> i32 {
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
    }

    /// Deallocate `len` bytes at `offset` with blocking fallocate(2) on
    /// `fd` (module docs: hole punch, or zero-out on a device).
    pub(crate) fn deallocate_blocking(&self, fd: RawFd, offset: u64, len: u64) -> Result<(), IoFailure> {
        match fallocate(fd, self.punch_mode(), offset, len) {
            Err(libc::EOPNOTSUPP) if self.block_device => {
                fallocate(fd, libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE, offset, len)
            }
            r => r,
        }
        .map_err(IoFailure::Errno)
    }

    /// [`crate::Backend::deallocate`] on the shared descriptor: bounds
    /// checked, refused on a store that cannot deallocate or is read-only,
    /// failures mapped and logged like any other I/O error.
    pub(crate) fn deallocate_sync(&self, offset: u64, len: u64) -> Result<(), BackendStatus> {
        if !self.punch {
            return Err(BackendStatus::Other(libc::EOPNOTSUPP));
        }
        if self.read_only {
            return Err(BackendStatus::ReadOnly);
        }
        crate::check_bounds(offset, len.try_into().unwrap_or(usize::MAX), self.size_bytes())?;
        self.deallocate_blocking(self.fd.as_raw_fd(), offset, len)
            .map_err(|f| self.log.fail(BackendOp::Deallocate, offset, f))
    }

    /// Fill `buf` with provisioning records ([`lba_status`]) from `offset`
    /// to the end of the store: from `lseek(SEEK_DATA/SEEK_HOLE)` on a
    /// regular file (two calls per record at most, and at most one record
    /// per 16 bytes of `buf`), one mapped run on a block device.
    pub(crate) fn map_status(&self, fd: RawFd, offset: u64, buf: &mut [u8]) -> Result<(), IoFailure> {
        buf.fill(0);
        let end = self.size_bytes();
        if self.block_device {
            lba_status::put(buf, 0, end.saturating_sub(offset), lba_status::MAPPED);
            return Ok(());
        }
        let mut pos = offset;
        let mut i = 0;
        while pos < end {
            let data = match seek(fd, pos, libc::SEEK_DATA) {
                Ok(d) => d.min(end),
                Err(libc::ENXIO) => end,
                Err(e) => return Err(IoFailure::Errno(e)),
            };
            if data > pos {
                if !lba_status::put(buf, i, data - pos, lba_status::DEALLOCATED) {
                    break;
                }
                i += 1;
                pos = data;
                continue;
            }
            let hole = match seek(fd, pos, libc::SEEK_HOLE) {
                Ok(h) => h.min(end),
                // Data at `pos` but no hole after it: data to the end.
                Err(libc::ENXIO) => end,
                Err(e) => return Err(IoFailure::Errno(e)),
            };
            // SEEK_HOLE at a data offset returns a later offset; guard anyway.
            let hole = hole.max(pos + 1).min(end);
            if !lba_status::put(buf, i, hole - pos, lba_status::MAPPED) {
                break;
            }
            i += 1;
            pos = hole;
        }
        Ok(())
    }

    /// Online resize to `size` bytes (a positive multiple of the block
    /// size): module docs for the rules. Errors are one line.
    pub(crate) fn resize(&self, size: u64) -> Result<(), BackendError> {
        let name = self.path.display();
        let cur = self.size_bytes();
        if size == cur {
            return Ok(());
        }
        if size == 0 || size % u64::from(self.block_size) != 0 {
            return Err(BackendError(format!(
                "size {size} is not a positive multiple of the block size {}",
                self.block_size
            )));
        }
        let fd = self.fd.as_raw_fd();
        if self.block_device {
            if size < cur {
                return Err(BackendError(format!(
                    "{name}: shrinking a block device LUN is refused (whether its blocks past {size} are in use cannot be told)"
                )));
            }
            let dev = block_device_size(fd).map_err(|e| BackendError(format!("{name}: BLKGETSIZE64: {e}")))?;
            if size > dev {
                return Err(BackendError(format!("{name}: the block device has {dev} bytes, fewer than {size}")));
            }
            self.size_bytes.store(size, Ordering::Release);
            return Ok(());
        }
        if self.read_only {
            return Err(BackendError(format!("{name}: the LU is read-only, its file cannot be resized")));
        }
        if size < cur {
            match seek(fd, size, libc::SEEK_DATA) {
                Ok(d) if d < cur => {
                    return Err(BackendError(format!(
                        "{name}: data in use at byte {d}, past the new end {size}: shrinking refused (UNMAP it first)"
                    )))
                }
                Ok(_) | Err(libc::ENXIO) => {}
                Err(e) => {
                    let e = io::Error::from_raw_os_error(e);
                    return Err(BackendError(format!("{name}: lseek(SEEK_DATA): {e}: shrinking refused")));
                }
            }
            // Commands past the new end are refused from here on.
            self.size_bytes.store(size, Ordering::Release);
        }
        let file = fstat(fd).map_err(|e| BackendError(format!("{name}: fstat: {e}")))?.st_size as u64;
        // Shrink the file only when it is exactly ours: a file longer than
        // the LU keeps its unexported tail.
        if size > file || (size < cur && file <= cur && file > size) {
            // SAFETY: plain syscall on our own descriptor.
            if unsafe { libc::ftruncate(fd, size as libc::off_t) } != 0 {
                let e = io::Error::last_os_error();
                if size < cur {
                    // Nothing past the new end was in use; the LU is smaller anyway.
                    tracing::warn!(store = %name, "cannot truncate to {size} bytes: {e}");
                } else {
                    return Err(BackendError(format!("{name}: cannot extend from {file} to {size} bytes: {e}")));
                }
            }
        }
        self.size_bytes.store(size, Ordering::Release);
        tracing::info!(store = %name, from = cur, to = size, "resized online");
        Ok(())
    }
}

/// lseek(2) with `whence`; the errno on failure.
fn seek(fd: RawFd, offset: u64, whence: i32) -> Result<u64, i32> {
    // SAFETY: plain syscall; it only moves this descriptor's file position,
    // which no I/O here uses (every read and write carries its offset).
    let r = unsafe { libc::lseek(fd, offset as libc::off_t, whence) };
    if r < 0 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
    }
    Ok(r as u64)
}

/// fallocate(2), retried on EINTR; the errno on failure.
fn fallocate(fd: RawFd, mode: i32, offset: u64, len: u64) -> Result<(), i32> {
    loop {
        // SAFETY: plain syscall on a descriptor the caller owns.
        if unsafe { libc::fallocate(fd, mode, offset as libc::off_t, len as libc::off_t) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// Does this regular file punch holes? A punch of one page at `end` (the
/// end of the file or beyond) changes nothing and fails with EOPNOTSUPP
/// where the filesystem cannot.
fn probe_punch(fd: RawFd, end: u64) -> bool {
    match fallocate(fd, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, end, 4096) {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(
                "no hole punching on this filesystem ({}): LU fully provisioned",
                io::Error::from_raw_os_error(e)
            );
            false
        }
    }
}

/// Read or write all of `buf` at `offset`, resuming after short transfers.
/// On failure, how many bytes were done and why.
pub(crate) fn transfer(
    fd: RawFd,
    op: BackendOp,
    buf: &mut [u8],
    offset: u64,
    fua: bool,
) -> Result<(), (usize, IoFailure)> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        let off = (offset + done as u64) as libc::off_t;
        let n = if op == BackendOp::Read {
            // SAFETY: `rest` is a live, writable slice of `rest.len()` bytes.
            unsafe { libc::pread(fd, rest.as_mut_ptr().cast(), rest.len(), off) }
        } else {
            let iov = libc::iovec { iov_base: rest.as_mut_ptr().cast(), iov_len: rest.len() };
            let flags = if fua { libc::RWF_DSYNC } else { 0 };
            // SAFETY: one iovec over a live slice; the kernel only reads it.
            unsafe { libc::pwritev2(fd, &iov, 1, off, flags) }
        };
        match n {
            n if n > 0 => done += n as usize,
            0 if op == BackendOp::Read => return Err((done, IoFailure::Eof)),
            0 => return Err((done, IoFailure::NoProgress)),
            _ => {
                let e = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
                if e != libc::EINTR {
                    return Err((done, IoFailure::Errno(e)));
                }
            }
        }
    }
    Ok(())
}

/// [`transfer`] through an aligned bounce buffer, piece by piece.
fn bounced(
    fd: RawFd,
    op: BackendOp,
    buf: &mut [u8],
    offset: u64,
    fua: bool,
    bounce: &mut [u8],
) -> Result<(), (usize, IoFailure)> {
    let mut done = 0;
    while done < buf.len() {
        let n = (buf.len() - done).min(bounce.len());
        let piece = &mut bounce[..n];
        if op == BackendOp::Write {
            piece.copy_from_slice(&buf[done..done + n]);
        }
        transfer(fd, op, piece, offset + done as u64, fua).map_err(|(d, f)| (done + d, f))?;
        if op == BackendOp::Read {
            buf[done..done + n].copy_from_slice(piece);
        }
        done += n;
    }
    Ok(())
}

/// fdatasync(2), retried on EINTR.
pub(crate) fn datasync(fd: RawFd) -> Result<(), IoFailure> {
    loop {
        // SAFETY: plain syscall on a descriptor the caller owns.
        if unsafe { libc::fdatasync(fd) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
        if e != libc::EINTR {
            return Err(IoFailure::Errno(e));
        }
    }
}
