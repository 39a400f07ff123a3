//! Asynchronous Message PDU, opcode 0x32 (RFC 7143 §11.9).

use crate::ids::Lun;
use crate::serial::{CmdSn, StatSn};

/// Asynchronous Message header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AsyncMessage {
    /// LUN (for SCSI async events).
    pub lun: Lun,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// AsyncEvent: 0 SCSI event, 1 logout request, 2 drop connection, 3 drop all, 4 renegotiate, 255 vendor.
    pub event: u8,
    /// AsyncVCode.
    pub vcode: u8,
    /// Parameter1.
    pub param1: u16,
    /// Parameter2.
    pub param2: u16,
    /// Parameter3.
    pub param3: u16,
}
