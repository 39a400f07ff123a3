//! The `null` backend: reads return zeros, writes are dropped. For protocol
//! and transport benchmarks; it never stores anything. It can be resized
//! online (its size is one atomic shared by every shard). It advertises no
//! thin provisioning: nothing is ever allocated, and UNMAP is not offered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{check_bounds, Backend, BackendError, BackendStatus, ShardBackend, SyncShard};

/// Store of the given geometry that keeps nothing. Cloning shares the size.
#[derive(Clone, Debug)]
pub struct NullBackend {
    size_bytes: Arc<AtomicU64>,
    block_size: u32,
}

impl NullBackend {
    /// A null store of `size_bytes`.
    pub fn new(size_bytes: u64, block_size: u32) -> Self {
        NullBackend { size_bytes: Arc::new(AtomicU64::new(size_bytes)), block_size }
    }
}

impl Backend for NullBackend {
    fn kind(&self) -> &'static str {
        "null"
    }
    fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }
    fn block_size(&self) -> u32 {
        self.block_size
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendStatus> {
        check_bounds(offset, buf.len(), self.size_bytes())?;
        buf.fill(0);
        Ok(())
    }
    fn write(&self, offset: u64, buf: &[u8], _fua: bool) -> Result<(), BackendStatus> {
        check_bounds(offset, buf.len(), self.size_bytes())
    }
    fn flush(&self) -> Result<(), BackendStatus> {
        Ok(())
    }
    fn open_shard(&self) -> Result<Box<dyn ShardBackend>, BackendError> {
        Ok(Box::new(SyncShard::new(self.clone())))
    }
    /// Any size: nothing is stored, so nothing can be cut off.
    fn resize(&self, size_bytes: u64) -> Result<(), BackendError> {
        self.size_bytes.store(size_bytes, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zeros_drops_writes_checks_bounds() {
        let b = NullBackend::new(1 << 20, 512);
        b.write(0, &[7u8; 512], false).unwrap();
        let mut buf = [9u8; 512];
        b.read(0, &mut buf).unwrap();
        assert!(buf.iter().all(|&x| x == 0));
        assert_eq!(b.read(1 << 20, &mut buf), Err(BackendStatus::Other(libc::EINVAL)));
        assert_eq!(b.write((1 << 20) - 256, &buf, false), Err(BackendStatus::Other(libc::EINVAL)));
        assert!(b.flush().is_ok());
        assert_eq!(b.kind(), "null");
        assert!(!b.provisioning().thin, "nothing to unmap");
    }

    #[test]
    fn resize_is_seen_by_every_clone() {
        let b = NullBackend::new(1 << 20, 512);
        let c = b.clone();
        assert_eq!(c.read(1 << 20, &mut [0u8; 512]), Err(BackendStatus::Other(libc::EINVAL)));
        b.resize(2 << 20).unwrap();
        assert_eq!(c.size_bytes(), 2 << 20);
        assert!(c.read(1 << 20, &mut [0u8; 512]).is_ok());
    }
}
