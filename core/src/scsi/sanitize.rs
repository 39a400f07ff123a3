//! The sanitize operation of an LU (SBC-4 §4.11), which outlives the
//! SANITIZE command that starts it.
//!
//! SBC-4 §4.11.2 says a sanitize operation, once started, is not stopped by
//! ABORT TASK, ABORT TASK SET, a LOGICAL UNIT RESET, a hard reset or the
//! loss of the I_T nexus that started it; until it ends, medium access
//! commands from every nexus end with NOT READY, SANITIZE IN PROGRESS with
//! a progress indication (SPC-4 §4.5.2.4.4). If it fails, medium access
//! commands end with MEDIUM ERROR, SANITIZE COMMAND FAILED (03/31/03) until
//! a later SANITIZE succeeds (SBC-4 §4.11.5; EXIT FAILURE MODE is not
//! offered).
//!
//! The core is sans-IO, so the overwrite itself runs in a [`Sanitizer`]
//! that the embedding program installs on the LU's [`LuShared`] (the daemon
//! runs it on a thread of its own against the LU's backend, paced so it
//! does not starve other LUs on the same store). The state the commands
//! consult lives here, in atomics: one relaxed load on every command (the
//! `sanitizing` flag of [`LuShared`]), the rest only while one runs or
//! after one failed. Without an installed sanitizer (unit tests, fuzzing)
//! SANITIZE falls back to a [`super::Job`] that runs inside the command.
//!
//! With a state file (the daemon's `state_dir`), a started operation is
//! recorded in `<state file>.sanitize` (written atomically before the
//! command answers) and removed when it succeeds; a daemon that restarts
//! with the record present starts the operation again
//! ([`SanitizeState::resume`]) — SBC-4 §4.11.2 has a sanitize continue
//! after a power on, and a half-overwritten LU must not be served as if
//! the overwrite had finished.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::lu_shared::LuShared;

/// One SANITIZE OVERWRITE (SBC-4 §5.30.2) or BLOCK ERASE (§5.30.3) request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SanitizeOp {
    /// BLOCK ERASE: deallocate every block (they read back as zeros);
    /// `pattern` and `passes` are then unused.
    pub erase: bool,
    /// Initialization pattern, repeated to fill every logical block.
    pub pattern: Vec<u8>,
    /// Number of passes over the medium (OVERWRITE COUNT, 1..=31).
    pub passes: u8,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// Logical blocks on the medium.
    pub blocks: u64,
}

impl SanitizeOp {
    fn to_text(&self) -> String {
        let hex: String = self.pattern.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "erase={}\npasses={}\nblock_size={}\nblocks={}\npattern={hex}\n",
            u8::from(self.erase),
            self.passes,
            self.block_size,
            self.blocks
        )
    }

    fn from_text(text: &str) -> Option<SanitizeOp> {
        let mut op = SanitizeOp { erase: false, pattern: Vec::new(), passes: 0, block_size: 0, blocks: 0 };
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "erase" => op.erase = v == "1",
                "passes" => op.passes = v.parse().ok()?,
                "block_size" => op.block_size = v.parse().ok()?,
                "blocks" => op.blocks = v.parse().ok()?,
                "pattern" => {
                    op.pattern = (0..v.len() / 2)
                        .map(|i| v.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                        .collect::<Option<Vec<u8>>>()?;
                }
                _ => return None,
            }
        }
        let ok = (1..=31).contains(&op.passes)
            && op.block_size > 0
            && (op.erase || !op.pattern.is_empty())
            && op.pattern.len() <= op.block_size as usize;
        ok.then_some(op)
    }

    /// Fill `buf` (a whole number of blocks) with the pattern, repeated from
    /// the start of every block.
    pub fn fill(&self, buf: &mut [u8]) {
        let bs = self.block_size.max(1) as usize;
        if self.pattern.is_empty() {
            buf.fill(0);
            return;
        }
        for block in buf.chunks_mut(bs) {
            for (x, p) in block.iter_mut().zip(self.pattern.iter().cycle()) {
                *x = *p;
            }
        }
    }
}

/// Runs sanitize operations for one LU outside any command.
pub trait Sanitizer: Send + Sync + fmt::Debug {
    /// Start `op` in the background; [`SanitizeState::report_progress`] and
    /// [`SanitizeState::finish`] on `shared` report how it goes. `Err` with
    /// a reason when it cannot start (the command then fails with HARDWARE
    /// ERROR, INTERNAL TARGET FAILURE and nothing changed).
    fn start(&self, op: SanitizeOp, shared: Arc<LuShared>) -> Result<(), String>;
}

/// The sanitize state of an LU, inside its [`LuShared`].
#[derive(Debug, Default)]
pub struct SanitizeState {
    runner: Mutex<Option<Arc<dyn Sanitizer>>>,
    /// Fraction done, 0..=0xFFFF (SPC-4 progress indication).
    progress: AtomicU32,
    /// The last sanitize operation failed (cleared when one succeeds).
    failed: AtomicBool,
    /// Counts finished sanitize operations (a waiting SANITIZE with
    /// IMMED = 0 ends when it moves).
    finished: AtomicU64,
}

impl SanitizeState {
    /// Install the background runner (the daemon does, for every LU).
    pub fn set_runner(&self, r: Arc<dyn Sanitizer>) {
        *self.runner.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    pub(crate) fn runner(&self) -> Option<Arc<dyn Sanitizer>> {
        self.runner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Progress of the running operation, 0..=0xFFFF.
    pub fn progress(&self) -> u16 {
        self.progress.load(Ordering::Relaxed).min(0xFFFF) as u16
    }

    /// Report `done` of `total` units finished.
    pub fn report_progress(&self, done: u64, total: u64) {
        let p = if total == 0 { 0 } else { (u128::from(done) * 0x1_0000 / u128::from(total)).min(0xFFFF) };
        self.progress.store(p as u32, Ordering::Relaxed);
    }

    /// The last sanitize operation failed: medium access is refused.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// How many sanitize operations have ended so far.
    pub fn finished_count(&self) -> u64 {
        self.finished.load(Ordering::Acquire)
    }

    /// Record `op` as started (in the LU's state file's `.sanitize`
    /// sibling, when there is a state file).
    pub(crate) fn begin(&self, shared: &LuShared, op: &SanitizeOp) -> std::io::Result<()> {
        self.progress.store(0, Ordering::Relaxed);
        match record_path(shared) {
            Some(path) => super::lu_shared::write_atomic(&path, op.to_text().as_bytes()),
            None => Ok(()),
        }
    }

    /// At start: if the state file records a sanitize operation that never
    /// succeeded, start it again on the installed runner. Returns whether
    /// one was started.
    pub fn resume(&self, shared: &Arc<LuShared>) -> bool {
        let Some(path) = record_path(shared) else { return false };
        let Some(op) = std::fs::read_to_string(&path).ok().and_then(|t| SanitizeOp::from_text(&t)) else {
            return false;
        };
        let Some(runner) = self.runner() else { return false };
        if !shared.try_begin_sanitize() {
            return false;
        }
        self.progress.store(0, Ordering::Relaxed);
        if runner.start(op, shared.clone()).is_err() {
            self.failed.store(true, Ordering::Release);
            shared.set_sanitizing(false);
            return false;
        }
        true
    }

    /// The operation ended (`ok`: every pass written and flushed). Called by
    /// the runner; also clears the LU's sanitize-in-progress flag and, on
    /// success, the record of it.
    pub fn finish(&self, shared: &LuShared, ok: bool) {
        if ok {
            if let Some(path) = record_path(shared) {
                let _ = std::fs::remove_file(path);
            }
        }
        self.failed.store(!ok, Ordering::Release);
        self.progress.store(0, Ordering::Relaxed);
        shared.set_sanitizing(false);
        self.finished.fetch_add(1, Ordering::AcqRel);
    }
}

/// Where a started sanitize operation is recorded: beside the LU's state
/// file.
fn record_path(shared: &LuShared) -> Option<std::path::PathBuf> {
    shared.state_file().map(|p| p.with_extension("sanitize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_repeats_the_pattern_from_each_block_start() {
        let op = SanitizeOp { erase: false, pattern: vec![1, 2, 3], passes: 1, block_size: 4, blocks: 2 };
        let mut b = [9u8; 8];
        op.fill(&mut b);
        assert_eq!(b, [1, 2, 3, 1, 1, 2, 3, 1]);
        let empty = SanitizeOp { pattern: vec![], ..op };
        empty.fill(&mut b);
        assert_eq!(b, [0; 8]);
    }

    #[test]
    fn record_round_trips_and_rejects_garbage() {
        let op = SanitizeOp { erase: false, pattern: vec![0, 0xff, 0x10], passes: 7, block_size: 512, blocks: 99 };
        assert_eq!(SanitizeOp::from_text(&op.to_text()), Some(op));
        let erase = SanitizeOp { erase: true, pattern: vec![], passes: 1, block_size: 4096, blocks: 5 };
        assert_eq!(SanitizeOp::from_text(&erase.to_text()), Some(erase));
        for bad in [
            "",
            "passes=0\nblock_size=512\nblocks=1\npattern=aa\n",
            "passes=1\nblock_size=512\nblocks=1\npattern=zz\n",
            "x=1\n",
            "passes",
        ] {
            assert_eq!(SanitizeOp::from_text(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn progress_and_finish() {
        let shared = LuShared::default();
        let s = &shared.sanitize;
        s.report_progress(1, 4);
        assert_eq!(s.progress(), 0x4000);
        s.report_progress(4, 4);
        assert_eq!(s.progress(), 0xFFFF, "never wraps to 0 at the end");
        s.report_progress(1, 0);
        assert_eq!(s.progress(), 0);
        shared.set_sanitizing(true);
        s.finish(&shared, false);
        assert!(s.failed() && !shared.sanitizing());
        assert_eq!(s.finished_count(), 1);
        s.finish(&shared, true);
        assert!(!s.failed());
        assert_eq!(s.finished_count(), 2);
    }
}
