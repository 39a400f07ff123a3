//! The `ram` backend: one anonymous memory region of the LU's size, shared
//! by every shard without a lock (see `mem` for why this is sound). Contents
//! are lost when the process exits. It never persists anything and never
//! allocates per I/O.

use std::sync::Arc;

use crate::mem::{Region, WORD};
use crate::{check_bounds, Backend, BackendError, BackendStatus, Provisioning, ShardBackend, SyncShard};

/// Memory-backed store. Cloning shares the same memory.
#[derive(Clone, Debug)]
pub struct RamBackend {
    region: Arc<Region>,
    block_size: u32,
}

impl RamBackend {
    /// Map `size_bytes` of memory (reserved lazily: untouched pages cost
    /// nothing and read as zeros).
    pub fn new(size_bytes: u64, block_size: u32) -> Result<Self, BackendError> {
        let len = usize::try_from(size_bytes)
            .map_err(|_| BackendError(format!("ram size {size_bytes} does not fit in memory")))?;
        Ok(RamBackend { region: Arc::new(Region::new(len)?), block_size })
    }

    fn check(&self, offset: u64, len: usize) -> Result<usize, BackendStatus> {
        check_bounds(offset, len, self.region.len() as u64)?;
        // In bounds, so the offset fits in usize.
        let off = offset as usize;
        if off % WORD != 0 || len % WORD != 0 {
            return Err(BackendStatus::Other(libc::EINVAL));
        }
        Ok(off)
    }
}

impl Backend for RamBackend {
    fn kind(&self) -> &'static str {
        "ram"
    }
    fn size_bytes(&self) -> u64 {
        self.region.len() as u64
    }
    fn block_size(&self) -> u32 {
        self.block_size
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendStatus> {
        let off = self.check(offset, buf.len())?;
        self.region.read(off, buf);
        Ok(())
    }
    fn write(&self, offset: u64, buf: &[u8], _fua: bool) -> Result<(), BackendStatus> {
        let off = self.check(offset, buf.len())?;
        self.region.write(off, buf);
        Ok(())
    }
    fn flush(&self) -> Result<(), BackendStatus> {
        Ok(())
    }
    fn open_shard(&self) -> Result<Box<dyn ShardBackend>, BackendError> {
        Ok(Box::new(SyncShard::new(self.clone())))
    }
    /// Thin, but without deallocation: untouched memory reads as zeros and
    /// UNMAP writes zeros (LBPRZ holds), yet the pages stay (giving them
    /// back with `madvise(MADV_DONTNEED)` would work, but `mincore(2)` cannot
    /// tell a page that was never written from one that is swapped out, so
    /// GET LBA STATUS could not be truthful; it reports every block mapped).
    fn provisioning(&self) -> Provisioning {
        Provisioning { thin: true, deallocate: false }
    }
    fn resize(&self, _size_bytes: u64) -> Result<(), BackendError> {
        Err(BackendError(
            "a ram LUN cannot be resized online: its memory region has a fixed size and shards copy \
             in and out of it without a lock (delete the LUN and create it again)"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_roundtrip_and_zero_fill() {
        let b = RamBackend::new(1 << 20, 512).unwrap();
        assert_eq!(b.size_bytes(), 1 << 20);
        assert_eq!(b.block_size(), 512);
        let mut buf = vec![0xFFu8; 1024];
        b.read(4096, &mut buf).unwrap();
        assert!(buf.iter().all(|&x| x == 0), "fresh memory reads as zeros");
        let data: Vec<u8> = (0..1024u32).map(|i| (i * 7 + 3) as u8).collect();
        b.write(4096, &data, true).unwrap();
        b.read(4096, &mut buf).unwrap();
        assert_eq!(buf, data);
        // Neighbours untouched.
        let mut n = vec![1u8; 512];
        b.read(3584, &mut n).unwrap();
        assert!(n.iter().all(|&x| x == 0));
        b.read(5120, &mut n).unwrap();
        assert!(n.iter().all(|&x| x == 0));
        b.flush().unwrap();
    }

    #[test]
    fn bounds_and_alignment_are_errors_not_panics() {
        let b = RamBackend::new(8192, 512).unwrap();
        let mut buf = vec![0u8; 512];
        assert!(b.read(7680, &mut buf).is_ok());
        assert_eq!(b.read(7681, &mut buf), Err(BackendStatus::Other(libc::EINVAL)));
        assert_eq!(b.read(8192, &mut buf), Err(BackendStatus::Other(libc::EINVAL)));
        assert_eq!(b.write(u64::MAX - 10, &buf, false), Err(BackendStatus::Other(libc::EINVAL)));
        assert_eq!(b.write(4, &buf, false), Err(BackendStatus::Other(libc::EINVAL)));
        let mut odd = vec![0u8; 13];
        assert_eq!(b.read(0, &mut odd), Err(BackendStatus::Other(libc::EINVAL)));
        assert!(b.read(8192, &mut []).is_ok(), "empty read at the end is in bounds");
    }

    #[test]
    fn shared_between_clones_and_threads() {
        let b = RamBackend::new(1 << 20, 4096).unwrap();
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let data = vec![t + 1; 4096];
                    for i in 0..32u64 {
                        b.write((u64::from(t) * 32 + i) * 4096, &data, false).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut buf = vec![0u8; 4096];
        for t in 0..4u8 {
            b.read(u64::from(t) * 32 * 4096 + 4096, &mut buf).unwrap();
            assert!(buf.iter().all(|&x| x == t + 1));
        }
    }

    #[test]
    fn large_lazy_region_is_cheap() {
        // 1 GiB costs nothing until touched.
        let b = RamBackend::new(1 << 30, 512).unwrap();
        let mut buf = vec![1u8; 512];
        b.read((1 << 30) - 512, &mut buf).unwrap();
        assert!(buf.iter().all(|&x| x == 0));
    }

    /// Rough copy speed of the atomic word loop (run with
    /// `cargo test --release -p shardtgt-backends -- --ignored --nocapture`).
    #[test]
    #[ignore = "measurement, not a check"]
    fn copy_throughput() {
        let b = RamBackend::new(64 << 20, 512).unwrap();
        let mut buf = vec![7u8; 256 << 10];
        let t = std::time::Instant::now();
        let rounds = 2048u64;
        for i in 0..rounds {
            let off = (i % 256) * (256 << 10);
            b.write(off, &buf, false).unwrap();
            b.read(off, &mut buf).unwrap();
        }
        let gib = (rounds * 2 * (256 << 10)) as f64 / f64::from(1 << 30);
        println!("ram copy: {:.1} GiB/s", gib / t.elapsed().as_secs_f64());
    }
}
