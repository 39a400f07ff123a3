//! Tasks: one per SCSI command, kept in a fixed table of slots that is
//! allocated once per connection, so the per-I/O path reuses buffers
//! instead of allocating them.
//!
//! ```text
//!  Arrived ──(CmdSN in order)──► Exec ──► Done ───────────────────► (response queued) ──► free
//!    │ immediate/unsolicited       │  └─► Io(read) ──► backend ──► Done
//!    │ data lands here             └─► WaitData(write) ─(all data)─► Io ──► Done
//!    └─ aborted at any point: no response; freed when no backend I/O is in flight
//!       (aborted by another nexus — its LUN reset, PREEMPT AND ABORT — it
//!       ends with TASK ABORTED when TAS = 1, once its backend I/O is back)
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::budget::WriteBudget;
use crate::buf::PageBuf;
use crate::bytes::{copy_prefix, prefix, prefix_mut};
use crate::ids::{Itt, Lun, Ttt};
use crate::pdu::TaskAttr;
use crate::scsi::{BackendOp, IoRequest, ScsiStatus};
use crate::serial::CmdSn;

/// Largest sense data we send (SPC-4 §4.5.1: 252 bytes).
pub(super) const SENSE_MAX: usize = 252;
/// Slots beyond the queue depth for immediate commands.
pub(super) const IMMEDIATE_SLOTS: usize = 8;
/// Outstanding R2Ts per task we track (MaxOutstandingR2T is capped to this).
pub(super) const R2T_MAX: usize = 8;
/// A freed slot keeps its buffers for the next task when they are at most
/// this large (no allocation per I/O up to here); larger ones are released,
/// so idle slots do not pin memory outside the write budget.
pub(super) const BUF_RETAIN_MAX: usize = 1 << 20;

/// Where a task is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    /// Received, waiting for its CmdSN turn (data may be arriving).
    Arrived,
    /// A write waiting for Data-Out.
    WaitData,
    /// Backend request queued or in flight.
    Io,
    /// Status known; Data-In/response queued.
    Done,
}

/// One outstanding R2T.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct R2tState {
    pub ttt: Ttt,
    pub offset: u32,
    pub len: u32,
    /// Bytes received so far for this R2T.
    pub received: u32,
    /// Next expected DataSN within this R2T's sequence.
    pub datasn: u32,
    pub active: bool,
}

/// One SCSI task.
#[derive(Debug)]
pub(super) struct Task {
    pub gen: u32,
    pub in_use: bool,
    pub itt: Itt,
    pub lun: Lun,
    pub cmdsn: CmdSn,
    pub immediate: bool,
    pub attr: TaskAttr,
    pub cdb: [u8; 16],
    pub ext_cdb: Option<Box<[u8]>>,
    pub edtl: u32,
    pub read: bool,
    pub write: bool,
    pub phase: Phase,
    /// Data buffer: Data-Out lands here, Data-In is sent from here; page
    /// aligned, so O_DIRECT backends use it without a bounce copy. It is
    /// reused across the slot's tasks and not zeroed per task: every byte
    /// sent or written must have been written by this task first (see
    /// [`PageBuf::resize_for_overwrite`]).
    pub buf: PageBuf,
    /// Bytes of write data received so far, contiguous from offset 0.
    pub received: u32,
    /// More unsolicited Data-Out is expected (the command's F bit was 0).
    pub unsol_pending: bool,
    /// Next DataSN of the unsolicited sequence.
    pub unsol_datasn: u32,
    /// Write bytes the command needs (set at execution).
    pub need: u32,
    /// Next offset to request with an R2T.
    pub r2t_next: u32,
    pub r2tsn: u32,
    pub r2ts: [R2tState; R2T_MAX],
    pub io: Option<IoRequest>,
    pub backend: usize,
    pub io_in_flight: bool,
    /// Bytes the command transfers per SCSI (for residuals).
    pub spdtl: u32,
    pub status: Option<ScsiStatus>,
    pub sense_buf: [u8; SENSE_MAX],
    pub sense_len: usize,
    /// Data-In bytes to send from `buf`.
    pub data_in_len: u32,
    pub data_in_sent: u32,
    pub datasn: u32,
    pub status_sent: bool,
    pub aborted: bool,
    /// The task still counts against the CmdSN window.
    pub window_held: bool,
    /// Data-Out is a parameter list for emulation (MODE SELECT), not write data.
    pub param_list: bool,
    /// Medium contents for VERIFY with BYTCHK (compared against `buf`).
    pub verify_buf: Vec<u8>,
    /// The task's Data-Out broke the sequence rules; it ends with this sense.
    pub failed: Option<crate::scsi::Sense>,
    /// A multi-step command (WRITE SAME, UNMAP, CAW, ...) in progress.
    pub job: Option<Box<crate::scsi::Job>>,
    /// Executed (not deferred by task attribute ordering) and not yet
    /// finished: an ORDERED task waits for these, SAM-5 §8.6.
    pub executing: bool,
    /// The LU's reset epoch when the task started (see `LuShared::reset_epoch`).
    pub reset_epoch: u64,
    /// The nexus's abort generation when the task was accepted (see
    /// `LuShared::abort_tasks_of`): a different value later means PREEMPT
    /// AND ABORT from another nexus aborted it.
    pub abort_gen: u64,
    /// Bytes of `buf` charged to the write budget ([`WriteBudget`]).
    pub charged: u64,
    /// The task holds a grant (its whole write buffer is charged).
    pub granted: bool,
    /// The task waits in `Connection::budget_wait` for a grant.
    pub budget_waiting: bool,
    /// Some of its Data-Out failed the data digest (RFC 7143 §7.8).
    pub crc_error: bool,
}

impl Task {
    fn empty() -> Self {
        Task {
            gen: 0,
            in_use: false,
            itt: Itt(0),
            lun: Lun(0),
            cmdsn: CmdSn(0),
            immediate: false,
            attr: TaskAttr::SIMPLE,
            cdb: [0; 16],
            ext_cdb: None,
            edtl: 0,
            read: false,
            write: false,
            phase: Phase::Arrived,
            buf: PageBuf::new(),
            received: 0,
            unsol_pending: false,
            unsol_datasn: 0,
            need: 0,
            r2t_next: 0,
            r2tsn: 0,
            r2ts: [R2tState::default(); R2T_MAX],
            io: None,
            backend: 0,
            io_in_flight: false,
            spdtl: 0,
            status: None,
            sense_buf: [0; SENSE_MAX],
            sense_len: 0,
            data_in_len: 0,
            data_in_sent: 0,
            datasn: 0,
            status_sent: false,
            aborted: false,
            window_held: false,
            charged: 0,
            granted: false,
            budget_waiting: false,
            crc_error: false,
            param_list: false,
            verify_buf: Vec::new(),
            failed: None,
            job: None,
            executing: false,
            reset_epoch: 0,
            abort_gen: 0,
        }
    }

    /// Stop waiting for this task's Data-Out: close its open R2Ts and its
    /// unsolicited burst. Returns how many of those were open (to take off
    /// [`TaskTable::owed`]).
    pub fn stop_awaiting_data(&mut self) -> u32 {
        let mut n = u32::from(std::mem::take(&mut self.unsol_pending));
        for r in self.r2ts.iter_mut().filter(|r| r.active) {
            r.active = false;
            n += 1;
        }
        n
    }

    /// The full CDB (16 bytes plus any extended part).
    pub fn cdb_bytes(&self, scratch: &mut [u8; 260]) -> usize {
        let (head, tail) = scratch.split_at_mut(16);
        head.copy_from_slice(&self.cdb);
        match &self.ext_cdb {
            Some(ext) => 16 + copy_prefix(tail, ext),
            None => 16,
        }
    }

    /// (overflow, underflow, residual) for the response (RFC 7143 §11.4.5).
    pub fn residual(&self) -> (bool, bool, u32) {
        use core::cmp::Ordering::*;
        match self.spdtl.cmp(&self.edtl) {
            Greater => (true, false, self.spdtl - self.edtl),
            Less => (false, true, self.edtl - self.spdtl),
            Equal => (false, false, 0),
        }
    }

    /// The bytes of Data-In at `off..off+len`.
    /// The `len` bytes of read data at `off` (clipped to the buffer).
    pub fn data_in_slice(&self, off: u32, len: u32) -> &[u8] {
        self.buf.get(off as usize..).map(|b| prefix(b, len as usize)).unwrap_or_default()
    }

    /// Record the final status and sense.
    pub fn set_status(&mut self, status: ScsiStatus, sense: Option<(&[u8; SENSE_MAX], usize)>) {
        self.status = Some(status);
        self.phase = Phase::Done;
        match sense {
            Some((s, n)) => {
                self.sense_buf = *s;
                self.sense_len = n.min(SENSE_MAX);
            }
            None => self.sense_len = 0,
        }
    }
}

/// Hasher for the ITT → slot map: one multiply and a fold instead of
/// SipHash (which cost ~3% of the CPU at 4K I/O).
///
/// ITTs are chosen by the initiator, and this hash has no secret key, so an
/// initiator can pick ITTs that collide. That only slows lookups in its
/// own connection's table: every connection has its own [`TaskTable`], and
/// it never holds more than `2 × queue depth + IMMEDIATE_SLOTS` entries
/// (a new ITT needs a free slot), so the worst case is a scan of that many
/// entries per PDU — bounded work of the same order as decoding the PDU,
/// which the attacker pays for by sending it. Nothing grows: no rehash to
/// a larger table, no memory beyond what the table reserved at login.
#[derive(Default, Clone, Copy, Debug)]
pub(super) struct IttHasher(u64);

impl Hasher for IttHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// ITTs are hashed with `write_u32`; this covers any other key type.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        // Fibonacci hashing (Knuth, TAOCP 6.4): the product's high half
        // depends on every bit of `n`; folding it into the low half gives
        // the map both well-mixed low bits (its bucket index) and well-mixed
        // top bits (its 7-bit control tag), even for ITTs that differ only
        // in their high bits.
        let p = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = p ^ (p >> 32);
    }
}

/// ITT → slot.
type IttMap = HashMap<u32, u32, BuildHasherDefault<IttHasher>>;

/// The connection's task slots.
#[derive(Debug)]
pub(super) struct TaskTable {
    slots: Vec<Task>,
    free: Vec<u32>,
    by_itt: IttMap,
    queue_depth: usize,
    /// Non-immediate tasks accepted and not yet freed.
    pub ordered_active: usize,
    /// Non-immediate tasks waiting for their CmdSN turn.
    pub held: usize,
    /// Tasks with [`Task::executing`] set, and how many of them are ORDERED
    /// (so the per-command ordering check is O(1) unless ordering is in play).
    pub executing: usize,
    pub ordered_executing: usize,
    /// Where write buffers are charged (shared by a shard's connections).
    budget: Arc<WriteBudget>,
    /// Bytes this connection's tasks hold of the budget, and how many of
    /// them hold a grant (for the per-connection share, [`Self::try_grant`]).
    charged: u64,
    grants: u32,
    /// Data-Out sequences the initiator owes: open R2Ts plus unsolicited
    /// bursts announced (F = 0) and not finished.
    owed: u32,
    /// Start of the current wait for owed data: when `owed` last rose from
    /// 0, moved up by every accepted Data-Out (see [`Self::data_overdue_at`]).
    owed_since_ms: u64,
}

impl TaskTable {
    pub fn new(queue_depth: usize) -> Self {
        // A finished task gives its window credit back as soon as its status
        // is known, but keeps its slot until the response is on the wire, so
        // there are twice as many slots as window credits.
        let n = 2 * queue_depth + IMMEDIATE_SLOTS;
        TaskTable {
            slots: (0..n).map(|_| Task::empty()).collect(),
            free: (0..n as u32).rev().collect(),
            by_itt: IttMap::with_capacity_and_hasher(n * 2, BuildHasherDefault::default()),
            queue_depth,
            ordered_active: 0,
            held: 0,
            executing: 0,
            ordered_executing: 0,
            budget: Arc::new(WriteBudget::new()),
            charged: 0,
            grants: 0,
            owed: 0,
            owed_since_ms: 0,
        }
    }

    /// The initiator now owes `n` more Data-Out sequences (R2Ts issued or an
    /// unsolicited burst announced); a wait starts if none was owed.
    pub fn owe(&mut self, n: u32, now_ms: u64) {
        if self.owed == 0 {
            self.owed_since_ms = now_ms;
        }
        self.owed += n;
    }

    /// `n` owed sequences ended (complete, failed or their task freed).
    pub fn paid(&mut self, n: u32) {
        self.owed = self.owed.saturating_sub(n);
    }

    /// A Data-Out was accepted: the initiator is making progress.
    pub fn data_arrived(&mut self, now_ms: u64) {
        self.owed_since_ms = now_ms;
    }

    /// When the initiator, owing Data-Out, will have sent none for
    /// `timeout_ms` (None: nothing owed).
    pub fn data_overdue_at(&self, timeout_ms: u64) -> Option<u64> {
        (self.owed > 0).then(|| self.owed_since_ms.saturating_add(timeout_ms))
    }

    /// Bytes this connection holds of the write budget.
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// The budget write buffers are charged to.
    pub fn budget(&self) -> &Arc<WriteBudget> {
        &self.budget
    }

    /// Charge to `budget` from now on; what tasks hold moves over with them.
    pub fn set_budget(&mut self, budget: Arc<WriteBudget>) {
        for t in self.slots.iter().filter(|t| t.in_use && t.charged > 0) {
            self.budget.release(t.charged, t.granted);
            budget.adopt(t.charged, t.granted);
        }
        self.budget = budget;
    }

    /// Size the write buffer of `slot` for data the initiator sends unasked
    /// (immediate + unsolicited, `bytes` at most FirstBurstLength) and charge it.
    pub fn charge_unsolicited(&mut self, slot: u32, bytes: u32) {
        let Some(t) = self.slots.get_mut(slot as usize).filter(|t| t.in_use) else { return };
        let more = u64::from(bytes).saturating_sub(t.charged);
        self.budget.charge_unsolicited(more);
        t.charged += more;
        self.charged += more;
        // Not zeroed: a write goes to the backend only once all of its data
        // arrived (write_progress), and a write sends no Data-In.
        t.buf.resize_for_overwrite(t.buf.len().max(bytes as usize));
    }

    /// Grant `slot` a write buffer of `need` bytes (charging what its
    /// unsolicited share did not cover) and size the buffer. `false`: the
    /// task must wait, because the budget (`limit` bytes) is spent or
    /// because this connection already holds its share of it.
    ///
    /// The share: a connection may hold at most `max(limit / 2, burst)`
    /// bytes (`burst`: its MaxBurstLength), except that a connection holding
    /// no grant may always ask for one (a write larger than the share runs
    /// when the budget allows, e.g. when nothing else holds a grant).
    pub fn try_grant(&mut self, slot: u32, need: u32, limit: u64, burst: u32) -> bool {
        let Some(t) = self.slots.get_mut(slot as usize).filter(|t| t.in_use) else { return false };
        if t.granted {
            return true;
        }
        let more = u64::from(need).saturating_sub(t.charged);
        let share = (limit / 2).max(u64::from(burst));
        if self.grants > 0 && self.charged.saturating_add(more) > share {
            self.budget.note_wait();
            return false;
        }
        if !self.budget.try_grant(more, limit) {
            return false;
        }
        t.granted = true;
        t.charged += more;
        // Not zeroed: a write goes to the backend only once all `need` bytes
        // of it arrived (write_progress), and a write sends no Data-In.
        t.buf.resize_for_overwrite(t.buf.len().max(need as usize));
        self.charged += more;
        self.grants += 1;
        true
    }

    /// Open window slots: MaxCmdSN = ExpCmdSN - 1 + this (RFC 7143 §4.2.2.1).
    /// Held tasks are counted back in so that out-of-order arrivals never
    /// shrink a window the initiator was already given.
    pub fn free_for_window(&self) -> usize {
        self.queue_depth.saturating_sub(self.ordered_active) + self.held
    }

    pub fn by_itt(&self, itt: Itt) -> Option<(u32, u32)> {
        let slot = *self.by_itt.get(&itt.0)?;
        Some((slot, self.slots.get(slot as usize)?.gen))
    }

    pub fn itt_in_use(&self, itt: Itt) -> bool {
        self.by_itt.contains_key(&itt.0)
    }

    /// Take a free slot for a new task (None: table full).
    pub fn alloc(&mut self, itt: Itt, immediate: bool) -> Option<(u32, u32)> {
        if !immediate && self.ordered_active >= self.queue_depth {
            return None;
        }
        let slot = self.free.pop()?;
        // Free slots index `slots` (they are created together).
        let t = self.slots.get_mut(slot as usize)?;
        let mut buf = std::mem::take(&mut t.buf);
        let mut verify_buf = std::mem::take(&mut t.verify_buf);
        buf.clear();
        verify_buf.clear();
        let gen = t.gen.wrapping_add(1);
        *t = Task::empty();
        t.buf = buf;
        t.verify_buf = verify_buf;
        t.gen = gen;
        t.in_use = true;
        t.itt = itt;
        t.immediate = immediate;
        t.window_held = !immediate;
        if !immediate {
            self.ordered_active += 1;
        }
        self.by_itt.insert(itt.0, slot);
        Some((slot, gen))
    }

    pub fn get(&self, slot: u32, gen: u32) -> Option<&Task> {
        self.slots.get(slot as usize).filter(|t| t.in_use && t.gen == gen)
    }

    pub fn get_mut(&mut self, slot: u32, gen: u32) -> Option<&mut Task> {
        self.slots.get_mut(slot as usize).filter(|t| t.in_use && t.gen == gen)
    }

    /// The task in `slot` whatever its generation (backend completions).
    pub fn slot_mut(&mut self, slot: u32) -> Option<&mut Task> {
        self.slots.get_mut(slot as usize).filter(|t| t.in_use)
    }

    /// Release a task. A task with backend I/O in flight is only marked
    /// aborted; it is freed when the I/O completes.
    pub fn free(&mut self, slot: u32) {
        let Some(t) = self.slots.get_mut(slot as usize) else { return };
        if !t.in_use {
            return;
        }
        if self.by_itt.get(&t.itt.0) == Some(&slot) {
            self.by_itt.remove(&t.itt.0);
        }
        // Whatever Data-Out it still awaited is no longer owed.
        let n = t.stop_awaiting_data();
        self.owed = self.owed.saturating_sub(n);
        if t.io_in_flight {
            t.aborted = true;
            return;
        }
        t.in_use = false;
        t.ext_cdb = None;
        self.budget.release(t.charged, t.granted);
        self.charged = self.charged.saturating_sub(t.charged);
        self.grants = self.grants.saturating_sub(u32::from(t.granted));
        t.charged = 0;
        t.granted = false;
        if t.buf.capacity() > BUF_RETAIN_MAX {
            t.buf = PageBuf::new();
        }
        if t.verify_buf.capacity() > BUF_RETAIN_MAX {
            t.verify_buf = Vec::new();
        }
        if t.executing {
            t.executing = false;
            self.executing -= 1;
            if t.attr == TaskAttr::ORDERED {
                self.ordered_executing -= 1;
            }
        }
        if let Some(mut j) = t.job.take() {
            j.cancel();
        }
        if t.window_held {
            t.window_held = false;
            self.ordered_active -= 1;
        }
        self.free.push(slot);
    }

    /// The task's status is known: its CmdSN window credit goes back now,
    /// so the MaxCmdSN sent with its own response already counts it free.
    pub fn release_window(&mut self, slot: u32) {
        if let Some(t) = self.slots.get_mut(slot as usize) {
            if t.in_use && t.window_held {
                t.window_held = false;
                self.ordered_active -= 1;
            }
        }
    }

    /// Mark a task executing (or not), keeping the counters.
    pub fn set_executing(&mut self, slot: u32, on: bool) {
        let Some(t) = self.slots.get_mut(slot as usize).filter(|t| t.in_use) else { return };
        if t.executing == on {
            return;
        }
        t.executing = on;
        let ordered = usize::from(t.attr == TaskAttr::ORDERED);
        if on {
            self.executing += 1;
            self.ordered_executing += ordered;
        } else {
            self.executing -= 1;
            self.ordered_executing -= ordered;
        }
    }

    /// Buffer of a backend request (the tag is the slot).
    pub fn io_buffer(&mut self, tag: u32) -> &mut [u8] {
        let t = self.slots.get_mut(tag as usize).filter(|t| t.in_use && t.io_in_flight);
        assert!(t.is_some(), "backend_buffer for a tag with no request");
        let Some(t) = t else { return &mut [] };
        let (len, verify) = t.io.map_or((0, false), |io| match io.op {
            // No buffer: `len` is the range (Deallocate) or nothing (Flush).
            BackendOp::Flush | BackendOp::Deallocate => (0, io.verify),
            _ => (io.len as usize, io.verify),
        });
        if verify {
            prefix_mut(&mut t.verify_buf, len)
        } else {
            prefix_mut(&mut t.buf, len)
        }
    }

    /// Every slot in use (for TMFs and close).
    pub fn in_use(&self) -> impl Iterator<Item = (u32, &Task)> {
        self.slots.iter().enumerate().filter(|(_, t)| t.in_use).map(|(i, t)| (i as u32, t))
    }

    /// Connection closing: free every task that has no I/O in flight.
    pub fn abort_all_for_close(&mut self) {
        let slots: Vec<u32> = self.in_use().map(|(s, _)| s).collect();
        for s in slots {
            self.free(s);
        }
        self.held = 0;
    }
}

impl Drop for TaskTable {
    /// Tasks still holding budget (a connection dropped with I/O in flight)
    /// give it back.
    fn drop(&mut self) {
        for t in self.slots.iter().filter(|t| t.in_use) {
            self.budget.release(t.charged, t.granted);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    fn hash(itt: u32) -> u64 {
        BuildHasherDefault::<IttHasher>::default().hash_one(itt)
    }

    #[test]
    fn hash_mixes_low_and_high_bits() {
        // ITTs that differ only in their high byte, or only in the low
        // byte, spread over a 512-bucket index (low 9 bits) and over the
        // map's 7-bit tag (top bits).
        for itts in [(0..64u32).map(|i| i << 24).collect::<Vec<_>>(), (0..64u32).collect()] {
            let index: HashSet<u64> = itts.iter().map(|&i| hash(i) & 511).collect();
            let tag: HashSet<u64> = itts.iter().map(|&i| hash(i) >> 57).collect();
            assert!(index.len() >= 48, "{} distinct bucket indexes of 64", index.len());
            assert!(tag.len() >= 40, "{} distinct tags of 64", tag.len());
        }
        assert_ne!(hash(1), hash(1 << 31));
        // Other key types go through `write`, byte by byte.
        let b = BuildHasherDefault::<IttHasher>::default();
        assert_ne!(b.hash_one([1u8, 2]), b.hash_one([2u8, 1]));
    }

    #[test]
    fn lookups_and_removal() {
        let mut t = TaskTable::new(4);
        let (s1, g1) = t.alloc(Itt(10), false).unwrap();
        let (s2, g2) = t.alloc(Itt(0xFFFF_FFF0), false).unwrap();
        assert_ne!(s1, s2);
        assert_eq!(t.by_itt(Itt(10)), Some((s1, g1)));
        assert_eq!(t.by_itt(Itt(0xFFFF_FFF0)), Some((s2, g2)));
        assert!(t.itt_in_use(Itt(10)));
        assert_eq!(t.by_itt(Itt(11)), None);
        t.free(s1);
        assert_eq!(t.by_itt(Itt(10)), None);
        assert!(!t.itt_in_use(Itt(10)));
        assert_eq!(t.by_itt(Itt(0xFFFF_FFF0)), Some((s2, g2)), "the other entry stays");
        // The slot comes back with a new generation under a new ITT.
        let (s3, g3) = t.alloc(Itt(12), false).unwrap();
        assert_eq!(s3, s1);
        assert_ne!(g3, g1);
        assert_eq!(t.by_itt(Itt(12)), Some((s3, g3)));
    }

    #[test]
    fn colliding_itts_are_all_found_and_removed() {
        // ITTs an attacker could pick: same bucket index (low 10 bits) and
        // same 7-bit tag, found by brute force. The table still answers
        // correctly (only more slowly), and never holds more than its slots.
        let target = hash(0);
        let colliding: Vec<u32> = (0..1u32 << 24)
            .filter(|&i| (hash(i) ^ target) & 0x3FF == 0 && hash(i) >> 57 == target >> 57)
            .take(40)
            .collect();
        assert_eq!(colliding.len(), 40, "enough collisions in 2^24 ITTs");
        let mut t = TaskTable::new(16);
        let slots: Vec<(u32, u32)> = colliding.iter().map(|&i| t.alloc(Itt(i), false).unwrap()).take(16).collect();
        assert_eq!(t.alloc(Itt(colliding[16]), false), None, "bounded by the queue depth");
        for (i, &(s, g)) in slots.iter().enumerate() {
            assert_eq!(t.by_itt(Itt(colliding[i])), Some((s, g)));
        }
        // Remove every other one; the rest are still found, the removed not.
        for (i, &(s, _)) in slots.iter().enumerate().step_by(2) {
            t.free(s);
            assert_eq!(t.by_itt(Itt(colliding[i])), None);
        }
        for (i, &(s, g)) in slots.iter().enumerate() {
            let want = if i % 2 == 0 { None } else { Some((s, g)) };
            assert_eq!(t.by_itt(Itt(colliding[i])), want);
        }
        // Freed slots take more colliding ITTs.
        for &itt in &colliding[16..24] {
            let (s, g) = t.alloc(Itt(itt), false).unwrap();
            assert_eq!(t.by_itt(Itt(itt)), Some((s, g)));
        }
    }
}
