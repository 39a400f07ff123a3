//! Reject PDU, opcode 0x3f (RFC 7143 §11.17). The rejected PDU's BHS
//! travels in the data segment.

use crate::serial::{CmdSn, StatSn};

/// Reject reason (RFC 7143 §11.17.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RejectReason(pub u8);

impl RejectReason {
    /// 0x02 data (payload) digest error.
    pub const DATA_DIGEST_ERROR: RejectReason = RejectReason(0x02);
    /// 0x03 SNACK reject.
    pub const SNACK_REJECT: RejectReason = RejectReason(0x03);
    /// 0x04 protocol error.
    pub const PROTOCOL_ERROR: RejectReason = RejectReason(0x04);
    /// 0x05 command not supported.
    pub const COMMAND_NOT_SUPPORTED: RejectReason = RejectReason(0x05);
    /// 0x06 immediate command reject: too many immediate commands.
    pub const IMMEDIATE_COMMAND_REJECT: RejectReason = RejectReason(0x06);
    /// 0x07 task in progress.
    pub const TASK_IN_PROGRESS: RejectReason = RejectReason(0x07);
    /// 0x08 invalid data ACK.
    pub const INVALID_DATA_ACK: RejectReason = RejectReason(0x08);
    /// 0x09 invalid PDU field.
    pub const INVALID_PDU_FIELD: RejectReason = RejectReason(0x09);
    /// 0x0a long operation reject: out of resources.
    pub const OUT_OF_RESOURCES: RejectReason = RejectReason(0x0a);
    /// 0x0b deprecated (negotiation reset).
    pub const NEGOTIATION_RESET: RejectReason = RejectReason(0x0b);
    /// 0x0c waiting for logout.
    pub const WAITING_FOR_LOGOUT: RejectReason = RejectReason(0x0c);
}

/// Reject header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Reject {
    /// Reason.
    pub reason: RejectReason,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// DataSN/R2TSN (for data and R2T SNACK rejects).
    pub datasn: u32,
}
