//! Background sanitize operations (SBC-4 §4.11): a [`Sanitizer`] that runs
//! a SANITIZE OVERWRITE on a thread of its own, through the LU's
//! [`Backend`]'s blocking write and flush, independent of the connection,
//! task and shard that started it.
//!
//! A BLOCK ERASE deallocates the whole store in 1 GiB steps (stores with
//! [`crate::Provisioning::deallocate`] only; the core offers it nowhere
//! else), then flushes. The overwrite is paced (`rate` bytes per second, 0 = as fast as the store
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
            let what = if op.erase { "block erase" } else { "overwrite" };
            tracing::info!(lu = %name, passes = op.passes, blocks = op.blocks, "sanitize {what} started");
            let done = if op.erase { erase(backend.as_ref(), &op, &shared) } else { overwrite(backend.as_ref(), &op, rate, &shared) };
            let ok = match done {
                Ok(()) => {
                    tracing::info!(lu = %name, "sanitize {what} finished");
                    true
                }
                Err(why) => {
                    tracing::error!(lu = %name, %why, "sanitize {what} failed: medium access refused until a SANITIZE succeeds");
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

/// Deallocate the whole store, then flush.
fn erase(backend: &dyn Backend, op: &SanitizeOp, shared: &LuShared) -> Result<(), String> {
    const STEP: u64 = 1 << 30;
    let total = op.blocks.saturating_mul(u64::from(op.block_size.max(1)));
    let mut off = 0u64;
    while off < total {
        let n = (total - off).min(STEP);
        backend.deallocate(off, n).map_err(|s| format!("deallocate at byte {off}: {s:?}"))?;
        off += n;
        shared.sanitize.report_progress(off, total);
    }
    backend.flush().map_err(|s| format!("flush: {s:?}"))
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
        let op = SanitizeOp { erase: false, pattern: vec![0xA5, 0x5A], passes: 2, block_size: 512, blocks: 6144 };
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
        let op = SanitizeOp { erase: false, pattern: vec![1], passes: 1, block_size: 4096, blocks: 512 };
        s.start(op, shared.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert!(shared.sanitizing(), "still running while paced");
        let p = shared.sanitize.progress();
        assert!(p > 0 && p < 0xFFFF, "progress {p:#x} is reported mid-way");
        wait_done(&shared, 0);
        assert!(t.elapsed() >= Duration::from_millis(240), "took {:?}", t.elapsed());
    }

    #[test]
    fn block_erase_deallocates_every_block() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("shardtgt-erase-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lu.img");
        let b = create(&BackendSpec::at_path(BackendKind::File, &path, Some(8 << 20), 512)).unwrap();
        if !b.provisioning().deallocate {
            eprintln!("SKIPPED: {} cannot punch holes", dir.display());
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        }
        b.write(0, &vec![0x77u8; 8 << 20], false).unwrap();
        b.flush().unwrap();
        assert!(std::fs::metadata(&path).unwrap().blocks() >= 16384, "written out");
        let shared = Arc::new(LuShared::default());
        shared.try_begin_sanitize();
        let op = SanitizeOp { erase: true, pattern: vec![], passes: 1, block_size: 512, blocks: 16384 };
        ThreadSanitizer::new(b.clone(), 1, "t/2".into()).start(op, shared.clone()).unwrap();
        wait_done(&shared, 0);
        assert!(!shared.sanitize.failed());
        assert_eq!(std::fs::metadata(&path).unwrap().blocks(), 0, "every block deallocated");
        let mut all = vec![1u8; 8 << 20];
        b.read(0, &mut all).unwrap();
        assert!(all.iter().all(|&x| x == 0), "erased blocks read as zeros");
        // A store that cannot deallocate fails the operation instead of pretending.
        let ram = create(&BackendSpec::memory(BackendKind::Ram, 1 << 20, 512)).unwrap();
        let shared = Arc::new(LuShared::default());
        shared.try_begin_sanitize();
        let op = SanitizeOp { erase: true, pattern: vec![], passes: 1, block_size: 512, blocks: 2048 };
        ThreadSanitizer::new(ram, 0, "t/3".into()).start(op, shared.clone()).unwrap();
        wait_done(&shared, 0);
        assert!(shared.sanitize.failed());
        std::fs::remove_dir_all(&dir).unwrap();
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
            .start(
                SanitizeOp { erase: false, pattern: vec![1], passes: 1, block_size: 512, blocks: 2048 },
                shared.clone(),
            )
            .unwrap();
        wait_done(&shared, 0);
        assert!(shared.sanitize.failed() && !shared.sanitizing());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
