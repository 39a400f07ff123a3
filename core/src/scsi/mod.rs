//! SCSI block-device emulation (SPC-4, SBC-4).
//!
//! This module turns a CDB into either a finished answer (status, sense and
//! any Data-In bytes written into the caller's buffer) or a request for the
//! backend (read, write, flush) that the connection executes and then
//! completes with [`complete_backend`]. It never sees a PDU, never performs
//! I/O and never allocates on the READ/WRITE path.

pub mod cdb;
pub mod commands;
pub mod sense;

pub use sense::{Asc, Sense, SenseKey};

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
    /// Backend reads of unmapped blocks return zeros (LBPRZ); thin provisioning off for now.
    pub thin: bool,
}

/// Per I_T nexus state that SCSI emulation keeps (sense for REQUEST SENSE,
/// pending unit attentions).
#[derive(Clone, Debug, Default)]
pub struct NexusState {
    /// Pending unit attention conditions, oldest first (bounded).
    pub unit_attentions: Vec<Sense>,
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
    /// For WRITE AND VERIFY with BYTCHK, VERIFY: compare instead of write (reserved for later).
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
