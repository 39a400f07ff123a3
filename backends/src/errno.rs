//! The one place where an operating-system error becomes a [`BackendStatus`],
//! and the per-LU log that reports each distinct errno once.
//!
//! | errno | status | sense the core sends (SBC-4 / SPC-4) |
//! |---|---|---|
//! | `EIO`, end of file inside the LU, a write that makes no progress | `MediumError` | 03h/11h/00h read, 03h/0Ch/00h write and flush |
//! | `ENOSPC`, `EDQUOT` | `NoSpace` | 07h/27h/07h SPACE ALLOCATION FAILED WRITE PROTECT |
//! | `EROFS`; on a write also `EPERM`, `EACCES`, `EBADF` (immutable file, read-only descriptor) | `ReadOnly` | 07h/27h/00h WRITE PROTECTED |
//! | anything else | `Other(errno)` | 04h/44h/00h INTERNAL TARGET FAILURE |
//!
//! It never retries and never decides what to send: the core maps statuses
//! to sense data (`shardtgt_core::scsi::commands::complete_backend`).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{BackendOp, BackendStatus};

/// Map `errno` from operation `op` (see the module table).
pub fn map_errno(op: BackendOp, errno: i32) -> BackendStatus {
    match errno {
        libc::EIO => BackendStatus::MediumError,
        libc::ENOSPC | libc::EDQUOT => BackendStatus::NoSpace,
        libc::EROFS => BackendStatus::ReadOnly,
        libc::EPERM | libc::EACCES | libc::EBADF if op == BackendOp::Write => BackendStatus::ReadOnly,
        e => BackendStatus::Other(e),
    }
}

/// Why an I/O ended badly, before mapping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum IoFailure {
    /// The system call failed with this errno.
    Errno(i32),
    /// A read hit the end of the file inside the LU (the file was truncated
    /// behind our back): reported as an unrecovered read error.
    Eof,
    /// A write transferred nothing.
    NoProgress,
}

impl IoFailure {
    pub(crate) fn status(self, op: BackendOp) -> BackendStatus {
        match self {
            IoFailure::Errno(e) => map_errno(op, e),
            IoFailure::Eof | IoFailure::NoProgress => BackendStatus::MediumError,
        }
    }
}

const ERRNO_BITS: usize = 4096;

/// Per-LU error log: counts every failure and writes one `warn` line for
/// the first occurrence of each distinct errno (so a dying disk does not
/// flood the log with one line per I/O). Shared by every shard's handle.
#[derive(Debug)]
pub(crate) struct ErrnoLog {
    what: String,
    seen: Box<[AtomicU64]>,
    eof_seen: AtomicBool,
    no_progress_seen: AtomicBool,
    errors: AtomicU64,
}

impl ErrnoLog {
    /// A log naming the LU's store as `what` (its path).
    pub(crate) fn new(what: String) -> Self {
        ErrnoLog {
            what,
            seen: (0..ERRNO_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            eof_seen: AtomicBool::new(false),
            no_progress_seen: AtomicBool::new(false),
            errors: AtomicU64::new(0),
        }
    }

    /// Failures so far.
    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Record a failure of `op` at byte `offset`, log it if it is the first
    /// of its kind, and return the status to report.
    pub(crate) fn fail(&self, op: BackendOp, offset: u64, f: IoFailure) -> BackendStatus {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let status = f.status(op);
        let first = match f {
            IoFailure::Errno(e) => {
                let bit = (e.max(0) as usize).min(ERRNO_BITS - 1);
                let mask = 1u64 << (bit % 64);
                self.seen[bit / 64].fetch_or(mask, Ordering::Relaxed) & mask == 0
            }
            IoFailure::Eof => !self.eof_seen.swap(true, Ordering::Relaxed),
            IoFailure::NoProgress => !self.no_progress_seen.swap(true, Ordering::Relaxed),
        };
        if first {
            let why = match f {
                IoFailure::Errno(e) => format!("{} (errno {e})", io::Error::from_raw_os_error(e)),
                IoFailure::Eof => "end of file inside the LU (was the file truncated?)".to_string(),
                IoFailure::NoProgress => "write transferred no bytes".to_string(),
            };
            tracing::warn!(
                store = %self.what,
                ?op,
                offset,
                ?status,
                "backend I/O failed: {why}; further failures of this kind are counted, not logged"
            );
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use BackendOp::*;
        assert_eq!(map_errno(Read, libc::EIO), BackendStatus::MediumError);
        assert_eq!(map_errno(Write, libc::EIO), BackendStatus::MediumError);
        assert_eq!(map_errno(Flush, libc::EIO), BackendStatus::MediumError);
        assert_eq!(map_errno(Write, libc::ENOSPC), BackendStatus::NoSpace);
        assert_eq!(map_errno(Flush, libc::ENOSPC), BackendStatus::NoSpace);
        assert_eq!(map_errno(Write, libc::EDQUOT), BackendStatus::NoSpace);
        assert_eq!(map_errno(Write, libc::EROFS), BackendStatus::ReadOnly);
        assert_eq!(map_errno(Write, libc::EPERM), BackendStatus::ReadOnly);
        assert_eq!(map_errno(Write, libc::EBADF), BackendStatus::ReadOnly);
        assert_eq!(map_errno(Read, libc::EPERM), BackendStatus::Other(libc::EPERM));
        assert_eq!(map_errno(Read, libc::EBADF), BackendStatus::Other(libc::EBADF));
        assert_eq!(map_errno(Read, libc::EINVAL), BackendStatus::Other(libc::EINVAL));
        assert_eq!(map_errno(Read, libc::ENXIO), BackendStatus::Other(libc::ENXIO));
        assert_eq!(IoFailure::Eof.status(Read), BackendStatus::MediumError);
        assert_eq!(IoFailure::NoProgress.status(Write), BackendStatus::MediumError);
    }

    #[test]
    fn log_counts_every_failure() {
        let l = ErrnoLog::new("x".into());
        for _ in 0..3 {
            assert_eq!(l.fail(BackendOp::Read, 0, IoFailure::Errno(libc::EIO)), BackendStatus::MediumError);
        }
        assert_eq!(l.fail(BackendOp::Read, 0, IoFailure::Errno(-5)), BackendStatus::Other(-5));
        assert_eq!(l.fail(BackendOp::Read, 0, IoFailure::Errno(1 << 20)), BackendStatus::Other(1 << 20));
        assert_eq!(l.fail(BackendOp::Read, 0, IoFailure::Eof), BackendStatus::MediumError);
        assert_eq!(l.errors(), 6);
    }
}
