//! Commands that need more than one backend operation, or data
//! transformed between them: WRITE SAME, UNMAP (deallocation on a backend
//! that can, zeros otherwise), GET LBA STATUS on a deallocating backend,
//! SANITIZE, COMPARE AND WRITE, ORWRITE, EXTENDED COPY, and writes that
//! must wait for a COMPARE AND WRITE holding their range.
//!
//! A [`Job`] is a small state machine. The connection first collects
//! [`Job::data_out_len`] bytes of Data-Out into the task buffer (`data`),
//! then calls [`Job::step`] with the result of the previous backend
//! operation until it answers [`JobStep::Done`]. A step either asks for one
//! backend read or write (from/into `data` or a second buffer, `scratch`,
//! at most [`CHUNK_BYTES`] long), asks to be called again later
//! ([`JobStep::Wait`], a CAW range is locked), or finishes. A job that
//! answers with Data-In (GET LBA STATUS) leaves it at the start of
//! `scratch`, `data_len` bytes as its [`Outcome::Done`] says. Jobs allocate
//! (their scratch buffer, range lists); they are never on the READ/WRITE
//! path.

use crate::bytes::{copy_prefix, prefix};
use std::sync::Arc;

use super::commands::complete_backend;
use super::lba_status;
use super::lu_shared::LuShared;
use super::sense::Sense;
use super::writer::DataIn;
use super::{BackendOp, BackendStatus, IoRequest, Outcome};

/// Largest backend read or write a job issues (bytes).
pub const CHUNK_BYTES: u32 = 1 << 20;
/// Largest range of one [`BackendOp::Deallocate`] (bytes).
pub const DEALLOCATE_BYTES: u32 = 1 << 30;
/// Most LBA status descriptors one GET LBA STATUS returns (the backend
/// answers with at most twice as many runs: a bounded number of lseek
/// calls on the shard).
pub const LBA_STATUS_DESCRIPTORS_MAX: usize = 64;

/// Which buffer a job's backend operation uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JobBuf {
    /// The task buffer holding the Data-Out.
    Data,
    /// The job's scratch buffer.
    Scratch,
}

/// What a job wants next.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum JobStep {
    /// One backend operation of `io.len` bytes on `buf` (starting at its
    /// first byte).
    Io(IoRequest, JobBuf),
    /// Call [`Job::step`] again later (with `None`): a lock is busy.
    Wait,
    /// Finished.
    Done(Outcome),
}

/// What fills the blocks of a fill job.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Pattern {
    /// Zeros (UNMAP on an LBPRZ LU, WRITE SAME with NDOB, SANITIZE BLOCK ERASE).
    Zeros,
    /// The first logical block of the Data-Out (WRITE SAME).
    DataBlock,
    /// These bytes repeated from the start of every block (SANITIZE OVERWRITE).
    Bytes(Vec<u8>),
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Kind {
    /// Write `pattern` over every (lba, blocks) range.
    Fill { ranges: Vec<(u64, u64)>, idx: usize, done: u64, pattern: Pattern, ready: bool },
    /// Deallocate every (lba, blocks) range.
    Deallocate { ranges: Vec<(u64, u64)>, idx: usize, done: u64 },
    /// GET LBA STATUS from `lba`: ask the backend, then encode at most
    /// `max` descriptors (cut to `alloc` bytes) against `capacity` blocks.
    LbaStatus { lba: u64, capacity: u64, max: usize, alloc: u32, asked: bool },
    /// COMPARE AND WRITE (`or` = false) or ORWRITE (`or` = true) of `blocks` at `lba`.
    ReadModifyWrite { lba: u64, blocks: u64, or: bool, phase: u8 },
    /// A plain write, held while a CAW holds part of its range.
    GatedWrite { io: IoRequest, lba: u64, blocks: u64 },
    /// A SANITIZE with IMMED = 0 waiting for the background operation it
    /// started: done once the LU's finished count passes `before`.
    AwaitSanitize { before: u64 },
    /// Block-to-block copies within the LU: (source LBA, destination LBA, blocks).
    Copy { segs: Vec<(u64, u64, u64)>, idx: usize, done: u64, reading: bool, chunk: u64 },
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Job {
    kind: Kind,
    block_size: u32,
    data_out: u32,
    fua: bool,
    /// The LU's shared state (CAW locks).
    shared: Option<Arc<LuShared>>,
    /// Unique tag of this job for CAW locks.
    owner: u64,
    locked: bool,
    /// A SANITIZE: clear the LU's sanitize-in-progress state when done.
    sanitize: bool,
}

impl PartialEq for Job {
    fn eq(&self, o: &Job) -> bool {
        self.kind == o.kind && self.block_size == o.block_size && self.data_out == o.data_out
    }
}
impl Eq for Job {}

static OWNER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn owner() -> u64 {
    OWNER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Job {
    fn new(kind: Kind, block_size: u32, data_out: u32, shared: Option<Arc<LuShared>>) -> Job {
        Job {
            kind,
            block_size: block_size.max(1),
            data_out,
            fua: false,
            shared,
            owner: owner(),
            locked: false,
            sanitize: false,
        }
    }

    /// Write `pattern` over `ranges` of (LBA, blocks). `data_out` bytes of
    /// Data-Out are collected first (one block for WRITE SAME, 0 otherwise).
    pub fn fill(ranges: Vec<(u64, u64)>, pattern: Pattern, block_size: u32, data_out: u32) -> Job {
        let kind = Kind::Fill { ranges, idx: 0, done: 0, pattern, ready: false };
        Job::new(kind, block_size, data_out, None)
    }

    /// Deallocate (lba, blocks) `ranges` (UNMAP, WRITE SAME with UNMAP on a
    /// deallocating LU) after collecting `data_out` bytes of Data-Out
    /// (WRITE SAME's one block, ignored).
    pub fn deallocate(ranges: Vec<(u64, u64)>, block_size: u32, data_out: u32) -> Job {
        Job::new(Kind::Deallocate { ranges, idx: 0, done: 0 }, block_size, data_out, None)
    }

    /// GET LBA STATUS (SBC-4 §5.6) from `lba` on an LU of `capacity`
    /// blocks whose backend reports provisioning ([`BackendOp::MapStatus`]):
    /// as many descriptors as `alloc` bytes hold (at least one, at most
    /// [`LBA_STATUS_DESCRIPTORS_MAX`]); the Data-In is cut to `alloc`.
    pub fn lba_status(lba: u64, capacity: u64, block_size: u32, alloc: u32) -> Job {
        let max = ((alloc as usize).saturating_sub(8) / 16).clamp(1, LBA_STATUS_DESCRIPTORS_MAX);
        Job::new(Kind::LbaStatus { lba, capacity, max, alloc, asked: false }, block_size, 0, None)
    }

    /// SANITIZE of the whole LU, an OVERWRITE with `pattern` or a BLOCK
    /// ERASE (`None`: deallocation): sets the LU's sanitize-in-progress state
    /// until the job ends.
    pub fn sanitize(blocks: u64, pattern: Option<Pattern>, block_size: u32, shared: Arc<LuShared>) -> Job {
        shared.set_sanitizing(true);
        let mut j = match pattern {
            Some(p) => Job::fill(vec![(0, blocks)], p, block_size, 0),
            None => Job::deallocate(vec![(0, blocks)], block_size, 0),
        };
        j.shared = Some(shared);
        j.sanitize = true;
        j
    }

    /// COMPARE AND WRITE (SBC-4 §5.3) of `blocks` at `lba`: Data-Out is
    /// 2 × `blocks` blocks (verify data, then write data).
    pub fn compare_and_write(lba: u64, blocks: u64, block_size: u32, shared: Arc<LuShared>, fua: bool) -> Job {
        let kind = Kind::ReadModifyWrite { lba, blocks, or: false, phase: 0 };
        let mut j = Job::new(kind, block_size, (2 * blocks * u64::from(block_size)) as u32, Some(shared));
        j.fua = fua;
        j
    }

    /// ORWRITE (SBC-4): the medium becomes medium OR Data-Out.
    pub fn or_write(lba: u64, blocks: u64, block_size: u32, shared: Arc<LuShared>, fua: bool) -> Job {
        let kind = Kind::ReadModifyWrite { lba, blocks, or: true, phase: 0 };
        let mut j = Job::new(kind, block_size, (blocks * u64::from(block_size)) as u32, Some(shared));
        j.fua = fua;
        j
    }

    /// A write (`io`, from the Data-Out) of `blocks` at `lba` that waits
    /// while a COMPARE AND WRITE holds an overlapping range.
    pub fn gated_write(io: IoRequest, lba: u64, blocks: u64, block_size: u32, shared: Arc<LuShared>) -> Job {
        Job::new(Kind::GatedWrite { io, lba, blocks }, block_size, io.len, Some(shared))
    }

    /// Wait for the LU's background sanitize operation started when its
    /// finished count was `before` ([`super::sanitize`]); ends GOOD, or
    /// MEDIUM ERROR / SANITIZE COMMAND FAILED. Cancelling (an abort) leaves
    /// the operation running (SBC-4 §4.11.2).
    pub fn await_sanitize(before: u64, shared: Arc<LuShared>) -> Job {
        Job::new(Kind::AwaitSanitize { before }, 512, 0, Some(shared))
    }

    /// Copy (source LBA, destination LBA, blocks) segments within the LU.
    pub fn copy(segs: Vec<(u64, u64, u64)>, block_size: u32) -> Job {
        let kind = Kind::Copy { segs, idx: 0, done: 0, reading: true, chunk: 0 };
        Job::new(kind, block_size, 0, None)
    }

    /// Bytes of Data-Out to collect before the first step.
    pub fn data_out_len(&self) -> u32 {
        self.data_out
    }

    /// Release what the job holds (its CAW lock) — for a task that ends
    /// without finishing (abort, connection loss).
    pub fn cancel(&mut self) {
        self.unlock();
    }

    fn unlock(&mut self) {
        if self.sanitize {
            self.sanitize = false;
            if let Some(s) = &self.shared {
                s.set_sanitizing(false);
            }
        }
        if self.locked {
            self.locked = false;
            if let (Kind::ReadModifyWrite { lba, .. }, Some(s)) = (&self.kind, &self.shared) {
                s.caw_unlock(*lba, self.owner);
            }
        }
    }

    fn chunk_blocks(&self) -> u64 {
        u64::from((CHUNK_BYTES / self.block_size).max(1))
    }

    fn io(&self, op: BackendOp, lba: u64, blocks: u64, fua: bool) -> IoRequest {
        let bs = u64::from(self.block_size);
        IoRequest { op, offset: lba * bs, len: (blocks * bs) as u32, fua, verify: false }
    }

    /// Advance: `last` is the status of the operation the previous step
    /// asked for (`None` on the first call and after [`JobStep::Wait`]).
    /// `data` holds the Data-Out; `scratch` is the job's buffer (resized
    /// here as needed).
    pub fn step(&mut self, last: Option<BackendStatus>, data: &mut [u8], scratch: &mut Vec<u8>) -> JobStep {
        if let Some(st) = last.filter(|s| *s != BackendStatus::Ok) {
            self.unlock();
            let op = if matches!(
                &self.kind,
                Kind::ReadModifyWrite { phase: 1, .. } | Kind::Copy { reading: false, .. } | Kind::LbaStatus { .. }
            ) {
                BackendOp::Read
            } else {
                BackendOp::Write
            };
            let io = IoRequest { op, offset: 0, len: 0, fua: false, verify: false };
            return JobStep::Done(complete_backend(&io, st));
        }
        let bs = self.block_size as usize;
        let chunk = self.chunk_blocks();
        match &mut self.kind {
            Kind::Deallocate { ranges, idx, done } => {
                let max = u64::from(DEALLOCATE_BYTES / self.block_size).max(1);
                while let Some(&(lba, blocks)) = ranges.get(*idx) {
                    if *done >= blocks {
                        *idx += 1;
                        *done = 0;
                        continue;
                    }
                    let n = (blocks - *done).min(max);
                    let at = lba + *done;
                    *done += n;
                    let bs = bs as u64;
                    let io = IoRequest {
                        op: BackendOp::Deallocate,
                        offset: at * bs,
                        len: (n * bs) as u32,
                        fua: false,
                        verify: false,
                    };
                    return JobStep::Io(io, JobBuf::Scratch);
                }
                self.unlock();
                JobStep::Done(Outcome::good(0))
            }
            Kind::LbaStatus { lba, capacity, max, alloc, asked } => {
                let bs64 = bs as u64;
                if !*asked {
                    *asked = true;
                    scratch.clear();
                    scratch.resize(2 * *max * lba_status::RECORD_LEN, 0);
                    let io = IoRequest {
                        op: BackendOp::MapStatus,
                        offset: *lba * bs64,
                        len: scratch.len() as u32,
                        fua: false,
                        verify: false,
                    };
                    return JobStep::Io(io, JobBuf::Scratch);
                }
                let d = lba_status::descriptors(lba_status::records(scratch), *lba, *capacity, self.block_size, *max);
                let n = 8 + 16 * d.len();
                scratch.clear();
                scratch.resize(n, 0);
                let mut w = DataIn::new(scratch, n);
                w.u32((n - 4) as u32); // PARAMETER DATA LENGTH
                w.u32(0);
                for (at, blocks, p) in d {
                    w.u64(at);
                    w.u32(blocks);
                    w.u8(p.code()); // PROVISIONING STATUS
                    w.u8(0); // ADDITIONAL STATUS
                    w.zeros(2);
                }
                JobStep::Done(Outcome::good(w.data_len().min(*alloc)))
            }
            Kind::Fill { ranges, idx, done, pattern, ready } => {
                if !*ready {
                    let blocks = ranges.iter().map(|r| r.1).max().unwrap_or(0).min(chunk) as usize;
                    scratch.clear();
                    scratch.resize(blocks * bs, 0);
                    match pattern {
                        Pattern::Zeros => {}
                        Pattern::DataBlock => {
                            let src = prefix(data, bs);
                            for b in scratch.chunks_mut(bs) {
                                copy_prefix(b, src);
                            }
                        }
                        Pattern::Bytes(p) if !p.is_empty() => {
                            for b in scratch.chunks_mut(bs) {
                                for (x, y) in b.iter_mut().zip(p.iter().cycle()) {
                                    *x = *y;
                                }
                            }
                        }
                        Pattern::Bytes(_) => {}
                    }
                    *ready = true;
                }
                while let Some(&(lba, blocks)) = ranges.get(*idx) {
                    if *done >= blocks {
                        *idx += 1;
                        *done = 0;
                        continue;
                    }
                    let n = (blocks - *done).min(chunk);
                    let at = lba + *done;
                    *done += n;
                    let fua = self.fua;
                    let io = IoRequest {
                        op: BackendOp::Write,
                        offset: at * bs as u64,
                        len: (n as usize * bs) as u32,
                        fua,
                        verify: false,
                    };
                    return JobStep::Io(io, JobBuf::Scratch);
                }
                self.unlock();
                JobStep::Done(Outcome::good(0))
            }
            Kind::AwaitSanitize { before } => {
                let Some(shared) = &self.shared else {
                    return JobStep::Done(Outcome::check_condition(Sense::internal_target_failure()));
                };
                if shared.sanitize.finished_count() == *before {
                    return JobStep::Wait;
                }
                if shared.sanitize.failed() {
                    return JobStep::Done(Outcome::check_condition(Sense::sanitize_failed()));
                }
                JobStep::Done(Outcome::good(0))
            }
            Kind::GatedWrite { io, lba, blocks } => {
                if self.data_out == u32::MAX {
                    return JobStep::Done(Outcome::good(0));
                }
                if self.shared.as_ref().is_some_and(|s| s.caw_overlaps(*lba, *blocks)) {
                    return JobStep::Wait;
                }
                let mut io = *io;
                io.len = io.len.min(data.len() as u32);
                self.data_out = u32::MAX;
                JobStep::Io(io, JobBuf::Data)
            }
            Kind::ReadModifyWrite { lba, blocks, or, phase } => {
                let (lba, blocks, or) = (*lba, *blocks, *or);
                let n = blocks as usize * bs;
                match *phase {
                    0 => {
                        let Some(shared) = &self.shared else {
                            return JobStep::Done(Outcome::check_condition(Sense::internal_target_failure()));
                        };
                        if !shared.caw_lock(lba, blocks, self.owner) {
                            return JobStep::Wait;
                        }
                        self.locked = true;
                        if let Kind::ReadModifyWrite { phase, .. } = &mut self.kind {
                            *phase = 1;
                        }
                        scratch.clear();
                        scratch.resize(n, 0);
                        JobStep::Io(self.io(BackendOp::Read, lba, blocks, false), JobBuf::Scratch)
                    }
                    1 => {
                        if or {
                            for (m, d) in scratch.iter_mut().zip(data.iter()) {
                                *m |= *d;
                            }
                        } else {
                            let cmp = prefix(data, n);
                            if let Some(off) = cmp.iter().zip(scratch.iter()).position(|(a, b)| a != b) {
                                self.unlock();
                                return JobStep::Done(Outcome::check_condition(Sense::miscompare(off as u64)));
                            }
                            let src = data.get(n.min(data.len())..(2 * n).min(data.len())).unwrap_or_default();
                            copy_prefix(scratch, src);
                        }
                        if let Kind::ReadModifyWrite { phase, .. } = &mut self.kind {
                            *phase = 2;
                        }
                        JobStep::Io(self.io(BackendOp::Write, lba, blocks, self.fua), JobBuf::Scratch)
                    }
                    _ => {
                        self.unlock();
                        JobStep::Done(Outcome::good(0))
                    }
                }
            }
            Kind::Copy { segs, idx, done, reading, chunk: cur } => loop {
                let Some(&(src, dst, blocks)) = segs.get(*idx) else {
                    return JobStep::Done(Outcome::good(0));
                };
                if *reading {
                    if *done >= blocks {
                        *idx += 1;
                        *done = 0;
                        continue;
                    }
                    let n = (blocks - *done).min(chunk);
                    *cur = n;
                    *reading = false;
                    scratch.clear();
                    scratch.resize(n as usize * bs, 0);
                    let bs64 = bs as u64;
                    let io = IoRequest {
                        op: BackendOp::Read,
                        offset: (src + *done) * bs64,
                        len: (n * bs64) as u32,
                        fua: false,
                        verify: false,
                    };
                    return JobStep::Io(io, JobBuf::Scratch);
                }
                let n = *cur;
                let at = dst + *done;
                *done += n;
                *reading = true;
                let bs64 = bs as u64;
                let io = IoRequest {
                    op: BackendOp::Write,
                    offset: at * bs64,
                    len: (n * bs64) as u32,
                    fua: false,
                    verify: false,
                };
                return JobStep::Io(io, JobBuf::Scratch);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a job against an in-memory medium.
    fn run(job: &mut Job, data: &mut [u8], medium: &mut [u8]) -> Outcome {
        let mut scratch = Vec::new();
        let mut last = None;
        for _ in 0..10_000 {
            match job.step(last, data, &mut scratch) {
                JobStep::Done(o) => return o,
                JobStep::Wait => panic!("unexpected wait"),
                JobStep::Io(io, which) => {
                    let buf: &mut [u8] = match which {
                        JobBuf::Data => data,
                        JobBuf::Scratch => &mut scratch,
                    };
                    let r = io.offset as usize..io.offset as usize + io.len as usize;
                    match io.op {
                        BackendOp::Read => buf[..io.len as usize].copy_from_slice(&medium[r]),
                        BackendOp::Write => medium[r].copy_from_slice(&buf[..io.len as usize]),
                        BackendOp::Flush => {}
                        BackendOp::Deallocate => medium[r].fill(0),
                        BackendOp::MapStatus => unreachable!("no status job here"),
                    }
                    last = Some(BackendStatus::Ok);
                }
            }
        }
        panic!("job did not finish");
    }

    #[test]
    fn write_same_replicates_the_block() {
        let mut medium = vec![0u8; 16 * 512];
        let mut data = vec![7u8; 512];
        let mut j = Job::fill(vec![(2, 3)], Pattern::DataBlock, 512, 512);
        assert_eq!(run(&mut j, &mut data, &mut medium), Outcome::good(0));
        assert!(medium[..1024].iter().all(|&b| b == 0));
        assert!(medium[1024..2560].iter().all(|&b| b == 7));
        assert!(medium[2560..].iter().all(|&b| b == 0));
    }

    #[test]
    fn caw_miscompare_reports_the_offset() {
        let shared = Arc::new(LuShared::default());
        let mut medium = vec![1u8; 4 * 512];
        let mut data = vec![1u8; 2 * 512];
        data[300] = 9;
        let mut j = Job::compare_and_write(1, 1, 512, shared.clone(), false);
        assert_eq!(run(&mut j, &mut data, &mut medium).sense(), Some(Sense::miscompare(300)));
        assert!(!shared.caw_overlaps(0, 100), "lock released");
        data[300] = 1;
        data[512..].fill(5);
        let mut j = Job::compare_and_write(1, 1, 512, shared.clone(), false);
        assert_eq!(run(&mut j, &mut data, &mut medium), Outcome::good(0));
        assert!(medium[512..1024].iter().all(|&b| b == 5));
        assert!(!shared.caw_overlaps(0, 100));
    }

    #[test]
    fn caw_waits_for_a_held_range() {
        let shared = Arc::new(LuShared::default());
        assert!(shared.caw_lock(0, 8, 999));
        let mut j = Job::compare_and_write(3, 1, 512, shared.clone(), false);
        let mut scratch = Vec::new();
        assert_eq!(j.step(None, &mut [0u8; 1024], &mut scratch), JobStep::Wait);
        shared.caw_unlock(0, 999);
        assert!(matches!(j.step(None, &mut [0u8; 1024], &mut scratch), JobStep::Io(_, JobBuf::Scratch)));
        j.cancel();
        assert!(!shared.caw_overlaps(0, 100));
    }

    #[test]
    fn or_write_and_copy() {
        let shared = Arc::new(LuShared::default());
        let mut medium = vec![0x0fu8; 4 * 512];
        let mut data = vec![0xf0u8; 512];
        let mut j = Job::or_write(0, 1, 512, shared, false);
        assert_eq!(run(&mut j, &mut data, &mut medium), Outcome::good(0));
        assert!(medium[..512].iter().all(|&b| b == 0xff));
        let mut j = Job::copy(vec![(0, 2, 1)], 512);
        assert_eq!(run(&mut j, &mut [], &mut medium), Outcome::good(0));
        assert!(medium[1024..1536].iter().all(|&b| b == 0xff));
    }
}
