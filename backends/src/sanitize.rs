//! Background sanitize operations (SBC-4 §4.11): a [`Sanitizer`] that runs
//! a SANITIZE OVERWRITE on a thread of its own, through the LU's
//! [`Backend`]'s blocking write and flush, independent of the connection,
//! task and shard that started it.
//!
//! The overwrite is paced (`rate` bytes per second, 0 = as fast as the store
//! takes it): an LU under sanitize answers nothing but NOT READY anyway, so
//! the only thing speed buys is an earlier end, while a whole-LU overwrite
//! at full speed takes the store's bandwidth (and, for RAM LUs, memory
//! bandwidth and a core) from every other LU that shares it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shardtgt_core::scsi::{LuShared, SanitizeOp, Sanitizer};

use crate::Backend;

/// Bytes written per backend call.
const CHUNK: usize = 1 << 20;

/// Runs sanitize operations of one LU on a background thread.
#[derive(Debug)]
pub struct ThreadSanitizer {
    backend: Arc<dyn Backend>,
    /// Bytes per second; 0: unpaced.
    rate: u64,
    /// For logs: target and LUN.
    name: String,
}

impl ThreadSanitizer {
    /// A runner for `backend`, writing at most `rate` bytes per second
    /// (0: unpaced); `name` identifies the LU in logs.
    pub fn new(backend: Arc<dyn Backend>, rate: u64, name: String) -> Self {
        ThreadSanitizer { backend, rate, name }
    }
}

impl Sanitizer for ThreadSanitizer {
    fn start(&self, op: SanitizeOp, shared: Arc<LuShared>) -> Result<(), String> {
        let backend = self.backend.clone();
        let rate = self.rate;
        let name = self.name.clone();
        let spawned = std::thread::Builder::new().name("sanitize".into()).spawn(move || {
            tracing::info!(lu = %name, passes = op.passes, blocks = op.blocks, "sanitize overwrite started");
            let ok = match overwrite(backend.as_ref(), &op, rate, &shared) {
                Ok(()) => {
                    tracing::info!(lu = %name, "sanitize overwrite finished");
                    true
                }
                Err(why) => {
                    tracing::error!(lu = %name, %why, "sanitize overwrite failed: medium access refused until a SANITIZE succeeds");
                    false
                }
            };
            shared.sanitize.finish(&shared, ok);
        });
        spawned.map(|_| ()).map_err(|e| {
            tracing::error!(lu = %self.name, error = %e, "cannot start the sanitize thread");
            format!("cannot start the sanitize thread: {e}")
        })
    }
}

/// Write every pass of `op` over the whole store, then flush.
fn overwrite(backend: &dyn Backend, op: &SanitizeOp, rate: u64, shared: &LuShared) -> Result<(), String> {
    let bs = u64::from(op.block_size.max(1));
    let total = op.blocks.saturating_mul(bs);
    let chunk_len = (CHUNK as u64 / bs).max(1) * bs;
    let mut buf = vec![0u8; chunk_len.min(total.max(bs)) as usize];
    op.fill(&mut buf);
    let passes = u64::from(op.passes.max(1));
    let all = total.saturating_mul(passes);
    let started = Instant::now();
    let mut written = 0u64;
    for _ in 0..passes {
        let mut off = 0u64;
        while off < total {
            let n = (total - off).min(buf.len() as u64) as usize;
            let piece = buf.get(..n).ok_or("chunk larger than its buffer")?;
            backend.write(off, piece, false).map_err(|s| format!("write at byte {off}: {s:?}"))?;
            off += n as u64;
            written += n as u64;
            shared.sanitize.report_progress(written, all);
            pace(started, written, rate);
        }
        backend.flush().map_err(|s| format!("flush: {s:?}"))?;
    }
    Ok(())
}

/// Sleep until `written` bytes are no more than `rate` per second since
/// `started`.
fn pace(started: Instant, written: u64, rate: u64) {
    if rate == 0 {
        return;
    }
    let due = Duration::from_secs_f64(written as f64 / rate as f64);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{create, BackendKind, BackendSpec};
    use std::time::Duration;

    fn wait_done(shared: &LuShared, before: u64) {
        let t = Instant::now();
        while shared.sanitize.finished_count() == before {
            assert!(t.elapsed() < Duration::from_secs(20), "sanitize never finished");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn overwrites_every_block_with_the_pattern_and_clears_the_flag() {
        let b = create(&BackendSpec::memory(BackendKind::Ram, 3 << 20, 512)).unwrap();
        b.write(4096, &[7u8; 512], false).unwrap();
        let shared = Arc::new(LuShared::default());
        let s = ThreadSanitizer::new(b.clone(), 0, "t/0".into());
        let op = SanitizeOp { pattern: vec![0xA5, 0x5A], passes: 2, block_size: 512, blocks: 6144 };
        assert!(shared.try_begin_sanitize());
        s.start(op, shared.clone()).unwrap();
        wait_done(&shared, 0);
        assert!(!shared.sanitizing() && !shared.sanitize.failed());
        let mut all = vec![0u8; 3 << 20];
        b.read(0, &mut all).unwrap();
        assert!(all.chunks(2).all(|c| c == [0xA5, 0x5A]), "every byte overwritten");
    }

    #[test]
    fn pacing_holds_the_rate() {
        // 2 MiB at 8 MiB/s: at least 250 ms.
        let b = create(&BackendSpec::memory(BackendKind::Ram, 2 << 20, 4096)).unwrap();
        let shared = Arc::new(LuShared::default());
        let s = ThreadSanitizer::new(b, 8 << 20, "t/0".into());
        let t = Instant::now();
        shared.try_begin_sanitize();
        s.start(SanitizeOp { pattern: vec![1], passes: 1, block_size: 4096, blocks: 512 }, shared.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert!(shared.sanitizing(), "still running while paced");
        let p = shared.sanitize.progress();
        assert!(p > 0 && p < 0xFFFF, "progress {p:#x} is reported mid-way");
        wait_done(&shared, 0);
        assert!(t.elapsed() >= Duration::from_millis(240), "took {:?}", t.elapsed());
    }

    #[test]
    fn a_failing_store_leaves_the_lu_in_the_failed_state() {
        let dir = std::env::temp_dir().join(format!("shardtgt-sanitize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ro.img");
        std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
        let mut spec = BackendSpec::at_path(BackendKind::File, &path, None, 512);
        spec.read_only = true;
        let b = create(&spec).unwrap();
        let shared = Arc::new(LuShared::default());
        shared.try_begin_sanitize();
        ThreadSanitizer::new(b, 0, "t/1".into())
            .start(SanitizeOp { pattern: vec![1], passes: 1, block_size: 512, blocks: 2048 }, shared.clone())
            .unwrap();
        wait_done(&shared, 0);
        assert!(shared.sanitize.failed() && !shared.sanitizing());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
