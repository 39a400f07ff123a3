//! State that belongs to a logical unit rather than to a connection
//! (DESIGN "The picture": persistent reservations, unit attentions for
//! every I_T nexus, LU-wide mode parameters, COMPARE AND WRITE atomicity,
//! LUN reset, SANITIZE in progress), with one owner per LU: a
//! [`LuShared`], reached from every shard through
//! [`crate::target::LuConfig::shared`] (an `Arc`; a configuration reload
//! must carry the same `Arc` over for an LU it keeps).
//!
//! # Design
//!
//! Connections of one LU live on different shard threads, and SPC-4 wants
//! them all to see one reservation table, one set of mode parameters and
//! one set of unit attentions. The per-I/O path must stay lock-free, so the
//! hot state is published through atomics, each read with one load (never
//! a read-modify-write, so the cache line stays shared between shards), and
//! the mutex is only taken when one of them says there is something to do:
//!
//! - `ua_epoch` counts unit attentions posted to any nexus of the LU. Each
//!   nexus registers a mailbox here ([`LuShared::attach`], on its first
//!   command to the LU; [`LuShared::detach`] on logout or connection loss)
//!   and remembers the epoch it last drained; a command compares it with
//!   one `Acquire` load and locks only when it moved, to move its own
//!   mailbox into its [`super::NexusState`] (where the existing per-nexus
//!   queue reports them once, oldest first, reset-class first).
//! - `reserved` is set while a persistent reservation or an SPC-2 RESERVE
//!   exists. Only then does a command lock to check RESERVATION CONFLICT
//!   (SPC-4 §5.13, SPC-2 §7.21). Registrations alone never conflict with a
//!   command, so they do not set it.
//! - `swp` and `wce` are the Control page SWP and Caching page WCE bits
//!   (one value per LU; a change raises MODE PARAMETERS CHANGED on the
//!   other nexuses); writes load them `Relaxed`. Saved values (MODE SELECT
//!   SP = 1) live here too and are restored by a LUN reset and at start.
//! - `caw_active` counts COMPARE AND WRITE / ORWRITE range locks held; a
//!   write locks to test overlap only while it is non-zero, and then waits
//!   (a [`super::Job`] retried by its connection) until the range is free.
//! - `sanitizing` is set while a sanitize operation runs: other commands
//!   answer NOT READY, SANITIZE IN PROGRESS. The operation itself outlives
//!   the command, resets and nexus loss ([`super::sanitize`]).
//! - each nexus mailbox has an abort generation (an `Arc<AtomicU64>` its
//!   connection also holds) that PREEMPT AND ABORT moves: the connection
//!   loads it when a task starts or finishes and on its tick, and ends the
//!   tasks it accepted before the move.
//! - `tas` is the Control page TAS bit (LU-wide, default on).
//! - `blocks` is the LU's capacity once an online resize set it (0: the
//!   configured [`super::LuInfo::num_blocks`]); every command's range check
//!   and READ CAPACITY read it with one `Acquire` load
//!   ([`LuShared::num_blocks`]), so all shards see a resize at once.
//! - `reset_epoch` counts LUN/target resets; a task of another nexus that
//!   ran across one ends with TASK ABORTED (TAS = 1) — one load when the
//!   task completes.
//!
//! The slow paths (PERSISTENT RESERVE OUT, RESERVE/RELEASE, LUN reset,
//! MODE SELECT of a shared page, CAW lock/unlock, attach/detach of a nexus)
//! take the one mutex for microseconds and never do I/O under it, except
//! the APTPL / saved-mode state files, which are written (temp file, fsync,
//! rename, fsync of the directory) under the lock so that two writers
//! cannot reorder their files — PERSISTENT RESERVE OUT with APTPL is rare
//! and its initiator waits for durability anyway.
//!
//! # Deviation from "messages, never shared locks"
//!
//! DESIGN asks that LU state have one owner and reach other shards as
//! messages. Here the owner is this object and the messages to other
//! nexuses are the per-nexus mailboxes, but they are delivered through a
//! short mutex rather than a channel to a control thread: a RESERVE or a
//! CAW lock must be decided (conflict or not) before its status goes out,
//! and a round trip through another thread's inbox would make every PR OUT,
//! CAW and reservation check wait for that thread's loop (and need a wake
//! of the requesting shard). The lock is never taken on a READ or WRITE
//! unless an atomic says a reservation, a CAW or a unit attention exists,
//! so the common I/O path stays as lock-free as with messages; the price
//! is that the rare paths serialise on one mutex per LU.
//!
//! Known limits: a write already submitted to the backend when a CAW takes
//! its range is not waited for (only writes that start while the range is
//! held are); tasks of other nexuses are not aborted at once by a LUN reset,
//! they run to completion and then report TASK ABORTED (or nothing, TAS =
//! 0); PREEMPT AND ABORT does abort the preempted nexuses' tasks (each
//! mailbox's abort generation, see `LuShared::abort_tasks_of`), but its
//! own status goes out at once, not after those tasks have ended on their
//! shards; a TARGET RESET releases SPC-2 reservations and restores
//! saved mode values but raises no unit attention (the connection contract
//! in core/tests/conn_scripted.rs has the issuing nexus continue without
//! one).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::pr::PrState;
use super::sense::Sense;

/// Identity of an I_T nexus as reservations see it (SPC-4 §5.13): the
/// initiator port (iSCSI name + ISID, RFC 7143 §4.2.7) and the target port
/// (our portal group tag).
#[derive(Clone, PartialEq, Eq, Debug, Default, Hash)]
pub struct ItNexus {
    /// Initiator name, lower case.
    pub initiator: String,
    /// ISID (48 bits).
    pub isid: u64,
    /// Target portal group tag of the target port.
    pub tpgt: u16,
}

impl ItNexus {
    /// An I_T nexus from the initiator name (folded to lower case), ISID and
    /// target portal group tag.
    pub fn new(initiator: &str, isid: u64, tpgt: u16) -> Self {
        ItNexus { initiator: initiator.to_ascii_lowercase(), isid, tpgt }
    }
}

/// Pending unit attentions for one nexus.
#[derive(Debug)]
struct Mailbox {
    it: ItNexus,
    pending: Vec<Sense>,
    /// Abort generation of this nexus (see `LuShared::abort_tasks_of`);
    /// the nexus's connection holds a clone and loads it.
    abort: Arc<AtomicU64>,
}

/// Everything behind the mutex.
#[derive(Debug, Default)]
pub(crate) struct LuState {
    mailboxes: HashMap<u64, Mailbox>,
    next_id: u64,
    /// Persistent reservations (SPC-4 §5.13).
    pub(crate) pr: PrState,
    /// SPC-2 RESERVE(6/10) holder.
    pub(crate) spc2: Option<ItNexus>,
    /// COMPARE AND WRITE range locks: (first LBA, end LBA exclusive, owner).
    caw: Vec<(u64, u64, u64)>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct LuShared {
    ua_epoch: AtomicU64,
    /// Counts LOGICAL UNIT / target resets: a task that started before one
    /// and ends after it was aborted by it (TAS: TASK ABORTED status).
    reset_epoch: AtomicU64,
    reserved: AtomicBool,
    swp: AtomicBool,
    /// Control page TAS, LU-wide (0: default, which is on; 1: off; 2: on).
    tas: AtomicU8,
    caw_active: AtomicU32,
    sanitizing: AtomicBool,
    /// The LU's sanitize operation: runner, progress, failure
    /// ([`super::sanitize`]).
    pub sanitize: super::sanitize::SanitizeState,
    /// Capacity in blocks after an online resize; 0 until one.
    blocks: AtomicU64,
    /// Current WCE of the Caching mode page, LU-wide (0: the LU's
    /// configured default, 1: off, 2: on).
    wce: AtomicU8,
    /// Saved mode parameters (MODE SELECT with SP = 1): WCE, SWP, D_SENSE,
    /// TAS, each 0 (nothing saved: default), 1 (off) or 2 (on).
    saved: [AtomicU8; 4],
    state: Mutex<LuState>,
    /// Where the APTPL state lives (`None`: not persisted).
    state_file: Option<PathBuf>,
}

/// Most unit attentions queued per nexus mailbox.
const MAILBOX_MAX: usize = 16;

impl LuShared {
    /// Shared state for one LU. With `state_file`, persistent reservations
    /// made with APTPL are written there (atomically) and restored now.
    pub fn new(state_file: Option<PathBuf>) -> Self {
        let s = LuShared { state_file, ..LuShared::default() };
        if let Some(path) = &s.state_file {
            if let Some(pr) = PrState::load(path) {
                let mut st = s.lock();
                st.pr = pr;
                s.reserved.store(st.pr.reservation.is_some(), Ordering::Release);
            }
            if let Ok(text) = std::fs::read_to_string(path.with_extension("mode")) {
                let saved = SavedMode::from_text(&text);
                s.store_saved(saved);
                s.apply_saved();
            }
        }
        s
    }

    fn store_saved(&self, m: SavedMode) {
        for (slot, v) in self.saved.iter().zip([m.wce, m.swp, m.d_sense, m.tas]) {
            slot.store(tri(v), Ordering::Release);
        }
    }

    /// Current values go back to the saved ones (or the defaults): at
    /// start and on LOGICAL UNIT RESET (SPC-4 §7.5.1).
    fn apply_saved(&self) {
        let m = self.saved_mode();
        self.wce.store(tri(m.wce), Ordering::Release);
        self.swp.store(m.swp.unwrap_or(false), Ordering::Release);
        self.tas.store(tri(m.tas), Ordering::Release);
    }

    /// The saved mode parameters.
    pub fn saved_mode(&self) -> SavedMode {
        let g = |a: &AtomicU8| untri(a.load(Ordering::Acquire));
        let [wce, swp, d_sense, tas] = &self.saved;
        SavedMode { wce: g(wce), swp: g(swp), d_sense: g(d_sense), tas: g(tas) }
    }

    /// MODE SELECT with SP = 1: remember `m`'s set values as saved (and
    /// write them next to the state file when there is one).
    pub fn save_mode(&self, m: SavedMode) -> std::io::Result<()> {
        let old = self.saved_mode();
        let merged = SavedMode {
            wce: m.wce.or(old.wce),
            swp: m.swp.or(old.swp),
            d_sense: m.d_sense.or(old.d_sense),
            tas: m.tas.or(old.tas),
        };
        self.store_saved(merged);
        match &self.state_file {
            Some(p) => {
                let _guard = self.lock();
                write_atomic(&p.with_extension("mode"), merged.to_text().as_bytes())
            }
            None => Ok(()),
        }
    }

    /// Current WCE set by MODE SELECT for the whole LU (`None`: the LU's
    /// configured default).
    pub fn wce(&self) -> Option<bool> {
        untri(self.wce.load(Ordering::Relaxed))
    }

    /// Change WCE from nexus `from`; the others get MODE PARAMETERS CHANGED.
    pub fn set_wce(&self, on: bool, from: Option<u64>) {
        if self.wce.swap(tri(Some(on)), Ordering::AcqRel) != tri(Some(on)) {
            self.post_unit_attention(Sense::mode_parameters_changed(), from);
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, LuState> {
        // Every update below leaves the state consistent between
        // statements that could panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The APTPL state file, if any.
    pub fn state_file(&self) -> Option<&std::path::Path> {
        self.state_file.as_deref()
    }

    /// Register a nexus (first command of a session to this LU). Returns
    /// its id, the current unit attention epoch and its abort generation
    /// (see `LuShared::abort_tasks_of`).
    pub fn attach(&self, it: ItNexus) -> (u64, u64, Arc<AtomicU64>) {
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let abort = Arc::new(AtomicU64::new(0));
        st.mailboxes.insert(id, Mailbox { it, pending: Vec::new(), abort: abort.clone() });
        (id, self.ua_epoch.load(Ordering::Acquire), abort)
    }

    /// PERSISTENT RESERVE OUT with PREEMPT AND ABORT (SPC-4 §5.13.11.2.5):
    /// every task of the I_T nexuses of initiator ports `its` (name and
    /// ISID, any target port) on this LU is aborted. Each such nexus's
    /// abort generation moves; its connection, on whatever shard, sees that
    /// with one load when it next starts, completes or releases a task (and
    /// on its 100 ms tick), and ends every task it accepted before the move:
    /// TASK ABORTED when TAS is set, no response otherwise (SAM-5 §5.6).
    pub(crate) fn abort_tasks_of(&self, st: &LuState, its: &[ItNexus]) {
        for m in st.mailboxes.values() {
            if its.iter().any(|g| g.initiator == m.it.initiator && g.isid == m.it.isid) {
                m.abort.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// The nexus is gone (logout, connection loss: SAM-5 I_T nexus loss).
    /// Releases an SPC-2 reservation it held (SPC-2 §5.5.1).
    pub fn detach(&self, id: u64) {
        let mut st = self.lock();
        if let Some(m) = st.mailboxes.remove(&id) {
            let still_there = st.mailboxes.values().any(|o| o.it == m.it);
            if !still_there && st.spc2.as_ref() == Some(&m.it) {
                st.spc2 = None;
                self.publish_reserved(&st);
            }
        }
    }

    /// Unit attention epoch: changes whenever a unit attention is posted to
    /// any nexus of the LU.
    pub fn ua_epoch(&self) -> u64 {
        self.ua_epoch.load(Ordering::Acquire)
    }

    /// Move the unit attentions posted to nexus `id` out of its mailbox;
    /// returns them (oldest first) and the epoch they cover.
    pub fn take_unit_attentions(&self, id: u64) -> (Vec<Sense>, u64) {
        let mut st = self.lock();
        let epoch = self.ua_epoch.load(Ordering::Acquire);
        let v = st.mailboxes.get_mut(&id).map(|m| std::mem::take(&mut m.pending)).unwrap_or_default();
        (v, epoch)
    }

    /// Post `ua` to every nexus for which `to` is true.
    pub(crate) fn post_locked(&self, st: &mut LuState, ua: Sense, to: impl Fn(u64, &ItNexus) -> bool) {
        let mut any = false;
        for (id, m) in st.mailboxes.iter_mut() {
            if !to(*id, &m.it) || m.pending.contains(&ua) {
                continue;
            }
            if ua.asc.asc() == 0x29 {
                m.pending.clear();
            }
            if m.pending.len() < MAILBOX_MAX {
                m.pending.push(ua);
                any = true;
            }
        }
        if any {
            self.ua_epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Post `ua` to every nexus of the LU except `except` (a nexus id).
    pub fn post_unit_attention(&self, ua: Sense, except: Option<u64>) {
        let mut st = self.lock();
        self.post_locked(&mut st, ua, |id, _| Some(id) != except);
    }

    /// The target's LU inventory changed (a configuration reload added or
    /// removed an LU): REPORTED LUNS DATA HAS CHANGED (3Fh/0Eh) for every
    /// nexus of this LU (SPC-4 §6.33); the daemon calls it on every LU the
    /// reload keeps.
    pub fn reported_luns_changed(&self) {
        self.post_unit_attention(Sense::reported_luns_changed(), None);
    }

    /// The asymmetric access state of a target port group changed:
    /// ASYMMETRIC ACCESS STATE CHANGED (2Ah/06h) for every nexus (SPC-4
    /// §5.16.2.7); the daemon calls it after the new states are in place.
    pub fn alua_changed(&self) {
        self.post_unit_attention(Sense::unit_attention(super::sense::Asc::ASYMMETRIC_ACCESS_STATE_CHANGED), None);
    }

    /// The LU was resized: CAPACITY DATA HAS CHANGED (2Ah/09h) for every
    /// nexus (SBC-4 §4.6).
    pub fn capacity_changed(&self) {
        self.post_unit_attention(Sense::capacity_changed(), None);
    }

    /// The LU's capacity in blocks: the last [`Self::set_num_blocks`], or
    /// `configured` (the snapshot's [`super::LuInfo::num_blocks`]) before
    /// any resize. One load.
    pub fn num_blocks(&self, configured: u64) -> u64 {
        match self.blocks.load(Ordering::Acquire) {
            0 => configured,
            n => n,
        }
    }

    /// Online resize: every later command on every shard range-checks
    /// against `blocks` (> 0) and READ CAPACITY reports it. Changing it
    /// raises CAPACITY DATA HAS CHANGED on every nexus ([`Self::capacity_changed`])
    /// unless it was already `blocks` (compared with `configured` before
    /// any resize). Returns whether it changed.
    pub fn set_num_blocks(&self, blocks: u64, configured: u64) -> bool {
        assert!(blocks > 0, "an LU has at least one block");
        let old = self.blocks.swap(blocks, Ordering::AcqRel);
        let old = if old == 0 { configured } else { old };
        if old != blocks {
            self.capacity_changed();
        }
        old != blocks
    }

    /// LOGICAL UNIT RESET (SAM-5 §6.3.2): BUS DEVICE RESET FUNCTION OCCURRED
    /// (29h/03h) for every I_T nexus of the LU, the SPC-2 reservation is
    /// released, WCE and SWP go back to their saved values (or defaults), CAW locks stay with
    /// their (aborted) owners until those release them. Persistent
    /// reservations survive (SPC-4 §5.13.1).
    pub fn lun_reset(&self) {
        self.reset_epoch.fetch_add(1, Ordering::AcqRel);
        self.apply_saved();
        let mut st = self.lock();
        st.spc2 = None;
        self.publish_reserved(&st);
        self.post_locked(&mut st, Sense::bus_device_reset(), |_, _| true);
    }

    /// TARGET WARM/COLD RESET as seen by this LU: like [`Self::lun_reset`]
    /// (SPC-2 reservation released, saved mode values) but without a unit attention
    /// — the connection contract (core/tests/conn_scripted.rs) has the
    /// issuing nexus continue without one; the reset of the other nexuses'
    /// connections (cold reset) reports itself by the logout.
    pub fn target_reset(&self) {
        self.reset_epoch.fetch_add(1, Ordering::AcqRel);
        self.apply_saved();
        let mut st = self.lock();
        st.spc2 = None;
        self.publish_reserved(&st);
    }

    /// Reset epoch: changes with every LUN or target reset of this LU.
    /// Tasks of other nexuses that were running across a reset end with
    /// TASK ABORTED (Control mode page TAS = 1, SAM-5 §5.6).
    pub fn reset_epoch(&self) -> u64 {
        self.reset_epoch.load(Ordering::Acquire)
    }

    /// Task aborted status (Control mode page TAS, SPC-4 §7.5.8): a task
    /// aborted by another I_T nexus (its LUN reset, PREEMPT AND ABORT)
    /// ends with TASK ABORTED when set, without a response otherwise.
    pub fn tas(&self) -> bool {
        self.tas.load(Ordering::Relaxed) != 1
    }

    /// Change TAS from nexus `from`; the other nexuses get MODE PARAMETERS
    /// CHANGED (the Control page is shared).
    pub fn set_tas(&self, on: bool, from: Option<u64>) {
        let was_on = self.tas.swap(tri(Some(on)), Ordering::AcqRel) != 1;
        if was_on != on {
            self.post_unit_attention(Sense::mode_parameters_changed(), from);
        }
    }

    /// Software write protect (Control mode page SWP).
    pub fn swp(&self) -> bool {
        self.swp.load(Ordering::Relaxed)
    }

    /// Change SWP from nexus `from`; other nexuses get MODE PARAMETERS
    /// CHANGED (SPC-4 §7.5.8: the Control page is shared).
    pub fn set_swp(&self, on: bool, from: Option<u64>) {
        if self.swp.swap(on, Ordering::AcqRel) != on {
            self.post_unit_attention(Sense::mode_parameters_changed(), from);
        }
    }

    /// A reservation (persistent or SPC-2) exists: commands must check
    /// for RESERVATION CONFLICT.
    pub fn reserved(&self) -> bool {
        self.reserved.load(Ordering::Acquire)
    }

    pub(crate) fn publish_reserved(&self, st: &LuState) {
        self.reserved.store(st.pr.reservation.is_some() || st.spc2.is_some(), Ordering::Release);
    }

    /// A SANITIZE is running: every command but INQUIRY, REPORT LUNS and
    /// REQUEST SENSE ends with NOT READY, SANITIZE IN PROGRESS (SBC-4
    /// §4.11). One relaxed load per command.
    pub fn sanitizing(&self) -> bool {
        self.sanitizing.load(Ordering::Relaxed)
    }

    /// Mark a SANITIZE started (`true`) or finished.
    pub fn set_sanitizing(&self, on: bool) {
        self.sanitizing.store(on, Ordering::Release);
    }

    /// Mark a sanitize operation started unless one already runs (two
    /// SANITIZE commands racing from different shards: one wins).
    pub fn try_begin_sanitize(&self) -> bool {
        self.sanitizing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Take the COMPARE AND WRITE lock on blocks `lba..lba+blocks` for
    /// `owner` (any unique tag: nexus id and task). `false` when another
    /// CAW holds an overlapping range: try again later.
    pub fn caw_lock(&self, lba: u64, blocks: u64, owner: u64) -> bool {
        let end = lba.saturating_add(blocks);
        let mut st = self.lock();
        if st.caw.iter().any(|&(s, e, _)| s < end && lba < e) {
            return false;
        }
        st.caw.push((lba, end, owner));
        self.caw_active.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Release a lock taken with [`Self::caw_lock`].
    pub fn caw_unlock(&self, lba: u64, owner: u64) {
        let mut st = self.lock();
        if let Some(i) = st.caw.iter().position(|&(s, _, o)| s == lba && o == owner) {
            st.caw.swap_remove(i);
            self.caw_active.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Does a CAW lock overlap blocks `lba..lba+blocks`? One relaxed load
    /// when no CAW is running.
    pub fn caw_overlaps(&self, lba: u64, blocks: u64) -> bool {
        if self.caw_active.load(Ordering::Acquire) == 0 {
            return false;
        }
        let end = lba.saturating_add(blocks);
        self.lock().caw.iter().any(|&(s, e, _)| s < end && lba < e)
    }

    /// Write the APTPL state (when a state file is configured): temp file,
    /// fsync, rename, fsync of the directory. An error fails the PR OUT
    /// command with INSUFFICIENT REGISTRATION RESOURCES; the in-memory
    /// change is kept (it is what every nexus already sees).
    pub(crate) fn persist(&self, st: &LuState) -> std::io::Result<()> {
        match &self.state_file {
            Some(p) => st.pr.save(p),
            None => Ok(()),
        }
    }
}

/// Saved mode parameters of an LU; `None` means "not saved: default".
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SavedMode {
    /// Caching page WCE.
    pub wce: Option<bool>,
    /// Control page SWP.
    pub swp: Option<bool>,
    /// Control page D_SENSE (the starting value of every new nexus).
    pub d_sense: Option<bool>,
    /// Control page TAS.
    pub tas: Option<bool>,
}

impl SavedMode {
    fn to_text(self) -> String {
        let f = |v: Option<bool>| match v {
            None => "-",
            Some(true) => "1",
            Some(false) => "0",
        };
        format!(
            "shardtgt-mode 1\nwce {}\nswp {}\nd_sense {}\ntas {}\n",
            f(self.wce),
            f(self.swp),
            f(self.d_sense),
            f(self.tas)
        )
    }

    fn from_text(text: &str) -> SavedMode {
        let mut m = SavedMode::default();
        for line in text.lines() {
            let v = |s: &str| match s {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            };
            match line.split_once(' ') {
                Some(("wce", x)) => m.wce = v(x),
                Some(("swp", x)) => m.swp = v(x),
                Some(("d_sense", x)) => m.d_sense = v(x),
                Some(("tas", x)) => m.tas = v(x),
                _ => {}
            }
        }
        m
    }
}

fn tri(v: Option<bool>) -> u8 {
    match v {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    }
}

fn untri(v: u8) -> Option<bool> {
    match v {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    }
}

/// Replace `path` with `bytes` atomically: temp file, fsync, rename, fsync
/// of the directory.
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_attentions_reach_other_nexuses_once() {
        let s = LuShared::default();
        let (a, ea, _) = s.attach(ItNexus::new("iqn.a", 1, 1));
        let (b, _, _) = s.attach(ItNexus::new("iqn.b", 2, 1));
        s.post_unit_attention(Sense::mode_parameters_changed(), Some(a));
        assert_ne!(s.ua_epoch(), ea);
        assert_eq!(s.take_unit_attentions(a).0, vec![]);
        assert_eq!(s.take_unit_attentions(b).0, vec![Sense::mode_parameters_changed()]);
        assert_eq!(s.take_unit_attentions(b).0, vec![]);
        s.lun_reset();
        assert_eq!(s.take_unit_attentions(a).0, vec![Sense::bus_device_reset()]);
        s.detach(b);
        assert_eq!(s.take_unit_attentions(b).0, vec![]);
    }

    #[test]
    fn caw_ranges() {
        let s = LuShared::default();
        assert!(!s.caw_overlaps(0, 10));
        assert!(s.caw_lock(5, 1, 1));
        assert!(!s.caw_lock(5, 1, 2));
        assert!(s.caw_lock(6, 1, 2));
        assert!(s.caw_overlaps(0, 6));
        assert!(!s.caw_overlaps(7, 6));
        s.caw_unlock(5, 1);
        s.caw_unlock(6, 2);
        assert!(!s.caw_overlaps(0, 100));
    }
}
