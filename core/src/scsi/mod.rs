//! SCSI block-device emulation (SPC-4, SBC-4).
//!
//! This module turns a CDB into either a finished answer (status, sense and
//! any Data-In bytes written into the caller's buffer) or a request for the
//! backend (read, write, flush) that the connection executes and then
//! completes with [`complete_backend`]. It never sees a PDU, never performs
//! I/O and never allocates on the READ/WRITE path.
//!
//! Entry points:
//! - [`execute`] decodes a CDB and answers it or asks for backend I/O;
//! - [`parameter_list_len`] / [`execute_with_parameter_list`] for commands
//!   whose Data-Out is a parameter list consumed here (MODE SELECT);
//! - [`complete_backend`] maps a backend result to status and sense, and
//!   [`complete_verify`] finishes a VERIFY with BYTCHK = 01b;
//! - [`Sense::encode_fixed`] / [`Sense::encode_descriptor`] (or
//!   [`NexusState::encode_sense`], which picks by D_SENSE) build the sense
//!   data of a SCSI Response.
//!
//! The commands, their standards and the decisions taken are listed in
//! [`commands`].

pub mod alua;
pub mod cdb;
pub mod commands;
mod ext;
mod inquiry;
pub mod job;
pub mod lba_status;
pub mod lu_shared;
mod mode;
pub mod pr;
pub mod sanitize;
pub mod sense;
mod writer;
mod xcopy;

use std::sync::Arc;

pub use alua::AluaState;
pub use job::{Job, JobBuf, JobStep};
pub use lu_shared::{ItNexus, LuShared, SavedMode};
pub use sanitize::{SanitizeOp, SanitizeState, Sanitizer};

pub use cdb::ScsiOpcode;
pub use commands::{
    complete_backend, complete_verify, execute, execute_with_parameter_list, max_transfer_blocks, parameter_list_len,
    MAX_TRANSFER_BYTES,
};
pub use sense::{Asc, Sense, SenseKey, SenseKeySpecific};

/// SCSI status codes (SAM-5 §5.3.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ScsiStatus(pub u8);

impl ScsiStatus {
    /// GOOD.
    pub const GOOD: ScsiStatus = ScsiStatus(0x00);
    /// CHECK CONDITION.
    pub const CHECK_CONDITION: ScsiStatus = ScsiStatus(0x02);
    /// CONDITION MET.
    pub const CONDITION_MET: ScsiStatus = ScsiStatus(0x04);
    /// BUSY.
    pub const BUSY: ScsiStatus = ScsiStatus(0x08);
    /// RESERVATION CONFLICT.
    pub const RESERVATION_CONFLICT: ScsiStatus = ScsiStatus(0x18);
    /// TASK SET FULL.
    pub const TASK_SET_FULL: ScsiStatus = ScsiStatus(0x28);
    /// ACA ACTIVE.
    pub const ACA_ACTIVE: ScsiStatus = ScsiStatus(0x30);
    /// TASK ABORTED.
    pub const TASK_ABORTED: ScsiStatus = ScsiStatus(0x40);
}

/// What a logical unit looks like to SCSI emulation: identity and geometry.
/// Immutable; the daemon builds it from the config.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LuInfo {
    /// Logical block size in bytes (512 or 4096).
    pub block_size: u32,
    /// Number of logical blocks.
    pub num_blocks: u64,
    /// T10 vendor identification (INQUIRY bytes 8..16), at most 8 ASCII chars.
    pub vendor: String,
    /// Product identification, at most 16 ASCII chars.
    pub product: String,
    /// Product revision level, at most 4 ASCII chars.
    pub revision: String,
    /// Unit serial number (VPD 0x80).
    pub serial: String,
    /// 64-bit NAA IEEE Registered identifier (NAA 6 high half is built from this) for VPD 0x83.
    pub naa_id: u64,
    /// Read-only LU: writes answer DATA PROTECT / WRITE PROTECTED.
    pub read_only: bool,
    /// Write cache enabled (mode page 0x08 WCE).
    pub write_cache: bool,
    /// The SCSI target device name (the iSCSI target name) for VPD 0x83.
    pub target_name: String,
    /// Relative target port identifier (VPD 0x83), 1-based.
    pub rel_port_id: u16,
    /// Target port group (VPD 0x83 / ALUA).
    pub port_group: u16,
    /// Logical block provisioning management (SBC-4 §4.7): UNMAP and WRITE
    /// SAME with UNMAP are accepted, and blocks they unmap read back as
    /// zeros (LBPME and LBPRZ in READ CAPACITY(16), VPD B2h).
    pub thin: bool,
    /// The backend really deallocates ([`BackendOp::Deallocate`]) and can
    /// tell mapped from deallocated blocks ([`BackendOp::MapStatus`]): UNMAP
    /// gives the space back and GET LBA STATUS reports it. Only meaningful
    /// with [`Self::thin`]; a thin LU without it unmaps by writing zeros and
    /// reports every block mapped.
    pub deallocate: bool,
    /// The target port groups (one per iSCSI portal group: id = portal
    /// group tag) and their asymmetric access states, ascending by id
    /// (SPC-4 §5.16). Empty: one group, [`Self::port_group`],
    /// active/optimized.
    pub port_groups: Vec<(u16, AluaState)>,
}

impl LuInfo {
    /// The asymmetric access state of target port group `tpgt` (the
    /// portal group a nexus came in on); active/optimized for a group not
    /// listed. A scan of a list with one entry per portal group: no lock,
    /// no atomic (the list changes only with a configuration snapshot).
    pub fn alua_state(&self, tpgt: u16) -> AluaState {
        self.port_groups.iter().find(|(g, _)| *g == tpgt).map_or(AluaState::ACTIVE_OPTIMIZED, |(_, s)| *s)
    }
}

/// Per I_T nexus state that SCSI emulation keeps (sense for REQUEST SENSE,
/// pending unit attentions).
///
/// Unit attentions and mode parameters belong to an I_T_L nexus (SAM-5):
/// keep one `NexusState` per LUN of a session, not one per session, or a
/// unit attention of one LU is reported on a command to another.
///
/// Mode parameters: D_SENSE is kept here, per I_T_L nexus (SPC-4 lets a
/// logical unit keep mode parameters per I_T nexus); WCE and SWP are
/// LU-wide in [`LuShared`] (a change raises MODE PARAMETERS CHANGED on the
/// other nexuses). Saved values (MODE SELECT SP = 1) are LU-wide too; a new
/// nexus starts from the saved D_SENSE.
///
/// No unit attention is pending on a new nexus ([`Default`], [`Self::new`]):
/// like Linux LIO, and unlike tgt, we do not report POWER ON OCCURRED to
/// every new I_T nexus. [`Self::with_power_on_ua`] gives the tgt behaviour.
#[derive(Clone, Debug, Default)]
pub struct NexusState {
    /// Who this nexus is, for reservations (initiator port and target port).
    pub it: ItNexus,
    /// The nexus's registration with its LU's shared state (unit attention
    /// mailbox, reservations, SWP), once attached.
    pub link: Option<NexusLink>,
    /// Pending unit attention conditions, oldest first (bounded by
    /// [`Self::MAX_UNIT_ATTENTIONS`] when added with
    /// [`Self::push_unit_attention`]).
    pub unit_attentions: Vec<Sense>,
    /// D_SENSE of the Control mode page (SPC-4 §7.5.8): sense data in
    /// descriptor format when set, fixed format otherwise. Default `false`;
    /// changed by MODE SELECT.
    pub d_sense: bool,
    /// WCE of the Caching mode page (SBC-4) as changed by MODE SELECT
    /// through this nexus; `None` means the LU's configured
    /// [`LuInfo::write_cache`]. An attached nexus follows the LU-wide value
    /// in [`LuShared`] first ([`Self::write_cache_enabled`]). With WCE off
    /// every write is sent with `fua = true`.
    pub write_cache: Option<bool>,
    /// Target portal group tag of the session's target port (RFC 7143
    /// §13.9), for the SCSI target port name in VPD page 83h.
    pub tpgt: u16,
    /// EXTENDED COPY results held for RECEIVE COPY RESULTS: (list
    /// identifier, segments), oldest first, bounded.
    pub copy_results: Vec<(u8, u16)>,
}

/// A nexus's handle on its LU's [`LuShared`].
#[derive(Clone, Debug)]
pub struct NexusLink {
    /// The LU's shared state.
    pub shared: Arc<LuShared>,
    /// This nexus's id there.
    pub id: u64,
    /// The unit attention epoch last drained.
    pub ua_seen: u64,
    /// This nexus's abort generation (moved by PREEMPT AND ABORT from any
    /// nexus, `LuShared::abort_tasks_of`).
    pub abort: Arc<std::sync::atomic::AtomicU64>,
    /// The abort generation the connection last swept its tasks for.
    pub abort_seen: u64,
}

impl NexusState {
    /// Register with the LU's shared state (once; later calls do nothing).
    pub fn attach(&mut self, shared: &Arc<LuShared>) {
        if self.link.is_none() {
            if let Some(d) = shared.saved_mode().d_sense {
                self.d_sense = d;
            }
            let (id, ua_seen, abort) = shared.attach(self.it.clone());
            self.link = Some(NexusLink { shared: shared.clone(), id, ua_seen, abort, abort_seen: 0 });
        }
    }

    /// Deregister (I_T nexus loss: logout or connection failure).
    pub fn detach(&mut self) {
        if let Some(l) = self.link.take() {
            l.shared.detach(l.id);
        }
    }

    /// The LU's shared state; a nexus never attached gets a private one
    /// (unit tests, a LUN without an LU).
    pub fn shared(&mut self) -> Arc<LuShared> {
        if self.link.is_none() {
            self.attach(&Arc::new(LuShared::default()));
        }
        self.link.as_ref().map(|l| l.shared.clone()).unwrap_or_default()
    }

    /// The LU's reset epoch ([`LuShared::reset_epoch`]); 0 when not attached.
    pub fn reset_epoch(&self) -> u64 {
        self.link.as_ref().map_or(0, |l| l.shared.reset_epoch())
    }

    /// This nexus's abort generation (one load; 0 when not attached). A
    /// task that saw an older value when it was accepted has been aborted
    /// by PREEMPT AND ABORT from another nexus.
    pub fn abort_gen(&self) -> u64 {
        self.link.as_ref().map_or(0, |l| l.abort.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Task aborted status of the LU (Control page TAS; on when not attached).
    pub fn tas(&self) -> bool {
        self.link.as_ref().is_none_or(|l| l.shared.tas())
    }

    /// This nexus's id in its LU's shared state.
    pub fn link_id(&self) -> Option<u64> {
        self.link.as_ref().map(|l| l.id)
    }

    /// Move unit attentions other nexuses posted for this one into
    /// [`Self::unit_attentions`]. One atomic load when there are none.
    pub fn sync_unit_attentions(&mut self) {
        let Some(l) = self.link.as_mut() else { return };
        if l.shared.ua_epoch() == l.ua_seen {
            return;
        }
        let (uas, epoch) = l.shared.take_unit_attentions(l.id);
        l.ua_seen = epoch;
        for ua in uas {
            self.push_unit_attention(ua);
        }
    }

    /// The LU's capacity in blocks as this nexus sees it now: after an
    /// online resize the LU's shared value ([`LuShared::num_blocks`]),
    /// otherwise `lu.num_blocks`. One atomic load.
    pub fn num_blocks(&self, lu: &LuInfo) -> u64 {
        self.link.as_ref().map_or(lu.num_blocks, |l| l.shared.num_blocks(lu.num_blocks))
    }

    /// Writes are refused: a read-only LU or SWP set (SPC-4 §7.5.8).
    pub fn write_protected(&self, lu: &LuInfo) -> bool {
        lu.read_only || self.link.as_ref().is_some_and(|l| l.shared.swp())
    }

    /// Most unit attentions kept pending per nexus; further ones are
    /// dropped (the oldest are the ones SAM-5 wants reported first).
    pub const MAX_UNIT_ATTENTIONS: usize = 16;

    /// A fresh nexus on the target port with portal group tag `tpgt`: no
    /// unit attention, default mode parameters.
    pub fn new(tpgt: u16) -> Self {
        NexusState { tpgt, it: ItNexus { tpgt, ..ItNexus::default() }, ..NexusState::default() }
    }

    /// A fresh nexus of initiator port (`initiator`, `isid`) on the target
    /// port with portal group tag `tpgt`.
    pub fn for_initiator(initiator: &str, isid: u64, tpgt: u16) -> Self {
        NexusState { tpgt, it: ItNexus::new(initiator, isid, tpgt), ..NexusState::default() }
    }

    /// A fresh nexus with POWER ON, RESET, OR BUS DEVICE RESET OCCURRED
    /// (29h/00h) pending, as tgt reports on the first command of every new
    /// I_T nexus.
    pub fn with_power_on_ua(tpgt: u16) -> Self {
        let mut n = NexusState::new(tpgt);
        n.push_unit_attention(Sense::power_on_reset());
        n
    }

    /// Establish a unit attention condition (SAM-5, unit attention
    /// conditions). A condition already pending is not queued twice. A
    /// reset-class condition (ASC 29h) supersedes everything pending, as it
    /// takes precedence over all other unit attentions. When
    /// [`Self::MAX_UNIT_ATTENTIONS`] are pending the new one is dropped.
    pub fn push_unit_attention(&mut self, ua: Sense) {
        if self.unit_attentions.contains(&ua) {
            return;
        }
        if ua.asc.asc() == 0x29 {
            self.unit_attentions.clear();
        }
        if self.unit_attentions.len() < Self::MAX_UNIT_ATTENTIONS {
            self.unit_attentions.push(ua);
        }
    }

    /// Remove and return the oldest pending unit attention.
    pub fn take_unit_attention(&mut self) -> Option<Sense> {
        if self.unit_attentions.is_empty() {
            None
        } else {
            Some(self.unit_attentions.remove(0))
        }
    }

    /// Whether the write cache is enabled for `lu` on this nexus (WCE,
    /// SBC-4 Caching mode page).
    pub fn write_cache_enabled(&self, lu: &LuInfo) -> bool {
        self.link.as_ref().and_then(|l| l.shared.wce()).or(self.write_cache).unwrap_or(lu.write_cache)
    }

    /// Encode `sense` for a SCSI Response (RFC 7143 §11.4.7.2) in the format
    /// D_SENSE selects: descriptor (SPC-4 §4.5.2) or fixed (§4.5.3). Returns
    /// the bytes written (at most `out.len()`).
    pub fn encode_sense(&self, sense: &Sense, out: &mut [u8]) -> usize {
        sense.encode(self.d_sense, out)
    }
}

/// Context for one command.
#[derive(Debug)]
pub struct CmdContext<'a> {
    /// The LU, or `None` when the LUN is not configured (only INQUIRY,
    /// REPORT LUNS and REQUEST SENSE then succeed, SPC-4 §6.6.2).
    pub lu: Option<&'a LuInfo>,
    /// Every configured LUN index of the target, for REPORT LUNS.
    pub luns: &'a [u16],
    /// The CDB (6 to 260 bytes).
    pub cdb: &'a [u8],
    /// Expected Data Transfer Length from the initiator (bytes).
    pub edtl: u32,
    /// The command carries Data-Out (W bit).
    pub write_bit: bool,
    /// The command expects Data-In (R bit).
    pub read_bit: bool,
}

/// What the backend must do for a command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BackendOp {
    /// Read `len` bytes at `offset` into the task buffer.
    Read,
    /// Write `len` bytes from the task buffer (after all Data-Out arrived).
    Write,
    /// Make everything written so far durable (SYNCHRONIZE CACHE).
    Flush,
    /// Deallocate `len` bytes at `offset` (UNMAP, WRITE SAME with UNMAP);
    /// no buffer. Afterwards the range reads as zeros (LBPRZ), whatever the
    /// backend could give back. Only sent to backends that say they can
    /// ([`LuInfo::deallocate`]).
    Deallocate,
    /// Report which bytes from `offset` to the end of the store are mapped
    /// and which are deallocated, as [`lba_status`] records filling at most
    /// the `len`-byte buffer (GET LBA STATUS). Only sent to backends that
    /// deallocate ([`LuInfo::deallocate`]).
    MapStatus,
}

/// A request to the backend derived from a CDB.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IoRequest {
    /// Operation.
    pub op: BackendOp,
    /// Byte offset on the LU.
    pub offset: u64,
    /// Byte length (0 for Flush means "whole LU").
    pub len: u32,
    /// Force unit access: the write must be durable before completion.
    pub fua: bool,
    /// VERIFY with BYTCHK = 01b (SBC-4): `op` is [`BackendOp::Read`], but the
    /// command carries `len` bytes of Data-Out. The connection collects the
    /// Data-Out, reads `len` bytes at `offset` into a second buffer, sends no
    /// Data-In, and finishes with [`complete_verify`] (GOOD or MISCOMPARE).
    pub verify: bool,
}

/// How a command proceeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Finished in emulation. `data_len` bytes of Data-In were written at the
    /// start of the caller's buffer (already cut to the allocation length;
    /// the connection computes residuals against EDTL).
    Done {
        /// Status.
        status: ScsiStatus,
        /// Sense data for CHECK CONDITION.
        sense: Option<Sense>,
        /// Bytes of Data-In placed in the buffer.
        data_len: u32,
    },
    /// Needs the backend. For writes the connection first collects
    /// `io.len` bytes of Data-Out (from EDTL) into the task buffer.
    Io(IoRequest),
    /// Needs several backend operations ([`Job`]): the connection collects
    /// [`Job::data_out_len`] bytes of Data-Out, then steps the job.
    Job(Box<Job>),
}

impl Outcome {
    /// GOOD with `data_len` bytes of Data-In.
    pub const fn good(data_len: u32) -> Outcome {
        Outcome::Done { status: ScsiStatus::GOOD, sense: None, data_len }
    }

    /// CHECK CONDITION with `sense` and no Data-In (SAM-5 §5.3.1).
    pub const fn check_condition(sense: Sense) -> Outcome {
        Outcome::Done { status: ScsiStatus::CHECK_CONDITION, sense: Some(sense), data_len: 0 }
    }

    /// The status, for a finished command.
    pub fn status(&self) -> Option<ScsiStatus> {
        match self {
            Outcome::Done { status, .. } => Some(*status),
            Outcome::Io(_) | Outcome::Job(_) => None,
        }
    }

    /// The sense, for a finished command with CHECK CONDITION.
    pub fn sense(&self) -> Option<Sense> {
        match self {
            Outcome::Done { sense, .. } => *sense,
            Outcome::Io(_) | Outcome::Job(_) => None,
        }
    }
}

/// Result of a backend operation, mapped to sense in one place ([`complete_backend`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BackendStatus {
    /// Success.
    Ok,
    /// EIO and friends.
    MediumError,
    /// ENOSPC.
    NoSpace,
    /// EROFS or a read-only backend.
    ReadOnly,
    /// Any other errno.
    Other(i32),
}
